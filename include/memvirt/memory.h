/*
 * memvirt guest-physical memory model (QEMU's memory API, our structure).
 *
 * A memory system (mv_memory) owns what QEMU keeps in globals: the address
 * spaces, the FlatView cache keyed by root region, the transaction depth,
 * the listeners and the RAM list. Regions form trees; an address space
 * renders its root tree into a FlatView (a sorted list of non-overlapping
 * ranges) and a dispatch table, published with RCU.
 *
 * Addresses are uint64_t guest physical addresses (GPA); sizes are mv_u128
 * because a 64-bit space is 2^64 bytes. Functions return 0 or a negative
 * errno; nothing here exits the process.
 *
 * Threads: all mutations (region edits, transactions, listener
 * registration) happen on one thread at a time (the caller's "big lock").
 * Accesses (mv_as_read/write/rw, mv_flatview_lookup) may run on any thread
 * registered with mv_rcu_register_thread(); they never block on writers and
 * always see a complete FlatView.
 */
#ifndef MEMVIRT_MEMORY_H
#define MEMVIRT_MEMORY_H

#include "memvirt/base.h"
#include "memvirt/ramblock.h"

typedef struct mv_memory mv_memory;
typedef struct mv_region mv_region;
typedef struct mv_ram_region mv_ram_region;     /* kinds RAM and ROM */
typedef struct mv_io_region mv_io_region;       /* kind I/O */
typedef struct mv_romd_region mv_romd_region;   /* kind ROM device */
typedef struct mv_alias_region mv_alias_region; /* kind alias */
typedef struct mv_address_space mv_address_space;
typedef struct mv_flatview mv_flatview;

/* ------------------------------------------------------------------ */
/* Memory system                                                        */

/* Create a memory system. @alloc may be NULL (libc). */
int mv_memory_new(const mv_allocator *alloc, mv_memory **out);
/*
 * Destroy the memory system: frees its address spaces, waits for an RCU
 * grace period so no reader still uses a FlatView, then frees. Regions the
 * caller still holds references to must be unref'ed before this call.
 */
void mv_memory_free(mv_memory *mem);
/* The RAM list of this memory system (owned by it). */
mv_ram_list *mv_memory_ram_list(mv_memory *mem);

/* Every thread that accesses memory must register with RCU once. */
void mv_rcu_register_thread(void);
void mv_rcu_unregister_thread(void);
/* Read-side critical section around use of a FlatView or section. */
void mv_rcu_read_lock(void);
void mv_rcu_read_unlock(void);

/*
 * Transactions: edits between the outermost begin and commit are rendered
 * once, at that commit. Every edit function opens its own nested
 * transaction, so a lone edit takes effect immediately.
 */
void mv_memory_begin(mv_memory *mem);
/*
 * Returns 0, or -ENOMEM when rendering ran out of memory: then the old
 * FlatViews stay published and the update stays pending for the next commit.
 */
int mv_memory_commit(mv_memory *mem);
/* Number of FlatView renders done so far (to observe batching). */
uint64_t mv_memory_render_count(const mv_memory *mem);

/* ------------------------------------------------------------------ */
/* Regions                                                              */

typedef enum mv_region_kind {
	MV_REGION_CONTAINER,   /* no contents of its own; children only */
	MV_REGION_RAM,         /* RAM from a RAM block */
	MV_REGION_ROM,         /* read-only RAM from a RAM block */
	MV_REGION_IO,          /* read/write callbacks (children show above it) */
	MV_REGION_ROMD,        /* ROM device: RAM reads in romd mode, callback writes */
	MV_REGION_ALIAS,       /* a window onto another region */
	MV_REGION_RESERVATION, /* claims space; every access is a decode error */
} mv_region_kind;

/* Result of one memory transaction (QEMU's MemTxResult). */
typedef enum mv_memtx {
	MV_MEMTX_OK = 0,
	MV_MEMTX_ERROR = 1 << 0,        /* device returned an error */
	MV_MEMTX_DECODE_ERROR = 1 << 1, /* nothing (valid) at that address */
} mv_memtx;

