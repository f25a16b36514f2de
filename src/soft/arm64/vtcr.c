/*
 * VTCR_EL2 (ARM ARM D17.2 VTCR_EL2): decode into a stage-2 configuration
 * with the checks of the pseudocode AArch64.S2InvalidSL and
 * AArch64.S2InconsistentSL, encode back, and KVM's choice for an IPA size
 * (kvm_get_vtcr). This implementation has a 48-bit PAMax and neither
 * FEAT_LPA, FEAT_LPA2 (DS) nor FEAT_TTST.
 */
#include "memvirt/soft_stage2.h"

#include <errno.h>

#define FIELD(v, shift, width) ((unsigned)(((v) >> (shift)) & ((1u << (width)) - 1)))

#define IA_MIN 32
#define IA_MAX 48
#define PAMAX 48

/* PS, bits[18:16]: output address size in bits per encoding. */
static const unsigned ps_bits[8] = { 32, 36, 40, 42, 44, 48, 52, 0 };

/* TG0, bits[15:14]: 0b00 4 KiB, 0b01 64 KiB, 0b10 16 KiB, 0b11 reserved. */
static const unsigned tg0_shift[4] = { 12, 16, 14, 0 };

static unsigned tg0_of(unsigned granule_shift)
{
	return granule_shift == 12 ? 0 : granule_shift == 16 ? 1 : 2;
}

static int ps_of(unsigned oa_bits)
{
	for (int i = 0; i < 6; i++)
		if (ps_bits[i] == oa_bits)
			return i;
	return -1;
}

/* SL0: 4 KiB: 0b00 level 2 .. 0b10 level 0, 0b11 level 3 (FEAT_TTST); else 0b00 level 3 .. 0b11 level 0. */
static int sl0_start_level(unsigned sl0, unsigned granule_shift)
{
	if (granule_shift == 12)
		return sl0 == 3 ? 3 : 2 - (int)sl0;
	return 3 - (int)sl0;
}

static unsigned sl0_of(int start_level, unsigned granule_shift)
{
	if (granule_shift == 12)
		return (unsigned)(2 - start_level) & 3;
	return (unsigned)(3 - start_level) & 3;
}

static const char *granule_name(unsigned granule_shift)
{
	return granule_shift == 12 ? "4 KiB" : granule_shift == 14 ? "16 KiB" : "64 KiB";
}

/* AArch64.S2InvalidSL for this implementation (PAMax 48: its PAMax conditions hold). */
static int check_start_level(const mv_s2_config *cfg, mv_error *err)
{
	unsigned g = cfg->granule_shift, sl0 = sl0_of(cfg->start_level, g), tg0 = tg0_of(g);
	int sl = cfg->start_level;

	if (g == 12 && sl == 3)
		return mv_error_set(err, -EINVAL,
				    "VTCR_EL2.SL0=3 with TG0=0 (4 KiB granule) selects start level 3, "
				    "which needs FEAT_TTST (not implemented)");
	if (g == 14 && sl == 0)
		return mv_error_set(err, -EINVAL,
				    "VTCR_EL2.SL0=3 with TG0=2 (16 KiB granule) selects start level 0, "
				    "which needs VTCR_EL2.DS=1 (FEAT_LPA2, not implemented)");
	if (sl < 0 || sl > 3 || (g == 16 && sl == 0))
		return mv_error_set(err, -EINVAL,
				    "VTCR_EL2.SL0=%u with TG0=%u (%s granule) is reserved (start level %d)",
				    sl0, tg0, granule_name(g), sl);
	return 0;
}

/* AArch64.S2InconsistentSL: the start level resolves 1 .. stride + 4 bits. */
static int check_consistent(const mv_s2_config *cfg, mv_error *err)
{
	unsigned g = cfg->granule_shift, stride = g - 3, ia = cfg->ia_bits;
	unsigned shift = g + stride * (unsigned)(3 - cfg->start_level);
	unsigned sl0 = sl0_of(cfg->start_level, g), t0sz = 64 - ia;

	if (ia <= shift)
		return mv_error_set(err, -EINVAL,
				    "VTCR_EL2.SL0=%u with T0SZ=%u: start level %d resolves no bit of a "
				    "%u-bit IPA space (%s granule)",
				    sl0, t0sz, cfg->start_level, ia, granule_name(g));
	if (ia - shift > stride + 4)
		return mv_error_set(err, -EINVAL,
				    "VTCR_EL2.SL0=%u with T0SZ=%u needs %llu concatenated level-%d "
				    "tables (at most 16)",
				    sl0, t0sz, 1ull << (ia - shift - stride), cfg->start_level);
	return 0;
}

