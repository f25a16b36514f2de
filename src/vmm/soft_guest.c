/*
 * The soft test guest's program (guests/main.c): vCPU 0 probes the test
 * device, parses the command line and places each vCPU's slice of the
 * workload area, then releases the others; every vCPU runs the workload
 * list on its slice; vCPU 0 waits for all, prints "guest: done" and ends
 * the VM through isa-debug-exit. Plus the programs' shared state and how
 * the VMM attaches them to soft vCPUs.
 */
#include "vmm/soft_guest_internal.h"

#include "memvirt/testdev_abi.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The dirty workload's bitmap: one bit per page of the largest working set. */
#define SG_BITMAP_WORDS (MVG_WS_MAX_MIB * MVG_MIB / MVG_PAGE_SIZE / 64)

/* vCPU 0 (main.c's prepare): the device, the command line, the slices. */
static void sg_prepare(vmm_sg_cpu *c)
{
	vmm_soft_guest *g = c->g;
	char bad[64];

	g->dev = vmm_sg_mmio_read(c, MVT_REG_MAGIC) == MVT_MAGIC;
	if (mvg_parse_cmdline(g->cmdline, &g->cfg, bad, sizeof(bad))) {
		vmm_sg_say(c, MVG_FMT_BAD_CMDLINE, bad);
		vmm_sg_exit(c, MVG_EXIT_CMDLINE);
	}
	g->nr_cpus = 1;
	if (g->dev) {
		uint64_t n = vmm_sg_mmio_read(c, MVT_REG_NR_VCPUS);
		uint64_t version = vmm_sg_mmio_read(c, MVT_REG_VERSION);

		vmm_sg_say(c, MVG_FMT_DEVICE, version, n, vmm_sg_mmio_read(c, MVT_REG_RAM_SIZE));
		if (n < 1 || n > MVG_MAX_CPUS) {
			vmm_sg_fail(c, MVG_FAIL_VCPUS, n, (unsigned)MVG_MAX_CPUS);
			vmm_sg_exit(c, MVG_EXIT_FAIL);
		}
		g->nr_cpus = (unsigned)n;
	}
	g->slice = mvg_slice_size(&g->cfg);
	if (!mvg_place_slices(g->cfg.base_mib, g->slice, g->ram, g->nr_ram, g->nr_cpus, g->base)) {
		vmm_sg_fail(c, MVG_FAIL_NO_ROOM, g->nr_cpus, g->slice / MVG_MIB, g->cfg.base_mib);
		vmm_sg_exit(c, MVG_EXIT_FAIL);
	}
}

static void sg_run_workloads(vmm_sg_cpu *c)
{
	const struct mvg_config *cfg = &c->g->cfg;

	for (unsigned i = 0; i < cfg->nr_wl; i++) {
		switch (cfg->wl[i]) {
		case MVG_WL_TOUCH: vmm_sg_touch(c); break;
		case MVG_WL_DIRTY: vmm_sg_dirty(c); break;
		case MVG_WL_MMIO: vmm_sg_mmio(c); break;
		case MVG_WL_PIO: vmm_sg_pio(c); break;
		case MVG_WL_VERIFY: vmm_sg_verify(c); break;
		case MVG_WL_ROM: vmm_sg_rom(c); break;
		}
	}
}

/* main.c's user_main: every vCPU after its set-up. */
__attribute__((noreturn)) static void sg_user_main(vmm_sg_cpu *c)
{
	vmm_soft_guest *g = c->g;

	if (c->id == 0) {
		sg_prepare(c);
		atomic_store_explicit(&g->go, 1, memory_order_release);
	} else {
		while (!atomic_load_explicit(&g->go, memory_order_acquire))
			vmm_sg_relax(c);
		if (c->id >= g->nr_cpus)
			for (;;)
				vmm_sg_relax(c);    /* not part of this machine's count */
	}
	c->base = g->base[c->id];
	sg_run_workloads(c);
	atomic_fetch_add_explicit(&g->done, 1, memory_order_release);
	if (c->id != 0)
		for (;;)
			vmm_sg_relax(c);
	while (atomic_load_explicit(&g->done, memory_order_acquire) < g->nr_cpus)
		vmm_sg_relax(c);
	if (atomic_load_explicit(&g->failures, memory_order_relaxed))
		vmm_sg_exit(c, MVG_EXIT_FAIL);
	vmm_sg_say(c, MVG_LINE_DONE);
	vmm_sg_exit(c, MVG_EXIT_OK);
}

/* The program of every vCPU: hv_soft_program_fn. */
static int sg_program(hv_soft_cpu *cpu, void *arg)
{
	vmm_sg_cpu *c = arg;

	c->cpu = cpu;
	if (setjmp(c->leave))
		return c->error;        /* an access failed for good (vmm_sg_read and friends) */
	vmm_sg_boot(c);
	sg_user_main(c);
}

int vmm_soft_guest_new(uint64_t start_info, unsigned nr_vcpus, vmm_soft_guest **out,
		       mv_error *err)
{
	vmm_soft_guest *g;

	if (nr_vcpus < 1 || nr_vcpus > MVG_MAX_CPUS)
		return mv_error_set(err, -EINVAL, "the soft test guest runs on 1 to %d vCPUs, not %u",
				    MVG_MAX_CPUS, nr_vcpus);
	g = calloc(1, sizeof(*g) + nr_vcpus * sizeof(g->cpus[0]));
	if (!g)
		return mv_error_set(err, -ENOMEM, "out of memory for the soft test guest");
	g->start_info = start_info;
	g->nr_vcpus = nr_vcpus;
	for (unsigned i = 0; i < nr_vcpus; i++) {
		g->cpus[i].g = g;
		g->cpus[i].id = i;
		g->cpus[i].bitmap = calloc(SG_BITMAP_WORDS, sizeof(uint64_t));
		if (!g->cpus[i].bitmap) {
			vmm_soft_guest_free(g);
			return mv_error_set(err, -ENOMEM, "out of memory for the soft test guest");
		}
	}
	*out = g;
	return 0;
}

void vmm_soft_guest_free(vmm_soft_guest *g)
{
	if (!g)
		return;
	for (unsigned i = 0; i < g->nr_vcpus; i++)
		free(g->cpus[i].bitmap);
	free(g);
}

int vmm_soft_guest_attach(vmm_soft_guest *g, hv_vcpu *vcpu, mv_error *err)
{
	uint32_t id = hv_vcpu_id(vcpu);
	int r;

	if (id >= g->nr_vcpus)
		return mv_error_set(err, -EINVAL, "vCPU %u: the soft test guest has %u vCPUs", id,
				    g->nr_vcpus);
	r = hv_soft_vcpu_set_program(vcpu, sg_program, &g->cpus[id]);
	if (r)
		return mv_error_set(err, r, "vCPU %u: cannot give it the test guest's program: %s", id,
				    strerror(-r));
	return 0;
}
