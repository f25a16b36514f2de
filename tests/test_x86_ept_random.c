/*
 * Randomized differential test of the EPT: random install (shared and
 * exclusive, leaves of every size and MMIO SPTEs) / zap / wrprotect /
 * split / test_clear_young on random GPAs of four windows spread over the
 * whole GPA space, for 4- and 5-level EPTs with and without A/D flags.
 * After every step the result and the tables are checked against:
 *   (a) a model: the set of leaves (GPA, level, exact SPTE) the header's
 *       semantics leave behind;
 *   (b) mv_ept_get_leaf and mv_ept_get_stats;
 *   (c) a deliberately naive hand walk from the EPTP (ept_check.h: its own
 *       index arithmetic, nothing of src/soft), plus the page counts and
 *       "no empty table left".
 * Seeded: MV_SEED replays a run; the last operations are printed on a
 * mismatch.
 */
#include "testutil.h"

#include "ept_check.h"
#include "memvirt/soft_ept.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KiB (1ull << 10)
#define MiB (1ull << 20)
#define GiB (1ull << 30)
#define HPA0 0x7f0000000000ull
#define WIN_SIZE (4 * GiB)
#define STEPS 1500

/* One leaf of the model. */
typedef struct leaf_model {
	uint64_t gpa;
	int level;
	mv_pte spte;
} leaf_model;

typedef struct rt {
	uint64_t rng;
	mv_pgt_pool *pool;
	mv_ept ept;
	uint64_t win[4];
	uint64_t top;             /* 2^48 or 2^57 */
	leaf_model *m;            /* sorted by gpa, never overlapping */
	size_t n, cap;
	char log[16][160];        /* the last operations, for a failure report */
	unsigned nops;
	unsigned stats[8];
} rt;

static uint64_t lsize(int level)
{
	return 1ull << eptc_shift(level);
}

static void logop(rt *t, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(t->log[t->nops++ % 16], sizeof(t->log[0]), fmt, ap);
	va_end(ap);
}

static void dump_log(const rt *t)
{
	unsigned first = t->nops > 16 ? t->nops - 16 : 0;

	for (unsigned i = first; i < t->nops; i++)
		printf("#   op %u: %s\n", i, t->log[i % 16]);
}

#define CHECK(t, cond, ...)                                                        \
	do {                                                                       \
		if (!(cond)) {                                                     \
			dump_log(t);                                               \
			fail_msg(__VA_ARGS__);                                     \
		}                                                                  \
	} while (0)

/* ------------------------------------------------------------------ */
/* (a) the model                                                         */

