/*
 * Randomized differential test of the x86 guest walk. Each "world" picks
 * a paging mode (32-bit, PAE, 4-level, 5-level) and a guest MAXPHYADDR,
 * and builds random page tables in guest-physical memory: random
 * present / R/W / U/S / XD / PS / A / D bits, large pages where the mode
 * has them, random address bits, and now and then one random bit flipped
 * (reserved, ignored, address or flag). PAE worlds also load their PDPTE
 * registers with mv_x86_load_pdptrs from a random PDPT. Then random
 * accesses (read / write / fetch at CPL 0..3 under random CR0.WP,
 * CR4.PSE / SMEP / SMAP and EFER.NXE, sometimes with a table page whose
 * reads or writes EPT stops, or with a racing writer that sets A or
 * clears P in the entry of the first compare-and-swap, making the walk
 * restart) run through mv_x86_guest_walk on one copy of
 * memory and through a deliberately naive walker written here, from the
 * SDM's wording, on another copy. They must agree on the outcome (GPA,
 * page size, rights, #PF and its error code, #GP, EPT stop), and both
 * memories must hold the same accessed / dirty flags afterwards.
 *
 * The naive walker shares nothing with the library: it describes each mode
 * by the linear-address bit ranges of its levels, tests every set bit of
 * an entry against the SDM's "reserved (must be 0)" rows one by one, and
 * checks rights with the SDM 4.6 sentences as nested ifs.
 *
 * Seeded: prints its seed; MV_SEED=<n> replays the run, MV_WORLD=<i> only
 * world i of it.
 */
#include "testutil.h"

#include "memvirt/soft_x86.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MEM_SIZE (2u << 20)           /* guest-physical [0, 2 MiB) is backed; beyond reads as 0 */
#define PAGE 4096u
#define WORLDS 400
#define ACCESSES 250
#define TARGETS 48
#define STOP_READ_RC 5
#define STOP_WRITE_RC 6

enum mode { M_32, M_PAE, M_4L, M_5L, M_COUNT };
static const char *const mode_name[] = { "32-bit", "PAE", "4-level", "5-level" };

/* ------------------------------------------------------------------ */
/* Guest memory (two copies: one per walker)                            */

typedef struct mem {
	uint8_t *b;
	uint64_t stop_read, stop_write;    /* a page whose reads / writes are stopped, or ~0 */
	uint64_t written[16];              /* GPAs compare-and-swapped by the library */
	unsigned nwritten;
	/* A racing writer at the first compare-and-swap: OR @race_or, clear @race_clear. */
	uint64_t race_or, race_clear, race_gpa;
	bool race_armed, race_done;
} mem;

static uint64_t ld(const mem *m, uint64_t gpa, unsigned size)
{
	uint64_t v = 0;

	if (gpa + size > MEM_SIZE)
		return 0;
	for (unsigned i = size; i-- > 0;)
		v = v << 8 | m->b[gpa + i];
	return v;
}

static void st(mem *m, uint64_t gpa, unsigned size, uint64_t v)
{
	assert_true(gpa + size <= MEM_SIZE);
	for (unsigned i = 0; i < size; i++, v >>= 8)
		m->b[gpa + i] = (uint8_t)v;
}

static bool same_page(uint64_t a, uint64_t b)
{
	return a / PAGE == b / PAGE;
}

static int lib_read(void *arg, uint64_t gpa, uint64_t *val)
{
	mem *m = arg;

	assert_int_equal(gpa & 7, 0);
	if (same_page(gpa, m->stop_read))
		return STOP_READ_RC;
	*val = ld(m, gpa, 8);
	return 0;
}

static int lib_cmpxchg(void *arg, uint64_t gpa, uint64_t old, uint64_t new)
{
	mem *m = arg;

	assert_int_equal(gpa & 7, 0);
	if (same_page(gpa, m->stop_write))
		return STOP_WRITE_RC;
	assert_true(m->nwritten < 16);
	m->written[m->nwritten++] = gpa;
	if (m->race_armed) {
		m->race_armed = false;
		m->race_done = true;
		m->race_gpa = gpa;
		st(m, gpa, 8, (ld(m, gpa, 8) | m->race_or) & ~m->race_clear);
	}
	if (ld(m, gpa, 8) != old)
		return -EAGAIN;
	st(m, gpa, 8, new);
	return 0;
}

static const mv_x86_pt_ops lib_ops = { .read = lib_read, .cmpxchg = lib_cmpxchg };

/* ------------------------------------------------------------------ */
/* The naive walker                                                     */

