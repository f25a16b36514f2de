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

void wl_mmio(struct cpu_ctx *c, const struct config *cfg)
{
	uint64_t n = cfg->mmio_count, bad = 0;

	if (!c->dev) {
		say("mmio: skipped (no test device)\n");
		return;
	}
	for (uint64_t i = 0; i < n; i++) {
		uint64_t v = ((uint64_t)c->cpu << 48) | i, r;
		mmio_write(MVT_REG_SCRATCH, v);
		r = mmio_read(MVT_REG_SCRATCH);
		if (r != v && ((r >> 48) == c->cpu || (r >> 48) >= c->nr_cpus))
			bad++;
	}
	for (uint64_t i = 0; i < cfg->seq_count; i++)
		mmio_write(MVT_REG_SEQ, ((uint64_t)c->cpu << 48) | c->seq++);
	uint64_t check = mmio_read(MVT_REG_SEQ_CHECK);
	uint64_t count = mmio_read(MVT_REG_SEQ_COUNT);
	bool ok = !bad && check == 0 && count >= c->seq;
	say("mmio: cpu %u ops %lu %s\n", c->cpu, n, ok ? "ok" : "FAIL");
	say("mvt: mmio cpu %u scratch_bad %lu seq_check %lu seq_count %lu\n", c->cpu, bad, check, count);
	if (bad)
		fail("mmio cpu %u: %lu SCRATCH read-backs differ", c->cpu, bad);
	if (check)
		fail("mmio cpu %u: SEQ_CHECK %lu (SEQ writes out of order)", c->cpu, check);
	if (count < c->seq)
		fail("mmio cpu %u: SEQ_COUNT %lu below the %lu SEQ writes of this vCPU", c->cpu, count, c->seq);
}

void wl_pio(struct cpu_ctx *c, const struct config *cfg)
{
	uint64_t n = cfg->pio_count, bad = 0;
	uint8_t out[64], in[64];

	if (!c->dev) {
		say("pio: skipped (no test device)\n");
		return;
	}
	for (uint64_t i = 0; i < n; i++) {
		uint32_t v = (c->cpu << 24) | (uint32_t)((i * 2654435761u) & 0xffffff), r;
		outl(MVT_PIO_SCRATCH, v);
		r = inl(MVT_PIO_SCRATCH);
		if (r != v && ((r >> 24) == c->cpu || (r >> 24) >= c->nr_cpus))
			bad++;
	}
	for (unsigned i = 0; i < sizeof(out); i++) {
		out[i] = (uint8_t)(i * 37 + c->cpu + 1);
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
	say("pio: cpu %u ops %lu string %u %s\n", c->cpu, n, (unsigned)sizeof(out),
	    !bad && !sbad ? "ok" : "FAIL");
	if (bad)
		fail("pio cpu %u: %lu scratch read-backs differ", c->cpu, bad);
	if (sbad)
		fail("pio cpu %u: %u of %u FIFO bytes differ", c->cpu, sbad, (unsigned)sizeof(out));
}

void wl_rom(struct cpu_ctx *c, const struct config *cfg)
{
	volatile uint64_t *rom = (volatile uint64_t *)(uintptr_t)MVT_ROM_BASE;
	uint64_t before = *rom, after;

	(void)cfg;
	*rom = ~before;
	after = *rom;
	if (after != before) {
		*rom = before;
		say("rom: CHANGED\n");
		/* QEMU's microvm maps its BIOS there as RAM: only our VMM promises a ROM. */
		if (c->dev)
			fail("rom cpu %u: a write to 0x%lx changed 0x%016lx to 0x%016lx", c->cpu,
			     (uint64_t)MVT_ROM_BASE, before, after);
	} else {
		say("rom: unchanged\n");
	}
	if (c->dev) {
		say("mvt: rom magic %s\n", before == MVT_ROM_MAGIC ? "ok" : "bad");
		if (before != MVT_ROM_MAGIC)
			fail("rom magic 0x%016lx, expected 0x%016lx", before, (uint64_t)MVT_ROM_MAGIC);
	}
}
