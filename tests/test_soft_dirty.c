/*
 * Bitmap dirty logging of the software KVM.
 *
 * - The generic module (soft/dirty_log.c) on an mv_memslots set with a
 *   recording re-protect callback: KVM_GET_DIRTY_LOG with and without
 *   manual protect, KVM_CLEAR_DIRTY_LOG's range rules and error order,
 *   re-protection of exactly the bits that were set, the last partial
 *   word, slot ids out of range, absent and non-logging slots, INIT_SET,
 *   a large slot against a model (MV_SEED replays).
 * - The same calls against this machine's KVM (/dev/kvm, x86): with no
 *   guest running, KVM's bitmaps change only through INIT_SET, clears and
 *   gets, so random sequences of memslot changes, manual-protect modes,
 *   gets and clears must give the same errno and bitmap on both.
 * - The arm64 soft VM end to end (mv_a64_vcpu_exec): written pages are
 *   reported exactly, re-protected, fault again and are logged again;
 *   manual protect and INIT_SET; lazy and eager splitting of 2 MiB blocks.
 */
#include "dirty_fx.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <unistd.h>

#define PG 4096ull

/* ------------------------------------------------------------------ */
/* The generic module                                                   */

#define NR_SLOTS 10u
#define SMALL_PAGES 200u          /* slot 0: three whole words and 8 pages */
#define LARGE_PAGES (1u << 20)    /* slot 2: 4 GiB */

typedef struct gfx {
	mv_memslots *ms;
	dfx_rec rec;
	uint64_t out[LARGE_PAGES / 64];
} gfx;

static void gset(gfx *g, uint32_t slot, uint32_t flags, uint64_t gpa, uint64_t pages)
{
	hv_memslot m = { .slot = slot, .flags = flags, .gpa = gpa, .size = pages * PG,
			 .hva = (void *)(uintptr_t)(0x100000000ull + gpa) };

	assert_int_equal(mv_memslots_set(g->ms, &m), 0);
}

/* Slots: 0 logs (200 pages), 1 does not, 2 logs (1 Mi pages), as 1 slot 4 logs (64 pages). */
static int gfx_setup(void **state)
{
	mv_memslots_config cfg = { .nr_as = 2, .nr_slots = NR_SLOTS, .dirty_bitmap = true };
	gfx *g = calloc(1, sizeof(*g));

	assert_non_null(g);
	assert_int_equal(mv_memslots_new(&cfg, &g->ms), 0);
	gset(g, 0, HV_MEM_LOG_DIRTY_PAGES, 0, SMALL_PAGES);
	gset(g, 1, 0, 1ull << 30, 16);
	gset(g, 2, HV_MEM_LOG_DIRTY_PAGES, 1ull << 32, LARGE_PAGES);
	gset(g, HV_SLOT(1, 4), HV_MEM_LOG_DIRTY_PAGES, 0, 64);
	dfx_rec_init(&g->rec);
	*state = g;
	return 0;
}

static int gfx_teardown(void **state)
{
	gfx *g = *state;

	mv_memslots_free(g->ms);
	free(g);
	return 0;
}

static const mv_memslot *gslot(gfx *g, uint32_t slot)
{
	return mv_memslots_get(g->ms, HV_SLOT_AS(slot), HV_SLOT_ID(slot));
}

static void mark(gfx *g, uint32_t slot, uint64_t page)
{
	const mv_memslot *s = gslot(g, slot);

	mv_memslot_mark_dirty(s, s->base_gfn + page);
}

static int get(gfx *g, uint32_t slot, bool manual)
{
	return mv_dirty_get_log(g->ms, slot, manual, g->out, dfx_rec_protect, &g->rec);
}

static int clear(gfx *g, uint32_t slot, uint64_t first, uint32_t num, const uint64_t *bm)
{
	return mv_dirty_clear_log(g->ms, slot, first, num, bm, dfx_rec_protect, &g->rec);
}

static void test_get_errors(void **state)
{
	gfx *g = *state;

	assert_int_equal(get(g, HV_SLOT(0, NR_SLOTS), false), -EINVAL);
	assert_int_equal(get(g, HV_SLOT(0, 0xffff), true), -EINVAL);
	assert_int_equal(get(g, HV_SLOT(2, 0), false), -EINVAL);
	assert_int_equal(get(g, HV_SLOT(0xffff, 0), false), -EINVAL);
	assert_int_equal(get(g, HV_SLOT(0, NR_SLOTS - 1), false), -ENOENT);   /* absent */
	assert_int_equal(get(g, HV_SLOT(1, 0), false), -ENOENT);              /* absent in as 1 */
	assert_int_equal(get(g, 1, false), -ENOENT);                          /* does not log */
	assert_int_equal(get(g, 1, true), -ENOENT);
	assert_int_equal(get(g, HV_SLOT(1, 4), false), 0);
	assert_int_equal(g->rec.n, 0);
}

