/*
 * Dirty logging of the x86 soft VM: KVM's generic bitmap and ring
 * bookkeeping (soft/dirty_log.c, soft/dirty_ring.c) joined to EPT as
 * arch/x86/kvm/mmu does it without PML (write protection):
 *
 * - Logging starts (kvm_mmu_slot_apply_flags): with manual protect +
 *   INITIALLY_SET nothing happens (every page counts as dirty and is
 *   protected when user space clears it); otherwise the slot's huge pages
 *   are split to 4 KiB at once unless cfg.lazy_split (eager_page_split,
 *   KVM's default; lazily, a huge page is write-protected whole and split
 *   by its first write fault), then every leaf of the slot loses W. KVM
 *   splits under mmu_lock for reading, yielding; here the whole slot is
 *   split under mmu_lock for writing.
 * - Logging stops: nothing. KVM recovers huge pages then
 *   (kvm_mmu_recover_huge_pages, formerly zapping collapsible SPTEs); here
 *   the 4 KiB mappings stay until something zaps them, after which faults
 *   map huge pages again.
 * - Re-protection (kvm_arch_mmu_enable_log_dirty_pt_masked): the masked
 *   pages lose W, and with INITIALLY_SET the huge pages of the masked range
 *   are split first (eager) or protected whole (lazy). A get, a clear or a
 *   ring reset is one session: mmu_lock held for writing throughout, table
 *   iterators carried from mask to mask (no walk from the root; each mask's
 *   leaves prefetched some masks before they are protected), one INVEPT at
 *   the end covering every leaf that lost W.
 * - Faults mark pages in the vCPU's ring (ring VMs, logging slots) or the
 *   slot's bitmap (mark_page_dirty_in_slot); a soft-full ring stops the
 *   vCPU at its next guest entry (access.c).
 */
#include "soft/x86/x86_dirty.h"
#include "soft/x86/ept_internal.h"

#include <errno.h>
#include <string.h>

/* ---- memslots and EPT ---- */

/* Count the huge leaves the walk visits. */
static mv_pgt_result x86_dirty_count_huge(const mv_pgt_ctx *ctx, mv_pgt_visit visit)
{
	uint64_t *n = ctx->arg;

	(void)visit;
	if (ctx->level < ctx->pgt->last_level && mv_ept_is_present(ctx->old))
		(*n)++;
	return MV_PGT_OK;
}

/*
 * kvm_mmu_try_split_huge_pages: split the huge pages of @slot's gfns
 * [gfn, gfn_end) to 4 KiB, counting them, and let the rmap see the new
 * leaves (mmu_lock held for writing). Best effort: without memory the
 * huge pages stay and are write-protected whole.
 */
static void x86_dirty_split(mv_x86_vm *vm, const mv_memslot *slot, uint64_t gfn,
			       uint64_t gfn_end)
{
	uint64_t n = 0;
	mv_pgt_walker count = { .cb = x86_dirty_count_huge, .arg = &n, .flags = MV_PGT_VISIT_LEAF };

	mv_pgt_walk(&vm->ept.pgt, gfn << 12, (gfn_end - gfn) << 12, &count);
	if (!n)
		return;
	mv_ept_split(&vm->ept, gfn << 12, (gfn_end - gfn) << 12);
	x86_rmap_drop_range(vm, slot, gfn, gfn_end);
	__atomic_add_fetch(&vm->stats.eager_splits, n, __ATOMIC_RELAXED);
}

void x86_dirty_log_start(mv_x86_vm *vm, const mv_memslot *slot)
{
	/* Initially-all-set: every page is already dirty, nothing to protect. */
	if (vm->init_set)
		return;
	if (!vm->cfg.lazy_split)
		x86_dirty_split(vm, slot, slot->base_gfn, slot->base_gfn + slot->npages);
	mv_ept_wrprotect(&vm->ept, slot->base_gfn << 12, slot->npages << 12);
}

void x86_dirty_prepare(mv_x86_vm *vm, const mv_memslot *old, const mv_memslot *new)
{
	if (vm->init_set)
		mv_dirty_init_set(old, new);
}

