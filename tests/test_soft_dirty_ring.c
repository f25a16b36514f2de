/*
 * Dirty rings of the software KVM (soft/dirty_ring.c): sizes and soft
 * limits, the push / harvest / reset protocol, full and soft-full rings
 * across many laps, kvm_dirty_ring_reset's coalescing of entries into
 * 64-page masks (forwards, backwards, straddling a word, other slots,
 * deleted slots, pages past a slot's end), and the arm64 VM with rings:
 * faults push into the vCPU's ring, a soft-full ring makes
 * mv_a64_vcpu_exec exit with HV_EXIT_DIRTY_RING_FULL before the access,
 * a reset write-protects the pages again.
 */
#include "dirty_fx.h"

#include <errno.h>
#include <stdio.h>

/* ------------------------------------------------------------------ */
/* The ring alone                                                       */

typedef struct harvested {
	unsigned n;
	hv_dirty_gfn g[1024];
} harvested;

static void collect(void *opaque, const hv_dirty_gfn *g)
{
	harvested *h = opaque;

	if (h->n < 1024)
		h->g[h->n] = *g;
	h->n++;
}

/* A set with slots 0 (256 pages) and 1 (10 pages) of as 0 and slot 3 of as 1 (128 pages). */
static mv_memslots *ring_slots(void)
{
	mv_memslots_config cfg = { .nr_as = 2, .dirty_bitmap = true };
	hv_memslot m[] = {
		{ .slot = HV_SLOT(0, 0), .gpa = 0, .size = 256 * DFX_4K, .hva = (void *)0x10000000 },
		{ .slot = HV_SLOT(0, 1), .gpa = 1ull << 30, .size = 10 * DFX_4K, .hva = (void *)0x20000000 },
		{ .slot = HV_SLOT(1, 3), .gpa = 0, .size = 128 * DFX_4K, .hva = (void *)0x30000000 },
	};
	mv_memslots *ms;

	assert_int_equal(mv_memslots_new(&cfg, &ms), 0);
	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(mv_memslots_set(ms, &m[i]), 0);
	return ms;
}

static void test_sizes(void **state)
{
	static const struct { uint32_t entries; int err; uint32_t soft; } cases[] = {
		{ 0, -EINVAL, 0 }, { 1, -EINVAL, 0 }, { 3, -EINVAL, 0 }, { 96, -EINVAL, 0 },
		{ 2, 0, 1 }, { 8, 0, 4 }, { 64, 0, 32 }, { 128, 0, 64 }, { 256, 0, 192 },
		{ 4096, 0, 4032 }, { 65536, 0, 65472 }, { 131072, -EINVAL, 0 },
	};
	static const struct { uint32_t entries; int err; } vm_sizes[] = {
		{ 0, -EINVAL }, { 128, -EINVAL }, { 255, -EINVAL }, { 256, 0 }, { 384, -EINVAL },
		{ 512, 0 }, { 65536, 0 }, { 131072, -E2BIG }, { 0x80000000u, -E2BIG },
	};
	tu_failing_alloc fa;
	mv_dirty_ring *ring;

	(void)state;
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r = mv_dirty_ring_new(cases[i].entries, NULL, &ring);

		assert_int_equal(r, cases[i].err);
		if (r)
			continue;
		assert_int_equal(mv_dirty_ring_soft_limit(ring), cases[i].soft);
		assert_int_equal(mv_dirty_ring_used(ring), 0);
		assert_false(mv_dirty_ring_soft_full(ring));
		mv_dirty_ring_free(ring);
	}
	for (unsigned i = 0; i < sizeof(vm_sizes) / sizeof(vm_sizes[0]); i++)
		assert_int_equal(mv_dirty_ring_check_entries(vm_sizes[i].entries), vm_sizes[i].err);
	for (unsigned long at = 1; at <= 2; at++) {
		tu_failing_alloc_init(&fa, at, false);
		assert_int_equal(mv_dirty_ring_new(256, &fa.alloc, &ring), -ENOMEM);
	}
	mv_dirty_ring_free(NULL);
}

