/*
 * Randomized differential test of listener notifications.
 *
 * Recording listeners (different priorities, on two address spaces that
 * share one FlatView root) log every callback into one sequence. Random
 * edits, nested transactions, dirty logging (per region and global) and
 * late registration/unregistration run against the library; the expected
 * sequence comes from a straightforward re-implementation of QEMU's
 * memory_region_transaction_commit / address_space_update_topology_pass /
 * listener_add_address_space applied to views painted by the naive
 * reference (ref_render.h), and QEMU's per-edit "update pending" rule.
 * The two sequences must be identical.
 *
 * A failure prints the seed, the sequence index, both event lists from the
 * first difference, the tree and the recent edits:
 * MV_SEED=<seed> MV_TREE=<index> reruns that sequence alone.
 */
#include "testutil.h"
#include "ref_render.h"

#include <inttypes.h>
#include <stdlib.h>

#define NR_SEQS 2500
#define EDITS_PER_SEQ 40
#define NR_LISTENERS 4
#define NR_SPACES 2

enum ev_kind { EV_BEGIN, EV_COMMIT, EV_ADD, EV_DEL, EV_NOP, EV_LOG_START, EV_LOG_STOP,
	       EV_GSTART, EV_GSTOP };

static const char *const ev_names[] = { "begin", "commit", "region_add", "region_del",
					"region_nop", "log_start", "log_stop",
					"log_global_start", "log_global_stop" };

typedef struct ev {
	int who;
	enum ev_kind kind;
	mv_flat_range fr;       /* section, for the region events */
	int old_mask, new_mask;
} ev;

typedef struct evlog {
	ev *v;
	size_t n, cap;
} evlog;

typedef struct rec {
	mv_listener l;
	int id;
	int space;              /* index in rig.spaces */
	unsigned order;         /* registration serial: ties keep it */
	bool on;
} rec;

typedef struct space {
	mv_address_space *as;
	mv_region *root;
	ref_view view;          /* reference view last published */
} space;

typedef struct rig {
	mv_memory *mem;
	mv_ramblock *blocks[4];
	uint64_t seed, rng;
	long only;
	rt_tree tree;
	ref_canvas canvas;
	ref_view next;
	space spaces[NR_SPACES];
	rec recs[NR_LISTENERS];
	unsigned serial;
	evlog got, want;
	bool pending;           /* QEMU's memory_region_update_pending */
	unsigned depth;
	unsigned long events, updates;
} rig;

static rig *g;

/* ------------------------------------------------------------------ */
/* Event logs                                                           */

static void log_push(evlog *lg, int who, enum ev_kind kind, const mv_flat_range *fr,
		     int old_mask, int new_mask)
{
	if (lg->n == lg->cap) {
		lg->cap = lg->cap ? 2 * lg->cap : 256;
		lg->v = ref_xrealloc(lg->v, lg->cap * sizeof(*lg->v));
	}
	lg->v[lg->n++] = (ev){ who, kind, fr ? *fr : (mv_flat_range){ 0 }, old_mask, new_mask };
}

static bool ev_equal(const ev *a, const ev *b)
{
	if (a->who != b->who || a->kind != b->kind)
		return false;
	if (a->kind == EV_BEGIN || a->kind == EV_COMMIT || a->kind == EV_GSTART ||
	    a->kind == EV_GSTOP)
		return true;
	/* Sections carry no dirty mask: compare what a section holds. */
	return a->fr.start == b->fr.start && a->fr.size == b->fr.size && a->fr.mr == b->fr.mr &&
	       a->fr.offset_in_region == b->fr.offset_in_region &&
	       a->fr.readonly == b->fr.readonly && a->fr.nonvolatile == b->fr.nonvolatile &&
	       a->old_mask == b->old_mask && a->new_mask == b->new_mask;
}

static void ev_print(FILE *f, size_t i, const ev *e)
{
	fprintf(f, "  %4zu L%d %s", i, e->who, ev_names[e->kind]);
	if (e->kind >= EV_ADD && e->kind <= EV_LOG_STOP) {
		fprintf(f, " 0x%" PRIx64 " size ", e->fr.start);
		ref_print_u128(f, e->fr.size);
		fprintf(f, " %s @0x%" PRIx64 "%s%s", mv_region_name(e->fr.mr),
			e->fr.offset_in_region, e->fr.readonly ? " ro" : "",
			e->fr.nonvolatile ? " nv" : "");
	}
	if (e->kind == EV_LOG_START || e->kind == EV_LOG_STOP)
		fprintf(f, " mask %x -> %x", e->old_mask, e->new_mask);
	fprintf(f, "\n");
}

