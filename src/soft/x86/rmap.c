/*
 * The reverse map: for every page of every size a slot holds, the leaf
 * SPTE that maps it (KVM's slot->arch.rmap[level], one entry per page of
 * that level; the TDP MMU finds leaves by walking instead, the shadow MMU
 * by rmap). Faults add entries as they install leaves (under mmu_lock for
 * reading: different pages, atomic stores); everything that changes the
 * EPT's structure -- a zap, a split, a table replaced by a huge leaf --
 * runs under mmu_lock for writing and re-reads the range from the EPT
 * (x86_rmap_drop_range).
 */
#include "soft/x86/x86_fault.h"

#include <inttypes.h>
#include <stdio.h>

static mv_pte **x86_rmap_slotp(const mv_memslot *slot, uint64_t gfn, int level)
{
	struct x86_slot_arch *arch = slot->arch;

	return &arch->rmap[level - 1][x86_gfn_index(slot, gfn, level)];
}

static mv_pte *x86_rmap_get(const mv_memslot *slot, uint64_t gfn, int level)
{
	return __atomic_load_n(x86_rmap_slotp(slot, gfn, level), __ATOMIC_ACQUIRE);
}

void x86_rmap_add(const mv_memslot *slot, uint64_t gfn, int level, mv_pte *sptep)
{
	if (slot->arch)
		__atomic_store_n(x86_rmap_slotp(slot, gfn, level), sptep, __ATOMIC_RELEASE);
}

static uint64_t x86_slot_end(const mv_memslot *slot)
{
	return slot->base_gfn + slot->npages;
}

/* First gfn of @gfn's page of @level, inside the slot. */
static uint64_t x86_page_start(const mv_memslot *slot, uint64_t gfn, int level)
{
	uint64_t start = gfn & ~(x86_level_pages(level) - 1);

	return start < slot->base_gfn ? slot->base_gfn : start;
}

/* End of @gfn's page of @level, inside the slot. */
static uint64_t x86_page_end(const mv_memslot *slot, uint64_t gfn, int level)
{
	uint64_t end = (gfn | (x86_level_pages(level) - 1)) + 1;

	return end > x86_slot_end(slot) ? x86_slot_end(slot) : end;
}

/*
 * Widen [*lo, *hi) to the huge leaves the rmap knows at its ends: a zap or
 * split of part of a huge leaf changes all of it.
 */
static void x86_rmap_widen(const mv_memslot *slot, uint64_t *lo, uint64_t *hi)
{
	for (int level = X86_LEVEL_1G; level < X86_LEVEL_4K; level++) {
		if (x86_rmap_get(slot, *lo, level))
			*lo = x86_page_start(slot, *lo, level);
		if (x86_rmap_get(slot, *hi - 1, level))
			*hi = x86_page_end(slot, *hi - 1, level);
	}
}

static void x86_rmap_clear(const mv_memslot *slot, uint64_t lo, uint64_t hi)
{
	for (int level = X86_LEVEL_1G; level <= X86_LEVEL_4K; level++) {
		for (uint64_t g = lo; g < hi; g = x86_page_end(slot, g, level))
			__atomic_store_n(x86_rmap_slotp(slot, g, level), NULL, __ATOMIC_RELAXED);
	}
}

typedef struct x86_rmap_walk {
	const mv_memslot *slot;
	/* check mode: */
	bool check;
	bool ok;
	char *why;
	size_t why_len;
} x86_rmap_walk;

static bool x86_gfn_in_slot(const mv_memslot *slot, uint64_t gfn)
{
	return gfn >= slot->base_gfn && gfn < x86_slot_end(slot);
}

/* Every present leaf of the walked range: record it, or check that it is recorded. */
static mv_pgt_result x86_rmap_visit(const mv_pgt_ctx *ctx, mv_pgt_visit visit)
{
	x86_rmap_walk *w = ctx->arg;
	uint64_t gfn = ctx->addr >> 12;

	(void)visit;
	if (!mv_ept_is_present(ctx->old) || !x86_gfn_in_slot(w->slot, gfn))
		return MV_PGT_OK;
	if (!w->check) {
		x86_rmap_add(w->slot, gfn, ctx->level, ctx->ptep);
		return MV_PGT_OK;
	}
	if (x86_rmap_get(w->slot, gfn, ctx->level) != ctx->ptep) {
		snprintf(w->why, w->why_len,
			 "the level-%d leaf at GPA 0x%" PRIx64 " of slot %u is missing from the rmap",
			 ctx->level, ctx->addr, w->slot->id);
		w->ok = false;
		return MV_PGT_STOP;
	}
	return MV_PGT_OK;
}

