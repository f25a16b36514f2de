/*
 * The generic page-table walker of the software MMU (after Linux's
 * arch/arm64/kvm/hyp/pgtable.c): one walk over a radix table, visitor
 * callbacks chosen by flags (leaf, table-pre, table-post), a context per
 * visited entry, and an mm_ops table that says how table memory is
 * allocated, refcounted and reached. The same walker serves ARMv8 stage-2,
 * x86 EPT, guest stage-1 tables (whose "physical" addresses are IPAs read
 * through stage-2) and tests.
 *
 * Levels use the ARM numbering: the leaf level is @last_level (3), each
 * level above it resolves (granule_shift - 3) more bits, and the start
 * level may be -1 (5-level EPT / LPA2) .. 3. The start level may hold up to
 * 16 concatenated tables (ARMv8 stage-2), i.e. more than one granule of
 * entries.
 *
 * Entries are 64-bit and are read and written with atomics: a walk with
 * MV_PGT_WALK_SHARED may run concurrently with other shared walks (callers
 * hold the VM's mmu_lock for reading and update entries only with
 * mv_pgt_ctx_try_set); any other walk needs the lock for writing.
 *
 * Refcounting (as Linux): a table page's count is 1 + the number of
 * non-zero entries in it. Visitors that install or clear entries get/put
 * the containing page; a table whose count drops to 1 is empty and is
 * freed by the table-post visitor of the operation that emptied it.
 */
#ifndef MEMVIRT_SOFT_PGTABLE_H
#define MEMVIRT_SOFT_PGTABLE_H

#include "memvirt/base.h"

#include <stddef.h>
#include <stdint.h>

typedef uint64_t mv_pte;

/* Outcome of a walk or of one visitor (explicit, no errno). */
typedef enum mv_pgt_result {
	MV_PGT_OK = 0,
	MV_PGT_AGAIN,    /* lost a race (entry changed or locked under us): retry */
	MV_PGT_NOMEM,    /* mm_ops could not allocate a table page */
	MV_PGT_RANGE,    /* the range is outside the table's input address size */
	MV_PGT_EXISTS,   /* the entry already holds a different valid mapping */
	MV_PGT_NOENT,    /* no leaf where one was required */
	MV_PGT_FAULT,    /* mm_ops could not reach a table (phys_to_virt gave NULL) */
	MV_PGT_STOP,     /* a visitor ended the walk on purpose; not an error */
} mv_pgt_result;

/* Human-readable name of a result ("ok", "again", ...). */
const char *mv_pgt_result_name(mv_pgt_result r);

/*
 * How table memory is managed. Table addresses inside descriptors are
 * "physical" addresses; phys_to_virt / virt_to_phys convert (identity for
 * the software stage-2, whose PA is the HVA; an IPA -> HVA lookup for
 * guest stage-1 tables). @arg is the pgt's mm_arg.
 */
typedef struct mv_pgt_mm_ops {
	/* One zeroed granule; page count 1. NULL = no memory. */
	void *(*zalloc_page)(void *arg, size_t granule);
	/* @size bytes (a multiple of the granule), zeroed, for concatenated roots. */
	void *(*zalloc_pages_exact)(void *arg, size_t size);
	void (*free_pages_exact)(void *arg, void *va, size_t size);
	void (*get_page)(void *arg, void *va);
	/* Drop one reference of the page holding @va; frees it at zero. */
	void (*put_page)(void *arg, void *va);
	int (*page_count)(void *arg, void *va);
	/* NULL when @pa is unreachable: the walk ends with MV_PGT_FAULT. */
	void *(*phys_to_virt)(void *arg, uint64_t pa);
	uint64_t (*virt_to_phys)(void *arg, void *va);
} mv_pgt_mm_ops;

/* Per-format descriptor decoding the walker needs. */
typedef struct mv_pgt_format {
	const char *name;
	/* Does @pte point to a next-level table (never true at the last level)? */
	bool (*is_table)(mv_pte pte, int level);
	/* Does @pte map something or point to a table? */
	bool (*is_valid)(mv_pte pte);
	/* Physical address of the table @pte points to. */
	uint64_t (*table_pa)(mv_pte pte);
} mv_pgt_format;

