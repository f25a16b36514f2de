/*
 * The guest's stage-1 translation (EL1&0 regime, ARM ARM D8 "VMSAv8-64
 * translation", AArch64.S1Translate) followed by stage 2 of its output.
 *
 * SCTLR_EL1.M = 0: the IPA is the VA; a VA above PAMax (48 bits) is a
 * stage-1 address size fault at level 0.
 * SCTLR_EL1.M = 1: VA[55] selects TTBR0_EL1 or TTBR1_EL1, and then, in the
 * manual's priority order, each of these is a stage-1 fault:
 *   TxSZ outside 16..39                     translation, level 0 (the
 *                                           IMPLEMENTATION DEFINED choice
 *                                           FEAT_LVA makes mandatory)
 *   VA[63:64-TxSZ] not all equal to VA[55]  translation, level 0
 *   EPDx = 1                                translation, level 0
 *   TTBR BADDR above the output size        address size, level 0
 *   table or leaf address above it          address size at that level
 *   invalid entry, block at level 0,
 *   reserved level-3 encoding               translation at that level
 *   AF = 0                                  access flag (no hardware update)
 *   AP / UXN / PXN forbid the access        permission
 * with APTable / UXNTable / PXNTable of every table on the way applied,
 * and a region writable at EL0 never executable at EL1. The output size
 * is TCR_EL1.IPS capped at PAMax. Tables are read at their IPAs through
 * stage 2 (mm_ops phys_to_virt), which may fault: a stage-2 fault with
 * S1PTW = 1.
 *
 * Only the 4 KiB granule is implemented, so every TG0/TG1 value means 4 KiB
 * (the manual treats an unimplemented granule size as an implemented one).
 * Not modelled: TBI (top byte ignore), HPD, HA/HD, WXN, PAN, ASIDs.
 */
#include "soft/arm64/a64_access.h"

/* ---- SCTLR_EL1, TCR_EL1, TTBRn_EL1 (ARM ARM D17.2) ---- */
#define SCTLR_M          (1ull << 0)                /* stage-1 MMU enable */
#define TCR_T0SZ(tcr)    ((unsigned)(tcr) & 0x3f)   /* T0SZ, bits[5:0] */
#define TCR_EPD0         (1ull << 7)                /* EPD0: no TTBR0 walks */
#define TCR_T1SZ(tcr)    ((unsigned)((tcr) >> 16) & 0x3f) /* T1SZ, bits[21:16] */
#define TCR_EPD1         (1ull << 23)               /* EPD1: no TTBR1 walks */
#define TCR_IPS(tcr)     ((unsigned)((tcr) >> 32) & 7)    /* IPS, bits[34:32] */
#define TTBR_BADDR       0x0000fffffffffffeull      /* BADDR, bits[47:1] */
#define TXSZ_MIN 16                                 /* 4 KiB granule, no FEAT_LVA */
#define TXSZ_MAX 39                                 /* no FEAT_TTST */

/* ---- Stage-1 descriptors, 4 KiB granule (ARM ARM D8.3) ---- */
#define S1_VALID         (1ull << 0)
#define S1_TABLE         (1ull << 1)    /* table (levels 0-2) or page (level 3) */
#define S1_AP_EL0        (1ull << 6)    /* AP[1]: EL0 access */
#define S1_AP_RO         (1ull << 7)    /* AP[2]: read-only */
#define S1_AF            (1ull << 10)   /* Access Flag */
#define S1_PXN           (1ull << 53)   /* privileged execute-never */
#define S1_UXN           (1ull << 54)   /* unprivileged execute-never */
#define S1_PXN_TABLE     (1ull << 59)   /* PXNTable */
#define S1_UXN_TABLE     (1ull << 60)   /* UXNTable */
#define S1_AP_TABLE_NO_EL0 (1ull << 61) /* APTable[0]: no EL0 access below */
#define S1_AP_TABLE_RO   (1ull << 62)   /* APTable[1]: no write access below */
#define S1_TABLE_ATTRS   (S1_PXN_TABLE | S1_UXN_TABLE | S1_AP_TABLE_NO_EL0 | S1_AP_TABLE_RO)
#define S1_OA            0x0000fffffffff000ull      /* address, bits[47:12] */
#define S1_STRIDE 9                                 /* index bits per level */

/* Output sizes of TCR_EL1.IPS (0b110, 52 bits, and reserved 0b111 exceed PAMax). */
static const unsigned ips_bits[8] = { 32, 36, 40, 42, 44, 48, 48, 48 };

