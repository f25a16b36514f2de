/*
 * The generic page-table walker (src/soft/pgtable.c) and the host
 * table-page pool (src/soft/pgtable_pool.c): geometry for the three
 * granules and start levels -1..3, visit order and ctx fields, re-reads
 * after LEAF and TABLE_PRE visits, concatenated roots, early ends
 * (visitor results, RANGE, FAULT), compare-and-swap of shared walks, and
 * the pool's alignment, counts and failure injection (its thread safety:
 * test_soft_stage2_threads.c).
 */
#include "testutil.h"

#include "memvirt/soft_pgtable.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define KiB (1ull << 10)
#define MiB (1ull << 20)
#define GiB (1ull << 30)

/* ------------------------------------------------------------------ */
/* A toy descriptor format: bit 0 valid, bits[1:0] = 0b11 table, PA [47:12] */

#define TOY_VALID 1ull
#define TOY_TABLE 3ull
#define TOY_PA(pte) ((pte) & 0x0000fffffffff000ull)

static bool toy_is_table(mv_pte pte, int level)
{
	(void)level;
	return (pte & 3) == TOY_TABLE;
}

static bool toy_is_valid(mv_pte pte)
{
	return pte & TOY_VALID;
}

static uint64_t toy_table_pa(mv_pte pte)
{
	return TOY_PA(pte);
}

static const mv_pgt_format toy_fmt = { "toy", toy_is_table, toy_is_valid, toy_table_pa };

typedef struct t_pgt {
	tu_failing_alloc fa;
	mv_pgt_pool *pool;
	mv_pgt pgt;
} t_pgt;

static void t_init(t_pgt *t, unsigned granule_shift, unsigned ia_bits, int start_level)
{
	memset(t, 0, sizeof(*t));
	tu_failing_alloc_init(&t->fa, 0, false);
	assert_int_equal(mv_pgt_pool_new(&t->fa.alloc, &t->pool), 0);
	t->pgt = (mv_pgt){
		.fmt = &toy_fmt, .mm_ops = mv_pgt_pool_mm_ops(), .mm_arg = t->pool,
		.ia_bits = ia_bits, .granule_shift = granule_shift, .start_level = start_level,
		.last_level = 3,
	};
	assert_int_equal(mv_pgt_alloc_root(&t->pgt), 0);
}

static void t_fini(t_pgt *t)
{
	mv_pgt_destroy(&t->pgt);
	assert_int_equal(t->pgt.root_pa, 0);
	assert_int_equal(mv_pgt_pool_live_pages(t->pool), 0);
	mv_pgt_pool_free(t->pool);
}

static mv_pte *va_of(uint64_t pa)
{
	return (mv_pte *)(uintptr_t)pa;
}

/* Link a new zeroed table into *ptep (counted as the walker's users do). */
static mv_pte *link_table(t_pgt *t, mv_pte *ptep)
{
	mv_pte *table = t->pgt.mm_ops->zalloc_page(t->pool, (size_t)1 << t->pgt.granule_shift);

	assert_non_null(table);
	*ptep = (uint64_t)(uintptr_t)table | TOY_TABLE;
	t->pgt.mm_ops->get_page(t->pool, ptep);
	return table;
}

static void set_leaf(t_pgt *t, mv_pte *ptep, mv_pte v)
{
	*ptep = v;
	t->pgt.mm_ops->get_page(t->pool, ptep);
}

/*
 * A tiny map walker (as a format's map would be): at @leaf_level install
 * ctx->arg's value; above it, link a table into an invalid entry; the
 * walker's re-read then descends.
 */
typedef struct toy_map {
	t_pgt *t;
	int leaf_level;
	mv_pte value;
} toy_map;

static mv_pgt_result toy_map_visitor(const mv_pgt_ctx *ctx, mv_pgt_visit visit)
{
	toy_map *m = ctx->arg;

	(void)visit;
	if (ctx->level == m->leaf_level) {
		if (!ctx->old)
			m->t->pgt.mm_ops->get_page(m->t->pool, ctx->ptep);
		assert_true(mv_pgt_ctx_try_set(ctx, m->value));
		return MV_PGT_OK;
	}
	if (ctx->old)
		return MV_PGT_EXISTS;
	link_table(m->t, ctx->ptep);
	return MV_PGT_OK;
}

