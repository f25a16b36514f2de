/*
 * "microvm": QEMU 7.2's microvm board (hw/i386/microvm.c microvm_memory_init
 * and microvm_devices_init, include/hw/i386/microvm.h) with its defaults:
 * ACPI on (GED), a second IOAPIC, no PCIe, no ISA devices mapped in memory.
 * Compared against `info mtree` of qemu-system-x86_64 -M microvm (7.2,
 * qboot firmware).
 */
#include "machine/board.h"

#include <errno.h>
#include <inttypes.h>

/* microvm_memory_init: RAM above 3 GiB moves above 4 GiB. */
#define MICROVM_LOWMEM 0xc0000000ULL
/* qboot.rom, microvm's default firmware, loaded as RAM (isapc_ram_fw). */
#define MICROVM_BIOS_SIZE (64 * MV_KiB)
#define MICROVM_ISA_BIOS_MAX (128 * MV_KiB)
/* GED_MMIO_BASE, GED_MMIO_BASE_REGS, ACPI_GED_EVT_SEL_LEN, ACPI_GED_REG_COUNT */
#define MICROVM_GED_BASE 0xfea00000ULL
#define MICROVM_GED_REGS 0xfea00200ULL
#define MICROVM_GED_EVT_LEN 4
#define MICROVM_GED_REG_COUNT 3
/* VIRTIO_MMIO_BASE and microvm's 24 transports of 512 bytes. */
#define MICROVM_VIRTIO_BASE 0xfeb00000ULL
#define MICROVM_VIRTIO_SIZE 512ULL
#define MICROVM_VIRTIO_NR 24
/* IO_APIC_DEFAULT_ADDRESS and IO_APIC_SECONDARY_ADDRESS. */
#define MICROVM_IOAPIC_BASE 0xfec00000ULL
#define MICROVM_IOAPIC2_BASE 0xfec10000ULL
#define MICROVM_APIC_BASE 0xfee00000ULL
#define MICROVM_APIC_SPACE 0x100000ULL
#define MICROVM_APIC_PRIO 0x1000
#define X86_PHYS_LIMIT (1ULL << 52)

static int microvm_check(const mv_machine_opts *o, mv_error *err)
{
	if (o->ram_size > MICROVM_LOWMEM && o->ram_size - MICROVM_LOWMEM > X86_PHYS_LIMIT - MV_4GiB)
		return mv_error_set(err, -EINVAL,
				    "machine 'microvm': RAM of 0x%" PRIx64 " bytes would end beyond the 52-bit x86 physical address space",
				    o->ram_size);
	return 0;
}

/* x86_bios_rom_init with isapc_ram_fw: BIOS and its ISA alias are RAM. */
static void microvm_bios(mv_machine *m)
{
	uint64_t isa = MICROVM_BIOS_SIZE < MICROVM_ISA_BIOS_MAX ? MICROVM_BIOS_SIZE :
								  MICROVM_ISA_BIOS_MAX;
	mv_region *bios = mvb_ram(m, "pc.bios", mvb_block(m, "pc.bios", MICROVM_BIOS_SIZE, false));

	mvb_map(m, m->system, MV_4GiB - MICROVM_BIOS_SIZE, bios, 0);
	mvb_map(m, m->system, 0x100000 - isa,
		mvb_alias(m, "isa-bios", bios, MICROVM_BIOS_SIZE - isa, isa), 1);
}

static void microvm_build(mv_machine *m)
{
	uint64_t ram_size = m->opts.ram_size;
	uint64_t below = ram_size > MICROVM_LOWMEM ? MICROVM_LOWMEM : ram_size;
	mv_region *ram;

	m->ram = mvb_block(m, "microvm.ram", ram_size, true);
	ram = mvb_ram(m, "microvm.ram", m->ram);
	mvb_map(m, m->system, 0, mvb_alias(m, "ram-below-4g", ram, 0, below), 0);
	if (ram_size > below)
		mvb_map(m, m->system, MV_4GiB,
			mvb_alias(m, "ram-above-4g", ram, below, ram_size - below), 0);
	microvm_bios(m);
	mvb_map_device(m, m->system, MICROVM_GED_BASE, "acpi-ged", MICROVM_GED_EVT_LEN, 0);
	mvb_map_device(m, m->system, MICROVM_GED_REGS, "acpi-ged-regs", MICROVM_GED_REG_COUNT, 0);
	for (int i = 0; i < MICROVM_VIRTIO_NR; i++)
		mvb_map_device(m, m->system, MICROVM_VIRTIO_BASE + (uint64_t)i * MICROVM_VIRTIO_SIZE,
			       "virtio-mmio", MICROVM_VIRTIO_SIZE, 0);
	mvb_map_device(m, m->system, MICROVM_IOAPIC_BASE, "ioapic", 0x1000, 0);
	mvb_map_device(m, m->system, MICROVM_IOAPIC2_BASE, "ioapic", 0x1000, 0);
	mvb_map_device(m, m->system, MICROVM_APIC_BASE, "apic-msi", MICROVM_APIC_SPACE,
		       MICROVM_APIC_PRIO);
}

const mv_board mv_board_microvm = {
	.name = "microvm",
	.qemu_name = "microvm",
	.has_io_space = true,
	.memory_hotplug = false,
	.check = microvm_check,
	.build = microvm_build,
};
