/*
 * The table iterator (src/soft/pgtable_iter.c) against the walker
 * (mv_pgt_walk): on random tables of every granule (4K/16K/64K), start
 * levels -1..2, concatenated roots, and the real stage-2 and 5-level EPT
 * formats, the iterator gives the walker's entries in the walker's order
 * (pre-order, leaves only, down to a minimum level); seeks land where a
 * walk from the root would, reading only the tables below the lowest table
 * of the path that covers the target; restarts (a yield) at any address
 * continue exactly; runs of contiguous entries and prefetches from the
 * level above are bounded by the table and the range; an entry the caller changes (split, cleared table) is
 * followed, and a replaced table on the path is picked up by a restart.
 * Errors: geometry, range, minimum level, unreachable root and tables.
 * Random tests print their seed; MV_SEED replays.
 */
#include "testutil.h"

#include "memvirt/soft_ept.h"
#include "memvirt/soft_pgtable.h"
#include "memvirt/soft_stage2.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* A toy format: bits[1:0] 0b11 table, bit 0 valid, PA [47:12]          */

#define TOY_VALID 1ull
#define TOY_TABLE 3ull
#define TOY_NOTE 4ull                       /* an invalid, non-zero entry (an annotation) */
#define TOY_PA_MASK 0x0000fffffffff000ull

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
	return pte & TOY_PA_MASK;
}

static const mv_pgt_format toy_fmt = { "toy", toy_is_table, toy_is_valid, toy_table_pa };

/* The pool's mm_ops with phys_to_virt counted and one address made unreachable. */
static unsigned long p2v_calls;
static uint64_t p2v_unreachable;
static mv_pgt_mm_ops count_mm_ops;

static void *count_phys_to_virt(void *arg, uint64_t pa)
{
	p2v_calls++;
	if (pa == p2v_unreachable)
		return NULL;
	return mv_pgt_pool_mm_ops()->phys_to_virt(arg, pa);
}

static const mv_pgt_mm_ops *counting_mm_ops(void)
{
	count_mm_ops = *mv_pgt_pool_mm_ops();
	count_mm_ops.phys_to_virt = count_phys_to_virt;
	p2v_unreachable = 0;
	return &count_mm_ops;
}

typedef struct geo {
	unsigned g, ia;
	int start;
} geo;

/* Every granule; start levels -1..2; roots of 16, 2 or 1 table(s) and smaller. */
static const geo geos[] = {
	{ 12, 48, 0 },   /* 4 levels, one root table */
	{ 12, 57, -1 },  /* 5 levels (5-level EPT, LPA2) */
	{ 12, 52, -1 },  /* 5 levels, a 16-entry root */
	{ 12, 40, 1 },   /* 2 concatenated root tables */
	{ 12, 44, 0 },   /* a 32-entry root */
	{ 14, 47, 1 },   /* 16K, one root table */
	{ 14, 40, 2 },   /* 16K, 16 concatenated root tables */
	{ 16, 48, 1 },   /* 64K, a 64-entry root */
	{ 16, 46, 2 },   /* 64K, 16 concatenated root tables */
};

typedef struct t_pgt {
	mv_pgt_pool *pool;
	mv_pgt pgt;
} t_pgt;

static void t_init(t_pgt *t, const geo *g)
{
	memset(t, 0, sizeof(*t));
	assert_int_equal(mv_pgt_pool_new(NULL, &t->pool), 0);
	t->pgt = (mv_pgt){
		.fmt = &toy_fmt, .mm_ops = counting_mm_ops(), .mm_arg = t->pool,
		.ia_bits = g->ia, .granule_shift = g->g, .start_level = g->start, .last_level = 3,
	};
	assert_int_equal(mv_pgt_alloc_root(&t->pgt), 0);
}

static void t_fini(t_pgt *t)
{
	mv_pgt_destroy(&t->pgt);
	assert_int_equal(mv_pgt_pool_live_pages(t->pool), 0);
	mv_pgt_pool_free(t->pool);
}

static mv_pte *va_of(uint64_t pa)
{
	return (mv_pte *)(uintptr_t)pa;
}

static uint64_t ia_size(const mv_pgt *p)
{
	return 1ull << p->ia_bits;
}

/* Install @v in *@e, an empty entry, counting it in its table page. */
static void t_set(t_pgt *t, mv_pte *e, mv_pte v)
{
	*e = v;
	t->pgt.mm_ops->get_page(t->pool, e);
}

static mv_pte *t_new_table(t_pgt *t)
{
	mv_pte *table = t->pgt.mm_ops->zalloc_page(t->pool, (size_t)1 << t->pgt.granule_shift);

	assert_non_null(table);
	return table;
}

/*
 * The entry of @level covering @addr, by hand (neither walker nor
 * iterator): tables are created on the way when @create; NULL when a
 * non-table entry is in the way.
 */
