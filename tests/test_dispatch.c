/*
 * Dispatch table tests: tables built straight from hand-made sections
 * (region identities are zeroed structs: the table never looks inside a
 * region), checked against a linear search; plus one lookup through the
 * core's address space.
 */
#include "testutil.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "memory/internal.h"

#define PAGE 0x1000ull
#define TOP (~(uint64_t)0)

/* A FlatView shell holding only a dispatch, and a pool of region identities. */
struct fixture {
	struct mv_memory mem;
	struct mv_flatview fv;
	struct mv_region *regions;
	mv_section *secs;       /* what was added, in order */
	size_t nr, cap;
};

static void fx_init(struct fixture *fx, size_t cap, const mv_allocator *alloc)
{
	memset(fx, 0, sizeof(*fx));
	fx->mem.alloc = alloc;
	fx->fv.mem = &fx->mem;
	fx->regions = calloc(cap, sizeof(*fx->regions));
	fx->secs = calloc(cap, sizeof(*fx->secs));
	fx->cap = cap;
	assert_non_null(fx->regions);
	assert_non_null(fx->secs);
	for (size_t i = 0; i < cap; i++)
		fx->regions[i].kind = MV_REGION_IO;
	fx->fv.dispatch = mv_dispatch_new(&fx->fv);
	assert_non_null(fx->fv.dispatch);
}

static void fx_fini(struct fixture *fx)
{
	mv_dispatch_free(fx->fv.dispatch);
	free(fx->regions);
	free(fx->secs);
}

/* Queue section [start, start+size) showing region #nr from @off. */
static mv_section *fx_sec(struct fixture *fx, uint64_t start, mv_u128 size, uint64_t off)
{
	mv_section *s = &fx->secs[fx->nr];

	assert_true(fx->nr < fx->cap);
	*s = (mv_section){
		.mr = &fx->regions[fx->nr],
		.fv = &fx->fv,
		.offset_within_region = off,
		.offset_within_address_space = start,
		.size = size,
	};
	fx->nr++;
	return s;
}

static void fx_add(struct fixture *fx, uint64_t start, mv_u128 size)
{
	assert_int_equal(mv_dispatch_add_section(fx->fv.dispatch, fx_sec(fx, start, size, 0)), 0);
}

static void fx_add_all(struct fixture *fx)
{
	for (size_t i = 0; i < fx->nr; i++)
		assert_int_equal(mv_dispatch_add_section(fx->fv.dispatch, &fx->secs[i]), 0);
}

/* Reference: the added section containing @addr, or NULL. */
static const mv_section *linear(const struct fixture *fx, uint64_t addr)
{
	for (size_t i = 0; i < fx->nr; i++) {
		const mv_section *s = &fx->secs[i];

		if (addr >= s->offset_within_address_space &&
		    (mv_u128)(addr - s->offset_within_address_space) < s->size)
			return s;
	}
	return NULL;
}

/* The hole around an unmapped @addr, from the reference: [*lo, *hi). */
static void linear_gap(const struct fixture *fx, uint64_t addr, mv_u128 *lo, mv_u128 *hi)
{
	*lo = 0;
	*hi = MV_2_64;
	for (size_t i = 0; i < fx->nr; i++) {
		mv_u128 s = fx->secs[i].offset_within_address_space;
		mv_u128 e = s + fx->secs[i].size;

		if (e <= addr && e > *lo)
			*lo = e;
		if (s > addr && s < *hi)
			*hi = s;
	}
}

/* What *plen becomes when TOP goes in and @left bytes remain. */
static uint64_t clip(mv_u128 left)
{
	return left > TOP ? TOP : (uint64_t)left;
}

