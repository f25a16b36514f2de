/*
 * ARMv8 stage-2 tables (src/soft/arm64/stage2*.c, vtcr.c): exact
 * descriptor values of every operation, block choice, table pages freed
 * and counted back, break-before-make order seen from the TLBI hook,
 * allocation failures injected at every allocation, VTCR_EL2 decode
 * tables for the three granules. Concurrency: test_soft_stage2_threads.c.
 */
#include "testutil.h"

#include "memvirt/soft_stage2.h"
#include "s2check.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define KiB (1ull << 10)
#define MiB (1ull << 20)
#define GiB (1ull << 30)

/* Normal WB (MemAttr 0b1111), S2AP RW, SH inner, AF, XN: bits [10:2] and 54. */
#define ATTR_RW 0x00400000000007fcull
#define ATTR_RWX 0x00000000000007fcull
#define ATTR_RO 0x004000000000077cull
#define TYPE_BLOCK 1ull
#define TYPE_PAGE 3ull

/* ------------------------------------------------------------------ */
/* Fixture: a stage-2 over a pool, with a TLBI recorder                  */

#define MAX_TLBI 4096

typedef struct tlbi_rec {
	uint64_t ipa, size;
	mv_pte seen;              /* the entry of that size at ipa when the TLBI ran (~0: none) */
} tlbi_rec;

typedef struct t_s2 {
	tu_failing_alloc fa;
	mv_pgt_pool *pool;
	mv_s2_pgt s2;
	tlbi_rec tlbis[MAX_TLBI];
	unsigned nr_tlbi;
} t_s2;

/* The TLBI hook: records the range and reads, by hand, the entry whose size it is. */
static void record_tlbi(void *arg, uint64_t ipa, uint64_t size)
{
	t_s2 *t = arg;
	tlbi_rec *rec;

	/* Bulk unmaps exceed the record: count them only. */
	if (t->nr_tlbi >= MAX_TLBI) {
		t->nr_tlbi++;
		return;
	}
	rec = &t->tlbis[t->nr_tlbi++];
	rec->ipa = ipa;
	rec->size = size;
	rec->seen = ~0ull;
	for (int level = t->s2.pgt.start_level; level <= 3; level++)
		if (size == 1ull << s2c_shift(t->s2.pgt.granule_shift, level))
			rec->seen = s2c_entry(&t->s2, ipa, level);
}

static void t_init_cfg(t_s2 *t, const mv_s2_config *cfg)
{
	memset(t, 0, sizeof(*t));
	tu_failing_alloc_init(&t->fa, 0, false);
	assert_int_equal(mv_pgt_pool_new(&t->fa.alloc, &t->pool), 0);
	assert_int_equal(mv_s2_init(&t->s2, cfg, mv_pgt_pool_mm_ops(), t->pool, record_tlbi, t), 0);
}

/* KVM's default: 40-bit IPA, 4 KiB granule (start level 1, 2 concatenated tables). */
static void t_init(t_s2 *t)
{
	mv_s2_config cfg;

	assert_int_equal(mv_s2_config_for_ipa(40, 12, &cfg), 0);
	t_init_cfg(t, &cfg);
}

static void t_fini(t_s2 *t)
{
	mv_s2_destroy(&t->s2);
	assert_int_equal(mv_pgt_pool_live_pages(t->pool), 0);
	mv_pgt_pool_free(t->pool);
}

static size_t live(const t_s2 *t)
{
	return mv_pgt_pool_live_pages(t->pool);
}

static mv_pte leaf(t_s2 *t, uint64_t ipa, int *level)
{
	mv_pte pte = 0;

	assert_int_equal(mv_s2_get_leaf(&t->s2, ipa, &pte, level), MV_PGT_OK);
	return pte;
}

/* Host-like output addresses (the OA is an HVA in the software MMU). */
#define PA0 0x7f1240000000ull      /* 1 GiB aligned */

/* ------------------------------------------------------------------ */
/* Life cycle and the first map                                          */

static void test_init_destroy(void **state)
{
	t_s2 t;

	(void)state;
	t_init(&t);
	assert_int_equal(t.s2.pgt.start_level, 1);
	assert_int_equal(mv_pgt_root_pages(&t.s2.pgt), 2);
	assert_int_equal(live(&t), 2);
	assert_int_equal(t.s2.pgt.root_pa & (2 * 4 * KiB - 1), 0);   /* aligned to its size */
	t_fini(&t);
}

static void test_map_page_exact(void **state)
{
	t_s2 t;
	int level;

	(void)state;
	t_init(&t);
	assert_int_equal(mv_s2_map(&t.s2, 0x1000, 4 * KiB, PA0 + 0x5000,
				   mv_s2_prot_attr(MV_S2_PROT_R | MV_S2_PROT_W), 1, 0),
			 MV_PGT_OK);
	assert_int_equal(leaf(&t, 0x1000, &level), PA0 + 0x5000 + ATTR_RW + TYPE_PAGE);
	assert_int_equal(level, 3);
	assert_int_equal(leaf(&t, 0x1fff, &level), PA0 + 0x5000 + ATTR_RW + TYPE_PAGE);
	assert_int_equal(leaf(&t, 0x2000, &level), 0);
	assert_int_equal(level, 3);
	assert_int_equal(leaf(&t, 0x200000, &level), 0);
	assert_int_equal(level, 2);
	/* root (2) + one level-2 + one level-3 table */
	assert_int_equal(live(&t), 4);
	assert_int_equal(t.nr_tlbi, 0);

	assert_int_equal(mv_s2_unmap(&t.s2, 0x1000, 4 * KiB), MV_PGT_OK);
	assert_int_equal(leaf(&t, 0x1000, &level), 0);
	assert_int_equal(live(&t), 2);
	/* the page, then the two emptied tables */
	assert_int_equal(t.nr_tlbi, 3);
	assert_int_equal(t.tlbis[0].ipa, 0x1000);
	assert_int_equal(t.tlbis[0].size, 4 * KiB);
	assert_int_equal(t.tlbis[1].ipa, 0);
	assert_int_equal(t.tlbis[1].size, 2 * MiB);
	assert_int_equal(t.tlbis[2].ipa, 0);
	assert_int_equal(t.tlbis[2].size, GiB);
	assert_int_equal(s2c_entry(&t.s2, 0, 1), 0);
	t_fini(&t);
}

static void test_init_errors(void **state)
{
	mv_s2_config cfg = { 40, 12, 0, 48 };   /* 40 bits need not start at level 0... */
	mv_s2_config bad = { 40, 12, 2, 48 };   /* ...but level 2 would need 1024 tables */
	tu_failing_alloc fa;
	mv_pgt_pool *pool;
	mv_s2_pgt s2;

	(void)state;
	tu_failing_alloc_init(&fa, 0, false);
	assert_int_equal(mv_pgt_pool_new(&fa.alloc, &pool), 0);
	assert_int_equal(mv_s2_init(&s2, &bad, mv_pgt_pool_mm_ops(), pool, NULL, NULL), -EINVAL);
	fa.fail_at = fa.calls + 1;
	assert_int_equal(mv_s2_init(&s2, &cfg, mv_pgt_pool_mm_ops(), pool, NULL, NULL), -ENOMEM);
	assert_int_equal(mv_pgt_pool_live_pages(pool), 0);
	fa.fail_at = 0;
	assert_int_equal(mv_s2_init(&s2, &cfg, mv_pgt_pool_mm_ops(), pool, NULL, NULL), 0);
	assert_int_equal(mv_pgt_pool_live_pages(pool), 1);
	mv_s2_destroy(&s2);
	mv_s2_destroy(&s2);                    /* a second destroy is harmless */
	assert_int_equal(mv_pgt_pool_live_pages(pool), 0);
	mv_pgt_pool_free(pool);
}

