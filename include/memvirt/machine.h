/*
 * Built-in machine memory layouts (QEMU's pc, microvm and arm virt boards)
 * with QEMU's -m SIZE[,slots=N,maxmem=SIZE] and DIMM hot(un)plug.
 *
 * A machine builds its regions in a memory system and creates the address
 * spaces a VMM needs: "memory" (system memory) and, on x86, "I/O".
 * It owns everything it creates; mv_machine_free releases it.
 */
#ifndef MEMVIRT_MACHINE_H
#define MEMVIRT_MACHINE_H

#include "memvirt/memory.h"

typedef struct mv_machine mv_machine;

/*
 * The -m option. maxmem 0 means maxmem = ram_size. As QEMU, the
 * device-memory window exists when maxmem > ram_size (plus 1 GiB per
 * slot); DIMMs need slots > 0 as well.
 */
typedef struct mv_machine_opts {
	uint64_t ram_size;   /* bytes; 0 = the machine's default (128 MiB as QEMU) */
	unsigned slots;      /* DIMM slots */
	uint64_t maxmem;     /* bytes; ram_size + plugged DIMMs never exceed it */
} mv_machine_opts;

/*
 * Parse "SIZE[,slots=N][,maxmem=SIZE]" (SIZE as QEMU: MiB by default,
 * suffixes K/M/G/T) into @opts. Errors name the bad part: -EINVAL.
 * QEMU's rules: slots and maxmem go together, maxmem >= size.
 */
int mv_machine_parse_mem(const char *arg, mv_machine_opts *opts, mv_error *err);

/* Names of the built-in machines, NULL-terminated ("pc", "microvm", "virt-arm64"). */
const char *const *mv_machine_types(void);

/*
 * Build machine @type in @mem. Errors (-EINVAL with a sentence): unknown
 * type, RAM size not supported by the board, too many slots.
 */
int mv_machine_new(mv_memory *mem, const char *type, const mv_machine_opts *opts,
		   mv_machine **out, mv_error *err);
void mv_machine_free(mv_machine *m);

const char *mv_machine_type(const mv_machine *m);
mv_region *mv_machine_system_memory(mv_machine *m);
mv_address_space *mv_machine_memory_as(mv_machine *m);
/* The "I/O" port space (x86 only), else NULL. */
mv_address_space *mv_machine_io_as(mv_machine *m);
/* The main RAM block. */
mv_ramblock *mv_machine_ram_block(mv_machine *m);

/* Device-memory (DIMM) window: [base, base+size), size 0 if none. */
uint64_t mv_machine_device_memory_base(const mv_machine *m);
uint64_t mv_machine_device_memory_size(const mv_machine *m);

#define MV_DIMM_ADDR_AUTO UINT64_MAX

/*
 * Plug a DIMM named @id of @size bytes (a multiple of 2 MiB, QEMU's
 * backend alignment) at @addr inside the device-memory window, or at the
 * lowest free 2 MiB-aligned range that fits with MV_DIMM_ADDR_AUTO (QEMU's
 * first fit). A RAM block and a RAM region named @id are added under
 * "device-memory" (listeners of "memory" see region_add); *out_addr
 * (optional) gets the address. On error nothing changes and @err names
 * the DIMM: -ENODEV no slots, -EEXIST duplicate id (or RAM block name),
 * -EINVAL bad size or unaligned address, -ENOSPC all slots used / RAM +
 * DIMMs would exceed maxmem / no free range, -ERANGE outside the window,
 * -EBUSY overlap with another DIMM (named), -ENOMEM.
 */
int mv_machine_dimm_plug(mv_machine *m, const char *id, uint64_t size, uint64_t addr,
			 uint64_t *out_addr, mv_error *err);
/*
 * Remove DIMM @id (listeners see region_del); its id is free again at
 * once, its memory goes with the last FlatView showing it. -ENOENT if
 * unknown.
 */
int mv_machine_dimm_unplug(mv_machine *m, const char *id, mv_error *err);

#endif