/* What a walk ended with, for both walkers. */
typedef struct outcome {
	int rc;
	bool pf, gp, stop, stop_write;
	uint64_t pferr, cr2, stop_gpa;
	int stop_rc;
	uint64_t gpa, size;
	bool writable, user, nx, dirty;
} outcome;

typedef struct regs {
	uint64_t cr0, cr3, cr4, efer;
	uint64_t pdptr[4];
	unsigned maxphy;                   /* 0 = 52 */
} regs;

/* The entry kinds of the SDM's format tables. */
enum kind {
	K_PDE32_TABLE, K_PDE32_4M, K_PTE32,                    /* Tables 4-5, 4-4, 4-6 */
	K_PAE_PDE_TABLE, K_PAE_PDE_2M, K_PAE_PTE,              /* Tables 4-10, 4-9, 4-11 */
	K_PML5E, K_PML4E, K_PDPTE_TABLE, K_PDPTE_1G,           /* Tables 4-14 to 4-17 */
	K_PDE_TABLE, K_PDE_2M, K_PTE,                          /* Tables 4-18 to 4-20 */
};

static bool bit(uint64_t v, unsigned b)
{
	return (v >> b) & 1;
}

/* "Reserved (must be 0)" rows: is bit @b of an entry of @k reserved? */
static bool reserved_bit(enum kind k, unsigned b, unsigned M, bool nxe)
{
	unsigned m40 = M < 40 ? M : 40;

	switch (k) {
	case K_PDE32_TABLE:
	case K_PTE32:
		return false;
	case K_PDE32_4M:
		return b == 21 || (b >= m40 - 19 && b <= 20);
	case K_PAE_PDE_TABLE:
	case K_PAE_PTE:
	case K_PAE_PDE_2M:
		if (b == 63)
			return !nxe;
		if (b >= M && b <= 62)
			return true;
		return k == K_PAE_PDE_2M && b >= 13 && b <= 20;
	default:
		break;
	}
	/* 4-level and 5-level entries */
	if (b == 63)
		return !nxe;
	if (b >= M && b <= 51)
		return true;
	if ((k == K_PML5E || k == K_PML4E) && b == 7)
		return true;
	if (k == K_PDPTE_1G && b >= 13 && b <= 29)
		return true;
	return k == K_PDE_2M && b >= 13 && b <= 20;
}

static bool any_reserved(enum kind k, uint64_t e, unsigned M, bool nxe)
{
	for (unsigned b = 0; b < 64; b++)
		if (bit(e, b) && reserved_bit(k, b, M, nxe))
			return true;
	return false;
}

/* A level of a mode: the linear-address bits that index it. */
typedef struct nlevel {
	unsigned hi, lo;
} nlevel;

static const nlevel levels_32[] = { { 31, 22 }, { 21, 12 } };
static const nlevel levels_pae[] = { { 29, 21 }, { 20, 12 } };   /* after the PDPTE register (31:30) */
static const nlevel levels_4l[] = { { 47, 39 }, { 38, 30 }, { 29, 21 }, { 20, 12 } };
static const nlevel levels_5l[] = { { 56, 48 }, { 47, 39 }, { 38, 30 }, { 29, 21 }, { 20, 12 } };

static uint64_t field(uint64_t v, unsigned hi, unsigned lo)
{
	return (v >> lo) & ((2ull << (hi - lo)) - 1);
}

/* The kind of entry at position @i of the levels of @mode (leaf: PS set where it counts). */
static enum kind kind_of(enum mode mode, unsigned nlev, unsigned i, bool ps, bool pse)
{
	unsigned from_bottom = nlev - 1 - i;   /* 0 = PTE */

	if (mode == M_32)
		return from_bottom == 0 ? K_PTE32 : (ps && pse) ? K_PDE32_4M : K_PDE32_TABLE;
	if (mode == M_PAE)
		return from_bottom == 0 ? K_PAE_PTE : ps ? K_PAE_PDE_2M : K_PAE_PDE_TABLE;
	switch (from_bottom) {
	case 0: return K_PTE;
	case 1: return ps ? K_PDE_2M : K_PDE_TABLE;
	case 2: return ps ? K_PDPTE_1G : K_PDPTE_TABLE;
	case 3: return K_PML4E;
	default: return K_PML5E;
	}
}

static bool maps_page(enum kind k)
{
	return k == K_PTE32 || k == K_PDE32_4M || k == K_PAE_PTE || k == K_PAE_PDE_2M || k == K_PTE ||
	       k == K_PDE_2M || k == K_PDPTE_1G;
}

