/*
 * Concurrency of the x86 EPT (also run under ThreadSanitizer by `make
 * test`): four threads installing overlapping GPAs with shared walks (as
 * faults under mmu_lock held for reading) while a reader translates; a
 * lock-free fast path (compare-and-swap through mv_ept_leaf_ptep) racing
 * exclusive write-protect / test_clear_young and huge-page splits. The
 * results are checked after the threads joined: every installed page
 * translated (by the hand walk of ept_check.h) to its one host address,
 * the tables the threads linked counted exactly once, every table page
 * given back. Threads count failures; the main thread asserts (cmocka's
 * asserts are not for other threads).
 */
#include "testutil.h"

#include "ept_check.h"
#include "memvirt/soft_ept.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define MiB (1ull << 20)
#define GiB (1ull << 30)
#define HPA0 0x7f1240000000ull
#define RWX (MV_EPT_R | MV_EPT_W | MV_EPT_X)
#define NR_THREADS 4

/* Every thread maps a GPA to the same host page: HPA0 + gpa. */
static uint64_t hpa_of(uint64_t gpa)
{
	return HPA0 + gpa;
}

typedef struct t_ept {
	mv_pgt_pool *pool;
	mv_ept ept;
	uint64_t inveptes;              /* atomic */
} t_ept;

static void count_invept(void *arg, uint64_t gpa, uint64_t size)
{
	t_ept *t = arg;

	(void)gpa;
	(void)size;
	__atomic_add_fetch(&t->inveptes, 1, __ATOMIC_RELAXED);
}

static t_ept *t_new(bool ad)
{
	t_ept *t = test_calloc(1, sizeof(*t));

	assert_int_equal(mv_pgt_pool_new(NULL, &t->pool), 0);
	assert_int_equal(mv_ept_init(&t->ept, 4, ad, mv_pgt_pool_mm_ops(), t->pool, count_invept, t), 0);
	return t;
}

/* Page counts right, zap everything: only the root stays; destroy: nothing. */
static void t_free(t_ept *t)
{
	assert_true(eptc_count_tables(&t->ept) >= 0);
	assert_int_equal(mv_ept_zap(&t->ept, 0, 1ull << 48), MV_PGT_OK);
	assert_int_equal(mv_pgt_pool_live_pages(t->pool), 1);
	mv_ept_destroy(&t->ept);
	assert_int_equal(mv_pgt_pool_live_pages(t->pool), 0);
	mv_pgt_pool_free(t->pool);
	test_free(t);
}

/* ------------------------------------------------------------------ */
/* Shared installs on overlapping GPAs                                   */

/* Four 64 MiB windows, far enough apart to need their own PDPT / PD. */
#define WINDOW (64 * MiB)
static const uint64_t windows[] = { 0, 3 * GiB, 700ull * GiB, 200000ull * GiB };

/* Rounds start together on an empty EPT so that threads race to link the same tables. */
#define ROUNDS 20
#define OPS 1000

typedef struct install_arg {
	t_ept *t;
	pthread_barrier_t *start;
	uint64_t seed;
	unsigned tables;                /* tables this thread linked */
	unsigned ok, exists, again;
	unsigned bad;                   /* unexpected results */
	uint64_t *done;                 /* gpa | level of each OK install */
	unsigned nr_done;
} install_arg;

static void *install_thread(void *p)
{
	install_arg *a = p;
	uint64_t rng = a->seed;

	pthread_barrier_wait(a->start);
	for (unsigned i = 0; i < OPS; i++) {
		uint64_t w = windows[tu_rand_below(&rng, 4)];
		int level = tu_rand_below(&rng, 8) ? 3 : 2;
		uint64_t size = level == 3 ? 4096 : 2 * MiB;
		uint64_t gpa = w + tu_rand_below(&rng, WINDOW / size) * size;
		unsigned rwx = tu_rand_below(&rng, 2) ? RWX : MV_EPT_R | MV_EPT_X;
		mv_pte spte = mv_ept_leaf(hpa_of(gpa), rwx, level, true, true);
		unsigned created;
		mv_pgt_result r;

		do {
			r = mv_ept_install(&a->t->ept, gpa, level, spte, MV_PGT_WALK_SHARED, &created);
			a->tables += created;
			a->again += r == MV_PGT_AGAIN;
		} while (r == MV_PGT_AGAIN);
		if (r == MV_PGT_OK) {
			a->ok++;
			a->done[a->nr_done++] = gpa | (uint64_t)level;
		} else if (r == MV_PGT_EXISTS) {
			a->exists++;
		} else {
			a->bad++;
		}
	}
	return NULL;
}

typedef struct reader_arg {
	t_ept *t;
	uint64_t seed;
	int stop;                       /* atomic */
	unsigned reads, bad;
} reader_arg;