static void toy_map_at(t_pgt *t, uint64_t addr, int level, mv_pte value)
{
	toy_map m = { t, level, value };
	mv_pgt_walker w = { toy_map_visitor, &m, MV_PGT_VISIT_LEAF };

	assert_int_equal(mv_pgt_walk(&t->pgt, addr, 1, &w), MV_PGT_OK);
}

/* ------------------------------------------------------------------ */
/* Geometry                                                              */

static void test_geometry(void **state)
{
	static const struct {
		unsigned g, ia;
		int start;
		unsigned shift_start;
		uint64_t entries, root_pages, size2;
	} cases[] = {
		{ 12, 48, 0, 39, 512, 1, 2 * MiB },
		{ 12, 40, 1, 30, 1024, 2, 2 * MiB },
		{ 12, 32, 2, 21, 2048, 4, 2 * MiB },
		{ 12, 52, -1, 48, 16, 1, 2 * MiB },
		{ 12, 57, -1, 48, 512, 1, 2 * MiB },     /* 5-level EPT */
		{ 12, 34, 2, 21, 8192, 16, 2 * MiB },
		{ 14, 48, 1, 36, 4096, 2, 32 * MiB },
		{ 14, 48, 0, 47, 2, 1, 32 * MiB },
		{ 14, 40, 2, 25, 32768, 16, 32 * MiB },
		{ 16, 48, 1, 42, 64, 1, 512 * MiB },
		{ 16, 46, 2, 29, 131072, 16, 512 * MiB },
		{ 16, 36, 3, 16, 1048576, 128, 512 * MiB },   /* geometry only: too many pages */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		mv_pgt p = { .granule_shift = cases[i].g, .ia_bits = cases[i].ia,
			     .start_level = cases[i].start, .last_level = 3 };

		assert_int_equal(mv_pgt_level_shift(&p, cases[i].start), cases[i].shift_start);
		assert_int_equal(mv_pgt_level_entries(&p, cases[i].start), cases[i].entries);
		assert_int_equal(mv_pgt_root_pages(&p), cases[i].root_pages);
		assert_int_equal(mv_pgt_level_size(&p, 2), cases[i].size2);
		assert_int_equal(mv_pgt_level_size(&p, 3), 1ull << cases[i].g);
		if (cases[i].start < 3)
			assert_int_equal(mv_pgt_level_entries(&p, 3), 1ull << (cases[i].g - 3));
	}
}

/* A geometry the walker cannot serve is refused, never walked. */
static void test_insane_geometry(void **state)
{
	static const struct { unsigned g, ia; int start; } bad[] = {
		{ 12, 36, 3 },     /* 24 bits at level 3: 2^15 pages */
		{ 12, 21, 2 },     /* start level resolves no bit */
		{ 13, 40, 1 },     /* no such granule */
		{ 12, 40, -2 },
		{ 16, 52, -1 },    /* 64 KiB level -1 covers 2^68 */
	};
	t_pgt t;
	mv_pgt_walker w = { NULL, NULL, 0 };

	(void)state;
	t_init(&t, 12, 40, 1);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		mv_pgt p = t.pgt;

		p.granule_shift = bad[i].g;
		p.ia_bits = bad[i].ia;
		p.start_level = bad[i].start;
		assert_int_equal(mv_pgt_walk(&p, 0, 4096, &w), MV_PGT_RANGE);
		assert_int_equal(mv_pgt_alloc_root(&p), -EINVAL);
	}
	t_fini(&t);
}

/* ------------------------------------------------------------------ */
/* Visits                                                                */

typedef struct visit_rec {
	mv_pgt_visit visit;
	int level;
	uint64_t addr, start, end;
	mv_pte old;
} visit_rec;

typedef struct recorder {
	visit_rec v[1200];
	unsigned n;
	unsigned stop_at;          /* return ->result at this visit number (1-based) */
	mv_pgt_result result;
} recorder;