/* ---- re-protection: one session per get, clear or ring reset ---- */

/*
 * One get, clear or KVM_RESET_DIRTY_RINGS: mmu_lock held for writing
 * throughout (the iterators' paths of tables stay valid: nothing frees a
 * table meanwhile); two iterators carried from mask to mask: one
 * prefetches each mask's leaves when it arrives, the other protects them
 * MV_DIRTY_AHEAD masks later; the range of the leaves that lost W,
 * invalidated once at the end (KVM's kvm_flush_remote_tlbs after the
 * harvest).
 */
typedef struct x86_protect_session {
	mv_x86_vm *vm;
	mv_pgt_iter it;             /* protects, down to the 4 KiB leaves */
	mv_pgt_iter ahead;          /* prefetches the leaves, from the level above them */
	bool positioned;            /* false: the iterators start again at the root */
	mv_dirty_ahead queue;       /* masks prefetched, not yet protected */
	mv_pgt_span span;
} x86_protect_session;

static void x86_session_begin(x86_protect_session *s, mv_x86_vm *vm)
{
	memset(s, 0, sizeof(*s));
	s->vm = vm;
	pthread_rwlock_wrlock(&vm->mmu_lock);
}

/* Both iterators on their paths (from the root after a split changed entries). */
static bool x86_session_positioned(x86_protect_session *s, uint64_t gpa)
{
	mv_pgt *pgt = &s->vm->ept.pgt;

	if (!s->positioned)
		s->positioned = mv_pgt_iter_start(&s->it, pgt, gpa, gpa, pgt->last_level) == MV_PGT_OK &&
				mv_pgt_iter_start(&s->ahead, pgt, gpa, gpa, pgt->last_level - 1) ==
					MV_PGT_OK;
	return s->positioned;
}

/* The iterator on the leaf (or non-present entry) covering @gfn, for [@gfn, @end); false if none. */
static bool x86_session_seek(x86_protect_session *s, uint64_t gfn, uint64_t end)
{
	if (!x86_session_positioned(s, gfn << 12))
		return false;
	mv_pgt_iter_seek(&s->it, gfn << 12, end << 12);
	return s->it.valid;
}

/* Is a present huge page mapping @gfn? */
static bool x86_session_huge_at(x86_protect_session *s, uint64_t gfn)
{
	return x86_session_seek(s, gfn, gfn + 1) && s->it.level < s->it.pgt->last_level &&
	       mv_ept_is_present(s->it.old);
}

/*
 * mv_ept_wrprotect's rule for entry @i of the iterator's run: a present
 * leaf loses W by compare-and-swap, keeping MV_SPTE_MMU_WRITABLE, so a
 * concurrent fast-path fix is never lost (a huge leaf is protected whole).
 */
static void x86_protect_entry(x86_protect_session *s, uint64_t i)
{
	mv_pgt_ctx ctx;

	mv_pgt_iter_ctx(&s->it, i, 0, &ctx);
	if (mv_ept_is_present(ctx.old) && (ctx.old & MV_EPT_W) &&
	    mv_pgt_ctx_update_bits(&ctx, 0, MV_EPT_W))
		mv_pgt_span_add(&s->span, &ctx);
}

/*
 * The leaves of the pages of @bits (bit n: gfn @base + n), from the
 * iterator's position: the masked pages of one last-level table are one
 * run of entries; a huge page or a hole is handled page by page.
 */
static void x86_protect_bits(x86_protect_session *s, uint64_t base, uint64_t bits)
{
	while (bits) {
		uint64_t gfn = base + (uint64_t)__builtin_ctzll(bits), n;

		if (!x86_session_seek(s, gfn, base + 64)) {
			bits &= bits - 1;
			continue;
		}
		n = s->it.level == s->it.pgt->last_level ? mv_pgt_iter_run(&s->it) : 1;
		for (; bits && base + (uint64_t)__builtin_ctzll(bits) < gfn + n; bits &= bits - 1)
			x86_protect_entry(s, base + (uint64_t)__builtin_ctzll(bits) - gfn);
	}
}

