/*
 * Dispatch table: from a guest physical address to the section of one
 * FlatView that contains it (QEMU's AddressSpaceDispatch and PhysPageMap).
 *
 * Radix tree. The 52-bit page number (4 KiB pages) is split into 6 levels
 * of 9 bits (the top level uses 7). A node is 512 entries of 32 bits,
 * {skip:6, ptr:26} as QEMU's PhysPageEntry:
 *   skip != 0  ptr is the index of a node `skip` levels further down, or
 *              NODE_NIL when nothing below is mapped;
 *   skip == 0  a leaf: ptr is a section index, or LEAF_SUBPAGE | index of
 *              a sub-page table.
 * Whole pages of a section are leaves; an aligned run of 512^k pages is one
 * leaf k levels up (QEMU's phys_page_set_level). After the build, chains of
 * single-child nodes are skipped (QEMU's phys_page_compact), so a walk may
 * land on a leaf that does not cover the address: the final covers check
 * turns that into "unassigned".
 *
 * Sub-pages. A page shared by several sections, or only partly mapped, is a
 * leaf pointing to a sorted run list {start offset in page, section index}:
 * each run lasts until the next run's start. QEMU keeps a uint16 per byte
 * (8 KiB per sub-page); a run list is a few bytes for the usual case of two
 * or three small regions in a page, and a binary search over at most 4097
 * runs is as fast as we need for I/O pages.
 *
 * Sections. sections[0] is the fallback unassigned section (mr NULL, size 0:
 * it covers nothing, so it never enters the MRU cache). Because the core
 * adds sections in ascending address order, every gap between them gets its
 * own section with mr NULL: sections[1..] then tile [0, 2^64) in address
 * order. Gaps are not entered in the tree (it stays sparse and compaction
 * stays effective); a lookup that finds nothing in the tree binary-searches
 * the tiling and returns the gap section, whose offset/size report the
 * whole hole so callers can step over it at once. If sections ever arrive
 * out of order the tiling is dropped and unassigned lookups return
 * sections[0]; mv_flatview_lookup then reports the rest of the page.
 *
 * The MRU cache holds the last section found (gaps included, their extent
 * is exact). Because sections of a FlatView never overlap, a cached section
 * that covers the address is the answer without a walk.
 *
 * Sections live as long as the dispatch; the core frees it with the
 * FlatView after an RCU grace period. Building is single-threaded and ends
 * with compaction (adds after it are refused); lookups are lock-free and
 * only write the MRU pointer.
 */
#include <errno.h>
#include <string.h>

#include "memory/internal.h"

#define P_BITS 9
#define P_SIZE (1u << P_BITS)
#define P_LEVELS 6
#define NODE_NIL ((1u << 26) - 1)
#define LEAF_SUBPAGE (1u << 25)
#define MAX_INDEX (LEAF_SUBPAGE - 1)     /* sections and sub-pages each */
#define PAGE_MASK (MV_PAGE_SIZE - 1)


typedef struct mv_pentry {
	uint32_t skip : 6;
	uint32_t ptr : 26;
} mv_pentry;

typedef mv_pentry mv_pnode[P_SIZE];

struct mv_subpage_run {
	uint16_t start;         /* byte offset in the page */
	uint32_t sec;           /* section index */
};

struct mv_subpage {
	struct mv_subpage_run *runs;    /* runs[0].start == 0, starts ascending */
	size_t nr, cap;
};

struct mv_dispatch {
	const mv_allocator *alloc;
	mv_flatview *fv;
	_Atomic(const mv_section *) mru;
	mv_pentry root;
	mv_pnode *nodes;
	size_t nr_nodes, cap_nodes;
	mv_section *sections;
	size_t nr_sections, cap_sections;
	struct mv_subpage *subpages;
	size_t nr_subpages, cap_subpages;
	mv_u128 tiled_end;      /* end of the last section added */
	bool tiled;             /* sections[1..] tile [0, 2^64) in address order */
	bool compacted;
};

static const mv_pentry entry_nil = { .skip = 1, .ptr = NODE_NIL };

static bool entry_empty(mv_pentry e)
{
	return e.skip && e.ptr == NODE_NIL;
}

