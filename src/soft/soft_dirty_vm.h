/*
 * The arch-neutral half of a soft VM's dirty logging, shared by the arm64
 * and x86 soft VMs (kvm_main.c's side of KVM_GET_DIRTY_LOG,
 * KVM_CLEAR_DIRTY_LOG, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
 * KVM_CAP_DIRTY_LOG_RING and KVM_RESET_DIRTY_RINGS): the mode switches and
 * their locks, the bitmap and ring calls on a soft_kvm (soft_kvm.h), and the
 * re-protection session. The arch's dirty.c starts logging on a slot and
 * protects one mask within a session (soft_kvm_ops.protect). Internal to
 * src/soft/.
 *
 * A get, a clear or a ring reset is one session: mmu_lock held for
 * writing throughout (so the iterators' paths of tables stay valid, and
 * every other table operation, which invalidates for itself, stays out);
 * two iterators carried from mask to mask (a get or clear gives masks in
 * ascending order, so most seeks stay in the current last-level table):
 * one prefetches each mask's entries when it arrives, the other protects
 * them MV_DIRTY_AHEAD masks later; the range that lost write permission is
 * invalidated once at the end (kvm_flush_remote_tlbs after the harvest).
 * Until then a vCPU may still write such a page through a stale entry
 * without a fault, but only before the call returns to user space, which
 * copies the pages afterwards.
 */
#ifndef MV_SOFT_DIRTY_VM_H
#define MV_SOFT_DIRTY_VM_H

#include "soft/pgtable_ops.h"
#include "soft/soft_kvm.h"

struct soft_kvm_session {
	soft_kvm *kvm;
	mv_pgt_iter it;             /* protects, down to the last level */
	mv_pgt_iter ahead;          /* prefetches the last level, from the level above it */
	bool positioned;            /* false: the iterators start again at the root */
	mv_dirty_ahead queue;       /* masks prefetched, not yet protected */
	mv_pgt_span span;           /* what lost write permission: invalidated at the end */
};

/*
 * Both iterators on their paths at guest address @addr, from the root
 * when s->positioned is false (the protect op clears it after a walk that
 * may have replaced entries under them). False if a table cannot be had.
 */
bool soft_kvm_session_positioned(soft_kvm_session *s, uint64_t addr);
/* The gfns [*first, *end) from the first to the last page of @m. */
void soft_kvm_mask_gfns(const mv_dirty_mask *m, uint64_t *first, uint64_t *end);

/* kvm_prepare_memory_region's part: with INITIALLY_SET a new bitmap starts full. */
void soft_kvm_dirty_prepare(const soft_kvm *c, const mv_memslot *old, const mv_memslot *new);
/*
 * mark_page_dirty_in_slot for a page a fault made writable: a logging
 * slot's page goes into @ring (the vCPU's, NULL without rings), else into
 * the slot's bitmap. The push cannot fail: a vCPU enters the guest below
 * the ring's soft limit, and one access marks a few pages, far fewer than
 * the entries the limit keeps free.
 */
void soft_kvm_mark_page_dirty(mv_dirty_ring *ring, const mv_memslot *slot, uint64_t gfn);

/* KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2: INITIALLY_SET only together with ENABLE; else -EINVAL. */
int soft_kvm_enable_manual_dirty_protect(soft_kvm *c, uint32_t flags);
/*
 * KVM_GET_DIRTY_LOG (mv_dirty_get_log): -ENXIO with dirty rings; with
 * manual protect a copy, else one session re-protecting what it took.
 */
int soft_kvm_get_dirty_log(soft_kvm *c, uint32_t slot, uint64_t *bitmap);
/* KVM_CLEAR_DIRTY_LOG (mv_dirty_clear_log) as one session; -ENXIO with dirty rings. */
int soft_kvm_clear_dirty_log(soft_kvm *c, uint32_t slot, uint64_t first_page, uint32_t num_pages,
			 const uint64_t *bitmap);
/*
 * kvm_vm_ioctl_enable_dirty_log_ring, in entries rather than bytes: the
 * size rules of mv_dirty_ring_check_entries, once (-EINVAL the second
 * time), before any vCPU was created (-EINVAL). Slots that start logging
 * from now on get no bitmaps (kvm_use_dirty_bitmap).
 */
int soft_kvm_enable_dirty_ring(soft_kvm *c, uint32_t entries);
/*
 * KVM_RESET_DIRTY_RINGS: every vCPU's harvested entries re-protected and
 * recycled, as one session (KVM takes mmu_lock per coalesced batch; here
 * it is held across the call, as for a get, so the iterators carry over
 * from batch to batch). The number of entries reset, or -EINVAL without
 * rings.
 */
int soft_kvm_dirty_rings_reset(soft_kvm *c);
/* User space's side of a vCPU's @ring (mv_dirty_ring_harvest); -EINVAL when it has none. */
int soft_kvm_dirty_ring_harvest(mv_dirty_ring *ring, void (*fn)(void *opaque, const hv_dirty_gfn *g),
			    void *opaque);

#endif
