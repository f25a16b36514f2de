/*
 * The deterministic parts of the memvirt test guest (docs/guests.md), in
 * one copy shared by the freestanding guest (guests/) and the soft
 * accelerator's access programs that run the same workloads
 * (src/vmm/soft_guest*.c, docs/vmm.md "--accel soft"): the PRNG and the
 * hash, the command line with its defaults, hvm_start_info and the RAM
 * ranges of its memory map, the placement of each vCPU's slice, the values
 * the workloads write and the lines they print. Both print the same report
 * from the same command line because they compute it with this code.
 *
 * Header-only and freestanding (<stdbool.h>, <stddef.h>, <stdint.h>): the
 * guest is built with -ffreestanding -nostdlib. Assembly (guests/entry.S)
 * sees only the #defines.
 *
 * The line formats are printf formats that the guest's own printf subset
 * (guests/console.c: %s %c %d %u %x, '0' flag, width, l) prints exactly as
 * the C library does; 64-bit values are passed as uint64_t (%lu / %lx).
 */
#ifndef MEMVIRT_GUEST_GEN_H
#define MEMVIRT_GUEST_GEN_H

#define MVG_MAX_CPUS 64            /* vCPUs (initial APIC ids 0..63) taking part */
#define MVG_CMDLINE_MAX 1024       /* bytes of the command line kept, NUL included */
#define MVG_WS_MAX_MIB 2048        /* largest dirty working set per vCPU */
#define MVG_MAX_WORKLOADS 32
#define MVG_MAX_RAM_RANGES 64

/* Exit values written to isa-debug-exit (status = value * 2 + 1). */
#define MVG_EXIT_OK 0
#define MVG_EXIT_FAIL 1
#define MVG_EXIT_CMDLINE 2
#define MVG_EXIT_EXCEPTION 0x7f

/* ---- the lines of the report (docs/guests.md "Workloads and their lines") ---- */
#define MVG_LINE_BOOT "memvirt-guest: boot\n"    /* vCPU 0's first output */
#define MVG_LINE_DONE "guest: done\n"
#define MVG_FAIL_PREFIX "guest: FAIL "            /* + a MVG_FAIL_* text + "\n" */
#define MVG_FMT_SETUP_FAIL "guest: FAIL %s 0x%lx\n"  /* a start_info problem, its value */
#define MVG_SETUP_RAM_FULL "too many RAM ranges in the memory map"
#define MVG_SETUP_NO_RAM "no RAM in the memory map, entries"
#define MVG_FMT_BAD_CMDLINE "guest: bad command line: %s\n"
#define MVG_FMT_EXCEPTION "guest: exception %lu err 0x%lx rip 0x%lx cr2 0x%lx\n"
#define MVG_FMT_DEVICE "mvt: device version %lu vcpus %lu ram %lu\n"
#define MVG_FAIL_VCPUS "vcpus %lu (this guest handles 1 to %u)"
#define MVG_FAIL_NO_ROOM "memory: no room for %u slices of %lu MiB from %lu MiB"
#define MVG_FMT_TOUCH "touch: cpu %u pages %lu\n"
#define MVG_FMT_VERIFY "verify: cpu %u mib %lu sum %016lx\n"
#define MVG_FAIL_VERIFY "verify cpu %u mib %lu: %lu qwords differ"
#define MVG_FMT_DIRTY "dirty: cpu %u round %lu pages %lu hash %016lx\n"
#define MVG_FMT_DIRTY_STATUS "mvt: dirty cpu %u round %lu status %lu\n"
#define MVG_FAIL_DIRTY "dirty cpu %u round %lu: %lu pages differ from the dirty log"
#define MVG_LINE_MMIO_SKIPPED "mmio: skipped (no test device)\n"
#define MVG_FMT_MMIO "mmio: cpu %u ops %lu %s\n"
#define MVG_FMT_MMIO_DEV "mvt: mmio cpu %u scratch_bad %lu seq_check %lu seq_count %lu\n"
#define MVG_FAIL_MMIO_SCRATCH "mmio cpu %u: %lu SCRATCH read-backs differ"
#define MVG_FAIL_MMIO_SEQ_CHECK "mmio cpu %u: SEQ_CHECK %lu (SEQ writes out of order)"
#define MVG_FAIL_MMIO_SEQ_COUNT "mmio cpu %u: SEQ_COUNT %lu below the %lu SEQ writes of this vCPU"
#define MVG_LINE_PIO_SKIPPED "pio: skipped (no test device)\n"
#define MVG_FMT_PIO "pio: cpu %u ops %lu string %u %s\n"
#define MVG_FAIL_PIO_SCRATCH "pio cpu %u: %lu scratch read-backs differ"
#define MVG_FAIL_PIO_FIFO "pio cpu %u: %u of %u FIFO bytes differ"
#define MVG_LINE_ROM_CHANGED "rom: CHANGED\n"
#define MVG_LINE_ROM_UNCHANGED "rom: unchanged\n"
#define MVG_FAIL_ROM_CHANGED "rom cpu %u: a write to 0x%lx changed 0x%016lx to 0x%016lx"
#define MVG_FMT_ROM_MAGIC "mvt: rom magic %s\n"
#define MVG_FAIL_ROM_MAGIC "rom magic 0x%016lx, expected 0x%016lx"

