/*
 * Machines: the registry of boards, creation and teardown, and the
 * builder helpers that boards use (see board.h for the sticky error).
 */
#include "machine/board.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util/alloc.h"

static const mv_board *const boards[] = {
	&mv_board_pc,
	&mv_board_microvm,
	&mv_board_virt_arm64,
};

#define NR_BOARDS (sizeof(boards) / sizeof(boards[0]))

/* Same order as boards[]. */
static const char *const type_names[NR_BOARDS + 1] = { "pc", "microvm", "virt-arm64", NULL };

const char *const *mv_machine_types(void)
{
	return type_names;
}

static const mv_board *find_board(const char *type)
{
	for (size_t i = 0; i < NR_BOARDS; i++)
		if (!strcmp(boards[i]->name, type))
			return boards[i];
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Builder helpers                                                      */

static const mv_allocator *m_alloc(mv_machine *m)
{
	/* the memory system's allocator is private to it; libc is fine here */
	(void)m;
	return NULL;
}

int mvb_fail(mv_machine *m, int code, const char *fmt, ...)
{
	va_list ap;

	if (m->ret)
		return m->ret;
	m->ret = code;
	if (m->err) {
		m->err->code = code;
		va_start(ap, fmt);
		vsnprintf(m->err->msg, sizeof(m->err->msg), fmt, ap);
		va_end(ap);
	}
	return code;
}

/* Keep the creation reference of @r, or drop it and fail. */
static mv_region *own(mv_machine *m, mv_region *r)
{
	if (mv_grow(m_alloc(m), (void **)&m->owned, &m->cap_owned, m->nr_owned + 1,
		    sizeof(*m->owned))) {
		mv_region_unref(r);
		mvb_fail(m, -ENOMEM, "machine '%s': out of memory while building region '%s'",
			 m->board->name, mv_region_name(r));
		return NULL;
	}
	m->owned[m->nr_owned++] = r;
	return r;
}

/* The sentence for a failed region constructor. */
static mv_region *ctor_failed(mv_machine *m, const char *name, int ret)
{
	mvb_fail(m, ret, "machine '%s': cannot create region '%s': %s", m->board->name,
		 name, strerror(-ret));
	return NULL;
}

mv_region *mvb_container(mv_machine *m, const char *name, mv_u128 size)
{
	mv_region *r;
	int ret;

	if (m->ret)
		return NULL;
	ret = mv_container_new(m->mem, name, size, &r);
	return ret ? ctor_failed(m, name, ret) : own(m, r);
}

/* Placeholder device registers: read as zero, ignore writes. */
static mv_memtx device_read(void *opaque, uint64_t addr, uint64_t *data, unsigned size)
{
	(void)opaque;
	(void)addr;
	(void)size;
	*data = 0;
	return MV_MEMTX_OK;
}

static mv_memtx device_write(void *opaque, uint64_t addr, uint64_t data, unsigned size)
{
	(void)opaque;
	(void)addr;
	(void)data;
	(void)size;
	return MV_MEMTX_OK;
}

static const mv_region_ops device_ops = {
	.read = device_read,
	.write = device_write,
	.endianness = MV_ENDIAN_LITTLE,
	.impl = { .min_access_size = 1, .max_access_size = 8 },
};

/* No callbacks: the core reads all ones and drops writes. */
static const mv_region_ops unassigned_ops = {
	.endianness = MV_ENDIAN_NATIVE,
};

static mv_region *io_region(mv_machine *m, const char *name, mv_u128 size,
			    const mv_region_ops *ops)
{
	mv_io_region *r;
	int ret;

	if (m->ret)
		return NULL;
	ret = mv_io_region_new(m->mem, name, size, ops, m, &r);
	return ret ? ctor_failed(m, name, ret) : own(m, mv_io_region_base(r));
}

mv_region *mvb_device(mv_machine *m, const char *name, mv_u128 size)
{
	return io_region(m, name, size, &device_ops);
}

mv_region *mvb_unassigned(mv_machine *m, const char *name, mv_u128 size)
{
	return io_region(m, name, size, &unassigned_ops);
}

mv_ramblock *mvb_block(mv_machine *m, const char *name, uint64_t size, bool noreserve)
{
	mv_ramblock_opts o = { .backing = MV_RAM_ANON_PRIVATE, .noreserve = noreserve };
	mv_ramblock *rb;
	int ret;

	if (m->ret)
		return NULL;
	if (mv_grow(m_alloc(m), (void **)&m->blocks, &m->cap_blocks, m->nr_blocks + 1,
		    sizeof(*m->blocks))) {
		mvb_fail(m, -ENOMEM, "machine '%s': out of memory for RAM block '%s'",
			 m->board->name, name);
		return NULL;
	}
	ret = mv_ramblock_new(mv_memory_ram_list(m->mem), name, size, &o, &rb, m->err);
	if (ret) {
		m->ret = ret;   /* the sentence is already in m->err */
		return NULL;
	}
	m->blocks[m->nr_blocks++] = rb;
	return rb;
}

mv_region *mvb_ram(mv_machine *m, const char *name, mv_ramblock *block)
{
	mv_ram_region *r;
	int ret;

	if (m->ret)
		return NULL;
	ret = mv_ram_region_new(m->mem, name, block, &r);
	return ret ? ctor_failed(m, name, ret) : own(m, mv_ram_region_base(r));
}

mv_region *mvb_rom(mv_machine *m, const char *name, mv_ramblock *block)
{
	mv_ram_region *r;
	int ret;

	if (m->ret)
		return NULL;
	ret = mv_rom_region_new(m->mem, name, block, &r);
	return ret ? ctor_failed(m, name, ret) : own(m, mv_ram_region_base(r));
}

mv_region *mvb_romd(mv_machine *m, const char *name, mv_ramblock *block)
{
	mv_romd_region *r;
	int ret;

	if (m->ret)
		return NULL;
	ret = mv_romd_region_new(m->mem, name, block, &device_ops, m, &r);
	return ret ? ctor_failed(m, name, ret) : own(m, mv_romd_region_base(r));
}

mv_region *mvb_alias(mv_machine *m, const char *name, mv_region *target,
		     uint64_t offset, mv_u128 size)
{
	mv_alias_region *r;
	int ret;

	if (m->ret)
		return NULL;
	ret = mv_alias_region_new(m->mem, name, target, offset, size, &r);
	return ret ? ctor_failed(m, name, ret) : own(m, mv_alias_region_base(r));
}

void mvb_map(mv_machine *m, mv_region *parent, uint64_t addr, mv_region *child, int priority)
{
	int ret;

	if (m->ret)
		return;
	ret = mv_region_add_subregion_overlap(parent, addr, child, priority);
	if (ret)
		mvb_fail(m, ret, "machine '%s': cannot map region '%s' at 0x%" PRIx64 " in '%s': %s",
			 m->board->name, mv_region_name(child), addr, mv_region_name(parent),
			 strerror(-ret));
}

void mvb_map_device(mv_machine *m, mv_region *parent, uint64_t addr, const char *name,
		    mv_u128 size, int priority)
{
	mvb_map(m, parent, addr, mvb_device(m, name, size), priority);
}

void mvb_device_memory(mv_machine *m, uint64_t base, uint64_t size)
{
	mv_region *dm = mvb_container(m, "device-memory", size);

	mvb_map(m, m->system, base, dm, 0);
	if (m->ret)
		return;
	m->device_memory = dm;
	m->dm_base = base;
	m->dm_size = size;
}

/* ------------------------------------------------------------------ */
/* Creation and teardown                                                */

/* Resolve defaults and check the -m settings for @board. */
static int resolve_opts(const mv_board *board, const mv_machine_opts *in,
			mv_machine_opts *out, mv_error *err)
{
	int ret;

	*out = in ? *in : (mv_machine_opts){ 0 };
	if (!out->ram_size)
		out->ram_size = MV_DEFAULT_RAM_SIZE;
	ret = mvm_check_mem(out, out->ram_size, err);
	if (ret)
		return ret;
	/* QEMU's maxram_size: the initial size when maxmem is not given */
	if (!out->maxmem)
		out->maxmem = out->ram_size;
	if (!board->memory_hotplug && (out->slots || out->maxmem > out->ram_size))
		return mv_error_set(err, -EINVAL,
				    "machine '%s' has no memory hotplug: slots and maxmem cannot be used with it",
				    board->name);
	return board->check ? board->check(out, err) : 0;
}

/* Root containers and address spaces first: the build then renders once. */
static void build_roots(mv_machine *m)
{
	int ret;

	/* QEMU's system memory and system I/O (softmmu/physmem.c memory_map_init) */
	m->system = mvb_container(m, "system", MV_2_64);
	if (m->board->has_io_space)
		m->io = mvb_unassigned(m, "io", 0x10000);
	if (m->ret)
		return;
	ret = mv_address_space_new(m->mem, m->system, "memory", &m->memory_as);
	if (!ret && m->io)
		ret = mv_address_space_new(m->mem, m->io, "I/O", &m->io_as);
	if (ret)
		mvb_fail(m, ret, "machine '%s': cannot create its address spaces: %s",
			 m->board->name, strerror(-ret));
}

int mv_machine_new(mv_memory *mem, const char *type, const mv_machine_opts *opts,
		   mv_machine **out, mv_error *err)
{
	const mv_board *board;
	mv_machine_opts o;
	mv_machine *m;
	int ret;

	if (!mem || !type || !out)
		return mv_error_set(err, -EINVAL, "machine: no memory system, type or result pointer given");
	board = find_board(type);
	if (!board)
		return mv_error_set(err, -EINVAL,
				    "unknown machine type '%s' (known: %s, %s, %s)", type,
				    type_names[0], type_names[1], type_names[2]);
	ret = resolve_opts(board, opts, &o, err);
	if (ret)
		return ret;
	m = mv_zalloc(m_alloc(NULL), sizeof(*m));
	if (!m)
		return mv_error_set(err, -ENOMEM, "machine '%s': out of memory", type);
	m->mem = mem;
	m->board = board;
	m->opts = o;
	m->err = err;

	mv_memory_begin(mem);
	build_roots(m);
	if (!m->ret)
		board->build(m);
	ret = mv_memory_commit(mem);
	if (ret && !m->ret)
		mvb_fail(m, ret, "machine '%s': cannot render its memory map: %s", type,
			 strerror(-ret));
	m->err = NULL;
	if (m->ret) {
		ret = m->ret;
		mv_machine_free(m);
		return ret;
	}
	*out = m;
	return 0;
}

void mv_machine_free(mv_machine *m)
{
	size_t i;

	if (!m)
		return;
	/* spaces first: they hold the roots, and their listeners see region_del */
	mv_address_space_free(m->io_as);
	mv_address_space_free(m->memory_as);
	for (i = 0; i < m->nr_dimms; i++) {
		mv_region_unref(mv_ram_region_base(m->dimms[i].mr));
		mv_ramblock_unref(m->dimms[i].block);
		mv_free(m_alloc(m), m->dimms[i].id);
	}
	for (i = m->nr_owned; i-- > 0;)
		mv_region_unref(m->owned[i]);
	for (i = 0; i < m->nr_blocks; i++)
		mv_ramblock_unref(m->blocks[i]);
	mv_free(m_alloc(m), m->dimms);
	mv_free(m_alloc(m), m->owned);
	mv_free(m_alloc(m), m->blocks);
	mv_free(m_alloc(m), m);
}

/* ------------------------------------------------------------------ */
/* Queries                                                              */

const char *mv_machine_type(const mv_machine *m) { return m->board->name; }
mv_region *mv_machine_system_memory(mv_machine *m) { return m->system; }
mv_address_space *mv_machine_memory_as(mv_machine *m) { return m->memory_as; }
mv_address_space *mv_machine_io_as(mv_machine *m) { return m->io_as; }
mv_ramblock *mv_machine_ram_block(mv_machine *m) { return m->ram; }
uint64_t mv_machine_device_memory_base(const mv_machine *m) { return m->dm_base; }
uint64_t mv_machine_device_memory_size(const mv_machine *m) { return m->dm_size; }
