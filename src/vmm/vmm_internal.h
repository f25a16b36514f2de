/*
 * The VMM object shared by vmm.c (build and lifetime), vcpu.c (threads,
 * exit dispatch, pause/resume) and vmm_dirty.c (dirty-round checks and
 * dirty-rate sampling).
 */
#ifndef MEMVIRT_VMM_INTERNAL_H
#define MEMVIRT_VMM_INTERNAL_H

#include "memvirt/hv.h"
#include "memvirt/hv_memory.h"
#include "memvirt/vmm.h"
#include "vmm/machine_x86.h"
#include "vmm/soft_guest.h"

#include <pthread.h>
#include <stdatomic.h>

#define VMM_MAX_VCPUS 64

typedef struct vmm_vcpu {
	vmm *v;
	hv_vcpu *hv;
	unsigned id;
	pthread_t thread;
	bool started;
} vmm_vcpu;

/* One vCPU's dirty working set (test device WS_BASE/WS_PAGES). */
typedef struct vmm_ws {
	uint64_t gpa, pages;
} vmm_ws;

struct vmm {
	vmm_config cfg;
	mv_memory *mem;
	vmm_x86_machine *machine;
	hv_vm *vm;
	hv_mem *hm;
	vmm_pvh_boot boot;
	vmm_soft_guest *soft;     /* soft accelerator: the test guest's access programs */
	vmm_vcpu vcpus[VMM_MAX_VCPUS];
	unsigned nr_vcpus;

	/* Run control: vCPU threads check these after every exit. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	atomic_bool stop;
	atomic_bool pause;
	unsigned parked;          /* vCPUs parked for a pause (under lock) */
	unsigned running;         /* vCPU threads not yet returned (under lock) */
	vmm_result res;           /* first end wins (under lock) */
	bool ended;

	/* Guest console line assembly is the caller's; we only forward bytes. */
	vmm_ws ws[VMM_MAX_VCPUS];
	pthread_mutex_t dirty_lock; /* serialises dirty syncs from vCPU threads */
	pthread_t rate_thread;
	bool rate_started;

	uint64_t t0_ns;           /* process start (cfg.t_process_start_ns or vmm_new) */
	atomic_uint_fast64_t t_first_exit_ns;
	vmm_stats stats;          /* exit counters updated atomically by vCPU threads */
};

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t vmm_now_ns(void);

/* Record how the run ended (first caller wins) and stop every vCPU. */
void vmm_end_run(vmm *v, vmm_end end, int status, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* vcpu.c: start the vCPU threads / wait for them. */
int vmm_vcpus_start(vmm *v, mv_error *err);
void vmm_vcpus_join(vmm *v);
/* The id of the vCPU whose thread is calling (0 outside vCPU threads). */
unsigned vmm_current_vcpu_id(void);

/* vmm_dirty.c: the test device hooks and the dirty-rate sampler. */
void vmm_dirty_ws_register(void *opaque, unsigned vcpu, uint64_t gpa, uint64_t pages);
uint64_t vmm_dirty_round_end(void *opaque, unsigned vcpu, uint32_t round,
			     const uint64_t *gfns, size_t n);
int vmm_dirty_start(vmm *v, mv_error *err);
/*
 * Size of the symmetric difference between the dirty pages of working set
 * @ws (bitmap @dirty, bit i = page i of the set) and the reported guest
 * frames @gfns (sorted in place): pages dirty but not reported, reported
 * but not dirty, reported twice, or reported outside the set.
 */
uint64_t vmm_dirty_diff(const vmm_ws *ws, const unsigned long *dirty, uint64_t *gfns, size_t n);
void vmm_dirty_stop(vmm *v);

#endif
