/*
 * FlatView lifecycle: generation (render, simplify, dispatch), references
 * and RCU-deferred destruction, range accessors (QEMU's
 * generate_memory_topology / flatview_ref / flatview_destroy).
 */
#include "memory/internal.h"

#include <errno.h>
#include <string.h>

int mv_flatview_insert(mv_flatview *fv, size_t pos, const mv_flat_range *fr)
{
	int ret = mv_grow(fv->mem->alloc, (void **)&fv->ranges, &fv->cap, fv->nr + 1,
			  sizeof(*fv->ranges));

	if (ret)
		return ret;
	memmove(&fv->ranges[pos + 1], &fv->ranges[pos], (fv->nr - pos) * sizeof(*fv->ranges));
	fv->ranges[pos] = *fr;
	fv->nr++;
	return 0;
}

mv_section mv_section_from_flat_range(const mv_flat_range *fr, mv_flatview *fv)
{
	return (mv_section){
		.mr = fr->mr,
		.fv = fv,
		.offset_within_region = fr->offset_in_region,
		.offset_within_address_space = fr->start,
		.size = fr->size,
		.readonly = fr->readonly,
		.nonvolatile = fr->nonvolatile,
	};
}

/*
 * Free a view whose last reference is gone; runs after a grace period (or
 * directly when the view was never published). Its region references go
 * last, so regions and their RAM outlive every reader of the view.
 */
static void flatview_destroy(mv_flatview *fv)
{
	const mv_allocator *a = fv->mem->alloc;

	if (fv->dispatch)
		mv_dispatch_free(fv->dispatch);
	for (size_t i = 0; i < fv->nr_held; i++)
		mv_region_unref(fv->held[i]);
	mv_region_unref(fv->root);
	mv_free(a, fv->held);
	mv_free(a, fv->ranges);
	mv_free(a, fv);
}

static void flatview_destroy_rcu(struct rcu_head *head)
{
	flatview_destroy(caa_container_of(head, mv_flatview, rcu));
}

void mv_flatview_ref(mv_flatview *fv)
{
	atomic_fetch_add_explicit(&fv->refcount, 1, memory_order_relaxed);
}

void mv_flatview_unref(mv_flatview *fv)
{
	if (fv && atomic_fetch_sub_explicit(&fv->refcount, 1, memory_order_acq_rel) == 1)
		urcu_memb_call_rcu(&fv->rcu, flatview_destroy_rcu);
}

/* Take a reference unless the count already dropped to zero (QEMU's flatview_tryref). */
static bool flatview_tryref(mv_flatview *fv)
{
	int old = atomic_load_explicit(&fv->refcount, memory_order_relaxed);

	while (old > 0)
		if (atomic_compare_exchange_weak(&fv->refcount, &old, old + 1))
			return true;
	return false;
}

mv_flatview *mv_address_space_get_flatview(mv_address_space *as)
{
	mv_flatview *fv;

	mv_rcu_read_lock();
	do {
		fv = rcu_dereference(as->current);
	} while (!flatview_tryref(fv));
	mv_rcu_read_unlock();
	return fv;
}

static int build_dispatch(mv_flatview *fv)
{
	fv->dispatch = mv_dispatch_new(fv);
	if (!fv->dispatch)
		return -ENOMEM;
	for (size_t i = 0; i < fv->nr; i++) {
		mv_section s = mv_section_from_flat_range(&fv->ranges[i], fv);
		int ret = mv_dispatch_add_section(fv->dispatch, &s);

		if (ret)
			return ret;
	}
	mv_dispatch_compact(fv->dispatch);
	return 0;
}

/* QEMU's generate_memory_topology(), minus the cache insertion. */
int mv_flatview_generate(mv_memory *mem, mv_region *root, mv_flatview **out)
{
	mv_flatview *fv = mv_zalloc(mem->alloc, sizeof(*fv));
	int ret;

	if (!fv)
		return -ENOMEM;
	fv->mem = mem;
	atomic_init(&fv->refcount, 1);
	ret = mv_render(fv, root);
	if (!ret) {
		mv_flatview_simplify(fv);
		if (root)
			mv_region_ref(root);
		fv->root = root;
		ret = build_dispatch(fv);
	}
	if (ret) {
		flatview_destroy(fv);
		return ret;
	}
	mem->render_count++;
	*out = fv;
	return 0;
}

mv_region *mv_flatview_root(const mv_flatview *fv) { return fv->root; }
size_t mv_flatview_nr_ranges(const mv_flatview *fv) { return fv->nr; }

const mv_flat_range *mv_flatview_range(const mv_flatview *fv, size_t i)
{
	return i < fv->nr ? &fv->ranges[i] : NULL;
}
