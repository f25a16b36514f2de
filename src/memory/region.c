/*
 * Regions: one constructor per kind, reference counting, queries and the
 * tree edits (QEMU's memory_region_init_* / add_subregion / set_*).
 * Every edit runs in its own (possibly nested) transaction.
 */
#include "memory/internal.h"

#include <errno.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Construction and lifetime                                            */

static void *region_alloc(mv_memory *mem, size_t struct_size, mv_region_kind kind,
			  const char *name, mv_u128 size)
{
	mv_region *r;

	if (size == 0 || size > MV_2_64 || !name)
		return NULL;
	r = mv_zalloc(mem->alloc, struct_size);
	if (!r)
		return NULL;
	r->name = mv_strdup(mem->alloc, name);
	if (!r->name) {
		mv_free(mem->alloc, r);
		return NULL;
	}
	r->mem = mem;
	r->kind = kind;
	r->size = size;
	r->enabled = true;
	r->readonly = kind == MV_REGION_ROM;
	atomic_init(&r->refcount, 1);
	return r;
}

/* The reason region_alloc failed, for the constructors' return value. */
static int alloc_error(mv_u128 size, const char *name)
{
	return (size == 0 || size > MV_2_64 || !name) ? -EINVAL : -ENOMEM;
}

int mv_container_new(mv_memory *mem, const char *name, mv_u128 size, mv_region **out)
{
	mv_region *r = region_alloc(mem, sizeof(*r), MV_REGION_CONTAINER, name, size);

	if (!r)
		return alloc_error(size, name);
	*out = r;
	return 0;
}

int mv_reservation_new(mv_memory *mem, const char *name, mv_u128 size, mv_region **out)
{
	mv_region *r = region_alloc(mem, sizeof(*r), MV_REGION_RESERVATION, name, size);

	if (!r)
		return alloc_error(size, name);
	*out = r;
	return 0;
}

static int ram_like_new(mv_memory *mem, const char *name, mv_ramblock *block,
			mv_region_kind kind, mv_ram_region **out)
{
	mv_u128 size = block ? mv_ramblock_used_length(block) : 0;
	mv_ram_region *r = region_alloc(mem, sizeof(*r), kind, name, size);

	if (!r)
		return alloc_error(size, name);
	mv_ramblock_ref(block);
	r->block = block;
	*out = r;
	return 0;
}

int mv_ram_region_new(mv_memory *mem, const char *name, mv_ramblock *block, mv_ram_region **out)
{
	return ram_like_new(mem, name, block, MV_REGION_RAM, out);
}

int mv_rom_region_new(mv_memory *mem, const char *name, mv_ramblock *block, mv_ram_region **out)
{
	return ram_like_new(mem, name, block, MV_REGION_ROM, out);
}

int mv_io_region_new(mv_memory *mem, const char *name, mv_u128 size,
		     const mv_region_ops *ops, void *opaque, mv_io_region **out)
{
	mv_io_region *r = region_alloc(mem, sizeof(*r), MV_REGION_IO, name, size);

	if (!r)
		return alloc_error(size, name);
	r->ops = ops;
	r->opaque = opaque;
	*out = r;
	return 0;
}

int mv_romd_region_new(mv_memory *mem, const char *name, mv_ramblock *block,
		       const mv_region_ops *ops, void *opaque, mv_romd_region **out)
{
	mv_u128 size = block ? mv_ramblock_used_length(block) : 0;
	mv_romd_region *r = region_alloc(mem, sizeof(*r), MV_REGION_ROMD, name, size);

	if (!r)
		return alloc_error(size, name);
	mv_ramblock_ref(block);
	r->block = block;
	r->ops = ops;
	r->opaque = opaque;
	r->romd_mode = true;
	*out = r;
	return 0;
}

int mv_alias_region_new(mv_memory *mem, const char *name, mv_region *target,
			uint64_t offset, mv_u128 size, mv_alias_region **out)
{
	mv_alias_region *r;

	if (!target || target->mem != mem)
		return -EINVAL;
	r = region_alloc(mem, sizeof(*r), MV_REGION_ALIAS, name, size);
	if (!r)
		return alloc_error(size, name);
	mv_region_ref(target);
	r->target = target;
	r->offset = offset;
	*out = r;
	return 0;
}

void mv_region_ref(mv_region *r)
{
	atomic_fetch_add_explicit(&r->refcount, 1, memory_order_relaxed);
}

