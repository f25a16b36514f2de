/*
 * The x86 guest walk (mv_x86_guest_walk, mv_x86_rights_fault,
 * mv_x86_load_pdptrs) against guest page tables written by hand into a
 * plain buffer that stands in for guest-physical memory. The callbacks
 * read and compare-and-swap that buffer, log every access, and can be told
 * to stop accesses to chosen pages (an EPT violation), to fail with an
 * errno, or to let a "racing" writer change an entry just before a
 * compare-and-swap.
 *
 * Expected values are written out from the SDM (Vol. 3A ch. 4): entry
 * formats, the #PF error code bit by bit, and the exact entry values after
 * a walk (A in every entry used, D in the final one for writes, nothing
 * on faults).
 */
#include "testutil.h"

#include "memvirt/soft_x86.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define SZ_4K (1ull << 12)
#define SZ_2M (1ull << 21)
#define SZ_4M (1ull << 22)
#define SZ_1G (1ull << 30)

#define GMEM_SIZE (1u << 20)       /* guest-physical [0, 1 MiB): every table lives here */
#define TABLES_GPA 0x10000ull      /* table pages are handed out from here */
#define STOP_RC 7                  /* what a stopped access returns */
#define MAX_STOPS 4
#define LOG_LEN 32

/* Entry bits, spelled out from SDM Tables 4-4 to 4-20. */
#define P (1ull << 0)
#define RW (1ull << 1)
#define US (1ull << 2)
#define A (1ull << 5)
#define D (1ull << 6)
#define PS (1ull << 7)
#define XD (1ull << 63)

/* #PF error code bits (SDM 4.7, Figure 4-12). */
#define PF_P (1ull << 0)
#define PF_W (1ull << 1)
#define PF_U (1ull << 2)
#define PF_RSVD (1ull << 3)
#define PF_ID (1ull << 4)

/* Control bits. */
#define CR0_PG (1ull << 31)
#define CR0_WP (1ull << 16)
#define CR4_PSE (1ull << 4)
#define CR4_PAE (1ull << 5)
#define CR4_LA57 (1ull << 12)
#define CR4_SMEP (1ull << 20)
#define CR4_SMAP (1ull << 21)
#define EFER_LME (1ull << 8)
#define EFER_LMA (1ull << 10)
#define EFER_NXE (1ull << 11)

/* ------------------------------------------------------------------ */
/* Guest-physical memory and its callbacks                              */

typedef struct gmem {
	uint8_t *mem;
	uint64_t next;                  /* next free table page */
	uint64_t stop_read[MAX_STOPS];  /* pages whose reads are stopped */
	unsigned nr_stop_read;
	uint64_t stop_write[MAX_STOPS]; /* pages whose compare-and-swaps are stopped */
	unsigned nr_stop_write;
	int read_err;                   /* nonzero: every read fails with it */
	int cas_err;                    /* nonzero: every compare-and-swap fails with it */
	/* Called before a compare-and-swap compares (a racing writer). */
	void (*race)(struct gmem *m, uint64_t gpa);
	uint64_t race_arg;
	unsigned reads, cases;
	uint64_t read_log[LOG_LEN], cas_log[LOG_LEN];
} gmem;

static uint64_t get64(const gmem *m, uint64_t gpa)
{
	uint64_t v = 0;

	assert_true(gpa + 8 <= GMEM_SIZE);
	for (int i = 7; i >= 0; i--)
		v = v << 8 | m->mem[gpa + (unsigned)i];
	return v;
}

static void put64(gmem *m, uint64_t gpa, uint64_t v)
{
	assert_true(gpa + 8 <= GMEM_SIZE);
	for (int i = 0; i < 8; i++, v >>= 8)
		m->mem[gpa + (unsigned)i] = (uint8_t)v;
}

static uint32_t get32(const gmem *m, uint64_t gpa)
{
	return (uint32_t)(get64(m, gpa & ~7ull) >> ((gpa & 4) * 8));
}

static void put32(gmem *m, uint64_t gpa, uint32_t v)
{
	uint64_t q = get64(m, gpa & ~7ull);
	unsigned sh = (unsigned)(gpa & 4) * 8;

	put64(m, gpa & ~7ull, (q & ~(0xffffffffull << sh)) | (uint64_t)v << sh);
}

static bool in_pages(const uint64_t *pages, unsigned n, uint64_t gpa)
{
	for (unsigned i = 0; i < n; i++)
		if (pages[i] == (gpa & ~(SZ_4K - 1)))
			return true;
	return false;
}

static int cb_read(void *arg, uint64_t gpa, uint64_t *val)
{
	gmem *m = arg;

	assert_int_equal(gpa % 8, 0);
	if (m->reads < LOG_LEN)
		m->read_log[m->reads] = gpa;
	m->reads++;
	if (m->read_err)
		return m->read_err;
	if (in_pages(m->stop_read, m->nr_stop_read, gpa))
		return STOP_RC;
	if (gpa >= GMEM_SIZE)
		return -EFAULT;
	*val = get64(m, gpa);
	return 0;
}

static int cb_cmpxchg(void *arg, uint64_t gpa, uint64_t old, uint64_t new)
{
	gmem *m = arg;

	assert_int_equal(gpa % 8, 0);
	if (m->cases < LOG_LEN)
		m->cas_log[m->cases] = gpa;
	m->cases++;
	if (m->cas_err)
		return m->cas_err;
	if (in_pages(m->stop_write, m->nr_stop_write, gpa))
		return STOP_RC + 1;
	if (m->race)
		m->race(m, gpa);
	if (get64(m, gpa) != old)
		return -EAGAIN;
	put64(m, gpa, new);
	return 0;
}

static const mv_x86_pt_ops ops = { .read = cb_read, .cmpxchg = cb_cmpxchg };

static int setup(void **state)
{
	gmem *m = calloc(1, sizeof(*m));

	assert_non_null(m);
	m->mem = calloc(1, GMEM_SIZE);
	assert_non_null(m->mem);
	m->next = TABLES_GPA;
	*state = m;
	return 0;
}

static int teardown(void **state)
{
	gmem *m = *state;

	free(m->mem);
	free(m);
	return 0;
}

static uint64_t alloc_table(gmem *m)
{
	uint64_t gpa = m->next;

	m->next += SZ_4K;
	assert_true(m->next <= GMEM_SIZE);
	return gpa;
}

static void reset_log(gmem *m)
{
	m->reads = m->cases = 0;
}

/* ------------------------------------------------------------------ */
/* Table builders (the test's own index arithmetic)                     */

/* 4/5-level and PAE: 9 index bits per level above the 12-bit offset. */
static unsigned idx9(uint64_t gva, int level)
{
	return (unsigned)(gva >> (12 + 9 * (level - 1))) & 511;
}

/*
 * 4/5-level: the GPA of the entry of @level for @gva under @root (top
 * level @top), creating missing tables with entries @tflags (P implied).
 */
static uint64_t slot64(gmem *m, uint64_t root, int top, uint64_t gva, int level, uint64_t tflags)
{
	uint64_t table = root;

	for (int l = top; l > level; l--) {
		uint64_t egpa = table + idx9(gva, l) * 8;
		uint64_t e = get64(m, egpa);

		if (!(e & P)) {
			e = alloc_table(m) | P | tflags;
			put64(m, egpa, e);
		}
		table = e & 0x000ffffffffff000ull;
	}
	return table + idx9(gva, level) * 8;
}

/* 4/5-level: map @gva at @level (1 = 4K, 2 = 2M, 3 = 1G) to @pa; returns the leaf's GPA. */
static uint64_t map64(gmem *m, uint64_t root, int top, uint64_t gva, int level, uint64_t pa,
		      uint64_t lflags, uint64_t tflags)
{
	uint64_t egpa = slot64(m, root, top, gva, level, tflags);

	put64(m, egpa, pa | P | lflags | (level > 1 ? PS : 0));
	return egpa;
}

static mv_x86_paging paging_4l(uint64_t cr3)
{
	return (mv_x86_paging){
		.cr0 = CR0_PG | CR0_WP | 1, .cr3 = cr3, .cr4 = CR4_PAE,
		.efer = EFER_LME | EFER_LMA | EFER_NXE,
	};
}

static mv_x86_paging paging_5l(uint64_t cr3)
{
	mv_x86_paging p = paging_4l(cr3);

	p.cr4 |= CR4_LA57;
	return p;
}

