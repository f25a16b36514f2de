/* The soft TLB: tags, rights, replacement, exact flushes, generation sync, stats. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "testutil.h"
#include "memvirt/soft_tlb.h"

static mv_tlb *new_tlb(unsigned n)
{
	mv_tlb *tlb = NULL;

	assert_int_equal(mv_tlb_new(n, NULL, &tlb), 0);
	assert_non_null(tlb);
	return tlb;
}

static mv_tlb_entry entry(uint16_t vmid, uint8_t el, uint64_t va_page, uint64_t ipa_page,
			  unsigned rights)
{
	mv_tlb_entry e = {
		.vmid = vmid, .el = el, .rights = (uint8_t)rights, .va_page = va_page,
		.ipa_page = ipa_page, .host_page = 0x7f0000000ull + ipa_page,
	};
	return e;
}

static void insert(mv_tlb *tlb, mv_tlb_entry e)
{
	mv_tlb_lock(tlb);
	mv_tlb_insert(tlb, &e);
	mv_tlb_unlock(tlb);
}

static bool present(mv_tlb *tlb, uint16_t vmid, uint8_t el, uint64_t va_page, unsigned need)
{
	mv_tlb_entry out;
	bool hit;

	mv_tlb_lock(tlb);
	hit = mv_tlb_lookup(tlb, vmid, el, va_page, need, &out);
	mv_tlb_unlock(tlb);
	return hit;
}

static void test_new_errors(void **state)
{
	tu_failing_alloc fa;
	mv_tlb *tlb = (mv_tlb *)1;

	(void)state;
	assert_int_equal(mv_tlb_new(0, NULL, &tlb), -EINVAL);
	assert_null(tlb);
	assert_int_equal(mv_tlb_new(48, NULL, &tlb), -EINVAL);
	assert_int_equal(mv_tlb_new(1u << 21, NULL, &tlb), -EINVAL);
	for (unsigned long k = 1; k <= 3; k++) {
		tu_failing_alloc_init(&fa, k, false);
		assert_int_equal(mv_tlb_new(64, &fa.alloc, &tlb), -ENOMEM);
		assert_null(tlb);
	}
	mv_tlb_free(NULL);
}

static void test_lookup_tags_and_rights(void **state)
{
	mv_tlb *tlb = new_tlb(64);
	mv_tlb_entry out;
	mv_tlb_stats st;

	(void)state;
	insert(tlb, entry(5, 1, 0x40000, 0x80000, MV_TLB_R | MV_TLB_X));
	mv_tlb_lock(tlb);
	assert_true(mv_tlb_lookup(tlb, 5, 1, 0x40000, MV_TLB_R, &out));
	mv_tlb_unlock(tlb);
	assert_int_equal(out.vmid, 5);
	assert_int_equal(out.el, 1);
	assert_int_equal(out.ipa_page, 0x80000);
	assert_int_equal(out.host_page, 0x7f0000000ull + 0x80000);
	assert_int_equal(out.rights, MV_TLB_R | MV_TLB_X);
	assert_true(present(tlb, 5, 1, 0x40000, MV_TLB_R | MV_TLB_X));
	assert_true(present(tlb, 5, 1, 0x40000, 0));
	/* Rights missing, other VMID, other EL, other page: misses. */
	assert_false(present(tlb, 5, 1, 0x40000, MV_TLB_W));
	assert_false(present(tlb, 5, 1, 0x40000, MV_TLB_R | MV_TLB_W));
	assert_false(present(tlb, 6, 1, 0x40000, MV_TLB_R));
	assert_false(present(tlb, 5, 0, 0x40000, MV_TLB_R));
	assert_false(present(tlb, 5, 1, 0x40001, MV_TLB_R));
	/* Re-inserting the tag with more rights replaces the entry. */
	insert(tlb, entry(5, 1, 0x40000, 0x80000, MV_TLB_R | MV_TLB_W));
	assert_true(present(tlb, 5, 1, 0x40000, MV_TLB_W));
	assert_false(present(tlb, 5, 1, 0x40000, MV_TLB_X));
	mv_tlb_get_stats(tlb, &st);
	assert_int_equal(st.hits, 4);
	assert_int_equal(st.misses, 6);
	assert_int_equal(st.inserts, 2);
	assert_int_equal(st.flushes, 0);
	mv_tlb_free(tlb);
}

