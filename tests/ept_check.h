/*
 * A deliberately naive reader of EPT paging structures for the tests: the
 * 8-byte entries are decoded by hand from the EPTP with their own index
 * arithmetic (SDM Vol. 3C "EPT Translation Mechanism"; nothing from
 * src/soft), plus the page-count invariant of the pool (1 + non-zero
 * entries per table page below the root).
 */
#ifndef MV_TESTS_EPT_CHECK_H
#define MV_TESTS_EPT_CHECK_H

#include "memvirt/soft_ept.h"

#include <stdbool.h>
#include <stdint.h>

#define EPTC_ADDR 0x000ffffffffff000ull      /* bits 51:12 */

/* GPA bits below a level's entries: PML5E 48, PML4E 39, PDPTE 30, PDE 21, PTE 12. */
static inline unsigned eptc_shift(int level)
{
	return 12 + 9 * (unsigned)(3 - level);
}

/* Entry index: the 9 GPA bits above the level's shift (bits 56:48 .. 20:12). */
static inline unsigned eptc_index(uint64_t gpa, int level)
{
	return (unsigned)(gpa >> eptc_shift(level)) & 511;
}

/* The first level of the walk from the EPTP's page-walk length (bits 5:3 = length - 1). */
static inline int eptc_first_level(uint64_t eptp)
{
	return 3 - (int)((eptp >> 3) & 7);
}

/* Pointer to the entry for @gpa at @want; NULL when no table leads there. */
static inline mv_pte *eptc_entry_ptr(const mv_ept *ept, uint64_t gpa, int want)
{
	uint64_t eptp = mv_ept_eptp(ept);
	mv_pte *table = (mv_pte *)(uintptr_t)(eptp & EPTC_ADDR);

	for (int level = eptc_first_level(eptp); level <= 3; level++) {
		mv_pte *p = &table[eptc_index(gpa, level)];
		mv_pte e = __atomic_load_n(p, __ATOMIC_ACQUIRE);

		if (level == want)
			return p;
		/* Not present, a page (bit 7), or the MMIO pattern 110b: nothing below. */
		if (!(e & 7) || (e & 0x80) || (e & 7) == 6)
			return NULL;
		table = (mv_pte *)(uintptr_t)(e & EPTC_ADDR);
	}
	return NULL;
}

/* The raw entry for @gpa at @want; ~0 when no table leads there. */
static inline mv_pte eptc_entry(const mv_ept *ept, uint64_t gpa, int want)
{
	mv_pte *p = eptc_entry_ptr(ept, gpa, want);

	return p ? __atomic_load_n(p, __ATOMIC_ACQUIRE) : ~0ull;
}

/* What the hardware walk finds for a GPA. */
typedef struct eptc_xlate {
	bool present;       /* false: EPT violation (not present) or MMIO SPTE */
	bool mmio;          /* the walk ended at bits 2:0 = 110b */
	uint64_t hpa;       /* the byte's host address */
	unsigned rwx;       /* AND of bits 2:0 over every entry used */
	mv_pte leaf;        /* the last entry read */
	int level;          /* its level */
} eptc_xlate;

/* Translate @gpa as SDM Vol. 3C "EPT Translation Mechanism" says, from the EPTP. */
static inline eptc_xlate eptc_translate(const mv_ept *ept, uint64_t gpa)
{
	uint64_t eptp = mv_ept_eptp(ept);
	const mv_pte *table = (const mv_pte *)(uintptr_t)(eptp & EPTC_ADDR);
	eptc_xlate x = { .rwx = 7 };

	for (int level = eptc_first_level(eptp); level <= 3; level++) {
		mv_pte e = __atomic_load_n(&table[eptc_index(gpa, level)], __ATOMIC_ACQUIRE);
		uint64_t size = 1ull << eptc_shift(level);

		x.leaf = e;
		x.level = level;
		if (!(e & 7))
			return x;
		if ((e & 7) == 6) {
			x.mmio = true;
			return x;
		}
		x.rwx &= (unsigned)(e & 7);
		if (level == 3 || (e & 0x80)) {
			x.present = true;
			x.hpa = (e & EPTC_ADDR & ~(size - 1)) | (gpa & (size - 1));
			return x;
		}
		table = (const mv_pte *)(uintptr_t)(e & EPTC_ADDR);
	}
	return x;
}

/*
 * Count the tables below the root (hand walk) and check each one's page
 * count is 1 + its non-zero entries. Returns the number of tables, or -1
 * on a wrong count.
 */
static inline long eptc_count_tables_at(const mv_ept *ept, const mv_pte *table, int level)
{
	const mv_pgt_mm_ops *mm = ept->pgt.mm_ops;
	long n = 0, nonzero = 0, sub;

	for (unsigned i = 0; i < 512; i++) {
		mv_pte e = __atomic_load_n(&table[i], __ATOMIC_ACQUIRE);

		if (!e)
			continue;
		nonzero++;
		if (level == 3 || !(e & 7) || (e & 0x80) || (e & 7) == 6)
			continue;
		sub = eptc_count_tables_at(ept, (const mv_pte *)(uintptr_t)(e & EPTC_ADDR),
					   level + 1);
		if (sub < 0)
			return -1;
		n += 1 + sub;
	}
	if (level != eptc_first_level(mv_ept_eptp(ept)) &&
	    mm->page_count(ept->pgt.mm_arg, (void *)table) != 1 + nonzero)
		return -1;
	return n;
}

static inline long eptc_count_tables(const mv_ept *ept)
{
	uint64_t eptp = mv_ept_eptp(ept);

	return eptc_count_tables_at(ept, (const mv_pte *)(uintptr_t)(eptp & EPTC_ADDR),
				    eptc_first_level(eptp));
}

/* Tables below the root with no non-zero entry (a zap that forgot one). */
static inline long eptc_empty_tables_at(const mv_pte *table, int level, bool root)
{
	long empty = 0, nonzero = 0;

	for (unsigned i = 0; i < 512; i++) {
		mv_pte e = __atomic_load_n(&table[i], __ATOMIC_ACQUIRE);

		if (!e)
			continue;
		nonzero++;
		if (level < 3 && (e & 7) && !(e & 0x80) && (e & 7) != 6)
			empty += eptc_empty_tables_at((const mv_pte *)(uintptr_t)(e & EPTC_ADDR),
						      level + 1, false);
	}
	return empty + (!root && !nonzero);
}

static inline long eptc_empty_tables(const mv_ept *ept)
{
	uint64_t eptp = mv_ept_eptp(ept);

	return eptc_empty_tables_at((const mv_pte *)(uintptr_t)(eptp & EPTC_ADDR),
				    eptc_first_level(eptp), true);
}

#endif