/* The first and last gfn of @m. */
static void x86_mask_gfns(const mv_dirty_mask *m, uint64_t *first, uint64_t *last)
{
	uint64_t base = m->slot->base_gfn + m->offset;

	*first = base + (uint64_t)__builtin_ctzll(m->mask);
	*last = base + 63 - (uint64_t)__builtin_clzll(m->mask);
}

/*
 * kvm_arch_mmu_enable_log_dirty_pt_masked for a mask whose leaves were
 * prefetched: with INITIALLY_SET (unless lazy) the huge pages from the
 * first to the last masked page are split first (one covering any of them
 * covers the first or the last: the mask spans fewer pages than a huge
 * page); then every masked page's leaf loses W.
 */
static void x86_protect_due(x86_protect_session *s, const mv_dirty_mask *m)
{
	mv_x86_vm *vm = s->vm;
	uint64_t base = m->slot->base_gfn + m->offset, first, last;

	x86_mask_gfns(m, &first, &last);
	if (vm->init_set && !vm->cfg.lazy_split &&
	    (x86_session_huge_at(s, first) || x86_session_huge_at(s, last))) {
		x86_dirty_split(vm, m->slot, first, last + 1);
		s->positioned = false;      /* the split replaced entries under the iterators */
	}
	x86_protect_bits(s, base, m->mask);
}

/* The mv_dirty_protect_fn of a session: prefetch the mask's leaves, protect an older mask. */
static void x86_protect_masked(void *arg, const mv_memslot *slot, uint64_t offset, uint64_t mask)
{
	x86_protect_session *s = arg;
	mv_dirty_mask m = { slot, offset, mask }, due;
	uint64_t first, last;

	x86_mask_gfns(&m, &first, &last);
	if (x86_session_positioned(s, first << 12)) {
		mv_pgt_iter_seek(&s->ahead, first << 12, (last + 1) << 12);
		mv_pgt_iter_prefetch(&s->ahead, first << 12, (last + 1) << 12);
	}
	if (mv_dirty_ahead_push(&s->queue, m, &due))
		x86_protect_due(s, &due);
}

/* The masks still queued, then one INVEPT of every leaf that lost W, before mmu_lock is dropped. */
static void x86_session_end(x86_protect_session *s)
{
	mv_dirty_mask due;

	while (mv_dirty_ahead_pop(&s->queue, &due))
		x86_protect_due(s, &due);
	ept_invept_span(&s->vm->ept, &s->span);
	pthread_rwlock_unlock(&s->vm->mmu_lock);
}

/* ---- vCPUs ---- */

void x86_mark_page_dirty(mv_x86_vcpu *vcpu, const mv_memslot *slot, uint64_t gfn)
{
	if (!(slot->flags & HV_MEM_LOG_DIRTY_PAGES))
		return;
	/*
	 * Cannot fail: a vCPU enters the guest below the soft limit, and one
	 * access marks a few pages (its two pages and guest table pages),
	 * far fewer than the entries the limit keeps free.
	 */
	if (vcpu && vcpu->ring)
		(void)mv_dirty_ring_push(vcpu->ring, HV_SLOT(slot->as_id, slot->id),
					 gfn - slot->base_gfn);
	else
		mv_memslot_mark_dirty(slot, gfn);
}

/* ---- the VM's calls ---- */

/* KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2: INITIALLY_SET only together with ENABLE. */
int mv_x86_vm_enable_manual_dirty_protect(mv_x86_vm *vm, uint32_t flags)
{
	uint32_t allowed = HV_DIRTY_PROTECT_ENABLE;

	if (flags & HV_DIRTY_PROTECT_ENABLE)
		allowed |= HV_DIRTY_PROTECT_INIT_SET;
	if (flags & ~allowed)
		return -EINVAL;
	pthread_rwlock_wrlock(&vm->slots_lock);
	vm->manual_protect = flags & HV_DIRTY_PROTECT_ENABLE;
	vm->init_set = flags & HV_DIRTY_PROTECT_INIT_SET;
	pthread_rwlock_unlock(&vm->slots_lock);
	return 0;
}

