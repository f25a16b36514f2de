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
 *
 * The SPTE values are those of KVM's TDP MMU (arch/x86/kvm/mmu/spte.c,
 * make_spte / make_nonleaf_spte with kvm_mmu_set_ept_masks): leaves carry
 * the WB memory type with IPAT (vmx_get_mt_mask for RAM without
 * non-coherent DMA), A (and D when writable) when A/D flags are enabled,
 * else KVM's "A/D disabled" marker; table entries are R|W|X plus A (the
 * CPU sets A on every entry it uses, SDM "Accessed and Dirty Flags for
 * EPT"). This soft CPU supports execute-only translations
 * (IA32_VMX_EPT_VPID_CAP bit 0 = 1), 2 MiB and 1 GiB pages, and neither
 * mode-based execute control (MBEC: bit 10 is ignored) nor EPT-violation
 * #VE (bit 63, SVE, is ignored).
 *
 * Locking: lookups and walks with MV_PGT_WALK_SHARED (mv_ept_install) run
 * under the VM's mmu_lock held for reading; every other operation needs
 * it for writing, but tolerates a concurrent lock-free fast path that
 * changes a present leaf into another present leaf with a compare-and-swap
 * (W and A are cleared with CAS loops, a split re-reads and rebuilds).
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
#define MV_EPT_MT_UC        0ull          /* memory types 2, 3 and 7 are reserved */
#define MV_EPT_MT_WB        6ull
#define MV_EPT_IPAT         (1ull << 6)   /* leaf: ignore PAT memory type */
#define MV_EPT_LARGE        (1ull << 7)   /* PDPTE / PDE maps a 1 GiB / 2 MiB page */
#define MV_EPT_A            (1ull << 8)   /* accessed (EPTP[6] = 1) */
#define MV_EPT_D            (1ull << 9)   /* leaf: dirty (EPTP[6] = 1) */
#define MV_EPT_XU           (1ull << 10)  /* user-mode execute (MBEC) */
#define MV_EPT_ADDR_MASK    0x000ffffffffff000ull  /* bits 51:12 (N-1:12 used, 51:N reserved) */
#define MV_EPT_SVE          (1ull << 63)  /* leaf: suppress #VE */

/* ---- KVM's software SPTE bits (arch/x86/kvm/mmu/spte.h), in bits EPT ignores ---- */
#define MV_SPTE_MMU_PRESENT   (1ull << 11)  /* SPTE_MMU_PRESENT_MASK: every leaf and table SPTE */
#define MV_SPTE_AD_DISABLED   (1ull << 52)  /* SPTE_TDP_AD_DISABLED: A/D flags off (EPTP[6] = 0) */
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
#define MV_SPTE_MMIO_GEN_LOW_SHIFT  3    /* generation bits 7:0 -> SPTE bits 10:3 */
#define MV_SPTE_MMIO_GEN_HIGH_SHIFT 52   /* generation bits 18:8 -> SPTE bits 62:52 */
/* KVM's frozen (REMOVED_SPTE) marker: a non-present value that walkers back off from. */
#define MV_SPTE_FROZEN        0x5a0ull

/* ---- EPTP (SDM Vol. 3C "Extended-Page-Table Pointer (EPTP)") ---- */
#define MV_EPTP_MT_WB        6ull         /* bits 2:0: memory type of the walk */
#define MV_EPTP_PWL_SHIFT    3            /* bits 5:3: page-walk length - 1 */
#define MV_EPTP_AD           (1ull << 6)  /* bit 6: accessed/dirty flags enabled */
/* Bits N-1:12: the PML4 / PML5 table's address. */

/*
 * Leaf SPTE for a present mapping of host page @hpa (bits 51:12 kept; it
 * must be aligned to @level's page size for mv_ept_install) at @level
 * (1: 1 GiB, 2: 2 MiB, 3: 4 KiB) with rights @rwx (MV_EPT_R/W/X), as
 * KVM's make_spte builds it: MV_SPTE_MMU_PRESENT, WB memory type, IPAT,
 * LARGE above level 3, A when @ad (else MV_SPTE_AD_DISABLED),
 * MV_SPTE_HOST_WRITABLE when @host_writable; W is granted only when
 * @host_writable and then comes with MV_SPTE_MMU_WRITABLE and, when @ad,
 * D. (KVM's NX-huge-page policy is the caller's: pass no X.)
 */
