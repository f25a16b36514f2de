/*
 * The generic page-table walker (after Linux's arch/arm64/kvm/hyp/pgtable.c
 * kvm_pgtable_walk): depth-first over [start, end), one visit per entry
 * that the range touches, visitor re-run semantics as the header says.
 *
 * Index arithmetic is generic in the granule: a level resolves
 * (granule_shift - 3) bits, the start level resolves what is left of
 * ia_bits, which may be up to 4 bits more than one table (concatenation).
 */
#include "memvirt/soft_pgtable.h"

#include <errno.h>

/* State of one walk, shared by every level. */
typedef struct walk_data {
	mv_pgt *pgt;
	const mv_pgt_walker *w;
	uint64_t start;
	uint64_t addr;          /* next input address to visit */
	uint64_t end;
} walk_data;

static unsigned pgt_stride(const mv_pgt *pgt)
{
	return pgt->granule_shift - 3;
}

unsigned mv_pgt_level_shift(const mv_pgt *pgt, int level)
{
	return pgt->granule_shift + pgt_stride(pgt) * (unsigned)(pgt->last_level - level);
}

uint64_t mv_pgt_level_size(const mv_pgt *pgt, int level)
{
	return 1ull << mv_pgt_level_shift(pgt, level);
}

uint64_t mv_pgt_level_entries(const mv_pgt *pgt, int level)
{
	if (level == pgt->start_level)
		return 1ull << (pgt->ia_bits - mv_pgt_level_shift(pgt, level));
	return 1ull << pgt_stride(pgt);
}

unsigned mv_pgt_root_pages(const mv_pgt *pgt)
{
	uint64_t n = mv_pgt_level_entries(pgt, pgt->start_level) >> pgt_stride(pgt);

	return n ? (unsigned)n : 1;
}

/*
 * A table the arithmetic can serve: a known granule, levels -1..3 with the
 * leaf level 3, and a start level that resolves 1 .. stride + 4 bits (the
 * ARM ARM's 16 concatenated tables at most).
 */
static bool pgt_sane(const mv_pgt *pgt)
{
	unsigned shift, stride;

	if (pgt->granule_shift != 12 && pgt->granule_shift != 14 && pgt->granule_shift != 16)
		return false;
	if (pgt->last_level != 3 || pgt->start_level < -1 || pgt->start_level > pgt->last_level)
		return false;
	stride = pgt_stride(pgt);
	shift = mv_pgt_level_shift(pgt, pgt->start_level);
	return pgt->ia_bits <= 64 && pgt->ia_bits > shift && pgt->ia_bits - shift <= stride + 4;
}

mv_pte mv_pgt_read(const mv_pte *ptep)
{
	return __atomic_load_n(ptep, __ATOMIC_ACQUIRE);
}

bool mv_pgt_ctx_try_set(const mv_pgt_ctx *ctx, mv_pte new)
{
	mv_pte expected = ctx->old;

	if (!(ctx->flags & MV_PGT_WALK_SHARED)) {
		__atomic_store_n(ctx->ptep, new, __ATOMIC_RELEASE);
		return true;
	}
	return __atomic_compare_exchange_n(ctx->ptep, &expected, new, false, __ATOMIC_ACQ_REL,
					   __ATOMIC_ACQUIRE);
}

mv_pte *mv_pgt_ctx_table(const mv_pgt_ctx *ctx, mv_pte pte)
{
	const mv_pgt *pgt = ctx->pgt;

	return pgt->mm_ops->phys_to_virt(pgt->mm_arg, pgt->fmt->table_pa(pte));
}

static bool entry_is_table(const mv_pgt *pgt, mv_pte pte, int level)
{
	/* The leaf level never holds tables, whatever the format says. */
	return level < pgt->last_level && pgt->fmt->is_table(pte, level);
}

static mv_pgt_result walk_table(walk_data *d, mv_pte *table, int level);

/*
 * One entry: the pre-order visit (LEAF or TABLE_PRE), a re-read so that a
 * visitor may turn the entry into a table (map) or replace a table, the
 * subtree, then TABLE_POST.
 */
static mv_pgt_result visit(walk_data *d, mv_pte *ptep, int level)
{
	mv_pgt *pgt = d->pgt;
	mv_pgt_ctx ctx = {
		.pgt = pgt, .ptep = ptep, .old = mv_pgt_read(ptep), .start = d->start,
		.addr = d->addr, .end = d->end, .level = level, .flags = d->w->flags,
		.arg = d->w->arg,
	};
	bool table = entry_is_table(pgt, ctx.old, level);
	mv_pgt_visit pre = table ? MV_PGT_VISIT_TABLE_PRE : MV_PGT_VISIT_LEAF;
	mv_pgt_result r;
	mv_pte *child;

	if (d->w->flags & pre) {
		r = d->w->cb(&ctx, pre);
		if (r != MV_PGT_OK)
			return r;
		ctx.old = mv_pgt_read(ptep);
		table = entry_is_table(pgt, ctx.old, level);
	}
	if (!table) {
		uint64_t size = mv_pgt_level_size(pgt, level);

		d->addr = (d->addr & ~(size - 1)) + size;
		return MV_PGT_OK;
	}
	child = mv_pgt_ctx_table(&ctx, ctx.old);
	if (!child)
		return MV_PGT_FAULT;
	r = walk_table(d, child, level + 1);
	if (r != MV_PGT_OK || !(d->w->flags & MV_PGT_VISIT_TABLE_POST))
		return r;
	return d->w->cb(&ctx, MV_PGT_VISIT_TABLE_POST);
}