static mv_pte *entry_at(t_pgt *t, uint64_t addr, int level, bool create)
{
	mv_pgt *p = &t->pgt;
	mv_pte *table = va_of(p->root_pa);

	for (int l = p->start_level;; l++) {
		mv_pte *e = &table[(addr >> mv_pgt_level_shift(p, l)) &
				   (mv_pgt_level_entries(p, l) - 1)];

		if (l == level)
			return e;
		if (!*e && create)
			t_set(t, e, (uint64_t)(uintptr_t)t_new_table(t) | TOY_TABLE);
		if (!toy_is_table(*e, l))
			return NULL;
		table = va_of(toy_table_pa(*e));
	}
}

/*
 * @n random entries around a few random centres, spread over windows of
 * random levels (so tables are crossed at every level): pages mostly,
 * blocks at every level, and annotations.
 */
static void populate(t_pgt *t, uint64_t *rng, unsigned n)
{
	mv_pgt *p = &t->pgt;
	uint64_t centre[3];

	for (unsigned c = 0; c < 3; c++)
		centre[c] = tu_rand_below(rng, ia_size(p));
	for (unsigned i = 0; i < n; i++) {
		int level = tu_rand_below(rng, 10) < 7
				    ? 3
				    : p->start_level + (int)tu_rand_below(rng, (uint64_t)(3 - p->start_level));
		int wlevel = p->start_level + (int)tu_rand_below(rng, (uint64_t)(4 - p->start_level));
		uint64_t addr = centre[tu_rand_below(rng, 3)] +
				tu_rand_below(rng, 3 * mv_pgt_level_size(p, wlevel));
		uint64_t bits = tu_rand(rng) & TOY_PA_MASK;
		mv_pte *e;

		addr &= (ia_size(p) - 1) & ~(mv_pgt_level_size(p, level) - 1);
		e = entry_at(t, addr, level, true);
		if (e && !*e)
			t_set(t, e, bits | (tu_rand_below(rng, 4) ? TOY_VALID : TOY_NOTE));
	}
}

/* ------------------------------------------------------------------ */
/* What the walker visits                                               */

typedef struct visit_rec {
	mv_pte *ptep;
	mv_pte old;
	uint64_t addr;
	int level;
} visit_rec;

typedef struct rec_list {
	visit_rec *v;
	size_t n, cap;
	int max_level;       /* entries below are not recorded (the iterator's min_level) */
} rec_list;

static mv_pgt_result rec_visitor(const mv_pgt_ctx *ctx, mv_pgt_visit visit)
{
	rec_list *l = ctx->arg;

	(void)visit;
	if (ctx->level > l->max_level)
		return MV_PGT_OK;
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 1024;
		l->v = realloc(l->v, l->cap * sizeof(*l->v));
		assert_non_null(l->v);
	}
	l->v[l->n++] = (visit_rec){ ctx->ptep, ctx->old, ctx->addr, ctx->level };
	return MV_PGT_OK;
}

/* Pre-order (tables and leaves) over [start, end) down to @max_level. */
static void walk_rec(mv_pgt *p, uint64_t start, uint64_t end, int max_level, rec_list *l)
{
	mv_pgt_walker w = { rec_visitor, l, MV_PGT_VISIT_LEAF | MV_PGT_VISIT_TABLE_PRE };

	l->n = 0;
	l->max_level = max_level;
	assert_int_equal(mv_pgt_walk(p, start, end - start, &w), MV_PGT_OK);
}

/* Would the iterator step into this recorded entry (a table above @min_level)? */
static bool rec_descends(const mv_pgt *p, const visit_rec *r, int min_level)
{
	return r->level < min_level && p->fmt->is_table(r->old, r->level);
}

static void assert_at(const mv_pgt_iter *it, const visit_rec *r, bool aligned_start)
{
	mv_pgt_ctx ctx;

	assert_true(it->valid);
	assert_ptr_equal(it->ptep, r->ptep);
	assert_int_equal(it->old, r->old);
	assert_int_equal(it->level, r->level);
	assert_int_equal(it->addr, r->addr & ~(mv_pgt_level_size(it->pgt, r->level) - 1));
	mv_pgt_iter_ctx(it, 0, MV_PGT_WALK_SHARED, &ctx);
	assert_ptr_equal(ctx.ptep, r->ptep);
	assert_int_equal(ctx.level, r->level);
	assert_int_equal(ctx.flags, MV_PGT_WALK_SHARED);
	if (aligned_start)
		assert_int_equal(ctx.addr, r->addr);
}

