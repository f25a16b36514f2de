/*
 * Installing leaves (KVM's kvm_pgtable_stage2_map and _set_owner): at each
 * address the largest leaf the alignment, the remaining size and the
 * minimum level allow; tables created on the way down; what is in the way
 * replaced by break-before-make in exclusive walks, left alone (EXISTS /
 * AGAIN) in shared ones. The same engine writes owner annotations, which
 * are invalid "leaves" with no output address.
 */
#include "stage2_internal.h"

typedef struct map_data {
	uint64_t ipa;           /* start of the request: pa maps here */
	uint64_t pa;
	uint64_t attr;          /* leaf attributes (S2_LEAF_ATTRS) */
	mv_pte annotation;      /* non-zero: write this invalid entry instead of leaves */
	int min_level;
} map_data;

static uint64_t pa_at(const map_data *d, uint64_t addr)
{
	return d->pa + (addr - d->ipa);
}

/* May the visited entry hold the leaf for ctx->addr (kvm_block_mapping_supported)? */
static bool leaf_fits(const mv_pgt_ctx *ctx, const map_data *d)
{
	const mv_pgt *pgt = ctx->pgt;
	uint64_t size = mv_pgt_ctx_size(ctx);

	if (ctx->level != pgt->last_level &&
	    (ctx->level < d->min_level || !s2_block_level(pgt, ctx->level)))
		return false;
	if ((ctx->addr & (size - 1)) || ctx->end - ctx->addr < size)
		return false;
	return d->annotation || !(pa_at(d, ctx->addr) & (size - 1));
}

static mv_pte new_leaf(const mv_pgt_ctx *ctx, const map_data *d)
{
	if (d->annotation)
		return d->annotation;
	return s2_leaf(ctx->pgt, pa_at(d, ctx->addr), d->attr, ctx->level) | MV_S2_VALID;
}

/* Would going from @old to @new (same output) take away a right? */
static bool removes_rights(mv_pte old, mv_pte new)
{
	mv_pte gone = old & ~new & (MV_S2_S2AP_MASK | MV_S2_AF);

	return gone || (new & ~old & MV_S2_XN_MASK);
}

/* Put the leaf @new where a non-table entry is (stage2_map_walker_try_leaf). */
static mv_pgt_result install_leaf(const mv_pgt_ctx *ctx, mv_pte new)
{
	mv_pte old = ctx->old;
	bool shared = ctx->flags & MV_PGT_WALK_SHARED;

	if (old == new)
		return MV_PGT_OK;
	if (!s2_valid(old))
		return mv_pgt_ctx_set(ctx, new) ? MV_PGT_OK : MV_PGT_AGAIN;
	if (s2_valid(new) && !((old ^ new) & ~S2_INPLACE_ATTRS)) {
		if (!mv_pgt_ctx_set(ctx, new))
			return MV_PGT_AGAIN;
		if (removes_rights(old, new))
			s2_tlbi_ctx(ctx);
		return MV_PGT_OK;
	}
	/* Another output, size or memory type: never under a shared walk. */
	if (shared)
		return MV_PGT_EXISTS;
	s2_try_break(ctx);
	s2_make(ctx, new);
	return MV_PGT_OK;
}

/* Does the valid block @old already map ctx->addr.. exactly as asked? */
static bool block_agrees(const mv_pgt_ctx *ctx, const map_data *d)
{
	mv_pte old = ctx->old;
	uint64_t oa = mv_s2_pte_oa(old, ctx->pgt->granule_shift) + (ctx->addr - mv_pgt_ctx_base(ctx));

	return !d->annotation && oa == pa_at(d, ctx->addr) && (old & S2_LEAF_ATTRS) == d->attr;
}

static mv_pgt_result map_leaf_visit(const mv_pgt_ctx *ctx, const map_data *d)
{
	if (s2_locked(ctx->old))
		return MV_PGT_AGAIN;
	if (leaf_fits(ctx, d))
		return install_leaf(ctx, new_leaf(ctx, d));
	/* A table is needed here; the walker descends into it. */
	if (s2_valid(ctx->old)) {
		if (block_agrees(ctx, d))
			return MV_PGT_OK;
		if (ctx->flags & MV_PGT_WALK_SHARED)
			return MV_PGT_EXISTS;
	}
	return s2_split_entry(ctx);
}

/*
 * A table where a leaf fits: exclusive walks replace it (BBM) and free the
 * tables below; shared walks descend and map below it instead.
 */
static mv_pgt_result map_table_visit(const mv_pgt_ctx *ctx, const map_data *d)
{
	mv_pte *child;

	if (!leaf_fits(ctx, d) || (ctx->flags & MV_PGT_WALK_SHARED))
		return MV_PGT_OK;
	child = mv_pgt_ctx_table(ctx, ctx->old);
	s2_try_break(ctx);
	s2_make(ctx, new_leaf(ctx, d));
	if (child)
		mv_pgt_free_table(ctx->pgt, child, ctx->level + 1);
	return MV_PGT_OK;
}

static mv_pgt_result map_visitor(const mv_pgt_ctx *ctx, mv_pgt_visit visit)
{
	if (visit == MV_PGT_VISIT_TABLE_PRE)
		return map_table_visit(ctx, ctx->arg);
	return map_leaf_visit(ctx, ctx->arg);
}

static mv_pgt_result map_walk(mv_s2_pgt *s2, uint64_t ipa, uint64_t size, map_data *d,
			      unsigned walk_flags)
{
	mv_pgt_walker w = {
		map_visitor, d,
		MV_PGT_VISIT_LEAF | MV_PGT_VISIT_TABLE_PRE | (walk_flags & MV_PGT_WALK_SHARED),
	};
	uint64_t gmask = (1ull << s2->pgt.granule_shift) - 1;

	/* Whole granules only: a leaf cannot map part of one. */
	if ((ipa | size | d->pa) & gmask)
		return MV_PGT_RANGE;
	return mv_pgt_walk(&s2->pgt, ipa, size, &w);
}

mv_pgt_result mv_s2_map(mv_s2_pgt *s2, uint64_t ipa, uint64_t size, uint64_t pa, uint64_t attr,
			int min_level, unsigned walk_flags)
{
	map_data d = { ipa, pa, attr & S2_LEAF_ATTRS, 0, min_level };
	uint64_t oa_limit = 1ull << s2->cfg.oa_bits;

	if (pa >= oa_limit || size > oa_limit - pa)
		return MV_PGT_RANGE;
	return map_walk(s2, ipa, size, &d, walk_flags);
}

mv_pgt_result mv_s2_set_owner(mv_s2_pgt *s2, uint64_t ipa, uint64_t size, unsigned owner_id)
{
	map_data d = { ipa, 0, 0, (mv_pte)owner_id << MV_S2_OWNER_SHIFT, 0 };

	if (owner_id > MV_S2_OWNER_MASK >> MV_S2_OWNER_SHIFT)
		return MV_PGT_RANGE;
	if (!owner_id)
		return mv_s2_unmap(s2, ipa, size);
	return map_walk(s2, ipa, size, &d, 0);
}
