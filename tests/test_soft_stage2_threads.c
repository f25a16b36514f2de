/*
 * Concurrency of the software stage-2 (also run under ThreadSanitizer by
 * `make test`): the table-page pool under four threads; four threads
 * mapping overlapping ranges with shared walks (MV_PGT_WALK_SHARED, as
 * faults under mmu_lock held for reading); shared maps, relax and mkyoung
 * racing test_clear_young's compare-and-swap and lock-free readers. The
 * results are checked after the threads joined: counts exact, every page
 * translated (by the hand-written walk of s2check.h) as some thread asked,
 * every table page given back. Threads count failures; the main thread
 * asserts (cmocka's asserts are not for other threads).
 */
#include "testutil.h"

#include "memvirt/soft_stage2.h"
#include "s2check.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#define MiB (1ull << 20)
#define GiB (1ull << 30)
#define ATTR_RW 0x00400000000007fcull   /* Normal WB, S2AP RW, SH inner, AF, XN */
#define PA0 0x7f1240000000ull
#define SPAN (64 * MiB)                 /* threads work in [GiB, GiB + SPAN) */
#define PAGES (SPAN / 4096)

typedef struct t_s2 {
	mv_pgt_pool *pool;
	mv_s2_pgt s2;
	uint64_t tlbis;                 /* atomic */
} t_s2;

static void count_tlbi(void *arg, uint64_t ipa, uint64_t size)
{
	t_s2 *t = arg;

	(void)ipa;
	(void)size;
	__atomic_add_fetch(&t->tlbis, 1, __ATOMIC_RELAXED);
}

/* 40-bit IPA, 4 KiB granule: root of 2 pages. */
static t_s2 *t_new(void)
{
	t_s2 *t = test_calloc(1, sizeof(*t));
	mv_s2_config cfg;

	assert_int_equal(mv_pgt_pool_new(NULL, &t->pool), 0);
	assert_int_equal(mv_s2_config_for_ipa(40, 12, &cfg), 0);
	assert_int_equal(mv_s2_init(&t->s2, &cfg, mv_pgt_pool_mm_ops(), t->pool, count_tlbi, t), 0);
	return t;
}

/* Unmap everything: only the root stays; destroy: nothing. */
static void t_free(t_s2 *t)
{
	assert_true(s2c_check_counts(&t->s2) >= 0);
	assert_int_equal(mv_s2_unmap(&t->s2, 0, 1ull << 40), MV_PGT_OK);
	assert_int_equal(mv_pgt_pool_live_pages(t->pool), 2);
	mv_s2_destroy(&t->s2);
	assert_int_equal(mv_pgt_pool_live_pages(t->pool), 0);
	mv_pgt_pool_free(t->pool);
	test_free(t);
}

/* ------------------------------------------------------------------ */
/* The pool                                                              */

typedef struct pool_arg {
	mv_pgt_pool *pool;
	uint64_t seed;
	unsigned bad;
} pool_arg;

static void *pool_thread(void *p)
{
	pool_arg *a = p;
	const mv_pgt_mm_ops *mm = mv_pgt_pool_mm_ops();
	uint8_t *pages[64] = { 0 };
	uint64_t rng = a->seed;

	for (int it = 0; it < 20000; it++) {
		unsigned i = (unsigned)tu_rand_below(&rng, 64);

		if (!pages[i]) {
			pages[i] = mm->zalloc_page(a->pool, 4096);
			if (!pages[i] || pages[i][4095]) {
				a->bad++;
				continue;
			}
			pages[i][0] = (uint8_t)i;
		} else if (tu_rand_below(&rng, 2)) {
			mm->get_page(a->pool, pages[i] + 100);
			a->bad += mm->page_count(a->pool, pages[i]) != 2;
			mm->put_page(a->pool, pages[i] + 200);
		} else {
			a->bad += pages[i][0] != i;
			mm->put_page(a->pool, pages[i]);
			pages[i] = NULL;
		}
	}
	for (int i = 0; i < 64; i++)
		if (pages[i])
			mm->put_page(a->pool, pages[i]);
	return NULL;
}