static mv_pgt_result record_visitor(const mv_pgt_ctx *ctx, mv_pgt_visit visit)
{
	recorder *r = ctx->arg;

	assert_true(r->n < 1200);
	r->v[r->n] = (visit_rec){ visit, ctx->level, ctx->addr, ctx->start, ctx->end, ctx->old };
	assert_true(*ctx->ptep == ctx->old);
	r->n++;
	return r->n == r->stop_at ? r->result : MV_PGT_OK;
}

/* 40-bit, 4 KiB, start level 1: root entry 513 lives in the second root page. */
#define BASE (513 * GiB)

static void build_sample(t_pgt *t, mv_pte **l2_out, mv_pte **l3_out)
{
	mv_pte *root = va_of(t->pgt.root_pa);
	mv_pte *l2 = link_table(t, &root[513]);
	mv_pte *l3 = link_table(t, &l2[0]);

	set_leaf(t, &l3[0], 0xabc000 | 3);
	set_leaf(t, &l3[1], 0xabd000 | 3);
	set_leaf(t, &l2[1], 0x40000000 | 1);      /* a 2 MiB block */
	if (l2_out)
		*l2_out = l2;
	if (l3_out)
		*l3_out = l3;
}

static void test_visit_order(void **state)
{
	static recorder r;
	mv_pgt_walker w = { record_visitor, &r,
			    MV_PGT_VISIT_LEAF | MV_PGT_VISIT_TABLE_PRE | MV_PGT_VISIT_TABLE_POST };
	t_pgt t;

	(void)state;
	t_init(&t, 12, 40, 1);
	build_sample(&t, NULL, NULL);
	memset(&r, 0, sizeof(r));
	assert_int_equal(mv_pgt_walk(&t.pgt, BASE, 4 * MiB, &w), MV_PGT_OK);
	assert_int_equal(r.n, 517);
	assert_int_equal(r.v[0].visit, MV_PGT_VISIT_TABLE_PRE);
	assert_int_equal(r.v[0].level, 1);
	assert_int_equal(r.v[0].addr, BASE);
	assert_int_equal(r.v[1].visit, MV_PGT_VISIT_TABLE_PRE);
	assert_int_equal(r.v[1].level, 2);
	for (unsigned i = 0; i < 512; i++) {
		assert_int_equal(r.v[2 + i].visit, MV_PGT_VISIT_LEAF);   /* invalid ones too */
		assert_int_equal(r.v[2 + i].level, 3);
		assert_int_equal(r.v[2 + i].addr, BASE + i * 4 * KiB);
		assert_int_equal(r.v[2 + i].start, BASE);
		assert_int_equal(r.v[2 + i].end, BASE + 4 * MiB);
	}
	assert_int_equal(r.v[2].old, 0xabc000 | 3);
	assert_int_equal(r.v[4].old, 0);
	assert_int_equal(r.v[514].visit, MV_PGT_VISIT_TABLE_POST);
	assert_int_equal(r.v[514].level, 2);
	assert_int_equal(r.v[514].addr, BASE);
	assert_int_equal(r.v[515].visit, MV_PGT_VISIT_LEAF);
	assert_int_equal(r.v[515].level, 2);
	assert_int_equal(r.v[515].addr, BASE + 2 * MiB);
	assert_int_equal(r.v[515].old, 0x40000000 | 1);
	assert_int_equal(r.v[516].visit, MV_PGT_VISIT_TABLE_POST);
	assert_int_equal(r.v[516].level, 1);

	/* An unaligned range is widened to granules; ctx->addr starts there. */
	memset(&r, 0, sizeof(r));
	w.flags = MV_PGT_VISIT_LEAF;
	assert_int_equal(mv_pgt_walk(&t.pgt, BASE + 0x1234, 0x2000, &w), MV_PGT_OK);
	assert_int_equal(r.n, 3);
	assert_int_equal(r.v[0].addr, BASE + 0x1000);
	assert_int_equal(r.v[0].start, BASE + 0x1000);
	assert_int_equal(r.v[0].end, BASE + 0x4000);
	assert_int_equal(r.v[2].addr, BASE + 0x3000);

	/* Unwanted visits are not made; a range inside one block gives one visit. */
	memset(&r, 0, sizeof(r));
	w.flags = MV_PGT_VISIT_TABLE_POST;
	assert_int_equal(mv_pgt_walk(&t.pgt, BASE, 4 * MiB, &w), MV_PGT_OK);
	assert_int_equal(r.n, 2);
	memset(&r, 0, sizeof(r));
	w.flags = MV_PGT_VISIT_LEAF;
	assert_int_equal(mv_pgt_walk(&t.pgt, BASE + 2 * MiB + 8 * KiB, 8 * KiB, &w), MV_PGT_OK);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.v[0].addr, BASE + 2 * MiB + 8 * KiB);
	t_fini(&t);
}