static void test_prot_attr(void **state)
{
	(void)state;
	assert_int_equal(mv_s2_prot_attr(MV_S2_PROT_R | MV_S2_PROT_W), ATTR_RW);
	assert_int_equal(mv_s2_prot_attr(MV_S2_PROT_R | MV_S2_PROT_W | MV_S2_PROT_X), ATTR_RWX);
	assert_int_equal(mv_s2_prot_attr(MV_S2_PROT_R), ATTR_RO);
	assert_int_equal(mv_s2_prot_attr(0), 0x004000000000073cull);
	/* Device-nGnRE (MemAttr 0b0001), never executable. */
	assert_int_equal(mv_s2_prot_attr(MV_S2_PROT_R | MV_S2_PROT_W | MV_S2_PROT_DEVICE),
			 0x00400000000007c4ull);
	assert_int_equal(mv_s2_prot_attr(MV_S2_PROT_R | MV_S2_PROT_X | MV_S2_PROT_DEVICE),
			 0x0040000000000744ull);
	assert_int_equal(mv_s2_attr_prot(ATTR_RW), MV_S2_PROT_R | MV_S2_PROT_W);
	assert_int_equal(mv_s2_attr_prot(ATTR_RWX), MV_S2_PROT_R | MV_S2_PROT_W | MV_S2_PROT_X);
	assert_int_equal(mv_s2_attr_prot(0x00400000000007c4ull),
			 MV_S2_PROT_R | MV_S2_PROT_W | MV_S2_PROT_DEVICE);
	assert_int_equal(mv_s2_pte_oa(PA0 | 0x5000 | ATTR_RW | 3, 12), PA0 | 0x5000);
	assert_int_equal(mv_s2_pte_oa(PA0 | 0x5000 | ATTR_RW | 3, 14), PA0 | 0x4000);
	assert_int_equal(mv_s2_pte_oa(0xffff000000000003ull | ATTR_RW, 16), 0);
	assert_int_equal(MV_S2_OA_MASK(12), 0x0000fffffffff000ull);
	assert_int_equal(MV_S2_OA_MASK(16), 0x0000ffffffff0000ull);
}

/* Largest block the alignment, size and min_level allow (4 KiB: 1 GiB / 2 MiB). */
static void test_map_block_choice(void **state)
{
	t_s2 t;
	int level;

	(void)state;
	t_init(&t);
	assert_int_equal(mv_s2_map(&t.s2, GiB, GiB, PA0, ATTR_RW, 1, 0), MV_PGT_OK);
	assert_int_equal(leaf(&t, GiB + 5, &level), PA0 | ATTR_RW | TYPE_BLOCK);
	assert_int_equal(level, 1);
	assert_int_equal(live(&t), 2);

	assert_int_equal(mv_s2_map(&t.s2, 4 * GiB, GiB, PA0, ATTR_RW, 2, 0), MV_PGT_OK);
	assert_int_equal(leaf(&t, 4 * GiB + 3 * MiB, &level), (PA0 + 2 * MiB) | ATTR_RW | TYPE_BLOCK);
	assert_int_equal(level, 2);
	assert_int_equal(live(&t), 3);

	assert_int_equal(mv_s2_map(&t.s2, 8 * GiB, 4 * MiB, PA0, ATTR_RW, 3, 0), MV_PGT_OK);
	assert_int_equal(leaf(&t, 8 * GiB + 2 * MiB, &level), (PA0 + 2 * MiB) | ATTR_RW | TYPE_PAGE);
	assert_int_equal(level, 3);
	assert_int_equal(live(&t), 6);

	/* The output is not 2 MiB aligned: pages only. */
	assert_int_equal(mv_s2_map(&t.s2, 16 * GiB, 2 * MiB, PA0 + 4 * KiB, ATTR_RW, 1, 0), MV_PGT_OK);
	assert_int_equal(leaf(&t, 16 * GiB, &level), (PA0 + 4 * KiB) | ATTR_RW | TYPE_PAGE);
	assert_int_equal(level, 3);
	assert_int_equal(live(&t), 8);

	/* Page, block, page. */
	assert_int_equal(mv_s2_map(&t.s2, 32 * GiB + 2 * MiB - 4 * KiB, 2 * MiB + 8 * KiB,
				   PA0 + 2 * MiB - 4 * KiB, ATTR_RO, 1, 0),
			 MV_PGT_OK);
	assert_int_equal(leaf(&t, 32 * GiB + 2 * MiB - 1, &level),
			 (PA0 + 2 * MiB - 4 * KiB) | ATTR_RO | TYPE_PAGE);
	assert_int_equal(level, 3);
	assert_int_equal(leaf(&t, 32 * GiB + 2 * MiB, &level), (PA0 + 2 * MiB) | ATTR_RO | TYPE_BLOCK);
	assert_int_equal(level, 2);
	assert_int_equal(leaf(&t, 32 * GiB + 4 * MiB + 4095, &level),
			 (PA0 + 4 * MiB) | ATTR_RO | TYPE_PAGE);
	assert_int_equal(leaf(&t, 32 * GiB + 4 * MiB + 4096, &level), 0);
	assert_int_equal(live(&t), 11);
	assert_int_equal(s2c_check_counts(&t.s2), 9);
	assert_int_equal(t.nr_tlbi, 0);
	assert_int_equal(t.s2.nr_bbm, 0);

	assert_int_equal(mv_s2_unmap(&t.s2, 0, 1ull << 40), MV_PGT_OK);
	assert_int_equal(live(&t), 2);
	for (unsigned i = 0; i < t.nr_tlbi && i < MAX_TLBI; i++)
		assert_false(t.tlbis[i].seen & MV_S2_VALID);
	t_fini(&t);
}

/* 16 KiB: 32 MiB blocks at level 2 only; 64 KiB: 512 MiB blocks at level 2 only. */
static void test_map_block_choice_16k_64k(void **state)
{
	static const struct { unsigned g, ia; uint64_t block; } geo[] = {
		{ 14, 48, 32 * MiB }, { 14, 40, 32 * MiB }, { 16, 48, 512 * MiB }, { 16, 42, 512 * MiB },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(geo) / sizeof(geo[0]); i++) {
		uint64_t gsize = 1ull << geo[i].g;
		mv_s2_config cfg;
		t_s2 *t = test_malloc(sizeof(*t));
		int level;

		assert_int_equal(mv_s2_config_for_ipa(geo[i].ia, geo[i].g, &cfg), 0);
		t_init_cfg(t, &cfg);
		/* 1 GiB aligned in and out, min_level 1: still level-2 blocks. */
		assert_int_equal(mv_s2_map(&t->s2, 4 * GiB, GiB, PA0, ATTR_RW, 1, 0), MV_PGT_OK);
		assert_int_equal(leaf(t, 4 * GiB + geo[i].block + 5, &level),
				 (PA0 + geo[i].block) | ATTR_RW | TYPE_BLOCK);
		assert_int_equal(level, 2);
		/* A page: OA bits[47:g]. */
		assert_int_equal(mv_s2_map(&t->s2, 8 * GiB + gsize, gsize, PA0 + 3 * gsize, ATTR_RO, 1, 0),
				 MV_PGT_OK);
		assert_int_equal(leaf(t, 8 * GiB + 2 * gsize - 1, &level),
				 (PA0 + 3 * gsize) | ATTR_RO | TYPE_PAGE);
		assert_int_equal(level, 3);
		assert_int_equal(leaf(t, 8 * GiB, &level), 0);
		/* Not granule aligned. */
		assert_int_equal(mv_s2_map(&t->s2, 8 * GiB + 4096, gsize, PA0, ATTR_RW, 1, 0), MV_PGT_RANGE);
		assert_true(s2c_check_counts(&t->s2) > 0);
		assert_int_equal(mv_s2_unmap(&t->s2, 0, 1ull << geo[i].ia), MV_PGT_OK);
		assert_int_equal(live(t), mv_pgt_root_pages(&t->s2.pgt) * (gsize / 4096));
		t_fini(t);
		test_free(t);
	}
}

