/*
 * The guest-visible ABI of the memvirt x86 VMM (src/vmm/) shared with the
 * test guests (guests/): port and MMIO addresses and the registers of the
 * memvirt test device. Plain #defines only, so freestanding guest code can
 * include it.
 *
 * Ports (I/O address space):
 *   0xe9        debugcon: a byte written is printed (QEMU's -debugcon)
 *   0xf4..0xf7  isa-debug-exit: writing V ends the VM with exit status
 *               (V << 1) | 1 (QEMU's isa-debug-exit,iobase=0xf4,iosize=4)
 *   0x3f8..0x3ff  16550 UART, COM1 (polled output)
 *   MVT_PIO_BASE  the test device's port registers
 *
 * The test device is absent under QEMU: its MMIO reads return 0 there, so
 * a guest probes MVT_REG_MAGIC and reports on debugcon only when absent.
 */
#ifndef MEMVIRT_TESTDEV_ABI_H
#define MEMVIRT_TESTDEV_ABI_H

#define MVT_DEBUGCON_PORT 0xe9
#define MVT_DEBUG_EXIT_PORT 0xf4
#define MVT_COM1_PORT 0x3f8

/* Guest physical layout of the memvirt x86 machine (microvm-like). */
#define MVT_LOWMEM_END 0xc0000000ULL        /* RAM above this moves above 4 GiB */
#define MVT_MMIO_WINDOW_BASE 0xc0000000ULL  /* device MMIO window ... */
#define MVT_MMIO_WINDOW_END 0xfec00000ULL   /* ... up to the IOAPIC */
#define MVT_ROM_BASE 0xffff0000ULL          /* 64 KiB read-only "memvirt.rom" */
#define MVT_ROM_SIZE 0x10000ULL
#define MVT_ROM_MAGIC 0x4d4f52545649564dULL /* first 8 bytes of the ROM: "MVIVTROM" */

/* ---- test device, MMIO: two pages at MVT_MMIO_BASE ---- */
#define MVT_MMIO_BASE 0xfe000000ULL
#define MVT_MMIO_SIZE 0x2000ULL

/* Page 0: registers, 64-bit, accessed with 4- or 8-byte loads/stores. */
#define MVT_REG_MAGIC 0x000       /* RO: MVT_MAGIC */
#define MVT_REG_VERSION 0x008     /* RO: MVT_VERSION */
#define MVT_REG_NR_VCPUS 0x010    /* RO: number of vCPUs */
#define MVT_REG_RAM_SIZE 0x018    /* RO: guest RAM in bytes */
#define MVT_REG_SCRATCH 0x020     /* RW: reads return the last value written */
#define MVT_REG_SCRATCH_OPS 0x028 /* RO: number of SCRATCH reads+writes so far */
/*
 * WO: working set of the calling vCPU for the dirty workload. Write
 * WS_BASE (guest physical, page aligned) then WS_PAGES (count): the VMM
 * then clears the dirty state of that range, so round 1 starts clean.
 */
#define MVT_REG_WS_BASE 0x030
#define MVT_REG_WS_PAGES 0x038
/*
 * WO: end of a dirty round: value = (vcpu << 32) | round. The VMM drains
 * the coalesced ring (the PAGE_REPORTs of the round), syncs the dirty log
 * and compares the dirty pages of the vCPU's working set with the pages
 * reported; the outcome is readable at ROUND_STATUS.
 */
#define MVT_REG_ROUND_END 0x040
#define MVT_REG_ROUND_STATUS 0x048 /* RO: 0 = last round matched, else mismatching pages */
#define MVT_REG_RESULT 0x050       /* WO: a result value (checksum) for the VMM's summary */
#define MVT_REG_SEQ_CHECK 0x058    /* RO: 0 when every SEQ write arrived in order, else 1 */
#define MVT_REG_SEQ_COUNT 0x060    /* RO: number of SEQ writes seen */

/* Page 1: the coalesced zone (writes do not exit; drained in order). */
#define MVT_COALESCED_OFFSET 0x1000
#define MVT_REG_PAGE_REPORT 0x1000 /* WO: (vcpu << 48) | guest page frame number written */
#define MVT_REG_SEQ 0x1008         /* WO: per-vCPU sequence: (vcpu << 48) | n, n = 0,1,2,... */

#define MVT_MAGIC 0x4454564dULL    /* "MVTD" */
#define MVT_VERSION 1

/* ---- test device, ports: 8 at MVT_PIO_BASE ---- */
#define MVT_PIO_BASE 0x5a0
#define MVT_PIO_SCRATCH 0x5a0      /* 4 bytes RW: like MVT_REG_SCRATCH */
#define MVT_PIO_FIFO 0x5a4         /* 1 byte: OUT appends to a FIFO, IN pops (0xff when empty) */
#define MVT_PIO_OPS 0x5a6          /* 2 bytes RO: port accesses so far (low 16 bits) */

#endif
