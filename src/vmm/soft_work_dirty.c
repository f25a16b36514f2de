/*
 * The soft test guest's dirty workload (guests/work_dirty.c): rounds of
 * PRNG-chosen qword stores in this vCPU's working set, each page reported
 * once per round to the test device's PAGE_REPORT register (coalesced when
 * the VMM registered the zone), then ROUND_END / ROUND_STATUS. The same
 * stores at the same addresses as the guest's, in the same order.
 *
 * The guest keeps its round bitmap in its image (guest RAM outside the
 * working set); the program keeps it in host memory. Neither is in the
 * working set, so the working set's dirty log is the same.
 */
#include "vmm/soft_guest_internal.h"

#include "memvirt/testdev_abi.h"

void vmm_sg_dirty(vmm_sg_cpu *c)
{
	const struct mvg_config *cfg = &c->g->cfg;
	bool dev = c->g->dev;
	uint64_t pages = cfg->ws_mib * MVG_MIB / MVG_PAGE_SIZE;
	uint64_t words = (pages + 63) / 64;
	uint64_t *bm = c->bitmap;
	uint64_t st = mvg_cpu_seed(cfg->dirty_seed, c->id);
	uint64_t gfn0 = c->base / MVG_PAGE_SIZE;

	if (dev) {
		vmm_sg_mmio_write(c, MVT_REG_WS_BASE, c->base);
		vmm_sg_mmio_write(c, MVT_REG_WS_PAGES, pages);
	}
	for (uint64_t round = 1; round <= cfg->rounds; round++) {
		uint64_t distinct = 0;

		for (uint64_t w = 0; w < words; w++)
			bm[w] = 0;
		for (uint64_t i = 0; i < cfg->pages; i++) {
			uint64_t x = mvg_splitmix64(&st);
			uint64_t idx = mvg_dirty_page(x, pages);
			vmm_sg_write(c, c->base + idx * MVG_PAGE_SIZE + mvg_dirty_offset(x), 8,
				     mvg_dirty_value(round, i));
			if (mvg_bit_set_first(bm, idx)) {
				distinct++;
				if (dev)
					vmm_sg_mmio_write(c, MVT_REG_PAGE_REPORT, mvg_tag48(c->id, gfn0 + idx));
			}
			/* the write rate, as the guest's empty loop */
			for (uint64_t k = 0; k < cfg->spin; k++)
				__asm__ volatile("" ::: "memory");
		}
		vmm_sg_say(c, MVG_FMT_DIRTY, c->id, round, distinct, mvg_bitmap_hash(bm, words));
		if (dev) {
			vmm_sg_mmio_write(c, MVT_REG_ROUND_END, mvg_round_end(c->id, round));
			uint64_t status = vmm_sg_mmio_read(c, MVT_REG_ROUND_STATUS);
			vmm_sg_say(c, MVG_FMT_DIRTY_STATUS, c->id, round, status);
			if (status)
				vmm_sg_fail(c, MVG_FAIL_DIRTY, c->id, round, status);
		}
	}
}