/* Walk across the boundary of the two concatenated root tables. */
static void test_concatenated_root(void **state)
{
	static recorder r;
	mv_pgt_walker w = { record_visitor, &r, MV_PGT_VISIT_LEAF };
	t_pgt t;
	mv_pte *root;

	(void)state;
	t_init(&t, 12, 40, 1);
	root = va_of(t.pgt.root_pa);
	set_leaf(&t, &root[511], 0x1000000000ull | 1);
	set_leaf(&t, &root[512], 0x2000000000ull | 1);
	memset(&r, 0, sizeof(r));
	assert_int_equal(mv_pgt_walk(&t.pgt, 510 * GiB, 4 * GiB, &w), MV_PGT_OK);
	assert_int_equal(r.n, 4);
	assert_int_equal(r.v[1].old, 0x1000000000ull | 1);
	assert_int_equal(r.v[2].old, 0x2000000000ull | 1);
	assert_int_equal(r.v[2].addr, 512 * GiB);
	/* The very last entry of the space. */
	memset(&r, 0, sizeof(r));
	assert_int_equal(mv_pgt_walk(&t.pgt, (1ull << 40) - 4096, 4096, &w), MV_PGT_OK);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.v[0].level, 1);
	assert_int_equal(r.v[0].addr, (1ull << 40) - 4096);
	t_fini(&t);
}

/* A LEAF visitor that links a table makes the walker descend into it. */
static void test_reread_after_leaf(void **state)
{
	t_pgt t;
	mv_pte pte;
	int level;

	(void)state;
	t_init(&t, 12, 40, 1);
	toy_map_at(&t, BASE + 5 * 4 * KiB, 3, 0x777000 | 3);
	assert_int_equal(mv_pgt_get_leaf(&t.pgt, BASE + 5 * 4 * KiB + 12, &pte, &level), MV_PGT_OK);
	assert_int_equal(pte, 0x777000 | 3);
	assert_int_equal(level, 3);
	assert_int_equal(mv_pgt_pool_live_pages(t.pool), 4);
	t_fini(&t);
}

/* A TABLE_PRE visitor that replaces the table stops the descent (no TABLE_POST). */
typedef struct replace_arg {
	t_pgt *t;
	mv_pte *detached;
	unsigned posts, leaves3;
} replace_arg;

static mv_pgt_result replace_visitor(const mv_pgt_ctx *ctx, mv_pgt_visit visit)
{
	replace_arg *a = ctx->arg;

	if (visit == MV_PGT_VISIT_TABLE_POST) {
		a->posts++;
	} else if (visit == MV_PGT_VISIT_LEAF) {
		a->leaves3 += ctx->level == 3;
	} else if (ctx->level == 2) {
		a->detached = mv_pgt_ctx_table(ctx, ctx->old);
		assert_true(mv_pgt_ctx_try_set(ctx, 0x80000000ull | 1));
	}
	return MV_PGT_OK;
}