static void test_map_range_errors(void **state)
{
	t_s2 t;

	(void)state;
	t_init(&t);
	assert_int_equal(mv_s2_map(&t.s2, 0x1001, 4096, PA0, ATTR_RW, 1, 0), MV_PGT_RANGE);
	assert_int_equal(mv_s2_map(&t.s2, 0x1000, 4095, PA0, ATTR_RW, 1, 0), MV_PGT_RANGE);
	assert_int_equal(mv_s2_map(&t.s2, 0x1000, 4096, PA0 + 8, ATTR_RW, 1, 0), MV_PGT_RANGE);
	assert_int_equal(mv_s2_map(&t.s2, 0x1000, 4096, 1ull << 48, ATTR_RW, 1, 0), MV_PGT_RANGE);
	assert_int_equal(mv_s2_map(&t.s2, 0x1000, 8192, (1ull << 48) - 4096, ATTR_RW, 1, 0),
			 MV_PGT_RANGE);
	assert_int_equal(mv_s2_map(&t.s2, 1ull << 40, 4096, PA0, ATTR_RW, 1, 0), MV_PGT_RANGE);
	assert_int_equal(mv_s2_map(&t.s2, 0, 0, PA0, ATTR_RW, 1, 0), MV_PGT_OK);
	assert_int_equal(live(&t), 2);
	/* Bits outside the leaf attributes (Contiguous, type, OA) are ignored. */
	assert_int_equal(mv_s2_map(&t.s2, 0x1000, 4096, PA0, ATTR_RW | MV_S2_CONT | 0x3000 | 3, 1, 0),
			 MV_PGT_OK);
	assert_int_equal(leaf(&t, 0x1000, NULL), PA0 | ATTR_RW | TYPE_PAGE);
	t_fini(&t);
}

/* Re-mapping a live page: identical, attributes only, another output (BBM). */
static void test_map_existing(void **state)
{
	t_s2 t;

	(void)state;
	t_init(&t);
	assert_int_equal(mv_s2_map(&t.s2, 0x10000, 4096, PA0, ATTR_RO, 3, 0), MV_PGT_OK);
	assert_int_equal(mv_s2_map(&t.s2, 0x10000, 4096, PA0, ATTR_RO, 3, 0), MV_PGT_OK);
	assert_int_equal(t.nr_tlbi, 0);
	/* Adding rights: in place, no TLBI. */
	assert_int_equal(mv_s2_map(&t.s2, 0x10000, 4096, PA0, ATTR_RW, 3, 0), MV_PGT_OK);
	assert_int_equal(leaf(&t, 0x10000, NULL), PA0 | ATTR_RW | TYPE_PAGE);
	assert_int_equal(t.nr_tlbi, 0);
	/* Removing W: in place, then a TLBI that sees the new valid entry. */
	assert_int_equal(mv_s2_map(&t.s2, 0x10000, 4096, PA0, ATTR_RO, 3, 0), MV_PGT_OK);
	assert_int_equal(t.nr_tlbi, 1);
	assert_int_equal(t.tlbis[0].seen, PA0 | ATTR_RO | TYPE_PAGE);
	assert_int_equal(t.s2.nr_bbm, 0);
	/* Another output address: break (locked, invalid) -> TLBI -> make. */
	assert_int_equal(mv_s2_map(&t.s2, 0x10000, 4096, PA0 + 4096, ATTR_RO, 3, 0), MV_PGT_OK);
	assert_int_equal(t.nr_tlbi, 2);
	assert_int_equal(t.tlbis[1].ipa, 0x10000);
	assert_int_equal(t.tlbis[1].size, 4096);
	assert_int_equal(t.tlbis[1].seen, MV_S2_PTE_LOCKED);
	assert_int_equal(leaf(&t, 0x10000, NULL), (PA0 + 4096) | ATTR_RO | TYPE_PAGE);
	assert_int_equal(t.s2.nr_bbm, 1);
	/* Another memory type: BBM too. */
	assert_int_equal(mv_s2_map(&t.s2, 0x10000, 4096, PA0 + 4096,
				   mv_s2_prot_attr(MV_S2_PROT_R | MV_S2_PROT_DEVICE), 3, 0),
			 MV_PGT_OK);
	assert_int_equal(t.s2.nr_bbm, 2);
	assert_int_equal(t.tlbis[2].seen, MV_S2_PTE_LOCKED);
	/* Shared walks never remap: EXISTS, the entry untouched. */
	assert_int_equal(mv_s2_map(&t.s2, 0x10000, 4096, PA0, ATTR_RO, 3, MV_PGT_WALK_SHARED),
			 MV_PGT_EXISTS);
	assert_int_equal(leaf(&t, 0x10000, NULL), (PA0 + 4096) | 0x0040000000000744ull | TYPE_PAGE);
	/* ...but they do change attributes in place. */
	assert_int_equal(mv_s2_map(&t.s2, 0x10000, 4096, PA0 + 4096,
				   mv_s2_prot_attr(MV_S2_PROT_R | MV_S2_PROT_W | MV_S2_PROT_DEVICE), 3,
				   MV_PGT_WALK_SHARED),
			 MV_PGT_OK);
	assert_int_equal(leaf(&t, 0x10000, NULL), (PA0 + 4096) | 0x00400000000007c4ull | TYPE_PAGE);
	assert_int_equal(t.nr_tlbi, 3);
	assert_int_equal(s2c_check_counts(&t.s2), 2);
	t_fini(&t);
}

/*
 * Break-before-make order for table <-> block changes: the TLBI hook reads
 * the entry and finds it invalid (locked); afterwards the new entry is there.
 */
static void test_bbm_order(void **state)
{
	t_s2 t;
	int level;

	(void)state;
	t_init(&t);
	/* Pages under a table, then a 2 MiB block over them: table -> block. */
	assert_int_equal(mv_s2_map(&t.s2, 2 * MiB, 2 * MiB, PA0, ATTR_RW, 3, 0), MV_PGT_OK);
	assert_int_equal(live(&t), 4);
	assert_int_equal(mv_s2_map(&t.s2, 2 * MiB, 2 * MiB, PA0 + 2 * MiB, ATTR_RW, 1, 0), MV_PGT_OK);
	assert_int_equal(t.nr_tlbi, 1);
	assert_int_equal(t.tlbis[0].ipa, 2 * MiB);
	assert_int_equal(t.tlbis[0].size, 2 * MiB);
	assert_int_equal(t.tlbis[0].seen, MV_S2_PTE_LOCKED);
	assert_int_equal(leaf(&t, 2 * MiB, &level), (PA0 + 2 * MiB) | ATTR_RW | TYPE_BLOCK);
	assert_int_equal(level, 2);
	assert_int_equal(live(&t), 3);                /* the page table went */
	assert_int_equal(t.s2.nr_bbm, 1);

	/* A page inside the block with another output: block -> table (split), then page BBM. */
	assert_int_equal(mv_s2_map(&t.s2, 3 * MiB, 4096, PA0, ATTR_RW, 3, 0), MV_PGT_OK);
	assert_int_equal(t.nr_tlbi, 3);
	assert_int_equal(t.tlbis[1].ipa, 2 * MiB);
	assert_int_equal(t.tlbis[1].size, 2 * MiB);
	assert_int_equal(t.tlbis[1].seen, MV_S2_PTE_LOCKED);
	assert_int_equal(t.tlbis[2].ipa, 3 * MiB);
	assert_int_equal(t.tlbis[2].size, 4096);
	assert_int_equal(t.tlbis[2].seen, MV_S2_PTE_LOCKED);
	assert_int_equal(t.s2.nr_bbm, 3);
	assert_int_equal(leaf(&t, 3 * MiB, &level), PA0 | ATTR_RW | TYPE_PAGE);
	assert_int_equal(leaf(&t, 3 * MiB + 4096, &level), (PA0 + 3 * MiB + 4096) | ATTR_RW | TYPE_PAGE);
	assert_int_equal(leaf(&t, 2 * MiB, &level), (PA0 + 2 * MiB) | ATTR_RW | TYPE_PAGE);
	assert_int_equal(live(&t), 4);
	assert_int_equal(s2c_check_counts(&t.s2), 2);

	/* A page that agrees with the block needs nothing: no split, no TLBI. */
	assert_int_equal(mv_s2_map(&t.s2, 6 * MiB, 2 * MiB, PA0 + 6 * MiB, ATTR_RW, 1, 0), MV_PGT_OK);
	assert_int_equal(mv_s2_map(&t.s2, 7 * MiB, 4096, PA0 + 7 * MiB, ATTR_RW, 3, 0), MV_PGT_OK);
	assert_int_equal(leaf(&t, 7 * MiB, &level), (PA0 + 6 * MiB) | ATTR_RW | TYPE_BLOCK);
	assert_int_equal(t.nr_tlbi, 3);
	/* Shared: a page into a block that disagrees is EXISTS. */
	assert_int_equal(mv_s2_map(&t.s2, 7 * MiB, 4096, PA0, ATTR_RW, 3, MV_PGT_WALK_SHARED),
			 MV_PGT_EXISTS);
	t_fini(&t);
}

