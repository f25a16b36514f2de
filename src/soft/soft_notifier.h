/*
 * KVM's MMU-notifier bookkeeping (virt/kvm/kvm_main.c:
 * kvm_mmu_notifier_invalidate_range_start/end, kvm_mmu_invalidate_begin,
 * _range_add, _end, and mmu_invalidate_retry_gfn), shared by the arm64 and
 * x86 soft VMs. Internal to src/soft/.
 *
 * The state is the mmu_invalidate_* fields of the VM's soft_kvm
 * (soft_kvm.h), with its two locks, its memslots and the arch's zap
 * (soft_kvm_ops.unmap), so one implementation serves both architectures.
 *
 * Protocol: range_start takes slots_lock for reading and mmu_lock for
 * writing, counts one more invalidation in progress, widens the gfn range
 * in progress by every slot part the host range covers and zaps those
 * parts; range_end bumps the sequence, then drops the count, under
 * mmu_lock for writing. A fault reads the sequence (acquire) before it
 * resolves the host page and, under mmu_lock, asks soft_notifier_retry.
 */
#ifndef MV_SOFT_NOTIFIER_H
#define MV_SOFT_NOTIFIER_H

#include "soft/soft_kvm.h"

#include <stdint.h>

/* invalidate_range_start for host addresses [hva_start, hva_end). */
void soft_notifier_range_start(soft_kvm *c, uint64_t hva_start, uint64_t hva_end);
/* invalidate_range_end: the sequence moves, then the count drops. */
void soft_notifier_range_end(soft_kvm *c);
/* The current sequence (acquire): what a fault reads before resolving the host page. */
uint64_t soft_notifier_seq(const soft_kvm *c);
/*
 * mmu_invalidate_retry_gfn for a range, with mmu_lock held: true when an
 * invalidation in progress covers part of [gfn_start, gfn_end) or one
 * finished since the fault read @seq.
 */
bool soft_notifier_retry(const soft_kvm *c, uint64_t seq, uint64_t gfn_start, uint64_t gfn_end);

/*
 * Call @fn for the slot parts [hva_start, hva_end) covers, with slots_lock
 * held for reading and mmu_lock for writing (kvm_handle_hva_range: the
 * ageing notifiers use it too). Returns the OR of @fn's answers.
 */
bool soft_notifier_for_each(soft_kvm *c, uint64_t hva_start, uint64_t hva_end,
			    bool (*fn)(void *arg, const mv_memslot *slot, uint64_t gfn_start,
				       uint64_t gfn_end),
			    void *arg);

#endif
