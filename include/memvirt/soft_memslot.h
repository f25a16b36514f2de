/*
 * Memslots of the software KVM (shared by arm64 and x86): KVM's
 * __kvm_set_memory_region contract in process. A slot maps @npages guest
 * frames starting at @base_gfn to host memory at @userspace_addr.
 *
 * The set itself has no lock: its owner (the soft VM) serialises updates
 * and keeps faults out while a change is applied (KVM does the same with
 * slots_lock + SRCU). Lookups are O(log n) binary searches over slots
 * sorted by gfn, with a caller-held last-used hint (KVM's last_used_slot).
 *
 * Errors are exactly KVM's (checked in KVM's order, so the first failing
 * rule decides the errno): -EINVAL for bad flags, misaligned size / gpa /
 * hva, an hva range outside user space, as_id or slot id out of range,
 * gpa + size wrapping, more than MV_MEMSLOT_MAX_NR_PAGES pages, deleting
 * an absent slot, or changing size / hva / READONLY of an existing slot;
 * -EEXIST when a created or moved slot overlaps another slot of the same
 * address space; -ENOMEM (the set allocates before it calls the arch
 * hook, as KVM does); the arch hook's errno (arm64: -EFAULT beyond the
 * IPA size; x86: -EINVAL beyond MAXPHYADDR). A failed call changes
 * nothing.
 */
#ifndef MEMVIRT_SOFT_MEMSLOT_H
#define MEMVIRT_SOFT_MEMSLOT_H

#include "memvirt/base.h"
#include "memvirt/hv.h"

#include <stddef.h>
#include <stdint.h>

/* KVM_MEM_SLOTS_NUM: slot ids 0..32766 per address space. */
#define MV_MEMSLOT_SLOTS_NUM 32767u
/* KVM_MEM_MAX_NR_PAGES: a slot holds at most 2^31 - 1 pages. */
#define MV_MEMSLOT_MAX_NR_PAGES ((1ull << 31) - 1)
/* Highest user-space address + 1 (x86-64 TASK_SIZE_MAX with 4-level paging). */
#define MV_MEMSLOT_TASK_SIZE ((1ull << 47) - 4096)

typedef enum mv_memslot_change {
	MV_MR_CREATE,
	MV_MR_DELETE,
	MV_MR_MOVE,
	MV_MR_FLAGS_ONLY,
} mv_memslot_change;

/* One slot. Read-only for everyone but the set. */
typedef struct mv_memslot {
	uint16_t as_id;
	uint16_t id;
	uint32_t flags;            /* HV_MEM_LOG_DIRTY_PAGES | HV_MEM_READONLY */
	uint64_t base_gfn;
	uint64_t npages;
	uint64_t userspace_addr;   /* HVA of base_gfn */
	/*
	 * With HV_MEM_LOG_DIRTY_PAGES (and the set's dirty_bitmap option): one
	 * bit per page, owned by the set, set atomically by faulting vCPUs
	 * (mv_memslot_mark_dirty). NULL otherwise.
	 */
	uint64_t *dirty_bitmap;
	/*
	 * Owned by the arch (x86 rmap / large-page counts); the set never
	 * looks at it, only carries it over to the new slot of a MOVE or
	 * FLAGS_ONLY (NULL on CREATE).
	 */
	void *arch;
} mv_memslot;

typedef struct mv_memslots mv_memslots;

