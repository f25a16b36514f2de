/*
 * KVM's MMU-notifier bookkeeping for the soft VMs (see soft_notifier.h).
 */
#include "soft/soft_notifier.h"

/* A caller's per-slot function over mv_memslots_foreach_hva, which stops at non-zero. */
typedef struct soft_for_each {
	bool (*fn)(void *arg, const mv_memslot *slot, uint64_t gfn_start, uint64_t gfn_end);
	void *arg;
	bool any;
} soft_for_each;

static int soft_for_each_slot(void *arg, const mv_memslot *slot, uint64_t gfn_start,
			      uint64_t gfn_end)
{
	soft_for_each *e = arg;

	e->any |= e->fn(e->arg, slot, gfn_start, gfn_end);
	return 0;
}

/* Under slots_lock (read) and mmu_lock (write): kvm_mmu_invalidate_begin first when @begin. */
static bool soft_notifier_walk(const soft_notifier *n, uint64_t hva_start, uint64_t hva_end,
			       bool begin,
			       bool (*fn)(void *arg, const mv_memslot *slot, uint64_t gfn_start,
					  uint64_t gfn_end),
			       void *arg)
{
	soft_for_each e = { .fn = fn, .arg = arg };

	pthread_rwlock_rdlock(n->slots_lock);
	pthread_rwlock_wrlock(n->mmu_lock);
	/* The first invalidation in progress starts an empty gfn range. */
	if (begin && (*n->in_progress)++ == 0)
		*n->gfn_start = *n->gfn_end = 0;
	mv_memslots_foreach_hva(n->slots, hva_start, hva_end, soft_for_each_slot, &e);
	pthread_rwlock_unlock(n->mmu_lock);
	pthread_rwlock_unlock(n->slots_lock);
	return e.any;
}

bool soft_notifier_for_each(const soft_notifier *n, uint64_t hva_start, uint64_t hva_end,
			    bool (*fn)(void *arg, const mv_memslot *slot, uint64_t gfn_start,
				       uint64_t gfn_end),
			    void *arg)
{
	return soft_notifier_walk(n, hva_start, hva_end, false, fn, arg);
}

/* kvm_mmu_invalidate_range_add + the arch's unmap of one slot's part of the range. */
static bool soft_notifier_zap_slot(void *arg, const mv_memslot *slot, uint64_t gfn_start,
				   uint64_t gfn_end)
{
	const soft_notifier *n = arg;

	if (*n->gfn_start >= *n->gfn_end) {
		*n->gfn_start = gfn_start;
		*n->gfn_end = gfn_end;
	} else {
		if (gfn_start < *n->gfn_start)
			*n->gfn_start = gfn_start;
		if (gfn_end > *n->gfn_end)
			*n->gfn_end = gfn_end;
	}
	n->unmap(n->arg, slot, gfn_start, gfn_end);
	return true;
}

void soft_notifier_range_start(const soft_notifier *n, uint64_t hva_start, uint64_t hva_end)
{
	soft_notifier_walk(n, hva_start, hva_end, true, soft_notifier_zap_slot, (void *)n);
}

void soft_notifier_range_end(const soft_notifier *n)
{
	pthread_rwlock_wrlock(n->mmu_lock);
	/* The sequence moves before the count drops: a fault sees one or the other. */
	__atomic_add_fetch(n->seq, 1, __ATOMIC_RELEASE);
	if (*n->in_progress > 0)
		(*n->in_progress)--;
	pthread_rwlock_unlock(n->mmu_lock);
}

uint64_t soft_notifier_seq(const uint64_t *seq)
{
	return __atomic_load_n(seq, __ATOMIC_ACQUIRE);
}

bool soft_notifier_retry(const soft_notifier *n, uint64_t seq, uint64_t gfn_start,
			 uint64_t gfn_end)
{
	if (*n->in_progress && gfn_start < *n->gfn_end && *n->gfn_start < gfn_end)
		return true;
	return soft_notifier_seq(n->seq) != seq;
}
