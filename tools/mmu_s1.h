/*
 * Guest stage-1 tables for `memvirt mmu run` scripts: the s1pool / s1map
 * directives build VMSAv8-64 4 KiB-granule tables in guest memory, as a
 * guest kernel would, so a stage-1 scenario takes a few lines.
 */
#ifndef MEMVIRT_MMU_S1_H
#define MEMVIRT_MMU_S1_H

#include "mmu_script.h"

/* Guest pages handed out for tables, bump-allocated. */
typedef struct mmu_s1_pool {
	uint64_t ipa, size, used;
} mmu_s1_pool;

/* Host address of [ipa, ipa + len) when one memslot holds it all, else NULL. */
typedef void *(*mmu_guest_ptr_fn)(void *arg, uint64_t ipa, uint64_t len);

/*
 * TCR_EL1 for scripts that did not set one: 48-bit VAs in both halves,
 * 4 KiB granules, write-back inner-shareable walks, IPS covering @ia_bits.
 */
uint64_t mmu_s1_default_tcr(unsigned ia_bits);

/*
 * Map @m's VA range (line MMU_S1MAP) to its IPA range in the tables of
 * TTBR0_EL1 or TTBR1_EL1 (chosen by the VA's top bits), allocating the
 * root (TTBRn gets its address) and missing tables from @pool. Existing
 * leaves are replaced. Returns 0 or -EINVAL / -ENOSPC with a sentence in
 * @err (required).
 */
int mmu_s1_map(mmu_s1_pool *pool, mv_a64_sysregs *sys, const mmu_line *m, mmu_guest_ptr_fn ptr,
	       void *arg, mv_error *err);

#endif
