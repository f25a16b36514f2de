/*
 * Attribute updates of live leaves, in place (the ARM ARM allows changing
 * permissions and the access flag without break-before-make): KVM's
 * kvm_pgtable_stage2_wrprotect, _relax_perms, _mkyoung and
 * _test_clear_young. Taking rights away is followed by one TLBI covering
 * every leaf that changed; adding them needs none (a stale entry only
 * faults again).
 */
#include "stage2_internal.h"

/* The input range of the leaves an operation changed, for one final TLBI. */
typedef struct changed_range {
	mv_pgt_span span;
	bool mkold;             /* test_clear_young: clear AF */
	bool young;             /* test_clear_young: a leaf had AF set */
} changed_range;

static void flush_changed(mv_s2_pgt *s2, const changed_range *cr)
{
	if (cr->span.hi)
		s2_tlbi(s2, cr->span.lo, cr->span.hi - cr->span.lo);
}

/*
 * Write-protect: a block covered in part is split first (so the rest stays
 * writable); without memory for the table the whole block is protected,
 * which is safe (the guest takes a permission fault).
 */
static mv_pgt_result wrprotect_visitor(const mv_pgt_ctx *ctx, mv_pgt_visit visit)
{
	mv_pgt_result r;

	(void)visit;
	if (!s2_valid(ctx->old) || !(ctx->old & MV_S2_S2AP_W))
		return MV_PGT_OK;
	if (mv_pgt_ctx_partial(ctx)) {
		r = s2_split_entry(ctx);
		if (r != MV_PGT_NOMEM)
			return r;
	}
	mv_pgt_ctx_set(ctx, ctx->old & ~MV_S2_S2AP_W);
	mv_pgt_span_add(&((changed_range *)ctx->arg)->span, ctx);
	return MV_PGT_OK;
}

mv_pgt_result mv_s2_wrprotect(mv_s2_pgt *s2, uint64_t ipa, uint64_t size)
{
	changed_range cr = { 0 };
	mv_pgt_walker w = { wrprotect_visitor, &cr, MV_PGT_VISIT_LEAF };
	mv_pgt_result r = mv_pgt_walk(&s2->pgt, ipa, size, &w);

	flush_changed(s2, &cr);
	return r;
}

/* One leaf's attributes: set @set, clear @clr (stage2_update_leaf_attrs). */
typedef struct leaf_update {
	mv_pte set, clr;
	mv_pte new;             /* the value written (or found) */
} leaf_update;

static mv_pgt_result update_visitor(const mv_pgt_ctx *ctx, mv_pgt_visit visit)
{
	leaf_update *u = ctx->arg;
	mv_pte new = (ctx->old | u->set) & ~u->clr;

	(void)visit;
	if (s2_locked(ctx->old))
		return MV_PGT_AGAIN;
	if (!s2_valid(ctx->old))
		return MV_PGT_NOENT;
	if (new != ctx->old && !mv_pgt_ctx_set(ctx, new))
		return MV_PGT_AGAIN;
	u->new = new;
	return MV_PGT_OK;
}

static mv_pgt_result update_leaf(mv_s2_pgt *s2, uint64_t ipa, leaf_update *u, unsigned walk_flags)
{
	mv_pgt_walker w = { update_visitor, u, MV_PGT_VISIT_LEAF | (walk_flags & MV_PGT_WALK_SHARED) };

	return mv_pgt_walk(&s2->pgt, ipa, 1, &w);
}

mv_pgt_result mv_s2_relax_perms(mv_s2_pgt *s2, uint64_t ipa, unsigned prot, unsigned walk_flags)
{
	leaf_update u = { MV_S2_AF, 0, 0 };

	if (prot & MV_S2_PROT_R)
		u.set |= MV_S2_S2AP_R;
	if (prot & MV_S2_PROT_W)
		u.set |= MV_S2_S2AP_W;
	if (prot & MV_S2_PROT_X)
		u.clr |= MV_S2_XN_MASK;
	return update_leaf(s2, ipa, &u, walk_flags);
}

mv_pgt_result mv_s2_mkyoung(mv_s2_pgt *s2, uint64_t ipa, mv_pte *pte, unsigned walk_flags)
{
	leaf_update u = { MV_S2_AF, 0, 0 };
	mv_pgt_result r = update_leaf(s2, ipa, &u, walk_flags);

	if (pte)
		*pte = u.new;
	return r;
}

/*
 * Clear AF with a compare-and-swap loop so a concurrent in-place update
 * (mkyoung, relax) is never lost; an entry that stopped being valid (a
 * shared walk broke it: bit 10 is then MV_S2_PTE_LOCKED) is left alone.
 */
static mv_pgt_result young_visitor(const mv_pgt_ctx *ctx, mv_pgt_visit visit)
{
	changed_range *cr = ctx->arg;

	(void)visit;
	if (!s2_valid(ctx->old) || !(ctx->old & MV_S2_AF))
		return MV_PGT_OK;
	cr->young = true;
	if (cr->mkold && mv_pgt_ctx_update_bits(ctx, 0, MV_S2_AF))
		mv_pgt_span_add(&cr->span, ctx);
	return MV_PGT_OK;
}

bool mv_s2_test_clear_young(mv_s2_pgt *s2, uint64_t ipa, uint64_t size, bool mkold)
{
	changed_range cr = { .mkold = mkold };
	mv_pgt_walker w = { young_visitor, &cr, MV_PGT_VISIT_LEAF };

	mv_pgt_walk(&s2->pgt, ipa, size, &w);
	flush_changed(s2, &cr);
	return cr.young;
}
