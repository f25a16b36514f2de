/*
 * What the EPT files share (ept.c, ept_spte.c, ept_install.c, ept_zap.c,
 * ept_split.c, ept_perms.c): the table entry encoding, INVEPT, the split
 * of one entry, and the zap pieces that test_clear_young reuses. Generic
 * entry updates are the walker's (soft/pgtable_ops.h).
 */
#ifndef MV_SOFT_EPT_INTERNAL_H
#define MV_SOFT_EPT_INTERNAL_H

#include "memvirt/soft_ept.h"
#include "soft/pgtable_ops.h"

#include <stddef.h>

/* The leaf level (EPT PTE, 4 KiB) in the walker's numbering. */
#define EPT_LEAF_LEVEL 3

static inline mv_ept *ept_of(const mv_pgt_ctx *ctx)
{
	return (mv_ept *)((char *)ctx->pgt - offsetof(mv_ept, pgt));
}

/*
 * The table SPTE pointing at @table (make_nonleaf_spte): R|W|X so that
 * only leaves restrict access, A with A/D flags (else KVM's marker).
 */
mv_pte ept_table_pte(const mv_ept *ept, mv_pte *table);

/* INVEPT [gpa, gpa + size) through the hook; counted. */
void ept_invept(mv_ept *ept, uint64_t gpa, uint64_t size);
/* INVEPT the span if anything was added to it, and empty it. */
void ept_invept_span(mv_ept *ept, mv_pgt_span *span);

/*
 * Replace the visited entry by a new next-level table that maps what it
 * mapped: 512 smaller pages with the same bits for a present huge page,
 * nothing for a non-present entry (0 or MMIO). Built completely, then
 * linked with one compare-and-swap; exclusive walks rebuild when a
 * lock-free fast path changed the page meanwhile, shared walks return
 * MV_PGT_AGAIN. A present page's range is added to @span for the caller's
 * INVEPT. MV_PGT_OK, MV_PGT_NOMEM, MV_PGT_AGAIN (also for MV_SPTE_FROZEN).
 */
mv_pgt_result ept_split_entry(const mv_pgt_ctx *ctx, mv_pgt_span *span);

/* Tables a zap unlinked, freed after the INVEPT that covers them. */
#define EPT_ZAP_BATCH 16
typedef struct ept_zap_state {
	mv_pgt_span span;             /* present leaves and tables removed */
	mv_pte *dead[EPT_ZAP_BATCH];
	unsigned nr_dead;
} ept_zap_state;

/* Clear the visited non-table entry (LEAF visit); MV_PGT_AGAIN if frozen. */
mv_pgt_result ept_zap_leaf(const mv_pgt_ctx *ctx, ept_zap_state *z);
/* TABLE_POST visit: unlink the table below if it became empty. */
void ept_zap_table_post(const mv_pgt_ctx *ctx, ept_zap_state *z);
/* INVEPT what was removed, then free the unlinked tables. */
void ept_zap_flush(mv_ept *ept, ept_zap_state *z);

#endif
