/*
 * The soft accelerator under concurrency (run under ThreadSanitizer by
 * make test): four vCPUs, each run by its own thread, whose programs mix
 * RAM writes, coalesced MMIO writes, MMIO reads answered by their runner
 * and ioeventfd writes; meanwhile one thread kicks random vCPUs, one drains
 * the coalesced ring and one registers and unregisters the ioeventfd.
 * Afterwards every write is accounted for exactly once (drained or exited;
 * signalled or exited), the drained writes of each vCPU are in program
 * order, every read got its runner's answer and RAM holds the last values.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "testutil.h"

#include "memvirt/hv.h"
#include "memvirt/hv_soft.h"

#define NR_VCPUS 4
#define STEPS 2000
#define RAM_GPA 0x40000000ull
#define RAM_SIZE (NR_VCPUS * 4096ull)
#define ZONE_GPA 0x10000000ull          /* coalesced: [ZONE_GPA, +0x1000) */
#define READ_GPA 0x10003000ull          /* MMIO reads the runners answer */
#define EVENT_GPA 0x10002000ull         /* the ioeventfd (8 bytes, any data) */

typedef struct world world;

typedef struct cpu {
	world *w;
	unsigned id;
	hv_vcpu *vcpu;
	pthread_t runner;
	/* runner-side counts */
	unsigned long zone_exits, event_exits, reads, intrs;
	uint64_t last_drained;            /* drainer: the last sequence number seen + 1 */
} cpu;

struct world {
	hv_vm *vm;
	uint8_t *ram;
	int efd;
	cpu cpus[NR_VCPUS];
	int running;                      /* atomic: runners not finished */
	unsigned long drained;            /* drainer thread only, read after join */
	unsigned long order_errors;
	unsigned long toggles;
};

/* The answer to vCPU @id's @n-th read. */
static uint64_t answer(unsigned id, uint64_t n)
{
	return n * 3 + id;
}

/* The program: returns the number of reads that got a wrong answer. */
static int program(hv_soft_cpu *c, void *arg)
{
	cpu *me = arg;
	uint64_t v, nreads = 0;
	int bad = 0;

	for (uint64_t i = 0; i < STEPS; i++) {
		if (hv_soft_write(c, RAM_GPA + me->id * 4096ull + (i % 512) * 8, 8, i) ||
		    hv_soft_write(c, ZONE_GPA + me->id * 8, 8, (uint64_t)me->id << 32 | i))
			return -1;
		if (i % 16 == 0) {
			if (hv_soft_read(c, READ_GPA + me->id * 8, 8, &v))
				return -1;
			bad += v != answer(me->id, nreads++);
		}
		if (i % 8 == 0 && hv_soft_write(c, EVENT_GPA, 8, i))
			return -1;
	}
	return bad;
}

static void *runner(void *arg)
{
	cpu *me = arg;
	uint64_t nreads = 0;
	hv_exit *e;

	for (;;) {
		assert_int_equal(hv_vcpu_run(me->vcpu, &e), 0);
		if (e->reason == HV_EXIT_HLT)
			break;
		if (e->reason == HV_EXIT_INTR) {
			me->intrs++;
			continue;
		}
		assert_int_equal(e->reason, HV_EXIT_MMIO);
		if (!e->mmio.is_write) {
			uint64_t v = answer(me->id, nreads++);

			assert_int_equal(e->mmio.gpa, READ_GPA + me->id * 8);
			memcpy(e->mmio.data, &v, 8);
			me->reads++;
		} else if (e->mmio.gpa == EVENT_GPA) {
			me->event_exits++;     /* the ioeventfd was unregistered at that moment */
		} else {
			assert_int_equal(e->mmio.gpa, ZONE_GPA + me->id * 8);
			me->zone_exits++;      /* the ring was full */
		}
	}
	__atomic_fetch_sub(&me->w->running, 1, __ATOMIC_RELEASE);
	return NULL;
}

static bool still_running(world *w)
{
	return __atomic_load_n(&w->running, __ATOMIC_ACQUIRE) > 0;
}

static void *kicker(void *arg)
{
	world *w = arg;
	uint64_t rng = 12345;

	while (still_running(w)) {
		hv_vcpu_kick(w->cpus[tu_rand_below(&rng, NR_VCPUS)].vcpu);
		sched_yield();
	}
	return NULL;
}

static void drained_write(void *opaque, const hv_coalesced_write *cw)
{
	world *w = opaque;
	uint64_t v;
	cpu *c;

	memcpy(&v, cw->data, 8);
	assert_true((v >> 32) < NR_VCPUS);
	c = &w->cpus[v >> 32];
	assert_int_equal(cw->addr, ZONE_GPA + c->id * 8);
	if ((uint32_t)v < c->last_drained)
		w->order_errors++;
	c->last_drained = (uint32_t)v + 1;
	w->drained++;
}

