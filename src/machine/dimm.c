/*
 * DIMM hot(un)plug into the device-memory window (QEMU's pc-dimm with a
 * memory-backend-ram: hw/mem/pc-dimm.c, hw/mem/memory-device.c).
 *
 * A DIMM is a RAM block and a RAM region both named after its id, mapped
 * in the "device-memory" container, so it appears in the "memory" address
 * space and its listeners see region_add / region_del.
 */
#include "machine/board.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "util/alloc.h"

static mv_dimm *find_dimm(mv_machine *m, const char *id)
{
	for (size_t i = 0; i < m->nr_dimms; i++)
		if (!strcmp(m->dimms[i].id, id))
			return &m->dimms[i];
	return NULL;
}

static uint64_t plugged_bytes(const mv_machine *m)
{
	uint64_t sum = 0;

	for (size_t i = 0; i < m->nr_dimms; i++)
		sum += m->dimms[i].size;
	return sum;
}

/* Checks that do not depend on the address. */
static int check_plug(mv_machine *m, const char *id, uint64_t size, mv_error *err)
{
	char a[32], b[32], c[32];

	if (!m->dm_size || !m->opts.slots)
		return mv_error_set(err, -ENODEV,
				    "DIMM '%s': machine '%s' has no DIMM slots (use -m SIZE,slots=N,maxmem=SIZE)",
				    id, m->board->name);
	if (find_dimm(m, id))
		return mv_error_set(err, -EEXIST, "DIMM '%s' is already plugged", id);
	if (mv_ram_list_find(mv_memory_ram_list(m->mem), id))
		return mv_error_set(err, -EEXIST, "DIMM '%s': the id is already used by a RAM block", id);
	if (!size || size % MV_DIMM_ALIGN)
		return mv_error_set(err, -EINVAL,
				    "DIMM '%s': size %s is not a positive multiple of 2 MiB", id,
				    mvm_size_str(a, size));
	if (m->nr_dimms >= m->opts.slots)
		return mv_error_set(err, -ENOSPC, "DIMM '%s': all %u DIMM slots are in use", id,
				    m->opts.slots);
	if (size > m->opts.maxmem - m->opts.ram_size - plugged_bytes(m))
		return mv_error_set(err, -ENOSPC,
				    "DIMM '%s': %s more would exceed maxmem=%s (%s of RAM and DIMMs in use)",
				    id, mvm_size_str(a, size), mvm_size_str(b, m->opts.maxmem),
				    mvm_size_str(c, m->opts.ram_size + plugged_bytes(m)));
	return 0;
}

static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

/* An explicit address: aligned, inside the window, clear of other DIMMs. */
static int check_addr(mv_machine *m, const char *id, uint64_t addr, uint64_t size,
		      mv_error *err)
{
	uint64_t end = m->dm_base + m->dm_size;

	if (addr % MV_DIMM_ALIGN)
		return mv_error_set(err, -EINVAL, "DIMM '%s': address 0x%" PRIx64 " is not 2 MiB aligned",
				    id, addr);
	if (addr < m->dm_base || addr > end || size > end - addr)
		return mv_error_set(err, -ERANGE,
				    "DIMM '%s': [0x%" PRIx64 ", 0x%" PRIx64 ") is outside the device-memory window [0x%" PRIx64 ", 0x%" PRIx64 ")",
				    id, addr, addr + size, m->dm_base, end);
	for (size_t i = 0; i < m->nr_dimms; i++) {
		const mv_dimm *d = &m->dimms[i];

		if (overlaps(addr, size, d->addr, d->size))
			return mv_error_set(err, -EBUSY,
					    "DIMM '%s': [0x%" PRIx64 ", 0x%" PRIx64 ") overlaps DIMM '%s' at [0x%" PRIx64 ", 0x%" PRIx64 ")",
					    id, addr, addr + size, d->id, d->addr, d->addr + d->size);
	}
	return 0;
}

/* QEMU's memory_device_get_free_addr without a hint: first fit. */
static int auto_addr(mv_machine *m, const char *id, uint64_t size, uint64_t *out,
		     mv_error *err)
{
	uint64_t addr = mvm_align_up(m->dm_base, MV_DIMM_ALIGN);
	char a[32];

	for (size_t i = 0; i < m->nr_dimms; i++) {
		const mv_dimm *d = &m->dimms[i];

		if (overlaps(addr, size, d->addr, d->size))
			addr = mvm_align_up(d->addr + d->size, MV_DIMM_ALIGN);
	}
	if (addr + size > m->dm_base + m->dm_size)
		return mv_error_set(err, -ENOSPC,
				    "DIMM '%s': no free %s range left in the device-memory window",
				    id, mvm_size_str(a, size));
	*out = addr;
	return 0;
}