static void test_get_exchanges_and_protects(void **state)
{
	static const uint64_t pages[] = { 0, 5, 63, 64, 130, 199 };
	gfx *g = *state;

	for (unsigned i = 0; i < 6; i++)
		mark(g, 0, pages[i]);
	memset(g->out, 0xa5, 8 * sizeof(g->out[0]));
	assert_int_equal(get(g, 0, false), 0);
	assert_int_equal(g->out[0], 1ull | 1ull << 5 | 1ull << 63);
	assert_int_equal(g->out[1], 1);
	assert_int_equal(g->out[2], 1ull << 2);
	assert_int_equal(g->out[3], 1ull << 7);             /* the last, partial word */
	assert_int_equal(g->out[4], 0xa5a5a5a5a5a5a5a5ull); /* 4 words only */
	/* One re-protect per non-zero word, at its first page, with its bits. */
	assert_int_equal(g->rec.n, 4);
	for (unsigned i = 0; i < 4; i++) {
		assert_int_equal(g->rec.calls[i].id, 0);
		assert_int_equal(g->rec.calls[i].offset, 64 * i);
		assert_int_equal(g->rec.calls[i].mask, g->out[i]);
	}
	/* The bitmap was emptied: a second get reports and protects nothing. */
	memset(g->out, 0xa5, 4 * sizeof(g->out[0]));
	assert_int_equal(get(g, 0, false), 0);
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(g->out[i], 0);
	assert_int_equal(g->rec.n, 4);
	/* Other address spaces are separate. */
	mark(g, HV_SLOT(1, 4), 9);
	assert_int_equal(get(g, HV_SLOT(1, 4), false), 0);
	assert_int_equal(g->out[0], 1ull << 9);
	assert_int_equal(g->rec.calls[4].as_id, 1);
	assert_int_equal(g->rec.calls[4].id, 4);
}

static void test_get_manual_copies(void **state)
{
	gfx *g = *state;

	mark(g, 0, 3);
	mark(g, 0, 199);
	for (unsigned round = 0; round < 2; round++) {
		assert_int_equal(get(g, 0, true), 0);
		assert_int_equal(g->out[0], 1ull << 3);
		assert_int_equal(g->out[1], 0);
		assert_int_equal(g->out[3], 1ull << 7);
	}
	assert_int_equal(g->rec.n, 0);
	/* A get without manual protect takes them. */
	assert_int_equal(get(g, 0, false), 0);
	assert_int_equal(g->rec.n, 2);
}

/* KVM_CLEAR_DIRTY_LOG's rules, each at its boundary, in KVM's order. */
static void test_clear_rules(void **state)
{
	static const struct { uint32_t slot; uint64_t first; uint32_t num; int err; } cases[] = {
		/* ids first */
		{ HV_SLOT(0, NR_SLOTS), 1, 0, -EINVAL },
		{ HV_SLOT(2, 0), 0, 0, -EINVAL },
		/* first_page alignment, before the slot lookup */
		{ 0, 1, 64, -EINVAL }, { 0, 63, 64, -EINVAL }, { 0, 65, 0, -EINVAL },
		{ 7, 1, 64, -EINVAL }, { 1, 32, 0, -EINVAL },
		/* absent / not logging, before the range */
		{ 7, 0, 64, -ENOENT }, { 1, 0, 16, -ENOENT }, { 1, 0, 0, -ENOENT },
		{ 7, 1u << 20, 3, -ENOENT },
		/* the range */
		{ 0, 0, 0, 0 }, { 0, 0, 64, 0 }, { 0, 64, 64, 0 }, { 0, 128, 64, 0 },
		{ 0, 0, 200, 0 }, { 0, 64, 136, 0 }, { 0, 192, 8, 0 }, { 0, 192, 0, 0 },
		{ 0, 0, 192, 0 },
		{ 0, 0, 100, -EINVAL },    /* not whole words and not to the end */
		{ 0, 64, 1, -EINVAL }, { 0, 128, 63, -EINVAL }, { 0, 192, 7, -EINVAL },
		{ 0, 0, 201, -EINVAL },    /* past the end */
		{ 0, 192, 9, -EINVAL }, { 0, 192, 64, -EINVAL }, { 0, 128, 0xffffffffu, -EINVAL },
		{ 0, 256, 0, -EINVAL },    /* first_page > npages */
		{ 0, 1ull << 40, 0, -EINVAL },
	};
	static const uint64_t ones[8] = { ~0ull, ~0ull, ~0ull, ~0ull, ~0ull, ~0ull, ~0ull, ~0ull };
	gfx *g = *state;

	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r = clear(g, cases[i].slot, cases[i].first, cases[i].num, ones);

		if (r != cases[i].err)
			fail_msg("clear slot %#x first %" PRIu64 " num %u: %d, want %d", cases[i].slot,
				 cases[i].first, cases[i].num, r, cases[i].err);
	}
	/* Nothing was dirty: nothing was re-protected. */
	assert_int_equal(g->rec.n, 0);
}