/* 32-bit paging: 10 index bits per level. */
static unsigned idx10(uint64_t gva, int level)
{
	return (unsigned)(gva >> (12 + 10 * (level - 1))) & 1023;
}

/* 32-bit paging: map @gva at @level (1 = 4K, 2 = 4M) with the leaf's bits @leaf (P added). */
static uint64_t map32(gmem *m, uint64_t pd, uint64_t gva, int level, uint32_t leaf, uint32_t tflags)
{
	uint64_t pde = pd + idx10(gva, 2) * 4, pt;

	if (level == 2) {
		put32(m, pde, leaf | (uint32_t)(P | PS));
		return pde;
	}
	if (!(get32(m, pde) & P))
		put32(m, pde, (uint32_t)alloc_table(m) | (uint32_t)P | tflags);
	pt = get32(m, pde) & 0xfffff000u;
	put32(m, pt + idx10(gva, 1) * 4, leaf | (uint32_t)P);
	return pt + idx10(gva, 1) * 4;
}

static mv_x86_paging paging_32(uint64_t cr3, uint64_t cr4)
{
	return (mv_x86_paging){ .cr0 = CR0_PG | CR0_WP | 1, .cr3 = cr3, .cr4 = cr4 };
}

/* PAE: map @gva at @level (1 = 4K, 2 = 2M), creating the PDPTE register and tables. */
static uint64_t map_pae(gmem *m, mv_x86_paging *p, uint64_t gva, int level, uint64_t pa,
			uint64_t lflags, uint64_t tflags)
{
	uint64_t *pdpte = &p->pdptr[(gva >> 30) & 3];

	if (!(*pdpte & P))
		*pdpte = alloc_table(m) | P;
	return map64(m, *pdpte & 0x000ffffffffff000ull, 2, gva, level, pa, lflags, tflags);
}

static mv_x86_paging paging_pae(void)
{
	return (mv_x86_paging){ .cr0 = CR0_PG | CR0_WP | 1, .cr4 = CR4_PAE, .efer = EFER_NXE };
}

/* The GPA of each entry the 4/5-level walk of @gva uses, top level first. */
static void entries64(const gmem *m, uint64_t root, int top, uint64_t gva, uint64_t *e)
{
	e[0] = root + idx9(gva, top) * 8;
	for (int i = 1; i < top; i++)
		e[i] = (get64(m, e[i - 1]) & 0x000ffffffffff000ull) + idx9(gva, top - i) * 8;
}

static int walk(gmem *m, const mv_x86_paging *p, uint64_t gva, mv_x86_acc acc, unsigned cpl,
		mv_x86_walk *w)
{
	reset_log(m);
	memset(w, 0xa5, sizeof(*w));    /* every field must be written */
	return mv_x86_guest_walk(p, gva, acc, cpl, &ops, m, w);
}

/* A successful walk to @gpa of @size. */
static void expect_ok(const mv_x86_walk *w, uint64_t gpa, uint64_t size)
{
	assert_false(w->guest_pf);
	assert_false(w->gp);
	assert_false(w->ept_stop);
	assert_int_equal(w->gpa, gpa);
	assert_int_equal(w->page_size, size);
}

static void expect_pf(const mv_x86_walk *w, uint64_t pferr, uint64_t cr2)
{
	assert_true(w->guest_pf);
	assert_false(w->gp);
	assert_false(w->ept_stop);
	assert_int_equal(w->pferr, pferr);
	assert_int_equal(w->cr2, cr2);
}

/* ------------------------------------------------------------------ */
/* Paging off                                                           */

static void test_paging_off(void **state)
{
	gmem *m = *state;
	mv_x86_paging p = { .cr0 = 1, .cr4 = CR4_SMEP | CR4_SMAP };
	mv_x86_walk w;

	assert_int_equal(walk(m, &p, 0x12345678, MV_X86_WRITE, 3, &w), 0);
	expect_ok(&w, 0x12345678, SZ_4K);
	assert_true(w.writable && w.user && !w.nx && w.dirty);
	assert_int_equal(m->reads + m->cases, 0);
	/* Any 64-bit value is accepted (a convenience: hardware has 32-bit linear addresses here). */
	assert_int_equal(walk(m, &p, 0xfedcba9876543210ull, MV_X86_FETCH, 0, &w), 0);
	expect_ok(&w, 0xfedcba9876543210ull, SZ_4K);
	/* SMEP / SMAP do nothing without paging. */
	assert_int_equal(mv_x86_rights_fault(&p, &w, MV_X86_FETCH, 0), 0);
	assert_int_equal(mv_x86_rights_fault(&p, &w, MV_X86_READ, 0), 0);
}

/* ------------------------------------------------------------------ */
/* 4-level paging                                                       */

static void test_4l_4k_read_write(void **state)
{
	gmem *m = *state;
	uint64_t root = alloc_table(m);
	uint64_t gva = 0x00007f1234567abcull;
	uint64_t pte = map64(m, root, 4, gva, 1, 0x89abc000, RW | US, RW | US);
	uint64_t pml4e = root + idx9(gva, 4) * 8;
	uint64_t pdpte = (get64(m, pml4e) & ~0xfffull) + idx9(gva, 3) * 8;
	uint64_t pde = (get64(m, pdpte) & ~0xfffull) + idx9(gva, 2) * 8;
	mv_x86_paging p = paging_4l(root | 0x18 /* PWT | PCD: not address bits */);
	mv_x86_walk w;

	assert_int_equal(pte, (get64(m, pde) & ~0xfffull) + idx9(gva, 1) * 8);
	/* A read: A set top-down in all four entries, no D. */
	assert_int_equal(walk(m, &p, gva, MV_X86_READ, 0, &w), 0);
	expect_ok(&w, 0x89abcabc, SZ_4K);
	assert_true(w.writable && w.user && !w.nx && !w.dirty);
	assert_int_equal(m->reads, 4);
	assert_int_equal(m->read_log[0], pml4e);
	assert_int_equal(m->read_log[1], pdpte);
	assert_int_equal(m->read_log[2], pde);
	assert_int_equal(m->read_log[3], pte);
	assert_int_equal(m->cases, 4);
	assert_int_equal(m->cas_log[0], pml4e);
	assert_int_equal(m->cas_log[3], pte);
	assert_int_equal(get64(m, pml4e) & 0xfff, P | RW | US | A);
	assert_int_equal(get64(m, pdpte) & 0xfff, P | RW | US | A);
	assert_int_equal(get64(m, pde) & 0xfff, P | RW | US | A);
	assert_int_equal(get64(m, pte), 0x89abc000 | P | RW | US | A);

	/* Again: everything already accessed, no compare-and-swap. */
	assert_int_equal(walk(m, &p, gva, MV_X86_READ, 3, &w), 0);
	expect_ok(&w, 0x89abcabc, SZ_4K);
	assert_int_equal(m->cases, 0);

	/* A write: only the PTE changes (D), one compare-and-swap. */
	assert_int_equal(walk(m, &p, gva, MV_X86_WRITE, 3, &w), 0);
	expect_ok(&w, 0x89abcabc, SZ_4K);
	assert_true(w.dirty);
	assert_int_equal(m->cases, 1);
	assert_int_equal(m->cas_log[0], pte);
	assert_int_equal(get64(m, pte), 0x89abc000 | P | RW | US | A | D);
	assert_int_equal(get64(m, pde) & 0xfff, P | RW | US | A);

	/* A fetch of a dirty page reports dirty, changes nothing. */
	assert_int_equal(walk(m, &p, gva, MV_X86_FETCH, 0, &w), 0);
	assert_true(w.dirty);
	assert_int_equal(m->cases, 0);
}

static void test_4l_write_sets_a_and_d_at_once(void **state)
{
	gmem *m = *state;
	uint64_t root = alloc_table(m);
	uint64_t gva = 0xffff800000201000ull;
	uint64_t pte = map64(m, root, 4, gva, 1, 0x5000, RW, RW);
	mv_x86_paging p = paging_4l(root);
	mv_x86_walk w;

	assert_int_equal(walk(m, &p, gva + 8, MV_X86_WRITE, 0, &w), 0);
	expect_ok(&w, 0x5008, SZ_4K);
	assert_true(w.writable && !w.user && w.dirty);
	assert_int_equal(m->cases, 4);           /* one per entry: A and D together in the PTE */
	assert_int_equal(get64(m, pte), 0x5000 | P | RW | A | D);
}