/* The run's length by its definition: entries left in the table, and entries overlapping the range. */
static uint64_t expected_run(const mv_pgt_iter *it)
{
	const mv_pgt *p = it->pgt;
	uint64_t size = mv_pgt_level_size(p, it->level);
	uint64_t n = mv_pgt_level_entries(p, it->level);
	uint64_t in_table = n - ((it->addr / size) & (n - 1));
	uint64_t in_range = (it->end - it->addr + size - 1) / size;   /* ranges stay below 2^57 */

	return in_range < in_table ? in_range : in_table;
}

/*
 * Iterate [start, end) from the root in pre-order (mv_pgt_iter_next) and,
 * from a seek, leaves only (mv_pgt_iter_next_leaf): the walker's entries
 * in its order, then not valid with MV_PGT_OK.
 */
static void check_range(mv_pgt *p, uint64_t start, uint64_t end, int min_level, rec_list *l)
{
	bool aligned = !(start & ((1ull << p->granule_shift) - 1));
	mv_pgt_iter it;
	size_t k = 0;

	walk_rec(p, start, end, min_level, l);
	assert_int_equal(mv_pgt_iter_start(&it, p, start, end, min_level), MV_PGT_OK);
	for (; it.valid; mv_pgt_iter_next(&it)) {
		assert_true(k < l->n);
		assert_at(&it, &l->v[k++], aligned);
		assert_int_equal(mv_pgt_iter_run(&it), expected_run(&it));
	}
	assert_int_equal(k, l->n);
	assert_int_equal(it.result, MV_PGT_OK);

	k = 0;
	mv_pgt_iter_seek(&it, start, end);
	for (; it.valid; mv_pgt_iter_next_leaf(&it)) {
		while (k < l->n && rec_descends(p, &l->v[k], min_level))
			k++;
		assert_true(k < l->n);
		assert_at(&it, &l->v[k++], aligned);
	}
	while (k < l->n && rec_descends(p, &l->v[k], min_level))
		k++;
	assert_int_equal(k, l->n);
}

/* A random range: the whole space, around mapped entries, or anywhere; sometimes unaligned. */
static void random_range(const mv_pgt *p, uint64_t *rng, const rec_list *all, uint64_t *s,
			 uint64_t *e)
{
	uint64_t top = ia_size(p), len;
	unsigned kind = (unsigned)tu_rand_below(rng, 4);

	if (kind == 0) {
		*s = 0;
		*e = top;
		return;
	}
	*s = kind == 1 || !all->n ? tu_rand_below(rng, top)
				  : all->v[tu_rand_below(rng, all->n)].addr;
	if (tu_rand_below(rng, 2))
		*s &= ~((1ull << p->granule_shift) - 1);
	len = 1 + tu_rand_below(rng, mv_pgt_level_size(p, (int)tu_rand_below(rng, 3) + 1) * 4);
	*e = len > top - *s ? top : *s + len;
}

static void test_random_order(void **state)
{
	uint64_t rng = tu_seed(0x17e2);
	rec_list l = { 0 }, all = { 0 };

	(void)state;
	for (unsigned gi = 0; gi < sizeof(geos) / sizeof(geos[0]); gi++) {
		const geo *g = &geos[gi];
		unsigned maps = g->g == 12 ? 300 : g->g == 14 ? 120 : 40;

		for (unsigned round = 0; round < 3; round++) {
			t_pgt t;

			t_init(&t, g);
			populate(&t, &rng, maps);
			walk_rec(&t.pgt, 0, ia_size(&t.pgt), 3, &all);
			for (unsigned r = 0; r < 12; r++) {
				uint64_t s, e;
				int min_level = r % 3 ? 3 : g->start + (int)tu_rand_below(&rng,
										   (uint64_t)(4 - g->start));

				random_range(&t.pgt, &rng, &all, &s, &e);
				check_range(&t.pgt, s, e, min_level, &l);
			}
			t_fini(&t);
		}
	}
	free(l.v);
	free(all.v);
}

/* ------------------------------------------------------------------ */
/* Seeks                                                                 */

/* Level of the lowest table of the iterator's path that covers @addr (the spec of a seek). */
static int climb_level(const mv_pgt_iter *it, uint64_t addr)
{
	int level = it->level;

	while (level > it->pgt->start_level &&
	       (addr ^ it->addr) >> mv_pgt_level_shift(it->pgt, level - 1))
		level--;
	return level;
}

/*
 * Random seeks, forwards and backwards, near the current entry, near
 * mapped entries or anywhere: the iterator lands on the entry a walk from
 * the root ends at, reads exactly the tables below the lowest table of
 * its path that covers the target, and continues in the walker's order.
 */
