/*
 * EPT entries as values: KVM's leaf and MMIO SPTEs for EPT
 * (arch/x86/kvm/mmu/spte.c make_spte, make_mmio_spte; spte.h MMIO
 * generation layout) and the SDM's misconfiguration rules (Vol. 3C "EPT
 * Misconfigurations", with the reserved bits of the tables "Format of an
 * EPT PML4 Entry ..." through "... Page-Table Entry that Maps a 4-KByte
 * Page").
 */
#include "ept_internal.h"

/* Generation bits 7:0 and 18:8 (KVM MMIO_SPTE_GEN_LOW/HIGH). */
#define GEN_LOW_BITS 8
#define GEN_LOW_MASK ((1ull << GEN_LOW_BITS) - 1)
#define GEN_HIGH_MASK ((1ull << (MV_SPTE_MMIO_GEN_BITS - GEN_LOW_BITS)) - 1)

/* Reserved bits of present entries (SDM Vol. 3C, EPT entry format tables). */
#define RSVD_PML4E (0x1full << 3)            /* PML5E / PML4E: bits 7:3 */
#define RSVD_TABLE (0xfull << 3)             /* PDPTE / PDE referencing a table: bits 6:3 */
#define RSVD_1G (((1ull << 30) - 1) & ~0xfffull)   /* PDPTE mapping 1 GiB: bits 29:12 */
#define RSVD_2M (((1ull << 21) - 1) & ~0xfffull)   /* PDE mapping 2 MiB: bits 20:12 */

mv_pte mv_ept_leaf(uint64_t hpa, unsigned rwx, int level, bool host_writable, bool ad)
{
	mv_pte spte = MV_SPTE_MMU_PRESENT | (hpa & MV_EPT_ADDR_MASK) |
		      (MV_EPT_MT_WB << MV_EPT_MT_SHIFT) | MV_EPT_IPAT;

	spte |= rwx & (MV_EPT_R | MV_EPT_X);
	if (level < EPT_LEAF_LEVEL)
		spte |= MV_EPT_LARGE;
	spte |= ad ? MV_EPT_A : MV_SPTE_AD_DISABLED;
	if (!host_writable)
		return spte;
	spte |= MV_SPTE_HOST_WRITABLE;
	if (rwx & MV_EPT_W) {
		spte |= MV_EPT_W | MV_SPTE_MMU_WRITABLE;
		/* make_spte marks a writable SPTE dirty up front: no D-bit write on the first store. */
		if (ad)
			spte |= MV_EPT_D;
	}
	return spte;
}

mv_pte mv_ept_mmio_spte(uint64_t gfn, uint64_t gen)
{
	mv_pte spte = MV_SPTE_MMIO_VALUE | ((gfn << 12) & MV_EPT_ADDR_MASK);

	spte |= (gen & GEN_LOW_MASK) << MV_SPTE_MMIO_GEN_LOW_SHIFT;
	spte |= ((gen >> GEN_LOW_BITS) & GEN_HIGH_MASK) << MV_SPTE_MMIO_GEN_HIGH_SHIFT;
	return spte;
}

bool mv_ept_is_mmio_spte(mv_pte spte)
{
	return (spte & MV_EPT_RWX) == MV_SPTE_MMIO_VALUE;
}

uint64_t mv_ept_mmio_spte_gen(mv_pte spte)
{
	return ((spte >> MV_SPTE_MMIO_GEN_LOW_SHIFT) & GEN_LOW_MASK) |
	       (((spte >> MV_SPTE_MMIO_GEN_HIGH_SHIFT) & GEN_HIGH_MASK) << GEN_LOW_BITS);
}

uint64_t mv_ept_mmio_spte_gfn(mv_pte spte)
{
	return (spte & MV_EPT_ADDR_MASK) >> 12;
}

bool mv_ept_is_present(mv_pte spte)
{
	return (spte & MV_EPT_RWX) && !mv_ept_is_mmio_spte(spte);
}

/* Memory types 2, 3 and 7 are reserved (SDM "EPT and Memory Typing"). */
static bool mt_reserved(mv_pte spte)
{
	uint64_t mt = (spte & MV_EPT_MT_MASK) >> MV_EPT_MT_SHIFT;

	return mt == 2 || mt == 3 || mt == 7;
}

bool mv_ept_is_misconfig(mv_pte spte, int level)
{
	/* Not present (bits 2:0 = 000b): an EPT violation, never a misconfiguration. */
	if (!(spte & MV_EPT_RWX))
		return false;
	/* 010b (write-only) and 110b (write/execute). Execute-only (100b) is supported. */
	if ((spte & MV_EPT_W) && !(spte & MV_EPT_R))
		return true;
	if (level <= 0)
		return spte & RSVD_PML4E;
	if (level < EPT_LEAF_LEVEL && !(spte & MV_EPT_LARGE))
		return spte & RSVD_TABLE;
	if (level == 1 && (spte & RSVD_1G))
		return true;
	if (level == 2 && (spte & RSVD_2M))
		return true;
	return mt_reserved(spte);
}
