/*
 * ARMv8 stage-2 translation tables of the software KVM, bit-exact with the
 * ARM Architecture Reference Manual (DDI 0487, "VMSAv8-64 translation
 * table format descriptors" and "Stage 2 memory region attributes"), built
 * on the generic walker (memvirt/soft_pgtable.h).
 *
 * The output address of a leaf is a host address: the HVA of guest RAM
 * (DESIGN.md: pfn = hva >> 12), so an access can be performed directly.
 *
 * Every change of a valid entry to another valid entry with a different
 * output address, size or memory type uses break-before-make: the entry is
 * made invalid, the TLBs are invalidated for its IPA range, then the new
 * entry is written (ARM ARM "Using break-before-make when updating
 * translation table entries"). Permission and access-flag-only changes are
 * written in place (the architecture allows it) followed by a TLB
 * invalidation when they remove rights. In shared walks the broken entry
 * holds MV_S2_PTE_LOCKED so concurrent walkers back off (MV_PGT_AGAIN).
 */
#ifndef MEMVIRT_SOFT_STAGE2_H
#define MEMVIRT_SOFT_STAGE2_H

#include "memvirt/soft_pgtable.h"

/* ---- Descriptor fields (ARM ARM D8.3, stage 2, 4/16/64 KiB granules) ---- */
#define MV_S2_VALID          (1ull << 0)       /* bit[0] */
#define MV_S2_TYPE_TABLE     (1ull << 1)       /* bit[1]: table (level < 3) / page (level 3) */
#define MV_S2_MEMATTR_SHIFT  2                 /* MemAttr[3:0], bits[5:2] */
#define MV_S2_MEMATTR_MASK   (0xfull << 2)
#define MV_S2_MEMATTR_DEVICE_nGnRE 0x1ull      /* 0b0001 */
#define MV_S2_MEMATTR_NORMAL_WB    0xfull      /* 0b1111: Outer/Inner Write-Back */
#define MV_S2_S2AP_SHIFT     6                 /* S2AP[1:0], bits[7:6] */
#define MV_S2_S2AP_MASK      (0x3ull << 6)
#define MV_S2_S2AP_R         (1ull << 6)       /* S2AP[0]: read */
#define MV_S2_S2AP_W         (1ull << 7)       /* S2AP[1]: write */
#define MV_S2_SH_SHIFT       8                 /* SH[1:0], bits[9:8] */
#define MV_S2_SH_MASK        (0x3ull << 8)
#define MV_S2_SH_INNER       (0x3ull << 8)     /* 0b11 Inner Shareable */
#define MV_S2_AF             (1ull << 10)      /* bit[10] Access Flag */
#define MV_S2_CONT           (1ull << 52)      /* bit[52] Contiguous hint */
#define MV_S2_XN             (1ull << 54)      /* XN[1] bit[54]: execute never (XN[0], bit 53, with FEAT_XNX) */
#define MV_S2_XN_MASK        (3ull << 53)
#define MV_S2_SW_MASK        (0xfull << 55)    /* bits[58:55] reserved for software */
/* Output address bits[47:g] for granule g (4 KiB: [47:12]). */
#define MV_S2_OA_MASK(gshift) ((((1ull << 48) - 1) >> (gshift)) << (gshift))
/* Invalid entries carrying an annotation (bit[0] = 0; never walked by hardware). */
#define MV_S2_OWNER_SHIFT    2                 /* owner id, bits[9:2] (pKVM) */
#define MV_S2_OWNER_MASK     (0xffull << 2)
#define MV_S2_PTE_LOCKED     (1ull << 10)      /* being updated by a shared walk (BBM) */

/* Protections a mapping can be asked for (translated to S2AP/XN/MemAttr). */
enum {
	MV_S2_PROT_R = 1u << 0,
	MV_S2_PROT_W = 1u << 1,
	MV_S2_PROT_X = 1u << 2,
	MV_S2_PROT_DEVICE = 1u << 3,  /* Device-nGnRE instead of Normal WB */
};

/*
 * Leaf attributes for @prot: MemAttr, S2AP, SH inner, AF set, XN unless X
 * (always XN with MV_S2_PROT_DEVICE: Linux refuses executable device maps).
 */
uint64_t mv_s2_prot_attr(unsigned prot);
/* Protections an attribute set grants (inverse of mv_s2_prot_attr, ignoring AF/SH). */
unsigned mv_s2_attr_prot(uint64_t attr);
/* Output address of a leaf / table descriptor. */
uint64_t mv_s2_pte_oa(mv_pte pte, unsigned granule_shift);

