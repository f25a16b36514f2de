/*
 * The VMM's dirty-round check (vmm_dirty_diff): the comparison between the
 * dirty log of a working set and the pages a guest reported must find
 * every kind of mismatch, checked against a naive reference on random sets.
 */
#include "testutil.h"

#include "vmm/vmm_internal.h"

#include <stdlib.h>
#include <string.h>

#define WS_BASE_GFN 0x1000
#define WS_PAGES 300

static void set_bit_ul(unsigned long *map, uint64_t i)
{
	map[i / (8 * sizeof(long))] |= 1UL << (i % (8 * sizeof(long)));
}

static void test_exact_match(void **state)
{
	vmm_ws ws = { WS_BASE_GFN * 4096ull, WS_PAGES };
	unsigned long dirty[(WS_PAGES + 63) / 64] = { 0 };
	uint64_t gfns[] = { WS_BASE_GFN + 7, WS_BASE_GFN + 0, WS_BASE_GFN + 299 };

	(void)state;
	set_bit_ul(dirty, 0);
	set_bit_ul(dirty, 7);
	set_bit_ul(dirty, 299);
	assert_int_equal(vmm_dirty_diff(&ws, dirty, gfns, 3), 0);
}

static void test_each_mismatch(void **state)
{
	vmm_ws ws = { WS_BASE_GFN * 4096ull, WS_PAGES };
	unsigned long dirty[(WS_PAGES + 63) / 64] = { 0 };
	uint64_t missing[] = { WS_BASE_GFN + 1 };
	uint64_t extra[] = { WS_BASE_GFN + 1, WS_BASE_GFN + 2 };
	uint64_t outside[] = { WS_BASE_GFN - 1, WS_BASE_GFN + 1, WS_BASE_GFN + WS_PAGES };
	uint64_t twice[] = { WS_BASE_GFN + 1, WS_BASE_GFN + 1 };

	(void)state;
	set_bit_ul(dirty, 1);
	set_bit_ul(dirty, 5);
	assert_int_equal(vmm_dirty_diff(&ws, dirty, missing, 1), 1);    /* page 5 unreported */
	assert_int_equal(vmm_dirty_diff(&ws, dirty, extra, 2), 2);      /* 2 not dirty, 5 unreported */
	assert_int_equal(vmm_dirty_diff(&ws, dirty, outside, 3), 3);    /* two outside, 5 unreported */
	assert_int_equal(vmm_dirty_diff(&ws, dirty, twice, 2), 2);      /* duplicate, 5 unreported */
	assert_int_equal(vmm_dirty_diff(&ws, dirty, NULL, 0), 2);
}

/* Naive reference: count per page, then anything reported outside. */
static uint64_t ref_diff(const bool *dirty, const uint64_t *gfns, size_t n)
{
	unsigned reported[WS_PAGES] = { 0 };
	uint64_t d = 0;

	for (size_t i = 0; i < n; i++) {
		if (gfns[i] < WS_BASE_GFN || gfns[i] >= WS_BASE_GFN + WS_PAGES)
			d++;
		else
			reported[gfns[i] - WS_BASE_GFN]++;
	}
	for (unsigned p = 0; p < WS_PAGES; p++)
		d += reported[p] ? (reported[p] - 1) + !dirty[p] : dirty[p];
	return d;
}

static void test_random_vs_reference(void **state)
{
	uint64_t seed = tu_seed(11);
	vmm_ws ws = { WS_BASE_GFN * 4096ull, WS_PAGES };

	(void)state;
	for (int round = 0; round < 2000; round++) {
		unsigned long dirty[(WS_PAGES + 63) / 64] = { 0 };
		bool ref_dirty[WS_PAGES] = { 0 };
		uint64_t gfns[64];
		size_t n = tu_rand_below(&seed, 64);

		for (unsigned p = 0; p < WS_PAGES; p++)
			if (tu_rand_below(&seed, 8) == 0) {
				ref_dirty[p] = true;
				set_bit_ul(dirty, p);
			}
		for (size_t i = 0; i < n; i++)
			gfns[i] = WS_BASE_GFN - 4 + tu_rand_below(&seed, WS_PAGES + 8);
		{
			uint64_t want = ref_diff(ref_dirty, gfns, n);

			assert_int_equal(vmm_dirty_diff(&ws, dirty, gfns, n), want);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exact_match),
		cmocka_unit_test(test_each_mismatch),
		cmocka_unit_test(test_random_vs_reference),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