int mv_s2_config_check(const mv_s2_config *cfg, mv_error *err)
{
	unsigned g = cfg->granule_shift;
	int ps = ps_of(cfg->oa_bits);
	int r;

	if (g != 12 && g != 14 && g != 16)
		return mv_error_set(err, -EINVAL,
				    "VTCR_EL2.TG0 cannot encode a granule of 2^%u bytes (4, 16 or 64 KiB)", g);
	if (ps < 0)
		return mv_error_set(err, -EINVAL,
				    "VTCR_EL2.PS cannot encode a %u-bit output size (32, 36, 40, 42, 44 "
				    "or 48 bits here)",
				    cfg->oa_bits);
	if (cfg->ia_bits < IA_MIN || cfg->ia_bits > IA_MAX)
		return mv_error_set(err, -EINVAL,
				    "VTCR_EL2.T0SZ=%u gives a %u-bit IPA space; this stage-2 supports "
				    "%u to %u bits",
				    64 - cfg->ia_bits, cfg->ia_bits, IA_MIN, IA_MAX);
	if (cfg->ia_bits > cfg->oa_bits)
		return mv_error_set(err, -EINVAL,
				    "VTCR_EL2.T0SZ=%u gives a %u-bit IPA space, larger than the %u-bit "
				    "output size of VTCR_EL2.PS=%d",
				    64 - cfg->ia_bits, cfg->ia_bits, cfg->oa_bits, ps);
	r = check_start_level(cfg, err);
	if (r)
		return r;
	return check_consistent(cfg, err);
}

int mv_vtcr_decode(uint64_t vtcr, mv_s2_config *out, mv_error *err)
{
	unsigned t0sz = FIELD(vtcr, MV_VTCR_T0SZ_SHIFT, 6);
	unsigned sl0 = FIELD(vtcr, MV_VTCR_SL0_SHIFT, 2);
	unsigned tg0 = FIELD(vtcr, MV_VTCR_TG0_SHIFT, 2);
	unsigned ps = FIELD(vtcr, MV_VTCR_PS_SHIFT, 3);
	mv_s2_config cfg;
	int r;

	if (tg0 == 3)
		return mv_error_set(err, -EINVAL, "VTCR_EL2.TG0=3 is reserved");
	if (ps == 7)
		return mv_error_set(err, -EINVAL, "VTCR_EL2.PS=7 is reserved");
	if (ps == 6)
		return mv_error_set(err, -EINVAL,
				    "VTCR_EL2.PS=6 (52 bits) needs FEAT_LPA (not implemented)");
	if (vtcr & MV_VTCR_DS)
		return mv_error_set(err, -EINVAL, "VTCR_EL2.DS=1 needs FEAT_LPA2 (not implemented)");
	cfg = (mv_s2_config){
		.ia_bits = 64 - t0sz, .granule_shift = tg0_shift[tg0],
		.start_level = sl0_start_level(sl0, tg0_shift[tg0]), .oa_bits = ps_bits[ps],
	};
	r = mv_s2_config_check(&cfg, err);
	if (r)
		return r;
	*out = cfg;
	return 0;
}

uint64_t mv_vtcr_encode(const mv_s2_config *cfg)
{
	int ps = ps_of(cfg->oa_bits);

	return (uint64_t)(64 - cfg->ia_bits) << MV_VTCR_T0SZ_SHIFT |
	       (uint64_t)sl0_of(cfg->start_level, cfg->granule_shift) << MV_VTCR_SL0_SHIFT |
	       (uint64_t)MV_VTCR_RGN_WBWA << MV_VTCR_IRGN0_SHIFT |
	       (uint64_t)MV_VTCR_RGN_WBWA << MV_VTCR_ORGN0_SHIFT |
	       (uint64_t)MV_VTCR_SH_INNER << MV_VTCR_SH0_SHIFT |
	       (uint64_t)tg0_of(cfg->granule_shift) << MV_VTCR_TG0_SHIFT |
	       (uint64_t)(ps < 0 ? 0 : ps) << MV_VTCR_PS_SHIFT | MV_VTCR_RES1;
}

int mv_s2_config_for_ipa(unsigned ia_bits, unsigned granule_shift, mv_s2_config *out)
{
	int levels;

	if (ia_bits < IA_MIN || ia_bits > IA_MAX ||
	    (granule_shift != 12 && granule_shift != 14 && granule_shift != 16))
		return -EINVAL;
	/* stage2_pgtable_levels = ARM64_HW_PGTABLE_LEVELS(ia_bits - 4), at least 2. */
	levels = (int)((ia_bits - 4 - 4) / (granule_shift - 3));
	if (levels < 2)
		levels = 2;
	*out = (mv_s2_config){
		.ia_bits = ia_bits, .granule_shift = granule_shift, .start_level = 4 - levels,
		.oa_bits = PAMAX,
	};
	return 0;
}