/* ---- VTCR_EL2 (ARM ARM D17.2 VTCR_EL2) ---- */
#define MV_VTCR_T0SZ_SHIFT 0    /* T0SZ, bits[5:0]: IPA size = 64 - T0SZ */
#define MV_VTCR_SL0_SHIFT  6    /* SL0, bits[7:6]: start level (granule-dependent) */
#define MV_VTCR_IRGN0_SHIFT 8
#define MV_VTCR_ORGN0_SHIFT 10
#define MV_VTCR_SH0_SHIFT  12
#define MV_VTCR_TG0_SHIFT  14   /* TG0, bits[15:14]: 00 4K, 01 64K, 10 16K */
#define MV_VTCR_PS_SHIFT   16   /* PS, bits[18:16]: output size 32/36/40/42/44/48/52 */
#define MV_VTCR_RES1       (1ull << 31)  /* bit[31] is RES1 */
#define MV_VTCR_DS         (1ull << 32)  /* DS, bit[32]: 52-bit descriptors (FEAT_LPA2) */
#define MV_VTCR_RGN_WBWA   1u   /* IRGN0/ORGN0 0b01: Write-Back Read-Allocate Write-Allocate */
#define MV_VTCR_SH_INNER   3u   /* SH0 0b11: Inner Shareable */

/* A decoded stage-2 configuration. */
typedef struct mv_s2_config {
	unsigned ia_bits;         /* 64 - T0SZ */
	unsigned granule_shift;   /* 12, 14, 16 */
	int start_level;          /* from SL0 and the granule */
	unsigned oa_bits;         /* from PS */
} mv_s2_config;

/*
 * Decode @vtcr. Rejects (-EINVAL, one sentence naming the field and value)
 * a reserved TG0 or PS, an IPA size outside 32..48 or above PS, and a
 * T0SZ/SL0 pair the ARM ARM gives as inconsistent (more than 16
 * concatenated start-level tables, or a start level that resolves no bits).
 */
int mv_vtcr_decode(uint64_t vtcr, mv_s2_config *out, mv_error *err);
/*
 * The checks of mv_vtcr_decode on a configuration (its sentences name the
 * VTCR_EL2 fields that would encode it). 0 or -EINVAL. This stage-2 has a
 * 48-bit PAMax and no FEAT_LPA / FEAT_LPA2 / FEAT_TTST: PS=52 bits, DS=1,
 * 4 KiB start level 3 and 16 KiB start level 0 are rejected.
 */
int mv_s2_config_check(const mv_s2_config *cfg, mv_error *err);
/*
 * VTCR_EL2 value for @cfg as KVM programs it: T0SZ, SL0, TG0, PS, IRGN0 =
 * ORGN0 = WBWA, SH0 = Inner Shareable, RES1 bit 31 (VS, HA, HD left 0).
 */
uint64_t mv_vtcr_encode(const mv_s2_config *cfg);
/*
 * KVM's choice for an IPA size: the start level that needs at most 16
 * concatenated tables (kvm_get_vtcr), PS = 48 bits. -EINVAL outside 32..48.
 */
int mv_s2_config_for_ipa(unsigned ia_bits, unsigned granule_shift, mv_s2_config *out);

/*
 * TLB maintenance after an entry stopped being valid or lost rights:
 * invalidate [ipa, ipa + size) of this VM (TLBI IPAS2E1IS + VMALLE1IS).
 */
typedef void (*mv_s2_tlbi_fn)(void *arg, uint64_t ipa, uint64_t size);

/* One stage-2 table and its TLB hook. */
typedef struct mv_s2_pgt {
	mv_pgt pgt;
	mv_s2_config cfg;
	mv_s2_tlbi_fn tlbi;
	void *tlbi_arg;
	uint64_t nr_bbm;          /* valid -> other valid changes made by BBM; atomic */
	uint64_t nr_tlbi;         /* tlbi calls (made or, with a NULL hook, due); atomic */
} mv_s2_pgt;

/*
 * Allocate the (possibly concatenated) root. Returns 0, -ENOMEM, or
 * -EINVAL when @cfg fails mv_s2_config_check. @tlbi may be NULL (no TLBs
 * to keep coherent).
 */
int mv_s2_init(mv_s2_pgt *s2, const mv_s2_config *cfg, const mv_pgt_mm_ops *mm, void *mm_arg,
	       mv_s2_tlbi_fn tlbi, void *tlbi_arg);
/* Free every table page (no TLBI: the VM is going away). */
void mv_s2_destroy(mv_s2_pgt *s2);

/*
 * Map [ipa, ipa + size) to [pa, pa + size) with leaf attributes @attr
 * (mv_s2_prot_attr or explicit bits), using at each address the largest
 * block that the alignment of ipa and pa, the remaining size and
 * @min_level allow (1 = up to 1 GiB blocks, 2 = up to 2 MiB, 3 = pages
 * only with a 4 KiB granule; 16 / 64 KiB granules have 32 / 512 MiB
 * blocks at level 2 only). An existing identical leaf is kept; a valid
 * leaf with other attributes only (same pa and size) is updated in place;
 * a different valid mapping (other pa, or a table where a block goes / a
 * block where a table goes) is replaced by break-before-make (tables
 * below it are freed), except in shared walks, which never remap live
 * memory (MV_PGT_EXISTS / MV_PGT_AGAIN, or mapping below a table; see
 * the details).
 *
 * Details: @ipa, @size and @pa must be granule multiples and pa + size fit
 * the output size (else MV_PGT_RANGE); only the leaf attribute bits of
 * @attr are used (MemAttr, S2AP, SH, AF, XN, software bits; never the
 * Contiguous hint). Changes of S2AP / AF / XN / software bits alone are
 * in place (TLBI when rights go); other changes use BBM. A block that the
 * range covers only in part is split (BBM) so the rest keeps its mapping,
 * unless it already maps the range exactly as asked (then kept). Shared
 * walks: a table where a block would go is descended into and the range
 * mapped with smaller leaves below it; a different valid leaf or block in
 * the way is MV_PGT_EXISTS; an entry holding MV_S2_PTE_LOCKED or a lost
 * compare-and-swap is MV_PGT_AGAIN (retry). MV_PGT_NOMEM when a table page
 * cannot be allocated: allocation precedes every change, so the table
 * stays consistent (possibly with the range partly mapped and an empty
 * table that unmap frees).
 */
