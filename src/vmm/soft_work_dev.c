/*
 * The soft test guest's device workloads (guests/work_dev.c): mmio (test
 * device SCRATCH, the coalesced SEQ register, SEQ_CHECK / SEQ_COUNT), pio
 * (port SCRATCH, the FIFO) and rom (a store to the ROM must be dropped).
 *
 * The guest moves the FIFO string with `rep outsb` / `rep insb` from and
 * to its stack; a program has no string I/O and no stack in guest memory,
 * so it makes 64 one-byte OUTs and INs from and to host buffers: the
 * device sees the same bytes in the same order.
 */
#include "vmm/soft_guest_internal.h"

#include "memvirt/testdev_abi.h"

void vmm_sg_mmio(vmm_sg_cpu *c)
{
	const struct mvg_config *cfg = &c->g->cfg;
	uint64_t n = cfg->mmio_count, bad = 0;

	if (!c->g->dev) {
		vmm_sg_say(c, MVG_LINE_MMIO_SKIPPED);
		return;
	}
	for (uint64_t i = 0; i < n; i++) {
		uint64_t v = mvg_tag48(c->id, i), r;
		vmm_sg_mmio_write(c, MVT_REG_SCRATCH, v);
		r = vmm_sg_mmio_read(c, MVT_REG_SCRATCH);
		bad += mvg_scratch_bad(r, v, 48, c->id, c->g->nr_cpus);
	}
	for (uint64_t i = 0; i < cfg->seq_count; i++)
		vmm_sg_mmio_write(c, MVT_REG_SEQ, mvg_tag48(c->id, c->seq++));
	uint64_t check = vmm_sg_mmio_read(c, MVT_REG_SEQ_CHECK);
	uint64_t count = vmm_sg_mmio_read(c, MVT_REG_SEQ_COUNT);
	bool ok = !bad && check == 0 && count >= c->seq;
	vmm_sg_say(c, MVG_FMT_MMIO, c->id, n, ok ? "ok" : "FAIL");
	vmm_sg_say(c, MVG_FMT_MMIO_DEV, c->id, bad, check, count);
	if (bad)
		vmm_sg_fail(c, MVG_FAIL_MMIO_SCRATCH, c->id, bad);
	if (check)
		vmm_sg_fail(c, MVG_FAIL_MMIO_SEQ_CHECK, c->id, check);
	if (count < c->seq)
		vmm_sg_fail(c, MVG_FAIL_MMIO_SEQ_COUNT, c->id, count, c->seq);
}

void vmm_sg_pio(vmm_sg_cpu *c)
{
	uint64_t n = c->g->cfg.pio_count, bad = 0;
	uint8_t out[MVG_FIFO_BYTES], in[MVG_FIFO_BYTES];
	unsigned sbad = 0;

	if (!c->g->dev) {
		vmm_sg_say(c, MVG_LINE_PIO_SKIPPED);
		return;
	}
	for (uint64_t i = 0; i < n; i++) {
		uint32_t v = mvg_pio_value(c->id, i), r;
		vmm_sg_out(c, MVT_PIO_SCRATCH, 4, v);
		r = vmm_sg_in(c, MVT_PIO_SCRATCH, 4);
		bad += mvg_scratch_bad(r, v, MVG_PIO_TAG_SHIFT, c->id, c->g->nr_cpus);
	}
	for (unsigned i = 0; i < MVG_FIFO_BYTES; i++)
		out[i] = mvg_fifo_byte(c->id, i);
	vmm_sg_lock(c, &c->g->fifo_lock);
	for (unsigned i = 0; i < MVG_FIFO_BYTES; i++)
		vmm_sg_out(c, MVT_PIO_FIFO, 1, out[i]);
	for (unsigned i = 0; i < MVG_FIFO_BYTES; i++)
		in[i] = (uint8_t)vmm_sg_in(c, MVT_PIO_FIFO, 1);
	vmm_sg_unlock(&c->g->fifo_lock);
	for (unsigned i = 0; i < MVG_FIFO_BYTES; i++)
		sbad += in[i] != out[i];
	vmm_sg_say(c, MVG_FMT_PIO, c->id, n, (unsigned)MVG_FIFO_BYTES, !bad && !sbad ? "ok" : "FAIL");
	if (bad)
		vmm_sg_fail(c, MVG_FAIL_PIO_SCRATCH, c->id, bad);
	if (sbad)
		vmm_sg_fail(c, MVG_FAIL_PIO_FIFO, c->id, sbad, (unsigned)MVG_FIFO_BYTES);
}

void vmm_sg_rom(vmm_sg_cpu *c)
{
	uint64_t before = vmm_sg_read(c, MVT_ROM_BASE, 8), after;
	bool dev = c->g->dev;

	vmm_sg_write(c, MVT_ROM_BASE, 8, ~before);
	after = vmm_sg_read(c, MVT_ROM_BASE, 8);
	if (after != before) {
		vmm_sg_write(c, MVT_ROM_BASE, 8, before);
		vmm_sg_say(c, MVG_LINE_ROM_CHANGED);
		if (dev)
			vmm_sg_fail(c, MVG_FAIL_ROM_CHANGED, c->id, (uint64_t)MVT_ROM_BASE, before, after);
	} else {
		vmm_sg_say(c, MVG_LINE_ROM_UNCHANGED);
	}
	if (dev) {
		vmm_sg_say(c, MVG_FMT_ROM_MAGIC, before == MVT_ROM_MAGIC ? "ok" : "bad");
		if (before != MVT_ROM_MAGIC)
			vmm_sg_fail(c, MVG_FAIL_ROM_MAGIC, before, (uint64_t)MVT_ROM_MAGIC);
	}
}
