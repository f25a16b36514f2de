/*
 * x86 EPT paging structures (src/soft/x86/ept*.c): exact SPTE values
 * (leaves at every level, tables, MMIO SPTEs, the EPTP), the SDM's
 * misconfiguration list, install in shared and exclusive walks with every
 * EXISTS / AGAIN case, zap freeing tables, write-protect, split with
 * identical translations, young, the fast-path pointer, statistics, and
 * allocation failures injected at every allocation. Threads:
 * test_x86_ept_threads.c; random sequences: test_x86_ept_random.c.
 */
#include "testutil.h"

#include "ept_check.h"
#include "memvirt/soft_ept.h"

#include <errno.h>
#include <string.h>

#define KiB (1ull << 10)
#define MiB (1ull << 20)
#define GiB (1ull << 30)

/* Host-like output addresses (the output of an SPTE is an HVA in the software MMU). */
#define HPA0 0x7f1240000000ull      /* 1 GiB aligned */

/* ------------------------------------------------------------------ */
/* Fixture: an EPT over a pool, with an INVEPT recorder                  */

#define MAX_INVEPT 64

typedef struct invept_rec {
	uint64_t gpa, size;
	size_t live;              /* pool pages when the INVEPT ran */
} invept_rec;

typedef struct t_ept {
	tu_failing_alloc fa;
	mv_pgt_pool *pool;
	mv_ept ept;
	invept_rec inv[MAX_INVEPT];
	unsigned nr_inv;
} t_ept;

static void record_invept(void *arg, uint64_t gpa, uint64_t size)
{
	t_ept *t = arg;

	if (t->nr_inv < MAX_INVEPT)
		t->inv[t->nr_inv] = (invept_rec){ gpa, size, mv_pgt_pool_live_pages(t->pool) };
	t->nr_inv++;
}

static void t_init(t_ept *t, unsigned levels, bool ad)
{
	memset(t, 0, sizeof(*t));
	tu_failing_alloc_init(&t->fa, 0, false);
	assert_int_equal(mv_pgt_pool_new(&t->fa.alloc, &t->pool), 0);
	assert_int_equal(mv_ept_init(&t->ept, levels, ad, mv_pgt_pool_mm_ops(), t->pool,
				     record_invept, t), 0);
}

static void t_fini(t_ept *t)
{
	mv_ept_destroy(&t->ept);
	assert_int_equal(mv_pgt_pool_live_pages(t->pool), 0);
	mv_pgt_pool_free(t->pool);
}

static size_t live(const t_ept *t)
{
	return mv_pgt_pool_live_pages(t->pool);
}

static mv_pte leaf_at(t_ept *t, uint64_t gpa, int *level)
{
	mv_pte spte = ~0ull;

	assert_int_equal(mv_ept_get_leaf(&t->ept, gpa, &spte, level), MV_PGT_OK);
	return spte;
}

/* Table pages agree with the hand walk, and every page count is right. */
static void check_tables(const t_ept *t)
{
	mv_ept_stats st;

	mv_ept_get_stats((mv_ept *)&t->ept, &st);
	assert_int_equal(eptc_count_tables(&t->ept), st.tables);
	assert_int_equal(live(t), 1 + st.tables);
}

static mv_pgt_result install(t_ept *t, uint64_t gpa, int level, mv_pte spte, unsigned flags)
{
	return mv_ept_install(&t->ept, gpa, level, spte, flags, NULL);
}

#define RWX (MV_EPT_R | MV_EPT_W | MV_EPT_X)
#define RX (MV_EPT_R | MV_EPT_X)
#define SHARED MV_PGT_WALK_SHARED

/* ------------------------------------------------------------------ */
/* SPTE values                                                           */

static void test_leaf_values(void **state)
{
	(void)state;
	/* bit 11 MMU-present, WB << 3, IPAT, A, D, RWX, host + MMU writable (57, 58) */
	assert_int_equal(mv_ept_leaf(HPA0 + 0x5000, RWX, 3, true, true), 0x06007f1240005b77ull);
	/* read/execute: no W, no D, no MMU-writable; host-writable stays */
	assert_int_equal(mv_ept_leaf(HPA0 + 0x5000, RX, 3, true, true), 0x02007f1240005975ull);
	/* a read-only host page never gets W */
	assert_int_equal(mv_ept_leaf(HPA0 + 0x5000, RWX, 3, false, true), 0x00007f1240005975ull);
	/* A/D off: no A/D, KVM's A/D-disabled marker bit 52 */
	assert_int_equal(mv_ept_leaf(HPA0 + 0x5000, RWX, 3, true, false), 0x06107f1240005877ull);
	/* execute-only */
	assert_int_equal(mv_ept_leaf(HPA0 + 0x5000, MV_EPT_X, 3, false, true), 0x00007f1240005974ull);
	/* 2 MiB and 1 GiB: LARGE (bit 7) */
	assert_int_equal(mv_ept_leaf(HPA0 + 0x200000, RWX, 2, true, true), 0x06007f1240200bf7ull);
	assert_int_equal(mv_ept_leaf(HPA0, MV_EPT_R | MV_EPT_W, 1, true, true), 0x06007f1240000bf3ull);
	assert_int_equal(mv_ept_leaf(HPA0, MV_EPT_R, 1, true, false), 0x02107f12400008f1ull);
	/* bits above 51 of the address are dropped */
	assert_int_equal(mv_ept_leaf(0xfff0000000001000ull, MV_EPT_R, 3, false, true) & MV_EPT_ADDR_MASK,
			 0x1000);
	for (int level = 1; level <= 3; level++) {
		mv_pte l = mv_ept_leaf(HPA0, RWX, level, true, true);

		assert_false(l & MV_EPT_SVE);
		assert_int_equal((l & MV_EPT_MT_MASK) >> MV_EPT_MT_SHIFT, MV_EPT_MT_WB);
		assert_true(mv_ept_is_present(l));
		assert_false(mv_ept_is_mmio_spte(l));
		assert_false(mv_ept_is_misconfig(l, level));
		assert_false(mv_ept_is_misconfig(l | MV_EPT_SVE, level));
	}
}

