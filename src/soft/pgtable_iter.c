/*
 * The table iterator (after Linux's arch/x86/kvm/mmu/tdp_iter.c): a
 * pre-order position in a table that remembers the tables on its path, so
 * that it steps down, sideways and up, and seeks, without walking from the
 * root again. Geometry and range checks are the walker's: the start is a
 * one-entry mv_pgt_walk.
 */
#include "memvirt/soft_pgtable.h"

#include <string.h>

/* Slot of @level in the per-level arrays. */
static unsigned iter_slot(const mv_pgt_iter *it, int level)
{
	return (unsigned)(level - it->pgt->start_level);
}

static uint64_t iter_index(const mv_pgt_iter *it, uint64_t addr, int level)
{
	unsigned s = iter_slot(it, level);

	return (addr >> it->shift[s]) & it->index_mask[s];
}

/* mv_pgt_read, inline: every step reads an entry. */
static inline mv_pte iter_read(const mv_pte *ptep)
{
	return __atomic_load_n(ptep, __ATOMIC_ACQUIRE);
}

static void iter_stop(mv_pgt_iter *it, mv_pgt_result r)
{
	it->valid = false;
	it->result = r;
}

/* Move to the entry of @level covering @addr, in the table the path holds for @level, and read it. */
static void iter_point(mv_pgt_iter *it, int level, uint64_t addr)
{
	it->level = level;
	it->addr = addr & ~((1ull << it->shift[iter_slot(it, level)]) - 1);
	it->ptep = it->path[iter_slot(it, level)] + iter_index(it, addr, level);
	it->old = iter_read(it->ptep);
}

/*
 * Into the table it->old points to, when it is one above min_level, at the
 * entry covering the later of the range's start and the current entry's
 * first address. True when it moved, or stopped at an unreachable table.
 */
static bool iter_step_down(mv_pgt_iter *it)
{
	const mv_pgt *pgt = it->pgt;
	mv_pte *child;

	/* min_level <= last_level: the leaf level, which holds no tables, is never asked. */
	if (it->level >= it->min_level || !pgt->fmt->is_table(it->old, it->level))
		return false;
	child = pgt->mm_ops->phys_to_virt(pgt->mm_arg, pgt->fmt->table_pa(it->old));
	if (!child) {
		iter_stop(it, MV_PGT_FAULT);
		return true;
	}
	it->path[iter_slot(it, it->level + 1)] = child;
	iter_point(it, it->level + 1, it->addr > it->start ? it->addr : it->start);
	return true;
}

/* The next entry of the same table, if the current one is not its last. */
static bool iter_step_side(mv_pgt_iter *it)
{
	unsigned s = iter_slot(it, it->level);

	if (iter_index(it, it->addr, it->level) == it->index_mask[s])
		return false;
	it->addr += 1ull << it->shift[s];
	it->ptep++;
	it->old = iter_read(it->ptep);
	return true;
}

/* Back to the entry that points to the current table, unless at the start level. */
static bool iter_step_up(mv_pgt_iter *it)
{
	if (it->level == it->pgt->start_level)
		return false;
	iter_point(it, it->level - 1, it->addr);
	return true;
}

static mv_pgt_result iter_root_visitor(const mv_pgt_ctx *ctx, mv_pgt_visit visit)
{
	(void)visit;
	*(mv_pte **)ctx->arg = ctx->ptep;
	return MV_PGT_STOP;
}

mv_pgt_result mv_pgt_iter_start(mv_pgt_iter *it, mv_pgt *pgt, uint64_t start, uint64_t end,
				int min_level)
{
	mv_pte *root_ptep = NULL;
	mv_pgt_walker w = { iter_root_visitor, &root_ptep,
			    MV_PGT_VISIT_LEAF | MV_PGT_VISIT_TABLE_PRE };
	mv_pgt_result r;

	memset(it, 0, sizeof(*it));
	it->pgt = pgt;
	it->start = start;
	it->end = end;
	it->min_level = min_level;
	it->result = MV_PGT_RANGE;
	if (min_level < pgt->start_level || min_level > pgt->last_level)
		return it->result;
	/* The walker checks the geometry and the address, and finds the root entry. */
	r = mv_pgt_walk(pgt, start, 1, &w);
	if (r != MV_PGT_STOP) {
		it->result = r;
		return r;
	}
	for (int level = pgt->start_level; level <= pgt->last_level; level++) {
		unsigned s = iter_slot(it, level);

		it->shift[s] = mv_pgt_level_shift(pgt, level);
		it->index_mask[s] = mv_pgt_level_entries(pgt, level) - 1;
	}
	it->path[0] = root_ptep - iter_index(it, start, pgt->start_level);
	iter_point(it, pgt->start_level, start);
	it->result = MV_PGT_OK;
	it->valid = start < end;
	return MV_PGT_OK;
}

