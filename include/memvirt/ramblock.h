/*
 * RAM blocks: the host memory that backs guest RAM (QEMU's RAMBlock).
 *
 * A block is an mmap'ed host range (its HVA) of @max_length bytes, of which
 * @used_length bytes are in use (resizeable blocks can grow up to max).
 * Every block lives on one RAM list, which gives it a ram_addr offset
 * (QEMU's ram_addr_t: blocks are laid end to end, page aligned, in one
 * offset space, as the migration stream later addresses them).
 * Every block carries a dirty bitmap, one bit per 4 KiB page, for
 * migration and dirty-log clients.
 *
 * Lifetime: reference counted. A RAM region holds a reference, so guest
 * memory stays mapped while any published FlatView can still reach it.
 * Thread safety: the RAM list is protected by its own mutex; ref/unref are
 * atomic; dirty bits are set atomically.
 */
#ifndef MEMVIRT_RAMBLOCK_H
#define MEMVIRT_RAMBLOCK_H

#include "memvirt/base.h"

typedef struct mv_ram_list mv_ram_list;
typedef struct mv_ramblock mv_ramblock;

/* Backing of a block. */
typedef enum mv_ram_backing {
	MV_RAM_ANON_PRIVATE,   /* mmap(MAP_PRIVATE|MAP_ANONYMOUS) */
	MV_RAM_ANON_SHARED,    /* mmap(MAP_SHARED|MAP_ANONYMOUS) */
	MV_RAM_MEMFD,          /* memfd_create + MAP_SHARED: fd shareable with another process */
	MV_RAM_FILE,           /* a file at @path, MAP_SHARED (or MAP_PRIVATE if @private_file) */
} mv_ram_backing;

/* Options of mv_ramblock_new. Zero-initialise, then set what you need. */
typedef struct mv_ramblock_opts {
	mv_ram_backing backing;
	const char *path;      /* MV_RAM_FILE: file to map (created/extended to max_length) */
	bool private_file;     /* MV_RAM_FILE: MAP_PRIVATE instead of MAP_SHARED */
	bool noreserve;        /* MAP_NORESERVE: no swap reservation */
	bool thp;              /* madvise(MADV_HUGEPAGE) */
	bool hugetlb;          /* MAP_HUGETLB / MFD_HUGETLB (2 MiB pages); sizes must be 2 MiB multiples */
	bool resizeable;       /* may grow/shrink with mv_ramblock_resize up to max_length */
	uint64_t max_length;   /* resizeable: maximum size in bytes (0 = same as size) */
} mv_ramblock_opts;

/* Create an empty RAM list. @alloc may be NULL (libc). Returns NULL on ENOMEM. */
mv_ram_list *mv_ram_list_new(const mv_allocator *alloc);
/* Free the list; every block must already have been released. */
void mv_ram_list_free(mv_ram_list *list);

/*
 * Create a block named @name (the id-string, unique in the list) of @size
 * bytes (> 0, multiple of 4 KiB; of 2 MiB with hugetlb) and insert it in the
 * list at the lowest free page-aligned ram_addr offset that fits max_length.
 * On success *out holds one reference. Errors (sentence in @err):
 * -EINVAL bad size/options, -EEXIST duplicate name, -ENOMEM, -ENOSPC when
 * the host has no free huge pages, or the errno of mmap/memfd/open.
 */
int mv_ramblock_new(mv_ram_list *list, const char *name, uint64_t size,
		    const mv_ramblock_opts *opts, mv_ramblock **out, mv_error *err);

void mv_ramblock_ref(mv_ramblock *rb);
/* Drop a reference; the last one unmaps the memory and leaves the list. */
void mv_ramblock_unref(mv_ramblock *rb);
/*
 * Take the block off its RAM list now (QEMU's qemu_ram_free): its name is
 * free again and list walks no longer see it, while the memory stays
 * mapped until the last reference (e.g. an old FlatView's) is dropped.
 * The caller must hold a reference. Idempotent.
 */
void mv_ramblock_remove(mv_ramblock *rb);

const char *mv_ramblock_name(const mv_ramblock *rb);
/* Host address (HVA) of byte 0 of the block. Valid while a reference is held. */
void *mv_ramblock_host(const mv_ramblock *rb);
uint64_t mv_ramblock_used_length(const mv_ramblock *rb);
uint64_t mv_ramblock_max_length(const mv_ramblock *rb);
/* Offset of the block in the RAM list's ram_addr space. */
uint64_t mv_ramblock_offset(const mv_ramblock *rb);
/* memfd / file descriptor of the block, or -1 for anonymous memory. */
int mv_ramblock_fd(const mv_ramblock *rb);
/* Host page size backing the block (4 KiB, or 2 MiB with hugetlb). */
uint64_t mv_ramblock_page_size(const mv_ramblock *rb);

