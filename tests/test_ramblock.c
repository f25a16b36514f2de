/* RAM blocks: backings, offsets, names, dirty bits, resize, failure injection. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"
#include "memvirt/ramblock.h"

#define KiB 1024ULL
#define MiB (1024 * KiB)
#define BPW (sizeof(unsigned long) * 8)
_Static_assert(sizeof(unsigned long) == 8, "tests assume 64-bit words");

static mv_ramblock *new_block(mv_ram_list *l, const char *name, uint64_t size,
			      const mv_ramblock_opts *o)
{
	mv_error err = { 0 };
	mv_ramblock *rb = NULL;
	int ret = mv_ramblock_new(l, name, size, o, &rb, &err);

	if (ret)
		fail_msg("mv_ramblock_new(%s): %d %s", name, ret, err.msg);
	return rb;
}

/* Expect @code and a sentence that names @name. */
static void expect_error(mv_ram_list *l, const char *name, uint64_t size,
			 const mv_ramblock_opts *o, int code)
{
	mv_error err = { 0 };
	mv_ramblock *rb = NULL;
	char quoted[128];

	assert_int_equal(mv_ramblock_new(l, name, size, o, &rb, &err), code);
	assert_null(rb);
	assert_int_equal(err.code, code);
	snprintf(quoted, sizeof(quoted), "'%s'", name);
	if (!strstr(err.msg, quoted))
		fail_msg("message does not name %s: %s", quoted, err.msg);
}

static void test_anon_private(void **state)
{
	mv_ram_list *l = mv_ram_list_new(NULL);
	mv_ramblock *rb;
	char *p;

	(void)state;
	rb = new_block(l, "pc.ram", 64 * KiB, NULL);
	assert_string_equal(mv_ramblock_name(rb), "pc.ram");
	assert_int_equal(mv_ramblock_used_length(rb), 64 * KiB);
	assert_int_equal(mv_ramblock_max_length(rb), 64 * KiB);
	assert_int_equal(mv_ramblock_offset(rb), 0);
	assert_int_equal(mv_ramblock_fd(rb), -1);
	assert_int_equal(mv_ramblock_page_size(rb), (uint64_t)sysconf(_SC_PAGESIZE));
	p = mv_ramblock_host(rb);
	assert_non_null(p);
	assert_int_equal(p[100], 0);    /* fresh anonymous memory is zero */
	memset(p, 0xab, 64 * KiB);
	assert_int_equal((unsigned char)p[64 * KiB - 1], 0xab);
	assert_ptr_equal(mv_ram_list_find(l, "pc.ram"), rb);
	mv_ramblock_unref(rb);
	assert_null(mv_ram_list_find(l, "pc.ram"));
	mv_ram_list_free(l);
}

/* A child writes through a shared mapping; the parent must see it. */
static void check_shared_with_child(char *p)
{
	pid_t pid = fork();
	int status;

	assert_true(pid >= 0);
	if (pid == 0) {
		strcpy(p, "from child");
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_string_equal(p, "from child");
}

static void test_anon_shared(void **state)
{
	mv_ramblock_opts o = { .backing = MV_RAM_ANON_SHARED };
	mv_ram_list *l = mv_ram_list_new(NULL);
	mv_ramblock *rb;

	(void)state;
	rb = new_block(l, "shared", 16 * KiB, &o);
	assert_int_equal(mv_ramblock_fd(rb), -1);
	check_shared_with_child(mv_ramblock_host(rb));
	mv_ramblock_unref(rb);
	mv_ram_list_free(l);
}

static void test_memfd(void **state)
{
	mv_ramblock_opts o = { .backing = MV_RAM_MEMFD, .noreserve = true };
	mv_ram_list *l = mv_ram_list_new(NULL);
	mv_ramblock *rb;
	char buf[16] = { 0 };
	struct stat st;
	int fd;

	(void)state;
	rb = new_block(l, "memfd", 32 * KiB, &o);
	fd = mv_ramblock_fd(rb);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, 32 * KiB);
	strcpy((char *)mv_ramblock_host(rb) + 8192, "memfd data");
	/* the fd sees the guest's writes: another process could map it */
	assert_int_equal(pread(fd, buf, 10, 8192), 10);
	assert_string_equal(buf, "memfd data");
	check_shared_with_child(mv_ramblock_host(rb));
	mv_ramblock_unref(rb);
	mv_ram_list_free(l);
}

