/*
 * Naive references for the randomized FlatView and listener tests (and the
 * baseline of bench/bench_commit.c). Header-only: every test executable is
 * built from one test_*.c plus testutil.c.
 *
 * Part 1, no test dependencies:
 *   - ref_canvas: paints a region tree unit by unit, exactly as QEMU's
 *     render_memory_region defines the picture (a unit is painted by the
 *     first terminating region that reaches it, in render order), then
 *     coalesces painted units into maximal runs. That is what
 *     render_memory_region + flatview_simplify produce, by construction.
 *   - ref_qemu_render: QEMU's own quadratic algorithm (scan the ranges,
 *     insert into the gaps with memmove) plus flatview_simplify, byte exact.
 *     The tests check painter == quadratic == library; the bench times it.
 *   - ref_flatview_root: QEMU's memory_region_get_flatview_root.
 *   - printing of trees and views for failure reports.
 * Part 2, only when testutil.h was included first: the random tree
 * generator and random edits shared by both randomized tests, with a model
 * of QEMU's child order and of its "update pending" rule per edit.
 */
#ifndef MV_TESTS_REF_RENDER_H
#define MV_TESTS_REF_RENDER_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memvirt/memory.h"
#include "memory/internal.h"    /* per-region dirty log masks */

typedef __int128 ref_s128;      /* render bases go negative through alias offsets */

static inline ref_s128 ref_max(ref_s128 a, ref_s128 b) { return a > b ? a : b; }
static inline ref_s128 ref_min(ref_s128 a, ref_s128 b) { return a < b ? a : b; }

static inline void *ref_xrealloc(void *p, size_t size)
{
	p = realloc(p, size);
	if (!p) {
		fprintf(stderr, "ref_render: out of memory\n");
		abort();
	}
	return p;
}

/* ------------------------------------------------------------------ */
/* Views: growable arrays of flat ranges                                */

typedef struct ref_view {
	mv_flat_range *r;
	size_t n, cap;
} ref_view;

static inline void ref_view_insert(ref_view *v, size_t pos, const mv_flat_range *fr)
{
	if (v->n == v->cap) {
		v->cap = v->cap ? 2 * v->cap : 32;
		v->r = ref_xrealloc(v->r, v->cap * sizeof(*v->r));
	}
	memmove(&v->r[pos + 1], &v->r[pos], (v->n - pos) * sizeof(*v->r));
	v->r[pos] = *fr;
	v->n++;
}

static inline void ref_view_free(ref_view *v)
{
	free(v->r);
	memset(v, 0, sizeof(*v));
}

/* Copy @src into @dst (reusing @dst's storage). */
static inline void ref_view_copy(ref_view *dst, const ref_view *src)
{
	if (dst->cap < src->n) {
		dst->cap = src->n;
		dst->r = ref_xrealloc(dst->r, dst->cap * sizeof(*dst->r));
	}
	if (src->n)
		memcpy(dst->r, src->r, src->n * sizeof(*src->r));
	dst->n = src->n;
}

/* ------------------------------------------------------------------ */
/* Attributes of a rendered range                                       */

/*
 * QEMU's memory_region_get_dirty_log_mask: the region's own clients, plus
 * MIGRATION on RAM-backed regions while global dirty tracking is on.
 */
static inline uint8_t ref_own_mask(mv_region *mr)
{
	switch (mv_region_get_kind(mr)) {
	case MV_REGION_RAM:
	case MV_REGION_ROM:
		return ((mv_ram_region *)mr)->dirty_log_mask;
	case MV_REGION_ROMD:
		return ((mv_romd_region *)mr)->dirty_log_mask;
	default:
		return 0;
	}
}

static inline uint8_t ref_dirty_mask(mv_region *mr)
{
	mv_region_kind k = mv_region_get_kind(mr);
	uint8_t m = ref_own_mask(mr);

	/* RAM, ROM and ROM devices all have a RAM block. */
	if ((k == MV_REGION_RAM || k == MV_REGION_ROM || k == MV_REGION_ROMD) &&
	    mv_memory_global_dirty_log(mr->mem))
		m |= 1u << MV_DIRTY_MIGRATION;
	return m;
}

/* memvirt reports romd_mode true only for a ROM device in romd mode. */
static inline bool ref_romd_mode(mv_region *mr)
{
	mv_romd_region *d = mv_region_as_romd(mr);

	return d && mv_romd_region_mode(d);
}

static inline bool ref_terminates(mv_region *mr)
{
	mv_region_kind k = mv_region_get_kind(mr);

	return k != MV_REGION_CONTAINER && k != MV_REGION_ALIAS;
}

static inline mv_flat_range ref_range(mv_region *mr, bool ro, bool nv)
{
	return (mv_flat_range){
		.mr = mr,
		.dirty_log_mask = ref_dirty_mask(mr),
		.romd_mode = ref_romd_mode(mr),
		.readonly = ro,
		.nonvolatile = nv,
	};
}

/* Everything QEMU's can_merge compares except position. */
static inline bool ref_same_attrs(const mv_flat_range *a, const mv_flat_range *b)
{
	return a->mr == b->mr && a->dirty_log_mask == b->dirty_log_mask &&
	       a->romd_mode == b->romd_mode && a->readonly == b->readonly &&
	       a->nonvolatile == b->nonvolatile;
}

