/*
 * `info mtree`: the region trees of a memory system, printed line for line
 * as QEMU 7.2 prints them (so output can be diffed against a real QEMU).
 *
 * Layout: one block per distinct root region, headed by the names of the
 * address spaces rendering it; then one "memory-region:" block for every
 * region reached through an alias, in the order they were first met.
 */
#include "memvirt/mtree.h"

#include <inttypes.h>
#include <string.h>

#include "mtree/internal.h"

struct tree_ctx {
	FILE *out;
	/* Alias targets still to print; grows while it is being printed. */
	mt_ptrvec aliased;
	int err;
};

static void print_region(struct tree_ctx *c, mv_region *mr, unsigned level,
			 uint64_t base);

/*
 * Does @a print before @b? Address ascending, then priority descending;
 * false on ties so the insertion sort below stays stable, which keeps the
 * render order (QEMU's subregion list order) among equal keys.
 */
static bool child_before(const mv_region *a, const mv_region *b)
{
	if (mv_region_addr(a) != mv_region_addr(b))
		return mv_region_addr(a) < mv_region_addr(b);
	return mv_region_priority(a) > mv_region_priority(b);
}

/* The children of @mr in print order, or NULL (none, or -ENOMEM in @c). */
static mv_region **sorted_children(struct tree_ctx *c, const mv_region *mr, size_t *nr)
{
	size_t n = mv_region_nr_subregions(mr);
	mv_region **v;

	*nr = 0;
	if (!n)
		return NULL;
	v = mv_zalloc(NULL, n * sizeof(*v));
	if (!v) {
		c->err = -ENOMEM;
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		mv_region *child = mv_region_subregion(mr, i);
		size_t j = i;

		while (j > 0 && child_before(child, v[j - 1])) {
			v[j] = v[j - 1];
			j--;
		}
		v[j] = child;
	}
	*nr = n;
	return v;
}

/* Queue the target of alias @mr for a "memory-region:" block, once. */
static void queue_alias_target(struct tree_ctx *c, mv_region *mr)
{
	mv_region *target = mv_alias_region_target(mv_region_as_alias(mr));

	if (mt_ptrvec_find(&c->aliased, target) < 0 && mt_ptrvec_push(&c->aliased, target))
		c->err = -ENOMEM;
}

/* The line of @mr itself, without the indentation. */
static void print_line(struct tree_ctx *c, mv_region *mr, uint64_t start, uint64_t end)
{
	const char *nv = mv_region_nonvolatile(mr) ? "nv-" : "";
	const char *disabled = mv_region_enabled(mr) ? "" : " [disabled]";

	fprintf(c->out, "%016" PRIx64 "-%016" PRIx64 " (prio %d, %s%s): ",
		start, end, mv_region_priority(mr), nv, mv_region_type_name(mr));
	if (mv_region_get_kind(mr) == MV_REGION_ALIAS) {
		mv_alias_region *alias = mv_region_as_alias(mr);
		uint64_t off = mv_alias_region_offset(alias);

		fprintf(c->out, "alias %s @%s %016" PRIx64 "-%016" PRIx64 "%s\n",
			mv_region_name(mr),
			mv_region_name(mv_alias_region_target(alias)),
			off, off + mt_last_offset(mv_region_size(mr)), disabled);
	} else {
		fprintf(c->out, "%s%s\n", mv_region_name(mr), disabled);
	}
}

/*
 * Print @mr at @level (its parent starts at @base) and its subtree.
 * As in QEMU, a disabled region's own line is hidden but its children are
 * still printed, and the overflow warning is emitted even when the line
 * itself is hidden.
 */
