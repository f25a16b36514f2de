/* The host page oracle: faulting in, errors, poison and SEA marks, declarations, THP. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "memvirt/soft_host.h"

#ifndef EHWPOISON
#define EHWPOISON 133
#endif

#define KiB 1024ull
#define MiB (1024 * KiB)
#define GiB (1024 * MiB)
#define PAGE (4 * KiB)

/* Print the SKIP line with the reason and skip the test. */
#define SKIP(...)                                                      \
	do {                                                           \
		printf("SKIP: %s: ", __func__);                        \
		printf(__VA_ARGS__);                                   \
		printf("\n");                                          \
		skip();                                                \
	} while (0)

static mv_soft_host *new_host(void)
{
	mv_soft_host *host = NULL;

	assert_int_equal(mv_soft_host_new(NULL, &host), 0);
	assert_non_null(host);
	return host;
}

/* @size bytes at an @align-aligned address (anonymous, private, not reserved). */
static uint8_t *map_aligned(uint64_t size, uint64_t align)
{
	uint8_t *raw = mmap(NULL, size + align, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	uint64_t base, end;

	assert_true(raw != MAP_FAILED);
	base = ((uint64_t)(uintptr_t)raw + align - 1) & ~(align - 1);
	end = (uint64_t)(uintptr_t)raw + size + align;
	if (base > (uint64_t)(uintptr_t)raw)
		munmap(raw, base - (uint64_t)(uintptr_t)raw);
	if (end > base + size)
		munmap((void *)(uintptr_t)(base + size), end - base - size);
	return (uint8_t *)(uintptr_t)base;
}

static uint64_t hva(const void *p)
{
	return (uint64_t)(uintptr_t)p;
}

/* mv_soft_host_page's result; *size = its map size (0 when it failed). */
static int host_page(mv_soft_host *host, const void *p, bool write, uint64_t *size)
{
	uint64_t sz = 0;
	int ret = mv_soft_host_page(host, hva(p), write, &sz);

	*size = sz;
	return ret;
}

static bool resident(const void *p)
{
	unsigned char vec = 0;

	assert_int_equal(mincore((void *)((uintptr_t)p & ~(PAGE - 1)), PAGE, &vec), 0);
	return vec & 1;
}

static void test_new_and_failures(void **state)
{
	tu_failing_alloc fa;
	mv_soft_host *host = (mv_soft_host *)1;
	uint8_t *mem = map_aligned(2 * MiB, 2 * MiB);
	uint64_t sz;

	(void)state;
	tu_failing_alloc_init(&fa, 1, false);
	assert_int_equal(mv_soft_host_new(&fa.alloc, &host), -ENOMEM);
	assert_null(host);
	mv_soft_host_free(NULL);

	/* A failed declaration or mark leaves the oracle as it was. */
	tu_failing_alloc_init(&fa, 0, false);
	assert_int_equal(mv_soft_host_new(&fa.alloc, &host), 0);
	assert_int_equal(mv_soft_host_declare(host, hva(mem), 2 * MiB, MV_HOST_BACKING_HUGETLB, 2 * MiB), 0);
	fa.fail_at = fa.calls + 1;
	fa.fail_all = true;
	assert_int_equal(mv_soft_host_declare(host, hva(mem), 2 * MiB, MV_HOST_BACKING_PAGE, 0), -ENOMEM);
	assert_int_equal(mv_soft_host_set_poison(host, hva(mem), true), -ENOMEM);
	assert_int_equal(mv_soft_host_set_sea(host, hva(mem), true), -ENOMEM);
	assert_false(mv_soft_host_is_sea(host, hva(mem)));
	assert_int_equal(host_page(host, mem + PAGE, false, &sz), 0);
	assert_int_equal(sz, 2 * MiB);
	mv_soft_host_free(host);
	munmap(mem, 2 * MiB);
}

/* Unmapped, PROT_NONE, PROT_READ + write, file page past EOF: -EFAULT, as GUP gives. */
static void test_efault(void **state)
{
	mv_soft_host *host = new_host();
	uint8_t *gone = map_aligned(PAGE, PAGE);
	uint8_t *none = mmap(NULL, PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t *ro = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int fd = memfd_create("host-test", MFD_CLOEXEC);
	uint8_t *file;
	uint64_t sz;

	(void)state;
	assert_true(none != MAP_FAILED && ro != MAP_FAILED && fd >= 0);
	munmap(gone, PAGE);
	assert_int_equal(host_page(host, gone, false, &sz), -EFAULT);
	assert_int_equal(host_page(host, gone + 100, true, &sz), -EFAULT);
	assert_int_equal(sz, 0);
	assert_int_equal(host_page(host, none, false, &sz), -EFAULT);
	assert_int_equal(host_page(host, none, true, &sz), -EFAULT);
	assert_int_equal(host_page(host, ro + 8, true, &sz), -EFAULT);
	assert_int_equal(host_page(host, ro + 8, false, &sz), 0);
	assert_int_equal(sz, PAGE);
	/* One page of file, two mapped: the second would SIGBUS. */
	assert_int_equal(ftruncate(fd, PAGE), 0);
	file = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(file != MAP_FAILED);
	assert_int_equal(host_page(host, file, true, &sz), 0);
	assert_int_equal(host_page(host, file + PAGE, false, &sz), -EFAULT);
	assert_int_equal(host_page(host, file + PAGE, true, &sz), -EFAULT);
	munmap(file, 2 * PAGE);
	close(fd);
	munmap(none, PAGE);
	munmap(ro, PAGE);
	mv_soft_host_free(host);
}

/* Faulting in makes the page resident and never changes a byte. */
static void test_contents_kept(void **state)
{
	enum { PAGES = 64 };
	mv_soft_host *host = new_host();
	uint8_t *mem = map_aligned(PAGES * PAGE, PAGE), *copy = malloc(PAGES * PAGE);
	uint8_t *fresh = map_aligned(2 * PAGE, PAGE);
	int fd = memfd_create("host-shared", MFD_CLOEXEC);
	uint64_t rng = tu_seed(0x40571), sz;
	uint8_t *shared;

	(void)state;
	assert_non_null(copy);
	for (size_t i = 0; i < PAGES * PAGE; i++)
		mem[i] = (uint8_t)tu_rand(&rng);
	memcpy(copy, mem, PAGES * PAGE);
	for (unsigned i = 0; i < PAGES; i++) {
		assert_int_equal(host_page(host, mem + i * PAGE + i, i & 1, &sz), 0);
		assert_int_equal(sz, PAGE);
	}
	assert_memory_equal(mem, copy, PAGES * PAGE);

	/* Never-touched pages: read and write faults bring in zeroed pages. */
	assert_false(resident(fresh));
	assert_int_equal(host_page(host, fresh, true, &sz), 0);
	assert_true(resident(fresh));
	assert_int_equal(host_page(host, fresh + PAGE, false, &sz), 0);
	for (size_t i = 0; i < 2 * PAGE; i++)
		assert_int_equal(fresh[i], 0);

	/* A shared file page: written through the page cache, unchanged. */
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, PAGE), 0);
	shared = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(shared != MAP_FAILED);
	memcpy(shared, copy, PAGE);
	assert_int_equal(host_page(host, shared + 5, true, &sz), 0);
	assert_memory_equal(shared, copy, PAGE);

	munmap(shared, PAGE);
	close(fd);
	munmap(fresh, 2 * PAGE);
	munmap(mem, PAGES * PAGE);
	free(copy);
	mv_soft_host_free(host);
}