static void test_4l_large_pages(void **state)
{
	gmem *m = *state;
	uint64_t root = alloc_table(m);
	uint64_t g2m = 0x40000000ull + 3 * SZ_2M, g1g = 0x0000004000000000ull;
	/* PAT (bit 12) set in both: not an address bit of a large page. */
	uint64_t pde = map64(m, root, 4, g2m, 2, 0x7fe00000ull, RW | US | (1ull << 12), RW | US);
	uint64_t pdpte = map64(m, root, 4, g1g, 3, 0x3c0000000ull, US | (1ull << 12), RW | US);
	mv_x86_paging p = paging_4l(root);
	mv_x86_walk w;

	assert_int_equal(walk(m, &p, g2m + 0x1abcde, MV_X86_WRITE, 3, &w), 0);
	expect_ok(&w, 0x7fe00000ull + 0x1abcde, SZ_2M);
	assert_int_equal(m->reads, 3);
	assert_int_equal(get64(m, pde), 0x7fe00000ull | (1ull << 12) | P | RW | US | PS | A | D);

	assert_int_equal(walk(m, &p, g1g + 0x2345678a, MV_X86_READ, 3, &w), 0);
	expect_ok(&w, 0x3c0000000ull + 0x2345678a, SZ_1G);
	assert_false(w.writable);
	assert_int_equal(m->reads, 2);
	assert_int_equal(get64(m, pdpte), 0x3c0000000ull | (1ull << 12) | P | US | PS | A);
}

static void test_4l_not_present_each_level(void **state)
{
	gmem *m = *state;
	uint64_t root = alloc_table(m);
	uint64_t gva = 0x0000123456789000ull;
	uint64_t pte = map64(m, root, 4, gva, 1, 0x7000, RW | US, RW | US);
	mv_x86_paging p = paging_4l(root);
	uint64_t e[4];
	mv_x86_walk w;

	/* The entries, PML4E first. */
	e[0] = root + idx9(gva, 4) * 8;
	for (int i = 1; i < 4; i++)
		e[i] = (get64(m, e[i - 1]) & ~0xfffull) + idx9(gva, 4 - i) * 8;
	assert_int_equal(e[3], pte);
	for (int i = 0; i < 4; i++) {
		uint64_t saved = get64(m, e[i]);

		put64(m, e[i], saved & ~P);
		assert_int_equal(walk(m, &p, gva | 0x123, MV_X86_WRITE, 3, &w), 0);
		expect_pf(&w, PF_W | PF_U, gva | 0x123);
		assert_int_equal(m->reads, (unsigned)i + 1);
		assert_int_equal(m->cases, 0);
		assert_int_equal(walk(m, &p, gva, MV_X86_READ, 0, &w), 0);
		expect_pf(&w, 0, gva);
		assert_int_equal(walk(m, &p, gva, MV_X86_FETCH, 0, &w), 0);
		expect_pf(&w, PF_ID, gva);       /* NXE = 1: I/D reported */
		put64(m, e[i], saved);
	}
	/* No flag was set by any of those faults. */
	for (int i = 0; i < 4; i++)
		assert_int_equal(get64(m, e[i]) & A, 0);
}

static void test_5l_4k_and_1g(void **state)
{
	gmem *m = *state;
	uint64_t root = alloc_table(m);
	uint64_t lo = 0x00abcdef12345000ull;      /* bits 63:56 = 0, PML5 index 0x0ab */
	uint64_t hi = 0xff12345640000000ull;      /* bits 63:56 = 1s, PML5 index 0x112 */
	uint64_t pte = map64(m, root, 5, lo, 1, 0xabc000, RW, RW | US);
	uint64_t pdpte = map64(m, root, 5, hi, 3, 0x1c0000000ull, RW | XD, RW);
	mv_x86_paging p = paging_5l(root);
	mv_x86_walk w;

	assert_int_equal(walk(m, &p, lo | 0x10, MV_X86_READ, 0, &w), 0);
	expect_ok(&w, 0xabc010, SZ_4K);
	assert_int_equal(m->reads, 5);
	assert_int_equal(m->read_log[0], root + 0x0ab * 8);
	assert_int_equal(get64(m, root + 0x0ab * 8) & 0xfff, P | RW | US | A);
	assert_int_equal(get64(m, pte), 0xabc000 | P | RW | A);

	assert_int_equal(walk(m, &p, hi + 0x3fffffff, MV_X86_WRITE, 0, &w), 0);
	expect_ok(&w, 0x1c0000000ull + 0x3fffffff, SZ_1G);
	assert_true(w.nx && !w.user);
	assert_int_equal(m->reads, 3);
	assert_int_equal(m->read_log[0], root + 0x112 * 8);
	assert_int_equal(get64(m, pdpte), 0x1c0000000ull | P | RW | PS | XD | A | D);

	/* 4-level over the same tables would be non-canonical there; 5-level is not. */
	assert_int_equal(walk(m, &p, 0x0000800000000000ull, MV_X86_READ, 0, &w), 0);
	expect_pf(&w, 0, 0x0000800000000000ull);
}

/* ------------------------------------------------------------------ */
/* Canonical addresses                                                  */

static void test_noncanonical_gp(void **state)
{
	gmem *m = *state;
	uint64_t root = alloc_table(m);
	mv_x86_paging p4 = paging_4l(root), p5 = paging_5l(root);
	static const uint64_t bad4[] = { 0x0000800000000000ull, 0xffff7fffffffffffull,
					 0x8000000000000000ull, 0x0001000000000000ull };
	static const uint64_t bad5[] = { 0x0100000000000000ull, 0xfeffffffffffffffull,
					 0x8000000000000000ull };
	mv_x86_walk w;

	for (unsigned i = 0; i < sizeof(bad4) / sizeof(bad4[0]); i++) {
		assert_int_equal(walk(m, &p4, bad4[i], MV_X86_READ, 0, &w), 0);
		assert_true(w.gp);
		assert_false(w.guest_pf || w.ept_stop);
		assert_int_equal(m->reads, 0);
	}
	for (unsigned i = 0; i < sizeof(bad5) / sizeof(bad5[0]); i++) {
		assert_int_equal(walk(m, &p5, bad5[i], MV_X86_WRITE, 3, &w), 0);
		assert_true(w.gp);
		assert_int_equal(m->reads, 0);
	}
	/* The edges of the canonical halves walk (and fault: nothing mapped). */
	assert_int_equal(walk(m, &p4, 0x00007fffffffffffull, MV_X86_READ, 0, &w), 0);
	expect_pf(&w, 0, 0x00007fffffffffffull);
	assert_int_equal(walk(m, &p4, 0xffff800000000000ull, MV_X86_READ, 0, &w), 0);
	expect_pf(&w, 0, 0xffff800000000000ull);
	assert_int_equal(walk(m, &p5, 0xff00000000000000ull, MV_X86_READ, 0, &w), 0);
	expect_pf(&w, 0, 0xff00000000000000ull);
	assert_int_equal(walk(m, &p5, 0x00ffffffffffffffull, MV_X86_READ, 0, &w), 0);
	expect_pf(&w, 0, 0x00ffffffffffffffull);
}

/* ------------------------------------------------------------------ */
/* Reserved bits (SDM 4.7 and the entry tables)                         */

/* With entry @e of the walk of @gva at @idx (0 = top) ORed with @bits: RSVD, or @ok_gpa. */
static void rsvd_case(gmem *m, const mv_x86_paging *p, uint64_t gva, uint64_t egpa, uint64_t bits,
		      bool reserved, uint64_t ok_gpa)
{
	uint64_t saved = get64(m, egpa);
	mv_x86_walk w;

	put64(m, egpa, saved | bits);
	assert_int_equal(walk(m, p, gva, MV_X86_WRITE, 3, &w), 0);
	if (reserved) {
		expect_pf(&w, PF_RSVD | PF_P | PF_W | PF_U, gva);
		assert_int_equal(m->cases, 0);
		assert_int_equal(walk(m, p, gva, MV_X86_FETCH, 0, &w), 0);
		expect_pf(&w, PF_RSVD | PF_P | ((p->efer & EFER_NXE) ? PF_ID : 0), gva);
	} else {
		expect_ok(&w, ok_gpa, w.page_size);
	}
	put64(m, egpa, saved);
}