static void test_random_seek(void **state)
{
	uint64_t rng = tu_seed(0x5eec);
	rec_list l = { 0 }, all = { 0 };

	(void)state;
	for (unsigned gi = 0; gi < sizeof(geos) / sizeof(geos[0]); gi++) {
		const geo *g = &geos[gi];
		t_pgt t;
		mv_pgt_iter it;
		int min_level = 3;

		t_init(&t, g);
		populate(&t, &rng, g->g == 16 ? 40 : 200);
		walk_rec(&t.pgt, 0, ia_size(&t.pgt), 3, &all);
		assert_int_equal(mv_pgt_iter_start(&it, &t.pgt, 0, 0, min_level), MV_PGT_OK);
		assert_false(it.valid);
		for (unsigned i = 0; i < 400; i++) {
			uint64_t s, e, top = ia_size(&t.pgt);
			unsigned kind = (unsigned)tu_rand_below(&rng, 3);
			unsigned long calls;
			int climb;
			size_t k = 0;

			if (kind == 0) {        /* inside or beside the current last-level table */
				s = it.addr + tu_rand_below(&rng, 3 * mv_pgt_level_size(&t.pgt, 2)) -
				    mv_pgt_level_size(&t.pgt, 2);
				s &= top - 1;
			} else if (kind == 1 && all.n) {
				s = all.v[tu_rand_below(&rng, all.n)].addr;
			} else {
				s = tu_rand_below(&rng, top);
			}
			e = s + 1 + tu_rand_below(&rng, 64ull << t.pgt.granule_shift);
			if (e > top || e < s)
				e = top;
			if (i % 50 == 49) {     /* now and then, another minimum level */
				min_level = g->start + (int)tu_rand_below(&rng, (uint64_t)(4 - g->start));
				assert_int_equal(mv_pgt_iter_start(&it, &t.pgt, s, e, min_level), MV_PGT_OK);
			}
			climb = climb_level(&it, s);
			calls = p2v_calls;
			mv_pgt_iter_seek(&it, s, e);
			assert_int_equal(p2v_calls - calls, (unsigned long)(it.level - climb));

			walk_rec(&t.pgt, s, e, min_level, &l);
			while (rec_descends(&t.pgt, &l.v[k], min_level))
				k++;
			for (unsigned step = 0; step < 40 && it.valid; step++) {
				assert_true(k < l.n);
				assert_at(&it, &l.v[k++], false);
				mv_pgt_iter_next(&it);
			}
			if (!it.valid) {
				assert_int_equal(it.result, MV_PGT_OK);
				assert_int_equal(k, l.n);
			}
		}
		t_fini(&t);
	}
	free(l.v);
	free(all.v);
}

/*
 * A caller that yields restarts the iterator from the root at the address
 * of the next entry (KVM's next_last_level_gfn): the leaves seen across
 * any number of restarts are the walker's, each once.
 */
static void test_random_restarts(void **state)
{
	uint64_t rng = tu_seed(0x4e57);
	rec_list l = { 0 };

	(void)state;
	for (unsigned gi = 0; gi < sizeof(geos) / sizeof(geos[0]); gi++) {
		const geo *g = &geos[gi];
		t_pgt t;

		t_init(&t, g);
		populate(&t, &rng, g->g == 16 ? 40 : 200);
		for (unsigned r = 0; r < 6; r++) {
			uint64_t s, e;
			rec_list none = { 0 };
			mv_pgt_iter it;
			size_t k = 0;

			random_range(&t.pgt, &rng, &none, &s, &e);
			walk_rec(&t.pgt, s, e, 3, &l);
			mv_pgt_iter_start(&it, &t.pgt, s, e, 3);
			for (mv_pgt_iter_seek(&it, s, e); it.valid; mv_pgt_iter_next_leaf(&it)) {
				uint64_t next;

				while (k < l.n && rec_descends(&t.pgt, &l.v[k], 3))
					k++;
				assert_true(k < l.n);
				assert_at(&it, &l.v[k++], false);
				if (tu_rand_below(&rng, 8))
					continue;
				/* Yield: the next entry starts right after this one. */
				next = it.addr + mv_pgt_level_size(&t.pgt, it.level);
				if (!next || next >= e)
					break;
				assert_int_equal(mv_pgt_iter_start(&it, &t.pgt, next, e, 3), MV_PGT_OK);
				mv_pgt_iter_seek(&it, next, e);
				/* The loop's step would skip the entry we landed on: look at it first. */
				while (k < l.n && rec_descends(&t.pgt, &l.v[k], 3))
					k++;
				assert_true(k < l.n);
				assert_at(&it, &l.v[k++], false);
			}
			while (k < l.n && rec_descends(&t.pgt, &l.v[k], 3))
				k++;
			assert_int_equal(k, l.n);
		}
		t_fini(&t);
	}
	free(l.v);
}

/* ------------------------------------------------------------------ */
/* Directed cases                                                        */

/* 4 KiB granule, 40 bits: two concatenated root tables at level 1. */
static const geo geo_concat = { 12, 40, 1 };
#define SZ_4K (1ull << 12)
#define SZ_2M (1ull << 21)
#define SZ_1G (1ull << 30)