static void make_tmp_path(char *path, size_t n)
{
	int fd;

	snprintf(path, n, "/tmp/mv-ramblock-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
}

static void test_file_shared_and_private(void **state)
{
	mv_ramblock_opts o = { .backing = MV_RAM_FILE, .resizeable = true, .max_length = 64 * KiB };
	mv_ram_list *l = mv_ram_list_new(NULL);
	char path[64], buf[16] = { 0 };
	mv_ramblock *rb;
	struct stat st;
	int fd;

	(void)state;
	make_tmp_path(path, sizeof(path));
	o.path = path;
	rb = new_block(l, "file", 16 * KiB, &o);
	assert_true(mv_ramblock_fd(rb) >= 0);
	/* the file is extended to max_length, not just the used size */
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 64 * KiB);
	strcpy(mv_ramblock_host(rb), "file data");
	fd = open(path, O_RDONLY);
	assert_int_equal(pread(fd, buf, 9, 0), 9);
	assert_string_equal(buf, "file data");
	mv_ramblock_unref(rb);

	/* MAP_PRIVATE: we see the file, the file does not see us */
	o.private_file = true;
	o.resizeable = false;
	o.max_length = 0;
	rb = new_block(l, "file-private", 16 * KiB, &o);
	assert_string_equal(mv_ramblock_host(rb), "file data");
	strcpy(mv_ramblock_host(rb), "private!!");
	memset(buf, 0, sizeof(buf));
	assert_int_equal(pread(fd, buf, 9, 0), 9);
	assert_string_equal(buf, "file data");
	mv_ramblock_unref(rb);
	close(fd);
	unlink(path);

	o.private_file = false;
	o.path = "/nonexistent-dir/x";
	expect_error(l, "nofile", 16 * KiB, &o, -ENOENT);
	mv_ram_list_free(l);
}

static void test_noreserve_thp(void **state)
{
	mv_ramblock_opts o = { .noreserve = true, .thp = true };
	mv_ram_list *l = mv_ram_list_new(NULL);
	mv_ramblock *rb;
	char *p;

	(void)state;
	/* a large sparse block: NORESERVE lets it exist without backing it */
	rb = new_block(l, "big", 1024 * MiB, &o);
	p = mv_ramblock_host(rb);
	p[0] = 1;
	p[1024 * MiB - 1] = 2;
	mv_ramblock_unref(rb);
	mv_ram_list_free(l);
}

/* hugetlb either works or says -ENOSPC with a sentence naming the block. */
static void check_hugetlb(mv_ram_backing backing, const char *name)
{
	mv_ramblock_opts o = { .backing = backing, .hugetlb = true };
	mv_ram_list *l = mv_ram_list_new(NULL);
	mv_error err = { 0 };
	mv_ramblock *rb = NULL;
	int ret;

	ret = mv_ramblock_new(l, name, 2 * MiB, &o, &rb, &err);
	if (ret == 0) {
		assert_int_equal(mv_ramblock_page_size(rb), 2 * MiB);
		memset(mv_ramblock_host(rb), 1, 2 * MiB);
		mv_ramblock_unref(rb);
	} else {
		printf("# hugetlb %s: %s\n", name, err.msg);
		assert_int_equal(ret, -ENOSPC);
		assert_non_null(strstr(err.msg, "huge pages"));
		assert_non_null(strstr(err.msg, name));
		assert_non_null(strstr(err.msg, "HugePages_Free"));
	}
	/* sizes must be multiples of 2 MiB */
	expect_error(l, name, 4 * KiB, &o, -EINVAL);
	mv_ram_list_free(l);
}

static void test_hugetlb(void **state)
{
	(void)state;
	check_hugetlb(MV_RAM_ANON_PRIVATE, "huge-anon");
	check_hugetlb(MV_RAM_ANON_SHARED, "huge-shared");
	check_hugetlb(MV_RAM_MEMFD, "huge-memfd");
}