/* Index of the first leaf whose end is above @gpa. */
static size_t m_lower(const rt *t, uint64_t gpa)
{
	size_t lo = 0, hi = t->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (t->m[mid].gpa + lsize(t->m[mid].level) <= gpa)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The leaf covering @gpa, or NULL. */
static leaf_model *m_find(rt *t, uint64_t gpa)
{
	size_t i = m_lower(t, gpa);

	return i < t->n && t->m[i].gpa <= gpa ? &t->m[i] : NULL;
}

/* Make room for @k leaves at index @i. */
static void m_open(rt *t, size_t i, size_t k)
{
	if (t->n + k > t->cap) {
		t->cap = 2 * (t->n + k);
		t->m = realloc(t->m, t->cap * sizeof(*t->m));
		assert_non_null(t->m);
	}
	memmove(&t->m[i + k], &t->m[i], (t->n - i) * sizeof(*t->m));
	t->n += k;
}

static void m_insert(rt *t, uint64_t gpa, int level, mv_pte spte)
{
	size_t i = m_lower(t, gpa);

	m_open(t, i, 1);
	t->m[i] = (leaf_model){ gpa, level, spte };
}

static void m_remove_at(rt *t, size_t i)
{
	memmove(&t->m[i], &t->m[i + 1], (t->n - i - 1) * sizeof(*t->m));
	t->n--;
}

/* Remove every leaf intersecting [s, e). */
static void m_remove_range(rt *t, uint64_t s, uint64_t e)
{
	size_t i = m_lower(t, s), j = i;

	while (j < t->n && t->m[j].gpa < e)
		j++;
	memmove(&t->m[i], &t->m[j], (t->n - j) * sizeof(*t->m));
	t->n -= j - i;
}

/* Child @i of a present huge leaf (the header: same bits, LARGE only above the PTE). */
static mv_pte child_of(mv_pte old, int level, uint64_t i)
{
	mv_pte bits = old & ~EPTC_ADDR;

	if (level + 1 == 3)
		bits &= ~MV_EPT_LARGE;
	return bits | ((old & EPTC_ADDR) + i * lsize(level + 1));
}

/* Replace the present huge leaf at index @i by its 512 children. */
static void m_split_at(rt *t, size_t i)
{
	leaf_model old = t->m[i];

	m_open(t, i, 511);
	for (uint64_t c = 0; c < 512; c++)
		t->m[i + c] = (leaf_model){ old.gpa + c * lsize(old.level + 1), old.level + 1,
					    child_of(old.spte, old.level, c) };
}

/* Is any leaf strictly smaller than @level inside [gpa, gpa + size(level))? */
static bool m_table_at(rt *t, uint64_t gpa, int level)
{
	size_t i = m_lower(t, gpa);

	return i < t->n && t->m[i].gpa < gpa + lsize(level) && t->m[i].level > level;
}

/* What mv_ept_install does (its header), applied to the model. */
static mv_pgt_result m_install(rt *t, uint64_t gpa, int level, mv_pte spte, bool shared)
{
	leaf_model *c;

	/* Above the target: a present huge page is split (or EXISTS), an MMIO SPTE dropped. */
	while ((c = m_find(t, gpa)) && c->level < level) {
		if (!mv_ept_is_present(c->spte)) {
			m_remove_at(t, (size_t)(c - t->m));
			break;
		}
		if (shared)
			return MV_PGT_EXISTS;
		m_split_at(t, (size_t)(c - t->m));
	}
	if (m_table_at(t, gpa, level)) {
		if (shared)
			return MV_PGT_EXISTS;
		m_remove_range(t, gpa, gpa + lsize(level));
	}
	c = m_find(t, gpa);
	if (c) {
		if (shared && mv_ept_is_present(c->spte) &&
		    (!mv_ept_is_present(spte) || ((c->spte ^ spte) & EPTC_ADDR)))
			return MV_PGT_EXISTS;
		c->spte = spte;
		return MV_PGT_OK;
	}
	m_insert(t, gpa, level, spte);
	return MV_PGT_OK;
}

/* Split present huge leaves intersecting [s, e), down to 4 KiB inside it. */
static bool m_split(rt *t, uint64_t s, uint64_t e)
{
	bool any = false;

	for (size_t i = m_lower(t, s); i < t->n && t->m[i].gpa < e;) {
		if (t->m[i].level < 3 && mv_ept_is_present(t->m[i].spte)) {
			m_split_at(t, i);
			any = true;
			i = m_lower(t, s > t->m[i].gpa ? s : t->m[i].gpa);
			continue;
		}
		i++;
	}
	return any;
}

/* ------------------------------------------------------------------ */
/* Random operations                                                     */

static uint64_t rnd(rt *t, uint64_t n)
{
	return tu_rand_below(&t->rng, n);
}

static int rnd_level(rt *t)
{
	uint64_t r = rnd(t, 10);

	return r < 6 ? 3 : r < 9 ? 2 : 1;
}

/* A random GPA of a window, aligned to @align. */
static uint64_t rnd_gpa(rt *t, uint64_t align)
{
	/* Half the time near the window's start, where operations pile up. */
	uint64_t span = rnd(t, 2) ? WIN_SIZE : 16 * MiB;

	return t->win[rnd(t, 4)] + rnd(t, span / align) * align;
}

static mv_pte rnd_spte(rt *t, uint64_t gpa, int level)
{
	static const unsigned rights[] = {
		MV_EPT_R, MV_EPT_R | MV_EPT_X, MV_EPT_R | MV_EPT_W, MV_EPT_RWX, MV_EPT_X,
	};
	uint64_t hpa = HPA0 + (gpa & (64 * GiB - 1));

	if (!rnd(t, 10))
		return mv_ept_mmio_spte(gpa >> 12, rnd(t, 1ull << 19));
	/* a fifth of the leaves map another host page than the identity-like default */
	if (!rnd(t, 5))
		hpa = HPA0 + rnd(t, (64 * GiB) / lsize(level)) * lsize(level);
	return mv_ept_leaf(hpa, rights[rnd(t, 5)], level, rnd(t, 4) != 0, t->ept.ad);
}

static void op_install(rt *t)
{
	int level = rnd_level(t);
	uint64_t gpa = rnd_gpa(t, lsize(level));
	mv_pte spte = rnd_spte(t, gpa, level);
	bool shared = rnd(t, 2);
	mv_pgt_result want, got;

	logop(t, "install gpa %#" PRIx64 " level %d spte %#" PRIx64 " %s", gpa, level, spte,
	      shared ? "shared" : "exclusive");
	want = m_install(t, gpa, level, spte, shared);
	got = mv_ept_install(&t->ept, gpa, level, spte, shared ? MV_PGT_WALK_SHARED : 0, NULL);
	CHECK(t, got == want, "install: got %s, model says %s", mv_pgt_result_name(got),
	      mv_pgt_result_name(want));
	t->stats[got == MV_PGT_OK ? 0 : 1]++;
}

/* A random range: [s, e) as given, and widened to 4 KiB pages as the walker does. */
static void rnd_range(rt *t, uint64_t max, uint64_t *gpa, uint64_t *size, uint64_t *s, uint64_t *e)
{
	*gpa = rnd_gpa(t, 4 * KiB) + (rnd(t, 8) ? 0 : rnd(t, 4 * KiB));
	*size = 1 + rnd(t, rnd(t, 4) ? 4 * MiB : max);
	if (*size > t->top - *gpa)
		*size = t->top - *gpa;
	*s = *gpa & ~(4 * KiB - 1);
	*e = ((*gpa + *size - 1) | (4 * KiB - 1)) + 1;
}

static void op_zap(rt *t)
{
	uint64_t gpa, size, s, e, inv = t->ept.nr_invept;
	bool present = false;

	rnd_range(t, 2 * GiB, &gpa, &size, &s, &e);
	logop(t, "zap %#" PRIx64 " + %#" PRIx64, gpa, size);
	for (size_t i = m_lower(t, s); i < t->n && t->m[i].gpa < e; i++)
		present |= mv_ept_is_present(t->m[i].spte);
	m_remove_range(t, s, e);
	CHECK(t, mv_ept_zap(&t->ept, gpa, size) == MV_PGT_OK, "zap failed");
	/* a present leaf removed: INVEPT before the call returns */
	CHECK(t, !present || t->ept.nr_invept > inv, "zap: no INVEPT");
	t->stats[2]++;
}

static void op_wrprotect(rt *t)
{
	uint64_t gpa, size, s, e, inv = t->ept.nr_invept;
	bool want = false, got;

	rnd_range(t, 2 * GiB, &gpa, &size, &s, &e);
	logop(t, "wrprotect %#" PRIx64 " + %#" PRIx64, gpa, size);
	for (size_t i = m_lower(t, s); i < t->n && t->m[i].gpa < e; i++) {
		leaf_model *l = &t->m[i];

		if (mv_ept_is_present(l->spte) && (l->spte & MV_EPT_W)) {
			l->spte &= ~MV_EPT_W;
			want = true;
		}
	}
	got = mv_ept_wrprotect(&t->ept, gpa, size);
	CHECK(t, got == want, "wrprotect returned %d", got);
	CHECK(t, t->ept.nr_invept == inv + want, "wrprotect: %" PRIu64 " INVEPTs",
	      t->ept.nr_invept - inv);
	t->stats[3]++;
}

static void op_split(rt *t)
{
	uint64_t gpa, size, s, e, inv = t->ept.nr_invept;
	bool any;

	rnd_range(t, 4 * MiB, &gpa, &size, &s, &e);
	logop(t, "split %#" PRIx64 " + %#" PRIx64, gpa, size);
	any = m_split(t, s, e);
	CHECK(t, mv_ept_split(&t->ept, gpa, size) == MV_PGT_OK, "split failed");
	CHECK(t, t->ept.nr_invept == inv + any, "split: %" PRIu64 " INVEPTs", t->ept.nr_invept - inv);
	t->stats[4]++;
}

static void op_young(rt *t)
{
	uint64_t gpa, size, s, e;
	bool clear = rnd(t, 2), want = false, got;

	rnd_range(t, 2 * GiB, &gpa, &size, &s, &e);
	logop(t, "young %#" PRIx64 " + %#" PRIx64 " clear %d", gpa, size, clear);
	for (size_t i = m_lower(t, s); i < t->n && t->m[i].gpa < e;) {
		leaf_model *l = &t->m[i];

		if (!mv_ept_is_present(l->spte) || (t->ept.ad && !(l->spte & MV_EPT_A))) {
			i++;
			continue;
		}
		want = true;
		if (clear && !t->ept.ad) {
			m_remove_at(t, i);
			continue;
		}
		if (clear)
			l->spte &= ~MV_EPT_A;
		i++;
	}
	got = mv_ept_test_clear_young(&t->ept, gpa, size, clear);
	CHECK(t, got == want, "young returned %d", got);
	t->stats[5]++;
}

/* ------------------------------------------------------------------ */
/* (b) + (c): the checks                                                 */

/* @gpa translated by get_leaf and by the hand walk, against the model. */
static void check_gpa(rt *t, uint64_t gpa)
{
	leaf_model *l = m_find(t, gpa);
	eptc_xlate x = eptc_translate(&t->ept, gpa);
	mv_pte spte;
	int level;

	CHECK(t, mv_ept_get_leaf(&t->ept, gpa, &spte, &level) == MV_PGT_OK, "get_leaf failed");
	if (!l) {
		CHECK(t, spte == 0 && !x.present && !x.mmio,
		      "gpa %#" PRIx64 ": model has nothing, get_leaf %#" PRIx64 " walk %#" PRIx64,
		      gpa, spte, x.leaf);
		return;
	}
	CHECK(t, spte == l->spte && level == l->level && x.leaf == l->spte && x.level == l->level,
	      "gpa %#" PRIx64 ": model %#" PRIx64 " level %d, get_leaf %#" PRIx64 " level %d, "
	      "walk %#" PRIx64 " level %d", gpa, l->spte, l->level, spte, level, x.leaf, x.level);
	if (mv_ept_is_mmio_spte(l->spte)) {
		CHECK(t, x.mmio && !x.present, "gpa %#" PRIx64 ": not MMIO for the walk", gpa);
		return;
	}
	CHECK(t, x.present && x.rwx == (l->spte & 7) &&
		 x.hpa == (l->spte & EPTC_ADDR) + (gpa & (lsize(l->level) - 1)),
	      "gpa %#" PRIx64 ": walk hpa %#" PRIx64 " rwx %u", gpa, x.hpa, x.rwx);
}

/*
 * The model against the tables: sampled GPAs after every step; the
 * statistics and the table pages (which scan every entry) when @full;
 * every leaf when @every_leaf.
 */
static void check_all(rt *t, bool full, bool every_leaf)
{
	uint64_t leaves[4] = { 0 }, mmio = 0;
	mv_ept_stats st;
	long tables;

	/* every leaf of the model (or a sample), at a random byte of it */
	for (size_t k = 0; k < (every_leaf ? t->n : 64) && t->n; k++) {
		leaf_model *l = &t->m[every_leaf ? k : rnd(t, t->n)];

		check_gpa(t, l->gpa + rnd(t, lsize(l->level)));
	}
	/* and random GPAs, mostly empty ones */
	for (unsigned k = 0; k < 64; k++)
		check_gpa(t, rnd_gpa(t, 1));
	if (!full)
		return;
	for (size_t k = 0; k < t->n; k++) {
		if (mv_ept_is_mmio_spte(t->m[k].spte))
			mmio++;
		else
			leaves[t->m[k].level]++;
	}
	mv_ept_get_stats(&t->ept, &st);
	CHECK(t, !memcmp(st.leaves, leaves, sizeof(leaves)) && st.mmio_sptes == mmio,
	      "stats: leaves %" PRIu64 "/%" PRIu64 "/%" PRIu64 " mmio %" PRIu64
	      ", model %" PRIu64 "/%" PRIu64 "/%" PRIu64 " mmio %" PRIu64,
	      st.leaves[1], st.leaves[2], st.leaves[3], st.mmio_sptes, leaves[1], leaves[2],
	      leaves[3], mmio);
	tables = eptc_count_tables(&t->ept);
	CHECK(t, tables >= 0 && (uint64_t)tables == st.tables, "tables: hand count %ld, stats %" PRIu64,
	      tables, st.tables);
	CHECK(t, mv_pgt_pool_live_pages(t->pool) == 1 + st.tables, "live pages %zu, tables %" PRIu64,
	      mv_pgt_pool_live_pages(t->pool), st.tables);
	CHECK(t, eptc_empty_tables(&t->ept) == 0, "an empty table was left linked");
}

/* ------------------------------------------------------------------ */
/* Runs                                                                  */

static void run(uint64_t seed, unsigned levels, bool ad)
{
	uint64_t top = levels == 4 ? 1ull << 48 : 1ull << 57;
	rt *t = calloc(1, sizeof(*t));

	assert_non_null(t);
	t->rng = seed;
	t->top = top;
	t->cap = 1024;
	t->m = malloc(t->cap * sizeof(*t->m));
	assert_non_null(t->m);
	/* the bottom, a 1 GiB-aligned spot below 512 GiB, past a PML4E boundary, the top */
	t->win[0] = 0;
	t->win[1] = 508 * GiB;
	t->win[2] = (levels == 4 ? 300ull : 70000ull) * 512 * GiB;
	t->win[3] = top - WIN_SIZE;
	assert_int_equal(mv_pgt_pool_new(NULL, &t->pool), 0);
	assert_int_equal(mv_ept_init(&t->ept, levels, ad, mv_pgt_pool_mm_ops(), t->pool, NULL, NULL), 0);
	for (unsigned step = 0; step < STEPS; step++) {
		uint64_t r = rnd(t, 20);

		if (r < 10)
			op_install(t);
		else if (r < 13)
			op_zap(t);
		else if (r < 15)
			op_wrprotect(t);
		else if (r < 17)
			op_split(t);
		else
			op_young(t);
		check_all(t, step % 10 == 9, step % 250 == 249);
	}
	printf("# %u levels, A/D %d: %u installs ok, %u refused, %u zaps, %u wrprotects, "
	       "%u splits, %u young; %zu leaves at the end\n", levels, ad, t->stats[0], t->stats[1],
	       t->stats[2], t->stats[3], t->stats[4], t->stats[5], t->n);
	assert_int_equal(mv_ept_zap(&t->ept, 0, top), MV_PGT_OK);
	assert_int_equal(mv_pgt_pool_live_pages(t->pool), 1);
	mv_ept_destroy(&t->ept);
	assert_int_equal(mv_pgt_pool_live_pages(t->pool), 0);
	mv_pgt_pool_free(t->pool);
	free(t->m);
	free(t);
}

static void test_random_4level(void **state)
{
	uint64_t seed = tu_seed(0x4e97);

	(void)state;
	run(seed, 4, true);
	run(seed + 1, 4, false);
}

static void test_random_5level(void **state)
{
	uint64_t seed = tu_seed(0x5e97);

	(void)state;
	run(seed, 5, true);
	run(seed + 1, 5, false);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_random_4level),
		cmocka_unit_test(test_random_5level),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
