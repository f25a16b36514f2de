/*
 * Dirty logging of the x86 soft VM: KVM's generic bitmap and ring
 * bookkeeping (soft/dirty_log.c, soft/dirty_ring.c) and the VM calls and
 * re-protection sessions both arches share (soft/dirty_vm.c) joined to
 * EPT as arch/x86/kvm/mmu does it without PML (write protection):
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
 *   ring reset is one session (soft_dirty_vm.h): leaves are protected from
 *   the iterator's position, without a walk from the root, and one INVEPT
 *   at the end covers every leaf that lost W.
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
	if (vm->kvm.init_set)
		return;
	if (!vm->cfg.lazy_split)
		x86_dirty_split(vm, slot, slot->base_gfn, slot->base_gfn + slot->npages);
	mv_ept_wrprotect(&vm->ept, slot->base_gfn << 12, slot->npages << 12);
}

/* ---- re-protection within a session (soft_dirty_vm.h) ---- */

/* The iterator on the leaf (or non-present entry) covering @gfn, for [@gfn, @end); false if none. */
static bool x86_session_seek(soft_kvm_session *s, uint64_t gfn, uint64_t end)
{
	if (!soft_kvm_session_positioned(s, gfn << 12))
		return false;
	mv_pgt_iter_seek(&s->it, gfn << 12, end << 12);
	return s->it.valid;
}

/* Is a present huge page mapping @gfn? */
static bool x86_session_huge_at(soft_kvm_session *s, uint64_t gfn)
{
	return x86_session_seek(s, gfn, gfn + 1) && s->it.level < s->it.pgt->last_level &&
	       mv_ept_is_present(s->it.old);
}

/*
 * mv_ept_wrprotect's rule for entry @i of the iterator's run: a present
 * leaf loses W by compare-and-swap, keeping MV_SPTE_MMU_WRITABLE, so a
 * concurrent fast-path fix is never lost (a huge leaf is protected whole).
 */
static void x86_protect_entry(soft_kvm_session *s, uint64_t i)
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
static void x86_protect_bits(soft_kvm_session *s, uint64_t base, uint64_t bits)
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

/*
 * kvm_arch_mmu_enable_log_dirty_pt_masked for a mask whose leaves were
 * prefetched: with INITIALLY_SET (unless lazy) the huge pages from the
 * first to the last masked page are split first (one covering any of them
 * covers the first or the last: the mask spans fewer pages than a huge
 * page); then every masked page's leaf loses W.
 */
void x86_dirty_protect_mask(soft_kvm_session *s, const mv_dirty_mask *m)
{
	mv_x86_vm *vm = s->kvm->vm;
	uint64_t base = m->slot->base_gfn + m->offset, first, end;

	soft_kvm_mask_gfns(m, &first, &end);
	if (vm->kvm.init_set && !vm->cfg.lazy_split &&
	    (x86_session_huge_at(s, first) || x86_session_huge_at(s, end - 1))) {
		x86_dirty_split(vm, m->slot, first, end);
		s->positioned = false;      /* the split replaced entries under the iterators */
	}
	x86_protect_bits(s, base, m->mask);
}

/* The end of a session: one INVEPT of every leaf that lost W. */
void x86_dirty_invalidate(void *vm, uint64_t gpa, uint64_t size)
{
	ept_invept(&((mv_x86_vm *)vm)->ept, gpa, size);
}

/* ---- vCPUs ---- */

void x86_mark_page_dirty(mv_x86_vcpu *vcpu, const mv_memslot *slot, uint64_t gfn)
{
	soft_kvm_mark_page_dirty(vcpu ? vcpu->ring : NULL, slot, gfn);
}

/* ---- the VM's calls (soft_dirty_vm.h) ---- */

int mv_x86_vm_enable_manual_dirty_protect(mv_x86_vm *vm, uint32_t flags)
{
	return soft_kvm_enable_manual_dirty_protect(&vm->kvm, flags);
}

int mv_x86_vm_get_dirty_log(mv_x86_vm *vm, uint32_t slot, uint64_t *bitmap)
{
	return soft_kvm_get_dirty_log(&vm->kvm, slot, bitmap);
}

int mv_x86_vm_clear_dirty_log(mv_x86_vm *vm, uint32_t slot, uint64_t first_page,
			      uint32_t num_pages, const uint64_t *bitmap)
{
	return soft_kvm_clear_dirty_log(&vm->kvm, slot, first_page, num_pages, bitmap);
}

int mv_x86_vm_enable_dirty_ring(mv_x86_vm *vm, uint32_t entries)
{
	return soft_kvm_enable_dirty_ring(&vm->kvm, entries);
}

int mv_x86_vm_dirty_rings_reset(mv_x86_vm *vm)
{
	return soft_kvm_dirty_rings_reset(&vm->kvm);
}

/* User space's side of a vCPU's ring: -EINVAL when the VM has no dirty rings (as arm64). */
int mv_x86_vcpu_dirty_ring_harvest(mv_x86_vcpu *vcpu, void (*fn)(void *, const hv_dirty_gfn *),
				   void *opaque)
{
	return soft_kvm_dirty_ring_harvest(vcpu->ring, fn, opaque);
}