/* Where the page of a leaf entry starts and its size. */
static uint64_t page_base(enum kind k, uint64_t e, unsigned M, uint64_t *size)
{
	uint64_t below_m = e & ((1ull << M) - 1);

	switch (k) {
	case K_PTE32:
		*size = 4096;
		return e & 0xfffff000ull;
	case K_PDE32_4M:
		*size = 4ull << 20;
		return (e & 0xffc00000ull) + field(e, 20, 13) * (1ull << 32);
	case K_PAE_PDE_2M:
	case K_PDE_2M:
		*size = 2ull << 20;
		return below_m & ~((2ull << 20) - 1);
	case K_PDPTE_1G:
		*size = 1ull << 30;
		return below_m & ~((1ull << 30) - 1);
	default:
		*size = 4096;
		return below_m & ~0xfffull;
	}
}

static void naive_pf(outcome *o, const regs *r, uint64_t gva, mv_x86_acc acc, unsigned cpl, bool p,
		     bool rsvd)
{
	memset(o, 0, sizeof(*o));
	o->pf = true;
	o->cr2 = gva;
	o->pferr = (p ? 1 : 0) | (acc == MV_X86_WRITE ? 2 : 0) | (cpl == 3 ? 4 : 0) | (rsvd ? 8 : 0);
	/* I/D: an instruction fetch, and CR4.SMEP = 1 or (CR4.PAE = 1 and IA32_EFER.NXE = 1). */
	if (acc == MV_X86_FETCH &&
	    (bit(r->cr4, 20) || (bit(r->cr4, 5) && bit(r->efer, 11))))
		o->pferr |= 16;
}

/* SDM 4.6.1, sentence by sentence. */
static bool naive_allowed(const regs *r, enum mode mode, bool user_addr, bool all_rw, bool any_xd,
			  mv_x86_acc acc, unsigned cpl)
{
	bool wp = bit(r->cr0, 16), smep = bit(r->cr4, 20), smap = bit(r->cr4, 21);
	bool nx_on = mode != M_32 && bit(r->efer, 11);

	if (cpl == 3) {
		if (!user_addr)
			return false;
		if (acc == MV_X86_READ)
			return true;
		if (acc == MV_X86_WRITE)
			return all_rw;
		return nx_on ? !any_xd : true;
	}
	if (acc == MV_X86_READ) {
		if (!user_addr)
			return true;
		return !smap;
	}
	if (acc == MV_X86_WRITE) {
		if (user_addr && smap)
			return false;
		if (!wp)
			return true;
		return all_rw;
	}
	if (user_addr && smep)
		return false;
	return nx_on ? !any_xd : true;
}

typedef struct path_entry {
	uint64_t gpa;
	unsigned size;
	uint64_t e;
} path_entry;

