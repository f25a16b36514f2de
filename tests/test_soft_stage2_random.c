/*
 * Randomized differential test of the stage-2 tables: random map / unmap /
 * wrprotect / relax / mkyoung / test_clear_young / split / set_owner on
 * random ranges with random attributes, then random IPAs translated three
 * ways that must agree:
 *   (a) a naive model: one expected (output, attributes, owner) per page;
 *   (b) mv_s2_get_leaf;
 *   (c) a deliberately naive walk written here, reading the descriptors by
 *       hand from the root (its own index arithmetic, nothing of pgtable.c).
 * Four geometries (4 KiB 40/48-bit, 16 KiB, 64 KiB). Seeded: MV_SEED
 * replays a run; the last operations are printed on a mismatch.
 */
#include "testutil.h"

#include "memvirt/soft_stage2.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KiB (1ull << 10)
#define MiB (1ull << 20)
#define GiB (1ull << 30)
#define OA48 ((1ull << 48) - 1)

/* One page of the model. */
typedef struct page_model {
	uint64_t pa;            /* output address of the page */
	uint64_t attrs;         /* descriptor bits other than OA and bits[1:0] */
	uint8_t mapped;
	uint8_t owner;
} page_model;

typedef struct rt {
	uint64_t rng;
	tu_failing_alloc fa;
	mv_pgt_pool *pool;
	mv_s2_pgt s2;
	unsigned g;             /* granule shift */
	uint64_t gsize;
	uint64_t win, win_size; /* the window operations touch */
	uint64_t npages;
	page_model *model;
	uint64_t pa_base;       /* outputs live in [pa_base, pa_base + 2^40) */
	char log[16][160];      /* the last operations, for a failure report */
	unsigned nops;
	unsigned stats[8];
} rt;

/* ------------------------------------------------------------------ */
/* (c) the naive walk                                                   */

/* Is a block descriptor allowed at @level (48-bit OA, no FEAT_LPA/LPA2)? */
static bool naive_block_level(unsigned g, int level)
{
	if (g == 12)
		return level == 1 || level == 2;
	return level == 2;
}

/* The descriptor where the walk of @ipa stops (a leaf or an invalid entry) and its level. */
static mv_pte naive_walk(const rt *r, uint64_t ipa, int *level_out)
{
	const mv_pgt *p = &r->s2.pgt;
	const mv_pte *table = (const mv_pte *)(uintptr_t)p->root_pa;
	int level = p->start_level;

	for (;;) {
		unsigned lo = r->g + (r->g - 3) * (unsigned)(3 - level);
		unsigned hi = level == p->start_level ? p->ia_bits : lo + r->g - 3;
		uint64_t idx = (ipa % (1ull << hi)) / (1ull << lo);
		mv_pte d = table[idx];

		if (level == 3 || (d & 3) != 3) {
			*level_out = level;
			return d;
		}
		table = (const mv_pte *)(uintptr_t)(((d & OA48) >> r->g) << r->g);
		level++;
	}
}

static bool naive_translate(const rt *r, uint64_t ipa, uint64_t *pa, uint64_t *attrs, int *level)
{
	mv_pte d = naive_walk(r, ipa, level);
	uint64_t size = 1ull << (r->g + (r->g - 3) * (unsigned)(3 - *level));

	if (!(d & 1))
		return false;
	if (*level == 3 ? (d & 3) != 3 : !naive_block_level(r->g, *level))
		return false;
	*pa = (d & OA48 & ~(size - 1)) + ipa % size;
	*attrs = d & ~(OA48 & ~(r->gsize - 1)) & ~3ull;
	return true;
}

/* ------------------------------------------------------------------ */
/* Checks                                                               */

static void dump_log(const rt *r)
{
	unsigned first = r->nops > 16 ? r->nops - 16 : 0;

	printf("# last operations (of %u):\n", r->nops);
	for (unsigned i = first; i < r->nops; i++)
		printf("#   %u: %s\n", i, r->log[i % 16]);
}

#define CHECK(r, cond, ...)                                  \
	do {                                                 \
		if (!(cond)) {                               \
			printf("# mismatch: " __VA_ARGS__);  \
			printf("\n");                        \
			dump_log(r);                         \
			fail();                              \
		}                                            \
	} while (0)