/*
 * Byte order of a device's registers. Guest memory is little endian on both
 * supported targets (x86-64, arm64), so NATIVE means little endian.
 */
typedef enum mv_endian {
	MV_ENDIAN_NATIVE,
	MV_ENDIAN_LITTLE,
	MV_ENDIAN_BIG,
} mv_endian;

/*
 * Callbacks of an I/O or ROM-device region (QEMU's MemoryRegionOps).
 * @addr is the offset inside the region; @size is 1, 2, 4 or 8 bytes and
 * lies within impl.{min,max}_access_size; @data holds the value in host
 * order. NULL read reads as all ones and returns OK; NULL write is ignored.
 *
 * valid: what the guest may do. Sizes outside [min,max] (0 = "1..4"/no
 *   limit as in QEMU: min 0 means 1, max 0 means any up to 8 is valid),
 *   unaligned accesses when !unaligned, or accepts() returning false end
 *   in MV_MEMTX_DECODE_ERROR and reads of all ones.
 * impl: what the callbacks implement (min 0 = 1, max 0 = 4). The core
 *   splits larger accesses and widens smaller ones between the two.
 */
typedef struct mv_region_ops {
	mv_memtx (*read)(void *opaque, uint64_t addr, uint64_t *data, unsigned size);
	mv_memtx (*write)(void *opaque, uint64_t addr, uint64_t data, unsigned size);
	mv_endian endianness;
	struct {
		unsigned min_access_size;
		unsigned max_access_size;
		bool unaligned;
		bool (*accepts)(void *opaque, uint64_t addr, unsigned size, bool is_write);
	} valid;
	struct {
		unsigned min_access_size;
		unsigned max_access_size;
		bool unaligned;
	} impl;
} mv_region_ops;

/*
 * Constructors. @name is copied (names may repeat). Each returns 0 and one
 * reference in *out, or -ENOMEM / -EINVAL (size 0, or bigger than 2^64).
 * A region starts enabled, writable, volatile, at address 0, priority 0,
 * without parent.
 */
int mv_container_new(mv_memory *mem, const char *name, mv_u128 size, mv_region **out);
/* RAM showing all of @block (size = its used length); takes a block reference. */
int mv_ram_region_new(mv_memory *mem, const char *name, mv_ramblock *block,
		      mv_ram_region **out);
/* Like RAM but read-only to the guest (writes are decode errors). */
int mv_rom_region_new(mv_memory *mem, const char *name, mv_ramblock *block,
		      mv_ram_region **out);
/* @ops must outlive the region. */
int mv_io_region_new(mv_memory *mem, const char *name, mv_u128 size,
		     const mv_region_ops *ops, void *opaque, mv_io_region **out);
/* ROM device backed by @block for reads in romd mode (the initial mode). */
int mv_romd_region_new(mv_memory *mem, const char *name, mv_ramblock *block,
		       const mv_region_ops *ops, void *opaque, mv_romd_region **out);
/*
 * Alias: the window [offset, offset+size) of @target (takes a reference on
 * it). Aliases of aliases are allowed; -ELOOP if @target reaches back.
 */
int mv_alias_region_new(mv_memory *mem, const char *name, mv_region *target,
			uint64_t offset, mv_u128 size, mv_alias_region **out);
int mv_reservation_new(mv_memory *mem, const char *name, mv_u128 size, mv_region **out);

/* Upcasts (never fail) and checked downcasts (NULL on another kind). */
mv_region *mv_ram_region_base(mv_ram_region *r);
mv_region *mv_io_region_base(mv_io_region *r);
mv_region *mv_romd_region_base(mv_romd_region *r);
mv_region *mv_alias_region_base(mv_alias_region *r);
mv_ram_region *mv_region_as_ram(mv_region *r);     /* RAM or ROM */
mv_io_region *mv_region_as_io(mv_region *r);
mv_romd_region *mv_region_as_romd(mv_region *r);
mv_alias_region *mv_region_as_alias(mv_region *r);

