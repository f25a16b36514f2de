/*
 * Dirty-page tracking of the software KVM, shared by arm64 stage-2 and x86
 * EPT: the per-slot dirty bitmaps of KVM_GET_DIRTY_LOG / KVM_CLEAR_DIRTY_LOG
 * (with or without KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2) and the per-vCPU dirty
 * rings of KVM_CAP_DIRTY_LOG_RING.
 *
 * This module owns the bookkeeping only. Write protection is the arch's:
 * every function that must re-protect pages calls @protect with a slot, a
 * page offset that is a multiple of 64 and a 64-bit mask of pages
 * (kvm_arch_mmu_enable_log_dirty_pt_masked). Callers hold the VM's slot
 * lock (for reading) so the slot cannot go away; @protect takes the MMU
 * lock itself.
 *
 * Errors are KVM's: -EINVAL for an as_id / slot id out of range or a bad
 * clear range, -ENOENT for a slot that is absent or has no bitmap (not
 * logging). A VM using the dirty ring answers bitmap calls with -ENXIO
 * itself (its slots have no bitmaps).
 */
#ifndef MEMVIRT_SOFT_DIRTY_H
#define MEMVIRT_SOFT_DIRTY_H

#include "memvirt/base.h"
#include "memvirt/hv.h"
#include "memvirt/soft_memslot.h"

#include <stdint.h>

/* Re-protect pages [offset, offset + 64) of @slot selected by @mask (bit n = page offset + n). */
typedef void (*mv_dirty_protect_fn)(void *arg, const mv_memslot *slot, uint64_t offset,
				    uint64_t mask);

/*
 * KVM_GET_DIRTY_LOG for @slot (as_id << 16 | id): copy the slot's bitmap to
 * @out (HV_DIRTY_BITMAP_WORDS(npages << 12) words). Without @manual the
 * bitmap is cleared word by word (atomic exchange) and the pages that were
 * dirty are re-protected; with @manual (MANUAL_DIRTY_LOG_PROTECT2) nothing
 * is cleared or re-protected.
 */
int mv_dirty_get_log(const mv_memslots *ms, uint32_t slot, bool manual, uint64_t *out,
		     mv_dirty_protect_fn protect, void *arg);

/*
 * KVM_CLEAR_DIRTY_LOG: for pages [first_page, first_page + num_pages) whose
 * bit is set in @bitmap (bit 0 = first_page), clear the slot's bit and
 * re-protect the page if it was set. -EINVAL when first_page is not a
 * multiple of 64, when num_pages is not a multiple of 64 unless the range
 * ends at the slot's end, or when the range exceeds the slot (KVM's rules).
 */
int mv_dirty_clear_log(const mv_memslots *ms, uint32_t slot, uint64_t first_page,
		       uint32_t num_pages, const uint64_t *bitmap, mv_dirty_protect_fn protect,
		       void *arg);

/* ---- dirty rings (one per vCPU) ---- */
typedef struct mv_dirty_ring mv_dirty_ring;

/* Entry flags (KVM_DIRTY_GFN_F_DIRTY / _RESET). */
#define MV_DIRTY_GFN_F_DIRTY 1u
#define MV_DIRTY_GFN_F_RESET 2u
/* Entries kept free at the soft limit (KVM_DIRTY_RING_RSVD_ENTRIES). */
#define MV_DIRTY_RING_RSVD_ENTRIES 64u

/*
 * A ring of @entries (a power of two, >= 2 * MV_DIRTY_RING_RSVD_ENTRIES
 * unless @entries is small for tests: then the soft limit is entries / 2).
 * -EINVAL, -ENOMEM.
 */
int mv_dirty_ring_new(uint32_t entries, const mv_allocator *alloc, mv_dirty_ring **out);
void mv_dirty_ring_free(mv_dirty_ring *ring);
/*
 * kvm_dirty_ring_push, on the vCPU's thread: append (slot, offset) with
 * F_DIRTY. Returns 0, or -ENOSPC if the ring is completely full (the entry
 * is dropped; callers stop pushing at the soft limit, so this is a bug).
 */
int mv_dirty_ring_push(mv_dirty_ring *ring, uint32_t slot, uint64_t offset);
/* At or above the soft limit: the vCPU must exit with HV_EXIT_DIRTY_RING_FULL before running. */
bool mv_dirty_ring_soft_full(const mv_dirty_ring *ring);
/*
 * User space's side (any thread, one harvester per ring): report every
 * entry from the fetch index that has F_DIRTY to @fn and mark it F_RESET.
 * Returns the number harvested.
 */
int mv_dirty_ring_harvest(mv_dirty_ring *ring, void (*fn)(void *, const hv_dirty_gfn *),
			  void *opaque);
/*
 * KVM_RESET_DIRTY_RINGS for one ring: walk entries marked F_RESET from the
 * reset index, re-protect their pages (coalescing neighbours into one
 * 64-page mask per call as KVM does) and free them. Stops at the first
 * entry not yet harvested. Looks slots up in @ms (entries of deleted slots
 * are dropped). Returns the number reset.
 */
int mv_dirty_ring_reset(mv_dirty_ring *ring, const mv_memslots *ms, mv_dirty_protect_fn protect,
			void *arg);
/* Entries pushed and not yet reset. */
uint32_t mv_dirty_ring_used(const mv_dirty_ring *ring);

#endif
