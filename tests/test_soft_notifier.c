/*
 * MMU notifiers from the memory layer: the RAM list's notifiers around
 * every RAM-block operation that drops or moves host pages (zero, resize
 * shrink, discard, free), what a discard leaves behind per backing, and the
 * accelerator memory listener forwarding them to hv_vm_invalidate_hva_*.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

#include "hv/backend.h"
#include "memvirt/hv_memory.h"
#include "memvirt/hv_soft.h"
#include "memvirt/memory.h"
#include "memvirt/ramblock.h"

#define PG 4096ull

/* ------------------------------------------------------------------ */
/* A recording notifier                                                 */

#define MAX_EVENTS 16

typedef struct event {
	uint64_t hva, len;
	bool start;
} event;

typedef struct recorder {
	mv_ram_notifier n;     /* first: the callback casts back */
	event ev[MAX_EVENTS];
	unsigned nr;
	int depth;             /* start calls without their end */
	const uint8_t *watch;  /* a byte whose value start / end record */
	uint8_t seen_at_start, seen_at_end;
} recorder;

static void record(mv_ram_notifier *n, mv_ramblock *rb, uint64_t hva, uint64_t len, bool start)
{
	recorder *r = (recorder *)n;

	(void)rb;
	assert_true(r->nr < MAX_EVENTS);
	r->ev[r->nr++] = (event){ hva, len, start };
	r->depth += start ? 1 : -1;
	assert_true(r->depth >= 0);
	if (r->watch && start)
		r->seen_at_start = *r->watch;
	else if (r->watch)
		r->seen_at_end = *r->watch;
}

static void recorder_init(recorder *r)
{
	memset(r, 0, sizeof(*r));
	r->n.invalidate = record;
}

/* The last two events are the start/end pair of [hva, hva + len). */
static void assert_pair(const recorder *r, const void *hva, uint64_t len)
{
	assert_true(r->nr >= 2);
	assert_int_equal(r->depth, 0);
	assert_true(r->ev[r->nr - 2].start);
	assert_false(r->ev[r->nr - 1].start);
	for (unsigned i = r->nr - 2; i < r->nr; i++) {
		assert_int_equal(r->ev[i].hva, (uint64_t)(uintptr_t)hva);
		assert_int_equal(r->ev[i].len, len);
	}
}

static mv_ramblock *new_block(mv_ram_list *l, const char *name, uint64_t size,
			      const mv_ramblock_opts *o)
{
	mv_error err = { 0 };
	mv_ramblock *rb = NULL;

	if (mv_ramblock_new(l, name, size, o, &rb, &err))
		fail_msg("mv_ramblock_new(%s): %s", name, err.msg);
	return rb;
}

/* ------------------------------------------------------------------ */
/* RAM notifiers                                                        */

/* Registration: once per notifier, removal of an absent one says so. */
static void test_notifier_register(void **state)
{
	mv_ram_list *l = mv_ram_list_new(NULL);
	recorder a, b;

	(void)state;
	recorder_init(&a);
	recorder_init(&b);
	assert_int_equal(mv_ram_list_add_notifier(l, &a.n), 0);
	assert_int_equal(mv_ram_list_add_notifier(l, &a.n), -EEXIST);
	assert_int_equal(mv_ram_list_add_notifier(l, &b.n), 0);
	assert_int_equal(mv_ram_list_remove_notifier(l, &a.n), 0);
	assert_int_equal(mv_ram_list_remove_notifier(l, &a.n), -ENOENT);
	assert_int_equal(mv_ram_list_remove_notifier(l, &b.n), 0);
	mv_ram_list_free(l);
}

/* Allocation failures leave nothing behind. */
static void test_notifier_alloc_failures(void **state)
{
	tu_failing_alloc fa;
	mv_ram_list *l;
	recorder a;

	(void)state;
	recorder_init(&a);
	for (unsigned long at = 1; at <= 2; at++) {
		tu_failing_alloc_init(&fa, at, false);
		assert_null(mv_ram_list_new(&fa.alloc));
	}
	tu_failing_alloc_init(&fa, 3, false);
	l = mv_ram_list_new(&fa.alloc);
	assert_non_null(l);
	assert_int_equal(mv_ram_list_add_notifier(l, &a.n), -ENOMEM);
	assert_int_equal(mv_ram_list_remove_notifier(l, &a.n), -ENOENT);
	assert_int_equal(mv_ram_list_add_notifier(l, &a.n), 0);
	assert_int_equal(mv_ram_list_remove_notifier(l, &a.n), 0);
	mv_ram_list_free(l);
}

