/*
 * The soft KVM's memslot set: every errno rule of KVM_SET_USER_MEMORY_REGION
 * alone and in KVM's order, the four kinds of change, failed calls changing
 * nothing, lookups, generation, arch hooks, dirty bitmaps, hva walks,
 * allocation failures, and a randomized run against a naive model.
 */
#include "testutil.h"

#include "memvirt/soft_memslot.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define PG 4096ull
#define MAXP MV_MEMSLOT_MAX_NR_PAGES
#define HVA0 0x7f0000000000ull      /* host addresses are never touched */

static hv_memslot mk(unsigned as_id, unsigned id, uint32_t flags, uint64_t gpa, uint64_t size,
		     uint64_t hva)
{
	hv_memslot m = {
		.slot = HV_SLOT(as_id, id),
		.flags = flags,
		.gpa = gpa,
		.size = size,
		.hva = (void *)(uintptr_t)hva,
	};
	return m;
}

static int set(mv_memslots *ms, unsigned as_id, unsigned id, uint32_t flags, uint64_t gpa,
	       uint64_t size, uint64_t hva)
{
	hv_memslot m = mk(as_id, id, flags, gpa, size, hva);

	return mv_memslots_set(ms, &m);
}

/* ------------------------------------------------------------------ */
/* Arch hooks that record their calls                                   */

typedef struct rec_call {
	bool commit;
	mv_memslot_change change;
	bool has_old, has_new;
	mv_memslot old, new;
} rec_call;

typedef struct rec {
	mv_memslots *ms;
	int prepare_ret;
	int n;
	rec_call calls[8];
	int visibility_errors;      /* state seen by a hook that KVM would not show */
} rec;

static void rec_add(rec *r, bool commit, mv_memslot_change change, const mv_memslot *old,
		    const mv_memslot *new)
{
	rec_call *c = &r->calls[r->n++ % 8];

	memset(c, 0, sizeof(*c));
	c->commit = commit;
	c->change = change;
	c->has_old = old != NULL;
	c->has_new = new != NULL;
	if (old)
		c->old = *old;
	if (new)
		c->new = *new;
}

/* Before the change, lookups still give the old state. */
static int rec_prepare(void *arg, mv_memslot_change change, const mv_memslot *old,
		       mv_memslot *new)
{
	rec *r = arg;
	const mv_memslot *s = old ? old : new;

	rec_add(r, false, change, old, new);
	if (mv_memslots_get(r->ms, s->as_id, s->id) != old)
		r->visibility_errors++;
	return r->prepare_ret;
}

/* After it, lookups give the new state while @old is still readable. */
static void rec_commit(void *arg, mv_memslot_change change, const mv_memslot *old,
		       const mv_memslot *new)
{
	rec *r = arg;
	const mv_memslot *s = old ? old : new;

	rec_add(r, true, change, old, new);
	if (mv_memslots_get(r->ms, s->as_id, s->id) != new)
		r->visibility_errors++;
	if (new && mv_memslots_find(r->ms, new->as_id, new->base_gfn, NULL) != new)
		r->visibility_errors++;
	if (old && change != MV_MR_FLAGS_ONLY &&
	    mv_memslots_find(r->ms, old->as_id, old->base_gfn, NULL) == old)
		r->visibility_errors++;
}

static mv_memslots *new_set(unsigned nr_as, unsigned nr_slots, bool bitmap, rec *r,
			    const mv_allocator *alloc)
{
	mv_memslots_config cfg = {
		.nr_as = nr_as,
		.nr_slots = nr_slots,
		.dirty_bitmap = bitmap,
		.arch_prepare = r ? rec_prepare : NULL,
		.arch_commit = r ? rec_commit : NULL,
		.arg = r,
		.alloc = alloc,
	};
	mv_memslots *ms = NULL;

	assert_int_equal(mv_memslots_new(&cfg, &ms), 0);
	if (r) {
		memset(r, 0, sizeof(*r));
		r->ms = ms;
	}
	return ms;
}

/* ------------------------------------------------------------------ */
/* Full-state snapshots                                                 */

#define SNAP_MAX 128

typedef struct snap_slot {
	const mv_memslot *ptr;
	mv_memslot copy;
	uint64_t bitmap_sum;
} snap_slot;

typedef struct snap {
	uint64_t generation;
	size_t count[2];
	snap_slot slots[2][SNAP_MAX];
} snap;

static uint64_t bitmap_sum(const mv_memslot *s)
{
	uint64_t sum = 0, i;

	if (!s->dirty_bitmap)
		return 0;
	for (i = 0; i < HV_DIRTY_BITMAP_WORDS(s->npages * PG); i++)
		sum = sum * 31 + s->dirty_bitmap[i];
	return sum;
}

static void take_snap(const mv_memslots *ms, unsigned nr_as, snap *sn)
{
	unsigned a;
	size_t i;

	memset(sn, 0, sizeof(*sn));
	sn->generation = mv_memslots_generation(ms);
	for (a = 0; a < nr_as; a++) {
		sn->count[a] = mv_memslots_count(ms, a);
		assert_true(sn->count[a] <= SNAP_MAX);
		for (i = 0; i < sn->count[a]; i++) {
			const mv_memslot *s = mv_memslots_at(ms, a, i);

			sn->slots[a][i].ptr = s;
			sn->slots[a][i].copy = *s;
			sn->slots[a][i].bitmap_sum = bitmap_sum(s);
		}
	}
}

static void assert_snap_equal(const snap *a, const snap *b)
{
	assert_memory_equal(a, b, sizeof(*a));
}

/* ------------------------------------------------------------------ */
/* Configuration                                                        */

static void test_new_config(void **state)
{
	mv_memslots_config cfg = { .nr_as = 0 };
	mv_memslots *ms = NULL;

	(void)state;
	assert_int_equal(mv_memslots_new(&cfg, &ms), -EINVAL);
	cfg.nr_as = 17;
	assert_int_equal(mv_memslots_new(&cfg, &ms), -EINVAL);
	cfg.nr_as = 16;
	cfg.nr_slots = MV_MEMSLOT_SLOTS_NUM + 1;
	assert_int_equal(mv_memslots_new(&cfg, &ms), -EINVAL);
	assert_null(ms);

	/* nr_slots 0 = every KVM slot id: 0..32766 */
	cfg.nr_slots = 0;
	assert_int_equal(mv_memslots_new(&cfg, &ms), 0);
	assert_int_equal(set(ms, 15, 32766, 0, 0, PG, HVA0), 0);
	assert_int_equal(set(ms, 15, 32767, 0, PG, PG, HVA0), -EINVAL);
	assert_int_equal(set(ms, 16, 0, 0, PG, PG, HVA0), -EINVAL);
	assert_int_equal(mv_memslots_count(ms, 15), 1);
	assert_int_equal(mv_memslots_count(ms, 16), 0);
	assert_null(mv_memslots_get(ms, 16, 0));
	assert_null(mv_memslots_find(ms, 16, 0, NULL));
	assert_null(mv_memslots_at(ms, 15, 1));
	mv_memslots_free(ms);
	mv_memslots_free(NULL);
}

/* ------------------------------------------------------------------ */
/* Each errno rule alone                                                */

static void test_rule_flags(void **state)
{
	mv_memslots *ms = new_set(1, 0, true, NULL, NULL);
	unsigned bit;

	(void)state;
	for (bit = 2; bit < 32; bit++)
		assert_int_equal(set(ms, 0, 0, 1u << bit, 0, PG, HVA0), -EINVAL);
	assert_int_equal(set(ms, 0, 0, HV_MEM_LOG_DIRTY_PAGES | HV_MEM_READONLY, 0, PG, HVA0), 0);
	/* bad flags fail even for a delete */
	assert_int_equal(set(ms, 0, 0, 4, 0, 0, HVA0), -EINVAL);
	assert_int_equal(mv_memslots_count(ms, 0), 1);
	mv_memslots_free(ms);
}