static void test_clear_reprotects_set_bits_only(void **state)
{
	gfx *g = *state;
	uint64_t bm[4] = { 0 };

	mark(g, 0, 1);
	mark(g, 0, 2);
	mark(g, 0, 70);
	mark(g, 0, 71);
	mark(g, 0, 150);
	/* Clear pages 0..2 (0 was clean), 70 and 100 (clean); nothing of word 2. */
	bm[0] = 7;
	bm[1] = 1ull << 6 | 1ull << 36;
	bm[2] = 0;
	bm[3] = 0;
	assert_int_equal(clear(g, 0, 0, 256 - 56, bm), 0);
	assert_int_equal(g->rec.n, 2);
	assert_int_equal(g->rec.calls[0].offset, 0);
	assert_int_equal(g->rec.calls[0].mask, 6);
	assert_int_equal(g->rec.calls[1].offset, 64);
	assert_int_equal(g->rec.calls[1].mask, 1ull << 6);
	/* What was not cleared is still there. */
	assert_int_equal(get(g, 0, true), 0);
	assert_int_equal(g->out[0], 0);
	assert_int_equal(g->out[1], 1ull << 7);
	assert_int_equal(g->out[2], 1ull << 22);
	/* Clearing again re-protects nothing. */
	assert_int_equal(clear(g, 0, 0, 200, bm), 0);
	assert_int_equal(g->rec.n, 2);
	/* A range that starts further in: bit 0 of the bitmap is first_page. */
	bm[0] = 1ull << 22;
	assert_int_equal(clear(g, 0, 128, 64, bm), 0);
	assert_int_equal(g->rec.n, 3);
	assert_int_equal(g->rec.calls[2].offset, 128);
	assert_int_equal(g->rec.calls[2].mask, 1ull << 22);
}

/* The last word of a 200-page slot: bits past page 199 are never set nor reported. */
static void test_partial_last_word(void **state)
{
	gfx *g = *state;
	uint64_t ones = ~0ull;

	for (unsigned p = 0; p < SMALL_PAGES; p++)
		mark(g, 0, p);
	mark(g, 0, 200);   /* outside the slot: ignored */
	assert_int_equal(get(g, 0, true), 0);
	assert_int_equal(g->out[3], 0xff);
	/* Clearing the tail with every bit set touches only the slot's 8 pages. */
	assert_int_equal(clear(g, 0, 192, 8, &ones), 0);
	assert_int_equal(g->rec.n, 1);
	assert_int_equal(g->rec.calls[0].offset, 192);
	assert_int_equal(g->rec.calls[0].mask, 0xff);
	assert_int_equal(get(g, 0, false), 0);
	assert_int_equal(g->out[2], ~0ull);
	assert_int_equal(g->out[3], 0);
}

/* A 1 Mi-page slot against a model: random marks, gets, manual copies and clears. */
static void test_large_slot_model(void **state)
{
	gfx *g = *state;
	uint64_t rng = tu_seed(0xd1e7);
	uint64_t *model = calloc(LARGE_PAGES / 64, sizeof(uint64_t));
	uint64_t *bm = calloc(LARGE_PAGES / 64, sizeof(uint64_t));
	unsigned long cleared = 0, reported = 0;

	assert_non_null(model);
	assert_non_null(bm);
	for (unsigned round = 0; round < 40; round++) {
		unsigned marks = (unsigned)tu_rand_below(&rng, 20000);
		uint64_t protected_pages = g->rec.pages;

		for (unsigned i = 0; i < marks; i++) {
			uint64_t p = tu_rand_below(&rng, LARGE_PAGES);

			mark(g, 2, p);
			model[p / 64] |= 1ull << (p % 64);
		}
		switch (round % 3) {
		case 0: {   /* get: report and take everything */
			uint64_t pages = 0;

			assert_int_equal(get(g, 2, false), 0);
			for (unsigned w = 0; w < LARGE_PAGES / 64; w++) {
				if (g->out[w] != model[w])
					fail_msg("round %u word %u: %#" PRIx64 ", model %#" PRIx64, round, w,
						 g->out[w], model[w]);
				pages += (uint64_t)__builtin_popcountll(model[w]);
				model[w] = 0;
			}
			assert_int_equal(g->rec.pages - protected_pages, pages);
			reported += pages;
			break;
		}
		case 1:     /* manual copy: nothing changes */
			assert_int_equal(get(g, 2, true), 0);
			assert_memory_equal(g->out, model, LARGE_PAGES / 8);
			assert_int_equal(g->rec.pages, protected_pages);
			break;
		default: {  /* clear a random aligned range with a random bitmap */
			uint64_t first = 64 * tu_rand_below(&rng, LARGE_PAGES / 64);
			uint32_t num = (uint32_t)(64 * tu_rand_below(&rng, (LARGE_PAGES - first) / 64 + 1));
			uint64_t want = 0;

			for (unsigned w = 0; w < num / 64; w++) {
				bm[w] = tu_rand(&rng) & tu_rand(&rng);
				want += (uint64_t)__builtin_popcountll(bm[w] & model[first / 64 + w]);
				model[first / 64 + w] &= ~bm[w];
			}
			assert_int_equal(clear(g, 2, first, num, bm), 0);
			assert_int_equal(g->rec.pages - protected_pages, want);
			cleared += want;
			break;
		}
		}
	}
	print_message("# %lu pages reported by gets, %lu cleared\n", reported, cleared);
	free(model);
	free(bm);
}