/* A set holds 4 ways; the 5th tag of a set evicts round-robin, other sets untouched. */
static void test_replacement(void **state)
{
	mv_tlb *tlb = new_tlb(16);   /* 4 sets of 4 ways: pages 0, 4, 8... share set 0 */
	unsigned in = 0;

	(void)state;
	for (uint64_t i = 0; i < 4; i++)
		insert(tlb, entry(1, 1, i * 4, i, MV_TLB_R));
	insert(tlb, entry(1, 1, 1, 100, MV_TLB_R));   /* set 1 */
	for (uint64_t i = 0; i < 4; i++)
		assert_true(present(tlb, 1, 1, i * 4, MV_TLB_R));
	insert(tlb, entry(1, 1, 16, 4, MV_TLB_R));    /* evicts way 0: page 0 */
	assert_false(present(tlb, 1, 1, 0, MV_TLB_R));
	assert_true(present(tlb, 1, 1, 16, MV_TLB_R));
	insert(tlb, entry(1, 1, 20, 5, MV_TLB_R));    /* evicts way 1: page 4 */
	assert_false(present(tlb, 1, 1, 4, MV_TLB_R));
	for (uint64_t p = 0; p <= 20; p += 4)
		in += present(tlb, 1, 1, p, MV_TLB_R);
	assert_int_equal(in, 4);
	assert_true(present(tlb, 1, 1, 1, MV_TLB_R));
	mv_tlb_free(tlb);
}

/* Tiny TLBs are fully associative. */
static void test_small_sizes(void **state)
{
	mv_tlb *one = new_tlb(1), *two = new_tlb(2);

	(void)state;
	insert(one, entry(1, 0, 7, 7, MV_TLB_R));
	insert(one, entry(1, 0, 8, 8, MV_TLB_R));
	assert_false(present(one, 1, 0, 7, MV_TLB_R));
	assert_true(present(one, 1, 0, 8, MV_TLB_R));
	insert(two, entry(1, 0, 7, 7, MV_TLB_R));
	insert(two, entry(1, 0, 9, 9, MV_TLB_R));
	assert_true(present(two, 1, 0, 7, MV_TLB_R));
	assert_true(present(two, 1, 0, 9, MV_TLB_R));
	mv_tlb_free(one);
	mv_tlb_free(two);
}

/* Fill a 256-entry TLB with 3 VMIDs x 64 pages (va page = ipa page + 0x1000). */
static mv_tlb *filled(void)
{
	mv_tlb *tlb = new_tlb(256);

	for (uint16_t vmid = 1; vmid <= 3; vmid++)
		for (uint64_t p = 0; p < 64; p++)
			insert(tlb, entry(vmid, (uint8_t)(p & 1), 0x1000 + p + 64 * vmid, 0x40000 + p,
					  MV_TLB_R));
	return tlb;
}

static bool has(mv_tlb *tlb, uint16_t vmid, uint64_t p)
{
	return present(tlb, vmid, (uint8_t)(p & 1), 0x1000 + p + 64 * vmid, MV_TLB_R);
}

static void test_flush_ipa_exact(void **state)
{
	mv_tlb *tlb = filled();
	mv_tlb_stats st;
	uint64_t start = ((0x40000ull + 10) << 12) + 0x800, end = ((0x40000ull + 20) << 12) + 1;

	(void)state;
	/* Partial first and last pages: pages 10..20 of VMID 2 go, nothing else. */
	mv_tlb_flush_ipa(tlb, 2, start, end - start);
	for (uint16_t vmid = 1; vmid <= 3; vmid++)
		for (uint64_t p = 0; p < 64; p++)
			assert_int_equal(has(tlb, vmid, p), !(vmid == 2 && p >= 10 && p <= 20));
	mv_tlb_get_stats(tlb, &st);
	assert_int_equal(st.flushes, 1);
	assert_int_equal(st.flushed_entries, 11);
	/* Size 0 drops nothing; a range running past 2^64 is clamped. */
	mv_tlb_flush_ipa(tlb, 1, (0x40000ull + 5) << 12, 0);
	assert_true(has(tlb, 1, 5));
	mv_tlb_flush_ipa(tlb, 3, (0x40000ull + 60) << 12, UINT64_MAX);
	for (uint64_t p = 0; p < 64; p++)
		assert_int_equal(has(tlb, 3, p), p < 60);
	mv_tlb_free(tlb);
}