/* Crossing the boundary between two last-level tables and between two root tables. */
static void test_crosses_tables(void **state)
{
	uint64_t boundary = 512 * SZ_1G;      /* first address of the second root table */
	rec_list l = { 0 };
	mv_pgt_iter it;
	mv_pte *roots = NULL;
	unsigned seen_second_root = 0;
	t_pgt t;

	(void)state;
	t_init(&t, &geo_concat);
	roots = va_of(t.pgt.root_pa);
	for (uint64_t a = boundary - 2 * SZ_4K; a < boundary + 2 * SZ_4K; a += SZ_4K)
		t_set(&t, entry_at(&t, a, 3, true), (a & TOY_PA_MASK) | TOY_VALID);
	for (uint64_t a = SZ_2M - SZ_4K; a < SZ_2M + SZ_4K; a += SZ_4K)
		t_set(&t, entry_at(&t, a, 3, true), (a & TOY_PA_MASK) | TOY_VALID);

	walk_rec(&t.pgt, SZ_2M - SZ_4K, SZ_2M + SZ_4K, 3, &l);
	mv_pgt_iter_start(&it, &t.pgt, SZ_2M - SZ_4K, SZ_2M + SZ_4K, 3);
	mv_pgt_iter_seek(&it, SZ_2M - SZ_4K, SZ_2M + SZ_4K);
	assert_int_equal(l.n, 5);            /* root entry, table entry, page, table entry, page */
	assert_at(&it, &l.v[2], true);
	mv_pgt_iter_next(&it);               /* up and beside: the next table's entry */
	assert_at(&it, &l.v[3], true);
	assert_int_equal(it.level, 2);
	mv_pgt_iter_next(&it);               /* down into it */
	assert_at(&it, &l.v[4], true);
	assert_int_equal(it.addr, SZ_2M);
	mv_pgt_iter_next(&it);
	assert_false(it.valid);

	check_range(&t.pgt, boundary - 2 * SZ_4K, boundary + 2 * SZ_4K, 3, &l);
	for (mv_pgt_iter_start(&it, &t.pgt, boundary - 2 * SZ_4K, boundary + 2 * SZ_4K, 3);
	     it.valid; mv_pgt_iter_next(&it))
		if (it.level == 1)
			seen_second_root += it.ptep == &roots[512];
	assert_int_equal(seen_second_root, 1);
	free(l.v);
	t_fini(&t);
}

/*
 * The caller changes entries under the iterator: a block it stands on
 * becomes a table (a split) and is descended into; a table entry it
 * stands on is cleared and is not; a table of its path is replaced, and a
 * restart at the current address finds the new one.
 */
static void test_changed_under_iterator(void **state)
{
	uint64_t base = 3 * SZ_1G;
	mv_pgt_iter it;
	mv_pte *e, *table, *old_table;
	t_pgt t;

	(void)state;
	t_init(&t, &geo_concat);
	t_set(&t, entry_at(&t, base, 2, true), base | TOY_VALID);               /* a 2 MiB block */
	t_set(&t, entry_at(&t, base + 4 * SZ_2M, 3, true), 0x5000 | TOY_VALID); /* a page beyond */

	/* Split: the block becomes a table of pages; the iterator steps into it. */
	mv_pgt_iter_start(&it, &t.pgt, base, base + 8 * SZ_2M, 3);
	mv_pgt_iter_seek(&it, base, base + 8 * SZ_2M);
	assert_int_equal(it.level, 2);
	assert_int_equal(it.old, base | TOY_VALID);
	table = t_new_table(&t);
	for (unsigned i = 0; i < 512; i++)
		t_set(&t, &table[i], (base + i * SZ_4K) | TOY_VALID);
	*it.ptep = (uint64_t)(uintptr_t)table | TOY_TABLE;
	mv_pgt_iter_next(&it);
	assert_int_equal(it.level, 3);
	assert_ptr_equal(it.ptep, &table[0]);
	assert_int_equal(it.old, base | TOY_VALID);

	/* Cleared: the iterator, on the table entry, goes beside it, not into it. */
	mv_pgt_iter_seek(&it, base + 4 * SZ_2M, base + 8 * SZ_2M);
	assert_int_equal(it.level, 3);
	mv_pgt_iter_start(&it, &t.pgt, base + 4 * SZ_2M, base + 8 * SZ_2M, 3);
	while (it.level < 2)
		mv_pgt_iter_next(&it);
	assert_int_equal(it.addr, base + 4 * SZ_2M);
	assert_true(toy_is_table(it.old, 2));
	old_table = va_of(toy_table_pa(it.old));
	*it.ptep = 0;
	mv_pgt_iter_next(&it);
	assert_int_equal(it.level, 2);
	assert_int_equal(it.addr, base + 5 * SZ_2M);
	*entry_at(&t, base + 4 * SZ_2M, 2, false) = (uint64_t)(uintptr_t)old_table | TOY_TABLE;

	/* Replaced: the path's last-level table gives way to a copy with another page. */
	mv_pgt_iter_seek(&it, base + 4 * SZ_2M, base + 8 * SZ_2M);
	assert_ptr_equal(it.ptep, &old_table[0]);
	e = entry_at(&t, base + 4 * SZ_2M, 2, false);
	table = t_new_table(&t);
	memcpy(table, old_table, (size_t)1 << t.pgt.granule_shift);
	t.pgt.mm_ops->get_page(t.pool, table);
	table[0] = 0x7000 | TOY_VALID;
	*e = (uint64_t)(uintptr_t)table | TOY_TABLE;
	mv_pgt_free_table(&t.pgt, old_table, 3);
	assert_int_equal(mv_pgt_iter_start(&it, &t.pgt, base + 4 * SZ_2M, base + 8 * SZ_2M, 3),
			 MV_PGT_OK);
	mv_pgt_iter_seek(&it, base + 4 * SZ_2M, base + 8 * SZ_2M);
	assert_ptr_equal(it.ptep, &table[0]);
	assert_int_equal(it.old, 0x7000 | TOY_VALID);
	t_fini(&t);
}

