/*
 * fast_page_fault (arch/x86/kvm/mmu/mmu.c): fix a write-protection fault
 * without mmu_lock, by one compare-and-swap on the leaf.
 *
 * - Only a write to a present leaf can be fast (page_fault_can_be_fast):
 *   misconfigurations (RSVD) need the slow path's generation check, and a
 *   non-present leaf would only be fast with access tracking, which this
 *   MMU does not do (A/D bits or plain present leaves).
 * - A leaf the access is already allowed through was fixed by someone
 *   else: spurious.
 * - Only MMU_WRITABLE leaves (write-protected for dirty logging, nothing
 *   else) get W back, plus D with A/D enabled; the page is logged dirty.
 * - A huge leaf of a dirty-logged slot stays for the slow path: one dirty
 *   bit cannot stand for 512 pages, it must be split.
 * - The CAS is retried a few times when the leaf changes under it (A/D
 *   updates by other vCPUs), then the slow path takes over.
 * - KVM walks without mmu_lock inside an RCU read-side section, and frees
 *   page tables only after a grace period. Here the vCPU's TLB lock plays
 *   that part: every table free comes after an INVEPT (soft_ept.h), and
 *   INVEPT flushes every vCPU's TLB under its lock, so no table the walk
 *   reached is freed before the walk is over.
 */
#include "soft/x86/x86_fault.h"

#include <errno.h>

#define X86_FAST_PF_TRIES 5

static bool x86_fast_pf_possible(uint64_t pferr)
{
	if (pferr & MV_PFERR_RSVD)
		return false;
	return (pferr & MV_PFERR_PRESENT) && (pferr & MV_PFERR_WRITE);
}

/* is_access_allowed: the leaf's rights cover the faulting access. */
static bool x86_access_allowed(uint64_t pferr, mv_pte spte)
{
	if (pferr & MV_PFERR_FETCH)
		return spte & MV_EPT_X;
	if (pferr & MV_PFERR_WRITE)
		return spte & MV_EPT_W;
	return spte & MV_EPT_R;
}

/* One try: 1 fixed, 0 for the slow path, -EAGAIN when the leaf changed under the CAS. */
static int x86_fast_pf_try(mv_x86_vcpu *vcpu, mv_x86_fault_event *ev, uint64_t pferr,
			   const mv_memslot **slot)
{
	mv_x86_vm *vm = vcpu->vm;
	int level = 0;
	mv_pte *sptep = mv_ept_leaf_ptep(&vm->ept, ev->gpa, &level);
	mv_pte spte = sptep ? mv_pgt_read(sptep) : 0;
	mv_pte new;

	if (!mv_ept_is_present(spte))
		return 0;
	if (x86_access_allowed(pferr, spte)) {
		ev->action = MV_X86_ACT_SPURIOUS;
		return 1;
	}
	if (!(spte & MV_SPTE_MMU_WRITABLE))
		return 0;
	*slot = mv_memslots_find(vm->slots, 0, ev->gpa >> 12, &vcpu->slot_hint);
	if (!*slot || (level != X86_LEVEL_4K && ((*slot)->flags & HV_MEM_LOG_DIRTY_PAGES)))
		return 0;
	new = spte | MV_EPT_W | (vm->ept.ad ? MV_EPT_D : 0);
	if (!__atomic_compare_exchange_n(sptep, &spte, new, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
		return -EAGAIN;
	ev->action = MV_X86_ACT_FAST;
	return 1;
}

bool x86_fast_page_fault(mv_x86_vcpu *vcpu, mv_x86_fault_event *ev, uint64_t pferr)
{
	mv_x86_vm *vm = vcpu->vm;
	const mv_memslot *slot = NULL;
	int r = -EAGAIN;

	if (!x86_fast_pf_possible(pferr))
		return false;
	mv_tlb_lock(vcpu->tlb);
	for (int tries = 0; tries < X86_FAST_PF_TRIES && r == -EAGAIN; tries++)
		r = x86_fast_pf_try(vcpu, ev, pferr, &slot);
	mv_tlb_unlock(vcpu->tlb);
	if (r <= 0)
		return false;
	if (ev->action == MV_X86_ACT_FAST) {
		x86_mark_page_dirty(vcpu, slot, ev->gpa >> 12);
		X86_STAT_INC(vm, fast_fixed);
	}
	return true;
}