typedef struct mv_memslots_config {
	unsigned nr_as;            /* address spaces: x86 2 (SMM), arm64 1 */
	unsigned nr_slots;         /* usable ids per AS; 0 = MV_MEMSLOT_SLOTS_NUM */
	bool dirty_bitmap;         /* allocate bitmaps for logging slots (false with a dirty ring) */
	/*
	 * kvm_arch_prepare_memory_region: called for every change after the
	 * generic checks and the set's allocations (@new carries its dirty
	 * bitmap), before anything visible changes. Return 0 or a negative errno
	 * (the call then fails with it, and the hook must have released what it
	 * allocated). @old is NULL for CREATE, @new NULL for DELETE. The hook
	 * may set new->arch (kvm_alloc_memslot_metadata); the arch frees
	 * old->arch in arch_commit when it is no longer used. May be NULL.
	 */
	int (*arch_prepare)(void *arg, mv_memslot_change change, const mv_memslot *old,
			    mv_memslot *new);
	/*
	 * kvm_arch_commit_memory_region: called after the change is visible to
	 * lookups (and before @old is freed) so the arch can zap mappings of a
	 * deleted / moved slot or write-protect a slot that started logging.
	 * May be NULL.
	 */
	void (*arch_commit)(void *arg, mv_memslot_change change, const mv_memslot *old,
			    const mv_memslot *new);
	void *arg;
	const mv_allocator *alloc; /* NULL = libc */
	uint64_t generation;       /* the generation before the first change (0; tests start elsewhere) */
} mv_memslots_config;

/* Create an empty set. Returns 0, -EINVAL (nr_as 0 or > 16, nr_slots too big) or -ENOMEM. */
int mv_memslots_new(const mv_memslots_config *cfg, mv_memslots **out);
/* Free the set and its slots (no arch_commit calls). NULL is a no-op. */
void mv_memslots_free(mv_memslots *ms);
/*
 * Change the config's dirty_bitmap choice for slots built from now on
 * (kvm_use_dirty_bitmap: a VM that enables a dirty ring stops allocating
 * bitmaps; bitmaps of existing slots stay until the slot stops logging).
 * The caller serialises it with mv_memslots_set.
 */
void mv_memslots_set_dirty_bitmap(mv_memslots *ms, bool on);
/*
 * Does @slot (as_id << 16 | id) name a slot id of the set (as_id < nr_as,
 * id < nr_slots)? KVM answers -EINVAL otherwise, in every slot-numbered call.
 */
bool mv_memslots_id_valid(const mv_memslots *ms, uint32_t slot);

/*
 * KVM_SET_USER_MEMORY_REGION on the set. Returns 0 or KVM's negative errno
 * (see the top of this file). Identical re-registration is a no-op success.
 * On success the generation is bumped (except for that no-op).
 */
int mv_memslots_set(mv_memslots *ms, const hv_memslot *req);

/*
 * The slot of @as_id holding @gfn, or NULL. @hint (may be NULL) is the
 * caller's last-used-slot cache: tried first and updated on a hit.
 * Valid until the next mv_memslots_set.
 */
const mv_memslot *mv_memslots_find(const mv_memslots *ms, unsigned as_id, uint64_t gfn,
				   size_t *hint);
/* Slot @id of @as_id, or NULL when absent. */
const mv_memslot *mv_memslots_get(const mv_memslots *ms, unsigned as_id, unsigned id);
/* Bumped by every successful change (KVM's memslot generation). */
uint64_t mv_memslots_generation(const mv_memslots *ms);
/* Slots in @as_id. */
size_t mv_memslots_count(const mv_memslots *ms, unsigned as_id);
/* The @i-th slot of @as_id in gfn order (0 <= i < count). */
const mv_memslot *mv_memslots_at(const mv_memslots *ms, unsigned as_id, size_t i);

/*
 * Call @fn for every slot (any AS) whose host range intersects
 * [hva_start, hva_end), with the gfn range [gfn_start, gfn_end) of the
 * intersection (MMU notifiers). Stops at and returns the first non-zero
 * return of @fn.
 */
int mv_memslots_foreach_hva(const mv_memslots *ms, uint64_t hva_start, uint64_t hva_end,
			    int (*fn)(void *arg, const mv_memslot *slot, uint64_t gfn_start,
				      uint64_t gfn_end),
			    void *arg);

/* HVA of @gfn inside @slot (no range check). */
static inline uint64_t mv_memslot_gfn_to_hva(const mv_memslot *slot, uint64_t gfn)
{
	return slot->userspace_addr + ((gfn - slot->base_gfn) << 12);
}

/*
 * Set @gfn's bit in the slot's dirty bitmap (atomic; no-op without a bitmap
 * or for a gfn outside the slot).
 */
void mv_memslot_mark_dirty(const mv_memslot *slot, uint64_t gfn);

#endif
