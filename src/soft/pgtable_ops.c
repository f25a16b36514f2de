/*
 * Entry operations shared by the formats on the walker (pgtable_ops.h):
 * the page-count bookkeeping of soft_pgtable.h, CAS attribute updates,
 * building and linking a table that replaces an entry, unlinking a table
 * left empty. After Linux's arch/arm64/kvm/hyp/pgtable.c (stage2_*
 * helpers) and arch/x86/kvm/mmu/tdp_mmu.c (tdp_mmu_split_huge_page).
 */
#include "soft/pgtable_ops.h"

void mv_pgt_ctx_account(const mv_pgt_ctx *ctx, mv_pte old, mv_pte new)
{
	const mv_pgt *pgt = ctx->pgt;

	if (!old && new)
		pgt->mm_ops->get_page(pgt->mm_arg, ctx->ptep);
	else if (old && !new)
		pgt->mm_ops->put_page(pgt->mm_arg, ctx->ptep);
}

bool mv_pgt_ctx_set(const mv_pgt_ctx *ctx, mv_pte new)
{
	if (!mv_pgt_ctx_try_set(ctx, new))
		return false;
	mv_pgt_ctx_account(ctx, ctx->old, new);
	return true;
}

bool mv_pgt_ctx_update_bits(const mv_pgt_ctx *ctx, mv_pte set, mv_pte clr)
{
	const mv_pgt_format *fmt = ctx->pgt->fmt;
	mv_pte cur = ctx->old;

	/* Only valid entries change here, so the page count never moves. */
	while (fmt->is_valid(cur) && ((cur | set) & ~clr) != cur) {
		if (__atomic_compare_exchange_n(ctx->ptep, &cur, (cur | set) & ~clr, false,
						__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			return true;
	}
	return false;
}

mv_pte *mv_pgt_table_build(const mv_pgt_ctx *ctx, mv_pgt_child_fn child)
{
	const mv_pgt *pgt = ctx->pgt;
	uint64_t n = mv_pgt_level_entries(pgt, ctx->level + 1);
	mv_pte *table = pgt->mm_ops->zalloc_page(pgt->mm_arg, (size_t)1 << pgt->granule_shift);
	mv_pte e;

	if (!table || !ctx->old)
		return table;
	for (uint64_t i = 0; i < n; i++) {
		e = child(pgt, ctx->old, ctx->level, i);
		if (!e)
			continue;
		table[i] = e;
		pgt->mm_ops->get_page(pgt->mm_arg, table);
	}
	return table;
}

mv_pgt_result mv_pgt_ctx_link_table(const mv_pgt_ctx *ctx, mv_pte *table, mv_pte table_pte)
{
	if (mv_pgt_ctx_set(ctx, table_pte))
		return MV_PGT_OK;
	mv_pgt_free_table(ctx->pgt, table, ctx->level + 1);
	return MV_PGT_AGAIN;
}

mv_pte *mv_pgt_ctx_unlink_empty(const mv_pgt_ctx *ctx)
{
	const mv_pgt *pgt = ctx->pgt;
	mv_pte *child = mv_pgt_ctx_table(ctx, ctx->old);

	if (!child || pgt->mm_ops->page_count(pgt->mm_arg, child) != 1)
		return NULL;
	mv_pgt_ctx_set(ctx, 0);
	return child;
}
