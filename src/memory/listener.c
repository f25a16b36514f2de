/*
 * Memory listeners: registration in priority order, replay of the current
 * view to a new listener, and the FlatView diff of QEMU's
 * address_space_update_topology_pass (delete pass, then add pass).
 */
#include "memory/internal.h"

#include <errno.h>

/* Iterate a listener list forward or in reverse. */
#define FOR_EACH_LISTENER(l, head, tail, field, reverse)                  \
	for (mv_listener *l = (reverse) ? (tail) : (head); l;                 \
	     l = (reverse) ? l->link.prev_##field : l->link.next_##field)

/*
 * Insert @l into a doubly linked list kept in priority order: after every
 * listener with priority <= its own (QEMU's memory_listener_register).
 */
#define LIST_INSERT_BY_PRIORITY(l, head, tail, field)                          \
	do {                                                                   \
		mv_listener *pos_ = (head);                                    \
		while (pos_ && pos_->priority <= (l)->priority)                \
			pos_ = pos_->link.next_##field;                        \
		(l)->link.next_##field = pos_;                                 \
		(l)->link.prev_##field = pos_ ? pos_->link.prev_##field : (tail); \
		if ((l)->link.prev_##field)                                    \
			(l)->link.prev_##field->link.next_##field = (l);       \
		else                                                           \
			(head) = (l);                                          \
		if (pos_)                                                      \
			pos_->link.prev_##field = (l);                         \
		else                                                           \
			(tail) = (l);                                          \
	} while (0)

#define LIST_REMOVE(l, head, tail, field)                                      \
	do {                                                                   \
		if ((l)->link.prev_##field)                                    \
			(l)->link.prev_##field->link.next_##field = (l)->link.next_##field; \
		else                                                           \
			(head) = (l)->link.next_##field;                       \
		if ((l)->link.next_##field)                                    \
			(l)->link.next_##field->link.prev_##field = (l)->link.prev_##field; \
		else                                                           \
			(tail) = (l)->link.prev_##field;                       \
		(l)->link.next_##field = (l)->link.prev_##field = NULL;        \
	} while (0)

void mv_listeners_begin(mv_memory *mem)
{
	FOR_EACH_LISTENER(l, mem->listeners_head, mem->listeners_tail, global, false)
		if (l->begin)
			l->begin(l);
}

void mv_listeners_commit(mv_memory *mem)
{
	FOR_EACH_LISTENER(l, mem->listeners_head, mem->listeners_tail, global, false)
		if (l->commit)
			l->commit(l);
}

/* log_global_start runs forward, log_global_stop in reverse (QEMU). */
void mv_listeners_log_global(mv_memory *mem, bool start)
{
	FOR_EACH_LISTENER(l, mem->listeners_head, mem->listeners_tail, global, !start) {
		if (start && l->log_global_start)
			l->log_global_start(l);
		if (!start && l->log_global_stop)
			l->log_global_stop(l);
	}
}

/* Replay @fv to one listener as if it had just appeared (or gone). */
static void listener_replay(mv_listener *l, mv_flatview *fv, bool add)
{
	mv_memory *mem = l->link.as->mem;

	if (l->begin)
		l->begin(l);
	if (add && mem->global_dirty_log && l->log_global_start)
		l->log_global_start(l);
	for (size_t i = 0; i < fv->nr; i++) {
		const mv_flat_range *fr = &fv->ranges[i];
		mv_section s = mv_section_from_flat_range(fr, fv);

		if (add) {
			if (l->region_add)
				l->region_add(l, &s);
			if (fr->dirty_log_mask && l->log_start)
				l->log_start(l, &s, 0, fr->dirty_log_mask);
		} else {
			if (fr->dirty_log_mask && l->log_stop)
				l->log_stop(l, &s, fr->dirty_log_mask, 0);
			if (l->region_del)
				l->region_del(l, &s);
		}
	}
	if (l->commit)
		l->commit(l);
}

int mv_listener_register(mv_listener *l, mv_address_space *as)
{
	mv_memory *mem = as->mem;
	mv_flatview *fv;

	if (l->link.as)
		return -EBUSY;
	l->link.as = as;
	LIST_INSERT_BY_PRIORITY(l, mem->listeners_head, mem->listeners_tail, global);
	LIST_INSERT_BY_PRIORITY(l, as->listeners_head, as->listeners_tail, as);
	fv = mv_address_space_get_flatview(as);
	listener_replay(l, fv, true);
	mv_flatview_unref(fv);
	return 0;
}

void mv_listener_unregister(mv_listener *l)
{
	mv_address_space *as = l->link.as;
	mv_flatview *fv;

	if (!as)
		return;
	fv = mv_address_space_get_flatview(as);
	listener_replay(l, fv, false);
	mv_flatview_unref(fv);
	LIST_REMOVE(l, as->mem->listeners_head, as->mem->listeners_tail, global);
	LIST_REMOVE(l, as->listeners_head, as->listeners_tail, as);
	l->link.as = NULL;
}

void mv_listeners_detach_all(mv_address_space *as)
{
	while (as->listeners_head)
		mv_listener_unregister(as->listeners_head);
}

/* ------------------------------------------------------------------ */
/* The topology diff                                                    */

/* QEMU's flatrange_equal(): dirty logging changes are not a difference. */
static bool flatrange_equal(const mv_flat_range *a, const mv_flat_range *b)
{
	return a->mr == b->mr && a->start == b->start && a->size == b->size &&
	       a->offset_in_region == b->offset_in_region && a->romd_mode == b->romd_mode &&
	       a->readonly == b->readonly && a->nonvolatile == b->nonvolatile;
}

enum section_event { EV_ADD, EV_DEL, EV_NOP, EV_LOG_START, EV_LOG_STOP };

/* Call one callback on every listener of @as, forward or reverse. */
static void notify(mv_address_space *as, enum section_event ev, const mv_flat_range *fr,
		   mv_flatview *fv, int old_mask, int new_mask)
{
	mv_section s = mv_section_from_flat_range(fr, fv);
	bool reverse = ev == EV_DEL || ev == EV_LOG_STOP;

	FOR_EACH_LISTENER(l, as->listeners_head, as->listeners_tail, as, reverse) {
		switch (ev) {
		case EV_ADD: if (l->region_add) l->region_add(l, &s); break;
		case EV_DEL: if (l->region_del) l->region_del(l, &s); break;
		case EV_NOP: if (l->region_nop) l->region_nop(l, &s); break;
		case EV_LOG_START:
			if (l->log_start) l->log_start(l, &s, old_mask, new_mask);
			break;
		case EV_LOG_STOP:
			if (l->log_stop) l->log_stop(l, &s, old_mask, new_mask);
			break;
		}
	}
}

/* One pass of QEMU's address_space_update_topology_pass(). */
static void update_topology_pass(mv_address_space *as, mv_flatview *old, mv_flatview *new,
				 bool adding)
{
	size_t io = 0, in = 0, nold = old ? old->nr : 0;

	while (io < nold || in < new->nr) {
		const mv_flat_range *fo = io < nold ? &old->ranges[io] : NULL;
		const mv_flat_range *fn = in < new->nr ? &new->ranges[in] : NULL;

		if (fo && (!fn || fo->start < fn->start ||
			   (fo->start == fn->start && !flatrange_equal(fo, fn)))) {
			/* In old but not in new, or changed. */
			if (!adding)
				notify(as, EV_DEL, fo, old, 0, 0);
			io++;
		} else if (fo && fn && flatrange_equal(fo, fn)) {
			if (adding) {
				notify(as, EV_NOP, fn, new, 0, 0);
				if (fn->dirty_log_mask & ~fo->dirty_log_mask)
					notify(as, EV_LOG_START, fn, new, fo->dirty_log_mask,
					       fn->dirty_log_mask);
				if (fo->dirty_log_mask & ~fn->dirty_log_mask)
					notify(as, EV_LOG_STOP, fn, new, fo->dirty_log_mask,
					       fn->dirty_log_mask);
			}
			io++;
			in++;
		} else {
			if (adding)
				notify(as, EV_ADD, fn, new, 0, 0);
			in++;
		}
	}
}

void mv_listener_update_topology(mv_address_space *as, mv_flatview *old, mv_flatview *new)
{
	update_topology_pass(as, old, new, false);
	update_topology_pass(as, old, new, true);
}

/* ------------------------------------------------------------------ */
/* Global dirty tracking                                                */

/* Re-render with update pending, so sections gain/lose the MIGRATION bit. */
static void force_update(mv_memory *mem)
{
	mv_memory_begin(mem);
	mv_memory_update_pending(mem);
	mv_memory_commit(mem);
}

void mv_memory_global_dirty_log_start(mv_memory *mem)
{
	if (mem->global_dirty_log)
		return;
	mem->global_dirty_log = true;
	mv_listeners_log_global(mem, true);
	force_update(mem);
}

void mv_memory_global_dirty_log_stop(mv_memory *mem)
{
	if (!mem->global_dirty_log)
		return;
	mem->global_dirty_log = false;
	force_update(mem);
	mv_listeners_log_global(mem, false);
}

bool mv_memory_global_dirty_log(const mv_memory *mem)
{
	return mem->global_dirty_log;
}

/* QEMU's memory_region_sync_dirty_bitmap(NULL): every logged section. */
void mv_memory_global_dirty_log_sync(mv_memory *mem)
{
	FOR_EACH_LISTENER(l, mem->listeners_head, mem->listeners_tail, global, false) {
		mv_flatview *fv;

		if (!l->log_sync)
			continue;
		fv = mv_address_space_get_flatview(l->link.as);
		for (size_t i = 0; i < fv->nr; i++) {
			if (fv->ranges[i].dirty_log_mask) {
				mv_section s = mv_section_from_flat_range(&fv->ranges[i], fv);

				l->log_sync(l, &s);
			}
		}
		mv_flatview_unref(fv);
	}
}