static void test_bad_options(void **state)
{
	mv_ram_list *l = mv_ram_list_new(NULL);
	mv_ramblock_opts o = { 0 };
	mv_error err = { 0 };
	mv_ramblock *rb = NULL;

	(void)state;
	expect_error(l, "zero", 0, NULL, -EINVAL);
	expect_error(l, "odd", 4097, NULL, -EINVAL);
	o.backing = (mv_ram_backing)42;
	expect_error(l, "backing", 4096, &o, -EINVAL);
	o.backing = MV_RAM_FILE;
	expect_error(l, "nopath", 4096, &o, -EINVAL);
	o.backing = MV_RAM_ANON_PRIVATE;
	o.path = "/tmp/x";
	expect_error(l, "path", 4096, &o, -EINVAL);
	o.path = NULL;
	o.max_length = 8192;
	expect_error(l, "notresize", 4096, &o, -EINVAL);
	o.resizeable = true;
	o.max_length = 4096;
	expect_error(l, "maxsmall", 8192, &o, -EINVAL);
	o.max_length = 12289;
	expect_error(l, "maxodd", 8192, &o, -EINVAL);
	o = (mv_ramblock_opts){ .hugetlb = true, .thp = true };
	expect_error(l, "hugethp", 2 * MiB, &o, -EINVAL);
	assert_int_equal(mv_ramblock_new(l, "", 4096, NULL, &rb, &err), -EINVAL);
	assert_int_equal(mv_ramblock_new(l, NULL, 4096, NULL, &rb, &err), -EINVAL);
	assert_int_equal(mv_ramblock_new(NULL, "x", 4096, NULL, &rb, &err), -EINVAL);
	mv_ram_list_free(l);
}

static void test_duplicate_name(void **state)
{
	mv_ram_list *l = mv_ram_list_new(NULL);
	mv_ramblock *a, *b;

	(void)state;
	a = new_block(l, "dup", 8 * KiB, NULL);
	expect_error(l, "dup", 4 * KiB, NULL, -EEXIST);
	assert_ptr_equal(mv_ram_list_find(l, "dup"), a);
	/* once released the name is free again, at the same offset */
	mv_ramblock_unref(a);
	b = new_block(l, "dup", 4 * KiB, NULL);
	assert_int_equal(mv_ramblock_offset(b), 0);
	/* a second list has its own namespace */
	{
		mv_ram_list *l2 = mv_ram_list_new(NULL);
		mv_ramblock *c = new_block(l2, "dup", 4 * KiB, NULL);

		mv_ramblock_unref(c);
		mv_ram_list_free(l2);
	}
	mv_ramblock_unref(b);
	mv_ram_list_free(l);
}

struct collect {
	const char *names[8];
	uint64_t offsets[8];
	int n, stop_at;
};

static int collect_fn(mv_ramblock *rb, void *opaque)
{
	struct collect *c = opaque;

	c->names[c->n] = mv_ramblock_name(rb);
	c->offsets[c->n] = mv_ramblock_offset(rb);
	c->n++;
	return c->n == c->stop_at ? 7 : 0;
}

static void test_offsets_first_fit(void **state)
{
	mv_ramblock_opts rs = { .resizeable = true, .max_length = 64 * KiB };
	mv_ram_list *l = mv_ram_list_new(NULL);
	mv_ramblock *a, *b, *c, *d, *e, *f;
	struct collect col = { .stop_at = -1 };

	(void)state;
	a = new_block(l, "a", 8 * KiB, NULL);
	b = new_block(l, "b", 12 * KiB, NULL);
	c = new_block(l, "c", 4 * KiB, NULL);
	assert_int_equal(mv_ramblock_offset(a), 0);
	assert_int_equal(mv_ramblock_offset(b), 8 * KiB);
	assert_int_equal(mv_ramblock_offset(c), 20 * KiB);
	mv_ramblock_unref(b);
	d = new_block(l, "d", 4 * KiB, NULL);      /* fits the hole b left */
	e = new_block(l, "e", 16 * KiB, NULL);     /* does not: goes to the end */
	f = new_block(l, "f", 4 * KiB, &rs);       /* a resizeable block reserves max_length */
	assert_int_equal(mv_ramblock_offset(d), 8 * KiB);
	assert_int_equal(mv_ramblock_offset(e), 24 * KiB);
	assert_int_equal(mv_ramblock_offset(f), 40 * KiB);
	mv_ramblock_unref(new_block(l, "g", 8 * KiB, NULL));  /* 12K..20K hole, freed again */

	assert_int_equal(mv_ram_list_foreach(l, collect_fn, &col), 0);
	assert_int_equal(col.n, 5);
	assert_string_equal(col.names[0], "a");
	assert_string_equal(col.names[1], "d");
	assert_string_equal(col.names[2], "c");
	assert_string_equal(col.names[3], "e");
	assert_string_equal(col.names[4], "f");
	for (int i = 1; i < col.n; i++)
		assert_true(col.offsets[i] > col.offsets[i - 1]);
	/* a non-zero return stops the walk and is passed through */
	col = (struct collect){ .stop_at = 2 };
	assert_int_equal(mv_ram_list_foreach(l, collect_fn, &col), 7);
	assert_int_equal(col.n, 2);

	mv_ramblock_unref(a);
	mv_ramblock_unref(c);
	mv_ramblock_unref(d);
	mv_ramblock_unref(e);
	mv_ramblock_unref(f);
	mv_ram_list_free(l);
}