static void test_reread_after_table_pre(void **state)
{
	t_pgt t;
	replace_arg a = { &t, NULL, 0, 0 };
	mv_pgt_walker w = { replace_visitor, &a,
			    MV_PGT_VISIT_LEAF | MV_PGT_VISIT_TABLE_PRE | MV_PGT_VISIT_TABLE_POST };
	mv_pte *l3;

	(void)state;
	t_init(&t, 12, 40, 1);
	build_sample(&t, NULL, &l3);
	assert_int_equal(mv_pgt_pool_live_pages(t.pool), 4);
	assert_int_equal(mv_pgt_walk(&t.pgt, BASE, 2 * MiB, &w), MV_PGT_OK);
	assert_ptr_equal(a.detached, l3);
	assert_int_equal(a.leaves3, 0);
	assert_int_equal(a.posts, 1);                 /* level 1 only */
	/* The detached table goes with its two counted entries. */
	assert_int_equal(t.pgt.mm_ops->page_count(t.pool, l3), 3);
	mv_pgt_free_table(&t.pgt, l3, 3);
	assert_int_equal(mv_pgt_pool_live_pages(t.pool), 3);
	t_fini(&t);
}

static void test_early_end(void **state)
{
	static recorder r;
	mv_pgt_walker w = { record_visitor, &r, MV_PGT_VISIT_LEAF };
	t_pgt t;

	(void)state;
	t_init(&t, 12, 40, 1);
	build_sample(&t, NULL, NULL);
	memset(&r, 0, sizeof(r));
	r.stop_at = 3;
	r.result = MV_PGT_STOP;
	assert_int_equal(mv_pgt_walk(&t.pgt, BASE, 2 * MiB, &w), MV_PGT_STOP);
	assert_int_equal(r.n, 3);
	memset(&r, 0, sizeof(r));
	r.stop_at = 1;
	r.result = MV_PGT_AGAIN;
	assert_int_equal(mv_pgt_walk(&t.pgt, BASE, 2 * MiB, &w), MV_PGT_AGAIN);
	assert_int_equal(r.n, 1);

	/* Ranges beyond ia_bits, overflowing, or empty. */
	memset(&r, 0, sizeof(r));
	assert_int_equal(mv_pgt_walk(&t.pgt, (1ull << 40) - 4096, 8192, &w), MV_PGT_RANGE);
	assert_int_equal(mv_pgt_walk(&t.pgt, 1ull << 40, 1, &w), MV_PGT_RANGE);
	assert_int_equal(mv_pgt_walk(&t.pgt, ~0ull - 10, 100, &w), MV_PGT_RANGE);
	assert_int_equal(mv_pgt_walk(&t.pgt, BASE, 0, &w), MV_PGT_OK);
	assert_int_equal(r.n, 0);
	assert_int_equal(mv_pgt_get_leaf(&t.pgt, 1ull << 40, NULL, NULL), MV_PGT_RANGE);
	t_fini(&t);
}

/* mm_ops whose phys_to_virt cannot reach one table (a guest stage-1 table outside RAM). */
typedef struct hole_arg {
	mv_pgt_pool *pool;
	uint64_t hole;
} hole_arg;

static hole_arg the_hole;

static void *hole_phys_to_virt(void *arg, uint64_t pa)
{
	hole_arg *h = arg;

	return pa == h->hole ? NULL : mv_pgt_pool_mm_ops()->phys_to_virt(h->pool, pa);
}

static void test_unreachable_table(void **state)
{
	static recorder r;
	mv_pgt_walker w = { record_visitor, &r, MV_PGT_VISIT_LEAF | MV_PGT_VISIT_TABLE_POST };
	mv_pgt_mm_ops ops = *mv_pgt_pool_mm_ops();
	t_pgt t;
	mv_pte *l3, pte = 1;
	int level;

	(void)state;
	t_init(&t, 12, 40, 1);
	build_sample(&t, NULL, &l3);
	ops.phys_to_virt = hole_phys_to_virt;
	the_hole = (hole_arg){ t.pool, (uint64_t)(uintptr_t)l3 };
	{
		mv_pgt p = t.pgt;

		p.mm_ops = &ops;
		p.mm_arg = &the_hole;
		memset(&r, 0, sizeof(r));
		assert_int_equal(mv_pgt_walk(&p, BASE, 4 * MiB, &w), MV_PGT_FAULT);
		assert_int_equal(r.n, 0);
		assert_int_equal(mv_pgt_get_leaf(&p, BASE, &pte, &level), MV_PGT_FAULT);
		assert_int_equal(mv_pgt_get_leaf(&p, BASE + 2 * MiB, &pte, &level), MV_PGT_OK);
		assert_int_equal(pte, 0x40000000 | 1);
		/* An unreachable root. */
		the_hole.hole = p.root_pa;
		assert_int_equal(mv_pgt_walk(&p, BASE, 4096, &w), MV_PGT_FAULT);
	}
	t_fini(&t);
}

