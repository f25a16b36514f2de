/*
 * Randomized differential test of FlatView rendering.
 *
 * Each random tree (containers, I/O and reservation regions with children,
 * RAM/ROM/ROM-device regions, aliases of aliases with offsets that put the
 * render base far below 0, random and equal priorities, disabled,
 * read-only, non-volatile and dirty-logged regions, regions just below
 * 2^64) is rendered three ways that must agree exactly:
 *   - the library (mv_address_space_get_flatview),
 *   - a unit painter following render_memory_region's definition,
 *   - QEMU's own quadratic insertion algorithm + flatview_simplify.
 * Every range, and every gap, is then looked up through the dispatch table.
 * Random edit sequences with nested transactions are checked after each
 * outermost commit, including QEMU's child order (set_address re-adds the
 * region), and a transaction of N edits must render once.
 *
 * A failure prints the seed, the tree index, the tree and both views:
 * MV_SEED=<seed> MV_TREE=<index> reruns just that tree.
 */
#include "testutil.h"
#include "ref_render.h"

#include <inttypes.h>
#include <stdlib.h>

#define NR_TREES 10000
#define NR_EDIT_SEQS 3000
#define EDITS_PER_SEQ 40

typedef struct rig {
	mv_memory *mem;
	mv_ramblock *blocks[4];
	uint64_t seed;
	long only;              /* MV_TREE: run one tree/sequence, or -1 */
	ref_canvas canvas;
	ref_view painted, quad, lib;
	rt_tree tree;
	uint64_t rng;
	unsigned long ranges, lookups, checks;
} rig;

static rig *g;

static int setup(void **state)
{
	const char *only = getenv("MV_TREE");

	g = calloc(1, sizeof(*g));
	assert_non_null(g);
	rt_env_init(&g->mem, g->blocks, &g->tree, &g->rng, &g->canvas);
	g->seed = tu_seed(0x5eed0f1a7);
	g->only = only ? strtol(only, NULL, 0) : -1;
	*state = g;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	rt_env_destroy(g->mem, g->blocks, &g->canvas);
	ref_view_free(&g->painted);
	ref_view_free(&g->quad);
	ref_view_free(&g->lib);
	free(g);
	return 0;
}

/* Independent PRNG stream per tree, so one tree can be rerun alone. */
static uint64_t tree_seed(uint64_t seed, uint64_t i)
{
	uint64_t z = seed + (i + 1) * 0x9E3779B97F4A7C15ull;

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	z ^= z >> 31;
	return z ? z : 1;
}

static void report(const char *what, long idx, const char *why)
{
	fprintf(stderr, "\n=== %s %ld FAILED: %s\n", what, idx, why);
	fprintf(stderr, "reproduce: MV_SEED=%" PRIu64 " MV_TREE=%ld\n", g->seed, idx);
	rt_dump(&g->tree, stderr);
}

/* ------------------------------------------------------------------ */
/* Lookups                                                              */

/*
 * Look @addr up through the dispatch table and compare with a linear
 * search over @v (the view already checked against the references).
 */
static bool check_lookup(mv_flatview *fv, const ref_view *v, uint64_t addr, char *why, size_t len)
{
	const mv_flat_range *hit = NULL;
	mv_u128 gap_end = MV_2_64;
	uint64_t xlat = 0, plen = UINT64_MAX;
	const mv_section *s;

	for (size_t i = 0; i < v->n; i++) {
		if (addr < v->r[i].start) {
			gap_end = v->r[i].start;
			break;
		}
		if (addr - v->r[i].start < v->r[i].size) {
			hit = &v->r[i];
			break;
		}
	}
	g->lookups++;
	s = mv_flatview_lookup(fv, addr, &xlat, &plen);
	if (!s) {
		snprintf(why, len, "lookup 0x%" PRIx64 ": NULL section", addr);
		return false;
	}
	if (!hit) {
		if (s->mr || !plen || plen > gap_end - addr) {
			snprintf(why, len, "lookup 0x%" PRIx64 " (unmapped): mr %s plen 0x%" PRIx64,
				 addr, s->mr ? mv_region_name(s->mr) : "NULL", plen);
			return false;
		}
		return true;
	}
	if (s->mr != hit->mr || xlat != hit->offset_in_region + (addr - hit->start) || !plen ||
	    plen > (mv_u128)hit->start + hit->size - addr) {
		snprintf(why, len,
			 "lookup 0x%" PRIx64 ": got %s xlat 0x%" PRIx64 " plen 0x%" PRIx64
			 ", want %s xlat 0x%" PRIx64,
			 addr, s->mr ? mv_region_name(s->mr) : "NULL", xlat, plen,
			 mv_region_name(hit->mr), hit->offset_in_region + (addr - hit->start));
		return false;
	}
	return true;
}