/*
 * A resident page of the vDSO data ([vvar]: VM_PFNMAP, read-only), where
 * MADV_POPULATE gives EINVAL although reads are allowed; NULL if none.
 */
static const uint8_t *resident_vvar_page(void)
{
	FILE *f = fopen("/proc/self/maps", "re");
	const uint8_t *found = NULL;
	struct timespec ts;
	char line[512];

	clock_gettime(CLOCK_REALTIME, &ts);    /* the vDSO reads (so maps) its data page */
	assert_non_null(f);
	while (!found && fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;

		if (!strstr(line, "[vvar") || sscanf(line, "%lx-%lx", &lo, &hi) != 2)
			continue;
		for (unsigned long a = lo; a < hi && !found; a += PAGE) {
			unsigned char vec = 0;

			if (mincore((void *)a, PAGE, &vec) == 0 && (vec & 1))
				found = (const uint8_t *)a;
		}
	}
	fclose(f);
	return found;
}

/* Where madvise cannot populate, the VMA's permissions decide and the page is touched. */
static void test_pfnmap_fallback(void **state)
{
	const uint8_t *vvar = resident_vvar_page();
	mv_soft_host *host;
	uint64_t sz;

	(void)state;
	if (!vvar)
		SKIP("no resident [vvar] page to try a VM_PFNMAP mapping on");
	assert_int_equal(madvise((void *)vvar, PAGE, MADV_POPULATE_READ), -1);
	if (errno != EINVAL)
		SKIP("MADV_POPULATE_READ on [vvar] gives errno %d here, not EINVAL", errno);
	host = new_host();
	assert_int_equal(host_page(host, vvar, false, &sz), 0);
	assert_int_equal(sz, PAGE);
	assert_int_equal(host_page(host, vvar, true, &sz), -EFAULT);
	mv_soft_host_free(host);
}