static void test_eptp(void **state)
{
	static const struct { unsigned levels; bool ad; uint64_t low; } cases[] = {
		{ 4, false, 0x1e },   /* WB (6) | (4 - 1) << 3 */
		{ 4, true, 0x5e },    /* ... | A/D (bit 6) */
		{ 5, false, 0x26 },   /* WB | (5 - 1) << 3 */
		{ 5, true, 0x66 },
	};
	t_ept t;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		t_init(&t, cases[i].levels, cases[i].ad);
		assert_int_equal(t.ept.pgt.root_pa & 0xfff, 0);
		assert_int_equal(mv_ept_eptp(&t.ept), t.ept.pgt.root_pa | cases[i].low);
		assert_int_equal(t.ept.pgt.ia_bits, cases[i].levels == 4 ? 48 : 57);
		assert_int_equal(t.ept.pgt.start_level, cases[i].levels == 4 ? 0 : -1);
		assert_int_equal(live(&t), 1);
		t_fini(&t);
	}
	assert_int_equal(mv_ept_init(&t.ept, 3, true, mv_pgt_pool_mm_ops(), NULL, NULL, NULL), -EINVAL);
	assert_int_equal(mv_ept_init(&t.ept, 6, true, mv_pgt_pool_mm_ops(), NULL, NULL, NULL), -EINVAL);
}

static void test_mmio_spte(void **state)
{
	static const uint64_t gens[] = {
		0, 1, 0x7f, 0x80, 0xfe, 0xff, 0x100, 0x101, 0x1ff, 0x200, 0x3ffff, 0x40000,
		0x40001, 0x7fffe, 0x7ffff,
	};
	static const uint64_t gfns[] = {
		0, 1, 0xfff, 0x12345, 0x7fffffff, 0x80000000, 0xffffffffull, 1ull << 32,
		(1ull << 39) + 7, (1ull << 40) - 1,
	};

	(void)state;
	/* W|X, gen 7:0 in bits 10:3, gen 18:8 in bits 62:52, gfn in 51:12 */
	assert_int_equal(mv_ept_mmio_spte(0x12345, 0x1ff), 0x00100000123457feull);
	assert_int_equal(mv_ept_mmio_spte((1ull << 40) - 1, 0x7ffff), 0x7ffffffffffff7feull);
	assert_int_equal(mv_ept_mmio_spte(0, 0), MV_SPTE_MMIO_VALUE);
	/* only 19 generation bits and 40 gfn bits are kept */
	assert_int_equal(mv_ept_mmio_spte(1ull << 40, 1ull << 19), MV_SPTE_MMIO_VALUE);
	assert_int_equal(mv_ept_mmio_spte_gen(mv_ept_mmio_spte(5, 0x80000 | 0x1234)), 0x1234);
	for (size_t g = 0; g < sizeof(gens) / sizeof(gens[0]); g++) {
		for (size_t f = 0; f < sizeof(gfns) / sizeof(gfns[0]); f++) {
			mv_pte s = mv_ept_mmio_spte(gfns[f], gens[g]);

			assert_true(mv_ept_is_mmio_spte(s));
			assert_false(mv_ept_is_present(s));
			assert_true(mv_ept_is_misconfig(s, 3));
			assert_int_equal(mv_ept_mmio_spte_gen(s), gens[g]);
			assert_int_equal(mv_ept_mmio_spte_gfn(s), gfns[f]);
			assert_int_equal(s & MV_EPT_RWX, MV_EPT_W | MV_EPT_X);
			assert_false(s & (MV_SPTE_MMU_PRESENT | MV_EPT_SVE));
		}
	}
	assert_false(mv_ept_is_mmio_spte(0));
	assert_false(mv_ept_is_mmio_spte(MV_SPTE_FROZEN));
	assert_false(mv_ept_is_mmio_spte(mv_ept_leaf(HPA0, RWX, 3, true, true)));
	assert_false(mv_ept_is_present(MV_SPTE_FROZEN));
	assert_false(mv_ept_is_present(0));
}

static void test_misconfig(void **state)
{
	static const struct { mv_pte spte; int level; bool bad; } cases[] = {
		/* not present: bits 2:0 = 000b, whatever else (an EPT violation) */
		{ 0, 3, false }, { MV_SPTE_FROZEN, 3, false }, { 0xfffffffffffff8ull, 2, false },
		/* bits 2:0 */
		{ 0x32, 3, true },               /* 010b write-only */
		{ 0x36, 3, true },               /* 110b write/execute (MMIO) */
		{ 0x34, 3, false },              /* 100b execute-only: supported */
		{ 0x31, 3, false }, { 0x33, 3, false }, { 0x35, 3, false }, { 0x37, 3, false },
		{ 0x2, 0, true }, { 0x6, 1, true }, { 0x4, 0, false },
		/* leaf memory types: 2, 3, 7 reserved */
		{ 0x07, 3, false }, { 0x0f, 3, false }, { 0x17, 3, true }, { 0x1f, 3, true },
		{ 0x27, 3, false }, { 0x2f, 3, false }, { 0x37, 3, false }, { 0x3f, 3, true },
		{ 0x97, 2, true }, { 0xbf, 1, true }, { 0xb7, 2, false },
		/* PML5E / PML4E: bits 7:3 reserved (so LARGE), 8-11 and 52-63 not */
		{ 0x907, 0, false }, { 0x90f, 0, true }, { 0x917, 0, true }, { 0x927, 0, true },
		{ 0x947, 0, true }, { 0x987, 0, true }, { 0x987, -1, true }, { 0x90f, -1, true },
		{ 0xfff0000000000f07ull, 0, false }, { 0xfff0000000000f07ull, -1, false },
		/* PDPTE / PDE referencing a table: bits 6:3 reserved */
		{ 0x907, 1, false }, { 0x90f, 1, true }, { 0x947, 2, true }, { 0x937, 2, true },
		{ 0xfff0000000000f07ull, 2, false },
		/* 1 GiB page: bits 29:12 reserved; 2 MiB page: bits 20:12 */
		{ 0x7f12400000b7ull, 1, false }, { 0x7f12400010b7ull, 1, true },
		{ 0x7f12600000b7ull, 1, true }, { 0x7f12000000b7ull, 1, false },
		{ 0x7f12402000b7ull, 2, false }, { 0x7f12401000b7ull, 2, true },
		{ 0x7f12401ff0b7ull, 2, true },
		/* PTE: bit 7 ignored, 51:12 all address */
		{ 0x7f12400010b7ull, 3, false }, { 0x000ffffffffff037ull, 3, false },
		/* ignored and software bits in leaves: SVE, 62:52, 11, 10 */
		{ 0xfff0000000000e37ull, 3, false },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (mv_ept_is_misconfig(cases[i].spte, cases[i].level) != cases[i].bad)
			fail_msg("case %zu: spte %#llx level %d: want %d", i,
				 (unsigned long long)cases[i].spte, cases[i].level, cases[i].bad);
	}
}

