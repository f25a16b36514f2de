/*
 * What the files of the soft test guest share (soft_guest.h has the VMM's
 * side). They mirror guests/: soft_guest.c is main.c (the vCPU's program,
 * the slices, the end), soft_guest_boot.c is the PVH entry and setup.c
 * (boot line, hvm_start_info, command line), soft_guest_console.c is
 * console.c (lines on debugcon, FAIL bookkeeping, isa-debug-exit, spin
 * locks) plus the accesses themselves, soft_work_*.c are work_*.c.
 *
 * Paging stays off on a soft vCPU (nothing loads page tables), so every
 * guest-virtual address a program uses is the guest-physical one, as in
 * the guest's identity map.
 *
 * The guest's globals (flags, locks, configuration, slices) live in its
 * image in guest RAM; here they are host memory in struct vmm_soft_guest,
 * shared by the programs of all vCPUs with C11 atomics where the guest
 * uses __atomic builtins.
 */
#ifndef MEMVIRT_VMM_SOFT_GUEST_INTERNAL_H
#define MEMVIRT_VMM_SOFT_GUEST_INTERNAL_H

#include "memvirt/guest_gen.h"
#include "memvirt/hv_soft.h"
#include "vmm/soft_guest.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>

/* One vCPU's program (the guest's struct cpu_ctx plus what the program needs). */
typedef struct vmm_sg_cpu {
	vmm_soft_guest *g;
	unsigned id;                /* the vCPU id, which is its initial APIC id */
	hv_soft_cpu *cpu;           /* set when the program starts */
	/* An access failed in a way no guest instruction can (the vCPU is going away): leave. */
	jmp_buf leave;
	int error;                  /* ... with this negative errno, the program's return value */
	uint64_t base;              /* this vCPU's slice of the workload area */
	uint64_t seq;               /* next MVT_REG_SEQ value (per vCPU, persists) */
	uint64_t *bitmap;           /* dirty: pages written this round, MVG_WS_MAX_MIB worth */
} vmm_sg_cpu;

struct vmm_soft_guest {
	uint64_t start_info;        /* guest-physical hvm_start_info */
	unsigned nr_vcpus;          /* programs (vCPUs created) */
	atomic_uint console_lock, fifo_lock;
	atomic_uint tables_ready;   /* vCPU 0 read hvm_start_info (setup.c's g_tables_ready) */
	atomic_uint go;             /* vCPU 0 finished prepare(): the fields below are set */
	atomic_uint done;           /* vCPUs through their workload list */
	atomic_uint failures;       /* FAIL lines printed */
	/* Written by vCPU 0 before tables_ready / go, read-only after. */
	char cmdline[MVG_CMDLINE_MAX];
	unsigned nr_ram;
	struct mvg_ram_range ram[MVG_MAX_RAM_RANGES];
	struct mvg_config cfg;
	bool dev;                   /* the test device answered */
	unsigned nr_cpus;           /* vCPUs taking part */
	uint64_t slice;             /* bytes per vCPU */
	uint64_t base[MVG_MAX_CPUS];
	vmm_sg_cpu cpus[];          /* nr_vcpus */
};

/* ---- accesses (soft_guest_console.c) ---- */
/*
 * A guest load or store of @size bytes (1, 2, 4, 8) at @gpa, or a port
 * access. A guest fault prints the guest's exception line and ends the VM
 * as its handler does (isa-debug-exit 0x7f); any other failure leaves the
 * program (longjmp to vmm_sg_cpu.leave, which returns vmm_sg_cpu.error).
 */
uint64_t vmm_sg_read(vmm_sg_cpu *c, uint64_t gpa, unsigned size);
void vmm_sg_write(vmm_sg_cpu *c, uint64_t gpa, unsigned size, uint64_t v);
uint32_t vmm_sg_in(vmm_sg_cpu *c, uint16_t port, unsigned size);
void vmm_sg_out(vmm_sg_cpu *c, uint16_t port, unsigned size, uint32_t v);
/* The test device's 64-bit registers (guest.h's mmio_read/mmio_write). */
uint64_t vmm_sg_mmio_read(vmm_sg_cpu *c, uint64_t reg);
void vmm_sg_mmio_write(vmm_sg_cpu *c, uint64_t reg, uint64_t v);
/*
 * One turn of a wait loop (the guest's `pause` loops reading a flag): one
 * guest read, so a kick or a pause stops the program here as it stops a
 * spinning guest, then a yield of the host CPU.
 */
void vmm_sg_relax(vmm_sg_cpu *c);

/* ---- console (soft_guest_console.c), as guests/console.c ---- */
void vmm_sg_lock(vmm_sg_cpu *c, atomic_uint *l);
void vmm_sg_unlock(atomic_uint *l);
/* A whole line on debugcon, one OUT per byte, under the console lock. */
void vmm_sg_say(vmm_sg_cpu *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same without the lock (setup failures, exceptions). */
void vmm_sg_say_unlocked(vmm_sg_cpu *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* "guest: FAIL <what>": the guest then ends with MVG_EXIT_FAIL. */
void vmm_sg_fail(vmm_sg_cpu *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Write @value to isa-debug-exit; the VM ends, so this never returns. */
__attribute__((noreturn)) void vmm_sg_exit(vmm_sg_cpu *c, uint8_t value);

/* ---- boot (soft_guest_boot.c) ---- */
/*
 * The PVH entry and set-up of a vCPU (entry.S, setup.c's cpu_setup up to
 * the drop to CPL3): vCPU 0 prints the boot line, reads hvm_start_info,
 * its memory map and the command line into @c->g, then releases the
 * others (tables_ready).
 */
void vmm_sg_boot(vmm_sg_cpu *c);

/* ---- workloads (soft_work_*.c), as guests/work_*.c ---- */
void vmm_sg_touch(vmm_sg_cpu *c);
void vmm_sg_verify(vmm_sg_cpu *c);
void vmm_sg_dirty(vmm_sg_cpu *c);
void vmm_sg_mmio(vmm_sg_cpu *c);
void vmm_sg_pio(vmm_sg_cpu *c);
void vmm_sg_rom(vmm_sg_cpu *c);

#endif
