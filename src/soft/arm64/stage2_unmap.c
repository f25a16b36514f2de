/*
 * Unmapping (KVM's kvm_pgtable_stage2_unmap / stage2_unmap_walker): leaves
 * and annotations in the range cleared, each valid one followed by a TLBI
 * of its range, and tables left empty freed on the way back up (TLBI
 * first: walk caches may hold them).
 *
 * A block the range covers only in part is split first so its other part
 * stays mapped; when no table page can be had, the whole block goes
 * (unmapping more than asked is always safe for a stage-2: the guest
 * faults it back in, which is what KVM always does).
 */
#include "stage2_internal.h"

static mv_pgt_result unmap_leaf(const mv_pgt_ctx *ctx)
{
	mv_pgt_result r;

	if (!ctx->old)
		return MV_PGT_OK;
	if (mv_pgt_ctx_partial(ctx)) {
		r = s2_split_entry(ctx);
		if (r != MV_PGT_NOMEM || !s2_valid(ctx->old))
			return r;
	}
	mv_pgt_ctx_set(ctx, 0);
	if (s2_valid(ctx->old))
		s2_tlbi_ctx(ctx);
	return MV_PGT_OK;
}

/* A table whose page holds only its own reference is empty: unlink and free it. */
static mv_pgt_result unmap_table_post(const mv_pgt_ctx *ctx)
{
	const mv_pgt *pgt = ctx->pgt;
	mv_pte *child = mv_pgt_ctx_unlink_empty(ctx);

	if (!child)
		return MV_PGT_OK;
	s2_tlbi_ctx(ctx);
	pgt->mm_ops->put_page(pgt->mm_arg, child);
	return MV_PGT_OK;
}

static mv_pgt_result unmap_visitor(const mv_pgt_ctx *ctx, mv_pgt_visit visit)
{
	if (visit == MV_PGT_VISIT_TABLE_POST)
		return unmap_table_post(ctx);
	return unmap_leaf(ctx);
}

mv_pgt_result mv_s2_unmap(mv_s2_pgt *s2, uint64_t ipa, uint64_t size)
{
	mv_pgt_walker w = { unmap_visitor, NULL, MV_PGT_VISIT_LEAF | MV_PGT_VISIT_TABLE_POST };

	return mv_pgt_walk(&s2->pgt, ipa, size, &w);
}