/* Shared walks descend into a table where a block would go. */
static void test_shared_map_below_table(void **state)
{
	t_s2 t;
	int level;

	(void)state;
	t_init(&t);
	assert_int_equal(mv_s2_map(&t.s2, 2 * MiB, 4096, PA0, ATTR_RW, 3, 0), MV_PGT_OK);
	assert_int_equal(mv_s2_map(&t.s2, 2 * MiB, 2 * MiB, PA0, ATTR_RW, 1, MV_PGT_WALK_SHARED),
			 MV_PGT_OK);
	assert_int_equal(leaf(&t, 4 * MiB - 4096, &level), (PA0 + 2 * MiB - 4096) | ATTR_RW | TYPE_PAGE);
	assert_int_equal(level, 3);
	assert_int_equal(t.nr_tlbi, 0);
	assert_int_equal(t.s2.nr_bbm, 0);
	/* A locked entry (another walker's break in progress) is AGAIN. */
	{
		mv_pte *l2 = (mv_pte *)(uintptr_t)(s2c_entry(&t.s2, 0, 1) & MV_S2_OA_MASK(12));

		l2[4] = MV_S2_PTE_LOCKED;
		assert_int_equal(mv_s2_map(&t.s2, 8 * MiB, 4096, PA0, ATTR_RW, 3, MV_PGT_WALK_SHARED),
				 MV_PGT_AGAIN);
		assert_int_equal(mv_s2_relax_perms(&t.s2, 8 * MiB, MV_S2_PROT_W, MV_PGT_WALK_SHARED),
				 MV_PGT_AGAIN);
		assert_int_equal(mv_s2_mkyoung(&t.s2, 8 * MiB, NULL, MV_PGT_WALK_SHARED), MV_PGT_AGAIN);
		l2[4] = 0;
	}
	t_fini(&t);
}

/* Unmap: partial blocks split (the rest stays), emptied tables freed, TLBIs see invalid entries. */
static void test_unmap(void **state)
{
	t_s2 t;
	int level;
	uint64_t pa, attrs;

	(void)state;
	t_init(&t);
	assert_int_equal(mv_s2_map(&t.s2, GiB, GiB, PA0, ATTR_RW, 1, 0), MV_PGT_OK);
	assert_int_equal(mv_s2_unmap(&t.s2, GiB + 2 * MiB + 4096, 4096), MV_PGT_OK);
	/* 1 GiB -> 2 MiB blocks -> pages, one page gone. */
	assert_int_equal(live(&t), 4);
	assert_int_equal(leaf(&t, GiB + 2 * MiB + 4096, &level), 0);
	assert_int_equal(level, 3);
	assert_int_equal(leaf(&t, GiB + 2 * MiB, &level), (PA0 + 2 * MiB) | ATTR_RW | TYPE_PAGE);
	assert_int_equal(leaf(&t, GiB + 2 * MiB + 8192, &level),
			 (PA0 + 2 * MiB + 8192) | ATTR_RW | TYPE_PAGE);
	assert_int_equal(leaf(&t, GiB + 4 * MiB, &level), (PA0 + 4 * MiB) | ATTR_RW | TYPE_BLOCK);
	assert_int_equal(level, 2);
	assert_int_equal(leaf(&t, GiB, &level), PA0 | ATTR_RW | TYPE_BLOCK);
	assert_true(s2c_translate(&t.s2, 2 * GiB - 1, &pa, &attrs, &level));
	assert_int_equal(pa, PA0 + GiB - 1);
	assert_int_equal(attrs, ATTR_RW);
	assert_int_equal(t.s2.nr_bbm, 2);
	/* TLBIs: the 1 GiB block broken, the 2 MiB block broken, the page cleared (seen 0). */
	assert_int_equal(t.nr_tlbi, 3);
	assert_int_equal(t.tlbis[0].size, GiB);
	assert_int_equal(t.tlbis[0].seen, MV_S2_PTE_LOCKED);
	assert_int_equal(t.tlbis[1].size, 2 * MiB);
	assert_int_equal(t.tlbis[1].seen, MV_S2_PTE_LOCKED);
	assert_int_equal(t.tlbis[2].ipa, GiB + 2 * MiB + 4096);
	assert_int_equal(t.tlbis[2].size, 4096);
	assert_int_equal(t.tlbis[2].seen, 0);
	assert_int_equal(s2c_check_counts(&t.s2), 2);

	/* Unmap the rest around it: the tables empty and go. */
	assert_int_equal(mv_s2_unmap(&t.s2, GiB, GiB), MV_PGT_OK);
	assert_int_equal(live(&t), 2);
	assert_int_equal(s2c_entry(&t.s2, GiB, 1), 0);
	/* Every TLBI of the unmap saw its entry invalid already. */
	assert_true(t.nr_tlbi > 3);
	for (unsigned i = 3; i < t.nr_tlbi && i < MAX_TLBI; i++)
		assert_false(t.tlbis[i].seen & MV_S2_VALID);
	/* Unmapping nothing changes nothing. */
	assert_int_equal(mv_s2_unmap(&t.s2, 0, 1ull << 40), MV_PGT_OK);
	assert_int_equal(live(&t), 2);
	t_fini(&t);
}

/* Without memory to split a partly covered block, unmap takes the whole block. */
static void test_unmap_nomem_takes_block(void **state)
{
	t_s2 t;
	int level;

	(void)state;
	t_init(&t);
	assert_int_equal(mv_s2_map(&t.s2, 2 * MiB, 2 * MiB, PA0, ATTR_RW, 1, 0), MV_PGT_OK);
	assert_int_equal(live(&t), 3);
	t.fa.fail_at = t.fa.calls + 1;
	t.fa.fail_all = true;
	assert_int_equal(mv_s2_unmap(&t.s2, 3 * MiB, 4096), MV_PGT_OK);
	assert_int_equal(leaf(&t, 2 * MiB, &level), 0);
	assert_int_equal(leaf(&t, 4 * MiB - 1, &level), 0);
	assert_int_equal(live(&t), 2);
	t.fa.fail_at = 0;
	t_fini(&t);
}

static void test_wrprotect(void **state)
{
	t_s2 t;
	int level;

	(void)state;
	t_init(&t);
	assert_int_equal(mv_s2_map(&t.s2, 0, 8 * MiB, PA0, ATTR_RW, 2, 0), MV_PGT_OK);
	assert_int_equal(mv_s2_map(&t.s2, 8 * MiB, 64 * KiB, PA0 + 8 * MiB, ATTR_RW, 3, 0), MV_PGT_OK);
	assert_int_equal(mv_s2_map(&t.s2, 8 * MiB + 64 * KiB, 4096, PA0, ATTR_RO, 3, 0), MV_PGT_OK);
	t.nr_tlbi = 0;
	/* Blocks 2 MiB..6 MiB whole, pages 8 MiB..8 MiB+64 KiB, the RO page untouched. */
	assert_int_equal(mv_s2_wrprotect(&t.s2, 2 * MiB, 6 * MiB + 128 * KiB), MV_PGT_OK);
	assert_int_equal(leaf(&t, 0, &level), PA0 | ATTR_RW | TYPE_BLOCK);
	assert_int_equal(leaf(&t, 2 * MiB, &level), (PA0 + 2 * MiB) | ATTR_RO | TYPE_BLOCK);
	assert_int_equal(leaf(&t, 6 * MiB, &level), (PA0 + 6 * MiB) | ATTR_RO | TYPE_BLOCK);
	assert_int_equal(leaf(&t, 8 * MiB + 60 * KiB, &level), (PA0 + 8 * MiB + 60 * KiB) | ATTR_RO | TYPE_PAGE);
	assert_int_equal(leaf(&t, 8 * MiB + 64 * KiB, &level), PA0 | ATTR_RO | TYPE_PAGE);
	/* One TLBI covering exactly the leaves that changed. */
	assert_int_equal(t.nr_tlbi, 1);
	assert_int_equal(t.tlbis[0].ipa, 2 * MiB);
	assert_int_equal(t.tlbis[0].size, 6 * MiB + 64 * KiB);
	assert_int_equal(t.s2.nr_bbm, 0);

	/* A block covered in part is split; the rest stays writable. */
	assert_int_equal(mv_s2_wrprotect(&t.s2, 4096, 4096), MV_PGT_OK);
	assert_int_equal(leaf(&t, 0, &level), PA0 | ATTR_RW | TYPE_PAGE);
	assert_int_equal(leaf(&t, 4096, &level), (PA0 + 4096) | ATTR_RO | TYPE_PAGE);
	assert_int_equal(leaf(&t, 8192, &level), (PA0 + 8192) | ATTR_RW | TYPE_PAGE);
	assert_int_equal(t.s2.nr_bbm, 1);
	assert_int_equal(t.nr_tlbi, 3);       /* the block's break, then the final one */
	assert_int_equal(t.tlbis[2].ipa, 4096);
	assert_int_equal(t.tlbis[2].size, 4096);

	/* Without memory for the split the whole block is protected (safe). */
	t.fa.fail_at = t.fa.calls + 1;
	t.fa.fail_all = true;
	assert_int_equal(mv_s2_map(&t.s2, 16 * MiB, 2 * MiB, PA0, ATTR_RW, 2, 0), MV_PGT_OK);
	assert_int_equal(mv_s2_wrprotect(&t.s2, 16 * MiB, 4096), MV_PGT_OK);
	assert_int_equal(leaf(&t, 18 * MiB - 4096, &level), PA0 | ATTR_RO | TYPE_BLOCK);
	assert_int_equal(level, 2);
	assert_int_equal(t.tlbis[t.nr_tlbi - 1].ipa, 16 * MiB);
	assert_int_equal(t.tlbis[t.nr_tlbi - 1].size, 2 * MiB);
	t.fa.fail_at = 0;
	t_fini(&t);
}

