/*
 * Stage-1 tables written into guest memory for scripts (s1map): VMSAv8-64
 * descriptors, 4 KiB granule (ARM ARM D8.3 "Translation table descriptor
 * formats"), with the table pages taken from the script's s1pool.
 */
#include <errno.h>
#include <string.h>

#include "mmu_s1.h"

/* Stage-1 descriptor fields (ARM ARM D8.3.1 table, D8.3.2 block and page descriptors). */
#define S1_VALID      (1ull << 0)            /* bit[0] */
#define S1_TABLE      (1ull << 1)            /* bit[1]: table (levels 0-2) or page (level 3) */
#define S1_AP_SHIFT   6                      /* AP[2:1], bits[7:6] */
#define S1_SH_INNER   (3ull << 8)            /* SH[1:0] = 0b11 Inner Shareable */
#define S1_AF         (1ull << 10)           /* Access Flag */
#define S1_PXN        (1ull << 53)           /* Privileged execute-never */
#define S1_UXN        (1ull << 54)           /* Unprivileged execute-never */
#define S1_OA_MASK    0x0000fffffffff000ull  /* OA / next-level table address, bits[47:12] */

/* TCR_EL1 fields (ARM ARM D17.2 TCR_EL1). */
#define TCR_T0SZ(v)   ((v) & 0x3f)           /* T0SZ, bits[5:0] */
#define TCR_TG0(v)    (((v) >> 14) & 3)      /* TG0, bits[15:14]: 0b00 = 4 KiB */
#define TCR_T1SZ(v)   (((v) >> 16) & 0x3f)   /* T1SZ, bits[21:16] */
#define TCR_TG1(v)    (((v) >> 30) & 3)      /* TG1, bits[31:30]: 0b10 = 4 KiB */
#define TCR_TG0_4K    0u
#define TCR_TG1_4K    2u
/* IRGN/ORGN = 0b01 (write-back write-allocate), SH = 0b11, for TTBR0 [13:8] and TTBR1 [29:24]. */
#define TCR_WALK_WB   ((0x35ull << 8) | (0x35ull << 24))
#define TCR_IPS_SHIFT 32                     /* IPS, bits[34:32] */
/* TTBRn_EL1.BADDR for a 4 KiB-aligned table, bits[47:12]. */
#define TTBR_BADDR    S1_OA_MASK

#define GRANULE 4096u

uint64_t mmu_s1_default_tcr(unsigned ia_bits)
{
	static const unsigned ips_bits[] = { 32, 36, 40, 42, 44, 48 };
	uint64_t ips = 0;

	while (ips < 5 && ips_bits[ips] < ia_bits)
		ips++;
	return 16 | (16ull << 16) | ((uint64_t)TCR_TG1_4K << 30) | TCR_WALK_WB |
	       (ips << TCR_IPS_SHIFT);
}

/* A zeroed table page from the pool; false with a sentence in @err. */
static bool pool_page(mmu_s1_pool *pool, mmu_guest_ptr_fn ptr, void *arg, uint64_t *ipa,
		      mv_error *err)
{
	void *page;

	if (pool->used + GRANULE > pool->size) {
		mv_error_set(err, -ENOSPC, "the s1pool (%llu KiB at IPA 0x%llx) is full",
			     (unsigned long long)pool->size >> 10, (unsigned long long)pool->ipa);
		return false;
	}
	*ipa = pool->ipa + pool->used;
	page = ptr(arg, *ipa, GRANULE);
	if (!page) {
		mv_error_set(err, -EINVAL, "no memslot holds s1pool page 0x%llx",
			     (unsigned long long)*ipa);
		return false;
	}
	memset(page, 0, GRANULE);
	pool->used += GRANULE;
	return true;
}

/* The entry for @va in the table at @table_ipa (level @level, @entries of them). */
static uint64_t *entry(mmu_guest_ptr_fn ptr, void *arg, uint64_t table_ipa, uint64_t va,
		       int level, uint64_t entries)
{
	unsigned shift = 12 + 9 * (3 - level);

	return ptr(arg, table_ipa + 8 * ((va >> shift) & (entries - 1)), 8);
}

/* Leaf descriptor for @m's attributes, output @ipa, at @level. */
static uint64_t leaf(const mmu_line *m, uint64_t ipa, int level)
{
	return (ipa & S1_OA_MASK) | S1_VALID | (level == 3 ? S1_TABLE : 0) |
	       ((uint64_t)m->s1map.ap << S1_AP_SHIFT) | S1_SH_INNER | (m->s1map.af ? S1_AF : 0) |
	       (m->s1map.pxn ? S1_PXN : 0) | (m->s1map.uxn ? S1_UXN : 0);
}

