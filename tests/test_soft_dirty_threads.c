/*
 * Dirty logging under concurrency (run under TSan by `make test`):
 *  - one pusher and concurrent harvesters and resetters on a ring: every
 *    entry is harvested once, in order, with the slot and offset it was
 *    pushed with, and re-protected once;
 *  - threads marking bitmap pages while another gets (and clears) the
 *    log: every page is reported exactly once;
 *  - arm64 vCPU threads storing to a logging slot while a harvester gets
 *    the log: a store that began after get k started is reported by get
 *    k or a later one (no write escapes the log);
 *  - the same with dirty rings, filled to the soft limit again and again,
 *    while the harvester harvests and resets: a store that began after
 *    harvest + reset round k started is harvested in round k or later.
 * MV_SEED replays a run.
 */
#include "dirty_fx.h"

#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>

/* ------------------------------------------------------------------ */
/* A ring: one pusher, two harvesters, one resetter                     */

#define RING_PUSHES 60000u
#define RING_SLOT_PAGES (1u << 17)

typedef struct ring_run {
	mv_dirty_ring *ring;
	mv_memslots *ms;
	dfx_rec rec;
	uint32_t next;             /* the next offset a harvester must see (under the fetch lock) */
	unsigned long harvested;   /* atomic */
	unsigned long reset;       /* atomic */
	unsigned long yields;
	unsigned long bad;         /* atomic */
} ring_run;

static uint32_t ring_slot_of(uint32_t i)
{
	return HV_SLOT(0, i % 3);
}