/* ------------------------------------------------------------------ */
/* Install                                                               */

static void test_install_4k_exact(void **state)
{
	mv_pte l = mv_ept_leaf(HPA0 + 0x5000, RWX, 3, true, true);
	uint64_t gpa = 0x12345678000ull;
	mv_ept_stats st;
	unsigned created = 99;
	t_ept t;
	int level;

	(void)state;
	t_init(&t, 4, true);
	assert_int_equal(mv_ept_install(&t.ept, gpa, 3, l, 0, &created), MV_PGT_OK);
	assert_int_equal(created, 3);
	assert_int_equal(leaf_at(&t, gpa, &level), l);
	assert_int_equal(level, 3);
	assert_int_equal(leaf_at(&t, gpa + 0xfff, &level), l);
	assert_int_equal(leaf_at(&t, gpa + 0x1000, &level), 0);
	assert_int_equal(level, 3);
	assert_int_equal(leaf_at(&t, gpa + 2 * MiB, &level), 0);
	assert_int_equal(level, 2);
	/* the table entries: R|W|X, A, MMU-present, the next table's address */
	for (int lv = 0; lv < 3; lv++) {
		mv_pte e = eptc_entry(&t.ept, gpa, lv);

		assert_int_equal(e & ~EPTC_ADDR, 0x907);
		assert_int_equal(e & EPTC_ADDR, (uintptr_t)eptc_entry_ptr(&t.ept, gpa, lv + 1) & ~0xfffull);
		assert_false(mv_ept_is_misconfig(e, lv));
	}
	/* the hand walk agrees */
	eptc_xlate x = eptc_translate(&t.ept, gpa + 0x123);
	assert_true(x.present);
	assert_int_equal(x.hpa, HPA0 + 0x5123);
	assert_int_equal(x.rwx, 7);
	assert_int_equal(live(&t), 4);
	mv_ept_get_stats(&t.ept, &st);
	assert_int_equal(st.leaves[3], 1);
	assert_int_equal(st.leaves[2] + st.leaves[1] + st.leaves[0], 0);
	assert_int_equal(st.tables, 3);
	assert_int_equal(st.mmio_sptes, 0);
	assert_int_equal(st.invept, 0);
	/* the same value again: nothing changes */
	assert_int_equal(mv_ept_install(&t.ept, gpa, 3, l, SHARED, &created), MV_PGT_OK);
	assert_int_equal(created, 0);
	assert_int_equal(t.ept.nr_invept, 0);
	check_tables(&t);
	t_fini(&t);
}

static void test_install_no_ad_tables(void **state)
{
	t_ept t;

	(void)state;
	t_init(&t, 5, false);
	assert_int_equal(install(&t, 0x1ff000000000000ull, 3, mv_ept_leaf(HPA0, RWX, 3, true, false), 0),
			 MV_PGT_OK);
	/* 5 levels: PML5E, PML4E, PDPTE, PDE tables; A/D off: marker, no A */
	for (int lv = -1; lv < 3; lv++)
		assert_int_equal(eptc_entry(&t.ept, 0x1ff000000000000ull, lv) & ~EPTC_ADDR,
				 MV_SPTE_AD_DISABLED | 0x807);
	assert_int_equal(live(&t), 5);
	assert_int_equal(eptc_translate(&t.ept, 0x1ff000000000abcull).hpa, HPA0 + 0xabc);
	t_fini(&t);
}

static void test_install_huge(void **state)
{
	mv_pte l2 = mv_ept_leaf(HPA0 + 2 * MiB, RWX, 2, true, true);
	mv_pte l1 = mv_ept_leaf(HPA0, RX, 1, true, true);
	t_ept t;
	int level;

	(void)state;
	t_init(&t, 4, true);
	assert_int_equal(install(&t, 4 * GiB + 6 * MiB, 2, l2, SHARED), MV_PGT_OK);
	assert_int_equal(install(&t, 8 * GiB, 1, l1, SHARED), MV_PGT_OK);
	assert_int_equal(leaf_at(&t, 4 * GiB + 6 * MiB + 0x12345, &level), l2);
	assert_int_equal(level, 2);
	assert_int_equal(leaf_at(&t, 8 * GiB + 1000 * MiB, &level), l1);
	assert_int_equal(level, 1);
	assert_int_equal(eptc_translate(&t.ept, 8 * GiB + 0x3456789).hpa, HPA0 + 0x3456789);
	assert_int_equal(eptc_translate(&t.ept, 8 * GiB + 0x3456789).rwx, 5);
	assert_int_equal(eptc_translate(&t.ept, 4 * GiB + 7 * MiB).hpa, HPA0 + 3 * MiB);
	/* PML4 + PDPT (shared by both) + one PD */
	assert_int_equal(live(&t), 3);
	check_tables(&t);
	t_fini(&t);
}

static void test_install_range_errors(void **state)
{
	mv_pte l3 = mv_ept_leaf(HPA0, RWX, 3, true, true);
	mv_pte l2 = mv_ept_leaf(HPA0, RWX, 2, true, true);
	t_ept t;

	(void)state;
	t_init(&t, 4, true);
	assert_int_equal(install(&t, 0x1800, 3, l3, 0), MV_PGT_RANGE);      /* misaligned gpa */
	assert_int_equal(install(&t, 0x1000, 2, l2, 0), MV_PGT_RANGE);
	assert_int_equal(install(&t, 0, 0, l2, 0), MV_PGT_RANGE);           /* no 512 GiB pages */
	assert_int_equal(install(&t, 0, 4, l3, 0), MV_PGT_RANGE);
	assert_int_equal(install(&t, 0, 3, 0, 0), MV_PGT_RANGE);            /* not a leaf */
	assert_int_equal(install(&t, 0, 3, MV_SPTE_FROZEN, 0), MV_PGT_RANGE);
	assert_int_equal(install(&t, 0, 3, l2, 0), MV_PGT_RANGE);           /* LARGE at the PTE level */
	assert_int_equal(install(&t, 0, 2, l3, 0), MV_PGT_RANGE);           /* a table entry at a PDE */
	assert_int_equal(install(&t, 0, 2, mv_ept_leaf(HPA0 + 0x1000, RWX, 2, true, true), 0),
			 MV_PGT_RANGE);                                      /* output not 2 MiB aligned */
	assert_int_equal(install(&t, 1ull << 48, 3, l3, 0), MV_PGT_RANGE);  /* beyond 48 bits */
	assert_int_equal(live(&t), 1);
	/* MMIO SPTEs go anywhere a leaf can */
	assert_int_equal(install(&t, 0x1000, 3, mv_ept_mmio_spte(1, 3), 0), MV_PGT_OK);
	assert_int_equal(install(&t, 2 * MiB, 2, mv_ept_mmio_spte(0x200, 0xffff), 0), MV_PGT_OK);
	assert_int_equal(leaf_at(&t, 2 * MiB + 0x5000, NULL), mv_ept_mmio_spte(0x200, 0xffff));
	t_fini(&t);
}

