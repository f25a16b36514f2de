/*
 * The soft VMs' dirty-logging calls and re-protection sessions (see
 * soft_dirty_vm.h); the bitmaps and rings themselves are dirty_log.c's and
 * dirty_ring.c's, the write protection the arch's.
 */
#include "soft/soft_dirty_vm.h"

#include <errno.h>
#include <string.h>

/* ---- sessions ---- */

static void soft_kvm_session_begin(soft_kvm_session *s, soft_kvm *c)
{
	memset(s, 0, sizeof(*s));
	s->kvm = c;
	pthread_rwlock_wrlock(c->mmu_lock);
}

bool soft_kvm_session_positioned(soft_kvm_session *s, uint64_t addr)
{
	mv_pgt *pgt = s->kvm->pgt;

	if (!s->positioned)
		s->positioned = mv_pgt_iter_start(&s->it, pgt, addr, addr, pgt->last_level) == MV_PGT_OK &&
				mv_pgt_iter_start(&s->ahead, pgt, addr, addr, pgt->last_level - 1) ==
					MV_PGT_OK;
	return s->positioned;
}

void soft_kvm_mask_gfns(const mv_dirty_mask *m, uint64_t *first, uint64_t *end)
{
	uint64_t base = m->slot->base_gfn + m->offset;

	*first = base + (uint64_t)__builtin_ctzll(m->mask);
	*end = base + 64 - (uint64_t)__builtin_clzll(m->mask);
}

/* The mv_dirty_protect_fn of a session: prefetch the mask's entries, protect an older mask. */
static void soft_kvm_session_masked(void *arg, const mv_memslot *slot, uint64_t offset, uint64_t mask)
{
	soft_kvm_session *s = arg;
	mv_dirty_mask m = { slot, offset, mask }, due;
	uint64_t first, end;

	soft_kvm_mask_gfns(&m, &first, &end);
	if (soft_kvm_session_positioned(s, first << 12)) {
		mv_pgt_iter_seek(&s->ahead, first << 12, end << 12);
		mv_pgt_iter_prefetch(&s->ahead, first << 12, end << 12);
	}
	if (mv_dirty_ahead_push(&s->queue, m, &due))
		s->kvm->ops->protect(s, &due);
}

/* The masks still queued, then one invalidation of what lost write permission, before mmu_lock is dropped. */
static void soft_kvm_session_end(soft_kvm_session *s)
{
	soft_kvm *c = s->kvm;
	mv_dirty_mask due;

	while (mv_dirty_ahead_pop(&s->queue, &due))
		c->ops->protect(s, &due);
	if (s->span.hi)
		c->ops->invalidate(c->vm, s->span.lo, s->span.hi - s->span.lo);
	pthread_rwlock_unlock(c->mmu_lock);
}

/* ---- marking ---- */

void soft_kvm_dirty_prepare(const soft_kvm *c, const mv_memslot *old, const mv_memslot *new)
{
	if (c->init_set)
		mv_dirty_init_set(old, new);
}

void soft_kvm_mark_page_dirty(mv_dirty_ring *ring, const mv_memslot *slot, uint64_t gfn)
{
	if (!(slot->flags & HV_MEM_LOG_DIRTY_PAGES))
		return;
	if (ring)
		(void)mv_dirty_ring_push(ring, HV_SLOT(slot->as_id, slot->id), gfn - slot->base_gfn);
	else
		mv_memslot_mark_dirty(slot, gfn);
}

/* ---- the VM's calls ---- */

int soft_kvm_enable_manual_dirty_protect(soft_kvm *c, uint32_t flags)
{
	uint32_t allowed = HV_DIRTY_PROTECT_ENABLE;

	if (flags & HV_DIRTY_PROTECT_ENABLE)
		allowed |= HV_DIRTY_PROTECT_INIT_SET;
	if (flags & ~allowed)
		return -EINVAL;
	pthread_rwlock_wrlock(c->slots_lock);
	c->manual_protect = flags & HV_DIRTY_PROTECT_ENABLE;
	c->init_set = flags & HV_DIRTY_PROTECT_INIT_SET;
	pthread_rwlock_unlock(c->slots_lock);
	return 0;
}

int soft_kvm_get_dirty_log(soft_kvm *c, uint32_t slot, uint64_t *bitmap)
{
	soft_kvm_session s;
	int r;

	pthread_rwlock_rdlock(c->slots_lock);
	if (c->ring_entries) {
		r = -ENXIO;
	} else if (c->manual_protect) {
		r = mv_dirty_get_log(c->slots, slot, true, bitmap, NULL, NULL);
	} else {
		soft_kvm_session_begin(&s, c);
		r = mv_dirty_get_log(c->slots, slot, false, bitmap, soft_kvm_session_masked, &s);
		soft_kvm_session_end(&s);
	}
	pthread_rwlock_unlock(c->slots_lock);
	return r;
}

int soft_kvm_clear_dirty_log(soft_kvm *c, uint32_t slot, uint64_t first_page, uint32_t num_pages,
			 const uint64_t *bitmap)
{
	soft_kvm_session s;
	int r = -ENXIO;

	pthread_rwlock_rdlock(c->slots_lock);
	if (!c->ring_entries) {
		soft_kvm_session_begin(&s, c);
		r = mv_dirty_clear_log(c->slots, slot, first_page, num_pages, bitmap,
				       soft_kvm_session_masked, &s);
		soft_kvm_session_end(&s);
	}
	pthread_rwlock_unlock(c->slots_lock);
	return r;
}

int soft_kvm_enable_dirty_ring(soft_kvm *c, uint32_t entries)
{
	int r = mv_dirty_ring_check_entries(entries);

	if (r)
		return r;
	pthread_rwlock_wrlock(c->slots_lock);
	pthread_mutex_lock(&c->vcpus_lock);
	if (c->ring_entries || c->created_vcpus) {
		r = -EINVAL;
	} else {
		c->ring_entries = entries;
		mv_memslots_set_dirty_bitmap(c->slots, false);
	}
	pthread_mutex_unlock(&c->vcpus_lock);
	pthread_rwlock_unlock(c->slots_lock);
	return r;
}

/*
 * slots_lock (read) keeps vCPUs from being freed meanwhile
 * (soft_kvm_vcpu_free takes it for writing); vcpus_lock is taken only to
 * read a ring, since the final invalidation takes it too.
 */
int soft_kvm_dirty_rings_reset(soft_kvm *c)
{
	soft_kvm_session s;
	int total = 0;

	pthread_rwlock_rdlock(c->slots_lock);
	if (!c->ring_entries) {
		pthread_rwlock_unlock(c->slots_lock);
		return -EINVAL;
	}
	soft_kvm_session_begin(&s, c);
	for (unsigned i = 0; i < c->max_vcpus; i++) {
		mv_dirty_ring *ring;

		pthread_mutex_lock(&c->vcpus_lock);
		ring = c->vcpus[i].ring;
		pthread_mutex_unlock(&c->vcpus_lock);
		if (ring)
			total += mv_dirty_ring_reset(ring, c->slots, soft_kvm_session_masked, &s);
	}
	soft_kvm_session_end(&s);
	pthread_rwlock_unlock(c->slots_lock);
	return total;
}

int soft_kvm_dirty_ring_harvest(mv_dirty_ring *ring, void (*fn)(void *opaque, const hv_dirty_gfn *g),
			    void *opaque)
{
	if (!ring)
		return -EINVAL;
	return mv_dirty_ring_harvest(ring, fn, opaque);
}
