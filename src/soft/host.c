/*
 * The host page oracle of the software MMU: what get_user_pages and the
 * host page tables tell KVM about an HVA.
 *
 * Faulting in: madvise(MADV_POPULATE_WRITE / _READ) on the page is
 * get_user_pages(FOLL_WRITE or not) from user space (Linux >= 5.14): it
 * faults the page in without touching its contents and fails where the
 * access would (ENOMEM nothing mapped, EFAULT SIGBUS/SIGSEGV, EINVAL a
 * mapping without the permission, e.g. a write to PROT_READ). EINVAL also
 * means "advice unknown" on older kernels and comes back for VM_PFNMAP /
 * VM_IO mappings, so on EINVAL the permission is checked in
 * /proc/self/maps and, where granted, the page is touched by hand (a
 * volatile read, or an atomic add of 0 for a write). That fallback cannot
 * see SIGBUS cases (a file mapping beyond its end) and races a concurrent
 * munmap; the madvise path has neither problem.
 *
 * Mapping size: hugetlb declarations give their page size. For THP
 * declarations the question is KVM's get_user_mapping_size: is the page
 * mapped by a PMD right now? The PAGEMAP_SCAN ioctl on /proc/self/pagemap
 * (Linux >= 6.7, no privilege needed) answers exactly that: PAGE_IS_HUGE
 * is set for a PMD-mapped THP and clear for a PTE-mapped one (a huge page
 * split by mprotect, or small pages). It was chosen over /proc/kpageflags
 * (root only, and KPF_THP is also set for PTE-mapped and multi-size THPs)
 * and over smaps' AnonHugePages (a whole-VMA count). Without the ioctl the
 * size cannot be known and is reported as 4 KiB. The pagemap file is
 * opened once per oracle (it then describes the process that created the
 * oracle, so an oracle is not meant to be used across fork()).
 *
 * Declarations are a sorted array of disjoint ranges (PAGE declarations
 * only cut holes); poison and SEA marks are sorted arrays of page numbers.
 * One rwlock guards them all; the mark counts are also read atomically so
 * that "no marks at all" costs no lock.
 */
#define _GNU_SOURCE
#include "memvirt/soft_host.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util/alloc.h"

#define PAGE_SHIFT 12
#define PAGE_SIZE (1ull << PAGE_SHIFT)
#define SZ_64K (64ull << 10)
#define SZ_2M (2ull << 20)
#define SZ_32M (32ull << 20)
#define SZ_1G (1ull << 30)

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#ifndef EHWPOISON
#define EHWPOISON 133
#endif