/* zero: only the whole pages it drops, around the MADV_DONTNEED. */
static void test_notify_zero(void **state)
{
	mv_ram_list *l = mv_ram_list_new(NULL);
	mv_ramblock *rb = new_block(l, "ram", 16 * PG, NULL);
	uint8_t *host = mv_ramblock_host(rb);
	recorder r;

	(void)state;
	recorder_init(&r);
	assert_int_equal(mv_ram_list_add_notifier(l, &r.n), 0);
	memset(host, 0xaa, 16 * PG);
	r.watch = host + 2 * PG;
	/* [PG + 100, 4 PG + 7): whole pages 2 and 3 are dropped, the rest cleared */
	assert_int_equal(mv_ramblock_zero(rb, PG + 100, 3 * PG - 93), 0);
	assert_int_equal(r.nr, 2);
	assert_pair(&r, host + 2 * PG, 2 * PG);
	assert_int_equal(r.seen_at_start, 0xaa);   /* still there when told "start" */
	assert_int_equal(r.seen_at_end, 0);        /* gone when told "end" */
	assert_int_equal(host[PG + 99], 0xaa);
	assert_int_equal(host[PG + 100], 0);
	assert_int_equal(host[4 * PG + 6], 0);
	assert_int_equal(host[4 * PG + 7], 0xaa);
	/* no whole page: nothing dropped, nobody told */
	assert_int_equal(mv_ramblock_zero(rb, 5 * PG + 1, PG), 0);
	assert_int_equal(r.nr, 2);
	assert_int_equal(mv_ram_list_remove_notifier(l, &r.n), 0);
	mv_ramblock_unref(rb);
	mv_ram_list_free(l);
}

/* A shrink tells about the discarded tail; a grow tells nothing. */
static void test_notify_resize(void **state)
{
	mv_ramblock_opts o = { .resizeable = true, .max_length = 32 * PG };
	mv_ram_list *l = mv_ram_list_new(NULL);
	mv_ramblock *rb = new_block(l, "ram", 16 * PG, &o);
	uint8_t *host = mv_ramblock_host(rb);
	recorder r;

	(void)state;
	recorder_init(&r);
	assert_int_equal(mv_ram_list_add_notifier(l, &r.n), 0);
	assert_int_equal(mv_ramblock_resize(rb, 32 * PG, NULL), 0);
	assert_int_equal(r.nr, 0);
	host[20 * PG] = 7;
	r.watch = host + 20 * PG;
	assert_int_equal(mv_ramblock_resize(rb, 8 * PG, NULL), 0);
	assert_int_equal(r.nr, 2);
	assert_pair(&r, host + 8 * PG, 24 * PG);
	assert_int_equal(r.seen_at_start, 7);
	assert_int_equal(r.seen_at_end, 0);
	assert_int_equal(mv_ram_list_remove_notifier(l, &r.n), 0);
	mv_ramblock_unref(rb);
	mv_ram_list_free(l);
}

/* Freeing a block tells about its whole mapping, also after mv_ramblock_remove. */
static void test_notify_free(void **state)
{
	mv_ramblock_opts o = { .resizeable = true, .max_length = 8 * PG };
	mv_ram_list *l = mv_ram_list_new(NULL);
	mv_ramblock *a = new_block(l, "a", 4 * PG, &o);
	mv_ramblock *b = new_block(l, "dimm", 2 * PG, NULL);
	void *ha = mv_ramblock_host(a), *hb = mv_ramblock_host(b);
	recorder r;

	(void)state;
	recorder_init(&r);
	assert_int_equal(mv_ram_list_add_notifier(l, &r.n), 0);
	mv_ramblock_unref(a);
	assert_int_equal(r.nr, 2);
	assert_pair(&r, ha, 8 * PG);   /* max_length: the whole mapping */
	/* DIMM unplug: off the list at once, unmapped with the last reference */
	mv_ramblock_ref(b);
	mv_ramblock_remove(b);
	mv_ramblock_unref(b);
	assert_int_equal(r.nr, 2);
	mv_ramblock_unref(b);
	assert_int_equal(r.nr, 4);
	assert_pair(&r, hb, 2 * PG);
	assert_int_equal(mv_ram_list_remove_notifier(l, &r.n), 0);
	mv_ram_list_free(l);
}

