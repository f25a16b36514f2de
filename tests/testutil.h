/* Shared test helpers: failure-injecting allocator, PRNG, the KVM VM or its SKIP, host memory. */
#ifndef MV_TESTUTIL_H
#define MV_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "memvirt/base.h"
#include "memvirt/hv.h"

/*
 * An allocator that fails the @fail_at-th allocation (1-based) and every
 * later one when @fail_all; 0 never fails. Counts allocations in ->calls.
 */
typedef struct tu_failing_alloc {
	mv_allocator alloc;
	unsigned long calls;
	unsigned long fail_at;
	bool fail_all;
} tu_failing_alloc;

void tu_failing_alloc_init(tu_failing_alloc *fa, unsigned long fail_at, bool fail_all);

/* Deterministic PRNG (xorshift64*), seeded from MV_SEED env or @def_seed. */
uint64_t tu_seed(uint64_t def_seed);
uint64_t tu_rand(uint64_t *state);
/* Uniform in [0, n). */
uint64_t tu_rand_below(uint64_t *state, uint64_t n);

/*
 * A "kvm" VM of @cfg into *@out; without a usable /dev/kvm, false after
 * the line "SKIP: /dev/kvm not available (<reason>)" (the caller skips).
 * Any other failure fails the test.
 */
bool tu_kvm_vm_create(const hv_vm_config *cfg, hv_vm **out);

/*
 * Host memory for guest RAM: an anonymous MAP_NORESERVE mapping whose
 * usable part, @size bytes at ->base, starts at a multiple of @align.
 */
typedef struct tu_region {
	void *raw;
	size_t raw_len;
	uint8_t *base;
	size_t size;
} tu_region;

/* Map @r with @prot (PROT_*); fails the test if mmap does. */
void tu_region_map(tu_region *r, size_t size, size_t align, int prot);
/* Unmap @r (again: nothing). */
void tu_region_unmap(tu_region *r);
/* The host address of byte @off of @r. */
static inline uint64_t tu_hva(const tu_region *r, uint64_t off)
{
	return (uint64_t)(uintptr_t)r->base + off;
}

#endif