/* Lookup of @addr agrees with the reference in section, xlat and plen. */
static void check_addr(struct fixture *fx, uint64_t addr)
{
	const mv_section *want = linear(fx, addr);
	uint64_t xlat = 0, plen = TOP;
	const mv_section *got = mv_flatview_lookup(&fx->fv, addr, &xlat, &plen);

	assert_non_null(got);
	if (want) {
		uint64_t off = addr - want->offset_within_address_space;

		assert_ptr_equal(got->mr, want->mr);
		assert_true(got->offset_within_address_space == want->offset_within_address_space);
		assert_true(got->size == want->size);
		assert_true(xlat == want->offset_within_region + off);
		assert_true(plen == clip(want->size - off));
	} else {
		mv_u128 lo, hi;

		linear_gap(fx, addr, &lo, &hi);
		assert_null(got->mr);
		/* The gap section reports the whole hole. */
		assert_true(got->offset_within_address_space == lo);
		assert_true(got->offset_within_address_space + got->size == hi);
		assert_true(xlat == addr);
		assert_true(plen == clip(hi - addr));
	}
}

static void check_edges(struct fixture *fx)
{
	for (size_t i = 0; i < fx->nr; i++) {
		uint64_t s = fx->secs[i].offset_within_address_space;
		uint64_t last = s + (uint64_t)(fx->secs[i].size - 1);

		check_addr(fx, s);
		check_addr(fx, s - 1);
		check_addr(fx, s + 1);
		check_addr(fx, last);
		check_addr(fx, last - 1);
		check_addr(fx, last + 1);
	}
}

static void test_empty(void **state)
{
	struct fixture fx;

	(void)state;
	fx_init(&fx, 1, NULL);
	mv_dispatch_compact(fx.fv.dispatch);
	check_addr(&fx, 0);
	check_addr(&fx, 0x123456789);
	check_addr(&fx, TOP);
	fx_fini(&fx);
}

static void test_whole_pages(void **state)
{
	struct fixture fx;
	uint64_t xlat, plen = 0x10000;
	const mv_section *s;

	(void)state;
	fx_init(&fx, 4, NULL);
	fx_add(&fx, 0x1000, 0x2000);
	assert_int_equal(mv_dispatch_add_section(fx.fv.dispatch,
						 fx_sec(&fx, 0x5000, 0x1000, 0x700000)), 0);
	fx_add(&fx, 0x6000, 0x3000);    /* adjacent: no gap between */
	mv_dispatch_compact(fx.fv.dispatch);
	check_edges(&fx);
	s = mv_flatview_lookup(&fx.fv, 0x5abc, &xlat, &plen);
	assert_ptr_equal(s->mr, &fx.regions[1]);
	assert_int_equal(xlat, 0x700abc);
	assert_int_equal(plen, 0x544);
	/* plen only shrinks. */
	plen = 4;
	mv_flatview_lookup(&fx.fv, 0x1000, &xlat, &plen);
	assert_int_equal(plen, 4);
	for (uint64_t a = 0; a < 0xa000; a += 0x7f)
		check_addr(&fx, a);
	fx_fini(&fx);
}

/* Several sections inside one page, and sections with partial head/tail. */
static void test_subpage(void **state)
{
	struct fixture fx;
	const mv_section *s;
	uint64_t xlat, plen;

	(void)state;
	fx_init(&fx, 8, NULL);
	fx_add(&fx, 0x10000, 0x100);
	fx_add(&fx, 0x10100, 4);                /* adjacent, tiny */
	fx_add(&fx, 0x10200, 1);
	fx_add(&fx, 0x10800, 0x2000);          /* tail of page, one page, head of next */
	fx_add(&fx, 0x12800, 1);
	fx_add(&fx, 0x12fff, 0x1002);          /* last byte, a page, first byte */
	mv_dispatch_compact(fx.fv.dispatch);
	for (uint64_t a = 0xf000; a < 0x15000; a++)
		check_addr(&fx, a);
	/* A sub-page piece reports its real section. */
	plen = TOP;
	s = mv_flatview_lookup(&fx.fv, 0x11800, &xlat, &plen);
	assert_int_equal(s->offset_within_address_space, 0x10800);
	assert_true(s->size == 0x2000);
	assert_int_equal(xlat, 0x1000);
	assert_int_equal(plen, 0x1000);
	fx_fini(&fx);
}

