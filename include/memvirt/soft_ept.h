/*
 * x86 EPT paging structures of the software KVM, bit-exact with the Intel
 * SDM Vol. 3C ("The Extended Page Table Mechanism (EPT)": EPTP format,
 * EPT paging-structure entries, EPT misconfigurations, accessed and dirty
 * flags), built on the generic walker (memvirt/soft_pgtable.h), with KVM's
 * software SPTE bits.
 *
 * Levels use the walker's ARM-style numbering: 4-level EPT starts at level
 * 0 (PML4E, 512 GiB per entry) and ends at level 3 (PTE, 4 KiB); 5-level
 * EPT starts at level -1 (PML5E). Large pages: level 2 (2 MiB PDE) and
 * level 1 (1 GiB PDPTE). The output address of a leaf is the host address
 * of the page (DESIGN.md: pfn = hva >> 12).
 *
 * x86 does not need break-before-make: an entry is changed with one atomic
 * write (or a compare-and-swap in shared walks); a change that removes
 * rights or an output is followed by the INVEPT hook. A huge page is split
 * by building the full child table first and swapping it in atomically
 * (KVM's tdp_mmu_split_huge_page).
 */
#ifndef MEMVIRT_SOFT_EPT_H
#define MEMVIRT_SOFT_EPT_H

#include "memvirt/soft_pgtable.h"

/* ---- EPT paging-structure entries (SDM Vol. 3C, Tables "Format of an EPT ...") ---- */
#define MV_EPT_R            (1ull << 0)   /* read access */
#define MV_EPT_W            (1ull << 1)   /* write access */
#define MV_EPT_X            (1ull << 2)   /* execute (supervisor-mode execute with MBEC) */
#define MV_EPT_RWX          (MV_EPT_R | MV_EPT_W | MV_EPT_X)
#define MV_EPT_MT_SHIFT     3             /* leaf: EPT memory type, bits 5:3 */
#define MV_EPT_MT_MASK      (7ull << 3)
#define MV_EPT_MT_UC        0ull
#define MV_EPT_MT_WB        6ull
#define MV_EPT_IPAT         (1ull << 6)   /* leaf: ignore PAT memory type */
#define MV_EPT_LARGE        (1ull << 7)   /* PDPTE / PDE maps a 1 GiB / 2 MiB page */
#define MV_EPT_A            (1ull << 8)   /* accessed (EPTP[6] = 1) */
#define MV_EPT_D            (1ull << 9)   /* leaf: dirty (EPTP[6] = 1) */
#define MV_EPT_XU           (1ull << 10)  /* user-mode execute (MBEC) */
#define MV_EPT_ADDR_MASK    0x000ffffffffff000ull  /* bits 51:12 */
#define MV_EPT_SVE          (1ull << 63)  /* leaf: suppress #VE */

/* ---- KVM's software SPTE bits (arch/x86/kvm/mmu/spte.h) ---- */
#define MV_SPTE_HOST_WRITABLE (1ull << 57)  /* the host page may be written */
#define MV_SPTE_MMU_WRITABLE  (1ull << 58)  /* only write-protected for dirty logging: the fast path may restore W */
/*
 * MMIO SPTE: an EPT misconfiguration (W=1 with R=0, SDM "EPT
 * Misconfigurations") that caches "this gfn is MMIO" with the memslot
 * generation: generation bits 0..7 in SPTE bits 3..10 and bits 8..18 in
 * SPTE bits 52..62; the gfn in bits 51:12.
 */
#define MV_SPTE_MMIO_VALUE    (MV_EPT_W | MV_EPT_X)
#define MV_SPTE_MMIO_GEN_BITS 19
/* KVM's frozen (REMOVED_SPTE) marker: a non-present value that walkers back off from. */
#define MV_SPTE_FROZEN        0x5a0ull

/* ---- EPTP (SDM Vol. 3C "Extended-Page-Table Pointer (EPTP)") ---- */
#define MV_EPTP_MT_WB        6ull         /* bits 2:0: memory type of the walk */
#define MV_EPTP_PWL_SHIFT    3            /* bits 5:3: page-walk length - 1 */
#define MV_EPTP_AD           (1ull << 6)  /* bit 6: accessed/dirty flags enabled */