#ifndef __ASSEMBLER__

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MVG_PAGE_SIZE ((uint64_t)4096)
#define MVG_MIB ((uint64_t)1 << 20)

/* ---- PRNG and hash ---- */

/* splitmix64: the next value of the stream at *@state. */
static inline uint64_t mvg_splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* The PRNG seed of @cpu for a workload seeded with @seed (vCPU 0: @seed itself). */
static inline uint64_t mvg_cpu_seed(uint64_t seed, unsigned cpu)
{
	return seed ^ ((uint64_t)cpu * 0xd1b54a32d192ed03ULL);
}

#define MVG_FNV_OFFSET 0xcbf29ce484222325ULL
#define MVG_FNV_PRIME 0x100000001b3ULL

/* FNV-1a 64 over the 8 little-endian bytes of @v. */
static inline uint64_t mvg_fnv1a_u64(uint64_t h, uint64_t v)
{
	for (int i = 0; i < 8; i++) {
		h ^= (v >> (8 * i)) & 0xff;
		h *= MVG_FNV_PRIME;
	}
	return h;
}

/* ---- hvm_start_info (Xen's public/arch-x86/hvm/start_info.h, version 1) ---- */

#define MVG_HVM_START_MAGIC 0x336ec578
struct mvg_hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
	uint64_t memmap_paddr;      /* version >= 1 */
	uint32_t memmap_entries;
	uint32_t reserved;
};
struct mvg_hvm_memmap_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;              /* 1 = RAM */
	uint32_t reserved;
};

/*
 * The first problem of @si the guest refuses, in the guest's order (magic,
 * version, command line, memory map above 4 GiB), with the value to print
 * in *@val; NULL when it is usable.
 */
static inline const char *mvg_start_info_problem(const struct mvg_hvm_start_info *si,
						 uint64_t *val)
{
	if (si->magic != MVG_HVM_START_MAGIC)
		return *val = si->magic, "start_info magic";
	if (si->version < 1)
		return *val = si->version, "start_info version (need a memory map)";
	if (si->cmdline_paddr >= (1ULL << 32))
		return *val = si->cmdline_paddr, "cmdline above 4 GiB at";
	if (si->memmap_paddr >= (1ULL << 32))
		return *val = si->memmap_paddr, "memmap above 4 GiB at";
	return NULL;
}

/* A RAM range of the memory map, [start, end). */
struct mvg_ram_range {
	uint64_t start, end;
};

/*
 * Add memory-map entry @e to the sorted list @ram of *@nr ranges if it is
 * RAM (type 1, not empty). Returns false when the list is full.
 */
static inline bool mvg_ram_add(struct mvg_ram_range *ram, unsigned *nr,
			       const struct mvg_hvm_memmap_entry *e)
{
	if (e->type != 1 || !e->size)
		return true;
	if (*nr == MVG_MAX_RAM_RANGES)
		return false;
	/* insertion sort by start: the map is short and usually sorted */
	unsigned i = (*nr)++;
	while (i && ram[i - 1].start > e->addr) {
		ram[i] = ram[i - 1];
		i--;
	}
	ram[i].start = e->addr;
	ram[i].end = e->addr + e->size;
	return true;
}

/* ---- the command line (docs/guests.md "Command line") ---- */

enum mvg_workload { MVG_WL_TOUCH, MVG_WL_DIRTY, MVG_WL_MMIO, MVG_WL_PIO, MVG_WL_VERIFY, MVG_WL_ROM };
#define MVG_NR_WORKLOAD_KINDS 6