static void naive_walk(mem *m, const regs *r, enum mode mode, uint64_t gva, mv_x86_acc acc,
		       unsigned cpl, outcome *o, path_entry *path, unsigned *npath)
{
	unsigned M = r->maxphy ? r->maxphy : 52;
	bool nxe = mode != M_32 && bit(r->efer, 11), pse = bit(r->cr4, 4);
	const nlevel *lv;
	unsigned nlev, esize = mode == M_32 ? 4 : 8;
	uint64_t table;
	bool user_addr = true, all_rw = true, any_xd = false;
	enum kind k = K_PTE;
	uint64_t e = 0;

	memset(o, 0, sizeof(*o));
	*npath = 0;
	if (mode == M_32 || mode == M_PAE) {
		if (gva > 0xffffffffull) {
			o->rc = -EINVAL;
			return;
		}
	} else {
		uint64_t top = mode == M_4L ? gva >> 47 : gva >> 56;
		uint64_t ones = mode == M_4L ? 0x1ffff : 0xff;

		if (top != 0 && top != ones) {
			o->gp = true;
			return;
		}
	}
	switch (mode) {
	case M_32:
		lv = levels_32, nlev = 2;
		table = r->cr3 & 0xfffff000ull;
		break;
	case M_PAE: {
		uint64_t pdpte = r->pdptr[field(gva, 31, 30)];

		lv = levels_pae, nlev = 2;
		if (!bit(pdpte, 0)) {
			naive_pf(o, r, gva, acc, cpl, false, false);
			return;
		}
		for (unsigned b = 0; b < 64; b++)
			if (bit(pdpte, b) && (b == 1 || b == 2 || (b >= 5 && b <= 8) || b >= M)) {
				o->rc = -EINVAL;
				return;
			}
		table = pdpte & ((1ull << M) - 1) & ~0xfffull;
		break;
	}
	case M_4L:
		lv = levels_4l, nlev = 4;
		table = r->cr3 & ((1ull << M) - 1) & ~0xfffull;
		break;
	default:
		lv = levels_5l, nlev = 5;
		table = r->cr3 & ((1ull << M) - 1) & ~0xfffull;
		break;
	}
	for (unsigned i = 0; i < nlev; i++) {
		uint64_t egpa = table + field(gva, lv[i].hi, lv[i].lo) * esize;

		if (same_page(egpa, m->stop_read)) {
			o->stop = true;
			o->stop_gpa = egpa;
			o->stop_rc = STOP_READ_RC;
			return;
		}
		e = ld(m, egpa, esize);
		if (!bit(e, 0)) {
			naive_pf(o, r, gva, acc, cpl, false, false);
			return;
		}
		k = kind_of(mode, nlev, i, bit(e, 7), pse);
		if (any_reserved(k, e, M, nxe)) {
			naive_pf(o, r, gva, acc, cpl, true, true);
			return;
		}
		path[(*npath)++] = (path_entry){ egpa, esize, e };
		user_addr = user_addr && bit(e, 2);
		all_rw = all_rw && bit(e, 1);
		any_xd = any_xd || (nxe && bit(e, 63));
		if (maps_page(k))
			break;
		table = mode == M_32 ? e & 0xfffff000ull : e & ((1ull << M) - 1) & ~0xfffull;
	}
	if (!naive_allowed(r, mode, user_addr, all_rw, any_xd, acc, cpl)) {
		naive_pf(o, r, gva, acc, cpl, true, false);
		return;
	}
	o->gpa = page_base(k, e, M, &o->size);
	o->gpa += gva & (o->size - 1);
	o->writable = all_rw;
	o->user = user_addr;
	o->nx = any_xd;
	/* Accessed flags top-down, the dirty flag with the last one for a write. */
	for (unsigned i = 0; i < *npath; i++) {
		path_entry *pe = &path[i];
		uint64_t want = pe->e | 0x20;

		if (i + 1 == *npath && acc == MV_X86_WRITE)
			want |= 0x40;
		if (want == pe->e)
			continue;
		if (same_page(pe->gpa, m->stop_write)) {
			memset(o, 0, sizeof(*o));
			o->stop = o->stop_write = true;
			o->stop_gpa = pe->gpa;
			o->stop_rc = STOP_WRITE_RC;
			return;
		}
		st(m, pe->gpa, pe->size, want);
		pe->e = want;
	}
	o->dirty = bit(path[*npath - 1].e, 6);
}

/* ------------------------------------------------------------------ */
/* Worlds                                                               */

/* Outcome counters, printed and required nonzero over a full run. */
enum { ST_OK, ST_PF, ST_RSVD, ST_GP, ST_STOP, ST_STOPW, ST_EINVAL, ST_LARGE, ST_RACE, ST_COUNT };

typedef struct world {
	uint64_t rng;
	enum mode mode;
	unsigned maxphy;                   /* 0 = 52 */
	mem a, b;                          /* the library's memory, the naive walker's */
	uint64_t next;                     /* next free table page */
	regs r;
	uint64_t targets[TARGETS];
	uint64_t tables[TARGETS][5];       /* the table pages on each target's path */
	unsigned ntables[TARGETS];
	unsigned ntargets;
	unsigned long stats[ST_COUNT];
} world;

static uint64_t rnd(world *w, uint64_t n)
{
	return tu_rand_below(&w->rng, n);
}

static bool chance(world *w, unsigned percent)
{
	return rnd(w, 100) < percent;
}

static unsigned world_m(const world *w)
{
	return w->maxphy ? w->maxphy : 52;
}

/* A random page-aligned address of @align bytes below 2^M (often small, sometimes high). */
static uint64_t random_addr(world *w, uint64_t align)
{
	unsigned bits = chance(w, 50) ? 32 : world_m(w);
	uint64_t a = tu_rand(&w->rng) & ((1ull << bits) - 1);

	if (w->mode == M_32)
		a &= 0xffffffffull;
	return a & ~(align - 1);
}

static uint64_t alloc_table(world *w)
{
	uint64_t t = w->next;

	w->next += PAGE;
	assert_true(w->next <= MEM_SIZE);
	return t;
}

