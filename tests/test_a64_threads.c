/*
 * Concurrent stage-2 faults on the arm64 soft VM (run under TSan by
 * `make test`): four vCPU threads fault the same hot pages and random
 * others through a64_handle_guest_abort -- reads, writes, and on a
 * dirty-logging slot read-then-write pairs that relax permissions -- while
 * a fifth thread runs MMU-notifier invalidations over random host ranges.
 * Afterwards every page is mapped exactly once, at its own host address,
 * every logged page written is dirty, and deleting the slots frees every
 * table page.
 *
 * MV_SEED replays a run (each thread derives its stream from it).
 */
#include "testutil.h"

#include "soft/arm64/a64_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#define SZ_4K 4096ull
#define NR_VCPUS 4u
#define RAM_GPA 0x40000000ull
#define RAM_PAGES 512u           /* slot 0 */
#define LOG_GPA 0x80000000ull
#define LOG_PAGES 256u           /* slot 1, logging dirty pages */
#define HOT_PAGES 16u            /* the pages every thread keeps faulting */
#define FAULTS_PER_THREAD 3000u
#define MAX_TRIES 100000u        /* a fault that never settles is a bug */

typedef struct shared {
	mv_a64_vm *vm;
	uint8_t *mem;                /* RAM_PAGES + LOG_PAGES pages */
	uint64_t seed;
	int stop;                    /* atomic: the notifier stops */
	unsigned long invalidations;
	unsigned long failures;      /* atomic: unexpected actions seen by workers */
	char failure[200];           /* the first one, set under failure_lock */
	pthread_mutex_t failure_lock;
} shared;

typedef struct worker {
	shared *sh;
	mv_a64_vcpu *vcpu;
	uint64_t rng;
	unsigned long mapped, relaxed, retries;
} worker;

static uint64_t hva_of_page(const shared *sh, unsigned page)
{
	return (uint64_t)(uintptr_t)sh->mem + (uint64_t)page * SZ_4K;
}

/* Page index in the host range -> its IPA (slot 0 first, then the logging slot). */
static uint64_t ipa_of_page(unsigned page)
{
	return page < RAM_PAGES ? RAM_GPA + (uint64_t)page * SZ_4K
				: LOG_GPA + (uint64_t)(page - RAM_PAGES) * SZ_4K;
}

static void report_failure(shared *sh, const char *what, const mv_a64_abort_event *ev, uint64_t ipa)
{
	if (__atomic_fetch_add(&sh->failures, 1, __ATOMIC_RELAXED) == 0) {
		pthread_mutex_lock(&sh->failure_lock);
		snprintf(sh->failure, sizeof(sh->failure), "%s at IPA 0x%" PRIx64 ": %s (%s)", what, ipa,
			 mv_a64_action_name(ev->action), ev->detail);
		pthread_mutex_unlock(&sh->failure_lock);
	}
}

static mv_a64_abort_event do_fault(mv_a64_vcpu *vcpu, uint64_t esr, uint64_t ipa)
{
	a64_fault f = { .esr = esr, .hpfar = MV_HPFAR_FIPA(ipa), .far = ipa };
	mv_a64_abort_event ev = { .esr_el2 = esr };

	a64_handle_guest_abort(vcpu, &f, &ev);
	return ev;
}

static uint64_t esr_dabt(unsigned fsc, bool write)
{
	return (uint64_t)MV_ESR_EC_DABT_LOW << MV_ESR_EC_SHIFT | MV_ESR_IL | fsc | (write ? MV_ESR_WNR : 0);
}

/* A translation fault retried until the page is mapped (RETRY: raced, fault again). */
static void map_page(worker *w, unsigned page, bool write)
{
	uint64_t ipa = ipa_of_page(page);

	for (unsigned tries = 0; tries < MAX_TRIES; tries++) {
		mv_a64_abort_event ev = do_fault(w->vcpu, esr_dabt(0x07, write), ipa);

		if (ev.action == MV_A64_ACT_MAPPED) {
			w->mapped++;
			return;
		}
		if (ev.action != MV_A64_ACT_RETRY) {
			report_failure(w->sh, "translation fault", &ev, ipa);
			return;
		}
		w->retries++;
	}
	report_failure(w->sh, "translation fault never settled", &(mv_a64_abort_event){ 0 }, ipa);
}

/*
 * A write to a logging page: map it read-only first, then take the write
 * permission fault, which relaxes the page -- unless a notifier zapped it
 * meanwhile (RETRY), when the write maps it again.
 */
static void write_logged_page(worker *w, unsigned page)
{
	uint64_t ipa = ipa_of_page(page);
	mv_a64_abort_event ev;

	map_page(w, page, false);
	ev = do_fault(w->vcpu, esr_dabt(0x0f, true), ipa);
	if (ev.action == MV_A64_ACT_RELAXED)
		w->relaxed++;
	else if (ev.action == MV_A64_ACT_RETRY)
		map_page(w, page, true);
	else
		report_failure(w->sh, "permission fault", &ev, ipa);
}

