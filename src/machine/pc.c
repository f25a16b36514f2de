/*
 * "pc": the memory map of QEMU 7.2's pc-i440fx-7.2 board (hw/i386/pc_piix.c
 * pc_init1, hw/i386/pc.c pc_memory_init, hw/i386/x86.c x86_bios_rom_init,
 * hw/pci-host/i440fx.c and pam.c), compared line by line against
 * `info mtree` of qemu-system-x86_64 7.2 (tests/machine/).
 *
 * Modelled: RAM split below/above 4 GiB, the "pci" address space under
 * system memory, BIOS and option ROM, i440FX SMRAM window and PAM aliases
 * in their reset state, IOAPIC, HPET, APIC MSI window, device memory.
 * Not modelled: PCI devices (VGA, NIC, ...), PIO devices, SMM address space.
 */
#include "machine/board.h"

#include <errno.h>
#include <inttypes.h>

/* pc_init1: max_ram_below_4g default (3.5 GiB) and the gigabyte_align split. */
#define PC_MAX_RAM_BELOW_4G 0xe0000000ULL
#define PC_GIGABYTE_ALIGN_LOWMEM 0xc0000000ULL
/* pc_memory_init: option ROM area (PC_ROM_MIN_VGA, PC_ROM_SIZE). */
#define PC_ROM_BASE 0xc0000ULL
#define PC_ROM_SIZE 0x20000ULL
/* SeaBIOS bios-256k.bin, QEMU's default pc firmware, and its ISA window. */
#define PC_BIOS_SIZE (256 * MV_KiB)
#define PC_ISA_BIOS_MAX (128 * MV_KiB)
/* i440FX: SMRAM window (SMRAM_C_BASE, SMRAM_C_SIZE) and PAM segments (pam.h). */
#define PC_SMRAM_BASE 0xa0000ULL
#define PC_SMRAM_SIZE 0x20000ULL
#define PAM_BIOS_BASE 0xf0000ULL
#define PAM_BIOS_SIZE 0x10000ULL
#define PAM_EXPAN_BASE 0xc0000ULL
#define PAM_EXPAN_SIZE 0x4000ULL
#define PAM_EXPAN_NR 12
/* Platform devices: IO_APIC_DEFAULT_ADDRESS, HPET_BASE/HPET_LEN, APIC MSI. */
#define PC_IOAPIC_BASE 0xfec00000ULL
#define PC_HPET_BASE 0xfed00000ULL
#define PC_HPET_LEN 0x400ULL
#define PC_APIC_BASE 0xfee00000ULL
#define PC_APIC_SPACE 0x100000ULL
#define PC_APIC_PRIO 0x1000     /* x86_cpu_apic_realize maps it over everything */
/* x86 MAXPHYADDR upper bound: nothing may end above 2^52. */
#define X86_PHYS_LIMIT (1ULL << 52)

/* pc_init1's below/above 4 GiB split of @ram. */
static void pc_ram_split(uint64_t ram, uint64_t *below, uint64_t *above)
{
	uint64_t lowmem = PC_MAX_RAM_BELOW_4G;

	if (ram >= PC_MAX_RAM_BELOW_4G)
		lowmem = PC_GIGABYTE_ALIGN_LOWMEM;
	*below = ram >= lowmem ? lowmem : ram;
	*above = ram - *below;
}

/*
 * pc_memory_init's device-memory window: 1 GiB aligned after the high
 * RAM, sized maxmem - ram plus 1 GiB per slot (enforce_aligned_dimm).
 */
static void pc_device_memory(uint64_t above, const mv_machine_opts *o, uint64_t *base,
			     uint64_t *size)
{
	*base = mvm_align_up(MV_4GiB + above, MV_GiB);
	*size = o->maxmem > o->ram_size ? o->maxmem - o->ram_size + (uint64_t)o->slots * MV_GiB : 0;
}

static int pc_check(const mv_machine_opts *o, mv_error *err)
{
	uint64_t below, above, base, size;

	pc_ram_split(o->ram_size, &below, &above);
	pc_device_memory(above, o, &base, &size);
	if (above > X86_PHYS_LIMIT - MV_4GiB || size > X86_PHYS_LIMIT - base)
		return mv_error_set(err, -EINVAL,
				    "machine 'pc': RAM (0x%" PRIx64 ") plus device memory (0x%" PRIx64 ") would end beyond the 52-bit x86 physical address space",
				    o->ram_size, size);
	return 0;
}