void mv_pgt_iter_next(mv_pgt_iter *it)
{
	if (!it->valid)
		return;
	if (it->level < it->min_level) {
		/* The caller may have changed the entry since we read it (split, zap). */
		it->old = iter_read(it->ptep);
		if (iter_step_down(it))
			return;
	}
	do {
		if (iter_step_side(it)) {
			if (it->addr >= it->end)
				iter_stop(it, MV_PGT_OK);
			return;
		}
	} while (iter_step_up(it));
	iter_stop(it, MV_PGT_OK);
}

void mv_pgt_iter_next_leaf(mv_pgt_iter *it)
{
	do
		mv_pgt_iter_next(it);
	while (it->valid && it->level < it->min_level && it->pgt->fmt->is_table(it->old, it->level));
}

void mv_pgt_iter_seek(mv_pgt_iter *it, uint64_t start, uint64_t end)
{
	const mv_pgt *pgt = it->pgt;
	int level = it->level;

	if (!it->path[0] || (pgt->ia_bits < 64 && start >> pgt->ia_bits)) {
		iter_stop(it, MV_PGT_RANGE);
		return;
	}
	it->start = start;
	it->end = end;
	/* Climb to the lowest table on the path whose parent entry also covers @start. */
	while (level > pgt->start_level && (start ^ it->addr) >> it->shift[iter_slot(it, level - 1)])
		level--;
	iter_point(it, level, start);
	it->valid = start < end;
	it->result = MV_PGT_OK;
	while (it->valid && iter_step_down(it))
		;
}

uint64_t mv_pgt_iter_run(const mv_pgt_iter *it)
{
	unsigned s;
	uint64_t to_table_end, to_range_end;

	if (!it->valid)
		return 0;
	s = iter_slot(it, it->level);
	to_table_end = it->index_mask[s] + 1 - iter_index(it, it->addr, it->level);
	/* Entries overlapping [addr, end): end > addr while valid. */
	to_range_end = ((it->end - it->addr - 1) >> it->shift[s]) + 1;
	return to_range_end < to_table_end ? to_range_end : to_table_end;
}

/* Bytes the hardware moves at once: one prefetch per line. */
#define ITER_CACHE_LINE 64

void mv_pgt_iter_prefetch(const mv_pgt_iter *it, uint64_t addr, uint64_t end)
{
	const mv_pgt *pgt = it->pgt;
	uint64_t entry_last, last;
	const char *line, *stop;
	mv_pte *child;

	if (!it->valid || it->level >= pgt->last_level || !pgt->fmt->is_table(it->old, it->level))
		return;
	child = pgt->mm_ops->phys_to_virt(pgt->mm_arg, pgt->fmt->table_pa(it->old));
	entry_last = it->addr + ((1ull << it->shift[iter_slot(it, it->level)]) - 1);
	if (!child || end <= addr || addr > entry_last || end - 1 < it->addr)
		return;
	addr = addr > it->addr ? addr : it->addr;
	last = end - 1 < entry_last ? end - 1 : entry_last;
	line = (const char *)((uintptr_t)&child[iter_index(it, addr, it->level + 1)] &
			      ~(uintptr_t)(ITER_CACHE_LINE - 1));
	stop = (const char *)&child[iter_index(it, last, it->level + 1)];
	for (; line <= stop; line += ITER_CACHE_LINE)
		__builtin_prefetch(line, 1, 3);
}

void mv_pgt_iter_ctx(const mv_pgt_iter *it, uint64_t i, unsigned flags, mv_pgt_ctx *ctx)
{
	uint64_t addr = it->addr + (i << it->shift[iter_slot(it, it->level)]);

	*ctx = (mv_pgt_ctx){
		.pgt = it->pgt, .ptep = it->ptep + i, .old = i ? iter_read(it->ptep + i) : it->old,
		.start = it->start, .addr = addr > it->start ? addr : it->start, .end = it->end,
		.level = it->level, .flags = flags,
	};
}