/* Whatever a lookup sees mid-race is nothing or the one right translation. */
static void *reader_thread(void *p)
{
	reader_arg *a = p;
	uint64_t rng = a->seed;

	while (!__atomic_load_n(&a->stop, __ATOMIC_ACQUIRE)) {
		uint64_t gpa = windows[tu_rand_below(&rng, 4)] + tu_rand_below(&rng, WINDOW);
		eptc_xlate x = eptc_translate(&a->t->ept, gpa);
		mv_pte spte;
		int level;

		if (x.present && x.hpa != hpa_of(gpa))
			a->bad++;
		if (mv_ept_get_leaf(&a->t->ept, gpa, &spte, &level) != MV_PGT_OK)
			a->bad++;
		else if (spte && (spte & MV_EPT_ADDR_MASK) !=
				 (hpa_of(gpa) & ~((1ull << eptc_shift(level)) - 1)))
			a->bad++;
		a->reads++;
	}
	return NULL;
}

/* One round: four installers and a reader, then the checks; the EPT is left empty. */
static void shared_round(t_ept *t, uint64_t seed, unsigned totals[4])
{
	install_arg args[NR_THREADS];
	reader_arg rd = { .t = t, .seed = seed ^ 0x5eed };
	pthread_t th[NR_THREADS], rth;
	pthread_barrier_t start;
	unsigned tables = 0;
	mv_ept_stats st;

	assert_int_equal(pthread_barrier_init(&start, NULL, NR_THREADS), 0);
	for (unsigned i = 0; i < NR_THREADS; i++) {
		args[i] = (install_arg){ .t = t, .start = &start, .seed = seed + i + 1 };
		args[i].done = test_calloc(OPS, sizeof(uint64_t));
		assert_int_equal(pthread_create(&th[i], NULL, install_thread, &args[i]), 0);
	}
	assert_int_equal(pthread_create(&rth, NULL, reader_thread, &rd), 0);
	for (unsigned i = 0; i < NR_THREADS; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	__atomic_store_n(&rd.stop, 1, __ATOMIC_RELEASE);
	assert_int_equal(pthread_join(rth, NULL), 0);
	pthread_barrier_destroy(&start);
	assert_int_equal(rd.bad, 0);

	for (unsigned i = 0; i < NR_THREADS; i++) {
		assert_int_equal(args[i].bad, 0);
		assert_int_equal(args[i].ok + args[i].exists, OPS);
		tables += args[i].tables;
		totals[0] += args[i].ok;
		totals[1] += args[i].exists;
		totals[2] += args[i].again;
		/* every page some thread installed is mapped (nothing zaps) to its host page */
		for (unsigned j = 0; j < args[i].nr_done; j++) {
			uint64_t gpa = args[i].done[j] & ~7ull;
			eptc_xlate x = eptc_translate(&t->ept, gpa);

			assert_true(x.present);
			assert_int_equal(x.hpa, hpa_of(gpa));
			assert_int_equal(x.level, (int)(args[i].done[j] & 7));
		}
		test_free(args[i].done);
	}
	totals[3] += tables;
	/* each table was linked by exactly one thread; the losers' tables were freed */
	mv_ept_get_stats(&t->ept, &st);
	assert_int_equal(st.tables, tables);
	assert_int_equal(eptc_count_tables(&t->ept), tables);
	assert_int_equal(mv_pgt_pool_live_pages(t->pool), 1 + tables);
	assert_int_equal(mv_ept_zap(&t->ept, 0, 1ull << 48), MV_PGT_OK);
	assert_int_equal(mv_pgt_pool_live_pages(t->pool), 1);
}

static void test_shared_installs(void **state)
{
	uint64_t seed = tu_seed(0xe97);
	t_ept *t = t_new(true);
	unsigned totals[4] = { 0 };

	(void)state;
	for (unsigned round = 0; round < ROUNDS; round++)
		shared_round(t, seed + round * NR_THREADS * 2, totals);
	printf("# %u ok, %u exists, %u again, %u tables linked\n", totals[0], totals[1], totals[2],
	       totals[3]);
	t_free(t);
}

/* ------------------------------------------------------------------ */
/* The lock-free fast path against exclusive operations                  */

#define FAST_PAGES 512

typedef struct fast_arg {
	t_ept *t;
	uint64_t seed;
	int stop;                       /* atomic */
	unsigned writes, bad;
} fast_arg;

/*
 * fast_page_fault: find the leaf, and when it is MMU-writable set W (and
 * A/D, as the CPU would) with one compare-and-swap; never anything else.
 */
static void *fast_thread(void *p)
{
	fast_arg *a = p;
	uint64_t rng = a->seed;

	while (!__atomic_load_n(&a->stop, __ATOMIC_ACQUIRE)) {
		uint64_t gpa = tu_rand_below(&rng, FAST_PAGES) * 4096;
		int level;
		mv_pte *ptep = mv_ept_leaf_ptep(&a->t->ept, gpa, &level);
		mv_pte old;

		if (!ptep || level != 3) {
			a->bad++;
			continue;
		}
		old = __atomic_load_n(ptep, __ATOMIC_ACQUIRE);
		if (!(old & MV_SPTE_MMU_WRITABLE) || (old & MV_EPT_W))
			continue;
		if (__atomic_compare_exchange_n(ptep, &old, old | MV_EPT_W | MV_EPT_A | MV_EPT_D, false,
						__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			a->writes++;
	}
	return NULL;
}

static void test_fast_path_vs_wrprotect_young(void **state)
{
	t_ept *t = t_new(true);
	fast_arg fa[2] = { { .t = t, .seed = tu_seed(0xfa57) }, { .t = t, .seed = 77 } };
	pthread_t th[2];
	unsigned rounds = 0;

	(void)state;
	for (uint64_t i = 0; i < FAST_PAGES; i++)
		assert_int_equal(mv_ept_install(&t->ept, i * 4096, 3,
						mv_ept_leaf(hpa_of(i * 4096), RWX, 3, true, true), 0, NULL),
				 MV_PGT_OK);
	for (unsigned i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, fast_thread, &fa[i]), 0);
	/* the "write lock holder": protect for dirty logging, age, again and again */
	for (rounds = 0; rounds < 300; rounds++) {
		mv_ept_wrprotect(&t->ept, 0, FAST_PAGES * 4096);
		mv_ept_test_clear_young(&t->ept, 0, FAST_PAGES * 4096, true);
	}
	for (unsigned i = 0; i < 2; i++) {
		__atomic_store_n(&fa[i].stop, 1, __ATOMIC_RELEASE);
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(fa[i].bad, 0);
	}
	printf("# %u fast-path writes over %u rounds\n", fa[0].writes + fa[1].writes, rounds);
	/* only W, A and D ever moved: the rest of every leaf is as installed */
	for (uint64_t i = 0; i < FAST_PAGES; i++) {
		mv_pte want = mv_ept_leaf(hpa_of(i * 4096), RWX, 3, true, true);
		mv_pte got = eptc_entry(&t->ept, i * 4096, 3);

		assert_int_equal(got & ~(MV_EPT_W | MV_EPT_A | MV_EPT_D), want & ~(MV_EPT_W | MV_EPT_A | MV_EPT_D));
	}
	t_free(t);
}

typedef struct huge_fast_arg {
	mv_pte *ptep;
	mv_pte expect;
	int go;                         /* atomic */
	bool wrote;
} huge_fast_arg;

/* One fast-path write to a write-protected 2 MiB page, racing its split. */
static void *huge_fast_thread(void *p)
{
	huge_fast_arg *a = p;
	mv_pte old = a->expect;

	while (!__atomic_load_n(&a->go, __ATOMIC_ACQUIRE))
		;
	a->wrote = __atomic_compare_exchange_n(a->ptep, &old, old | MV_EPT_W, false,
					       __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
	return NULL;
}

static void test_split_vs_fast_path(void **state)
{
	t_ept *t = t_new(true);
	/* a write-protected but MMU-writable 2 MiB page, as dirty logging leaves it */
	mv_pte huge = mv_ept_leaf(hpa_of(0), RWX, 2, true, true) & ~MV_EPT_W;
	unsigned wrote = 0;

	(void)state;
	for (unsigned round = 0; round < 200; round++) {
		huge_fast_arg a = { .expect = huge };
		pthread_t th;
		int level;

		assert_int_equal(mv_ept_install(&t->ept, 0, 2, huge, 0, NULL), MV_PGT_OK);
		a.ptep = mv_ept_leaf_ptep(&t->ept, 0, &level);
		assert_int_equal(level, 2);
		assert_int_equal(pthread_create(&th, NULL, huge_fast_thread, &a), 0);
		__atomic_store_n(&a.go, 1, __ATOMIC_RELEASE);
		assert_int_equal(mv_ept_split(&t->ept, 0, 2 * MiB), MV_PGT_OK);
		assert_int_equal(pthread_join(th, NULL), 0);
		/* a write that won before the swap is in all 512 pages; one after it failed */
		for (uint64_t i = 0; i < 512; i++) {
			mv_pte e = eptc_entry(&t->ept, i * 4096, 3);

			assert_int_equal(e, ((huge & ~MV_EPT_LARGE) + i * 4096) | (a.wrote ? MV_EPT_W : 0));
		}
		wrote += a.wrote;
		assert_int_equal(mv_ept_zap(&t->ept, 0, 2 * MiB), MV_PGT_OK);
	}
	printf("# the fast path won %u of 200 races with the split\n", wrote);
	t_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shared_installs),
		cmocka_unit_test(test_fast_path_vs_wrprotect_young),
		cmocka_unit_test(test_split_vs_fast_path),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
