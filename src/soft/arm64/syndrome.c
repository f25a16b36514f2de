/*
 * The registers an abort is reported with (ARM ARM D17.2 ESR_EL2, "ISS
 * encoding for an exception from a Data Abort / Instruction Abort",
 * HPFAR_EL2, FAR_EL2), and their one-line decoding.
 *
 * Choices where the manual leaves room, as hardware and KVM see them:
 *  - WnR on a stage-2 fault on a stage-1 table walk (S1PTW = 1) reports the
 *    instruction (1 for a store), not the walker's read: what ARMv8.0 cores
 *    do (KVM commit 60e21a0ef54c relies on it); no hardware AF/DBM update
 *    is modelled, so the walker never writes.
 *  - Cache maintenance (CM = 1) reports WnR = 1 ("For faults on cache
 *    maintenance and address translation instructions, this bit always
 *    returns a value of 1").
 *  - ISV = 0 for synchronous external aborts (FEAT_RAS: "ISV is 0 for any
 *    synchronous External abort"), for S1PTW faults, for CM and for every
 *    fault reported in ESR_EL1.
 *  - HPFAR_EL2 is written for every abort taken to EL2, a synchronous
 *    external abort included (there the manual makes it UNKNOWN; the IPA of
 *    the access is the useful value, and KVM's SEA path reads it).
 *  - EA = 0 and FnV = 0: FAR is always valid.
 */
#include "soft/arm64/a64_access.h"

#include <stdarg.h>
#include <stdio.h>

#define FSC_ALIGNMENT 0x21u      /* DFSC 0b100001: alignment fault */
#define FSC_TLB_CONFLICT 0x30u   /* DFSC 0b110000: TLB conflict abort */

/* DFSC/IFSC base of each kind (ARM ARM D17.2, ESR_ELx ISS DFSC). */
static const unsigned fsc_base[] = {
	[A64_FAULT_ADDR_SIZE] = MV_FSC_ADDR_SIZE,
	[A64_FAULT_TRANS] = MV_FSC_TRANS,
	[A64_FAULT_ACCESS] = MV_FSC_ACCESS,
	[A64_FAULT_PERM] = MV_FSC_PERM,
	[A64_FAULT_SEA] = MV_FSC_SEA,
};

unsigned a64_fsc(const a64_xfault *f)
{
	if (f->kind == A64_FAULT_SEA)
		return MV_FSC_SEA;
	return fsc_base[f->kind] + (unsigned)f->level;
}

/* ISV: single general-purpose register loads/stores without writeback. */
static bool a64_isv(const a64_access *acc, const a64_xfault *f)
{
	const mv_a64_insn *i = acc->insn;

	if (f->s1ptw || f->kind == A64_FAULT_SEA || acc->cm || acc->fetch)
		return false;
	return !i->pair && !i->exclusive && !i->simd && i->wb == MV_A64_WB_NONE;
}

/* ISS[23:14] when ISV = 1: SAS, SSE, SRT, SF, AR. */
static uint64_t a64_iss_access(const mv_a64_insn *i)
{
	uint64_t iss = MV_ESR_ISV;

	iss |= (uint64_t)__builtin_ctz(i->size) << MV_ESR_SAS_SHIFT;
	iss |= (uint64_t)i->rt << MV_ESR_SRT_SHIFT;
	if (i->sign_extend)
		iss |= MV_ESR_SSE;
	if (i->sf)
		iss |= MV_ESR_SF;
	if (i->acq_rel)
		iss |= MV_ESR_AR;
	return iss;
}

/* EC, IL and the ISS bits common to both ELs. */
static uint64_t a64_esr(const a64_access *acc, const a64_xfault *f, bool same_el)
{
	uint64_t ec = acc->fetch ? MV_ESR_EC_IABT_LOW : MV_ESR_EC_DABT_LOW;
	uint64_t esr;

	esr = (ec + same_el) << MV_ESR_EC_SHIFT | MV_ESR_IL | a64_fsc(f);
	if (f->s1ptw)
		esr |= MV_ESR_S1PTW;
	if (acc->fetch)
		return esr;            /* IABT ISS: no WnR, CM, ISV */
	if (acc->cm)
		esr |= MV_ESR_CM;
	if (acc->write || acc->cm)
		esr |= MV_ESR_WNR;
	return esr;
}

void a64_syndrome_el2(const a64_access *acc, const a64_xfault *f, a64_fault *out)
{
	/* EL0 and EL1 are both lower than EL2: EC is always *_LOW. */
	out->esr = a64_esr(acc, f, false);
	if (a64_isv(acc, f))
		out->esr |= a64_iss_access(acc->insn);
	out->hpfar = MV_HPFAR_FIPA(f->ipa);
	out->far = f->va;
}

