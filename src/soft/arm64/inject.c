/*
 * Exceptions KVM puts into the guest (arch/arm64/kvm/inject_fault.c):
 * synchronous external aborts, address size faults and virtual SErrors,
 * all taken to EL1 as the ARM ARM's exception entry describes (D1.10
 * "Exception entry": ELR_EL1, SPSR_EL1, ESR_EL1, FAR_EL1, PC = vector).
 *
 * Only PSTATE.EL is modelled, so SPSR_EL1 records M[3:0] alone and the
 * stack pointer is not switched (mv_a64_regs.sp is "the SP of the current
 * EL"). The guest is AArch64 at EL0 and EL1.
 */
#include "soft/arm64/a64_abort.h"

/* SPSR_EL1.M[3:0] (ARM ARM C5.2.18 SPSR_EL1): the mode the exception came from. */
#define A64_SPSR_M_EL0t 0x0u
#define A64_SPSR_M_EL1h 0x5u

/* VBAR_EL1 offsets (ARM ARM D1.10.2 "Exception vectors"). */
#define A64_VEC_CUR_SPX   0x200u   /* current EL with SP_ELx */
#define A64_VEC_LOWER_A64 0x400u   /* lower EL, AArch64 */
#define A64_VEC_SYNC      0x000u
#define A64_VEC_SERROR    0x180u

/* ESR_ELx.EC 0x2F: SError interrupt; ISS bit[24] IDS (ARM ARM D17.2 ESR_EL1). */
#define A64_ESR_EC_SERROR 0x2fu
#define A64_ESR_SERROR_IDS (1ull << 24)

/* Enter EL1 at VBAR_EL1 + the vector of @type for the EL the vCPU is at. */
static void a64_enter_el1(mv_a64_vcpu *vcpu, unsigned type, uint64_t esr)
{
	bool from_el0 = vcpu->regs.el == 0;

	vcpu->sys.elr_el1 = vcpu->regs.pc;
	vcpu->sys.spsr_el1 = from_el0 ? A64_SPSR_M_EL0t : A64_SPSR_M_EL1h;
	vcpu->sys.esr_el1 = esr;
	vcpu->regs.pc = vcpu->sys.vbar_el1 + (from_el0 ? A64_VEC_LOWER_A64 : A64_VEC_CUR_SPX) + type;
	vcpu->regs.el = 1;
}

void a64_take_exception_el1(mv_a64_vcpu *vcpu, uint64_t esr, uint64_t far)
{
	vcpu->sys.far_el1 = far;
	a64_enter_el1(vcpu, A64_VEC_SYNC, esr);
}

void a64_inject_abort(mv_a64_vcpu *vcpu, bool is_iabt, uint64_t addr, unsigned fsc)
{
	bool from_el0 = vcpu->regs.el == 0;
	uint64_t ec;

	if (is_iabt)
		ec = from_el0 ? MV_ESR_EC_IABT_LOW : MV_ESR_EC_IABT_CUR;
	else
		ec = from_el0 ? MV_ESR_EC_DABT_LOW : MV_ESR_EC_DABT_CUR;
	a64_take_exception_el1(vcpu, ec << MV_ESR_EC_SHIFT | MV_ESR_IL | (fsc & MV_ESR_FSC_MASK), addr);
}

void a64_inject_dabt(mv_a64_vcpu *vcpu, uint64_t addr)
{
	a64_inject_abort(vcpu, false, addr, MV_FSC_SEA);
}

void a64_inject_pabt(mv_a64_vcpu *vcpu, uint64_t addr)
{
	a64_inject_abort(vcpu, true, addr, MV_FSC_SEA);
}

void a64_inject_size_fault(mv_a64_vcpu *vcpu, uint64_t addr)
{
	a64_inject_abort(vcpu, false, addr, MV_FSC_ADDR_SIZE);
}

/*
 * kvm_inject_vabt pends a virtual SError (HCR_EL2.VSE, VSESR_EL2 = IDS).
 * The guest takes it as soon as it runs with PSTATE.A clear; PSTATE.A is
 * not modelled, so it is taken here: ELR_EL1 is the PC the vCPU resumes
 * at, FAR_EL1 is left as it was (UNKNOWN for an SError).
 */
void a64_inject_serror(mv_a64_vcpu *vcpu)
{
	a64_enter_el1(vcpu, A64_VEC_SERROR,
		      (uint64_t)A64_ESR_EC_SERROR << MV_ESR_EC_SHIFT | MV_ESR_IL | A64_ESR_SERROR_IDS);
}