/* A section may end exactly at 2^64; the whole space is one section. */
static void test_top_of_space(void **state)
{
	struct fixture fx;
	uint64_t xlat, plen;
	const mv_section *s;

	(void)state;
	fx_init(&fx, 4, NULL);
	fx_add(&fx, 0xffffffff00000000ull, 0x10000);
	fx_add(&fx, TOP - 0x2ff, 0x100);                /* sub-page near the top */
	fx_add(&fx, TOP - 0x7f, 0x80);                  /* sub-page ending at 2^64 */
	mv_dispatch_compact(fx.fv.dispatch);
	check_edges(&fx);
	for (uint64_t a = TOP - 0x2000; a != 0; a++)
		check_addr(&fx, a);
	plen = TOP;
	s = mv_flatview_lookup(&fx.fv, TOP, &xlat, &plen);
	assert_ptr_equal(s->mr, &fx.regions[2]);
	assert_int_equal(plen, 1);
	fx_fini(&fx);

	fx_init(&fx, 1, NULL);
	fx_add(&fx, 0, MV_2_64);
	mv_dispatch_compact(fx.fv.dispatch);
	check_edges(&fx);
	plen = TOP;
	s = mv_flatview_lookup(&fx.fv, 0, &xlat, &plen);
	assert_true(s->size == MV_2_64);
	assert_int_equal(plen, TOP);            /* clipped by the caller's TOP */
	plen = TOP;
	mv_flatview_lookup(&fx.fv, 1, &xlat, &plen);
	assert_int_equal(plen, TOP);            /* exactly 2^64 - 1 left */
	/* 128 top-level leaves, no more. */
	assert_int_equal(mv_dispatch_nr_nodes(fx.fv.dispatch), 1);
	fx_fini(&fx);
}

/* Aligned runs become high-level leaves: few nodes for terabytes. */
static void test_huge_runs(void **state)
{
	struct fixture fx;

	(void)state;
	fx_init(&fx, 4, NULL);
	fx_add(&fx, 0, 1ull << 40);                            /* 1 TiB aligned */
	fx_add(&fx, (1ull << 40) + PAGE, (1ull << 48) - PAGE * 2);     /* ragged edges */
	fx_add(&fx, 1ull << 50, MV_2_64 - (1ull << 50) - 0x10);        /* ends sub-page */
	/* Two edges per level per section at most. */
	assert_true(mv_dispatch_nr_nodes(fx.fv.dispatch) <= 3 * 2 * 6);
	mv_dispatch_compact(fx.fv.dispatch);
	check_edges(&fx);
	for (int i = 0; i < 64; i++)
		check_addr(&fx, 1ull << i);
	fx_fini(&fx);
}

/* Single-child chains are skipped; addresses off the chain stay unassigned. */
static void test_compaction(void **state)
{
	struct fixture a, b;
	uint64_t seed = tu_seed(7), addr = 0x123456789000ull;

	(void)state;
	fx_init(&a, 2, NULL);
	fx_init(&b, 2, NULL);
	fx_add(&a, addr, PAGE);
	fx_add(&a, addr + 0x3000, 0x10);
	memcpy(b.secs, a.secs, 2 * sizeof(*a.secs));
	b.nr = 2;
	fx_add_all(&b);
	assert_int_equal(mv_dispatch_walk_depth(a.fv.dispatch, addr), 6);
	mv_dispatch_compact(a.fv.dispatch);
	/* Both share all nodes down to level 0: one node read, not six. */
	assert_int_equal(mv_dispatch_walk_depth(a.fv.dispatch, addr), 1);
	/* Compacted and uncompacted tables answer alike everywhere. */
	for (int i = 0; i < 20000; i++) {
		uint64_t x = tu_rand(&seed);

		/* Keep some bits of the mapped address so walks land on the chain. */
		if (i & 1)
			x = (addr & ~((1ull << (i % 52 + 12)) - 1)) | (x & ((1ull << (i % 52 + 12)) - 1));
		assert_ptr_equal(mv_dispatch_lookup(a.fv.dispatch, x)->mr,
				 mv_dispatch_lookup(b.fv.dispatch, x)->mr);
		check_addr(&a, x);
	}
	check_edges(&a);
	fx_fini(&a);
	fx_fini(&b);

	/* One page alone: the root entry itself becomes the leaf. */
	fx_init(&a, 1, NULL);
	fx_add(&a, addr, PAGE);
	mv_dispatch_compact(a.fv.dispatch);
	assert_int_equal(mv_dispatch_walk_depth(a.fv.dispatch, addr), 0);
	check_edges(&a);
	check_addr(&a, addr ^ (1ull << 40));
	fx_fini(&a);
}

