/* Memory workloads at CPL3: touch (one write per page) and verify (PRNG fill, read back, checksums). */
#include "guest.h"

void wl_touch(struct cpu_ctx *c, const struct mvg_config *cfg)
{
	uint64_t pages = cfg->touch_mib * MIB / PAGE_SIZE;

	for (uint64_t p = 0; p < pages; p++) {
		uint64_t a = c->base + p * PAGE_SIZE;
		*(volatile uint64_t *)(uintptr_t)a = mvg_touch_value(a, c->cpu);
	}
	say(MVG_FMT_TOUCH, c->cpu, pages);
}

/*
 * Fill verify_mib MiB with the mvg_splitmix64 stream of mvg_cpu_seed(seed, cpu),
 * then regenerate the stream, compare every qword and hash what was read:
 * FNV-1a 64 over the bytes of each MiB.
 */
void wl_verify(struct cpu_ctx *c, const struct mvg_config *cfg)
{
	const uint64_t per_mib = MIB / 8;
	volatile uint64_t *p = (volatile uint64_t *)(uintptr_t)c->base;
	uint64_t st = mvg_cpu_seed(cfg->verify_seed, c->cpu);

	for (uint64_t i = 0; i < cfg->verify_mib * per_mib; i++)
		p[i] = mvg_splitmix64(&st);

	st = mvg_cpu_seed(cfg->verify_seed, c->cpu);
	for (uint64_t m = 0; m < cfg->verify_mib; m++) {
		uint64_t h = MVG_FNV_OFFSET, bad = 0;
		for (uint64_t i = m * per_mib; i < (m + 1) * per_mib; i++) {
			uint64_t v = p[i];
			if (v != mvg_splitmix64(&st))
				bad++;
			h = mvg_fnv1a_u64(h, v);
		}
		say(MVG_FMT_VERIFY, c->cpu, m, h);
		if (c->dev)
			mmio_write(MVT_REG_RESULT, h);
		if (bad)
			fail(MVG_FAIL_VERIFY, c->cpu, m, bad);
	}
}
