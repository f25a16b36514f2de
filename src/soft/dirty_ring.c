/*
 * Per-vCPU dirty rings of the software KVM (virt/kvm/dirty_ring.c and the
 * user-space side of KVM_CAP_DIRTY_LOG_RING_ACQ_REL).
 *
 * Three free-running 32-bit indices walk an array of entries laid out as
 * struct kvm_dirty_gfn (slot, flags, offset), each with one writer:
 *  - dirty_index: the vCPU, which fills an entry and publishes it with a
 *    release store of F_DIRTY;
 *  - fetch_index: the harvester, which reads entries with F_DIRTY (acquire)
 *    and hands them back with a release store of F_RESET;
 *  - reset_index: KVM_RESET_DIRTY_RINGS, which reads F_RESET entries
 *    (acquire), frees them (release store of 0) and publishes its index
 *    with a release store that the pusher's full check acquires, so the
 *    pusher refills an entry only after the reset has read it.
 * Entry fields other than flags are plain: every access to them is ordered
 * by those flag and index hand-offs.
 */
#include "memvirt/soft_dirty.h"

#include <errno.h>
#include <pthread.h>

#include "util/alloc.h"

#define DR_WORD_BITS 64

/* struct kvm_dirty_gfn. */
typedef struct dr_gfn {
	uint32_t slot;
	uint32_t flags;            /* MV_DIRTY_GFN_F_*; atomic */
	uint64_t offset;
} dr_gfn;

struct mv_dirty_ring {
	const mv_allocator *alloc;
	uint32_t size;             /* entries, a power of two */
	uint32_t soft_limit;
	uint32_t dirty_index;      /* written by the pusher; atomic */
	uint32_t reset_index;      /* written under reset_lock; atomic */
	uint32_t fetch_index;      /* under fetch_lock */
	pthread_mutex_t fetch_lock;
	pthread_mutex_t reset_lock;
	dr_gfn *gfns;
};

int mv_dirty_ring_check_entries(uint32_t entries)
{
	if (entries < MV_DIRTY_RING_MIN_ENTRIES || (entries & (entries - 1)))
		return -EINVAL;
	return entries > MV_DIRTY_RING_MAX_ENTRIES ? -E2BIG : 0;
}

int mv_dirty_ring_new(uint32_t entries, const mv_allocator *alloc, mv_dirty_ring **out)
{
	mv_dirty_ring *ring;

	if (entries < 2 || entries > MV_DIRTY_RING_MAX_ENTRIES || (entries & (entries - 1)))
		return -EINVAL;
	ring = mv_zalloc(alloc, sizeof(*ring));
	if (!ring)
		return -ENOMEM;
	ring->gfns = mv_zalloc(alloc, (size_t)entries * sizeof(*ring->gfns));
	if (!ring->gfns) {
		mv_free(alloc, ring);
		return -ENOMEM;
	}
	ring->alloc = alloc;
	ring->size = entries;
	ring->soft_limit = entries >= 2 * MV_DIRTY_RING_RSVD_ENTRIES
				   ? entries - MV_DIRTY_RING_RSVD_ENTRIES
				   : entries / 2;
	pthread_mutex_init(&ring->fetch_lock, NULL);
	pthread_mutex_init(&ring->reset_lock, NULL);
	*out = ring;
	return 0;
}

void mv_dirty_ring_free(mv_dirty_ring *ring)
{
	if (!ring)
		return;
	pthread_mutex_destroy(&ring->fetch_lock);
	pthread_mutex_destroy(&ring->reset_lock);
	mv_free(ring->alloc, ring->gfns);
	mv_free(ring->alloc, ring);
}

static dr_gfn *dr_entry(const mv_dirty_ring *ring, uint32_t index)
{
	return &ring->gfns[index & (ring->size - 1)];
}

uint32_t mv_dirty_ring_used(const mv_dirty_ring *ring)
{
	uint32_t reset = __atomic_load_n(&ring->reset_index, __ATOMIC_ACQUIRE);

	return __atomic_load_n(&ring->dirty_index, __ATOMIC_ACQUIRE) - reset;
}

bool mv_dirty_ring_soft_full(const mv_dirty_ring *ring)
{
	return mv_dirty_ring_used(ring) >= ring->soft_limit;
}

uint32_t mv_dirty_ring_soft_limit(const mv_dirty_ring *ring)
{
	return ring->soft_limit;
}

