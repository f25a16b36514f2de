/*
 * RAM blocks and the RAM list (QEMU's RAMBlock / ram_list, physmem.c).
 *
 * The list is an array sorted by ram_addr offset, protected by its mutex.
 * Every block is one mmap of max_length bytes (anonymous, memfd or file),
 * with a dirty bitmap of one bit per 4 KiB page over max_length so that a
 * resize never has to reallocate it.
 *
 * The list's RAM notifiers live in a registry that the list and each of
 * its live blocks reference, so a block freed after mv_ramblock_remove (or
 * after its list) still tells them before its memory is unmapped.
 */
#define _GNU_SOURCE
#include "memvirt/ramblock.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "util/alloc.h"

#ifndef MAP_HUGE_2MB
#define MAP_HUGE_2MB (21 << 26)    /* log2(2 MiB) << MAP_HUGE_SHIFT */
#endif
#ifndef MFD_HUGE_2MB
#define MFD_HUGE_2MB (21 << 26)
#endif
#define HUGETLBFS_MAGIC_NR 0x958458f6

#define DIRTY_PAGE_BITS 12
#define DIRTY_PAGE_SIZE ((uint64_t)1 << DIRTY_PAGE_BITS)
#define HUGE_PAGE_SIZE ((uint64_t)2 << 20)
#define BITS_PER_WORD (sizeof(unsigned long) * CHAR_BIT)

/*
 * Registered RAM notifiers. The read lock is held from the start call to
 * the end call of one operation, so a notifier is never removed between
 * its two calls (a soft VM would keep an invalidation in progress forever).
 */
typedef struct ram_notifiers {
	const mv_allocator *alloc;
	int refcount;               /* __atomic: the list + every block created on it */
	pthread_rwlock_t lock;
	mv_ram_notifier **v;
	size_t nr, cap;
} ram_notifiers;

struct mv_ram_list {
	const mv_allocator *alloc;
	pthread_mutex_t lock;
	mv_ramblock **blocks;       /* sorted by offset */
	size_t nr, cap;
	ram_notifiers *notifiers;
};

struct mv_ramblock {
	mv_ram_list *list;          /* NULL once the list is gone */
	const mv_allocator *alloc;
	char *name;
	int refcount;               /* __atomic */
	mv_ram_backing backing;
	bool resizeable;
	bool private_map;           /* MAP_PRIVATE: dropped pages lose their contents */
	ram_notifiers *notifiers;   /* a reference, once the block is on its list */
	void *host;
	int fd;
	uint64_t used_length;       /* __atomic: read by dirty setters */
	uint64_t max_length;
	uint64_t offset;
	uint64_t page_size;
	unsigned long *dirty;       /* one bit per 4 KiB page of max_length */
};

/* ------------------------------------------------------------------ */
/* RAM notifiers                                                        */

static void notifiers_unref(ram_notifiers *ns)
{
	if (!ns || __atomic_fetch_sub(&ns->refcount, 1, __ATOMIC_ACQ_REL) != 1)
		return;
	pthread_rwlock_destroy(&ns->lock);
	mv_free(ns->alloc, ns->v);
	mv_free(ns->alloc, ns);
}

static ssize_t notifier_index(const ram_notifiers *ns, const mv_ram_notifier *n)
{
	for (size_t i = 0; i < ns->nr; i++)
		if (ns->v[i] == n)
			return (ssize_t)i;
	return -1;
}

int mv_ram_list_add_notifier(mv_ram_list *list, mv_ram_notifier *n)
{
	ram_notifiers *ns = list->notifiers;
	int ret = 0;

	pthread_rwlock_wrlock(&ns->lock);
	if (notifier_index(ns, n) >= 0)
		ret = -EEXIST;
	else if (mv_grow(ns->alloc, (void **)&ns->v, &ns->cap, ns->nr + 1, sizeof(ns->v[0])))
		ret = -ENOMEM;
	else
		ns->v[ns->nr++] = n;
	pthread_rwlock_unlock(&ns->lock);
	return ret;
}

