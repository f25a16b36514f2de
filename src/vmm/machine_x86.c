/*
 * The memvirt x86 machine layout (see machine_x86.h), built with the
 * memory model as QEMU's microvm builds its own: one RAM block shown
 * through two aliases around the 32-bit MMIO hole, an MMIO window
 * container for the devices, a ROM below 4 GiB, and the port space.
 *
 * Construction is one transaction with a sticky error: each step does
 * nothing once a step has failed, and the machine is rendered once.
 */
#include "vmm/devices.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "memvirt/testdev_abi.h"
#include "util/alloc.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)
#define X86_4GIB (4 * GiB)
/* The guest physical address width this machine allows (x86 MAXPHYADDR). */
#define X86_PHYS_LIMIT (1ULL << 52)
#define VMM_RAM_ALIGN (2 * MiB)
#define VMM_RAM_MIN (16 * MiB)
#define VMM_MAX_REGIONS 16

struct vmm_x86_machine {
	mv_memory *mem;
	vmm_hooks hooks;                /* the copy the devices point to */
	uint64_t ram_size, ram_below;   /* ram_below: bytes under MVT_LOWMEM_END */
	unsigned nr_vcpus;
	mv_region *system, *io;         /* roots of "memory" and "I/O" */
	mv_address_space *memory_as, *io_as;
	mv_ramblock *ram, *rom;
	vmm_uart *uart;
	vmm_testdev *testdev;
	/* The creation reference of every region built, dropped at free. */
	mv_region *owned[VMM_MAX_REGIONS];
	size_t nr_owned;
	/* Build state: the first error wins. */
	int ret;
	mv_error *err;
};

uint8_t vmm_x86_rom_byte(uint64_t offset)
{
	if (offset < 8)
		return (uint8_t)(MVT_ROM_MAGIC >> (offset * 8));
	return (uint8_t)((offset >> 8) ^ offset ^ 0x5a);
}

/* ------------------------------------------------------------------ */
/* Build steps (sticky error)                                           */

static void build_fail(vmm_x86_machine *m, int ret, const char *what)
{
	if (m->ret)
		return;
	m->ret = mv_error_set(m->err, ret, "x86 machine: cannot create %s: %s", what,
			      strerror(-ret));
}

/* Keep the creation reference of @r (NULL after an error: passes through). */
static mv_region *own(vmm_x86_machine *m, mv_region *r)
{
	if (!r)
		return NULL;
	/* The layout is fixed; running out means VMM_MAX_REGIONS lags behind it. */
	if (m->nr_owned == VMM_MAX_REGIONS) {
		build_fail(m, -ENOSPC, mv_region_name(r));
		mv_region_unref(r);
		return NULL;
	}
	m->owned[m->nr_owned++] = r;
	return r;
}

static void map(vmm_x86_machine *m, mv_region *parent, uint64_t addr, mv_region *child)
{
	int ret;

	if (m->ret)
		return;
	ret = mv_region_add_subregion(parent, addr, child);
	if (ret)
		build_fail(m, ret, mv_region_name(child));
}

static mv_region *container(vmm_x86_machine *m, const char *name, mv_u128 size)
{
	mv_region *r = NULL;
	int ret;

	if (m->ret)
		return NULL;
	ret = mv_container_new(m->mem, name, size, &r);
	if (ret)
		build_fail(m, ret, name);
	return own(m, ret ? NULL : r);
}

static mv_region *alias(vmm_x86_machine *m, const char *name, mv_region *target,
			uint64_t offset, uint64_t size)
{
	mv_alias_region *r;
	int ret;

	if (m->ret)
		return NULL;
	ret = mv_alias_region_new(m->mem, name, target, offset, size, &r);
	if (ret) {
		build_fail(m, ret, name);
		return NULL;
	}
	return own(m, mv_alias_region_base(r));
}

/* A RAM or ROM region showing all of @block. */
static mv_region *ram_region(vmm_x86_machine *m, const char *name, mv_ramblock *block,
			     bool rom)
{
	mv_ram_region *r;
	int ret;

	if (m->ret)
		return NULL;
	ret = rom ? mv_rom_region_new(m->mem, name, block, &r) :
		    mv_ram_region_new(m->mem, name, block, &r);
	if (ret) {
		build_fail(m, ret, name);
		return NULL;
	}
	return own(m, mv_ram_region_base(r));
}

