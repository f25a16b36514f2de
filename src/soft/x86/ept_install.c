/*
 * Installing one SPTE (KVM's kvm_tdp_mmu_map and
 * tdp_mmu_map_handle_target_level): tables created on the way down with a
 * compare-and-swap, then the leaf or MMIO SPTE written at the target
 * level. Shared walks never take away what another vCPU mapped; exclusive
 * ones replace it, splitting a huge page above the target and freeing a
 * table at it.
 */
#include "ept_internal.h"

typedef struct install_data {
	mv_pte spte;
	int level;
	bool absent_only;         /* MV_EPT_INSTALL_ABSENT */
	unsigned tables;          /* tables this call linked */
	mv_pgt_span span;         /* entries that lost rights or an output */
} install_data;

/* Bits a present leaf may gain without anything cached becoming wrong. */
#define GAINABLE (MV_EPT_RWX | MV_EPT_A | MV_EPT_D | MV_EPT_XU | MV_SPTE_HOST_WRITABLE | \
		  MV_SPTE_MMU_WRITABLE)

/* Does going from @old to @new take a right or an output away (INVEPT)? */
static bool needs_invept(mv_pte old, mv_pte new)
{
	if (!mv_ept_is_present(old))
		return false;
	return (old & ~new) || ((old ^ new) & ~GAINABLE);
}

/* Would @new map another page or size than the present @old? */
static bool remaps(mv_pte old, mv_pte new)
{
	return mv_ept_is_present(old) &&
	       (!mv_ept_is_present(new) || ((old ^ new) & (MV_EPT_ADDR_MASK | MV_EPT_LARGE)));
}

/* Above the target: make the entry a table the walker then descends into. */
static mv_pgt_result need_table(const mv_pgt_ctx *ctx, install_data *d)
{
	mv_pgt_result r;

	/* A huge page covers the target: only the lock holder may split it. */
	if (mv_ept_is_present(ctx->old) && (ctx->flags & MV_PGT_WALK_SHARED))
		return MV_PGT_EXISTS;
	r = ept_split_entry(ctx, &d->span);
	if (r == MV_PGT_OK)
		d->tables++;
	return r;
}

/* A table where the huge page goes: replaced (exclusive), everything below freed. */
static mv_pgt_result table_at_target(const mv_pgt_ctx *ctx, install_data *d)
{
	mv_pte *child = mv_pgt_ctx_table(ctx, ctx->old);

	if (ctx->flags & MV_PGT_WALK_SHARED)
		return MV_PGT_EXISTS;
	mv_pgt_ctx_set(ctx, d->spte);
	/* Walk caches may hold the old tables: forget them before they are freed. */
	ept_invept(ept_of(ctx), mv_pgt_ctx_base(ctx), mv_pgt_ctx_size(ctx));
	if (child)
		mv_pgt_free_table(ctx->pgt, child, ctx->level + 1);
	return MV_PGT_OK;
}

static mv_pgt_result leaf_at_target(const mv_pgt_ctx *ctx, install_data *d)
{
	if (d->absent_only && mv_ept_is_present(ctx->old))
		return MV_PGT_EXISTS;
	if (ctx->old == d->spte)
		return MV_PGT_OK;
	if ((ctx->flags & MV_PGT_WALK_SHARED) && remaps(ctx->old, d->spte))
		return MV_PGT_EXISTS;
	if (!mv_pgt_ctx_set(ctx, d->spte))
		return MV_PGT_AGAIN;
	if (needs_invept(ctx->old, d->spte))
		mv_pgt_span_add(&d->span, ctx);
	return MV_PGT_OK;
}

static mv_pgt_result install_visitor(const mv_pgt_ctx *ctx, mv_pgt_visit visit)
{
	install_data *d = ctx->arg;

	if (ctx->old == MV_SPTE_FROZEN)
		return MV_PGT_AGAIN;
	if (ctx->level < d->level)
		return visit == MV_PGT_VISIT_TABLE_PRE ? MV_PGT_OK : need_table(ctx, d);
	if (visit == MV_PGT_VISIT_TABLE_PRE)
		return table_at_target(ctx, d);
	return leaf_at_target(ctx, d);
}

/* A value install can write at @level: an MMIO SPTE, or a present leaf for that level. */
static bool spte_fits(const mv_ept *ept, mv_pte spte, int level)
{
	uint64_t size = mv_pgt_level_size(&ept->pgt, level);

	if (mv_ept_is_mmio_spte(spte))
		return true;
	if (!mv_ept_is_present(spte))
		return false;
	if (!(spte & MV_EPT_LARGE) != (level == EPT_LEAF_LEVEL))
		return false;
	return !(spte & MV_EPT_ADDR_MASK & (size - 1));
}

mv_pgt_result mv_ept_install(mv_ept *ept, uint64_t gpa, int level, mv_pte spte,
			     unsigned walk_flags, unsigned *tables_created)
{
	install_data d = { .spte = spte, .level = level,
			   .absent_only = walk_flags & MV_EPT_INSTALL_ABSENT };
	mv_pgt_walker w = {
		install_visitor, &d,
		MV_PGT_VISIT_LEAF | MV_PGT_VISIT_TABLE_PRE | (walk_flags & MV_PGT_WALK_SHARED),
	};
	mv_pgt_result r;

	if (tables_created)
		*tables_created = 0;
	if (level < 1 || level > EPT_LEAF_LEVEL || !spte_fits(ept, spte, level) ||
	    (gpa & (mv_pgt_level_size(&ept->pgt, level) - 1)))
		return MV_PGT_RANGE;
	r = mv_pgt_walk(&ept->pgt, gpa, 1, &w);
	ept_invept_span(ept, &d.span);
	if (tables_created)
		*tables_created = d.tables;
	return r;
}