static void check_ipa(rt *r, uint64_t ipa)
{
	page_model none = { 0 };
	bool in = ipa >= r->win && ipa - r->win < r->win_size;
	const page_model *m = in ? &r->model[(ipa - r->win) >> r->g] : &none;
	uint64_t pa = 0, attrs = 0, off = ipa & (r->gsize - 1);
	int level, nlevel;
	mv_pte pte, raw;
	bool ok;

	CHECK(r, mv_s2_get_leaf(&r->s2, ipa, &pte, &level) == MV_PGT_OK, "get_leaf(%#" PRIx64 ")", ipa);
	ok = naive_translate(r, ipa, &pa, &attrs, &nlevel);
	if (!m->mapped) {
		CHECK(r, !pte && !ok, "ipa %#" PRIx64 " unmapped in the model, pte %#" PRIx64 " naive %d",
		      ipa, pte, ok);
		raw = naive_walk(r, ipa, &nlevel);
		CHECK(r, raw == (mv_pte)m->owner << MV_S2_OWNER_SHIFT,
		      "ipa %#" PRIx64 ": entry %#" PRIx64 ", model owner %u", ipa, raw, m->owner);
		return;
	}
	CHECK(r, ok, "ipa %#" PRIx64 " mapped in the model, naive walk faults", ipa);
	CHECK(r, pa == m->pa + off && attrs == m->attrs,
	      "ipa %#" PRIx64 ": naive pa %#" PRIx64 " attrs %#" PRIx64 ", model %#" PRIx64 " %#" PRIx64,
	      ipa, pa, attrs, m->pa + off, m->attrs);
	CHECK(r, pte && level == nlevel, "ipa %#" PRIx64 ": get_leaf %#" PRIx64 " level %d, naive level %d",
	      ipa, pte, level, nlevel);
	{
		uint64_t size = mv_pgt_level_size(&r->s2.pgt, level);

		pa = mv_s2_pte_oa(pte, r->g) + (ipa & (size - 1));
		attrs = pte & ~MV_S2_OA_MASK(r->g) & ~3ull;
	}
	CHECK(r, pa == m->pa + off && attrs == m->attrs,
	      "ipa %#" PRIx64 ": get_leaf pa %#" PRIx64 " attrs %#" PRIx64 ", model %#" PRIx64 " %#" PRIx64,
	      ipa, pa, attrs, m->pa + off, m->attrs);
}

/* Random IPAs: anywhere in the window, near the last range, and just outside. */
static void check_random(rt *r, uint64_t near, uint64_t near_size, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		uint64_t ipa;

		switch (tu_rand_below(&r->rng, 4)) {
		case 0:
		case 1:
			ipa = r->win + tu_rand_below(&r->rng, r->win_size);
			break;
		case 2:
			ipa = near - 2 * r->gsize + tu_rand_below(&r->rng, near_size + 4 * r->gsize);
			break;
		default:
			ipa = tu_rand_below(&r->rng, 2) ? r->win - 1 - tu_rand_below(&r->rng, 8 * r->gsize)
							: r->win + r->win_size + tu_rand_below(&r->rng, 8 * r->gsize);
			break;
		}
		check_ipa(r, ipa);
	}
}

/* ------------------------------------------------------------------ */
/* Operations: the real one, then the same on the model                 */

static uint64_t level_size(const rt *r, int level)
{
	return mv_pgt_level_size(&r->s2.pgt, level);
}

/* A random range in the window, often block-aligned, of pages to several blocks. */
static void random_range(rt *r, uint64_t *ipa, uint64_t *size)
{
	uint64_t b2 = level_size(r, 2), pages, first;

	switch (tu_rand_below(&r->rng, 8)) {
	case 0: case 1: case 2: case 3:
		pages = 1 + tu_rand_below(&r->rng, 8);
		break;
	case 4: case 5:
		pages = (b2 >> r->g) + tu_rand_below(&r->rng, 5) - 2;
		break;
	case 6:
		pages = (b2 >> r->g) * (1 + tu_rand_below(&r->rng, 4)) + tu_rand_below(&r->rng, 3);
		break;
	default:
		/* Now and then a level-1 sized range (4 KiB: 1 GiB): slow as pages, so rare. */
		pages = (b2 >> r->g) * 8;
		if (r->g == 12 && tu_rand_below(&r->rng, 4) == 0)
			pages = GiB >> 12;
		break;
	}
	if (pages > r->npages)
		pages = r->npages;
	first = tu_rand_below(&r->rng, r->npages - pages + 1);
	/* Half the time start on a block boundary (within what fits). */
	if (tu_rand_below(&r->rng, 2)) {
		uint64_t per = b2 >> r->g;

		if (pages >= (GiB >> r->g) && r->g == 12)
			per = GiB >> 12;
		first -= first % per;
	}
	*ipa = r->win + (first << r->g);
	*size = pages << r->g;
}