static void test_poison(void **state)
{
	mv_soft_host *host = new_host();
	uint8_t *mem = map_aligned(4 * PAGE, PAGE);
	uint64_t sz;

	(void)state;
	memset(mem, 0x5a, 4 * PAGE);
	assert_int_equal(mv_soft_host_set_poison(host, hva(mem + PAGE + 17), true), 0);
	assert_int_equal(mv_soft_host_set_poison(host, hva(mem + PAGE), true), 0);   /* again: no-op */
	assert_int_equal(mv_soft_host_set_poison(host, hva(mem + 3 * PAGE), true), 0);
	assert_int_equal(host_page(host, mem + PAGE, false, &sz), -EHWPOISON);
	assert_int_equal(host_page(host, mem + 2 * PAGE - 1, true, &sz), -EHWPOISON);
	assert_int_equal(sz, 0);
	assert_int_equal(host_page(host, mem, true, &sz), 0);
	assert_int_equal(host_page(host, mem + 2 * PAGE, true, &sz), 0);
	assert_int_equal(host_page(host, mem + 3 * PAGE, false, &sz), -EHWPOISON);
	/* Cleared: usable again; clearing an unmarked page is fine. */
	assert_int_equal(mv_soft_host_set_poison(host, hva(mem + PAGE), false), 0);
	assert_int_equal(mv_soft_host_set_poison(host, hva(mem + PAGE), false), 0);
	assert_int_equal(host_page(host, mem + PAGE, true, &sz), 0);
	assert_int_equal(sz, PAGE);
	assert_int_equal(mem[PAGE], 0x5a);
	assert_int_equal(host_page(host, mem + 3 * PAGE, false, &sz), -EHWPOISON);
	/* Nothing mapped wins over poison. */
	munmap(mem + 3 * PAGE, PAGE);
	assert_int_equal(host_page(host, mem + 3 * PAGE, false, &sz), -EFAULT);
	/* Poison is not SEA. */
	assert_false(mv_soft_host_is_sea(host, hva(mem + 3 * PAGE)));
	munmap(mem, 3 * PAGE);
	mv_soft_host_free(host);
}