/* State of one walk (the walker's visitor arg and the mm_ops arg). */
typedef struct s1_walk {
	mv_a64_vm *vm;
	a64_xfault *f;
	unsigned oa_bits;
	uint64_t table_attrs;   /* S1_TABLE_ATTRS of the tables on the way, OR-ed */
	mv_pte leaf;
	int level;
	bool faulted;           /* a fault was recorded in *f */
} s1_walk;

/* Input address bits below level @level's entries. */
static unsigned s1_level_shift(int level)
{
	return A64_PAGE_SHIFT + S1_STRIDE * (unsigned)(3 - level);
}

static bool s1_fault(a64_xfault *f, a64_fault_kind kind, int level)
{
	f->kind = kind;
	f->level = level;
	f->stage2 = false;
	f->s1ptw = false;
	return false;
}

static bool s1_is_valid(mv_pte pte)
{
	return (pte & S1_VALID) != 0;
}

static bool s1_is_table(mv_pte pte, int level)
{
	return level < 3 && (pte & (S1_VALID | S1_TABLE)) == (S1_VALID | S1_TABLE);
}

static uint64_t s1_table_pa(mv_pte pte)
{
	return pte & S1_OA;
}

/* mm_ops phys_to_virt: read a table at its IPA, through stage 2 (S1PTW). */
static void *s1_table_host(void *arg, uint64_t ipa)
{
	s1_walk *w = arg;
	uint64_t host;
	unsigned rights;

	if (!a64_s2_translate(w->vm, ipa, MV_TLB_R, &host, &rights, w->f)) {
		w->f->s1ptw = true;
		w->faulted = true;
		return NULL;
	}
	return (void *)(uintptr_t)host;
}

static const mv_pgt_format s1_format = {
	.name = "stage-1",
	.is_table = s1_is_table,
	.is_valid = s1_is_valid,
	.table_pa = s1_table_pa,
};

static const mv_pgt_mm_ops s1_mm_ops = {
	.phys_to_virt = s1_table_host,
};

/* Table entries: check the next table's address, collect the hierarchical attributes. */
static mv_pgt_result s1_visit(const mv_pgt_ctx *ctx, mv_pgt_visit visit)
{
	s1_walk *w = ctx->arg;

	if (visit == MV_PGT_VISIT_TABLE_PRE) {
		if ((ctx->old & S1_OA) >> w->oa_bits) {
			w->faulted = true;
			s1_fault(w->f, A64_FAULT_ADDR_SIZE, ctx->level);
			return MV_PGT_STOP;
		}
		w->table_attrs |= ctx->old & S1_TABLE_ATTRS;
		return MV_PGT_OK;
	}
	w->leaf = ctx->old;
	w->level = ctx->level;
	return MV_PGT_STOP;
}

/* Rights of a leaf at @el, with the tables' restrictions (ARM ARM D8.4 "Memory access control"). */
static unsigned s1_rights(mv_pte leaf, uint64_t table_attrs, unsigned el)
{
	bool ro = (leaf & S1_AP_RO) || (table_attrs & S1_AP_TABLE_RO);
	bool el0 = (leaf & S1_AP_EL0) && !(table_attrs & S1_AP_TABLE_NO_EL0);
	bool uxn = (leaf & S1_UXN) || (table_attrs & S1_UXN_TABLE);
	bool pxn = (leaf & S1_PXN) || (table_attrs & S1_PXN_TABLE);
	unsigned data = MV_TLB_R | (ro ? 0 : MV_TLB_W);

	if (el == 0)
		return (el0 ? data : 0) | (uxn ? 0 : MV_TLB_X);
	/* Memory writable at EL0 is never executable at EL1. */
	return data | (pxn || (el0 && !ro) ? 0 : MV_TLB_X);
}

/* The leaf's checks, in priority order; *ipa on success. */
static bool s1_leaf(const s1_walk *w, const a64_access *acc, uint64_t va, uint64_t *ipa,
		    unsigned *rights)
{
	uint64_t size = 1ull << s1_level_shift(w->level);
	bool leaf_ok = w->level == 3 ? (w->leaf & S1_TABLE) != 0 : w->level > 0;

	if (!(w->leaf & S1_VALID) || !leaf_ok)
		return s1_fault(w->f, A64_FAULT_TRANS, w->level);
	if ((w->leaf & S1_OA) >> w->oa_bits)
		return s1_fault(w->f, A64_FAULT_ADDR_SIZE, w->level);
	if (!(w->leaf & S1_AF))
		return s1_fault(w->f, A64_FAULT_ACCESS, w->level);
	*rights = s1_rights(w->leaf, w->table_attrs, acc->el);
	if (acc->need & ~*rights)
		return s1_fault(w->f, A64_FAULT_PERM, w->level);
	*ipa = (w->leaf & S1_OA & ~(size - 1)) | (va & (size - 1));
	return true;
}

