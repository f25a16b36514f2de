/*
 * Dirty logging of the x86 soft VM (dirty.c) as vm.c's memslot hooks and
 * ops call it. The marking the fault path uses (x86_mark_page_dirty) is in
 * x86_internal.h.
 */
#ifndef MV_SOFT_X86_DIRTY_H
#define MV_SOFT_X86_DIRTY_H

#include "soft/soft_dirty_vm.h"
#include "soft/x86/x86_internal.h"

/*
 * kvm_mmu_slot_apply_flags for a writable slot that started logging, with
 * mmu_lock held for writing: unless manual protect + INITIALLY_SET, split
 * its huge pages (unless cfg.lazy_split) and write-protect it.
 */
void x86_dirty_log_start(mv_x86_vm *vm, const mv_memslot *slot);
/*
 * The VM's soft_kvm_ops: protect is kvm_arch_mmu_enable_log_dirty_pt_masked
 * for @m within session @s; invalidate the session's one INVEPT (@vm is
 * the mv_x86_vm).
 */
void x86_dirty_protect_mask(soft_kvm_session *s, const mv_dirty_mask *m);
void x86_dirty_invalidate(void *vm, uint64_t gpa, uint64_t size);

#endif