static void log_print(FILE *f, const char *title, const evlog *lg, size_t from)
{
	size_t to = lg->n < from + 40 ? lg->n : from + 40;

	fprintf(f, "%s (%zu events, from %zu):\n", title, lg->n, from);
	for (size_t i = from; i < to; i++)
		ev_print(f, i, &lg->v[i]);
}

/* ------------------------------------------------------------------ */
/* Recording listener                                                   */

static rec *rec_of(mv_listener *l)
{
	return (rec *)((char *)l - offsetof(rec, l));
}

static mv_flat_range fr_of(const mv_section *s)
{
	return (mv_flat_range){
		.start = s->offset_within_address_space,
		.size = s->size,
		.mr = s->mr,
		.offset_in_region = s->offset_within_region,
		.readonly = s->readonly,
		.nonvolatile = s->nonvolatile,
	};
}

static void on_begin(mv_listener *l) { log_push(&g->got, rec_of(l)->id, EV_BEGIN, NULL, 0, 0); }
static void on_commit(mv_listener *l) { log_push(&g->got, rec_of(l)->id, EV_COMMIT, NULL, 0, 0); }
static void on_gstart(mv_listener *l) { log_push(&g->got, rec_of(l)->id, EV_GSTART, NULL, 0, 0); }
static void on_gstop(mv_listener *l) { log_push(&g->got, rec_of(l)->id, EV_GSTOP, NULL, 0, 0); }

static void on_section(mv_listener *l, const mv_section *s, enum ev_kind kind, int o, int n)
{
	mv_flat_range fr = fr_of(s);

	log_push(&g->got, rec_of(l)->id, kind, &fr, o, n);
}

static void on_add(mv_listener *l, const mv_section *s) { on_section(l, s, EV_ADD, 0, 0); }
static void on_del(mv_listener *l, const mv_section *s) { on_section(l, s, EV_DEL, 0, 0); }
static void on_nop(mv_listener *l, const mv_section *s) { on_section(l, s, EV_NOP, 0, 0); }

static void on_log_start(mv_listener *l, const mv_section *s, int o, int n)
{
	on_section(l, s, EV_LOG_START, o, n);
}

static void on_log_stop(mv_listener *l, const mv_section *s, int o, int n)
{
	on_section(l, s, EV_LOG_STOP, o, n);
}

static void rec_init(rec *r, int id, int space, int priority)
{
	memset(r, 0, sizeof(*r));
	r->id = id;
	r->space = space;
	r->l = (mv_listener){
		.begin = on_begin, .commit = on_commit,
		.region_add = on_add, .region_del = on_del, .region_nop = on_nop,
		.log_start = on_log_start, .log_stop = on_log_stop,
		.log_global_start = on_gstart, .log_global_stop = on_gstop,
		.priority = priority, .name = "rec",
	};
}

/* ------------------------------------------------------------------ */
/* Expected events: QEMU's rules                                        */

/*
 * Registered listeners in QEMU's list order: priority, then registration
 * order (a listener goes after every one with priority <= its own).
 * @space < 0: all (the global list); @reverse: last first.
 */
static size_t listeners_in_order(int space, bool reverse, rec **out)
{
	size_t n = 0;

	for (size_t i = 0; i < NR_LISTENERS; i++)
		if (g->recs[i].on && (space < 0 || g->recs[i].space == space))
			out[n++] = &g->recs[i];
	for (size_t i = 1; i < n; i++)         /* insertion sort, stable */
		for (size_t j = i; j && (out[j - 1]->l.priority > out[j]->l.priority ||
					 (out[j - 1]->l.priority == out[j]->l.priority &&
					  out[j - 1]->order > out[j]->order)); j--) {
			rec *tmp = out[j];

			out[j] = out[j - 1];
			out[j - 1] = tmp;
		}
	if (reverse)
		for (size_t i = 0; i < n / 2; i++) {
			rec *tmp = out[i];

			out[i] = out[n - 1 - i];
			out[n - 1 - i] = tmp;
		}
	return n;
}