/* One table. Filled by the format's init function (or by hand in tests). */
typedef struct mv_pgt {
	const mv_pgt_format *fmt;
	const mv_pgt_mm_ops *mm_ops;
	void *mm_arg;
	unsigned ia_bits;        /* input address size in bits */
	unsigned granule_shift;  /* 12, 14 or 16 */
	int start_level;         /* -1 .. last_level */
	int last_level;          /* 3 */
	uint64_t root_pa;        /* start-level table(s) */
} mv_pgt;

/* Bits of input address below level @level's entries (12 + 9*(3-level) for 4 KiB). */
unsigned mv_pgt_level_shift(const mv_pgt *pgt, int level);
/* Bytes covered by one entry at @level. */
uint64_t mv_pgt_level_size(const mv_pgt *pgt, int level);
/* Entries in one table at @level (the start level: all concatenated tables). */
uint64_t mv_pgt_level_entries(const mv_pgt *pgt, int level);
/* Number of concatenated start-level tables (1..16). */
unsigned mv_pgt_root_pages(const mv_pgt *pgt);

/* Which visits a walker wants, plus walk options. */
enum {
	MV_PGT_VISIT_LEAF = 1u << 0,       /* every non-table entry, invalid ones included */
	MV_PGT_VISIT_TABLE_PRE = 1u << 1,  /* a table entry, before descending */
	MV_PGT_VISIT_TABLE_POST = 1u << 2, /* a table entry, after its subtree */
	MV_PGT_WALK_SHARED = 1u << 8,      /* concurrent with other shared walks */
};
typedef unsigned mv_pgt_visit;

/* What a visitor sees. */
typedef struct mv_pgt_ctx {
	mv_pgt *pgt;
	mv_pte *ptep;         /* the entry, in table memory */
	mv_pte old;           /* its value when the visit started */
	uint64_t start;       /* start of the walked range */
	uint64_t addr;        /* input address this visit covers from (>= start) */
	uint64_t end;         /* end of the walked range (exclusive) */
	int level;
	unsigned flags;       /* the walker's flags */
	void *arg;            /* the walker's arg */
} mv_pgt_ctx;

/*
 * A visitor. After a LEAF visit the walker re-reads the entry and descends
 * if it has become a table (how map visitors create tables); after a
 * TABLE_PRE visit likewise (the entry may have been replaced). Anything
 * but MV_PGT_OK ends the walk with that result.
 */
typedef mv_pgt_result (*mv_pgt_visitor_fn)(const mv_pgt_ctx *ctx, mv_pgt_visit visit);

typedef struct mv_pgt_walker {
	mv_pgt_visitor_fn cb;
	void *arg;
	unsigned flags;       /* MV_PGT_VISIT_* | MV_PGT_WALK_* */
} mv_pgt_walker;

/*
 * Walk [addr, addr + size) of @pgt, widened to whole granules (ctx->start
 * and ctx->end are granule aligned; size 0 walks nothing). Returns
 * MV_PGT_OK, MV_PGT_RANGE when the range exceeds ia_bits or the geometry
 * is not one the walker serves (granule 12/14/16 bits, last_level 3, start
 * level -1..3 resolving 1 .. stride + 4 bits), MV_PGT_FAULT when a table
 * is unreachable, or the first non-OK visitor result (MV_PGT_STOP
 * included, for callers that stop early on purpose).
 */
mv_pgt_result mv_pgt_walk(mv_pgt *pgt, uint64_t addr, uint64_t size, const mv_pgt_walker *w);

/*
 * Atomically replace ctx->old by @new in *ctx->ptep: a compare-and-swap for
 * shared walks (false when the entry changed since the visit started), a
 * plain atomic store otherwise (always true).
 */
bool mv_pgt_ctx_try_set(const mv_pgt_ctx *ctx, mv_pte new);
/* Atomic read of an entry. */
mv_pte mv_pgt_read(const mv_pte *ptep);
/* Virtual address of the table @pte points to (via mm_ops). NULL if unreachable. */
mv_pte *mv_pgt_ctx_table(const mv_pgt_ctx *ctx, mv_pte pte);

/*
 * The leaf covering @addr: its value (0 when the walk ends at an invalid
 * entry) and level. Returns MV_PGT_OK, MV_PGT_RANGE or MV_PGT_FAULT.
 */