static void test_push_harvest_reset(void **state)
{
	mv_memslots *ms = ring_slots();
	harvested h = { 0 };
	mv_dirty_ring *ring;
	dfx_rec rec;

	(void)state;
	dfx_rec_init(&rec);
	assert_int_equal(mv_dirty_ring_new(256, NULL, &ring), 0);
	/* Nothing to harvest or reset in an empty ring. */
	assert_int_equal(mv_dirty_ring_harvest(ring, collect, &h), 0);
	assert_int_equal(mv_dirty_ring_reset(ring, ms, dfx_rec_protect, &rec), 0);
	assert_int_equal(mv_dirty_ring_push(ring, HV_SLOT(0, 0), 200), 0);
	assert_int_equal(mv_dirty_ring_push(ring, HV_SLOT(1, 3), 5), 0);
	assert_int_equal(mv_dirty_ring_push(ring, HV_SLOT(0, 0), 7), 0);
	assert_int_equal(mv_dirty_ring_used(ring), 3);
	/* Pushed but not harvested: a reset stops at once. */
	assert_int_equal(mv_dirty_ring_reset(ring, ms, dfx_rec_protect, &rec), 0);
	assert_int_equal(rec.n, 0);
	assert_int_equal(mv_dirty_ring_harvest(ring, collect, &h), 3);
	assert_int_equal(h.n, 3);
	assert_int_equal(h.g[0].slot, HV_SLOT(0, 0));
	assert_int_equal(h.g[0].offset, 200);
	assert_int_equal(h.g[1].slot, HV_SLOT(1, 3));
	assert_int_equal(h.g[1].offset, 5);
	assert_int_equal(h.g[2].slot, HV_SLOT(0, 0));
	assert_int_equal(h.g[2].offset, 7);
	/* Harvested entries are reported once. */
	assert_int_equal(mv_dirty_ring_harvest(ring, collect, &h), 0);
	/* Harvested, still used until reset. */
	assert_int_equal(mv_dirty_ring_used(ring), 3);
	assert_int_equal(mv_dirty_ring_reset(ring, ms, dfx_rec_protect, &rec), 3);
	assert_int_equal(mv_dirty_ring_used(ring), 0);
	/* Three batches (the slot changes each time), each its own aligned word. */
	assert_int_equal(rec.n, 3);
	assert_int_equal(rec.calls[0].id, 0);
	assert_int_equal(rec.calls[0].offset, 192);
	assert_int_equal(rec.calls[0].mask, 1ull << 8);
	assert_int_equal(rec.calls[1].as_id, 1);
	assert_int_equal(rec.calls[1].id, 3);
	assert_int_equal(rec.calls[1].offset, 0);
	assert_int_equal(rec.calls[1].mask, 1ull << 5);
	assert_int_equal(rec.calls[2].offset, 0);
	assert_int_equal(rec.calls[2].mask, 1ull << 7);
	/* Reset stops at the first entry not yet harvested. */
	assert_int_equal(mv_dirty_ring_push(ring, HV_SLOT(0, 0), 1), 0);
	assert_int_equal(mv_dirty_ring_push(ring, HV_SLOT(0, 0), 2), 0);
	h.n = 0;
	assert_int_equal(mv_dirty_ring_harvest(ring, collect, &h), 2);
	assert_int_equal(mv_dirty_ring_push(ring, HV_SLOT(0, 0), 3), 0);
	assert_int_equal(mv_dirty_ring_reset(ring, ms, dfx_rec_protect, &rec), 2);
	assert_int_equal(mv_dirty_ring_used(ring), 1);
	mv_dirty_ring_free(ring);
	mv_memslots_free(ms);
}

