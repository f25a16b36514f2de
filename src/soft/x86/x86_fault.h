/*
 * What the pieces of the x86 TDP fault path share between themselves
 * (KVM's arch/x86/kvm/mmu/mmu.c, tdp_mmu.c, spte.c): tdp_fault.c
 * (handle_ept_violation, direct_page_fault) and mmio_spte.c
 * (handle_ept_misconfig) are the two entries of x86_internal.h; fast_pf.c
 * is the lock-free fast path, prefetch.c direct_pte_prefetch, lpage.c the
 * level choice, rmap.c the reverse map, slot_arch.c the per-slot metadata.
 * Tests include it too (rmap checker, disallow counts).
 */
#ifndef MV_SOFT_X86_FAULT_H
#define MV_SOFT_X86_FAULT_H

#include "soft/x86/x86_internal.h"

/* EPT levels in the walker's numbering (soft_ept.h) and what one entry maps. */
#define X86_LEVEL_1G 1
#define X86_LEVEL_2M 2
#define X86_LEVEL_4K 3
#define X86_HUGE_LEVELS 2                  /* 2M and 1G */

/* Count one event in the VM's statistics (mv_x86_vm_stats; concurrent faults add). */
#define X86_STAT_INC(vm, field) __atomic_fetch_add(&(vm)->stats.field, 1, __ATOMIC_RELAXED)

/* KVM_INTERNAL_ERROR_* of an ACT_ERROR exit (linux/kvm.h). */
#define X86_INTERNAL_ERROR_UNEXPECTED 4u   /* data: exit qualification, GPA, HVA, errno */

/* Bytes one entry at @level maps (4 KiB, 2 MiB, 1 GiB). */
static inline uint64_t x86_level_size(int level)
{
	return 1ull << (12 + 9 * (X86_LEVEL_4K - level));
}

/* Guest frames one entry at @level maps. */
static inline uint64_t x86_level_pages(int level)
{
	return 1ull << (9 * (X86_LEVEL_4K - level));
}

/*
 * KVM's kvm_arch_memory_slot: per huge level (index X86_LEVEL_4K - 1 -
 * level: 0 = 2M, 1 = 1G) one entry per huge page the slot touches, the
 * first and last possibly partial (lpage_info), and per level (index
 * level - 1) one reverse-map entry per page of that size.
 */
typedef struct x86_lpage_info {
	int32_t disallow_lpage;    /* > 0: no huge page here (KVM's count); under mmu_lock */
	uint8_t nx_disallowed;     /* atomic: an exec fault made its table (NX huge pages) */
} x86_lpage_info;

struct x86_slot_arch {
	x86_lpage_info *lpage[X86_HUGE_LEVELS];
	uint64_t nr_lpages[X86_HUGE_LEVELS];
	/* The leaf SPTE mapping each page of each size, or NULL; atomic pointers. */
	mv_pte **rmap[X86_LEVEL_4K];
};

/* Index of @gfn's page of @level inside @slot (KVM's gfn_to_index). */
static inline uint64_t x86_gfn_index(const mv_memslot *slot, uint64_t gfn, int level)
{
	unsigned shift = 9 * (X86_LEVEL_4K - level);

	return (gfn >> shift) - (slot->base_gfn >> shift);
}

/* lpage_info of @gfn at huge @level (X86_LEVEL_2M or X86_LEVEL_1G). */
static inline x86_lpage_info *x86_lpage(const mv_memslot *slot, uint64_t gfn, int level)
{
	struct x86_slot_arch *arch = slot->arch;

	return &arch->lpage[X86_LEVEL_4K - 1 - level][x86_gfn_index(slot, gfn, level)];
}

/* ---- direct_page_fault (tdp_fault.c) ---- */

/*
 * The slow path for @ev (slots_lock held for reading by the caller):
 * memslot -> MMIO or host page -> level -> install, with @pferr (KVM's
 * error code; a misconfiguration's stale MMIO SPTE arrives with RSVD).
 */
void x86_direct_page_fault(mv_x86_vcpu *vcpu, mv_x86_fault_event *ev, uint64_t pferr);

/*
 * KVM's make_spte for a TDP leaf (ACC_ALL) mapping host page @hva (rounded
 * down to @level's size) at @level: R; W when @host_writable (with
 * HOST_WRITABLE, MMU_WRITABLE and, with A/D, D), whatever the faulting
 * access; X unless the leaf is huge and NX huge pages are on; A with A/D,
 * except for @prefetch (only used with A/D: the leaf is not accessed yet).
 * A writable leaf of a logging slot must be logged dirty by the caller.
 */
