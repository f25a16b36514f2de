/*
 * Private to src/vmm/: the devices of the x86 machine (machine_x86.c
 * builds and maps them). Each constructor returns an I/O region with one
 * reference, whose callbacks run on the vCPU thread making the access.
 *
 * Lifetime: a device's state must outlive every access to its region.
 * The machine frees device state only after it has dropped its address
 * spaces and region references, and only when no vCPU runs any more.
 */
#ifndef MEMVIRT_VMM_DEVICES_H
#define MEMVIRT_VMM_DEVICES_H

#include "vmm/machine_x86.h"

/* ------------------------------------------------------------------ */
/* Hook calls: every hook of vmm_hooks may be NULL (= do nothing).      */

static inline void vmm_hook_console_out(const vmm_hooks *h, const char *src, uint8_t byte)
{
	if (h->console_out)
		h->console_out(h->opaque, src, byte);
}

static inline void vmm_hook_guest_exit(const vmm_hooks *h, int status)
{
	if (h->guest_exit)
		h->guest_exit(h->opaque, status);
}

/* Without the hook every access comes from vCPU 0. */
static inline unsigned vmm_hook_current_vcpu(const vmm_hooks *h)
{
	return h->current_vcpu ? h->current_vcpu(h->opaque) : 0;
}

static inline void vmm_hook_ws_register(const vmm_hooks *h, unsigned vcpu, uint64_t gpa,
					uint64_t pages)
{
	if (h->ws_register)
		h->ws_register(h->opaque, vcpu, gpa, pages);
}

/* Without the hook every round matches (0 mismatches). */
static inline uint64_t vmm_hook_round_end(const vmm_hooks *h, unsigned vcpu, uint32_t round,
					  const uint64_t *gfns, size_t n)
{
	return h->round_end ? h->round_end(h->opaque, vcpu, round, gfns, n) : 0;
}

static inline void vmm_hook_result(const vmm_hooks *h, unsigned vcpu, uint64_t value)
{
	if (h->result)
		h->result(h->opaque, vcpu, value);
}

/* ------------------------------------------------------------------ */
/* Constructors. @hooks must outlive the region (the machine's copy).   */

/*
 * debugcon (QEMU's -debugcon, Bochs port 0xe9): one port; a written byte
 * goes to console_out("debugcon"); reads return 0xe9, the value guests
 * use to detect it. Stateless: the region's opaque is @hooks.
 */
int vmm_debugcon_new(mv_memory *mem, const vmm_hooks *hooks, mv_region **out);

/*
 * isa-debug-exit (QEMU's, iosize 4): a write of V of any size and offset
 * calls guest_exit((V << 1) | 1); reads return 0. Stateless.
 */
int vmm_debug_exit_new(mv_memory *mem, const vmm_hooks *hooks, mv_region **out);

/*
 * A 16550 UART for polled output (8 one-byte registers): THR bytes go to
 * console_out(@src); LSR always says "transmitter empty"; nothing is ever
 * received. @src must outlive the device.
 */
typedef struct vmm_uart vmm_uart;
int vmm_uart_new(mv_memory *mem, const char *src, const vmm_hooks *hooks, vmm_uart **dev,
		 mv_region **out);
void vmm_uart_free(vmm_uart *u);

/*
 * The memvirt test device (include/memvirt/testdev_abi.h): its MMIO
 * region (MVT_MMIO_SIZE bytes, to map at MVT_MMIO_BASE) and its port
 * region (8 ports, to map at MVT_PIO_BASE). Errors: -ENOMEM.
 */
typedef struct vmm_testdev vmm_testdev;
int vmm_testdev_new(mv_memory *mem, const vmm_hooks *hooks, unsigned nr_vcpus,
		    uint64_t ram_size, vmm_testdev **dev, mv_region **mmio, mv_region **pio);
void vmm_testdev_free(vmm_testdev *d);

#endif