int mv_dirty_ring_push(mv_dirty_ring *ring, uint32_t slot, uint64_t offset)
{
	uint32_t index = __atomic_load_n(&ring->dirty_index, __ATOMIC_RELAXED);
	dr_gfn *e;

	/* Acquire: the reset that freed the entry has finished reading it. */
	if (index - __atomic_load_n(&ring->reset_index, __ATOMIC_ACQUIRE) >= ring->size)
		return -ENOSPC;
	e = dr_entry(ring, index);
	e->slot = slot;
	e->offset = offset;
	__atomic_store_n(&e->flags, MV_DIRTY_GFN_F_DIRTY, __ATOMIC_RELEASE);
	__atomic_store_n(&ring->dirty_index, index + 1, __ATOMIC_RELEASE);
	return 0;
}

int mv_dirty_ring_harvest(mv_dirty_ring *ring, void (*fn)(void *, const hv_dirty_gfn *),
			  void *opaque)
{
	int n = 0;

	pthread_mutex_lock(&ring->fetch_lock);
	for (;;) {
		dr_gfn *e = dr_entry(ring, ring->fetch_index);
		hv_dirty_gfn g;

		if (!(__atomic_load_n(&e->flags, __ATOMIC_ACQUIRE) & MV_DIRTY_GFN_F_DIRTY))
			break;
		g.slot = e->slot;
		g.offset = e->offset;
		fn(opaque, &g);
		__atomic_store_n(&e->flags, MV_DIRTY_GFN_F_RESET, __ATOMIC_RELEASE);
		ring->fetch_index++;
		n++;
	}
	pthread_mutex_unlock(&ring->fetch_lock);
	return n;
}

/* ---- reset ---- */

/* One batch of kvm_dirty_ring_reset: pages offset + n of slot for each bit n of mask. */
typedef struct dr_batch {
	uint32_t slot;
	uint64_t offset;
	uint64_t mask;             /* 0: no batch open */
} dr_batch;

/*
 * kvm_reset_dirty_gfn: re-protect the batch unless its slot is gone or its
 * last page is past the slot's end; an unaligned batch is cut at the
 * 64-page boundary it straddles, so @protect always gets aligned words.
 */
static void dr_batch_protect(const dr_batch *b, const mv_memslots *ms, mv_dirty_protect_fn protect,
			     void *arg)
{
	const mv_memslot *s = mv_memslots_get(ms, HV_SLOT_AS(b->slot), HV_SLOT_ID(b->slot));
	unsigned shift = (unsigned)(b->offset % DR_WORD_BITS);
	uint64_t base = b->offset - shift;
	uint64_t last = b->offset + 63 - (uint64_t)__builtin_clzll(b->mask);

	if (!s || last >= s->npages)
		return;
	if (b->mask << shift)
		protect(arg, s, base, b->mask << shift);
	if (shift && b->mask >> (DR_WORD_BITS - shift))
		protect(arg, s, base + DR_WORD_BITS, b->mask >> (DR_WORD_BITS - shift));
}

/*
 * Add page @offset of @slot to the open batch when it fits within 64 pages
 * of it: after its start (set its bit) or before it (move the start back
 * if no page falls off the top). False when it does not fit.
 */
static bool dr_batch_add(dr_batch *b, uint32_t slot, uint64_t offset)
{
	uint64_t back;

	if (!b->mask || slot != b->slot)
		return false;
	if (offset >= b->offset && offset - b->offset < DR_WORD_BITS) {
		b->mask |= 1ull << (offset - b->offset);
		return true;
	}
	back = b->offset - offset;
	if (offset < b->offset && back < DR_WORD_BITS && !(b->mask >> (DR_WORD_BITS - back))) {
		b->mask = b->mask << back | 1;
		b->offset = offset;
		return true;
	}
	return false;
}

int mv_dirty_ring_reset(mv_dirty_ring *ring, const mv_memslots *ms, mv_dirty_protect_fn protect,
			void *arg)
{
	dr_batch b = { 0 };
	int n = 0;

	pthread_mutex_lock(&ring->reset_lock);
	for (;;) {
		uint32_t index = __atomic_load_n(&ring->reset_index, __ATOMIC_RELAXED);
		dr_gfn *e = dr_entry(ring, index);
		uint32_t slot;
		uint64_t offset;

		if (!(__atomic_load_n(&e->flags, __ATOMIC_ACQUIRE) & MV_DIRTY_GFN_F_RESET))
			break;
		slot = e->slot;
		offset = e->offset;
		__atomic_store_n(&e->flags, 0, __ATOMIC_RELEASE);
		__atomic_store_n(&ring->reset_index, index + 1, __ATOMIC_RELEASE);
		n++;
		if (dr_batch_add(&b, slot, offset))
			continue;
		if (b.mask)
			dr_batch_protect(&b, ms, protect, arg);
		b = (dr_batch){ .slot = slot, .offset = offset, .mask = 1 };
	}
	if (b.mask)
		dr_batch_protect(&b, ms, protect, arg);
	pthread_mutex_unlock(&ring->reset_lock);
	return n;
}
