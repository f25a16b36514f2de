/*
 * The dirty workload at CPL3: rounds of PRNG-chosen page writes in this
 * vCPU's working set, each page reported once per round to the test
 * device's coalesced PAGE_REPORT register; the VMM checks its dirty log
 * against the reports at ROUND_END.
 */
#include "guest.h"

#define BITMAP_WORDS (MVG_WS_MAX_MIB * MIB / PAGE_SIZE / 64)

/* The pages written this round, one bit per page of the working set (outside it). */
static uint64_t ws_bitmap[MVG_MAX_CPUS][BITMAP_WORDS];

void wl_dirty(struct cpu_ctx *c, const struct mvg_config *cfg)
{
	uint64_t pages = cfg->ws_mib * MIB / PAGE_SIZE;
	uint64_t words = (pages + 63) / 64;
	uint64_t *bm = ws_bitmap[c->cpu];
	uint64_t st = mvg_cpu_seed(cfg->dirty_seed, c->cpu);
	uint64_t gfn0 = c->base / PAGE_SIZE;

	if (c->dev) {
		mmio_write(MVT_REG_WS_BASE, c->base);
		mmio_write(MVT_REG_WS_PAGES, pages);
	}
	for (uint64_t round = 1; round <= cfg->rounds; round++) {
		uint64_t distinct = 0;

		for (uint64_t w = 0; w < words; w++)
			bm[w] = 0;
		for (uint64_t i = 0; i < cfg->pages; i++) {
			uint64_t x = mvg_splitmix64(&st);
			uint64_t idx = mvg_dirty_page(x, pages);
			*(volatile uint64_t *)(uintptr_t)(c->base + idx * PAGE_SIZE + mvg_dirty_offset(x)) =
				mvg_dirty_value(round, i);
			if (mvg_bit_set_first(bm, idx)) {
				distinct++;
				if (c->dev)
					mmio_write(MVT_REG_PAGE_REPORT, mvg_tag48(c->cpu, gfn0 + idx));
			}
			for (uint64_t k = 0; k < cfg->spin; k++)
				__asm__ volatile("" ::: "memory");
		}
		say(MVG_FMT_DIRTY, c->cpu, round, distinct, mvg_bitmap_hash(bm, words));
		if (c->dev) {
			mmio_write(MVT_REG_ROUND_END, mvg_round_end(c->cpu, round));
			uint64_t status = mmio_read(MVT_REG_ROUND_STATUS);
			say(MVG_FMT_DIRTY_STATUS, c->cpu, round, status);
			if (status)
				fail(MVG_FAIL_DIRTY, c->cpu, round, status);
		}
	}
}