mv_pgt_result mv_pgt_get_leaf(mv_pgt *pgt, uint64_t addr, mv_pte *pte, int *level);

/*
 * Allocate a zeroed root of mv_pgt_root_pages() granules with
 * mm_ops->zalloc_pages_exact and set root_pa. Returns 0, -ENOMEM, or
 * -EINVAL when the geometry (granule, levels, ia_bits) is not one the
 * walker serves.
 */
int mv_pgt_alloc_root(mv_pgt *pgt);
/*
 * Free an unlinked table at @level and every table below it: one put_page
 * per non-zero entry, then the table's own reference (so correct counts
 * free every page). Call it after the TLBs forgot the table.
 */
void mv_pgt_free_table(mv_pgt *pgt, mv_pte *table, int level);
/* Free every table below the root, then the root (no TLB maintenance). */
void mv_pgt_destroy(mv_pgt *pgt);

/*
 * A pool of host table pages: the default mm_ops for software stage-2 and
 * EPT (table PA = HVA). Allocations go through @alloc (inject failures in
 * tests); it counts live pages so tests can check that unmapping everything
 * frees every table. Thread-safe.
 */
typedef struct mv_pgt_pool mv_pgt_pool;
int mv_pgt_pool_new(const mv_allocator *alloc, mv_pgt_pool **out);
/* Free the pool and any page still allocated from it. NULL is a no-op. */
void mv_pgt_pool_free(mv_pgt_pool *pool);
/*
 * Memory currently allocated, in 4 KiB units: granules for a 4 KiB granule
 * (a concatenated root counts its granules); a 16 KiB / 64 KiB table page
 * counts 4 / 16. (The pool cannot know the granule of a zalloc_pages_exact
 * block, hence the fixed unit.)
 */
size_t mv_pgt_pool_live_pages(const mv_pgt_pool *pool);
/*
 * The pool's mm_ops; use the pool itself as mm_arg. Pages are aligned to
 * their size (zalloc_page: the granule; zalloc_pages_exact: the largest
 * power of two dividing the size, as concatenated stage-2 roots need) and
 * a page's count covers the whole block (a concatenated root has one).
 * get_page / put_page / page_count accept any address inside a block.
 */
const mv_pgt_mm_ops *mv_pgt_pool_mm_ops(void);

/* ---- Iterator (after Linux's arch/x86/kvm/mmu/tdp_iter.[ch]) ---- */

/*
 * A table iterator separates walking from policy: the caller loops over
 * entries and decides what to do with each, while the iterator keeps the
 * path of tables from the root down to the current entry. Stepping to the
 * next entry, or seeking to another address, reads only the tables below
 * the lowest table on the path that covers the target: within the current
 * last-level table it costs an index, not a walk from the root.
 *
 * Order: mv_pgt_iter_start then mv_pgt_iter_next give every entry that
 * overlaps [start, end) in the order of mv_pgt_walk with
 * MV_PGT_VISIT_TABLE_PRE | MV_PGT_VISIT_LEAF (a table entry, then the
 * entries of its table), stepping into tables only above @min_level.
 * Works for any format (stage 2, EPT, tests), concatenated roots and
 * levels -1..3 included.
 *
 * Entries are read atomically. Stepping down re-reads the current entry,
 * so an entry the caller turned into a table (a split) is descended into
 * and a table entry it cleared is not. The path holds pointers to table
 * pages: it stays valid while no table on it is freed, so callers hold
 * the VM's mmu_lock across the iteration, and call mv_pgt_iter_start
 * again (a walk from the root) after dropping the lock or after removing
 * a table themselves (KVM's tdp_iter_restart after a yield).
 */
#define MV_PGT_ITER_DEPTH 5     /* levels -1 .. 3 */