/* PAGEMAP_SCAN (Linux 6.7 uapi linux/fs.h; older headers lack it). */
struct host_pm_scan_arg {
	uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
	uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
struct host_page_region {
	uint64_t start, end, categories;
};
#define HOST_PAGEMAP_SCAN _IOWR('f', 16, struct host_pm_scan_arg)
#define HOST_PAGE_IS_HUGE (1ull << 6)   /* PMD-mapped THP or hugetlb */

typedef struct host_range {
	uint64_t start, end;
	mv_host_backing kind;
	uint64_t page_size;
} host_range;

/* A sorted set of page numbers; @nr is also read atomically without the lock. */
typedef struct page_set {
	uint64_t *pages;
	size_t nr, cap;
} page_set;

struct mv_soft_host {
	const mv_allocator *alloc;
	pthread_rwlock_t lock;
	host_range *ranges;          /* sorted, disjoint, never MV_HOST_BACKING_PAGE */
	size_t nr_ranges;
	page_set poison, sea;
	int pagemap_fd;              /* -1: THP mappings cannot be checked */
};

int mv_soft_host_new(const mv_allocator *alloc, mv_soft_host **out)
{
	mv_soft_host *host = mv_zalloc(alloc, sizeof(*host));

	*out = NULL;
	if (!host)
		return -ENOMEM;
	host->alloc = alloc;
	pthread_rwlock_init(&host->lock, NULL);
	host->pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	*out = host;
	return 0;
}

void mv_soft_host_free(mv_soft_host *host)
{
	if (!host)
		return;
	if (host->pagemap_fd >= 0)
		close(host->pagemap_fd);
	pthread_rwlock_destroy(&host->lock);
	mv_free(host->alloc, host->ranges);
	mv_free(host->alloc, host->poison.pages);
	mv_free(host->alloc, host->sea.pages);
	mv_free(host->alloc, host);
}

/* ---- Declarations ---- */

static bool valid_page_size(mv_host_backing kind, uint64_t page_size)
{
	switch (kind) {
	case MV_HOST_BACKING_PAGE:
		return page_size == 0 || page_size == PAGE_SIZE;
	case MV_HOST_BACKING_THP:
		return page_size == SZ_2M;
	case MV_HOST_BACKING_HUGETLB:
		/* The arm64 4 KiB-granule hugetlb sizes: contiguous PTEs, PMD, contiguous PMDs, PUD. */
		return page_size == SZ_64K || page_size == SZ_2M || page_size == SZ_32M ||
		       page_size == SZ_1G;
	}
	return false;
}

/*
 * @old with [add.start, add.end) cut out of it and @add inserted (unless
 * it is a PAGE declaration), into @out (room for nr_old + 2). Pieces of
 * old ranges keep their kind. Returns the count.
 */
static size_t splice_ranges(const host_range *old, size_t nr_old, const host_range *add,
			    host_range *out)
{
	bool placed = add->kind == MV_HOST_BACKING_PAGE;
	size_t k = 0;

	for (size_t i = 0; i < nr_old; i++) {
		host_range r = old[i];

		if (r.end <= add->start) {
			out[k++] = r;
			continue;
		}
		if (r.start < add->start) {
			out[k] = r;
			out[k++].end = add->start;
		}
		if (r.end > add->end) {
			if (!placed)
				out[k++] = *add;
			placed = true;
			out[k] = r;
			if (out[k].start < add->end)
				out[k].start = add->end;
			k++;
		}
	}
	if (!placed)
		out[k++] = *add;
	return k;
}

int mv_soft_host_declare(mv_soft_host *host, uint64_t hva, uint64_t size, mv_host_backing kind,
			 uint64_t page_size)
{
	host_range add = { hva, hva + size, kind, page_size };
	uint64_t align;
	host_range *out;

	if (!valid_page_size(kind, page_size))
		return -EINVAL;
	align = page_size > PAGE_SIZE ? page_size : PAGE_SIZE;
	if (size == 0 || (hva | size) & (align - 1) || hva + size < hva)
		return -EINVAL;
	pthread_rwlock_wrlock(&host->lock);
	out = mv_zalloc(host->alloc, (host->nr_ranges + 2) * sizeof(*out));
	if (!out) {
		pthread_rwlock_unlock(&host->lock);
		return -ENOMEM;
	}
	host->nr_ranges = splice_ranges(host->ranges, host->nr_ranges, &add, out);
	mv_free(host->alloc, host->ranges);
	host->ranges = out;
	pthread_rwlock_unlock(&host->lock);
	return 0;
}

/* With the lock held: the declaration covering @hva, or NULL. */
static const host_range *find_range(const mv_soft_host *host, uint64_t hva)
{
	size_t lo = 0, hi = host->nr_ranges;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (host->ranges[mid].end <= hva)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < host->nr_ranges && host->ranges[lo].start <= hva ? &host->ranges[lo] : NULL;
}

/* ---- Page marks ---- */

/* Index of the first element >= @page. */
static size_t set_lower_bound(const page_set *s, uint64_t page)
{
	size_t lo = 0, hi = s->nr;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->pages[mid] < page)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* With the lock held for reading. */
static bool set_has(const page_set *s, uint64_t page)
{
	size_t i = set_lower_bound(s, page);

	return i < s->nr && s->pages[i] == page;
}

/* Cheap test first: an empty set needs no lock. */
static bool marked(const mv_soft_host *host, const page_set *s, uint64_t hva)
{
	mv_soft_host *h = (mv_soft_host *)host;   /* the rwlock is the only mutable part */
	bool hit;

	if (__atomic_load_n(&s->nr, __ATOMIC_ACQUIRE) == 0)
		return false;
	pthread_rwlock_rdlock(&h->lock);
	hit = set_has(s, hva >> PAGE_SHIFT);
	pthread_rwlock_unlock(&h->lock);
	return hit;
}

static int set_mark(mv_soft_host *host, page_set *s, uint64_t hva, bool on)
{
	uint64_t page = hva >> PAGE_SHIFT;
	size_t i;
	int ret = 0;

	pthread_rwlock_wrlock(&host->lock);
	i = set_lower_bound(s, page);
	if (on && !(i < s->nr && s->pages[i] == page)) {
		ret = mv_grow(host->alloc, (void **)&s->pages, &s->cap, s->nr + 1, sizeof(*s->pages));
		if (ret == 0) {
			memmove(&s->pages[i + 1], &s->pages[i], (s->nr - i) * sizeof(*s->pages));
			s->pages[i] = page;
			__atomic_store_n(&s->nr, s->nr + 1, __ATOMIC_RELEASE);
		}
	} else if (!on && i < s->nr && s->pages[i] == page) {
		memmove(&s->pages[i], &s->pages[i + 1], (s->nr - i - 1) * sizeof(*s->pages));
		__atomic_store_n(&s->nr, s->nr - 1, __ATOMIC_RELEASE);
	}
	pthread_rwlock_unlock(&host->lock);
	return ret;
}

int mv_soft_host_set_poison(mv_soft_host *host, uint64_t hva, bool poisoned)
{
	return set_mark(host, &host->poison, hva, poisoned);
}

int mv_soft_host_set_sea(mv_soft_host *host, uint64_t hva, bool sea)
{
	return set_mark(host, &host->sea, hva, sea);
}

bool mv_soft_host_is_sea(const mv_soft_host *host, uint64_t hva)
{
	return marked(host, &host->sea, hva);
}

/* ---- Host pages ---- */

static bool page_mapped(uint64_t page)
{
	unsigned char vec;

	return mincore((void *)(uintptr_t)page, PAGE_SIZE, &vec) == 0;
}

/* Does the VMA around @addr allow the access? From /proc/self/maps. */
static bool vma_allows(uint64_t addr, bool write)
{
	FILE *f = fopen("/proc/self/maps", "re");
	bool line_start = true, ok = false;
	char line[256];

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		bool at_start = line_start;
		unsigned long lo, hi;
		char perms[5];

		/* Long lines (paths) come in several pieces: only the first is parsed. */
		line_start = strchr(line, '\n') != NULL;
		if (!at_start || sscanf(line, "%lx-%lx %4s", &lo, &hi, perms) != 3)
			continue;
		if (addr >= lo && addr < hi) {
			ok = perms[0] == 'r' && (!write || perms[1] == 'w');
			break;
		}
	}
	fclose(f);
	return ok;
}