/* Release what a region owns; runs when the last reference goes. */
static void region_free(mv_region *r)
{
	const mv_allocator *a = r->mem->alloc;

	for (size_t i = 0; i < r->nr_subregions; i++) {
		r->subregions[i]->parent = NULL;
		mv_region_unref(r->subregions[i]);
	}
	switch (r->kind) {
	case MV_REGION_RAM:
	case MV_REGION_ROM:
		mv_ramblock_unref(((mv_ram_region *)r)->block);
		break;
	case MV_REGION_ROMD:
		mv_ramblock_unref(((mv_romd_region *)r)->block);
		break;
	case MV_REGION_ALIAS:
		mv_region_unref(((mv_alias_region *)r)->target);
		break;
	default:
		break;
	}
	mv_free(a, r->subregions);
	mv_free(a, r->name);
	mv_free(a, r);
}

void mv_region_unref(mv_region *r)
{
	if (r && atomic_fetch_sub_explicit(&r->refcount, 1, memory_order_acq_rel) == 1)
		region_free(r);
}

/* ------------------------------------------------------------------ */
/* Casts and queries                                                    */

mv_region *mv_ram_region_base(mv_ram_region *r) { return &r->base; }
mv_region *mv_io_region_base(mv_io_region *r) { return &r->base; }
mv_region *mv_romd_region_base(mv_romd_region *r) { return &r->base; }
mv_region *mv_alias_region_base(mv_alias_region *r) { return &r->base; }

mv_ram_region *mv_region_as_ram(mv_region *r)
{
	return r && (r->kind == MV_REGION_RAM || r->kind == MV_REGION_ROM) ?
		(mv_ram_region *)r : NULL;
}

mv_io_region *mv_region_as_io(mv_region *r)
{
	return r && r->kind == MV_REGION_IO ? (mv_io_region *)r : NULL;
}

mv_romd_region *mv_region_as_romd(mv_region *r)
{
	return r && r->kind == MV_REGION_ROMD ? (mv_romd_region *)r : NULL;
}

mv_alias_region *mv_region_as_alias(mv_region *r)
{
	return r && r->kind == MV_REGION_ALIAS ? (mv_alias_region *)r : NULL;
}

mv_region_kind mv_region_get_kind(const mv_region *r) { return r->kind; }
const char *mv_region_name(const mv_region *r) { return r->name; }
mv_u128 mv_region_size(const mv_region *r) { return r->size; }
uint64_t mv_region_addr(const mv_region *r) { return r->addr; }
int mv_region_priority(const mv_region *r) { return r->priority; }
mv_region *mv_region_parent(const mv_region *r) { return r->parent; }
bool mv_region_enabled(const mv_region *r) { return r->enabled; }
bool mv_region_readonly(const mv_region *r) { return r->readonly; }
bool mv_region_nonvolatile(const mv_region *r) { return r->nonvolatile; }
size_t mv_region_nr_subregions(const mv_region *r) { return r->nr_subregions; }

mv_region *mv_region_subregion(const mv_region *r, size_t i)
{
	return i < r->nr_subregions ? r->subregions[i] : NULL;
}

bool mv_region_is_ram(const mv_region *r)
{
	while (r->kind == MV_REGION_ALIAS)
		r = ((const mv_alias_region *)r)->target;
	return r->kind == MV_REGION_RAM || r->kind == MV_REGION_ROM || r->kind == MV_REGION_ROMD;
}

/* QEMU's memory_region_type(): the word `info mtree` prints. */
const char *mv_region_type_name(const mv_region *r)
{
	while (r->kind == MV_REGION_ALIAS)
		r = ((const mv_alias_region *)r)->target;
	switch (r->kind) {
	case MV_REGION_ROMD:
		return ((const mv_romd_region *)r)->romd_mode ? "romd" : "i/o";
	case MV_REGION_RAM:
	case MV_REGION_ROM:
		return r->readonly ? "rom" : "ram";
	default:
		return "i/o";
	}
}

mv_ramblock *mv_ram_region_block(mv_ram_region *r) { return r->block; }
mv_ramblock *mv_romd_region_block(mv_romd_region *r) { return r->block; }
mv_region *mv_alias_region_target(mv_alias_region *r) { return r->target; }
uint64_t mv_alias_region_offset(mv_alias_region *r) { return r->offset; }
bool mv_romd_region_mode(mv_romd_region *r) { return r->romd_mode; }

mv_ramblock *mv_region_block(const mv_region *r)
{
	switch (r->kind) {
	case MV_REGION_RAM:
	case MV_REGION_ROM:
		return ((const mv_ram_region *)r)->block;
	case MV_REGION_ROMD:
		return ((const mv_romd_region *)r)->block;
	default:
		return NULL;
	}
}