static void test_pool_threads(void **state)
{
	pthread_t th[4];
	pool_arg args[4];
	mv_pgt_pool *pool;
	uint64_t seed = tu_seed(0x9e11);

	(void)state;
	assert_int_equal(mv_pgt_pool_new(NULL, &pool), 0);
	for (int i = 0; i < 4; i++) {
		args[i] = (pool_arg){ pool, seed + (uint64_t)i * 7919, 0 };
		assert_int_equal(pthread_create(&th[i], NULL, pool_thread, &args[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(args[i].bad, 0);
	}
	assert_int_equal(mv_pgt_pool_live_pages(pool), 0);
	mv_pgt_pool_free(pool);
}

/* ------------------------------------------------------------------ */
/* Shared-walk maps on overlapping ranges                                */

typedef struct map_arg {
	t_s2 *t;
	uint64_t seed;
	uint8_t mapped[PAGES];
	unsigned again, bad;
} map_arg;

/* Map pa = PA0 + ipa over random ranges and block sizes, retrying after AGAIN. */
static void *map_thread(void *p)
{
	map_arg *a = p;
	uint64_t rng = a->seed;

	for (int it = 0; it < 400; it++) {
		uint64_t pages = 1 + tu_rand_below(&rng, tu_rand_below(&rng, 4) ? 16 : 1024);
		uint64_t first = tu_rand_below(&rng, PAGES - pages + 1);
		uint64_t ipa = GiB + first * 4096;
		int min_level = 1 + (int)tu_rand_below(&rng, 3);
		mv_pgt_result r;

		while ((r = mv_s2_map(&a->t->s2, ipa, pages * 4096, PA0 + ipa, ATTR_RW, min_level,
				      MV_PGT_WALK_SHARED)) == MV_PGT_AGAIN)
			a->again++;
		a->bad += r != MV_PGT_OK;
		memset(&a->mapped[first], 1, pages);
		if (tu_rand_below(&rng, 8) == 0)
			a->bad += mv_s2_relax_perms(&a->t->s2, ipa, MV_S2_PROT_R, MV_PGT_WALK_SHARED) !=
				  MV_PGT_OK;
	}
	return NULL;
}

static void test_shared_map_threads(void **state)
{
	uint64_t seed = tu_seed(0x5eed2);
	map_arg *args = test_calloc(4, sizeof(*args));
	t_s2 *t = t_new();
	pthread_t th[4];
	unsigned again = 0;

	(void)state;
	for (int i = 0; i < 4; i++) {
		args[i].t = t;
		args[i].seed = seed * 4 + (uint64_t)i + 1;
		assert_int_equal(pthread_create(&th[i], NULL, map_thread, &args[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(args[i].bad, 0);
		again += args[i].again;
	}
	printf("# 4 threads x 400 shared maps, %u retries after AGAIN\n", again);
	assert_true(s2c_check_counts(&t->s2) > 0);
	for (uint64_t pg = 0; pg < PAGES; pg++) {
		uint64_t ipa = GiB + pg * 4096, pa, attrs;
		int level;
		bool want = args[0].mapped[pg] | args[1].mapped[pg] | args[2].mapped[pg] | args[3].mapped[pg];

		assert_int_equal(s2c_translate(&t->s2, ipa, &pa, &attrs, &level), want);
		if (want) {
			assert_int_equal(pa, PA0 + ipa);
			assert_int_equal(attrs, ATTR_RW);
		}
	}
	/* Shared maps never break a valid entry, so never invalidate. */
	assert_int_equal(t->tlbis, 0);
	assert_int_equal(t->s2.nr_bbm, 0);
	t_free(t);
	test_free(args);
}

/* ------------------------------------------------------------------ */
/* Access-flag races: mkyoung / relax / map against test_clear_young     */

typedef struct young_arg {
	t_s2 *t;
	uint64_t seed;
	int role;                       /* 0, 1: fault-like; 2: ager; 3: reader */
	volatile int *stop;
	unsigned bad, young;
} young_arg;

static void fault_like(young_arg *a, uint64_t *rng)
{
	uint64_t ipa = GiB + tu_rand_below(rng, PAGES) * 4096;
	mv_pgt_result r;

	switch (tu_rand_below(rng, 3)) {
	case 0:
		do
			r = mv_s2_map(&a->t->s2, ipa, 4096, PA0 + ipa, ATTR_RW & ~MV_S2_AF, 3,
				      MV_PGT_WALK_SHARED);
		while (r == MV_PGT_AGAIN);
		break;
	case 1:
		r = mv_s2_mkyoung(&a->t->s2, ipa, NULL, MV_PGT_WALK_SHARED);
		break;
	default:
		r = mv_s2_relax_perms(&a->t->s2, ipa, MV_S2_PROT_W, MV_PGT_WALK_SHARED);
		break;
	}
	/* EXISTS: a page asked inside a block whose AF differs (shared walks never split). */
	a->bad += r != MV_PGT_OK && r != MV_PGT_NOENT && r != MV_PGT_AGAIN && r != MV_PGT_EXISTS;
}

/* A reader sees either nothing or the right output with the right attributes but AF. */
static void read_one(young_arg *a, uint64_t *rng)
{
	uint64_t ipa = GiB + tu_rand_below(rng, PAGES) * 4096, size;
	mv_pte pte, type;
	int level;

	if (mv_s2_get_leaf(&a->t->s2, ipa, &pte, &level) != MV_PGT_OK) {
		a->bad++;
		return;
	}
	if (!pte)
		return;
	size = mv_pgt_level_size(&a->t->s2.pgt, level);
	type = level == 3 ? 3 : 1;
	a->bad += mv_s2_pte_oa(pte, 12) != ((PA0 + ipa) & ~(size - 1));
	a->bad += (pte & ~MV_S2_OA_MASK(12) & ~MV_S2_AF) != ((ATTR_RW & ~MV_S2_AF) | type);
}

static void *young_thread(void *p)
{
	young_arg *a = p;
	uint64_t rng = a->seed;

	while (!__atomic_load_n(a->stop, __ATOMIC_ACQUIRE)) {
		if (a->role < 2)
			fault_like(a, &rng);
		else if (a->role == 2)
			__atomic_add_fetch(&a->young, mv_s2_test_clear_young(&a->t->s2, GiB, SPAN, true),
					   __ATOMIC_RELAXED);
		else
			read_one(a, &rng);
	}
	return NULL;
}

static void test_young_races(void **state)
{
	uint64_t seed = tu_seed(0x70a6);
	young_arg args[4];
	pthread_t th[4];
	volatile int stop = 0;
	t_s2 *t = t_new();

	(void)state;
	/* Half the span as 2 MiB blocks first, so blocks age too. */
	assert_int_equal(mv_s2_map(&t->s2, GiB, SPAN / 2, PA0 + GiB, ATTR_RW & ~MV_S2_AF, 2, 0), MV_PGT_OK);
	for (int i = 0; i < 4; i++) {
		args[i] = (young_arg){ t, seed * 4 + (uint64_t)i, i, &stop, 0, 0 };
		assert_int_equal(pthread_create(&th[i], NULL, young_thread, &args[i]), 0);
	}
	/* Run until the ager has seen young leaves a few times (no timing asserted). */
	while (__atomic_load_n(&args[2].young, __ATOMIC_RELAXED) < 20)
		sched_yield();
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(args[i].bad, 0);
	}
	printf("# ager saw young leaves %u times\n", args[2].young);
	/* Whatever is mapped: right output, RW, AF either way. */
	for (uint64_t pg = 0; pg < PAGES; pg++) {
		uint64_t ipa = GiB + pg * 4096, pa, attrs;
		int level;

		if (!s2c_translate(&t->s2, ipa, &pa, &attrs, &level))
			continue;
		assert_int_equal(pa, PA0 + ipa);
		assert_int_equal(attrs & ~MV_S2_AF, ATTR_RW & ~MV_S2_AF);
	}
	assert_true(t->tlbis > 0);
	t_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pool_threads),
		cmocka_unit_test(test_shared_map_threads),
		cmocka_unit_test(test_young_races),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
