/*
 * The x86 TDP fault path under concurrency: four vCPU threads take EPT
 * violations on random pages of two slots (one dirty-logged, so writes go
 * through the lock-free fast path after every harvest) while a notifier
 * thread invalidates random host ranges (zaps, table frees) and harvests
 * the dirty log (re-protection). Afterwards the rmap matches the EPT,
 * every leaf maps its page's host address, and no write was lost from the
 * dirty log. Run under TSan by make test; MV_SEED replays the random
 * streams (the interleaving is the scheduler's).
 */
#include "testutil.h"

#include "soft/x86/x86_fault.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define SZ_4K (1ull << 12)
#define SZ_2M (1ull << 21)
#define NR_VCPUS 4
#define SLOT_SIZE (8ull << 20)
#define SLOT_PAGES (SLOT_SIZE >> 12)
#define GPA0 0x40000000ull     /* slot 0: plain, hugetlb-declared */
#define GPA1 0x80000000ull     /* slot 1: dirty-logged */
#define FAULTS_PER_VCPU 4000

typedef struct shared {
	mv_x86_vm *vm;
	mv_x86_vcpu *vcpus[NR_VCPUS];
	uint8_t *ram[2];
	uint64_t seed;
	int stop;                          /* atomic */
	uint8_t written[SLOT_PAGES];       /* atomic: slot 1 pages a handled write fault made writable */
	uint64_t harvested[SLOT_PAGES / 64];
	int errors;                        /* atomic; the first one's sentence below */
	char error[200];
} shared;

typedef struct vcpu_arg {
	shared *s;
	unsigned id;
} vcpu_arg;

static uint64_t acc_bit(mv_x86_acc acc)
{
	return acc == MV_X86_WRITE ? MV_EPT_VIOL_ACC_WRITE :
	       acc == MV_X86_FETCH ? MV_EPT_VIOL_ACC_INSTR : MV_EPT_VIOL_ACC_READ;
}

/*
 * The qualification the CPU would report: the leaf's rights, read under
 * the vCPU's TLB lock as the access engine walks (INVEPT waits for it).
 */
static uint64_t qual_now(mv_x86_vcpu *vcpu, mv_x86_vm *vm, uint64_t gpa, mv_x86_acc acc)
{
	uint64_t q = acc_bit(acc) | MV_EPT_VIOL_GVA_VALID | MV_EPT_VIOL_GVA_TRANSLATED;
	mv_pte spte = 0;
	int level;

	mv_tlb_lock(vcpu->tlb);
	mv_ept_get_leaf(mv_x86_vm_ept(vm), gpa, &spte, &level);
	mv_tlb_unlock(vcpu->tlb);
	if (mv_ept_is_present(spte))
		q |= (spte & MV_EPT_RWX) << 3;
	return q;
}

