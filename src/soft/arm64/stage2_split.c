/*
 * Splitting: an entry replaced by a next-level table that maps the same
 * thing (KVM's kvm_pgtable_stage2_split / stage2_split_walker). Map,
 * unmap, write-protect and set-owner use it on blocks they cover only in
 * part, so what lies outside their range keeps its mapping.
 */
#include "stage2_internal.h"

/*
 * Entry @i of the table reproducing @old one level down: a block becomes
 * blocks or pages with the same attributes (no Contiguous hint: it
 * described the block's neighbours), an annotation is repeated.
 */
static mv_pte split_child(const mv_pgt *pgt, mv_pte old, int level, uint64_t i)
{
	uint64_t oa = mv_s2_pte_oa(old, pgt->granule_shift);

	if (!s2_valid(old))
		return old;
	return s2_leaf(pgt, oa + i * mv_pgt_level_size(pgt, level + 1), old & S2_LEAF_ATTRS,
		       level + 1);
}

mv_pgt_result s2_split_entry(const mv_pgt_ctx *ctx)
{
	mv_pte *table;
	mv_pte new;

	if (s2_locked(ctx->old))
		return MV_PGT_AGAIN;
	table = mv_pgt_table_build(ctx, split_child);
	if (!table)
		return MV_PGT_NOMEM;
	new = s2_table_pte(ctx->pgt, table);
	if (!s2_valid(ctx->old))
		return mv_pgt_ctx_link_table(ctx, table, new);
	if (s2_try_break(ctx)) {
		s2_make(ctx, new);
		return MV_PGT_OK;
	}
	/* Lost a race: the table was never visible, free it at once. */
	mv_pgt_free_table(ctx->pgt, table, ctx->level + 1);
	return MV_PGT_AGAIN;
}

static mv_pgt_result split_visitor(const mv_pgt_ctx *ctx, mv_pgt_visit visit)
{
	(void)visit;
	if (!s2_valid(ctx->old) || ctx->level == ctx->pgt->last_level)
		return MV_PGT_OK;
	return s2_split_entry(ctx);
}

mv_pgt_result mv_s2_split(mv_s2_pgt *s2, uint64_t ipa, uint64_t size)
{
	mv_pgt_walker w = { split_visitor, NULL, MV_PGT_VISIT_LEAF };

	return mv_pgt_walk(&s2->pgt, ipa, size, &w);
}