static void test_sea_marks(void **state)
{
	mv_soft_host *host = new_host();
	uint64_t base = 0x7f1200000000ull;
	uint64_t sz;
	uint8_t *mem = map_aligned(PAGE, PAGE);

	(void)state;
	assert_false(mv_soft_host_is_sea(host, base));
	for (uint64_t i = 0; i < 100; i += 3)
		assert_int_equal(mv_soft_host_set_sea(host, base + i * PAGE, true), 0);
	for (uint64_t i = 0; i < 100; i++) {
		assert_int_equal(mv_soft_host_is_sea(host, base + i * PAGE + 0xabc), i % 3 == 0);
	}
	assert_int_equal(mv_soft_host_set_sea(host, base + 3 * PAGE + 1, false), 0);
	assert_false(mv_soft_host_is_sea(host, base + 3 * PAGE));
	assert_true(mv_soft_host_is_sea(host, base + 6 * PAGE));
	for (uint64_t i = 0; i < 100; i += 3)
		assert_int_equal(mv_soft_host_set_sea(host, base + i * PAGE, false), 0);
	for (uint64_t i = 0; i < 100; i++)
		assert_false(mv_soft_host_is_sea(host, base + i * PAGE));
	/* An SEA page still resolves: the abort comes from the access, not from GUP. */
	assert_int_equal(mv_soft_host_set_sea(host, hva(mem), true), 0);
	assert_int_equal(host_page(host, mem, true, &sz), 0);
	assert_true(mv_soft_host_is_sea(host, hva(mem)));
	munmap(mem, PAGE);
	mv_soft_host_free(host);
}

typedef struct sea_race {
	mv_soft_host *host;
	uint64_t base;
	bool stop;
	unsigned long checks;
} sea_race;