/*
 * Change used_length of a resizeable block to @new_size (multiple of the
 * page size, <= max_length). Bytes past the new end are discarded
 * (MADV_DONTNEED; the RAM notifiers run around it) when shrinking. -EINVAL
 * if not resizeable or out of range.
 * The RAM region that shows the block must be resized by the caller
 * (mv_ram_region_resize does both). As QEMU's qemu_ram_resize, the whole
 * new used range is then marked dirty so that migration resends it.
 */
int mv_ramblock_resize(mv_ramblock *rb, uint64_t new_size, mv_error *err);

/*
 * Make [offset, offset+len) of the block read as zeroes and mark it dirty.
 * Whole pages of an anonymous private block are dropped (MADV_DONTNEED:
 * zero-filled on the next touch; the RAM notifiers run around it), so a
 * guest image's bss does not make untouched pages resident; other bytes
 * are cleared. -EINVAL when the range is not inside used_length.
 */
int mv_ramblock_zero(mv_ramblock *rb, uint64_t offset, uint64_t len);

/*
 * Drop the host pages of [offset, offset+len) of the block (QEMU's
 * ram_block_discard_range; virtio-balloon, free page reporting, postcopy).
 * What the range reads afterwards depends on the backing:
 *   - MV_RAM_ANON_PRIVATE: zeroes (MADV_DONTNEED);
 *   - MV_RAM_FILE with private_file: the file's contents again (the
 *     private copies are dropped with MADV_DONTNEED);
 *   - MV_RAM_ANON_SHARED, MV_RAM_MEMFD, shared MV_RAM_FILE: the same data
 *     (MADV_DONTNEED only drops this mapping's page-table entries; the
 *     pages stay in the shared object and are found again on the next
 *     touch).
 * Either way every mapping of the range is invalidated first (the RAM
 * list's notifiers run around the discard), and the range is marked dirty
 * when its contents changed. @offset and @len must be multiples of the
 * block's page size and inside used_length (-EINVAL); else the errno of
 * madvise.
 */
int mv_ramblock_discard(mv_ramblock *rb, uint64_t offset, uint64_t len);

/*
 * RAM notifiers: the hook an accelerator with its own page tables over
 * guest RAM (the soft KVM's stage 2 / EPT) needs where the kernel would
 * send a real KVM an MMU notifier. Every operation of this file that drops
 * or replaces host pages of a block calls each notifier of the block's RAM
 * list twice: with @start true before the pages go, with @start false
 * after. The operations: mv_ramblock_zero (pages dropped with
 * MADV_DONTNEED), mv_ramblock_resize (the discarded tail when shrinking),
 * mv_ramblock_discard, and freeing a block (its whole mapping, before the
 * munmap; for a block taken off its list with mv_ramblock_remove too).
 *
 * @hva / @len is the host range concerned (page aligned). During a free,
 * @rb is only good for mv_ramblock_name / mv_ramblock_host. Callbacks run
 * on the thread doing the operation (for a free, whoever drops the last
 * reference, e.g. an RCU thread releasing an old FlatView), possibly
 * concurrently with each other; they must not add or remove notifiers.
 * The notifier is owned by the caller (embed it in your own structure).
 */
typedef struct mv_ram_notifier mv_ram_notifier;
struct mv_ram_notifier {
	void (*invalidate)(mv_ram_notifier *n, mv_ramblock *rb, uint64_t hva, uint64_t len,
			   bool start);
};
/* Register @n on @list: 0, -EEXIST already registered, -ENOMEM. */
int mv_ram_list_add_notifier(mv_ram_list *list, mv_ram_notifier *n);
/*
 * Unregister @n: 0 or -ENOENT. When it returns, no callback of @n is
 * running or will run. Call it before the list is freed.
 */
int mv_ram_list_remove_notifier(mv_ram_list *list, mv_ram_notifier *n);

/* Dirty bitmap: one bit per 4 KiB page of used_length, cleared at creation. */
void mv_ramblock_set_dirty(mv_ramblock *rb, uint64_t offset, uint64_t len);
bool mv_ramblock_test_dirty(const mv_ramblock *rb, uint64_t offset);
/*
 * Atomically fetch-and-clear the dirty bits of [offset, offset+len) into
 * @bitmap (bit i = page offset/4096 + i; unsigned long words, LSB first).
 * Returns the number of dirty pages found.
 */
uint64_t mv_ramblock_take_dirty(mv_ramblock *rb, uint64_t offset, uint64_t len,
				unsigned long *bitmap);

/* Iterate the list in ram_addr order; @fn returns non-zero to stop. */
int mv_ram_list_foreach(mv_ram_list *list, int (*fn)(mv_ramblock *rb, void *opaque),
			void *opaque);
/* Find a block by name, or NULL (no reference taken). */
mv_ramblock *mv_ram_list_find(mv_ram_list *list, const char *name);

#endif