static void *ring_pusher(void *arg)
{
	ring_run *run = arg;

	for (uint32_t i = 0; i < RING_PUSHES; i++) {
		/* A vCPU exits at the soft limit and waits for user space. */
		while (mv_dirty_ring_soft_full(run->ring)) {
			run->yields++;
			sched_yield();
		}
		if (mv_dirty_ring_push(run->ring, ring_slot_of(i), i % RING_SLOT_PAGES))
			__atomic_fetch_add(&run->bad, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

/* Called with the ring's fetch lock held: entries come in push order. */
static void ring_check(void *opaque, const hv_dirty_gfn *g)
{
	ring_run *run = opaque;
	uint32_t i = run->next++;

	if (g->slot != ring_slot_of(i) || g->offset != i % RING_SLOT_PAGES)
		__atomic_fetch_add(&run->bad, 1, __ATOMIC_RELAXED);
}

static void *ring_harvester(void *arg)
{
	ring_run *run = arg;

	while (__atomic_load_n(&run->harvested, __ATOMIC_RELAXED) < RING_PUSHES) {
		int n = mv_dirty_ring_harvest(run->ring, ring_check, run);

		__atomic_fetch_add(&run->harvested, (unsigned long)n, __ATOMIC_RELAXED);
		if (!n)
			sched_yield();
	}
	return NULL;
}

static void *ring_resetter(void *arg)
{
	ring_run *run = arg;

	while (__atomic_load_n(&run->reset, __ATOMIC_RELAXED) < RING_PUSHES) {
		int n = mv_dirty_ring_reset(run->ring, run->ms, dfx_rec_protect, &run->rec);

		__atomic_fetch_add(&run->reset, (unsigned long)n, __ATOMIC_RELAXED);
		if (!n)
			sched_yield();
	}
	return NULL;
}

static void test_ring_threads(void **state)
{
	mv_memslots_config cfg = { .nr_as = 1, .dirty_bitmap = true };
	ring_run *run = calloc(1, sizeof(*run));
	pthread_t t[4];

	(void)state;
	assert_non_null(run);
	dfx_rec_init(&run->rec);
	assert_int_equal(mv_memslots_new(&cfg, &run->ms), 0);
	for (unsigned id = 0; id < 3; id++) {
		hv_memslot m = { .slot = id, .gpa = (uint64_t)id << 32, .size = RING_SLOT_PAGES * DFX_4K,
				 .hva = (void *)(uintptr_t)(((uint64_t)id + 1) << 32) };

		assert_int_equal(mv_memslots_set(run->ms, &m), 0);
	}
	assert_int_equal(mv_dirty_ring_new(256, NULL, &run->ring), 0);
	assert_int_equal(pthread_create(&t[0], NULL, ring_pusher, run), 0);
	assert_int_equal(pthread_create(&t[1], NULL, ring_harvester, run), 0);
	assert_int_equal(pthread_create(&t[2], NULL, ring_harvester, run), 0);
	assert_int_equal(pthread_create(&t[3], NULL, ring_resetter, run), 0);
	for (unsigned i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	print_message("# %u entries through a 256-entry ring, %lu waits at the soft limit, "
		      "%u re-protect calls\n", RING_PUSHES, run->yields, run->rec.n);
	assert_int_equal(run->bad, 0);
	assert_int_equal(run->harvested, RING_PUSHES);
	assert_int_equal(run->reset, RING_PUSHES);
	assert_int_equal(run->rec.pages, RING_PUSHES);
	assert_int_equal(mv_dirty_ring_used(run->ring), 0);
	mv_dirty_ring_free(run->ring);
	mv_memslots_free(run->ms);
	free(run);
}

/* ------------------------------------------------------------------ */
/* A bitmap: markers against a getter                                   */

#define BM_PAGES (1u << 16)
#define BM_MARKERS 3u

typedef struct bm_run {
	mv_memslots *ms;
	const mv_memslot *slot;
	bool manual;               /* get (copy) + clear instead of get (exchange) */
	int done;                  /* atomic: markers finished */
	uint8_t seen[BM_PAGES];    /* times reported, by the getter */
	unsigned long gets;
	dfx_rec rec;
} bm_run;

typedef struct marker {
	bm_run *run;
	unsigned index;
} marker;

static void *bm_marker(void *arg)
{
	marker *m = arg;

	/*
	 * Each page once, by the thread of its residue, shuffled within strides
	 * of 64 of them (37 is prime to 64) so words fill out of order.
	 */
	for (uint32_t base = m->index; base < BM_PAGES; base += 64 * BM_MARKERS) {
		for (uint32_t k = 0; k < 64; k++) {
			uint32_t p = base + BM_MARKERS * ((k * 37) % 64);

			if (p < BM_PAGES)
				mv_memslot_mark_dirty(m->run->slot, m->run->slot->base_gfn + p);
		}
	}
	return NULL;
}

static void bm_get(bm_run *run, uint64_t *out)
{
	assert_int_equal(mv_dirty_get_log(run->ms, 0, run->manual, out, dfx_rec_protect, &run->rec), 0);
	if (run->manual)
		assert_int_equal(mv_dirty_clear_log(run->ms, 0, 0, BM_PAGES, out, dfx_rec_protect,
						    &run->rec), 0);
	for (uint32_t w = 0; w < BM_PAGES / 64; w++)
		for (uint64_t bits = out[w]; bits; bits &= bits - 1)
			run->seen[w * 64 + (unsigned)__builtin_ctzll(bits)]++;
	run->gets++;
}

static void *bm_getter(void *arg)
{
	bm_run *run = arg;
	uint64_t *out = calloc(BM_PAGES / 64, sizeof(uint64_t));

	assert_non_null(out);
	while (!__atomic_load_n(&run->done, __ATOMIC_ACQUIRE))
		bm_get(run, out);
	bm_get(run, out);   /* after the markers: the rest */
	free(out);
	return NULL;
}

static void test_bitmap_threads(void **state)
{
	mv_memslots_config cfg = { .nr_as = 1, .dirty_bitmap = true };
	hv_memslot m = { .slot = 0, .flags = HV_MEM_LOG_DIRTY_PAGES, .size = BM_PAGES * DFX_4K,
			 .hva = (void *)0x100000000ull };
	(void)state;
	for (unsigned manual = 0; manual < 2; manual++) {
		bm_run *run = calloc(1, sizeof(*run));
		marker mk[BM_MARKERS];
		pthread_t t[BM_MARKERS + 1];

		assert_non_null(run);
		dfx_rec_init(&run->rec);
		run->manual = manual;
		assert_int_equal(mv_memslots_new(&cfg, &run->ms), 0);
		assert_int_equal(mv_memslots_set(run->ms, &m), 0);
		run->slot = mv_memslots_get(run->ms, 0, 0);
		assert_int_equal(pthread_create(&t[BM_MARKERS], NULL, bm_getter, run), 0);
		for (unsigned i = 0; i < BM_MARKERS; i++) {
			mk[i] = (marker){ run, i };
			assert_int_equal(pthread_create(&t[i], NULL, bm_marker, &mk[i]), 0);
		}
		for (unsigned i = 0; i < BM_MARKERS; i++)
			pthread_join(t[i], NULL);
		__atomic_store_n(&run->done, 1, __ATOMIC_RELEASE);
		pthread_join(t[BM_MARKERS], NULL);
		print_message("# %s: %lu gets while %u threads marked %u pages\n",
			      manual ? "manual get + clear" : "get", run->gets, BM_MARKERS, BM_PAGES);
		for (uint32_t p = 0; p < BM_PAGES; p++)
			if (run->seen[p] != 1)
				fail_msg("page %u reported %u times", p, run->seen[p]);
		assert_int_equal(run->rec.pages, BM_PAGES);
		mv_memslots_free(run->ms);
		free(run);
	}
}

/* ------------------------------------------------------------------ */
/* arm64: vCPUs write while the log is read                             */

#define A64_VCPUS 2u
#define A64_PAGES 512u
#define A64_STORES 3000u

typedef struct a64_run {
	mv_a64_vm *vm;
	tu_region ram;
	uint32_t ring_entries;
	int gets_started;            /* atomic: gets begun (the epoch) */
	unsigned finished;           /* atomic: vCPU threads done */
	unsigned long bad;           /* atomic: unexpected exec results */
	int last_write[A64_PAGES];   /* gets started before the page's latest store began */
	int last_report[A64_PAGES];  /* the latest get that reported it (getter only; -1: none) */
	bool written[A64_PAGES];     /* atomic */
	int epoch;                   /* the harvester's current round (ring mode) */
	unsigned long exits, again;  /* atomic */
	uint64_t seed;
} a64_run;

typedef struct a64_worker {
	a64_run *run;
	mv_a64_vcpu *vcpu;
	unsigned index;
} a64_worker;

static void *a64_vcpu_main(void *arg)
{
	a64_worker *w = arg;
	a64_run *run = w->run;
	uint64_t rng = run->seed * 31 + w->index;
	mv_a64_regs regs = { .pc = DFX_RAM_GPA, .el = 1 };
	mv_a64_sysregs sys = { 0 };

	mv_a64_vcpu_set_regs(w->vcpu, &regs);
	mv_a64_vcpu_set_sysregs(w->vcpu, &sys);
	for (unsigned i = 0; i < A64_STORES; i++) {
		/* Each vCPU owns the pages of its parity: a page's writes are ordered. */
		uint32_t page = (uint32_t)tu_rand_below(&rng, A64_PAGES / A64_VCPUS) * A64_VCPUS + w->index;
		mv_a64_insn in = { .op = MV_A64_STORE, .size = 8, .rt = 1, .rn = MV_A64_RN_ABS,
				   .addr = DFX_RAM_GPA + page * DFX_4K + 8 * w->index, .sf = true };
		int epoch = __atomic_load_n(&run->gets_started, __ATOMIC_ACQUIRE);
		mv_a64_outcome out;
		int r;

		for (;;) {
			r = mv_a64_vcpu_exec(w->vcpu, &in, &out);
			if (r == -EAGAIN) {
				__atomic_fetch_add(&run->again, 1, __ATOMIC_RELAXED);
				continue;
			}
			if (r == 0 && out.result == MV_A64_DONE)
				break;
			if (r || out.result != MV_A64_EXIT || out.exit->reason != HV_EXIT_DIRTY_RING_FULL) {
				__atomic_fetch_add(&run->bad, 1, __ATOMIC_RELAXED);
				goto out;
			}
			/* DIRTY_RING_FULL: wait for the harvester, as a VMM's vCPU thread would. */
			__atomic_fetch_add(&run->exits, 1, __ATOMIC_RELAXED);
			sched_yield();
		}
		/*
		 * Get @epoch may have taken the page's bit and not yet protected it,
		 * so the store went through; a get after it finds the bit again.
		 */
		__atomic_store_n(&run->written[page], true, __ATOMIC_RELAXED);
		__atomic_store_n(&run->last_write[page], epoch, __ATOMIC_RELAXED);
	}
out:
	__atomic_add_fetch(&run->finished, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void a64_get(a64_run *run, uint64_t *bm)
{
	int epoch = __atomic_add_fetch(&run->gets_started, 1, __ATOMIC_ACQ_REL);

	assert_int_equal(mv_a64_vm_get_dirty_log(run->vm, 0, bm), 0);
	for (uint32_t p = 0; p < A64_PAGES; p++)
		if (bm[p / 64] >> (p % 64) & 1)
			run->last_report[p] = epoch;
}

static void a64_collect(void *opaque, const hv_dirty_gfn *g)
{
	a64_run *run = opaque;

	if (g->slot == 0 && g->offset < A64_PAGES)
		run->last_report[g->offset] = run->epoch;
}

/* One round of a ring VMM: harvest every ring, then reset (which re-protects what was harvested). */
static void a64_harvest(a64_run *run, mv_a64_vcpu **vcpus)
{
	run->epoch = __atomic_add_fetch(&run->gets_started, 1, __ATOMIC_ACQ_REL);
	for (unsigned i = 0; i < A64_VCPUS; i++)
		assert_true(mv_a64_vcpu_dirty_ring_harvest(vcpus[i], a64_collect, run) >= 0);
	assert_true(mv_a64_vm_dirty_rings_reset(run->vm) >= 0);
}

static void run_a64(uint32_t ring_entries)
{
	a64_run *run = calloc(1, sizeof(*run));
	mv_a64_vcpu *vcpus[A64_VCPUS];
	a64_worker w[A64_VCPUS];
	pthread_t t[A64_VCPUS];
	uint64_t bm[A64_PAGES / 64];
	mv_error err = { 0 };
	unsigned long gets = 0;
	hv_memslot m;

	assert_non_null(run);
	run->seed = tu_seed(0xa64);
	memset(run->last_report, 0xff, sizeof(run->last_report));
	assert_int_equal(mv_a64_vm_new(NULL, &run->vm, &err), 0);
	if (ring_entries)
		assert_int_equal(mv_a64_vm_enable_dirty_ring(run->vm, ring_entries), 0);
	tu_region_map(&run->ram, A64_PAGES * DFX_4K, DFX_2M, PROT_READ | PROT_WRITE);
	m = (hv_memslot){ .slot = 0, .flags = HV_MEM_LOG_DIRTY_PAGES, .gpa = DFX_RAM_GPA,
			  .size = run->ram.size, .hva = run->ram.base };
	assert_int_equal(mv_a64_vm_set_memslot(run->vm, &m), 0);
	for (unsigned i = 0; i < A64_VCPUS; i++) {
		assert_int_equal(mv_a64_vcpu_new(run->vm, i, &vcpus[i], &err), 0);
		w[i] = (a64_worker){ run, vcpus[i], i };
		assert_int_equal(pthread_create(&t[i], NULL, a64_vcpu_main, &w[i]), 0);
	}
	/* This thread is user space: it reads the log while the vCPUs run, then once more. */
	while (__atomic_load_n(&run->finished, __ATOMIC_ACQUIRE) < A64_VCPUS) {
		if (ring_entries)
			a64_harvest(run, vcpus);
		else
			a64_get(run, bm);
		gets++;
	}
	for (unsigned i = 0; i < A64_VCPUS; i++)
		pthread_join(t[i], NULL);
	if (ring_entries)
		a64_harvest(run, vcpus);
	else
		a64_get(run, bm);
	print_message("# %s: %u vCPUs x %u stores, %lu log reads, %lu ring-full exits, %lu -EAGAIN\n",
		      ring_entries ? "dirty ring" : "dirty bitmap", A64_VCPUS, A64_STORES, gets,
		      run->exits, run->again);
	assert_int_equal(run->bad, 0);
	for (uint32_t p = 0; p < A64_PAGES; p++) {
		if (!run->written[p])
			continue;
		if (run->last_report[p] < run->last_write[p])
			fail_msg("page %u: last stored after round %d started, last reported in round %d", p,
				 run->last_write[p], run->last_report[p]);
	}
	for (unsigned i = 0; i < A64_VCPUS; i++)
		mv_a64_vcpu_free(vcpus[i]);
	mv_a64_vm_free(run->vm);
	tu_region_unmap(&run->ram);
	free(run);
}

static void test_a64_bitmap_threads(void **state)
{
	(void)state;
	run_a64(0);
}

static void test_a64_ring_threads(void **state)
{
	(void)state;
	run_a64(256);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ring_threads),
		cmocka_unit_test(test_bitmap_threads),
		cmocka_unit_test(test_a64_bitmap_threads),
		cmocka_unit_test(test_a64_ring_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