/* Readers: the fixed marked page is always SEA, the never-marked page never is. */
static void *sea_reader(void *arg)
{
	sea_race *r = arg;

	while (!__atomic_load_n(&r->stop, __ATOMIC_RELAXED)) {
		if (!mv_soft_host_is_sea(r->host, r->base) ||
		    mv_soft_host_is_sea(r->host, r->base + 1000 * PAGE))
			return (void *)1;
		__atomic_add_fetch(&r->checks, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void test_sea_threads(void **state)
{
	sea_race r = { .host = new_host(), .base = 0x7f3400000000ull };
	pthread_t t[2];
	void *bad;

	(void)state;
	assert_int_equal(mv_soft_host_set_sea(r.host, r.base, true), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, sea_reader, &r), 0);
	/* Toggle marks around both pages, growing and shrinking the set. */
	for (unsigned round = 0; round < 2000; round++) {
		uint64_t p = r.base + (1 + round % 500) * PAGE;

		assert_int_equal(mv_soft_host_set_sea(r.host, p, round % 1000 < 500), 0);
	}
	while (__atomic_load_n(&r.checks, __ATOMIC_RELAXED) < 1000)
		sched_yield();
	__atomic_store_n(&r.stop, true, __ATOMIC_RELAXED);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(pthread_join(t[i], &bad), 0);
		assert_null(bad);
	}
	mv_soft_host_free(r.host);
}

static void test_declare_errors(void **state)
{
	mv_soft_host *host = new_host();
	uint64_t b = 0x40000000ull;

	(void)state;
	assert_int_equal(mv_soft_host_declare(host, b + PAGE, 2 * MiB, MV_HOST_BACKING_HUGETLB, 2 * MiB), -EINVAL);
	assert_int_equal(mv_soft_host_declare(host, b, 3 * MiB, MV_HOST_BACKING_HUGETLB, 2 * MiB), -EINVAL);
	assert_int_equal(mv_soft_host_declare(host, b, 0, MV_HOST_BACKING_HUGETLB, 2 * MiB), -EINVAL);
	assert_int_equal(mv_soft_host_declare(host, b, 4 * MiB, MV_HOST_BACKING_HUGETLB, 4 * MiB), -EINVAL);
	assert_int_equal(mv_soft_host_declare(host, b, 4 * MiB, MV_HOST_BACKING_HUGETLB, 0), -EINVAL);
	assert_int_equal(mv_soft_host_declare(host, b, GiB, MV_HOST_BACKING_THP, GiB), -EINVAL);
	assert_int_equal(mv_soft_host_declare(host, b, 2 * MiB, MV_HOST_BACKING_PAGE, 2 * MiB), -EINVAL);
	assert_int_equal(mv_soft_host_declare(host, b + 1, PAGE, MV_HOST_BACKING_PAGE, 0), -EINVAL);
	assert_int_equal(mv_soft_host_declare(host, b, 2 * MiB, (mv_host_backing)7, 2 * MiB), -EINVAL);
	assert_int_equal(mv_soft_host_declare(host, 0ull - 2 * MiB, 4 * MiB, MV_HOST_BACKING_THP, 2 * MiB), -EINVAL);
	/* The good ones. */
	assert_int_equal(mv_soft_host_declare(host, 0ull - 2 * MiB, 2 * MiB, MV_HOST_BACKING_THP, 2 * MiB), -EINVAL);
	assert_int_equal(mv_soft_host_declare(host, 0ull - 4 * MiB, 2 * MiB, MV_HOST_BACKING_THP, 2 * MiB), 0);
	assert_int_equal(mv_soft_host_declare(host, b, 64 * KiB, MV_HOST_BACKING_HUGETLB, 64 * KiB), 0);
	assert_int_equal(mv_soft_host_declare(host, b, 32 * MiB, MV_HOST_BACKING_HUGETLB, 32 * MiB), 0);
	assert_int_equal(mv_soft_host_declare(host, b, GiB, MV_HOST_BACKING_HUGETLB, GiB), 0);
	assert_int_equal(mv_soft_host_declare(host, b, PAGE, MV_HOST_BACKING_PAGE, PAGE), 0);
	mv_soft_host_free(host);
}

/* Later declarations win; what sticks out of the earlier ones keeps its kind. */
static void test_declare_overlap(void **state)
{
	mv_soft_host *host = new_host();
	uint8_t *r = map_aligned(GiB, GiB);
	struct { uint64_t off, size; } expect[] = {
		{ 1 * MiB, 2 * MiB }, { 3 * MiB, PAGE }, { 5 * MiB, PAGE }, { 6 * MiB + 5, PAGE },
		{ 7 * MiB, PAGE }, { 9 * MiB, GiB }, { 10 * MiB + 60 * KiB, 64 * KiB },
		{ 10 * MiB + 64 * KiB, GiB }, { GiB - PAGE, GiB },
	};
	uint64_t sz;

	(void)state;
	/* No huge page may appear under the THP declaration by itself. */
	assert_int_equal(madvise(r, GiB, MADV_NOHUGEPAGE), 0);
	assert_int_equal(host_page(host, r, false, &sz), 0);
	assert_int_equal(sz, PAGE);
	assert_int_equal(mv_soft_host_declare(host, hva(r), GiB, MV_HOST_BACKING_HUGETLB, GiB), 0);
	assert_int_equal(host_page(host, r + 5 * MiB, false, &sz), 0);
	assert_int_equal(sz, GiB);
	assert_int_equal(mv_soft_host_declare(host, hva(r + 2 * MiB), 4 * MiB, MV_HOST_BACKING_THP, 2 * MiB), 0);
	assert_int_equal(mv_soft_host_declare(host, hva(r + 6 * MiB), 2 * MiB, MV_HOST_BACKING_PAGE, 0), 0);
	assert_int_equal(mv_soft_host_declare(host, hva(r), 2 * MiB, MV_HOST_BACKING_HUGETLB, 2 * MiB), 0);
	assert_int_equal(mv_soft_host_declare(host, hva(r + 10 * MiB), 64 * KiB, MV_HOST_BACKING_HUGETLB, 64 * KiB), 0);
	/* Re-declaring the same range replaces it (no duplicate). */
	assert_int_equal(mv_soft_host_declare(host, hva(r + 10 * MiB), 64 * KiB, MV_HOST_BACKING_HUGETLB, 64 * KiB), 0);
	assert_int_equal(mv_soft_host_declare(host, hva(r + 3 * MiB), PAGE, MV_HOST_BACKING_PAGE, 0), 0);
	for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
		assert_int_equal(host_page(host, r + expect[i].off, false, &sz), 0);
		if (sz != expect[i].size)
			fail_msg("offset %#llx: map size %#llx, expected %#llx",
				 (unsigned long long)expect[i].off, (unsigned long long)sz,
				 (unsigned long long)expect[i].size);
	}
	/* A PAGE declaration over everything leaves 4 KiB pages. */
	assert_int_equal(mv_soft_host_declare(host, hva(r), GiB, MV_HOST_BACKING_PAGE, 0), 0);
	for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
		assert_int_equal(host_page(host, r + expect[i].off, false, &sz), 0);
		assert_int_equal(sz, PAGE);
	}
	munmap(r, GiB);
	mv_soft_host_free(host);
}

