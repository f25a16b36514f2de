/*
 * Which level one fault maps at (KVM's kvm_mmu_hugepage_adjust,
 * kvm_mmu_max_mapping_level and disallowed_hugepage_adjust).
 *
 * - Dirty logging maps 4 KiB pages only (kvm_slot_dirty_track_enabled):
 *   the dirty bitmap has one bit per 4 KiB page.
 * - Otherwise the largest of 1 GiB / 2 MiB that the host mapping holds
 *   (hugetlb page or PMD-mapped THP, from mv_soft_host_page) and whose
 *   lpage_info count is 0. The counts of a new slot already refuse the
 *   huge pages that would reach outside the slot or whose guest and host
 *   addresses are not congruent (slot_arch.c), so one count says it all.
 * - NX huge pages (the iTLB multihit mitigation): huge leaves are never
 *   executable, so an instruction fetch maps 4 KiB and marks the 2 MiB and
 *   1 GiB regions around it (KVM marks the tables that fault creates); a
 *   later fault, of any kind, maps no larger than a marked region, so the
 *   executable pages are not swallowed by a non-executable huge leaf.
 */
#include "soft/x86/x86_fault.h"

/* The largest huge level the host mapping and the counts allow, else 4 KiB. */
static int x86_max_mapping_level(const mv_memslot *slot, uint64_t gfn, uint64_t host_size)
{
	for (int level = X86_LEVEL_1G; level < X86_LEVEL_4K; level++) {
		if (host_size >= x86_level_size(level) && x86_lpage(slot, gfn, level)->disallow_lpage == 0)
			return level;
	}
	return X86_LEVEL_4K;
}

static bool x86_nx_marked(const mv_memslot *slot, uint64_t gfn, int level)
{
	return __atomic_load_n(&x86_lpage(slot, gfn, level)->nx_disallowed, __ATOMIC_RELAXED);
}

/* An exec fault builds the 4 KiB path below both huge levels: mark them (see the top). */
static void x86_nx_mark(const mv_memslot *slot, uint64_t gfn)
{
	for (int level = X86_LEVEL_1G; level < X86_LEVEL_4K; level++)
		__atomic_store_n(&x86_lpage(slot, gfn, level)->nx_disallowed, 1, __ATOMIC_RELAXED);
}

void x86_fault_level(const mv_x86_vm *vm, const mv_memslot *slot, uint64_t gfn, x86_level_req *req)
{
	int level;

	req->level = X86_LEVEL_4K;
	req->nx_refused = false;
	if (slot->flags & HV_MEM_LOG_DIRTY_PAGES)
		return;
	level = x86_max_mapping_level(slot, gfn, req->host_size);
	if (!vm->cfg.nx_huge_pages) {
		req->level = level;
		return;
	}
	if (req->exec) {
		x86_nx_mark(slot, gfn);
		req->nx_refused = level != X86_LEVEL_4K;
		return;
	}
	/* disallowed_hugepage_adjust: one level down per marked region on the way. */
	while (level < X86_LEVEL_4K && x86_nx_marked(slot, gfn, level))
		level++;
	req->level = level;
}

void x86_lpage_disallow_update(const mv_memslot *slot, uint64_t gfn, int delta)
{
	for (int level = X86_LEVEL_1G; level < X86_LEVEL_4K; level++)
		x86_lpage(slot, gfn, level)->disallow_lpage += delta;
}

void x86_lpage_nx_clear(const mv_memslot *slot, uint64_t gfn_start, uint64_t gfn_end)
{
	for (int level = X86_LEVEL_1G; level < X86_LEVEL_4K; level++) {
		uint64_t pages = x86_level_pages(level);
		uint64_t first = (gfn_start + pages - 1) & ~(pages - 1);

		for (uint64_t g = first; g + pages <= gfn_end; g += pages)
			__atomic_store_n(&x86_lpage(slot, g, level)->nx_disallowed, 0, __ATOMIC_RELAXED);
	}
}