/* foreach may release blocks from inside the callback without deadlock. */
static int unref_fn(mv_ramblock *rb, void *opaque)
{
	(void)opaque;
	mv_ramblock_unref(rb);
	return 0;
}

static void test_foreach_reentrant(void **state)
{
	mv_ram_list *l = mv_ram_list_new(NULL);
	char name[16];
	int i;

	(void)state;
	for (i = 0; i < 20; i++) {     /* more than foreach's on-stack snapshot */
		snprintf(name, sizeof(name), "b%d", i);
		new_block(l, name, 4 * KiB, NULL);
	}
	assert_int_equal(mv_ram_list_foreach(l, unref_fn, NULL), 0);
	assert_null(mv_ram_list_find(l, "b0"));
	assert_null(mv_ram_list_find(l, "b19"));
	mv_ram_list_free(l);
}

static void test_refcount(void **state)
{
	mv_ram_list *l = mv_ram_list_new(NULL);
	mv_ramblock *rb;
	char *p;

	(void)state;
	rb = new_block(l, "ref", 4 * KiB, NULL);
	mv_ramblock_ref(rb);
	mv_ramblock_unref(rb);
	p = mv_ramblock_host(rb);
	p[0] = 5;                      /* still mapped: one reference left */
	assert_ptr_equal(mv_ram_list_find(l, "ref"), rb);
	mv_ramblock_unref(rb);
	assert_null(mv_ram_list_find(l, "ref"));
	mv_ram_list_free(l);
}

/* remove: off the list at once, memory kept while referenced. */
static void test_remove(void **state)
{
	mv_ram_list *l = mv_ram_list_new(NULL);
	struct collect col = { .stop_at = -1 };
	mv_ramblock *a, *b;
	char *p;

	(void)state;
	a = new_block(l, "hot", 8 * KiB, NULL);
	mv_ramblock_ref(a);             /* e.g. an old FlatView still uses it */
	mv_ramblock_remove(a);
	mv_ramblock_remove(a);          /* idempotent */
	assert_null(mv_ram_list_find(l, "hot"));
	assert_int_equal(mv_ram_list_foreach(l, collect_fn, &col), 0);
	assert_int_equal(col.n, 0);
	b = new_block(l, "hot", 4 * KiB, NULL);   /* the name is free again */
	assert_ptr_equal(mv_ram_list_find(l, "hot"), b);
	p = mv_ramblock_host(a);
	p[8 * KiB - 1] = 1;             /* still mapped */
	mv_ramblock_unref(a);
	mv_ramblock_unref(a);
	assert_ptr_equal(mv_ram_list_find(l, "hot"), b);
	mv_ramblock_unref(b);
	mv_ram_list_free(l);
}

static void test_dirty_bits(void **state)
{
	mv_ram_list *l = mv_ram_list_new(NULL);
	unsigned long map[4];
	mv_ramblock *rb;
	uint64_t n;

	(void)state;
	rb = new_block(l, "dirty", 200 * 4 * KiB, NULL);   /* 200 pages: >3 words */
	assert_false(mv_ramblock_test_dirty(rb, 0));
	mv_ramblock_set_dirty(rb, 5000, 1);                /* page 1 */
	assert_true(mv_ramblock_test_dirty(rb, 4096));
	assert_true(mv_ramblock_test_dirty(rb, 8191));
	assert_false(mv_ramblock_test_dirty(rb, 8192));
	mv_ramblock_set_dirty(rb, 60 * 4096 + 100, 10 * 4096);  /* pages 60..70, across a word */
	assert_true(mv_ramblock_test_dirty(rb, 63 * 4096));
	assert_true(mv_ramblock_test_dirty(rb, 64 * 4096));
	assert_true(mv_ramblock_test_dirty(rb, 70 * 4096));
	assert_false(mv_ramblock_test_dirty(rb, 71 * 4096));
	mv_ramblock_set_dirty(rb, 199 * 4096, 1 << 20);    /* clamped at used_length */
	mv_ramblock_set_dirty(rb, 300 * 4096, 4096);       /* past the end: ignored */
	assert_false(mv_ramblock_test_dirty(rb, 300 * 4096));
	mv_ramblock_set_dirty(rb, 0, 0);                   /* empty */
	assert_false(mv_ramblock_test_dirty(rb, 0));

	/* take a window starting at page 60: bit 0 is page 60 */
	memset(map, 0xff, sizeof(map));
	n = mv_ramblock_take_dirty(rb, 60 * 4096, 8 * 4096, map);
	assert_int_equal(n, 8);
	assert_int_equal(map[0], 0xff);
	assert_false(mv_ramblock_test_dirty(rb, 60 * 4096));
	assert_true(mv_ramblock_test_dirty(rb, 68 * 4096));

	/* take everything */
	n = mv_ramblock_take_dirty(rb, 0, 200 * 4096, map);
	assert_int_equal(n, 1 + 3 + 1);    /* page 1, pages 68..70, page 199 */
	assert_int_equal(map[0], 2UL);
	assert_int_equal(map[1], 7UL << (68 - 64));
	assert_int_equal(map[2], 0);
	assert_int_equal(map[3], 1UL << (199 - 192));
	assert_int_equal(mv_ramblock_take_dirty(rb, 0, 200 * 4096, map), 0);
	assert_int_equal(map[0] | map[1] | map[2] | map[3], 0);
	mv_ramblock_unref(rb);
	mv_ram_list_free(l);
}