/* QEMU's section_covers_addr. */
static bool section_covers(const mv_section *s, uint64_t addr)
{
	return addr >= s->offset_within_address_space &&
	       (mv_u128)(addr - s->offset_within_address_space) < s->size;
}

/* ------------------------------------------------------------------ */
/* Construction                                                         */

/* A hole [start, end) of the address space, as its own unassigned section. */
static mv_section gap_section(const mv_dispatch *d, uint64_t start, mv_u128 end)
{
	mv_section g = {
		.fv = d->fv,
		.offset_within_address_space = start,
		.offset_within_region = start,  /* so that xlat == addr */
		.size = end - start,
	};
	return g;
}

/* QEMU's address_space_dispatch_new. */
mv_dispatch *mv_dispatch_new(mv_flatview *fv)
{
	const mv_allocator *a = fv && fv->mem ? fv->mem->alloc : NULL;
	mv_dispatch *d = mv_zalloc(a, sizeof(*d));

	if (!d)
		return NULL;
	d->alloc = a;
	d->fv = fv;
	d->root = entry_nil;
	d->tiled = true;
	atomic_init(&d->mru, NULL);
	if (mv_grow(a, (void **)&d->sections, &d->cap_sections, 2, sizeof(mv_section))) {
		mv_free(a, d);
		return NULL;
	}
	memset(&d->sections[0], 0, sizeof(mv_section));
	d->sections[0].fv = fv;
	/* An empty view is one hole. */
	d->sections[1] = gap_section(d, 0, MV_2_64);
	d->nr_sections = 2;
	return d;
}

/* QEMU's address_space_dispatch_free (the caller waited for RCU readers). */
void mv_dispatch_free(mv_dispatch *d)
{
	size_t i;

	if (!d)
		return;
	for (i = 0; i < d->nr_subpages; i++)
		mv_free(d->alloc, d->subpages[i].runs);
	mv_free(d->alloc, d->subpages);
	mv_free(d->alloc, d->nodes);
	mv_free(d->alloc, d->sections);
	mv_free(d->alloc, d);
}

/* Room for @n more sections, so that a whole add is done or not at all. */
static int reserve_sections(mv_dispatch *d, size_t n)
{
	if (d->nr_sections + n > MAX_INDEX)
		return -ENOMEM;
	return mv_grow(d->alloc, (void **)&d->sections, &d->cap_sections,
		       d->nr_sections + n, sizeof(mv_section));
}

static uint32_t push_section(mv_dispatch *d, const mv_section *s)
{
	d->sections[d->nr_sections] = *s;
	return d->nr_sections++;
}

/*
 * Keep sections[1..] tiling [0, 2^64): the trailing hole (always last, and
 * never referenced by the tree) is replaced by the hole before @s, @s and
 * the new trailing hole. Returns the index of @s.
 */
static uint32_t push_tiled(mv_dispatch *d, const mv_section *s, mv_u128 end)
{
	mv_u128 start = s->offset_within_address_space;
	uint32_t idx;

	d->nr_sections--;
	if (start > d->tiled_end) {
		mv_section gap = gap_section(d, (uint64_t)d->tiled_end, start);

		push_section(d, &gap);
	}
	idx = push_section(d, s);
	if (end < MV_2_64) {
		mv_section tail = gap_section(d, (uint64_t)end, MV_2_64);

		push_section(d, &tail);
	}
	d->tiled_end = end;
	return idx;
}

/*
 * Enough nodes for one set_pages(): at most one new node per level on each
 * of the two partial edges of the range. Reserving first keeps the entry
 * pointers of the recursion valid (QEMU's phys_map_node_reserve).
 */
static int reserve_nodes(mv_dispatch *d)
{
	size_t need = d->nr_nodes + 2 * P_LEVELS;

	if (need >= NODE_NIL)
		return -ENOMEM;
	return mv_grow(d->alloc, (void **)&d->nodes, &d->cap_nodes, need, sizeof(mv_pnode));
}

/* QEMU's phys_map_node_alloc: a node whose entries all equal @fill. */
static uint32_t node_alloc(mv_dispatch *d, mv_pentry fill)
{
	uint32_t idx = d->nr_nodes++;
	unsigned i;

	for (i = 0; i < P_SIZE; i++)
		d->nodes[idx][i] = fill;
	return idx;
}

