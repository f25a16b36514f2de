/*
 * The dirty workload at CPL3: rounds of PRNG-chosen page writes in this
 * vCPU's working set, each page reported once per round to the test
 * device's coalesced PAGE_REPORT register; the VMM checks its dirty log
 * against the reports at ROUND_END.
 */
#include "guest.h"

#define BITMAP_WORDS (WS_MAX_MIB * MIB / PAGE_SIZE / 64)

/* The pages written this round, one bit per page of the working set (outside it). */
static uint64_t ws_bitmap[MAX_CPUS][BITMAP_WORDS];

void wl_dirty(struct cpu_ctx *c, const struct config *cfg)
{
	uint64_t pages = cfg->ws_mib * MIB / PAGE_SIZE;
	uint64_t words = (pages + 63) / 64;
	uint64_t *bm = ws_bitmap[c->cpu];
	uint64_t st = cpu_seed(cfg->dirty_seed, c->cpu);
	uint64_t gfn0 = c->base / PAGE_SIZE;
	uint64_t vcpu_tag = (uint64_t)c->cpu << 48;

	if (c->dev) {
		mmio_write(MVT_REG_WS_BASE, c->base);
		mmio_write(MVT_REG_WS_PAGES, pages);
	}
	for (uint64_t round = 1; round <= cfg->rounds; round++) {
		uint64_t distinct = 0, h = FNV_OFFSET;

		for (uint64_t w = 0; w < words; w++)
			bm[w] = 0;
		for (uint64_t i = 0; i < cfg->pages; i++) {
			uint64_t x = splitmix64(&st);
			uint64_t idx = x % pages;
			uint64_t off = ((x >> 40) & 511) * 8;
			*(volatile uint64_t *)(uintptr_t)(c->base + idx * PAGE_SIZE + off) = (round << 32) | i;
			if (!(bm[idx / 64] & (1ULL << (idx % 64)))) {
				bm[idx / 64] |= 1ULL << (idx % 64);
				distinct++;
				if (c->dev)
					mmio_write(MVT_REG_PAGE_REPORT, vcpu_tag | (gfn0 + idx));
			}
			for (uint64_t k = 0; k < cfg->spin; k++)
				__asm__ volatile("" ::: "memory");
		}
		/* FNV-1a over the distinct page indices in ascending order */
		for (uint64_t w = 0; w < words; w++) {
			uint64_t bits = bm[w];
			for (unsigned b = 0; bits; b++, bits >>= 1)
				if (bits & 1)
					h = fnv1a_u64(h, w * 64 + b);
		}
		say("dirty: cpu %u round %lu pages %lu hash %016lx\n", c->cpu, round, distinct, h);
		if (c->dev) {
			mmio_write(MVT_REG_ROUND_END, ((uint64_t)c->cpu << 32) | round);
			uint64_t status = mmio_read(MVT_REG_ROUND_STATUS);
			say("mvt: dirty cpu %u round %lu status %lu\n", c->cpu, round, status);
			if (status)
				fail("dirty cpu %u round %lu: %lu pages differ from the dirty log", c->cpu, round, status);
		}
	}
}
