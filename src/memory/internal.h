/*
 * Private structures of the memory module, shared by region.c, render.c,
 * flatview.c, dispatch.c, access.c, address_space.c and listener.c.
 * Nothing outside src/memory/ includes this file.
 */
#ifndef MV_MEMORY_INTERNAL_H
#define MV_MEMORY_INTERNAL_H

#include <stdatomic.h>
#include <urcu/urcu-memb.h>

#include "memvirt/listener.h"
#include "memvirt/memory.h"
#include "util/alloc.h"

/* Guest page size used by the dispatch table and dirty bitmaps. */
#define MV_PAGE_BITS 12
#define MV_PAGE_SIZE ((uint64_t)1 << MV_PAGE_BITS)

/* Fields common to every region kind. */
struct mv_region {
	mv_memory *mem;
	mv_region_kind kind;
	char *name;
	mv_u128 size;
	uint64_t addr;          /* offset in the parent */
	int priority;
	bool enabled;
	bool readonly;
	bool nonvolatile;
	atomic_int refcount;
	mv_region *parent;      /* not a reference: the parent holds one on us */
	/* Children in render order: higher priority first (QEMU's list order). */
	mv_region **subregions;
	size_t nr_subregions, cap_subregions;
};

/* MV_REGION_RAM and MV_REGION_ROM. */
struct mv_ram_region {
	struct mv_region base;
	mv_ramblock *block;     /* reference */
	uint8_t dirty_log_mask; /* bit per MV_DIRTY_* client */
};

struct mv_io_region {
	struct mv_region base;
	const mv_region_ops *ops;
	void *opaque;
};

struct mv_romd_region {
	struct mv_region base;
	mv_ramblock *block;     /* reference */
	const mv_region_ops *ops;
	void *opaque;
	bool romd_mode;
	uint8_t dirty_log_mask;
};

struct mv_alias_region {
	struct mv_region base;
	mv_region *target;      /* reference */
	uint64_t offset;
};

/* Does the region render its own contents (QEMU's mr->terminates)? */
static inline bool mv_region_terminates(const mv_region *r)
{
	return r->kind != MV_REGION_CONTAINER && r->kind != MV_REGION_ALIAS;
}

/* Host address of offset @off in a RAM-like terminal region, or NULL. */
void *mv_region_host_ptr(const mv_region *r, uint64_t off);
/* The RAM block behind a RAM/ROM/ROMD region, else NULL. */
mv_ramblock *mv_region_block(const mv_region *r);
/* Ops/opaque of an I/O or ROMD region, else NULL. */
const mv_region_ops *mv_region_ops_of(const mv_region *r, void **opaque);
/* Dirty log mask as rendered (adds MIGRATION under global tracking). */
uint8_t mv_region_dirty_log_mask(const mv_region *r);

/* ------------------------------------------------------------------ */
/* FlatView and dispatch                                                */

typedef struct mv_dispatch mv_dispatch;

struct mv_flatview {
	struct rcu_head rcu;
	atomic_int refcount;
	mv_memory *mem;
	mv_region *root;        /* reference, or NULL */
	mv_flat_range *ranges;  /* sorted, non-overlapping */
	size_t nr, cap;
	/*
	 * One reference per rendered region instance, taken while the walk has
	 * the region in cache; covers every region a range shows.
	 */
	mv_region **held;
	size_t nr_held;
	mv_dispatch *dispatch;
};

/* Render @root (may be NULL) into a new simplified FlatView with dispatch. */
int mv_flatview_generate(mv_memory *mem, mv_region *root, mv_flatview **out);
/*
 * Paint @root (may be NULL) into @fv's ranges, unsimplified, and fill
 * @fv->held with references to the rendered regions (render.c).
 */
int mv_render(mv_flatview *fv, mv_region *root);
/* Insert @fr at index @pos (rendering). -ENOMEM on failure. */
int mv_flatview_insert(mv_flatview *fv, size_t pos, const mv_flat_range *fr);
/* QEMU's flatview_simplify: merge adjacent ranges that can merge. */
void mv_flatview_simplify(mv_flatview *fv);
/* QEMU's section_from_flat_range. */
mv_section mv_section_from_flat_range(const mv_flat_range *fr, mv_flatview *fv);
/* The region a FlatView is rendered from (QEMU's memory_region_get_flatview_root). */
mv_region *mv_flatview_root_of(mv_region *root);

/*
 * Dispatch table (dispatch.c): a radix tree over page numbers built from
 * the sections of one FlatView. Built single-threaded, read lock-free.
 */
mv_dispatch *mv_dispatch_new(mv_flatview *fv);
/* Add one section (ranges are added in ascending order). -ENOMEM. */
int mv_dispatch_add_section(mv_dispatch *d, const mv_section *s);
/* Skip-compress single-child chains (QEMU's address_space_dispatch_compact). */
void mv_dispatch_compact(mv_dispatch *d);
void mv_dispatch_free(mv_dispatch *d);
/* Section covering @addr, sub-pages resolved; never NULL. Updates the MRU cache. */
const mv_section *mv_dispatch_lookup(mv_dispatch *d, uint64_t addr);
/* Introspection for tests: MRU entry, nodes read by a lookup, node count. */
const mv_section *mv_dispatch_mru(mv_dispatch *d);
unsigned mv_dispatch_walk_depth(const mv_dispatch *d, uint64_t addr);
size_t mv_dispatch_nr_nodes(const mv_dispatch *d);

/* ------------------------------------------------------------------ */
/* Memory system and address spaces                                     */

struct mv_address_space {
	mv_memory *mem;
	char *name;
	mv_region *root;            /* reference */
	mv_flatview *current;       /* RCU-published; holds a reference */
	mv_listener *listeners_head, *listeners_tail;  /* priority order */
};

struct mv_memory {
	const mv_allocator *alloc;
	mv_ram_list *ram_list;
	mv_address_space **spaces;
	size_t nr_spaces, cap_spaces;
	unsigned transaction_depth;
	bool update_pending;
	bool global_dirty_log;
	uint64_t render_count;
	/* All listeners of all spaces, priority order (QEMU's memory_listeners). */
	mv_listener *listeners_head, *listeners_tail;
	/* FlatView cache of the current commit: one per distinct root (QEMU's flat_views). */
	struct mv_fv_cache_entry {
		mv_region *root;
		mv_flatview *fv;
	} *fv_cache;
	size_t nr_fv_cache, cap_fv_cache;
};

/* Mark the topology changed (QEMU's memory_region_update_pending). */
static inline void mv_memory_update_pending(mv_memory *mem)
{
	mem->update_pending = true;
}

/* Diff @old (may be NULL) against @new for @as's listeners (listener.c). */
void mv_listener_update_topology(mv_address_space *as, mv_flatview *old, mv_flatview *new);
/* Global begin/commit/log_global_* to every listener (listener.c). */
void mv_listeners_begin(mv_memory *mem);
void mv_listeners_commit(mv_memory *mem);
void mv_listeners_log_global(mv_memory *mem, bool start);
/* Unregister every listener of @as (address space teardown). */
void mv_listeners_detach_all(mv_address_space *as);

#endif