static mv_ramblock *block(vmm_x86_machine *m, const char *name, uint64_t size, bool noreserve)
{
	mv_ramblock_opts o = { .backing = MV_RAM_ANON_PRIVATE, .noreserve = noreserve };
	mv_ramblock *rb;
	int ret;

	if (m->ret)
		return NULL;
	ret = mv_ramblock_new(mv_memory_ram_list(m->mem), name, size, &o, &rb, m->err);
	if (ret) {
		m->ret = ret;   /* the sentence is already in m->err */
		return NULL;
	}
	return rb;
}

/* ------------------------------------------------------------------ */
/* The layout                                                           */

/*
 * The port space root: ports nobody decodes read all ones and ignore
 * writes, without a bus error, as on a PC's ISA bus (and QEMU's
 * unassigned_io_ops), so probing guests see "no device" rather than a fault.
 */
static mv_memtx io_unassigned_read(void *opaque, uint64_t addr, uint64_t *data, unsigned size)
{
	(void)opaque;
	(void)addr;
	*data = size >= 8 ? ~0ULL : (1ULL << (size * 8)) - 1;
	return MV_MEMTX_OK;
}

static const mv_region_ops io_unassigned_ops = {
	.read = io_unassigned_read,
	.endianness = MV_ENDIAN_LITTLE,
	.valid = { .min_access_size = 1, .max_access_size = 4, .unaligned = true },
	.impl = { .min_access_size = 1, .max_access_size = 4, .unaligned = true },
};

static void build_roots(vmm_x86_machine *m)
{
	mv_io_region *io;
	int ret;

	m->system = container(m, "system", MV_2_64);
	if (m->ret)
		return;
	ret = mv_io_region_new(m->mem, "io", 0x10000, &io_unassigned_ops, NULL, &io);
	if (ret)
		return build_fail(m, ret, "io");
	m->io = own(m, mv_io_region_base(io));
	ret = mv_address_space_new(m->mem, m->system, "memory", &m->memory_as);
	if (!ret)
		ret = mv_address_space_new(m->mem, m->io, "I/O", &m->io_as);
	if (ret)
		build_fail(m, ret, "the address spaces");
}

/* RAM above MVT_LOWMEM_END moves above 4 GiB, as on microvm and pc. */
static void build_ram(vmm_x86_machine *m)
{
	mv_region *ram;

	m->ram = block(m, "guest.ram", m->ram_size, true);
	ram = ram_region(m, "guest.ram", m->ram, false);
	map(m, m->system, 0, alias(m, "ram-below-4g", ram, 0, m->ram_below));
	if (m->ram_size > m->ram_below)
		map(m, m->system, X86_4GIB,
		    alias(m, "ram-above-4g", ram, m->ram_below, m->ram_size - m->ram_below));
}

static void build_rom(vmm_x86_machine *m)
{
	uint8_t *host;

	m->rom = block(m, "memvirt.rom", MVT_ROM_SIZE, false);
	if (m->ret)
		return;
	host = mv_ramblock_host(m->rom);
	for (uint64_t i = 0; i < MVT_ROM_SIZE; i++)
		host[i] = vmm_x86_rom_byte(i);
	map(m, m->system, MVT_ROM_BASE, ram_region(m, "memvirt.rom", m->rom, true));
}

/* The test device: MMIO in the window, ports in the I/O space. */
static void build_testdev(vmm_x86_machine *m, mv_region *window)
{
	mv_region *mmio, *pio;
	int ret;

	if (m->ret)
		return;
	ret = vmm_testdev_new(m->mem, &m->hooks, m->nr_vcpus, m->ram_size, &m->testdev, &mmio, &pio);
	if (ret)
		return build_fail(m, ret, "the test device");
	map(m, window, MVT_MMIO_BASE - MVT_MMIO_WINDOW_BASE, own(m, mmio));
	map(m, m->io, MVT_PIO_BASE, own(m, pio));
}

static void build_ports(vmm_x86_machine *m)
{
	mv_region *r;
	int ret;

	if (m->ret)
		return;
	ret = vmm_debugcon_new(m->mem, &m->hooks, &r);
	if (ret)
		return build_fail(m, ret, "debugcon");
	map(m, m->io, MVT_DEBUGCON_PORT, own(m, r));
	ret = vmm_debug_exit_new(m->mem, &m->hooks, &r);
	if (ret)
		return build_fail(m, ret, "isa-debug-exit");
	map(m, m->io, MVT_DEBUG_EXIT_PORT, own(m, r));
	ret = vmm_uart_new(m->mem, "com1", &m->hooks, &m->uart, &r);
	if (ret)
		return build_fail(m, ret, "the COM1 UART");
	map(m, m->io, MVT_COM1_PORT, own(m, r));
}

