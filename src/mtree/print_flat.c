/*
 * `info mtree -f`: the FlatViews of a memory system, printed line for line
 * as QEMU 7.2 prints them. Address spaces that share a FlatView are listed
 * in one block; blocks come in the order of the first address space using
 * each view (QEMU walks a hash table, whose order is not meaningful).
 */
#include "memvirt/mtree.h"

#include <inttypes.h>

#include "mtree/internal.h"

/* One range line: start-end, priority, flags, type, name and @offset. */
static void print_range(FILE *out, const mv_flat_range *fr)
{
	uint64_t end = fr->start + mt_last_offset(fr->size);

	fprintf(out, MTREE_INDENT "%016" PRIx64 "-%016" PRIx64 " (prio %d, %s%s): %s",
		fr->start, end, mv_region_priority(fr->mr),
		fr->nonvolatile ? "nv-" : "",
		fr->readonly ? "rom" : mv_region_type_name(fr->mr),
		mv_region_name(fr->mr));
	if (fr->offset_in_region)
		fprintf(out, " @%016" PRIx64, fr->offset_in_region);
	fputc('\n', out);
}

/* The header of view #@nr: its address spaces and its root region. */
static void print_view_header(FILE *out, unsigned nr, const mv_flatview *fv,
			      const mt_ptrvec *spaces)
{
	const mv_region *root = mv_flatview_root(fv);

	fprintf(out, "FlatView #%u\n", nr);
	for (size_t i = 0; i < spaces->n; i++) {
		mv_address_space *as = spaces->v[i];
		mv_region *asroot = mv_address_space_root(as);
		mv_alias_region *alias = mv_region_as_alias(asroot);

		fprintf(out, " AS \"%s\", root: %s", mv_address_space_name(as),
			mv_region_name(asroot));
		if (alias)
			fprintf(out, ", alias %s", mv_region_name(mv_alias_region_target(alias)));
		fputc('\n', out);
	}
	fprintf(out, " Root memory region: %s\n", root ? mv_region_name(root) : "(none)");
}

static void print_view(FILE *out, unsigned nr, mv_flatview *fv, const mt_ptrvec *spaces)
{
	size_t n = mv_flatview_nr_ranges(fv);

	print_view_header(out, nr, fv, spaces);
	if (!n)
		fputs(MTREE_INDENT "No rendered FlatView\n", out);
	for (size_t i = 0; i < n; i++)
		print_range(out, mv_flatview_range(fv, i));
	fputc('\n', out);
}

/**
 * mv_mtree_print_flat - print every FlatView of @mem as `info mtree -f`
 * @out: stream to write to
 * @mem: memory system
 *
 * Runs on the mutation thread (it walks the address-space list); each view
 * is held by a reference while printed. Returns 0, -ENOMEM (nothing printed) or -EIO if @out failed.
 */
int mv_mtree_print_flat(FILE *out, mv_memory *mem)
{
	mt_views vs = { 0 };
	int err = mt_views_collect(&vs, mem);

	for (size_t i = 0; !err && i < vs.views.n; i++)
		print_view(out, (unsigned)i, vs.views.v[i], vs.spaces.v[i]);
	mt_views_free(&vs);
	return err ? err : mt_stream_status(out);
}
