/*
 * Dirty logging of the arm64 soft VM (dirty.c) as the rest of
 * src/soft/arm64/ calls it: the memslot hooks and ops of vm.c, the
 * fault path (user_mem_abort.c) and guest entry (access.c).
 */
#ifndef MV_SOFT_A64_DIRTY_H
#define MV_SOFT_A64_DIRTY_H

#include "soft/arm64/a64_internal.h"
#include "soft/soft_dirty_vm.h"

/*
 * mark_page_dirty_in_slot, after a fault installed a writable mapping of
 * @gfn: into the vCPU's ring when the VM uses rings and the slot logs,
 * else into the slot's bitmap (if any).
 */
void a64_mark_page_dirty(mv_a64_vcpu *vcpu, const mv_memslot *slot, uint64_t gfn);

/*
 * kvm_dirty_ring_check_request, at a guest entry: when the vCPU's ring is
 * soft-full, fill vcpu->exit with HV_EXIT_DIRTY_RING_FULL and @out with
 * that exit, and return true (the vCPU must not enter the guest).
 */
bool a64_dirty_ring_full_exit(mv_a64_vcpu *vcpu, mv_a64_outcome *out);

/*
 * The VM's soft_kvm_ops.protect: kvm_arch_mmu_enable_log_dirty_pt_masked
 * for @m within session @s, from the first to the last page of the mask.
 */
void a64_dirty_protect_mask(soft_kvm_session *s, const mv_dirty_mask *m);
/*
 * kvm_arch_commit_memory_region for a slot that logs after the change:
 * unless manual protect + INITIALLY_SET, write-protect the slot, then
 * split its blocks when eager splitting is on. Takes mmu_lock.
 */
void a64_dirty_log_start(mv_a64_vm *vm, const mv_memslot *new);

#endif