int mv_ram_list_remove_notifier(mv_ram_list *list, mv_ram_notifier *n)
{
	ram_notifiers *ns = list->notifiers;
	ssize_t i;

	/* The write lock waits for every operation that is calling it. */
	pthread_rwlock_wrlock(&ns->lock);
	i = notifier_index(ns, n);
	if (i >= 0)
		ns->v[i] = ns->v[--ns->nr];
	pthread_rwlock_unlock(&ns->lock);
	return i >= 0 ? 0 : -ENOENT;
}

/* Tell every notifier that [offset, offset+len) of @rb is about to lose its pages. */
static void notify_begin(mv_ramblock *rb, uint64_t offset, uint64_t len)
{
	ram_notifiers *ns = rb->notifiers;

	if (!ns)
		return;
	pthread_rwlock_rdlock(&ns->lock);
	for (size_t i = 0; i < ns->nr; i++)
		ns->v[i]->invalidate(ns->v[i], rb, (uint64_t)(uintptr_t)rb->host + offset, len, true);
}

/* ... and that it has: the pair of notify_begin. */
static void notify_end(mv_ramblock *rb, uint64_t offset, uint64_t len)
{
	ram_notifiers *ns = rb->notifiers;

	if (!ns)
		return;
	for (size_t i = 0; i < ns->nr; i++)
		ns->v[i]->invalidate(ns->v[i], rb, (uint64_t)(uintptr_t)rb->host + offset, len, false);
	pthread_rwlock_unlock(&ns->lock);
}

/* ------------------------------------------------------------------ */
/* RAM list                                                             */

mv_ram_list *mv_ram_list_new(const mv_allocator *alloc)
{
	mv_ram_list *list = mv_zalloc(alloc, sizeof(*list));

	if (!list)
		return NULL;
	list->notifiers = mv_zalloc(alloc, sizeof(*list->notifiers));
	if (!list->notifiers) {
		mv_free(alloc, list);
		return NULL;
	}
	list->alloc = alloc;
	list->notifiers->alloc = alloc;
	list->notifiers->refcount = 1;
	pthread_rwlock_init(&list->notifiers->lock, NULL);
	pthread_mutex_init(&list->lock, NULL);
	return list;
}

void mv_ram_list_free(mv_ram_list *list)
{
	size_t i;

	if (!list)
		return;
	/*
	 * Blocks still alive break the documented contract; detach them
	 * rather than leave them pointing at freed memory.
	 */
	for (i = 0; i < list->nr; i++)
		list->blocks[i]->list = NULL;
	notifiers_unref(list->notifiers);
	pthread_mutex_destroy(&list->lock);
	mv_free(list->alloc, list->blocks);
	mv_free(list->alloc, list);
}