/* Fill to the soft limit and to full, then drain, lap after lap: values and indices stay exact. */
static void test_full_and_laps(void **state)
{
	mv_memslots *ms = ring_slots();
	mv_dirty_ring *ring;
	harvested h;
	dfx_rec rec;
	uint64_t next = 0, expect = 0;

	(void)state;
	dfx_rec_init(&rec);
	assert_int_equal(mv_dirty_ring_new(8, NULL, &ring), 0);
	for (unsigned lap = 0; lap < 50; lap++) {
		unsigned fill = 1 + lap % 8;

		for (unsigned i = 0; i < fill; i++) {
			assert_int_equal(mv_dirty_ring_soft_full(ring), i >= 4);
			assert_int_equal(mv_dirty_ring_push(ring, HV_SLOT(0, 0), next++ % 256), 0);
		}
		assert_int_equal(mv_dirty_ring_used(ring), fill);
		assert_int_equal(mv_dirty_ring_soft_full(ring), fill >= 4);
		if (fill == 8)
			assert_int_equal(mv_dirty_ring_push(ring, HV_SLOT(0, 0), 0), -ENOSPC);
		h.n = 0;
		assert_int_equal(mv_dirty_ring_harvest(ring, collect, &h), (int)fill);
		for (unsigned i = 0; i < fill; i++)
			assert_int_equal(h.g[i].offset, expect++ % 256);
		/* A full ring stays full until reset, harvested or not. */
		if (fill == 8)
			assert_int_equal(mv_dirty_ring_push(ring, HV_SLOT(0, 0), 0), -ENOSPC);
		assert_int_equal(mv_dirty_ring_reset(ring, ms, dfx_rec_protect, &rec), (int)fill);
		assert_int_equal(mv_dirty_ring_used(ring), 0);
	}
	/* Every page was re-protected once (consecutive offsets coalesce). */
	assert_int_equal(rec.pages, next);
	mv_dirty_ring_free(ring);
	mv_memslots_free(ms);
}

/* Push @n entries (@slots NULL: all slot 0), harvest all, reset (@want_reset); record the calls. */
static void reset_of(mv_memslots *ms, const uint32_t *slots, const uint64_t *offs, unsigned n,
		     dfx_rec *rec, int want_reset)
{
	mv_dirty_ring *ring;
	harvested h = { 0 };

	dfx_rec_init(rec);
	assert_int_equal(mv_dirty_ring_new(256, NULL, &ring), 0);
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(mv_dirty_ring_push(ring, slots ? slots[i] : HV_SLOT(0, 0), offs[i]), 0);
	assert_int_equal(mv_dirty_ring_harvest(ring, collect, &h), (int)n);
	assert_int_equal(mv_dirty_ring_reset(ring, ms, dfx_rec_protect, rec), want_reset);
	mv_dirty_ring_free(ring);
}

static void assert_call(const dfx_rec *rec, unsigned i, unsigned id, uint64_t offset, uint64_t mask)
{
	assert_true(i < rec->n);
	assert_int_equal(rec->calls[i].id, id);
	assert_int_equal(rec->calls[i].offset, offset);
	assert_int_equal(rec->calls[i].mask, mask);
}

/* One coalescing case: entries (slot, offset) in ring order and the re-protect calls expected. */
typedef struct coalesce_case {
	const char *what;
	unsigned n;
	uint32_t slot[8];
	uint64_t off[8];
	unsigned ncalls;
	dfx_call calls[4];
} coalesce_case;

#define S0 HV_SLOT(0, 0)
#define S1 HV_SLOT(0, 1)
#define S13 HV_SLOT(1, 3)

