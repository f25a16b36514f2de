/*
 * Dispatch lookup cost: ns per mv_flatview_lookup on a FlatView of 10k
 * sections (whole pages and sub-page pieces, with holes), for
 *   (a) one address over and over (MRU cache hit),
 *   (b) random addresses over all sections (MRU miss, radix walk),
 * each against a binary search over the FlatView's sorted ranges, the
 * textbook alternative (QEMU's flatview_lookup), measured in the same run.
 */
#include <stdio.h>
#include <stdlib.h>

#include "memvirt/memory.h"
#define BENCH_NAME "bench_lookup"
#include "bench_util.h"

#define NR_SECTIONS 10000
#define NR_ADDRS (1u << 20)
#define ROUNDS 8

struct bench {
	mv_memory *mem;
	mv_region *root;
	mv_address_space *as;
	mv_flatview *fv;
	const mv_flat_range **ranges;
	size_t nr;
	uint64_t *addrs;
};

static uint64_t rng(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1DULL;
}

static const mv_region_ops dummy_ops = { .endianness = MV_ENDIAN_LITTLE };

/*
 * Page-aligned regions of 1-4 pages, and now and then a group of 1-8 small
 * regions (16 B - 1 KiB) packed into shared pages; holes now and then.
 */
static int build(struct bench *b, uint64_t *seed)
{
	uint64_t pos = 0x100000;
	mv_io_region *r;

	if (mv_memory_new(NULL, &b->mem) || mv_container_new(b->mem, "root", MV_2_64, &b->root))
		return -1;
	mv_memory_begin(b->mem);
	for (int i = 0, small_left = 0; i < NR_SECTIONS; i++) {
		bool small = small_left > 0;
		uint64_t size;

		if (small)
			small_left--;
		else if (rng(seed) % 6 == 0)
			small = true, small_left = rng(seed) % 8;
		size = small ? (uint64_t)0x10 << (rng(seed) % 7) : 0x1000 * (1 + rng(seed) % 4);
		if (!small)
			pos = (pos + 0xfff) & ~(uint64_t)0xfff;
		if (mv_io_region_new(b->mem, "r", size, &dummy_ops, NULL, &r) ||
		    mv_region_add_subregion(b->root, pos, mv_io_region_base(r)))
			return -1;
		mv_region_unref(mv_io_region_base(r));
		pos += size;
		if (rng(seed) % 4 == 0)
			pos += rng(seed) % 0x3000;
	}
	mv_memory_commit(b->mem);
	if (mv_address_space_new(b->mem, b->root, "bench", &b->as))
		return -1;
	b->fv = mv_address_space_get_flatview(b->as);
	b->nr = mv_flatview_nr_ranges(b->fv);
	b->ranges = calloc(b->nr, sizeof(*b->ranges));
	b->addrs = calloc(NR_ADDRS, sizeof(*b->addrs));
	if (!b->ranges || !b->addrs)
		return -1;
	for (size_t i = 0; i < b->nr; i++)
		b->ranges[i] = mv_flatview_range(b->fv, i);
	return 0;
}

/* Random addresses inside random ranges. */
static void pick_addresses(struct bench *b, uint64_t *seed)
{
	for (unsigned i = 0; i < NR_ADDRS; i++) {
		const mv_flat_range *fr = b->ranges[rng(seed) % b->nr];

		b->addrs[i] = fr->start + rng(seed) % (uint64_t)fr->size;
	}
}

/* Baseline: binary search over the sorted ranges. */
static const mv_flat_range *bsearch_range(const struct bench *b, uint64_t addr)
{
	size_t lo = 0, hi = b->nr;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const mv_flat_range *fr = b->ranges[mid];

		if (addr < fr->start)
			hi = mid;
		else if ((mv_u128)(addr - fr->start) >= fr->size)
			lo = mid + 1;
		else
			return fr;
	}
	return NULL;
}

/* ns per lookup; @step 0 repeats addrs[0]. The sum keeps the work alive. */
static double time_dispatch(struct bench *b, unsigned step, uint64_t *sink)
{
	double t0 = now_ns();

	for (int r = 0; r < ROUNDS; r++) {
		for (unsigned i = 0, k = 0; i < NR_ADDRS; i++, k += step) {
			uint64_t xlat, plen = 8;

			mv_flatview_lookup(b->fv, b->addrs[k & (NR_ADDRS - 1)], &xlat, &plen);
			*sink += xlat + plen;
		}
	}
	return (now_ns() - t0) / ((double)ROUNDS * NR_ADDRS);
}

static double time_bsearch(struct bench *b, unsigned step, uint64_t *sink)
{
	double t0 = now_ns();

	for (int r = 0; r < ROUNDS; r++) {
		for (unsigned i = 0, k = 0; i < NR_ADDRS; i++, k += step) {
			uint64_t addr = b->addrs[k & (NR_ADDRS - 1)];
			const mv_flat_range *fr = bsearch_range(b, addr);
			uint64_t plen = 8;

			if (fr && (mv_u128)(fr->start + fr->size - addr) < plen)
				plen = fr->start + (uint64_t)fr->size - addr;
			*sink += (fr ? addr - fr->start + fr->offset_in_region : addr) + plen;
		}
	}
	return (now_ns() - t0) / ((double)ROUNDS * NR_ADDRS);
}

/* Both lookups must agree before anything is timed. */
static int verify(struct bench *b)
{
	for (unsigned i = 0; i < NR_ADDRS; i += 7) {
		uint64_t xlat;
		const mv_section *s = mv_flatview_lookup(b->fv, b->addrs[i], &xlat, NULL);
		const mv_flat_range *fr = bsearch_range(b, b->addrs[i]);

		if (!fr || s->mr != fr->mr)
			return -1;
	}
	return 0;
}

int main(void)
{
	struct bench b = { 0 };
	uint64_t seed = 0x9e3779b97f4a7c15ull, sink = 0;
	double mru, mru_base, rnd, rnd_base;
	size_t subpage = 0;

	if (build(&b, &seed)) {
		fprintf(stderr, "bench_lookup: could not build the FlatView\n");
		return 1;
	}
	pick_addresses(&b, &seed);
	if (verify(&b)) {
		fprintf(stderr, "bench_lookup: dispatch and binary search disagree\n");
		return 1;
	}
	for (size_t i = 0; i < b.nr; i++)
		subpage += (b.ranges[i]->start | (uint64_t)b.ranges[i]->size) & 0xfff ? 1 : 0;

	/* Warm up both paths once, then measure. */
	time_dispatch(&b, 1, &sink);
	time_bsearch(&b, 1, &sink);
	mru = time_dispatch(&b, 0, &sink);
	mru_base = time_bsearch(&b, 0, &sink);
	rnd = time_dispatch(&b, 1, &sink);
	rnd_base = time_bsearch(&b, 1, &sink);

	printf("bench_lookup: %zu ranges (%zu with sub-page edges), %u lookups x %d rounds\n",
	       b.nr, subpage, NR_ADDRS, ROUNDS);
	printf("  (a) same address (MRU hit): dispatch %6.2f ns  bsearch %6.2f ns  speedup %.2fx\n",
	       mru, mru_base, mru_base / mru);
	printf("  (b) random addresses:       dispatch %6.2f ns  bsearch %6.2f ns  speedup %.2fx\n",
	       rnd, rnd_base, rnd_base / rnd);
	printf("  (checksum %llx)\n", (unsigned long long)sink);

	mv_flatview_unref(b.fv);
	mv_region_unref(b.root);
	mv_memory_free(b.mem);
	free(b.ranges);
	free(b.addrs);
	return 0;
}