/* Shared walks replace entries by compare-and-swap: a changed entry is not overwritten. */
typedef struct cas_arg {
	bool first_ok, second_ok;
} cas_arg;

static mv_pgt_result cas_visitor(const mv_pgt_ctx *ctx, mv_pgt_visit visit)
{
	cas_arg *a = ctx->arg;

	(void)visit;
	/* Another CPU changes the entry after our visit started. */
	__atomic_store_n(ctx->ptep, ctx->old | 0x100, __ATOMIC_RELAXED);
	a->first_ok = mv_pgt_ctx_try_set(ctx, 0x999000 | 3);
	{
		mv_pgt_ctx fresh = *ctx;

		fresh.old = mv_pgt_read(ctx->ptep);
		a->second_ok = mv_pgt_ctx_try_set(&fresh, 0x999000 | 3);
	}
	return MV_PGT_STOP;
}

static void test_try_set(void **state)
{
	t_pgt t;
	cas_arg a;
	mv_pgt_walker w = { cas_visitor, &a, MV_PGT_VISIT_LEAF | MV_PGT_WALK_SHARED };
	mv_pte *l3;

	(void)state;
	t_init(&t, 12, 40, 1);
	build_sample(&t, NULL, &l3);
	assert_int_equal(mv_pgt_walk(&t.pgt, BASE, 4096, &w), MV_PGT_STOP);
	assert_false(a.first_ok);
	assert_true(a.second_ok);
	assert_int_equal(l3[0], 0x999000 | 3);
	/* Exclusive: a plain store that always succeeds. */
	w.flags = MV_PGT_VISIT_LEAF;
	assert_int_equal(mv_pgt_walk(&t.pgt, BASE, 4096, &w), MV_PGT_STOP);
	assert_true(a.first_ok);
	assert_int_equal(l3[0], 0x999000 | 3);
	t_fini(&t);
}

static void test_get_leaf(void **state)
{
	t_pgt t;
	mv_pte pte;
	int level;

	(void)state;
	t_init(&t, 12, 40, 1);
	build_sample(&t, NULL, NULL);
	assert_int_equal(mv_pgt_get_leaf(&t.pgt, BASE + 4096, &pte, &level), MV_PGT_OK);
	assert_int_equal(pte, 0xabd000 | 3);
	assert_int_equal(level, 3);
	assert_int_equal(mv_pgt_get_leaf(&t.pgt, BASE + 3 * MiB, &pte, &level), MV_PGT_OK);
	assert_int_equal(pte, 0x40000000 | 1);
	assert_int_equal(level, 2);
	assert_int_equal(mv_pgt_get_leaf(&t.pgt, BASE + 8192, &pte, &level), MV_PGT_OK);
	assert_int_equal(pte, 0);
	assert_int_equal(level, 3);
	assert_int_equal(mv_pgt_get_leaf(&t.pgt, 7 * GiB, &pte, &level), MV_PGT_OK);
	assert_int_equal(pte, 0);
	assert_int_equal(level, 1);
	t_fini(&t);
}

/*
 * Every granule and start level: map pages at the edges of the space and
 * in the middle, find them with get_leaf and with independent arithmetic,
 * and free everything.
 */
