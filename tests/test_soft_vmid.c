/* The VMID allocator: uniqueness, rollover, reserved ids, TLB flush on rollover (threads: test_soft_tlb_threads.c). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "testutil.h"
#include "memvirt/soft_tlb.h"

static mv_vmid_alloc *new_alloc(unsigned bits, unsigned cpus)
{
	mv_vmid_alloc *va = NULL;

	assert_int_equal(mv_vmid_alloc_new(bits, cpus, NULL, &va), 0);
	assert_non_null(va);
	assert_int_equal(mv_vmid_bits(va), bits);
	assert_int_equal(mv_vmid_generation(va), 1);
	return va;
}

/* Update on @cpu and check the result: rolled over or not, number, current generation. */
static void update(mv_vmid_alloc *va, mv_vmid *vm, unsigned cpu, bool rolled, uint16_t number)
{
	assert_int_equal(mv_vmid_update(va, vm, cpu), rolled);
	assert_int_equal(mv_vmid_value(va, vm), number);
	assert_int_equal(vm->id >> mv_vmid_bits(va), mv_vmid_generation(va));
}

static void test_new_errors(void **state)
{
	mv_vmid_alloc *va = (mv_vmid_alloc *)1;
	tu_failing_alloc fa;

	(void)state;
	assert_int_equal(mv_vmid_alloc_new(1, 1, NULL, &va), -EINVAL);
	assert_null(va);
	assert_int_equal(mv_vmid_alloc_new(17, 1, NULL, &va), -EINVAL);
	assert_int_equal(mv_vmid_alloc_new(8, 0, NULL, &va), -EINVAL);
	/* 2 bits: 3 usable ids, so at most 2 CPUs; 8 bits: at most 254. */
	assert_int_equal(mv_vmid_alloc_new(2, 3, NULL, &va), -EINVAL);
	assert_int_equal(mv_vmid_alloc_new(8, 255, NULL, &va), -EINVAL);
	va = new_alloc(2, 2);
	mv_vmid_alloc_free(va);
	va = new_alloc(8, 254);
	mv_vmid_alloc_free(va);
	for (unsigned long k = 1; k <= 4; k++) {
		tu_failing_alloc_init(&fa, k, false);
		assert_int_equal(mv_vmid_alloc_new(8, 4, &fa.alloc, &va), -ENOMEM);
		assert_null(va);
	}
	mv_vmid_alloc_free(NULL);
}

/* One generation hands out every number once, in order, never 0. */
static void test_unique(void **state)
{
	enum { BITS = 8, IDS = (1 << BITS) - 1 };
	mv_vmid_alloc *va = new_alloc(BITS, 4);
	mv_vmid vms[IDS + 1];
	bool seen[1 << BITS] = { false };

	(void)state;
	memset(vms, 0, sizeof(vms));
	for (unsigned i = 0; i < IDS; i++) {
		update(va, &vms[i], i % 4, false, (uint16_t)(i + 1));
		assert_false(seen[mv_vmid_value(va, &vms[i])]);
		seen[mv_vmid_value(va, &vms[i])] = true;
	}
	/* Already valid: the fast path changes nothing, on any CPU. */
	for (unsigned i = 0; i < IDS; i++) {
		uint64_t id = vms[i].id;

		update(va, &vms[i], (i + 1) % 4, false, (uint16_t)(i + 1));
		assert_int_equal(vms[i].id, id);
	}
	/* Number 256 does not exist: the next VM rolls over (4 active ids kept). */
	update(va, &vms[IDS], 0, true, 1);
	assert_int_equal(mv_vmid_generation(va), 2);
	mv_vmid_alloc_free(va);
}