static void test_install_shared_exists_again(void **state)
{
	mv_pte l2 = mv_ept_leaf(HPA0 + 2 * MiB, RWX, 2, true, true);
	mv_pte l3 = mv_ept_leaf(HPA0 + 0x7000, RWX, 3, true, true);
	mv_pte *p;
	t_ept t;

	(void)state;
	t_init(&t, 4, true);
	/* a huge page covers the 4 KiB target */
	assert_int_equal(install(&t, 2 * MiB, 2, l2, SHARED), MV_PGT_OK);
	assert_int_equal(install(&t, 2 * MiB + 0x3000, 3, l3, SHARED), MV_PGT_EXISTS);
	assert_int_equal(leaf_at(&t, 2 * MiB + 0x3000, NULL), l2);
	/* a table where a huge page goes */
	assert_int_equal(install(&t, 8 * MiB + 0x1000, 3, l3, SHARED), MV_PGT_OK);
	assert_int_equal(install(&t, 8 * MiB, 2, l2, SHARED), MV_PGT_EXISTS);
	assert_int_equal(install(&t, 0, 1, mv_ept_leaf(HPA0, RWX, 1, true, true), SHARED),
			 MV_PGT_EXISTS);
	/* another page at the target */
	assert_int_equal(install(&t, 8 * MiB + 0x1000, 3, mv_ept_leaf(HPA0, RWX, 3, true, true),
				 SHARED), MV_PGT_EXISTS);
	/* a present page replaced by an MMIO SPTE */
	assert_int_equal(install(&t, 8 * MiB + 0x1000, 3, mv_ept_mmio_spte(0x801, 1), SHARED),
			 MV_PGT_EXISTS);
	assert_int_equal(leaf_at(&t, 8 * MiB + 0x1000, NULL), l3);
	assert_int_equal(t.ept.nr_invept, 0);
	/* frozen entries, at the target and on the way down */
	p = eptc_entry_ptr(&t.ept, 8 * MiB + 0x2000, 3);
	*p = MV_SPTE_FROZEN;
	assert_int_equal(install(&t, 8 * MiB + 0x2000, 3, l3, SHARED), MV_PGT_AGAIN);
	assert_int_equal(install(&t, 8 * MiB + 0x2000, 3, l3, 0), MV_PGT_AGAIN);
	*p = 0;
	p = eptc_entry_ptr(&t.ept, 12 * MiB, 2);
	*p = MV_SPTE_FROZEN;
	assert_int_equal(install(&t, 12 * MiB + 0x1000, 3, l3, SHARED), MV_PGT_AGAIN);
	*p = 0;
	/* the frozen markers were written by hand: no count moved */
	check_tables(&t);
	t_fini(&t);
}

static void test_install_shared_rights(void **state)
{
	mv_pte rw = mv_ept_leaf(HPA0, RWX, 3, true, true);
	mv_pte ro = mv_ept_leaf(HPA0, RX, 3, true, true);
	t_ept t;

	(void)state;
	t_init(&t, 4, true);
	/* MMIO -> page, page gains W: no INVEPT; page loses W: one INVEPT of its 4 KiB */
	assert_int_equal(install(&t, 0x5000, 3, mv_ept_mmio_spte(5, 9), SHARED), MV_PGT_OK);
	assert_int_equal(install(&t, 0x5000, 3, ro, SHARED), MV_PGT_OK);
	assert_int_equal(install(&t, 0x5000, 3, rw, SHARED), MV_PGT_OK);
	assert_int_equal(t.nr_inv, 0);
	assert_int_equal(install(&t, 0x5000, 3, ro, SHARED), MV_PGT_OK);
	assert_int_equal(t.nr_inv, 1);
	assert_int_equal(t.inv[0].gpa, 0x5000);
	assert_int_equal(t.inv[0].size, 4 * KiB);
	assert_int_equal(leaf_at(&t, 0x5000, NULL), ro);
	/* a non-present entry (MMIO) above the target becomes a table */
	assert_int_equal(install(&t, 4 * MiB, 2, mv_ept_mmio_spte(0x400, 1), SHARED), MV_PGT_OK);
	assert_int_equal(install(&t, 4 * MiB + 0x1000, 3, rw, SHARED), MV_PGT_OK);
	assert_int_equal(leaf_at(&t, 4 * MiB + 0x1000, NULL), rw);
	assert_int_equal(leaf_at(&t, 4 * MiB, NULL), 0);
	check_tables(&t);
	t_fini(&t);
}

/* MV_EPT_INSTALL_ABSENT fills 0 and MMIO SPTEs, never a present leaf (KVM's prefetch). */
static void test_install_absent_only(void **state)
{
	mv_pte young = mv_ept_leaf(HPA0, RWX, 3, true, true);
	mv_pte prefetched = young & ~MV_EPT_A;
	t_ept t;

	(void)state;
	t_init(&t, 4, true);
	assert_int_equal(install(&t, 0x5000, 3, prefetched, SHARED | MV_EPT_INSTALL_ABSENT), MV_PGT_OK);
	assert_int_equal(leaf_at(&t, 0x5000, NULL), prefetched);
	assert_int_equal(install(&t, 0x6000, 3, mv_ept_mmio_spte(6, 3), SHARED), MV_PGT_OK);
	assert_int_equal(install(&t, 0x6000, 3, prefetched, SHARED | MV_EPT_INSTALL_ABSENT), MV_PGT_OK);
	assert_int_equal(leaf_at(&t, 0x6000, NULL), prefetched);
	/* a present leaf stays, A included: no change, no INVEPT */
	assert_int_equal(install(&t, 0x7000, 3, young, SHARED), MV_PGT_OK);
	assert_int_equal(install(&t, 0x7000, 3, prefetched, SHARED | MV_EPT_INSTALL_ABSENT),
			 MV_PGT_EXISTS);
	assert_int_equal(install(&t, 0x7000, 3, prefetched, MV_EPT_INSTALL_ABSENT), MV_PGT_EXISTS);
	assert_int_equal(leaf_at(&t, 0x7000, NULL), young);
	assert_int_equal(t.nr_inv, 0);
	check_tables(&t);
	t_fini(&t);
}