static void test_rule_size_gpa_alignment(void **state)
{
	mv_memslots *ms = new_set(1, 0, false, NULL, NULL);

	(void)state;
	assert_int_equal(set(ms, 0, 0, 0, 0, PG + 1, HVA0), -EINVAL);
	assert_int_equal(set(ms, 0, 0, 0, 0, 0x800, HVA0), -EINVAL);
	assert_int_equal(set(ms, 0, 0, 0, 0x10, PG, HVA0), -EINVAL);
	assert_int_equal(set(ms, 0, 0, 0, PG - 1, PG, HVA0), -EINVAL);
	assert_int_equal(set(ms, 0, 0, 0, PG, 2 * PG, HVA0), 0);
	mv_memslots_free(ms);
}

static void test_rule_hva(void **state)
{
	mv_memslots *ms = new_set(1, 0, false, NULL, NULL);
	const uint64_t top = MV_MEMSLOT_TASK_SIZE;

	(void)state;
	assert_int_equal(set(ms, 0, 0, 0, 0, PG, HVA0 + 8), -EINVAL);
	/* [hva, hva + size) must end at or below TASK_SIZE_MAX (x86 access_ok) */
	assert_int_equal(set(ms, 0, 0, 0, 0, 2 * PG, top - PG), -EINVAL);
	assert_int_equal(set(ms, 0, 0, 0, 0, PG, top), -EINVAL);
	assert_int_equal(set(ms, 0, 0, 0, 0, PG, ~0ull - PG + 1), -EINVAL);  /* wraps */
	assert_int_equal(set(ms, 0, 0, 0, 0, 0x10000, 1ull << 63), -EINVAL);
	assert_int_equal(set(ms, 0, 0, 0, 0, PG, top - PG), 0);
	/* even a delete is checked: its hva must be a user address */
	assert_int_equal(set(ms, 0, 0, 0, 0, 0, top + PG), -EINVAL);
	assert_int_equal(set(ms, 0, 0, 0, 0, 0, top), 0);
	assert_int_equal(mv_memslots_count(ms, 0), 0);
	/* hva 0 is a user address */
	assert_int_equal(set(ms, 0, 1, 0, 0, PG, 0), 0);
	mv_memslots_free(ms);
}

static void test_rule_ids(void **state)
{
	mv_memslots *ms = new_set(2, 10, false, NULL, NULL);

	(void)state;
	assert_int_equal(set(ms, 2, 0, 0, 0, PG, HVA0), -EINVAL);
	assert_int_equal(set(ms, 0xffff, 0, 0, 0, PG, HVA0), -EINVAL);
	assert_int_equal(set(ms, 0, 10, 0, 0, PG, HVA0), -EINVAL);
	assert_int_equal(set(ms, 0, 0xffff, 0, 0, PG, HVA0), -EINVAL);
	assert_int_equal(set(ms, 1, 9, 0, 0, PG, HVA0), 0);
	assert_int_equal(set(ms, 0, 9, 0, 0, PG, HVA0), 0);
	/* the two address spaces are independent: same gpa, same id */
	assert_int_equal(mv_memslots_count(ms, 0), 1);
	assert_int_equal(mv_memslots_count(ms, 1), 1);
	mv_memslots_free(ms);
}

static void test_rule_gpa_wrap(void **state)
{
	mv_memslots *ms = new_set(1, 0, false, NULL, NULL);

	(void)state;
	/* ending exactly at 2^64 wraps gpa + size to 0: rejected as KVM does */
	assert_int_equal(set(ms, 0, 0, 0, ~0ull - PG + 1, PG, HVA0), -EINVAL);
	assert_int_equal(set(ms, 0, 0, 0, ~0ull - 4 * PG + 1, 8 * PG, HVA0), -EINVAL);
	assert_int_equal(set(ms, 0, 0, 0, ~0ull - 2 * PG + 1, PG, HVA0), 0);
	mv_memslots_free(ms);
}

static void test_rule_max_pages(void **state)
{
	mv_memslots *ms = new_set(1, 0, false, NULL, NULL);
	const uint64_t hva = 1ull << 44;

	(void)state;
	assert_int_equal(set(ms, 0, 0, 0, 0, (MAXP + 1) * PG, hva), -EINVAL);
	assert_int_equal(set(ms, 0, 0, 0, 0, (MAXP + 1000) * PG, hva), -EINVAL);
	assert_int_equal(set(ms, 0, 0, 0, 0, MAXP * PG, hva), 0);
	assert_int_equal(mv_memslots_get(ms, 0, 0)->npages, MAXP);
	mv_memslots_free(ms);
}

static void test_rule_delete_absent(void **state)
{
	mv_memslots *ms = new_set(1, 0, false, NULL, NULL);

	(void)state;
	assert_int_equal(set(ms, 0, 3, 0, 0, 0, 0), -EINVAL);
	assert_int_equal(set(ms, 0, 3, 0, 0, PG, HVA0), 0);
	/* a delete ignores gpa, hva (once valid) and flags */
	assert_int_equal(set(ms, 0, 3, HV_MEM_READONLY, 0x123000, 0, 0x5000), 0);
	assert_int_equal(set(ms, 0, 3, 0, 0, 0, 0), -EINVAL);
	assert_int_equal(mv_memslots_generation(ms), 2);
	mv_memslots_free(ms);
}

static void test_rule_immutable(void **state)
{
	mv_memslots *ms = new_set(1, 0, false, NULL, NULL);

	(void)state;
	assert_int_equal(set(ms, 0, 0, 0, 0x10000, 4 * PG, HVA0), 0);
	assert_int_equal(set(ms, 0, 0, 0, 0x10000, 4 * PG, HVA0 + PG), -EINVAL);  /* hva */
	assert_int_equal(set(ms, 0, 0, 0, 0x10000, 8 * PG, HVA0), -EINVAL);       /* size */
	assert_int_equal(set(ms, 0, 0, 0, 0x10000, 2 * PG, HVA0), -EINVAL);
	assert_int_equal(set(ms, 0, 0, HV_MEM_READONLY, 0x10000, 4 * PG, HVA0), -EINVAL);
	assert_int_equal(set(ms, 0, 0, HV_MEM_READONLY, 0x90000, 4 * PG, HVA0), -EINVAL);
	assert_int_equal(set(ms, 0, 1, HV_MEM_READONLY, 0x20000, 4 * PG, HVA0), 0);
	assert_int_equal(set(ms, 0, 1, 0, 0x20000, 4 * PG, HVA0), -EINVAL);
	assert_int_equal(set(ms, 0, 1, HV_MEM_LOG_DIRTY_PAGES, 0x20000, 4 * PG, HVA0), -EINVAL);
	assert_int_equal(mv_memslots_generation(ms), 2);
	mv_memslots_free(ms);
}

static void test_rule_overlap(void **state)
{
	mv_memslots *ms = new_set(2, 0, false, NULL, NULL);

	(void)state;
	assert_int_equal(set(ms, 0, 0, 0, 0x10000, 16 * PG, HVA0), 0);      /* gfn 0x10..0x1f */
	assert_int_equal(set(ms, 0, 1, 0, 0x30000, 16 * PG, HVA0), 0);      /* gfn 0x30..0x3f */
	/* create: overlapping the start, the end, inside, around */
	assert_int_equal(set(ms, 0, 2, 0, 0xf000, 2 * PG, HVA0), -EEXIST);
	assert_int_equal(set(ms, 0, 2, 0, 0x1f000, PG, HVA0), -EEXIST);
	assert_int_equal(set(ms, 0, 2, 0, 0x14000, PG, HVA0), -EEXIST);
	assert_int_equal(set(ms, 0, 2, 0, 0x0, 0x100 * PG, HVA0), -EEXIST);
	assert_int_equal(set(ms, 0, 2, 0, 0x1f000, 0x12 * PG, HVA0), -EEXIST);
	/* adjacent on both sides is fine; so is the same range in another AS */
	assert_int_equal(set(ms, 0, 2, 0, 0x20000, 16 * PG, HVA0), 0);
	assert_int_equal(set(ms, 1, 2, 0, 0x10000, 16 * PG, HVA0), 0);
	/* move: onto another slot fails, onto (part of) itself does not */
	assert_int_equal(set(ms, 0, 2, 0, 0x38000, 16 * PG, HVA0), -EEXIST);
	assert_int_equal(set(ms, 0, 0, 0, 0x8000, 16 * PG, HVA0), 0);
	assert_int_equal(set(ms, 0, 0, 0, 0x0, 16 * PG, HVA0), 0);
	assert_int_equal(set(ms, 0, 0, 0, 0x10000, 16 * PG, HVA0), 0);
	/* a flags change is never an overlap question */
	assert_int_equal(set(ms, 0, 0, HV_MEM_LOG_DIRTY_PAGES, 0x10000, 16 * PG, HVA0), 0);
	mv_memslots_free(ms);
}

