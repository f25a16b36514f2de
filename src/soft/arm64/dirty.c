/*
 * Dirty logging of the arm64 soft VM: KVM's generic bitmap and ring
 * bookkeeping (soft/dirty_log.c, soft/dirty_ring.c) joined to stage 2 as
 * arch/arm64/kvm/mmu.c does it.
 *
 * - Logging starts (kvm_arch_commit_memory_region): the slot is
 *   write-protected, then, with eager splitting, its blocks are split
 *   into pages chunk by chunk; with manual protect + INITIALLY_SET nothing
 *   happens (the bitmap starts full and pages are protected as user space
 *   clears them).
 * - Re-protection (kvm_arch_mmu_enable_log_dirty_pt_masked): the range
 *   from the first to the last page of a 64-page mask loses write
 *   permission, plus a split of that range with INITIALLY_SET and eager
 *   splitting. A get, a clear or a ring reset is one session: mmu_lock
 *   held for writing throughout, table iterators carried from mask to mask
 *   (pages are protected from their position, without a walk from the
 *   root, and prefetched some masks before), and the TLBs invalidated
 *   once, at the end (kvm_arch_flush_remote_tlbs(_memslot)).
 * - Faults mark pages in the vCPU's ring (ring VMs, logging slots) or the
 *   slot's bitmap (mark_page_dirty_in_slot); a soft-full ring stops the
 *   vCPU at its next guest entry (kvm_dirty_ring_check_request).
 * - Lazy splitting (KVM's default) needs nothing here: a write fault on a
 *   write-protected block maps a page, and user_mem_abort redoes that map
 *   under mmu_lock for writing, which breaks the block.
 */
#include "soft/arm64/a64_dirty.h"
#include "soft/pgtable_ops.h"

#include <errno.h>
#include <string.h>

#define A64_SZ_4K (1ull << 12)
#define A64_SZ_2M (1ull << 21)
#define A64_SZ_1G (1ull << 30)

/* ---- stage 2 ---- */

/* The block leaf covering @ipa, if any: its size; 0 for a page or nothing. */
static uint64_t a64_dirty_block_at(mv_a64_vm *vm, uint64_t ipa)
{
	mv_pte pte = 0;
	int level = 0;

	mv_s2_get_leaf(&vm->s2, ipa, &pte, &level);
	if (!(pte & MV_S2_VALID) || level >= 3)
		return 0;
	return mv_pgt_level_size(&vm->s2.pgt, level);
}

/*
 * kvm_arch_mmu_enable_log_dirty_pt_masked for gfns [first, end) by stage-2
 * walks, with mmu_lock held for writing. KVM's stage2_wp_range protects
 * every leaf the range touches whole; a block can be touched in part only
 * with INITIALLY_SET (otherwise a dirty page was written, so its 64-page
 * word is mapped by pages), where the range is widened to the blocks at
 * its ends, because mv_s2_wrprotect would split them instead.
 */
static void a64_dirty_protect(mv_a64_vm *vm, uint64_t first, uint64_t end)
{
	uint64_t start = first << 12, stop = end << 12, block;

	if (vm->dirty_init_set) {
		block = a64_dirty_block_at(vm, start);
		if (block)
			start &= ~(block - 1);
		block = a64_dirty_block_at(vm, stop - 1);
		if (block)
			stop = ((stop - 1) & ~(block - 1)) + block;
	}
	mv_s2_wrprotect(&vm->s2, start, stop - start);
	/* Blocks were not split when logging started: split those under the mask (best effort). */
	if (vm->dirty_init_set && vm->split_chunk)
		mv_s2_split(&vm->s2, first << 12, (end - first) << 12);
}

/*
 * kvm_mmu_split_huge_pages: split [ipa, end) one chunk-aligned piece at a
 * time, so faults on other parts of the slot get mmu_lock in between.
 * Eager splitting is best effort: it stops when a table cannot be had.
 */