/* Randomized declarations against painting a per-2-MiB-block array. */
static void test_declare_random(void **state)
{
	enum { BLOCKS = 64, ROUNDS = 300 };
	uint64_t rng = tu_seed(0xdec1), sz;
	uint8_t *r = map_aligned(BLOCKS * 2 * MiB, 2 * MiB);
	uint64_t ref[BLOCKS];
	mv_soft_host *host = new_host();

	(void)state;
	assert_int_equal(madvise(r, BLOCKS * 2 * MiB, MADV_NOHUGEPAGE), 0);
	for (unsigned i = 0; i < BLOCKS; i++)
		ref[i] = PAGE;
	for (unsigned round = 0; round < ROUNDS; round++) {
		unsigned first = (unsigned)tu_rand_below(&rng, BLOCKS);
		unsigned n = 1 + (unsigned)tu_rand_below(&rng, BLOCKS - first);
		bool huge = tu_rand_below(&rng, 3) != 0;
		uint64_t probe = tu_rand_below(&rng, BLOCKS);

		assert_int_equal(mv_soft_host_declare(host, hva(r) + first * 2 * MiB, n * 2 * MiB,
						      huge ? MV_HOST_BACKING_HUGETLB : MV_HOST_BACKING_PAGE,
						      huge ? 2 * MiB : 0), 0);
		for (unsigned i = first; i < first + n; i++)
			ref[i] = huge ? 2 * MiB : PAGE;
		assert_int_equal(host_page(host, r + probe * 2 * MiB + tu_rand_below(&rng, 2 * MiB),
					   false, &sz), 0);
		assert_int_equal(sz, ref[probe]);
	}
	munmap(r, BLOCKS * 2 * MiB);
	mv_soft_host_free(host);
}

/* Does this kernel have PAGEMAP_SCAN? (The oracle needs it to see PMD mappings.) */
static bool have_pagemap_scan(void)
{
	struct { uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages,
		 inverted, mask, anyof, ret; } arg = { .size = sizeof(arg) };
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	bool ok;

	if (fd < 0)
		return false;
	ok = ioctl(fd, _IOWR('f', 16, arg), &arg) == 0;
	close(fd);
	return ok;
}

/* AnonHugePages (kB) of the VMA starting at @start, from /proc/self/smaps; -1 if not found. */
static long anon_huge_kb(const void *start)
{
	FILE *f = fopen("/proc/self/smaps", "re");
	char line[512];
	bool in = false;
	long kb = -1;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;

		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			in = lo == hva(start);
			continue;
		}
		if (in && sscanf(line, "AnonHugePages: %ld kB", &kb) == 1)
			break;
	}
	fclose(f);
	return kb;
}