/* Reference counting. The last unref frees the region (see lifetime rules). */
void mv_region_ref(mv_region *r);
void mv_region_unref(mv_region *r);

/* Queries. */
mv_region_kind mv_region_get_kind(const mv_region *r);
const char *mv_region_name(const mv_region *r);
mv_u128 mv_region_size(const mv_region *r);
uint64_t mv_region_addr(const mv_region *r);     /* offset in parent */
int mv_region_priority(const mv_region *r);
mv_region *mv_region_parent(const mv_region *r);
bool mv_region_enabled(const mv_region *r);
bool mv_region_readonly(const mv_region *r);     /* the flag set on it (ROM: true) */
bool mv_region_nonvolatile(const mv_region *r);
/* RAM-like: RAM, ROM, ROM device, or an alias of one. */
bool mv_region_is_ram(const mv_region *r);
/* Subregions in render order (highest priority first). */
size_t mv_region_nr_subregions(const mv_region *r);
mv_region *mv_region_subregion(const mv_region *r, size_t i);
/* QEMU's type word: "ram", "rom", "romd", "ramd", "i/o" (alias: target's). */
const char *mv_region_type_name(const mv_region *r);

mv_ramblock *mv_ram_region_block(mv_ram_region *r);
mv_ramblock *mv_romd_region_block(mv_romd_region *r);
mv_region *mv_alias_region_target(mv_alias_region *r);
uint64_t mv_alias_region_offset(mv_alias_region *r);
bool mv_romd_region_mode(mv_romd_region *r);

/*
 * Tree edits (each a transaction). Children are kept in QEMU's order: a
 * new child goes before the first existing child whose priority is <= its
 * own, so among equal priorities the later child wins.
 *   -EINVAL  offset + child size beyond the parent's 2^64 limit, or parent
 *            is an alias (aliases have no children)
 *   -EBUSY   child already has a parent
 *   -ELOOP   child is the parent or one of its ancestors
 * add_subregion uses priority 0. The parent takes a reference on the child.
 */
int mv_region_add_subregion(mv_region *parent, uint64_t offset, mv_region *child);
int mv_region_add_subregion_overlap(mv_region *parent, uint64_t offset,
				    mv_region *child, int priority);
/* -ENOENT if @child is not a child of @parent. Safe while readers use it. */
int mv_region_del_subregion(mv_region *parent, mv_region *child);
void mv_region_set_enabled(mv_region *r, bool enabled);
void mv_region_set_readonly(mv_region *r, bool readonly);
void mv_region_set_nonvolatile(mv_region *r, bool nonvolatile);
/* Move inside the parent (QEMU's memory_region_set_address). */
int mv_region_set_address(mv_region *r, uint64_t addr);
/* -EINVAL for size 0 / > 2^64 or if it no longer fits in the parent. */
int mv_region_set_size(mv_region *r, mv_u128 size);
int mv_alias_region_set_offset(mv_alias_region *r, uint64_t offset);
void mv_romd_region_set_mode(mv_romd_region *r, bool romd_mode);
/* Resize a RAM region and its resizeable block together. */
int mv_ram_region_resize(mv_ram_region *r, uint64_t new_size, mv_error *err);

/*
 * Dirty logging of a RAM region for @client (MV_DIRTY_*). Reported to
 * listeners as log_start/log_stop of the affected sections.
 */
enum { MV_DIRTY_VGA = 0, MV_DIRTY_CODE = 1, MV_DIRTY_MIGRATION = 2, MV_DIRTY_NUM = 3 };
int mv_region_set_log(mv_region *r, bool log, unsigned client);
/* Global dirty tracking (migration): log_global_start + MIGRATION bit on all RAM. */
void mv_memory_global_dirty_log_start(mv_memory *mem);
void mv_memory_global_dirty_log_stop(mv_memory *mem);
bool mv_memory_global_dirty_log(const mv_memory *mem);
/* Call log_sync of every listener for every logged section of every space. */
void mv_memory_global_dirty_log_sync(mv_memory *mem);