static void a64_dirty_split(mv_a64_vm *vm, uint64_t ipa, uint64_t end)
{
	uint64_t chunk = vm->split_chunk;

	while (ipa < end) {
		uint64_t next = (ipa & ~(chunk - 1)) + chunk;
		mv_pgt_result r;

		if (next > end)
			next = end;
		pthread_rwlock_wrlock(&vm->mmu_lock);
		r = mv_s2_split(&vm->s2, ipa, next - ipa);
		pthread_rwlock_unlock(&vm->mmu_lock);
		if (r != MV_PGT_OK)
			return;
		ipa = next;
	}
}

void a64_dirty_log_start(mv_a64_vm *vm, const mv_memslot *new)
{
	uint64_t ipa = new->base_gfn << 12, size = new->npages << 12;

	if (vm->dirty_init_set)
		return;
	pthread_rwlock_wrlock(&vm->mmu_lock);
	mv_s2_wrprotect(&vm->s2, ipa, size);
	pthread_rwlock_unlock(&vm->mmu_lock);
	if (vm->split_chunk)
		a64_dirty_split(vm, ipa, ipa + size);
}

void a64_dirty_prepare(mv_a64_vm *vm, const mv_memslot *old, const mv_memslot *new)
{
	if (vm->dirty_init_set)
		mv_dirty_init_set(old, new);
}

/* ---- re-protection: one session per get, clear or ring reset ---- */

/*
 * One get, clear or KVM_RESET_DIRTY_RINGS: mmu_lock held for writing
 * throughout (so the iterators' paths of tables stay valid, and every
 * other stage-2 operation, which invalidates for itself, stays out); two
 * iterators carried from mask to mask (a get or clear gives masks in
 * ascending order, so most seeks stay in the current last-level table):
 * one prefetches each mask's pages when it arrives, the other protects
 * them MV_DIRTY_AHEAD masks later; the range that lost write permission,
 * invalidated once at the end.
 */
typedef struct a64_protect_session {
	mv_a64_vm *vm;
	mv_pgt_iter it;             /* protects, down to the pages */
	mv_pgt_iter ahead;          /* prefetches the pages, from the level above them */
	bool positioned;            /* false: the iterators start again at the root */
	mv_dirty_ahead queue;       /* masks prefetched, not yet protected */
	mv_pgt_span tlbi;
} a64_protect_session;

static void a64_session_begin(a64_protect_session *s, mv_a64_vm *vm)
{
	memset(s, 0, sizeof(*s));
	s->vm = vm;
	pthread_rwlock_wrlock(&vm->mmu_lock);
}

/* Both iterators on their paths (from the root when a walk may have changed entries). */
static bool a64_session_positioned(a64_protect_session *s, uint64_t ipa)
{
	mv_pgt *pgt = &s->vm->s2.pgt;

	if (!s->positioned)
		s->positioned = mv_pgt_iter_start(&s->it, pgt, ipa, ipa, pgt->last_level) == MV_PGT_OK &&
				mv_pgt_iter_start(&s->ahead, pgt, ipa, ipa, pgt->last_level - 1) ==
					MV_PGT_OK;
	return s->positioned;
}

/* The stage-2 TLB hook while a session's walks run: collect instead of invalidating. */
static void a64_tlbi_collect(void *arg, uint64_t ipa, uint64_t size)
{
	mv_pgt_span *span = arg;

	if (!span->hi || ipa < span->lo)
		span->lo = ipa;
	if (ipa + size > span->hi)
		span->hi = ipa + size;
}

/* a64_dirty_protect within a session: its TLBIs collected, the iterators restarted after it. */
static void a64_protect_walk(a64_protect_session *s, uint64_t first, uint64_t end)
{
	mv_a64_vm *vm = s->vm;

	vm->s2.tlbi = a64_tlbi_collect;
	vm->s2.tlbi_arg = &s->tlbi;
	a64_dirty_protect(vm, first, end);
	vm->s2.tlbi = a64_vm_tlbi_ipa;
	vm->s2.tlbi_arg = vm;
	/* A split replaced entries the iterators may stand on. */
	s->positioned = false;
}

/*
 * Pages [ipa, ipa + n pages) from their entries at @ptep: every writable
 * one loses S2AP write in place (a permission change needs no
 * break-before-make). mmu_lock is held for writing, so nothing else
 * changes them: a plain atomic store, as mv_pgt_ctx_set in an exclusive
 * walk (valid to valid: no page count change).
 */