/* MEMORY_LISTENER_UPDATE_REGION / MEMORY_LISTENER_CALL_GLOBAL. */
static void want_call(int space, bool reverse, enum ev_kind kind, const mv_flat_range *fr,
		      int old_mask, int new_mask)
{
	rec *ls[NR_LISTENERS];
	size_t n = listeners_in_order(space, reverse, ls);

	for (size_t i = 0; i < n; i++)
		log_push(&g->want, ls[i]->id, kind, fr, old_mask, new_mask);
}

/* QEMU's flatrange_equal: dirty logging changes are not a difference. */
static bool fr_equal(const mv_flat_range *a, const mv_flat_range *b)
{
	return a->mr == b->mr && a->start == b->start && a->size == b->size &&
	       a->offset_in_region == b->offset_in_region && a->romd_mode == b->romd_mode &&
	       a->readonly == b->readonly && a->nonvolatile == b->nonvolatile;
}

/* address_space_update_topology_pass, written from its documented rule. */
static void want_pass(int space, const ref_view *old, const ref_view *new, bool adding)
{
	size_t io = 0, in = 0;

	while (io < old->n || in < new->n) {
		const mv_flat_range *fo = io < old->n ? &old->r[io] : NULL;
		const mv_flat_range *fn = in < new->n ? &new->r[in] : NULL;

		if (fo && (!fn || fo->start < fn->start ||
			   (fo->start == fn->start && !fr_equal(fo, fn)))) {
			if (!adding)
				want_call(space, true, EV_DEL, fo, 0, 0);
			io++;
		} else if (fo && fn && fr_equal(fo, fn)) {
			if (adding) {
				want_call(space, false, EV_NOP, fn, 0, 0);
				if (fn->dirty_log_mask & ~fo->dirty_log_mask)
					want_call(space, false, EV_LOG_START, fn,
						  fo->dirty_log_mask, fn->dirty_log_mask);
				if (fo->dirty_log_mask & ~fn->dirty_log_mask)
					want_call(space, true, EV_LOG_STOP, fn,
						  fo->dirty_log_mask, fn->dirty_log_mask);
			}
			io++;
			in++;
		} else {
			if (adding)
				want_call(space, false, EV_ADD, fn, 0, 0);
			in++;
		}
	}
}

/* Paint the current view of @space into g->next. False: test bug. */
static bool paint_space(int space)
{
	mv_region *froot = ref_flatview_root(g->spaces[space].root);

	if (!rt_canvas_for(&g->canvas, froot))
		return false;
	g->canvas.outside = g->canvas.misaligned = 0;
	ref_canvas_render(&g->canvas, froot, &g->next);
	return !g->canvas.outside && !g->canvas.misaligned;
}

/*
 * The outermost commit: if an update is pending, global begin, then for
 * each space in creation order the two passes (every view is regenerated,
 * so even an unchanged one yields region_nop), then global commit.
 */
static void want_update(void)
{
	if (!g->pending)
		return;
	g->pending = false;
	g->updates++;
	want_call(-1, false, EV_BEGIN, NULL, 0, 0);
	for (int s = 0; s < NR_SPACES; s++) {
		if (!paint_space(s))
			fail_msg("test bug: tree not paintable");
		want_pass(s, &g->spaces[s].view, &g->next, false);
		want_pass(s, &g->spaces[s].view, &g->next, true);
		ref_view_copy(&g->spaces[s].view, &g->next);
	}
	want_call(-1, false, EV_COMMIT, NULL, 0, 0);
}

/* listener_add_address_space / listener_del_address_space. */
static void want_replay(rec *r, bool add)
{
	const ref_view *v = &g->spaces[r->space].view;

	log_push(&g->want, r->id, EV_BEGIN, NULL, 0, 0);
	if (add && mv_memory_global_dirty_log(g->mem))
		log_push(&g->want, r->id, EV_GSTART, NULL, 0, 0);
	for (size_t i = 0; i < v->n; i++) {
		const mv_flat_range *fr = &v->r[i];

		if (add) {
			log_push(&g->want, r->id, EV_ADD, fr, 0, 0);
			if (fr->dirty_log_mask)
				log_push(&g->want, r->id, EV_LOG_START, fr, 0, fr->dirty_log_mask);
		} else {
			if (fr->dirty_log_mask)
				log_push(&g->want, r->id, EV_LOG_STOP, fr, fr->dirty_log_mask, 0);
			log_push(&g->want, r->id, EV_DEL, fr, 0, 0);
		}
	}
	log_push(&g->want, r->id, EV_COMMIT, NULL, 0, 0);
}