static uint64_t random_attr(rt *r)
{
	static const unsigned prots[] = {
		MV_S2_PROT_R | MV_S2_PROT_W, MV_S2_PROT_R, MV_S2_PROT_R | MV_S2_PROT_W | MV_S2_PROT_X,
		MV_S2_PROT_R | MV_S2_PROT_W | MV_S2_PROT_DEVICE, MV_S2_PROT_R | MV_S2_PROT_X, 0,
	};
	uint64_t a = mv_s2_prot_attr(prots[tu_rand_below(&r->rng, 6)]);

	if (tu_rand_below(&r->rng, 4) == 0)
		a &= ~MV_S2_AF;
	if (tu_rand_below(&r->rng, 4) == 0)
		a |= (tu_rand_below(&r->rng, 16)) << 55;      /* software bits */
	return a;
}

static void logf_op(rt *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_op(rt *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->log[r->nops % 16], sizeof(r->log[0]), fmt, ap);
	va_end(ap);
	r->nops++;
}

static page_model *model_at(rt *r, uint64_t ipa)
{
	return &r->model[(ipa - r->win) >> r->g];
}

static void op_map(rt *r, uint64_t ipa, uint64_t size)
{
	uint64_t b1 = level_size(r, r->g == 12 ? 1 : 2), pa, attr = random_attr(r);
	int min_level = (int)tu_rand_below(&r->rng, 4);
	mv_pgt_result res;

	/* Mostly outputs that keep the IPA's block alignment, so blocks happen. */
	if (tu_rand_below(&r->rng, 4))
		pa = r->pa_base + tu_rand_below(&r->rng, 64) * b1 + (ipa & (b1 - 1));
	else
		pa = r->pa_base + (tu_rand_below(&r->rng, 1ull << (40 - r->g)) << r->g);
	logf_op(r, "map ipa %#" PRIx64 " size %#" PRIx64 " pa %#" PRIx64 " attr %#" PRIx64 " min %d",
		ipa, size, pa, attr, min_level);
	res = mv_s2_map(&r->s2, ipa, size, pa, attr, min_level, 0);
	CHECK(r, res == MV_PGT_OK, "map: %s", mv_pgt_result_name(res));
	for (uint64_t off = 0; off < size; off += r->gsize)
		*model_at(r, ipa + off) = (page_model){ pa + off, attr, 1, 0 };
}

static void op_unmap(rt *r, uint64_t ipa, uint64_t size)
{
	mv_pgt_result res;

	logf_op(r, "unmap ipa %#" PRIx64 " size %#" PRIx64, ipa, size);
	res = mv_s2_unmap(&r->s2, ipa, size);
	CHECK(r, res == MV_PGT_OK, "unmap: %s", mv_pgt_result_name(res));
	for (uint64_t off = 0; off < size; off += r->gsize)
		*model_at(r, ipa + off) = (page_model){ 0 };
}

static void op_wrprotect(rt *r, uint64_t ipa, uint64_t size)
{
	mv_pgt_result res;

	logf_op(r, "wrprotect ipa %#" PRIx64 " size %#" PRIx64, ipa, size);
	res = mv_s2_wrprotect(&r->s2, ipa, size);
	CHECK(r, res == MV_PGT_OK, "wrprotect: %s", mv_pgt_result_name(res));
	for (uint64_t off = 0; off < size; off += r->gsize)
		model_at(r, ipa + off)->attrs &= ~MV_S2_S2AP_W;
}

static void op_split(rt *r, uint64_t ipa, uint64_t size)
{
	mv_pgt_result res;
	int level;

	logf_op(r, "split ipa %#" PRIx64 " size %#" PRIx64, ipa, size);
	res = mv_s2_split(&r->s2, ipa, size);
	CHECK(r, res == MV_PGT_OK, "split: %s", mv_pgt_result_name(res));
	/* Model unchanged; what is mapped in the range is pages now. */
	for (unsigned i = 0; i < 16; i++) {
		uint64_t at = ipa + (tu_rand_below(&r->rng, size >> r->g) << r->g);

		if (naive_walk(r, at, &level) & 1)
			CHECK(r, level == 3, "split left a level-%d leaf at %#" PRIx64, level, at);
	}
}

