/* Listeners: event order, replay on registration, diffs, dirty logging. */
#include <errno.h>
#include <stdlib.h>

#include "testutil.h"
#include "coreutil.h"

typedef struct rec {
	mv_listener l;
	char *log;      /* shared log of all recorders */
	const char *tag;
} rec;

static void put(rec *r, const char *ev, const mv_section *s, int o, int n)
{
	char line[256];

	if (s)
		snprintf(line, sizeof(line), "%s %s %llx+%llx %s@%llx%s", r->tag, ev,
			 (unsigned long long)s->offset_within_address_space,
			 (unsigned long long)s->size, mv_region_name(s->mr),
			 (unsigned long long)s->offset_within_region, s->readonly ? " ro" : "");
	else
		snprintf(line, sizeof(line), "%s %s", r->tag, ev);
	if (o >= 0)
		snprintf(line + strlen(line), sizeof(line) - strlen(line), " %d->%d", o, n);
	strcat(r->log, line);
	strcat(r->log, "\n");
}

#define REC(l) ((rec *)(l))
static void on_begin(mv_listener *l) { put(REC(l), "begin", NULL, -1, 0); }
static void on_commit(mv_listener *l) { put(REC(l), "commit", NULL, -1, 0); }
static void on_add(mv_listener *l, const mv_section *s) { put(REC(l), "add", s, -1, 0); }
static void on_del(mv_listener *l, const mv_section *s) { put(REC(l), "del", s, -1, 0); }
static void on_nop(mv_listener *l, const mv_section *s) { put(REC(l), "nop", s, -1, 0); }
static void on_log_start(mv_listener *l, const mv_section *s, int o, int n) { put(REC(l), "log_start", s, o, n); }
static void on_log_stop(mv_listener *l, const mv_section *s, int o, int n) { put(REC(l), "log_stop", s, o, n); }
static void on_log_sync(mv_listener *l, const mv_section *s) { put(REC(l), "log_sync", s, -1, 0); }
static void on_gstart(mv_listener *l) { put(REC(l), "global_start", NULL, -1, 0); }
static void on_gstop(mv_listener *l) { put(REC(l), "global_stop", NULL, -1, 0); }

static void rec_init(rec *r, const char *tag, int prio, char *log)
{
	memset(r, 0, sizeof(*r));
	r->l = (mv_listener){
		.begin = on_begin, .commit = on_commit, .region_add = on_add,
		.region_del = on_del, .region_nop = on_nop, .log_start = on_log_start,
		.log_stop = on_log_stop, .log_sync = on_log_sync,
		.log_global_start = on_gstart, .log_global_stop = on_gstop,
		.priority = prio, .name = tag,
	};
	r->log = log;
	r->tag = tag;
}


/* Late registration replays every current section between begin and commit. */
static void test_late_registration(void **state)
{
	fixture *f = *state;
	rec a;

	cu_add(f->root, 0x1000, cu_io(f->mem, "x", 0x1000), 0);
	cu_add(f->root, 0x3000, cu_io(f->mem, "y", 0x2000), 0);
	rec_init(&a, "A", 0, f->log);
	assert_int_equal(mv_listener_register(&a.l, f->as), 0);
	assert_int_equal(mv_listener_register(&a.l, f->as), -EBUSY);
	assert_string_equal(f->log,
			    "A begin\n"
			    "A add 1000+1000 x@0\n"
			    "A add 3000+2000 y@0\n"
			    "A commit\n");
	f->log[0] = 0;
	mv_listener_unregister(&a.l);
	assert_string_equal(f->log,
			    "A begin\n"
			    "A del 1000+1000 x@0\n"
			    "A del 3000+2000 y@0\n"
			    "A commit\n");
}

/* Forward priority order for add/nop, reverse for del; del pass before add pass. */
static void test_priority_order_and_passes(void **state)
{
	fixture *f = *state;
	mv_region *x = cu_io(f->mem, "x", 0x2000);
	rec hi, lo;

	rec_init(&hi, "H", 10, f->log);
	rec_init(&lo, "L", 1, f->log);
	assert_int_equal(mv_listener_register(&hi.l, f->as), 0);
	assert_int_equal(mv_listener_register(&lo.l, f->as), 0);
	cu_add(f->root, 0x8000, cu_io(f->mem, "keep", 0x1000), 0);
	mv_region_ref(x);
	cu_add(f->root, 0x1000, x, 0);
	f->log[0] = 0;
	/* Moving x: its old range is deleted, the new one added; keep is a nop. */
	assert_int_equal(mv_region_set_address(x, 0x4000), 0);
	assert_string_equal(f->log,
			    "L begin\nH begin\n"
			    "H del 1000+2000 x@0\nL del 1000+2000 x@0\n"
			    "L add 4000+2000 x@0\nH add 4000+2000 x@0\n"
			    "L nop 8000+1000 keep@0\nH nop 8000+1000 keep@0\n"
			    "L commit\nH commit\n");
	f->log[0] = 0;
	/* An attribute change is a del + add of the same range. */
	mv_region_set_readonly(x, true);
	assert_string_equal(f->log,
			    "L begin\nH begin\n"
			    "H del 4000+2000 x@0\nL del 4000+2000 x@0\n"
			    "L add 4000+2000 x@0 ro\nH add 4000+2000 x@0 ro\n"
			    "L nop 8000+1000 keep@0\nH nop 8000+1000 keep@0\n"
			    "L commit\nH commit\n");
	mv_listener_unregister(&hi.l);
	mv_listener_unregister(&lo.l);
	mv_region_unref(x);
}

