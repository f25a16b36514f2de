/*
 * Config loader, step 2: resolve the ids that "parent", "alias-of" and
 * "root" name, and reject layouts the memory core could never render:
 * children of aliases, alias windows past their target, and cycles (a
 * region that, through children and alias targets, renders itself).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "mtree/config_internal.h"
#include "util/alloc.h"

/* Index of the region with id @id, or CFG_NONE. */
static size_t lookup(struct cfg_doc *d, const char *id)
{
	json_t *v = json_object_get(d->ids, id);

	return v ? (size_t)json_integer_value(v) : CFG_NONE;
}

/* Fill d->ids; the first use of an id wins, a second one is an error. */
static int index_ids(struct cfg_doc *d)
{
	d->ids = json_object();
	if (!d->ids)
		return cfg_fail(d, -ENOMEM, "out of memory indexing region ids");
	for (size_t i = 0; i < d->nr_regions; i++) {
		size_t prev = lookup(d, d->regions[i].id);

		if (prev != CFG_NONE)
			return cfg_region_fail(d, i, -EEXIST, "field \"id\" duplicates the id "
					       "of regions[%zu] (ids must be unique; "
					       "names may repeat)", prev);
		if (json_object_set_new(d->ids, d->regions[i].id, json_integer((json_int_t)i)))
			return cfg_fail(d, -ENOMEM, "out of memory indexing region ids");
	}
	return 0;
}

static int resolve_region(struct cfg_doc *d, size_t i)
{
	struct cfg_region *r = &d->regions[i];

	if (r->parent_id) {
		r->parent = lookup(d, r->parent_id);
		if (r->parent == CFG_NONE)
			return cfg_region_fail(d, i, -ENOENT, "field \"parent\" names unknown "
					       "region \"%s\"", r->parent_id);
		if (d->regions[r->parent].kind == MV_REGION_ALIAS)
			return cfg_region_fail(d, i, -EINVAL, "field \"parent\" names alias "
					       "\"%s\", and aliases cannot have children",
					       r->parent_id);
	}
	if (r->alias_id) {
		r->target = lookup(d, r->alias_id);
		if (r->target == CFG_NONE)
			return cfg_region_fail(d, i, -ENOENT, "field \"alias-of\" names unknown "
					       "region \"%s\"", r->alias_id);
	}
	return 0;
}

/* The window [alias-offset, alias-offset + size) must lie inside the target. */
static int check_alias_window(struct cfg_doc *d, size_t i)
{
	const struct cfg_region *r = &d->regions[i];
	char a[24], b[24], c[24];

	if (r->kind != MV_REGION_ALIAS)
		return 0;
	if ((mv_u128)r->alias_offset + r->size <= d->regions[r->target].size)
		return 0;
	return cfg_region_fail(d, i, -EINVAL, "fields \"alias-offset\" %s + \"size\" %s reach "
			       "past the end of \"%s\" (size %s)",
			       cfg_hex(a, sizeof(a), r->alias_offset),
			       cfg_hex(b, sizeof(b), r->size), r->alias_id,
			       cfg_hex(c, sizeof(c), d->regions[r->target].size));
}

/*
 * Cycle search. Edges go from a region to what rendering it needs: its
 * children ("contains") and its alias target ("is an alias of"). Children
 * lists are kept in compressed form: the children of region i are
 * child[first[i] .. first[i + 1]).
 */
struct graph {
	struct cfg_doc *d;
	size_t *first, *child;
	unsigned char *state;    /* 0 unvisited, 1 on the DFS path, 2 done */
	size_t *path;            /* DFS path, path[0..depth) */
	size_t depth;
};

static int graph_init(struct graph *g, struct cfg_doc *d)
{
	size_t n = d->nr_regions;

	g->d = d;
	g->depth = 0;
	g->first = mv_zalloc(NULL, (n + 1) * sizeof(*g->first));
	g->child = mv_zalloc(NULL, (n ? n : 1) * sizeof(*g->child));
	g->state = mv_zalloc(NULL, n ? n : 1);
	g->path = mv_zalloc(NULL, (n ? n : 1) * sizeof(*g->path));
	if (!g->first || !g->child || !g->state || !g->path)
		return -ENOMEM;
	/* Counting sort of the children by parent, file order kept. */
	for (size_t i = 0; i < n; i++)
		if (d->regions[i].parent != CFG_NONE)
			g->first[d->regions[i].parent + 1]++;
	for (size_t i = 0; i < n; i++)
		g->first[i + 1] += g->first[i];
	{
		size_t *fill = g->path;   /* borrowed as a cursor array until the DFS */

		memcpy(fill, g->first, n * sizeof(*fill));
		for (size_t i = 0; i < n; i++)
			if (d->regions[i].parent != CFG_NONE)
				g->child[fill[d->regions[i].parent]++] = i;
	}
	return 0;
}