static void test_init_set_and_no_bitmaps(void **state)
{
	gfx *g = *state;
	mv_memslot fresh = { .npages = 130 }, carried;
	uint64_t words[3] = { 0 }, keep[3] = { 0x1234, 0, 0 };

	/* A fresh bitmap gets every page of the slot, not a bit more. */
	fresh.dirty_bitmap = words;
	mv_dirty_init_set(NULL, &fresh);
	assert_int_equal(words[0], ~0ull);
	assert_int_equal(words[1], ~0ull);
	assert_int_equal(words[2], 3);
	/* A bitmap carried over from the old slot (a MOVE) keeps its bits. */
	carried = fresh;
	carried.dirty_bitmap = keep;
	fresh.dirty_bitmap = keep;
	mv_dirty_init_set(&carried, &fresh);
	assert_int_equal(keep[0], 0x1234);
	/* No bitmap (not logging, or a ring VM): nothing to do. */
	fresh.dirty_bitmap = NULL;
	mv_dirty_init_set(NULL, &fresh);
	/* With bitmaps off, a slot that starts logging has none: -ENOENT (a ring VM says -ENXIO first). */
	mv_memslots_set_dirty_bitmap(g->ms, false);
	gset(g, 5, HV_MEM_LOG_DIRTY_PAGES, 1ull << 40, 64);
	assert_null(gslot(g, 5)->dirty_bitmap);
	assert_int_equal(get(g, 5, false), -ENOENT);
	/* Existing bitmaps stay. */
	assert_int_equal(get(g, 0, false), 0);
	mv_memslots_set_dirty_bitmap(g->ms, true);
	gset(g, 5, 0, 1ull << 40, 64);
	gset(g, 5, HV_MEM_LOG_DIRTY_PAGES, 1ull << 40, 64);
	assert_int_equal(get(g, 5, false), 0);
}

/* ------------------------------------------------------------------ */
/* Against this machine's KVM                                           */

#define KVM_IDS 6u
#define KVM_MAX_PAGES 1100u

typedef struct kpair {
	hv_vm *vm;
	mv_memslots *ms;
	bool init_set;              /* the soft side's INIT_SET (KVM keeps its own) */
	bool manual;
	unsigned nr_as, nr_slots;
	uint8_t *res;               /* PROT_NONE reservation for host addresses */
	uint64_t kbm[KVM_MAX_PAGES / 64 + 1], sbm[KVM_MAX_PAGES / 64 + 1];
	unsigned long ops, errs[4];
	unsigned long dirty_gets;   /* gets that returned set bits */
} kpair;

static int kpair_prepare(void *arg, mv_memslot_change change, const mv_memslot *old,
			 mv_memslot *new)
{
	kpair *p = arg;

	if (change != MV_MR_DELETE && p->init_set)
		mv_dirty_init_set(old, new);
	return 0;
}

static void nop_protect(void *arg, const mv_memslot *slot, uint64_t offset, uint64_t mask)
{
	(void)arg;
	(void)slot;
	(void)offset;
	(void)mask;
}