mv_pte x86_make_spte(const mv_x86_vm *vm, uint64_t hva, int level, bool host_writable,
		     bool prefetch);

/*
 * End @ev with MV_X86_ACT_ERROR: @why in ev->detail and an
 * HV_EXIT_INTERNAL_ERROR exit (X86_INTERNAL_ERROR_UNEXPECTED).
 */
void x86_fault_error(mv_x86_vcpu *vcpu, mv_x86_fault_event *ev, uint64_t hva, int err,
		     const char *why);

/* ---- fast_page_fault (fast_pf.c) ---- */

/*
 * Try the lock-free fast path: true when @ev is done (ACT_FAST or
 * ACT_SPURIOUS), false when the slow path must run.
 */
bool x86_fast_page_fault(mv_x86_vcpu *vcpu, mv_x86_fault_event *ev, uint64_t pferr);

/* ---- MMIO (mmio_spte.c) ---- */

/* Fill vcpu->exit with the MMIO access of @ev (gpa, len, is_write) and set @action. */
void x86_mmio_exit(mv_x86_vcpu *vcpu, mv_x86_fault_event *ev, mv_x86_action action);

/*
 * kvm_handle_noslot_fault: no memslot holds @ev's gfn. Beyond the host's
 * MAXPHYADDR: MMIO without caching; otherwise an MMIO SPTE tagged with the
 * memslot generation, then MMIO (ACT_MMIO_SPTE, or ACT_RETRY when the
 * install raced).
 */
void x86_noslot_fault(mv_x86_vcpu *vcpu, mv_x86_fault_event *ev);

/* ---- prefetch (prefetch.c) ---- */

/*
 * direct_pte_prefetch: after a 4 KiB leaf at @sptep was installed for
 * @gfn, map the other non-present pages of its aligned group of 8 in the
 * same table whose host pages are present, when cfg.prefetch is on, A/D
 * is enabled, no invalidation is in progress and @slot is writable and
 * not logging. mmu_lock held.
 */
void x86_prefetch(mv_x86_vcpu *vcpu, const mv_memslot *slot, uint64_t gfn, mv_pte *sptep);

/* ---- level choice (lpage.c) ---- */

/* What one fault may map, and what it learnt on the way. */
typedef struct x86_level_req {
	uint64_t host_size;        /* the host mapping size around the page */
	bool exec;                 /* instruction fetch */
	int level;                 /* out: X86_LEVEL_* to map */
	bool nx_refused;           /* out: a huge page was refused for an exec fault */
} x86_level_req;

/*
 * KVM's kvm_mmu_hugepage_adjust + disallowed_hugepage_adjust: the largest
 * level the host mapping, the slot's lpage_info and dirty logging allow;
 * with NX huge pages an exec fault maps 4 KiB (marking its regions), and
 * any fault maps no larger than a region an exec fault marked.
 * mmu_lock held for reading.
 */
void x86_fault_level(const mv_x86_vm *vm, const mv_memslot *slot, uint64_t gfn, x86_level_req *req);

/*
 * KVM's update_gfn_disallow_lpage_count: add @delta to the disallow count
 * of every huge page holding @gfn (a user that needs the gfn mapped by
 * 4 KiB pages, as KVM's write tracking). mmu_lock held for writing.
 */
void x86_lpage_disallow_update(const mv_memslot *slot, uint64_t gfn, int delta);

/* Forget the NX marks of huge pages wholly inside [gfn_start, gfn_end) (their tables are gone). */
void x86_lpage_nx_clear(const mv_memslot *slot, uint64_t gfn_start, uint64_t gfn_end);

/* ---- rmap (rmap.c) ---- */

/* Record @sptep as the leaf mapping @gfn's page of @level (mmu_lock held, any mode). */
void x86_rmap_add(const mv_memslot *slot, uint64_t gfn, int level, mv_pte *sptep);

/*
 * Check the rmap of every slot against the EPT (tests; mmu_lock held for
 * writing or no fault running): every entry points to the present leaf of
 * its level that maps its page's host address, and every present leaf
 * inside a slot has its entry. true, or false with one sentence in @why.
 */
bool x86_rmap_check(mv_x86_vm *vm, char *why, size_t why_len);

#endif