/* Which TTBR translates @va and how many VA bits it has; false with a sentence. */
static bool select_ttbr(mv_a64_sysregs *sys, uint64_t va, uint64_t **ttbr, unsigned *va_bits,
			mv_error *err)
{
	unsigned t0 = 64 - TCR_T0SZ(sys->tcr_el1), t1 = 64 - TCR_T1SZ(sys->tcr_el1);
	bool low = !(va >> t0), granule_ok;

	if (t0 == 64 || t1 == 64 || t0 < 25 || t1 < 25) {
		mv_error_set(err, -EINVAL, "TCR_EL1 0x%llx gives a VA size s1map does not build "
			     "tables for (T0SZ/T1SZ must be 16 to 39)",
			     (unsigned long long)sys->tcr_el1);
		return false;
	}
	if (!low && (~va >> t1)) {
		mv_error_set(err, -EINVAL, "VA 0x%llx is in neither the TTBR0_EL1 (%u-bit) nor the "
			     "TTBR1_EL1 (%u-bit) range", (unsigned long long)va, t0, t1);
		return false;
	}
	*ttbr = low ? &sys->ttbr0_el1 : &sys->ttbr1_el1;
	*va_bits = low ? t0 : t1;
	granule_ok = low ? TCR_TG0(sys->tcr_el1) == TCR_TG0_4K : TCR_TG1(sys->tcr_el1) == TCR_TG1_4K;
	if (!granule_ok)
		mv_error_set(err, -EINVAL, "TCR_EL1.%s does not select the 4 KiB granule s1map "
			     "builds tables for", low ? "TG0" : "TG1");
	return granule_ok;
}

static int map_one(mmu_s1_pool *pool, mv_a64_sysregs *sys, const mmu_line *m, uint64_t va,
		   uint64_t ipa, mmu_guest_ptr_fn ptr, void *arg, mv_error *err)
{
	int leaf_level = m->s1map.block == GRANULE ? 3 : m->s1map.block == (2u << 20) ? 2 : 1;
	uint64_t *ttbr, table, entries;
	unsigned va_bits;
	int start;

	if (!select_ttbr(sys, va, &ttbr, &va_bits, err))
		return err->code;
	/* Each level resolves 9 bits above the 12-bit page offset. */
	start = 4 - (int)((va_bits - 12 + 8) / 9);
	if (leaf_level < start)
		return mv_error_set(err, -EINVAL, "a %s block needs a walk starting at level %d or "
				    "below, and %u-bit VAs start at level %d",
				    leaf_level == 1 ? "1G" : "2M", leaf_level, va_bits, start);
	if (!(*ttbr & TTBR_BADDR)) {
		if (!pool_page(pool, ptr, arg, &table, err))
			return err->code;
		*ttbr |= table;
	}
	table = *ttbr & TTBR_BADDR;
	entries = 1ull << (va_bits - (12 + 9 * (3 - start)));
	for (int level = start;; level++, entries = 512) {
		uint64_t *e = entry(ptr, arg, table, va, level, entries), d;

		if (!e)
			return mv_error_set(err, -EINVAL, "no memslot holds the level-%d table at "
					    "IPA 0x%llx", level, (unsigned long long)table);
		d = *e;
		if (level == leaf_level) {
			if (level < 3 && (d & (S1_VALID | S1_TABLE)) == (S1_VALID | S1_TABLE))
				return mv_error_set(err, -EINVAL, "VA 0x%llx is already mapped by a "
						    "level-%d table, not a block",
						    (unsigned long long)va, level + 1);
			*e = leaf(m, ipa, level);
			return 0;
		}
		if (!(d & S1_VALID)) {
			if (!pool_page(pool, ptr, arg, &table, err))
				return err->code;
			*e = table | S1_VALID | S1_TABLE;
			continue;
		}
		if (!(d & S1_TABLE))
			return mv_error_set(err, -EINVAL, "VA 0x%llx is already inside a level-%d "
					    "block", (unsigned long long)va, level);
		table = d & S1_OA_MASK;
	}
}

int mmu_s1_map(mmu_s1_pool *pool, mv_a64_sysregs *sys, const mmu_line *m, mmu_guest_ptr_fn ptr,
	       void *arg, mv_error *err)
{
	for (uint64_t i = 0; i < m->s1map.count; i++) {
		uint64_t off = i * m->s1map.block;
		int ret = map_one(pool, sys, m, m->s1map.va + off, m->s1map.ipa + off, ptr, arg, err);

		if (ret)
			return ret;
	}
	return 0;
}
