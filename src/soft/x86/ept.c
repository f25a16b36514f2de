/*
 * The EPT paging structures on the generic walker: the walker format
 * (present = any of R/W/X and not MMIO; a table = present and not LARGE
 * above the PTE level; table address bits 51:12), life cycle, the EPTP
 * (SDM Vol. 3C "Extended-Page-Table Pointer (EPTP)"), INVEPT, lookups and
 * statistics.
 */
#include "ept_internal.h"

#include <errno.h>
#include <string.h>

static bool fmt_is_valid(mv_pte pte)
{
	return pte & MV_EPT_RWX;
}

/*
 * Bit 7 of a PDPTE / PDE says page (1) or table (0) (SDM "EPT Translation
 * Mechanism"); an MMIO SPTE is a leaf wherever it is, whatever its
 * generation bits put in bit 7.
 */
static bool fmt_is_table(mv_pte pte, int level)
{
	return level < EPT_LEAF_LEVEL && mv_ept_is_present(pte) && !(pte & MV_EPT_LARGE);
}

static uint64_t fmt_table_pa(mv_pte pte)
{
	return pte & MV_EPT_ADDR_MASK;
}

static const mv_pgt_format ept_format = { "x86-ept", fmt_is_table, fmt_is_valid, fmt_table_pa };

mv_pte ept_table_pte(const mv_ept *ept, mv_pte *table)
{
	const mv_pgt *pgt = &ept->pgt;
	uint64_t pa = pgt->mm_ops->virt_to_phys(pgt->mm_arg, table);

	return MV_SPTE_MMU_PRESENT | (pa & MV_EPT_ADDR_MASK) | MV_EPT_RWX |
	       (ept->ad ? MV_EPT_A : MV_SPTE_AD_DISABLED);
}

void ept_invept(mv_ept *ept, uint64_t gpa, uint64_t size)
{
	__atomic_add_fetch(&ept->nr_invept, 1, __ATOMIC_RELAXED);
	if (ept->invept)
		ept->invept(ept->invept_arg, gpa, size);
}

void ept_invept_span(mv_ept *ept, mv_pgt_span *span)
{
	if (span->hi)
		ept_invept(ept, span->lo, span->hi - span->lo);
	span->lo = span->hi = 0;
}

/* ---- Life cycle ---- */

int mv_ept_init(mv_ept *ept, unsigned levels, bool ad, const mv_pgt_mm_ops *mm, void *mm_arg,
		mv_ept_invept_fn invept, void *invept_arg)
{
	memset(ept, 0, sizeof(*ept));
	if (levels != 4 && levels != 5)
		return -EINVAL;
	ept->levels = levels;
	ept->ad = ad;
	ept->invept = invept;
	ept->invept_arg = invept_arg;
	/* 4 levels translate GPA bits 47:0 from a PML4; 5 levels bits 56:0 from a PML5. */
	ept->pgt = (mv_pgt){
		.fmt = &ept_format, .mm_ops = mm, .mm_arg = mm_arg,
		.ia_bits = levels == 4 ? 48 : 57, .granule_shift = 12,
		.start_level = EPT_LEAF_LEVEL + 1 - (int)levels, .last_level = EPT_LEAF_LEVEL,
	};
	return mv_pgt_alloc_root(&ept->pgt);
}

void mv_ept_destroy(mv_ept *ept)
{
	mv_pgt_destroy(&ept->pgt);
}

uint64_t mv_ept_eptp(const mv_ept *ept)
{
	uint64_t eptp = MV_EPTP_MT_WB | ((uint64_t)(ept->levels - 1) << MV_EPTP_PWL_SHIFT);

	if (ept->ad)
		eptp |= MV_EPTP_AD;
	return eptp | (ept->pgt.root_pa & MV_EPT_ADDR_MASK);
}

/* ---- Lookups ---- */

mv_pgt_result mv_ept_get_leaf(mv_ept *ept, uint64_t gpa, mv_pte *spte, int *level)
{
	return mv_pgt_get_leaf(&ept->pgt, gpa, spte, level);
}

typedef struct ptep_data {
	mv_pte *ptep;
	int level;
} ptep_data;

static mv_pgt_result ptep_visitor(const mv_pgt_ctx *ctx, mv_pgt_visit visit)
{
	ptep_data *d = ctx->arg;

	(void)visit;
	d->ptep = fmt_is_valid(ctx->old) ? ctx->ptep : NULL;
	d->level = ctx->level;
	return MV_PGT_OK;
}

mv_pte *mv_ept_leaf_ptep(mv_ept *ept, uint64_t gpa, int *level)
{
	ptep_data d = { NULL, ept->pgt.start_level };
	mv_pgt_walker w = { ptep_visitor, &d, MV_PGT_VISIT_LEAF };

	if (mv_pgt_walk(&ept->pgt, gpa, 1, &w) != MV_PGT_OK)
		d.ptep = NULL;
	if (level)
		*level = d.level;
	return d.ptep;
}

static mv_pgt_result stats_visitor(const mv_pgt_ctx *ctx, mv_pgt_visit visit)
{
	mv_ept_stats *st = ctx->arg;

	if (visit == MV_PGT_VISIT_TABLE_PRE)
		st->tables++;
	else if (mv_ept_is_mmio_spte(ctx->old))
		st->mmio_sptes++;
	else if (mv_ept_is_present(ctx->old) && ctx->level >= 0)
		st->leaves[ctx->level]++;
	return MV_PGT_OK;
}

void mv_ept_get_stats(mv_ept *ept, mv_ept_stats *st)
{
	mv_pgt_walker w = { stats_visitor, st, MV_PGT_VISIT_LEAF | MV_PGT_VISIT_TABLE_PRE };

	memset(st, 0, sizeof(*st));
	mv_pgt_walk(&ept->pgt, 0, 1ull << ept->pgt.ia_bits, &w);
	st->invept = __atomic_load_n(&ept->nr_invept, __ATOMIC_RELAXED);
}