void *mv_region_host_ptr(const mv_region *r, uint64_t off)
{
	mv_ramblock *b = mv_region_block(r);

	return b ? (char *)mv_ramblock_host(b) + off : NULL;
}

const mv_region_ops *mv_region_ops_of(const mv_region *r, void **opaque)
{
	if (r->kind == MV_REGION_IO) {
		*opaque = ((const mv_io_region *)r)->opaque;
		return ((const mv_io_region *)r)->ops;
	}
	if (r->kind == MV_REGION_ROMD) {
		*opaque = ((const mv_romd_region *)r)->opaque;
		return ((const mv_romd_region *)r)->ops;
	}
	return NULL;
}

static uint8_t *dirty_mask_field(mv_region *r)
{
	if (r->kind == MV_REGION_RAM || r->kind == MV_REGION_ROM)
		return &((mv_ram_region *)r)->dirty_log_mask;
	if (r->kind == MV_REGION_ROMD)
		return &((mv_romd_region *)r)->dirty_log_mask;
	return NULL;
}

/* QEMU's memory_region_get_dirty_log_mask(). */
uint8_t mv_region_dirty_log_mask(const mv_region *r)
{
	uint8_t *f = dirty_mask_field((mv_region *)r);

	if (!f)
		return 0;
	return *f | (r->mem->global_dirty_log ? 1u << MV_DIRTY_MIGRATION : 0);
}

/* ------------------------------------------------------------------ */
/* Tree edits                                                           */

/* Is @r, or anything it renders (children, alias targets), in @set? */
static bool renders_any(const mv_region *r, mv_region *const *set, size_t n, unsigned depth)
{
	if (depth > 4096)
		return true;    /* absurd nesting: refuse rather than overflow the stack */
	for (size_t i = 0; i < n; i++)
		if (set[i] == r)
			return true;
	if (r->kind == MV_REGION_ALIAS)
		return renders_any(((const mv_alias_region *)r)->target, set, n, depth + 1);
	for (size_t i = 0; i < r->nr_subregions; i++)
		if (renders_any(r->subregions[i], set, n, depth + 1))
			return true;
	return false;
}

/*
 * Would rendering @parent recurse forever once @child is under it? True
 * when @child renders @parent or any ancestor of it.
 */
static bool would_loop(const mv_region *parent, const mv_region *child)
{
	mv_region *chain[64];
	size_t n = 0;

	for (const mv_region *p = parent; p; p = p->parent) {
		chain[n++] = (mv_region *)p;
		if (n == 64) {
			if (renders_any(child, chain, n, 0))
				return true;
			n = 0;
		}
	}
	return renders_any(child, chain, n, 0);
}

/*
 * Insert in QEMU's order: before the first child with priority <= ours.
 * Children are sorted by descending priority, so binary search finds it.
 */
static int insert_child(mv_region *parent, mv_region *child)
{
	size_t lo = 0, hi = parent->nr_subregions;
	int ret = mv_grow(parent->mem->alloc, (void **)&parent->subregions,
			  &parent->cap_subregions, parent->nr_subregions + 1,
			  sizeof(*parent->subregions));

	if (ret)
		return ret;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (child->priority >= parent->subregions[mid]->priority)
			hi = mid;
		else
			lo = mid + 1;
	}
	memmove(&parent->subregions[lo + 1], &parent->subregions[lo],
		(parent->nr_subregions - lo) * sizeof(*parent->subregions));
	parent->subregions[lo] = child;
	parent->nr_subregions++;
	return 0;
}

static int add_subregion_common(mv_region *parent, uint64_t offset, mv_region *child,
				int priority)
{
	int ret;

	if (!parent || !child || parent->mem != child->mem)
		return -EINVAL;
	if (parent->kind == MV_REGION_ALIAS || (mv_u128)offset + child->size > MV_2_64)
		return -EINVAL;
	if (child->parent)
		return -EBUSY;
	if (would_loop(parent, child))
		return -ELOOP;
	mv_memory_begin(parent->mem);
	child->addr = offset;
	child->priority = priority;
	ret = insert_child(parent, child);
	if (!ret) {
		mv_region_ref(child);
		child->parent = parent;
		if (parent->enabled && child->enabled)
			mv_memory_update_pending(parent->mem);
	}
	mv_memory_commit(parent->mem);
	return ret;
}

int mv_region_add_subregion(mv_region *parent, uint64_t offset, mv_region *child)
{
	return add_subregion_common(parent, offset, child, 0);
}

int mv_region_add_subregion_overlap(mv_region *parent, uint64_t offset,
				    mv_region *child, int priority)
{
	return add_subregion_common(parent, offset, child, priority);
}