static void op_set_owner(rt *r, uint64_t ipa, uint64_t size)
{
	unsigned owner = (unsigned)tu_rand_below(&r->rng, 4) ? 1 + (unsigned)tu_rand_below(&r->rng, 255) : 0;
	mv_pgt_result res;

	logf_op(r, "set_owner ipa %#" PRIx64 " size %#" PRIx64 " owner %u", ipa, size, owner);
	res = mv_s2_set_owner(&r->s2, ipa, size, owner);
	CHECK(r, res == MV_PGT_OK, "set_owner: %s", mv_pgt_result_name(res));
	for (uint64_t off = 0; off < size; off += r->gsize)
		*model_at(r, ipa + off) = (page_model){ 0, 0, 0, (uint8_t)owner };
}

/* The leaf covering @ipa per the naive walk: [*base, *base + *size). False when none. */
static bool leaf_extent(const rt *r, uint64_t ipa, uint64_t *base, uint64_t *size)
{
	int level;

	if (!(naive_walk(r, ipa, &level) & 1))
		return false;
	*size = mv_pgt_level_size(&r->s2.pgt, level);
	*base = ipa & ~(*size - 1);
	return true;
}

/*
 * Apply set/clr to the model pages of the leaf covering @ipa. Returns the
 * end of that leaf (ipa + one page when nothing is mapped there).
 */
static uint64_t model_leaf_update(rt *r, uint64_t ipa, uint64_t set, uint64_t clr)
{
	uint64_t base, size;

	if (!leaf_extent(r, ipa, &base, &size))
		return ipa + r->gsize;
	for (uint64_t off = 0; off < size; off += r->gsize)
		if (base + off >= r->win && base + off - r->win < r->win_size)
			model_at(r, base + off)->attrs = (model_at(r, base + off)->attrs | set) & ~clr;
	return base + size;
}

static void op_relax_or_mkyoung(rt *r, uint64_t ipa)
{
	unsigned prot = (unsigned)tu_rand_below(&r->rng, 8) & (MV_S2_PROT_R | MV_S2_PROT_W | MV_S2_PROT_X);
	bool mkyoung = tu_rand_below(&r->rng, 3) == 0;
	bool mapped = model_at(r, ipa)->mapped;
	uint64_t set = MV_S2_AF, clr = 0;
	mv_pgt_result res;
	mv_pte pte;

	logf_op(r, "%s ipa %#" PRIx64 " prot %u", mkyoung ? "mkyoung" : "relax", ipa, prot);
	if (mkyoung) {
		res = mv_s2_mkyoung(&r->s2, ipa, &pte, 0);
	} else {
		res = mv_s2_relax_perms(&r->s2, ipa, prot, 0);
		set |= (prot & MV_S2_PROT_R ? MV_S2_S2AP_R : 0) | (prot & MV_S2_PROT_W ? MV_S2_S2AP_W : 0);
		clr = prot & MV_S2_PROT_X ? MV_S2_XN_MASK : 0;
	}
	CHECK(r, res == (mapped ? MV_PGT_OK : MV_PGT_NOENT), "relax/mkyoung: %s (mapped %d)",
	      mv_pgt_result_name(res), mapped);
	if (mapped)
		model_leaf_update(r, ipa, set, clr);
}

static void op_young(rt *r, uint64_t ipa, uint64_t size)
{
	bool mkold = tu_rand_below(&r->rng, 2), want = false, got;

	/* Expected: any leaf touching the range is young (read before the call). */
	for (uint64_t off = 0; off < size; off += r->gsize) {
		const page_model *m = model_at(r, ipa + off);

		want |= m->mapped && (m->attrs & MV_S2_AF);
	}
	logf_op(r, "test_clear_young ipa %#" PRIx64 " size %#" PRIx64 " mkold %d", ipa, size, mkold);
	/* Leaves in the range lose AF as a whole (a block partly in the range too). */
	for (uint64_t at = ipa; mkold && at < ipa + size;)
		at = model_leaf_update(r, at, 0, MV_S2_AF);
	got = mv_s2_test_clear_young(&r->s2, ipa, size, mkold);
	CHECK(r, got == want, "test_clear_young said %d, model %d", got, want);
}