static void a64_protect_run(a64_protect_session *s, mv_pte *ptep, uint64_t n, uint64_t ipa)
{
	uint64_t page = 1ull << s->vm->s2.pgt.granule_shift;

	for (uint64_t i = 0; i < n; i++) {
		mv_pte pte = __atomic_load_n(&ptep[i], __ATOMIC_ACQUIRE);   /* mv_pgt_read, inline */

		if ((pte & (MV_S2_VALID | MV_S2_S2AP_W)) != (MV_S2_VALID | MV_S2_S2AP_W))
			continue;
		__atomic_store_n(&ptep[i], pte & ~MV_S2_S2AP_W, __ATOMIC_RELEASE);
		a64_tlbi_collect(&s->tlbi, ipa + i * page, page);
	}
}

/*
 * What mv_s2_wrprotect does to [ipa, end) when stage 2 maps it with pages
 * or nothing, from the iterator's position: the pages of each last-level
 * table in the range are protected as one run. False when a block is in
 * the range (mv_s2_wrprotect's split and INITIALLY_SET's widening and
 * split decide) or a table cannot be reached; what this call changed is
 * then protected by the walk anyway.
 */
static bool a64_protect_pages(a64_protect_session *s, uint64_t ipa, uint64_t end)
{
	mv_pgt *pgt = &s->vm->s2.pgt;
	mv_pgt_iter *it = &s->it;
	uint64_t n;

	if (!a64_session_positioned(s, ipa))
		return false;
	mv_pgt_iter_seek(it, ipa, end);
	while (it->valid) {
		if (it->level != pgt->last_level) {
			if (it->old & MV_S2_VALID)
				return false;
			mv_pgt_iter_next_leaf(it);      /* nothing mapped there */
			continue;
		}
		n = mv_pgt_iter_run(it);
		a64_protect_run(s, it->ptep, n, it->addr);
		ipa = it->addr + (n << pgt->granule_shift);
		if (ipa >= end)
			return true;
		mv_pgt_iter_seek(it, ipa, end);         /* the next table */
	}
	return it->result == MV_PGT_OK;
}

/* The gfns [*first, *end) from the first to the last page of @m. */
static void a64_mask_gfns(const mv_dirty_mask *m, uint64_t *first, uint64_t *end)
{
	uint64_t base = m->slot->base_gfn + m->offset;

	*first = base + (uint64_t)__builtin_ctzll(m->mask);
	*end = base + 64 - (uint64_t)__builtin_clzll(m->mask);
}

/* kvm_arch_mmu_enable_log_dirty_pt_masked for a mask whose pages were prefetched. */
static void a64_protect_due(a64_protect_session *s, const mv_dirty_mask *m)
{
	uint64_t first, end;

	a64_mask_gfns(m, &first, &end);
	if (!a64_protect_pages(s, first << 12, end << 12))
		a64_protect_walk(s, first, end);
}

/* The mv_dirty_protect_fn of a session: prefetch the mask's pages, protect an older mask. */
static void a64_protect_masked(void *arg, const mv_memslot *slot, uint64_t offset, uint64_t mask)
{
	a64_protect_session *s = arg;
	mv_dirty_mask m = { slot, offset, mask }, due;
	uint64_t first, end;

	a64_mask_gfns(&m, &first, &end);
	if (a64_session_positioned(s, first << 12)) {
		mv_pgt_iter_seek(&s->ahead, first << 12, end << 12);
		mv_pgt_iter_prefetch(&s->ahead, first << 12, end << 12);
	}
	if (mv_dirty_ahead_push(&s->queue, m, &due))
		a64_protect_due(s, &due);
}

/*
 * The masks still queued, then kvm_arch_flush_remote_tlbs(_memslot): one
 * invalidation of everything the session write-protected, before mmu_lock
 * is dropped. Until it, a vCPU may still write such a page through a
 * stale entry without a fault, but only before the call returns to user
 * space, which copies the pages afterwards.
 */