static void test_mru(void **state)
{
	struct fixture fx;
	mv_dispatch *d;
	const mv_section *s1, *s2, *g;

	(void)state;
	fx_init(&fx, 2, NULL);
	d = fx.fv.dispatch;
	fx_add(&fx, 0x1000, 0x100);
	fx_add(&fx, 0x4000, 0x1000);
	mv_dispatch_compact(d);
	assert_null(mv_dispatch_mru(d));
	s1 = mv_dispatch_lookup(d, 0x1010);
	assert_ptr_equal(mv_dispatch_mru(d), s1);
	/* Hit: another address of the cached section. */
	assert_ptr_equal(mv_dispatch_lookup(d, 0x10ff), s1);
	assert_ptr_equal(mv_dispatch_mru(d), s1);
	/* Miss: the cache does not cover 0x1100 (same page, gap after s1). */
	g = mv_dispatch_lookup(d, 0x1100);
	assert_null(g->mr);
	assert_int_equal(g->offset_within_address_space, 0x1100);
	assert_ptr_equal(mv_dispatch_mru(d), g);       /* a gap has an exact extent */
	s2 = mv_dispatch_lookup(d, 0x4fff);
	assert_ptr_equal(s2->mr, &fx.regions[1]);
	assert_ptr_equal(mv_dispatch_mru(d), s2);
	assert_ptr_equal(mv_dispatch_lookup(d, 0x1000), s1);
	assert_ptr_equal(mv_dispatch_mru(d), s1);
	fx_fini(&fx);
}

/* Sections out of order: mapped bytes still resolve; holes get one page. */
static void test_out_of_order(void **state)
{
	struct fixture fx;
	uint64_t xlat, plen = TOP;
	const mv_section *s;

	(void)state;
	fx_init(&fx, 3, NULL);
	fx_add(&fx, 0x9000, 0x800);
	fx_add(&fx, 0x1000, 0x1000);
	fx_add(&fx, 0x9800, 0x10);
	mv_dispatch_compact(fx.fv.dispatch);
	for (uint64_t a = 0; a < 0xb000; a += 3) {
		const mv_section *want = linear(&fx, a);

		s = mv_flatview_lookup(&fx.fv, a, &xlat, &plen);
		assert_ptr_equal(s->mr, want ? want->mr : NULL);
	}
	plen = TOP;
	s = mv_flatview_lookup(&fx.fv, 0x5010, &xlat, &plen);
	assert_null(s->mr);
	assert_int_equal(plen, 0xff0);
	assert_int_equal(xlat, 0x5010);
	fx_fini(&fx);

	/* Descending adds in one page: the earlier run after the new one survives. */
	fx_init(&fx, 4, NULL);
	fx_add(&fx, 0x30100, 0x100);
	fx_add(&fx, 0x30000, 0x100);
	fx_add(&fx, 0x2f000, 0x0f80);
	mv_dispatch_compact(fx.fv.dispatch);
	for (uint64_t a = 0x2e000; a < 0x32000; a++) {
		const mv_section *want = linear(&fx, a);

		assert_ptr_equal(mv_dispatch_lookup(fx.fv.dispatch, a)->mr, want ? want->mr : NULL);
	}
	fx_fini(&fx);
}