/* First, last and a random byte of [start, end) (end as u128). */
static bool check_span(mv_flatview *fv, const ref_view *v, uint64_t start, mv_u128 end,
		       char *why, size_t len)
{
	uint64_t last = (uint64_t)(end - 1);
	uint64_t mid = start + tu_rand_below(&g->rng, last - start + 1 ? last - start + 1 : UINT64_MAX);

	return check_lookup(fv, v, start, why, len) && check_lookup(fv, v, last, why, len) &&
	       check_lookup(fv, v, mid, why, len);
}

static bool check_lookups(mv_flatview *fv, const ref_view *v, char *why, size_t len)
{
	mv_u128 prev_end = 0;

	for (size_t i = 0; i < v->n; i++) {
		const mv_flat_range *r = &v->r[i];

		if (r->start > prev_end && !check_span(fv, v, (uint64_t)prev_end, r->start, why, len))
			return false;
		if (!check_span(fv, v, r->start, (mv_u128)r->start + r->size, why, len))
			return false;
		prev_end = (mv_u128)r->start + r->size;
	}
	if (prev_end < MV_2_64 && !check_span(fv, v, (uint64_t)prev_end, MV_2_64, why, len))
		return false;
	return true;
}

/* ------------------------------------------------------------------ */
/* The comparison                                                       */

static void print_views(void)
{
	ref_print_ranges(stderr, "library", g->lib.r, g->lib.n);
	ref_print_ranges(stderr, "painter (expected)", g->painted.r, g->painted.n);
}

/*
 * Render the tree of @as three ways and compare; then the lookups.
 * Returns false after printing a report.
 */
static bool check_as(mv_address_space *as, const char *what, long idx)
{
	mv_flatview *fv = mv_address_space_get_flatview(as);
	mv_region *froot = ref_flatview_root(mv_address_space_root(as));
	char why[512] = "";
	long d;
	bool ok = false;

	g->checks++;
	ref_view_from_fv(&g->lib, fv);
	if (mv_flatview_root(fv) != froot) {
		snprintf(why, sizeof(why), "FlatView root is %s, QEMU's get_flatview_root gives %s",
			 mv_flatview_root(fv) ? mv_region_name(mv_flatview_root(fv)) : "NULL",
			 froot ? mv_region_name(froot) : "NULL");
		goto out;
	}
	if (!rt_canvas_for(&g->canvas, froot)) {
		snprintf(why, sizeof(why), "test bug: FlatView root %s too big to paint",
			 mv_region_name(froot));
		goto out;
	}
	g->canvas.outside = g->canvas.misaligned = 0;
	ref_canvas_render(&g->canvas, froot, &g->painted);
	if (g->canvas.outside || g->canvas.misaligned) {
		snprintf(why, sizeof(why), "test bug: painted outside the windows or off the unit grid");
		goto out;
	}
	ref_qemu_generate(&g->quad, froot);
	d = ref_ranges_diff(g->quad.r, g->quad.n, g->painted.r, g->painted.n);
	if (d >= 0) {
		snprintf(why, sizeof(why), "test bug: painter and QEMU's algorithm differ at range %ld", d);
		ref_print_ranges(stderr, "QEMU algorithm", g->quad.r, g->quad.n);
		goto out;
	}
	d = ref_ranges_diff(g->lib.r, g->lib.n, g->painted.r, g->painted.n);
	if (d >= 0) {
		snprintf(why, sizeof(why), "FlatView differs from the reference at range %ld", d);
		goto out;
	}
	g->ranges += g->lib.n;
	ok = check_lookups(fv, &g->lib, why, sizeof(why));
out:
	if (!ok) {
		report(what, idx, why);
		print_views();
	}
	mv_flatview_unref(fv);
	return ok;
}

static bool check_order(const char *what, long idx)
{
	int bad = rt_check_order(&g->tree);
	char why[256];

	if (bad < 0)
		return true;
	snprintf(why, sizeof(why),
		 "children of %s are not in QEMU's order (insert before the first "
		 "child with priority <= own; set_address re-inserts)",
		 mv_region_name(g->tree.r[bad]));
	report(what, idx, why);
	fprintf(stderr, "expected order:");
	for (unsigned k = 0; k < g->tree.nkids[bad]; k++)
		fprintf(stderr, " %s", mv_region_name(g->tree.r[g->tree.kids[bad][k]]));
	fprintf(stderr, "\n");
	return false;
}

/* A tree of random size under a fresh address space, built in one transaction. */
static mv_address_space *new_tree(uint64_t idx, size_t max_regions)
{
	mv_address_space *as;

	g->rng = tree_seed(g->seed, idx);
	rt_start(&g->tree);
	assert_int_equal(mv_address_space_new(g->mem, g->tree.r[0], "as", &as), 0);
	mv_memory_begin(g->mem);
	rt_grow(&g->tree, 3 + tu_rand_below(&g->rng, max_regions - 2));
	assert_int_equal(mv_memory_commit(g->mem), 0);
	return as;
}

static void free_tree(mv_address_space *as)
{
	mv_address_space_free(as);
	rt_release(&g->tree);
	if (mv_memory_global_dirty_log(g->mem))
		mv_memory_global_dirty_log_stop(g->mem);
}

static bool selected(long i)
{
	return g->only < 0 || g->only == i;
}