static void test_rule_arch_prepare(void **state)
{
	rec r;
	mv_memslots *ms = new_set(1, 0, false, &r, NULL);

	(void)state;
	r.prepare_ret = -EFAULT;
	assert_int_equal(set(ms, 0, 0, 0, 0, PG, HVA0), -EFAULT);
	assert_int_equal(r.n, 1);
	assert_false(r.calls[0].commit);
	assert_int_equal(mv_memslots_count(ms, 0), 0);
	r.prepare_ret = 0;
	assert_int_equal(set(ms, 0, 0, 0, 0, PG, HVA0), 0);
	r.prepare_ret = -E2BIG;      /* whatever the arch says comes back */
	assert_int_equal(set(ms, 0, 0, 0, 0, 0, HVA0), -E2BIG);
	assert_int_equal(set(ms, 0, 0, 0, PG, PG, HVA0), -E2BIG);
	assert_int_equal(set(ms, 0, 0, HV_MEM_LOG_DIRTY_PAGES, 0, PG, HVA0), -E2BIG);
	assert_int_equal(mv_memslots_get(ms, 0, 0)->flags, 0);
	assert_int_equal(mv_memslots_get(ms, 0, 0)->base_gfn, 0);
	assert_int_equal(r.visibility_errors, 0);
	mv_memslots_free(ms);
}

/* ------------------------------------------------------------------ */
/* Two rules broken at once: the first in KVM's order decides           */

static void test_rule_order(void **state)
{
	rec r;
	mv_memslots *ms = new_set(2, 8, false, &r, NULL);
	int n;

	(void)state;
	assert_int_equal(set(ms, 0, 0, 0, 0x10000, 16 * PG, HVA0), 0);
	assert_int_equal(set(ms, 0, 1, 0, 0x40000, 16 * PG, HVA0), 0);
	r.prepare_ret = -EFAULT;
	n = r.n;
	/* each -EINVAL rule beats the overlap */
	assert_int_equal(set(ms, 0, 1, 0, 0x10800, PG, HVA0), -EINVAL);         /* gpa */
	assert_int_equal(set(ms, 0, 1, 0, 0x10000, PG + 8, HVA0), -EINVAL);     /* size */
	assert_int_equal(set(ms, 0, 1, 8, 0x10000, PG, HVA0), -EINVAL);         /* flags */
	assert_int_equal(set(ms, 0, 1, 0, 0x10000, PG, HVA0 + 1), -EINVAL);     /* hva */
	assert_int_equal(set(ms, 0, 1, 0, 0x10000, PG, 1ull << 62), -EINVAL);   /* hva range */
	assert_int_equal(set(ms, 0, 8, 0, 0x10000, PG, HVA0), -EINVAL);         /* id */
	assert_int_equal(set(ms, 0, 1, 0, 0, (MAXP + 1) * PG, 1ull << 44), -EINVAL);
	/* an immutable-field change of slot 0 beats the overlap of its move */
	assert_int_equal(set(ms, 0, 0, 0, 0x40000, 8 * PG, HVA0), -EINVAL);
	assert_int_equal(set(ms, 0, 0, HV_MEM_READONLY, 0x40000, 16 * PG, HVA0), -EINVAL);
	assert_int_equal(set(ms, 0, 0, 0, 0x40000, 16 * PG, HVA0 + PG), -EINVAL);
	/* the overlap beats the arch hook (which is not even asked) */
	assert_int_equal(set(ms, 0, 0, 0, 0x48000, 16 * PG, HVA0), -EEXIST);
	assert_int_equal(set(ms, 0, 2, 0, 0x48000, PG, HVA0), -EEXIST);
	assert_int_equal(r.n, n);
	/* misaligned gpa of a delete of an absent slot: the alignment rule first */
	assert_int_equal(set(ms, 0, 5, 0, 0x10, 0, 0), -EINVAL);
	/* an identical re-registration succeeds without asking the arch */
	assert_int_equal(set(ms, 0, 0, 0, 0x10000, 16 * PG, HVA0), 0);
	assert_int_equal(r.n, n);
	mv_memslots_free(ms);
}

/* The -ENOMEM of an allocation beats the arch hook, as in KVM (prepare runs last). */
static void test_rule_order_enomem_before_arch(void **state)
{
	tu_failing_alloc fa;
	rec r;
	mv_memslots *ms;

	(void)state;
	tu_failing_alloc_init(&fa, 0, false);
	ms = new_set(1, 0, true, &r, &fa.alloc);
	r.prepare_ret = -EFAULT;
	fa.fail_at = fa.calls + 1;
	fa.fail_all = true;
	assert_int_equal(set(ms, 0, 0, HV_MEM_LOG_DIRTY_PAGES, 0, PG, HVA0), -ENOMEM);
	assert_int_equal(r.n, 0);
	fa.fail_at = 0;
	assert_int_equal(set(ms, 0, 0, HV_MEM_LOG_DIRTY_PAGES, 0, PG, HVA0), -EFAULT);
	assert_int_equal(r.n, 1);
	mv_memslots_free(ms);
}

/* ------------------------------------------------------------------ */
/* The four changes                                                     */

static void assert_slot(const mv_memslot *s, unsigned as_id, unsigned id, uint32_t flags,
			uint64_t gfn, uint64_t npages, uint64_t hva)
{
	assert_non_null(s);
	assert_int_equal(s->as_id, as_id);
	assert_int_equal(s->id, id);
	assert_int_equal(s->flags, flags);
	assert_int_equal(s->base_gfn, gfn);
	assert_int_equal(s->npages, npages);
	assert_int_equal(s->userspace_addr, hva);
}

static void test_create_delete_move_flags(void **state)
{
	rec r;
	mv_memslots *ms = new_set(2, 0, true, &r, NULL);
	const mv_memslot *s;

	(void)state;
	/* CREATE */
	assert_int_equal(set(ms, 1, 7, 0, 0x100000, 32 * PG, HVA0), 0);
	s = mv_memslots_get(ms, 1, 7);
	assert_slot(s, 1, 7, 0, 0x100, 32, HVA0);
	assert_null(s->dirty_bitmap);
	assert_ptr_equal(mv_memslots_find(ms, 1, 0x11f, NULL), s);
	assert_null(mv_memslots_find(ms, 0, 0x11f, NULL));
	assert_int_equal(r.n, 2);
	assert_int_equal(r.calls[0].change, MV_MR_CREATE);
	assert_false(r.calls[0].has_old);
	assert_true(r.calls[0].has_new);
	assert_true(r.calls[1].commit);
	assert_int_equal(r.calls[1].change, MV_MR_CREATE);
	assert_int_equal(r.calls[1].new.base_gfn, 0x100);

	/* MOVE */
	r.n = 0;
	assert_int_equal(set(ms, 1, 7, 0, 0x200000, 32 * PG, HVA0), 0);
	s = mv_memslots_get(ms, 1, 7);
	assert_slot(s, 1, 7, 0, 0x200, 32, HVA0);
	assert_null(mv_memslots_find(ms, 1, 0x100, NULL));
	assert_ptr_equal(mv_memslots_find(ms, 1, 0x200, NULL), s);
	assert_int_equal(r.n, 2);
	assert_int_equal(r.calls[0].change, MV_MR_MOVE);
	assert_int_equal(r.calls[0].old.base_gfn, 0x100);
	assert_int_equal(r.calls[0].new.base_gfn, 0x200);
	assert_int_equal(r.calls[1].change, MV_MR_MOVE);
	assert_int_equal(r.calls[1].old.base_gfn, 0x100);
	assert_int_equal(r.calls[1].new.base_gfn, 0x200);

	/* FLAGS_ONLY */
	r.n = 0;
	assert_int_equal(set(ms, 1, 7, HV_MEM_LOG_DIRTY_PAGES, 0x200000, 32 * PG, HVA0), 0);
	s = mv_memslots_get(ms, 1, 7);
	assert_slot(s, 1, 7, HV_MEM_LOG_DIRTY_PAGES, 0x200, 32, HVA0);
	assert_non_null(s->dirty_bitmap);
	assert_int_equal(r.calls[0].change, MV_MR_FLAGS_ONLY);
	assert_int_equal(r.calls[0].old.flags, 0);
	assert_int_equal(r.calls[0].new.flags, HV_MEM_LOG_DIRTY_PAGES);
	assert_ptr_equal(r.calls[0].new.dirty_bitmap, s->dirty_bitmap);
	assert_int_equal(r.calls[1].change, MV_MR_FLAGS_ONLY);

	/* a move may change the (non-READONLY) flags too: still a MOVE */
	r.n = 0;
	assert_int_equal(set(ms, 1, 7, 0, 0x300000, 32 * PG, HVA0), 0);
	assert_int_equal(r.calls[0].change, MV_MR_MOVE);
	assert_null(mv_memslots_get(ms, 1, 7)->dirty_bitmap);

	/* DELETE */
	r.n = 0;
	assert_int_equal(set(ms, 1, 7, 0, 0, 0, 0), 0);
	assert_null(mv_memslots_get(ms, 1, 7));
	assert_null(mv_memslots_find(ms, 1, 0x300, NULL));
	assert_int_equal(mv_memslots_count(ms, 1), 0);
	assert_int_equal(r.calls[0].change, MV_MR_DELETE);
	assert_true(r.calls[0].has_old);
	assert_false(r.calls[0].has_new);
	assert_int_equal(r.calls[0].old.base_gfn, 0x300);
	assert_int_equal(r.calls[1].change, MV_MR_DELETE);
	assert_false(r.calls[1].has_new);
	/* the id is free again */
	assert_int_equal(set(ms, 1, 7, HV_MEM_READONLY, 0x300000, PG, HVA0 + PG), 0);
	assert_int_equal(r.visibility_errors, 0);
	mv_memslots_free(ms);
}