static void *drainer(void *arg)
{
	world *w = arg;

	while (still_running(w)) {
		hv_coalesced_drain(w->vm, drained_write, w);
		sched_yield();
	}
	hv_coalesced_drain(w->vm, drained_write, w);
	return NULL;
}

static void *toggler(void *arg)
{
	world *w = arg;
	hv_ioeventfd io = { .bus = HV_BUS_MMIO, .addr = EVENT_GPA, .len = 8, .fd = w->efd };

	while (still_running(w)) {
		assert_int_equal(hv_ioeventfd_del(w->vm, &io), 0);
		sched_yield();
		assert_int_equal(hv_ioeventfd_add(w->vm, &io), 0);
		w->toggles++;
		sched_yield();
	}
	return NULL;
}

static void check_arch(hv_arch arch)
{
	hv_vm_config cfg = { .arch = arch };
	hv_ioeventfd io = { .bus = HV_BUS_MMIO, .addr = EVENT_GPA, .len = 8 };
	hv_memslot slot = { .slot = 0, .gpa = RAM_GPA, .size = RAM_SIZE };
	unsigned long zone_exits = 0, event_exits = 0, intrs = 0;
	pthread_t tk, td, tt;
	uint64_t signals = 0;
	mv_error err = { 0 };
	world *w = calloc(1, sizeof(*w));

	assert_int_equal(hv_vm_create("soft", &cfg, &w->vm, &err), 0);
	w->ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(w->ram != MAP_FAILED);
	slot.hva = w->ram;
	assert_int_equal(hv_set_memslot(w->vm, &slot), 0);
	assert_int_equal(hv_coalesced_zone_add(w->vm, HV_BUS_MMIO, ZONE_GPA, 0x1000), 0);
	w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	io.fd = w->efd;
	assert_int_equal(hv_ioeventfd_add(w->vm, &io), 0);
	w->running = NR_VCPUS;
	for (unsigned i = 0; i < NR_VCPUS; i++) {
		cpu *c = &w->cpus[i];

		c->w = w;
		c->id = i;
		assert_int_equal(hv_vcpu_create(w->vm, i, &c->vcpu, &err), 0);
		assert_int_equal(hv_soft_vcpu_set_program(c->vcpu, program, c), 0);
	}
	for (unsigned i = 0; i < NR_VCPUS; i++)
		assert_int_equal(pthread_create(&w->cpus[i].runner, NULL, runner, &w->cpus[i]), 0);
	assert_int_equal(pthread_create(&tk, NULL, kicker, w), 0);
	assert_int_equal(pthread_create(&td, NULL, drainer, w), 0);
	assert_int_equal(pthread_create(&tt, NULL, toggler, w), 0);
	for (unsigned i = 0; i < NR_VCPUS; i++)
		pthread_join(w->cpus[i].runner, NULL);
	pthread_join(tk, NULL);
	pthread_join(td, NULL);
	pthread_join(tt, NULL);

	if (read(w->efd, &signals, sizeof(signals)) != sizeof(signals))
		signals = 0;
	for (unsigned i = 0; i < NR_VCPUS; i++) {
		cpu *c = &w->cpus[i];
		int ret = -2;

		assert_true(hv_soft_vcpu_program_done(c->vcpu, &ret));
		assert_int_equal(ret, 0);
		assert_int_equal(c->reads, (STEPS + 15) / 16);
		for (unsigned s = STEPS - 512; s < STEPS; s++)
			assert_int_equal(*(uint64_t *)(w->ram + i * 4096ull + (s % 512) * 8), s);
		zone_exits += c->zone_exits;
		event_exits += c->event_exits;
		intrs += c->intrs;
		hv_vcpu_destroy(c->vcpu);
	}
	printf("# %s: %lu coalesced writes drained, %lu exited (ring full); %lu ioeventfd signals, "
	       "%lu exits (%lu toggles); %lu kicked runs\n", arch == HV_ARCH_X86_64 ? "x86" : "arm64",
	       w->drained, zone_exits, (unsigned long)signals, event_exits, w->toggles, intrs);
	assert_int_equal(w->order_errors, 0);
	assert_int_equal(w->drained + zone_exits, NR_VCPUS * STEPS);
	assert_int_equal(signals + event_exits, NR_VCPUS * ((STEPS + 7) / 8));
	hv_vm_destroy(w->vm);
	close(w->efd);
	munmap(w->ram, RAM_SIZE);
	free(w);
}

static void test_threads_x86(void **state)
{
	(void)state;
	check_arch(HV_ARCH_X86_64);
}

static void test_threads_arm64(void **state)
{
	(void)state;
	check_arch(HV_ARCH_ARM64);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_threads_x86),
		cmocka_unit_test(test_threads_arm64),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
