/*
 * Concurrency of the x86 soft VM and its access engine (run under TSan by
 * `make test`): four vCPU threads read and write the same hot pages and
 * random others through mv_x86_vcpu_access, on a plain slot and on a slot
 * that logs dirty pages, while one thread harvests the dirty log and one
 * runs MMU-notifier invalidations of random host ranges.
 *
 * Each vCPU writes its own tag at offset 8 * id of a page and reads it
 * back: the value must make the round trip and sit in host memory at the
 * page's own address. No dirty bit may be lost: a write that started
 * (sequence number taken before the access) is covered by a harvest that
 * ended after it (sequence number taken when the harvest returned) and
 * reported the page. KVM's protocol gives exactly that: a page writable
 * in EPT has its bit set (or is being harvested, the re-protection then
 * waits for the write in flight at the TLB), and a write to a protected
 * page faults and sets the bit before it lands.
 *
 * The first test harvests bitmaps (KVM_GET_DIRTY_LOG), the second rings
 * (harvest every vCPU's ring, then KVM_RESET_DIRTY_RINGS; vCPUs that find
 * their ring soft-full wait for the harvester). Afterwards every mapped
 * page is one leaf at its host address, the rmap agrees with the EPT, and
 * deleting the slots frees every table page.
 *
 * MV_SEED replays a run (each thread derives its stream from it).
 */
#include "testutil.h"

#include "soft/x86/x86_fault.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define SZ_4K 4096ull
#define NR_VCPUS 4u
#define RAM_GPA 0x40000000ull
#define RAM_PAGES 512u           /* slot 0 */
#define LOG_GPA 0x80000000ull
#define LOG_PAGES 1024u          /* slot 1, logging dirty pages */
#define NR_PAGES (RAM_PAGES + LOG_PAGES)
#define HOT_PAGES 16u            /* pages every thread keeps using: 8 plain, 8 logged */
#define ACCESSES_PER_THREAD 3000u
#define MAX_TRIES 100000u        /* an access that never completes is a bug */
#define RING_ENTRIES 256u

typedef struct shared {
	mv_x86_vm *vm;
	uint8_t *mem;                /* NR_PAGES pages: slot 0, then slot 1 */
	uint64_t seed;
	bool ring;                   /* dirty rings rather than bitmaps */
	int stop;                    /* atomic: harvester and notifier stop */
	unsigned workers_left;       /* atomic */
	uint64_t seq;                /* atomic: orders writes and harvests */
	uint64_t write_start[LOG_PAGES];   /* atomic max: last write's sequence, taken before it */
	uint64_t covered[LOG_PAGES];       /* harvester only: end sequence of the last harvest with it */
	unsigned long harvests, invalidations;
	unsigned long failures;      /* atomic */
	char failure[200];           /* the first one, under failure_lock */
	pthread_mutex_t failure_lock;
} shared;

typedef struct worker {
	shared *sh;
	mv_x86_vcpu *vcpu;
	uint64_t rng;
	uint64_t tag[NR_PAGES];      /* the last tag this vCPU wrote to each page */
	unsigned long accesses, ring_full, again;
	unsigned long actions[MV_X86_ACT_ERROR + 1];  /* EPT exits by what the fault path did */
} worker;

static uint64_t hva_of_page(const shared *sh, unsigned page)
{
	return (uint64_t)(uintptr_t)sh->mem + (uint64_t)page * SZ_4K;
}

static uint64_t gpa_of_page(unsigned page)
{
	return page < RAM_PAGES ? RAM_GPA + (uint64_t)page * SZ_4K
				: LOG_GPA + (uint64_t)(page - RAM_PAGES) * SZ_4K;
}

static void report_failure(shared *sh, const char *what, uint64_t gpa, uint64_t a, uint64_t b)
{
	if (__atomic_fetch_add(&sh->failures, 1, __ATOMIC_RELAXED) == 0) {
		pthread_mutex_lock(&sh->failure_lock);
		snprintf(sh->failure, sizeof(sh->failure), "%s at GPA 0x%" PRIx64 " (0x%" PRIx64
			 ", 0x%" PRIx64 ")", what, gpa, a, b);
		pthread_mutex_unlock(&sh->failure_lock);
	}
}

/* ---- vCPUs ---- */

static void trace(void *arg, const mv_x86_fault_event *ev)
{
	worker *w = arg;

	w->actions[ev->action]++;
}