static void test_noop(void **state)
{
	rec r;
	mv_memslots *ms = new_set(1, 0, true, &r, NULL);
	const mv_memslot *s;
	uint64_t gen;

	(void)state;
	assert_int_equal(set(ms, 0, 4, HV_MEM_LOG_DIRTY_PAGES, 0x5000, 3 * PG, HVA0), 0);
	s = mv_memslots_get(ms, 0, 4);
	mv_memslot_mark_dirty(s, 6);
	gen = mv_memslots_generation(ms);
	r.n = 0;
	assert_int_equal(set(ms, 0, 4, HV_MEM_LOG_DIRTY_PAGES, 0x5000, 3 * PG, HVA0), 0);
	assert_int_equal(r.n, 0);
	assert_int_equal(mv_memslots_generation(ms), gen);
	assert_ptr_equal(mv_memslots_get(ms, 0, 4), s);
	assert_int_equal(s->dirty_bitmap[0], 2);
	mv_memslots_free(ms);
}

/* The arch data follows a slot across MOVE and FLAGS_ONLY. */
static int set_arch(void *arg, mv_memslot_change change, const mv_memslot *old,
		    mv_memslot *new)
{
	(void)old;
	if (change == MV_MR_CREATE)
		new->arch = arg;
	return 0;
}

static void test_arch_data_follows(void **state)
{
	int token;
	mv_memslots_config cfg = { .nr_as = 1, .arch_prepare = set_arch, .arg = &token };
	mv_memslots *ms;

	(void)state;
	assert_int_equal(mv_memslots_new(&cfg, &ms), 0);
	assert_int_equal(set(ms, 0, 0, 0, 0, PG, HVA0), 0);
	assert_ptr_equal(mv_memslots_get(ms, 0, 0)->arch, &token);
	assert_int_equal(set(ms, 0, 0, 0, PG, PG, HVA0), 0);
	assert_ptr_equal(mv_memslots_get(ms, 0, 0)->arch, &token);
	assert_int_equal(set(ms, 0, 0, HV_MEM_LOG_DIRTY_PAGES, PG, PG, HVA0), 0);
	assert_ptr_equal(mv_memslots_get(ms, 0, 0)->arch, &token);
	assert_int_equal(set(ms, 0, 1, 0, 0x10000, PG, HVA0), 0);
	assert_ptr_equal(mv_memslots_get(ms, 0, 1)->arch, &token);
	mv_memslots_free(ms);
}

/* ------------------------------------------------------------------ */
/* A failed call changes nothing                                        */

static void test_failed_calls_change_nothing(void **state)
{
	rec r;
	mv_memslots *ms = new_set(2, 16, true, &r, NULL);
	const hv_memslot bad[] = {
		mk(0, 0, 4, 0x10000, 4 * PG, HVA0),                       /* flags */
		mk(0, 1, 0, 0x10000, 4 * PG + 1, HVA0),                   /* size */
		mk(0, 1, 0, 0x10001, 4 * PG, HVA0),                       /* gpa */
		mk(0, 1, 0, 0x80000, 4 * PG, HVA0 + 2),                   /* hva */
		mk(0, 1, 0, 0x80000, 4 * PG, MV_MEMSLOT_TASK_SIZE),       /* hva range */
		mk(2, 1, 0, 0x80000, 4 * PG, HVA0),                       /* as_id */
		mk(0, 16, 0, 0x80000, 4 * PG, HVA0),                      /* id */
		mk(0, 1, 0, ~0ull - PG + 1, 4 * PG, HVA0),                /* gpa wrap */
		mk(0, 1, 0, 0, (MAXP + 1) * PG, 1ull << 44),              /* too big */
		mk(0, 9, 0, 0, 0, HVA0),                                  /* delete absent */
		mk(0, 0, 0, 0x10000, 4 * PG, HVA0 + PG),                  /* hva change */
		mk(0, 0, 0, 0x10000, 8 * PG, HVA0),                       /* size change */
		mk(0, 0, HV_MEM_READONLY, 0x10000, 4 * PG, HVA0),         /* READONLY on */
		mk(0, 2, 0, 0x20000, 4 * PG, HVA0),                       /* READONLY off */
		mk(0, 1, 0, 0x12000, 4 * PG, HVA0),                       /* overlap create */
		mk(0, 0, HV_MEM_LOG_DIRTY_PAGES, 0x1e000, 4 * PG, HVA0),  /* overlap move */
	};
	const hv_memslot arch_refused[] = {
		mk(0, 1, HV_MEM_LOG_DIRTY_PAGES, 0x40000, 4 * PG, HVA0),  /* create */
		mk(0, 0, 0, 0x50000, 4 * PG, HVA0),                       /* move */
		mk(0, 0, 0, 0x10000, 4 * PG, HVA0),                       /* flags off */
		mk(0, 2, HV_MEM_READONLY | HV_MEM_LOG_DIRTY_PAGES, 0x20000, 4 * PG, HVA0),
		mk(0, 0, 0, 0, 0, HVA0),                                  /* delete */
	};
	snap before, after;
	size_t i;

	(void)state;
	assert_int_equal(set(ms, 0, 0, HV_MEM_LOG_DIRTY_PAGES, 0x10000, 4 * PG, HVA0), 0);
	assert_int_equal(set(ms, 0, 2, HV_MEM_READONLY, 0x20000, 4 * PG, HVA0), 0);
	assert_int_equal(set(ms, 1, 0, 0, 0x10000, 4 * PG, HVA0), 0);
	mv_memslot_mark_dirty(mv_memslots_get(ms, 0, 0), 0x12);
	take_snap(ms, 2, &before);
	r.n = 0;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int ret = mv_memslots_set(ms, &bad[i]);

		if (ret != -EINVAL && ret != -EEXIST)
			fail_msg("bad[%zu]: %d", i, ret);
		take_snap(ms, 2, &after);
		assert_snap_equal(&before, &after);
	}
	assert_int_equal(r.n, 0);
	r.prepare_ret = -ENOSPC;
	for (i = 0; i < sizeof(arch_refused) / sizeof(arch_refused[0]); i++) {
		assert_int_equal(mv_memslots_set(ms, &arch_refused[i]), -ENOSPC);
		take_snap(ms, 2, &after);
		assert_snap_equal(&before, &after);
	}
	assert_int_equal(r.n, 5);
	mv_memslots_free(ms);
}