/* Build random sorted sections in [0, span) (span 0: whole space). */
static void random_layout(struct fixture *fx, uint64_t *seed, size_t n, unsigned scale_bits)
{
	mv_u128 pos = tu_rand_below(seed, 3) ? 0 : tu_rand_below(seed, 1ull << scale_bits);

	for (size_t i = 0; i < n; i++) {
		unsigned kind = tu_rand_below(seed, 5);
		uint64_t size;

		/* Mix of tiny, sub-page, page multiples and ragged sizes. */
		if (kind == 0)
			size = 1 + tu_rand_below(seed, 16);
		else if (kind == 1)
			size = 1 + tu_rand_below(seed, PAGE);
		else if (kind == 2)
			size = PAGE * (1 + tu_rand_below(seed, 8));
		else
			size = 1 + tu_rand_below(seed, 1ull << scale_bits);
		if (pos + size > MV_2_64)
			break;
		fx_sec(fx, (uint64_t)pos, size, tu_rand(seed));
		pos += size;
		if (tu_rand_below(seed, 3))
			pos += tu_rand_below(seed, tu_rand_below(seed, 2) ? 64 : (1ull << scale_bits));
		if (tu_rand_below(seed, 4) == 0)
			pos = (pos + PAGE - 1) & ~(mv_u128)(PAGE - 1);
		if (pos >= MV_2_64)
			break;
	}
	/* Sometimes end the space with a section that reaches 2^64. */
	if (fx->nr < fx->cap && pos < MV_2_64 && tu_rand_below(seed, 4) == 0)
		fx_sec(fx, (uint64_t)pos, MV_2_64 - pos, 0);
}

static void test_random(void **state)
{
	uint64_t seed = tu_seed(0x5eed);

	(void)state;
	for (int round = 0; round < 60; round++) {
		struct fixture fx;
		unsigned scale = 8 + tu_rand_below(&seed, 52);      /* 2^8 .. 2^59 */
		size_t n = 1 + tu_rand_below(&seed, 300);

		fx_init(&fx, n + 1, NULL);
		random_layout(&fx, &seed, n, scale);
		fx_add_all(&fx);
		if (round % 4)
			mv_dispatch_compact(fx.fv.dispatch);
		check_edges(&fx);
		for (int i = 0; i < 3000; i++) {
			uint64_t x = tu_rand(&seed);

			if (i & 1) {
				const mv_section *s = &fx.secs[tu_rand_below(&seed, fx.nr)];
				x = s->offset_within_address_space +
				    tu_rand_below(&seed, 1ull << (scale < 20 ? scale : 20));
			}
			check_addr(&fx, x);
		}
		fx_fini(&fx);
	}
}

/* Allocation failures while building: clean errors, no leaks (ASan). */
static void test_alloc_failure(void **state)
{
	uint64_t seed = 99;

	(void)state;
	for (unsigned long fail = 1; fail < 400; fail++) {
		tu_failing_alloc fa;
		struct fixture fx;
		int ret = 0;

		tu_failing_alloc_init(&fa, fail, true);
		memset(&fx, 0, sizeof(fx));
		fx.mem.alloc = &fa.alloc;
		fx.fv.mem = &fx.mem;
		fx.fv.dispatch = mv_dispatch_new(&fx.fv);
		if (!fx.fv.dispatch)
			continue;
		fx.regions = calloc(64, sizeof(*fx.regions));
		fx.secs = calloc(64, sizeof(*fx.secs));
		fx.cap = 64;
		seed = 99;
		random_layout(&fx, &seed, 64, 16);
		for (size_t i = 0; i < fx.nr && !ret; i++)
			ret = mv_dispatch_add_section(fx.fv.dispatch, &fx.secs[i]);
		assert_true(ret == 0 || ret == -ENOMEM);
		if (!ret) {
			mv_dispatch_compact(fx.fv.dispatch);
			check_edges(&fx);
		}
		fx_fini(&fx);
	}
}