uint64_t a64_syndrome_el1(const a64_access *acc, const a64_xfault *f)
{
	return a64_esr(acc, f, acc->el == 1);
}

/* ---- mv_esr_describe ---- */

static const char *ec_name(unsigned ec)
{
	switch (ec) {
	case MV_ESR_EC_IABT_LOW:
		return "IABT_LOW";
	case MV_ESR_EC_IABT_CUR:
		return "IABT_CUR";
	case MV_ESR_EC_DABT_LOW:
		return "DABT_LOW";
	case MV_ESR_EC_DABT_CUR:
		return "DABT_CUR";
	default:
		return NULL;
	}
}

/* "translation fault, level 3" for a DFSC/IFSC (ARM ARM D17.2 ESR_ELx DFSC). */
static void fsc_text(unsigned fsc, char *buf, size_t len)
{
	static const char *const leveled[] = {
		"address size fault", "translation fault", "access flag fault", "permission fault",
		"synchronous external abort", "synchronous external abort on translation table walk",
	};

	if (fsc == MV_FSC_SEA)
		snprintf(buf, len, "%s", leveled[4]);
	else if (fsc < MV_FSC_SEA)
		snprintf(buf, len, "%s, level %u", leveled[fsc >> 2], fsc & 3);
	else if ((fsc & ~3u) == MV_FSC_SEA_TTW)
		snprintf(buf, len, "%s, level %u", leveled[5], fsc & 3);
	else if (fsc == FSC_ALIGNMENT)
		snprintf(buf, len, "alignment fault");
	else if (fsc == FSC_TLB_CONFLICT)
		snprintf(buf, len, "TLB conflict abort");
	else
		snprintf(buf, len, "fault status 0x%02x", fsc);
}

/* snprintf that appends, counting what would have been written. */
typedef struct esr_text {
	char *buf;
	size_t len;
	int n;
} esr_text;

static void __attribute__((format(printf, 2, 3))) esr_add(esr_text *t, const char *fmt, ...)
{
	size_t at = (size_t)t->n < t->len ? (size_t)t->n : t->len;
	va_list ap;

	va_start(ap, fmt);
	t->n += vsnprintf(t->buf ? t->buf + at : NULL, t->len - at, fmt, ap);
	va_end(ap);
}

int mv_esr_describe(uint64_t esr, char *buf, size_t len)
{
	unsigned ec = (esr >> MV_ESR_EC_SHIFT) & 0x3f;
	const char *name = ec_name(ec);
	bool dabt = ec == MV_ESR_EC_DABT_LOW || ec == MV_ESR_EC_DABT_CUR;
	esr_text t = { buf, len, 0 };
	char fsc[64];

	if (!name) {
		esr_add(&t, "EC=0x%02x IL=%d ISS=0x%07llx", ec, !!(esr & MV_ESR_IL),
			(unsigned long long)(esr & ((1ull << 25) - 1)));
		return t.n;
	}
	esr_add(&t, "EC=0x%02x (%s) IL=%d", ec, name, !!(esr & MV_ESR_IL));
	if (dabt)
		esr_add(&t, " ISV=%d", !!(esr & MV_ESR_ISV));
	if (dabt && (esr & MV_ESR_ISV))
		esr_add(&t, " SAS=%u SSE=%d SRT=%u SF=%d AR=%d", (unsigned)(esr >> MV_ESR_SAS_SHIFT) & 3,
			!!(esr & MV_ESR_SSE), (unsigned)(esr >> MV_ESR_SRT_SHIFT) & 31,
			!!(esr & MV_ESR_SF), !!(esr & MV_ESR_AR));
	esr_add(&t, " FnV=%d EA=%d", !!(esr & MV_ESR_FNV), !!(esr & MV_ESR_EA));
	if (dabt)
		esr_add(&t, " CM=%d", !!(esr & MV_ESR_CM));
	esr_add(&t, " S1PTW=%d", !!(esr & MV_ESR_S1PTW));
	if (dabt)
		esr_add(&t, " WnR=%d", !!(esr & MV_ESR_WNR));
	fsc_text(esr & MV_ESR_FSC_MASK, fsc, sizeof(fsc));
	esr_add(&t, " %s=0x%02x (%s)", dabt ? "DFSC" : "IFSC", (unsigned)(esr & MV_ESR_FSC_MASK), fsc);
	return t.n;
}
