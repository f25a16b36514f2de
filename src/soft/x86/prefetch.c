/*
 * direct_pte_prefetch (arch/x86/kvm/mmu/mmu.c): a 4 KiB fault also maps
 * the neighbours in its aligned group of PTE_PREFETCH_NUM entries of the
 * same table, betting on locality.
 *
 * - Only with A/D bits: a prefetched leaf is not accessed, so ageing can
 *   tell it from one the guest used; without A/D it could not.
 * - Not while an invalidation is in progress (it could be for these very
 *   pages), not on a dirty-logged slot (every write must fault to be
 *   logged) nor on a read-only one (KVM's gfn_to_memslot_dirty_bitmap /
 *   gfn_to_hva_many refuse both).
 * - Only host pages that are already there (KVM: get_user_pages_fast_only
 *   with FOLL_WRITE, which never faults): resident per mincore, then the
 *   host oracle for poison and write access.
 * - Neighbours get make_spte's leaf for a writable host page, not accessed
 *   (KVM's prefetch: mark_spte_for_access_track).
 * - Only entries that map nothing are filled (KVM skips present SPTEs;
 *   MV_EPT_INSTALL_ABSENT): a leaf another vCPU installed meanwhile is
 *   kept as it is (its A flag included), so prefetching never changes a
 *   present leaf and needs no INVEPT.
 */
#include "soft/x86/x86_fault.h"

#include <sys/mman.h>

#define X86_PTE_PREFETCH_NUM 8

static bool x86_host_resident(uint64_t hva)
{
	unsigned char vec = 0;

	return mincore((void *)(uintptr_t)hva, 1ull << 12, &vec) == 0 && (vec & 1);
}

static void x86_prefetch_one(mv_x86_vm *vm, const mv_memslot *slot, uint64_t gfn, mv_pte *sptep)
{
	uint64_t hva = mv_memslot_gfn_to_hva(slot, gfn);
	uint64_t host_size;
	mv_pte spte;

	if (mv_ept_is_present(mv_pgt_read(sptep)) || !x86_host_resident(hva) ||
	    mv_soft_host_page(vm->host, hva, true, &host_size) != 0)
		return;
	spte = x86_make_spte(vm, hva, X86_LEVEL_4K, true, true);
	if (mv_ept_install(&vm->ept, gfn << 12, X86_LEVEL_4K, spte,
			   MV_PGT_WALK_SHARED | MV_EPT_INSTALL_ABSENT, NULL) != MV_PGT_OK)
		return;
	x86_rmap_add(slot, gfn, X86_LEVEL_4K, sptep);
	X86_STAT_INC(vm, prefetched);
}

void x86_prefetch(mv_x86_vcpu *vcpu, const mv_memslot *slot, uint64_t gfn, mv_pte *sptep)
{
	mv_x86_vm *vm = vcpu->vm;
	uint64_t first = gfn & ~(uint64_t)(X86_PTE_PREFETCH_NUM - 1);

	if (!vm->cfg.prefetch || !vm->ept.ad || vm->kvm.mmu_invalidate_in_progress ||
	    (slot->flags & (HV_MEM_LOG_DIRTY_PAGES | HV_MEM_READONLY)))
		return;
	for (uint64_t g = first; g < first + X86_PTE_PREFETCH_NUM; g++) {
		/* The group is 8-aligned, so its entries share @sptep's table. */
		if (g != gfn && g >= slot->base_gfn && g < slot->base_gfn + slot->npages)
			x86_prefetch_one(vm, slot, g, sptep + ((int64_t)g - (int64_t)gfn));
	}
}