static void test_thp(void **state)
{
	char mode[128] = "";
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "re");
	mv_soft_host *host;
	uint8_t *mem, *copy;
	uint64_t sz, rng = tu_seed(0x7489);
	long kb;

	(void)state;
	if (!f)
		SKIP("no /sys/kernel/mm/transparent_hugepage/enabled (kernel without THP)");
	if (!fgets(mode, sizeof(mode), f))
		mode[0] = 0;
	fclose(f);
	if (!strstr(mode, "[always]") && !strstr(mode, "[madvise]"))
		SKIP("transparent_hugepage/enabled is '%.*s', not always or madvise",
			 (int)strcspn(mode, "\n"), mode);

	host = new_host();
	mem = map_aligned(4 * MiB, 2 * MiB);
	copy = malloc(4 * MiB);
	assert_non_null(copy);
	assert_int_equal(madvise(mem, 4 * MiB, MADV_HUGEPAGE), 0);
	for (size_t i = 0; i < 4 * MiB; i += 8)
		*(uint64_t *)(mem + i) = tu_rand(&rng);
	memcpy(copy, mem, 4 * MiB);
	assert_int_equal(mv_soft_host_declare(host, hva(mem), 4 * MiB, MV_HOST_BACKING_THP, 2 * MiB), 0);
	kb = anon_huge_kb(mem);
	if (kb < 4096 || !have_pagemap_scan()) {
		/* Without a huge page, or without a way to see it: 4 KiB. */
		assert_int_equal(host_page(host, mem + 5 * PAGE, true, &sz), 0);
		assert_int_equal(sz, PAGE);
		mv_soft_host_free(host);
		munmap(mem, 4 * MiB);
		free(copy);
		if (kb < 4096)
			SKIP("the kernel gave %ld kB of huge pages for 4 MiB advised MADV_HUGEPAGE", kb);
		SKIP("no PAGEMAP_SCAN ioctl (Linux < 6.7): THP mapping size cannot be seen");
	}
	for (unsigned i = 0; i < 1024; i += 37) {
		assert_int_equal(host_page(host, mem + i * PAGE + 9, i & 1, &sz), 0);
		assert_int_equal(sz, 2 * MiB);
	}
	/* mprotect of one page splits the first PMD: its pages are now PTE-mapped. */
	assert_int_equal(mprotect(mem + PAGE, PAGE, PROT_READ), 0);
	assert_int_equal(host_page(host, mem + 5 * PAGE, true, &sz), 0);
	assert_int_equal(sz, PAGE);
	assert_int_equal(host_page(host, mem + PAGE, true, &sz), -EFAULT);
	assert_int_equal(host_page(host, mem + PAGE, false, &sz), 0);
	assert_int_equal(sz, PAGE);
	assert_int_equal(host_page(host, mem + 2 * MiB + 3 * PAGE, true, &sz), 0);
	assert_int_equal(sz, 2 * MiB);
	/* Undeclared, the same huge page counts as 4 KiB. */
	assert_int_equal(mv_soft_host_declare(host, hva(mem + 2 * MiB), 2 * MiB, MV_HOST_BACKING_PAGE, 0), 0);
	assert_int_equal(host_page(host, mem + 2 * MiB + 3 * PAGE, true, &sz), 0);
	assert_int_equal(sz, PAGE);
	assert_memory_equal(mem, copy, 4 * MiB);
	mv_soft_host_free(host);
	munmap(mem, 4 * MiB);
	free(copy);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_and_failures),
		cmocka_unit_test(test_efault),
		cmocka_unit_test(test_contents_kept),
		cmocka_unit_test(test_pfnmap_fallback),
		cmocka_unit_test(test_poison),
		cmocka_unit_test(test_sea_marks),
		cmocka_unit_test(test_sea_threads),
		cmocka_unit_test(test_declare_errors),
		cmocka_unit_test(test_declare_overlap),
		cmocka_unit_test(test_declare_random),
		cmocka_unit_test(test_thp),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