/* x86_bios_rom_init: BIOS at the top of 4 GiB, its last 128 KiB under 1 MiB. */
static void pc_bios(mv_machine *m, mv_region *rom_memory)
{
	uint64_t isa_size = PC_BIOS_SIZE < PC_ISA_BIOS_MAX ? PC_BIOS_SIZE : PC_ISA_BIOS_MAX;
	mv_region *bios = mvb_rom(m, "pc.bios", mvb_block(m, "pc.bios", PC_BIOS_SIZE, false));

	mvb_map(m, rom_memory, MV_4GiB - PC_BIOS_SIZE, bios, 0);
	mvb_map(m, rom_memory, 0x100000 - isa_size,
		mvb_alias(m, "isa-bios", bios, PC_BIOS_SIZE - isa_size, isa_size), 1);
}

/* One PAM segment in its reset state: only "pam-pci" onto PCI is enabled. */
static void pam_segment(mv_machine *m, mv_region *ram, mv_region *pci, uint64_t start,
			uint64_t size)
{
	mv_region *alias[4];

	/* init_pam's alias order: 0 pci, 1 rom (RAM read-only), 2 pci-ram, 3 ram */
	alias[0] = mvb_alias(m, "pam-pci", pci, start, size);
	alias[1] = mvb_alias(m, "pam-rom", ram, start, size);
	alias[2] = mvb_alias(m, "pam-pci", ram, start, size);
	alias[3] = mvb_alias(m, "pam-ram", ram, start, size);
	if (m->ret)
		return;
	mv_region_set_readonly(alias[1], true);
	for (int i = 1; i < 4; i++)
		mv_region_set_enabled(alias[i], false);
	for (int i = 0; i < 4; i++)
		mvb_map(m, m->system, start, alias[i], 1);
}

/* i440fx_init: SMRAM window onto PCI and the 13 PAM segments. */
static void pc_i440fx(mv_machine *m, mv_region *ram, mv_region *pci)
{
	mvb_map(m, m->system, PC_SMRAM_BASE,
		mvb_alias(m, "smram-region", pci, PC_SMRAM_BASE, PC_SMRAM_SIZE), 1);
	pam_segment(m, ram, pci, PAM_BIOS_BASE, PAM_BIOS_SIZE);
	for (int i = 0; i < PAM_EXPAN_NR; i++)
		pam_segment(m, ram, pci, PAM_EXPAN_BASE + (uint64_t)i * PAM_EXPAN_SIZE,
			    PAM_EXPAN_SIZE);
}

static void pc_build(mv_machine *m)
{
	uint64_t below, above, dm_base, dm_size;
	mv_region *ram, *pci;

	pc_ram_split(m->opts.ram_size, &below, &above);
	m->ram = mvb_block(m, "pc.ram", m->opts.ram_size, true);
	ram = mvb_ram(m, "pc.ram", m->ram);
	/* pc_pci_as_mapping_init: PCI space under RAM, over nothing */
	pci = mvb_container(m, "pci", MV_2_64);
	mvb_map(m, m->system, 0, mvb_alias(m, "ram-below-4g", ram, 0, below), 0);
	mvb_map(m, m->system, 0, pci, -1);
	if (above)
		mvb_map(m, m->system, MV_4GiB, mvb_alias(m, "ram-above-4g", ram, below, above), 0);
	pc_bios(m, pci);
	mvb_map(m, pci, PC_ROM_BASE, mvb_rom(m, "pc.rom", mvb_block(m, "pc.rom", PC_ROM_SIZE, false)), 1);
	pc_i440fx(m, ram, pci);
	mvb_map_device(m, m->system, PC_IOAPIC_BASE, "ioapic", 0x1000, 0);
	mvb_map_device(m, m->system, PC_HPET_BASE, "hpet", PC_HPET_LEN, 0);
	mvb_map_device(m, m->system, PC_APIC_BASE, "apic-msi", PC_APIC_SPACE, PC_APIC_PRIO);
	pc_device_memory(above, &m->opts, &dm_base, &dm_size);
	if (dm_size)
		mvb_device_memory(m, dm_base, dm_size);
}

const mv_board mv_board_pc = {
	.name = "pc",
	.qemu_name = "pc-i440fx-7.2",
	.has_io_space = true,
	.memory_hotplug = true,
	.check = pc_check,
	.build = pc_build,
};