/* The walk's parameters for @va (TTBR0 or TTBR1), or a level-0 fault. */
static bool s1_setup(const mv_a64_sysregs *sys, uint64_t va, mv_pgt *pgt, a64_xfault *f)
{
	bool upper = (va >> 55) & 1;
	unsigned txsz = upper ? TCR_T1SZ(sys->tcr_el1) : TCR_T0SZ(sys->tcr_el1);
	uint64_t ttbr = upper ? sys->ttbr1_el1 : sys->ttbr0_el1;
	unsigned ia_bits = 64 - txsz, oa_bits = ips_bits[TCR_IPS(sys->tcr_el1)];
	uint64_t top;

	if (txsz < TXSZ_MIN || txsz > TXSZ_MAX)
		return s1_fault(f, A64_FAULT_TRANS, 0);
	top = va >> ia_bits;
	if (top != (upper ? (~0ull >> ia_bits) : 0))
		return s1_fault(f, A64_FAULT_TRANS, 0);
	if (sys->tcr_el1 & (upper ? TCR_EPD1 : TCR_EPD0))
		return s1_fault(f, A64_FAULT_TRANS, 0);
	if ((ttbr & TTBR_BADDR) >> oa_bits)
		return s1_fault(f, A64_FAULT_ADDR_SIZE, 0);
	pgt->ia_bits = ia_bits;
	pgt->granule_shift = A64_PAGE_SHIFT;
	/* 4 - ceil((ia_bits - 12) / 9): the level that resolves the top bits. */
	pgt->start_level = 4 - (int)(ia_bits - 4) / S1_STRIDE;
	pgt->last_level = 3;
	/* BADDR is aligned to the start-level table (lower bits RES0, ignored). */
	pgt->root_pa = ttbr & TTBR_BADDR & ~((8ull << (ia_bits - s1_level_shift(pgt->start_level))) - 1);
	return true;
}

/* Stage 1 with SCTLR_EL1.M = 1. */
static bool s1_walk_va(mv_a64_vcpu *vcpu, const a64_access *acc, uint64_t va, uint64_t *ipa,
		       unsigned *rights, a64_xfault *f)
{
	s1_walk w = { .vm = vcpu->vm, .f = f };
	mv_pgt pgt = { .fmt = &s1_format, .mm_ops = &s1_mm_ops, .mm_arg = &w };
	mv_pgt_walker walker = {
		.cb = s1_visit,
		.arg = &w,
		.flags = MV_PGT_VISIT_LEAF | MV_PGT_VISIT_TABLE_PRE | MV_PGT_WALK_SHARED,
	};

	if (!s1_setup(&vcpu->sys, va, &pgt, f))
		return false;
	w.oa_bits = ips_bits[TCR_IPS(vcpu->sys.tcr_el1)];
	w.level = pgt.start_level;
	mv_pgt_walk(&pgt, va & ((1ull << pgt.ia_bits) - 1), 1, &walker);
	if (w.faulted)
		return false;
	return s1_leaf(&w, acc, va, ipa, rights);
}

bool a64_translate(mv_a64_vcpu *vcpu, const a64_access *acc, uint64_t va, a64_xlate *out,
		   a64_xfault *f)
{
	unsigned s1_rights = MV_TLB_R | MV_TLB_W | MV_TLB_X, s2_rights;
	uint64_t ipa = va;

	f->va = va;
	f->s1ptw = false;
	if (!(vcpu->sys.sctlr_el1 & SCTLR_M)) {
		if (va >> A64_PA_BITS)
			return s1_fault(f, A64_FAULT_ADDR_SIZE, 0);
	} else if (!s1_walk_va(vcpu, acc, va, &ipa, &s1_rights, f)) {
		return false;
	}
	if (!a64_s2_translate(vcpu->vm, ipa, acc->need, &out->host, &s2_rights, f))
		return false;
	out->ipa = ipa;
	out->rights = s1_rights & s2_rights;
	return true;
}
