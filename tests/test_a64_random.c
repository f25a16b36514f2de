/*
 * Randomized differential test of the arm64 access engine: random stage-2
 * layouts (2 MiB / 1 GiB blocks and pages, random S2AP / AF / XN,
 * installed with mv_a64_vm_s2_install), random guest stage-1 tables in
 * guest RAM (random TxSZ, AP / UXN / PXN / AF, APTable / UXNTable /
 * PXNTable, tables at unmapped or unreadable IPAs, reserved encodings,
 * output addresses beyond IPS or the IPA space), a few host pages that
 * raise external aborts, then thousands of random loads, stores, fetches
 * and DCs at EL0 and EL1 with the abort handler off.
 *
 * Every outcome -- the value loaded, the bytes stored, or the exact
 * ESR_EL2 / HPFAR_EL2 / FAR_EL2 of a stage-2 abort, or ESR_EL1 / FAR_EL1
 * of a stage-1 fault -- is compared with a deliberately naive translator
 * written here: it reads the stage-1 and stage-2 descriptors by hand from
 * memory (stage-2 from the VM's root table) with its own index arithmetic
 * and builds the syndromes bit by bit from the ARM ARM, using nothing of
 * src/soft. Memory is mirrored in a shadow copy that the naive side
 * updates; both are compared after every store and in full at the end.
 *
 * Seeded: prints its seed; MV_SEED=<n> replays a run.
 */
#include "testutil.h"

#include "soft/arm64/a64_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define SZ_4K (1ull << 12)
#define SZ_2M (1ull << 21)
#define SZ_1G (1ull << 30)

/* Guest-physical layout. */
#define A_IPA 0x40000000ull        /* 64 MiB: tables zone + 2 MiB chunks of data */
#define A_SIZE (64ull << 20)
#define TABLES_SIZE (4ull << 20)   /* first 4 MiB of A: stage-1 tables only, never data */
#define B_IPA 0x80000000ull        /* 1 GiB: one block or nothing */
#define C_IPA 0xc0000000ull        /* nothing, ever */
#define TEST_PC 0x40001000ull
#define TEST_VBAR 0x40080000ull

#define N_VMS 4
#define N_S1 4
#define N_ACCESSES 1500
#define MAX_ENTRIES 4096

/* Descriptor bits, both stages (ARM ARM D8.3). */
#define D_VALID 1ull
#define D_TYPE 2ull                    /* table (levels 0-2) / page (level 3) */
#define D_AF (1ull << 10)
#define D_ADDR 0x0000fffffffff000ull
#define S1_AP_EL0 (1ull << 6)
#define S1_AP_RO (1ull << 7)
#define S1_PXN (1ull << 53)
#define S1_UXN (1ull << 54)
#define S1_TABLE_BITS (0xfull << 59)   /* PXNTable, UXNTable, APTable[1:0] */
#define S2_R (1ull << 6)
#define S2_W (1ull << 7)
#define S2_XN (1ull << 54)

enum { RD = 1, WR = 2, EX = 4 };

/* What the naive side expects. */
typedef enum { X_DONE, X_S2, X_S1 } x_kind;

typedef struct expect {
	x_kind kind;
	uint64_t esr, hpfar, far;   /* X_S2: EL2 registers; X_S1: ESR_EL1 / FAR_EL1 */
	uint64_t value[2];          /* X_DONE loads */
	uint64_t va[2], ipa[2];     /* X_DONE: first byte of each page touched, and its IPA */
} expect;

/* A naive fault: kind (DFSC base) and level, and where. */
typedef struct nfault {
	unsigned fsc;
	bool s2, s1ptw;
	uint64_t ipa;
} nfault;

/* A VA range some stage-1 entry covers: where random accesses aim. */
typedef struct target {
	uint64_t va;
	uint64_t size;
} target;

typedef struct model {
	mv_a64_vm *vm;
	mv_a64_vcpu *vcpu;
	uint64_t rng;
	void *a_raw, *b_raw;
	uint8_t *a, *b;              /* guest memory of A and B (host) */
	uint8_t *a_shadow, *b_shadow;
	uint64_t sea_ipa[4], sea_hva[4];
	uint8_t table_used[TABLES_SIZE / SZ_4K];   /* pages of the tables zone in use */
	unsigned ntables;
	uint64_t recent[8];                        /* VAs accessed lately (TLB hits) */
	unsigned ips_bits;
	target targets[MAX_ENTRIES];
	unsigned ntargets;
	unsigned nev;
	mv_a64_abort_event ev;
	/* coverage */
	unsigned done, s1, s2, s1ptw, sea, cross;
	unsigned fsc_s1[64], fsc_s2[64];
} model;

static uint64_t rnd(model *m, uint64_t n)
{
	return tu_rand_below(&m->rng, n);
}

static bool chance(model *m, unsigned percent)
{
	return rnd(m, 100) < percent;
}

static void trace(void *arg, const mv_a64_abort_event *ev)
{
	model *m = arg;

	m->nev++;
	m->ev = *ev;
}

/* ------------------------------------------------------------------ */
/* Memory: the guest's RAM, its shadow, and where an IPA lives on the host */