/* ------------------------------------------------------------------ */
/* Driving the library and the model together                           */

static void do_register(rec *r)
{
	r->order = g->serial++;
	r->on = true;
	want_replay(r, true);
	assert_int_equal(mv_listener_register(&r->l, g->spaces[r->space].as), 0);
	rt_note(&g->tree, "register L%d prio %d on space %d", r->id, r->l.priority, r->space);
}

static void do_unregister(rec *r)
{
	want_replay(r, false);
	r->on = false;
	mv_listener_unregister(&r->l);
	rt_note(&g->tree, "unregister L%d", r->id);
}

static void do_begin(void)
{
	rt_note(&g->tree, "begin (depth %u)", g->depth + 1);
	g->depth++;
	mv_memory_begin(g->mem);
}

static void do_commit(void)
{
	rt_note(&g->tree, "commit (depth %u)", g->depth - 1);
	assert_int_equal(mv_memory_commit(g->mem), 0);
	if (!--g->depth)
		want_update();
}

/* An edit runs in its own transaction: at depth 0 it commits at once. */
static void do_edit(void)
{
	g->pending |= rt_random_edit(&g->tree, false);
	if (!g->depth)
		want_update();
}

/*
 * Global dirty tracking: log_global_start to all (forward) before the
 * forced update; log_global_stop (reverse) after it.
 */
static void do_global_toggle(void)
{
	if (!mv_memory_global_dirty_log(g->mem)) {
		rt_note(&g->tree, "global_dirty_log_start");
		want_call(-1, false, EV_GSTART, NULL, 0, 0);
		g->pending = true;
		mv_memory_global_dirty_log_start(g->mem);
		if (!g->depth)
			want_update();
	} else {
		rt_note(&g->tree, "global_dirty_log_stop");
		g->pending = true;
		mv_memory_global_dirty_log_stop(g->mem);
		if (!g->depth)
			want_update();
		want_call(-1, true, EV_GSTOP, NULL, 0, 0);
	}
}

static bool compare(long idx)
{
	size_t n = g->got.n < g->want.n ? g->got.n : g->want.n, i;

	for (i = 0; i < n && ev_equal(&g->got.v[i], &g->want.v[i]); i++)
		;
	g->events += g->got.n;
	if (i == n && g->got.n == g->want.n) {
		g->got.n = g->want.n = 0;
		return true;
	}
	fprintf(stderr, "\n=== listener sequence %ld FAILED: events differ at %zu\n", idx, i);
	fprintf(stderr, "reproduce: MV_SEED=%" PRIu64 " MV_TREE=%ld\n", g->seed, idx);
	log_print(stderr, "library", &g->got, i > 4 ? i - 4 : 0);
	log_print(stderr, "expected (QEMU's rules)", &g->want, i > 4 ? i - 4 : 0);
	rt_dump(&g->tree, stderr);
	ref_print_ranges(stderr, "reference view of space 0", g->spaces[0].view.r,
			 g->spaces[0].view.n);
	return false;
}

/* ------------------------------------------------------------------ */
/* Setup                                                                */

static int setup(void **state)
{
	const char *only = getenv("MV_TREE");

	g = calloc(1, sizeof(*g));
	assert_non_null(g);
	rt_env_init(&g->mem, g->blocks, &g->tree, &g->rng, &g->canvas);
	g->seed = tu_seed(0x115ea7e4);
	g->only = only ? strtol(only, NULL, 0) : -1;
	*state = g;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	rt_env_destroy(g->mem, g->blocks, &g->canvas);
	ref_view_free(&g->next);
	for (int s = 0; s < NR_SPACES; s++)
		ref_view_free(&g->spaces[s].view);
	free(g->got.v);
	free(g->want.v);
	free(g);
	return 0;
}

static uint64_t seq_seed(uint64_t seed, uint64_t i)
{
	uint64_t z = seed + (i + 1) * 0x9E3779B97F4A7C15ull;

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	z ^= z >> 31;
	return z ? z : 1;
}

