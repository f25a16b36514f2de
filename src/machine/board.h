/*
 * Private to src/machine/: the machine object, the board descriptions and
 * the builder helpers the boards use to lay out their regions.
 *
 * Builders use a sticky error: the first failing step records its errno
 * and sentence in the machine, and every later step does nothing and
 * returns NULL. A board's build function is therefore a straight list of
 * steps, checked once at the end by mv_machine_new.
 */
#ifndef MV_MACHINE_BOARD_H
#define MV_MACHINE_BOARD_H

#include "memvirt/machine.h"

#define MV_KiB (1ULL << 10)
#define MV_MiB (1ULL << 20)
#define MV_GiB (1ULL << 30)
#define MV_4GiB (4ULL << 30)

/* QEMU's ACPI_MAX_RAM_SLOTS, checked by pc_memory_init (hw/i386/pc.c). */
#define MV_MAX_RAM_SLOTS 256
/* QEMU's default_ram_size of pc, microvm and virt (hw/core/machine.c). */
#define MV_DEFAULT_RAM_SIZE (128 * MV_MiB)
/* Guest page size: -m sizes must be multiples of it. */
#define MV_MACHINE_PAGE_SIZE (4 * MV_KiB)
/*
 * DIMM size and address alignment: QEMU's memory backends allocate with
 * QEMU_VMALLOC_ALIGN (2 MiB on x86-64 and arm64 hosts) and
 * memory_device_get_free_addr() aligns to the region's alignment.
 */
#define MV_DIMM_ALIGN (2 * MV_MiB)

typedef struct mv_board mv_board;

/* One plugged DIMM (QEMU's pc-dimm with its memory backend). */
typedef struct mv_dimm {
	char *id;
	uint64_t addr;          /* guest physical */
	uint64_t size;
	mv_ramblock *block;     /* reference */
	mv_ram_region *mr;      /* reference; child of device-memory */
} mv_dimm;

struct mv_machine {
	mv_memory *mem;
	const mv_board *board;
	mv_machine_opts opts;           /* ram_size and maxmem resolved */
	mv_region *system;              /* root of "memory" */
	mv_region *io;                  /* root of "I/O", x86 only */
	mv_address_space *memory_as, *io_as;
	mv_ramblock *ram;               /* main RAM block */
	mv_region *device_memory;       /* "device-memory" container or NULL */
	uint64_t dm_base, dm_size;
	/* Everything built holds one reference here until mv_machine_free. */
	mv_region **owned;
	size_t nr_owned, cap_owned;
	mv_ramblock **blocks;
	size_t nr_blocks, cap_blocks;
	/* Plugged DIMMs, sorted by address. */
	mv_dimm *dimms;
	size_t nr_dimms, cap_dimms;
	/* Build state: first error wins (see above). */
	int ret;
	mv_error *err;
};

struct mv_board {
	const char *name;
	const char *qemu_name;          /* the QEMU machine it reproduces */
	bool has_io_space;              /* x86: "I/O" address space */
	bool memory_hotplug;            /* has a device-memory window */
	/* Extra checks of -m for this board (may be NULL). */
	int (*check)(const mv_machine_opts *opts, mv_error *err);
	/* Lay out the regions under m->system / m->io (in a transaction). */
	void (*build)(mv_machine *m);
};

extern const mv_board mv_board_pc;
extern const mv_board mv_board_microvm;
extern const mv_board mv_board_virt_arm64;

/* Record the first build error; returns @code. */
int mvb_fail(mv_machine *m, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Region constructors: the machine keeps one reference to each. */
mv_region *mvb_container(mv_machine *m, const char *name, mv_u128 size);
/* A device window whose registers read as 0 and ignore writes
 * (QEMU's unimplemented-device, standing in for devices we do not model). */
mv_region *mvb_device(mv_machine *m, const char *name, mv_u128 size);
/* An I/O region with no callbacks: reads all ones, writes ignored
 * (QEMU's unassigned_io_ops, e.g. the "io" port space root). */
mv_region *mvb_unassigned(mv_machine *m, const char *name, mv_u128 size);
/* A RAM block of the memory system's RAM list (anonymous, private). */
mv_ramblock *mvb_block(mv_machine *m, const char *name, uint64_t size, bool noreserve);
mv_region *mvb_ram(mv_machine *m, const char *name, mv_ramblock *block);
mv_region *mvb_rom(mv_machine *m, const char *name, mv_ramblock *block);
/* ROM device (flash) whose writes go to placeholder callbacks. */
mv_region *mvb_romd(mv_machine *m, const char *name, mv_ramblock *block);
mv_region *mvb_alias(mv_machine *m, const char *name, mv_region *target,
		     uint64_t offset, mv_u128 size);
/* Map @child in @parent at @addr with @priority. */
void mvb_map(mv_machine *m, mv_region *parent, uint64_t addr, mv_region *child, int priority);
/* Map a fresh placeholder device window (mvb_device + mvb_map). */
void mvb_map_device(mv_machine *m, mv_region *parent, uint64_t addr, const char *name,
		    mv_u128 size, int priority);
/*
 * The "device-memory" container at [base, base+size) in system memory
 * (QEMU's machine_memory_devices_init / ms->device_memory).
 */
void mvb_device_memory(mv_machine *m, uint64_t base, uint64_t size);

/* Shared -m validation (parse and machine creation); @ram already resolved. */
int mvm_check_mem(const mv_machine_opts *o, uint64_t ram, mv_error *err);
/* "4 GiB", "2 MiB", "12 KiB" or "4097 bytes": sizes in messages. */
const char *mvm_size_str(char buf[32], uint64_t size);

static inline uint64_t mvm_align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

#endif
