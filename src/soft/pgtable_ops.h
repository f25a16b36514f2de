/*
 * Entry operations that every format built on the walker makes the same
 * way, whatever its descriptor encoding (ARMv8 stage 2, x86 EPT): the
 * range a visited entry covers, an update that keeps the table page counts
 * of soft_pgtable.h, a CAS loop on attribute bits, a new table filled from
 * the entry it replaces, linking it, and unlinking a table left empty.
 * The format supplies only what differs: how a child entry is derived and
 * how a table entry is encoded.
 */
#ifndef MV_SOFT_PGTABLE_OPS_H
#define MV_SOFT_PGTABLE_OPS_H

#include "memvirt/soft_pgtable.h"

/* Bytes the visited entry covers. */
static inline uint64_t mv_pgt_ctx_size(const mv_pgt_ctx *ctx)
{
	return mv_pgt_level_size(ctx->pgt, ctx->level);
}

/* The first input address the visited entry covers. */
static inline uint64_t mv_pgt_ctx_base(const mv_pgt_ctx *ctx)
{
	return ctx->addr & ~(mv_pgt_ctx_size(ctx) - 1);
}

/* Does the visited entry's range stick out of the walked range? */
static inline bool mv_pgt_ctx_partial(const mv_pgt_ctx *ctx)
{
	uint64_t base = mv_pgt_ctx_base(ctx);

	return base < ctx->start || base + mv_pgt_ctx_size(ctx) > ctx->end;
}

/* The input range of the entries an operation changed, for one TLB invalidation. */
typedef struct mv_pgt_span {
	uint64_t lo, hi;        /* hi == 0: nothing yet */
} mv_pgt_span;

/* Widen @span to cover the visited entry's range. */
static inline void mv_pgt_span_add(mv_pgt_span *span, const mv_pgt_ctx *ctx)
{
	uint64_t base = mv_pgt_ctx_base(ctx), end = base + mv_pgt_ctx_size(ctx);

	if (!span->hi || base < span->lo)
		span->lo = base;
	if (end > span->hi)
		span->hi = end;
}

/*
 * A table page counts 1 + its non-zero entries: follow the visited entry's
 * change from @old to @new (get_page on 0 -> non-zero, put_page on the
 * reverse) for updates written by other means than mv_pgt_ctx_set.
 */
void mv_pgt_ctx_account(const mv_pgt_ctx *ctx, mv_pte old, mv_pte new);

/*
 * mv_pgt_ctx_try_set plus the page count: replace ctx->old by @new (a CAS
 * in shared walks). False when a shared walk lost the race (nothing
 * changed).
 */
bool mv_pgt_ctx_set(const mv_pgt_ctx *ctx, mv_pte new);

/*
 * Set @set and clear @clr in the visited entry with a compare-and-swap
 * loop, so that a concurrent change of other bits (a lock-free fast path,
 * a CPU setting accessed/dirty flags) is never lost; stops when the entry
 * is no longer valid (fmt->is_valid) or already has the bits. Returns true
 * when this call changed the entry. Valid in shared and exclusive walks.
 */
bool mv_pgt_ctx_update_bits(const mv_pgt_ctx *ctx, mv_pte set, mv_pte clr);

/*
 * Entry @i of the next-level table that replaces @old, a non-table entry
 * at @level (the child is at @level + 1): the format's block -> smaller
 * blocks or pages, annotation -> the same annotation, and so on.
 */
typedef mv_pte (*mv_pgt_child_fn)(const mv_pgt *pgt, mv_pte old, int level, uint64_t i);

/*
 * A new table for the level below the visited entry that maps what
 * ctx->old maps: every entry from @child (a zero ctx->old gives an empty
 * table without calling it). Page count 1 + the non-zero entries written.
 * NULL when mm_ops has no memory. Not yet visible to anyone.
 */
mv_pte *mv_pgt_table_build(const mv_pgt_ctx *ctx, mv_pgt_child_fn child);

/*
 * Link @table (from mv_pgt_table_build) by replacing ctx->old with
 * @table_pte through mv_pgt_ctx_set. MV_PGT_OK, or MV_PGT_AGAIN when a
 * shared walk lost the race: the table was never visible and is freed.
 */
mv_pgt_result mv_pgt_ctx_link_table(const mv_pgt_ctx *ctx, mv_pte *table, mv_pte table_pte);

/*
 * In a TABLE_POST visit: if the table the visited entry points to is empty
 * (its page holds only its own reference), clear the entry and return the
 * table; the caller invalidates TLBs / walk caches for the entry's range,
 * then drops it with mm_ops->put_page. NULL when the table is not empty.
 * Exclusive walks only.
 */
mv_pte *mv_pgt_ctx_unlink_empty(const mv_pgt_ctx *ctx);

#endif