/* Fault @page in as get_user_pages would, without changing its contents. */
static int fault_in(uint64_t page, bool write)
{
	void *p = (void *)(uintptr_t)page;

	while (madvise(p, PAGE_SIZE, write ? MADV_POPULATE_WRITE : MADV_POPULATE_READ) != 0) {
		switch (errno) {
		case EINTR:
			continue;
		case EHWPOISON:
			return -EHWPOISON;
		case EINVAL:
			if (!vma_allows(page, write))
				return -EFAULT;
			if (write)
				__atomic_fetch_add((uint8_t *)p, 0, __ATOMIC_RELAXED);
			else
				(void)*(volatile uint8_t *)p;
			return 0;
		default:
			return -EFAULT;   /* ENOMEM: nothing mapped; EFAULT: SIGBUS/SIGSEGV */
		}
	}
	return 0;
}

/* Is @page mapped by a PMD (a huge page) right now? False when it cannot be known. */
static bool pmd_mapped(const mv_soft_host *host, uint64_t page)
{
	struct host_page_region region;
	struct host_pm_scan_arg arg = {
		.size = sizeof(arg),
		.start = page,
		.end = page + PAGE_SIZE,
		.vec = (uint64_t)(uintptr_t)&region,
		.vec_len = 1,
		.category_anyof_mask = HOST_PAGE_IS_HUGE,
		.return_mask = HOST_PAGE_IS_HUGE,
	};

	return host->pagemap_fd >= 0 && ioctl(host->pagemap_fd, HOST_PAGEMAP_SCAN, &arg) == 1;
}

int mv_soft_host_page(mv_soft_host *host, uint64_t hva, bool write, uint64_t *map_size)
{
	uint64_t page = hva & ~(PAGE_SIZE - 1);
	host_range r = { 0, 0, MV_HOST_BACKING_PAGE, PAGE_SIZE };
	const host_range *found;
	int ret;

	pthread_rwlock_rdlock(&host->lock);
	found = find_range(host, hva);
	if (found)
		r = *found;
	pthread_rwlock_unlock(&host->lock);
	/* A poisoned page is still mapped (by a poison entry); an unmapped one is just absent. */
	if (marked(host, &host->poison, hva))
		return page_mapped(page) ? -EHWPOISON : -EFAULT;
	ret = fault_in(page, write);
	if (ret)
		return ret;
	switch (r.kind) {
	case MV_HOST_BACKING_HUGETLB:
		*map_size = r.page_size;
		break;
	case MV_HOST_BACKING_THP:
		*map_size = pmd_mapped(host, page) ? r.page_size : PAGE_SIZE;
		break;
	default:
		*map_size = PAGE_SIZE;
	}
	return 0;
}