/* A block that outlives its list (a contract breach) still frees cleanly. */
static void test_block_outlives_list(void **state)
{
	mv_ram_list *l = mv_ram_list_new(NULL);
	mv_ramblock *rb = new_block(l, "late", PG, NULL);

	(void)state;
	mv_ramblock_remove(rb);
	mv_ram_list_free(l);
	mv_ramblock_unref(rb);
}

/* ------------------------------------------------------------------ */
/* mv_ramblock_discard per backing                                      */

static void make_file(char *path, size_t n, uint8_t fill, uint64_t size)
{
	uint8_t buf[PG];
	int fd;

	snprintf(path, n, "/tmp/mv-notifier-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	memset(buf, fill, sizeof(buf));
	for (uint64_t off = 0; off < size; off += PG)
		assert_int_equal(pwrite(fd, buf, PG, (off_t)off), (ssize_t)PG);
	close(fd);
}

static void clear_all_dirty(mv_ramblock *rb)
{
	unsigned long bm[8];

	mv_ramblock_take_dirty(rb, 0, mv_ramblock_used_length(rb), bm);
}

/*
 * Discard [PG, 3 PG) of a block whose bytes were all set to 0x55 and check
 * what it reads afterwards (@expect in the range, 0x55 around it), the
 * notifier pair and the dirty bits (set iff the contents changed).
 */
static void check_discard(mv_ram_list *l, mv_ramblock *rb, uint8_t expect, bool dirty)
{
	uint8_t *host = mv_ramblock_host(rb);
	recorder r;

	recorder_init(&r);
	memset(host, 0x55, 4 * PG);
	clear_all_dirty(rb);
	assert_int_equal(mv_ram_list_add_notifier(l, &r.n), 0);
	assert_int_equal(mv_ramblock_discard(rb, PG, 2 * PG), 0);
	assert_int_equal(mv_ram_list_remove_notifier(l, &r.n), 0);
	assert_int_equal(r.nr, 2);
	assert_pair(&r, host + PG, 2 * PG);
	assert_int_equal(host[PG - 1], 0x55);
	assert_int_equal(host[PG], expect);
	assert_int_equal(host[3 * PG - 1], expect);
	assert_int_equal(host[3 * PG], 0x55);
	assert_false(mv_ramblock_test_dirty(rb, 0));
	assert_int_equal(mv_ramblock_test_dirty(rb, PG), dirty);
	assert_int_equal(mv_ramblock_test_dirty(rb, 2 * PG), dirty);
	assert_false(mv_ramblock_test_dirty(rb, 3 * PG));
}

static void test_discard_backings(void **state)
{
	mv_ramblock_opts o = { 0 };
	mv_ram_list *l = mv_ram_list_new(NULL);
	mv_ramblock *rb;
	char path[64];

	(void)state;
	/* anonymous private: zeroes */
	rb = new_block(l, "anon", 4 * PG, NULL);
	check_discard(l, rb, 0, true);
	mv_ramblock_unref(rb);

	/* MAP_PRIVATE file: the file's contents again */
	make_file(path, sizeof(path), 0x3c, 4 * PG);
	o.backing = MV_RAM_FILE;
	o.path = path;
	o.private_file = true;
	rb = new_block(l, "file-private", 4 * PG, &o);
	check_discard(l, rb, 0x3c, true);
	mv_ramblock_unref(rb);

	/* MAP_SHARED file: the data stays (it is the file's) */
	o.private_file = false;
	rb = new_block(l, "file-shared", 4 * PG, &o);
	check_discard(l, rb, 0x55, false);
	mv_ramblock_unref(rb);
	unlink(path);

	/* memfd and shared anonymous memory: the data stays */
	o = (mv_ramblock_opts){ .backing = MV_RAM_MEMFD };
	rb = new_block(l, "memfd", 4 * PG, &o);
	check_discard(l, rb, 0x55, false);
	mv_ramblock_unref(rb);
	o.backing = MV_RAM_ANON_SHARED;
	rb = new_block(l, "shared", 4 * PG, &o);
	check_discard(l, rb, 0x55, false);
	mv_ramblock_unref(rb);
	mv_ram_list_free(l);
}

/* Only whole pages inside used_length; nothing is told about a refused call. */
static void test_discard_errors(void **state)
{
	mv_ramblock_opts o = { .resizeable = true, .max_length = 8 * PG };
	mv_ram_list *l = mv_ram_list_new(NULL);
	mv_ramblock *rb = new_block(l, "ram", 4 * PG, &o);
	recorder r;

	(void)state;
	recorder_init(&r);
	assert_int_equal(mv_ram_list_add_notifier(l, &r.n), 0);
	assert_int_equal(mv_ramblock_discard(rb, 1, PG), -EINVAL);
	assert_int_equal(mv_ramblock_discard(rb, 0, PG + 1), -EINVAL);
	assert_int_equal(mv_ramblock_discard(rb, 4 * PG, PG), -EINVAL);   /* past used_length */
	assert_int_equal(mv_ramblock_discard(rb, 5 * PG, 0), -EINVAL);
	assert_int_equal(mv_ramblock_discard(rb, PG, ~0ull & ~(PG - 1)), -EINVAL);
	assert_int_equal(r.nr, 0);
	assert_int_equal(mv_ramblock_discard(rb, 4 * PG, 0), 0);          /* empty, at the end */
	assert_int_equal(r.nr, 0);
	assert_int_equal(mv_ramblock_discard(rb, 0, 4 * PG), 0);
	assert_int_equal(r.nr, 2);
	assert_int_equal(mv_ram_list_remove_notifier(l, &r.n), 0);
	mv_ramblock_unref(rb);
	mv_ram_list_free(l);
}

/* ------------------------------------------------------------------ */
/* hv_mem forwards to hv_vm_invalidate_hva_*                           */

typedef struct inval_vm {
	hv_vm base;
	event ev[MAX_EVENTS];
	unsigned nr;
} inval_vm;

static int inval_vm_create(const hv_vm_config *cfg, hv_vm **out, mv_error *err)
{
	inval_vm *v = calloc(1, sizeof(*v));

	(void)cfg;
	(void)err;
	*out = &v->base;
	return 0;
}

static void inval_vm_destroy(hv_vm *vm) { free(vm); }
static long inval_check_cap(hv_vm *vm, hv_cap cap) { (void)vm; return cap == HV_CAP_NR_AS; }

static void inval_hva(hv_vm *vm, uint64_t hva, uint64_t len, bool start)
{
	inval_vm *v = (inval_vm *)vm;

	assert_true(v->nr < MAX_EVENTS);
	v->ev[v->nr++] = (event){ hva, len, start };
}

static const hv_ops inval_ops = {
	.name = "inval",
	.vm_create = inval_vm_create,
	.vm_destroy = inval_vm_destroy,
	.check_cap = inval_check_cap,
	.invalidate_hva = inval_hva,
};

static void test_hv_mem_forwards(void **state)
{
	hv_vm_config cfg = { .arch = HV_ARCH_X86_64 };
	mv_memory *mem;
	mv_ramblock *rb;
	hv_mem *hm;
	inval_vm *v;
	hv_vm *vm;
	uint8_t *host;

	(void)state;
	assert_int_equal(hv_vm_create_ops(&inval_ops, &cfg, &vm, NULL), 0);
	v = (inval_vm *)vm;
	assert_int_equal(mv_memory_new(NULL, &mem), 0);
	assert_int_equal(hv_mem_new(vm, mem, &hm, NULL), 0);
	rb = new_block(mv_memory_ram_list(mem), "ram", 8 * PG, NULL);
	host = mv_ramblock_host(rb);
	assert_int_equal(mv_ramblock_discard(rb, 2 * PG, 3 * PG), 0);
	assert_int_equal(v->nr, 2);
	for (unsigned i = 0; i < 2; i++) {
		assert_int_equal(v->ev[i].hva, (uint64_t)(uintptr_t)(host + 2 * PG));
		assert_int_equal(v->ev[i].len, 3 * PG);
		assert_int_equal(v->ev[i].start, i == 0);
	}
	/* after hv_mem_free the VM hears nothing more */
	hv_mem_free(hm);
	assert_int_equal(mv_ramblock_discard(rb, 0, PG), 0);
	assert_int_equal(v->nr, 2);
	mv_ramblock_unref(rb);
	mv_memory_free(mem);
	hv_vm_destroy(vm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_notifier_register),
		cmocka_unit_test(test_notifier_alloc_failures),
		cmocka_unit_test(test_notify_zero),
		cmocka_unit_test(test_notify_resize),
		cmocka_unit_test(test_notify_free),
		cmocka_unit_test(test_block_outlives_list),
		cmocka_unit_test(test_discard_backings),
		cmocka_unit_test(test_discard_errors),
		cmocka_unit_test(test_hv_mem_forwards),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