/* Bit @bit of the table entry at @egpa is an address bit: the next read is at @next | that bit. */
static void table_bit_used(gmem *m, const mv_x86_paging *p, uint64_t gva, uint64_t egpa,
			   unsigned bit, uint64_t next)
{
	uint64_t saved = get64(m, egpa);
	mv_x86_walk w;

	put64(m, egpa, saved | 1ull << bit);
	assert_int_equal(walk(m, p, gva, MV_X86_READ, 0, &w), -EFAULT);   /* beyond our memory */
	assert_int_equal(m->read_log[m->reads - 1], next | 1ull << bit);
	put64(m, egpa, saved);
}

static void test_4l_reserved_bits(void **state)
{
	gmem *m = *state;
	uint64_t root = alloc_table(m);
	uint64_t g4k = 0x0000000012345000ull, g2m = 0x0000000080000000ull, g1g = 0x0000008000000000ull;
	mv_x86_paging p = paging_4l(root);
	uint64_t e[4], pde2m, pdpte1g;

	p.maxphyaddr = 40;
	map64(m, root, 4, g4k, 1, 0x6000, RW | US, RW | US);
	pde2m = map64(m, root, 4, g2m, 2, 0x200000, RW | US, RW | US);
	pdpte1g = map64(m, root, 4, g1g, 3, 0x40000000, RW | US, RW | US);
	entries64(m, root, 4, g4k, e);

	/* Address bits 51:M are reserved at every level, 62:52 are ignored. */
	for (int i = 0; i < 4; i++) {
		rsvd_case(m, &p, g4k, e[i], 1ull << 40, true, 0);
		rsvd_case(m, &p, g4k, e[i], 1ull << 51, true, 0);
		rsvd_case(m, &p, g4k, e[i], 0x7ffull << 52, false, 0x6000);
	}
	/* Bit 39 < M is an address bit of the page. */
	rsvd_case(m, &p, g4k, e[3], 1ull << 39, false, 0x8000006000ull);
	/* PS in a PML4E is reserved; bit 7 of a 4 KiB PTE is PAT. */
	rsvd_case(m, &p, g4k, e[0], PS, true, 0);
	rsvd_case(m, &p, g4k, e[3], PS, false, 0x6000);
	/* Large pages: 20:13 (2 MiB) and 29:13 (1 GiB) are reserved, 12 is PAT. */
	rsvd_case(m, &p, g2m, pde2m, 1ull << 13, true, 0);
	rsvd_case(m, &p, g2m, pde2m, 1ull << 20, true, 0);
	rsvd_case(m, &p, g2m, pde2m, 1ull << 12, false, 0x200000);
	rsvd_case(m, &p, g2m, pde2m, 1ull << 22, false, 0x600000);
	rsvd_case(m, &p, g1g, pdpte1g, 1ull << 13, true, 0);
	rsvd_case(m, &p, g1g, pdpte1g, 1ull << 29, true, 0);
	rsvd_case(m, &p, g1g, pdpte1g, 1ull << 12, false, 0x40000000);
	rsvd_case(m, &p, g1g, pdpte1g, 1ull << 31, false, 0xc0000000);

	/* MAXPHYADDR 52: no reserved address bits; bit 51 is an address bit. */
	p.maxphyaddr = 0;
	rsvd_case(m, &p, g4k, e[3], 1ull << 51, false, 0x0008000000006000ull);
	table_bit_used(m, &p, g4k, e[0], 51, e[1]);
	p.maxphyaddr = 52;
	table_bit_used(m, &p, g4k, e[1], 50, e[2]);
}

static void test_xd_reserved_without_nxe(void **state)
{
	gmem *m = *state;
	uint64_t root = alloc_table(m);
	uint64_t gva = 0x0000000000403000ull;
	mv_x86_paging p = paging_4l(root);
	uint64_t e[4];
	mv_x86_walk w;

	map64(m, root, 4, gva, 1, 0x9000, RW | US, RW | US);
	entries64(m, root, 4, gva, e);
	p.efer &= ~EFER_NXE;
	for (int i = 0; i < 4; i++)
		rsvd_case(m, &p, gva, e[i], XD, true, 0);
	/* With NXE, XD at any level forbids fetches only (I/D set). */
	p.efer |= EFER_NXE;
	for (int i = 0; i < 4; i++) {
		put64(m, e[i], get64(m, e[i]) | XD);
		assert_int_equal(walk(m, &p, gva, MV_X86_FETCH, 0, &w), 0);
		expect_pf(&w, PF_P | PF_ID, gva);
		assert_int_equal(walk(m, &p, gva, MV_X86_WRITE, 0, &w), 0);
		expect_ok(&w, 0x9000, SZ_4K);
		assert_true(w.nx);
		put64(m, e[i], get64(m, e[i]) & ~XD);
	}
}

static void test_5l_pml5e_ps_reserved(void **state)
{
	gmem *m = *state;
	uint64_t root = alloc_table(m);
	uint64_t gva = 0x0012000000000000ull;
	mv_x86_paging p = paging_5l(root);
	uint64_t e[5];

	map64(m, root, 5, gva, 1, 0x3000, RW | US, RW | US);
	entries64(m, root, 5, gva, e);
	rsvd_case(m, &p, gva, e[0], PS, true, 0);
	rsvd_case(m, &p, gva, e[1], PS, true, 0);
	table_bit_used(m, &p, gva, e[0], 51, e[1]);
	p.maxphyaddr = 46;
	rsvd_case(m, &p, gva, e[0], 1ull << 46, true, 0);
}

static void test_reserved_checked_in_order(void **state)
{
	gmem *m = *state;
	uint64_t root = alloc_table(m);
	uint64_t gva = 0x0000000000801000ull;
	mv_x86_paging p = paging_4l(root);
	uint64_t e[4];
	mv_x86_walk w;

	p.maxphyaddr = 44;
	map64(m, root, 4, gva, 1, 0x3000, RW | US, RW | US);
	entries64(m, root, 4, gva, e);
	/* A reserved bit in the PDE wins over a non-present PTE below it. */
	put64(m, e[2], get64(m, e[2]) | 1ull << 44);
	put64(m, e[3], get64(m, e[3]) & ~P);
	assert_int_equal(walk(m, &p, gva, MV_X86_READ, 0, &w), 0);
	expect_pf(&w, PF_RSVD | PF_P, gva);
	assert_int_equal(m->reads, 3);
	/* Reserved bits of a non-present entry are not checked. */
	put64(m, e[2], (get64(m, e[2]) & ~P) | XD | PS | 1ull << 50);
	assert_int_equal(walk(m, &p, gva, MV_X86_READ, 3, &w), 0);
	expect_pf(&w, PF_U, gva);
	/* Nothing was marked accessed. */
	for (int i = 0; i < 4; i++)
		assert_int_equal(get64(m, e[i]) & A, 0);
}

/* ------------------------------------------------------------------ */
/* Access rights (SDM 4.6) and the error code (4.7)                     */

typedef struct rights_row {
	uint64_t leaf;        /* RW / US / XD of the final entry (tables allow everything) */
	uint64_t cr0, cr4, efer;
	unsigned cpl;
	mv_x86_acc acc;
	uint64_t pferr;       /* 0: allowed */
} rights_row;

#define WP CR0_WP
#define SMEP CR4_SMEP
#define SMAP CR4_SMAP
#define NXE EFER_NXE

