/*
 * The memvirt VMM: runs a PVH guest on an accelerator (hv.h) with the x86
 * machine of src/vmm/ (guest ABI: memvirt/testdev_abi.h).
 *
 * vmm_new builds the memory system, the machine, the VM, the accelerator
 * memory listener (FlatView -> memslots), loads the guest and creates the
 * vCPUs; vmm_run starts one thread per vCPU running the accelerator's run
 * loop and returns when the guest ends (isa-debug-exit, HLT, shutdown) or
 * an exit cannot be handled. Guest output goes to the console callback.
 *
 * Threads: vmm_pause / vmm_resume / vmm_stop may be called from any thread
 * while vmm_run runs (they wait for the vCPUs to park or return).
 */
#ifndef MEMVIRT_VMM_H
#define MEMVIRT_VMM_H

#include "memvirt/base.h"
#include "memvirt/memory.h"

#include <stddef.h>
#include <stdint.h>

typedef struct vmm vmm;

/* How dirty pages are tracked while the guest runs. */
typedef enum vmm_dirty_mode {
	VMM_DIRTY_OFF,     /* no logging: the dirty workload's rounds are not checked */
	VMM_DIRTY_BITMAP,  /* KVM_GET_DIRTY_LOG (clears and re-protects) */
	VMM_DIRTY_MANUAL,  /* MANUAL_DIRTY_LOG_PROTECT2: get, then clear what was got */
	VMM_DIRTY_RING,    /* per-vCPU dirty rings, harvested and reset */
} vmm_dirty_mode;

typedef struct vmm_config {
	const char *accel;        /* "kvm" */
	uint64_t ram_size;        /* bytes, multiple of 2 MiB, >= 16 MiB */
	unsigned nr_vcpus;        /* 1..64 */
	const void *elf;          /* the PVH guest image (borrowed during vmm_new) */
	size_t elf_size;
	const char *elf_name;     /* for messages */
	const char *cmdline;      /* PVH command line, may be NULL */
	vmm_dirty_mode dirty;
	uint32_t ring_entries;    /* VMM_DIRTY_RING: entries per vCPU (0 = 4096) */
	bool dirty_rate;          /* sample the dirty rate every 50 ms while running */
	/* Guest console bytes (debugcon and COM1); NULL drops them. */
	void (*console)(void *opaque, uint8_t byte);
	void *console_opaque;
	/*
	 * Every checked dirty round (test device ROUND_END): the accelerator's
	 * dirty log of vCPU @vcpu's working set, @pages pages from guest
	 * physical @gpa, as the VMM compared it with the guest's reports for
	 * round @round: bit i of @bits (unsigned long words, LSB first) is page
	 * i of the set. Called on the thread handling the ROUND_END with the
	 * VMM's dirty lock held, so calls never overlap; @bits is valid during
	 * the call only; the callback must not call the VMM. NULL: none.
	 */
	void (*dirty_round)(void *opaque, unsigned vcpu, uint32_t round, uint64_t gpa,
			    uint64_t pages, const unsigned long *bits);
	void *dirty_round_opaque;
	/* CLOCK_MONOTONIC ns when the process started (0 = vmm_new's start). */
	uint64_t t_process_start_ns;
} vmm_config;

/* How the run ended. */
typedef enum vmm_end {
	VMM_END_GUEST_EXIT,   /* isa-debug-exit: see exit_status */
	VMM_END_HLT,
	VMM_END_SHUTDOWN,
	VMM_END_SYSTEM_EVENT,
	VMM_END_STOPPED,      /* vmm_stop */
	VMM_END_ERROR,        /* an exit the VMM cannot handle: see message */
} vmm_end;

/* Counters of one run. Exit counts are per hv_exit_reason. */
#define VMM_NR_EXIT_REASONS 16
typedef struct vmm_stats {
	uint64_t exits[VMM_NR_EXIT_REASONS];
	uint64_t mmio_reads, mmio_writes, pio_reads, pio_writes;
	uint64_t coalesced_writes;
	uint64_t pages_resident;      /* guest RAM pages resident at the end (first-touched) */
	uint64_t t_first_exit_ns;     /* process start -> first guest exit (its first instruction is an OUT) */
	uint64_t t_create_ns;         /* process start -> VM ready to run */
	uint64_t t_wall_ns;           /* vmm_run duration */
	/* The dirty workload's rounds (test device ROUND_END). */
	uint64_t dirty_rounds, dirty_pages_reported, dirty_mismatches;
	/* Dirty-log syncs (accelerator -> RAM-block bitmaps) and their total time. */
	uint64_t dirty_syncs, dirty_sync_ns;
	/* Dirty-rate sampling (config.dirty_rate). */
	uint64_t rate_samples, rate_pages;
	uint64_t rate_ns;
	/* From the accelerator memory listener (hv_mem_stats). */
	uint64_t memslot_calls;
	uint64_t dirty_log_calls, clear_log_calls, ring_entries, pages_synced;
} vmm_stats;

typedef struct vmm_result {
	vmm_end end;
	int exit_status;              /* VMM_END_GUEST_EXIT: (value << 1) | 1 */
	char message[512];            /* one sentence saying how the run ended */
} vmm_result;

/*
 * Build everything and load the guest. Errors: one sentence in @err
 * (-ENODEV no accelerator, -EINVAL bad config or guest image, ...); nothing
 * is left allocated.
 */
int vmm_new(const vmm_config *cfg, vmm **out, mv_error *err);
void vmm_free(vmm *v);

/* Run until the guest ends; fills @res. Returns 0, or -errno if the vCPU
 * threads could not start (sentence in @err). Call once. */
int vmm_run(vmm *v, vmm_result *res, mv_error *err);

/* Park every vCPU outside the guest (returns when all are parked). */
void vmm_pause(vmm *v);
void vmm_resume(vmm *v);
/* End the run (vmm_run returns VMM_END_STOPPED). */
void vmm_stop(vmm *v);

const vmm_stats *vmm_get_stats(const vmm *v);
mv_memory *vmm_memory(vmm *v);
/* Accelerator memory-listener error, or NULL (a memslot the accelerator refused). */
const char *vmm_memslot_error(const vmm *v);

#endif