static void test_install_exclusive_replaces(void **state)
{
	mv_pte l3 = mv_ept_leaf(HPA0 + 0x7000, RWX, 3, true, true);
	mv_pte l2 = mv_ept_leaf(HPA0 + 2 * MiB, RWX, 2, true, true);
	unsigned created;
	t_ept t;
	int level;

	(void)state;
	t_init(&t, 4, true);
	/* a table at the target: replaced, the page table below freed after the INVEPT */
	assert_int_equal(install(&t, 8 * MiB + 0x1000, 3, l3, 0), MV_PGT_OK);
	assert_int_equal(live(&t), 4);
	assert_int_equal(install(&t, 8 * MiB, 2, l2, 0), MV_PGT_OK);
	assert_int_equal(leaf_at(&t, 8 * MiB + 0x1000, &level), l2);
	assert_int_equal(level, 2);
	assert_int_equal(live(&t), 3);
	assert_int_equal(t.nr_inv, 1);
	assert_int_equal(t.inv[0].gpa, 8 * MiB);
	assert_int_equal(t.inv[0].size, 2 * MiB);
	assert_int_equal(t.inv[0].live, 4);      /* the table still existed then */
	/* a huge page over the target: split, the other 511 pages stay */
	assert_int_equal(mv_ept_install(&t.ept, 8 * MiB + 0x3000, 3, l3, 0, &created), MV_PGT_OK);
	assert_int_equal(created, 1);
	assert_int_equal(leaf_at(&t, 8 * MiB + 0x3000, &level), l3);
	assert_int_equal(level, 3);
	for (uint64_t off = 0; off < 2 * MiB; off += 4 * KiB) {
		if (off == 0x3000)
			continue;
		eptc_xlate x = eptc_translate(&t.ept, 8 * MiB + off);
		assert_true(x.present);
		assert_int_equal(x.hpa, HPA0 + 2 * MiB + off);
		assert_int_equal(x.leaf, (l2 & ~MV_EPT_LARGE & ~EPTC_ADDR) | (HPA0 + 2 * MiB + off));
	}
	/* split (rights kept, no INVEPT for it) plus the replaced 4 KiB page */
	assert_int_equal(t.nr_inv, 2);
	assert_int_equal(t.inv[1].gpa, 8 * MiB);
	assert_int_equal(t.inv[1].size, 2 * MiB);
	/* another page at the target: replaced, INVEPT */
	assert_int_equal(install(&t, 8 * MiB + 0x3000, 3, mv_ept_mmio_spte(0x803, 4), 0), MV_PGT_OK);
	assert_int_equal(t.nr_inv, 3);
	assert_int_equal(t.inv[2].gpa, 8 * MiB + 0x3000);
	assert_int_equal(t.inv[2].size, 4 * KiB);
	/* a 1 GiB page replaces a PD with a PT below: both freed */
	assert_int_equal(install(&t, 0, 1, mv_ept_leaf(HPA0, RX, 1, true, true), 0), MV_PGT_OK);
	assert_int_equal(live(&t), 2);
	assert_int_equal(eptc_translate(&t.ept, 8 * MiB + 0x3000).hpa, HPA0 + 8 * MiB + 0x3000);
	check_tables(&t);
	t_fini(&t);
}

/* ------------------------------------------------------------------ */
/* Zap, write-protect, young                                             */

static void test_zap_frees_tables(void **state)
{
	t_ept t;
	mv_ept_stats st;

	(void)state;
	t_init(&t, 4, true);
	for (uint64_t i = 0; i < 8; i++)
		assert_int_equal(install(&t, i * 0x1000 + 0x10000, 3,
					 mv_ept_leaf(HPA0 + i * 0x1000, RWX, 3, true, true), 0), MV_PGT_OK);
	assert_int_equal(install(&t, 6 * MiB, 2, mv_ept_leaf(HPA0, RWX, 2, true, true), 0), MV_PGT_OK);
	assert_int_equal(install(&t, 3 * GiB, 1, mv_ept_leaf(HPA0, RWX, 1, true, true), 0), MV_PGT_OK);
	assert_int_equal(install(&t, 600 * GiB + 0x3000, 3, mv_ept_mmio_spte(0x3, 1), 0), MV_PGT_OK);
	mv_ept_get_stats(&t.ept, &st);
	assert_int_equal(st.leaves[3], 8);
	assert_int_equal(st.leaves[2], 1);
	assert_int_equal(st.leaves[1], 1);
	assert_int_equal(st.mmio_sptes, 1);
	assert_int_equal(st.tables, 3 + 3);
	check_tables(&t);
	/* part of the 4 KiB pages: their table stays */
	assert_int_equal(mv_ept_zap(&t.ept, 0x10000, 0x3000), MV_PGT_OK);
	assert_int_equal(t.nr_inv, 1);
	assert_int_equal(t.inv[0].gpa, 0x10000);
	assert_int_equal(t.inv[0].size, 0x3000);
	assert_int_equal(leaf_at(&t, 0x12000, NULL), 0);
	assert_int_equal(leaf_at(&t, 0x13000, NULL) & EPTC_ADDR, HPA0 + 0x3000);
	assert_int_equal(live(&t), 7);
	/* one byte of the 2 MiB page zaps all of it (KVM zaps whole huge SPTEs) */
	assert_int_equal(mv_ept_zap(&t.ept, 7 * MiB + 5, 1), MV_PGT_OK);
	assert_int_equal(leaf_at(&t, 6 * MiB, NULL), 0);
	assert_int_equal(t.inv[1].gpa, 6 * MiB);
	assert_int_equal(t.inv[1].size, 2 * MiB);
	/* the MMIO SPTE: cleared, tables freed, one INVEPT for the tables only */
	assert_int_equal(mv_ept_zap(&t.ept, 512 * GiB, 512 * GiB), MV_PGT_OK);
	assert_int_equal(live(&t), 4);
	assert_int_equal(t.nr_inv, 3);
	assert_int_equal(t.inv[2].gpa, 512 * GiB);
	assert_int_equal(t.inv[2].size, 512 * GiB);
	assert_int_equal(t.inv[2].live, 7);        /* tables freed after the INVEPT */
	/* everything */
	assert_int_equal(mv_ept_zap(&t.ept, 0, 1ull << 48), MV_PGT_OK);
	assert_int_equal(live(&t), 1);
	assert_int_equal(t.nr_inv, 4);
	assert_int_equal(t.inv[3].live, 4);
	mv_ept_get_stats(&t.ept, &st);
	assert_int_equal(st.tables + st.leaves[1] + st.leaves[2] + st.leaves[3] + st.mmio_sptes, 0);
	assert_int_equal(st.invept, 4);
	/* nothing to zap: no INVEPT */
	assert_int_equal(mv_ept_zap(&t.ept, 0, 1ull << 48), MV_PGT_OK);
	assert_int_equal(t.nr_inv, 4);
	assert_int_equal(mv_ept_zap(&t.ept, 1ull << 48, 4096), MV_PGT_RANGE);
	t_fini(&t);
}