/* The entries of one table (all concatenated tables at the start level). */
static mv_pgt_result walk_table(walk_data *d, mv_pte *table, int level)
{
	uint64_t n = mv_pgt_level_entries(d->pgt, level);
	uint64_t i = (d->addr >> mv_pgt_level_shift(d->pgt, level)) & (n - 1);
	mv_pgt_result r;

	for (; i < n && d->addr < d->end; i++) {
		r = visit(d, &table[i], level);
		if (r != MV_PGT_OK)
			return r;
	}
	return MV_PGT_OK;
}

mv_pgt_result mv_pgt_walk(mv_pgt *pgt, uint64_t addr, uint64_t size, const mv_pgt_walker *w)
{
	uint64_t gmask = (1ull << pgt->granule_shift) - 1;
	uint64_t last = addr + size - 1;
	walk_data d = { .pgt = pgt, .w = w };
	mv_pte *root;

	if (!pgt_sane(pgt))
		return MV_PGT_RANGE;
	if (size == 0)
		return MV_PGT_OK;
	/* The walked range is [addr, addr + size) widened to whole granules. */
	if (last < addr || (pgt->ia_bits < 64 && last >> pgt->ia_bits))
		return MV_PGT_RANGE;
	d.start = addr & ~gmask;
	d.addr = d.start;
	d.end = (last | gmask) + 1;
	if (d.end == 0)
		return MV_PGT_RANGE;   /* would end at 2^64, not representable */
	root = pgt->mm_ops->phys_to_virt(pgt->mm_arg, pgt->root_pa);
	if (!root)
		return MV_PGT_FAULT;
	return walk_table(&d, root, pgt->start_level);
}

typedef struct leaf_data {
	mv_pte pte;
	int level;
} leaf_data;

static mv_pgt_result leaf_visitor(const mv_pgt_ctx *ctx, mv_pgt_visit visit)
{
	leaf_data *ld = ctx->arg;

	(void)visit;
	ld->pte = ctx->pgt->fmt->is_valid(ctx->old) ? ctx->old : 0;
	ld->level = ctx->level;
	return MV_PGT_OK;
}

mv_pgt_result mv_pgt_get_leaf(mv_pgt *pgt, uint64_t addr, mv_pte *pte, int *level)
{
	leaf_data ld = { 0, pgt->start_level };
	mv_pgt_walker w = { leaf_visitor, &ld, MV_PGT_VISIT_LEAF };
	mv_pgt_result r = mv_pgt_walk(pgt, addr, 1, &w);

	if (pte)
		*pte = ld.pte;
	if (level)
		*level = ld.level;
	return r;
}

int mv_pgt_alloc_root(mv_pgt *pgt)
{
	void *root;

	if (!pgt_sane(pgt))
		return -EINVAL;
	root = pgt->mm_ops->zalloc_pages_exact(pgt->mm_arg,
					       (size_t)mv_pgt_root_pages(pgt) << pgt->granule_shift);
	if (!root)
		return -ENOMEM;
	pgt->root_pa = pgt->mm_ops->virt_to_phys(pgt->mm_arg, root);
	return 0;
}

void mv_pgt_free_table(mv_pgt *pgt, mv_pte *table, int level)
{
	const mv_pgt_mm_ops *mm = pgt->mm_ops;
	uint64_t n = mv_pgt_level_entries(pgt, level);
	mv_pte *child;

	for (uint64_t i = 0; i < n; i++) {
		mv_pte pte = mv_pgt_read(&table[i]);

		if (!pte)
			continue;
		if (entry_is_table(pgt, pte, level)) {
			child = mm->phys_to_virt(pgt->mm_arg, pgt->fmt->table_pa(pte));
			if (child)
				mv_pgt_free_table(pgt, child, level + 1);
		}
		mm->put_page(pgt->mm_arg, &table[i]);
	}
	mm->put_page(pgt->mm_arg, table);
}

void mv_pgt_destroy(mv_pgt *pgt)
{
	const mv_pgt_mm_ops *mm = pgt->mm_ops;
	int level = pgt->start_level;
	mv_pte *root, *child;
	uint64_t n;

	if (!pgt->root_pa || !pgt_sane(pgt))
		return;
	root = mm->phys_to_virt(pgt->mm_arg, pgt->root_pa);
	if (!root)
		return;
	n = mv_pgt_level_entries(pgt, level);
	for (uint64_t i = 0; i < n; i++) {
		mv_pte pte = mv_pgt_read(&root[i]);

		if (!entry_is_table(pgt, pte, level))
			continue;
		child = mm->phys_to_virt(pgt->mm_arg, pgt->fmt->table_pa(pte));
		if (child)
			mv_pgt_free_table(pgt, child, level + 1);
	}
	/* The root's own counts do not matter: it goes as one block. */
	mm->free_pages_exact(pgt->mm_arg, root, (size_t)mv_pgt_root_pages(pgt) << pgt->granule_shift);
	pgt->root_pa = 0;
}

const char *mv_pgt_result_name(mv_pgt_result r)
{
	switch (r) {
	case MV_PGT_OK: return "ok";
	case MV_PGT_AGAIN: return "again";
	case MV_PGT_NOMEM: return "nomem";
	case MV_PGT_RANGE: return "range";
	case MV_PGT_EXISTS: return "exists";
	case MV_PGT_NOENT: return "noent";
	case MV_PGT_FAULT: return "fault";
	case MV_PGT_STOP: return "stop";
	}
	return "unknown";
}
