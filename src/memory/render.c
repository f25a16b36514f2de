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
 * in a min-heap on that number (starts are radix sorted: the whole render is
 * linear but for the heap). At every point the earliest-rendered piece
 * covering it wins, which is exactly what painting into gaps produces.
 * The test suite checks this against a naive page painter.
 */
#include "memory/internal.h"

#include <errno.h>
#include <string.h>

typedef __int128 s128;   /* render bases can go negative through alias offsets */

/*
 * One visible terminating region instance. Its index in the pieces array
 * is its render order: a lower index wins.
 */
typedef struct piece {
	uint64_t start;         /* clipped range [start, end) in the address space */
	mv_u128 end;
	s128 base;              /* address of the region's byte 0 */
	mv_region *mr;
	uint8_t dirty_log_mask; /* captured while the region is in cache */
	bool romd_mode, readonly, nonvolatile;
} piece;

/* Sort key: the start address and the piece index (16 bytes, radix sorted). */
typedef struct piece_key {
	uint64_t start;
	uint32_t idx;
} piece_key;

typedef struct render_ctx {
	const mv_allocator *alloc;
	piece *pieces;
	size_t nr, cap;
	int err;
} render_ctx;

static void add_piece(render_ctx *c, mv_region *mr, s128 base, s128 start, s128 end,
		      bool readonly, bool nonvolatile)
{
	if (mv_grow(c->alloc, (void **)&c->pieces, &c->cap, c->nr + 1, sizeof(piece))) {
		c->err = -ENOMEM;
		return;
	}
	mv_region_ref(mr);      /* now, while @mr is in cache; the view keeps it */
	c->pieces[c->nr++] = (piece){
		.start = (uint64_t)start,
		.end = (mv_u128)end,
		.base = base,
		.mr = mr,
		.dirty_log_mask = mv_region_dirty_log_mask(mr),
		.romd_mode = mr->kind == MV_REGION_ROMD && ((mv_romd_region *)mr)->romd_mode,
		.readonly = readonly,
		.nonvolatile = nonvolatile,
	};
}

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
	if (mv_region_terminates(mr))
		add_piece(c, mr, base, start, end, readonly, nonvolatile);
}

/*
 * LSD radix sort of @k by start, 8 bits a pass, skipping bytes that all keys
 * share: linear, and stable, so equal starts stay in render order.
 */
static void radix_sort(piece_key *k, piece_key *tmp, size_t n)
{
	for (unsigned shift = 0; shift < 64; shift += 8) {
		size_t count[257] = { 0 };

		for (size_t i = 0; i < n; i++)
			count[((k[i].start >> shift) & 0xff) + 1]++;
		if (count[((k[0].start >> shift) & 0xff) + 1] == n)
			continue;
		for (int b = 0; b < 256; b++)
			count[b + 1] += count[b];
		for (size_t i = 0; i < n; i++)
			tmp[count[(k[i].start >> shift) & 0xff]++] = k[i];
		memcpy(k, tmp, n * sizeof(*k));
	}
}

/* Binary min-heap of piece indices: the lowest index is the first rendered. */
typedef struct heap {
	uint32_t *v;
	size_t n;
} heap;

static void heap_push(heap *h, uint32_t idx)
{
	size_t i = h->n++;

	while (i && h->v[(i - 1) / 2] > idx) {
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
		if (c + 1 < h->n && h->v[c + 1] < h->v[c])
			c++;
		if (h->v[c] >= last)
			break;
		h->v[i] = h->v[c];
		i = c;
	}
	if (h->n)
		h->v[i] = last;
}

static int emit(mv_flatview *fv, const piece *p, mv_u128 from, mv_u128 to)
{
	mv_flat_range fr = {
		.start = (uint64_t)from,
		.size = to - from,
		.mr = p->mr,
		.offset_in_region = (uint64_t)((s128)from - p->base),
		.dirty_log_mask = p->dirty_log_mask,
		.romd_mode = p->romd_mode,
		.readonly = p->readonly,
		.nonvolatile = p->nonvolatile,
	};

	return mv_flatview_insert(fv, fv->nr, &fr);
}

/* Sweep the sorted starts: at every point the lowest-index active piece is what QEMU paints. */
static int sweep(mv_flatview *fv, const piece *pc, const piece_key *k, size_t n, heap *h)
{
	size_t i = 0;
	mv_u128 x = 0;
	int ret = 0;

	while (!ret && (i < n || h->n)) {
		if (!h->n && k[i].start > x)
			x = k[i].start;
		while (i < n && k[i].start <= x)
			heap_push(h, k[i++].idx);
		while (h->n && pc[h->v[0]].end <= x)
			heap_pop(h);
		if (!h->n)
			continue;
		mv_u128 next = pc[h->v[0]].end;

		if (i < n && k[i].start < next)
			next = k[i].start;
		ret = emit(fv, &pc[h->v[0]], x, next);
		x = next;
	}
	return ret;
}

/* Sort the pieces' starts and sweep them into @fv. */
static int resolve(mv_flatview *fv, const piece *pc, size_t n, const mv_allocator *alloc)
{
	piece_key *k = mv_realloc(alloc, NULL, 2 * (n ? n : 1) * sizeof(*k));
	heap h = { mv_realloc(alloc, NULL, (n ? n : 1) * sizeof(uint32_t)), 0 };
	int ret = -ENOMEM;

	if (k && h.v) {
		for (size_t i = 0; i < n; i++)
			k[i] = (piece_key){ pc[i].start, (uint32_t)i };
		radix_sort(k, k + n, n);
		ret = sweep(fv, pc, k, n, &h);
	}
	mv_free(alloc, h.v);
	mv_free(alloc, k);
	return ret;
}

/* Render @root into @fv's ranges (not yet simplified). */
int mv_render(mv_flatview *fv, mv_region *root)
{
	render_ctx c = { .alloc = fv->mem->alloc };
	int ret;

	if (root)
		collect(&c, root, 0, 0, (s128)MV_2_64, false, false);
	ret = c.err ? c.err : resolve(fv, c.pieces, c.nr, c.alloc);
	if (!ret && c.nr) {
		fv->held = mv_realloc(c.alloc, NULL, c.nr * sizeof(*fv->held));
		ret = fv->held ? 0 : -ENOMEM;
	}
	for (size_t i = 0; i < c.nr; i++) {
		if (ret)
			mv_region_unref(c.pieces[i].mr);
		else
			fv->held[fv->nr_held++] = c.pieces[i].mr;
	}
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