/* Make room for one more DIMM record at its sorted position. */
static int dimm_slot(mv_machine *m, uint64_t addr, size_t *pos)
{
	size_t i;

	if (mv_grow(NULL, (void **)&m->dimms, &m->cap_dimms, m->nr_dimms + 1, sizeof(*m->dimms)))
		return -ENOMEM;
	for (i = 0; i < m->nr_dimms && m->dimms[i].addr < addr; i++)
		;
	*pos = i;
	return 0;
}

/* Block, region and the mapping, in one transaction; undone on failure. */
static int dimm_map(mv_machine *m, mv_dimm *d, mv_error *err)
{
	mv_ramblock_opts o = { .backing = MV_RAM_ANON_PRIVATE, .noreserve = true };
	int ret;

	ret = mv_ramblock_new(mv_memory_ram_list(m->mem), d->id, d->size, &o, &d->block, err);
	if (ret)
		return ret;
	ret = mv_ram_region_new(m->mem, d->id, d->block, &d->mr);
	if (ret) {
		mv_ramblock_unref(d->block);
		return mv_error_set(err, ret, "DIMM '%s': cannot create its RAM region", d->id);
	}
	mv_memory_begin(m->mem);
	ret = mv_region_add_subregion(m->device_memory, d->addr - m->dm_base,
				      mv_ram_region_base(d->mr));
	if (!ret) {
		ret = mv_memory_commit(m->mem);
		/* the new view could not be rendered: take the DIMM back out */
		if (ret)
			mv_region_del_subregion(m->device_memory, mv_ram_region_base(d->mr));
	} else {
		mv_memory_commit(m->mem);
	}
	if (ret) {
		mv_region_unref(mv_ram_region_base(d->mr));
		mv_ramblock_unref(d->block);
		return mv_error_set(err, ret, "DIMM '%s': cannot map it at 0x%" PRIx64 ": %s",
				    d->id, d->addr, strerror(-ret));
	}
	return 0;
}

int mv_machine_dimm_plug(mv_machine *m, const char *id, uint64_t size, uint64_t addr,
			 uint64_t *out_addr, mv_error *err)
{
	mv_dimm d = { 0 };
	size_t pos;
	int ret;

	if (!m || !id || !id[0])
		return mv_error_set(err, -EINVAL, "DIMM: a machine and a non-empty id are needed");
	ret = check_plug(m, id, size, err);
	if (!ret)
		ret = addr == MV_DIMM_ADDR_AUTO ? auto_addr(m, id, size, &addr, err) :
						   check_addr(m, id, addr, size, err);
	if (ret)
		return ret;
	d.id = mv_strdup(NULL, id);
	if (!d.id || dimm_slot(m, addr, &pos)) {
		mv_free(NULL, d.id);
		return mv_error_set(err, -ENOMEM, "DIMM '%s': out of memory", id);
	}
	d.addr = addr;
	d.size = size;
	ret = dimm_map(m, &d, err);
	if (ret) {
		mv_free(NULL, d.id);
		return ret;
	}
	memmove(&m->dimms[pos + 1], &m->dimms[pos], (m->nr_dimms - pos) * sizeof(*m->dimms));
	m->dimms[pos] = d;
	m->nr_dimms++;
	if (out_addr)
		*out_addr = addr;
	return 0;
}

int mv_machine_dimm_unplug(mv_machine *m, const char *id, mv_error *err)
{
	mv_region *r;
	mv_dimm *d;
	int ret;

	if (!m || !id)
		return mv_error_set(err, -EINVAL, "DIMM: a machine and an id are needed");
	d = find_dimm(m, id);
	if (!d)
		return mv_error_set(err, -ENOENT, "DIMM '%s' is not plugged", id);
	r = mv_ram_region_base(d->mr);
	mv_memory_begin(m->mem);
	mv_region_ref(r);       /* keep it alive across del for a possible re-add */
	mv_region_del_subregion(m->device_memory, r);
	ret = mv_memory_commit(m->mem);
	if (ret) {
		/* could not render the view without it: put it back as it was */
		mv_region_add_subregion(m->device_memory, d->addr - m->dm_base, r);
		mv_region_unref(r);
		return mv_error_set(err, ret, "DIMM '%s': cannot unmap it: %s", id, strerror(-ret));
	}
	mv_region_unref(r);
	mv_region_unref(r);     /* our own reference: the region goes when views drop it */
	/* as QEMU, the id is free again at once; the memory goes with the last view */
	mv_ramblock_remove(d->block);
	mv_ramblock_unref(d->block);
	mv_free(NULL, d->id);
	memmove(d, d + 1, (size_t)(&m->dimms[m->nr_dimms] - (d + 1)) * sizeof(*d));
	m->nr_dimms--;
	return 0;
}
