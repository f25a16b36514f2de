/*
 * Per-slot metadata of the x86 fault path (KVM's kvm_alloc_memslot_metadata
 * / kvm_arch_free_memslot): lpage_info per huge level and the reverse map
 * per level.
 *
 * The disallow counts of a new slot (kvm_alloc_memslot_metadata): the
 * first and last huge page are refused when the slot does not start / end
 * on that size, and every huge page is refused when the slot's guest and
 * host addresses are not congruent modulo that size -- exactly the huge
 * pages soft_slot_allows_block refuses, the rule arm64 checks per fault.
 */
#include "soft/soft_fault.h"
#include "soft/x86/x86_fault.h"
#include "util/alloc.h"

#include <errno.h>

/* KVM's __kvm_mmu_slot_lpages: pages of @level that hold some gfn of the slot. */
static uint64_t x86_slot_lpages(const mv_memslot *slot, int level)
{
	return x86_gfn_index(slot, slot->base_gfn + slot->npages - 1, level) + 1;
}

static int x86_lpage_alloc(const mv_x86_vm *vm, const mv_memslot *slot, struct x86_slot_arch *arch,
			   int level)
{
	int i = X86_LEVEL_4K - 1 - level;
	uint64_t n = x86_slot_lpages(slot, level);
	uint64_t pages = x86_level_pages(level);

	arch->lpage[i] = mv_zalloc(vm->alloc, n * sizeof(x86_lpage_info));
	if (!arch->lpage[i])
		return -ENOMEM;
	arch->nr_lpages[i] = n;
	for (uint64_t j = 0; j < n; j++) {
		uint64_t gfn = ((slot->base_gfn & ~(pages - 1)) + j * pages);

		if (gfn < slot->base_gfn)
			gfn = slot->base_gfn;
		arch->lpage[i][j].disallow_lpage = !soft_slot_allows_block(slot, gfn, x86_level_size(level));
	}
	return 0;
}

static int x86_rmap_alloc(const mv_x86_vm *vm, const mv_memslot *slot, struct x86_slot_arch *arch,
			  int level)
{
	uint64_t n = level == X86_LEVEL_4K ? slot->npages : x86_slot_lpages(slot, level);

	arch->rmap[level - 1] = mv_zalloc(vm->alloc, n * sizeof(mv_pte *));
	return arch->rmap[level - 1] ? 0 : -ENOMEM;
}

int x86_slot_arch_alloc(mv_x86_vm *vm, mv_memslot *slot)
{
	struct x86_slot_arch *arch = mv_zalloc(vm->alloc, sizeof(*arch));
	int r = arch ? 0 : -ENOMEM;

	for (int level = X86_LEVEL_1G; level <= X86_LEVEL_4K && r == 0; level++) {
		if (level != X86_LEVEL_4K)
			r = x86_lpage_alloc(vm, slot, arch, level);
		if (r == 0)
			r = x86_rmap_alloc(vm, slot, arch, level);
	}
	if (r) {
		x86_slot_arch_free(vm, arch);
		return r;
	}
	slot->arch = arch;
	return 0;
}

void x86_slot_arch_free(mv_x86_vm *vm, void *p)
{
	struct x86_slot_arch *arch = p;

	if (!arch)
		return;
	for (int i = 0; i < X86_HUGE_LEVELS; i++)
		mv_free(vm->alloc, arch->lpage[i]);
	for (int i = 0; i < X86_LEVEL_4K; i++)
		mv_free(vm->alloc, arch->rmap[i]);
	mv_free(vm->alloc, arch);
}
