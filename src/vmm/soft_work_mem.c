/*
 * The soft test guest's memory workloads (guests/work_mem.c): touch (one
 * qword store per 4 KiB page) and verify (PRNG fill, read back, compare,
 * FNV-1a per MiB), the same stores and loads through the soft vCPU.
 */
#include "vmm/soft_guest_internal.h"

#include "memvirt/testdev_abi.h"

void vmm_sg_touch(vmm_sg_cpu *c)
{
	uint64_t pages = c->g->cfg.touch_mib * MVG_MIB / MVG_PAGE_SIZE;

	for (uint64_t p = 0; p < pages; p++) {
		uint64_t a = c->base + p * MVG_PAGE_SIZE;
		vmm_sg_write(c, a, 8, mvg_touch_value(a, c->id));
	}
	vmm_sg_say(c, MVG_FMT_TOUCH, c->id, pages);
}

void vmm_sg_verify(vmm_sg_cpu *c)
{
	const struct mvg_config *cfg = &c->g->cfg;
	const uint64_t per_mib = MVG_MIB / 8;
	uint64_t st = mvg_cpu_seed(cfg->verify_seed, c->id);

	for (uint64_t i = 0; i < cfg->verify_mib * per_mib; i++)
		vmm_sg_write(c, c->base + i * 8, 8, mvg_splitmix64(&st));

	st = mvg_cpu_seed(cfg->verify_seed, c->id);
	for (uint64_t m = 0; m < cfg->verify_mib; m++) {
		uint64_t h = MVG_FNV_OFFSET, bad = 0;
		for (uint64_t i = m * per_mib; i < (m + 1) * per_mib; i++) {
			uint64_t v = vmm_sg_read(c, c->base + i * 8, 8);
			if (v != mvg_splitmix64(&st))
				bad++;
			h = mvg_fnv1a_u64(h, v);
		}
		vmm_sg_say(c, MVG_FMT_VERIFY, c->id, m, h);
		if (c->g->dev)
			vmm_sg_mmio_write(c, MVT_REG_RESULT, h);
		if (bad)
			vmm_sg_fail(c, MVG_FAIL_VERIFY, c->id, m, bad);
	}
}