static const rights_row rights_rows[] = {
	/* supervisor reads */
	{ 0, WP, 0, NXE, 0, MV_X86_READ, 0 },
	{ US, WP, 0, NXE, 0, MV_X86_READ, 0 },
	{ US, WP, SMAP, NXE, 0, MV_X86_READ, PF_P },
	{ US | RW, 0, SMAP | SMEP, 0, 2, MV_X86_READ, PF_P },       /* CPL 1-2 are supervisor */
	{ 0, WP, SMAP | SMEP, NXE, 1, MV_X86_READ, 0 },
	/* supervisor writes */
	{ 0, WP, 0, NXE, 0, MV_X86_WRITE, PF_P | PF_W },
	{ 0, 0, 0, NXE, 0, MV_X86_WRITE, 0 },                      /* WP = 0: read-only is writable */
	{ RW, WP, SMAP, NXE, 0, MV_X86_WRITE, 0 },
	{ US, 0, 0, NXE, 0, MV_X86_WRITE, 0 },
	{ US, WP, 0, NXE, 0, MV_X86_WRITE, PF_P | PF_W },
	{ US | RW, WP, 0, NXE, 0, MV_X86_WRITE, 0 },
	{ US | RW, WP, SMAP, NXE, 0, MV_X86_WRITE, PF_P | PF_W },
	{ US, 0, SMAP, NXE, 0, MV_X86_WRITE, PF_P | PF_W },         /* SMAP even with WP = 0 */
	{ 0, WP, SMAP, NXE, 0, MV_X86_WRITE, PF_P | PF_W },
	/* supervisor fetches */
	{ 0, WP, 0, NXE, 0, MV_X86_FETCH, 0 },
	{ XD, WP, 0, NXE, 0, MV_X86_FETCH, PF_P | PF_ID },
	{ US, WP, 0, NXE, 0, MV_X86_FETCH, 0 },
	{ US, WP, SMAP, NXE, 0, MV_X86_FETCH, 0 },                  /* SMAP is about data */
	{ US, WP, SMEP, NXE, 0, MV_X86_FETCH, PF_P | PF_ID },
	{ US, WP, SMEP, 0, 0, MV_X86_FETCH, PF_P | PF_ID },         /* I/D from SMEP alone */
	{ 0, WP, SMEP, 0, 0, MV_X86_FETCH, 0 },
	{ RW, 0, 0, 0, 0, MV_X86_FETCH, 0 },
	/* user reads */
	{ 0, WP, 0, NXE, 3, MV_X86_READ, PF_P | PF_U },
	{ RW | XD, 0, 0, NXE, 3, MV_X86_READ, PF_P | PF_U },
	{ US, WP, SMAP, NXE, 3, MV_X86_READ, 0 },                   /* SMAP does not apply at CPL 3 */
	{ US | XD, WP, SMEP | SMAP, NXE, 3, MV_X86_READ, 0 },
	/* user writes */
	{ US, 0, 0, NXE, 3, MV_X86_WRITE, PF_P | PF_W | PF_U },     /* WP does not matter at CPL 3 */
	{ US, WP, 0, NXE, 3, MV_X86_WRITE, PF_P | PF_W | PF_U },
	{ RW, 0, 0, NXE, 3, MV_X86_WRITE, PF_P | PF_W | PF_U },
	{ US | RW, WP, SMAP, NXE, 3, MV_X86_WRITE, 0 },
	/* user fetches */
	{ US, WP, SMEP, NXE, 3, MV_X86_FETCH, 0 },
	{ US | XD, WP, 0, NXE, 3, MV_X86_FETCH, PF_P | PF_U | PF_ID },
	{ 0, WP, 0, NXE, 3, MV_X86_FETCH, PF_P | PF_U | PF_ID },
	{ 0, WP, 0, 0, 3, MV_X86_FETCH, PF_P | PF_U },              /* no NXE, no SMEP: no I/D */
	{ 0, WP, SMEP, 0, 3, MV_X86_FETCH, PF_P | PF_U | PF_ID },
	{ US | RW, 0, SMAP, 0, 3, MV_X86_FETCH, 0 },
};

static void test_rights_matrix(void **state)
{
	gmem *m = *state;
	uint64_t root = alloc_table(m);
	uint64_t gva = 0x00007000deadb000ull;
	uint64_t pte = map64(m, root, 4, gva, 1, 0x4000, 0, RW | US);

	for (unsigned i = 0; i < sizeof(rights_rows) / sizeof(rights_rows[0]); i++) {
		const rights_row *r = &rights_rows[i];
		mv_x86_paging p = paging_4l(root);
		mv_x86_walk w;

		p.cr0 = CR0_PG | 1 | r->cr0;
		p.cr4 |= r->cr4;
		p.efer = EFER_LME | EFER_LMA | r->efer;
		put64(m, pte, 0x4000 | P | r->leaf);
		assert_int_equal(walk(m, &p, gva | 0x44, r->acc, r->cpl, &w), 0);
		if (r->pferr) {
			if (!w.guest_pf || w.pferr != r->pferr)
				fail_msg("row %u: want #PF %#llx, got pf=%d %#llx", i,
					 (unsigned long long)r->pferr, w.guest_pf,
					 (unsigned long long)w.pferr);
			assert_int_equal(get64(m, pte) & (A | D), 0);
		} else {
			if (w.guest_pf)
				fail_msg("row %u: want success, got #PF %#llx", i,
					 (unsigned long long)w.pferr);
			expect_ok(&w, 0x4044, SZ_4K);
			assert_int_equal(get64(m, pte) & (A | D),
					 A | (r->acc == MV_X86_WRITE ? D : 0));
			/* A cached translation answers the same. */
			assert_int_equal(mv_x86_rights_fault(&p, &w, r->acc, r->cpl), 0);
		}
	}
}

static void test_rights_combine_levels(void **state)
{
	gmem *m = *state;
	uint64_t root = alloc_table(m);
	uint64_t gva = 0x0000000040201000ull;
	mv_x86_paging p = paging_4l(root);
	uint64_t e[4];
	mv_x86_walk w;

	map64(m, root, 4, gva, 1, 0x4000, RW | US, RW | US);
	entries64(m, root, 4, gva, e);
	/* U/S = 0 in the PDPTE only: a supervisor-mode address. */
	put64(m, e[1], get64(m, e[1]) & ~US);
	assert_int_equal(walk(m, &p, gva, MV_X86_READ, 3, &w), 0);
	expect_pf(&w, PF_P | PF_U, gva);
	assert_int_equal(walk(m, &p, gva, MV_X86_WRITE, 0, &w), 0);
	expect_ok(&w, 0x4000, SZ_4K);
	assert_true(w.writable && !w.user && !w.nx);
	put64(m, e[1], get64(m, e[1]) | US);
	/* R/W = 0 in the PML4E only: read-only for CPL 3 and, with WP, for CPL 0. */
	put64(m, e[0], get64(m, e[0]) & ~RW);
	assert_int_equal(walk(m, &p, gva, MV_X86_WRITE, 3, &w), 0);
	expect_pf(&w, PF_P | PF_W | PF_U, gva);
	assert_int_equal(walk(m, &p, gva, MV_X86_WRITE, 0, &w), 0);
	expect_pf(&w, PF_P | PF_W, gva);
	assert_int_equal(walk(m, &p, gva, MV_X86_READ, 3, &w), 0);
	expect_ok(&w, 0x4000, SZ_4K);
	assert_true(!w.writable && w.user);
	/* The same translation, cached, is checked again for another access. */
	assert_int_equal(mv_x86_rights_fault(&p, &w, MV_X86_WRITE, 3), PF_P | PF_W | PF_U);
	p.cr0 &= ~CR0_WP;
	assert_int_equal(mv_x86_rights_fault(&p, &w, MV_X86_WRITE, 0), 0);
	p.cr4 |= CR4_SMAP;
	assert_int_equal(mv_x86_rights_fault(&p, &w, MV_X86_READ, 0), PF_P);
	p.cr4 |= CR4_SMEP;
	assert_int_equal(mv_x86_rights_fault(&p, &w, MV_X86_FETCH, 1), PF_P | PF_ID);
}

/* ------------------------------------------------------------------ */
/* 32-bit paging                                                        */

static void test_32bit_4k(void **state)
{
	gmem *m = *state;
	uint64_t pd = alloc_table(m);
	uint64_t gva = 0xc0803abcull;          /* PDE 0x302 (even), PTE 0x003 (odd: upper half) */
	uint64_t pte = map32(m, pd, gva, 1, 0x12345000u | (uint32_t)(RW | US | PS), (uint32_t)(RW | US));
	uint64_t pde = pd + 0x302 * 4;
	mv_x86_paging p = paging_32(pd | 0x18, 0);
	mv_x86_walk w;

	/* Neighbours sharing the aligned 8 bytes must survive the A/D updates. */
	put32(m, pde + 4, 0xdead0001u);
	put32(m, pte - 4, 0xbeef0001u);
	assert_int_equal(pte & 7, 4);
	assert_int_equal(walk(m, &p, gva, MV_X86_WRITE, 3, &w), 0);
	expect_ok(&w, 0x12345abc, SZ_4K);    /* bit 7 of a PTE is PAT */
	assert_true(w.writable && w.user && !w.nx && w.dirty);
	assert_int_equal(m->reads, 2);
	assert_int_equal(m->read_log[0], pde);   /* 8-aligned already */
	assert_int_equal(m->read_log[1], pte - 4);
	assert_int_equal(m->cases, 2);
	assert_int_equal(m->cas_log[1], pte - 4);
	assert_int_equal(get32(m, pde) & 0xfff, P | RW | US | A);
	assert_int_equal(get32(m, pte), 0x12345000u | P | RW | US | PS | A | D);
	assert_int_equal(get32(m, pde + 4), 0xdead0001u);
	assert_int_equal(get32(m, pte - 4), 0xbeef0001u);
	/* The last PDE (index 1023, the top 4 bytes of the page). */
	map32(m, pd, 0xffc00000ull, 1, 0x5000u, (uint32_t)RW);
	assert_int_equal(walk(m, &p, 0xfffff123ull, MV_X86_READ, 0, &w), 0);
	assert_true(w.guest_pf);                 /* PTE 0x3ff not mapped */
	assert_int_equal(m->read_log[0], pd + 0xff8);
	/* Linear addresses are 32 bits. */
	assert_int_equal(walk(m, &p, 0x100000000ull, MV_X86_READ, 0, &w), -EINVAL);
}