mv_pte mv_ept_leaf(uint64_t hpa, unsigned rwx, int level, bool host_writable, bool ad);
/*
 * MMIO SPTE for @gfn (bits 39:0 kept: SPTE bits 51:12) tagged with
 * memslot generation @gen (low 19 bits kept), KVM's make_mmio_spte for
 * EPT (no L1TF gfn relocation: this soft CPU is not affected).
 */
mv_pte mv_ept_mmio_spte(uint64_t gfn, uint64_t gen);
/* Bits 2:0 = 110b (write/execute): KVM's is_mmio_spte for EPT. */
bool mv_ept_is_mmio_spte(mv_pte spte);
/* The 19-bit memslot generation an MMIO SPTE carries (get_mmio_spte_generation). */
uint64_t mv_ept_mmio_spte_gen(mv_pte spte);
/* The gfn an MMIO SPTE caches (bits 51:12). */
uint64_t mv_ept_mmio_spte_gfn(mv_pte spte);
/* Maps something: any of R/W/X set, and not an MMIO SPTE (so not frozen / zero either). */
bool mv_ept_is_present(mv_pte spte);
/*
 * Does @spte, an entry at @level (-1..3; a leaf at level 3 or with LARGE,
 * else a table entry), cause an EPT misconfiguration (SDM "EPT
 * Misconfigurations")? Only present entries (bits 2:0 not 000b) can:
 * bits 2:0 = 010b or 110b (W without R: MMIO SPTEs by design); a reserved
 * bit (PML5E / PML4E bits 7:3 -- so LARGE there --, table PDPTE / PDE
 * bits 6:3, 1 GiB PDPTE bits 29:12, 2 MiB PDE bits 20:12); a leaf whose
 * memory type (bits 5:3) is 2, 3 or 7. Not misconfigurations here:
 * execute-only (100b, supported); bits 51:N beyond MAXPHYADDR are not
 * checked (this model takes N = 52: its output addresses are host
 * virtual addresses, far below).
 */
bool mv_ept_is_misconfig(mv_pte spte, int level);

/* INVEPT single-context for [gpa, gpa + size) of this EPT. */
typedef void (*mv_ept_invept_fn)(void *arg, uint64_t gpa, uint64_t size);

/* One EPT (the VM's TDP root) and its INVEPT hook. */
typedef struct mv_ept {
	mv_pgt pgt;               /* the walker's view: root_pa is the PML4 / PML5 table */
	unsigned levels;          /* 4 or 5 */
	bool ad;                  /* EPTP[6]: the CPU sets A/D */
	mv_ept_invept_fn invept;
	void *invept_arg;
	uint64_t nr_invept;       /* INVEPTs made (or due, with a NULL hook); atomic */
} mv_ept;

/*
 * 4- or 5-level EPT (48-bit / 57-bit GPA input) with A/D flags when @ad,
 * tables from @mm (mv_pgt_pool_mm_ops() with the pool as @mm_arg, for
 * instance). @invept may be NULL (calls are still counted in nr_invept).
 * 0, -EINVAL (levels not 4 or 5), -ENOMEM.
 */
int mv_ept_init(mv_ept *ept, unsigned levels, bool ad, const mv_pgt_mm_ops *mm, void *mm_arg,
		mv_ept_invept_fn invept, void *invept_arg);
/* Free every table page (no INVEPT: the VM is going away). */
void mv_ept_destroy(mv_ept *ept);
/* The EPTP: WB walk type, page-walk length - 1 (3 or 4), A/D bit, PML4/PML5 address. */
uint64_t mv_ept_eptp(const mv_ept *ept);

/*
 * mv_ept_install flag (with the MV_PGT_WALK_* ones): fill only an entry
 * that maps nothing (0 or an MMIO SPTE); a present leaf at the target is
 * kept as it is and the call returns MV_PGT_EXISTS (KVM's prefetch skips
 * present SPTEs).
 */
#define MV_EPT_INSTALL_ABSENT (1u << 16)

/*
 * Install @spte (a leaf from mv_ept_leaf or an MMIO SPTE) for @gpa at
 * @level (1..3), creating tables on the way; *@tables_created (when not
 * NULL) is set to the number of tables this call linked, splits included.
 * MV_PGT_RANGE when @gpa is not aligned to the level's size or beyond the
 * GPA size, the level is not 1..3, or @spte is neither an MMIO SPTE nor a
 * present leaf for that level (LARGE exactly above level 3, output
 * aligned).
 *
 * Shared walks (@walk_flags MV_PGT_WALK_SHARED) only compare-and-swap:
 * MV_PGT_AGAIN when an entry changed under them (or is MV_SPTE_FROZEN);
 * MV_PGT_EXISTS when a present huge page covers a smaller target, a table
 * is where a huge page should go, or a present leaf at the target maps
 * another page or size (KVM never replaces one present PFN by another
 * without a zap). A present leaf with the same output is replaced (rights
 * change); a non-present entry (0 or MMIO) above the target gets a new
 * table. Exclusive walks replace what is there: a huge page above the
 * target is split (its other pages stay mapped), a table at the target is
 * freed with everything below it. Any removal of rights or of an output is
 * followed by one INVEPT of the entry's range (before tables are freed).
 * @walk_flags: MV_PGT_WALK_SHARED and MV_EPT_INSTALL_ABSENT.
 */
