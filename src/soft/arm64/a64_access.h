/*
 * The access engine's own interfaces: access.c (mv_a64_vcpu_exec, the TLB
 * and the retry loop) over stage1.c (the guest's stage-1 walk followed by
 * stage 2 of its output), stage2_access.c (stage 2 of one IPA) and
 * syndrome.c (the ESR / HPFAR / FAR values a fault is reported with).
 *
 * A fault is first described abstractly (kind, level, stage, the IPA and
 * the VA) while translating; syndrome.c turns the description into the
 * registers hardware writes, for EL2 (stage-2 aborts) or EL1 (stage-1).
 */
#ifndef MV_SOFT_A64_ACCESS_H
#define MV_SOFT_A64_ACCESS_H

#include "soft/arm64/a64_internal.h"

/* 4 KiB: the engine's page (TLB entries, page-crossing accesses). */
#define A64_PAGE_SHIFT 12
#define A64_PAGE_SIZE (1ull << A64_PAGE_SHIFT)
/* PAMax of the soft CPU: ID_AA64MMFR0_EL1.PARange = 0b0101, 48 bits. */
#define A64_PA_BITS 48

/* What one translation is for: the permission it needs and the syndrome it reports. */
typedef struct a64_access {
	const mv_a64_insn *insn;
	uint8_t el;          /* 0 or 1: the EL permissions are checked for */
	bool write;          /* a store (WnR = 1) */
	bool fetch;          /* an instruction fetch (Instruction Abort) */
	bool cm;             /* DC by VA: CM = 1, WnR = 1, needs read permission */
	unsigned need;       /* MV_TLB_R / MV_TLB_W / MV_TLB_X */
} a64_access;

/* Fault kinds, by their DFSC/IFSC base (ARM ARM D17.2 ESR_ELx, ISS for aborts). */
typedef enum a64_fault_kind {
	A64_FAULT_ADDR_SIZE,  /* 0b0000LL */
	A64_FAULT_TRANS,      /* 0b0001LL */
	A64_FAULT_ACCESS,     /* 0b0010LL */
	A64_FAULT_PERM,       /* 0b0011LL */
	A64_FAULT_SEA,        /* 0b010000: synchronous external abort, not on a walk */
} a64_fault_kind;

/* One fault, before it becomes register values. */
typedef struct a64_xfault {
	a64_fault_kind kind;
	int level;           /* lookup level of the walk that faulted (not for SEA) */
	bool stage2;         /* taken to EL2 (stage-2 faults and external aborts) */
	bool s1ptw;          /* stage-2 fault on a stage-1 table access */
	uint64_t ipa;        /* stage 2: the IPA that faulted (HPFAR_EL2) */
	uint64_t va;         /* the VA (FAR_ELx) */
} a64_xfault;

/* A successful two-stage translation of one address. */
typedef struct a64_xlate {
	uint64_t ipa;
	uint64_t host;       /* host address of the byte at the VA */
	unsigned rights;     /* MV_TLB_* both stages grant at the access's EL */
} a64_xlate;

/* ---- stage2_access.c ---- */
/*
 * Stage 2 of @ipa for an access needing @need (MV_TLB_*), with vm->mmu_lock
 * held for reading. True with *host (the host address of @ipa) and *rights
 * (what the leaf grants); false with f->kind / level / ipa / stage2 set.
 */
bool a64_s2_translate(mv_a64_vm *vm, uint64_t ipa, unsigned need, uint64_t *host, unsigned *rights,
		      a64_xfault *f);

/* ---- stage1.c ---- */
/*
 * Translate @va for @acc through the guest's stage 1 (SCTLR_EL1.M = 1) or
 * the flat map (M = 0), then stage 2 of the resulting IPA, with
 * vm->mmu_lock held for reading. True with *out; false with *f: a stage-1
 * fault (f->stage2 false) or a stage-2 fault, on a table access
 * (f->s1ptw) or on the output IPA.
 */
bool a64_translate(mv_a64_vcpu *vcpu, const a64_access *acc, uint64_t va, a64_xlate *out,
		   a64_xfault *f);

/* ---- syndrome.c ---- */
/* DFSC/IFSC of @f. */
unsigned a64_fsc(const a64_xfault *f);
/* ESR_EL2, HPFAR_EL2 and FAR_EL2 of a fault taken to EL2. */
void a64_syndrome_el2(const a64_access *acc, const a64_xfault *f, a64_fault *out);
/* ESR_EL1 of a stage-1 fault taken to EL1 from acc->el. */
uint64_t a64_syndrome_el1(const a64_access *acc, const a64_xfault *f);

#endif
