/*
 * The software TLB of a soft vCPU: 4-way set-associative (fewer ways when
 * the TLB has fewer than 4 entries), the set chosen by the low bits of the
 * input page, round-robin replacement within a set. Entries are tagged by
 * (VMID, EL, input page); a tag lives in at most one way of its set, since
 * an insert replaces the way that already holds it.
 *
 * The lock is a pthread mutex rather than a spinlock: its owner holds it
 * across a whole guest access, which may touch a page the host has not
 * faulted in yet, and on a machine with few cores a flushing thread
 * spinning against that would steal the CPU the owner needs. Uncontended,
 * the mutex costs the same single atomic as a spinlock.
 *
 * Statistics are written only with the lock held and read with relaxed
 * atomic loads, so mv_tlb_get_stats works with or without the lock.
 */
#include "memvirt/soft_tlb.h"

#include <errno.h>
#include <pthread.h>

#include "util/alloc.h"

#define TLB_WAYS 4u
#define TLB_MAX_ENTRIES (1u << 20)
#define PAGE_SHIFT 12

typedef struct tlb_way {
	mv_tlb_entry e;
	bool valid;
} tlb_way;

struct mv_tlb {
	const mv_allocator *alloc;
	pthread_mutex_t lock;
	unsigned ways;              /* per set */
	unsigned set_mask;          /* nr_sets - 1 */
	uint64_t generation;        /* VMID generation last synced with; 0 = none */
	mv_tlb_stats st;
	uint8_t *victim;            /* per set: next way to replace */
	tlb_way *slots;             /* nr_sets * ways */
};

/* Bump a counter: only lock holders write, anyone may read atomically. */
static void stat_inc(uint64_t *ctr, uint64_t by)
{
	__atomic_store_n(ctr, *ctr + by, __ATOMIC_RELAXED);
}

int mv_tlb_new(unsigned nr_entries, const mv_allocator *alloc, mv_tlb **out)
{
	mv_tlb *tlb;
	unsigned ways;

	*out = NULL;
	if (nr_entries == 0 || nr_entries > TLB_MAX_ENTRIES || (nr_entries & (nr_entries - 1)))
		return -EINVAL;
	ways = nr_entries < TLB_WAYS ? nr_entries : TLB_WAYS;
	tlb = mv_zalloc(alloc, sizeof(*tlb));
	if (!tlb)
		return -ENOMEM;
	pthread_mutex_init(&tlb->lock, NULL);
	tlb->alloc = alloc;
	tlb->ways = ways;
	tlb->set_mask = nr_entries / ways - 1;
	tlb->victim = mv_zalloc(alloc, nr_entries / ways);
	tlb->slots = mv_zalloc(alloc, sizeof(*tlb->slots) * nr_entries);
	if (!tlb->victim || !tlb->slots) {
		mv_tlb_free(tlb);
		return -ENOMEM;
	}
	*out = tlb;
	return 0;
}

void mv_tlb_free(mv_tlb *tlb)
{
	if (!tlb)
		return;
	pthread_mutex_destroy(&tlb->lock);
	mv_free(tlb->alloc, tlb->victim);
	mv_free(tlb->alloc, tlb->slots);
	mv_free(tlb->alloc, tlb);
}

void mv_tlb_lock(mv_tlb *tlb)
{
	pthread_mutex_lock(&tlb->lock);
}

void mv_tlb_unlock(mv_tlb *tlb)
{
	pthread_mutex_unlock(&tlb->lock);
}

static tlb_way *set_of(mv_tlb *tlb, uint64_t va_page)
{
	return &tlb->slots[(va_page & tlb->set_mask) * tlb->ways];
}

static bool same_tag(const tlb_way *w, uint16_t vmid, uint8_t el, uint64_t va_page)
{
	return w->valid && w->e.va_page == va_page && w->e.vmid == vmid && w->e.el == el;
}

bool mv_tlb_lookup(mv_tlb *tlb, uint16_t vmid, uint8_t el, uint64_t va_page, unsigned need,
		   mv_tlb_entry *out)
{
	tlb_way *set = set_of(tlb, va_page);

	for (unsigned i = 0; i < tlb->ways; i++) {
		if (!same_tag(&set[i], vmid, el, va_page))
			continue;
		/* The tag is unique in its set: without the rights it is a miss. */
		if ((set[i].e.rights & need) != need)
			break;
		*out = set[i].e;
		stat_inc(&tlb->st.hits, 1);
		return true;
	}
	stat_inc(&tlb->st.misses, 1);
	return false;
}