mv_pgt_result mv_ept_install(mv_ept *ept, uint64_t gpa, int level, mv_pte spte,
			     unsigned walk_flags, unsigned *tables_created);
/*
 * Zap [gpa, gpa + size) (KVM's tdp_mmu_zap_leafs): present leaves and
 * MMIO SPTEs cleared -- a huge page the range covers only in part is
 * zapped whole, as KVM does --, tables left empty freed. One INVEPT of
 * everything removed (present leaves and tables; MMIO SPTEs are never
 * cached), issued before any table is freed (in batches for huge zaps).
 * MV_PGT_OK, MV_PGT_RANGE, MV_PGT_AGAIN (an MV_SPTE_FROZEN entry: only a
 * misuse of the lock can leave one).
 */
mv_pgt_result mv_ept_zap(mv_ept *ept, uint64_t gpa, uint64_t size);
/*
 * Clear W (keeping MV_SPTE_MMU_WRITABLE, so the fast path may restore it)
 * on present leaves in the range -- a huge page covered in part is
 * protected whole (KVM's wrprot_gfn_range) --; one INVEPT when anything
 * changed. Returns true if anything changed.
 */
bool mv_ept_wrprotect(mv_ept *ept, uint64_t gpa, uint64_t size);
/*
 * Split every present huge page in the range down to 4 KiB (a 1 GiB page
 * covered in part keeps 2 MiB pages outside the range). Each child table
 * is built complete -- 512 entries with the same rights, memory type, A/D
 * and software bits -- before one atomic swap (KVM's
 * tdp_mmu_split_huge_page), then one INVEPT for the whole call (KVM skips
 * it since the translations are identical; flushing keeps no TLB entry
 * larger than the table's). MV_PGT_NOMEM leaves the unsplit pages mapped.
 */
mv_pgt_result mv_ept_split(mv_ept *ept, uint64_t gpa, uint64_t size);
/*
 * Was any present leaf in the range accessed: A set with A/D flags, or
 * simply present without (KVM's age_gfn_range)? With @clear, A is cleared
 * (then one INVEPT, so the CPU sets it again); without A/D flags, young
 * leaves are zapped instead (KVM marks them for access tracking, which
 * this model does not have; the next access faults them back in) and
 * tables left empty are freed, as mv_ept_zap does.
 */
bool mv_ept_test_clear_young(mv_ept *ept, uint64_t gpa, uint64_t size, bool clear);
/*
 * Leaf (or MMIO SPTE) covering @gpa and its level; 0 when none (frozen
 * entries included), the level where the walk ended. MV_PGT_OK,
 * MV_PGT_RANGE beyond the GPA size.
 */
mv_pgt_result mv_ept_get_leaf(mv_ept *ept, uint64_t gpa, mv_pte *spte, int *level);
/*
 * Pointer to the leaf entry (present or MMIO) covering @gpa and its level,
 * for the lock-free fast path's compare-and-swap; NULL when the walk ends
 * at a non-present entry. The pointer stays valid while no table is freed
 * (mv_ept_zap, an exclusive mv_ept_install over a table, test_clear_young
 * without A/D, mv_ept_destroy): the caller must keep those out (KVM uses
 * RCU), e.g. by holding mmu_lock for reading.
 */
mv_pte *mv_ept_leaf_ptep(mv_ept *ept, uint64_t gpa, int *level);

typedef struct mv_ept_stats {
	uint64_t leaves[4];       /* present leaves per level 0..3 (1 = 1G, 2 = 2M, 3 = 4K) */
	uint64_t mmio_sptes;
	uint64_t tables;          /* table pages below the root */
	uint64_t invept;          /* nr_invept */
} mv_ept_stats;
/* Count by walking the whole table (exclusive: mmu_lock for writing, or quiescent). */
void mv_ept_get_stats(mv_ept *ept, mv_ept_stats *st);

#endif