static void *map_aligned(size_t size, size_t align, void **raw)
{
	*raw = mmap(NULL, size + align, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	assert_true(*raw != MAP_FAILED);
	return (void *)(((uintptr_t)*raw + align - 1) & ~(uintptr_t)(align - 1));
}

/* Host byte of @ipa in RAM (@shadow: the naive side's copy); NULL outside A and B. */
static uint8_t *ram_at(model *m, uint64_t ipa, bool shadow)
{
	if (ipa >= A_IPA && ipa - A_IPA < A_SIZE)
		return (shadow ? m->a_shadow : m->a) + (ipa - A_IPA);
	if (ipa >= B_IPA && ipa - B_IPA < SZ_1G)
		return (shadow ? m->b_shadow : m->b) + (ipa - B_IPA);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Random stage 2                                                      */

static uint64_t rand_s2_attr(model *m)
{
	uint64_t attr = 0xfull << 2 | 3ull << 8;   /* MemAttr Normal WB, SH inner */

	attr |= (chance(m, 90) ? S2_R : 0) | (chance(m, 80) ? S2_W : 0);
	attr |= chance(m, 90) ? D_AF : 0;
	attr |= chance(m, 30) ? S2_XN : 0;
	return attr;
}

static void install(model *m, uint64_t ipa, uint64_t size, uint64_t attr, int level)
{
	mv_error err = { 0 };
	uint64_t hva = (uint64_t)(uintptr_t)ram_at(m, ipa, false);

	if (mv_a64_vm_s2_install(m->vm, ipa, size, hva, attr, level, &err))
		fail_msg("install 0x%" PRIx64 ": %s", ipa, err.msg);
}

/*
 * Tables zone: pages, mostly readable with AF; data chunks: nothing, a
 * 2 MiB block or pages; B: a 1 GiB block or nothing.
 */
static void build_s2(model *m)
{
	for (uint64_t off = 0; off < TABLES_SIZE; off += SZ_4K) {
		uint64_t attr = 0xfull << 2 | 3ull << 8 | S2_R | S2_W | D_AF;

		if (chance(m, 3))
			continue;
		if (chance(m, 3))
			attr = rand_s2_attr(m);
		install(m, A_IPA + off, SZ_4K, attr, 3);
	}
	for (uint64_t off = TABLES_SIZE; off < A_SIZE; off += SZ_2M) {
		unsigned pick = (unsigned)rnd(m, 100);

		if (pick < 15)
			continue;
		if (pick < 50) {
			install(m, A_IPA + off, SZ_2M, rand_s2_attr(m), 2);
			continue;
		}
		for (uint64_t p = 0; p < SZ_2M; p += SZ_4K)
			if (chance(m, 85))
				install(m, A_IPA + off + p, SZ_4K, rand_s2_attr(m), 3);
	}
	if (chance(m, 80))
		install(m, B_IPA, SZ_1G, rand_s2_attr(m), 1);
	for (unsigned i = 0; i < 4; i++) {
		uint64_t ipa = A_IPA + TABLES_SIZE + rnd(m, (A_SIZE - TABLES_SIZE) / SZ_4K) * SZ_4K;

		m->sea_ipa[i] = ipa;
		m->sea_hva[i] = (uint64_t)(uintptr_t)ram_at(m, ipa, false);
		assert_int_equal(mv_soft_host_set_sea(mv_a64_vm_host(m->vm), m->sea_hva[i], true), 0);
	}
}

/* ------------------------------------------------------------------ */
/* Random stage 1                                                      */

static unsigned s1_shift(int level)
{
	return 12 + 9 * (unsigned)(3 - level);
}

static int s1_start_level(unsigned ia_bits)
{
	int level = 3;

	while (s1_shift(level) + 9 < ia_bits)
		level--;
	return level;
}

/* A free page of the tables zone, anywhere in it (so roots and tables meet every S2 attribute). */
static uint64_t new_table(model *m)
{
	uint64_t page = rnd(m, TABLES_SIZE / SZ_4K), ipa;

	while (m->table_used[page])
		page = (page + 1) % (TABLES_SIZE / SZ_4K);
	m->table_used[page] = 1;
	m->ntables++;
	ipa = A_IPA + page * SZ_4K;
	memset(ram_at(m, ipa, false), 0, SZ_4K);
	memset(ram_at(m, ipa, true), 0, SZ_4K);
	return ipa;
}

/* A random output address for a leaf of @size: data, B, C, beyond the IPA space or IPS. */
static uint64_t rand_output(model *m, uint64_t size)
{
	unsigned pick = (unsigned)rnd(m, 100);

	if (size == SZ_1G)
		return pick < 60 ? B_IPA : pick < 80 ? C_IPA : pick < 90 ? 1ull << 40 : 1ull << 44;
	if (pick < 4)
		return m->sea_ipa[rnd(m, 4)] & ~(size - 1);
	if (pick < 65)
		return A_IPA + TABLES_SIZE + rnd(m, (A_SIZE - TABLES_SIZE) / size) * size;
	if (pick < 85)
		return B_IPA + rnd(m, (32ull << 20) / size) * size;
	if (pick < 90)
		return C_IPA + rnd(m, 64) * size;
	if (pick < 95)
		return (1ull << 40) + rnd(m, 64) * size;
	return (1ull << 44) + rnd(m, 64) * size;
}

static uint64_t rand_leaf_bits(model *m)
{
	uint64_t d = D_VALID;

	d |= chance(m, 92) ? D_AF : 0;
	d |= (chance(m, 70) ? S1_AP_EL0 : 0) | (chance(m, 30) ? S1_AP_RO : 0);
	d |= (chance(m, 20) ? S1_UXN : 0) | (chance(m, 20) ? S1_PXN : 0);
	return d;
}

static void add_target(model *m, uint64_t va, uint64_t size)
{
	if (m->ntargets < MAX_ENTRIES)
		m->targets[m->ntargets++] = (target){ va, size };
}

static void write_desc(model *m, uint64_t table, uint64_t idx, uint64_t d)
{
	memcpy(ram_at(m, table + 8 * idx, false), &d, 8);
	memcpy(ram_at(m, table + 8 * idx, true), &d, 8);
}

/* An entry that is not a table: invalid, a level-0 block / reserved level-3 encoding, or a leaf. */
static uint64_t rand_entry(model *m, int level, uint64_t size, unsigned pick)
{
	if (pick < 4)
		return rnd(m, 1ull << 20) << 1;        /* invalid, junk above bit 0 */
	if (level == 0 || (level == 3 && chance(m, 2)))
		return D_VALID | D_AF | rand_output(m, SZ_4K);
	return rand_leaf_bits(m) | rand_output(m, size) | (level == 3 ? D_TYPE : 0);
}

static void fill_table(model *m, uint64_t table_ipa, int level, uint64_t va, uint64_t n);

/* A table entry: to a new table (filled in turn), or sometimes to an IPA with no table. */
static void add_table(model *m, uint64_t table_ipa, uint64_t idx, int level, uint64_t va)
{
	bool nowhere = chance(m, 8);
	uint64_t next = nowhere ? (chance(m, 50) ? C_IPA : 1ull << 41) + rnd(m, 16) * SZ_4K
				: new_table(m);

	write_desc(m, table_ipa, idx,
		   next | D_VALID | D_TYPE | (chance(m, 10) ? rnd(m, 16) << 59 : 0));
	if (nowhere)
		add_target(m, va, 1ull << s1_shift(level));
	else
		fill_table(m, next, level + 1, va, 512);
}

/* Fill some entries of the table at @table_ipa (level @level, VA base @va, @n entries). */
static void fill_table(model *m, uint64_t table_ipa, int level, uint64_t va, uint64_t n)
{
	unsigned used = level == 3 ? 24 : 6;

	for (unsigned k = 0; k < used; k++) {
		uint64_t idx = rnd(m, n), eva = va + (idx << s1_shift(level));
		uint64_t size = 1ull << s1_shift(level), old;
		unsigned pick = (unsigned)rnd(m, 100);

		memcpy(&old, ram_at(m, table_ipa + 8 * idx, true), 8);
		if (old)
			continue;   /* taken: its targets stay true */
		if (level < 3 && pick >= 8 && (pick < 60 || level == 0) && m->ntables < 512) {
			add_table(m, table_ipa, idx, level, eva);
			continue;
		}
		add_target(m, eva, size);
		write_desc(m, table_ipa, idx, rand_entry(m, level, size, pick));
	}
}

static const unsigned txsz_choices[] = { 16, 20, 25, 28, 34, 39 };
static const unsigned ips_choices[][2] = { { 0, 32 }, { 2, 40 }, { 5, 48 }, { 6, 48 } };

/* New roots, tables and TCR; the vCPU gets them (its TLB is flushed). */
static void build_s1(model *m)
{
	unsigned t0 = txsz_choices[rnd(m, 6)], t1 = txsz_choices[rnd(m, 6)];
	unsigned ips = (unsigned)rnd(m, 4);
	uint64_t root0, root1;
	mv_a64_sysregs s = { .sctlr_el1 = 1, .vbar_el1 = TEST_VBAR };

	memset(m->table_used, 0, sizeof(m->table_used));
	m->ntables = 0;
	m->ntargets = 0;
	root0 = new_table(m);
	root1 = new_table(m);
	fill_table(m, root0, s1_start_level(64 - t0), 0, 1ull << (64 - t0 - s1_shift(s1_start_level(64 - t0))));
	fill_table(m, root1, s1_start_level(64 - t1), ~0ull << (64 - t1),
		   1ull << (64 - t1 - s1_shift(s1_start_level(64 - t1))));
	m->ips_bits = ips_choices[ips][1];
	s.tcr_el1 = t0 | (uint64_t)t1 << 16 | 2ull << 30 | (uint64_t)ips_choices[ips][0] << 32;
	s.tcr_el1 |= chance(m, 5) ? 1ull << 7 : 0;      /* EPD0 */
	s.tcr_el1 |= chance(m, 5) ? 1ull << 23 : 0;     /* EPD1 */
	s.ttbr0_el1 = root0 | (chance(m, 3) ? 1ull << 45 : 0);   /* BADDR beyond IPS sometimes */
	s.ttbr1_el1 = root1 | rnd(m, 1u << 16) << 48;            /* an ASID */
	mv_a64_vcpu_set_sysregs(m->vcpu, &s);
}

/* ------------------------------------------------------------------ */
/* The naive translator                                                */

static uint64_t rd64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

/* Stage 2 by hand from the VM's root; true with *host, else *f. */
static bool naive_s2(model *m, uint64_t ipa, unsigned need, uint64_t *host, nfault *f)
{
	const mv_s2_config *cfg = mv_a64_vm_s2_config(m->vm);
	const uint8_t *table = (const uint8_t *)(uintptr_t)m->vm->s2.pgt.root_pa;
	int start = cfg->start_level;

	f->s2 = true;
	f->ipa = ipa;
	if (ipa >> cfg->ia_bits) {
		f->fsc = 0x04;
		return false;
	}
	for (int level = start; level <= 3; level++) {
		unsigned shift = 12 + 9 * (unsigned)(3 - level);
		uint64_t bits = level == start ? cfg->ia_bits - shift : 9;
		uint64_t d = rd64(table + 8 * ((ipa >> shift) & ((1ull << bits) - 1)));
		uint64_t size = 1ull << shift;
		unsigned rights;

		if (!(d & D_VALID)) {
			f->fsc = 0x04 + (unsigned)level;
			return false;
		}
		if (level < 3 && (d & D_TYPE)) {
			table = (const uint8_t *)(uintptr_t)(d & D_ADDR);
			continue;
		}
		if (level == 0 || (level == 3 && !(d & D_TYPE))) {
			f->fsc = 0x04 + (unsigned)level;
			return false;
		}
		if ((d & D_ADDR) >> cfg->oa_bits) {
			f->fsc = 0x00 + (unsigned)level;
			return false;
		}
		if (!(d & D_AF)) {
			f->fsc = 0x08 + (unsigned)level;
			return false;
		}
		rights = ((d & S2_R) ? RD : 0) | ((d & S2_W) ? WR : 0) | ((d & S2_XN) ? 0 : EX);
		if (need & ~rights) {
			f->fsc = 0x0c + (unsigned)level;
			return false;
		}
		*host = (d & D_ADDR & ~(size - 1)) | (ipa & (size - 1));
		return true;
	}
	return false;
}

static bool s1_fault(nfault *f, unsigned fsc)
{
	f->fsc = fsc;
	f->s2 = false;
	f->s1ptw = false;
	return false;
}

/* Stage 1 by hand; true with *ipa, else *f (a stage-1 fault or an S1PTW stage-2 fault). */
static bool naive_s1(model *m, uint64_t va, unsigned el, unsigned need, uint64_t *ipa, nfault *f)
{
	const mv_a64_sysregs *s = &m->vcpu->sys;
	bool upper = (va >> 55) & 1;
	unsigned txsz = (unsigned)(upper ? (s->tcr_el1 >> 16) : s->tcr_el1) & 63;
	unsigned ia = 64 - txsz, ips = m->ips_bits;
	uint64_t ttbr = upper ? s->ttbr1_el1 : s->ttbr0_el1, table, tbits = 0, d = 0;
	int level = s1_start_level(ia);

	if ((va >> ia) != (upper ? (~0ull >> ia) : 0))
		return s1_fault(f, 0x04);
	if ((s->tcr_el1 >> (upper ? 23 : 7)) & 1)
		return s1_fault(f, 0x04);
	if (((ttbr & 0x0000fffffffffffeull) >> ips) != 0)
		return s1_fault(f, 0x00);
	table = ttbr & 0x0000fffffffff000ull;
	for (;; level++) {
		uint64_t host;
		uint64_t idx = (va >> s1_shift(level)) & ((1ull << (level == s1_start_level(ia) ?
									 ia - s1_shift(level) : 9)) - 1);

		if (!naive_s2(m, table, RD, &host, f)) {
			f->s1ptw = true;
			return false;
		}
		d = rd64((const uint8_t *)(uintptr_t)host + 8 * idx);
		/* Invalid, a block at level 0, or the reserved level-3 encoding. */
		if (!(d & D_VALID) || ((level == 0 || level == 3) && !(d & D_TYPE)))
			return s1_fault(f, 0x04 + (unsigned)level);
		if ((d & D_ADDR) >> ips)
			return s1_fault(f, 0x00 + (unsigned)level);
		if (level < 3 && (d & D_TYPE)) {
			tbits |= d & S1_TABLE_BITS;
			table = d & D_ADDR;
			continue;
		}
		break;
	}
	if (!(d & D_AF))
		return s1_fault(f, 0x08 + (unsigned)level);
	{
		bool ro = (d & S1_AP_RO) || (tbits & (1ull << 62));
		bool user = (d & S1_AP_EL0) && !(tbits & (1ull << 61));
		bool uxn = (d & S1_UXN) || (tbits & (1ull << 60));
		bool pxn = (d & S1_PXN) || (tbits & (1ull << 59));
		unsigned rights;

		if (el == 0)
			rights = (user ? RD | (ro ? 0 : WR) : 0) | (uxn ? 0 : EX);
		else
			rights = RD | (ro ? 0 : WR) | ((pxn || (user && !ro)) ? 0 : EX);
		if (need & ~rights)
			return s1_fault(f, 0x0c + (unsigned)level);
	}
	{
		uint64_t size = 1ull << s1_shift(level);

		*ipa = (d & D_ADDR & ~(size - 1)) | (va & (size - 1));
	}
	return true;
}

/* Both stages of one byte's page; true with *ipa, *host. */
static bool naive_translate(model *m, const mv_a64_insn *in, uint64_t va, uint64_t *ipa,
			    uint64_t *host, nfault *f)
{
	unsigned el = m->vcpu->regs.el;
	unsigned need = in->op == MV_A64_FETCH ? EX : in->op == MV_A64_STORE ? WR : RD;

	if (!naive_s1(m, va, el, need, ipa, f))
		return false;
	if (!naive_s2(m, *ipa, need, host, f)) {
		f->s1ptw = false;
		return false;
	}
	return true;
}

/* Is @host in a page marked for external aborts? */
static bool naive_sea(const model *m, uint64_t host)
{
	for (unsigned i = 0; i < 4; i++)
		if ((host & ~(SZ_4K - 1)) == m->sea_hva[i])
			return true;
	return false;
}

/* The syndrome of @f, bit by bit (ARM ARM D17.2 ESR_ELx, ISS for Data / Instruction Aborts). */
static uint64_t naive_esr(const mv_a64_insn *in, const nfault *f, unsigned el)
{
	bool fetch = in->op == MV_A64_FETCH, dc = in->op == MV_A64_DC;
	uint64_t ec = fetch ? 0x20 : 0x24, esr;

	if (!f->s2 && el == 1)
		ec += 1;                        /* EL1 to EL1: "current EL" */
	esr = ec << 26 | 1ull << 25 | f->fsc;
	if (f->s1ptw)
		esr |= 1ull << 7;
	if (fetch)
		return esr;
	if (dc)
		esr |= 1ull << 8;
	if (dc || in->op == MV_A64_STORE)
		esr |= 1ull << 6;
	if (f->s2 && !f->s1ptw && f->fsc != 0x10 && !dc && !in->pair && !in->exclusive &&
	    !in->simd && in->wb == MV_A64_WB_NONE) {
		unsigned sas = in->size == 1 ? 0 : in->size == 2 ? 1 : in->size == 4 ? 2 : 3;

		esr |= 1ull << 24 | (uint64_t)sas << 22 | (uint64_t)in->rt << 16;
		esr |= (in->sign_extend ? 1ull << 21 : 0) | (in->sf ? 1ull << 15 : 0) |
		       (in->acq_rel ? 1ull << 14 : 0);
	}
	return esr;
}

static uint64_t naive_reg_value(const mv_a64_insn *in, uint64_t v)
{
	if (in->simd)
		return v;
	if (in->sign_extend && in->size < 8) {
		uint64_t sign = 1ull << (8 * in->size - 1);

		v = (v ^ sign) - sign;
	}
	return in->sf ? v : (uint32_t)v;
}

/* What the access should do: translate each page, then read or write the shadow. */
static void naive_access(model *m, const mv_a64_insn *in, uint64_t va, expect *x)
{
	unsigned len = in->op == MV_A64_FETCH ? 4 : in->op == MV_A64_DC ? 1 :
		       in->size * (in->pair ? 2u : 1u);
	uint64_t pages[2] = { va, (va + len - 1) & ~(SZ_4K - 1) };
	unsigned npages = (pages[1] >> 12) != (va >> 12) ? 2 : 1;
	uint64_t *ipa = x->ipa, host[2];
	nfault f;

	memset(x, 0, sizeof(*x));
	x->va[0] = pages[0];
	x->va[1] = pages[npages - 1];
	/* Every page is translated before any byte moves; then data and fetches may hit SEA pages. */
	for (unsigned i = 0; i < 2 * npages; i++) {
		unsigned p = i % npages;

		if (i < npages && naive_translate(m, in, pages[p], &ipa[p], &host[p], &f))
			continue;
		if (i >= npages && (in->op == MV_A64_DC || !naive_sea(m, host[p])))
			continue;
		if (i >= npages)
			f = (nfault){ .fsc = 0x10, .s2 = true, .ipa = ipa[p] };
		x->kind = f.s2 ? X_S2 : X_S1;
		x->esr = naive_esr(in, &f, m->vcpu->regs.el);
		x->hpfar = ((f.ipa >> 12) & ((1ull << 36) - 1)) << 4;
		x->far = pages[p];
		return;
	}
	x->kind = X_DONE;
	if (in->op == MV_A64_DC)
		return;
	for (unsigned b = 0; b < len; b++) {
		uint64_t a = va + b;
		unsigned i = (a >> 12) != (va >> 12);
		uint64_t gpa = ipa[i] + (a - pages[i]);
		uint8_t *sh = ram_at(m, gpa, true);
		unsigned r = in->op == MV_A64_FETCH ? 0 : b / in->size;
		unsigned byte = in->op == MV_A64_FETCH ? b : b % in->size;

		assert_non_null(sh);   /* outputs with memory only: A and B */
		if (in->op == MV_A64_STORE) {
			unsigned n = r ? in->rt2 : in->rt;
			uint64_t src = in->simd ? m->vcpu->regs.v[n][byte / 8]
				       : n == 31 ? 0 : m->vcpu->regs.x[n];   /* XZR */

			*sh = (uint8_t)(src >> (8 * (byte % 8)));
		} else if (in->simd && in->size == 16 && !in->pair) {
			x->value[byte / 8] |= (uint64_t)*sh << (8 * (byte % 8));
		} else {
			x->value[r] |= (uint64_t)*sh << (8 * byte);
		}
	}
	if (in->op == MV_A64_LOAD && !(in->simd && in->size == 16)) {
		x->value[0] = naive_reg_value(in, x->value[0]);
		x->value[1] = in->pair ? naive_reg_value(in, x->value[1]) : 0;
	}
}

/* ------------------------------------------------------------------ */
/* Random accesses                                                     */

/* A block target (2 MiB or 1 GiB), if a few tries find one. */
static const target *block_target(model *m)
{
	for (unsigned i = 0; i < 16; i++) {
		const target *t = &m->targets[rnd(m, m->ntargets)];

		if (t->size >= SZ_2M)
			return t;
	}
	return NULL;
}

static uint64_t rand_va(model *m)
{
	const target *t;
	uint64_t off;

	if (chance(m, 25))
		return m->recent[rnd(m, 8)];
	if (!m->ntargets || chance(m, 5)) {
		uint64_t va = tu_rand(&m->rng) & ((1ull << 48) - 1);

		return chance(m, 50) ? va : va | 0xffff000000000000ull;
	}
	/* The end of a page inside a block: the access may go on into the next page. */
	if (chance(m, 15) && (t = block_target(m))) {
		off = rnd(m, (t->size < (8ull << 20) ? t->size : (8ull << 20)) / SZ_4K - 1) * SZ_4K;
		return t->va + off + 0xff9 + rnd(m, 7);
	}
	t = &m->targets[rnd(m, m->ntargets)];
	off = rnd(m, t->size < (8ull << 20) ? t->size : (8ull << 20));
	return t->va + off;
}

static void rand_insn(model *m, mv_a64_insn *in, uint64_t va)
{
	static const uint8_t sizes[] = { 1, 2, 4, 8 };
	unsigned pick = (unsigned)rnd(m, 100);

	memset(in, 0, sizeof(*in));
	in->rn = MV_A64_RN_ABS;
	in->addr = va;
	in->rt = (uint8_t)rnd(m, 32);
	in->size = sizes[rnd(m, 4)];
	in->sf = in->size == 8 || chance(m, 50);
	if (pick < 40) {
		in->op = MV_A64_LOAD;
		in->sign_extend = in->size < 8 && chance(m, 30);
	} else if (pick < 70) {
		in->op = MV_A64_STORE;
	} else if (pick < 82) {
		in->op = MV_A64_FETCH;
		in->size = 4;
		in->addr &= ~3ull;
	} else if (pick < 87) {
		in->op = MV_A64_DC;
	} else {
		/* The forms without a syndrome: pairs, exclusives, SIMD&FP. */
		in->op = chance(m, 50) ? MV_A64_LOAD : MV_A64_STORE;
		if (pick < 91) {
			in->pair = true;
			in->rt2 = (uint8_t)((in->rt + 1 + rnd(m, 30)) % 32);
			in->size = chance(m, 50) ? 4 : 8;
		} else if (pick < 95) {
			in->exclusive = true;
			in->rs = (uint8_t)((in->rt + 1) % 31);
		} else {
			in->simd = true;
			in->size = chance(m, 50) ? 16 : sizes[rnd(m, 4)];
		}
		in->sf = in->simd || in->size == 8 || chance(m, 50);
	}
	in->acq_rel = !in->simd && !in->pair && in->op != MV_A64_FETCH && in->op != MV_A64_DC &&
		      chance(m, 10);
}

/* Sometimes address through a base register (SP included), with or without writeback. */
static void rand_base(model *m, mv_a64_insn *in)
{
	uint64_t base;

	if (in->pair || (in->op != MV_A64_LOAD && in->op != MV_A64_STORE) || chance(m, 75))
		return;
	/* Rn differs from Rt and Ws (writeback into them is UNPREDICTABLE). */
	do
		in->rn = (uint8_t)rnd(m, 32);
	while (in->rn == in->rt || (in->exclusive && in->rn == in->rs));
	/* Exclusives and ldar/stlr take [Xn] only. */
	if (!in->exclusive && !in->acq_rel) {
		in->wb = (uint8_t)rnd(m, 3);
		in->imm = (int64_t)rnd(m, 512) - 256;
	}
	base = in->wb == MV_A64_WB_POST ? in->addr : in->addr - (uint64_t)in->imm;
	if (in->rn == 31)
		m->vcpu->regs.sp = base;
	else
		m->vcpu->regs.x[in->rn] = base;
}

/* Rn (SP for 31) as the registers hold it now. */
static uint64_t base_reg(const model *m, const mv_a64_insn *in)
{
	return in->rn == 31 ? m->vcpu->regs.sp : m->vcpu->regs.x[in->rn];
}

static void reset_vcpu(model *m)
{
	mv_a64_regs r = { .pc = TEST_PC, .el = (uint8_t)rnd(m, 2) };

	for (unsigned i = 0; i < 31; i++)
		r.x[i] = tu_rand(&m->rng);
	for (unsigned i = 0; i < 32; i++) {
		r.v[i][0] = tu_rand(&m->rng);
		r.v[i][1] = tu_rand(&m->rng);
	}
	mv_a64_vcpu_set_regs(m->vcpu, &r);
}

/* Every byte the store wrote is in memory as in the shadow. */
static void check_store(model *m, const expect *x, uint64_t va, unsigned len)
{
	for (unsigned b = 0; b < len; b++) {
		unsigned i = ((va + b) >> 12) != (va >> 12);
		uint64_t ipa = x->ipa[i] + (va + b - x->va[i]);
		uint8_t got = *ram_at(m, ipa, false), want = *ram_at(m, ipa, true);

		if (got != want)
			fail_msg("store to 0x%" PRIx64 " (IPA 0x%" PRIx64 "): memory 0x%02x, naive 0x%02x",
				 va + b, ipa, got, want);
	}
}

static void describe(const char *what, uint64_t esr, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s 0x%" PRIx64 " [", what, esr);

	n += mv_esr_describe(esr, buf + n, len - (size_t)n);
	snprintf(buf + n, len - (size_t)n, "]");
}

/* Run one random access and compare. */
static void one_access(model *m, unsigned k)
{
	uint64_t va = rand_va(m);
	mv_a64_insn in;
	mv_a64_outcome out;
	expect x;
	char a[256], b[256];
	unsigned el, len;
	uint64_t base;

	reset_vcpu(m);
	rand_insn(m, &in, va);
	va = in.addr;
	rand_base(m, &in);
	base = in.rn == MV_A64_RN_ABS ? 0 : base_reg(m, &in);
	m->recent[k % 8] = va;
	el = m->vcpu->regs.el;
	len = in.op == MV_A64_FETCH ? 4 : in.op == MV_A64_DC ? 1 : in.size * (in.pair ? 2u : 1u);
	naive_access(m, &in, va, &x);
	m->nev = 0;
	assert_int_equal(mv_a64_vcpu_exec(m->vcpu, &in, &out), 0);
#define WHERE "access %u: op %d size %u va 0x%" PRIx64 " el %u: "
#define ARGS k, in.op, in.size, va, el
	switch (x.kind) {
	case X_S2:
		if (out.result != MV_A64_SKIPPED || m->nev != 1)
			fail_msg(WHERE "result %d with %u aborts (ESR_EL1 0x%" PRIx64 " FAR_EL1 0x%" PRIx64
				 "), want a stage-2 abort (ESR_EL2 0x%" PRIx64 " FAR 0x%" PRIx64 ")",
				 ARGS, out.result, m->nev, out.esr_el1, out.far_el1, x.esr, x.far);
		if (m->ev.esr_el2 != x.esr) {
			describe("ESR_EL2", m->ev.esr_el2, a, sizeof(a));
			describe("want", x.esr, b, sizeof(b));
			fail_msg(WHERE "%s, %s", ARGS, a, b);
		}
		if (m->ev.hpfar_el2 != x.hpfar || m->ev.far_el2 != x.far)
			fail_msg(WHERE "HPFAR 0x%" PRIx64 " FAR 0x%" PRIx64 ", want 0x%" PRIx64
				 " 0x%" PRIx64, ARGS, m->ev.hpfar_el2, m->ev.far_el2, x.hpfar, x.far);
		assert_int_equal(m->vcpu->regs.pc, TEST_PC + 4);
		if (in.rn != MV_A64_RN_ABS)
			assert_int_equal(base_reg(m, &in), base);      /* skipped: no writeback */
		m->s2++;
		m->fsc_s2[x.esr & 63]++;
		m->s1ptw += (x.esr >> 7) & 1;
		m->sea += (x.esr & 63) == 0x10;
		m->cross += x.far != va;
		break;
	case X_S1:
		if (out.result != MV_A64_GUEST_FAULT || m->nev)
			fail_msg(WHERE "result %d, want a stage-1 fault", ARGS, out.result);
		if (out.esr_el1 != x.esr || out.far_el1 != x.far) {
			describe("ESR_EL1", out.esr_el1, a, sizeof(a));
			describe("want", x.esr, b, sizeof(b));
			fail_msg(WHERE "%s FAR 0x%" PRIx64 ", %s FAR 0x%" PRIx64, ARGS, a, out.far_el1,
				 b, x.far);
		}
		assert_int_equal(m->vcpu->regs.pc, TEST_VBAR + (el ? 0x200 : 0x400));
		if (in.rn != MV_A64_RN_ABS)
			assert_int_equal(base_reg(m, &in), base);
		m->s1++;
		m->fsc_s1[x.esr & 63]++;
		break;
	case X_DONE:
		if (out.result != MV_A64_DONE)
			fail_msg(WHERE "result %d (ESR_EL2 0x%" PRIx64 ", ESR_EL1 0x%" PRIx64
				 "), want done", ARGS, out.result, m->ev.esr_el2, out.esr_el1);
		if (in.op == MV_A64_STORE)
			check_store(m, &x, va, len);
		else if (in.op != MV_A64_DC && (out.value[0] != x.value[0] || out.value[1] != x.value[1]))
			fail_msg(WHERE "values 0x%" PRIx64 " 0x%" PRIx64 ", want 0x%" PRIx64 " 0x%" PRIx64,
				 ARGS, out.value[0], out.value[1], x.value[0], x.value[1]);
		if (in.wb != MV_A64_WB_NONE)
			assert_int_equal(base_reg(m, &in), in.wb == MV_A64_WB_POST ? va + (uint64_t)in.imm : va);
		m->done++;
		break;
	}
#undef WHERE
#undef ARGS
}

/* ------------------------------------------------------------------ */

static void model_new(model *m)
{
	mv_error err = { 0 };

	assert_int_equal(mv_a64_vm_new(NULL, &m->vm, &err), 0);
	assert_int_equal(mv_a64_vcpu_new(m->vm, 0, &m->vcpu, &err), 0);
	mv_a64_vm_set_handler(m->vm, false);
	mv_a64_vcpu_set_trace(m->vcpu, trace, m);
	m->a = map_aligned(A_SIZE, SZ_2M, &m->a_raw);
	m->b = map_aligned(SZ_1G, SZ_1G, &m->b_raw);
	m->a_shadow = malloc(A_SIZE);
	m->b_shadow = mmap(NULL, SZ_1G, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	assert_non_null(m->a_shadow);
	assert_true(m->b_shadow != MAP_FAILED);
	for (uint64_t i = 0; i < A_SIZE; i += 8) {
		uint64_t v = tu_rand(&m->rng);

		memcpy(m->a + i, &v, 8);
	}
	memcpy(m->a_shadow, m->a, A_SIZE);
}

static void model_free(model *m)
{
	mv_a64_vcpu_free(m->vcpu);
	mv_a64_vm_free(m->vm);
	munmap(m->a_raw, A_SIZE + SZ_2M);
	munmap(m->b_raw, 2 * SZ_1G);
	munmap(m->b_shadow, SZ_1G);
	free(m->a_shadow);
}

static void test_random_accesses(void **state)
{
	uint64_t seed = tu_seed(0x4a64acce55ull);
	unsigned total = 0, done = 0, s1 = 0, s2 = 0, s1ptw = 0, sea = 0, cross = 0;
	unsigned fams1 = 0, fams2 = 0;
	unsigned fsc_s1[64] = { 0 }, fsc_s2[64] = { 0 };
	mv_tlb_stats st = { 0 };

	(void)state;
	printf("test_a64_random: seed %" PRIu64 " (MV_SEED=%" PRIu64 " replays)\n", seed, seed);
	for (unsigned v = 0; v < N_VMS; v++) {
		model *m = calloc(1, sizeof(*m));
		mv_tlb_stats s;

		assert_non_null(m);
		m->rng = seed + v * 0x9e3779b97f4a7c15ull;
		model_new(m);
		build_s2(m);
		for (unsigned c = 0; c < N_S1; c++) {
			build_s1(m);
			for (unsigned k = 0; k < N_ACCESSES; k++)
				one_access(m, total + k);
			total += N_ACCESSES;
		}
		assert_memory_equal(m->a, m->a_shadow, A_SIZE);
		mv_tlb_get_stats(mv_a64_vcpu_tlb(m->vcpu), &s);
		st.hits += s.hits;
		st.misses += s.misses;
		done += m->done, s1 += m->s1, s2 += m->s2, s1ptw += m->s1ptw, sea += m->sea;
		cross += m->cross;
		for (unsigned i = 0; i < 64; i++)
			fsc_s1[i] += m->fsc_s1[i], fsc_s2[i] += m->fsc_s2[i];
		model_free(m);
		free(m);
	}
	printf("test_a64_random: %u accesses: %u done, %u stage-1 faults, %u stage-2 aborts "
	       "(%u S1PTW, %u SEA, %u on a second page); TLB %" PRIu64 " hits %" PRIu64 " misses\n",
	       total, done, s1, s2, s1ptw, sea, cross, st.hits, st.misses);
	printf("test_a64_random: stage-1 FSCs:");
	for (unsigned i = 0; i < 64; i++)
		if (fsc_s1[i])
			printf(" 0x%02x:%u", i, fsc_s1[i]), fams1 |= 1u << (i >> 2);
	printf("\ntest_a64_random: stage-2 FSCs:");
	for (unsigned i = 0; i < 64; i++)
		if (fsc_s2[i])
			printf(" 0x%02x:%u", i, fsc_s2[i]), fams2 |= 1u << (i >> 2);
	printf("\n");
	/* Every outcome family showed up, so the comparison covered them all. */
	assert_true(done > total / 10 && s1ptw > 0 && sea > 0 && cross > 0 && st.hits > 0);
	assert_int_equal(fams1, 0xf);   /* address size, translation, access flag, permission */
	assert_int_equal(fams2, 0x1e);  /* translation, access flag, permission, SEA */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_random_accesses),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