static void test_relax_perms(void **state)
{
	const uint64_t ro_old = ATTR_RO & ~MV_S2_AF;
	t_s2 t;
	int level;

	(void)state;
	t_init(&t);
	assert_int_equal(mv_s2_map(&t.s2, 0x5000, 4096, PA0, ro_old, 3, 0), MV_PGT_OK);
	assert_int_equal(leaf(&t, 0x5000, NULL), PA0 | ro_old | TYPE_PAGE);
	assert_int_equal(mv_s2_relax_perms(&t.s2, 0x5000, MV_S2_PROT_W, MV_PGT_WALK_SHARED), MV_PGT_OK);
	assert_int_equal(leaf(&t, 0x5000, NULL), PA0 | ATTR_RW | TYPE_PAGE);
	assert_int_equal(mv_s2_relax_perms(&t.s2, 0x5fff, MV_S2_PROT_X, 0), MV_PGT_OK);
	assert_int_equal(leaf(&t, 0x5000, NULL), PA0 | ATTR_RWX | TYPE_PAGE);
	assert_int_equal(mv_s2_relax_perms(&t.s2, 0x5000, MV_S2_PROT_R | MV_S2_PROT_W, 0), MV_PGT_OK);
	assert_int_equal(leaf(&t, 0x5000, NULL), PA0 | ATTR_RWX | TYPE_PAGE);
	assert_int_equal(t.nr_tlbi, 0);
	/* A block: the whole block gains the right. */
	assert_int_equal(mv_s2_map(&t.s2, 2 * MiB, 2 * MiB, PA0, ATTR_RO, 2, 0), MV_PGT_OK);
	assert_int_equal(mv_s2_relax_perms(&t.s2, 3 * MiB, MV_S2_PROT_W, 0), MV_PGT_OK);
	assert_int_equal(leaf(&t, 2 * MiB, &level), PA0 | ATTR_RW | TYPE_BLOCK);
	/* Nothing there. */
	assert_int_equal(mv_s2_relax_perms(&t.s2, 0x6000, MV_S2_PROT_W, 0), MV_PGT_NOENT);
	assert_int_equal(mv_s2_relax_perms(&t.s2, 5 * GiB, MV_S2_PROT_W, 0), MV_PGT_NOENT);
	assert_int_equal(mv_s2_relax_perms(&t.s2, 1ull << 40, MV_S2_PROT_W, 0), MV_PGT_RANGE);
	t_fini(&t);
}

static void test_young(void **state)
{
	const uint64_t old_attr = ATTR_RW & ~MV_S2_AF;
	t_s2 t;
	mv_pte pte = 1;

	(void)state;
	t_init(&t);
	assert_int_equal(mv_s2_map(&t.s2, 0, 4 * MiB, PA0, old_attr, 2, 0), MV_PGT_OK);
	assert_int_equal(mv_s2_map(&t.s2, 4 * MiB, 16 * KiB, PA0, old_attr, 3, 0), MV_PGT_OK);
	assert_false(mv_s2_test_clear_young(&t.s2, 0, 8 * MiB, true));
	assert_int_equal(t.nr_tlbi, 0);

	assert_int_equal(mv_s2_mkyoung(&t.s2, 4 * MiB + 8 * KiB, &pte, MV_PGT_WALK_SHARED), MV_PGT_OK);
	assert_int_equal(pte, (PA0 + 8 * KiB) | ATTR_RW | TYPE_PAGE);
	assert_int_equal(leaf(&t, 4 * MiB + 8 * KiB, NULL), pte);
	assert_int_equal(mv_s2_mkyoung(&t.s2, 3 * MiB, &pte, 0), MV_PGT_OK);
	assert_int_equal(pte, (PA0 + 2 * MiB) | ATTR_RW | TYPE_BLOCK);
	assert_int_equal(mv_s2_mkyoung(&t.s2, 5 * MiB, &pte, 0), MV_PGT_NOENT);
	assert_int_equal(pte, 0);

	/* Test only: young, nothing changes. */
	assert_true(mv_s2_test_clear_young(&t.s2, 4 * MiB, 16 * KiB, false));
	assert_false(mv_s2_test_clear_young(&t.s2, 4 * MiB, 8 * KiB, false));
	assert_int_equal(t.nr_tlbi, 0);
	/* Clear: AF goes on both leaves, one TLBI over both (block 2..4 MiB, page 4 MiB+8K). */
	assert_true(mv_s2_test_clear_young(&t.s2, 0, 8 * MiB, true));
	assert_int_equal(leaf(&t, 4 * MiB + 8 * KiB, NULL), (PA0 + 8 * KiB) | old_attr | TYPE_PAGE);
	assert_int_equal(leaf(&t, 2 * MiB, NULL), (PA0 + 2 * MiB) | old_attr | TYPE_BLOCK);
	assert_int_equal(t.nr_tlbi, 1);
	assert_int_equal(t.tlbis[0].ipa, 2 * MiB);
	assert_int_equal(t.tlbis[0].size, 2 * MiB + 12 * KiB);
	assert_false(mv_s2_test_clear_young(&t.s2, 0, 8 * MiB, true));
	t_fini(&t);
}

/* get_leaf reports only descriptors the hardware would use as leaves. */
static void test_get_leaf_validity(void **state)
{
	mv_s2_config cfg;
	t_s2 t;
	mv_pte *root, *l1, pte;
	int level;

	(void)state;
	assert_int_equal(mv_s2_config_for_ipa(48, 12, &cfg), 0);
	assert_int_equal(cfg.start_level, 0);
	t_init_cfg(&t, &cfg);
	assert_int_equal(mv_s2_map(&t.s2, 0x1000, 4096, PA0, ATTR_RW, 3, 0), MV_PGT_OK);
	root = (mv_pte *)(uintptr_t)t.s2.pgt.root_pa;
	l1 = (mv_pte *)(uintptr_t)(root[0] & MV_S2_OA_MASK(12));
	/* A level-0 block (needs FEAT_LPA2 with 4 KiB) is no leaf. */
	root[5] = (5ull << 39) | ATTR_RW | TYPE_BLOCK;
	assert_int_equal(mv_s2_get_leaf(&t.s2, 5ull << 39, &pte, &level), MV_PGT_OK);
	assert_int_equal(pte, 0);
	assert_int_equal(level, 0);
	root[5] = 0;
	/* A level-1 block is. */
	l1[3] = PA0 | ATTR_RW | TYPE_BLOCK;
	assert_int_equal(mv_s2_get_leaf(&t.s2, 3 * GiB + 77, &pte, &level), MV_PGT_OK);
	assert_int_equal(pte, PA0 | ATTR_RW | TYPE_BLOCK);
	assert_int_equal(level, 1);
	l1[3] = 0;
	/* Level 3 with bits[1:0] = 0b01 is reserved: invalid. */
	{
		mv_pte *l2 = (mv_pte *)(uintptr_t)(l1[0] & MV_S2_OA_MASK(12));
		mv_pte *l3 = (mv_pte *)(uintptr_t)(l2[0] & MV_S2_OA_MASK(12));

		l3[1] = PA0 | ATTR_RW | TYPE_BLOCK;
		assert_int_equal(mv_s2_get_leaf(&t.s2, 0x1000, &pte, &level), MV_PGT_OK);
		assert_int_equal(pte, 0);
		assert_int_equal(level, 3);
		l3[1] = PA0 | ATTR_RW | TYPE_PAGE;
	}
	t_fini(&t);
}