mv_pgt_result mv_s2_map(mv_s2_pgt *s2, uint64_t ipa, uint64_t size, uint64_t pa, uint64_t attr,
			int min_level, unsigned walk_flags);
/*
 * Unmap [ipa, ipa + size): valid leaves cleared, each followed by a TLBI
 * of its range; annotations cleared; tables left empty freed (after a
 * TLBI of their range). A block covered in part is split first so its
 * other part stays mapped; with no memory for that, the whole block is
 * unmapped (always safe for a stage-2). MV_PGT_NOMEM only for an
 * annotation covered in part that cannot be split.
 */
mv_pgt_result mv_s2_unmap(mv_s2_pgt *s2, uint64_t ipa, uint64_t size);
/*
 * Clear S2AP[1] (write) on every valid leaf in the range, then one TLBI
 * covering the leaves that changed. A block covered in part is split first
 * (with no memory: protected whole, which is safe).
 */
mv_pgt_result mv_s2_wrprotect(mv_s2_pgt *s2, uint64_t ipa, uint64_t size);
/*
 * Add @prot (R/W/X) to the leaf covering @ipa and set AF; no TLBI needed
 * (a stale entry only faults again). MV_PGT_NOENT when no valid leaf;
 * MV_PGT_AGAIN when the entry is MV_S2_PTE_LOCKED or a shared walk's
 * compare-and-swap lost.
 */
mv_pgt_result mv_s2_relax_perms(mv_s2_pgt *s2, uint64_t ipa, unsigned prot, unsigned walk_flags);
/*
 * Set AF on the leaf covering @ipa (page or block); *pte gets the new value
 * (0 with MV_PGT_NOENT). Results as mv_s2_relax_perms.
 */
mv_pgt_result mv_s2_mkyoung(mv_s2_pgt *s2, uint64_t ipa, mv_pte *pte, unsigned walk_flags);
/*
 * Was any leaf in the range young (AF set)? With @mkold, clear AF on those
 * leaves (then one TLBI covering them, as kvm_age_gfn). AF is cleared by
 * compare-and-swap, so it may run concurrently with shared walks.
 */
bool mv_s2_test_clear_young(mv_s2_pgt *s2, uint64_t ipa, uint64_t size, bool mkold);
/*
 * Leaf covering @ipa (value 0 if none, or if the descriptor is not a valid
 * leaf for its level per the ARM ARM) and the level where the walk ended.
 */
mv_pgt_result mv_s2_get_leaf(mv_s2_pgt *s2, uint64_t ipa, mv_pte *pte, int *level);
/*
 * Split every block in the range into a table of next-level entries with
 * the same attributes, down to pages (BBM: block invalid, TLBI, table
 * installed). Returns MV_PGT_NOMEM with the range partly split (still a
 * correct mapping) when a table cannot be allocated.
 */
mv_pgt_result mv_s2_split(mv_s2_pgt *s2, uint64_t ipa, uint64_t size);
/*
 * Replace [ipa, ipa + size) by invalid entries annotated with @owner_id
 * (1..255; 0 clears annotations), unmapping what was there (pKVM's
 * host_stage2_set_owner). Annotated entries keep their table alive.
 * Annotations go at block levels where the range allows (as leaves do);
 * a block or annotation covered in part is split first. MV_PGT_RANGE for
 * an owner above 255, MV_PGT_NOMEM when a split cannot be allocated.
 * owner_id 0 is mv_s2_unmap.
 */
mv_pgt_result mv_s2_set_owner(mv_s2_pgt *s2, uint64_t ipa, uint64_t size, unsigned owner_id);

/* Statistics of a table, for tests and the scenario runner. */
typedef struct mv_s2_stats {
	uint64_t leaves[4];       /* valid leaves per level 0..3 */
	uint64_t tables;          /* table pages below the root */
	uint64_t bbm;             /* break-before-make sequences performed */
	uint64_t tlbi;            /* TLB invalidations issued */
} mv_s2_stats;
/* Count leaves and tables now; bbm/tlbi are cumulative. */
void mv_s2_get_stats(mv_s2_pgt *s2, mv_s2_stats *st);

#endif