/* A partially covered range is split: del of the old, add of the pieces. */
static void test_split_by_overlap(void **state)
{
	fixture *f = *state;
	rec a;

	cu_add(f->root, 0, cu_io(f->mem, "low", 0x4000), 0);
	rec_init(&a, "A", 0, f->log);
	assert_int_equal(mv_listener_register(&a.l, f->as), 0);
	f->log[0] = 0;
	cu_add(f->root, 0x1000, cu_io(f->mem, "high", 0x1000), 1);
	assert_string_equal(f->log,
			    "A begin\n"
			    "A del 0+4000 low@0\n"
			    "A add 0+1000 low@0\n"
			    "A add 1000+1000 high@0\n"
			    "A add 2000+2000 low@2000\n"
			    "A commit\n");
	mv_listener_unregister(&a.l);
}

/* A commit that changes nothing still notifies nop for every section (QEMU). */
static void test_no_change_no_render(void **state)
{
	fixture *f = *state;
	uint64_t n;
	rec a;

	cu_add(f->root, 0, cu_io(f->mem, "dev", 0x1000), 0);
	rec_init(&a, "A", 0, f->log);
	assert_int_equal(mv_listener_register(&a.l, f->as), 0);
	f->log[0] = 0;
	n = mv_memory_render_count(f->mem);
	mv_memory_begin(f->mem);
	assert_int_equal(mv_memory_commit(f->mem), 0);
	/* Nothing pending: no render, no events. */
	assert_int_equal(mv_memory_render_count(f->mem), n);
	assert_string_equal(f->log, "");
	mv_listener_unregister(&a.l);
}

static mv_ram_region *new_ram(mv_memory *mem, const char *name, uint64_t size)
{
	mv_ramblock_opts opts = { .backing = MV_RAM_ANON_PRIVATE };
	mv_ramblock *rb;
	mv_ram_region *r;

	assert_int_equal(mv_ramblock_new(mv_memory_ram_list(mem), name, size, &opts, &rb, NULL), 0);
	assert_int_equal(mv_ram_region_new(mem, name, rb, &r), 0);
	mv_ramblock_unref(rb);
	return r;
}

/* Dirty logging: per-region log and global tracking, and log_sync. */
static void test_dirty_logging(void **state)
{
	fixture *f = *state;
	mv_ram_region *ram = new_ram(f->mem, "ram", 0x4000);
	mv_region *r = mv_ram_region_base(ram);
	rec a;

	mv_region_ref(r);
	cu_add(f->root, 0x10000, r, 0);
	cu_add(f->root, 0, cu_io(f->mem, "dev", 0x1000), 0);
	rec_init(&a, "A", 0, f->log);
	assert_int_equal(mv_listener_register(&a.l, f->as), 0);
	f->log[0] = 0;
	assert_int_equal(mv_region_set_log(r, true, MV_DIRTY_VGA), 0);
	assert_string_equal(f->log,
			    "A begin\n"
			    "A nop 0+1000 dev@0\n"
			    "A nop 10000+4000 ram@0\n"
			    "A log_start 10000+4000 ram@0 0->1\n"
			    "A commit\n");
	f->log[0] = 0;
	mv_memory_global_dirty_log_start(f->mem);
	assert_string_equal(f->log,
			    "A global_start\n"
			    "A begin\n"
			    "A nop 0+1000 dev@0\n"
			    "A nop 10000+4000 ram@0\n"
			    "A log_start 10000+4000 ram@0 1->5\n"
			    "A commit\n");
	f->log[0] = 0;
	mv_memory_global_dirty_log_sync(f->mem);
	assert_string_equal(f->log, "A log_sync 10000+4000 ram@0\n");
	f->log[0] = 0;
	mv_memory_global_dirty_log_stop(f->mem);
	assert_string_equal(f->log,
			    "A begin\n"
			    "A nop 0+1000 dev@0\n"
			    "A nop 10000+4000 ram@0\n"
			    "A log_stop 10000+4000 ram@0 5->1\n"
			    "A commit\n"
			    "A global_stop\n");
	f->log[0] = 0;
	mv_listener_unregister(&a.l);
	assert_string_equal(f->log,
			    "A begin\n"
			    "A del 0+1000 dev@0\n"
			    "A log_stop 10000+4000 ram@0 1->0\n"
			    "A del 10000+4000 ram@0\n"
			    "A commit\n");
	mv_region_unref(r);
}

/* Freeing an address space unregisters its listeners with region_del. */
static void test_address_space_free_detaches(void **state)
{
	fixture *f = *state;
	mv_address_space *as2;
	rec a;

	cu_add(f->root, 0, cu_io(f->mem, "dev", 0x1000), 0);
	assert_int_equal(mv_address_space_new(f->mem, f->root, "second", &as2), 0);
	rec_init(&a, "A", 0, f->log);
	assert_int_equal(mv_listener_register(&a.l, as2), 0);
	f->log[0] = 0;
	mv_address_space_free(as2);
	assert_string_equal(f->log, "A begin\nA del 0+1000 dev@0\nA commit\n");
	assert_int_equal(mv_memory_nr_address_spaces(f->mem), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_late_registration, cu_setup, cu_teardown),
		cmocka_unit_test_setup_teardown(test_priority_order_and_passes, cu_setup, cu_teardown),
		cmocka_unit_test_setup_teardown(test_split_by_overlap, cu_setup, cu_teardown),
		cmocka_unit_test_setup_teardown(test_no_change_no_render, cu_setup, cu_teardown),
		cmocka_unit_test_setup_teardown(test_dirty_logging, cu_setup, cu_teardown),
		cmocka_unit_test_setup_teardown(test_address_space_free_detaches, cu_setup, cu_teardown),
	};

	return cmocka_run_group_tests_name("listener", tests, NULL, NULL);
}
