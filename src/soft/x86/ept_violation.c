/*
 * EPT violation exit qualification (SDM Vol. 3C, "Basic VM-Exit
 * Information", table "Exit Qualification for EPT Violations") -> the
 * page-fault error code KVM's fault path works with, exactly as
 * __vmx_handle_ept_violation in Linux 6.18 (arch/x86/kvm/vmx/common.h):
 *  - the access bits 2:0 become USER (a read: KVM reuses PFERR_USER_MASK
 *    to mean "read", not CPL 3), WRITE and FETCH;
 *  - PRESENT when any of bits 5:3 (EPT_VIOLATION_PROT_MASK) is set, i.e.
 *    the GPA had some EPT mapping. Bit 6 (user-executable under MBEC,
 *    EPT_VIOLATION_EXEC_FOR_RING3_LIN) is not in that mask in 6.18: KVM
 *    does not emulate MBEC, and the bit is undefined without it;
 *  - GUEST_FINAL / GUEST_PAGE only when bit 7 (guest linear address valid)
 *    is set, chosen by bit 8 (commit d0164c161923 "KVM: VMX: Fix check for
 *    valid GVA on an EPT violation": the version before tested bit 7 of the
 *    error code being built, so it never set either).
 */
#include "memvirt/soft_x86.h"

/* EPT_VIOLATION_PROT_MASK: the EPT entries allowed some access. */
#define EPT_VIOL_PROT_MASK (MV_EPT_VIOL_READABLE | MV_EPT_VIOL_WRITABLE | MV_EPT_VIOL_EXECUTABLE)

uint64_t mv_ept_violation_pferr(uint64_t exit_qual)
{
	uint64_t pferr = 0;

	if (exit_qual & MV_EPT_VIOL_ACC_READ)
		pferr |= MV_PFERR_USER;
	if (exit_qual & MV_EPT_VIOL_ACC_WRITE)
		pferr |= MV_PFERR_WRITE;
	if (exit_qual & MV_EPT_VIOL_ACC_INSTR)
		pferr |= MV_PFERR_FETCH;
	if (exit_qual & EPT_VIOL_PROT_MASK)
		pferr |= MV_PFERR_PRESENT;
	if (exit_qual & MV_EPT_VIOL_GVA_VALID)
		pferr |= (exit_qual & MV_EPT_VIOL_GVA_TRANSLATED) ? MV_PFERR_GUEST_FINAL
								  : MV_PFERR_GUEST_PAGE;
	return pferr;
}