struct dirty_thread {
	mv_ramblock *rb;
	uint64_t first, n;
};

static void *dirty_setter(void *arg)
{
	struct dirty_thread *t = arg;

	for (uint64_t p = t->first; p < t->first + t->n; p++)
		mv_ramblock_set_dirty(t->rb, p * 4096, 1);
	return NULL;
}

/* Concurrent setters and a taker: no set bit is lost or counted twice. */
static void test_dirty_concurrent(void **state)
{
	enum { THREADS = 4, PAGES = 4096 };
	mv_ram_list *l = mv_ram_list_new(NULL);
	struct dirty_thread t[THREADS];
	pthread_t tid[THREADS];
	static unsigned long map[THREADS * PAGES / BPW];
	uint64_t total = 0;
	mv_ramblock *rb;
	int i;

	(void)state;
	rb = new_block(l, "conc", (uint64_t)THREADS * PAGES * 4096, NULL);
	/* overlapping ranges so threads share bitmap words; the last is clamped */
	for (i = 0; i < THREADS; i++)
		t[i] = (struct dirty_thread){ rb, (uint64_t)i * PAGES, PAGES + 17 };
	for (i = 0; i < THREADS; i++)
		pthread_create(&tid[i], NULL, dirty_setter, &t[i]);
	for (i = 0; i < 50; i++)
		total += mv_ramblock_take_dirty(rb, 0, (uint64_t)THREADS * PAGES * 4096, map);
	for (i = 0; i < THREADS; i++)
		pthread_join(tid[i], NULL);
	total += mv_ramblock_take_dirty(rb, 0, (uint64_t)THREADS * PAGES * 4096, map);
	/* every page was set at least once; overlapping pages may count twice */
	assert_true(total >= THREADS * PAGES);
	assert_true(total <= THREADS * PAGES + 17 * (THREADS - 1));
	assert_int_equal(mv_ramblock_take_dirty(rb, 0, (uint64_t)THREADS * PAGES * 4096, map), 0);
	mv_ramblock_unref(rb);
	mv_ram_list_free(l);
}