int mv_region_del_subregion(mv_region *parent, mv_region *child)
{
	size_t i;

	if (!parent || !child || child->parent != parent)
		return -ENOENT;
	for (i = 0; parent->subregions[i] != child; i++)
		;
	mv_memory_begin(parent->mem);
	memmove(&parent->subregions[i], &parent->subregions[i + 1],
		(parent->nr_subregions - i - 1) * sizeof(*parent->subregions));
	parent->nr_subregions--;
	child->parent = NULL;
	if (parent->enabled && child->enabled)
		mv_memory_update_pending(parent->mem);
	mv_memory_commit(parent->mem);
	/* FlatViews still showing @child hold their own references. */
	mv_region_unref(child);
	return 0;
}

/*
 * Change a flag inside a transaction. QEMU marks the topology changed only
 * when the region is enabled, except for set_enabled itself.
 */
static void set_flag(mv_region *r, bool *flag, bool value, bool always_pending)
{
	if (*flag == value)
		return;
	mv_memory_begin(r->mem);
	/* Atomic: accessors on reader threads read romd_mode. */
	__atomic_store_n(flag, value, __ATOMIC_RELEASE);
	if (always_pending || r->enabled)
		mv_memory_update_pending(r->mem);
	mv_memory_commit(r->mem);
}

void mv_region_set_enabled(mv_region *r, bool enabled)
{
	set_flag(r, &r->enabled, enabled, true);
}

void mv_region_set_readonly(mv_region *r, bool readonly)
{
	set_flag(r, &r->readonly, readonly, false);
}

void mv_region_set_nonvolatile(mv_region *r, bool nonvolatile)
{
	set_flag(r, &r->nonvolatile, nonvolatile, false);
}

void mv_romd_region_set_mode(mv_romd_region *r, bool romd_mode)
{
	set_flag(&r->base, &r->romd_mode, romd_mode, false);
}

/*
 * QEMU's memory_region_set_address: remove and re-add at the new offset, so
 * the child also moves to the front of its equal-priority siblings.
 */
int mv_region_set_address(mv_region *r, uint64_t addr)
{
	mv_region *parent = r->parent;
	int ret;

	if ((mv_u128)addr + r->size > MV_2_64)
		return -EINVAL;
	if (r->addr == addr)
		return 0;
	if (!parent) {
		r->addr = addr;
		return 0;
	}
	mv_memory_begin(r->mem);
	mv_region_ref(r);
	mv_region_del_subregion(parent, r);
	ret = add_subregion_common(parent, addr, r, r->priority);
	mv_region_unref(r);
	mv_memory_commit(r->mem);
	return ret;
}

int mv_region_set_size(mv_region *r, mv_u128 size)
{
	if (size == 0 || size > MV_2_64 || (mv_u128)r->addr + size > MV_2_64)
		return -EINVAL;
	if (r->size == size)
		return 0;
	mv_memory_begin(r->mem);
	r->size = size;
	mv_memory_update_pending(r->mem);
	mv_memory_commit(r->mem);
	return 0;
}

int mv_alias_region_set_offset(mv_alias_region *r, uint64_t offset)
{
	if (r->offset == offset)
		return 0;
	mv_memory_begin(r->base.mem);
	r->offset = offset;
	if (r->base.enabled)   /* QEMU's memory_region_set_alias_offset */
		mv_memory_update_pending(r->base.mem);
	mv_memory_commit(r->base.mem);
	return 0;
}

int mv_ram_region_resize(mv_ram_region *r, uint64_t new_size, mv_error *err)
{
	int ret;

	if ((mv_u128)r->base.addr + new_size > MV_2_64 || new_size == 0)
		return mv_error_set(err, -EINVAL, "RAM region '%s': size 0x%llx does not fit",
				    r->base.name, (unsigned long long)new_size);
	ret = mv_ramblock_resize(r->block, new_size, err);
	if (ret)
		return ret;
	return mv_region_set_size(&r->base, new_size);
}

int mv_region_set_log(mv_region *r, bool log, unsigned client)
{
	uint8_t *f = dirty_mask_field(r);
	uint8_t mask;

	if (!f || client >= MV_DIRTY_NUM)
		return -EINVAL;
	mask = log ? (*f | (1u << client)) : (*f & ~(1u << client));
	if (mask == *f)
		return 0;
	mv_memory_begin(r->mem);
	*f = mask;
	if (r->enabled)     /* QEMU's memory_region_set_log */
		mv_memory_update_pending(r->mem);
	mv_memory_commit(r->mem);
	return 0;
}