/* Bad input is refused, never mapped. */
static void test_invalid(void **state)
{
	struct fixture fx;

	(void)state;
	fx_init(&fx, 3, NULL);
	assert_int_equal(mv_dispatch_add_section(fx.fv.dispatch, fx_sec(&fx, TOP, 2, 0)), -EINVAL);
	assert_int_equal(mv_dispatch_add_section(fx.fv.dispatch, fx_sec(&fx, 0, 0, 0)), 0);
	fx.nr = 0;
	fx_add(&fx, 0x1000, 0x10);
	mv_dispatch_compact(fx.fv.dispatch);
	assert_int_equal(mv_dispatch_add_section(fx.fv.dispatch, fx_sec(&fx, 0x8000, 1, 0)), -EINVAL);
	fx.nr = 1;
	check_edges(&fx);
	check_addr(&fx, 0x8000);
	fx_fini(&fx);

	/* A FlatView without a table answers unassigned, one page at a time. */
	{
		struct mv_flatview bare = { 0 };
		uint64_t xlat, plen = TOP;
		const mv_section *s = mv_flatview_lookup(&bare, 0x1234, &xlat, &plen);

		assert_null(s->mr);
		assert_int_equal(plen, 0xdcc);
		assert_null(mv_flatview_lookup(NULL, 0, NULL, NULL)->mr);
	}
}

/* Through the core: I/O regions sharing a page resolve to their sections. */
static void test_core_lookup(void **state)
{
	mv_memory *mem;
	mv_region *root;
	mv_io_region *a, *b;
	mv_address_space *as;
	mv_flatview *fv;
	const mv_section *s;
	uint64_t xlat, plen;

	(void)state;
	assert_int_equal(mv_memory_new(NULL, &mem), 0);
	assert_int_equal(mv_container_new(mem, "root", MV_2_64, &root), 0);
	assert_int_equal(mv_io_region_new(mem, "a", 0x10, NULL, NULL, &a), 0);
	assert_int_equal(mv_io_region_new(mem, "b", 0x2000, NULL, NULL, &b), 0);
	assert_int_equal(mv_region_add_subregion(root, 0x1008, mv_io_region_base(a)), 0);
	assert_int_equal(mv_region_add_subregion(root, 0x1018, mv_io_region_base(b)), 0);
	assert_int_equal(mv_address_space_new(mem, root, "as", &as), 0);
	fv = mv_address_space_get_flatview(as);

	plen = 0x100;
	s = mv_flatview_lookup(fv, 0x100c, &xlat, &plen);
	assert_ptr_equal(s->mr, mv_io_region_base(a));
	assert_int_equal(xlat, 4);
	assert_int_equal(plen, 0xc);
	plen = 0x10000;
	s = mv_flatview_lookup(fv, 0x2000, &xlat, &plen);
	assert_ptr_equal(s->mr, mv_io_region_base(b));
	assert_int_equal(s->offset_within_address_space, 0x1018);
	assert_int_equal(xlat, 0xfe8);
	assert_int_equal(plen, 0x1018);
	s = mv_flatview_lookup(fv, 0x1018 + 0x2000, &xlat, &plen);
	assert_null(s->mr);
	assert_true(s->offset_within_address_space + s->size == MV_2_64);

	mv_flatview_unref(fv);
	mv_region_unref(mv_io_region_base(a));
	mv_region_unref(mv_io_region_base(b));
	mv_address_space_free(as);
	mv_region_unref(root);
	mv_memory_free(mem);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_whole_pages),
		cmocka_unit_test(test_subpage),
		cmocka_unit_test(test_top_of_space),
		cmocka_unit_test(test_huge_runs),
		cmocka_unit_test(test_compaction),
		cmocka_unit_test(test_mru),
		cmocka_unit_test(test_out_of_order),
		cmocka_unit_test(test_random),
		cmocka_unit_test(test_alloc_failure),
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_core_lookup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