static void test_split(void **state)
{
	t_s2 t;
	int level;

	(void)state;
	t_init(&t);
	assert_int_equal(mv_s2_map(&t.s2, GiB, GiB, PA0, ATTR_RO, 1, 0), MV_PGT_OK);
	assert_int_equal(mv_s2_split(&t.s2, GiB + 6 * MiB + 4096, 4096), MV_PGT_OK);
	assert_int_equal(t.nr_tlbi, 2);
	assert_int_equal(t.tlbis[0].ipa, GiB);
	assert_int_equal(t.tlbis[0].size, GiB);
	assert_int_equal(t.tlbis[0].seen, MV_S2_PTE_LOCKED);
	assert_int_equal(t.tlbis[1].ipa, GiB + 6 * MiB);
	assert_int_equal(t.tlbis[1].size, 2 * MiB);
	assert_int_equal(t.s2.nr_bbm, 2);
	assert_int_equal(live(&t), 4);
	/* Identical attributes one and two levels down. */
	for (unsigned i = 0; i < 512; i++) {
		uint64_t ipa = GiB + i * 2 * MiB;

		if (i == 3) {
			for (unsigned k = 0; k < 512; k += 37) {
				assert_int_equal(leaf(&t, ipa + k * 4096, &level),
						 (PA0 + i * 2 * MiB + k * 4096) | ATTR_RO | TYPE_PAGE);
				assert_int_equal(level, 3);
			}
			continue;
		}
		assert_int_equal(leaf(&t, ipa + 12345, &level), (PA0 + i * 2 * MiB) | ATTR_RO | TYPE_BLOCK);
		assert_int_equal(level, 2);
	}
	assert_int_equal(s2c_check_counts(&t.s2), 2);
	/* Splitting pages or nothing is a no-op. */
	assert_int_equal(mv_s2_split(&t.s2, GiB + 6 * MiB, 2 * MiB), MV_PGT_OK);
	assert_int_equal(mv_s2_split(&t.s2, 100 * GiB, GiB), MV_PGT_OK);
	assert_int_equal(t.nr_tlbi, 2);

	/* No memory: NOMEM, still a correct mapping. */
	t.fa.fail_at = t.fa.calls + 1;
	t.fa.fail_all = true;
	assert_int_equal(mv_s2_split(&t.s2, GiB, 4 * MiB), MV_PGT_NOMEM);
	t.fa.fail_at = 0;
	for (uint64_t off = 0; off < 8 * MiB; off += 4096) {
		uint64_t pa, attrs;

		assert_true(s2c_translate(&t.s2, GiB + off, &pa, &attrs, &level));
		assert_int_equal(pa, PA0 + off);
		assert_int_equal(attrs, ATTR_RO);
	}
	/* With memory: everything down to pages. */
	assert_int_equal(mv_s2_split(&t.s2, GiB, GiB), MV_PGT_OK);
	assert_int_equal(live(&t), 2 + 1 + 512);
	{
		mv_s2_stats st;

		mv_s2_get_stats(&t.s2, &st);
		assert_int_equal(st.leaves[3], 512 * 512);
		assert_int_equal(st.leaves[2] + st.leaves[1] + st.leaves[0], 0);
		assert_int_equal(st.tables, 513);
		assert_int_equal(st.bbm, 2 + 511);
		assert_int_equal(st.tlbi, t.nr_tlbi);
	}
	t_fini(&t);
}

static void test_set_owner(void **state)
{
	t_s2 t;
	mv_pte *l2;
	int level;

	(void)state;
	t_init(&t);
	/* Pages there are unmapped (TLBI), the range annotated: a 2 MiB entry and a page. */
	assert_int_equal(mv_s2_map(&t.s2, 2 * MiB, 8 * KiB, PA0, ATTR_RW, 3, 0), MV_PGT_OK);
	assert_int_equal(mv_s2_set_owner(&t.s2, 2 * MiB, 2 * MiB + 4096, 5), MV_PGT_OK);
	assert_int_equal(s2c_entry(&t.s2, 2 * MiB, 2), 5ull << 2);
	assert_int_equal(s2c_entry(&t.s2, 4 * MiB, 3), 5ull << 2);
	assert_int_equal(s2c_entry(&t.s2, 4 * MiB + 4096, 3), 0);
	assert_int_equal(leaf(&t, 2 * MiB, &level), 0);
	assert_int_equal(t.nr_tlbi, 1);                     /* the table of two pages went */
	assert_int_equal(t.tlbis[0].ipa, 2 * MiB);
	assert_int_equal(t.tlbis[0].size, 2 * MiB);
	assert_int_equal(t.tlbis[0].seen, MV_S2_PTE_LOCKED);
	assert_int_equal(live(&t), 4);                      /* root, l2, l3 for 4 MiB */
	assert_int_equal(s2c_check_counts(&t.s2), 2);

	/* Annotations keep their table alive through unmaps elsewhere. */
	assert_int_equal(mv_s2_map(&t.s2, 0, 4096, PA0, ATTR_RW, 3, 0), MV_PGT_OK);
	assert_int_equal(mv_s2_unmap(&t.s2, 0, 4096), MV_PGT_OK);
	assert_int_equal(live(&t), 4);

	/* A page mapped into the annotated 2 MiB: the others keep the owner. */
	assert_int_equal(mv_s2_map(&t.s2, 3 * MiB, 4096, PA0, ATTR_RW, 3, 0), MV_PGT_OK);
	assert_int_equal(leaf(&t, 3 * MiB, &level), PA0 | ATTR_RW | TYPE_PAGE);
	assert_int_equal(s2c_entry(&t.s2, 3 * MiB + 4096, 3), 5ull << 2);
	assert_int_equal(s2c_entry(&t.s2, 2 * MiB, 3), 5ull << 2);
	assert_int_equal(s2c_check_counts(&t.s2), 3);

	/* Another owner over part of it, then owner 0 clears everything. */
	assert_int_equal(mv_s2_set_owner(&t.s2, 3 * MiB, 8192, 200), MV_PGT_OK);
	assert_int_equal(s2c_entry(&t.s2, 3 * MiB, 3), 200ull << 2);
	assert_int_equal(s2c_entry(&t.s2, 3 * MiB + 8192, 3), 5ull << 2);
	assert_int_equal(mv_s2_set_owner(&t.s2, 0, 8 * MiB, 256), MV_PGT_RANGE);
	assert_int_equal(mv_s2_set_owner(&t.s2, 0, 8 * MiB, 0), MV_PGT_OK);
	assert_int_equal(live(&t), 2);

	/* A mapped 1 GiB block annotated in part: split, the rest stays mapped. */
	assert_int_equal(mv_s2_map(&t.s2, GiB, GiB, PA0, ATTR_RW, 1, 0), MV_PGT_OK);
	assert_int_equal(mv_s2_set_owner(&t.s2, GiB, 2 * MiB, 9), MV_PGT_OK);
	l2 = (mv_pte *)(uintptr_t)(s2c_entry(&t.s2, GiB, 1) & MV_S2_OA_MASK(12));
	assert_int_equal(l2[0], 9ull << 2);
	assert_int_equal(l2[1], (PA0 + 2 * MiB) | ATTR_RW | TYPE_BLOCK);
	/* An annotation covered in part with no memory to split: NOMEM, untouched. */
	t.fa.fail_at = t.fa.calls + 1;
	t.fa.fail_all = true;
	assert_int_equal(mv_s2_unmap(&t.s2, GiB, 4096), MV_PGT_NOMEM);
	assert_int_equal(l2[0], 9ull << 2);
	t.fa.fail_at = 0;
	t_fini(&t);
}