static void test_flush_vmid_and_all(void **state)
{
	mv_tlb *tlb = filled();
	mv_tlb_stats st;

	(void)state;
	mv_tlb_flush_vmid(tlb, 1);
	for (uint16_t vmid = 1; vmid <= 3; vmid++)
		for (uint64_t p = 0; p < 64; p++)
			assert_int_equal(has(tlb, vmid, p), vmid != 1);
	mv_tlb_flush_all(tlb);
	for (uint16_t vmid = 1; vmid <= 3; vmid++)
		for (uint64_t p = 0; p < 64; p++)
			assert_false(has(tlb, vmid, p));
	mv_tlb_get_stats(tlb, &st);
	assert_int_equal(st.flushes, 2);
	assert_int_equal(st.flushed_entries, 192);
	assert_int_equal(st.inserts, 192);
	mv_tlb_free(tlb);
}

/* Randomized against a naive list of entries: inserts, lookups, flushes. */
static void test_random_vs_reference(void **state)
{
	enum { N = 64, OPS = 20000, REF = 4096 };
	uint64_t rng = tu_seed(0x7b1c);
	mv_tlb_entry ref[REF];
	bool ref_valid[REF];
	mv_tlb *tlb = new_tlb(N);
	unsigned nref = 0;

	(void)state;
	memset(ref_valid, 0, sizeof(ref_valid));
	for (unsigned op = 0; op < OPS && nref < REF; op++) {
		unsigned kind = (unsigned)tu_rand_below(&rng, 10);
		uint16_t vmid = (uint16_t)(1 + tu_rand_below(&rng, 3));
		uint8_t el = (uint8_t)tu_rand_below(&rng, 2);
		uint64_t va = tu_rand_below(&rng, 256), ipa = tu_rand_below(&rng, 128);
		mv_tlb_entry e, out;
		bool hit;

		if (kind < 5) {
			e = entry(vmid, el, va, ipa, (unsigned)(1 + tu_rand_below(&rng, 7)));
			insert(tlb, e);
			for (unsigned i = 0; i < nref; i++)
				if (ref_valid[i] && ref[i].vmid == vmid && ref[i].el == el && ref[i].va_page == va)
					ref_valid[i] = false;
			ref[nref] = e;
			ref_valid[nref++] = true;
		} else if (kind < 9) {
			unsigned need = (unsigned)tu_rand_below(&rng, 8);

			mv_tlb_lock(tlb);
			hit = mv_tlb_lookup(tlb, vmid, el, va, need, &out);
			mv_tlb_unlock(tlb);
			if (hit) {
				/* A hit must be the latest insert of the tag, still valid in the reference. */
				unsigned i = nref;

				while (i-- > 0)
					if (ref[i].vmid == vmid && ref[i].el == el && ref[i].va_page == va)
						break;
				assert_true(i < nref && ref_valid[i]);
				assert_memory_equal(&ref[i], &out, sizeof(out));
				assert_int_equal(out.rights & need, need);
			}
		} else {
			uint64_t pages = 1 + tu_rand_below(&rng, 16);

			mv_tlb_flush_ipa(tlb, vmid, ipa << 12, pages << 12);
			for (unsigned i = 0; i < nref; i++)
				if (ref[i].vmid == vmid && ref[i].ipa_page >= ipa && ref[i].ipa_page < ipa + pages)
					ref_valid[i] = false;
		}
	}
	mv_tlb_free(tlb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_errors),
		cmocka_unit_test(test_lookup_tags_and_rights),
		cmocka_unit_test(test_replacement),
		cmocka_unit_test(test_small_sizes),
		cmocka_unit_test(test_flush_ipa_exact),
		cmocka_unit_test(test_flush_vmid_and_all),
		cmocka_unit_test(test_random_vs_reference),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