static void test_granules(void **state)
{
	static const struct { unsigned g, ia; int start; } geo[] = {
		{ 12, 48, 0 }, { 12, 40, 1 }, { 12, 32, 2 }, { 12, 52, -1 }, { 12, 25, 3 },
		{ 14, 48, 1 }, { 14, 48, 0 }, { 14, 40, 2 }, { 16, 48, 1 }, { 16, 46, 2 },
		{ 16, 42, 2 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(geo) / sizeof(geo[0]); i++) {
		uint64_t gsize = 1ull << geo[i].g, top = 1ull << geo[i].ia;
		uint64_t addrs[3] = { 0, (top / 3) & ~(gsize - 1), top - gsize };
		size_t units = 0;
		t_pgt t;

		t_init(&t, geo[i].g, geo[i].ia, geo[i].start);
		units = mv_pgt_pool_live_pages(t.pool);
		assert_int_equal(units, mv_pgt_root_pages(&t.pgt) * (gsize / 4096));
		for (int k = 0; k < 3; k++)
			toy_map_at(&t, addrs[k], 3, (0x5000000ull + k * gsize) | 3);
		for (int k = 0; k < 3; k++) {
			mv_pte pte, *table = va_of(t.pgt.root_pa);
			int level;

			assert_int_equal(mv_pgt_get_leaf(&t.pgt, addrs[k] + gsize - 1, &pte, &level),
					 MV_PGT_OK);
			assert_int_equal(pte, (0x5000000ull + k * gsize) | 3);
			assert_int_equal(level, 3);
			/* The same entry by hand. */
			for (int l = geo[i].start; l <= 3; l++) {
				unsigned shift = geo[i].g + (geo[i].g - 3) * (unsigned)(3 - l);
				unsigned bits = l == geo[i].start ? geo[i].ia - shift : geo[i].g - 3;
				mv_pte e = table[(addrs[k] >> shift) & ((1ull << bits) - 1)];

				if (l == 3)
					assert_int_equal(e, pte);
				else
					table = va_of(TOY_PA(e));
			}
		}
		if (geo[i].start < 3)
			assert_true(mv_pgt_pool_live_pages(t.pool) > units);
		t_fini(&t);
	}
}

/* ------------------------------------------------------------------ */
/* The pool                                                              */

static void test_pool_pages(void **state)
{
	const mv_pgt_mm_ops *mm = mv_pgt_pool_mm_ops();
	tu_failing_alloc fa;
	mv_pgt_pool *pool;
	uint8_t *p4, *p16, *p64, *e8, *e12, *e1m;

	(void)state;
	tu_failing_alloc_init(&fa, 0, false);
	assert_int_equal(mv_pgt_pool_new(&fa.alloc, &pool), 0);
	p4 = mm->zalloc_page(pool, 4096);
	p16 = mm->zalloc_page(pool, 16384);
	p64 = mm->zalloc_page(pool, 65536);
	e8 = mm->zalloc_pages_exact(pool, 8192);
	e12 = mm->zalloc_pages_exact(pool, 12288);
	e1m = mm->zalloc_pages_exact(pool, MiB);
	assert_true(p4 && p16 && p64 && e8 && e12 && e1m);
	assert_int_equal((uintptr_t)p4 & 4095, 0);
	assert_int_equal((uintptr_t)p16 & 16383, 0);
	assert_int_equal((uintptr_t)p64 & 65535, 0);
	assert_int_equal((uintptr_t)e8 & 8191, 0);
	assert_int_equal((uintptr_t)e12 & 4095, 0);
	assert_int_equal((uintptr_t)e1m & (MiB - 1), 0);
	for (size_t i = 0; i < MiB; i++)
		assert_int_equal(e1m[i], 0);
	assert_int_equal(mv_pgt_pool_live_pages(pool), 1 + 4 + 16 + 2 + 3 + 256);
	assert_int_equal(mm->virt_to_phys(pool, p16), (uint64_t)(uintptr_t)p16);
	assert_ptr_equal(mm->phys_to_virt(pool, (uint64_t)(uintptr_t)p16), p16);

	/* Counts through any address in the block. */
	assert_int_equal(mm->page_count(pool, p64 + 40000), 1);
	mm->get_page(pool, p64 + 8);
	mm->get_page(pool, p64 + 65535);
	assert_int_equal(mm->page_count(pool, p64), 3);
	mm->put_page(pool, p64 + 100);
	mm->put_page(pool, p64 + 60000);
	assert_int_equal(mm->page_count(pool, p64), 1);
	mm->put_page(pool, p64);
	assert_int_equal(mm->page_count(pool, p64), 0);
	assert_int_equal(mv_pgt_pool_live_pages(pool), 1 + 4 + 2 + 3 + 256);

	/* free_pages_exact whatever the count. */
	mm->get_page(pool, e1m + 5000);
	mm->free_pages_exact(pool, e1m, MiB);
	assert_int_equal(mv_pgt_pool_live_pages(pool), 1 + 4 + 2 + 3);
	mm->free_pages_exact(pool, e8, 8192);
	mm->put_page(pool, p4);
	assert_int_equal(mv_pgt_pool_live_pages(pool), 4 + 3);

	/* Bad sizes are refused. */
	assert_null(mm->zalloc_page(pool, 100));
	assert_null(mm->zalloc_page(pool, 12288));
	assert_null(mm->zalloc_pages_exact(pool, 5000));
	/* The rest goes with the pool (ASan checks the leak). */
	mv_pgt_pool_free(pool);
	mv_pgt_pool_free(NULL);
}

/* Every allocation of the pool fails once in turn: NULL, nothing leaked, counts exact. */
static void test_pool_alloc_failures(void **state)
{
	const mv_pgt_mm_ops *mm = mv_pgt_pool_mm_ops();

	(void)state;
	for (unsigned long fail = 1;; fail++) {
		tu_failing_alloc fa;
		mv_pgt_pool *pool;
		void *pages[40];
		unsigned ok = 0, failed = 0;

		tu_failing_alloc_init(&fa, fail, false);
		if (mv_pgt_pool_new(&fa.alloc, &pool)) {
			assert_int_equal(fail, 1);
			continue;
		}
		for (int i = 0; i < 40; i++) {
			pages[i] = mm->zalloc_page(pool, 4096);
			ok += pages[i] != NULL;
			failed += pages[i] == NULL;
		}
		assert_int_equal(mv_pgt_pool_live_pages(pool), ok);
		for (int i = 0; i < 40; i++)
			if (pages[i])
				mm->put_page(pool, pages[i]);
		assert_int_equal(mv_pgt_pool_live_pages(pool), 0);
		mv_pgt_pool_free(pool);
		if (!failed)
			break;
		assert_int_equal(failed, 1);
	}
}

static void test_result_names(void **state)
{
	(void)state;
	assert_string_equal(mv_pgt_result_name(MV_PGT_OK), "ok");
	assert_string_equal(mv_pgt_result_name(MV_PGT_AGAIN), "again");
	assert_string_equal(mv_pgt_result_name(MV_PGT_NOMEM), "nomem");
	assert_string_equal(mv_pgt_result_name(MV_PGT_RANGE), "range");
	assert_string_equal(mv_pgt_result_name(MV_PGT_EXISTS), "exists");
	assert_string_equal(mv_pgt_result_name(MV_PGT_NOENT), "noent");
	assert_string_equal(mv_pgt_result_name(MV_PGT_FAULT), "fault");
	assert_string_equal(mv_pgt_result_name(MV_PGT_STOP), "stop");
	assert_string_equal(mv_pgt_result_name((mv_pgt_result)99), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_geometry),
		cmocka_unit_test(test_insane_geometry),
		cmocka_unit_test(test_visit_order),
		cmocka_unit_test(test_concatenated_root),
		cmocka_unit_test(test_reread_after_leaf),
		cmocka_unit_test(test_reread_after_table_pre),
		cmocka_unit_test(test_early_end),
		cmocka_unit_test(test_unreachable_table),
		cmocka_unit_test(test_try_set),
		cmocka_unit_test(test_get_leaf),
		cmocka_unit_test(test_granules),
		cmocka_unit_test(test_pool_pages),
		cmocka_unit_test(test_pool_alloc_failures),
		cmocka_unit_test(test_result_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
