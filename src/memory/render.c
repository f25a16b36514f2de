/*
 * Rendering a region tree into FlatView ranges.
 *
 * QEMU's render_memory_region paints each terminating region, in render
 * order (children in list order before the parent's own contents, i.e.
 * post-order), into the gaps left by everything painted before it, then
 * flatview_simplify merges neighbours. QEMU finds the gaps by scanning the
 * ranges from the start and inserts with memmove: quadratic in the number
 * of regions.
 *
 * We compute the same picture in O(n log n): a walk collects one "piece"
 * per visible terminating region (its clipped range, numbered in render
 * order), then a sweep over the sorted piece starts keeps the active pieces
 * in a min-heap on that number. At every point the earliest-rendered piece
 * covering it wins, which is exactly what painting into gaps produces.
 * The test suite checks this against a naive page painter.
 */
#include "memory/internal.h"

#include <errno.h>
#include <stdlib.h>

typedef __int128 s128;   /* render bases can go negative through alias offsets */

typedef struct piece {
	s128 start, end;        /* clipped range in the address space */
	s128 base;              /* address of the region's byte 0 */
	mv_region *mr;
	uint32_t seq;           /* render order: lower wins */
	bool readonly, nonvolatile;
} piece;

typedef struct render_ctx {
	const mv_allocator *alloc;
	piece *pieces;
	size_t nr, cap;
	int err;
} render_ctx;

static void collect(render_ctx *c, mv_region *mr, s128 base, s128 clip_start, s128 clip_end,
		    bool readonly, bool nonvolatile)
{
	s128 start, end;

	if (!mr->enabled || c->err)
		return;
	base += mr->addr;
	readonly |= mr->readonly;
	nonvolatile |= mr->nonvolatile;
	start = base > clip_start ? base : clip_start;
	end = base + (s128)mr->size < clip_end ? base + (s128)mr->size : clip_end;
	if (start >= end)
		return;
	if (mr->kind == MV_REGION_ALIAS) {
		mv_alias_region *a = (mv_alias_region *)mr;

		/* The target renders at base - target->addr - offset (QEMU). */
		collect(c, a->target, base - (s128)a->target->addr - (s128)a->offset,
			start, end, readonly, nonvolatile);
		return;
	}
	for (size_t i = 0; i < mr->nr_subregions; i++)
		collect(c, mr->subregions[i], base, start, end, readonly, nonvolatile);
	if (!mv_region_terminates(mr))
		return;
	if (mv_grow(c->alloc, (void **)&c->pieces, &c->cap, c->nr + 1, sizeof(piece))) {
		c->err = -ENOMEM;
		return;
	}
	c->pieces[c->nr] = (piece){ start, end, base, mr, (uint32_t)c->nr, readonly, nonvolatile };
	c->nr++;
}