/* Index of the first block whose name is @name, or -1. Lock held. */
static ssize_t list_index_of_name(mv_ram_list *list, const char *name)
{
	size_t i;

	for (i = 0; i < list->nr; i++)
		if (!strcmp(list->blocks[i]->name, name))
			return (ssize_t)i;
	return -1;
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

/*
 * First fit: the lowest page-aligned offset with @len free bytes, and the
 * array index where a block there belongs. Lock held. -ENOSPC if the
 * 64-bit ram_addr space is exhausted.
 */
static int list_find_offset(mv_ram_list *list, uint64_t len, uint64_t *offset, size_t *pos)
{
	uint64_t cursor = 0;
	size_t i;

	for (i = 0; i < list->nr; i++) {
		const mv_ramblock *b = list->blocks[i];

		if (b->offset >= cursor && b->offset - cursor >= len)
			break;
		cursor = align_up(b->offset + b->max_length, DIRTY_PAGE_SIZE);
		if (cursor < b->offset)
			return -ENOSPC;
	}
	if (cursor + len < cursor)
		return -ENOSPC;
	*offset = cursor;
	*pos = i;
	return 0;
}

static void list_remove(mv_ram_list *list, mv_ramblock *rb)
{
	size_t i;

	for (i = 0; i < list->nr; i++) {
		if (list->blocks[i] == rb) {
			memmove(&list->blocks[i], &list->blocks[i + 1],
				(list->nr - i - 1) * sizeof(list->blocks[0]));
			list->nr--;
			return;
		}
	}
}

mv_ramblock *mv_ram_list_find(mv_ram_list *list, const char *name)
{
	mv_ramblock *rb = NULL;
	ssize_t i;

	if (!list || !name)
		return NULL;
	pthread_mutex_lock(&list->lock);
	i = list_index_of_name(list, name);
	if (i >= 0)
		rb = list->blocks[i];
	pthread_mutex_unlock(&list->lock);
	return rb;
}

/* Take a reference unless the block is already on its way out (count 0). */
static bool ramblock_tryref(mv_ramblock *rb)
{
	int old = __atomic_load_n(&rb->refcount, __ATOMIC_RELAXED);

	while (old > 0)
		if (__atomic_compare_exchange_n(&rb->refcount, &old, old + 1, false,
						__ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
			return true;
	return false;
}

/*
 * @fn runs without the list lock held (on a referenced snapshot), so it
 * may create or release blocks itself without deadlocking.
 */
int mv_ram_list_foreach(mv_ram_list *list, int (*fn)(mv_ramblock *rb, void *opaque),
			void *opaque)
{
	mv_ramblock *stack[16], **snap = stack;
	size_t i, n = 0;
	int ret = 0;

	if (!list || !fn)
		return -EINVAL;
	pthread_mutex_lock(&list->lock);
	if (list->nr > sizeof(stack) / sizeof(stack[0])) {
		snap = mv_realloc(list->alloc, NULL, list->nr * sizeof(*snap));
		if (!snap) {
			pthread_mutex_unlock(&list->lock);
			return -ENOMEM;
		}
	}
	for (i = 0; i < list->nr; i++)
		if (ramblock_tryref(list->blocks[i]))
			snap[n++] = list->blocks[i];
	pthread_mutex_unlock(&list->lock);

	for (i = 0; i < n; i++) {
		if (!ret)
			ret = fn(snap[i], opaque);
		mv_ramblock_unref(snap[i]);
	}
	if (snap != stack)
		mv_free(list->alloc, snap);
	return ret;
}

/* ------------------------------------------------------------------ */
/* Host memory                                                          */

/*
 * HugePages_Free from /proc/meminfo, or -1 when the line is missing
 * (kernel without hugetlbfs) or the file cannot be read.
 */
static long host_free_huge_pages(void)
{
	char line[256];
	long n = -1;
	FILE *f = fopen("/proc/meminfo", "re");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "HugePages_Free: %ld", &n) == 1)
			break;
	fclose(f);
	return n;
}

/*
 * Refuse hugetlb early when the pool cannot hold the block: with
 * MAP_NORESERVE the kernel would accept the mmap and the guest would
 * get SIGBUS on first touch instead of the user getting a sentence.
 */
static int hugetlb_precheck(const char *name, uint64_t len, mv_error *err)
{
	long nfree = host_free_huge_pages();

	if (nfree < 0)
		return mv_error_set(err, -ENOSPC,
				    "RAM block '%s': the host has no 2 MiB huge pages (no HugePages_Free line in /proc/meminfo)",
				    name);
	if (nfree == 0)
		return mv_error_set(err, -ENOSPC,
				    "RAM block '%s': the host has no free 2 MiB huge pages (HugePages_Free is 0 in /proc/meminfo)",
				    name);
	if ((uint64_t)nfree < len / HUGE_PAGE_SIZE)
		return mv_error_set(err, -ENOSPC,
				    "RAM block '%s': needs %" PRIu64 " free 2 MiB huge pages but the host has %ld (HugePages_Free in /proc/meminfo)",
				    name, len / HUGE_PAGE_SIZE, nfree);
	return 0;
}

/* The sentence for a failed mmap: hugetlb ENOMEM means an empty pool. */
static int mmap_error(const char *name, const mv_ramblock_opts *o, uint64_t len,
		      int e, mv_error *err)
{
	if (o->hugetlb && (e == ENOMEM || e == ENOSPC))
		return mv_error_set(err, -ENOSPC,
				    "RAM block '%s': the host has too few free 2 MiB huge pages for %" PRIu64 " bytes (HugePages_Free is %ld in /proc/meminfo)",
				    name, len, host_free_huge_pages());
	return mv_error_set(err, -e, "RAM block '%s': mmap of %" PRIu64 " bytes failed: %s",
			    name, len, strerror(e));
}

static int map_flags(const mv_ramblock_opts *o, bool shared)
{
	int flags = shared ? MAP_SHARED : MAP_PRIVATE;

	if (o->noreserve)
		flags |= MAP_NORESERVE;
	return flags;
}

static int map_anon(mv_ramblock *rb, const mv_ramblock_opts *o, mv_error *err)
{
	int flags = map_flags(o, o->backing == MV_RAM_ANON_SHARED) | MAP_ANONYMOUS;
	void *p;

	if (o->hugetlb)
		flags |= MAP_HUGETLB | MAP_HUGE_2MB;
	p = mmap(NULL, rb->max_length, PROT_READ | PROT_WRITE, flags, -1, 0);
	if (p == MAP_FAILED)
		return mmap_error(rb->name, o, rb->max_length, errno, err);
	rb->host = p;
	return 0;
}

/* Map rb->fd (already sized) with @shared semantics. */
static int map_fd(mv_ramblock *rb, const mv_ramblock_opts *o, bool shared, mv_error *err)
{
	void *p = mmap(NULL, rb->max_length, PROT_READ | PROT_WRITE, map_flags(o, shared),
		       rb->fd, 0);

	if (p == MAP_FAILED)
		return mmap_error(rb->name, o, rb->max_length, errno, err);
	rb->host = p;
	return 0;
}

static int map_memfd(mv_ramblock *rb, const mv_ramblock_opts *o, mv_error *err)
{
	unsigned flags = MFD_CLOEXEC;
	char fdname[64];
	int e;

	if (o->hugetlb)
		flags |= MFD_HUGETLB | MFD_HUGE_2MB;
	/* memfd names are for /proc/PID/fd only; keep them short */
	snprintf(fdname, sizeof(fdname), "memvirt:%s", rb->name);
	rb->fd = memfd_create(fdname, flags);
	if (rb->fd < 0) {
		e = errno;
		return mv_error_set(err, -e, "RAM block '%s': memfd_create failed: %s",
				    rb->name, strerror(e));
	}
	if (ftruncate(rb->fd, (off_t)rb->max_length) < 0) {
		e = errno;
		if (o->hugetlb && (e == ENOMEM || e == ENOSPC))
			return mmap_error(rb->name, o, rb->max_length, e, err);
		return mv_error_set(err, -e, "RAM block '%s': cannot size its memfd to %" PRIu64 " bytes: %s",
				    rb->name, rb->max_length, strerror(e));
	}
	return map_fd(rb, o, true, err);
}

static int map_file(mv_ramblock *rb, const mv_ramblock_opts *o, mv_error *err)
{
	struct statfs fs;
	struct stat st;
	int e;

	rb->fd = open(o->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (rb->fd < 0) {
		e = errno;
		return mv_error_set(err, -e, "RAM block '%s': cannot open '%s': %s",
				    rb->name, o->path, strerror(e));
	}
	/* hugetlb pages of a file come from its file system, not from a flag */
	if (o->hugetlb && (fstatfs(rb->fd, &fs) < 0 || fs.f_type != HUGETLBFS_MAGIC_NR))
		return mv_error_set(err, -EINVAL,
				    "RAM block '%s': hugetlb was asked but '%s' is not on a hugetlbfs mount",
				    rb->name, o->path);
	if (fstat(rb->fd, &st) < 0 || !S_ISREG(st.st_mode))
		return mv_error_set(err, -EINVAL, "RAM block '%s': '%s' is not a regular file",
				    rb->name, o->path);
	if ((uint64_t)st.st_size < rb->max_length && ftruncate(rb->fd, (off_t)rb->max_length) < 0) {
		e = errno;
		return mv_error_set(err, -e, "RAM block '%s': cannot extend '%s' to %" PRIu64 " bytes: %s",
				    rb->name, o->path, rb->max_length, strerror(e));
	}
	return map_fd(rb, o, !o->private_file, err);
}

static int map_host(mv_ramblock *rb, const mv_ramblock_opts *o, mv_error *err)
{
	int ret;

	if (o->hugetlb && o->backing != MV_RAM_FILE) {
		ret = hugetlb_precheck(rb->name, rb->max_length, err);
		if (ret)
			return ret;
	}
	switch (o->backing) {
	case MV_RAM_ANON_PRIVATE:
	case MV_RAM_ANON_SHARED:
		ret = map_anon(rb, o, err);
		break;
	case MV_RAM_MEMFD:
		ret = map_memfd(rb, o, err);
		break;
	default:
		ret = map_file(rb, o, err);
		break;
	}
	/* THP is a hint: a kernel with THP off refuses it, and that is fine */
	if (!ret && o->thp && !o->hugetlb)
		(void)madvise(rb->host, rb->max_length, MADV_HUGEPAGE);
	return ret;
}

/* ------------------------------------------------------------------ */
/* Creation and lifetime                                                */

static uint64_t host_page_size(void)
{
	long ps = sysconf(_SC_PAGESIZE);

	return ps > (long)DIRTY_PAGE_SIZE ? (uint64_t)ps : DIRTY_PAGE_SIZE;
}

static const char *backing_ok(const mv_ramblock_opts *o)
{
	if ((unsigned)o->backing > MV_RAM_FILE)
		return "unknown backing";
	if (o->backing == MV_RAM_FILE && (!o->path || !o->path[0]))
		return "file backing needs a path";
	if (o->backing != MV_RAM_FILE && o->path)
		return "a path is only used with file backing";
	if (o->backing != MV_RAM_FILE && o->private_file)
		return "private_file is only used with file backing";
	if (o->hugetlb && o->thp)
		return "hugetlb and THP exclude each other";
	return NULL;
}

/* Check sizes and options; fills *page and *max. */
static int check_opts(const char *name, uint64_t size, const mv_ramblock_opts *o,
		      uint64_t *page, uint64_t *max, mv_error *err)
{
	const char *why = backing_ok(o);

	if (why)
		return mv_error_set(err, -EINVAL, "RAM block '%s': %s.", name, why);
	*page = o->hugetlb ? HUGE_PAGE_SIZE : host_page_size();
	*max = o->max_length ? o->max_length : size;
	if (!size || size % *page)
		return mv_error_set(err, -EINVAL,
				    "RAM block '%s': size %" PRIu64 " is not a positive multiple of the %" PRIu64 " KiB page size",
				    name, size, *page >> 10);
	if (!o->resizeable && *max != size)
		return mv_error_set(err, -EINVAL,
				    "RAM block '%s': max_length %" PRIu64 " differs from size %" PRIu64 " but the block is not resizeable",
				    name, *max, size);
	if (*max < size || *max % *page)
		return mv_error_set(err, -EINVAL,
				    "RAM block '%s': max_length %" PRIu64 " must be a multiple of the page size and at least the size %" PRIu64,
				    name, *max, size);
	if (*max > (uint64_t)SIZE_MAX / 2)
		return mv_error_set(err, -EINVAL, "RAM block '%s': max_length %" PRIu64 " is too large",
				    name, *max);
	return 0;
}

/* Free a block that never made it (or no longer is) on the list. */
static void ramblock_destroy(mv_ramblock *rb)
{
	if (rb->host) {
		notify_begin(rb, 0, rb->max_length);
		munmap(rb->host, rb->max_length);
		notify_end(rb, 0, rb->max_length);
	}
	notifiers_unref(rb->notifiers);
	if (rb->fd >= 0)
		close(rb->fd);
	mv_free(rb->alloc, rb->dirty);
	mv_free(rb->alloc, rb->name);
	mv_free(rb->alloc, rb);
}

/* Allocate the block and its bitmap (not mapped, not listed). */
static int ramblock_alloc(mv_ram_list *list, const char *name, uint64_t size,
			  uint64_t max, mv_ramblock **out, mv_error *err)
{
	uint64_t pages = max >> DIRTY_PAGE_BITS;
	size_t words = (pages + BITS_PER_WORD - 1) / BITS_PER_WORD;
	mv_ramblock *rb = mv_zalloc(list->alloc, sizeof(*rb));

	if (!rb)
		goto nomem;
	rb->alloc = list->alloc;
	rb->fd = -1;
	rb->name = mv_strdup(list->alloc, name);
	rb->dirty = mv_zalloc(list->alloc, words * sizeof(unsigned long));
	if (!rb->name || !rb->dirty) {
		ramblock_destroy(rb);
		goto nomem;
	}
	rb->used_length = size;
	rb->max_length = max;
	rb->refcount = 1;
	*out = rb;
	return 0;
nomem:
	return mv_error_set(err, -ENOMEM, "RAM block '%s': out of memory for its bookkeeping", name);
}

/* Under the list lock: unique name, room in the array, an offset, a mapping. */
static int ramblock_insert(mv_ram_list *list, mv_ramblock *rb, const mv_ramblock_opts *o,
			   mv_error *err)
{
	size_t pos;
	int ret;

	if (list_index_of_name(list, rb->name) >= 0)
		return mv_error_set(err, -EEXIST, "RAM block '%s' already exists in this RAM list",
				    rb->name);
	if (mv_grow(list->alloc, (void **)&list->blocks, &list->cap, list->nr + 1,
		    sizeof(list->blocks[0])))
		return mv_error_set(err, -ENOMEM, "RAM block '%s': out of memory for the RAM list",
				    rb->name);
	if (list_find_offset(list, rb->max_length, &rb->offset, &pos))
		return mv_error_set(err, -ENOSPC, "RAM block '%s': no room left in the ram_addr space",
				    rb->name);
	ret = map_host(rb, o, err);
	if (ret)
		return ret;
	memmove(&list->blocks[pos + 1], &list->blocks[pos],
		(list->nr - pos) * sizeof(list->blocks[0]));
	list->blocks[pos] = rb;
	list->nr++;
	rb->list = list;
	rb->notifiers = list->notifiers;
	__atomic_fetch_add(&rb->notifiers->refcount, 1, __ATOMIC_RELAXED);
	return 0;
}

int mv_ramblock_new(mv_ram_list *list, const char *name, uint64_t size,
		    const mv_ramblock_opts *opts, mv_ramblock **out, mv_error *err)
{
	static const mv_ramblock_opts defaults;
	uint64_t page = 0, max = 0;
	mv_ramblock *rb = NULL;
	int ret;

	if (!list || !out)
		return mv_error_set(err, -EINVAL, "RAM block: no RAM list or result pointer given");
	if (!name || !name[0])
		return mv_error_set(err, -EINVAL, "RAM block: a block needs a non-empty name");
	if (!opts)
		opts = &defaults;
	ret = check_opts(name, size, opts, &page, &max, err);
	if (ret)
		return ret;
	ret = ramblock_alloc(list, name, size, max, &rb, err);
	if (ret)
		return ret;
	rb->backing = opts->backing;
	rb->private_map = opts->backing == MV_RAM_ANON_PRIVATE ||
			  (opts->backing == MV_RAM_FILE && opts->private_file);
	rb->resizeable = opts->resizeable;
	rb->page_size = page;

	pthread_mutex_lock(&list->lock);
	ret = ramblock_insert(list, rb, opts, err);
	pthread_mutex_unlock(&list->lock);
	if (ret) {
		ramblock_destroy(rb);
		return ret;
	}
	*out = rb;
	return 0;
}

void mv_ramblock_ref(mv_ramblock *rb)
{
	__atomic_fetch_add(&rb->refcount, 1, __ATOMIC_RELAXED);
}

void mv_ramblock_remove(mv_ramblock *rb)
{
	mv_ram_list *list = rb ? rb->list : NULL;

	if (!list)
		return;
	pthread_mutex_lock(&list->lock);
	list_remove(list, rb);
	rb->list = NULL;
	pthread_mutex_unlock(&list->lock);
}

void mv_ramblock_unref(mv_ramblock *rb)
{
	mv_ram_list *list;

	if (!rb || __atomic_fetch_sub(&rb->refcount, 1, __ATOMIC_ACQ_REL) != 1)
		return;
	list = rb->list;
	if (list) {
		pthread_mutex_lock(&list->lock);
		list_remove(list, rb);
		pthread_mutex_unlock(&list->lock);
	}
	ramblock_destroy(rb);
}

/* ------------------------------------------------------------------ */
/* Queries                                                              */

const char *mv_ramblock_name(const mv_ramblock *rb)
{
	return rb->name;
}

void *mv_ramblock_host(const mv_ramblock *rb)
{
	return rb->host;
}

uint64_t mv_ramblock_used_length(const mv_ramblock *rb)
{
	return __atomic_load_n(&rb->used_length, __ATOMIC_ACQUIRE);
}

uint64_t mv_ramblock_max_length(const mv_ramblock *rb)
{
	return rb->max_length;
}

uint64_t mv_ramblock_offset(const mv_ramblock *rb)
{
	return rb->offset;
}

int mv_ramblock_fd(const mv_ramblock *rb)
{
	return rb->fd;
}

uint64_t mv_ramblock_page_size(const mv_ramblock *rb)
{
	return rb->page_size;
}

/* ------------------------------------------------------------------ */
/* Dirty bitmap                                                         */

/* Clamp [offset, offset+len) to used_length; false when nothing is left. */
static bool page_span(const mv_ramblock *rb, uint64_t offset, uint64_t len,
		      uint64_t *first, uint64_t *end)
{
	uint64_t used = mv_ramblock_used_length(rb);
	uint64_t last;

	if (!len || offset >= used)
		return false;
	last = len > used - offset ? used - 1 : offset + len - 1;
	*first = offset >> DIRTY_PAGE_BITS;
	*end = (last >> DIRTY_PAGE_BITS) + 1;
	return true;
}

/* Mask of bits [from, to) inside one word (0 <= from < to <= BITS_PER_WORD). */
static unsigned long word_mask(unsigned from, unsigned to)
{
	unsigned long m = ~0UL << from;

	if (to < BITS_PER_WORD)
		m &= (1UL << to) - 1;
	return m;
}

/* Set or clear the bits of pages [first, end) atomically, a word at a time. */
static void bits_update(unsigned long *map, uint64_t first, uint64_t end, bool set)
{
	while (first < end) {
		uint64_t w = first / BITS_PER_WORD;
		unsigned from = first % BITS_PER_WORD;
		unsigned to = end - w * BITS_PER_WORD < BITS_PER_WORD ?
			      (unsigned)(end - w * BITS_PER_WORD) : BITS_PER_WORD;
		unsigned long m = word_mask(from, to);

		if (set)
			__atomic_fetch_or(&map[w], m, __ATOMIC_RELAXED);
		else
			__atomic_fetch_and(&map[w], ~m, __ATOMIC_RELAXED);
		first = w * BITS_PER_WORD + to;
	}
}

void mv_ramblock_set_dirty(mv_ramblock *rb, uint64_t offset, uint64_t len)
{
	uint64_t first, end;

	if (page_span(rb, offset, len, &first, &end))
		bits_update(rb->dirty, first, end, true);
}

int mv_ramblock_zero(mv_ramblock *rb, uint64_t offset, uint64_t len)
{
	uint8_t *p = (uint8_t *)rb->host + offset;
	uint64_t head, body;

	if (offset > mv_ramblock_used_length(rb) || len > mv_ramblock_used_length(rb) - offset)
		return -EINVAL;
	head = len;
	body = 0;
	/* Only private anonymous memory reads as zeroes after MADV_DONTNEED. */
	if (rb->backing == MV_RAM_ANON_PRIVATE && rb->page_size == DIRTY_PAGE_SIZE) {
		uint64_t start = (offset + DIRTY_PAGE_SIZE - 1) & ~(uint64_t)(DIRTY_PAGE_SIZE - 1);
		uint64_t end = (offset + len) & ~(uint64_t)(DIRTY_PAGE_SIZE - 1);

		if (end > start) {
			int r;

			notify_begin(rb, start, end - start);
			r = madvise((uint8_t *)rb->host + start, end - start, MADV_DONTNEED);
			notify_end(rb, start, end - start);
			if (!r) {
				head = start - offset;
				body = end - start;
			}
		}
	}
	memset(p, 0, head);
	memset(p + head + body, 0, len - head - body);
	mv_ramblock_set_dirty(rb, offset, len);
	return 0;
}

bool mv_ramblock_test_dirty(const mv_ramblock *rb, uint64_t offset)
{
	uint64_t page = offset >> DIRTY_PAGE_BITS;
	unsigned long w;

	if (offset >= mv_ramblock_used_length(rb))
		return false;
	w = __atomic_load_n(&rb->dirty[page / BITS_PER_WORD], __ATOMIC_RELAXED);
	return (w >> (page % BITS_PER_WORD)) & 1;
}

uint64_t mv_ramblock_take_dirty(mv_ramblock *rb, uint64_t offset, uint64_t len,
				unsigned long *bitmap)
{
	uint64_t first, end, p, count = 0;

	if (!page_span(rb, offset, len, &first, &end))
		return 0;
	memset(bitmap, 0, ((end - first + BITS_PER_WORD - 1) / BITS_PER_WORD) * sizeof(*bitmap));
	for (p = first; p < end;) {
		uint64_t w = p / BITS_PER_WORD;
		unsigned from = p % BITS_PER_WORD;
		unsigned to = end - w * BITS_PER_WORD < BITS_PER_WORD ?
			      (unsigned)(end - w * BITS_PER_WORD) : BITS_PER_WORD;
		unsigned long m = word_mask(from, to);
		unsigned long got = __atomic_fetch_and(&rb->dirty[w], ~m, __ATOMIC_ACQ_REL) & m;

		count += (uint64_t)__builtin_popcountl(got);
		while (got) {
			uint64_t bit = w * BITS_PER_WORD + (unsigned)__builtin_ctzl(got) - first;

			bitmap[bit / BITS_PER_WORD] |= 1UL << (bit % BITS_PER_WORD);
			got &= got - 1;
		}
		p = w * BITS_PER_WORD + to;
	}
	return count;
}

/* ------------------------------------------------------------------ */
/* Resize                                                               */

/*
 * Give the bytes [from, to) back to the host so that a later grow reads
 * zeros: fd-backed memory needs a hole punched in the file, shared
 * anonymous memory MADV_REMOVE (it lives in shmem), private memory
 * MADV_DONTNEED. A file mapped privately gets both.
 */
static void discard_range(mv_ramblock *rb, uint64_t from, uint64_t to)
{
	char *p = (char *)rb->host + from;
	size_t len = to - from;

	if (rb->fd >= 0)
		(void)fallocate(rb->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				(off_t)from, (off_t)len);
	if (rb->backing == MV_RAM_ANON_SHARED && !madvise(p, len, MADV_REMOVE))
		return;
	(void)madvise(p, len, MADV_DONTNEED);
}

/*
 * As QEMU's qemu_ram_resize, the whole new used range becomes dirty, so
 * that migration resends a block whose size changed.
 */
int mv_ramblock_resize(mv_ramblock *rb, uint64_t new_size, mv_error *err)
{
	uint64_t old;

	if (!rb)
		return mv_error_set(err, -EINVAL, "RAM block resize: no block given");
	if (!rb->resizeable)
		return mv_error_set(err, -EINVAL, "RAM block '%s' is not resizeable", rb->name);
	if (!new_size || new_size % rb->page_size || new_size > rb->max_length)
		return mv_error_set(err, -EINVAL,
				    "RAM block '%s': new size %" PRIu64 " must be a positive multiple of %" PRIu64 " bytes up to its max_length %" PRIu64,
				    rb->name, new_size, rb->page_size, rb->max_length);
	old = mv_ramblock_used_length(rb);
	if (new_size == old)
		return 0;
	if (new_size < old) {
		notify_begin(rb, new_size, old - new_size);
		discard_range(rb, new_size, old);
		notify_end(rb, new_size, old - new_size);
		bits_update(rb->dirty, new_size >> DIRTY_PAGE_BITS, old >> DIRTY_PAGE_BITS, false);
	}
	__atomic_store_n(&rb->used_length, new_size, __ATOMIC_RELEASE);
	bits_update(rb->dirty, 0, new_size >> DIRTY_PAGE_BITS, true);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Discard                                                              */

int mv_ramblock_discard(mv_ramblock *rb, uint64_t offset, uint64_t len)
{
	uint64_t used = mv_ramblock_used_length(rb);
	int ret = 0;

	if (offset % rb->page_size || len % rb->page_size || offset > used || len > used - offset)
		return -EINVAL;
	if (!len)
		return 0;
	notify_begin(rb, offset, len);
	if (madvise((uint8_t *)rb->host + offset, len, MADV_DONTNEED))
		ret = -errno;
	notify_end(rb, offset, len);
	/* Shared memory keeps its data: only this mapping's page-table entries went. */
	if (!ret && rb->private_map)
		mv_ramblock_set_dirty(rb, offset, len);
	return ret;
}