static void graph_free(struct graph *g)
{
	mv_free(NULL, g->first);
	mv_free(NULL, g->child);
	mv_free(NULL, g->state);
	mv_free(NULL, g->path);
}

/* Does region @from reach @to by its alias edge (rather than as a parent)? */
static bool is_alias_edge(const struct cfg_doc *d, size_t from, size_t to)
{
	return d->regions[from].target == to && d->regions[to].parent != from;
}

/*
 * Report the cycle closed by the edge @from -> @to (@to is on the path).
 * The region whose field creates that edge is named: the alias for an
 * alias edge, the child for a containment edge.
 */
static int report_cycle(struct graph *g, size_t from, size_t to)
{
	struct cfg_doc *d = g->d;
	char text[sizeof(d->err->msg)];
	size_t start = g->depth, len = 0;
	bool all_alias = true;

	while (g->path[start - 1] != to)
		start--;
	start--;
	text[0] = 0;
	for (size_t k = start; k < g->depth; k++) {
		size_t a = g->path[k];
		size_t b = k + 1 < g->depth ? g->path[k + 1] : to;
		bool alias = is_alias_edge(d, a, b);

		all_alias &= alias;
		len += snprintf(text + len, len < sizeof(text) ? sizeof(text) - len : 0,
				"%s\"%s\" %s \"%s\"", k == start ? "" : ", ",
				d->regions[a].id, alias ? "is an alias of" : "contains",
				d->regions[b].id);
		if (len >= sizeof(text))
			len = sizeof(text) - 1;
	}
	if (is_alias_edge(d, from, to))
		return cfg_region_fail(d, from, -ELOOP, "field \"alias-of\" makes %s: %s",
				       all_alias ? "an alias cycle" : "a cycle", text);
	return cfg_region_fail(d, to, -ELOOP, "field \"parent\" makes a cycle: %s", text);
}

static int visit(struct graph *g, size_t i);

/* Follow the edge @i -> @j. */
static int follow(struct graph *g, size_t i, size_t j)
{
	if (g->state[j] == 1)
		return report_cycle(g, i, j);
	return g->state[j] ? 0 : visit(g, j);
}

/* Depth-first search from @i; recursion depth is bounded by the region count. */
static int visit(struct graph *g, size_t i)
{
	const struct cfg_region *r = &g->d->regions[i];
	int ret;

	g->state[i] = 1;
	g->path[g->depth++] = i;
	for (size_t k = g->first[i]; k < g->first[i + 1]; k++)
		if ((ret = follow(g, i, g->child[k])))
			return ret;
	if (r->target != CFG_NONE && (ret = follow(g, i, r->target)))
		return ret;
	g->depth--;
	g->state[i] = 2;
	return 0;
}

static int check_cycles(struct cfg_doc *d)
{
	struct graph g = { 0 };
	int ret = graph_init(&g, d);

	if (ret) {
		ret = cfg_fail(d, ret, "out of memory checking for cycles");
	} else {
		for (size_t i = 0; !ret && i < d->nr_regions; i++)
			if (!g.state[i])
				ret = visit(&g, i);
	}
	graph_free(&g);
	return ret;
}

static int resolve_space(struct cfg_doc *d, size_t i)
{
	struct cfg_space *s = &d->spaces[i];

	s->root = lookup(d, s->root_id);
	if (s->root == CFG_NONE)
		return cfg_fail(d, -ENOENT, "address space \"%s\": field \"root\" names unknown "
				"region \"%s\"", s->name, s->root_id);
	return 0;
}

/**
 * cfg_resolve - link the records of a parsed document together
 * @d: document after cfg_parse
 *
 * Sets parent/target/root indices. Errors: -EEXIST duplicate id, -ENOENT
 * unknown id, -ELOOP cycle, -EINVAL bad parent or alias window.
 */
int cfg_resolve(struct cfg_doc *d)
{
	int ret;

	if ((ret = index_ids(d)))
		return ret;
	for (size_t i = 0; i < d->nr_regions; i++)
		if ((ret = resolve_region(d, i)))
			return ret;
	if ((ret = check_cycles(d)))
		return ret;
	for (size_t i = 0; i < d->nr_regions; i++)
		if ((ret = check_alias_window(d, i)))
			return ret;
	for (size_t i = 0; i < d->nr_spaces; i++)
		if ((ret = resolve_space(d, i)))
			return ret;
	return 0;
}
