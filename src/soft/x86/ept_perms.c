/*
 * Attribute updates of present leaves in place (x86 needs no
 * break-before-make): KVM's wrprot_gfn_range (clear W, keep MMU-writable
 * so the fast path may set it again) and age_gfn_range / test_age_gfn
 * (the accessed flag). Bits are cleared with compare-and-swap loops so a
 * concurrent fast-path update is never lost; one INVEPT covers every leaf
 * that changed.
 */
#include "ept_internal.h"

static mv_pgt_result wrprotect_visitor(const mv_pgt_ctx *ctx, mv_pgt_visit visit)
{
	(void)visit;
	if (!mv_ept_is_present(ctx->old) || !(ctx->old & MV_EPT_W))
		return MV_PGT_OK;
	if (mv_pgt_ctx_update_bits(ctx, 0, MV_EPT_W))
		mv_pgt_span_add(ctx->arg, ctx);
	return MV_PGT_OK;
}

bool mv_ept_wrprotect(mv_ept *ept, uint64_t gpa, uint64_t size)
{
	mv_pgt_span span = { 0 };
	mv_pgt_walker w = { wrprotect_visitor, &span, MV_PGT_VISIT_LEAF };
	bool changed;

	mv_pgt_walk(&ept->pgt, gpa, size, &w);
	changed = span.hi != 0;
	ept_invept_span(ept, &span);
	return changed;
}

typedef struct young_data {
	bool clear;
	bool young;
	ept_zap_state zap;        /* A cleared, or (no A/D flags) leaves zapped */
} young_data;

static mv_pgt_result young_leaf(const mv_pgt_ctx *ctx, young_data *d)
{
	mv_ept *ept = ept_of(ctx);

	if (!mv_ept_is_present(ctx->old))
		return MV_PGT_OK;
	if (!ept->ad) {
		/* Without A/D flags, a present leaf is as young as we can tell. */
		d->young = true;
		return d->clear ? ept_zap_leaf(ctx, &d->zap) : MV_PGT_OK;
	}
	if (!(ctx->old & MV_EPT_A))
		return MV_PGT_OK;
	d->young = true;
	if (d->clear && mv_pgt_ctx_update_bits(ctx, 0, MV_EPT_A))
		mv_pgt_span_add(&d->zap.span, ctx);
	return MV_PGT_OK;
}

static mv_pgt_result young_visitor(const mv_pgt_ctx *ctx, mv_pgt_visit visit)
{
	young_data *d = ctx->arg;

	if (visit == MV_PGT_VISIT_TABLE_POST) {
		ept_zap_table_post(ctx, &d->zap);
		return MV_PGT_OK;
	}
	return young_leaf(ctx, d);
}

bool mv_ept_test_clear_young(mv_ept *ept, uint64_t gpa, uint64_t size, bool clear)
{
	young_data d = { .clear = clear };
	mv_pgt_walker w = { young_visitor, &d, MV_PGT_VISIT_LEAF };

	/* Only zapping (no A/D flags) can empty tables. */
	if (clear && !ept->ad)
		w.flags |= MV_PGT_VISIT_TABLE_POST;
	mv_pgt_walk(&ept->pgt, gpa, size, &w);
	ept_zap_flush(ept, &d.zap);
	return d.young;
}