static const coalesce_case coalesce_cases[] = {
	{ "three neighbours", 3, { S0, S0, S0 }, { 10, 11, 12 }, 1, { { 0, 0, 0, 0x1c00 } } },
	{ "the same page thrice", 3, { S0, S0, S0 }, { 5, 5, 5 }, 1, { { 0, 0, 0, 1ull << 5 } } },
	{ "a batch straddling a word: two aligned calls", 8, { S0, S0, S0, S0, S0, S0, S0, S0 },
	  { 60, 61, 62, 63, 64, 65, 66, 67 }, 2,
	  { { 0, 0, 0, 0xfull << 60 }, { 0, 0, 64, 0xf } } },
	{ "backwards", 3, { S0, S0, S0 }, { 70, 69, 68 }, 1, { { 0, 0, 64, 0x70 } } },
	{ "64 pages on is a new batch; one back fits the new one", 5, { S0, S0, S0, S0, S0 },
	  { 0, 1, 2, 64, 63 }, 3,
	  { { 0, 0, 0, 7 }, { 0, 0, 0, 1ull << 63 }, { 0, 0, 64, 1 } } },
	{ "64 pages back does not fit", 2, { S0, S0 }, { 100, 36 }, 2,
	  { { 0, 0, 64, 1ull << 36 }, { 0, 0, 0, 1ull << 36 } } },
	{ "moving back would drop the top page", 3, { S0, S0, S0 }, { 10, 73, 9 }, 3,
	  { { 0, 0, 0, 1ull << 10 }, { 0, 0, 64, 1ull << 9 }, { 0, 0, 0, 1ull << 9 } } },
	{ "slots interleaved", 3, { S0, S1, S0 }, { 5, 5, 6 }, 3,
	  { { 0, 0, 0, 1ull << 5 }, { 0, 1, 0, 1ull << 5 }, { 0, 0, 0, 1ull << 6 } } },
	{ "address spaces differ; slot 3 of as 0 does not exist", 2, { S13, HV_SLOT(0, 3) }, { 5, 6 },
	  1, { { 1, 3, 0, 1ull << 5 } } },
	{ "absent and out-of-range slots are dropped", 4,
	  { HV_SLOT(0, 7), HV_SLOT(0, 40000), HV_SLOT(5, 0), S0 }, { 1, 1, 1, 2 }, 1,
	  { { 0, 0, 0, 1ull << 2 } } },
	{ "a batch whose last page is past the slot's end is dropped whole", 3, { S1, S1, S0 },
	  { 5, 12, 3 }, 1, { { 0, 0, 0, 1ull << 3 } } },
	{ "the slot's last page is fine", 2, { S1, S1 }, { 5, 9 }, 1,
	  { { 0, 1, 0, (1ull << 5) | (1ull << 9) } } },
};

static void test_coalescing(void **state)
{
	mv_memslots *ms = ring_slots();
	uint64_t seq[64];
	dfx_rec rec;

	(void)state;
	for (unsigned c = 0; c < sizeof(coalesce_cases) / sizeof(coalesce_cases[0]); c++) {
		const coalesce_case *k = &coalesce_cases[c];

		print_message("# %s\n", k->what);
		reset_of(ms, k->slot, k->off, k->n, &rec, (int)k->n);
		assert_int_equal(rec.n, k->ncalls);
		for (unsigned i = 0; i < k->ncalls; i++) {
			assert_int_equal(rec.calls[i].as_id, k->calls[i].as_id);
			assert_call(&rec, i, k->calls[i].id, k->calls[i].offset, k->calls[i].mask);
		}
	}
	/* 64 pages in order and in reverse order: one word each. */
	for (unsigned i = 0; i < 64; i++)
		seq[i] = 64 + i;
	reset_of(ms, NULL, seq, 64, &rec, 64);
	assert_int_equal(rec.n, 1);
	assert_call(&rec, 0, 0, 64, ~0ull);
	for (unsigned i = 0; i < 64; i++)
		seq[i] = 127 - i;
	reset_of(ms, NULL, seq, 64, &rec, 64);
	assert_int_equal(rec.n, 1);
	assert_call(&rec, 0, 0, 64, ~0ull);
	/* Unaligned 64 in order: batch (32, ~0) straddles 64 and 96. */
	for (unsigned i = 0; i < 64; i++)
		seq[i] = 32 + i;
	reset_of(ms, NULL, seq, 64, &rec, 64);
	assert_int_equal(rec.n, 2);
	assert_call(&rec, 0, 0, 0, ~0ull << 32);
	assert_call(&rec, 1, 0, 64, ~0ull >> 32);
	mv_memslots_free(ms);
}