/* Random flag bits of a present entry (no address). */
static uint64_t random_flags(world *w)
{
	uint64_t f = 1;

	f |= chance(w, 85) ? 2 : 0;       /* R/W */
	f |= chance(w, 80) ? 4 : 0;       /* U/S */
	f |= rnd(w, 4) << 3;              /* PWT, PCD */
	f |= chance(w, 50) ? 0x20 : 0;    /* A */
	f |= chance(w, 50) ? 0x40 : 0;    /* D (ignored in tables) */
	f |= rnd(w, 16) << 8;             /* G, 11:9 */
	if (w->mode != M_32 && chance(w, 15))
		f |= 1ull << 63;              /* XD */
	return f;
}

/* Sizes of the regions an entry at depth @i maps (as log2) for the world's mode. */
static unsigned region_log2(const world *w, unsigned i)
{
	switch (w->mode) {
	case M_32: return i == 0 ? 22 : 12;
	case M_PAE: return i == 0 ? 21 : 12;
	case M_4L: return 39 - 9 * i;
	default: return 48 - 9 * i;
	}
}

static unsigned depth(const world *w)
{
	return w->mode == M_32 || w->mode == M_PAE ? 2 : w->mode == M_4L ? 4 : 5;
}

/* May the entry at depth @i map a page with PS? */
static bool large_ok(const world *w, unsigned i)
{
	unsigned lg = region_log2(w, i);

	return lg == 21 || lg == 22 || lg == 30;
}

/* A new entry at depth @i: not present, a page, or a table (allocated). */
static uint64_t random_entry(world *w, unsigned i)
{
	unsigned lg = region_log2(w, i);
	uint64_t e;

	if (chance(w, 7))
		return tu_rand(&w->rng) & ~1ull & (w->mode == M_32 ? 0xffffffffull : ~0ull);
	e = random_flags(w);
	if (lg == 12) {
		e |= random_addr(w, PAGE) | (chance(w, 20) ? 0x80 : 0);   /* PAT */
	} else if (large_ok(w, i) && chance(w, 30)) {
		e |= 0x80 | (chance(w, 20) ? 0x1000 : 0);
		if (lg == 22)     /* 32-bit 4 MiB: 31:22 and PSE-36 bits 20:13 */
			e |= (random_addr(w, 1ull << 22)) | (rnd(w, 256) << 13);
		else
			e |= random_addr(w, 1ull << lg);
	} else {
		e |= alloc_table(w);
		if (w->mode == M_32 && chance(w, 10))
			e |= 0x80;            /* PS of a table PDE: ignored without CR4.PSE */
	}
	if (chance(w, 8))
		e ^= 1ull << rnd(w, w->mode == M_32 ? 32 : 64);
	return e;
}

/* A random linear address of the mode, built from a few index values so paths share tables. */
static uint64_t random_target(world *w)
{
	static const uint64_t picks[] = { 0, 1, 2, 511, 1023, 256, 300 };
	unsigned n = depth(w);
	uint64_t gva = 0;

	for (unsigned i = 0; i < n; i++) {
		unsigned lg = region_log2(w, i);
		unsigned width = w->mode == M_32 ? 10 : 9;
		uint64_t v = chance(w, 70) ? picks[rnd(w, 7)] : tu_rand(&w->rng);

		gva |= (v & ((1ull << width) - 1)) << lg;
	}
	if (w->mode == M_PAE)
		gva |= rnd(w, 4) << 30;
	if (w->mode == M_4L && (gva >> 47))
		gva |= 0xffff000000000000ull;
	if (w->mode == M_5L && (gva >> 56))
		gva |= 0xff00000000000000ull;
	return gva;
}

/* Build the path of target @t where it is missing, noting its table pages. */
static void build_path(world *w, uint64_t root, unsigned t)
{
	unsigned esize = w->mode == M_32 ? 4 : 8, width = w->mode == M_32 ? 10 : 9;
	uint64_t table = root, gva = w->targets[t];

	for (unsigned i = 0; i < depth(w); i++) {
		w->tables[t][w->ntables[t]++] = table;
		uint64_t egpa = table + ((gva >> region_log2(w, i)) & ((1ull << width) - 1)) * esize;
		uint64_t e = ld(&w->b, egpa, esize);

		if (e == 0) {
			e = random_entry(w, i);
			st(&w->a, egpa, esize, e);
			st(&w->b, egpa, esize, e);
		}
		/* Stop at anything that is not a plain table pointer inside memory. */
		if (!(e & 1) || region_log2(w, i) == 12)
			return;
		if ((e & 0x80) && (large_ok(w, i) && (w->mode != M_32 || chance(w, 50))))
			return;
		table = w->mode == M_32 ? e & 0xfffff000ull : e & 0x000ffffffffff000ull;
		if (table + PAGE > MEM_SIZE || table < 2 * PAGE)
			return;
	}
}