/*
 * Space 0 shows the tree's root; space 1 an alias of all of it, which
 * resolves to the same FlatView root (a shared view, two listener lists).
 */
static void make_spaces(void)
{
	mv_alias_region *a;

	g->spaces[0].root = g->tree.r[0];
	assert_int_equal(mv_alias_region_new(g->mem, "root-alias", g->tree.r[0], 0, MV_2_64, &a), 0);
	g->spaces[1].root = mv_alias_region_base(a);
	for (int s = 0; s < NR_SPACES; s++) {
		char name[8];

		snprintf(name, sizeof(name), "as%d", s);
		assert_int_equal(mv_address_space_new(g->mem, g->spaces[s].root, name,
						      &g->spaces[s].as), 0);
		assert_true(paint_space(s));
		ref_view_copy(&g->spaces[s].view, &g->next);
	}
}

static void free_spaces(void)
{
	for (int s = 0; s < NR_SPACES; s++) {
		rec *ls[NR_LISTENERS];
		size_t n = listeners_in_order(s, false, ls);

		/* Freeing a space unregisters its listeners in list order. */
		for (size_t i = 0; i < n; i++) {
			want_replay(ls[i], false);
			ls[i]->on = false;
		}
		mv_address_space_free(g->spaces[s].as);
	}
	mv_region_unref(g->spaces[1].root);
}

/* One sequence: fixed listeners, a late one coming and going, random edits. */
static bool run_seq(long idx)
{
	bool ok = true;

	g->rng = seq_seed(g->seed, (uint64_t)idx);
	g->pending = false;
	g->depth = 0;
	rt_start(&g->tree);
	mv_memory_begin(g->mem);
	rt_grow(&g->tree, 3 + tu_rand_below(&g->rng, 24));
	assert_int_equal(mv_memory_commit(g->mem), 0);
	make_spaces();

	/* B registered before A, with a higher priority: A still runs first. */
	rec_init(&g->recs[1], 1, 0, 20);
	rec_init(&g->recs[0], 0, 0, 10);
	rec_init(&g->recs[2], 2, 1, 15);
	rec_init(&g->recs[3], 3, (int)tu_rand_below(&g->rng, 2),
		 5 * (int)tu_rand_below(&g->rng, 5));   /* often equal to another's */
	do_register(&g->recs[1]);
	do_register(&g->recs[0]);
	do_register(&g->recs[2]);
	ok = compare(idx);

	for (int e = 0; ok && (e < EDITS_PER_SEQ || g->depth); e++) {
		unsigned k = (unsigned)tu_rand_below(&g->rng, 100);

		if (e >= EDITS_PER_SEQ || (k < 10 && g->depth))
			do_commit();
		else if (k < 20 && g->depth < 3)
			do_begin();
		else if (k < 25)
			g->recs[3].on ? do_unregister(&g->recs[3]) : do_register(&g->recs[3]);
		else if (k < 29)
			do_global_toggle();
		else
			do_edit();
		ok = compare(idx);
	}
	if (ok) {
		do_unregister(&g->recs[1]);
		if (mv_memory_global_dirty_log(g->mem))
			do_global_toggle();
		free_spaces();
		ok = compare(idx);
	} else {
		while (g->depth--)
			mv_memory_commit(g->mem);
		g->pending = false;
		for (int s = 0; s < NR_SPACES; s++)
			mv_address_space_free(g->spaces[s].as);
		mv_region_unref(g->spaces[1].root);
		if (mv_memory_global_dirty_log(g->mem))
			mv_memory_global_dirty_log_stop(g->mem);
		for (int i = 0; i < NR_LISTENERS; i++)
			g->recs[i].on = false;
	}
	g->got.n = g->want.n = 0;
	rt_release(&g->tree);
	return ok;
}

static void test_random_listener_sequences(void **state)
{
	(void)state;
	for (long i = 0; i < NR_SEQS; i++)
		if ((g->only < 0 || g->only == i) && !run_seq(i))
			fail_msg("listener sequence %ld differs (see above)", i);
	printf("# %d sequences: %lu updates, %lu events compared\n", NR_SEQS, g->updates,
	       g->events);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_random_listener_sequences),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
