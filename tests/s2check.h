/*
 * Deliberately naive readers of ARMv8 stage-2 tables for the tests: the
 * descriptors are decoded by hand from the root with their own index
 * arithmetic (nothing from pgtable.c), plus the page-count invariant of
 * the pool (1 + non-zero entries per table page below the root).
 */
#ifndef MV_TESTS_S2CHECK_H
#define MV_TESTS_S2CHECK_H

#include "memvirt/soft_stage2.h"

#include <stdbool.h>
#include <stdint.h>

/* Input bits below a level: 12 + 9 * (3 - level) for 4 KiB, and so on. */
static inline unsigned s2c_shift(unsigned g, int level)
{
	return g + (g - 3) * (unsigned)(3 - level);
}

/* Index of @ipa in the table at @level (the start level spans its concatenated tables). */
static inline uint64_t s2c_index(const mv_s2_pgt *s2, uint64_t ipa, int level)
{
	unsigned g = s2->pgt.granule_shift, shift = s2c_shift(g, level);
	unsigned bits = level == s2->pgt.start_level ? s2->pgt.ia_bits - shift : g - 3;

	return (ipa >> shift) & ((1ull << bits) - 1);
}

/* The raw entry for @ipa at @level; ~0 when no table leads there. */
static inline mv_pte s2c_entry(const mv_s2_pgt *s2, uint64_t ipa, int want)
{
	const mv_pte *table = (const mv_pte *)(uintptr_t)s2->pgt.root_pa;
	unsigned g = s2->pgt.granule_shift;
	mv_pte pte = 0;

	for (int level = s2->pgt.start_level; level <= want; level++) {
		pte = __atomic_load_n(&table[s2c_index(s2, ipa, level)], __ATOMIC_ACQUIRE);
		if (level == want)
			return pte;
		if (level == 3 || (pte & 3) != 3)
			return ~0ull;
		table = (const mv_pte *)(uintptr_t)(pte & MV_S2_OA_MASK(g));
	}
	return pte;
}

/*
 * Translate @ipa as the hardware would (ARM ARM stage-2 walk, 48-bit OA):
 * false on a translation fault; else the output address, the descriptor's
 * attribute bits (all but OA and bits[1:0]) and the leaf level.
 */
static inline bool s2c_translate(const mv_s2_pgt *s2, uint64_t ipa, uint64_t *pa, uint64_t *attrs,
				 int *leaf_level)
{
	const mv_pte *table = (const mv_pte *)(uintptr_t)s2->pgt.root_pa;
	unsigned g = s2->pgt.granule_shift;

	if (ipa >> s2->pgt.ia_bits)
		return false;
	for (int level = s2->pgt.start_level; level <= 3; level++) {
		mv_pte d = __atomic_load_n(&table[s2c_index(s2, ipa, level)], __ATOMIC_ACQUIRE);
		unsigned shift = s2c_shift(g, level);
		uint64_t oa_mask = ((1ull << 48) - 1) & ~((1ull << shift) - 1);

		if (!(d & 1))
			return false;
		if (level < 3 && (d & 3) == 3) {
			table = (const mv_pte *)(uintptr_t)(d & MV_S2_OA_MASK(g));
			continue;
		}
		if (level == 3 ? (d & 3) != 3 : !(level == 2 || (level == 1 && g == 12)))
			return false;
		*pa = (d & oa_mask) | (ipa & ((1ull << shift) - 1));
		*attrs = d & ~(((1ull << 48) - 1) & ~((1ull << g) - 1)) & ~3ull;
		*leaf_level = level;
		return true;
	}
	return false;
}

/*
 * Check every table page below the root: page_count == 1 + its non-zero
 * entries. Returns the number of such pages (or -1 at the first mismatch).
 */
static inline long s2c_check_table(const mv_s2_pgt *s2, const mv_pte *table, int level, bool root)
{
	const mv_pgt *pgt = &s2->pgt;
	unsigned g = pgt->granule_shift;
	uint64_t n = root ? 1ull << (pgt->ia_bits - s2c_shift(g, level)) : 1ull << (g - 3);
	long pages = root ? 0 : 1, nonzero = 0, sub;

	for (uint64_t i = 0; i < n; i++) {
		mv_pte d = table[i];

		if (!d)
			continue;
		nonzero++;
		if (level < 3 && (d & 3) == 3) {
			sub = s2c_check_table(s2, (const mv_pte *)(uintptr_t)(d & MV_S2_OA_MASK(g)),
					      level + 1, false);
			if (sub < 0)
				return -1;
			pages += sub;
		}
	}
	if (!root && pgt->mm_ops->page_count(pgt->mm_arg, (void *)table) != 1 + nonzero)
		return -1;
	return pages;
}

static inline long s2c_check_counts(const mv_s2_pgt *s2)
{
	return s2c_check_table(s2, (const mv_pte *)(uintptr_t)s2->pgt.root_pa, s2->pgt.start_level,
			       true);
}

#endif
