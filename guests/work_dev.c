/*
 * Device workloads at CPL3: mmio (test device registers and the coalesced
 * SEQ register), pio (port scratch and FIFO with string I/O), rom (a write
 * to the ROM must be dropped; a failure only with the test device, as
 * QEMU's microvm has its BIOS there in RAM).
 *
 * The scratch registers are one per machine, shared by all vCPUs. Values
 * carry the writer's vCPU number, so a read-back is checked without a
 * lock (a lock held across exits stalls every vCPU when the host has
 * fewer CPUs than the VM): it must be this vCPU's value just written or
 * a value tagged with another vCPU of the machine. The FIFO is shared
 * too: one lock around the whole string transfer.
 */
#include "guest.h"

static volatile uint32_t fifo_lock;

void wl_mmio(struct cpu_ctx *c, const struct mvg_config *cfg)
{
	uint64_t n = cfg->mmio_count, bad = 0;

	if (!c->dev) {
		say(MVG_LINE_MMIO_SKIPPED);
		return;
	}
	for (uint64_t i = 0; i < n; i++) {
		uint64_t v = mvg_tag48(c->cpu, i), r;
		mmio_write(MVT_REG_SCRATCH, v);
		r = mmio_read(MVT_REG_SCRATCH);
		bad += mvg_scratch_bad(r, v, 48, c->cpu, c->nr_cpus);
	}
	for (uint64_t i = 0; i < cfg->seq_count; i++)
		mmio_write(MVT_REG_SEQ, mvg_tag48(c->cpu, c->seq++));
	uint64_t check = mmio_read(MVT_REG_SEQ_CHECK);
	uint64_t count = mmio_read(MVT_REG_SEQ_COUNT);
	bool ok = !bad && check == 0 && count >= c->seq;
	say(MVG_FMT_MMIO, c->cpu, n, ok ? "ok" : "FAIL");
	say(MVG_FMT_MMIO_DEV, c->cpu, bad, check, count);
	if (bad)
		fail(MVG_FAIL_MMIO_SCRATCH, c->cpu, bad);
	if (check)
		fail(MVG_FAIL_MMIO_SEQ_CHECK, c->cpu, check);
	if (count < c->seq)
		fail(MVG_FAIL_MMIO_SEQ_COUNT, c->cpu, count, c->seq);
}

void wl_pio(struct cpu_ctx *c, const struct mvg_config *cfg)
{
	uint64_t n = cfg->pio_count, bad = 0;
	uint8_t out[MVG_FIFO_BYTES], in[MVG_FIFO_BYTES];

	if (!c->dev) {
		say(MVG_LINE_PIO_SKIPPED);
		return;
	}
	for (uint64_t i = 0; i < n; i++) {
		uint32_t v = mvg_pio_value(c->cpu, i), r;
		outl(MVT_PIO_SCRATCH, v);
		r = inl(MVT_PIO_SCRATCH);
		bad += mvg_scratch_bad(r, v, MVG_PIO_TAG_SHIFT, c->cpu, c->nr_cpus);
	}
	for (unsigned i = 0; i < sizeof(out); i++) {
		out[i] = mvg_fifo_byte(c->cpu, i);
		in[i] = 0;
	}
	const uint8_t *src = out;
	uint8_t *dst = in;
	size_t k1 = sizeof(out), k2 = sizeof(in);
	spin_lock(&fifo_lock);
	__asm__ volatile("cld; rep outsb" : "+S"(src), "+c"(k1) : "d"((uint16_t)MVT_PIO_FIFO) : "memory");
	__asm__ volatile("cld; rep insb" : "+D"(dst), "+c"(k2) : "d"((uint16_t)MVT_PIO_FIFO) : "memory");
	spin_unlock(&fifo_lock);
	unsigned sbad = 0;
	for (unsigned i = 0; i < sizeof(out); i++)
		sbad += in[i] != out[i];
	say(MVG_FMT_PIO, c->cpu, n, (unsigned)sizeof(out), !bad && !sbad ? "ok" : "FAIL");
	if (bad)
		fail(MVG_FAIL_PIO_SCRATCH, c->cpu, bad);
	if (sbad)
		fail(MVG_FAIL_PIO_FIFO, c->cpu, sbad, (unsigned)sizeof(out));
}

void wl_rom(struct cpu_ctx *c, const struct mvg_config *cfg)
{
	volatile uint64_t *rom = (volatile uint64_t *)(uintptr_t)MVT_ROM_BASE;
	uint64_t before = *rom, after;

	(void)cfg;
	*rom = ~before;
	after = *rom;
	if (after != before) {
		*rom = before;
		say(MVG_LINE_ROM_CHANGED);
		/* QEMU's microvm maps its BIOS there as RAM: only our VMM promises a ROM. */
		if (c->dev)
			fail(MVG_FAIL_ROM_CHANGED, c->cpu, (uint64_t)MVT_ROM_BASE, before, after);
	} else {
		say(MVG_LINE_ROM_UNCHANGED);
	}
	if (c->dev) {
		say(MVG_FMT_ROM_MAGIC, before == MVT_ROM_MAGIC ? "ok" : "bad");
		if (before != MVT_ROM_MAGIC)
			fail(MVG_FAIL_ROM_MAGIC, before, (uint64_t)MVT_ROM_MAGIC);
	}
}