static void test_32bit_4m_pse(void **state)
{
	gmem *m = *state;
	uint64_t pd = alloc_table(m);
	uint64_t gva = 0x80123456ull;          /* PDE 0x200 */
	/* Bits 31:22 = 0x40000000 and, PSE-36, 20:13 = 0x0f -> address bits 39:32. */
	uint64_t pde = map32(m, pd, gva, 2, 0x40000000u | 0x0fu << 13 | (uint32_t)RW, 0);
	mv_x86_paging p = paging_32(pd, CR4_PSE);
	mv_x86_walk w;

	assert_int_equal(walk(m, &p, gva, MV_X86_WRITE, 0, &w), 0);
	expect_ok(&w, 0xf40123456ull, SZ_4M);
	assert_int_equal(m->reads, 1);
	assert_int_equal(get32(m, pde), 0x40000000u | 0x0fu << 13 | P | RW | PS | A | D);
	/* Bit 21 is reserved; with MAXPHYADDR 36, bits 20:17 too. */
	put32(m, pde, get32(m, pde) | 1u << 21);
	assert_int_equal(walk(m, &p, gva, MV_X86_READ, 0, &w), 0);
	expect_pf(&w, PF_RSVD | PF_P, gva);
	put32(m, pde, 0x40000000u | 0x8u << 13 | (uint32_t)(P | RW | PS));
	p.maxphyaddr = 36;
	assert_int_equal(walk(m, &p, gva, MV_X86_READ, 0, &w), 0);
	expect_ok(&w, 0x840123456ull, SZ_4M);
	put32(m, pde, 0x40000000u | 0x10u << 13 | (uint32_t)(P | RW | PS));
	assert_int_equal(walk(m, &p, gva, MV_X86_READ, 3, &w), 0);
	expect_pf(&w, PF_RSVD | PF_P | PF_U, gva);
	/* MAXPHYADDR 52 is capped at 40 for 4 MiB pages: 20:13 are all address bits. */
	p.maxphyaddr = 0;
	put32(m, pde, 0x40000000u | 0xffu << 13 | (uint32_t)(P | RW | PS));
	assert_int_equal(walk(m, &p, gva, MV_X86_READ, 0, &w), 0);
	expect_ok(&w, 0xff40123456ull, SZ_4M);
}

static void test_32bit_ps_ignored_without_pse(void **state)
{
	gmem *m = *state;
	uint64_t pd = alloc_table(m);
	uint64_t gva = 0x00401000ull;
	uint64_t pte = map32(m, pd, gva, 1, 0x7000u, (uint32_t)(RW | PS | 0xf00));
	uint32_t pde;
	mv_x86_paging p = paging_32(pd, 0);
	mv_x86_walk w;

	/* CR4.PSE = 0: PS (and 11:8) of the PDE are ignored; the PDE points to a table. */
	assert_int_equal(walk(m, &p, gva, MV_X86_READ, 0, &w), 0);
	expect_ok(&w, 0x7000, SZ_4K);
	assert_int_equal(m->reads, 2);
	assert_int_equal(get32(m, pte), 0x7000u | P | A);
	/* With CR4.PSE the same PDE maps 4 MiB: 31:22, and 20:13 as bits 39:32. */
	p.cr4 = CR4_PSE;
	pde = get32(m, pd + idx10(gva, 2) * 4);
	assert_int_equal(walk(m, &p, gva, MV_X86_READ, 0, &w), 0);
	expect_ok(&w, (pde & 0xffc00000u) | (uint64_t)((pde >> 13) & 0xff) << 32 | (gva & (SZ_4M - 1)),
		  SZ_4M);
	assert_int_equal(m->reads, 1);
	/* ... where bit 21 is reserved. */
	put32(m, pd + idx10(gva, 2) * 4, pde | 1u << 21);
	assert_int_equal(walk(m, &p, gva, MV_X86_READ, 0, &w), 0);
	expect_pf(&w, PF_RSVD | PF_P, gva);
}

static void test_32bit_fetch_error_code(void **state)
{
	gmem *m = *state;
	uint64_t pd = alloc_table(m);
	uint64_t gva = 0x00402000ull;
	mv_x86_paging p = paging_32(pd, 0);
	mv_x86_walk w;

	map32(m, pd, gva, 1, 0x7000u | (uint32_t)RW, (uint32_t)(RW | US));
	/* EFER.NXE means nothing to 32-bit paging: no XD, and no I/D without SMEP. */
	p.efer = EFER_NXE;
	assert_int_equal(walk(m, &p, gva, MV_X86_FETCH, 3, &w), 0);
	expect_pf(&w, PF_P | PF_U, gva);
	assert_int_equal(walk(m, &p, 0x00c00000ull, MV_X86_FETCH, 0, &w), 0);
	expect_pf(&w, 0, 0x00c00000ull);
	p.cr4 = CR4_SMEP;
	assert_int_equal(walk(m, &p, gva, MV_X86_FETCH, 3, &w), 0);
	expect_pf(&w, PF_P | PF_U | PF_ID, gva);
	assert_int_equal(walk(m, &p, gva, MV_X86_FETCH, 0, &w), 0);
	expect_ok(&w, 0x7000, SZ_4K);
	assert_false(w.nx);
	/* SMEP and SMAP apply in 32-bit paging. */
	map32(m, pd, gva, 1, 0x7000u | (uint32_t)(RW | US), (uint32_t)(RW | US));
	assert_int_equal(walk(m, &p, gva, MV_X86_FETCH, 0, &w), 0);
	expect_pf(&w, PF_P | PF_ID, gva);
	p.cr4 = CR4_SMAP;
	assert_int_equal(walk(m, &p, gva, MV_X86_WRITE, 0, &w), 0);
	expect_pf(&w, PF_P | PF_W, gva);
}

/* ------------------------------------------------------------------ */
/* PAE paging                                                           */

static void test_pae_4k_and_2m(void **state)
{
	gmem *m = *state;
	mv_x86_paging p = paging_pae();
	uint64_t g4k = 0xbfe01234ull, g2m = 0x40200000ull;
	uint64_t pte = map_pae(m, &p, g4k, 1, 0x123456000ull, RW | US, RW | US);
	uint64_t pde2m = map_pae(m, &p, g2m, 2, 0x7fe00000ull, US | XD | (1ull << 12), RW | US);
	uint64_t pdpte = p.pdptr[2];
	mv_x86_walk w;

	p.cr3 = 0xdead0000;                     /* never read by a walk */
	assert_int_equal(walk(m, &p, g4k, MV_X86_WRITE, 3, &w), 0);
	expect_ok(&w, 0x123456234ull, SZ_4K);
	assert_int_equal(m->reads, 2);           /* PDE and PTE; the PDPTE is a register */
	assert_int_equal(m->read_log[0], (pdpte & ~0xfffull) + idx9(g4k, 2) * 8);
	assert_int_equal(get64(m, pte), 0x123456000ull | P | RW | US | A | D);
	assert_int_equal(p.pdptr[2], pdpte);
	assert_int_equal(m->cases, 2);

	assert_int_equal(walk(m, &p, g2m + 0x1ffff, MV_X86_READ, 3, &w), 0);
	expect_ok(&w, 0x7fe1ffffull, SZ_2M);
	assert_true(w.nx && w.user && !w.writable);
	assert_int_equal(get64(m, pde2m), 0x7fe00000ull | (1ull << 12) | P | US | XD | PS | A);
	assert_int_equal(walk(m, &p, g2m, MV_X86_FETCH, 3, &w), 0);
	expect_pf(&w, PF_P | PF_U | PF_ID, g2m);
	assert_int_equal(walk(m, &p, 0x100000000ull, MV_X86_READ, 0, &w), -EINVAL);
}