static void print_region(struct tree_ctx *c, mv_region *mr, unsigned level,
			 uint64_t base)
{
	uint64_t start = base + mv_region_addr(mr);
	uint64_t end = start + mt_last_offset(mv_region_size(mr));
	mv_region **children;
	size_t nr;

	if (start < base || end < start)
		fputs("[DETECTED OVERFLOW!] ", c->out);
	if (mv_region_get_kind(mr) == MV_REGION_ALIAS)
		queue_alias_target(c, mr);
	if (mv_region_enabled(mr)) {
		for (unsigned i = 0; i < level; i++)
			fputs(MTREE_INDENT, c->out);
		print_line(c, mr, start, end);
	}
	children = sorted_children(c, mr, &nr);
	for (size_t i = 0; i < nr; i++)
		print_region(c, children[i], level + 1, start);
	mv_free(NULL, children);
}

/*
 * Insert @as into the name-sorted group @group. Like GLib's
 * g_slist_insert_sorted, which QEMU uses, a name equal to an existing one
 * goes before it.
 */
static int group_insert(mt_ptrvec *group, mv_address_space *as)
{
	size_t j;

	if (mt_ptrvec_push(group, as))
		return -ENOMEM;
	for (j = group->n - 1; j > 0; j--) {
		if (strcmp(mv_address_space_name(as), mv_address_space_name(group->v[j - 1])) > 0)
			break;
		group->v[j] = group->v[j - 1];
	}
	group->v[j] = as;
	return 0;
}

/* The address spaces of @mem whose root is @root, sorted by name. */
static int collect_group(mv_memory *mem, mv_region *root, mt_ptrvec *group)
{
	size_t n = mv_memory_nr_address_spaces(mem);

	for (size_t i = 0; i < n; i++) {
		mv_address_space *as = mv_memory_address_space(mem, i);

		if (mv_address_space_root(as) == root && group_insert(group, as))
			return -ENOMEM;
	}
	return 0;
}

/* Distinct roots of the address spaces, in order of first appearance. */
static int collect_roots(mv_memory *mem, mt_ptrvec *roots)
{
	size_t n = mv_memory_nr_address_spaces(mem);

	for (size_t i = 0; i < n; i++) {
		mv_region *root = mv_address_space_root(mv_memory_address_space(mem, i));

		if (mt_ptrvec_find(roots, root) < 0 && mt_ptrvec_push(roots, root))
			return -ENOMEM;
	}
	return 0;
}

/* One "address-space:" block: the names sharing @root, then its tree. */
static void print_as_group(struct tree_ctx *c, mv_memory *mem, mv_region *root)
{
	mt_ptrvec group = { 0 };

	if (collect_group(mem, root, &group)) {
		c->err = -ENOMEM;
	} else {
		for (size_t i = 0; i < group.n; i++)
			fprintf(c->out, "address-space: %s\n", mv_address_space_name(group.v[i]));
		print_region(c, root, 1, 0);
		fputc('\n', c->out);
	}
	mt_ptrvec_free(&group);
}

/**
 * mv_mtree_print_tree - print every region tree of @mem as `info mtree`
 * @out: stream to write to
 * @mem: memory system (read on the caller's mutation thread)
 *
 * Returns 0, -ENOMEM (output is then incomplete) or -EIO if @out failed.
 */
int mv_mtree_print_tree(FILE *out, mv_memory *mem)
{
	struct tree_ctx c = { .out = out };
	mt_ptrvec roots = { 0 };

	c.err = collect_roots(mem, &roots);
	for (size_t i = 0; !c.err && i < roots.n; i++)
		print_as_group(&c, mem, roots.v[i]);
	/* Printing a queued region may queue more (aliases of aliases). */
	for (size_t i = 0; !c.err && i < c.aliased.n; i++) {
		fprintf(out, "memory-region: %s\n", mv_region_name(c.aliased.v[i]));
		print_region(&c, c.aliased.v[i], 1, 0);
		fputc('\n', out);
	}
	mt_ptrvec_free(&roots);
	mt_ptrvec_free(&c.aliased);
	return c.err ? c.err : mt_stream_status(out);
}
