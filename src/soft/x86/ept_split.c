/*
 * Splitting huge pages (KVM's tdp_mmu_split_huge_page and
 * tdp_mmu_split_huge_pages_root): the child table is built complete --
 * 512 pages with the huge page's rights, memory type, A/D and software
 * bits -- before one atomic swap, so a concurrent walker sees either the
 * huge page or the whole table, never a half-built one. Installs use the
 * same step to link a fresh table under a non-present entry.
 */
#include "ept_internal.h"

/*
 * Entry @i of the table replacing @old at @level: the @i-th smaller page
 * of a present huge page (LARGE kept above the PTE level, cleared at it),
 * nothing under a non-present entry (an MMIO SPTE is only a cache).
 */
static mv_pte split_child(const mv_pgt *pgt, mv_pte old, int level, uint64_t i)
{
	int child_level = level + 1;
	mv_pte attrs = old & ~MV_EPT_ADDR_MASK;

	if (!mv_ept_is_present(old))
		return 0;
	if (child_level == EPT_LEAF_LEVEL)
		attrs &= ~MV_EPT_LARGE;
	return attrs | ((old & MV_EPT_ADDR_MASK) + i * mv_pgt_level_size(pgt, child_level));
}

mv_pgt_result ept_split_entry(const mv_pgt_ctx *ctx, mv_pgt_span *span)
{
	mv_ept *ept = ept_of(ctx);
	mv_pgt_ctx c = *ctx;
	mv_pte *table;

	/*
	 * Link with a compare-and-swap even in exclusive walks: a lock-free
	 * fast path may have set W (or the CPU A/D) on the huge page since
	 * it was read, and the table must carry that.
	 */
	c.flags |= MV_PGT_WALK_SHARED;
	for (;;) {
		if (c.old == MV_SPTE_FROZEN)
			return MV_PGT_AGAIN;
		table = mv_pgt_table_build(&c, split_child);
		if (!table)
			return MV_PGT_NOMEM;
		if (mv_pgt_ctx_link_table(&c, table, ept_table_pte(ept, table)) == MV_PGT_OK)
			break;
		if (ctx->flags & MV_PGT_WALK_SHARED)
			return MV_PGT_AGAIN;
		c.old = mv_pgt_read(c.ptep);
	}
	if (mv_ept_is_present(ctx->old))
		mv_pgt_span_add(span, ctx);
	return MV_PGT_OK;
}

static mv_pgt_result split_visitor(const mv_pgt_ctx *ctx, mv_pgt_visit visit)
{
	(void)visit;
	if (ctx->level == EPT_LEAF_LEVEL || !mv_ept_is_present(ctx->old))
		return MV_PGT_OK;
	return ept_split_entry(ctx, ctx->arg);
}

mv_pgt_result mv_ept_split(mv_ept *ept, uint64_t gpa, uint64_t size)
{
	mv_pgt_span span = { 0 };
	mv_pgt_walker w = { split_visitor, &span, MV_PGT_VISIT_LEAF };
	mv_pgt_result r = mv_pgt_walk(&ept->pgt, gpa, size, &w);

	ept_invept_span(ept, &span);
	return r;
}