/* 2 bits, 1 CPU: ids 1..3, then rollovers; a number is kept when still free. */
static void test_rollover(void **state)
{
	mv_vmid_alloc *va = new_alloc(2, 1);
	mv_vmid a = { 0 }, b = { 0 }, c = { 0 }, d = { 0 };

	(void)state;
	update(va, &a, 0, false, 1);
	update(va, &b, 0, false, 2);
	update(va, &c, 0, false, 3);
	assert_int_equal(a.id, (1 << 2) | 1);
	/* Full: generation 2 keeps C's number (active on CPU 0), D takes 1. */
	update(va, &d, 0, true, 1);
	assert_int_equal(mv_vmid_generation(va), 2);
	assert_int_equal(d.id, (2 << 2) | 1);
	assert_int_equal(a.id >> 2, 1);              /* stale until A enters again */
	update(va, &a, 0, false, 2);                 /* 1 is D's now */
	update(va, &c, 0, false, 3);                 /* reserved for it */
	update(va, &b, 0, true, 1);                  /* 2 and 3 taken: generation 3 */
	assert_int_equal(mv_vmid_generation(va), 3);
	/* C was active at the rollover and keeps 3; D's 1 is B's now, A's 2 is free. */
	update(va, &c, 0, false, 3);
	update(va, &a, 0, false, 2);
	update(va, &d, 0, true, 1);
	assert_int_equal(mv_vmid_generation(va), 4);
	mv_vmid_alloc_free(va);
}

/* Ids active on any CPU at a rollover stay theirs; clear_active gives them up. */
static void test_reserved(void **state)
{
	mv_vmid_alloc *va = new_alloc(2, 2);
	mv_vmid a = { 0 }, b = { 0 }, c = { 0 }, d = { 0 }, e = { 0 };

	(void)state;
	update(va, &a, 0, false, 1);
	update(va, &b, 1, false, 2);
	update(va, &c, 0, false, 3);                 /* A leaves CPU 0 */
	update(va, &d, 0, true, 1);                  /* keeps B (CPU 1) and C (CPU 0) */
	update(va, &b, 1, false, 2);
	update(va, &c, 1, false, 3);                 /* reserved by CPU 0, taken from CPU 1 */
	update(va, &a, 0, true, 2);                  /* D (CPU 0) and C (CPU 1) kept: A gets 2 */
	assert_int_equal(mv_vmid_generation(va), 3);
	update(va, &d, 0, false, 1);

	/* CPU 1 (C kept since the last rollover) leaves: C's 3 is given up at the next one. */
	mv_vmid_clear_active(va, 1);
	mv_vmid_clear_active(va, 99);                /* no such CPU: nothing */
	update(va, &b, 0, true, 2);                  /* only D (CPU 0) kept: B takes 2 */
	update(va, &e, 0, false, 3);                 /* ... and E takes C's 3 */
	update(va, &d, 1, false, 1);
	update(va, &c, 1, true, 2);                  /* nothing free: C rolls over */
	assert_int_equal(mv_vmid_generation(va), 5);
	mv_vmid_alloc_free(va);
}

/* A CPU index out of range still gets a valid id, just not kept. */
static void test_cpu_out_of_range(void **state)
{
	mv_vmid_alloc *va = new_alloc(2, 1);
	mv_vmid a = { 0 }, b = { 0 }, c = { 0 }, d = { 0 };

	(void)state;
	update(va, &a, 5, false, 1);
	update(va, &b, 5, false, 2);
	update(va, &c, 0, false, 3);
	update(va, &d, 5, true, 1);                  /* only C (CPU 0) kept */
	update(va, &a, 5, false, 2);
	mv_vmid_alloc_free(va);
}