static void test_stats_and_destroy(void **state)
{
	t_s2 t;
	mv_s2_stats st;

	(void)state;
	t_init(&t);
	assert_int_equal(mv_s2_map(&t.s2, GiB, GiB, PA0, ATTR_RW, 1, 0), MV_PGT_OK);
	assert_int_equal(mv_s2_map(&t.s2, 4 * GiB, 4 * MiB + 8 * KiB, PA0, ATTR_RW, 2, 0), MV_PGT_OK);
	assert_int_equal(mv_s2_set_owner(&t.s2, 8 * GiB, 4096, 3), MV_PGT_OK);
	assert_int_equal(mv_s2_map(&t.s2, 4 * GiB, 4096, PA0 + 4096, ATTR_RW, 3, 0), MV_PGT_OK);
	mv_s2_get_stats(&t.s2, &st);
	assert_int_equal(st.leaves[0], 0);
	assert_int_equal(st.leaves[1], 1);
	assert_int_equal(st.leaves[2], 1);           /* 4 GiB + 2 MiB */
	assert_int_equal(st.leaves[3], 512 + 2);     /* the split first block, and 4 GiB + 4 MiB.. */
	assert_int_equal(st.tables, 2 + 3);
	assert_int_equal(st.bbm, 2);
	assert_int_equal(st.tlbi, 2);
	assert_int_equal(live(&t), 2 + 5);
	/* Destroy frees every page, whatever is mapped (t_fini checks 0). */
	t_fini(&t);
}

/*
 * A sequence of operations with the n-th allocation failing, for every n:
 * the failing operation says NOMEM (or, for unmap/wrprotect, takes the safe
 * way), counts stay exact, whatever translates is right, and unmapping
 * everything gives back every table page.
 */
static mv_pgt_result fail_seq_op(t_s2 *t, int i)
{
	switch (i) {
	case 0: return mv_s2_map(&t->s2, 0, 8 * MiB, PA0, ATTR_RW, 3, 0);
	case 1: return mv_s2_map(&t->s2, GiB, GiB, PA0 + GiB, ATTR_RW, 1, 0);
	case 2: return mv_s2_map(&t->s2, 2 * GiB + 4096, 4 * MiB, PA0 + 2 * GiB + 4096, ATTR_RW, 1, 0);
	case 3: return mv_s2_split(&t->s2, GiB + 2 * MiB, 4096);
	case 4: return mv_s2_map(&t->s2, 0, 2 * MiB, PA0, ATTR_RW, 1, 0);
	case 5: return mv_s2_unmap(&t->s2, GiB + 4 * MiB + 8192, 4096);
	case 6: return mv_s2_set_owner(&t->s2, 3 * GiB, 2 * MiB + 4096, 7);
	case 7: return mv_s2_wrprotect(&t->s2, 2 * GiB, 8 * MiB);
	case 8: return mv_s2_map(&t->s2, 3 * GiB + 4 * MiB, 4096, PA0 + 3 * GiB + 4 * MiB, ATTR_RW, 3,
				 MV_PGT_WALK_SHARED);
	case 9: return mv_s2_map(&t->s2, 3 * GiB, 4096, PA0 + 3 * GiB, ATTR_RW, 3, 0);
	}
	return MV_PGT_STOP;
}

static void check_translations(t_s2 *t)
{
	static const uint64_t bases[] = { 0, GiB, GiB + 2 * MiB, 2 * GiB, 2 * GiB + 4 * MiB, 3 * GiB };

	for (size_t b = 0; b < sizeof(bases) / sizeof(bases[0]); b++)
		for (uint64_t off = 0; off < 8 * MiB; off += 4096) {
			uint64_t ipa = bases[b] + off, pa, attrs;
			int level;
			mv_pte pte;

			assert_int_equal(mv_s2_get_leaf(&t->s2, ipa, &pte, &level), MV_PGT_OK);
			if (!s2c_translate(&t->s2, ipa, &pa, &attrs, &level)) {
				assert_int_equal(pte, 0);
				continue;
			}
			assert_int_equal(pa, PA0 + ipa);
			assert_true(attrs == ATTR_RW || attrs == ATTR_RO);
			assert_int_equal(pte & ~3ull & ~MV_S2_OA_MASK(12), attrs);
		}
}

static void test_alloc_failure_every_allocation(void **state)
{
	unsigned long fail;
	unsigned failures_seen = 0;

	(void)state;
	for (fail = 1;; fail++) {
		t_s2 *t = test_malloc(sizeof(*t));
		unsigned nomem = 0;
		bool injected;
		mv_pgt_result r;

		t_init(t);
		t->fa.fail_at = t->fa.calls + fail;
		for (int i = 0; (r = fail_seq_op(t, i)) != MV_PGT_STOP; i++) {
			if (r == MV_PGT_NOMEM)
				nomem++;
			else
				assert_int_equal(r, MV_PGT_OK);
			assert_true(s2c_check_counts(&t->s2) >= 0);
		}
		injected = t->fa.calls >= t->fa.fail_at;
		t->fa.fail_at = 0;
		assert_true(nomem <= 1);
		failures_seen += nomem;
		check_translations(t);
		assert_int_equal(mv_s2_unmap(&t->s2, 0, 1ull << 40), MV_PGT_OK);
		assert_int_equal(live(t), 2);
		t_fini(t);
		test_free(t);
		if (!injected)
			break;
	}
	printf("# %lu allocations failed in turn, %u operations said NOMEM\n", fail - 1, failures_seen);
	assert_true(fail > 12);
	assert_true(failures_seen >= 10);
}

/* ------------------------------------------------------------------ */
/* VTCR_EL2                                                              */

#define VT(t0sz, sl0, tg0, ps)                                                          \
	((uint64_t)(t0sz) | (uint64_t)(sl0) << 6 | (uint64_t)(tg0) << 14 | (uint64_t)(ps) << 16 | \
	 MV_VTCR_RES1)

static void test_vtcr_decode_accept(void **state)
{
	static const struct { uint64_t vtcr; mv_s2_config cfg; } ok[] = {
		/* 4 KiB (TG0=0): SL0 0 -> level 2, 1 -> level 1, 2 -> level 0 */
		{ VT(24, 1, 0, 5), { 40, 12, 1, 48 } },
		{ VT(16, 2, 0, 5), { 48, 12, 0, 48 } },
		{ VT(24, 2, 0, 5), { 40, 12, 0, 48 } },      /* 1 bit at level 0 */
		{ VT(21, 1, 0, 5), { 43, 12, 1, 48 } },      /* 16 level-1 tables */
		{ VT(32, 0, 0, 0), { 32, 12, 2, 32 } },      /* 2048 entries: 4 tables */
		{ VT(30, 0, 0, 2), { 34, 12, 2, 40 } },      /* 16 level-2 tables */
		{ VT(28, 1, 0, 1), { 36, 12, 1, 36 } },
		/* 16 KiB (TG0=2): SL0 1 -> level 2, 2 -> level 1 */
		{ VT(16, 2, 2, 5), { 48, 14, 1, 48 } },
		{ VT(24, 1, 2, 5), { 40, 14, 2, 48 } },      /* 16 level-2 tables */
		{ VT(28, 1, 2, 5), { 36, 14, 2, 48 } },
		{ VT(27, 2, 2, 5), { 37, 14, 1, 48 } },
		/* 64 KiB (TG0=1): SL0 0 -> level 3, 1 -> level 2, 2 -> level 1 */
		{ VT(16, 2, 1, 5), { 48, 16, 1, 48 } },
		{ VT(18, 1, 1, 5), { 46, 16, 2, 48 } },      /* 16 level-2 tables */
		{ VT(32, 1, 1, 0), { 32, 16, 2, 32 } },
		{ VT(32, 0, 1, 0), { 32, 16, 3, 32 } },      /* 8 level-3 tables */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		mv_s2_config cfg;
		mv_error err = { 0 };

		assert_int_equal(mv_vtcr_decode(ok[i].vtcr, &cfg, &err), 0);
		assert_int_equal(cfg.ia_bits, ok[i].cfg.ia_bits);
		assert_int_equal(cfg.granule_shift, ok[i].cfg.granule_shift);
		assert_int_equal(cfg.start_level, ok[i].cfg.start_level);
		assert_int_equal(cfg.oa_bits, ok[i].cfg.oa_bits);
		/* Encoding gives back T0SZ, SL0, TG0 and PS, with KVM's walk attributes. */
		assert_int_equal(mv_vtcr_encode(&cfg), ok[i].vtcr | 0x3500);
	}
}