/* ------------------------------------------------------------------ */
/* Tests                                                                */

static void test_random_trees(void **state)
{
	(void)state;
	for (long i = 0; i < NR_TREES; i++) {
		mv_address_space *as;
		bool ok;

		if (!selected(i))
			continue;
		as = new_tree((uint64_t)i, 40);
		if (tu_rand_below(&g->rng, 8) == 0)
			mv_memory_global_dirty_log_start(g->mem);
		ok = check_as(as, "tree", i) && check_order("tree", i);
		free_tree(as);
		if (!ok)
			fail_msg("random tree %ld differs (see above)", i);
	}
	printf("# %d trees: %lu ranges, %lu lookups; %lu alias renders, %lu with negative "
	       "base, %lu units painted above 2^63\n",
	       NR_TREES, g->ranges, g->lookups, g->canvas.alias_renders, g->canvas.neg_base,
	       g->canvas.top_units);
}

/*
 * Random edits with nested transactions. Inside a transaction nothing may
 * be published; after each outermost commit the view must match.
 */
static bool run_edit_seq(long idx)
{
	mv_address_space *as = new_tree((uint64_t)idx + 1000000, 28);
	mv_flatview *before = NULL;
	uint64_t renders = 0;
	unsigned depth = 0;
	bool ok = check_as(as, "edit sequence", idx);

	for (int e = 0; ok && (e < EDITS_PER_SEQ || depth); e++) {
		unsigned k = (unsigned)tu_rand_below(&g->rng, 100);

		if (e >= EDITS_PER_SEQ || (k < 12 && depth)) {
			assert_int_equal(mv_memory_commit(g->mem), 0);
			rt_note(&g->tree, "commit (depth %u)", depth - 1);
			if (--depth)
				continue;
			mv_flatview_unref(before);
			before = NULL;
			ok = check_as(as, "edit sequence", idx) && check_order("edit sequence", idx);
			continue;
		}
		if (k < 24 && depth < 3) {
			if (!depth++) {
				before = mv_address_space_get_flatview(as);
				renders = mv_memory_render_count(g->mem);
			}
			rt_note(&g->tree, "begin (depth %u)", depth);
			mv_memory_begin(g->mem);
			continue;
		}
		rt_random_edit(&g->tree, true);
		if (!depth) {
			ok = check_as(as, "edit sequence", idx) && check_order("edit sequence", idx);
		} else {
			mv_flatview *now = mv_address_space_get_flatview(as);

			if (now != before || mv_memory_render_count(g->mem) != renders) {
				report("edit sequence", idx, "a FlatView was rendered/published inside a transaction");
				ok = false;
			}
			mv_flatview_unref(now);
		}
	}
	while (depth--)
		mv_memory_commit(g->mem);
	mv_flatview_unref(before);
	free_tree(as);
	return ok;
}

static void test_random_edits(void **state)
{
	(void)state;
	for (long i = 0; i < NR_EDIT_SEQS; i++)
		if (selected(i) && !run_edit_seq(i))
			fail_msg("edit sequence %ld differs (see above)", i);
}

/*
 * Batching: N edits in one transaction (nested or not) render once; a
 * transaction that changes nothing renders nothing.
 */
static void test_transaction_renders_once(void **state)
{
	(void)state;
	for (long i = 0; i < 300; i++) {
		mv_address_space *as;
		uint64_t before;
		int n;

		if (!selected(i))
			continue;
		as = new_tree((uint64_t)i + 2000000, 16);
		n = 2 + (int)tu_rand_below(&g->rng, 30);
		before = mv_memory_render_count(g->mem);
		mv_memory_begin(g->mem);
		/* One edit that QEMU always re-renders for: the root is enabled. */
		mv_region_set_readonly(g->tree.r[0], !mv_region_readonly(g->tree.r[0]));
		for (int e = 0; e < n; e++) {
			if (tu_rand_below(&g->rng, 4) == 0) {
				mv_memory_begin(g->mem);
				rt_random_edit(&g->tree, true);
				assert_int_equal(mv_memory_commit(g->mem), 0);
			} else {
				rt_random_edit(&g->tree, true);
			}
		}
		assert_int_equal(mv_memory_render_count(g->mem), before);
		assert_int_equal(mv_memory_commit(g->mem), 0);
		assert_int_equal(mv_memory_render_count(g->mem), before + 1);
		if (!check_as(as, "batched transaction", i))
			fail_msg("batched transaction %ld differs", i);

		/* Nothing changes: no render. */
		before = mv_memory_render_count(g->mem);
		mv_memory_begin(g->mem);
		mv_region_set_enabled(g->tree.r[0], true);
		mv_region_set_readonly(g->tree.r[0], mv_region_readonly(g->tree.r[0]));
		assert_int_equal(mv_memory_commit(g->mem), 0);
		assert_int_equal(mv_memory_render_count(g->mem), before);
		free_tree(as);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_random_trees),
		cmocka_unit_test(test_random_edits),
		cmocka_unit_test(test_transaction_renders_once),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
