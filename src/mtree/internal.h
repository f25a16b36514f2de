/*
 * Private helpers of the mtree module (print_tree.c, print_flat.c, svg.c,
 * config.c). Nothing outside src/mtree/ includes this file.
 */
#ifndef MV_MTREE_INTERNAL_H
#define MV_MTREE_INTERNAL_H

#include <errno.h>
#include <stdio.h>

#include "memvirt/memory.h"
#include "util/alloc.h"

/* QEMU's MTREE_INDENT: two spaces per tree level. */
#define MTREE_INDENT "  "

/*
 * A growable array of pointers on the C library allocator. Printing is a
 * diagnostic path, so it does not go through the memory system's allocator
 * (which the public API does not expose).
 */
typedef struct mt_ptrvec {
	void **v;
	size_t n, cap;
} mt_ptrvec;

/* Append @p; 0 or -ENOMEM. */
static inline int mt_ptrvec_push(mt_ptrvec *pv, void *p)
{
	if (mv_grow(NULL, (void **)&pv->v, &pv->cap, pv->n + 1, sizeof(*pv->v)))
		return -ENOMEM;
	pv->v[pv->n++] = p;
	return 0;
}

/* Index of @p in @pv, or -1. Linear: queues here hold tens of entries. */
static inline long mt_ptrvec_find(const mt_ptrvec *pv, const void *p)
{
	for (size_t i = 0; i < pv->n; i++)
		if (pv->v[i] == p)
			return (long)i;
	return -1;
}

static inline void mt_ptrvec_free(mt_ptrvec *pv)
{
	mv_free(NULL, pv->v);
	pv->v = NULL;
	pv->n = pv->cap = 0;
}

/*
 * QEMU's MR_SIZE: the distance from first to last byte (size - 1), with an
 * empty size printed as a zero-length range. A 2^64 size gives UINT64_MAX.
 */
static inline uint64_t mt_last_offset(mv_u128 size)
{
	return size ? (uint64_t)(size - 1) : 0;
}

/*
 * The distinct FlatViews of a memory system in order of first use (one
 * reference each) and, in the parallel @spaces, an mt_ptrvec per view of
 * the address spaces showing it, in creation order.
 */
typedef struct mt_views {
	mt_ptrvec views;
	mt_ptrvec spaces;
} mt_views;

/* Fill @vs (zero-initialised) from @mem; -ENOMEM. Free it in any case. */
int mt_views_collect(mt_views *vs, mv_memory *mem);
void mt_views_free(mt_views *vs);

/* 0, or -EIO when writing to @out failed (disk full, closed pipe...). */
static inline int mt_stream_status(FILE *out)
{
	return ferror(out) ? -EIO : 0;
}

#endif
