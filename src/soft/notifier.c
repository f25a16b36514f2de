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
static bool soft_notifier_walk(soft_kvm *c, uint64_t hva_start, uint64_t hva_end, bool begin,
			       bool (*fn)(void *arg, const mv_memslot *slot, uint64_t gfn_start,
					  uint64_t gfn_end),
			       void *arg)
{
	soft_for_each e = { .fn = fn, .arg = arg };

	pthread_rwlock_rdlock(c->slots_lock);
	pthread_rwlock_wrlock(c->mmu_lock);
	/* The first invalidation in progress starts an empty gfn range. */
	if (begin && c->mmu_invalidate_in_progress++ == 0)
		c->mmu_invalidate_gfn_start = c->mmu_invalidate_gfn_end = 0;
	mv_memslots_foreach_hva(c->slots, hva_start, hva_end, soft_for_each_slot, &e);
	pthread_rwlock_unlock(c->mmu_lock);
	pthread_rwlock_unlock(c->slots_lock);
	return e.any;
}

bool soft_notifier_for_each(soft_kvm *c, uint64_t hva_start, uint64_t hva_end,
			    bool (*fn)(void *arg, const mv_memslot *slot, uint64_t gfn_start,
				       uint64_t gfn_end),
			    void *arg)
{
	return soft_notifier_walk(c, hva_start, hva_end, false, fn, arg);
}

/* kvm_mmu_invalidate_range_add + the arch's unmap of one slot's part of the range. */
static bool soft_notifier_zap_slot(void *arg, const mv_memslot *slot, uint64_t gfn_start,
				   uint64_t gfn_end)
{
	soft_kvm *c = arg;

	if (c->mmu_invalidate_gfn_start >= c->mmu_invalidate_gfn_end) {
		c->mmu_invalidate_gfn_start = gfn_start;
		c->mmu_invalidate_gfn_end = gfn_end;
	} else {
		if (gfn_start < c->mmu_invalidate_gfn_start)
			c->mmu_invalidate_gfn_start = gfn_start;
		if (gfn_end > c->mmu_invalidate_gfn_end)
			c->mmu_invalidate_gfn_end = gfn_end;
	}
	c->ops->unmap(c->vm, slot, gfn_start, gfn_end);
	return true;
}

void soft_notifier_range_start(soft_kvm *c, uint64_t hva_start, uint64_t hva_end)
{
	soft_notifier_walk(c, hva_start, hva_end, true, soft_notifier_zap_slot, c);
}

void soft_notifier_range_end(soft_kvm *c)
{
	pthread_rwlock_wrlock(c->mmu_lock);
	/* The sequence moves before the count drops: a fault sees one or the other. */
	__atomic_add_fetch(&c->mmu_invalidate_seq, 1, __ATOMIC_RELEASE);
	if (c->mmu_invalidate_in_progress > 0)
		c->mmu_invalidate_in_progress--;
	pthread_rwlock_unlock(c->mmu_lock);
}

uint64_t soft_notifier_seq(const soft_kvm *c)
{
	return __atomic_load_n(&c->mmu_invalidate_seq, __ATOMIC_ACQUIRE);
}

bool soft_notifier_retry(const soft_kvm *c, uint64_t seq, uint64_t gfn_start, uint64_t gfn_end)
{
	if (c->mmu_invalidate_in_progress && gfn_start < c->mmu_invalidate_gfn_end &&
	    c->mmu_invalidate_gfn_start < gfn_end)
		return true;
	return soft_notifier_seq(c) != seq;
}