/*
 * Runs: the entries from the current one to the end of its table or of
 * the range, contiguous in memory; 0 when not valid. Prefetches: only
 * from a table entry (one phys_to_virt, no entry read, no move), and
 * nothing for an unreachable table or a range outside the entry.
 */
static void test_runs_and_prefetch(void **state)
{
	uint64_t base = 7 * SZ_1G;
	mv_pgt_iter it, before;
	unsigned long calls;
	t_pgt t;

	(void)state;
	t_init(&t, &geo_concat);
	for (unsigned i = 508; i < 512; i++)
		t_set(&t, entry_at(&t, base + i * SZ_4K, 3, true), (0x1000ull * i) | TOY_VALID);
	t_set(&t, entry_at(&t, base + SZ_2M, 3, true), 0x3000 | TOY_VALID);

	mv_pgt_iter_start(&it, &t.pgt, base + 508 * SZ_4K, base + SZ_2M + SZ_4K, 3);
	mv_pgt_iter_seek(&it, base + 508 * SZ_4K, base + SZ_2M + SZ_4K);
	assert_int_equal(mv_pgt_iter_run(&it), 4);                /* to the table's end */
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(it.ptep[i], (0x1000ull * (508 + i)) | TOY_VALID);
	mv_pgt_iter_seek(&it, base + 508 * SZ_4K, base + 510 * SZ_4K + 1);
	assert_int_equal(mv_pgt_iter_run(&it), 3);                /* to the range's end */
	mv_pgt_iter_seek(&it, base + 600 * SZ_4K, base + 601 * SZ_4K);
	assert_int_equal(it.level, 3);
	assert_int_equal(mv_pgt_iter_run(&it), 1);
	mv_pgt_iter_seek(&it, base, base);
	assert_int_equal(mv_pgt_iter_run(&it), 0);                /* not valid */

	/* Prefetch from the level above the pages. */
	mv_pgt_iter_start(&it, &t.pgt, base, base + 4 * SZ_2M, 2);
	mv_pgt_iter_seek(&it, base + 508 * SZ_4K, base + 4 * SZ_2M);
	assert_int_equal(it.level, 2);
	before = it;
	calls = p2v_calls;
	mv_pgt_iter_prefetch(&it, base + 508 * SZ_4K, base + SZ_2M + SZ_4K);
	assert_int_equal(p2v_calls - calls, 1);
	assert_memory_equal(&it, &before, sizeof(it));
	mv_pgt_iter_prefetch(&it, base + SZ_2M, base + 2 * SZ_2M);   /* outside the entry */
	mv_pgt_iter_prefetch(&it, base + 5 * SZ_4K, base + 5 * SZ_4K); /* empty */
	mv_pgt_iter_seek(&it, base + 2 * SZ_2M, base + 4 * SZ_2M);    /* an empty entry */
	calls = p2v_calls;
	mv_pgt_iter_prefetch(&it, base + 2 * SZ_2M, base + 3 * SZ_2M);
	assert_int_equal(p2v_calls, calls);
	mv_pgt_iter_seek(&it, base, base + SZ_2M);
	p2v_unreachable = toy_table_pa(it.old);
	mv_pgt_iter_prefetch(&it, base, base + SZ_2M);                /* unreachable: nothing */
	p2v_unreachable = 0;
	mv_pgt_iter_start(&it, &t.pgt, base + SZ_2M, base + SZ_2M + 1, 3);   /* on a page: nothing */
	mv_pgt_iter_seek(&it, base + SZ_2M, base + SZ_2M + 1);
	calls = p2v_calls;
	mv_pgt_iter_prefetch(&it, base + SZ_2M, base + SZ_2M + 1);
	assert_int_equal(p2v_calls, calls);
	t_fini(&t);
}