/* One access until it is done: -EAGAIN and soft-full rings are retried. */
static bool access_done(worker *w, const mv_x86_access *a, uint64_t *value)
{
	mv_x86_outcome out;

	for (unsigned tries = 0; tries < MAX_TRIES; tries++) {
		int r = mv_x86_vcpu_access(w->vcpu, a, &out);

		if (r == -EAGAIN) {
			w->again++;
			continue;
		}
		if (r == 0 && out.result == MV_X86_DONE) {
			*value = out.value;
			return true;
		}
		if (r == 0 && out.result == MV_X86_EXIT && out.exit->reason == HV_EXIT_DIRTY_RING_FULL) {
			w->ring_full++;
			sched_yield();
			continue;
		}
		report_failure(w->sh, "access failed", a->gva, (uint64_t)-r, out.result);
		return false;
	}
	report_failure(w->sh, "access never completed (-EAGAIN, ring-full exits)", a->gva, w->again,
		       w->ring_full);
	return false;
}

static void atomic_max(uint64_t *p, uint64_t v)
{
	uint64_t old = __atomic_load_n(p, __ATOMIC_RELAXED);

	while (old < v && !__atomic_compare_exchange_n(p, &old, v, true, __ATOMIC_RELAXED,
						       __ATOMIC_RELAXED))
		;
}

/* Write the vCPU's tag into @page (logging the write's start), read it back. */
static bool write_and_check(worker *w, unsigned page, uint64_t tag)
{
	shared *sh = w->sh;
	unsigned id = w->vcpu->id;
	mv_x86_access a = { .acc = MV_X86_WRITE, .gva = gpa_of_page(page) + 8 * id, .size = 8,
			    .value = tag };
	uint64_t v;

	if (page >= RAM_PAGES)
		atomic_max(&sh->write_start[page - RAM_PAGES],
			   __atomic_add_fetch(&sh->seq, 1, __ATOMIC_SEQ_CST));
	if (!access_done(w, &a, &v))
		return false;
	w->tag[page] = tag;
	a.acc = MV_X86_READ;
	if (!access_done(w, &a, &v))
		return false;
	if (v != tag) {
		report_failure(sh, "tag lost", a.gva, v, tag);
		return false;
	}
	return true;
}