static void build(vmm_x86_machine *m)
{
	mv_region *window;

	build_roots(m);
	build_ram(m);
	window = container(m, "mmio-window", MVT_MMIO_WINDOW_END - MVT_MMIO_WINDOW_BASE);
	map(m, m->system, MVT_MMIO_WINDOW_BASE, window);
	build_testdev(m, window);
	build_rom(m);
	build_ports(m);
}

/* ------------------------------------------------------------------ */
/* Creation and queries                                                 */

static int check_config(uint64_t ram_size, unsigned nr_vcpus, mv_error *err)
{
	if (ram_size < VMM_RAM_MIN || ram_size % VMM_RAM_ALIGN)
		return mv_error_set(err, -EINVAL,
				    "--mem: guest RAM of 0x%" PRIx64 " bytes must be a multiple of 2 MiB and at least 16 MiB",
				    ram_size);
	if (ram_size > MVT_LOWMEM_END && ram_size - MVT_LOWMEM_END > X86_PHYS_LIMIT - X86_4GIB)
		return mv_error_set(err, -EINVAL,
				    "--mem: guest RAM of 0x%" PRIx64 " bytes would end beyond the 52-bit physical address space",
				    ram_size);
	if (nr_vcpus < 1 || nr_vcpus > VMM_X86_MAX_VCPUS)
		return mv_error_set(err, -EINVAL, "--smp: %u vCPUs: the x86 machine takes 1 to %u",
				    nr_vcpus, VMM_X86_MAX_VCPUS);
	return 0;
}

int vmm_x86_machine_new(mv_memory *mem, uint64_t ram_size, unsigned nr_vcpus,
			const vmm_hooks *hooks, vmm_x86_machine **out, mv_error *err)
{
	vmm_x86_machine *m;
	int ret = check_config(ram_size, nr_vcpus, err);

	if (ret)
		return ret;
	m = mv_zalloc(NULL, sizeof(*m));
	if (!m)
		return mv_error_set(err, -ENOMEM, "x86 machine: out of memory");
	m->mem = mem;
	if (hooks)
		m->hooks = *hooks;
	m->ram_size = ram_size;
	m->ram_below = ram_size < MVT_LOWMEM_END ? ram_size : MVT_LOWMEM_END;
	m->nr_vcpus = nr_vcpus;
	m->err = err;
	mv_memory_begin(mem);
	build(m);
	ret = mv_memory_commit(mem);
	if (ret)
		build_fail(m, ret, "its memory map");
	m->err = NULL;
	if (m->ret) {
		ret = m->ret;
		vmm_x86_machine_free(m);
		return ret;
	}
	*out = m;
	return 0;
}

void vmm_x86_machine_free(vmm_x86_machine *m)
{
	if (!m)
		return;
	/* Spaces first: they hold the roots, and their listeners see region_del. */
	if (m->io_as)
		mv_address_space_free(m->io_as);
	if (m->memory_as)
		mv_address_space_free(m->memory_as);
	for (size_t i = m->nr_owned; i-- > 0;)
		mv_region_unref(m->owned[i]);
	if (m->ram)
		mv_ramblock_unref(m->ram);
	if (m->rom)
		mv_ramblock_unref(m->rom);
	vmm_uart_free(m->uart);
	vmm_testdev_free(m->testdev);
	mv_free(NULL, m);
}

mv_address_space *vmm_x86_memory_as(vmm_x86_machine *m) { return m->memory_as; }
mv_address_space *vmm_x86_io_as(vmm_x86_machine *m) { return m->io_as; }
mv_ramblock *vmm_x86_ram(vmm_x86_machine *m) { return m->ram; }
uint64_t vmm_x86_ram_size(const vmm_x86_machine *m) { return m->ram_size; }
unsigned vmm_x86_nr_vcpus(const vmm_x86_machine *m) { return m->nr_vcpus; }

size_t vmm_x86_ram_ranges(const vmm_x86_machine *m, uint64_t (*ranges)[2], size_t max)
{
	size_t n = m->ram_size > m->ram_below ? 2 : 1;

	if (max > 0) {
		ranges[0][0] = 0;
		ranges[0][1] = m->ram_below;
	}
	if (n > 1 && max > 1) {
		ranges[1][0] = X86_4GIB;
		ranges[1][1] = m->ram_size - m->ram_below;
	}
	return n;
}