/* Entries changed through the iterator's contexts (current, in a run) by the walker's operations. */
static void test_ctx_updates(void **state)
{
	mv_pgt_iter it;
	mv_pgt_ctx ctx;
	t_pgt t;

	(void)state;
	t_init(&t, &geo_concat);
	t_set(&t, entry_at(&t, 5 * SZ_4K, 3, true), 0x9000 | TOY_VALID);
	mv_pgt_iter_start(&it, &t.pgt, 5 * SZ_4K + 12, 7 * SZ_4K, 3);
	mv_pgt_iter_seek(&it, 5 * SZ_4K + 12, 7 * SZ_4K);
	mv_pgt_iter_ctx(&it, 0, MV_PGT_WALK_SHARED, &ctx);
	assert_int_equal(ctx.addr, 5 * SZ_4K + 12);
	assert_int_equal(ctx.start, 5 * SZ_4K + 12);
	assert_int_equal(ctx.end, 7 * SZ_4K);
	assert_null(ctx.arg);
	*it.ptep = 0xa000 | TOY_VALID;                       /* someone else got there first */
	assert_false(mv_pgt_ctx_try_set(&ctx, 0xb000 | TOY_VALID));
	it.old = mv_pgt_read(it.ptep);
	mv_pgt_iter_ctx(&it, 0, MV_PGT_WALK_SHARED, &ctx);
	assert_true(mv_pgt_ctx_try_set(&ctx, 0xb000 | TOY_VALID));
	assert_int_equal(*it.ptep, 0xb000 | TOY_VALID);
	assert_ptr_equal(ctx.pgt->fmt, &toy_fmt);

	/* Entry 1 of the run: its own pointer, address and value, read now. */
	t_set(&t, it.ptep + 1, 0xc000 | TOY_VALID);
	assert_int_equal(mv_pgt_iter_run(&it), 2);
	mv_pgt_iter_ctx(&it, 1, 0, &ctx);
	assert_ptr_equal(ctx.ptep, it.ptep + 1);
	assert_int_equal(ctx.old, 0xc000 | TOY_VALID);
	assert_int_equal(ctx.addr, 6 * SZ_4K);
	assert_int_equal(ctx.level, 3);
	assert_int_equal(ctx.flags, 0);
	assert_true(mv_pgt_ctx_try_set(&ctx, 0xd000 | TOY_VALID));
	mv_pgt_iter_next(&it);
	assert_int_equal(it.addr, 6 * SZ_4K);
	assert_int_equal(it.old, 0xd000 | TOY_VALID);
	t_fini(&t);
}

static void test_errors(void **state)
{
	mv_pgt_iter it;
	t_pgt t;
	uint64_t pa;

	(void)state;
	t_init(&t, &geo_concat);
	memset(&it, 0, sizeof(it));
	mv_pgt_iter_seek(&it, 0, SZ_4K);                      /* never positioned */
	assert_false(it.valid);
	assert_int_equal(it.result, MV_PGT_RANGE);

	assert_int_equal(mv_pgt_iter_start(&it, &t.pgt, 1ull << 40, (1ull << 40) + 1, 3), MV_PGT_RANGE);
	assert_false(it.valid);
	mv_pgt_iter_seek(&it, 0, SZ_4K);                      /* still never positioned */
	assert_int_equal(it.result, MV_PGT_RANGE);
	assert_int_equal(mv_pgt_iter_start(&it, &t.pgt, 0, SZ_4K, 0), MV_PGT_RANGE);  /* above start */
	assert_int_equal(mv_pgt_iter_start(&it, &t.pgt, 0, SZ_4K, 4), MV_PGT_RANGE);  /* below leaf */
	t.pgt.granule_shift = 13;
	assert_int_equal(mv_pgt_iter_start(&it, &t.pgt, 0, SZ_4K, 3), MV_PGT_RANGE);
	t.pgt.granule_shift = 12;

	/* Start >= end: positioned, not valid; a seek then goes on. */
	assert_int_equal(mv_pgt_iter_start(&it, &t.pgt, SZ_2M, SZ_2M, 3), MV_PGT_OK);
	assert_false(it.valid);
	assert_int_equal(it.result, MV_PGT_OK);
	mv_pgt_iter_seek(&it, SZ_2M, 2 * SZ_2M);
	assert_true(it.valid);
	assert_int_equal(it.level, 1);                        /* an empty table: the root entry */
	mv_pgt_iter_seek(&it, 1ull << 40, 1ull << 41);        /* beyond ia_bits */
	assert_false(it.valid);
	assert_int_equal(it.result, MV_PGT_RANGE);

	/* Unreachable tables: the root, then one below it. */
	p2v_unreachable = t.pgt.root_pa;
	assert_int_equal(mv_pgt_iter_start(&it, &t.pgt, 0, SZ_4K, 3), MV_PGT_FAULT);
	assert_false(it.valid);
	t_set(&t, entry_at(&t, SZ_1G, 3, true), 0x1000 | TOY_VALID);
	t_set(&t, entry_at(&t, 2 * SZ_1G, 3, true), 0x2000 | TOY_VALID);
	pa = toy_table_pa(*entry_at(&t, SZ_1G, 1, false));
	p2v_unreachable = pa;
	assert_int_equal(mv_pgt_iter_start(&it, &t.pgt, 0, 4 * SZ_1G, 3), MV_PGT_OK);
	while (it.valid)
		mv_pgt_iter_next(&it);
	assert_int_equal(it.result, MV_PGT_FAULT);
	assert_int_equal(it.level, 1);
	assert_int_equal(it.addr, SZ_1G);
	mv_pgt_iter_seek(&it, 2 * SZ_1G, 3 * SZ_1G);          /* the rest is reachable */
	assert_true(it.valid);
	assert_int_equal(it.level, 3);
	assert_int_equal(it.old, 0x2000 | TOY_VALID);
	mv_pgt_iter_seek(&it, SZ_1G, 2 * SZ_1G);
	assert_false(it.valid);
	assert_int_equal(it.result, MV_PGT_FAULT);
	p2v_unreachable = 0;
	t_fini(&t);
}

