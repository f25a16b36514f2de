/*
 * "virt-arm64": QEMU 7.2's arm "virt" board (hw/arm/virt.c base_memmap,
 * extended_memmap, virt_set_memmap, machvirt_init and the create_*
 * functions) as configured for a 64-bit guest: GICv3 with ITS, one vCPU,
 * highmem on (high ECAM and the 512 GiB high PCIe window), no secure world,
 * no SMMU, no firmware-dependent ACPI GED. Device windows are placeholders
 * named as QEMU names their MemoryRegions.
 *
 * The IPA size is 40 bits, KVM/arm64's default VM IPA size, which decides
 * which high regions fit (virt_set_high_memmap).
 */
#include "machine/board.h"

#include <errno.h>
#include <inttypes.h>

/* base_memmap[] of hw/arm/virt.c */
#define VIRT_FLASH 0x00000000ULL
#define VIRT_FLASH_BANK 0x04000000ULL          /* VIRT_FLASH size / 2 */
#define VIRT_GIC_DIST 0x08000000ULL
#define VIRT_GIC_DIST_SIZE 0x10000ULL
#define VIRT_GIC_ITS 0x08080000ULL
#define VIRT_GIC_REDIST 0x080a0000ULL
#define VIRT_UART 0x09000000ULL
#define VIRT_RTC 0x09010000ULL
#define VIRT_FW_CFG 0x09020000ULL
#define VIRT_GPIO 0x09030000ULL
#define VIRT_MMIO 0x0a000000ULL
#define VIRT_MMIO_SIZE 0x200ULL
#define VIRT_MMIO_NR 32                         /* NUM_VIRTIO_TRANSPORTS */
#define VIRT_PLATFORM_BUS 0x0c000000ULL
#define VIRT_PLATFORM_BUS_SIZE 0x02000000ULL
#define VIRT_PCIE_MMIO 0x10000000ULL
#define VIRT_PCIE_MMIO_SIZE 0x2eff0000ULL
#define VIRT_PCIE_PIO 0x3eff0000ULL
#define VIRT_PCIE_PIO_SIZE 0x10000ULL
#define VIRT_PCIE_ECAM 0x3f000000ULL
#define VIRT_PCIE_ECAM_SIZE 0x01000000ULL
#define VIRT_MEM 0x40000000ULL
#define LEGACY_RAMLIMIT_BYTES (255 * MV_GiB)
/* extended_memmap[]: sizes; bases float above RAM (virt_set_high_memmap). */
#define VIRT_HIGH_GIC_REDIST2_SIZE (64 * MV_MiB)
#define VIRT_HIGH_PCIE_ECAM_SIZE (256 * MV_MiB)
#define VIRT_HIGH_PCIE_MMIO_SIZE (512 * MV_GiB)
/* Device register sizes: GICv3 ITS (ITS_CONTROL_SIZE, ITS_TRANS_SIZE), one
 * redistributor (GICV3_REDIST_SIZE), PL0xx pages, fw_cfg (fw_cfg_init_mem_wide). */
#define ITS_CONTROL_SIZE 0x10000ULL
#define ITS_TRANS_SIZE 0x10000ULL
#define GICV3_REDIST_SIZE 0x20000ULL
#define PL0XX_SIZE 0x1000ULL
#define PCIE_MMCFG_SIZE_MAX (256 * MV_MiB)
#define VIRT_PA_BITS 40
#define VIRT_PA_LIMIT (1ULL << VIRT_PA_BITS)

/* Where virt_set_memmap puts device memory and the high regions. */
struct virt_layout {
	uint64_t dm_base, dm_size;
	uint64_t high_ecam, high_mmio;  /* 0: did not fit in the IPA space */
};

/*
 * virt_set_memmap + virt_set_high_memmap (compact layout): device memory
 * 1 GiB aligned after RAM, then each high region aligned to its size,
 * from 256 GiB at the lowest. Fails when RAM and device memory do not fit.
 */
static int virt_layout(const mv_machine_opts *o, struct virt_layout *l, mv_error *err)
{
	static const uint64_t sizes[3] = { VIRT_HIGH_GIC_REDIST2_SIZE, VIRT_HIGH_PCIE_ECAM_SIZE,
					   VIRT_HIGH_PCIE_MMIO_SIZE };
	uint64_t bases[3] = { 0 }, base, memtop;

	l->dm_base = mvm_align_up(VIRT_MEM + o->ram_size, MV_GiB);
	l->dm_size = o->maxmem - o->ram_size + (uint64_t)o->slots * MV_GiB;
	memtop = l->dm_base + mvm_align_up(l->dm_size, MV_GiB);
	if (o->ram_size > VIRT_PA_LIMIT || memtop > VIRT_PA_LIMIT || memtop < l->dm_base)
		return mv_error_set(err, -EINVAL,
				    "machine 'virt-arm64': RAM and device memory would end at 0x%" PRIx64 ", beyond the %d-bit IPA space",
				    memtop, VIRT_PA_BITS);
	base = memtop < VIRT_MEM + LEGACY_RAMLIMIT_BYTES ? VIRT_MEM + LEGACY_RAMLIMIT_BYTES : memtop;
	for (int i = 0; i < 3; i++) {
		uint64_t rb = mvm_align_up(base, sizes[i]);

		if (rb + sizes[i] > VIRT_PA_LIMIT)
			continue;       /* disabled; the compact layout does not skip past it */
		bases[i] = rb;
		base = rb + sizes[i];
	}
	l->high_ecam = bases[1];
	l->high_mmio = bases[2];
	return 0;
}