static void random_op(rt *r)
{
	unsigned kind = (unsigned)tu_rand_below(&r->rng, 16);
	uint64_t ipa, size;

	random_range(r, &ipa, &size);
	r->stats[kind < 6 ? 0 : kind < 8 ? 1 : kind < 10 ? 2 : kind < 11 ? 3 : kind < 13 ? 4 :
				kind < 14 ? 5 : 6]++;
	if (kind < 6)
		op_map(r, ipa, size);
	else if (kind < 8)
		op_unmap(r, ipa, size);
	else if (kind < 10)
		op_wrprotect(r, ipa, size);
	else if (kind < 11)
		op_split(r, ipa, size);
	else if (kind < 13)
		op_relax_or_mkyoung(r, ipa + (tu_rand_below(&r->rng, size >> r->g) << r->g));
	else if (kind < 14)
		op_set_owner(r, ipa, size);
	else
		op_young(r, ipa, size);
	check_random(r, ipa, size, 200);
}

/* ------------------------------------------------------------------ */
/* Runs                                                                 */

static void run_geometry(unsigned ia_bits, unsigned g, uint64_t win, uint64_t win_size,
			 uint64_t seed, unsigned nops)
{
	rt *r = test_calloc(1, sizeof(*r));
	mv_s2_config cfg;
	long pages_checked = 0;

	r->rng = seed;
	r->g = g;
	r->gsize = 1ull << g;
	r->win = win;
	r->win_size = win_size;
	r->npages = win_size >> g;
	r->pa_base = 0x7f0000000000ull & ~((1ull << 40) - 1);
	r->model = test_calloc(r->npages, sizeof(*r->model));
	tu_failing_alloc_init(&r->fa, 0, false);
	assert_int_equal(mv_pgt_pool_new(&r->fa.alloc, &r->pool), 0);
	assert_int_equal(mv_s2_config_for_ipa(ia_bits, g, &cfg), 0);
	assert_int_equal(mv_s2_init(&r->s2, &cfg, mv_pgt_pool_mm_ops(), r->pool, NULL, NULL), 0);

	for (unsigned i = 0; i < nops; i++)
		random_op(r);
	/* Every page of the window once, against the model. */
	for (uint64_t off = 0; off < win_size; off += r->gsize, pages_checked++)
		check_ipa(r, win + off);
	printf("# %u-bit IPA, %u KiB granule: %u ops (map %u unmap %u wrprotect %u split %u "
	       "relax/mkyoung %u owner %u young %u), %ld pages swept, %zu table units live, "
	       "%" PRIu64 " BBM\n",
	       ia_bits, (unsigned)(r->gsize >> 10), nops, r->stats[0], r->stats[1], r->stats[2],
	       r->stats[3], r->stats[4], r->stats[5], r->stats[6], pages_checked,
	       mv_pgt_pool_live_pages(r->pool), r->s2.nr_bbm);

	/* Unmapping the window gives back every table; destroy the root. */
	assert_int_equal(mv_s2_unmap(&r->s2, win, win_size), MV_PGT_OK);
	assert_int_equal(mv_pgt_pool_live_pages(r->pool), mv_pgt_root_pages(&r->s2.pgt) * (r->gsize >> 12));
	mv_s2_destroy(&r->s2);
	assert_int_equal(mv_pgt_pool_live_pages(r->pool), 0);
	mv_pgt_pool_free(r->pool);
	test_free(r->model);
	test_free(r);
}

static uint64_t the_seed;

static unsigned nops_env(unsigned def)
{
	const char *s = getenv("MV_RANDOM_OPS");

	return s ? (unsigned)strtoul(s, NULL, 0) : def;
}

static void test_random_4k_40(void **state)
{
	(void)state;
	run_geometry(40, 12, GiB, 2 * GiB, the_seed, nops_env(1500));
}

static void test_random_4k_48(void **state)
{
	(void)state;
	run_geometry(48, 12, (1ull << 47) - GiB, GiB, the_seed + 1, nops_env(1000));
}

static void test_random_16k(void **state)
{
	(void)state;
	run_geometry(40, 14, 4 * GiB, GiB, the_seed + 2, nops_env(1000));
}

static void test_random_64k(void **state)
{
	(void)state;
	run_geometry(46, 16, 1ull << 40, 4 * GiB, the_seed + 3, nops_env(1000));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_random_4k_40),
		cmocka_unit_test(test_random_4k_48),
		cmocka_unit_test(test_random_16k),
		cmocka_unit_test(test_random_64k),
	};

	the_seed = tu_seed(20261121);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