static void test_zap_many_tables(void **state)
{
	t_ept t;

	(void)state;
	/* 40 page tables: more than one batch of unlinked tables */
	t_init(&t, 5, true);
	for (uint64_t i = 0; i < 40; i++)
		assert_int_equal(install(&t, i * 2 * MiB, 3, mv_ept_leaf(HPA0, RWX, 3, true, true), 0),
				 MV_PGT_OK);
	assert_int_equal(live(&t), 1 + 3 + 40);
	assert_int_equal(mv_ept_zap(&t.ept, 0, 80 * MiB), MV_PGT_OK);
	assert_int_equal(live(&t), 1);
	/* 16 tables per INVEPT, each INVEPT before its tables go */
	assert_int_equal(t.nr_inv, 3);
	assert_int_equal(t.inv[0].gpa, 0);
	assert_int_equal(t.inv[0].size, 32 * MiB);
	assert_int_equal(t.inv[0].live, 44);
	assert_int_equal(t.inv[1].gpa, 32 * MiB);
	assert_int_equal(t.inv[1].size, 32 * MiB);
	assert_int_equal(t.inv[1].live, 44 - 16);
	/* the rest, up to the PML4 the PML5 entry pointed to */
	assert_int_equal(t.inv[2].gpa, 0);
	assert_int_equal(t.inv[2].size, 1ull << 48);
	t_fini(&t);
}

static void test_wrprotect(void **state)
{
	mv_pte rw = mv_ept_leaf(HPA0 + 0x2000, RWX, 3, true, true);
	mv_pte rw2 = mv_ept_leaf(HPA0 + 2 * MiB, RWX, 2, true, true);
	mv_pte ro = mv_ept_leaf(HPA0 + 0x3000, RX, 3, true, true);
	t_ept t;

	(void)state;
	t_init(&t, 4, true);
	assert_int_equal(install(&t, 0x2000, 3, rw, 0), MV_PGT_OK);
	assert_int_equal(install(&t, 0x3000, 3, ro, 0), MV_PGT_OK);
	assert_int_equal(install(&t, 4 * MiB, 2, rw2, 0), MV_PGT_OK);
	assert_int_equal(install(&t, 0x4000, 3, mv_ept_mmio_spte(4, 0x7ff), 0), MV_PGT_OK);
	/* W cleared, MMU-writable (and D, host-writable) kept */
	assert_true(mv_ept_wrprotect(&t.ept, 0, 4 * MiB + 4096));
	assert_int_equal(leaf_at(&t, 0x2000, NULL), rw & ~MV_EPT_W);
	assert_true(leaf_at(&t, 0x2000, NULL) & MV_SPTE_MMU_WRITABLE);
	assert_int_equal(leaf_at(&t, 0x3000, NULL), ro);
	assert_int_equal(leaf_at(&t, 0x4000, NULL), mv_ept_mmio_spte(4, 0x7ff));
	/* the huge page is protected whole */
	assert_int_equal(leaf_at(&t, 5 * MiB, NULL), rw2 & ~MV_EPT_W);
	assert_int_equal(t.nr_inv, 1);
	assert_int_equal(t.inv[0].gpa, 0x2000);
	assert_int_equal(t.inv[0].size, 6 * MiB - 0x2000);
	/* nothing left to protect */
	assert_false(mv_ept_wrprotect(&t.ept, 0, 8 * MiB));
	assert_int_equal(t.nr_inv, 1);
	t_fini(&t);
}

static void test_young(void **state)
{
	mv_pte l = mv_ept_leaf(HPA0, RWX, 3, true, true);
	t_ept t;

	(void)state;
	t_init(&t, 4, true);
	assert_int_equal(install(&t, 0x1000, 3, l, 0), MV_PGT_OK);
	assert_int_equal(install(&t, 0x2000, 3, l & ~MV_EPT_A, 0), MV_PGT_OK);
	assert_int_equal(install(&t, 0x3000, 3, mv_ept_mmio_spte(3, 0xff), 0), MV_PGT_OK);
	assert_false(mv_ept_test_clear_young(&t.ept, 0x2000, 0x2000, true));
	assert_true(mv_ept_test_clear_young(&t.ept, 0, 16 * KiB, false));
	assert_int_equal(leaf_at(&t, 0x1000, NULL), l);
	assert_int_equal(t.nr_inv, 0);
	assert_true(mv_ept_test_clear_young(&t.ept, 0, 16 * KiB, true));
	assert_int_equal(leaf_at(&t, 0x1000, NULL), l & ~MV_EPT_A);
	assert_int_equal(t.nr_inv, 1);
	assert_int_equal(t.inv[0].gpa, 0x1000);
	assert_int_equal(t.inv[0].size, 4 * KiB);
	assert_false(mv_ept_test_clear_young(&t.ept, 0, 16 * KiB, true));
	assert_int_equal(leaf_at(&t, 0x3000, NULL), mv_ept_mmio_spte(3, 0xff));
	t_fini(&t);

	/* without A/D flags: present is young; clearing zaps it and frees emptied tables */
	t_init(&t, 4, false);
	l = mv_ept_leaf(HPA0, RWX, 3, true, false);
	assert_int_equal(install(&t, 0x1000, 3, l, 0), MV_PGT_OK);
	assert_int_equal(install(&t, 1 * GiB, 1, mv_ept_leaf(HPA0, RWX, 1, true, false), 0), MV_PGT_OK);
	assert_true(mv_ept_test_clear_young(&t.ept, 0, 4 * GiB, false));
	assert_int_equal(leaf_at(&t, 0x1000, NULL), l);
	assert_int_equal(live(&t), 4);
	assert_true(mv_ept_test_clear_young(&t.ept, 0, 4 * GiB, true));
	assert_int_equal(leaf_at(&t, 0x1000, NULL), 0);
	assert_int_equal(leaf_at(&t, 1 * GiB, NULL), 0);
	assert_int_equal(live(&t), 1);         /* every table below the PML4 was emptied */
	assert_int_equal(t.nr_inv, 1);
	assert_int_equal(t.inv[0].live, 4);
	assert_false(mv_ept_test_clear_young(&t.ept, 0, 4 * GiB, true));
	check_tables(&t);
	t_fini(&t);
}

