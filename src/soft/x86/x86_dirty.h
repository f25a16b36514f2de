/*
 * Dirty logging of the x86 soft VM (dirty.c) as vm.c's memslot hooks call
 * it. The marking the fault path uses (x86_mark_page_dirty) is in
 * x86_internal.h.
 */
#ifndef MV_SOFT_X86_DIRTY_H
#define MV_SOFT_X86_DIRTY_H

#include "soft/x86/x86_internal.h"

/* kvm_prepare_memory_region's part: with INITIALLY_SET a new bitmap starts full. */
void x86_dirty_prepare(mv_x86_vm *vm, const mv_memslot *old, const mv_memslot *new);
/*
 * kvm_mmu_slot_apply_flags for a writable slot that started logging, with
 * mmu_lock held for writing: unless manual protect + INITIALLY_SET, split
 * its huge pages (unless cfg.lazy_split) and write-protect it.
 */
void x86_dirty_log_start(mv_x86_vm *vm, const mv_memslot *slot);

#endif