static void test_vtcr_decode_reject(void **state)
{
	static const struct { uint64_t vtcr; const char *msg; } bad[] = {
		{ VT(24, 1, 3, 5), "VTCR_EL2.TG0=3 is reserved" },
		{ VT(24, 1, 0, 7), "VTCR_EL2.PS=7 is reserved" },
		{ VT(24, 1, 0, 6), "VTCR_EL2.PS=6 (52 bits) needs FEAT_LPA (not implemented)" },
		{ VT(24, 1, 0, 5) | MV_VTCR_DS, "VTCR_EL2.DS=1 needs FEAT_LPA2 (not implemented)" },
		{ VT(8, 2, 0, 5), "VTCR_EL2.T0SZ=8 gives a 56-bit IPA space; this stage-2 supports 32 to 48 bits" },
		{ VT(33, 0, 0, 5), "VTCR_EL2.T0SZ=33 gives a 31-bit IPA space; this stage-2 supports 32 to 48 bits" },
		{ VT(24, 1, 0, 1),
		  "VTCR_EL2.T0SZ=24 gives a 40-bit IPA space, larger than the 36-bit output size of VTCR_EL2.PS=1" },
		{ VT(32, 3, 0, 5),
		  "VTCR_EL2.SL0=3 with TG0=0 (4 KiB granule) selects start level 3, which needs FEAT_TTST (not implemented)" },
		{ VT(16, 3, 2, 5),
		  "VTCR_EL2.SL0=3 with TG0=2 (16 KiB granule) selects start level 0, which needs VTCR_EL2.DS=1 (FEAT_LPA2, not implemented)" },
		{ VT(16, 3, 1, 5), "VTCR_EL2.SL0=3 with TG0=1 (64 KiB granule) is reserved (start level 0)" },
		{ VT(24, 0, 0, 5), "VTCR_EL2.SL0=0 with T0SZ=24 needs 1024 concatenated level-2 tables (at most 16)" },
		{ VT(20, 1, 0, 5), "VTCR_EL2.SL0=1 with T0SZ=20 needs 32 concatenated level-1 tables (at most 16)" },
		{ VT(26, 2, 0, 5),
		  "VTCR_EL2.SL0=2 with T0SZ=26: start level 0 resolves no bit of a 38-bit IPA space (4 KiB granule)" },
		{ VT(23, 1, 2, 5), "VTCR_EL2.SL0=1 with T0SZ=23 needs 32 concatenated level-2 tables (at most 16)" },
		{ VT(28, 2, 2, 5),
		  "VTCR_EL2.SL0=2 with T0SZ=28: start level 1 resolves no bit of a 36-bit IPA space (16 KiB granule)" },
		{ VT(32, 0, 2, 5), "VTCR_EL2.SL0=0 with T0SZ=32 needs 128 concatenated level-3 tables (at most 16)" },
		{ VT(17, 1, 1, 5), "VTCR_EL2.SL0=1 with T0SZ=17 needs 32 concatenated level-2 tables (at most 16)" },
		{ VT(22, 2, 1, 5),
		  "VTCR_EL2.SL0=2 with T0SZ=22: start level 1 resolves no bit of a 42-bit IPA space (64 KiB granule)" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		mv_s2_config cfg = { 1, 2, 3, 4 };
		mv_error err = { 0 };

		assert_int_equal(mv_vtcr_decode(bad[i].vtcr, &cfg, &err), -EINVAL);
		assert_int_equal(err.code, -EINVAL);
		assert_string_equal(err.msg, bad[i].msg);
		assert_int_equal(cfg.ia_bits, 1);          /* untouched */
		assert_int_equal(mv_vtcr_decode(bad[i].vtcr, &cfg, NULL), -EINVAL);
	}
}

/* KVM's choice (kvm_get_vtcr): levels = ARM64_HW_PGTABLE_LEVELS(ia - 4), at least 2. */
static void test_config_for_ipa(void **state)
{
	static const struct { unsigned ia, g; int start; unsigned root_pages; } spot[] = {
		{ 32, 12, 2, 4 }, { 36, 12, 1, 1 }, { 39, 12, 1, 1 }, { 40, 12, 1, 2 }, { 42, 12, 1, 8 },
		{ 43, 12, 1, 16 }, { 44, 12, 0, 1 }, { 48, 12, 0, 1 }, { 40, 14, 2, 16 },
		{ 41, 14, 1, 1 }, { 48, 14, 1, 2 }, { 42, 16, 2, 1 }, { 46, 16, 2, 16 },
		{ 47, 16, 1, 1 }, { 48, 16, 1, 1 }, { 32, 16, 2, 1 },
	};
	mv_s2_config cfg;

	(void)state;
	for (size_t i = 0; i < sizeof(spot) / sizeof(spot[0]); i++) {
		mv_pgt p = { .granule_shift = spot[i].g, .last_level = 3 };

		assert_int_equal(mv_s2_config_for_ipa(spot[i].ia, spot[i].g, &cfg), 0);
		assert_int_equal(cfg.start_level, spot[i].start);
		assert_int_equal(cfg.oa_bits, 48);
		p.ia_bits = cfg.ia_bits;
		p.start_level = cfg.start_level;
		assert_int_equal(mv_pgt_root_pages(&p), spot[i].root_pages);
	}
	/* Every size and granule: consistent, and VTCR round-trips. */
	for (unsigned g = 12; g <= 16; g += 2)
		for (unsigned ia = 32; ia <= 48; ia++) {
			mv_s2_config back;
			mv_error err = { 0 };

			assert_int_equal(mv_s2_config_for_ipa(ia, g, &cfg), 0);
			assert_int_equal(mv_s2_config_check(&cfg, &err), 0);
			assert_int_equal(mv_vtcr_decode(mv_vtcr_encode(&cfg), &back, &err), 0);
			assert_memory_equal(&back, &cfg, sizeof(cfg));
		}
	/* KVM's VTCR_EL2 for a 40-bit IPA, 4 KiB, 48-bit PA. */
	assert_int_equal(mv_s2_config_for_ipa(40, 12, &cfg), 0);
	assert_int_equal(mv_vtcr_encode(&cfg), 0x80053558ull);
	assert_int_equal(mv_s2_config_for_ipa(31, 12, &cfg), -EINVAL);
	assert_int_equal(mv_s2_config_for_ipa(49, 12, &cfg), -EINVAL);
	assert_int_equal(mv_s2_config_for_ipa(40, 13, &cfg), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_destroy),
		cmocka_unit_test(test_init_errors),
		cmocka_unit_test(test_prot_attr),
		cmocka_unit_test(test_map_page_exact),
		cmocka_unit_test(test_map_block_choice),
		cmocka_unit_test(test_map_block_choice_16k_64k),
		cmocka_unit_test(test_map_range_errors),
		cmocka_unit_test(test_map_existing),
		cmocka_unit_test(test_bbm_order),
		cmocka_unit_test(test_shared_map_below_table),
		cmocka_unit_test(test_unmap),
		cmocka_unit_test(test_unmap_nomem_takes_block),
		cmocka_unit_test(test_wrprotect),
		cmocka_unit_test(test_relax_perms),
		cmocka_unit_test(test_young),
		cmocka_unit_test(test_get_leaf_validity),
		cmocka_unit_test(test_split),
		cmocka_unit_test(test_set_owner),
		cmocka_unit_test(test_stats_and_destroy),
		cmocka_unit_test(test_alloc_failure_every_allocation),
		cmocka_unit_test(test_vtcr_decode_accept),
		cmocka_unit_test(test_vtcr_decode_reject),
		cmocka_unit_test(test_config_for_ipa),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