/* ------------------------------------------------------------------ */
/* Split                                                                 */

/* Every 4 KiB page of [gpa, gpa + size) translates to hpa + offset with rights @rwx. */
static void check_identical(t_ept *t, uint64_t gpa, uint64_t size, uint64_t hpa, unsigned rwx)
{
	for (uint64_t off = 0; off < size; off += 4 * KiB) {
		eptc_xlate x = eptc_translate(&t->ept, gpa + off + 0x123);

		if (!x.present || x.hpa != hpa + off + 0x123 || x.rwx != rwx)
			fail_msg("gpa %#llx: present %d hpa %#llx rwx %u", (unsigned long long)(gpa + off),
				 x.present, (unsigned long long)x.hpa, x.rwx);
	}
}

static void test_split_2m(void **state)
{
	mv_pte l2 = mv_ept_leaf(HPA0 + 4 * MiB, RX, 2, true, true) | MV_EPT_D;
	t_ept t;
	int level;

	(void)state;
	t_init(&t, 4, true);
	assert_int_equal(install(&t, 10 * MiB, 2, l2, 0), MV_PGT_OK);
	check_identical(&t, 10 * MiB, 2 * MiB, HPA0 + 4 * MiB, 5);
	assert_int_equal(mv_ept_split(&t.ept, 10 * MiB + 0x5000, 1), MV_PGT_OK);
	check_identical(&t, 10 * MiB, 2 * MiB, HPA0 + 4 * MiB, 5);
	for (uint64_t i = 0; i < 512; i++) {
		mv_pte e = eptc_entry(&t.ept, 10 * MiB + i * 4 * KiB, 3);

		/* same bits, LARGE gone, A/D and software bits copied */
		assert_int_equal(e, (l2 & ~MV_EPT_LARGE) + i * 4 * KiB);
	}
	assert_int_equal(eptc_entry(&t.ept, 10 * MiB, 2) & ~EPTC_ADDR, 0x907);
	assert_int_equal(leaf_at(&t, 11 * MiB, &level) & EPTC_ADDR, HPA0 + 5 * MiB);
	assert_int_equal(level, 3);
	assert_int_equal(live(&t), 4);
	assert_int_equal(t.nr_inv, 1);
	assert_int_equal(t.inv[0].gpa, 10 * MiB);
	assert_int_equal(t.inv[0].size, 2 * MiB);
	/* nothing left to split */
	assert_int_equal(mv_ept_split(&t.ept, 0, 1ull << 48), MV_PGT_OK);
	assert_int_equal(t.nr_inv, 1);
	check_tables(&t);
	t_fini(&t);
}

static void test_split_1g(void **state)
{
	mv_pte l1 = mv_ept_leaf(HPA0, RWX, 1, true, true);
	t_ept t;
	mv_ept_stats st;

	(void)state;
	t_init(&t, 5, true);
	assert_int_equal(install(&t, 5 * GiB, 1, l1, 0), MV_PGT_OK);
	assert_int_equal(live(&t), 1 + 2);
	/* 4 MiB in the middle: one PD, two PTs; the rest stays 2 MiB */
	assert_int_equal(mv_ept_split(&t.ept, 5 * GiB + 100 * MiB, 4 * MiB), MV_PGT_OK);
	mv_ept_get_stats(&t.ept, &st);
	assert_int_equal(st.leaves[1], 0);
	assert_int_equal(st.leaves[2], 510);
	assert_int_equal(st.leaves[3], 1024);
	assert_int_equal(live(&t), 1 + 2 + 1 + 2);
	check_identical(&t, 5 * GiB, GiB, HPA0, 7);
	assert_int_equal(eptc_entry(&t.ept, 5 * GiB + 2 * MiB, 2),
			 l1 + 2 * MiB);
	/* then all of it */
	assert_int_equal(mv_ept_split(&t.ept, 5 * GiB, GiB), MV_PGT_OK);
	mv_ept_get_stats(&t.ept, &st);
	assert_int_equal(st.leaves[2], 0);
	assert_int_equal(st.leaves[3], 512 * 512);
	assert_int_equal(live(&t), 1 + 2 + 1 + 512);
	check_identical(&t, 5 * GiB, GiB, HPA0, 7);
	assert_int_equal(t.nr_inv, 2);
	check_tables(&t);
	assert_int_equal(mv_ept_zap(&t.ept, 5 * GiB, GiB), MV_PGT_OK);
	assert_int_equal(live(&t), 1);
	t_fini(&t);
}

/* ------------------------------------------------------------------ */
/* Lookups                                                               */