/* ------------------------------------------------------------------ */
/* Lookups                                                              */

static void test_lookup_boundaries_and_hint(void **state)
{
	mv_memslots *ms = new_set(1, 0, false, NULL, NULL);
	const mv_memslot *a, *b;
	size_t hint = 0;

	(void)state;
	assert_null(mv_memslots_find(ms, 0, 0, &hint));
	assert_int_equal(set(ms, 0, 0, 0, 0x10000, 16 * PG, HVA0), 0);          /* 0x10..0x1f */
	assert_int_equal(set(ms, 0, 1, 0, 0x20000, 16 * PG, HVA0), 0);          /* 0x20..0x2f */
	assert_int_equal(set(ms, 0, 2, 0, ~0ull - 16 * PG + 1 - PG, 16 * PG, HVA0), 0);
	a = mv_memslots_get(ms, 0, 0);
	b = mv_memslots_get(ms, 0, 1);
	assert_ptr_equal(mv_memslots_at(ms, 0, 0), a);
	assert_ptr_equal(mv_memslots_at(ms, 0, 1), b);

	assert_null(mv_memslots_find(ms, 0, 0xf, NULL));
	assert_ptr_equal(mv_memslots_find(ms, 0, 0x10, NULL), a);
	assert_ptr_equal(mv_memslots_find(ms, 0, 0x1f, NULL), a);
	assert_ptr_equal(mv_memslots_find(ms, 0, 0x20, NULL), b);
	assert_ptr_equal(mv_memslots_find(ms, 0, 0x2f, NULL), b);
	assert_null(mv_memslots_find(ms, 0, 0x30, NULL));
	assert_null(mv_memslots_find(ms, 0, 0, NULL));
	assert_ptr_equal(mv_memslots_find(ms, 0, (~0ull >> 12) - 1, NULL), mv_memslots_at(ms, 0, 2));
	assert_null(mv_memslots_find(ms, 0, ~0ull >> 12, NULL));
	assert_null(mv_memslots_find(ms, 0, ~0ull, NULL));

	/* a hit updates the hint; a right hint answers; a wrong one is ignored */
	hint = 0;
	assert_ptr_equal(mv_memslots_find(ms, 0, 0x25, &hint), b);
	assert_int_equal(hint, 1);
	assert_ptr_equal(mv_memslots_find(ms, 0, 0x21, &hint), b);
	assert_int_equal(hint, 1);
	assert_ptr_equal(mv_memslots_find(ms, 0, 0x11, &hint), a);
	assert_int_equal(hint, 0);
	/* a miss leaves it; a stale hint past the end is ignored */
	assert_null(mv_memslots_find(ms, 0, 0x40, &hint));
	assert_int_equal(hint, 0);
	hint = 99;
	assert_ptr_equal(mv_memslots_find(ms, 0, 0x2f, &hint), b);
	assert_int_equal(hint, 1);
	/* after a delete the old index points elsewhere: still a correct answer */
	assert_int_equal(set(ms, 0, 0, 0, 0, 0, 0), 0);
	assert_ptr_equal(mv_memslots_find(ms, 0, 0x2f, &hint), mv_memslots_get(ms, 0, 1));
	assert_int_equal(hint, 0);
	assert_null(mv_memslots_find(ms, 0, 0x10, &hint));
	mv_memslots_free(ms);
}

static void test_lookup_many_slots(void **state)
{
	mv_memslots *ms = new_set(1, 0, false, NULL, NULL);
	const unsigned n = 3000;
	size_t hint = 0;
	unsigned i;

	(void)state;
	/* ids in a scrambled order, slot i at gfn 10 * i + 5, i % 4 + 1 pages */
	for (i = 0; i < n; i++) {
		unsigned k = (i * 7919u) % n;

		assert_int_equal(set(ms, 0, k, 0, (10ull * k + 5) * PG, (k % 4 + 1) * PG,
				     HVA0 + k * 16 * PG), 0);
	}
	assert_int_equal(mv_memslots_count(ms, 0), n);
	for (i = 0; i < n; i++) {
		const mv_memslot *s = mv_memslots_get(ms, 0, i);

		assert_non_null(s);
		assert_int_equal(s->id, i);
		assert_ptr_equal(mv_memslots_at(ms, 0, i), s);
		assert_null(mv_memslots_find(ms, 0, 10ull * i + 4, &hint));
		assert_ptr_equal(mv_memslots_find(ms, 0, 10ull * i + 5, &hint), s);
		assert_int_equal(hint, i);
		assert_ptr_equal(mv_memslots_find(ms, 0, 10ull * i + 4 + i % 4 + 1, NULL), s);
		assert_null(mv_memslots_find(ms, 0, 10ull * i + 5 + i % 4 + 1, NULL));
	}
	/* delete every other one, then all lookups again */
	for (i = 0; i < n; i += 2)
		assert_int_equal(set(ms, 0, i, 0, 0, 0, 0), 0);
	assert_int_equal(mv_memslots_count(ms, 0), n / 2);
	for (i = 0; i < n; i++) {
		const mv_memslot *s = mv_memslots_find(ms, 0, 10ull * i + 5, &hint);

		if (i % 2) {
			assert_ptr_equal(s, mv_memslots_get(ms, 0, i));
			assert_int_equal(hint, i / 2);
		} else {
			assert_null(s);
			assert_null(mv_memslots_get(ms, 0, i));
		}
	}
	mv_memslots_free(ms);
}

static void test_generation(void **state)
{
	mv_memslots *ms = new_set(1, 0, true, NULL, NULL);

	(void)state;
	assert_int_equal(mv_memslots_generation(ms), 0);
	assert_int_equal(set(ms, 0, 0, 0, 0, PG, HVA0), 0);
	assert_int_equal(mv_memslots_generation(ms), 1);
	assert_int_equal(set(ms, 0, 0, 0, PG, PG, HVA0), 0);                        /* move */
	assert_int_equal(mv_memslots_generation(ms), 2);
	assert_int_equal(set(ms, 0, 0, HV_MEM_LOG_DIRTY_PAGES, PG, PG, HVA0), 0);   /* flags */
	assert_int_equal(mv_memslots_generation(ms), 3);
	assert_int_equal(set(ms, 0, 0, HV_MEM_LOG_DIRTY_PAGES, PG, PG, HVA0), 0);   /* no-op */
	assert_int_equal(mv_memslots_generation(ms), 3);
	assert_int_equal(set(ms, 0, 1, 0, PG, PG, HVA0), -EEXIST);
	assert_int_equal(set(ms, 0, 1, 0, 0, 0, 0), -EINVAL);
	assert_int_equal(mv_memslots_generation(ms), 3);
	assert_int_equal(set(ms, 0, 0, 0, 0, 0, 0), 0);                             /* delete */
	assert_int_equal(mv_memslots_generation(ms), 4);
	mv_memslots_free(ms);
}

/* ------------------------------------------------------------------ */
/* Dirty bitmaps                                                        */