static inline bool ref_range_equal(const mv_flat_range *a, const mv_flat_range *b)
{
	return a->start == b->start && a->size == b->size &&
	       a->offset_in_region == b->offset_in_region && ref_same_attrs(a, b);
}

/* ------------------------------------------------------------------ */
/* QEMU's memory_region_get_flatview_root                               */

/*
 * One deliberate difference (docs/memory.md): a readonly or nonvolatile
 * region is kept as the root, so its attribute is not lost.
 */
static inline mv_region *ref_flatview_root(mv_region *mr)
{
	while (mr && mv_region_enabled(mr)) {
		mv_alias_region *a = mv_region_as_alias(mr);

		if (mv_region_readonly(mr) || mv_region_nonvolatile(mr))
			return mr;

		if (a) {
			mv_region *t = mv_alias_region_target(a);

			/* The alias shows its target whole: render the target. */
			if (!mv_alias_region_offset(a) && mv_region_size(mr) >= mv_region_size(t)) {
				mr = t;
				continue;
			}
		} else if (!ref_terminates(mr)) {
			mv_region *next = NULL;
			unsigned found = 0;

			for (size_t i = 0; i < mv_region_nr_subregions(mr); i++) {
				mv_region *c = mv_region_subregion(mr, i);

				if (!mv_region_enabled(c))
					continue;
				if (++found > 1) {
					next = NULL;
					break;
				}
				if (!mv_region_addr(c) && mv_region_size(mr) >= mv_region_size(c))
					next = c;
			}
			if (!found)
				return NULL;
			if (next) {
				mr = next;
				continue;
			}
		}
		return mr;
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* QEMU's quadratic renderer (render_memory_region + flatview_simplify) */

/* Paint @mr's own contents [s, e) into the gaps of @v, as QEMU does. */
static inline void ref_qemu_fill(ref_view *v, mv_flat_range fr, ref_s128 base,
				 ref_s128 s, ref_s128 e)
{
	ref_s128 off = s - base, b = s, remain = e - s;
	size_t i;

	for (i = 0; i < v->n && remain; ++i) {
		ref_s128 rs = v->r[i].start, re = rs + (ref_s128)v->r[i].size, now;

		if (b >= re)
			continue;
		if (b < rs) {
			now = ref_min(remain, rs - b);
			fr.offset_in_region = (uint64_t)off;
			fr.start = (uint64_t)b;
			fr.size = (mv_u128)now;
			ref_view_insert(v, i, &fr);
			++i;
			b += now;
			off += now;
			remain -= now;
		}
		/* Skip the part already painted by range i. */
		now = ref_min(b + remain, re) - b;
		b += now;
		off += now;
		remain -= now;
	}
	if (remain) {
		fr.offset_in_region = (uint64_t)off;
		fr.start = (uint64_t)b;
		fr.size = (mv_u128)remain;
		ref_view_insert(v, i, &fr);
	}
}

static inline void ref_qemu_render(ref_view *v, mv_region *mr, ref_s128 base,
				   ref_s128 cs, ref_s128 ce, bool ro, bool nv)
{
	mv_alias_region *a;
	ref_s128 s, e;

	if (!mv_region_enabled(mr))
		return;
	base += mv_region_addr(mr);
	ro |= mv_region_readonly(mr);
	nv |= mv_region_nonvolatile(mr);
	s = ref_max(base, cs);
	e = ref_min(base + (ref_s128)mv_region_size(mr), ce);
	if (s >= e)
		return;
	a = mv_region_as_alias(mr);
	if (a) {
		mv_region *t = mv_alias_region_target(a);

		ref_qemu_render(v, t, base - mv_region_addr(t) - mv_alias_region_offset(a),
				s, e, ro, nv);
		return;
	}
	for (size_t i = 0; i < mv_region_nr_subregions(mr); i++)
		ref_qemu_render(v, mv_region_subregion(mr, i), base, s, e, ro, nv);
	if (ref_terminates(mr))
		ref_qemu_fill(v, ref_range(mr, ro, nv), base, s, e);
}

/* QEMU's flatview_simplify (compares each range with its original left neighbour). */
static inline void ref_qemu_simplify(ref_view *v)
{
	size_t i = 0, j;

	while (i < v->n) {
		j = i + 1;
		while (j < v->n && ref_same_attrs(&v->r[j - 1], &v->r[j]) &&
		       (mv_u128)v->r[j - 1].start + v->r[j - 1].size == v->r[j].start &&
		       (mv_u128)v->r[j - 1].offset_in_region + v->r[j - 1].size ==
			       v->r[j].offset_in_region) {
			v->r[i].size += v->r[j].size;
			++j;
		}
		++i;
		if (j != i)
			memmove(&v->r[i], &v->r[j], (v->n - j) * sizeof(*v->r));
		v->n -= j - i;
	}
}

/* QEMU's generate_memory_topology minus dispatch, for FlatView root @root. */
static inline void ref_qemu_generate(ref_view *v, mv_region *root)
{
	v->n = 0;
	if (root)
		ref_qemu_render(v, root, 0, 0, (ref_s128)MV_2_64, false, false);
	ref_qemu_simplify(v);
}

/* ------------------------------------------------------------------ */
/* The painter                                                          */

typedef struct ref_cell {
	mv_region *mr;          /* NULL: not painted yet */
	uint64_t off;           /* offset of the unit in mr */
	uint8_t mask;
	bool ro, nv, romd;
} ref_cell;

#define REF_MAX_WIN 2

/*
 * Only windows of the address space are painted: the generator keeps every
 * visible byte inside them. Painting outside counts in ->outside, which
 * the tests treat as a generator bug (the comparison would be unsound).
 */
typedef struct ref_canvas {
	uint64_t unit;
	size_t max_cells;
	size_t nwin;
	struct ref_window {
		mv_u128 start, end;
		ref_cell *cells;
	} win[REF_MAX_WIN];
	unsigned long outside, misaligned;
	/* What the trees exercised, reported by the tests. */
	unsigned long neg_base, top_units, alias_renders;
} ref_canvas;

static inline void ref_canvas_init(ref_canvas *c, uint64_t unit, size_t max_cells)
{
	memset(c, 0, sizeof(*c));
	c->unit = unit;
	c->max_cells = max_cells;
	for (size_t i = 0; i < REF_MAX_WIN; i++)
		c->win[i].cells = ref_xrealloc(NULL, max_cells * sizeof(ref_cell));
}

static inline void ref_canvas_destroy(ref_canvas *c)
{
	for (size_t i = 0; i < REF_MAX_WIN; i++)
		free(c->win[i].cells);
}

/* Set the windows (sorted, disjoint) and clear them. False if too big. */
static inline bool ref_canvas_windows(ref_canvas *c, size_t n, const mv_u128 *start,
				      const mv_u128 *end)
{
	c->nwin = n;
	for (size_t i = 0; i < n; i++) {
		mv_u128 cells = (end[i] - start[i]) / c->unit;

		if (cells > c->max_cells)
			return false;
		c->win[i].start = start[i];
		c->win[i].end = end[i];
		memset(c->win[i].cells, 0, (size_t)cells * sizeof(ref_cell));
	}
	return true;
}

static inline void ref_paint_units(ref_canvas *c, mv_region *mr, ref_s128 base,
				   ref_s128 s, ref_s128 e, bool ro, bool nv)
{
	mv_flat_range fr = ref_range(mr, ro, nv);
	ref_s128 covered = 0;

	for (size_t w = 0; w < c->nwin; w++) {
		struct ref_window *win = &c->win[w];
		ref_s128 a = ref_max(s, (ref_s128)win->start);
		ref_s128 b = ref_min(e, (ref_s128)win->end);

		if (a >= b)
			continue;
		covered += b - a;
		if ((a - (ref_s128)win->start) % c->unit || (b - a) % c->unit)
			c->misaligned++;
		for (ref_s128 x = a; x < b; x += c->unit) {
			ref_cell *cell = &win->cells[(size_t)((x - (ref_s128)win->start) / c->unit)];

			if (cell->mr)
				continue;       /* painted earlier in render order */
			*cell = (ref_cell){ mr, (uint64_t)(x - base), fr.dirty_log_mask,
					    ro, nv, fr.romd_mode };
			if (x >= (ref_s128)(MV_2_64 >> 1))
				c->top_units++;
		}
	}
	if (covered != e - s)
		c->outside++;
}

/* render_memory_region's walk, painting units instead of inserting ranges. */
static inline void ref_paint(ref_canvas *c, mv_region *mr, ref_s128 base,
			     ref_s128 cs, ref_s128 ce, bool ro, bool nv)
{
	mv_alias_region *a;
	ref_s128 s, e;

	if (!mv_region_enabled(mr))
		return;
	base += mv_region_addr(mr);
	ro |= mv_region_readonly(mr);
	nv |= mv_region_nonvolatile(mr);
	s = ref_max(base, cs);
	e = ref_min(base + (ref_s128)mv_region_size(mr), ce);
	if (s >= e)
		return;
	a = mv_region_as_alias(mr);
	if (a) {
		mv_region *t = mv_alias_region_target(a);
		ref_s128 tbase = base - mv_region_addr(t) - mv_alias_region_offset(a);

		c->alias_renders++;
		if (tbase + mv_region_addr(t) < 0)
			c->neg_base++;
		ref_paint(c, t, tbase, s, e, ro, nv);
		return;
	}
	for (size_t i = 0; i < mv_region_nr_subregions(mr); i++)
		ref_paint(c, mv_region_subregion(mr, i), base, s, e, ro, nv);
	if (ref_terminates(mr))
		ref_paint_units(c, mr, base, s, e, ro, nv);
}

/* Coalesce painted units into maximal runs: the simplified FlatView. */
static inline void ref_canvas_view(const ref_canvas *c, ref_view *v)
{
	v->n = 0;
	for (size_t w = 0; w < c->nwin; w++) {
		const struct ref_window *win = &c->win[w];
		size_t cells = (size_t)((win->end - win->start) / c->unit);

		for (size_t i = 0; i < cells; i++) {
			const ref_cell *cell = &win->cells[i];
			mv_flat_range fr, *last = v->n ? &v->r[v->n - 1] : NULL;

			if (!cell->mr)
				continue;
			fr = (mv_flat_range){
				.start = (uint64_t)(win->start + (mv_u128)i * c->unit),
				.size = c->unit,
				.mr = cell->mr,
				.offset_in_region = cell->off,
				.dirty_log_mask = cell->mask,
				.romd_mode = cell->romd,
				.readonly = cell->ro,
				.nonvolatile = cell->nv,
			};
			if (last && (mv_u128)last->start + last->size == fr.start &&
			    (mv_u128)last->offset_in_region + last->size == fr.offset_in_region &&
			    ref_same_attrs(last, &fr))
				last->size += c->unit;
			else
				ref_view_insert(v, v->n, &fr);
		}
	}
}

/* Paint the FlatView root @root (may be NULL) and coalesce into @v. */
static inline void ref_canvas_render(ref_canvas *c, mv_region *root, ref_view *v)
{
	if (root)
		ref_paint(c, root, 0, 0, (ref_s128)MV_2_64, false, false);
	ref_canvas_view(c, v);
}

/* ------------------------------------------------------------------ */
/* Printing                                                             */

static inline void ref_print_u128(FILE *f, mv_u128 x)
{
	if (x >> 64)
		fprintf(f, "0x%llx%016llx", (unsigned long long)(x >> 64),
			(unsigned long long)(uint64_t)x);
	else
		fprintf(f, "0x%llx", (unsigned long long)x);
}

static inline const char *ref_kind_name(mv_region_kind k)
{
	static const char *const names[] = {
		[MV_REGION_CONTAINER] = "container", [MV_REGION_RAM] = "ram",
		[MV_REGION_ROM] = "rom", [MV_REGION_IO] = "io", [MV_REGION_ROMD] = "romd",
		[MV_REGION_ALIAS] = "alias", [MV_REGION_RESERVATION] = "reservation",
	};

	return k <= MV_REGION_RESERVATION ? names[k] : "?";
}

/* One line per region, children indented, in render (list) order. */
static inline void ref_dump_tree(FILE *f, mv_region *mr, int depth)
{
	mv_alias_region *a = mv_region_as_alias(mr);

	fprintf(f, "%*s%s %s addr=0x%llx size=", 2 * depth, "", mv_region_name(mr),
		ref_kind_name(mv_region_get_kind(mr)), (unsigned long long)mv_region_addr(mr));
	ref_print_u128(f, mv_region_size(mr));
	fprintf(f, " prio=%d%s%s%s", mv_region_priority(mr), mv_region_enabled(mr) ? "" : " DISABLED",
		mv_region_readonly(mr) ? " ro" : "", mv_region_nonvolatile(mr) ? " nv" : "");
	if (mv_region_as_romd(mr))
		fprintf(f, " romd_mode=%d", mv_romd_region_mode(mv_region_as_romd(mr)));
	if (ref_dirty_mask(mr))
		fprintf(f, " log=%x", ref_dirty_mask(mr));
	if (a)
		fprintf(f, " -> %s @0x%llx", mv_region_name(mv_alias_region_target(a)),
			(unsigned long long)mv_alias_region_offset(a));
	fprintf(f, "\n");
	if (depth > 64)
		return;
	for (size_t i = 0; i < mv_region_nr_subregions(mr); i++)
		ref_dump_tree(f, mv_region_subregion(mr, i), depth + 1);
}

static inline void ref_print_range(FILE *f, const mv_flat_range *fr)
{
	fprintf(f, "  0x%016llx size ", (unsigned long long)fr->start);
	ref_print_u128(f, fr->size);
	fprintf(f, " %s @0x%llx%s%s%s log=%x\n", fr->mr ? mv_region_name(fr->mr) : "(null)",
		(unsigned long long)fr->offset_in_region, fr->readonly ? " ro" : "",
		fr->nonvolatile ? " nv" : "", fr->romd_mode ? " romd" : "", fr->dirty_log_mask);
}

static inline void ref_print_ranges(FILE *f, const char *title, const mv_flat_range *r, size_t n)
{
	fprintf(f, "%s (%zu ranges):\n", title, n);
	for (size_t i = 0; i < n; i++)
		ref_print_range(f, &r[i]);
}

/* Index of the first difference between two range lists, or -1. */
static inline long ref_ranges_diff(const mv_flat_range *a, size_t na,
				   const mv_flat_range *b, size_t nb)
{
	size_t n = na < nb ? na : nb;

	for (size_t i = 0; i < n; i++)
		if (!ref_range_equal(&a[i], &b[i]))
			return (long)i;
	return na == nb ? -1 : (long)n;
}

/* Copy a published FlatView's ranges into @v. */
static inline void ref_view_from_fv(ref_view *v, mv_flatview *fv)
{
	size_t n = mv_flatview_nr_ranges(fv);

	v->n = 0;
	for (size_t i = 0; i < n; i++)
		ref_view_insert(v, i, mv_flatview_range(fv, i));
}

/* ------------------------------------------------------------------ */
/* Part 2: random trees (tests only)                                    */

#ifdef MV_TESTUTIL_H

/*
 * Address universe: regions are aligned to RT_UNIT; children of the root
 * sit inside one of two windows of RT_WIN bytes, at 0 and just below 2^64,
 * so everything visible lies in a window and the painter stays small.
 * Deeper regions, alias targets and alias offsets may be anywhere.
 */
#define RT_UNIT ((uint64_t)512)
#define RT_WIN ((uint64_t)64 * 4096)
#define RT_HIGH ((uint64_t)(MV_2_64 - RT_WIN))
#define RT_CELLS (RT_WIN / RT_UNIT)
#define RT_MAXR 48
#define RT_LOG 48

static const mv_region_ops rt_ops;     /* NULL callbacks: enough to render */

typedef struct rt_tree {
	mv_memory *mem;
	uint64_t *rng;
	mv_ramblock *const *blocks;
	size_t nblocks;
	unsigned serial;        /* region names */
	size_t n;               /* r[0] is the root */
	mv_region *r[RT_MAXR];  /* one reference each */
	/* QEMU's child order, kept independently of the library. */
	int prio[RT_MAXR];
	uint8_t kids[RT_MAXR][RT_MAXR];
	uint8_t nkids[RT_MAXR];
	/* Recent edits, printed when a check fails. */
	char log[RT_LOG][112];
	unsigned nlog;
} rt_tree;

static inline uint64_t rt_below(rt_tree *t, uint64_t n) { return tu_rand_below(t->rng, n); }
static inline bool rt_chance(rt_tree *t, unsigned percent) { return rt_below(t, 100) < percent; }

static inline void rt_note(rt_tree *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static inline void rt_note(rt_tree *t, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(t->log[t->nlog++ % RT_LOG], sizeof(t->log[0]), fmt, ap);
	va_end(ap);
}

static inline int rt_index(const rt_tree *t, const mv_region *mr)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->r[i] == mr)
			return (int)i;
	return -1;
}

/* QEMU's memory_region_update_container_subregions: before the first child with prio <= ours. */
static inline void rt_model_insert(rt_tree *t, int p, int c)
{
	unsigned pos;

	for (pos = 0; pos < t->nkids[p]; pos++)
		if (t->prio[c] >= t->prio[t->kids[p][pos]])
			break;
	memmove(&t->kids[p][pos + 1], &t->kids[p][pos], t->nkids[p] - pos);
	t->kids[p][pos] = (uint8_t)c;
	t->nkids[p]++;
}

static inline void rt_model_remove(rt_tree *t, int p, int c)
{
	unsigned pos = 0;

	while (t->kids[p][pos] != c)
		pos++;
	memmove(&t->kids[p][pos], &t->kids[p][pos + 1], t->nkids[p] - pos - 1);
	t->nkids[p]--;
}

/* First region whose library child order differs from QEMU's, or -1. */
static inline int rt_check_order(const rt_tree *t)
{
	for (size_t i = 0; i < t->n; i++) {
		if (mv_region_nr_subregions(t->r[i]) != t->nkids[i])
			return (int)i;
		for (unsigned k = 0; k < t->nkids[i]; k++)
			if (mv_region_subregion(t->r[i], k) != t->r[t->kids[i][k]])
				return (int)i;
	}
	return -1;
}

static inline mv_u128 rt_small_size(rt_tree *t)
{
	return RT_UNIT * (1 + rt_below(t, 96));
}

static inline mv_u128 rt_huge_size(rt_tree *t)
{
	static const mv_u128 sizes[] = { MV_2_64, MV_2_64 >> 1, MV_2_64 - RT_WIN };

	return sizes[rt_below(t, 3)];
}

/* Offset of a child of @csize in a parent of @psize (may stick out of it). */
static inline uint64_t rt_child_offset(rt_tree *t, mv_u128 psize, mv_u128 csize)
{
	mv_u128 lim = MV_2_64 - csize, off;

	if (psize <= 4 * RT_WIN)
		off = RT_UNIT * rt_below(t, (uint64_t)(psize / RT_UNIT) + 8);
	else if (rt_chance(t, 50))
		off = RT_UNIT * rt_below(t, 2 * RT_CELLS);
	else    /* near the top of a huge parent, often crossing its end */
		off = psize - RT_UNIT * (1 + rt_below(t, 2 * RT_CELLS));
	return (uint64_t)(off > lim ? lim : off);
}

/* A place for a child of the root: inside one window. False if too big. */
static inline bool rt_top_offset(rt_tree *t, mv_u128 csize, uint64_t *off)
{
	if (csize > RT_WIN)
		return false;
	*off = RT_UNIT * rt_below(t, (uint64_t)((RT_WIN - csize) / RT_UNIT) + 1);
	if (rt_chance(t, 40))
		*off += RT_HIGH;
	return true;
}

static inline uint64_t rt_alias_offset(rt_tree *t, mv_u128 tsize)
{
	if (tsize <= 4 * RT_WIN)
		return RT_UNIT * rt_below(t, (uint64_t)(tsize / RT_UNIT) + 8);
	if (rt_chance(t, 50))
		return RT_UNIT * rt_below(t, 2 * RT_CELLS);
	/* Near the top of a huge target: the alias base goes very negative. */
	return (uint64_t)(tsize - RT_UNIT * (1 + rt_below(t, 2 * RT_CELLS)));
}

static inline int rt_push(rt_tree *t, mv_region *mr)
{
	int i = (int)t->n++;

	t->r[i] = mr;
	t->prio[i] = 0;
	t->nkids[i] = 0;
	return i;
}

static inline mv_ramblock *rt_block(rt_tree *t)
{
	return t->blocks[rt_below(t, t->nblocks)];
}

/* A new region of a random kind, detached; its index, or -1 if full. */
static inline int rt_new_region(rt_tree *t)
{
	char name[16];
	unsigned k = (unsigned)rt_below(t, 100);
	mv_region *mr = NULL;
	int ret = 0;

	if (t->n >= RT_MAXR)
		return -1;
	snprintf(name, sizeof(name), "r%u", t->serial++);
	if (k < 22 && t->n > 1) {
		mv_region *target = t->r[1 + rt_below(t, t->n - 1)];
		mv_alias_region *a;
		mv_u128 size = rt_chance(t, 85) ? rt_small_size(t) : rt_huge_size(t);

		ret = mv_alias_region_new(t->mem, name, target,
					  rt_alias_offset(t, mv_region_size(target)), size, &a);
		mr = ret ? NULL : mv_alias_region_base(a);
	} else if (k < 42) {
		ret = mv_container_new(t->mem, name,
				       rt_chance(t, 80) ? rt_small_size(t) : rt_huge_size(t), &mr);
	} else if (k < 62) {
		mv_io_region *io;

		ret = mv_io_region_new(t->mem, name,
				       rt_chance(t, 95) ? rt_small_size(t) : rt_huge_size(t),
				       &rt_ops, NULL, &io);
		mr = ret ? NULL : mv_io_region_base(io);
	} else if (k < 72) {
		ret = mv_reservation_new(t->mem, name, rt_small_size(t), &mr);
	} else if (k < 84) {
		mv_ram_region *ram;

		ret = mv_ram_region_new(t->mem, name, rt_block(t), &ram);
		mr = ret ? NULL : mv_ram_region_base(ram);
	} else if (k < 92) {
		mv_ram_region *rom;

		ret = mv_rom_region_new(t->mem, name, rt_block(t), &rom);
		mr = ret ? NULL : mv_ram_region_base(rom);
	} else {
		mv_romd_region *d;

		ret = mv_romd_region_new(t->mem, name, rt_block(t), &rt_ops, NULL, &d);
		mr = ret ? NULL : mv_romd_region_base(d);
	}
	if (ret || !mr) {
		fprintf(stderr, "rt_new_region %s: error %d\n", name, ret);
		abort();
	}
	return rt_push(t, mr);
}

/* add_subregion[_overlap] mirrored in the model. Returns the library's result. */
static inline int rt_add(rt_tree *t, int p, int c, uint64_t off, int prio, bool overlap)
{
	int ret = overlap ? mv_region_add_subregion_overlap(t->r[p], off, t->r[c], prio)
			  : mv_region_add_subregion(t->r[p], off, t->r[c]);

	rt_note(t, "add %s to %s at 0x%llx prio %d%s -> %d", mv_region_name(t->r[c]),
		mv_region_name(t->r[p]), (unsigned long long)off, overlap ? prio : 0,
		overlap ? "" : " (plain)", ret);
	if (!ret) {
		t->prio[c] = overlap ? prio : 0;
		rt_model_insert(t, p, c);
	}
	return ret;
}

/* A random parent for @c (not an alias, not @c) and a place in it; -1 if none. */
static inline int rt_pick_parent(rt_tree *t, int c, uint64_t *off)
{
	mv_u128 csize = mv_region_size(t->r[c]);

	for (int tries = 0; tries < 8; tries++) {
		int p = rt_chance(t, 45) ? 0 : (int)rt_below(t, t->n);

		if (p == c || mv_region_get_kind(t->r[p]) == MV_REGION_ALIAS)
			continue;
		if (p == 0) {
			if (rt_top_offset(t, csize, off))
				return 0;
			continue;
		}
		*off = rt_child_offset(t, mv_region_size(t->r[p]), csize);
		return p;
	}
	return -1;
}

static inline int rt_random_prio(rt_tree *t)
{
	return (int)rt_below(t, 5) - 2;
}

/* Put a new region somewhere (or leave it detached as an alias target). */
static inline void rt_place(rt_tree *t, int c)
{
	uint64_t off;
	int p;

	if (rt_chance(t, 15))
		return;
	p = rt_pick_parent(t, c, &off);
	if (p >= 0)
		rt_add(t, p, c, off, rt_random_prio(t), rt_chance(t, 75));   /* -ELOOP: stays detached */
}

static inline void rt_random_flags(rt_tree *t, int i)
{
	mv_region *mr = t->r[i];

	if (rt_chance(t, 8))
		mv_region_set_enabled(mr, false);
	if (rt_chance(t, 8))
		mv_region_set_readonly(mr, !mv_region_readonly(mr));
	if (rt_chance(t, 8))
		mv_region_set_nonvolatile(mr, true);
	if (mv_region_as_romd(mr) && rt_chance(t, 50))
		mv_romd_region_set_mode(mv_region_as_romd(mr), false);
	if (mv_region_is_ram(mr) && !mv_region_as_alias(mr) && rt_chance(t, 15))
		mv_region_set_log(mr, true, (unsigned)rt_below(t, MV_DIRTY_NUM));
}

/*
 * Continue the placed alias @i with a second alias of the same target right
 * after it (offsets contiguous): the two ranges merge in the FlatView only
 * if every attribute agrees, which random flags then decide.
 */
static inline void rt_twin_alias(rt_tree *t, int i)
{
	mv_alias_region *a = mv_region_as_alias(t->r[i]), *b;
	mv_region *parent = mv_region_parent(t->r[i]);
	mv_u128 size = mv_region_size(t->r[i]);
	uint64_t addr = mv_region_addr(t->r[i]);
	char name[16];
	int p = parent ? rt_index(t, parent) : -1, c;

	if (!a || p < 0 || t->n >= RT_MAXR || (mv_u128)addr + 2 * size > MV_2_64)
		return;
	if (p == 0 && (addr + 2 * size > RT_WIN && addr < RT_HIGH))
		return;         /* the twin would leave the low window */
	snprintf(name, sizeof(name), "r%u", t->serial++);
	if (mv_alias_region_new(t->mem, name, mv_alias_region_target(a),
				mv_alias_region_offset(a) + (uint64_t)size, size, &b))
		abort();
	c = rt_push(t, mv_alias_region_base(b));
	rt_add(t, p, c, addr + (uint64_t)size, t->prio[i], true);
}

/* Start a tree: the 2^64 root container, so an address space can be made on it. */
static inline void rt_start(rt_tree *t)
{
	mv_region *root;

	t->n = 0;
	t->nlog = 0;
	t->serial = 0;
	if (mv_container_new(t->mem, "root", MV_2_64, &root))
		abort();
	rt_push(t, root);
}

/*
 * Grow the tree to about @nregions random regions with random flags (the
 * caller wraps it in a transaction if it wants one render).
 */
static inline void rt_grow(rt_tree *t, size_t nregions)
{
	size_t first = t->n;

	for (size_t k = t->n; k < nregions; k++) {
		int c = rt_new_region(t);

		if (c < 0)
			break;
		rt_place(t, c);
		if (rt_chance(t, 30))
			rt_twin_alias(t, c);
	}
	for (size_t i = first; i < t->n; i++)
		if (i)
			rt_random_flags(t, (int)i);
	if (rt_chance(t, 5))
		mv_region_set_readonly(t->r[0], true);
	if (rt_chance(t, 5))
		mv_region_set_nonvolatile(t->r[0], true);
}

static inline void rt_release(rt_tree *t)
{
	for (size_t i = 0; i < t->n; i++)
		mv_region_unref(t->r[i]);
	t->n = 0;
}

/* The tree under the root, every detached subtree, and the recent edits. */
static inline void rt_dump(const rt_tree *t, FILE *f)
{
	fprintf(f, "tree:\n");
	ref_dump_tree(f, t->r[0], 1);
	for (size_t i = 1; i < t->n; i++) {
		if (mv_region_parent(t->r[i]))
			continue;
		fprintf(f, "detached:\n");
		ref_dump_tree(f, t->r[i], 1);
	}
	if (t->nlog) {
		unsigned first = t->nlog > RT_LOG ? t->nlog - RT_LOG : 0;

		fprintf(f, "last edits (oldest first):\n");
		for (unsigned i = first; i < t->nlog; i++)
			fprintf(f, "  %s\n", t->log[i % RT_LOG]);
	}
}

/* Windows covering everything the FlatView root @froot can show. */
static inline bool rt_canvas_for(ref_canvas *c, mv_region *froot)
{
	mv_u128 s[2] = { 0 }, e[2] = { 0 };

	if (!froot)
		return ref_canvas_windows(c, 0, s, e);
	if (mv_region_addr(froot) == 0 && mv_region_size(froot) == MV_2_64) {
		s[0] = 0;
		e[0] = RT_WIN;
		s[1] = RT_HIGH;
		e[1] = MV_2_64;
		return ref_canvas_windows(c, 2, s, e);
	}
	/*
	 * A root reached through get_flatview_root renders at its own addr
	 * (an alias target keeps its addr: QEMU's behaviour); it is no larger
	 * than the child of the root it came from.
	 */
	s[0] = mv_region_addr(froot);
	e[0] = s[0] + mv_region_size(froot);
	if (e[0] > MV_2_64)
		e[0] = MV_2_64;
	return ref_canvas_windows(c, 1, s, e);
}

enum rt_want { RT_ANY, RT_DETACHED, RT_MAPPED, RT_ALIAS, RT_ROMD, RT_RAM };

static inline bool rt_is(rt_tree *t, int i, enum rt_want w)
{
	mv_region *mr = t->r[i];

	switch (w) {
	case RT_DETACHED: return !mv_region_parent(mr);
	case RT_MAPPED: return mv_region_parent(mr) != NULL;
	case RT_ALIAS: return mv_region_as_alias(mr) != NULL;
	case RT_ROMD: return mv_region_as_romd(mr) != NULL;
	case RT_RAM: return mv_region_is_ram(mr) && !mv_region_as_alias(mr);
	default: return true;
	}
}

/* A random non-root region, of the wanted sort if one turns up quickly. */
static inline int rt_pick(rt_tree *t, enum rt_want w)
{
	int i = 1;

	for (int tries = 0; tries < 16; tries++) {
		i = 1 + (int)rt_below(t, t->n - 1);
		if (rt_is(t, i, w))
			break;
	}
	return i;
}

/*
 * One random edit of the tree. Returns QEMU's memory_region_update_pending
 * contribution (computed from the state before the edit), which decides
 * whether the outermost commit re-renders and notifies listeners.
 * @allow_global: may also toggle global dirty tracking.
 */
static inline bool rt_random_edit(rt_tree *t, bool allow_global)
{
	unsigned k = (unsigned)rt_below(t, allow_global ? 104 : 100);
	int i = rt_pick(t, k < 18 ? RT_DETACHED : k < 32 || (k >= 62 && k < 78) ? RT_MAPPED :
			   k < 78 ? RT_ANY : k < 88 ? RT_ALIAS : k < 93 ? RT_ROMD : RT_RAM);
	mv_region *mr = t->r[i], *parent = mv_region_parent(mr);
	bool en = mv_region_enabled(mr);

	if (k < 18) {           /* add a detached region somewhere */
		uint64_t off;
		int p;

		if (parent)
			return false;
		p = rt_pick_parent(t, i, &off);
		if (p < 0)
			return false;
		return !rt_add(t, p, i, off, rt_random_prio(t), rt_chance(t, 75)) &&
		       mv_region_enabled(t->r[p]) && en;
	}
	if (k < 32) {           /* delete */
		bool pend;

		if (!parent)
			return false;
		pend = mv_region_enabled(parent) && en;
		rt_note(t, "del %s from %s", mv_region_name(mr), mv_region_name(parent));
		if (mv_region_del_subregion(parent, mr))
			abort();
		rt_model_remove(t, rt_index(t, parent), i);
		return pend;
	}
	if (k < 46) {
		rt_note(t, "set_enabled %s %d", mv_region_name(mr), !en);
		mv_region_set_enabled(mr, !en);
		return true;
	}
	if (k < 56) {
		rt_note(t, "set_readonly %s %d", mv_region_name(mr), !mv_region_readonly(mr));
		mv_region_set_readonly(mr, !mv_region_readonly(mr));
		return en;
	}
	if (k < 62) {
		rt_note(t, "set_nonvolatile %s %d", mv_region_name(mr), !mv_region_nonvolatile(mr));
		mv_region_set_nonvolatile(mr, !mv_region_nonvolatile(mr));
		return en;
	}
	if (k < 78) {           /* move: QEMU deletes and re-adds the region */
		mv_u128 size = mv_region_size(mr);
		uint64_t addr;
		int p = parent ? rt_index(t, parent) : -1;

		if (p == 0) {
			if (!rt_top_offset(t, size, &addr))
				return false;
		} else {
			addr = rt_child_offset(t, parent ? mv_region_size(parent) : MV_2_64, size);
		}
		rt_note(t, "set_address %s 0x%llx (was 0x%llx)", mv_region_name(mr),
			(unsigned long long)addr, (unsigned long long)mv_region_addr(mr));
		if (addr == mv_region_addr(mr))
			return false;
		if (mv_region_set_address(mr, addr))
			abort();
		if (p < 0)
			return false;
		rt_model_remove(t, p, i);
		rt_model_insert(t, p, i);
		return mv_region_enabled(parent) && en;
	}
	if (k < 88) {
		mv_alias_region *a = mv_region_as_alias(mr);
		uint64_t off;

		if (!a)
			return false;
		off = rt_alias_offset(t, mv_region_size(mv_alias_region_target(a)));
		rt_note(t, "alias_offset %s 0x%llx", mv_region_name(mr), (unsigned long long)off);
		if (off == mv_alias_region_offset(a))
			return false;
		mv_alias_region_set_offset(a, off);
		return en;
	}
	if (k < 93) {
		mv_romd_region *d = mv_region_as_romd(mr);

		if (!d)
			return false;
		rt_note(t, "romd_mode %s %d", mv_region_name(mr), !mv_romd_region_mode(d));
		mv_romd_region_set_mode(d, !mv_romd_region_mode(d));
		return en;
	}
	if (k < 100) {
		unsigned client = (unsigned)rt_below(t, MV_DIRTY_NUM);
		bool log = rt_chance(t, 60);
		uint8_t before;

		if (!mv_region_is_ram(mr) || mv_region_as_alias(mr))
			return false;
		before = ref_own_mask(mr);
		rt_note(t, "set_log %s %d client %u", mv_region_name(mr), log, client);
		mv_region_set_log(mr, log, client);
		/* QEMU: the region's own mask changed (global tracking aside). */
		return (en) && before != ref_own_mask(mr);
	}
	/* Global dirty tracking: a forced update when the state changes. */
	if (mv_memory_global_dirty_log(t->mem)) {
		rt_note(t, "global_dirty_log_stop");
		mv_memory_global_dirty_log_stop(t->mem);
	} else {
		rt_note(t, "global_dirty_log_start");
		mv_memory_global_dirty_log_start(t->mem);
	}
	return true;
}

/*
 * Common set-up of the randomized tests: a memory system, four shared RAM
 * blocks (4, 8, 16 and 64 KiB), the painter's canvas and a tree generator
 * wired to them.
 */
static inline void rt_env_init(mv_memory **mem, mv_ramblock **blocks, rt_tree *tree,
			       uint64_t *rng, ref_canvas *canvas)
{
	static const uint64_t sizes[] = { 4096, 8192, 16384, 65536 };

	assert_int_equal(mv_memory_new(NULL, mem), 0);
	for (size_t i = 0; i < 4; i++) {
		char name[8];

		snprintf(name, sizeof(name), "rb%zu", i);
		assert_int_equal(mv_ramblock_new(mv_memory_ram_list(*mem), name, sizes[i],
						 NULL, &blocks[i], NULL), 0);
	}
	ref_canvas_init(canvas, RT_UNIT, RT_CELLS);
	tree->mem = *mem;
	tree->rng = rng;
	tree->blocks = blocks;
	tree->nblocks = 4;
}

static inline void rt_env_destroy(mv_memory *mem, mv_ramblock **blocks, ref_canvas *canvas)
{
	for (size_t i = 0; i < 4; i++)
		mv_ramblock_unref(blocks[i]);
	mv_memory_free(mem);
	ref_canvas_destroy(canvas);
}

#endif /* MV_TESTUTIL_H */

#endif