/* PAE: a PDPT in memory with random PDPTEs, loaded through mv_x86_load_pdptrs. */
static void build_pae_root(world *w, uint64_t *pdpt)
{
	*pdpt = alloc_table(w) + rnd(w, 128) * 32;
	for (unsigned i = 0; i < 4; i++) {
		uint64_t e;

		if (chance(w, 10))
			e = tu_rand(&w->rng) & ~1ull;
		else
			e = alloc_table(w) | 1 | (chance(w, 30) ? 0x18 : 0) | (rnd(w, 8) << 9);
		if (chance(w, 4))
			e ^= 1ull << rnd(w, 64);
		st(&w->a, *pdpt + i * 8, 8, e);
		st(&w->b, *pdpt + i * 8, 8, e);
	}
}

/* mv_x86_load_pdptrs against the SDM's rule, then the registers for the walks. */
static void load_pae_root(world *w, uint64_t pdpt)
{
	mv_x86_paging p = { .cr0 = 1ull << 31, .cr3 = pdpt | (rnd(w, 32)), .cr4 = 1 << 5,
			    .maxphyaddr = w->maxphy };
	unsigned M = world_m(w);
	bool want_gp = false;
	mv_x86_walk res;

	for (unsigned i = 0; i < 4; i++) {
		uint64_t e = ld(&w->b, pdpt + i * 8, 8);

		w->r.pdptr[i] = e;
		for (unsigned b = 0; b < 64 && bit(e, 0); b++)
			if (bit(e, b) && (b == 1 || b == 2 || (b >= 5 && b <= 8) || b >= M))
				want_gp = true;
	}
	assert_int_equal(mv_x86_load_pdptrs(&p, &lib_ops, &w->a, &res), 0);
	assert_false(res.ept_stop);
	assert_int_equal(res.gp, want_gp);
	if (!want_gp)
		assert_memory_equal(p.pdptr, w->r.pdptr, sizeof(p.pdptr));
	/* Keep the raw values either way: walks must then refuse a bad present one. */
}

static void build_world(world *w)
{
	static const unsigned maxphys[] = { 0, 52, 46, 40, 39, 36, 32 };
	uint64_t root;

	w->mode = (enum mode)rnd(w, M_COUNT);
	w->maxphy = maxphys[rnd(w, 7)];
	w->next = 2 * PAGE;
	w->a.stop_read = w->a.stop_write = w->b.stop_read = w->b.stop_write = ~0ull;
	memset(&w->r, 0, sizeof(w->r));
	w->r.maxphy = w->maxphy;
	if (w->mode == M_PAE) {
		build_pae_root(w, &root);
		load_pae_root(w, root);
	} else {
		root = alloc_table(w);
		w->r.cr3 = root | (rnd(w, 2) ? 0x18 : 0);
	}
	w->ntargets = 0;
	for (unsigned t = 0; t < TARGETS; t++) {
		uint64_t gva = random_target(w);

		w->targets[t] = gva;
		w->ntables[t] = 0;
		w->ntargets++;
		if (w->mode == M_PAE) {
			/* The walk starts below the PDPTE register (two levels). */
			uint64_t e = w->r.pdptr[(gva >> 30) & 3];

			if ((e & 1) && (e & 0x000ffffffffff000ull) + PAGE <= MEM_SIZE)
				build_path(w, e & 0x000ffffffffff000ull, t);
		} else {
			build_path(w, root, t);
		}
	}
}

/* Control registers for one access: the world's mode, random modifiers. */
static void random_controls(world *w, regs *r)
{
	r->cr0 = 1ull << 31 | 1 | (chance(w, 70) ? 1ull << 16 : 0);
	r->cr4 = (chance(w, 50) ? 1ull << 4 : 0) | (chance(w, 40) ? 1ull << 20 : 0) |
		 (chance(w, 40) ? 1ull << 21 : 0);
	r->efer = chance(w, 70) ? 1ull << 11 : 0;
	switch (w->mode) {
	case M_32:
		break;
	case M_PAE:
		r->cr4 |= 1ull << 5;
		break;
	case M_4L:
	case M_5L:
		r->cr4 |= 1ull << 5 | (w->mode == M_5L ? 1ull << 12 : 0);
		r->efer |= 1ull << 8 | 1ull << 10;
		break;
	case M_COUNT:
		break;
	}
}

