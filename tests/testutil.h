/* Shared test helpers: failure-injecting allocator, skip reporting. */
#ifndef MV_TESTUTIL_H
#define MV_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "memvirt/base.h"

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

#endif
