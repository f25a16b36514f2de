/*
 * Dirty logging of the arm64 soft VM: KVM's generic bitmap and ring
 * bookkeeping (soft/dirty_log.c, soft/dirty_ring.c) and the VM calls and
 * re-protection sessions both arches share (soft/dirty_vm.c) joined to
 * stage 2 as arch/arm64/kvm/mmu.c does it.
 *
 * - Logging starts (kvm_arch_commit_memory_region): the slot is
 *   write-protected, then, with eager splitting, its blocks are split
 *   into pages chunk by chunk; with manual protect + INITIALLY_SET nothing
 *   happens (the bitmap starts full and pages are protected as user space
 *   clears them).
 * - Re-protection (kvm_arch_mmu_enable_log_dirty_pt_masked): the range
 *   from the first to the last page of a 64-page mask loses write
 *   permission, plus a split of that range with INITIALLY_SET and eager
 *   splitting. A get, a clear or a ring reset is one session
 *   (soft_dirty_vm.h): pages are protected from the iterator's position,
 *   without a walk from the root, and the TLBs invalidated once, at the
 *   end (kvm_arch_flush_remote_tlbs(_memslot)).
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

	if (vm->kvm.init_set) {
		block = a64_dirty_block_at(vm, start);
		if (block)
			start &= ~(block - 1);
		block = a64_dirty_block_at(vm, stop - 1);
		if (block)
			stop = ((stop - 1) & ~(block - 1)) + block;
	}
	mv_s2_wrprotect(&vm->s2, start, stop - start);
	/* Blocks were not split when logging started: split those under the mask (best effort). */
	if (vm->kvm.init_set && vm->split_chunk)
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

	if (vm->kvm.init_set)
		return;
	pthread_rwlock_wrlock(&vm->mmu_lock);
	mv_s2_wrprotect(&vm->s2, ipa, size);
	pthread_rwlock_unlock(&vm->mmu_lock);
	if (vm->split_chunk)
		a64_dirty_split(vm, ipa, ipa + size);
}

/* ---- re-protection within a session (soft_dirty_vm.h) ---- */

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
static void a64_protect_walk(soft_kvm_session *s, uint64_t first, uint64_t end)
{
	mv_a64_vm *vm = s->kvm->vm;

	vm->s2.tlbi = a64_tlbi_collect;
	vm->s2.tlbi_arg = &s->span;
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
static void a64_protect_run(soft_kvm_session *s, mv_pte *ptep, uint64_t n, uint64_t ipa)
{
	uint64_t page = 1ull << s->kvm->pgt->granule_shift;

	for (uint64_t i = 0; i < n; i++) {
		mv_pte pte = __atomic_load_n(&ptep[i], __ATOMIC_ACQUIRE);   /* mv_pgt_read, inline */

		if ((pte & (MV_S2_VALID | MV_S2_S2AP_W)) != (MV_S2_VALID | MV_S2_S2AP_W))
			continue;
		__atomic_store_n(&ptep[i], pte & ~MV_S2_S2AP_W, __ATOMIC_RELEASE);
		a64_tlbi_collect(&s->span, ipa + i * page, page);
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
static bool a64_protect_pages(soft_kvm_session *s, uint64_t ipa, uint64_t end)
{
	mv_pgt *pgt = s->kvm->pgt;
	mv_pgt_iter *it = &s->it;
	uint64_t n;

	if (!soft_kvm_session_positioned(s, ipa))
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

void a64_dirty_protect_mask(soft_kvm_session *s, const mv_dirty_mask *m)
{
	uint64_t first, end;

	soft_kvm_mask_gfns(m, &first, &end);
	if (!a64_protect_pages(s, first << 12, end << 12))
		a64_protect_walk(s, first, end);
}

/* ---- vCPUs ---- */

void a64_mark_page_dirty(mv_a64_vcpu *vcpu, const mv_memslot *slot, uint64_t gfn)
{
	soft_kvm_mark_page_dirty(vcpu->ring, slot, gfn);
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

/* ---- the VM's calls (soft_dirty_vm.h) ---- */

int mv_a64_vm_enable_manual_dirty_protect(mv_a64_vm *vm, uint32_t flags)
{
	return soft_kvm_enable_manual_dirty_protect(&vm->kvm, flags);
}

int mv_a64_vm_get_dirty_log(mv_a64_vm *vm, uint32_t slot, uint64_t *bitmap)
{
	return soft_kvm_get_dirty_log(&vm->kvm, slot, bitmap);
}

int mv_a64_vm_clear_dirty_log(mv_a64_vm *vm, uint32_t slot, uint64_t first_page,
			      uint32_t num_pages, const uint64_t *bitmap)
{
	return soft_kvm_clear_dirty_log(&vm->kvm, slot, first_page, num_pages, bitmap);
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
	return soft_kvm_enable_dirty_ring(&vm->kvm, entries);
}

int mv_a64_vm_dirty_rings_reset(mv_a64_vm *vm)
{
	return soft_kvm_dirty_rings_reset(&vm->kvm);
}

int mv_a64_vcpu_dirty_ring_harvest(mv_a64_vcpu *vcpu, void (*fn)(void *opaque, const hv_dirty_gfn *g),
				   void *opaque)
{
	return soft_kvm_dirty_ring_harvest(vcpu->ring, fn, opaque);
}