/* ------------------------------------------------------------------ */
/* The real formats: stage 2 with a concatenated root, 5-level EPT      */

static void test_real_formats(void **state)
{
	uint64_t rng = tu_seed(0xf0);
	rec_list l = { 0 };
	mv_pgt_pool *pool;
	mv_s2_config cfg;
	mv_s2_pgt s2;
	mv_ept ept;

	(void)state;
	assert_int_equal(mv_pgt_pool_new(NULL, &pool), 0);
	assert_int_equal(mv_s2_config_for_ipa(40, 12, &cfg), 0);
	assert_int_equal(mv_s2_init(&s2, &cfg, mv_pgt_pool_mm_ops(), pool, NULL, NULL), 0);
	assert_true(mv_pgt_root_pages(&s2.pgt) > 1);
	assert_int_equal(mv_ept_init(&ept, 5, true, mv_pgt_pool_mm_ops(), pool, NULL, NULL), 0);
	for (unsigned i = 0; i < 600; i++) {
		uint64_t gpa = tu_rand_below(&rng, 1ull << 40) & ~(SZ_2M - 1);
		unsigned kind = (unsigned)tu_rand_below(&rng, 4);
		int level = kind == 0 ? 2 : 3;
		uint64_t hpa = 0x200000000ull + (tu_rand_below(&rng, 1024) << 21);

		if (i % 3 == 0)          /* neighbours: tables crossed side by side */
			gpa = (1ull << 39) + tu_rand_below(&rng, 64) * SZ_2M;
		gpa += kind == 0 ? 0 : tu_rand_below(&rng, 512) * SZ_4K;
		mv_s2_map(&s2, gpa, level == 2 ? SZ_2M : SZ_4K, hpa,
			  mv_s2_prot_attr(MV_S2_PROT_R | MV_S2_PROT_W), level, 0);
		if (kind == 3)
			mv_s2_set_owner(&s2, gpa, SZ_4K, 3);
		gpa |= tu_rand_below(&rng, 1ull << 16) << 40;       /* 57-bit GPAs for EPT */
		mv_ept_install(&ept, gpa, level,
			       kind == 3 ? mv_ept_mmio_spte(gpa >> 12, 5)
					 : mv_ept_leaf(hpa, MV_EPT_RWX, level, true, true),
			       0, NULL);
	}
	for (unsigned r = 0; r < 8; r++) {
		rec_list none = { 0 };
		uint64_t s, e;

		random_range(&s2.pgt, &rng, &none, &s, &e);
		check_range(&s2.pgt, s, e, r % 2 ? 3 : 2, &l);
		random_range(&ept.pgt, &rng, &none, &s, &e);
		check_range(&ept.pgt, s, e, r % 2 ? 3 : 1, &l);
	}
	check_range(&s2.pgt, 0, 1ull << 40, 3, &l);
	check_range(&ept.pgt, 0, 1ull << 57, 3, &l);
	free(l.v);
	mv_s2_destroy(&s2);
	mv_ept_destroy(&ept);
	mv_pgt_pool_free(pool);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_random_order),
		cmocka_unit_test(test_random_seek),
		cmocka_unit_test(test_random_restarts),
		cmocka_unit_test(test_crosses_tables),
		cmocka_unit_test(test_changed_under_iterator),
		cmocka_unit_test(test_runs_and_prefetch),
		cmocka_unit_test(test_ctx_updates),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_real_formats),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
