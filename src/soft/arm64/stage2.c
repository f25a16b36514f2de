/*
 * ARMv8 stage-2 descriptors (ARM ARM D8.3 "VMSAv8-64 translation table
 * format descriptors"; "Stage 2 memory type and Cacheability attributes
 * when FEAT_S2FWB is disabled"), the table's life cycle, lookups and statistics,
 * and the entry updates (set, break, make) the operations are built of.
 */
#include "stage2_internal.h"

#include <errno.h>
#include <string.h>

/* Table descriptor: next-level table address bits[47:g] (D8.3 Table descriptor format). */
static uint64_t table_pa_4k(mv_pte pte)
{
	return pte & MV_S2_OA_MASK(12);
}

static uint64_t table_pa_16k(mv_pte pte)
{
	return pte & MV_S2_OA_MASK(14);
}

static uint64_t table_pa_64k(mv_pte pte)
{
	return pte & MV_S2_OA_MASK(16);
}

static bool fmt_is_valid(mv_pte pte)
{
	return s2_valid(pte);
}

static const mv_pgt_format s2_formats[3] = {
	{ "arm64-stage2-4k", s2_is_table, fmt_is_valid, table_pa_4k },
	{ "arm64-stage2-16k", s2_is_table, fmt_is_valid, table_pa_16k },
	{ "arm64-stage2-64k", s2_is_table, fmt_is_valid, table_pa_64k },
};

static const mv_pgt_format *format_for(unsigned granule_shift)
{
	switch (granule_shift) {
	case 12: return &s2_formats[0];
	case 14: return &s2_formats[1];
	case 16: return &s2_formats[2];
	}
	return NULL;
}

/*
 * Block levels with a 48-bit OA (D8.3 Block descriptor): 4 KiB: levels 1
 * (1 GiB) and 2 (2 MiB), level 0 only with FEAT_LPA2; 16 KiB: level 2
 * (32 MiB), level 1 only with FEAT_LPA2; 64 KiB: level 2 (512 MiB), level
 * 1 only with FEAT_LPA.
 */
bool s2_block_level(const mv_pgt *pgt, int level)
{
	return level == 2 || (level == 1 && pgt->granule_shift == 12);
}

mv_pte s2_leaf(const mv_pgt *pgt, uint64_t oa, uint64_t attr, int level)
{
	mv_pte type = level == pgt->last_level ? S2_TYPE_TABLE_PAGE : S2_TYPE_BLOCK;

	return (oa & MV_S2_OA_MASK(pgt->granule_shift)) | (attr & S2_LEAF_ATTRS) | type;
}

mv_pte s2_table_pte(const mv_pgt *pgt, mv_pte *table)
{
	uint64_t pa = pgt->mm_ops->virt_to_phys(pgt->mm_arg, table);

	return (pa & MV_S2_OA_MASK(pgt->granule_shift)) | S2_TYPE_TABLE_PAGE;
}

uint64_t mv_s2_prot_attr(unsigned prot)
{
	uint64_t attr = MV_S2_SH_INNER | MV_S2_AF;

	if (prot & MV_S2_PROT_DEVICE)
		attr |= MV_S2_MEMATTR_DEVICE_nGnRE << MV_S2_MEMATTR_SHIFT;
	else
		attr |= MV_S2_MEMATTR_NORMAL_WB << MV_S2_MEMATTR_SHIFT;
	if (prot & MV_S2_PROT_R)
		attr |= MV_S2_S2AP_R;
	if (prot & MV_S2_PROT_W)
		attr |= MV_S2_S2AP_W;
	/* Device memory is never executable (Linux refuses X on device mappings). */
	if (!(prot & MV_S2_PROT_X) || (prot & MV_S2_PROT_DEVICE))
		attr |= MV_S2_XN;
	return attr;
}

unsigned mv_s2_attr_prot(uint64_t attr)
{
	unsigned prot = 0;

	if (attr & MV_S2_S2AP_R)
		prot |= MV_S2_PROT_R;
	if (attr & MV_S2_S2AP_W)
		prot |= MV_S2_PROT_W;
	if (!(attr & MV_S2_XN))
		prot |= MV_S2_PROT_X;
	/* MemAttr[3:2] == 0b00 is Device memory (ARM ARM stage 2 MemAttr, FEAT_S2FWB disabled). */
	if (!(attr & (0xcull << MV_S2_MEMATTR_SHIFT)))
		prot |= MV_S2_PROT_DEVICE;
	return prot;
}

uint64_t mv_s2_pte_oa(mv_pte pte, unsigned granule_shift)
{
	return pte & MV_S2_OA_MASK(granule_shift);
}

