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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_paging_off, setup, teardown),
		cmocka_unit_test_setup_teardown(test_4l_4k_read_write, setup, teardown),
		cmocka_unit_test_setup_teardown(test_4l_write_sets_a_and_d_at_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_4l_large_pages, setup, teardown),
		cmocka_unit_test_setup_teardown(test_4l_not_present_each_level, setup, teardown),
		cmocka_unit_test_setup_teardown(test_5l_4k_and_1g, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