typedef struct mv_pgt_iter {
	mv_pgt *pgt;
	mv_pte *ptep;            /* the current entry, in table memory */
	mv_pte old;              /* its value when the iterator reached it */
	uint64_t addr;           /* first input address the current entry covers */
	uint64_t start, end;     /* the range iterated: [start, end) */
	int level;               /* of the current entry */
	int min_level;           /* the deepest level stepped into */
	bool valid;              /* on an entry overlapping [start, end) */
	mv_pgt_result result;    /* when !valid: MV_PGT_OK (range done), MV_PGT_RANGE, MV_PGT_FAULT */
	mv_pte *path[MV_PGT_ITER_DEPTH];     /* [level - start_level]: the table of that level */
	unsigned shift[MV_PGT_ITER_DEPTH];   /* mv_pgt_level_shift of that level */
	uint64_t index_mask[MV_PGT_ITER_DEPTH]; /* entries of that level's table - 1 */
} mv_pgt_iter;

/*
 * Position @it on the start-level entry covering @start (found by a
 * one-entry mv_pgt_walk, so geometry and range are checked as there), to
 * iterate [start, end) stepping into tables down to @min_level
 * (pgt->last_level: every leaf). @start >= @end gives an iterator that is
 * not valid but positioned, ready for mv_pgt_iter_seek. Returns
 * MV_PGT_OK, MV_PGT_RANGE (geometry, @start beyond ia_bits, or @min_level
 * outside start_level..last_level) or MV_PGT_FAULT (root unreachable);
 * it->result says the same and it->valid is false unless MV_PGT_OK.
 */
mv_pgt_result mv_pgt_iter_start(mv_pgt_iter *it, mv_pgt *pgt, uint64_t start, uint64_t end,
				int min_level);
/*
 * The next entry in pre-order: into the current entry's table (re-read)
 * when it is one and the level is above min_level, else the entry beside
 * it, else beside the closest parent that has one. it->valid becomes
 * false past @end or the table's last entry (it->result MV_PGT_OK), or at
 * an unreachable table (MV_PGT_FAULT); the position stays on a real
 * entry, so mv_pgt_iter_seek may follow. No-op when not valid.
 */
void mv_pgt_iter_next(mv_pgt_iter *it);
/*
 * mv_pgt_iter_next, then on past every table entry it would step into:
 * stops only on leaves, invalid entries and tables at min_level (KVM's
 * for_each_tdp_pte filtered by is_last_spte).
 */
void mv_pgt_iter_next_leaf(mv_pgt_iter *it);
/*
 * Continue with [start, end), forwards or backwards, from the deepest
 * entry covering @start (down to min_level, as mv_pgt_get_leaf would end),
 * without a walk from the root: the iterator climbs its path to the
 * lowest table covering @start and reads only the tables below it. Table
 * entries above the new position are not visited. For an iterator that
 * mv_pgt_iter_start positioned (valid or not since); it->valid is false
 * when @start >= @end, MV_PGT_RANGE for @start beyond ia_bits (or an
 * iterator never positioned), MV_PGT_FAULT for an unreachable table.
 */
void mv_pgt_iter_seek(mv_pgt_iter *it, uint64_t start, uint64_t end);
/*
 * How many entries of the current table, from the current one on, overlap
 * [start, end) (0 when not valid): it->ptep[0 .. n) are contiguous in
 * table memory and cover [it->addr, it->addr + n * level size), so a
 * caller may scan a run of leaves without stepping (reading and updating
 * them atomically, as iterated entries). The iterator does not move.
 */
uint64_t mv_pgt_iter_run(const mv_pgt_iter *it);
/*
 * Prefetch for writing, without reading them, the entries covering the
 * part of [addr, end) that the current entry covers, in the table it
 * points to; nothing unless it is a table. An iterator whose min_level is
 * one above the leaves, seeked to a range, so prefetches that range's
 * leaves ahead of the iterator that will change them: the cache misses of
 * far-apart tables then overlap instead of coming one after another.
 */
void mv_pgt_iter_prefetch(const mv_pgt_iter *it, uint64_t addr, uint64_t end);
/*
 * The visitor context of entry @i of the current run (0: the current
 * entry; @i below mv_pgt_iter_run), so that the entry operations of the
 * walker's users (mv_pgt_ctx_try_set, soft/pgtable_ops.h) apply to
 * iterated entries: ptep, old (it->old for the current entry, the entry
 * read now for the others), level, the range, addr = the later of start
 * and the entry's first address, @flags as a walker's, arg NULL.
 */
void mv_pgt_iter_ctx(const mv_pgt_iter *it, uint64_t i, unsigned flags, mv_pgt_ctx *ctx);

#endif