static void a64_session_end(a64_protect_session *s)
{
	mv_dirty_mask due;

	while (mv_dirty_ahead_pop(&s->queue, &due))
		a64_protect_due(s, &due);
	if (s->tlbi.hi)
		a64_vm_tlbi_ipa(s->vm, s->tlbi.lo, s->tlbi.hi - s->tlbi.lo);
	pthread_rwlock_unlock(&s->vm->mmu_lock);
}

/* mv_dirty_get_log into @out (non-NULL) or mv_dirty_clear_log of @in, as one session. */
static int a64_dirty_log_locked(mv_a64_vm *vm, uint32_t slot, uint64_t *out, uint64_t first_page,
				uint32_t num_pages, const uint64_t *in)
{
	a64_protect_session s;
	int r;

	a64_session_begin(&s, vm);
	if (out)
		r = mv_dirty_get_log(vm->slots, slot, false, out, a64_protect_masked, &s);
	else
		r = mv_dirty_clear_log(vm->slots, slot, first_page, num_pages, in, a64_protect_masked,
				       &s);
	a64_session_end(&s);
	return r;
}

/* ---- vCPUs ---- */

void a64_mark_page_dirty(mv_a64_vcpu *vcpu, const mv_memslot *slot, uint64_t gfn)
{
	if (!vcpu->ring) {
		mv_memslot_mark_dirty(slot, gfn);
		return;
	}
	/*
	 * Cannot fail: the vCPU entered the guest below the soft limit and a
	 * fault marks one page, while the limit keeps at least one entry free.
	 */
	if (slot->flags & HV_MEM_LOG_DIRTY_PAGES)
		(void)mv_dirty_ring_push(vcpu->ring, HV_SLOT(slot->as_id, slot->id),
					 gfn - slot->base_gfn);
}

bool a64_dirty_ring_full_exit(mv_a64_vcpu *vcpu, mv_a64_outcome *out)
{
	if (!vcpu->ring || !mv_dirty_ring_soft_full(vcpu->ring))
		return false;
	memset(&vcpu->exit, 0, sizeof(vcpu->exit));
	vcpu->exit.reason = HV_EXIT_DIRTY_RING_FULL;
	out->result = MV_A64_EXIT;
	out->exit = &vcpu->exit;
	return true;
}

/* Counted before the ring is sized, so a concurrent enable_dirty_ring sees the vCPU (KVM). */
int a64_dirty_vcpu_init(mv_a64_vcpu *vcpu)
{
	mv_a64_vm *vm = vcpu->vm;
	uint32_t entries;
	int r = 0;

	pthread_mutex_lock(&vm->vcpus_lock);
	vm->created_vcpus++;
	entries = vm->ring_entries;
	pthread_mutex_unlock(&vm->vcpus_lock);
	if (entries)
		r = mv_dirty_ring_new(entries, vm->alloc, &vcpu->ring);
	if (r) {
		pthread_mutex_lock(&vm->vcpus_lock);
		vm->created_vcpus--;
		pthread_mutex_unlock(&vm->vcpus_lock);
	}
	return r;
}

void a64_dirty_vcpu_free(mv_a64_vcpu *vcpu)
{
	mv_dirty_ring_free(vcpu->ring);
	vcpu->ring = NULL;
}

/* ---- the VM's calls ---- */

int mv_a64_vm_enable_manual_dirty_protect(mv_a64_vm *vm, uint32_t flags)
{
	uint32_t allowed = HV_DIRTY_PROTECT_ENABLE;

	if (flags & HV_DIRTY_PROTECT_ENABLE)
		allowed |= HV_DIRTY_PROTECT_INIT_SET;
	if (flags & ~allowed)
		return -EINVAL;
	pthread_rwlock_wrlock(&vm->slots_lock);
	vm->manual_dirty_protect = flags & HV_DIRTY_PROTECT_ENABLE;
	vm->dirty_init_set = flags & HV_DIRTY_PROTECT_INIT_SET;
	pthread_rwlock_unlock(&vm->slots_lock);
	return 0;
}