static void x86_rmap_walk_range(mv_x86_vm *vm, x86_rmap_walk *w, uint64_t lo, uint64_t hi)
{
	mv_pgt_walker walker = {
		.cb = x86_rmap_visit,
		.arg = w,
		.flags = MV_PGT_VISIT_LEAF,
	};

	mv_pgt_walk(&vm->ept.pgt, lo << 12, (hi - lo) << 12, &walker);
}

/* Does any leaf of any size map a page of [lo, hi)? */
static bool x86_rmap_any(const mv_memslot *slot, uint64_t lo, uint64_t hi)
{
	for (int level = X86_LEVEL_1G; level <= X86_LEVEL_4K; level++) {
		for (uint64_t g = lo; g < hi; g = x86_page_end(slot, g, level)) {
			if (x86_rmap_get(slot, g, level))
				return true;
		}
	}
	return false;
}

/* Huge pages of [lo, hi) left without any leaf lost their tables: their NX marks go. */
static void x86_rmap_forget_nx(const mv_memslot *slot, uint64_t lo, uint64_t hi)
{
	for (int level = X86_LEVEL_1G; level < X86_LEVEL_4K; level++) {
		uint64_t pages = x86_level_pages(level);

		for (uint64_t g = (lo + pages - 1) & ~(pages - 1); g + pages <= hi; g += pages) {
			if (!x86_rmap_any(slot, g, g + pages))
				x86_lpage_nx_clear(slot, g, g + pages);
		}
	}
}

void x86_rmap_drop_range(mv_x86_vm *vm, const mv_memslot *slot, uint64_t gfn_start, uint64_t gfn_end)
{
	x86_rmap_walk w = { .slot = slot };
	uint64_t lo = gfn_start < slot->base_gfn ? slot->base_gfn : gfn_start;
	uint64_t hi = gfn_end > x86_slot_end(slot) ? x86_slot_end(slot) : gfn_end;

	if (!slot->arch || lo >= hi)
		return;
	x86_rmap_widen(slot, &lo, &hi);
	x86_rmap_clear(slot, lo, hi);
	x86_rmap_walk_range(vm, &w, lo, hi);
	x86_rmap_forget_nx(slot, lo, hi);
}

/* @sptep, the entry of @gfn's page of @level, is that page's leaf and maps its host address. */
static bool x86_rmap_entry_ok(mv_x86_vm *vm, const mv_memslot *slot, int level, uint64_t gfn,
			      mv_pte *sptep, char *why, size_t why_len)
{
	uint64_t gpa = gfn << 12;
	uint64_t hva = mv_memslot_gfn_to_hva(slot, gfn);
	int leaf_level = 0;
	mv_pte *leaf = mv_ept_leaf_ptep(&vm->ept, gpa, &leaf_level);
	mv_pte spte = mv_pgt_read(sptep);

	if (leaf != sptep || leaf_level != level || !mv_ept_is_present(spte)) {
		snprintf(why, why_len,
			 "the rmap of slot %u has a level-%d entry at GPA 0x%" PRIx64
			 " that is not the present leaf there",
			 slot->id, level, gpa);
		return false;
	}
	uint64_t out = spte & MV_EPT_ADDR_MASK;

	if (out != hva) {
		snprintf(why, why_len,
			 "the level-%d leaf at GPA 0x%" PRIx64 " maps host 0x%" PRIx64 ", not 0x%" PRIx64,
			 level, gpa, out, hva);
		return false;
	}
	return true;
}

static bool x86_rmap_check_slot(mv_x86_vm *vm, const mv_memslot *slot, char *why, size_t why_len)
{
	x86_rmap_walk w = { .slot = slot, .check = true, .ok = true, .why = why, .why_len = why_len };
	uint64_t end = x86_slot_end(slot);

	for (int level = X86_LEVEL_1G; level <= X86_LEVEL_4K; level++) {
		for (uint64_t g = slot->base_gfn; g < end; g = x86_page_end(slot, g, level)) {
			mv_pte *sptep = x86_rmap_get(slot, g, level);

			if (sptep && !x86_rmap_entry_ok(vm, slot, level, g, sptep, why, why_len))
				return false;
		}
	}
	x86_rmap_walk_range(vm, &w, slot->base_gfn, end);
	return w.ok;
}

bool x86_rmap_check(mv_x86_vm *vm, char *why, size_t why_len)
{
	size_t n = mv_memslots_count(vm->slots, 0);

	for (size_t i = 0; i < n; i++) {
		const mv_memslot *slot = mv_memslots_at(vm->slots, 0, i);

		if (slot->arch && !x86_rmap_check_slot(vm, slot, why, why_len))
			return false;
	}
	return true;
}