/* ------------------------------------------------------------------ */
/* Address spaces and FlatViews                                         */

/*
 * Create an address space named @name rendering @root (reference taken).
 * Spaces whose roots resolve to the same FlatView root share one FlatView.
 */
int mv_address_space_new(mv_memory *mem, mv_region *root, const char *name,
			 mv_address_space **out);
/* Unregisters its listeners (region_del for each section) and frees it. */
void mv_address_space_free(mv_address_space *as);
const char *mv_address_space_name(const mv_address_space *as);
mv_region *mv_address_space_root(const mv_address_space *as);
mv_memory *mv_address_space_memory(const mv_address_space *as);
/* Address spaces of @mem in creation order. */
size_t mv_memory_nr_address_spaces(const mv_memory *mem);
mv_address_space *mv_memory_address_space(const mv_memory *mem, size_t i);

/*
 * One range of a FlatView (QEMU's FlatRange): [start, start+size) shows
 * @mr from @offset_in_region, with attributes inherited along the path.
 */
typedef struct mv_flat_range {
	uint64_t start;
	mv_u128 size;
	mv_region *mr;
	uint64_t offset_in_region;
	uint8_t dirty_log_mask;
	bool romd_mode;
	bool readonly;
	bool nonvolatile;
} mv_flat_range;

/*
 * A section (QEMU's MemoryRegionSection): what listeners and lookups
 * receive. @mr is NULL for the unassigned section.
 */
typedef struct mv_section {
	mv_region *mr;
	mv_flatview *fv;
	uint64_t offset_within_region;
	uint64_t offset_within_address_space;
	mv_u128 size;
	bool readonly;
	bool nonvolatile;
} mv_section;

/*
 * The current FlatView of @as, with a reference (drop with
 * mv_flatview_unref); usable outside an RCU read-side section.
 */
mv_flatview *mv_address_space_get_flatview(mv_address_space *as);
void mv_flatview_ref(mv_flatview *fv);
void mv_flatview_unref(mv_flatview *fv);
/* The region the view was rendered from (NULL: empty view). */
mv_region *mv_flatview_root(const mv_flatview *fv);
size_t mv_flatview_nr_ranges(const mv_flatview *fv);
const mv_flat_range *mv_flatview_range(const mv_flatview *fv, size_t i);

/*
 * Dispatch lookup of @addr: the section containing it (never NULL; for an
 * unmapped address it is a hole section with mr == NULL whose offset/size
 * span the whole gap between mapped sections) and, in *xlat,
 * the offset of @addr inside section->mr; *plen (optional) is clipped to
 * the bytes left in the section. Sub-page regions resolve to their own
 * section. Uses and refreshes the MRU section cache.
 */
const mv_section *mv_flatview_lookup(mv_flatview *fv, uint64_t addr,
				     uint64_t *xlat, uint64_t *plen);

/*
 * Accesses. Bytes in @buf are in guest memory order. RAM/ROM reads are
 * copies; RAM writes mark the block dirty; I/O goes through the region's
 * callbacks with size splitting/combining and byte swapping as the ops
 * declare. Accesses crossing section borders are split. Unassigned
 * addresses read as all ones and give MV_MEMTX_DECODE_ERROR; writes to
 * read-only sections are dropped with MV_MEMTX_DECODE_ERROR.
 * Results of the pieces are OR-ed together.
 */
mv_memtx mv_as_read(mv_address_space *as, uint64_t addr, void *buf, size_t len);
mv_memtx mv_as_write(mv_address_space *as, uint64_t addr, const void *buf, size_t len);
mv_memtx mv_as_rw(mv_address_space *as, uint64_t addr, void *buf, size_t len, bool is_write);
/* Same, on a FlatView the caller holds (a reference or an RCU read lock). */
mv_memtx mv_flatview_rw(mv_flatview *fv, uint64_t addr, void *buf, size_t len, bool is_write);

#endif