/*
 * QEMU's phys_page_set_level: map *nb pages from *index to @leaf below
 * entry @lp, whose node is at @level. Aligned runs that fill a whole entry
 * become one leaf there. A leaf met on the way (only when sections overlap)
 * is split into a node of copies of itself, so the last writer wins.
 */
static void set_level(mv_dispatch *d, mv_pentry *lp, uint64_t *index, uint64_t *nb,
		      uint32_t leaf, int level)
{
	uint64_t step = (uint64_t)1 << (level * P_BITS);
	mv_pentry *node;
	unsigned slot;

	if (!lp->skip) {
		mv_pentry old = *lp;

		lp->ptr = node_alloc(d, old);
		lp->skip = 1;
	} else if (lp->ptr == NODE_NIL) {
		lp->ptr = node_alloc(d, entry_nil);
	}
	node = d->nodes[lp->ptr];
	slot = (*index >> (level * P_BITS)) & (P_SIZE - 1);
	for (; *nb && slot < P_SIZE; slot++) {
		if (!(*index & (step - 1)) && *nb >= step) {
			node[slot].skip = 0;
			node[slot].ptr = leaf;
			*index += step;
			*nb -= step;
		} else {
			set_level(d, &node[slot], index, nb, leaf, level - 1);
		}
	}
}

/* QEMU's phys_page_set. */
static int set_pages(mv_dispatch *d, uint64_t page, uint64_t nb, uint32_t leaf)
{
	int ret = reserve_nodes(d);

	if (ret)
		return ret;
	set_level(d, &d->root, &page, &nb, leaf, P_LEVELS - 1);
	return 0;
}

/* Leaf code for @page, or 0 (sections[0]) when nothing is mapped there. */
static uint32_t walk(const mv_dispatch *d, uint64_t page, unsigned *depth)
{
	mv_pentry e = d->root;
	int level = P_LEVELS;

	while (e.skip) {
		level -= e.skip;
		if (e.ptr == NODE_NIL || level < 0)
			return 0;
		e = d->nodes[e.ptr][(page >> (level * P_BITS)) & (P_SIZE - 1)];
		if (depth)
			(*depth)++;
	}
	return e.ptr;
}