static void lib_outcome(const mv_x86_walk *lw, int rc, outcome *o)
{
	memset(o, 0, sizeof(*o));
	o->rc = rc;
	if (rc)
		return;
	if (lw->guest_pf) {
		o->pf = true;
		o->pferr = lw->pferr;
		o->cr2 = lw->cr2;
	} else if (lw->gp) {
		o->gp = true;
	} else if (lw->ept_stop) {
		o->stop = true;
		o->stop_write = lw->stop_write;
		o->stop_gpa = lw->stop_gpa;
		o->stop_rc = lw->stop_rc;
	} else {
		o->gpa = lw->gpa;
		o->size = lw->page_size;
		o->writable = lw->writable;
		o->user = lw->user;
		o->nx = lw->nx;
		o->dirty = lw->dirty;
	}
}

static bool same_outcome(const outcome *x, const outcome *y)
{
	return x->rc == y->rc && x->pf == y->pf && x->gp == y->gp && x->stop == y->stop &&
	       x->stop_write == y->stop_write && x->pferr == y->pferr && x->cr2 == y->cr2 &&
	       x->stop_gpa == y->stop_gpa && x->stop_rc == y->stop_rc && x->gpa == y->gpa &&
	       x->size == y->size && x->writable == y->writable && x->user == y->user &&
	       x->nx == y->nx && x->dirty == y->dirty;
}

static void print_outcome(const char *who, const outcome *o)
{
	fprintf(stderr,
		"  %s: rc %d pf %d pferr %#" PRIx64 " cr2 %#" PRIx64 " gp %d stop %d/%d at %#" PRIx64
		" rc %d; gpa %#" PRIx64 " size %#" PRIx64 " w %d u %d nx %d dirty %d\n",
		who, o->rc, o->pf, o->pferr, o->cr2, o->gp, o->stop, o->stop_write, o->stop_gpa,
		o->stop_rc, o->gpa, o->size, o->writable, o->user, o->nx, o->dirty);
}

static void count(world *w, const outcome *o)
{
	if (o->rc)
		w->stats[ST_EINVAL]++;
	else if (o->gp)
		w->stats[ST_GP]++;
	else if (o->stop)
		w->stats[o->stop_write ? ST_STOPW : ST_STOP]++;
	else if (o->pf)
		w->stats[(o->pferr & 8) ? ST_RSVD : ST_PF]++;
	else
		w->stats[o->size > PAGE ? ST_LARGE : ST_OK]++;
}

static uint64_t pick_stop_page(world *w, unsigned t)
{
	if (w->ntables[t] && chance(w, 80))
		return w->tables[t][rnd(w, w->ntables[t])];
	return rnd(w, w->next / PAGE) * PAGE;
}