static void *vcpu_thread(void *p)
{
	vcpu_arg *a = p;
	shared *s = a->s;
	mv_x86_vcpu *vcpu = s->vcpus[a->id];
	uint64_t rng = s->seed * 31 + a->id + 1;

	for (int i = 0; i < FAULTS_PER_VCPU; i++) {
		bool logged = tu_rand_below(&rng, 2);
		/* Hot pages (the first 64) half of the time, so vCPUs race on them. */
		uint64_t page = tu_rand_below(&rng, 2) ? tu_rand_below(&rng, 64) : tu_rand_below(&rng, SLOT_PAGES);
		uint64_t gpa = (logged ? GPA1 : GPA0) + (page << 12);
		mv_x86_acc acc = (mv_x86_acc)tu_rand_below(&rng, 3);
		mv_x86_fault_event ev = { .exit_qual = qual_now(vcpu, s->vm, gpa, acc), .gpa = gpa,
					  .len = 8, .is_write = acc == MV_X86_WRITE };

		x86_handle_ept_violation(vcpu, &ev);
		/* cmocka cannot fail from this thread: keep the first error for the main one. */
		if (ev.action == MV_X86_ACT_ERROR && __atomic_fetch_add(&s->errors, 1, __ATOMIC_ACQ_REL) == 0)
			snprintf(s->error, sizeof(s->error), "vCPU %u: %s", a->id, ev.detail);
		if (logged && acc == MV_X86_WRITE &&
		    (ev.action == MV_X86_ACT_FAST || ev.action == MV_X86_ACT_MAPPED))
			__atomic_store_n(&s->written[page], 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void harvest(shared *s)
{
	uint64_t bitmap[SLOT_PAGES / 64];

	if (mv_x86_vm_get_dirty_log(s->vm, 1, bitmap) != 0)
		abort();
	for (size_t i = 0; i < SLOT_PAGES / 64; i++)
		s->harvested[i] |= bitmap[i];
}

static void *notifier_thread(void *p)
{
	shared *s = p;
	uint64_t rng = s->seed * 7 + 99;

	while (!__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE)) {
		unsigned which = (unsigned)tu_rand_below(&rng, 2);
		uint64_t hva = (uint64_t)(uintptr_t)s->ram[which] + (tu_rand_below(&rng, SLOT_PAGES) << 12);
		uint64_t len = (1 + tu_rand_below(&rng, 1024)) << 12;

		if (tu_rand_below(&rng, 4) == 0) {
			harvest(s);
			continue;
		}
		mv_x86_vm_invalidate_range_start(s->vm, hva, hva + len);
		mv_x86_vm_invalidate_range_end(s->vm, hva, hva + len);
	}
	return NULL;
}

static void test_parallel_faults(void **state)
{
	shared *s = calloc(1, sizeof(*s));
	mv_x86_vm_config cfg = { .prefetch = true, .lazy_split = true };
	pthread_t vt[NR_VCPUS], nt;
	vcpu_arg args[NR_VCPUS];
	mv_error err = { 0 };
	mv_x86_vm_stats st;
	void *raw[2];
	char why[200];
	bool ok;

	(void)state;
	assert_non_null(s);
	s->seed = tu_seed(0x7f4a11e1ull);
	assert_int_equal(mv_x86_vm_new(&cfg, &s->vm, &err), 0);
	for (unsigned i = 0; i < 2; i++) {
		raw[i] = mmap(NULL, SLOT_SIZE + SZ_2M, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		assert_true(raw[i] != MAP_FAILED);
		s->ram[i] = (uint8_t *)(((uintptr_t)raw[i] + SZ_2M - 1) & ~(uintptr_t)(SZ_2M - 1));
	}
	assert_int_equal(mv_soft_host_declare(mv_x86_vm_host(s->vm), (uint64_t)(uintptr_t)s->ram[0],
					      SLOT_SIZE, MV_HOST_BACKING_HUGETLB, SZ_2M),
			 0);
	assert_int_equal(mv_x86_vm_set_memslot(s->vm, &(hv_memslot){ 0, 0, GPA0, SLOT_SIZE, s->ram[0] }), 0);
	assert_int_equal(mv_x86_vm_set_memslot(s->vm, &(hv_memslot){ 1, HV_MEM_LOG_DIRTY_PAGES, GPA1,
								     SLOT_SIZE, s->ram[1] }),
			 0);
	for (unsigned i = 0; i < NR_VCPUS; i++)
		assert_int_equal(mv_x86_vcpu_new(s->vm, i, &s->vcpus[i], &err), 0);

	assert_int_equal(pthread_create(&nt, NULL, notifier_thread, s), 0);
	for (unsigned i = 0; i < NR_VCPUS; i++) {
		args[i] = (vcpu_arg){ s, i };
		assert_int_equal(pthread_create(&vt[i], NULL, vcpu_thread, &args[i]), 0);
	}
	for (unsigned i = 0; i < NR_VCPUS; i++)
		pthread_join(vt[i], NULL);
	__atomic_store_n(&s->stop, 1, __ATOMIC_RELEASE);
	pthread_join(nt, NULL);
	if (s->errors)
		fail_msg("%d faults failed, the first: %s", s->errors, s->error);

	pthread_rwlock_wrlock(&s->vm->mmu_lock);
	ok = x86_rmap_check(s->vm, why, sizeof(why));
	pthread_rwlock_unlock(&s->vm->mmu_lock);
	if (!ok)
		fail_msg("rmap: %s", why);
	harvest(s);
	for (uint64_t page = 0; page < SLOT_PAGES; page++) {
		if (s->written[page] && !((s->harvested[page / 64] >> (page % 64)) & 1))
			fail_msg("the write to slot 1 page %" PRIu64 " is missing from the dirty log", page);
	}
	mv_x86_vm_get_stats(s->vm, &st);
	printf("test_parallel_faults: %" PRIu64 " faults: mapped 2M/4K %" PRIu64 "/%" PRIu64 ", fast %" PRIu64
	       ", retries %" PRIu64 ", prefetched %" PRIu64 "\n",
	       st.faults, st.mapped[2], st.mapped[3], st.fast_fixed, st.retries, st.prefetched);
	for (unsigned i = 0; i < NR_VCPUS; i++)
		mv_x86_vcpu_free(s->vcpus[i]);
	mv_x86_vm_free(s->vm);
	for (unsigned i = 0; i < 2; i++)
		munmap(raw[i], SLOT_SIZE + SZ_2M);
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parallel_faults),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