static void *worker_main(void *arg)
{
	worker *w = arg;

	for (unsigned i = 0; i < FAULTS_PER_THREAD; i++) {
		uint64_t r = tu_rand(&w->rng);
		unsigned page = (r & 1) ? (unsigned)(r >> 8) % HOT_PAGES
					: (unsigned)((r >> 8) % (RAM_PAGES + LOG_PAGES));

		if (page >= RAM_PAGES && (r & 2))
			write_logged_page(w, page);
		else
			map_page(w, page, r & 4);
	}
	return NULL;
}

/* MMU-notifier invalidations of 1..16 random host pages until told to stop. */
static void *notifier_main(void *arg)
{
	shared *sh = arg;
	uint64_t rng = sh->seed ^ 0x9e3779b97f4a7c15ull;

	while (!__atomic_load_n(&sh->stop, __ATOMIC_ACQUIRE)) {
		unsigned first = (unsigned)tu_rand_below(&rng, RAM_PAGES + LOG_PAGES);
		unsigned n = 1 + (unsigned)tu_rand_below(&rng, 16);
		uint64_t start = hva_of_page(sh, first), end = start + n * SZ_4K;

		mv_a64_vm_invalidate_range_start(sh->vm, start, end);
		sched_yield();
		mv_a64_vm_invalidate_range_end(sh->vm, start, end);
		sh->invalidations++;
	}
	return NULL;
}

static void set_slot(mv_a64_vm *vm, unsigned id, uint32_t flags, uint64_t gpa, uint64_t size, uint64_t hva)
{
	hv_memslot m = { .slot = id, .flags = flags, .gpa = gpa, .size = size, .hva = (void *)(uintptr_t)hva };

	assert_int_equal(mv_a64_vm_set_memslot(vm, &m), 0);
}

/* One run: the VM, its two slots over one host mapping, a vCPU per worker. */
typedef struct run {
	shared sh;
	worker w[NR_VCPUS];
	size_t len;
} run;