/* ------------------------------------------------------------------ */
/* The arm64 VM with rings                                              */

static void test_a64_ring_calls(void **state)
{
	mv_a64_vm *vm;
	mv_a64_vcpu *vcpu;
	mv_error err = { 0 };
	uint64_t bitmap[4];
	harvested h = { 0 };
	dfx *f;

	(void)state;
	/* A VM with bitmaps refuses ring calls. */
	f = dfx_new(&(dfx_opts){ .slot_flags = HV_MEM_LOG_DIRTY_PAGES });
	assert_int_equal(mv_a64_vcpu_dirty_ring_harvest(f->vcpu, collect, &h), -EINVAL);
	assert_int_equal(mv_a64_vm_dirty_rings_reset(f->vm), -EINVAL);
	/* Too late: a vCPU exists. */
	assert_int_equal(mv_a64_vm_enable_dirty_ring(f->vm, 256), -EINVAL);
	dfx_free(f);

	assert_int_equal(mv_a64_vm_new(NULL, &vm, &err), 0);
	assert_int_equal(mv_a64_vm_enable_dirty_ring(vm, 255), -EINVAL);
	assert_int_equal(mv_a64_vm_enable_dirty_ring(vm, 128), -EINVAL);
	assert_int_equal(mv_a64_vm_enable_dirty_ring(vm, 131072), -E2BIG);
	assert_int_equal(mv_a64_vm_enable_dirty_ring(vm, 512), 0);
	assert_int_equal(mv_a64_vm_enable_dirty_ring(vm, 512), -EINVAL);   /* once only */
	/* Bitmap calls answer -ENXIO, before any slot check. */
	assert_int_equal(mv_a64_vm_get_dirty_log(vm, 0, bitmap), -ENXIO);
	assert_int_equal(mv_a64_vm_get_dirty_log(vm, HV_SLOT(9, 0), bitmap), -ENXIO);
	assert_int_equal(mv_a64_vm_clear_dirty_log(vm, 0, 1, 64, bitmap), -ENXIO);
	assert_int_equal(mv_a64_vm_dirty_rings_reset(vm), 0);
	assert_int_equal(mv_a64_vcpu_new(vm, 3, &vcpu, &err), 0);
	assert_int_equal(mv_a64_vcpu_dirty_ring_harvest(vcpu, collect, &h), 0);
	mv_a64_vcpu_free(vcpu);
	mv_a64_vm_free(vm);

	/* A vCPU created and freed still counts (KVM never destroys one). */
	assert_int_equal(mv_a64_vm_new(NULL, &vm, &err), 0);
	assert_int_equal(mv_a64_vcpu_new(vm, 0, &vcpu, &err), 0);
	mv_a64_vcpu_free(vcpu);
	assert_int_equal(mv_a64_vm_enable_dirty_ring(vm, 256), -EINVAL);
	mv_a64_vm_free(vm);
}

/* A store that exits with DIRTY_RING_FULL, leaving PC and memory alone; returns the aborts taken. */
static unsigned store_ring_full(dfx *f, uint64_t page)
{
	unsigned before = f->aborts;
	mv_a64_regs r0, r1;
	mv_a64_outcome out;

	mv_a64_vcpu_get_regs(f->vcpu, &r0);
	out = dfx_access(f, true, page, 0, 0x5a5a);
	mv_a64_vcpu_get_regs(f->vcpu, &r1);
	assert_int_equal(out.result, MV_A64_EXIT);
	assert_int_equal(out.exit->reason, HV_EXIT_DIRTY_RING_FULL);
	assert_int_equal(r1.pc, r0.pc);
	assert_int_equal(*(uint64_t *)(uintptr_t)dfx_hva(f, page), 0);
	return f->aborts - before;
}

