/*
 * The soft TLB and the VMID allocator under threads (also run under
 * ThreadSanitizer by make test): flushes against an owner that holds the
 * TLB lock across its accesses, and CPUs entering shared VMs.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "testutil.h"
#include "memvirt/soft_tlb.h"

/* ---- An owner accessing through its TLB while another thread unmaps and flushes. ---- */

enum { F_PAGES = 16, F_ROUNDS = 20000, F_VMID = 7 };

typedef struct flush_world {
	mv_tlb *tlb;
	int mapped[F_PAGES];     /* the "stage-2 table": owner walks it on a miss */
	int freed[F_PAGES];      /* set only after the flush of an unmapped page returned */
	bool stop;
	uint64_t hits;
	const char *error;
} flush_world;

/* The vCPU: lock, look up, on a miss walk and insert, "access", unlock. */
static void *owner_thread(void *arg)
{
	flush_world *w = arg;
	uint64_t rng = 0x5eed, hits = 0;

	while (!__atomic_load_n(&w->stop, __ATOMIC_SEQ_CST)) {
		uint64_t p = tu_rand_below(&rng, F_PAGES);
		mv_tlb_entry e;

		mv_tlb_lock(w->tlb);
		if (mv_tlb_lookup(w->tlb, F_VMID, 1, 0x100 + p, MV_TLB_R, &e)) {
			/* The access: the page must not have been handed back yet. */
			if (__atomic_load_n(&w->freed[e.ipa_page], __ATOMIC_SEQ_CST))
				w->error = "access through an entry whose flush had returned";
			hits++;
		} else if (__atomic_load_n(&w->mapped[p], __ATOMIC_SEQ_CST)) {
			e = (mv_tlb_entry){ .vmid = F_VMID, .el = 1, .rights = MV_TLB_R,
					    .va_page = 0x100 + p, .ipa_page = p, .host_page = p };
			mv_tlb_insert(w->tlb, &e);
		}
		mv_tlb_unlock(w->tlb);
	}
	w->hits = hits;
	return NULL;
}

static void test_flush_vs_owner(void **state)
{
	flush_world w;
	pthread_t t;
	uint64_t rng = tu_seed(0xf1a5);
	mv_tlb_stats st;

	(void)state;
	memset(&w, 0, sizeof(w));
	assert_int_equal(mv_tlb_new(64, NULL, &w.tlb), 0);
	for (unsigned p = 0; p < F_PAGES; p++)
		w.mapped[p] = 1;
	assert_int_equal(pthread_create(&t, NULL, owner_thread, &w), 0);
	for (unsigned round = 0; round < F_ROUNDS; round++) {
		uint64_t p = tu_rand_below(&rng, F_PAGES);

		if (__atomic_load_n(&w.mapped[p], __ATOMIC_SEQ_CST)) {
			/* Zap, TLBI + DSB, then the page may be reused. */
			__atomic_store_n(&w.mapped[p], 0, __ATOMIC_SEQ_CST);
			mv_tlb_flush_ipa(w.tlb, F_VMID, p << 12, 4096);
			__atomic_store_n(&w.freed[p], 1, __ATOMIC_SEQ_CST);
		} else {
			__atomic_store_n(&w.freed[p], 0, __ATOMIC_SEQ_CST);
			__atomic_store_n(&w.mapped[p], 1, __ATOMIC_SEQ_CST);
		}
		if (round % 256 == 0)
			sched_yield();
	}
	__atomic_store_n(&w.stop, true, __ATOMIC_SEQ_CST);
	assert_int_equal(pthread_join(t, NULL), 0);
	if (w.error)
		fail_msg("%s", w.error);
	mv_tlb_get_stats(w.tlb, &st);
	printf("%llu hits, %llu flushes, %llu entries flushed\n", (unsigned long long)w.hits,
	       (unsigned long long)st.flushes, (unsigned long long)st.flushed_entries);
	assert_true(st.flushes > 0);
	mv_tlb_free(w.tlb);
}

/* ---- Threads: 4 CPUs enter 10 shared VMs; no two VMs ever run with one number. ---- */

enum { T_CPUS = 4, T_VMS = 10, T_ITERS = 20000, T_BITS = 3 };

typedef struct vmid_world {
	mv_vmid_alloc *va;
	mv_vmid vms[T_VMS];
	pthread_mutex_t lock;           /* guards the two arrays below */
	int owner[1 << T_BITS];         /* VM running with each number */
	unsigned users[1 << T_BITS];    /* CPUs running with it */
	uint64_t rollovers;
	uint64_t seed;
} vmid_world;

typedef struct vmid_cpu {
	vmid_world *w;
	unsigned cpu;
	const char *error;
} vmid_cpu;

/* Claim @number for VM @v; false when another VM is running with it. */
static bool enter(vmid_world *w, unsigned number, int v)
{
	bool ok;

	pthread_mutex_lock(&w->lock);
	ok = w->users[number] == 0 || w->owner[number] == v;
	if (ok) {
		w->owner[number] = v;
		w->users[number]++;
	}
	pthread_mutex_unlock(&w->lock);
	return ok;
}

static void leave(vmid_world *w, unsigned number)
{
	pthread_mutex_lock(&w->lock);
	w->users[number]--;
	pthread_mutex_unlock(&w->lock);
}

static void *cpu_thread(void *arg)
{
	vmid_cpu *c = arg;
	vmid_world *w = c->w;
	uint64_t rng = w->seed ^ (0x9e3779b97f4a7c15ull * (c->cpu + 1));

	for (unsigned i = 0; i < T_ITERS; i++) {
		int v = (int)tu_rand_below(&rng, T_VMS);
		unsigned number;

		if (mv_vmid_update(w->va, &w->vms[v], c->cpu))
			__atomic_add_fetch(&w->rollovers, 1, __ATOMIC_RELAXED);
		number = mv_vmid_value(w->va, &w->vms[v]);
		if (number == 0 || number >= (1u << T_BITS)) {
			c->error = "number out of range";
			return NULL;
		}
		if (!enter(w, number, v)) {
			c->error = "two VMs running with one VMID";
			return NULL;
		}
		if (i % 64 == 0)
			sched_yield();
		leave(w, number);
		if (tu_rand_below(&rng, 2))
			mv_vmid_clear_active(w->va, c->cpu);
	}
	return NULL;
}

static void test_vmid_threads(void **state)
{
	vmid_world w;
	vmid_cpu cpus[T_CPUS];
	pthread_t t[T_CPUS];

	(void)state;
	memset(&w, 0, sizeof(w));
	assert_int_equal(mv_vmid_alloc_new(T_BITS, T_CPUS, NULL, &w.va), 0);
	w.seed = tu_seed(0x7b3ad);
	pthread_mutex_init(&w.lock, NULL);
	for (unsigned i = 0; i < T_CPUS; i++) {
		cpus[i] = (vmid_cpu){ .w = &w, .cpu = i };
		assert_int_equal(pthread_create(&t[i], NULL, cpu_thread, &cpus[i]), 0);
	}
	for (unsigned i = 0; i < T_CPUS; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		if (cpus[i].error)
			fail_msg("cpu %u: %s", i, cpus[i].error);
	}
	printf("%llu rollovers, generation %llu\n", (unsigned long long)w.rollovers,
	       (unsigned long long)mv_vmid_generation(w.va));
	assert_true(w.rollovers > 0);
	assert_int_equal(mv_vmid_generation(w.va), w.rollovers + 1);
	pthread_mutex_destroy(&w.lock);
	mv_vmid_alloc_free(w.va);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_flush_vs_owner),
		cmocka_unit_test(test_vmid_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