static void test_dirty_bitmap_lifecycle(void **state)
{
	mv_memslots *ms = new_set(1, 0, true, NULL, NULL);
	const mv_memslot *s;
	uint64_t *bm;

	(void)state;
	/* CREATE with logging: a zeroed bitmap of one bit per page */
	assert_int_equal(set(ms, 0, 0, HV_MEM_LOG_DIRTY_PAGES, 0x100000, 130 * PG, HVA0), 0);
	s = mv_memslots_get(ms, 0, 0);
	assert_non_null(s->dirty_bitmap);
	assert_int_equal(s->dirty_bitmap[0] | s->dirty_bitmap[1] | s->dirty_bitmap[2], 0);
	mv_memslot_mark_dirty(s, 0x100);
	mv_memslot_mark_dirty(s, 0x100 + 63);
	mv_memslot_mark_dirty(s, 0x100 + 64);
	mv_memslot_mark_dirty(s, 0x100 + 129);
	mv_memslot_mark_dirty(s, 0x100 + 129);
	mv_memslot_mark_dirty(s, 0x100 + 130);   /* outside: ignored */
	mv_memslot_mark_dirty(s, 0xff);          /* outside: ignored */
	assert_int_equal(s->dirty_bitmap[0], 0x8000000000000001ull);
	assert_int_equal(s->dirty_bitmap[1], 1);
	assert_int_equal(s->dirty_bitmap[2], 2);
	bm = s->dirty_bitmap;

	/* MOVE while logging: KVM keeps the bitmap, bits included */
	assert_int_equal(set(ms, 0, 0, HV_MEM_LOG_DIRTY_PAGES, 0x200000, 130 * PG, HVA0), 0);
	s = mv_memslots_get(ms, 0, 0);
	assert_ptr_equal(s->dirty_bitmap, bm);
	assert_int_equal(s->dirty_bitmap[2], 2);
	mv_memslot_mark_dirty(s, 0x200 + 1);
	assert_int_equal(s->dirty_bitmap[0], 0x8000000000000003ull);

	/* FLAGS_ONLY: logging off frees it, on again gives a fresh zeroed one */
	assert_int_equal(set(ms, 0, 0, 0, 0x200000, 130 * PG, HVA0), 0);
	s = mv_memslots_get(ms, 0, 0);
	assert_null(s->dirty_bitmap);
	mv_memslot_mark_dirty(s, 0x200);         /* no bitmap: no-op */
	assert_int_equal(set(ms, 0, 0, HV_MEM_LOG_DIRTY_PAGES, 0x200000, 130 * PG, HVA0), 0);
	s = mv_memslots_get(ms, 0, 0);
	assert_non_null(s->dirty_bitmap);
	assert_int_equal(s->dirty_bitmap[0] | s->dirty_bitmap[1] | s->dirty_bitmap[2], 0);

	/* MOVE turning logging off, then on */
	assert_int_equal(set(ms, 0, 0, 0, 0x300000, 130 * PG, HVA0), 0);
	assert_null(mv_memslots_get(ms, 0, 0)->dirty_bitmap);
	assert_int_equal(set(ms, 0, 0, HV_MEM_LOG_DIRTY_PAGES, 0x400000, 130 * PG, HVA0), 0);
	s = mv_memslots_get(ms, 0, 0);
	assert_non_null(s->dirty_bitmap);
	assert_int_equal(s->dirty_bitmap[0], 0);

	/* read-only slots log too; delete frees the bitmap (ASan checks) */
	assert_int_equal(set(ms, 0, 1, HV_MEM_LOG_DIRTY_PAGES | HV_MEM_READONLY, 0, PG, HVA0), 0);
	assert_non_null(mv_memslots_get(ms, 0, 1)->dirty_bitmap);
	assert_int_equal(set(ms, 0, 1, 0, 0, 0, 0), 0);
	mv_memslots_free(ms);

	/* a set without bitmaps (dirty ring) never allocates one */
	ms = new_set(1, 0, false, NULL, NULL);
	assert_int_equal(set(ms, 0, 0, HV_MEM_LOG_DIRTY_PAGES, 0, 8 * PG, HVA0), 0);
	s = mv_memslots_get(ms, 0, 0);
	assert_int_equal(s->flags, HV_MEM_LOG_DIRTY_PAGES);
	assert_null(s->dirty_bitmap);
	mv_memslot_mark_dirty(s, 1);
	mv_memslots_free(ms);
}

typedef struct mark_arg {
	const mv_memslot *slot;
	unsigned tid;
} mark_arg;

/* Thread @tid marks the pages p with p % 4 == tid: all in the same words. */
static void *mark_thread(void *p)
{
	mark_arg *a = p;
	uint64_t g;

	for (g = a->tid; g < a->slot->npages; g += 4)
		mv_memslot_mark_dirty(a->slot, a->slot->base_gfn + g);
	return NULL;
}

