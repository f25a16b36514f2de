/*
 * What the stage-2 files share (stage2.c, stage2_split.c, stage2_map.c,
 * stage2_unmap.c, stage2_perms.c): descriptor predicates, and the entry
 * updates that are particular to stage 2 -- break (entry locked, TLBI)
 * then make -- which keep the page counts and statistics. Plain sets,
 * ranges of the visited entry and table building are the walker's
 * (soft/pgtable_ops.h).
 */
#ifndef MV_SOFT_STAGE2_INTERNAL_H
#define MV_SOFT_STAGE2_INTERNAL_H

#include "memvirt/soft_stage2.h"
#include "soft/pgtable_ops.h"

#include <stddef.h>

/* Descriptor bits[1:0] (ARM ARM D8.3 VMSAv8-64 descriptor formats). */
#define S2_TYPE_MASK 3ull
#define S2_TYPE_BLOCK 1ull             /* 0b01: block (level < 3); reserved at level 3 */
#define S2_TYPE_TABLE_PAGE 3ull        /* 0b11: table (level < 3) / page (level 3) */

/* The attributes of a leaf that a mapping carries (all but the type and OA). */
#define S2_LEAF_ATTRS (MV_S2_MEMATTR_MASK | MV_S2_S2AP_MASK | MV_S2_SH_MASK | MV_S2_AF | \
		       MV_S2_XN_MASK | MV_S2_SW_MASK)
/* The attributes a live leaf may change in place, without break-before-make. */
#define S2_INPLACE_ATTRS (MV_S2_S2AP_MASK | MV_S2_AF | MV_S2_XN_MASK | MV_S2_SW_MASK)

static inline mv_s2_pgt *s2_of(const mv_pgt_ctx *ctx)
{
	return (mv_s2_pgt *)((char *)ctx->pgt - offsetof(mv_s2_pgt, pgt));
}

static inline bool s2_valid(mv_pte pte)
{
	return pte & MV_S2_VALID;
}

static inline bool s2_locked(mv_pte pte)
{
	return !s2_valid(pte) && (pte & MV_S2_PTE_LOCKED);
}

static inline bool s2_is_table(mv_pte pte, int level)
{
	return level < 3 && (pte & S2_TYPE_MASK) == S2_TYPE_TABLE_PAGE;
}

/* May @level hold a block descriptor with this granule (48-bit OA)? */
bool s2_block_level(const mv_pgt *pgt, int level);
/* A block (level < 3) or page (level 3) descriptor for @oa with leaf attributes @attr. */
mv_pte s2_leaf(const mv_pgt *pgt, uint64_t oa, uint64_t attr, int level);
/* A table descriptor pointing at @table. */
mv_pte s2_table_pte(const mv_pgt *pgt, mv_pte *table);

/* Invalidate [ipa, ipa + size) through the table's hook; counted. */
void s2_tlbi(mv_s2_pgt *s2, uint64_t ipa, uint64_t size);
/* TLBI the range of the visited entry. */
void s2_tlbi_ctx(const mv_pgt_ctx *ctx);
/*
 * Break: replace ctx->old by MV_S2_PTE_LOCKED (a CAS in shared walks;
 * false when the entry changed or is already locked), then TLBI its range
 * if it was valid. The caller must s2_make() next.
 */
bool s2_try_break(const mv_pgt_ctx *ctx);
/* Make: write @new over the broken entry; a valid -> valid change counts as one BBM. */
void s2_make(const mv_pgt_ctx *ctx, mv_pte new);

/*
 * Replace the visited entry by a new next-level table that maps exactly
 * what it mapped (a block: next-level blocks or pages with the same
 * attributes; an annotation: the same annotation; 0: nothing), by BBM when
 * it was valid (stage2_split.c). MV_PGT_OK, MV_PGT_NOMEM or MV_PGT_AGAIN
 * (shared walk lost a race). The walker then descends into it.
 */
mv_pgt_result s2_split_entry(const mv_pgt_ctx *ctx);

#endif