/* Rollover invalidates every TLB at its next generation sync, once. */
static void test_tlb_flush_on_rollover(void **state)
{
	mv_vmid_alloc *va = new_alloc(2, 1);
	mv_vmid a = { 0 }, b = { 0 }, c = { 0 }, d = { 0 };
	mv_tlb *tlb = NULL;
	mv_tlb_entry e = { .el = 1, .rights = MV_TLB_R, .va_page = 0x400, .ipa_page = 0x800 }, out;
	mv_tlb_stats st;

	(void)state;
	assert_int_equal(mv_tlb_new(64, NULL, &tlb), 0);
	update(va, &a, 0, false, 1);
	mv_tlb_lock(tlb);
	mv_tlb_sync_generation(tlb, va);             /* first sync: flushes the empty TLB */
	e.vmid = mv_vmid_value(va, &a);
	mv_tlb_insert(tlb, &e);
	mv_tlb_sync_generation(tlb, va);             /* same generation: nothing */
	assert_true(mv_tlb_lookup(tlb, e.vmid, 1, 0x400, MV_TLB_R, &out));
	mv_tlb_unlock(tlb);
	mv_tlb_get_stats(tlb, &st);
	assert_int_equal(st.flushes, 1);
	assert_int_equal(st.flushed_entries, 0);

	update(va, &b, 0, false, 2);
	update(va, &c, 0, false, 3);
	update(va, &d, 0, true, 1);                  /* D reuses number 1 */
	mv_tlb_lock(tlb);
	assert_true(mv_tlb_lookup(tlb, 1, 1, 0x400, MV_TLB_R, &out));   /* stale: A's entry */
	mv_tlb_sync_generation(tlb, va);
	assert_false(mv_tlb_lookup(tlb, mv_vmid_value(va, &d), 1, 0x400, MV_TLB_R, &out));
	mv_tlb_sync_generation(tlb, va);
	mv_tlb_unlock(tlb);
	mv_tlb_get_stats(tlb, &st);
	assert_int_equal(st.flushes, 2);
	assert_int_equal(st.flushed_entries, 1);
	mv_tlb_free(tlb);
	mv_vmid_alloc_free(va);
}

/*
 * Random updates and exits against the allocator's promises: current ids
 * are pairwise distinct and non-zero; a number in use on a CPU (not
 * cleared) is nobody else's in the current generation.
 */
static void test_random_invariants(void **state)
{
	enum { VMS = 20, CPUS = 3, OPS = 20000 };
	uint64_t rng = tu_seed(0x71d), rollovers = 0;
	mv_vmid_alloc *va = new_alloc(3, CPUS);
	mv_vmid vms[VMS];
	int running[CPUS];

	(void)state;
	memset(vms, 0, sizeof(vms));
	for (unsigned c = 0; c < CPUS; c++)
		running[c] = -1;
	for (unsigned op = 0; op < OPS; op++) {
		unsigned cpu = (unsigned)tu_rand_below(&rng, CPUS);
		unsigned v = (unsigned)tu_rand_below(&rng, VMS);
		uint64_t gen;

		if (tu_rand_below(&rng, 4) == 0) {
			mv_vmid_clear_active(va, cpu);
			running[cpu] = -1;
			continue;
		}
		rollovers += mv_vmid_update(va, &vms[v], cpu);
		running[cpu] = (int)v;
		gen = mv_vmid_generation(va);
		assert_int_equal(vms[v].id >> 3, gen);
		for (unsigned i = 0; i < VMS; i++) {
			if (vms[i].id >> 3 != gen)
				continue;
			assert_int_not_equal(mv_vmid_value(va, &vms[i]), 0);
			for (unsigned j = i + 1; j < VMS; j++)
				if (vms[j].id >> 3 == gen)
					assert_int_not_equal(mv_vmid_value(va, &vms[i]),
							     mv_vmid_value(va, &vms[j]));
			for (unsigned c = 0; c < CPUS; c++)
				if (running[c] >= 0 && running[c] != (int)i)
					assert_int_not_equal(mv_vmid_value(va, &vms[i]),
							     mv_vmid_value(va, &vms[running[c]]));
		}
	}
	assert_true(rollovers > 100);
	assert_int_equal(mv_vmid_generation(va), rollovers + 1);
	mv_vmid_alloc_free(va);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_errors),
		cmocka_unit_test(test_unique),
		cmocka_unit_test(test_rollover),
		cmocka_unit_test(test_reserved),
		cmocka_unit_test(test_cpu_out_of_range),
		cmocka_unit_test(test_tlb_flush_on_rollover),
		cmocka_unit_test(test_random_invariants),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