/* Shrink discards, regrow reads zeros; limits are checked. */
static void check_resize(mv_ram_backing backing, const char *path)
{
	mv_ramblock_opts o = { .backing = backing, .path = path, .resizeable = true,
			       .max_length = 64 * KiB };
	mv_ram_list *l = mv_ram_list_new(NULL);
	mv_error err = { 0 };
	unsigned long map[1];
	mv_ramblock *rb;
	char *p;

	rb = new_block(l, "rs", 16 * KiB, &o);
	p = mv_ramblock_host(rb);
	assert_int_equal(mv_ramblock_used_length(rb), 16 * KiB);
	assert_int_equal(mv_ramblock_max_length(rb), 64 * KiB);
	assert_int_equal(mv_ramblock_resize(rb, 64 * KiB, &err), 0);
	assert_int_equal(mv_ramblock_used_length(rb), 64 * KiB);
	/* QEMU's rule: the resized block is all dirty */
	assert_int_equal(mv_ramblock_take_dirty(rb, 0, 64 * KiB, map), 16);
	memset(p, 0x5a, 64 * KiB);
	mv_ramblock_set_dirty(rb, 60 * KiB, 4 * KiB);

	assert_int_equal(mv_ramblock_resize(rb, 68 * KiB, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "'rs'"));
	assert_int_equal(mv_ramblock_resize(rb, 6000, &err), -EINVAL);
	assert_int_equal(mv_ramblock_resize(rb, 0, &err), -EINVAL);
	assert_int_equal(mv_ramblock_used_length(rb), 64 * KiB);

	assert_int_equal(mv_ramblock_resize(rb, 8 * KiB, &err), 0);
	assert_int_equal(mv_ramblock_used_length(rb), 8 * KiB);
	assert_false(mv_ramblock_test_dirty(rb, 60 * KiB));   /* past the end */
	mv_ramblock_set_dirty(rb, 20 * KiB, 4 * KiB);         /* ignored */
	assert_int_equal(mv_ramblock_take_dirty(rb, 0, 64 * KiB, map), 2);
	assert_int_equal((unsigned char)p[4 * KiB], 0x5a);    /* kept */
	assert_int_equal(mv_ramblock_resize(rb, 64 * KiB, &err), 0);
	assert_int_equal(p[8 * KiB], 0);                      /* discarded */
	assert_int_equal(p[63 * KiB], 0);
	assert_int_equal((unsigned char)p[8 * KiB - 1], 0x5a);
	mv_ramblock_unref(rb);
	mv_ram_list_free(l);
}

static void test_resize(void **state)
{
	mv_ram_list *l = mv_ram_list_new(NULL);
	mv_error err = { 0 };
	mv_ramblock *rb;
	char path[64];

	(void)state;
	check_resize(MV_RAM_ANON_PRIVATE, NULL);
	check_resize(MV_RAM_ANON_SHARED, NULL);
	check_resize(MV_RAM_MEMFD, NULL);
	make_tmp_path(path, sizeof(path));
	check_resize(MV_RAM_FILE, path);
	unlink(path);

	rb = new_block(l, "fixed", 16 * KiB, NULL);
	assert_int_equal(mv_ramblock_resize(rb, 8 * KiB, &err), -EINVAL);
	assert_string_equal(err.msg, "RAM block 'fixed' is not resizeable");
	mv_ramblock_unref(rb);
	mv_ram_list_free(l);
}

/* Every allocation failing in turn: -ENOMEM, nothing leaks (ASan checks). */
static void test_alloc_failures(void **state)
{
	unsigned long i;
	bool done = false;

	(void)state;
	for (i = 1; !done; i++) {
		tu_failing_alloc fa;
		mv_ram_list *l;
		mv_ramblock *rb[20] = { 0 };
		mv_error err = { 0 };
		char name[16];
		int ret = 0, k, made = 0;

		tu_failing_alloc_init(&fa, i, false);
		l = mv_ram_list_new(&fa.alloc);
		if (!l)
			continue;
		for (k = 0; k < 20; k++) {
			snprintf(name, sizeof(name), "blk%d", k);
			ret = mv_ramblock_new(l, name, 4 * KiB, NULL, &rb[k], &err);
			if (ret) {
				assert_int_equal(ret, -ENOMEM);
				assert_non_null(strstr(err.msg, name));
				assert_null(mv_ram_list_find(l, name));
				break;
			}
			made++;
		}
		/* unref_fn drops our references from inside the walk */
		ret = mv_ram_list_foreach(l, unref_fn, NULL);
		if (ret) {
			/* the snapshot itself failed: release by hand */
			assert_int_equal(ret, -ENOMEM);
			for (k = 0; k < made; k++)
				mv_ramblock_unref(rb[k]);
		}
		mv_ram_list_free(l);
		done = fa.calls < fa.fail_at;
	}
	printf("# %lu allocation failure points checked\n", i - 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_anon_private),
		cmocka_unit_test(test_anon_shared),
		cmocka_unit_test(test_memfd),
		cmocka_unit_test(test_file_shared_and_private),
		cmocka_unit_test(test_noreserve_thp),
		cmocka_unit_test(test_hugetlb),
		cmocka_unit_test(test_bad_options),
		cmocka_unit_test(test_duplicate_name),
		cmocka_unit_test(test_offsets_first_fit),
		cmocka_unit_test(test_foreach_reentrant),
		cmocka_unit_test(test_refcount),
		cmocka_unit_test(test_remove),
		cmocka_unit_test(test_dirty_bits),
		cmocka_unit_test(test_dirty_concurrent),
		cmocka_unit_test(test_resize),
		cmocka_unit_test(test_alloc_failures),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