struct mvg_config {
	unsigned nr_wl;
	uint8_t wl[MVG_MAX_WORKLOADS];
	uint64_t base_mib;
	uint64_t touch_mib;
	uint64_t ws_mib, rounds, pages, dirty_seed, spin;
	uint64_t mmio_count, pio_count;
	uint64_t seq_count;          /* mmio's SEQ writes; mmio_count unless given */
	uint64_t verify_mib, verify_seed;
};

/* Is @a (@n bytes) the NUL-terminated @b? */
static inline bool mvg_same(const char *a, size_t n, const char *b)
{
	for (size_t i = 0; i < n; i++)
		if (a[i] != b[i])
			return false;
	return b[n] == 0;
}

/* Decimal or 0x-hex, no sign, no overflow; within [min, max]. */
static inline bool mvg_parse_u64(const char *s, size_t n, uint64_t min, uint64_t max,
				 uint64_t *out)
{
	uint64_t v = 0, base = 10;
	size_t i = 0;

	if (n > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		base = 16, i = 2;
	if (i == n)
		return false;
	for (; i < n; i++) {
		char c = s[i];
		uint64_t d;
		if (c >= '0' && c <= '9')
			d = (uint64_t)(c - '0');
		else if (base == 16 && c >= 'a' && c <= 'f')
			d = (uint64_t)(c - 'a' + 10);
		else if (base == 16 && c >= 'A' && c <= 'F')
			d = (uint64_t)(c - 'A' + 10);
		else
			return false;
		if (v > (UINT64_MAX - d) / base)
			return false;
		v = v * base + d;
	}
	if (v < min || v > max)
		return false;
	*out = v;
	return true;
}

/* "touch,dirty,...": every name known, none empty, at most MVG_MAX_WORKLOADS. */
static inline bool mvg_parse_workloads(const char *s, size_t n, struct mvg_config *c)
{
	static const char *const names[MVG_NR_WORKLOAD_KINDS] = {
		[MVG_WL_TOUCH] = "touch", [MVG_WL_DIRTY] = "dirty", [MVG_WL_MMIO] = "mmio",
		[MVG_WL_PIO] = "pio", [MVG_WL_VERIFY] = "verify", [MVG_WL_ROM] = "rom",
	};
	size_t i = 0;

	c->nr_wl = 0;
	while (i < n) {
		size_t j = i;
		while (j < n && s[j] != ',')
			j++;
		unsigned k;
		for (k = 0; k < MVG_NR_WORKLOAD_KINDS; k++)
			if (mvg_same(s + i, j - i, names[k]))
				break;
		if (k == MVG_NR_WORKLOAD_KINDS || c->nr_wl == MVG_MAX_WORKLOADS)
			return false;
		c->wl[c->nr_wl++] = (uint8_t)k;
		i = j + 1;
		if (j + 1 == n)
			return false;       /* trailing comma */
	}
	return c->nr_wl > 0;
}

/* The defaults of every key (docs/guests.md). */
static inline void mvg_config_defaults(struct mvg_config *c)
{
	static const uint8_t def_wl[] = { MVG_WL_TOUCH, MVG_WL_MMIO, MVG_WL_PIO, MVG_WL_DIRTY,
					  MVG_WL_VERIFY, MVG_WL_ROM };

	*c = (struct mvg_config){
		.nr_wl = sizeof(def_wl), .base_mib = 16, .touch_mib = 8, .ws_mib = 8, .rounds = 4,
		.pages = 256, .dirty_seed = 1, .spin = 0, .mmio_count = 1000, .pio_count = 1000,
		.verify_mib = 4, .verify_seed = 1,
		/* Out of the key's range, so "not given" is told apart from any value. */
		.seq_count = UINT64_MAX,
	};
	for (unsigned i = 0; i < sizeof(def_wl); i++)
		c->wl[i] = def_wl[i];
}

/*
 * Set the key of token @key (@klen bytes) to value @val (@vlen bytes).
 * Returns false for a bad value; unknown keys are ignored (true). A general
 * key (mib, seed, count) sets every workload's field; a prefixed one only
 * that workload's.
 */
static inline bool mvg_set_key(struct mvg_config *c, const char *key, size_t klen,
			       const char *val, size_t vlen)
{
#define MVG_F(f) offsetof(struct mvg_config, f)
	static const struct {
		const char *name;
		size_t off[2];
		unsigned nr;
		uint64_t min, max;
	} keys[] = {
		{ "base_mib", { MVG_F(base_mib) }, 1, 1, 1ULL << 30 },
		{ "mib", { MVG_F(touch_mib), MVG_F(verify_mib) }, 2, 1, 1ULL << 30 },
		{ "touch_mib", { MVG_F(touch_mib) }, 1, 1, 1ULL << 30 },
		{ "verify_mib", { MVG_F(verify_mib) }, 1, 1, 1ULL << 30 },
		{ "ws_mib", { MVG_F(ws_mib) }, 1, 1, MVG_WS_MAX_MIB },
		{ "rounds", { MVG_F(rounds) }, 1, 0, 0xffffffffULL },
		{ "pages", { MVG_F(pages) }, 1, 0, 0xffffffffULL },
		{ "spin", { MVG_F(spin) }, 1, 0, UINT64_MAX },
		{ "seed", { MVG_F(dirty_seed), MVG_F(verify_seed) }, 2, 0, UINT64_MAX },
		{ "dirty_seed", { MVG_F(dirty_seed) }, 1, 0, UINT64_MAX },
		{ "verify_seed", { MVG_F(verify_seed) }, 1, 0, UINT64_MAX },
		{ "count", { MVG_F(mmio_count), MVG_F(pio_count) }, 2, 0, 0xffffffffULL },
		{ "mmio_count", { MVG_F(mmio_count) }, 1, 0, 0xffffffffULL },
		{ "pio_count", { MVG_F(pio_count) }, 1, 0, 0xffffffffULL },
		{ "seq_count", { MVG_F(seq_count) }, 1, 0, 0xffffffffULL },
	};
#undef MVG_F

	if (mvg_same(key, klen, "workload"))
		return mvg_parse_workloads(val, vlen, c);
	for (unsigned k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
		uint64_t v;
		if (!mvg_same(key, klen, keys[k].name))
			continue;
		if (!mvg_parse_u64(val, vlen, keys[k].min, keys[k].max, &v))
			return false;
		for (unsigned f = 0; f < keys[k].nr; f++)
			*(uint64_t *)((char *)c + keys[k].off[f]) = v;
	}
	return true;
}

static inline bool mvg_is_space(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

/*
 * Parse the NUL-terminated command line @s: space-separated key=value
 * tokens; tokens without '=' and unknown keys are ignored. Returns 0, or
 * -1 with the offending token copied to @bad (@badsz bytes, NUL-terminated).
 */
static inline int mvg_parse_cmdline(const char *s, struct mvg_config *c, char *bad, size_t badsz)
{
	mvg_config_defaults(c);
	for (size_t i = 0;;) {
		while (mvg_is_space(s[i]))
			i++;
		if (!s[i])
			break;
		size_t t = i, eq = 0;
		while (s[i] && !mvg_is_space(s[i])) {
			if (s[i] == '=' && !eq)
				eq = i;
			i++;
		}
		if (!eq)
			continue;
		if (!mvg_set_key(c, s + t, eq - t, s + eq + 1, i - eq - 1)) {
			size_t n = i - t < badsz - 1 ? i - t : badsz - 1;
			for (size_t k = 0; k < n; k++)
				bad[k] = s[t + k];
			bad[n] = 0;
			return -1;
		}
	}
	/* SEQ follows mmio_count (and count) unless set on its own, so that
	 * SCRATCH and SEQ can be timed apart while existing outputs stay. */
	if (c->seq_count == UINT64_MAX)
		c->seq_count = c->mmio_count;
	return 0;
}

/* ---- slices of the workload area (docs/guests.md "Memory map") ---- */

/* Bytes of the workload area one vCPU needs for @c's workloads (2 MiB multiple). */
static inline uint64_t mvg_slice_size(const struct mvg_config *c)
{
	uint64_t mib = 0;

	for (unsigned i = 0; i < c->nr_wl; i++) {
		uint64_t m = 0;
		switch (c->wl[i]) {
		case MVG_WL_TOUCH: m = c->touch_mib; break;
		case MVG_WL_DIRTY: m = c->ws_mib; break;
		case MVG_WL_VERIFY: m = c->verify_mib; break;
		default: break;
		}
		if (m > mib)
			mib = m;
	}
	return (mib * MVG_MIB + 2 * MVG_MIB - 1) & ~(2 * MVG_MIB - 1);
}

/*
 * Give each of @nr_cpus vCPUs a 2 MiB aligned slice of @slice bytes inside
 * one of the @nr_ram sorted RAM ranges @ram, going up from @base_mib MiB:
 * @base[cpu]. Returns false when RAM runs out.
 */
static inline bool mvg_place_slices(uint64_t base_mib, uint64_t slice,
				    const struct mvg_ram_range *ram, unsigned nr_ram,
				    unsigned nr_cpus, uint64_t *base)
{
	uint64_t cur = base_mib * MVG_MIB;
	unsigned r = 0;

	for (unsigned cpu = 0; cpu < nr_cpus; cpu++) {
		for (;; r++) {
			if (r == nr_ram)
				return false;
			uint64_t a = ram[r].start > cur ? ram[r].start : cur;
			a = (a + 2 * MVG_MIB - 1) & ~(2 * MVG_MIB - 1);
			if (a + slice <= ram[r].end && a + slice >= a) {
				base[cpu] = a;
				cur = a + slice;
				break;
			}
		}
	}
	return true;
}

/* ---- what the workloads write and check ---- */

/* touch: the qword written at the start of page @addr. */
static inline uint64_t mvg_touch_value(uint64_t addr, unsigned cpu)
{
	return addr | cpu;
}

/* dirty: the page index and byte offset PRNG value @x picks in a set of @pages. */
static inline uint64_t mvg_dirty_page(uint64_t x, uint64_t pages)
{
	return x % pages;
}
static inline uint64_t mvg_dirty_offset(uint64_t x)
{
	return ((x >> 40) & 511) * 8;
}
/* dirty: the qword of write @i of round @round. */
static inline uint64_t mvg_dirty_value(uint64_t round, uint64_t i)
{
	return (round << 32) | i;
}

/* Set bit @idx of @bm; true if it was clear (the page's first write this round). */
static inline bool mvg_bit_set_first(uint64_t *bm, uint64_t idx)
{
	uint64_t m = 1ULL << (idx % 64);

	if (bm[idx / 64] & m)
		return false;
	bm[idx / 64] |= m;
	return true;
}

/* dirty: FNV-1a over the indices of the bits set in @bm (@words words), ascending. */
static inline uint64_t mvg_bitmap_hash(const uint64_t *bm, uint64_t words)
{
	uint64_t h = MVG_FNV_OFFSET;

	for (uint64_t w = 0; w < words; w++) {
		uint64_t bits = bm[w];
		for (unsigned b = 0; bits; b++, bits >>= 1)
			if (bits & 1)
				h = mvg_fnv1a_u64(h, w * 64 + b);
	}
	return h;
}

/* Values tagged with their vCPU: PAGE_REPORT / SEQ / SCRATCH (bits 63:48), ROUND_END (63:32). */
static inline uint64_t mvg_tag48(unsigned cpu, uint64_t v)
{
	return ((uint64_t)cpu << 48) | v;
}
static inline uint64_t mvg_round_end(unsigned cpu, uint64_t round)
{
	return ((uint64_t)cpu << 32) | round;
}

/*
 * A SCRATCH read-back @r of written @v is bad unless it is @v or a value
 * tagged (bits from @shift up) with another vCPU of the @nr_cpus: the
 * register is shared and no lock is held across the two accesses.
 */
static inline bool mvg_scratch_bad(uint64_t r, uint64_t v, unsigned shift, unsigned cpu,
				   unsigned nr_cpus)
{
	return r != v && ((r >> shift) == cpu || (r >> shift) >= nr_cpus);
}

/* pio: the SCRATCH value of access @i (vCPU in bits 31:24). */
#define MVG_PIO_TAG_SHIFT 24
static inline uint32_t mvg_pio_value(unsigned cpu, uint64_t i)
{
	return (cpu << MVG_PIO_TAG_SHIFT) | (uint32_t)((i * 2654435761u) & 0xffffff);
}

/* pio: the string written to the FIFO, MVG_FIFO_BYTES bytes. */
#define MVG_FIFO_BYTES 64
static inline uint8_t mvg_fifo_byte(unsigned cpu, unsigned i)
{
	return (uint8_t)(i * 37 + cpu + 1);
}

#endif /* __ASSEMBLER__ */
#endif