/* One access on both memories; false (after a report) on any difference. */
static bool one_access(world *w, uint64_t seed, unsigned wi, unsigned ai)
{
	regs r = w->r;
	unsigned t = (unsigned)rnd(w, w->ntargets);
	uint64_t gva;
	mv_x86_acc acc = (mv_x86_acc)rnd(w, 3);
	unsigned cpl = chance(w, 45) ? 3 : chance(w, 80) ? 0 : 1 + (unsigned)rnd(w, 2);
	mv_x86_paging p;
	mv_x86_walk lw;
	outcome lo, no;
	path_entry path[5];
	unsigned npath;
	int rc;

	random_controls(w, &r);
	if (chance(w, 90))
		gva = w->targets[t] | rnd(w, PAGE);
	else
		gva = tu_rand(&w->rng) >> (chance(w, 50) ? 0 : 32);
	/* Stops: mostly a table page of the target's path, sometimes any. */
	w->a.stop_read = w->a.stop_write = ~0ull;
	if (chance(w, 10))
		w->a.stop_read = pick_stop_page(w, t);
	if (chance(w, 15))
		w->a.stop_write = pick_stop_page(w, t);
	w->b.stop_read = w->a.stop_read;
	w->b.stop_write = w->a.stop_write;
	w->a.nwritten = 0;
	/* Both bit 5 (A) and bit 0 (P) of both halves: 32-bit entries are 4 bytes. */
	w->a.race_armed = chance(w, 8);
	w->a.race_done = false;
	w->a.race_or = chance(w, 50) ? 0x0000002000000020ull : 0;
	w->a.race_clear = w->a.race_or ? 0 : 0x0000000100000001ull;

	p = (mv_x86_paging){ .cr0 = r.cr0, .cr3 = r.cr3, .cr4 = r.cr4, .efer = r.efer,
			     .maxphyaddr = r.maxphy };
	memcpy(p.pdptr, r.pdptr, sizeof(p.pdptr));
	rc = mv_x86_guest_walk(&p, gva, acc, cpl, &lib_ops, &w->a, &lw);
	lib_outcome(&lw, rc, &lo);
	/* The race happened before anything was written: the naive walker starts after it. */
	w->a.race_armed = false;
	if (w->a.race_done) {
		st(&w->b, w->a.race_gpa, 8, (ld(&w->b, w->a.race_gpa, 8) | w->a.race_or) & ~w->a.race_clear);
		w->stats[ST_RACE]++;
	}
	naive_walk(&w->b, &r, w->mode, gva, acc, cpl, &no, path, &npath);
	count(w, &no);

	bool same = same_outcome(&lo, &no);

	for (unsigned i = 0; same && i < w->a.nwritten; i++)
		same = ld(&w->a, w->a.written[i], 8) == ld(&w->b, w->a.written[i], 8);
	for (unsigned i = 0; same && i < npath; i++)
		same = ld(&w->a, path[i].gpa & ~7ull, 8) == ld(&w->b, path[i].gpa & ~7ull, 8);
	if (same)
		return true;
	fprintf(stderr,
		"mismatch: MV_SEED=%" PRIu64 " MV_WORLD=%u access %u: %s M=%u gva %#" PRIx64
		" acc %d cpl %u cr0 %#" PRIx64 " cr4 %#" PRIx64 " efer %#" PRIx64
		" stops r %#" PRIx64 " w %#" PRIx64 "\n",
		seed, wi, ai, mode_name[w->mode], world_m(w), gva, acc, cpl, r.cr0, r.cr4, r.efer,
		w->a.stop_read, w->a.stop_write);
	print_outcome("library", &lo);
	print_outcome("naive  ", &no);
	for (unsigned i = 0; i < npath; i++)
		fprintf(stderr, "  entry %#" PRIx64 ": lib %#" PRIx64 " naive %#" PRIx64 "\n",
			path[i].gpa, ld(&w->a, path[i].gpa, path[i].size),
			ld(&w->b, path[i].gpa, path[i].size));
	return false;
}

static int setup(void **state)
{
	world *w = calloc(1, sizeof(*w));

	assert_non_null(w);
	w->a.b = malloc(MEM_SIZE);
	w->b.b = malloc(MEM_SIZE);
	assert_non_null(w->a.b);
	assert_non_null(w->b.b);
	*state = w;
	return 0;
}

static int teardown(void **state)
{
	world *w = *state;

	free(w->a.b);
	free(w->b.b);
	free(w);
	return 0;
}

static void test_random_walks(void **state)
{
	uint64_t seed = tu_seed(0x9a61);
	const char *only = getenv("MV_WORLD");
	unsigned long totals[ST_COUNT] = { 0 };
	world *w = *state;

	printf("test_x86_paging_random: seed %" PRIu64 " (MV_SEED=%" PRIu64 " replays)\n", seed, seed);
	for (unsigned wi = 0; wi < WORLDS; wi++) {
		if (only && strtoul(only, NULL, 0) != wi)
			continue;
		memset(w->a.b, 0, MEM_SIZE);
		memset(w->b.b, 0, MEM_SIZE);
		memset(w->stats, 0, sizeof(w->stats));
		w->rng = seed * 0x9e3779b97f4a7c15ull + wi + 1;
		build_world(w);
		for (unsigned ai = 0; ai < ACCESSES; ai++)
			if (!one_access(w, seed, wi, ai))
				fail_msg("the library and the naive walker disagree (see above)");
		assert_memory_equal(w->a.b, w->b.b, MEM_SIZE);
		for (unsigned i = 0; i < ST_COUNT; i++)
			totals[i] += w->stats[i];
	}
	printf("# outcomes: %lu 4K, %lu large, %lu #PF, %lu #PF RSVD, %lu #GP, %lu read stops, "
	       "%lu A/D stops, %lu EINVAL; %lu raced\n",
	       totals[ST_OK], totals[ST_LARGE], totals[ST_PF], totals[ST_RSVD], totals[ST_GP],
	       totals[ST_STOP], totals[ST_STOPW], totals[ST_EINVAL], totals[ST_RACE]);
	/* Every kind of outcome must have been exercised by a full run. */
	if (!only)
		for (unsigned i = 0; i < ST_COUNT; i++)
			assert_true(totals[i] > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_random_walks, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
