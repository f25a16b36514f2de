/*
 * Zapping (KVM's kvm_tdp_mmu_zap_leafs, plus freeing the tables it
 * empties): present leaves and MMIO SPTEs cleared, tables left empty
 * unlinked on the way back up, one INVEPT covering everything removed,
 * and only then the unlinked tables freed -- the order KVM gets from
 * flushing before its RCU callbacks free page tables.
 */
#include "ept_internal.h"

mv_pgt_result ept_zap_leaf(const mv_pgt_ctx *ctx, ept_zap_state *z)
{
	if (!ctx->old)
		return MV_PGT_OK;
	/* Someone is in the middle of a multi-step change: only a shared walk may be. */
	if (ctx->old == MV_SPTE_FROZEN)
		return MV_PGT_AGAIN;
	mv_pgt_ctx_set(ctx, 0);
	/* MMIO SPTEs are not present: no TLB holds them. */
	if (mv_ept_is_present(ctx->old))
		mv_pgt_span_add(&z->span, ctx);
	return MV_PGT_OK;
}

void ept_zap_table_post(const mv_pgt_ctx *ctx, ept_zap_state *z)
{
	mv_pte *child = mv_pgt_ctx_unlink_empty(ctx);

	if (!child)
		return;
	mv_pgt_span_add(&z->span, ctx);
	z->dead[z->nr_dead++] = child;
	if (z->nr_dead == EPT_ZAP_BATCH)
		ept_zap_flush(ept_of(ctx), z);
}

void ept_zap_flush(mv_ept *ept, ept_zap_state *z)
{
	const mv_pgt *pgt = &ept->pgt;

	ept_invept_span(ept, &z->span);
	for (unsigned i = 0; i < z->nr_dead; i++)
		pgt->mm_ops->put_page(pgt->mm_arg, z->dead[i]);
	z->nr_dead = 0;
}

static mv_pgt_result zap_visitor(const mv_pgt_ctx *ctx, mv_pgt_visit visit)
{
	if (visit == MV_PGT_VISIT_TABLE_POST) {
		ept_zap_table_post(ctx, ctx->arg);
		return MV_PGT_OK;
	}
	return ept_zap_leaf(ctx, ctx->arg);
}

mv_pgt_result mv_ept_zap(mv_ept *ept, uint64_t gpa, uint64_t size)
{
	ept_zap_state z = { 0 };
	mv_pgt_walker w = { zap_visitor, &z, MV_PGT_VISIT_LEAF | MV_PGT_VISIT_TABLE_POST };
	mv_pgt_result r = mv_pgt_walk(&ept->pgt, gpa, size, &w);

	ept_zap_flush(ept, &z);
	return r;
}