static void test_pae_pdpte_registers(void **state)
{
	gmem *m = *state;
	mv_x86_paging p = paging_pae();
	uint64_t gva = 0x00001000ull;
	mv_x86_walk w;

	/* Not present: a not-present #PF with no memory access. */
	assert_int_equal(walk(m, &p, gva, MV_X86_WRITE, 0, &w), 0);
	expect_pf(&w, PF_W, gva);
	assert_int_equal(m->reads, 0);
	/* Not present with junk in it: still just not present. */
	p.pdptr[0] = ~P;
	assert_int_equal(walk(m, &p, gva, MV_X86_READ, 0, &w), 0);
	expect_pf(&w, 0, gva);
	/* Present with a reserved bit: the processor never holds that. */
	p.pdptr[0] = 0;
	map_pae(m, &p, gva, 1, 0x5000, RW, RW);
	static const uint64_t bad[] = { 1ull << 1, 1ull << 2, 1ull << 5, 1ull << 8, 1ull << 63,
					1ull << 52, 1ull << 62 };
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		p.pdptr[0] ^= bad[i];
		assert_int_equal(walk(m, &p, gva, MV_X86_READ, 0, &w), -EINVAL);
		p.pdptr[0] ^= bad[i];
	}
	/* PWT / PCD (3, 4) and the ignored 11:9 are fine. */
	p.pdptr[0] |= 0x18 | 0xe00;
	assert_int_equal(walk(m, &p, gva, MV_X86_READ, 0, &w), 0);
	expect_ok(&w, 0x5000, SZ_4K);
	assert_int_equal(p.pdptr[0] & A, 0);
	p.maxphyaddr = 36;
	p.pdptr[0] |= 1ull << 36;
	assert_int_equal(walk(m, &p, gva, MV_X86_READ, 0, &w), -EINVAL);
}

static void test_pae_reserved_bits(void **state)
{
	gmem *m = *state;
	mv_x86_paging p = paging_pae();
	uint64_t gva = 0x7fc05000ull, g2m = 0x7fe00000ull;
	uint64_t pte = map_pae(m, &p, gva, 1, 0x5000, RW | US, RW | US);
	uint64_t pde = (p.pdptr[1] & ~0xfffull) + idx9(gva, 2) * 8;
	uint64_t pde2m = map_pae(m, &p, g2m, 2, 0x400000, RW | US, RW | US);

	/* PAE reserves 62:M, also with M = 52 (no ignored high bits as in 4-level). */
	rsvd_case(m, &p, gva, pte, 1ull << 52, true, 0);
	rsvd_case(m, &p, gva, pte, 1ull << 62, true, 0);
	rsvd_case(m, &p, gva, pde, 1ull << 58, true, 0);
	rsvd_case(m, &p, gva, pte, 1ull << 51, false, 0x0008000000005000ull);
	rsvd_case(m, &p, gva, pte, PS, false, 0x5000);
	rsvd_case(m, &p, g2m, pde2m, 1ull << 13, true, 0);
	rsvd_case(m, &p, g2m, pde2m, 1ull << 20, true, 0);
	rsvd_case(m, &p, g2m, pde2m, 1ull << 12, false, 0x400000);
	p.maxphyaddr = 36;
	rsvd_case(m, &p, gva, pte, 1ull << 36, true, 0);
	rsvd_case(m, &p, gva, pte, 1ull << 35, false, 0x800005000ull);
	p.efer = 0;
	rsvd_case(m, &p, gva, pde, XD, true, 0);
	rsvd_case(m, &p, gva, pte, XD, true, 0);
}

static void test_load_pdptrs(void **state)
{
	gmem *m = *state;
	mv_x86_paging p = paging_pae();
	uint64_t pdpt = 0x20060;                 /* 32-byte aligned, inside a page */
	uint64_t want[4] = { 0x31000 | P, 0, 0xfff000ull | 0x18 | P, ~P };
	mv_x86_walk w;

	for (int i = 0; i < 4; i++)
		put64(m, pdpt + (uint64_t)i * 8, want[i]);
	p.cr3 = 0xffffffff00000000ull | pdpt | 0x1f;   /* bits 4:0 and 63:32 are not the address */
	reset_log(m);
	assert_int_equal(mv_x86_load_pdptrs(&p, &ops, m, &w), 0);
	assert_false(w.gp || w.ept_stop || w.guest_pf);
	assert_memory_equal(p.pdptr, want, sizeof(want));
	assert_int_equal(m->reads, 4);
	assert_int_equal(m->read_log[0], pdpt);
	assert_int_equal(m->read_log[3], pdpt + 24);
	assert_int_equal(m->cases, 0);

	/* A present PDPTE with a reserved bit: #GP, nothing loaded. */
	put64(m, pdpt + 8, 0x40000 | P | 1ull << 5);
	memset(p.pdptr, 0, sizeof(p.pdptr));
	assert_int_equal(mv_x86_load_pdptrs(&p, &ops, m, &w), 0);
	assert_true(w.gp);
	assert_int_equal(p.pdptr[0], 0);
	put64(m, pdpt + 8, 0x40000 | P | 1ull << 40);
	p.maxphyaddr = 40;
	assert_int_equal(mv_x86_load_pdptrs(&p, &ops, m, &w), 0);
	assert_true(w.gp);
	p.maxphyaddr = 41;
	assert_int_equal(mv_x86_load_pdptrs(&p, &ops, m, &w), 0);
	assert_false(w.gp);
	assert_int_equal(p.pdptr[1], 0x40000 | P | 1ull << 40);

	/* A stopped read. */
	m->stop_read[m->nr_stop_read++] = 0x20000;
	assert_int_equal(mv_x86_load_pdptrs(&p, &ops, m, &w), 0);
	assert_true(w.ept_stop);
	assert_false(w.stop_write);
	assert_int_equal(w.stop_gpa, pdpt);
	assert_int_equal(w.stop_rc, STOP_RC);
	m->nr_stop_read = 0;
	m->read_err = -EIO;
	assert_int_equal(mv_x86_load_pdptrs(&p, &ops, m, &w), -EIO);
	m->read_err = 0;
	p.maxphyaddr = 53;
	assert_int_equal(mv_x86_load_pdptrs(&p, &ops, m, &w), -EINVAL);
}

/* ------------------------------------------------------------------ */
/* EPT stops, restarts, errors                                          */

static void test_ept_stop_on_table_read(void **state)
{
	gmem *m = *state;
	uint64_t root = alloc_table(m);
	uint64_t gva = 0x0000000080604000ull;
	mv_x86_paging p = paging_4l(root);
	uint64_t e[4];
	mv_x86_walk w;

	map64(m, root, 4, gva, 1, 0x4000, RW | US, RW | US);
	entries64(m, root, 4, gva, e);
	for (int i = 0; i < 4; i++) {
		m->stop_read[0] = e[i] & ~(SZ_4K - 1);
		m->nr_stop_read = 1;
		assert_int_equal(walk(m, &p, gva, MV_X86_WRITE, 3, &w), 0);
		assert_true(w.ept_stop);
		assert_false(w.guest_pf || w.gp || w.stop_write);
		assert_int_equal(w.stop_gpa, e[i]);
		assert_int_equal(w.stop_rc, STOP_RC);
		assert_int_equal(m->reads, (unsigned)i + 1);
		assert_int_equal(m->cases, 0);
	}
	for (int i = 0; i < 4; i++)
		assert_int_equal(get64(m, e[i]) & A, 0);
	/* 32-bit paging: the entry's own GPA, not the aligned one read. */
	m->nr_stop_read = 0;
	uint64_t pd = alloc_table(m), pte = map32(m, pd, 0x00403000, 1, 0x9000u, (uint32_t)RW);
	mv_x86_paging p32 = paging_32(pd, 0);

	m->stop_read[0] = pte & ~(SZ_4K - 1);
	m->nr_stop_read = 1;
	assert_int_equal(walk(m, &p32, 0x00403000, MV_X86_READ, 0, &w), 0);
	assert_true(w.ept_stop);
	assert_int_equal(w.stop_gpa, pte);
	assert_int_equal(pte & 7, 4);
}