static void test_mark_dirty_concurrent(void **state)
{
	mv_memslots *ms = new_set(1, 0, true, NULL, NULL);
	pthread_t th[4];
	mark_arg args[4];
	const mv_memslot *s;
	unsigned i;

	(void)state;
	assert_int_equal(set(ms, 0, 0, HV_MEM_LOG_DIRTY_PAGES, 0x40000, 4096 * PG, HVA0), 0);
	s = mv_memslots_get(ms, 0, 0);
	for (i = 0; i < 4; i++) {
		args[i].slot = s;
		args[i].tid = i;
		assert_int_equal(pthread_create(&th[i], NULL, mark_thread, &args[i]), 0);
	}
	for (i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	for (i = 0; i < 64; i++)
		assert_int_equal(s->dirty_bitmap[i], ~0ull);
	mv_memslots_free(ms);
}

/* ------------------------------------------------------------------ */
/* hva walks                                                            */

typedef struct hva_hit {
	const mv_memslot *slot;
	uint64_t start, end;
} hva_hit;

typedef struct hva_hits {
	int n;
	int stop_after;             /* return 1 on this call (1-based); 0 never */
	hva_hit hit[16];
} hva_hits;

static int hva_fn(void *arg, const mv_memslot *slot, uint64_t gfn_start, uint64_t gfn_end)
{
	hva_hits *h = arg;

	h->hit[h->n].slot = slot;
	h->hit[h->n].start = gfn_start;
	h->hit[h->n].end = gfn_end;
	h->n++;
	return h->n == h->stop_after ? 7 : 0;
}

/* The hit of @slot, or fail. */
static const hva_hit *hit_of(const hva_hits *h, const mv_memslot *slot)
{
	int i;

	for (i = 0; i < h->n; i++)
		if (h->hit[i].slot == slot)
			return &h->hit[i];
	fail_msg("slot %u/%u not visited", slot->as_id, slot->id);
	return NULL;
}

static void test_foreach_hva_aliases(void **state)
{
	mv_memslots *ms = new_set(2, 0, false, NULL, NULL);
	const mv_memslot *a, *b, *c, *d;
	hva_hits h;

	(void)state;
	/* A: 16 pages of H at gfn 0x100; B: pages 4..11 of H at gfn 0x900 (an alias) */
	assert_int_equal(set(ms, 0, 0, 0, 0x100000, 16 * PG, HVA0), 0);
	assert_int_equal(set(ms, 0, 1, 0, 0x900000, 8 * PG, HVA0 + 4 * PG), 0);
	/* C: the same 16 pages in address space 1; D: elsewhere */
	assert_int_equal(set(ms, 1, 0, 0, 0x40000, 16 * PG, HVA0), 0);
	assert_int_equal(set(ms, 0, 2, 0, 0x200000, 16 * PG, HVA0 + 64 * PG), 0);
	a = mv_memslots_get(ms, 0, 0);
	b = mv_memslots_get(ms, 0, 1);
	c = mv_memslots_get(ms, 1, 0);
	d = mv_memslots_get(ms, 0, 2);

	/* pages 5..6 of H, unaligned ends: the partial pages count */
	memset(&h, 0, sizeof(h));
	assert_int_equal(mv_memslots_foreach_hva(ms, HVA0 + 5 * PG + 100, HVA0 + 6 * PG + 1,
						 hva_fn, &h), 0);
	assert_int_equal(h.n, 3);
	assert_int_equal(hit_of(&h, a)->start, 0x105);
	assert_int_equal(hit_of(&h, a)->end, 0x107);
	assert_int_equal(hit_of(&h, b)->start, 0x901);
	assert_int_equal(hit_of(&h, b)->end, 0x903);
	assert_int_equal(hit_of(&h, c)->start, 0x45);
	assert_int_equal(hit_of(&h, c)->end, 0x47);

	/* a range covering all of H and more: clipped to each slot */
	memset(&h, 0, sizeof(h));
	assert_int_equal(mv_memslots_foreach_hva(ms, HVA0 - 100 * PG, HVA0 + 65 * PG, hva_fn, &h), 0);
	assert_int_equal(h.n, 4);
	assert_int_equal(hit_of(&h, a)->start, 0x100);
	assert_int_equal(hit_of(&h, a)->end, 0x110);
	assert_int_equal(hit_of(&h, b)->start, 0x900);
	assert_int_equal(hit_of(&h, b)->end, 0x908);
	assert_int_equal(hit_of(&h, d)->start, 0x200);
	assert_int_equal(hit_of(&h, d)->end, 0x201);

	/* ranges touching no slot, or empty */
	memset(&h, 0, sizeof(h));
	assert_int_equal(mv_memslots_foreach_hva(ms, HVA0 + 16 * PG, HVA0 + 64 * PG, hva_fn, &h), 0);
	assert_int_equal(mv_memslots_foreach_hva(ms, HVA0 + 8 * PG, HVA0 + 8 * PG, hva_fn, &h), 0);
	assert_int_equal(mv_memslots_foreach_hva(ms, HVA0 + 9 * PG, HVA0 + 8 * PG, hva_fn, &h), 0);
	assert_int_equal(mv_memslots_foreach_hva(ms, 0, HVA0, hva_fn, &h), 0);
	assert_int_equal(h.n, 0);
	/* the last byte of B's range only */
	assert_int_equal(mv_memslots_foreach_hva(ms, HVA0 + 12 * PG - 1, HVA0 + 12 * PG, hva_fn,
						 &h), 0);
	assert_int_equal(h.n, 3);
	assert_int_equal(hit_of(&h, b)->start, 0x907);
	assert_int_equal(hit_of(&h, b)->end, 0x908);

	/* the walk stops at the first non-zero return, which it passes back */
	memset(&h, 0, sizeof(h));
	h.stop_after = 2;
	assert_int_equal(mv_memslots_foreach_hva(ms, 0, ~0ull, hva_fn, &h), 7);
	assert_int_equal(h.n, 2);
	mv_memslots_free(ms);
}

/* ------------------------------------------------------------------ */
/* Allocation failures                                                  */

/* One change to replay under every allocation failure point. */
typedef struct fail_case {
	const char *name;
	hv_memslot req;
	mv_memslot_change change;
} fail_case;

/* Slots 0 (logging) and 1 (not), slot 2 absent. */
static void fail_setup(mv_memslots *ms)
{
	assert_int_equal(set(ms, 0, 0, HV_MEM_LOG_DIRTY_PAGES, 0x10000, 70 * PG, HVA0), 0);
	assert_int_equal(set(ms, 0, 1, 0, 0x100000, 70 * PG, HVA0), 0);
	mv_memslot_mark_dirty(mv_memslots_get(ms, 0, 0), 0x10 + 65);
}

static void test_alloc_failures(void **state)
{
	const fail_case cases[] = {
		{ "create", mk(0, 2, 0, 0x200000, PG, HVA0), MV_MR_CREATE },
		{ "create+log", mk(0, 2, HV_MEM_LOG_DIRTY_PAGES, 0x200000, PG, HVA0), MV_MR_CREATE },
		{ "create as1", mk(1, 2, HV_MEM_LOG_DIRTY_PAGES, 0x200000, PG, HVA0), MV_MR_CREATE },
		{ "move", mk(0, 1, 0, 0x300000, 70 * PG, HVA0), MV_MR_MOVE },
		{ "move+log", mk(0, 0, HV_MEM_LOG_DIRTY_PAGES, 0x300000, 70 * PG, HVA0), MV_MR_MOVE },
		{ "move log on", mk(0, 1, HV_MEM_LOG_DIRTY_PAGES, 0x300000, 70 * PG, HVA0), MV_MR_MOVE },
		{ "log on", mk(0, 1, HV_MEM_LOG_DIRTY_PAGES, 0x100000, 70 * PG, HVA0),
		  MV_MR_FLAGS_ONLY },
		{ "log off", mk(0, 0, 0, 0x10000, 70 * PG, HVA0), MV_MR_FLAGS_ONLY },
		{ "delete", mk(0, 0, 0, 0, 0, 0), MV_MR_DELETE },
	};
	unsigned long points = 0;
	size_t c;

	(void)state;
	for (c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		unsigned long i;
		bool done = false;

		for (i = 1; !done; i++) {
			tu_failing_alloc fa;
			rec r;
			mv_memslots *ms;
			snap before, after;
			int ret;

			tu_failing_alloc_init(&fa, 0, false);
			ms = new_set(2, 0, true, &r, &fa.alloc);
			fail_setup(ms);
			take_snap(ms, 2, &before);
			fa.calls = 0;
			fa.fail_at = i;
			r.n = 0;
			ret = mv_memslots_set(ms, &cases[c].req);
			done = fa.calls < i;
			if (done) {
				assert_int_equal(ret, 0);
				assert_int_equal(r.calls[0].change, cases[c].change);
			} else {
				if (ret != -ENOMEM)
					fail_msg("%s, allocation %lu failing: %d", cases[c].name, i, ret);
				assert_int_equal(r.n, 0);
				take_snap(ms, 2, &after);
				assert_snap_equal(&before, &after);
				points++;
			}
			mv_memslots_free(ms);
		}
	}
	printf("# %lu allocation failure points checked\n", points);
	assert_true(points >= 6);

	/* and mv_memslots_new itself */
	{
		tu_failing_alloc fa;
		mv_memslots_config cfg = { .nr_as = 1, .alloc = &fa.alloc };
		mv_memslots *ms = NULL;

		tu_failing_alloc_init(&fa, 1, false);
		assert_int_equal(mv_memslots_new(&cfg, &ms), -ENOMEM);
		assert_null(ms);
	}
}

/* Each array grows when full: fail every allocation of a long run of creates. */
static void test_alloc_failures_growth(void **state)
{
	tu_failing_alloc fa;
	mv_memslots *ms;
	unsigned id, failures = 0;

	(void)state;
	tu_failing_alloc_init(&fa, 0, false);
	ms = new_set(1, 0, true, NULL, &fa.alloc);
	for (id = 0; id < 100; id++) {
		snap before, after;
		unsigned long k;

		take_snap(ms, 1, &before);
		/* fail each allocation this create makes, one at a time */
		for (k = 1;; k++) {
			unsigned long base = fa.calls;
			int ret;

			fa.fail_at = base + k;
			ret = set(ms, 0, id, id % 2 ? HV_MEM_LOG_DIRTY_PAGES : 0,
				  (uint64_t)(100 - id) * 2 * PG, PG, HVA0);
			if (ret == 0)
				break;
			assert_int_equal(ret, -ENOMEM);
			take_snap(ms, 1, &after);
			assert_snap_equal(&before, &after);
			failures++;
		}
		fa.fail_at = 0;
	}
	assert_int_equal(mv_memslots_count(ms, 0), 100);
	printf("# %u failed creates\n", failures);
	mv_memslots_free(ms);
}

/* ------------------------------------------------------------------ */
/* Randomized run against a naive model                                 */

#define RM_AS 2
#define RM_IDS 24
#define RM_GFNS 256ull             /* most slots live in gfns [0, 256) */

typedef struct model_slot {
	bool present;
	uint32_t flags;
	uint64_t base_gfn, npages, hva;
} model_slot;

typedef struct model {
	model_slot s[RM_AS][RM_IDS];
	uint64_t generation;
	unsigned nr_slots;
	int arch_ret;               /* what the arch hook answers this time */
} model;

/* The rules written out plainly: linear scans, no sorting. */
static int model_set(model *m, const hv_memslot *q)
{
	unsigned as_id = HV_SLOT_AS(q->slot), id = HV_SLOT_ID(q->slot), i;
	uint64_t hva = (uint64_t)(uintptr_t)q->hva;
	uint64_t gfn = q->gpa / PG, np = q->size / PG;
	model_slot *old;

	if (q->flags > 3 || q->size % PG || q->gpa % PG || hva % PG)
		return -EINVAL;
	if ((mv_u128)hva + q->size > MV_MEMSLOT_TASK_SIZE)
		return -EINVAL;
	if (as_id >= RM_AS || id >= m->nr_slots)
		return -EINVAL;
	if ((mv_u128)q->gpa + q->size >= MV_2_64 || np > MAXP)
		return -EINVAL;
	old = &m->s[as_id][id];
	if (np == 0) {
		if (!old->present)
			return -EINVAL;
		if (m->arch_ret)
			return m->arch_ret;
		old->present = false;
		m->generation++;
		return 0;
	}
	if (old->present) {
		if (hva != old->hva || np != old->npages || ((q->flags ^ old->flags) & 2))
			return -EINVAL;
		if (gfn == old->base_gfn && q->flags == old->flags)
			return 0;
	}
	if (!old->present || gfn != old->base_gfn) {
		for (i = 0; i < RM_IDS; i++) {
			const model_slot *o = &m->s[as_id][i];

			if (i != id && o->present && gfn < o->base_gfn + o->npages &&
			    o->base_gfn < gfn + np)
				return -EEXIST;
		}
	}
	if (m->arch_ret)
		return m->arch_ret;
	old->present = true;
	old->flags = q->flags;
	old->base_gfn = gfn;
	old->npages = np;
	old->hva = hva;
	m->generation++;
	return 0;
}

static int model_arch_prepare(void *arg, mv_memslot_change change, const mv_memslot *old,
			      mv_memslot *new)
{
	(void)change;
	(void)old;
	(void)new;
	return ((model *)arg)->arch_ret;
}

/* A request that hits every rule now and then, and mostly valid ones. */
static hv_memslot random_req(uint64_t *rng, const model *m)
{
	unsigned as_id = tu_rand_below(rng, 16) ? (unsigned)tu_rand_below(rng, RM_AS) : RM_AS;
	unsigned id = (unsigned)tu_rand_below(rng, RM_IDS);
	const model_slot *o = as_id < RM_AS ? &m->s[as_id][id] : NULL;
	uint64_t gpa = tu_rand_below(rng, RM_GFNS) * PG;
	uint64_t size = (1 + tu_rand_below(rng, 16)) * PG;
	uint64_t hva = HVA0 + tu_rand_below(rng, 64) * PG;
	uint32_t flags = (uint32_t)tu_rand_below(rng, 4);

	/* reuse an existing slot's hva and size most of the time (moves, flags) */
	if (o && o->present && tu_rand_below(rng, 4)) {
		hva = o->hva;
		size = o->npages * PG;
		if (tu_rand_below(rng, 2))
			gpa = o->base_gfn * PG;
		if (tu_rand_below(rng, 3))
			flags = (o->flags & HV_MEM_READONLY) | (flags & HV_MEM_LOG_DIRTY_PAGES);
	}
	switch (tu_rand_below(rng, 40)) {
	case 0: size = 0; break;
	case 1: size = 0; break;
	case 2: gpa |= 1 + tu_rand_below(rng, PG - 1); break;
	case 3: size += 1 + tu_rand_below(rng, PG - 1); break;
	case 4: hva += 1 + tu_rand_below(rng, PG - 1); break;
	case 5: hva = MV_MEMSLOT_TASK_SIZE - tu_rand_below(rng, 4) * PG; break;
	case 6: flags |= 1u << (2 + tu_rand_below(rng, 30)); break;
	case 7: gpa = ~0ull - tu_rand_below(rng, 20) * PG + 1; break;
	case 8: size = (MAXP + tu_rand_below(rng, 3)) * PG; hva = 1ull << 44; break;
	case 9: id = RM_IDS - 1 + (unsigned)tu_rand_below(rng, 3); break;
	case 10: gpa = (1ull << 50) + tu_rand_below(rng, 4) * PG; break;
	}
	return mk(as_id, id, flags, gpa, size, hva);
}

/* Everything observable equals the model. */
static void check_against_model(const mv_memslots *ms, const model *m, uint64_t *rng)
{
	unsigned a, i;

	assert_int_equal(mv_memslots_generation(ms), m->generation);
	for (a = 0; a < RM_AS; a++) {
		size_t n = 0, k, hint = (size_t)tu_rand_below(rng, 8);
		uint64_t prev_end = 0;

		for (i = 0; i < RM_IDS; i++) {
			const model_slot *o = &m->s[a][i];
			const mv_memslot *s = mv_memslots_get(ms, a, i);

			if (!o->present) {
				assert_null(s);
				continue;
			}
			n++;
			assert_slot(s, a, i, o->flags, o->base_gfn, o->npages, o->hva);
			assert_true((s->dirty_bitmap != NULL) == !!(o->flags & HV_MEM_LOG_DIRTY_PAGES));
		}
		assert_int_equal(mv_memslots_count(ms, a), n);
		for (k = 0; k < n; k++) {
			const mv_memslot *s = mv_memslots_at(ms, a, k);

			assert_true(k == 0 || s->base_gfn >= prev_end);
			prev_end = s->base_gfn + s->npages;
		}
		for (k = 0; k < 64; k++) {
			uint64_t gfn = tu_rand_below(rng, RM_GFNS + 32);
			const mv_memslot *want = NULL;

			for (i = 0; i < RM_IDS; i++) {
				const model_slot *o = &m->s[a][i];

				if (o->present && gfn >= o->base_gfn && gfn < o->base_gfn + o->npages)
					want = mv_memslots_get(ms, a, i);
			}
			assert_ptr_equal(mv_memslots_find(ms, a, gfn, &hint), want);
		}
	}
}

static void test_random_vs_model(void **state)
{
	uint64_t rng = tu_seed(0x5107a11ce5ull);
	static model m;
	mv_memslots_config cfg = {
		.nr_as = RM_AS,
		.nr_slots = RM_IDS - 2,
		.dirty_bitmap = true,
		.arch_prepare = model_arch_prepare,
		.arg = &m,
	};
	mv_memslots *ms;
	unsigned op, counts[4] = { 0 };

	(void)state;
	memset(&m, 0, sizeof(m));
	m.nr_slots = cfg.nr_slots;
	assert_int_equal(mv_memslots_new(&cfg, &ms), 0);
	for (op = 0; op < 20000; op++) {
		hv_memslot q = random_req(&rng, &m);
		int want, got;

		m.arch_ret = tu_rand_below(&rng, 50) ? 0 : -EFAULT;
		want = model_set(&m, &q);
		got = mv_memslots_set(ms, &q);
		if (want != got)
			fail_msg("op %u: slot %#x flags %#x gpa %#llx size %#llx hva %#llx: "
				 "model %d, set %d", op, q.slot, q.flags, (unsigned long long)q.gpa,
				 (unsigned long long)q.size, (unsigned long long)(uintptr_t)q.hva,
				 want, got);
		counts[want == 0 ? 0 : want == -EINVAL ? 1 : want == -EEXIST ? 2 : 3]++;
		check_against_model(ms, &m, &rng);
	}
	printf("# ok %u, -EINVAL %u, -EEXIST %u, arch %u\n", counts[0], counts[1], counts[2],
	       counts[3]);
	assert_true(counts[0] > 1000 && counts[1] > 1000 && counts[2] > 500 && counts[3] > 50);
	mv_memslots_free(ms);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_config),
		cmocka_unit_test(test_rule_flags),
		cmocka_unit_test(test_rule_size_gpa_alignment),
		cmocka_unit_test(test_rule_hva),
		cmocka_unit_test(test_rule_ids),
		cmocka_unit_test(test_rule_gpa_wrap),
		cmocka_unit_test(test_rule_max_pages),
		cmocka_unit_test(test_rule_delete_absent),
		cmocka_unit_test(test_rule_immutable),
		cmocka_unit_test(test_rule_overlap),
		cmocka_unit_test(test_rule_arch_prepare),
		cmocka_unit_test(test_rule_order),
		cmocka_unit_test(test_rule_order_enomem_before_arch),
		cmocka_unit_test(test_create_delete_move_flags),
		cmocka_unit_test(test_noop),
		cmocka_unit_test(test_arch_data_follows),
		cmocka_unit_test(test_failed_calls_change_nothing),
		cmocka_unit_test(test_lookup_boundaries_and_hint),
		cmocka_unit_test(test_lookup_many_slots),
		cmocka_unit_test(test_generation),
		cmocka_unit_test(test_dirty_bitmap_lifecycle),
		cmocka_unit_test(test_mark_dirty_concurrent),
		cmocka_unit_test(test_foreach_hva_aliases),
		cmocka_unit_test(test_alloc_failures),
		cmocka_unit_test(test_alloc_failures_growth),
		cmocka_unit_test(test_random_vs_model),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