static bool kpair_open(kpair *p)
{
	hv_vm_config cfg = { .arch = HV_ARCH_X86_64 };
	mv_memslots_config scfg = { .dirty_bitmap = true, .arch_prepare = kpair_prepare, .arg = p };

	if (!tu_kvm_vm_create(&cfg, &p->vm))
		return false;
	p->nr_slots = (unsigned)hv_vm_check_cap(p->vm, HV_CAP_NR_MEMSLOTS);
	p->nr_as = (unsigned)hv_vm_check_cap(p->vm, HV_CAP_NR_AS);
	scfg.nr_as = p->nr_as;
	scfg.nr_slots = p->nr_slots;
	assert_int_equal(mv_memslots_new(&scfg, &p->ms), 0);
	p->res = mmap(NULL, KVM_IDS * KVM_MAX_PAGES * PG, PROT_NONE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	assert_true(p->res != MAP_FAILED);
	return true;
}

static void kpair_close(kpair *p)
{
	print_message("# %lu calls agreed: %lu ok, %lu -EINVAL, %lu -ENOENT; %lu gets saw dirty pages\n",
		      p->ops, p->errs[0], p->errs[1], p->errs[2], p->dirty_gets);
	/* Every kind of answer, and INIT_SET bitmaps, were compared. */
	assert_true(p->errs[0] && p->errs[1] && p->errs[2] && p->dirty_gets);
	munmap(p->res, KVM_IDS * KVM_MAX_PAGES * PG);
	mv_memslots_free(p->ms);
	hv_vm_destroy(p->vm);
}

static void kpair_count(kpair *p, int r)
{
	p->ops++;
	p->errs[r == 0 ? 0 : r == -EINVAL ? 1 : r == -ENOENT ? 2 : 3]++;
}

static int kpair_set(kpair *p, unsigned as, unsigned id, uint32_t flags, uint64_t pages)
{
	hv_memslot m = { .slot = HV_SLOT(as, id), .flags = flags,
			 .gpa = (uint64_t)(as * KVM_IDS + id) * KVM_MAX_PAGES * PG * 2,
			 .size = pages * PG, .hva = p->res + (uint64_t)id * KVM_MAX_PAGES * PG };
	int want = hv_set_memslot(p->vm, &m), got = mv_memslots_set(p->ms, &m);

	if (want != got)
		fail_msg("op %lu: set slot %u/%u flags %#x pages %" PRIu64 ": kvm %d, soft %d", p->ops,
			 as, id, flags, pages, want, got);
	return want;
}

static void kpair_manual(kpair *p, uint32_t flags)
{
	int want = hv_enable_manual_dirty_protect(p->vm, flags);
	/* The rule of mv_a64_vm_enable_manual_dirty_protect, on the soft side's state. */
	int got = (flags & ~(HV_DIRTY_PROTECT_ENABLE | HV_DIRTY_PROTECT_INIT_SET)) ||
				  ((flags & HV_DIRTY_PROTECT_INIT_SET) && !(flags & HV_DIRTY_PROTECT_ENABLE))
			  ? -EINVAL
			  : 0;

	if (want != got)
		fail_msg("op %lu: manual protect %#x: kvm %d, soft %d", p->ops, flags, want, got);
	if (!got) {
		p->manual = flags & HV_DIRTY_PROTECT_ENABLE;
		p->init_set = flags & HV_DIRTY_PROTECT_INIT_SET;
	}
	kpair_count(p, want);
}

static void kpair_get(kpair *p, uint32_t slot)
{
	const mv_memslot *s = mv_memslots_get(p->ms, HV_SLOT_AS(slot), HV_SLOT_ID(slot));
	size_t words = s ? HV_DIRTY_BITMAP_WORDS(s->npages * PG) : 0;
	int want, got;

	memset(p->kbm, 0, sizeof(p->kbm));
	memset(p->sbm, 0, sizeof(p->sbm));
	want = hv_get_dirty_log(p->vm, slot, p->kbm);
	got = mv_dirty_get_log(p->ms, slot, p->manual, p->sbm, nop_protect, NULL);
	if (want != got)
		fail_msg("op %lu: get slot %#x: kvm %d, soft %d", p->ops, slot, want, got);
	if (!want && memcmp(p->kbm, p->sbm, words * 8))
		fail_msg("op %lu: get slot %#x: bitmaps differ (kvm %#" PRIx64 ".., soft %#" PRIx64 "..)",
			 p->ops, slot, p->kbm[0], p->sbm[0]);
	for (size_t w = 0; !want && w < words; w++) {
		if (p->kbm[w]) {
			p->dirty_gets++;
			break;
		}
	}
	kpair_count(p, want);
}

static void kpair_clear(kpair *p, uint32_t slot, uint64_t first, uint32_t num, const uint64_t *bm)
{
	int want = hv_clear_dirty_log(p->vm, slot, first, num, bm);
	int got = mv_dirty_clear_log(p->ms, slot, first, num, bm, nop_protect, NULL);

	if (want != got)
		fail_msg("op %lu: clear slot %#x first %" PRIu64 " num %u: kvm %d, soft %d", p->ops, slot,
			 first, num, want, got);
	kpair_count(p, want);
}

/* A first page / page count near the interesting boundaries of a slot of @npages. */
static uint64_t pick_page(uint64_t *rng, uint64_t npages)
{
	static const int64_t deltas[] = { 0, 1, -1, 63, -63, 64, -64, 65, 128 };
	uint64_t base = tu_rand_below(rng, 3) == 0 ? npages : 64 * tu_rand_below(rng, npages / 64 + 2);

	return (uint64_t)((int64_t)base + deltas[tu_rand_below(rng, 9)]) & 0xffffffffull;
}

static void test_kvm_oracle(void **state)
{
	static const uint64_t sizes[] = { 1, 63, 64, 65, 128, 200, 1000, KVM_MAX_PAGES };
	kpair *p = calloc(1, sizeof(*p));
	uint64_t rng = tu_seed(0x6b766d);
	uint64_t bm[KVM_MAX_PAGES / 64 + 2];
	uint64_t pages[2][KVM_IDS] = { { 0 } };

	(void)state;
	assert_non_null(p);
	if (!kpair_open(p)) {
		free(p);
		skip();
	}
	print_message("# kvm: %u slots, %u address spaces\n", p->nr_slots, p->nr_as);
	for (unsigned op = 0; op < 6000; op++) {
		unsigned as = (unsigned)tu_rand_below(&rng, 2) & (p->nr_as > 1);
		unsigned id = (unsigned)tu_rand_below(&rng, KVM_IDS);
		uint32_t slot = HV_SLOT(as, id);
		unsigned kind = (unsigned)tu_rand_below(&rng, 100);

		/* Now and then an id out of range. */
		if (tu_rand_below(&rng, 40) == 0)
			slot = tu_rand_below(&rng, 2) ? HV_SLOT(p->nr_as, id)
						      : HV_SLOT(as, p->nr_slots + tu_rand_below(&rng, 4));
		if (kind < 8) {
			/* Create, delete or flip logging. */
			uint64_t n = pages[as][id] ? pages[as][id] : sizes[tu_rand_below(&rng, 8)];
			uint32_t flags = tu_rand_below(&rng, 4) ? HV_MEM_LOG_DIRTY_PAGES : 0;

			if (pages[as][id] && tu_rand_below(&rng, 3) == 0)
				n = 0;
			if (kpair_set(p, as, id, flags, n) == 0)
				pages[as][id] = n;
		} else if (kind < 12) {
			static const uint32_t modes[] = { 0, 1, 3, 3, 2, 4 };

			kpair_manual(p, modes[tu_rand_below(&rng, 6)]);
		} else if (kind < 45) {
			kpair_get(p, slot);
		} else {
			uint64_t n = pages[as][id] ? pages[as][id] : 200;
			uint64_t first = pick_page(&rng, n);
			uint32_t num = (uint32_t)pick_page(&rng, n);

			if (tu_rand_below(&rng, 2) && first <= n)
				num = (uint32_t)(n - first);
			for (unsigned w = 0; w < sizeof(bm) / 8; w++)
				bm[w] = tu_rand(&rng) & tu_rand(&rng);
			/* KVM reads DIV_ROUND_UP(num, 64) words: only valid ranges fit the buffer. */
			if (num > (sizeof(bm) / 8) * 64)
				num = (uint32_t)((sizeof(bm) / 8) * 64);
			kpair_clear(p, slot, first, num, bm);
			kpair_get(p, slot);
		}
	}
	kpair_close(p);
	free(p);
}

/* ------------------------------------------------------------------ */
/* The arm64 VM end to end                                              */

#define LOG HV_MEM_LOG_DIRTY_PAGES

static void test_a64_calls(void **state)
{
	dfx *f = dfx_new(&(dfx_opts){ .slot_flags = 0 });
	uint64_t bm[4];

	(void)state;
	assert_int_equal(mv_a64_vm_get_dirty_log(f->vm, 0, bm), -ENOENT);      /* not logging */
	assert_int_equal(mv_a64_vm_get_dirty_log(f->vm, 5, bm), -ENOENT);      /* absent */
	assert_int_equal(mv_a64_vm_get_dirty_log(f->vm, HV_SLOT(1, 0), bm), -EINVAL);
	assert_int_equal(mv_a64_vm_get_dirty_log(f->vm, MV_MEMSLOT_SLOTS_NUM, bm), -EINVAL);
	assert_int_equal(mv_a64_vm_clear_dirty_log(f->vm, 0, 0, 64, bm), -ENOENT);
	assert_int_equal(mv_a64_vm_clear_dirty_log(f->vm, 0, 1, 64, bm), -EINVAL);
	/* KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2's flags. */
	assert_int_equal(mv_a64_vm_enable_manual_dirty_protect(f->vm, HV_DIRTY_PROTECT_INIT_SET),
			 -EINVAL);
	assert_int_equal(mv_a64_vm_enable_manual_dirty_protect(f->vm, 4), -EINVAL);
	assert_int_equal(mv_a64_vm_enable_manual_dirty_protect(f->vm, 5), -EINVAL);
	assert_int_equal(mv_a64_vm_enable_manual_dirty_protect(f->vm, 3), 0);
	assert_int_equal(mv_a64_vm_enable_manual_dirty_protect(f->vm, 1), 0);
	assert_int_equal(mv_a64_vm_enable_manual_dirty_protect(f->vm, 0), 0);
	/* KVM_CAP_ARM_EAGER_SPLIT_CHUNK_SIZE: only with no memslot, only block sizes. */
	assert_int_equal(mv_a64_vm_enable_eager_split(f->vm, DFX_2M), -EINVAL);
	dfx_free(f);
	f = dfx_new(&(dfx_opts){ .no_slot = true });
	assert_int_equal(mv_a64_vm_enable_eager_split(f->vm, 8192), -EINVAL);
	assert_int_equal(mv_a64_vm_enable_eager_split(f->vm, 3 * DFX_2M), -EINVAL);
	assert_int_equal(mv_a64_vm_enable_eager_split(f->vm, 1ull << 30), 0);
	assert_int_equal(mv_a64_vm_enable_eager_split(f->vm, DFX_4K), 0);
	assert_int_equal(mv_a64_vm_enable_eager_split(f->vm, 0), 0);
	dfx_free(f);
}

/* The dirty log of slot 0 (256 pages) as a set of pages. */
static void a64_get(dfx *f, uint64_t bm[4])
{
	assert_int_equal(mv_a64_vm_get_dirty_log(f->vm, 0, bm), 0);
}

static void test_a64_get_end_to_end(void **state)
{
	static const uint64_t written[] = { 1, 5, 7, 64, 200, 255 };
	dfx *f = dfx_new(&(dfx_opts){ .slot_flags = LOG });
	uint64_t bm[4];
	bool w;

	(void)state;
	/* Reads map pages read-only and log nothing. */
	assert_int_equal(dfx_load(f, 5), 1);
	assert_int_equal(dfx_leaf(f, 5, &w), 3);
	assert_false(w);
	for (unsigned i = 0; i < 6; i++)
		assert_int_equal(dfx_store(f, written[i], 100 + i), 1);
	/* Once writable, a page takes no more faults until the log is read. */
	assert_int_equal(dfx_store(f, 5, 7), 0);
	a64_get(f, bm);
	assert_int_equal(bm[0], 1ull << 1 | 1ull << 5 | 1ull << 7);
	assert_int_equal(bm[1], 1);
	assert_int_equal(bm[2], 0);
	assert_int_equal(bm[3], 1ull << 8 | 1ull << 63);
	/* Re-protected: the next write faults again (a permission fault, relaxed) and is logged. */
	for (unsigned i = 0; i < 6; i++) {
		assert_int_equal(dfx_leaf(f, written[i], &w), 3);
		assert_false(w);
	}
	assert_int_equal(dfx_store(f, 5, 8), 1);
	assert_int_equal(f->last.action, MV_A64_ACT_RELAXED);
	assert_int_equal(f->last.esr_el2 & MV_ESR_FSC_MASK, MV_FSC_PERM + 3);
	assert_true(f->last.esr_el2 & MV_ESR_WNR);
	assert_int_equal(MV_HPFAR_IPA(f->last.hpfar_el2), DFX_RAM_GPA + 5 * DFX_4K);
	a64_get(f, bm);
	assert_int_equal(bm[0], 1ull << 5);
	assert_int_equal(bm[1] | bm[2] | bm[3], 0);
	a64_get(f, bm);
	assert_int_equal(bm[0] | bm[1] | bm[2] | bm[3], 0);
	/* Logging off: pages are written without faults once writable, nothing is logged. */
	dfx_set_slot(f, 0);
	assert_int_equal(mv_a64_vm_get_dirty_log(f->vm, 0, bm), -ENOENT);
	assert_int_equal(dfx_store(f, 5, 9), 1);
	assert_int_equal(dfx_store(f, 5, 10), 0);
	dfx_free(f);
}

static void test_a64_manual_protect(void **state)
{
	dfx *f = dfx_new(&(dfx_opts){ .slot_flags = LOG });
	uint64_t bm[4], one = 1ull << 3;

	(void)state;
	assert_int_equal(mv_a64_vm_enable_manual_dirty_protect(f->vm, HV_DIRTY_PROTECT_ENABLE), 0);
	assert_int_equal(dfx_store(f, 3, 1), 1);
	assert_int_equal(dfx_store(f, 4, 1), 1);
	/* A get copies: the bits stay and the pages stay writable. */
	a64_get(f, bm);
	assert_int_equal(bm[0], 0x18);
	a64_get(f, bm);
	assert_int_equal(bm[0], 0x18);
	assert_int_equal(dfx_store(f, 3, 2), 0);
	/* A clear re-protects what it clears, only that. */
	assert_int_equal(mv_a64_vm_clear_dirty_log(f->vm, 0, 0, 64, &one), 0);
	a64_get(f, bm);
	assert_int_equal(bm[0], 0x10);
	assert_int_equal(dfx_store(f, 4, 2), 0);
	assert_int_equal(dfx_store(f, 3, 3), 1);
	a64_get(f, bm);
	assert_int_equal(bm[0], 0x18);
	dfx_free(f);
}

static void test_a64_init_set(void **state)
{
	dfx *f = dfx_new(&(dfx_opts){ .slot_flags = 0 });
	uint64_t bm[4], clr[4] = { ~0ull, 0, 0, 0 };
	bool w;

	(void)state;
	/* Pages written before logging are mapped writable. */
	for (uint64_t p = 0; p < 256; p += 16)
		assert_int_equal(dfx_store(f, p, p), 1);
	assert_int_equal(mv_a64_vm_enable_manual_dirty_protect(f->vm, 3), 0);
	dfx_set_slot(f, LOG);
	/* INIT_SET: the bitmap starts full and nothing is write-protected. */
	a64_get(f, bm);
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(bm[i], ~0ull);
	assert_int_equal(dfx_leaf(f, 16, &w), 3);
	assert_true(w);
	assert_int_equal(dfx_store(f, 16, 1), 0);
	/* Clearing the first 64 pages protects those (that were mapped); the rest stays writable. */
	assert_int_equal(mv_a64_vm_clear_dirty_log(f->vm, 0, 0, 64, clr), 0);
	assert_int_equal(dfx_leaf(f, 16, &w), 3);
	assert_false(w);
	assert_int_equal(dfx_leaf(f, 64, &w), 3);
	assert_true(w);
	assert_int_equal(dfx_store(f, 64, 2), 0);
	assert_int_equal(dfx_store(f, 16, 2), 1);
	a64_get(f, bm);
	assert_int_equal(bm[0], 1ull << 16);
	assert_int_equal(bm[1], ~0ull);
	/* A slot created again starts full again. */
	assert_int_equal(mv_a64_vm_set_memslot(f->vm, &(hv_memslot){ .slot = 0 }), 0);
	dfx_set_slot(f, LOG);
	a64_get(f, bm);
	assert_int_equal(bm[0], ~0ull);
	dfx_free(f);
}

/* Map the 4 MiB hugetlb-declared slot with 2 MiB blocks (one load per block), then log. */
static dfx *blocks_then_log(uint64_t split_chunk, uint32_t manual)
{
	dfx *f = dfx_new(&(dfx_opts){ .ram_size = 2 * DFX_2M, .hugetlb = true,
				      .split_chunk = split_chunk });
	bool w;

	assert_int_equal(dfx_load(f, 0), 1);
	assert_int_equal(f->last.map_size, DFX_2M);
	assert_int_equal(dfx_store(f, 512, 1), 1);
	assert_int_equal(f->last.map_size, DFX_2M);
	assert_int_equal(dfx_leaf(f, 0, &w), 2);
	assert_true(w);
	assert_int_equal(mv_a64_vm_enable_manual_dirty_protect(f->vm, manual), 0);
	dfx_set_slot(f, LOG);
	return f;
}

static void test_a64_lazy_split(void **state)
{
	dfx *f = blocks_then_log(0, 0);
	uint64_t bm[16];
	bool w;

	(void)state;
	/* KVM's default: the blocks stay, write-protected. */
	assert_int_equal(dfx_leaf(f, 0, &w), 2);
	assert_false(w);
	assert_int_equal(dfx_leaf(f, 700, &w), 2);
	assert_false(w);
	assert_int_equal(dfx_load(f, 3), 0);
	/* The first write breaks its block: a writable page, the rest read-only pages. */
	assert_int_equal(dfx_store(f, 3, 0x33), 1);
	assert_int_equal(f->last.action, MV_A64_ACT_MAPPED);
	assert_int_equal(f->last.map_size, DFX_4K);
	assert_int_equal(f->last.esr_el2 & MV_ESR_FSC_MASK, MV_FSC_PERM + 2);
	assert_int_equal(dfx_leaf(f, 3, &w), 3);
	assert_true(w);
	assert_int_equal(dfx_leaf(f, 4, &w), 3);
	assert_false(w);
	assert_int_equal(dfx_leaf(f, 511, &w), 3);
	assert_false(w);
	/* The other block is untouched until written. */
	assert_int_equal(dfx_leaf(f, 700, &w), 2);
	assert_false(w);
	assert_int_equal(mv_a64_vm_get_dirty_log(f->vm, 0, bm), 0);
	assert_int_equal(bm[0], 1ull << 3);
	for (unsigned i = 1; i < 16; i++)
		assert_int_equal(bm[i], 0);
	/* Pages of the broken block fault as pages from now on. */
	assert_int_equal(dfx_store(f, 4, 0x44), 1);
	assert_int_equal(f->last.esr_el2 & MV_ESR_FSC_MASK, MV_FSC_PERM + 3);
	assert_int_equal(f->last.action, MV_A64_ACT_RELAXED);
	dfx_free(f);
}

static void test_a64_eager_split(void **state)
{
	dfx *f = blocks_then_log(DFX_2M, 0);
	uint64_t bm[16];
	bool w;

	(void)state;
	/* Every block became read-only pages when logging started. */
	for (uint64_t p = 0; p < 1024; p += 73) {
		assert_int_equal(dfx_leaf(f, p, &w), 3);
		assert_false(w);
	}
	assert_int_equal(dfx_store(f, 3, 0x33), 1);
	assert_int_equal(f->last.esr_el2 & MV_ESR_FSC_MASK, MV_FSC_PERM + 3);
	assert_int_equal(f->last.action, MV_A64_ACT_RELAXED);
	assert_int_equal(dfx_store(f, 900, 0x99), 1);
	assert_int_equal(f->last.action, MV_A64_ACT_RELAXED);
	assert_int_equal(mv_a64_vm_get_dirty_log(f->vm, 0, bm), 0);
	assert_int_equal(bm[0], 1ull << 3);
	assert_int_equal(bm[900 / 64], 1ull << (900 % 64));
	dfx_free(f);

	/* 4 KiB chunks split the same, a lock round per page. */
	f = blocks_then_log(DFX_4K, 0);
	assert_int_equal(dfx_leaf(f, 1023, &w), 3);
	assert_false(w);
	dfx_free(f);
}

/*
 * INIT_SET: nothing happens when logging starts; a clear write-protects the
 * leaves under its mask whole (a block too, as KVM's stage2_wp_range), and
 * with eager splitting splits the blocks there into pages.
 */
static void test_a64_init_set_blocks(void **state)
{
	uint64_t clr = ~0ull;
	bool w;
	dfx *f;

	(void)state;
	for (unsigned eager = 0; eager < 2; eager++) {
		f = blocks_then_log(eager ? DFX_2M : 0, 3);
		assert_int_equal(dfx_leaf(f, 0, &w), 2);
		assert_true(w);
		assert_int_equal(mv_a64_vm_clear_dirty_log(f->vm, 0, 64, 64, &clr), 0);
		/* The whole first block is read-only now: pages when eager, else still a block. */
		for (uint64_t p = 0; p < 512; p += 63) {
			assert_int_equal(dfx_leaf(f, p, &w), eager ? 3 : 2);
			assert_false(w);
		}
		/* The other block keeps its rights and its size. */
		assert_int_equal(dfx_leaf(f, 600, &w), 2);
		assert_true(w);
		assert_int_equal(dfx_store(f, 600, 6), 0);
		/* A write under the block faults: relaxed as a page, or breaking the block (lazy). */
		assert_int_equal(dfx_store(f, 100, 1), 1);
		assert_int_equal(f->last.action, eager ? MV_A64_ACT_RELAXED : MV_A64_ACT_MAPPED);
		assert_int_equal(dfx_leaf(f, 101, &w), 3);
		assert_false(w);
		dfx_free(f);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_get_errors, gfx_setup, gfx_teardown),
		cmocka_unit_test_setup_teardown(test_get_exchanges_and_protects, gfx_setup, gfx_teardown),
		cmocka_unit_test_setup_teardown(test_get_manual_copies, gfx_setup, gfx_teardown),
		cmocka_unit_test_setup_teardown(test_clear_rules, gfx_setup, gfx_teardown),
		cmocka_unit_test_setup_teardown(test_clear_reprotects_set_bits_only, gfx_setup,
						gfx_teardown),
		cmocka_unit_test_setup_teardown(test_partial_last_word, gfx_setup, gfx_teardown),
		cmocka_unit_test_setup_teardown(test_large_slot_model, gfx_setup, gfx_teardown),
		cmocka_unit_test_setup_teardown(test_init_set_and_no_bitmaps, gfx_setup, gfx_teardown),
		cmocka_unit_test(test_kvm_oracle),
		cmocka_unit_test(test_a64_calls),
		cmocka_unit_test(test_a64_get_end_to_end),
		cmocka_unit_test(test_a64_manual_protect),
		cmocka_unit_test(test_a64_init_set),
		cmocka_unit_test(test_a64_lazy_split),
		cmocka_unit_test(test_a64_eager_split),
		cmocka_unit_test(test_a64_init_set_blocks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