static void *worker_main(void *arg)
{
	worker *w = arg;
	unsigned id = w->vcpu->id;

	for (unsigned i = 0; i < ACCESSES_PER_THREAD; i++) {
		uint64_t r = tu_rand(&w->rng);
		unsigned hot = (unsigned)(r >> 8) % HOT_PAGES;
		unsigned page = (r & 1) ? (hot < HOT_PAGES / 2 ? hot : RAM_PAGES + hot)
					: (unsigned)((r >> 8) % NR_PAGES);
		mv_x86_access a = { .acc = MV_X86_READ, .gva = gpa_of_page(page) + 8 * id, .size = 8 };
		uint64_t v;

		if (r & 6) {
			if (!write_and_check(w, page, (uint64_t)(id + 1) << 56 | i))
				break;
		} else if (!access_done(w, &a, &v)) {
			break;
		} else if (v != w->tag[page]) {
			report_failure(w->sh, "stale value", a.gva, v, w->tag[page]);
			break;
		}
		w->accesses++;
	}
	__atomic_sub_fetch(&w->sh->workers_left, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* ---- the notifier ---- */

static void *notifier_main(void *arg)
{
	shared *sh = arg;
	uint64_t rng = sh->seed ^ 0x9e3779b97f4a7c15ull;

	while (!__atomic_load_n(&sh->stop, __ATOMIC_ACQUIRE)) {
		unsigned first = (unsigned)tu_rand_below(&rng, NR_PAGES);
		unsigned n = 1 + (unsigned)tu_rand_below(&rng, 16);
		uint64_t start = hva_of_page(sh, first), end = start + n * SZ_4K;

		mv_x86_vm_invalidate_range_start(sh->vm, start, end);
		sched_yield();
		mv_x86_vm_invalidate_range_end(sh->vm, start, end);
		sh->invalidations++;
	}
	return NULL;
}

/* ---- the harvester ---- */

/* The pages of one harvest are covered up to the sequence when it ended. */
static void cover(shared *sh, const uint64_t *bitmap)
{
	uint64_t end = __atomic_add_fetch(&sh->seq, 1, __ATOMIC_SEQ_CST);

	for (unsigned p = 0; p < LOG_PAGES; p++)
		if (bitmap[p / 64] >> (p % 64) & 1)
			sh->covered[p] = end;
	sh->harvests++;
}

static void harvest_bitmap(shared *sh)
{
	uint64_t bitmap[LOG_PAGES / 64];
	int r = mv_x86_vm_get_dirty_log(sh->vm, 1, bitmap);

	if (r) {
		report_failure(sh, "get_dirty_log failed", LOG_GPA, (uint64_t)-r, 0);
		return;
	}
	cover(sh, bitmap);
}

static void ring_collect(void *opaque, const hv_dirty_gfn *g)
{
	uint64_t *bitmap = opaque;

	if (g->slot == 1 && g->offset < LOG_PAGES)
		bitmap[g->offset / 64] |= 1ull << (g->offset % 64);
}

/* Harvest every ring, then reset: re-protection happens in the reset. */
static void harvest_rings(shared *sh, worker *w)
{
	uint64_t bitmap[LOG_PAGES / 64] = { 0 };
	int r;

	for (unsigned i = 0; i < NR_VCPUS; i++) {
		r = mv_x86_vcpu_dirty_ring_harvest(w[i].vcpu, ring_collect, bitmap);
		if (r < 0)
			report_failure(sh, "harvest failed", LOG_GPA, (uint64_t)-r, i);
	}
	r = mv_x86_vm_dirty_rings_reset(sh->vm);
	if (r < 0)
		report_failure(sh, "reset failed", LOG_GPA, (uint64_t)-r, 0);
	cover(sh, bitmap);
}

typedef struct harvester {
	shared *sh;
	worker *w;
} harvester;

static void harvest(harvester *h)
{
	if (h->sh->ring)
		harvest_rings(h->sh, h->w);
	else
		harvest_bitmap(h->sh);
}

/* Harvests until the workers are done, pausing so that rings fill up to their soft limit. */
static void *harvester_main(void *arg)
{
	harvester *h = arg;
	struct timespec pause = { .tv_nsec = 200000 };

	while (__atomic_load_n(&h->sh->workers_left, __ATOMIC_ACQUIRE)) {
		harvest(h);
		nanosleep(&pause, NULL);
	}
	return NULL;
}

/* ---- one run ---- */

typedef struct run {
	shared sh;
	worker w[NR_VCPUS];
	size_t len;
} run;

static void set_slot(mv_x86_vm *vm, unsigned id, uint32_t flags, uint64_t gpa, uint64_t size,
		     uint64_t hva)
{
	hv_memslot m = { .slot = id, .flags = flags, .gpa = gpa, .size = size, .hva = (void *)(uintptr_t)hva };

	assert_int_equal(mv_x86_vm_set_memslot(vm, &m), 0);
}

static void run_setup(run *r, bool ring)
{
	mv_error err = { 0 };

	memset(r, 0, sizeof(*r));
	r->sh.seed = tu_seed(20261121);
	r->sh.ring = ring;
	r->sh.workers_left = NR_VCPUS;
	pthread_mutex_init(&r->sh.failure_lock, NULL);
	r->len = (size_t)NR_PAGES * SZ_4K;
	r->sh.mem = mmap(NULL, r->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(r->sh.mem != MAP_FAILED);
	assert_int_equal(mv_x86_vm_new(NULL, &r->sh.vm, &err), 0);
	if (ring)
		assert_int_equal(mv_x86_vm_enable_dirty_ring(r->sh.vm, RING_ENTRIES), 0);
	set_slot(r->sh.vm, 0, 0, RAM_GPA, RAM_PAGES * SZ_4K, hva_of_page(&r->sh, 0));
	set_slot(r->sh.vm, 1, HV_MEM_LOG_DIRTY_PAGES, LOG_GPA, LOG_PAGES * SZ_4K,
		 hva_of_page(&r->sh, RAM_PAGES));
	for (unsigned i = 0; i < NR_VCPUS; i++) {
		r->w[i] = (worker){ .sh = &r->sh, .rng = r->sh.seed * (i + 1) + i };
		assert_int_equal(mv_x86_vcpu_new(r->sh.vm, i, &r->w[i].vcpu, &err), 0);
		mv_x86_vcpu_set_trace(r->w[i].vcpu, trace, &r->w[i]);
	}
}

static void run_threads(run *r)
{
	pthread_t tid[NR_VCPUS], ntid, htid;
	harvester h = { .sh = &r->sh, .w = r->w };

	assert_int_equal(pthread_create(&ntid, NULL, notifier_main, &r->sh), 0);
	assert_int_equal(pthread_create(&htid, NULL, harvester_main, &h), 0);
	for (unsigned i = 0; i < NR_VCPUS; i++)
		assert_int_equal(pthread_create(&tid[i], NULL, worker_main, &r->w[i]), 0);
	for (unsigned i = 0; i < NR_VCPUS; i++)
		pthread_join(tid[i], NULL);
	pthread_join(htid, NULL);
	__atomic_store_n(&r->sh.stop, 1, __ATOMIC_RELEASE);
	pthread_join(ntid, NULL);
	/* Quiet: the last harvest. */
	harvest(&h);
	if (r->sh.failures)
		fail_msg("%lu failures; first: %s", r->sh.failures, r->sh.failure);
	for (unsigned i = 0; i < NR_VCPUS; i++) {
		printf("# vCPU %u: %lu accesses, %lu -EAGAIN, %lu ring-full exits; EPT exits:", i,
		       r->w[i].accesses, r->w[i].again, r->w[i].ring_full);
		for (unsigned a = 0; a <= MV_X86_ACT_ERROR; a++)
			if (r->w[i].actions[a])
				printf(" %s %lu", mv_x86_action_name(a), r->w[i].actions[a]);
		printf("\n");
	}
	printf("# %lu harvests, %lu invalidations\n", r->sh.harvests, r->sh.invalidations);
	assert_int_equal(mv_x86_vm_invalidate_seq(r->sh.vm), r->sh.invalidations);
}

/* Every logged page written was reported by a harvest that ended after the write started. */
static void check_dirty(const run *r)
{
	for (unsigned p = 0; p < LOG_PAGES; p++) {
		if (!r->sh.write_start[p])
			continue;
		if (r->sh.covered[p] <= r->sh.write_start[p])
			fail_msg("logged page %u: last write started at %" PRIu64
				 ", last harvest reporting it ended at %" PRIu64,
				 p, r->sh.write_start[p], r->sh.covered[p]);
	}
}

/* Every vCPU's last tag of every page is in host memory at the page's own address. */
static void check_memory(const run *r)
{
	for (unsigned i = 0; i < NR_VCPUS; i++)
		for (unsigned p = 0; p < NR_PAGES; p++)
			assert_int_equal(*(const uint64_t *)(uintptr_t)(hva_of_page(&r->sh, p) + 8 * i),
					 r->w[i].tag[p]);
}

/* Every present leaf maps its page's own host address; the rmap agrees; the counts match. */
static void check_mappings(const run *r)
{
	mv_x86_vm *vm = r->sh.vm;
	uint64_t leaves = 0;
	mv_ept_stats st;
	char why[200];

	for (unsigned p = 0; p < NR_PAGES; p++) {
		mv_pte spte = 0;
		int level = 0;

		assert_int_equal(mv_ept_get_leaf(&vm->ept, gpa_of_page(p), &spte, &level), MV_PGT_OK);
		if (!mv_ept_is_present(spte))
			continue;
		assert_int_equal(level, 3);
		assert_int_equal(spte & MV_EPT_ADDR_MASK, hva_of_page(&r->sh, p));
		leaves++;
	}
	mv_ept_get_stats(&vm->ept, &st);
	assert_int_equal(st.leaves[3], leaves);
	assert_int_equal(st.leaves[0] + st.leaves[1] + st.leaves[2], 0);
	assert_int_equal(st.mmio_sptes, 0);
	if (!x86_rmap_check(vm, why, sizeof(why)))
		fail_msg("%s", why);
}

/* Deleting the slots frees every table page; then everything is freed. */
static void run_free(run *r)
{
	mv_x86_vm *vm = r->sh.vm;
	mv_ept_stats st;

	set_slot(vm, 0, 0, RAM_GPA, 0, 0);
	set_slot(vm, 1, 0, LOG_GPA, 0, 0);
	mv_ept_get_stats(&vm->ept, &st);
	assert_int_equal(st.leaves[3], 0);
	assert_int_equal(st.tables, 0);
	assert_int_equal(mv_pgt_pool_live_pages(vm->pool), mv_pgt_root_pages(&vm->ept.pgt));
	for (unsigned i = 0; i < NR_VCPUS; i++)
		mv_x86_vcpu_free(r->w[i].vcpu);
	mv_x86_vm_free(vm);
	munmap(r->sh.mem, r->len);
	pthread_mutex_destroy(&r->sh.failure_lock);
}

static void check_run(bool ring)
{
	run r;

	run_setup(&r, ring);
	run_threads(&r);
	check_dirty(&r);
	check_memory(&r);
	check_mappings(&r);
	run_free(&r);
}

static void test_bitmap_harvest(void **state)
{
	(void)state;
	check_run(false);
}

static void test_ring_harvest(void **state)
{
	(void)state;
	check_run(true);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bitmap_harvest),
		cmocka_unit_test(test_ring_harvest),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