static int virt_check(const mv_machine_opts *o, mv_error *err)
{
	struct virt_layout l = { 0 };

	return virt_layout(o, &l, err);
}

/* create_flash: two CFI flash banks, ROM devices backed by RAM blocks. */
static void virt_flash(mv_machine *m)
{
	static const char *const names[2] = { "virt.flash0", "virt.flash1" };

	for (int i = 0; i < 2; i++)
		mvb_map(m, m->system, VIRT_FLASH + (uint64_t)i * VIRT_FLASH_BANK,
			mvb_romd(m, names[i], mvb_block(m, names[i], VIRT_FLASH_BANK, true)), 0);
}

/* create_gic with gic-version=3 and its ITS (gicv3_its_init_mmio). */
static void virt_gic(mv_machine *m)
{
	mv_region *its = mvb_container(m, "gicv3_its", ITS_CONTROL_SIZE + ITS_TRANS_SIZE);

	mvb_map_device(m, m->system, VIRT_GIC_DIST, "gicv3_dist", VIRT_GIC_DIST_SIZE, 0);
	mvb_map_device(m, its, 0, "control", ITS_CONTROL_SIZE, 0);
	mvb_map_device(m, its, ITS_CONTROL_SIZE, "translation", ITS_TRANS_SIZE, 0);
	mvb_map(m, m->system, VIRT_GIC_ITS, its, 0);
	mvb_map_device(m, m->system, VIRT_GIC_REDIST, "gicv3_redist_region[0]", GICV3_REDIST_SIZE, 0);
}

/* create_uart, create_rtc, create_fw_cfg, create_gpio, virtio transports. */
static void virt_platform(mv_machine *m)
{
	mvb_map_device(m, m->system, VIRT_UART, "pl011", PL0XX_SIZE, 0);
	mvb_map_device(m, m->system, VIRT_RTC, "pl031", PL0XX_SIZE, 0);
	mvb_map_device(m, m->system, VIRT_FW_CFG, "fwcfg.data", 8, 0);
	mvb_map_device(m, m->system, VIRT_FW_CFG + 8, "fwcfg.ctl", 2, 0);
	mvb_map_device(m, m->system, VIRT_FW_CFG + 16, "fwcfg.dma", 8, 0);
	mvb_map_device(m, m->system, VIRT_GPIO, "pl061", PL0XX_SIZE, 0);
	for (int i = 0; i < VIRT_MMIO_NR; i++)
		mvb_map_device(m, m->system, VIRT_MMIO + (uint64_t)i * VIRT_MMIO_SIZE, "virtio-mmio",
			       VIRT_MMIO_SIZE, 0);
	mvb_map(m, m->system, VIRT_PLATFORM_BUS,
		mvb_container(m, "platform bus", VIRT_PLATFORM_BUS_SIZE), 0);
}

/*
 * create_pcie with the gpex host (hw/pci-host/gpex.c): ECAM and the MMIO
 * windows are aliases into the host's regions; unmapped PCI space reads
 * as all ones (allow_unmapped_accesses).
 */
static void virt_pcie(mv_machine *m, const struct virt_layout *l)
{
	mv_region *mmcfg = mvb_device(m, "pcie-mmcfg-mmio", PCIE_MMCFG_SIZE_MAX);
	mv_region *mmio = mvb_unassigned(m, "gpex_mmio_window", MV_2_64);
	mv_region *pio = mvb_unassigned(m, "gpex_ioport_window", VIRT_PCIE_PIO_SIZE);
	uint64_t ecam = l->high_ecam ? l->high_ecam : VIRT_PCIE_ECAM;
	uint64_t ecam_size = l->high_ecam ? VIRT_HIGH_PCIE_ECAM_SIZE : VIRT_PCIE_ECAM_SIZE;

	mvb_map(m, mmio, 0, mvb_container(m, "gpex_mmio", MV_2_64), 0);
	mvb_map(m, pio, 0, mvb_container(m, "gpex_ioport", VIRT_PCIE_PIO_SIZE), 0);
	mvb_map(m, m->system, ecam, mvb_alias(m, "pcie-ecam", mmcfg, 0, ecam_size), 0);
	mvb_map(m, m->system, VIRT_PCIE_MMIO,
		mvb_alias(m, "pcie-mmio", mmio, VIRT_PCIE_MMIO, VIRT_PCIE_MMIO_SIZE), 0);
	if (l->high_mmio)
		mvb_map(m, m->system, l->high_mmio,
			mvb_alias(m, "pcie-mmio-high", mmio, l->high_mmio, VIRT_HIGH_PCIE_MMIO_SIZE), 0);
	mvb_map(m, m->system, VIRT_PCIE_PIO, pio, 0);
}

static void virt_build(mv_machine *m)
{
	struct virt_layout l = { 0 };

	if (virt_layout(&m->opts, &l, m->err)) {
		m->ret = -EINVAL;
		return;
	}
	virt_flash(m);
	virt_gic(m);
	virt_platform(m);
	virt_pcie(m, &l);
	m->ram = mvb_block(m, "mach-virt.ram", m->opts.ram_size, true);
	mvb_map(m, m->system, VIRT_MEM, mvb_ram(m, "mach-virt.ram", m->ram), 0);
	if (l.dm_size)
		mvb_device_memory(m, l.dm_base, l.dm_size);
}

const mv_board mv_board_virt_arm64 = {
	.name = "virt-arm64",
	.qemu_name = "virt-7.2",
	.has_io_space = false,
	.memory_hotplug = true,
	.check = virt_check,
	.build = virt_build,
};
