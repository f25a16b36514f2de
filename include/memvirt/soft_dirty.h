/*
 * Dirty-page tracking of the software KVM, shared by arm64 stage-2 and x86
 * EPT: the per-slot dirty bitmaps of KVM_GET_DIRTY_LOG / KVM_CLEAR_DIRTY_LOG
 * (with or without KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2) and the per-vCPU dirty
 * rings of KVM_CAP_DIRTY_LOG_RING.
 *
 * This module owns the bookkeeping only. Write protection is the arch's:
 * every function that must re-protect pages calls @protect with a slot, a
 * page offset that is a multiple of 64 and a non-zero 64-bit mask of pages
 * (kvm_arch_mmu_enable_log_dirty_pt_masked). Callers hold the VM's slot
 * lock (for reading) so the slot cannot go away.
 *
 * Batching: every @protect call of one get, clear or ring reset gets the
 * caller's @arg unchanged, so the arch can make the call one session: it
 * takes mmu_lock (for writing) before the call and keeps it until after,
 * keeps a table iterator (soft_pgtable.h) in @arg from mask to mask, and
 * invalidates the TLBs once afterwards for everything that lost write
 * permission (KVM holds mmu_lock across a get or clear and flushes once;
 * it takes the lock per batch in a ring reset). A get or clear calls
 * @protect in ascending offset order, so successive masks mostly fall in
 * the same last-level table; a reset calls it in ring order.
 *
 * Errors are KVM's: -EINVAL for an as_id / slot id out of range or a bad
 * clear range, -ENOENT for a slot that is absent or has no bitmap (not
 * logging). A VM using the dirty ring answers bitmap calls with -ENXIO
 * itself (its slots have no bitmaps).
 *
 * Threads: bitmap words are read, exchanged and cleared atomically, so a
 * get or clear may run while vCPUs set bits (mv_memslot_mark_dirty). A ring
 * has one pusher (its vCPU) and, concurrently, any number of harvest and
 * reset callers (each kind serialised by a lock of the ring).
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
 * A session's lookahead (see "Batching" above): a session that prefetches
 * a mask's table entries when @protect receives it and protects the mask
 * MV_DIRTY_AHEAD masks later has that many cache misses in flight at
 * once, where protecting at once would wait for each (the last-level
 * tables of a large slot lie far apart in memory). A queue of masks, in
 * arrival order.
 */
#define MV_DIRTY_AHEAD 16

typedef struct mv_dirty_mask {
	const mv_memslot *slot;
	uint64_t offset, mask;    /* as @protect got them */
} mv_dirty_mask;

typedef struct mv_dirty_ahead {
	unsigned head, count;
	mv_dirty_mask q[MV_DIRTY_AHEAD];
} mv_dirty_ahead;

/* Queue @m. When the queue was full, its oldest mask is taken out first into *@due: true. */
static inline bool mv_dirty_ahead_push(mv_dirty_ahead *a, mv_dirty_mask m, mv_dirty_mask *due)
{
	bool full = a->count == MV_DIRTY_AHEAD;

	if (full) {
		*due = a->q[a->head];
		a->head = (a->head + 1) % MV_DIRTY_AHEAD;
		a->count--;
	}
	a->q[(a->head + a->count) % MV_DIRTY_AHEAD] = m;
	a->count++;
	return full;
}

/* Take the oldest queued mask into *@due (the end of a session drains the queue); false when empty. */
static inline bool mv_dirty_ahead_pop(mv_dirty_ahead *a, mv_dirty_mask *due)
{
	if (!a->count)
		return false;
	*due = a->q[a->head];
	a->head = (a->head + 1) % MV_DIRTY_AHEAD;
	a->count--;
	return true;
}

/*
 * KVM_GET_DIRTY_LOG for @slot (as_id << 16 | id): copy the slot's bitmap to
 * @out (HV_DIRTY_BITMAP_WORDS(npages << 12) words). Without @manual the
 * bitmap is cleared word by word (atomic exchange) and the pages that were
 * dirty are re-protected, one @protect call per non-zero word, in order;
 * with @manual (MANUAL_DIRTY_LOG_PROTECT2) the words are only copied (each
 * read atomically), nothing is cleared or re-protected. -EINVAL, -ENOENT.
 */
int mv_dirty_get_log(const mv_memslots *ms, uint32_t slot, bool manual, uint64_t *out,
		     mv_dirty_protect_fn protect, void *arg);

/*
 * KVM_CLEAR_DIRTY_LOG: for pages [first_page, first_page + num_pages) whose
 * bit is set in @bitmap (bit 0 = first_page; DIV_ROUND_UP(num_pages, 64)
 * words are read), clear the slot's bit (atomic and-not) and re-protect
 * the pages whose bit was set, one @protect call per word with any, in
 * order. Bits of @bitmap past the end of the slot are ignored. In KVM's
 * order:
 * -EINVAL for an as_id / id out of range, then for a first_page that is
 * not a multiple of 64; -ENOENT for an absent or non-logging slot; -EINVAL
 * when first_page > npages, when the range passes the slot's end, or when
 * num_pages is not a multiple of 64 and the range ends before the slot's
 * end. num_pages 0 does nothing and succeeds.
 */