/* Leaf SPTE for a present mapping of host page @hpa with rights @rwx (MV_EPT_*). */
mv_pte mv_ept_leaf(uint64_t hpa, unsigned rwx, int level, bool host_writable, bool ad);
/* MMIO SPTE for @gfn tagged with memslot generation @gen (low 19 bits kept). */
mv_pte mv_ept_mmio_spte(uint64_t gfn, uint64_t gen);
bool mv_ept_is_mmio_spte(mv_pte spte);
uint64_t mv_ept_mmio_spte_gen(mv_pte spte);
uint64_t mv_ept_mmio_spte_gfn(mv_pte spte);
/* Present in the EPT sense (any of R/W/X), i.e. not MMIO / frozen / zero. */
bool mv_ept_is_present(mv_pte spte);
/*
 * Does @spte, as a leaf at @level, cause an EPT misconfiguration (SDM:
 * W without R, X-only where not supported, reserved memory type 2/3/7, or
 * reserved bits)? MMIO SPTEs do by design.
 */
bool mv_ept_is_misconfig(mv_pte spte, int level);

/* INVEPT single-context for [gpa, gpa + size) of this EPT. */
typedef void (*mv_ept_invept_fn)(void *arg, uint64_t gpa, uint64_t size);

typedef struct mv_ept {
	mv_pgt pgt;
	unsigned levels;          /* 4 or 5 */
	bool ad;                  /* EPTP[6]: the CPU sets A/D */
	mv_ept_invept_fn invept;
	void *invept_arg;
	uint64_t nr_invept;       /* atomic */
} mv_ept;

/* 4- or 5-level EPT (52-bit / 57-bit GPA input). 0, -EINVAL, -ENOMEM. */
int mv_ept_init(mv_ept *ept, unsigned levels, bool ad, const mv_pgt_mm_ops *mm, void *mm_arg,
		mv_ept_invept_fn invept, void *invept_arg);
void mv_ept_destroy(mv_ept *ept);
/* The EPTP: WB walk type, page-walk length, A/D bit, PML4/PML5 address. */
uint64_t mv_ept_eptp(const mv_ept *ept);

/*
 * Install @spte (a leaf from mv_ept_leaf or an MMIO SPTE) for @gpa at
 * @level, creating tables on the way (counted by @tables_created when not
 * NULL). Shared walks install with compare-and-swap: MV_PGT_AGAIN when the
 * entry changed (or is frozen), MV_PGT_EXISTS when a huge page covers a
 * smaller target or a table is where a huge page should go. Exclusive
 * walks replace what is there (freeing tables below).
 */
mv_pgt_result mv_ept_install(mv_ept *ept, uint64_t gpa, int level, mv_pte spte,
			     unsigned walk_flags, unsigned *tables_created);
/* Zap [gpa, gpa + size): leaves and MMIO SPTEs cleared, emptied tables freed, INVEPT. */
mv_pgt_result mv_ept_zap(mv_ept *ept, uint64_t gpa, uint64_t size);
/*
 * Clear W (keeping MV_SPTE_MMU_WRITABLE, so the fast path may restore it)
 * on present leaves in the range; INVEPT when anything changed. Returns
 * true if anything changed.
 */
bool mv_ept_wrprotect(mv_ept *ept, uint64_t gpa, uint64_t size);
/* Split every huge page in the range down to 4 KiB (tables built first, swapped in). */
mv_pgt_result mv_ept_split(mv_ept *ept, uint64_t gpa, uint64_t size);
/* Was any leaf in the range accessed (A, or present when A/D is off)? Clear A with @clear. */
bool mv_ept_test_clear_young(mv_ept *ept, uint64_t gpa, uint64_t size, bool clear);
/* Leaf (or MMIO SPTE) covering @gpa and its level; 0 when none. */
mv_pgt_result mv_ept_get_leaf(mv_ept *ept, uint64_t gpa, mv_pte *spte, int *level);
/* Pointer to the leaf entry covering @gpa (for the lock-free fast path), or NULL. */
mv_pte *mv_ept_leaf_ptep(mv_ept *ept, uint64_t gpa, int *level);

typedef struct mv_ept_stats {
	uint64_t leaves[4];       /* present leaves per level 0..3 (1 = 1G, 2 = 2M, 3 = 4K) */
	uint64_t mmio_sptes;
	uint64_t tables;
	uint64_t invept;
} mv_ept_stats;
void mv_ept_get_stats(mv_ept *ept, mv_ept_stats *st);

#endif
