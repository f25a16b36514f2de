/*
 * Helpers for core memory tests: build I/O regions tersely and print a
 * FlatView compactly ("start-end name@offset flags" per range) so tests
 * compare one string.
 */
#ifndef MV_TESTS_COREUTIL_H
#define MV_TESTS_COREUTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memvirt/hv.h"
#include "memvirt/listener.h"
#include "memvirt/memory.h"

static inline mv_region *cu_io(mv_memory *mem, const char *name, mv_u128 size)
{
	mv_io_region *r;

	assert_int_equal(mv_io_region_new(mem, name, size, NULL, NULL, &r), 0);
	return mv_io_region_base(r);
}

static inline mv_region *cu_container(mv_memory *mem, const char *name, mv_u128 size)
{
	mv_region *r;

	assert_int_equal(mv_container_new(mem, name, size, &r), 0);
	return r;
}

static inline mv_region *cu_alias(mv_memory *mem, const char *name, mv_region *target,
				  uint64_t off, mv_u128 size)
{
	mv_alias_region *r;

	assert_int_equal(mv_alias_region_new(mem, name, target, off, size, &r), 0);
	return mv_alias_region_base(r);
}

/* Add @child to @parent and drop the caller's reference (the parent keeps one). */
static inline void cu_add(mv_region *parent, uint64_t off, mv_region *child, int prio)
{
	assert_int_equal(mv_region_add_subregion_overlap(parent, off, child, prio), 0);
	mv_region_unref(child);
}

/* "start-last name[@off][ ro][ nv]" lines, one per range. */
static inline void cu_flat(mv_address_space *as, char *buf, size_t len)
{
	mv_flatview *fv = mv_address_space_get_flatview(as);
	size_t used = 0;

	buf[0] = 0;
	for (size_t i = 0; i < mv_flatview_nr_ranges(fv); i++) {
		const mv_flat_range *fr = mv_flatview_range(fv, i);

		used += snprintf(buf + used, len - used, "%llx-%llx %s",
				 (unsigned long long)fr->start,
				 (unsigned long long)(fr->start + (uint64_t)(fr->size - 1)),
				 mv_region_name(fr->mr));
		if (fr->offset_in_region)
			used += snprintf(buf + used, len - used, "@%llx",
					 (unsigned long long)fr->offset_in_region);
		used += snprintf(buf + used, len - used, "%s%s\n", fr->readonly ? " ro" : "",
				 fr->nonvolatile ? " nv" : "");
	}
	mv_flatview_unref(fv);
}

/*
 * Fixture: a memory system with one address space "memory" whose root is
 * a 2^64 container, plus a scratch log for tests that record events.
 */
typedef struct fixture {
	mv_memory *mem;
	mv_region *root;
	mv_address_space *as;
	char log[16384];
} fixture;

static inline int cu_setup(void **state)
{
	fixture *f = calloc(1, sizeof(*f));

	assert_int_equal(mv_memory_new(NULL, &f->mem), 0);
	f->root = cu_container(f->mem, "root", MV_2_64);
	assert_int_equal(mv_address_space_new(f->mem, f->root, "memory", &f->as), 0);
	*state = f;
	return 0;
}

static inline int cu_teardown(void **state)
{
	fixture *f = *state;

	mv_region_unref(f->root);
	mv_memory_free(f->mem);
	free(f);
	return 0;
}

#define cu_assert_flat(as, expected)                         \
	do {                                                 \
		char buf_[8192];                             \
		cu_flat((as), buf_, sizeof(buf_));           \
		assert_string_equal(buf_, (expected));       \
	} while (0)

/* Sections of @fv an accelerator listener must map: RAM, ROM, romd ROM devices with a whole page. */
static inline unsigned cu_mappable_sections(mv_flatview *fv)
{
	unsigned n = 0;

	for (size_t i = 0; i < mv_flatview_nr_ranges(fv); i++) {
		const mv_flat_range *fr = mv_flatview_range(fv, i);
		mv_region_kind k = mv_region_get_kind(fr->mr);
		uint64_t start = (fr->start + HV_PAGE_SIZE - 1) & ~(uint64_t)(HV_PAGE_SIZE - 1);
		mv_u128 end = ((mv_u128)fr->start + fr->size) & ~(mv_u128)(HV_PAGE_SIZE - 1);

		if ((k == MV_REGION_RAM || k == MV_REGION_ROM ||
		     (k == MV_REGION_ROMD && fr->romd_mode)) && end > start)
			n++;
	}
	return n;
}

#endif