static void test_ept_stop_on_ad_write(void **state)
{
	gmem *m = *state;
	uint64_t root = alloc_table(m);
	uint64_t gva = 0x0000000080604000ull;
	mv_x86_paging p = paging_4l(root);
	uint64_t e[4];
	mv_x86_walk w;

	map64(m, root, 4, gva, 1, 0x4000, RW | US, RW | US);
	entries64(m, root, 4, gva, e);
	m->stop_write[0] = e[2] & ~(SZ_4K - 1);  /* the PD's page */
	m->nr_stop_write = 1;
	assert_int_equal(walk(m, &p, gva, MV_X86_WRITE, 0, &w), 0);
	assert_true(w.ept_stop && w.stop_write);
	assert_false(w.guest_pf || w.gp);
	assert_int_equal(w.stop_gpa, e[2]);
	assert_int_equal(w.stop_rc, STOP_RC + 1);
	assert_int_equal(m->reads, 4);           /* the whole walk was read first */
	assert_int_equal(m->cases, 3);
	/* Top-down: the PML4E and PDPTE got A before the stop; PDE and PTE did not. */
	assert_int_equal(get64(m, e[0]) & (A | D), A);
	assert_int_equal(get64(m, e[1]) & (A | D), A);
	assert_int_equal(get64(m, e[2]) & (A | D), 0);
	assert_int_equal(get64(m, e[3]) & (A | D), 0);
	/* Once the page is writable the walk completes, touching only what is left. */
	m->nr_stop_write = 0;
	assert_int_equal(walk(m, &p, gva, MV_X86_WRITE, 0, &w), 0);
	expect_ok(&w, 0x4000, SZ_4K);
	assert_int_equal(m->cases, 2);
	assert_int_equal(get64(m, e[3]) & (A | D), A | D);
	/* A read needing no flag update is not stopped by a write stop. */
	m->nr_stop_write = 1;
	assert_int_equal(walk(m, &p, gva, MV_X86_READ, 0, &w), 0);
	expect_ok(&w, 0x4000, SZ_4K);
}

/* Racing writers, called before the compare. */
static void race_clear_present(gmem *m, uint64_t gpa)
{
	if (gpa == m->race_arg) {
		put64(m, gpa, get64(m, gpa) & ~P);
		m->race = NULL;
	}
}

static void race_set_accessed(gmem *m, uint64_t gpa)
{
	if (gpa == m->race_arg) {
		put64(m, gpa, get64(m, gpa) | A);
		m->race = NULL;
	}
}

static void test_restart_on_changed_entry(void **state)
{
	gmem *m = *state;
	uint64_t root = alloc_table(m);
	uint64_t gva = 0x0000000000a0b000ull;
	mv_x86_paging p = paging_4l(root);
	uint64_t e[4];
	mv_x86_walk w;

	map64(m, root, 4, gva, 1, 0x4000, RW | US, RW | US);
	entries64(m, root, 4, gva, e);
	/* Another CPU clears the PTE between our read and our A/D update: walk again, #PF. */
	m->race = race_clear_present;
	m->race_arg = e[3];
	assert_int_equal(walk(m, &p, gva, MV_X86_WRITE, 3, &w), 0);
	expect_pf(&w, PF_W | PF_U, gva);
	assert_int_equal(m->reads, 8);           /* two walks */
	assert_int_equal(m->cases, 4);           /* A in three entries, the PTE's swap failed */
	assert_int_equal(get64(m, e[2]) & A, A);
	assert_int_equal(get64(m, e[3]) & (A | D | P), 0);

	/* Another CPU sets A in the PDE first: walk again, only the PTE is left. */
	put64(m, e[3], get64(m, e[3]) | P);
	put64(m, e[2], get64(m, e[2]) & ~A);
	m->race = race_set_accessed;
	m->race_arg = e[2];
	assert_int_equal(walk(m, &p, gva, MV_X86_READ, 3, &w), 0);
	expect_ok(&w, 0x4000, SZ_4K);
	assert_int_equal(m->reads, 8);
	assert_int_equal(m->cases, 1 + 1);       /* the PDE's failed swap, then the PTE's */
	assert_int_equal(get64(m, e[3]) & (A | D), A);

	/* A swap that always loses: give up after MV_X86_WALK_MAX_RESTARTS restarts. */
	put64(m, e[3], get64(m, e[3]) & ~A);
	m->cas_err = -EAGAIN;
	assert_int_equal(walk(m, &p, gva, MV_X86_READ, 3, &w), -EAGAIN);
	assert_int_equal(m->cases, MV_X86_WALK_MAX_RESTARTS + 1);
	assert_int_equal(m->reads, 4 * (MV_X86_WALK_MAX_RESTARTS + 1));
}

static void test_errors_from_callbacks(void **state)
{
	gmem *m = *state;
	uint64_t root = alloc_table(m);
	uint64_t gva = 0x0000000000a0b000ull;
	mv_x86_paging p = paging_4l(root);
	mv_x86_walk w;

	map64(m, root, 4, gva, 1, 0x4000, RW | US, RW | US);
	m->read_err = -EIO;
	assert_int_equal(walk(m, &p, gva, MV_X86_READ, 0, &w), -EIO);
	assert_int_equal(m->reads, 1);
	m->read_err = 0;
	m->cas_err = -EFAULT;
	assert_int_equal(walk(m, &p, gva, MV_X86_READ, 0, &w), -EFAULT);
	assert_int_equal(m->cases, 1);
}

static void test_invalid_states(void **state)
{
	gmem *m = *state;
	uint64_t root = alloc_table(m);
	mv_x86_paging p = paging_4l(root);
	mv_x86_walk w;

	assert_int_equal(walk(m, &p, 0, MV_X86_READ, 4, &w), -EINVAL);
	assert_int_equal(walk(m, &p, 0, (mv_x86_acc)3, 0, &w), -EINVAL);
	p.maxphyaddr = 31;
	assert_int_equal(walk(m, &p, 0, MV_X86_READ, 0, &w), -EINVAL);
	p.maxphyaddr = 53;
	assert_int_equal(walk(m, &p, 0, MV_X86_READ, 0, &w), -EINVAL);
	p.maxphyaddr = 32;
	assert_int_equal(walk(m, &p, 0, MV_X86_READ, 0, &w), 0);
	assert_true(w.guest_pf);
	/* EFER.LMA without CR4.PAE, or without CR0.PG. */
	p.cr4 &= ~CR4_PAE;
	assert_int_equal(walk(m, &p, 0, MV_X86_READ, 0, &w), -EINVAL);
	p = paging_4l(root);
	p.cr0 &= ~CR0_PG;
	assert_int_equal(walk(m, &p, 0, MV_X86_READ, 0, &w), -EINVAL);
	/* EFER.LME alone (paging not yet on) is paging off. */
	p.efer = EFER_LME;
	assert_int_equal(walk(m, &p, 0x1234, MV_X86_READ, 0, &w), 0);
	expect_ok(&w, 0x1234, SZ_4K);
	assert_int_equal(m->reads, 0);
}

/* ------------------------------------------------------------------ */

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_paging_off, setup, teardown),
		cmocka_unit_test_setup_teardown(test_4l_4k_read_write, setup, teardown),
		cmocka_unit_test_setup_teardown(test_4l_write_sets_a_and_d_at_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_4l_large_pages, setup, teardown),
		cmocka_unit_test_setup_teardown(test_4l_not_present_each_level, setup, teardown),
		cmocka_unit_test_setup_teardown(test_5l_4k_and_1g, setup, teardown),
		cmocka_unit_test_setup_teardown(test_noncanonical_gp, setup, teardown),
		cmocka_unit_test_setup_teardown(test_4l_reserved_bits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_xd_reserved_without_nxe, setup, teardown),
		cmocka_unit_test_setup_teardown(test_5l_pml5e_ps_reserved, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reserved_checked_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rights_matrix, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rights_combine_levels, setup, teardown),
		cmocka_unit_test_setup_teardown(test_32bit_4k, setup, teardown),
		cmocka_unit_test_setup_teardown(test_32bit_4m_pse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_32bit_ps_ignored_without_pse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_32bit_fetch_error_code, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pae_4k_and_2m, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pae_pdpte_registers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pae_reserved_bits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_pdptrs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ept_stop_on_table_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ept_stop_on_ad_write, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restart_on_changed_entry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors_from_callbacks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_invalid_states, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