/* Index of the first run of @sp whose start is > @off. */
static size_t runs_upper_bound(const struct mv_subpage *sp, unsigned off)
{
	size_t lo = 0, hi = sp->nr;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (sp->runs[mid].start <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Index of the first run of @sp whose start is >= @off. */
static size_t runs_lower_bound(const struct mv_subpage *sp, unsigned off)
{
	return off ? runs_upper_bound(sp, off - 1) : 0;
}

/* Merge neighbouring runs of the same section. */
static void runs_merge(struct mv_subpage *sp)
{
	size_t i, k = 0;

	for (i = 0; i < sp->nr; i++) {
		if (k && sp->runs[k - 1].sec == sp->runs[i].sec)
			continue;
		sp->runs[k++] = sp->runs[i];
	}
	sp->nr = k;
}

/*
 * Bytes [a, b) of the page now belong to section @sec (QEMU's
 * subpage_register); what follows b keeps its previous owner.
 */
static int subpage_set(mv_dispatch *d, struct mv_subpage *sp, unsigned a, unsigned b,
		       uint32_t sec)
{
	size_t j = runs_upper_bound(sp, b);
	size_t i = runs_lower_bound(sp, a);
	uint32_t owner_at_b = sp->runs[j - 1].sec;     /* runs[0].start == 0 <= b */
	size_t add = b < MV_PAGE_SIZE ? 2 : 1;
	size_t nr = sp->nr - (j - i) + add;

	if (mv_grow(d->alloc, (void **)&sp->runs, &sp->cap, nr, sizeof(*sp->runs)))
		return -ENOMEM;
	memmove(&sp->runs[i + add], &sp->runs[j], (sp->nr - j) * sizeof(*sp->runs));
	sp->runs[i].start = a;
	sp->runs[i].sec = sec;
	if (add == 2) {
		sp->runs[i + 1].start = b;
		sp->runs[i + 1].sec = owner_at_b;
	}
	sp->nr = nr;
	runs_merge(sp);
	return 0;
}

/* A sub-page table for @page whose bytes all belong to section @owner. */
static int subpage_new(mv_dispatch *d, uint32_t owner, uint32_t *idx)
{
	struct mv_subpage *sp;

	if (d->nr_subpages >= MAX_INDEX)
		return -ENOMEM;
	if (mv_grow(d->alloc, (void **)&d->subpages, &d->cap_subpages,
		    d->nr_subpages + 1, sizeof(*d->subpages)))
		return -ENOMEM;
	sp = &d->subpages[d->nr_subpages];
	memset(sp, 0, sizeof(*sp));
	if (mv_grow(d->alloc, (void **)&sp->runs, &sp->cap, 4, sizeof(*sp->runs)))
		return -ENOMEM;
	sp->runs[0].start = 0;
	sp->runs[0].sec = owner;
	sp->nr = 1;
	*idx = d->nr_subpages++;
	return 0;
}

/* QEMU's register_subpage: bytes [addr, addr+len) of one page go to @sec. */
static int register_subpage(mv_dispatch *d, uint32_t sec, uint64_t addr, uint64_t len)
{
	uint64_t page = addr >> MV_PAGE_BITS;
	uint32_t leaf = walk(d, page, NULL);
	uint32_t sp_idx;
	unsigned a = addr & PAGE_MASK;
	int ret;

	if (leaf & LEAF_SUBPAGE) {
		sp_idx = leaf & ~LEAF_SUBPAGE;
	} else {
		/* The page so far belongs to @leaf as a whole (0: nobody). */
		ret = subpage_new(d, leaf, &sp_idx);
		if (!ret)
			ret = set_pages(d, page, 1, LEAF_SUBPAGE | sp_idx);
		if (ret)
			return ret;
	}
	return subpage_set(d, &d->subpages[sp_idx], a, a + len, sec);
}

/* QEMU's flatview_add_to_dispatch: head sub-page, whole pages, tail sub-page. */
static int register_section(mv_dispatch *d, uint32_t sec, uint64_t start, mv_u128 end)
{
	mv_u128 pos = start;
	mv_u128 whole_end = end & ~(mv_u128)PAGE_MASK;
	int ret;

	if (pos & PAGE_MASK) {
		mv_u128 stop = (pos | PAGE_MASK) + 1;

		if (stop > end)
			stop = end;
		ret = register_subpage(d, sec, (uint64_t)pos, (uint64_t)(stop - pos));
		if (ret)
			return ret;
		pos = stop;
	}
	if (pos < whole_end) {
		ret = set_pages(d, (uint64_t)(pos >> MV_PAGE_BITS),
				(uint64_t)((whole_end - pos) >> MV_PAGE_BITS), sec);
		if (ret)
			return ret;
		pos = whole_end;
	}
	if (pos < end)
		return register_subpage(d, sec, (uint64_t)pos, (uint64_t)(end - pos));
	return 0;
}

/* QEMU's flatview_add_to_dispatch, plus the hole before @s. */
int mv_dispatch_add_section(mv_dispatch *d, const mv_section *s)
{
	mv_u128 start = s->offset_within_address_space;
	mv_u128 end = start + s->size;
	uint32_t idx;
	int ret;

	if (!s->size)
		return 0;
	if (d->compacted || end > MV_2_64)
		return -EINVAL;
	ret = reserve_sections(d, 3);
	if (ret)
		return ret;
	if (start < d->tiled_end)
		d->tiled = false;
	if (d->tiled)
		idx = push_tiled(d, s, end);
	else
		idx = push_section(d, s);
	return register_section(d, idx, s->offset_within_address_space, end);
}

/* ------------------------------------------------------------------ */
/* Compaction                                                           */

/*
 * QEMU's phys_page_compact: after compacting the children, an entry whose
 * node has one used entry points straight at that entry's target; skips
 * add up. Orphaned nodes stay allocated until the dispatch is freed.
 */
static void compact_entry(mv_dispatch *d, mv_pentry *lp)
{
	mv_pentry *node, only;
	unsigned i, used = 0, last = 0;

	if (!lp->skip || lp->ptr == NODE_NIL)
		return;
	node = d->nodes[lp->ptr];
	for (i = 0; i < P_SIZE; i++) {
		if (entry_empty(node[i]))
			continue;
		used++;
		last = i;
		if (node[i].skip)
			compact_entry(d, &node[i]);
	}
	if (used != 1)
		return;
	only = node[last];
	lp->ptr = only.ptr;
	lp->skip = only.skip ? lp->skip + only.skip : 0;
}

/* QEMU's address_space_dispatch_compact. */
void mv_dispatch_compact(mv_dispatch *d)
{
	if (d->compacted)
		return;
	compact_entry(d, &d->root);
	d->compacted = true;
}

/* ------------------------------------------------------------------ */
/* Lookup                                                               */

static uint32_t subpage_find(const struct mv_subpage *sp, uint64_t addr)
{
	return sp->runs[runs_upper_bound(sp, addr & PAGE_MASK) - 1].sec;
}

/* The gap section around @addr, from the address-ordered tiling. */
static const mv_section *lookup_gap(const mv_dispatch *d, uint64_t addr)
{
	size_t lo = 1, hi = d->nr_sections;

	if (!d->tiled)
		return &d->sections[0];
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (d->sections[mid].offset_within_address_space <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo > 1 && section_covers(&d->sections[lo - 1], addr))
		return &d->sections[lo - 1];
	return &d->sections[0];
}

/* QEMU's phys_page_find plus the sub-page step of address_space_lookup_region. */
static const mv_section *lookup_slow(const mv_dispatch *d, uint64_t addr)
{
	uint32_t leaf = walk(d, addr >> MV_PAGE_BITS, NULL);
	const mv_section *s;

	if (leaf & LEAF_SUBPAGE)
		leaf = subpage_find(&d->subpages[leaf & ~LEAF_SUBPAGE], addr);
	s = &d->sections[leaf];
	/* A compacted skip may land on a leaf of another address. */
	if (!s->mr || !section_covers(s, addr))
		return lookup_gap(d, addr);
	return s;
}

/* QEMU's address_space_lookup_region: MRU first, then the walk. */
const mv_section *mv_dispatch_lookup(mv_dispatch *d, uint64_t addr)
{
	const mv_section *s = atomic_load_explicit(&d->mru, memory_order_relaxed);

	/* Sections never overlap, so one that covers @addr is the answer. */
	if (s && section_covers(s, addr))
		return s;
	s = lookup_slow(d, addr);
	if (s != &d->sections[0])
		atomic_store_explicit(&d->mru, s, memory_order_relaxed);
	return s;
}

/* For a FlatView without a dispatch table (never built). */
static const mv_section unassigned_nowhere;

/* QEMU's address_space_translate_internal, without IOMMUs. */
const mv_section *mv_flatview_lookup(mv_flatview *fv, uint64_t addr,
				     uint64_t *xlat, uint64_t *plen)
{
	const mv_section *s = &unassigned_nowhere;
	uint64_t off_in_mr;
	mv_u128 left;

	if (fv && fv->dispatch)
		s = mv_dispatch_lookup(fv->dispatch, addr);
	if (section_covers(s, addr)) {
		uint64_t off = addr - s->offset_within_address_space;

		off_in_mr = s->offset_within_region + off;
		left = s->size - off;
	} else {
		/* Fallback unassigned: report the rest of the page. */
		off_in_mr = addr;
		left = MV_PAGE_SIZE - (addr & PAGE_MASK);
	}
	if (xlat)
		*xlat = off_in_mr;
	if (plen && *plen > left)
		*plen = (uint64_t)left;
	return s;
}

/* ------------------------------------------------------------------ */
/* Test hooks                                                           */

/* The section in the MRU cache, or NULL. */
const mv_section *mv_dispatch_mru(mv_dispatch *d)
{
	return atomic_load_explicit(&d->mru, memory_order_relaxed);
}

/* Number of nodes a walk for @addr reads (shows what compaction saved). */
unsigned mv_dispatch_walk_depth(const mv_dispatch *d, uint64_t addr)
{
	unsigned depth = 0;

	walk(d, addr >> MV_PAGE_BITS, &depth);
	return depth;
}

size_t mv_dispatch_nr_nodes(const mv_dispatch *d)
{
	return d->nr_nodes;
}