int mv_a64_vm_get_dirty_log(mv_a64_vm *vm, uint32_t slot, uint64_t *bitmap)
{
	int r;

	pthread_rwlock_rdlock(&vm->slots_lock);
	if (vm->ring_entries) {
		r = -ENXIO;
	} else if (vm->manual_dirty_protect) {
		r = mv_dirty_get_log(vm->slots, slot, true, bitmap, NULL, NULL);
	} else {
		r = a64_dirty_log_locked(vm, slot, bitmap, 0, 0, NULL);
	}
	pthread_rwlock_unlock(&vm->slots_lock);
	return r;
}

int mv_a64_vm_clear_dirty_log(mv_a64_vm *vm, uint32_t slot, uint64_t first_page,
			      uint32_t num_pages, const uint64_t *bitmap)
{
	int r = -ENXIO;

	pthread_rwlock_rdlock(&vm->slots_lock);
	if (!vm->ring_entries)
		r = a64_dirty_log_locked(vm, slot, NULL, first_page, num_pages, bitmap);
	pthread_rwlock_unlock(&vm->slots_lock);
	return r;
}

/* kvm_is_block_size_supported with a 4 KiB granule: pages, level-2 and level-1 blocks. */
static bool a64_split_chunk_ok(uint64_t chunk)
{
	return chunk == 0 || chunk == A64_SZ_4K || chunk == A64_SZ_2M || chunk == A64_SZ_1G;
}

int mv_a64_vm_enable_eager_split(mv_a64_vm *vm, uint64_t chunk_size)
{
	int r = -EINVAL;

	pthread_rwlock_wrlock(&vm->slots_lock);
	if (mv_memslots_count(vm->slots, 0) == 0 && a64_split_chunk_ok(chunk_size)) {
		vm->split_chunk = chunk_size;
		r = 0;
	}
	pthread_rwlock_unlock(&vm->slots_lock);
	return r;
}

int mv_a64_vm_enable_dirty_ring(mv_a64_vm *vm, uint32_t entries)
{
	int r = mv_dirty_ring_check_entries(entries);

	if (r)
		return r;
	pthread_rwlock_wrlock(&vm->slots_lock);
	pthread_mutex_lock(&vm->vcpus_lock);
	if (vm->ring_entries || vm->created_vcpus) {
		r = -EINVAL;
	} else {
		vm->ring_entries = entries;
		/* kvm_use_dirty_bitmap: slots that start logging from now on get none. */
		mv_memslots_set_dirty_bitmap(vm->slots, false);
	}
	pthread_mutex_unlock(&vm->vcpus_lock);
	pthread_rwlock_unlock(&vm->slots_lock);
	return r;
}

/*
 * One session for every vCPU's ring: KVM takes mmu_lock per coalesced
 * batch; here it is held across the call, as for a get, so the iterator
 * carries over from batch to batch. slots_lock (read) keeps vCPUs from
 * being freed meanwhile.
 */
int mv_a64_vm_dirty_rings_reset(mv_a64_vm *vm)
{
	a64_protect_session s;
	int total = 0;

	pthread_rwlock_rdlock(&vm->slots_lock);
	if (!vm->ring_entries) {
		pthread_rwlock_unlock(&vm->slots_lock);
		return -EINVAL;
	}
	a64_session_begin(&s, vm);
	for (unsigned i = 0; i < vm->max_vcpus; i++) {
		mv_a64_vcpu *v;

		/* Only to read the pointer: the final TLBI takes vcpus_lock too. */
		pthread_mutex_lock(&vm->vcpus_lock);
		v = vm->vcpus[i];
		pthread_mutex_unlock(&vm->vcpus_lock);
		if (v && v->ring)
			total += mv_dirty_ring_reset(v->ring, vm->slots, a64_protect_masked, &s);
	}
	a64_session_end(&s);
	pthread_rwlock_unlock(&vm->slots_lock);
	return total;
}

int mv_a64_vcpu_dirty_ring_harvest(mv_a64_vcpu *vcpu, void (*fn)(void *opaque, const hv_dirty_gfn *g),
				   void *opaque)
{
	if (!vcpu->ring)
		return -EINVAL;
	return mv_dirty_ring_harvest(vcpu->ring, fn, opaque);
}