static void test_a64_ring_full_exit(void **state)
{
	dfx *f = dfx_new(&(dfx_opts){ .slot_flags = HV_MEM_LOG_DIRTY_PAGES, .ring_entries = 256 });
	harvested h = { 0 };
	bool w;

	(void)state;
	/* Every first write faults and pushes one entry. */
	for (uint64_t p = 0; p < 191; p++)
		assert_int_equal(dfx_store(f, p, 0x1000 + p), 1);
	/* Loads do not push. */
	assert_int_equal(dfx_load(f, 250), 1);
	/*
	 * 191 used: the store enters, faults, pushes the 192nd entry (the soft
	 * limit) and, at the next guest entry, exits before the store is done
	 * (KVM: kvm_dirty_ring_check_request at every entry). The page is
	 * mapped writable already.
	 */
	assert_int_equal(store_ring_full(f, 191), 1);
	assert_int_equal(f->last.action, MV_A64_ACT_MAPPED);
	assert_int_equal(dfx_leaf(f, 191, &w), 3);
	assert_true(w);
	/* Soft-full: the next run exits before the access, without an abort. */
	assert_int_equal(store_ring_full(f, 192), 0);
	assert_int_equal(mv_a64_vcpu_dirty_ring_harvest(f->vcpu, collect, &h), 192);
	for (unsigned i = 0; i < 192; i++) {
		assert_int_equal(h.g[i].slot, 0);
		assert_int_equal(h.g[i].offset, i);
	}
	/* Harvested is not enough: the entries stay used until reset. */
	assert_int_equal(store_ring_full(f, 192), 0);
	assert_int_equal(mv_a64_vm_dirty_rings_reset(f->vm), 192);
	assert_int_equal(mv_a64_vm_dirty_rings_reset(f->vm), 0);
	/* The reset write-protected the pages again: the interrupted store faults and pushes again. */
	assert_int_equal(dfx_leaf(f, 191, &w), 3);
	assert_false(w);
	assert_int_equal(dfx_leaf(f, 0, &w), 3);
	assert_false(w);
	assert_int_equal(dfx_store(f, 191, 0x5a5a), 1);
	assert_int_equal(f->last.action, MV_A64_ACT_RELAXED);
	assert_int_equal(dfx_store(f, 191, 0x5a5b), 0);
	assert_int_equal(dfx_store(f, 0, 0x2000), 1);
	h.n = 0;
	assert_int_equal(mv_a64_vcpu_dirty_ring_harvest(f->vcpu, collect, &h), 2);
	assert_int_equal(h.g[0].offset, 191);
	assert_int_equal(h.g[1].offset, 0);
	dfx_free(f);
}

static void test_a64_ring_slots(void **state)
{
	dfx *f = dfx_new(&(dfx_opts){ .ring_entries = 256 });
	hv_memslot del = { .slot = 0, .size = 0 };
	harvested h = { 0 };

	(void)state;
	/* A slot that does not log pushes nothing: 256 writes never fill the ring. */
	for (uint64_t p = 0; p < 256; p++)
		assert_int_equal(dfx_store(f, p, p + 1), 1);
	assert_int_equal(mv_a64_vcpu_dirty_ring_harvest(f->vcpu, collect, &h), 0);
	/* Logging turned on: the slot is write-protected, writes push. */
	dfx_set_slot(f, HV_MEM_LOG_DIRTY_PAGES);
	for (uint64_t p = 10; p < 20; p++)
		assert_int_equal(dfx_store(f, p, p), 1);
	assert_int_equal(mv_a64_vcpu_dirty_ring_harvest(f->vcpu, collect, &h), 10);
	/* Entries of a deleted slot are reset (counted) without touching anything. */
	assert_int_equal(mv_a64_vm_set_memslot(f->vm, &del), 0);
	assert_int_equal(mv_a64_vm_dirty_rings_reset(f->vm), 10);
	dfx_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_push_harvest_reset),
		cmocka_unit_test(test_full_and_laps),
		cmocka_unit_test(test_coalescing),
		cmocka_unit_test(test_a64_ring_calls),
		cmocka_unit_test(test_a64_ring_full_exit),
		cmocka_unit_test(test_a64_ring_slots),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