static void run_setup(run *r)
{
	mv_error err = { 0 };

	memset(r, 0, sizeof(*r));
	r->sh.seed = tu_seed(20261121);
	pthread_mutex_init(&r->sh.failure_lock, NULL);
	r->len = (size_t)(RAM_PAGES + LOG_PAGES) * SZ_4K;
	r->sh.mem = mmap(NULL, r->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(r->sh.mem != MAP_FAILED);
	assert_int_equal(mv_a64_vm_new(NULL, &r->sh.vm, &err), 0);
	set_slot(r->sh.vm, 0, 0, RAM_GPA, RAM_PAGES * SZ_4K, hva_of_page(&r->sh, 0));
	set_slot(r->sh.vm, 1, HV_MEM_LOG_DIRTY_PAGES, LOG_GPA, LOG_PAGES * SZ_4K,
		 hva_of_page(&r->sh, RAM_PAGES));
	for (unsigned i = 0; i < NR_VCPUS; i++) {
		r->w[i] = (worker){ .sh = &r->sh, .rng = r->sh.seed * (i + 1) + i };
		assert_int_equal(mv_a64_vcpu_new(r->sh.vm, i, &r->w[i].vcpu, &err), 0);
		r->w[i].vcpu->regs.pc = RAM_GPA;
	}
}

/* The workers run @fn while the notifier invalidates; then both are joined. */
static void run_threads(run *r, void *(*fn)(void *))
{
	pthread_t tid[NR_VCPUS], ntid;

	assert_int_equal(pthread_create(&ntid, NULL, notifier_main, &r->sh), 0);
	for (unsigned i = 0; i < NR_VCPUS; i++)
		assert_int_equal(pthread_create(&tid[i], NULL, fn, &r->w[i]), 0);
	for (unsigned i = 0; i < NR_VCPUS; i++)
		pthread_join(tid[i], NULL);
	__atomic_store_n(&r->sh.stop, 1, __ATOMIC_RELEASE);
	pthread_join(ntid, NULL);
	if (r->sh.failures)
		fail_msg("%lu unexpected outcomes; first: %s", r->sh.failures, r->sh.failure);
	for (unsigned i = 0; i < NR_VCPUS; i++)
		printf("# vCPU %u: %lu mapped, %lu relaxed, %lu retries\n", i, r->w[i].mapped,
		       r->w[i].relaxed, r->w[i].retries);
	printf("# %lu invalidations, sequence %" PRIu64 "\n", r->sh.invalidations,
	       mv_a64_vm_invalidate_seq(r->sh.vm));
	assert_int_equal(mv_a64_vm_invalidate_seq(r->sh.vm), r->sh.invalidations);
}

/*
 * Quiet now: fault every page (logged pages by a write), then every page
 * is one 4 KiB leaf at its own host address, every logged page is dirty,
 * and deleting the slots frees every table page.
 */
static void run_verify_and_free(run *r)
{
	shared *sh = &r->sh;
	const mv_memslot *logslot;
	mv_s2_stats st;

	for (unsigned p = 0; p < RAM_PAGES + LOG_PAGES; p++)
		map_page(&r->w[0], p, p >= RAM_PAGES);
	assert_int_equal(sh->failures, 0);
	for (unsigned p = 0; p < RAM_PAGES + LOG_PAGES; p++) {
		mv_pte pte = 0;
		int level = -1;

		assert_int_equal(mv_a64_vm_s2_leaf(sh->vm, ipa_of_page(p), &pte, &level), MV_PGT_OK);
		assert_true(pte & MV_S2_VALID);
		assert_int_equal(level, 3);
		assert_int_equal(mv_s2_pte_oa(pte, 12), hva_of_page(sh, p));
		if (p >= RAM_PAGES)
			assert_true(pte & MV_S2_S2AP_W);
	}
	mv_a64_vm_s2_stats(sh->vm, &st);
	assert_int_equal(st.leaves[3], RAM_PAGES + LOG_PAGES);
	assert_int_equal(st.leaves[2] + st.leaves[1] + st.leaves[0], 0);
	pthread_rwlock_rdlock(&sh->vm->slots_lock);
	logslot = mv_memslots_get(sh->vm->slots, 0, 1);
	for (unsigned p = 0; p < LOG_PAGES; p++)
		assert_true(logslot->dirty_bitmap[p / 64] >> (p % 64) & 1);
	pthread_rwlock_unlock(&sh->vm->slots_lock);

	set_slot(sh->vm, 0, 0, RAM_GPA, 0, 0);
	set_slot(sh->vm, 1, 0, LOG_GPA, 0, 0);
	mv_a64_vm_s2_stats(sh->vm, &st);
	assert_int_equal(st.leaves[3], 0);
	assert_int_equal(st.tables, 0);
	assert_int_equal(mv_pgt_pool_live_pages(sh->vm->pool), mv_pgt_root_pages(&sh->vm->s2.pgt));

	for (unsigned i = 0; i < NR_VCPUS; i++)
		mv_a64_vcpu_free(r->w[i].vcpu);
	mv_a64_vm_free(sh->vm);
	munmap(sh->mem, r->len);
	pthread_mutex_destroy(&sh->failure_lock);
}

/* Constructed aborts straight into a64_handle_guest_abort. */
static void test_handler_faults_and_invalidations(void **state)
{
	run r;

	(void)state;
	run_setup(&r);
	run_threads(&r, worker_main);
	run_verify_and_free(&r);
}

/* One exec until it is done (-EAGAIN: invalidations kept racing it; run it again). */
static bool exec_done(worker *w, const mv_a64_insn *insn, mv_a64_outcome *out)
{
	for (unsigned tries = 0; tries < MAX_TRIES; tries++) {
		int r = mv_a64_vcpu_exec(w->vcpu, insn, out);

		if (r == -EAGAIN) {
			w->retries++;
			continue;
		}
		if (r == 0 && out->result == MV_A64_DONE)
			return true;
		break;
	}
	report_failure(w->sh, insn->text, &(mv_a64_abort_event){ .action = MV_A64_ACT_ERROR }, insn->addr);
	return false;
}

/*
 * Through the access engine (stage 1 off: VA = IPA): each vCPU stores its
 * own tag at offset 8 * id of random pages with str and loads it back
 * with ldr; the value makes the round trip and sits in host memory.
 */
static void *exec_worker_main(void *arg)
{
	worker *w = arg;
	unsigned id = w->vcpu->id;
	mv_a64_insn st = { .op = MV_A64_STORE, .size = 8, .rt = 1, .rn = MV_A64_RN_ABS, .sf = true,
			   .text = "str x1" };
	mv_a64_insn ld = st;
	mv_a64_outcome out;

	ld.op = MV_A64_LOAD;
	ld.rt = 2;
	ld.text = "ldr x2";
	for (unsigned i = 0; i < FAULTS_PER_THREAD; i++) {
		uint64_t r = tu_rand(&w->rng);
		unsigned page = (r & 1) ? (unsigned)(r >> 8) % HOT_PAGES
					: (unsigned)((r >> 8) % (RAM_PAGES + LOG_PAGES));
		uint64_t tag = (uint64_t)(id + 1) << 56 | i;
		const uint64_t *host = (const uint64_t *)(uintptr_t)(hva_of_page(w->sh, page) + 8 * id);

		st.addr = ld.addr = ipa_of_page(page) + 8 * id;
		w->vcpu->regs.x[1] = tag;
		if (!exec_done(w, &st, &out) || !exec_done(w, &ld, &out))
			return NULL;
		if (out.value[0] != tag || w->vcpu->regs.x[2] != tag ||
		    __atomic_load_n(host, __ATOMIC_RELAXED) != tag) {
			report_failure(w->sh, "tag lost", &(mv_a64_abort_event){ .action = MV_A64_ACT_ERROR },
				       ld.addr);
			return NULL;
		}
		w->mapped++;
	}
	return NULL;
}

static void test_exec_faults_and_invalidations(void **state)
{
	run r;

	(void)state;
	run_setup(&r);
	run_threads(&r, exec_worker_main);
	run_verify_and_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_handler_faults_and_invalidations),
		cmocka_unit_test(test_exec_faults_and_invalidations),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