static int cmp_start(const void *a, const void *b)
{
	const piece *x = a, *y = b;

	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Binary min-heap of piece indices ordered by seq. */
typedef struct heap {
	const piece *p;
	uint32_t *v;
	size_t n;
} heap;

static void heap_push(heap *h, uint32_t idx)
{
	size_t i = h->n++;

	while (i && h->p[h->v[(i - 1) / 2]].seq > h->p[idx].seq) {
		h->v[i] = h->v[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	h->v[i] = idx;
}

static void heap_pop(heap *h)
{
	uint32_t last = h->v[--h->n];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= h->n)
			break;
		if (c + 1 < h->n && h->p[h->v[c + 1]].seq < h->p[h->v[c]].seq)
			c++;
		if (h->p[h->v[c]].seq >= h->p[last].seq)
			break;
		h->v[i] = h->v[c];
		i = c;
	}
	if (h->n)
		h->v[i] = last;
}

static int emit(mv_flatview *fv, const piece *p, s128 from, s128 to)
{
	mv_flat_range fr = {
		.start = (uint64_t)from,
		.size = (mv_u128)(to - from),
		.mr = p->mr,
		.offset_in_region = (uint64_t)(from - p->base),
		.dirty_log_mask = mv_region_dirty_log_mask(p->mr),
		.romd_mode = p->mr->kind == MV_REGION_ROMD && ((mv_romd_region *)p->mr)->romd_mode,
		.readonly = p->readonly,
		.nonvolatile = p->nonvolatile,
	};

	return mv_flatview_insert(fv, fv->nr, &fr);
}

/* Sweep: at every point the lowest-seq active piece is what QEMU paints. */
static int sweep(mv_flatview *fv, piece *pc, size_t n, const mv_allocator *alloc)
{
	heap h = { pc, mv_realloc(alloc, NULL, (n ? n : 1) * sizeof(uint32_t)), 0 };
	size_t i = 0;
	s128 x = 0;
	int ret = 0;

	if (!h.v)
		return -ENOMEM;
	if (n)
		qsort(pc, n, sizeof(*pc), cmp_start);
	while (!ret && (i < n || h.n)) {
		if (!h.n && pc[i].start > x)
			x = pc[i].start;
		while (i < n && pc[i].start <= x)
			heap_push(&h, (uint32_t)i++);
		while (h.n && pc[h.v[0]].end <= x)
			heap_pop(&h);
		if (!h.n)
			continue;
		s128 next = pc[h.v[0]].end;

		if (i < n && pc[i].start < next)
			next = pc[i].start;
		ret = emit(fv, &pc[h.v[0]], x, next);
		x = next;
	}
	mv_free(alloc, h.v);
	return ret;
}

/* Render @root into @fv's ranges (not yet simplified). */
int mv_render(mv_flatview *fv, mv_region *root)
{
	render_ctx c = { .alloc = fv->mem->alloc };
	int ret;

	if (root)
		collect(&c, root, 0, 0, (s128)MV_2_64, false, false);
	ret = c.err ? c.err : sweep(fv, c.pieces, c.nr, c.alloc);
	mv_free(c.alloc, c.pieces);
	return ret;
}

/* QEMU's can_merge(). */
static bool can_merge(const mv_flat_range *a, const mv_flat_range *b)
{
	return (mv_u128)a->start + a->size == b->start && a->mr == b->mr &&
	       (mv_u128)a->offset_in_region + a->size == b->offset_in_region &&
	       a->dirty_log_mask == b->dirty_log_mask && a->romd_mode == b->romd_mode &&
	       a->readonly == b->readonly && a->nonvolatile == b->nonvolatile;
}

void mv_flatview_simplify(mv_flatview *fv)
{
	size_t out = 0;

	for (size_t i = 0; i < fv->nr; i++) {
		if (out && can_merge(&fv->ranges[out - 1], &fv->ranges[i]))
			fv->ranges[out - 1].size += fv->ranges[i].size;
		else
			fv->ranges[out++] = fv->ranges[i];
	}
	fv->nr = out;
}

/*
 * QEMU's memory_region_get_flatview_root(): skip a root that is an alias of
 * a whole region, or a container whose only enabled child covers it from
 * offset 0, so that address spaces with equivalent roots share a FlatView.
 */
mv_region *mv_flatview_root_of(mv_region *mr)
{
	while (mr && mr->enabled) {
		/*
		 * QEMU skips such a region even when it is readonly/nonvolatile,
		 * losing the attribute for the whole view; we keep it.
		 */
		if (mr->readonly || mr->nonvolatile)
			return mr;
		if (mr->kind == MV_REGION_ALIAS) {
			mv_alias_region *a = (mv_alias_region *)mr;

			if (a->offset == 0 && mr->size >= a->target->size) {
				mr = a->target;
				continue;
			}
		} else if (!mv_region_terminates(mr)) {
			mv_region *next = NULL;
			unsigned found = 0;

			for (size_t i = 0; i < mr->nr_subregions; i++) {
				mv_region *child = mr->subregions[i];

				if (!child->enabled)
					continue;
				if (++found > 1) {
					next = NULL;
					break;
				}
				if (child->addr == 0 && mr->size >= child->size)
					next = child;
			}
			if (found == 0)
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