/* ---- Entry updates ---- */

void s2_tlbi(mv_s2_pgt *s2, uint64_t ipa, uint64_t size)
{
	__atomic_add_fetch(&s2->nr_tlbi, 1, __ATOMIC_RELAXED);
	if (s2->tlbi)
		s2->tlbi(s2->tlbi_arg, ipa, size);
}

void s2_tlbi_ctx(const mv_pgt_ctx *ctx)
{
	s2_tlbi(s2_of(ctx), mv_pgt_ctx_base(ctx), mv_pgt_ctx_size(ctx));
}

bool s2_try_break(const mv_pgt_ctx *ctx)
{
	if (s2_locked(ctx->old) || !mv_pgt_ctx_try_set(ctx, MV_S2_PTE_LOCKED))
		return false;
	mv_pgt_ctx_account(ctx, ctx->old, MV_S2_PTE_LOCKED);
	if (s2_valid(ctx->old))
		s2_tlbi_ctx(ctx);
	return true;
}

void s2_make(const mv_pgt_ctx *ctx, mv_pte new)
{
	__atomic_store_n(ctx->ptep, new, __ATOMIC_RELEASE);
	mv_pgt_ctx_account(ctx, MV_S2_PTE_LOCKED, new);
	if (s2_valid(ctx->old) && s2_valid(new))
		__atomic_add_fetch(&s2_of(ctx)->nr_bbm, 1, __ATOMIC_RELAXED);
}

/* ---- Life cycle, lookups, statistics ---- */

int mv_s2_init(mv_s2_pgt *s2, const mv_s2_config *cfg, const mv_pgt_mm_ops *mm, void *mm_arg,
	       mv_s2_tlbi_fn tlbi, void *tlbi_arg)
{
	memset(s2, 0, sizeof(*s2));
	if (mv_s2_config_check(cfg, NULL))
		return -EINVAL;
	s2->cfg = *cfg;
	s2->tlbi = tlbi;
	s2->tlbi_arg = tlbi_arg;
	s2->pgt = (mv_pgt){
		.fmt = format_for(cfg->granule_shift), .mm_ops = mm, .mm_arg = mm_arg,
		.ia_bits = cfg->ia_bits, .granule_shift = cfg->granule_shift,
		.start_level = cfg->start_level, .last_level = 3,
	};
	return mv_pgt_alloc_root(&s2->pgt);
}

void mv_s2_destroy(mv_s2_pgt *s2)
{
	mv_pgt_destroy(&s2->pgt);
}

/*
 * A valid leaf as the hardware reads it: a page needs bits[1:0] = 0b11 at
 * level 3 (0b01 is reserved there), a block needs a block level.
 */
static bool leaf_ok(const mv_pgt *pgt, mv_pte pte, int level)
{
	if (level == pgt->last_level)
		return (pte & S2_TYPE_MASK) == S2_TYPE_TABLE_PAGE;
	return (pte & S2_TYPE_MASK) == S2_TYPE_BLOCK && s2_block_level(pgt, level);
}

mv_pgt_result mv_s2_get_leaf(mv_s2_pgt *s2, uint64_t ipa, mv_pte *pte, int *level)
{
	mv_pte v;
	int l;
	mv_pgt_result r = mv_pgt_get_leaf(&s2->pgt, ipa, &v, &l);

	if (v && !leaf_ok(&s2->pgt, v, l))
		v = 0;
	if (pte)
		*pte = v;
	if (level)
		*level = l;
	return r;
}

static mv_pgt_result stats_visitor(const mv_pgt_ctx *ctx, mv_pgt_visit visit)
{
	mv_s2_stats *st = ctx->arg;

	if (visit == MV_PGT_VISIT_TABLE_PRE)
		st->tables++;
	else if (s2_valid(ctx->old) && ctx->level >= 0)
		st->leaves[ctx->level]++;
	return MV_PGT_OK;
}

void mv_s2_get_stats(mv_s2_pgt *s2, mv_s2_stats *st)
{
	mv_pgt_walker w = { stats_visitor, st, MV_PGT_VISIT_LEAF | MV_PGT_VISIT_TABLE_PRE };

	memset(st, 0, sizeof(*st));
	mv_pgt_walk(&s2->pgt, 0, 1ull << s2->pgt.ia_bits, &w);
	st->bbm = __atomic_load_n(&s2->nr_bbm, __ATOMIC_RELAXED);
	st->tlbi = __atomic_load_n(&s2->nr_tlbi, __ATOMIC_RELAXED);
}