/* KVM holds mmu_lock for writing across a whole get (or clear) that re-protects. */
int mv_x86_vm_get_dirty_log(mv_x86_vm *vm, uint32_t slot, uint64_t *bitmap)
{
	x86_protect_session s;
	int r;

	pthread_rwlock_rdlock(&vm->slots_lock);
	if (vm->ring_entries) {
		r = -ENXIO;
	} else if (vm->manual_protect) {
		r = mv_dirty_get_log(vm->slots, slot, true, bitmap, NULL, NULL);
	} else {
		x86_session_begin(&s, vm);
		r = mv_dirty_get_log(vm->slots, slot, false, bitmap, x86_protect_masked, &s);
		x86_session_end(&s);
	}
	pthread_rwlock_unlock(&vm->slots_lock);
	return r;
}

int mv_x86_vm_clear_dirty_log(mv_x86_vm *vm, uint32_t slot, uint64_t first_page,
			      uint32_t num_pages, const uint64_t *bitmap)
{
	x86_protect_session s;
	int r = -ENXIO;

	pthread_rwlock_rdlock(&vm->slots_lock);
	if (!vm->ring_entries) {
		x86_session_begin(&s, vm);
		r = mv_dirty_clear_log(vm->slots, slot, first_page, num_pages, bitmap,
				       x86_protect_masked, &s);
		x86_session_end(&s);
	}
	pthread_rwlock_unlock(&vm->slots_lock);
	return r;
}

/*
 * kvm_vm_ioctl_enable_dirty_log_ring, in entries rather than bytes: the
 * size rules of mv_dirty_ring_check_entries, once (-EINVAL the second
 * time), before any vCPU was created (-EINVAL). Slots that start logging
 * from now on get no bitmaps (kvm_use_dirty_bitmap).
 */
int mv_x86_vm_enable_dirty_ring(mv_x86_vm *vm, uint32_t entries)
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
		mv_memslots_set_dirty_bitmap(vm->slots, false);
	}
	pthread_mutex_unlock(&vm->vcpus_lock);
	pthread_rwlock_unlock(&vm->slots_lock);
	return r;
}

/*
 * KVM_RESET_DIRTY_RINGS: every vCPU's harvested entries re-protected and
 * recycled, as one session (KVM takes mmu_lock per coalesced batch; here
 * it is held across the call, as for a get, so the iterator carries over
 * from batch to batch). slots_lock (read) keeps vCPUs from being freed
 * meanwhile (mv_x86_vcpu_free takes it for writing); vcpus_lock is taken
 * only to read a pointer, since the final INVEPT takes it too.
 */
int mv_x86_vm_dirty_rings_reset(mv_x86_vm *vm)
{
	x86_protect_session s;
	int n = 0;

	pthread_rwlock_rdlock(&vm->slots_lock);
	if (!vm->ring_entries) {
		pthread_rwlock_unlock(&vm->slots_lock);
		return -EINVAL;
	}
	x86_session_begin(&s, vm);
	for (unsigned i = 0; i < vm->max_vcpus; i++) {
		mv_x86_vcpu *v;

		pthread_mutex_lock(&vm->vcpus_lock);
		v = vm->vcpus[i];
		pthread_mutex_unlock(&vm->vcpus_lock);
		if (v)
			n += mv_dirty_ring_reset(v->ring, vm->slots, x86_protect_masked, &s);
	}
	x86_session_end(&s);
	pthread_rwlock_unlock(&vm->slots_lock);
	return n;
}

/* User space's side of a vCPU's ring: -EINVAL when the VM has no dirty rings (as arm64). */
int mv_x86_vcpu_dirty_ring_harvest(mv_x86_vcpu *vcpu, void (*fn)(void *, const hv_dirty_gfn *),
				   void *opaque)
{
	if (!vcpu->ring)
		return -EINVAL;
	return mv_dirty_ring_harvest(vcpu->ring, fn, opaque);
}