static void test_leaf_ptep(void **state)
{
	mv_pte l = mv_ept_leaf(HPA0, RX, 2, true, true) | MV_SPTE_MMU_WRITABLE;
	mv_pte expect;
	mv_pte *p;
	t_ept t;
	int level = -5;

	(void)state;
	t_init(&t, 4, true);
	assert_null(mv_ept_leaf_ptep(&t.ept, 0x1000, &level));
	assert_int_equal(level, 0);
	assert_int_equal(install(&t, 2 * MiB, 2, l, 0), MV_PGT_OK);
	p = mv_ept_leaf_ptep(&t.ept, 3 * MiB + 0x1234, &level);
	assert_ptr_equal(p, eptc_entry_ptr(&t.ept, 2 * MiB, 2));
	assert_int_equal(level, 2);
	/* the fast path's compare-and-swap through the pointer */
	expect = l;
	assert_true(__atomic_compare_exchange_n(p, &expect, l | MV_EPT_W | MV_EPT_D, false,
						__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE));
	assert_int_equal(leaf_at(&t, 2 * MiB, NULL), l | MV_EPT_W | MV_EPT_D);
	/* MMIO SPTEs too; frozen and empty entries: NULL */
	assert_int_equal(install(&t, 0x5000, 3, mv_ept_mmio_spte(5, 1), 0), MV_PGT_OK);
	assert_ptr_equal(mv_ept_leaf_ptep(&t.ept, 0x5000, &level), eptc_entry_ptr(&t.ept, 0x5000, 3));
	assert_int_equal(level, 3);
	assert_null(mv_ept_leaf_ptep(&t.ept, 0x6000, &level));
	assert_int_equal(level, 3);
	*eptc_entry_ptr(&t.ept, 0x5000, 3) = MV_SPTE_FROZEN;
	assert_null(mv_ept_leaf_ptep(&t.ept, 0x5000, NULL));
	assert_int_equal(leaf_at(&t, 0x5000, NULL), 0);
	*eptc_entry_ptr(&t.ept, 0x5000, 3) = mv_ept_mmio_spte(5, 1);
	assert_null(mv_ept_leaf_ptep(&t.ept, 1ull << 48, NULL));
	assert_int_equal(mv_ept_get_leaf(&t.ept, 1ull << 48, NULL, NULL), MV_PGT_RANGE);
	t_fini(&t);
}

/* ------------------------------------------------------------------ */
/* Allocation failures                                                   */

/* Steps that ended in MV_PGT_NOMEM over all runs (the failures did hit the operations). */
static unsigned long nr_nomem;

static void note(mv_pgt_result r)
{
	assert_true(r == MV_PGT_OK || r == MV_PGT_NOMEM);
	nr_nomem += r == MV_PGT_NOMEM;
}

/*
 * A scenario of 5-level installs, a split and zaps whose every step may
 * fail for memory; after each step the tables must be consistent and
 * every mapping either the old or the new one.
 */
static unsigned long run_scenario(unsigned long fail_at)
{
	mv_pte l3 = mv_ept_leaf(HPA0 + 0x9000, RWX, 3, true, true);
	mv_pte l2 = mv_ept_leaf(HPA0 + 2 * MiB, RWX, 2, true, true);
	mv_pte l1 = mv_ept_leaf(HPA0, RX, 1, true, true);
	mv_pgt_result r;
	unsigned long calls;
	t_ept t;

	memset(&t, 0, sizeof(t));
	tu_failing_alloc_init(&t.fa, 0, false);
	assert_int_equal(mv_pgt_pool_new(&t.fa.alloc, &t.pool), 0);
	t.fa.calls = 0;
	t.fa.fail_at = fail_at;
	if (mv_ept_init(&t.ept, 5, true, mv_pgt_pool_mm_ops(), t.pool, record_invept, &t)) {
		assert_int_equal(live(&t), 0);
		mv_pgt_pool_free(t.pool);
		return 1;
	}
	r = install(&t, 0x123456789000ull, 3, l3, SHARED);
	note(r);
	check_tables(&t);
	assert_int_equal(leaf_at(&t, 0x123456789000ull, NULL), r == MV_PGT_OK ? l3 : 0);
	r = install(&t, 0x123456789000ull & ~(2 * MiB - 1), 2, l2, 0);
	note(r);
	check_tables(&t);
	if (r == MV_PGT_OK)
		assert_int_equal(leaf_at(&t, 0x123456789000ull, NULL), l2);
	r = install(&t, 7 * GiB, 1, l1, 0);
	note(r);
	check_tables(&t);
	if (r == MV_PGT_OK) {
		r = mv_ept_split(&t.ept, 7 * GiB + 10 * MiB, 4 * MiB);
		note(r);
		check_tables(&t);
		check_identical(&t, 7 * GiB, GiB, HPA0, 5);
		/* exclusive install into a huge page: split on the way down */
		r = install(&t, 7 * GiB + 600 * MiB, 3, l3, 0);
		note(r);
		check_tables(&t);
		assert_int_equal(eptc_translate(&t.ept, 7 * GiB + 600 * MiB).hpa,
				 r == MV_PGT_OK ? HPA0 + 0x9000 : HPA0 + 600 * MiB);
		check_identical(&t, 7 * GiB + 602 * MiB, 20 * MiB, HPA0 + 602 * MiB, 5);
	}
	assert_int_equal(mv_ept_zap(&t.ept, 0, 1ull << 57), MV_PGT_OK);
	assert_int_equal(live(&t), 1);
	calls = t.fa.calls;
	t_fini(&t);
	return calls;
}

static void test_alloc_failures(void **state)
{
	unsigned long total = run_scenario(0);

	(void)state;
	assert_true(total > 10);
	for (unsigned long k = 1; k <= total + 1; k++)
		run_scenario(k);
	assert_true(nr_nomem >= total - 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_leaf_values),
		cmocka_unit_test(test_eptp),
		cmocka_unit_test(test_mmio_spte),
		cmocka_unit_test(test_misconfig),
		cmocka_unit_test(test_install_4k_exact),
		cmocka_unit_test(test_install_no_ad_tables),
		cmocka_unit_test(test_install_huge),
		cmocka_unit_test(test_install_range_errors),
		cmocka_unit_test(test_install_shared_exists_again),
		cmocka_unit_test(test_install_shared_rights),
		cmocka_unit_test(test_install_absent_only),
		cmocka_unit_test(test_install_exclusive_replaces),
		cmocka_unit_test(test_zap_frees_tables),
		cmocka_unit_test(test_zap_many_tables),
		cmocka_unit_test(test_wrprotect),
		cmocka_unit_test(test_young),
		cmocka_unit_test(test_split_2m),
		cmocka_unit_test(test_split_1g),
		cmocka_unit_test(test_leaf_ptep),
		cmocka_unit_test(test_alloc_failures),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