/* The way for @e's tag: the one holding it, else a free one, else the round-robin victim. */
static tlb_way *way_for(mv_tlb *tlb, const mv_tlb_entry *e)
{
	tlb_way *set = set_of(tlb, e->va_page);
	tlb_way *free_way = NULL;
	uint8_t *victim;
	tlb_way *w;

	for (unsigned i = 0; i < tlb->ways; i++) {
		if (same_tag(&set[i], e->vmid, e->el, e->va_page))
			return &set[i];
		if (!set[i].valid && !free_way)
			free_way = &set[i];
	}
	if (free_way)
		return free_way;
	victim = &tlb->victim[e->va_page & tlb->set_mask];
	w = &set[*victim];
	*victim = (uint8_t)((*victim + 1) % tlb->ways);
	return w;
}

void mv_tlb_insert(mv_tlb *tlb, const mv_tlb_entry *e)
{
	tlb_way *w = way_for(tlb, e);

	w->e = *e;
	w->valid = true;
	stat_inc(&tlb->st.inserts, 1);
}

/*
 * With the lock held: drop the entries of @vmid (any VMID when @any_vmid)
 * whose IPA page is in [first, last]; counts one flush.
 */
static void drop_locked(mv_tlb *tlb, bool any_vmid, uint16_t vmid, uint64_t first, uint64_t last)
{
	unsigned n = (tlb->set_mask + 1) * tlb->ways;
	uint64_t dropped = 0;

	for (unsigned i = 0; i < n; i++) {
		tlb_way *w = &tlb->slots[i];

		if (!w->valid || (!any_vmid && w->e.vmid != vmid) || w->e.ipa_page < first ||
		    w->e.ipa_page > last)
			continue;
		w->valid = false;
		dropped++;
	}
	stat_inc(&tlb->st.flushed_entries, dropped);
	stat_inc(&tlb->st.flushes, 1);
}

static void drop(mv_tlb *tlb, bool any_vmid, uint16_t vmid, uint64_t first, uint64_t last)
{
	mv_tlb_lock(tlb);
	drop_locked(tlb, any_vmid, vmid, first, last);
	mv_tlb_unlock(tlb);
}

void mv_tlb_flush_ipa(mv_tlb *tlb, uint16_t vmid, uint64_t ipa, uint64_t size)
{
	uint64_t last;

	if (size == 0)
		return;
	/* An end beyond 2^64 clamps to the last page. */
	last = ipa + (size - 1) < ipa ? UINT64_MAX : ipa + (size - 1);
	drop(tlb, false, vmid, ipa >> PAGE_SHIFT, last >> PAGE_SHIFT);
}

void mv_tlb_flush_vmid(mv_tlb *tlb, uint16_t vmid)
{
	drop(tlb, false, vmid, 0, UINT64_MAX);
}

void mv_tlb_flush_all(mv_tlb *tlb)
{
	drop(tlb, true, 0, 0, UINT64_MAX);
}

void mv_tlb_sync_generation(mv_tlb *tlb, const mv_vmid_alloc *va)
{
	uint64_t gen = mv_vmid_generation(va);

	/* KVM flushes on rollover; VMID numbers of the old generation mean nothing now. */
	if (tlb->generation < gen) {
		drop_locked(tlb, true, 0, 0, UINT64_MAX);
		tlb->generation = gen;
	}
}

void mv_tlb_get_stats(mv_tlb *tlb, mv_tlb_stats *st)
{
	st->hits = __atomic_load_n(&tlb->st.hits, __ATOMIC_RELAXED);
	st->misses = __atomic_load_n(&tlb->st.misses, __ATOMIC_RELAXED);
	st->inserts = __atomic_load_n(&tlb->st.inserts, __ATOMIC_RELAXED);
	st->flushed_entries = __atomic_load_n(&tlb->st.flushed_entries, __ATOMIC_RELAXED);
	st->flushes = __atomic_load_n(&tlb->st.flushes, __ATOMIC_RELAXED);
}