int mv_dirty_clear_log(const mv_memslots *ms, uint32_t slot, uint64_t first_page,
		       uint32_t num_pages, const uint64_t *bitmap, mv_dirty_protect_fn protect,
		       void *arg);

/*
 * KVM_DIRTY_LOG_INITIALLY_SET, for an arch_prepare hook: when @new's bitmap
 * was just allocated (it is not @old's, carried over), mark every page of
 * the slot dirty (bits past npages stay clear), as kvm_prepare_memory_region
 * does with manual protect + INITIALLY_SET. @old may be NULL.
 */
void mv_dirty_init_set(const mv_memslot *old, const mv_memslot *new);

/* ---- dirty rings (one per vCPU) ---- */
typedef struct mv_dirty_ring mv_dirty_ring;

/* Entry flags (KVM_DIRTY_GFN_F_DIRTY / _RESET). */
#define MV_DIRTY_GFN_F_DIRTY 1u
#define MV_DIRTY_GFN_F_RESET 2u
/* Entries kept free at the soft limit (KVM_DIRTY_RING_RSVD_ENTRIES). */
#define MV_DIRTY_RING_RSVD_ENTRIES 64u
/* Ring sizes KVM_CAP_DIRTY_LOG_RING accepts: at least one page of 16-byte entries, at most 64Ki. */
#define MV_DIRTY_RING_MIN_ENTRIES 256u
#define MV_DIRTY_RING_MAX_ENTRIES 65536u

/*
 * KVM_ENABLE_CAP(KVM_CAP_DIRTY_LOG_RING)'s size rules for a VM's rings:
 * 0, -EINVAL unless @entries is a power of two of at least
 * MV_DIRTY_RING_MIN_ENTRIES, -E2BIG above MV_DIRTY_RING_MAX_ENTRIES.
 */
int mv_dirty_ring_check_entries(uint32_t entries);

/*
 * A ring of @entries (a power of two, 2..MV_DIRTY_RING_MAX_ENTRIES). The
 * soft limit is entries - MV_DIRTY_RING_RSVD_ENTRIES, as KVM's; rings
 * smaller than 2 * MV_DIRTY_RING_RSVD_ENTRIES (which KVM refuses; tests
 * use them) keep half their entries in reserve: soft limit entries / 2.
 * -EINVAL, -ENOMEM.
 */
int mv_dirty_ring_new(uint32_t entries, const mv_allocator *alloc, mv_dirty_ring **out);
/* NULL is a no-op. */
void mv_dirty_ring_free(mv_dirty_ring *ring);
/*
 * kvm_dirty_ring_push, on the vCPU's thread: append (slot, offset) with
 * F_DIRTY (the entry's fields are published by a release store of its
 * flags). Returns 0, or -ENOSPC if the ring is completely full (the entry
 * is dropped; callers stop pushing at the soft limit, so this is a bug).
 */
int mv_dirty_ring_push(mv_dirty_ring *ring, uint32_t slot, uint64_t offset);
/* At or above the soft limit: the vCPU must exit with HV_EXIT_DIRTY_RING_FULL before running. */
bool mv_dirty_ring_soft_full(const mv_dirty_ring *ring);
/* The soft limit (entries used at which the ring is soft-full). */
uint32_t mv_dirty_ring_soft_limit(const mv_dirty_ring *ring);
/*
 * User space's side (any thread; harvests of one ring are serialised):
 * report every entry from the fetch index that has F_DIRTY (acquire) to
 * @fn, in ring order, and mark it F_RESET (release). Returns the number
 * harvested.
 */
int mv_dirty_ring_harvest(mv_dirty_ring *ring, void (*fn)(void *, const hv_dirty_gfn *),
			  void *opaque);
/*
 * KVM_RESET_DIRTY_RINGS for one ring (any thread; resets of one ring are
 * serialised by a lock of the ring, taken inside the caller's locks, such
 * as the mmu_lock of its session): walk entries marked F_RESET from the reset index, free them
 * (flags 0) and re-protect their pages, coalescing as kvm_dirty_ring_reset
 * does: entries of one slot within 64 pages of each other (forwards or
 * backwards) make one batch, re-protected when the next entry does not fit
 * (a batch that straddles a 64-page boundary is passed to @protect as its
 * two aligned words). Stops at the first entry not yet harvested. Looks
 * slots up in @ms: a batch whose slot is gone, or whose last page is past
 * the slot's end, is dropped (kvm_reset_dirty_gfn). Returns the number of
 * entries reset.
 */
int mv_dirty_ring_reset(mv_dirty_ring *ring, const mv_memslots *ms, mv_dirty_protect_fn protect,
			void *arg);
/* Entries pushed and not yet reset. */
uint32_t mv_dirty_ring_used(const mv_dirty_ring *ring);

#endif
