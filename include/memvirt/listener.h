/*
 * Memory listeners (QEMU's MemoryListener): follow the FlatView of one
 * address space as it changes.
 *
 * On each outermost commit that changed the topology, every listener gets
 * begin, then for each address space whose FlatView changed: a delete pass
 * (region_del, in reverse priority order) and an add pass (region_add /
 * region_nop / log_start / log_stop, forward order; log_stop in reverse),
 * computed by diffing the old and new FlatView as QEMU does; then commit.
 * A listener registered later sees begin, region_add (and log_start for
 * logged sections) for every current section, then commit.
 *
 * The section passed to a callback is valid only during the call.
 * Every callback is optional (NULL).
 */
#ifndef MEMVIRT_LISTENER_H
#define MEMVIRT_LISTENER_H

#include "memvirt/memory.h"

typedef struct mv_listener mv_listener;

struct mv_listener {
	void (*begin)(mv_listener *l);
	void (*commit)(mv_listener *l);
	void (*region_add)(mv_listener *l, const mv_section *s);
	void (*region_del)(mv_listener *l, const mv_section *s);
	void (*region_nop)(mv_listener *l, const mv_section *s);
	void (*log_start)(mv_listener *l, const mv_section *s, int old_mask, int new_mask);
	void (*log_stop)(mv_listener *l, const mv_section *s, int old_mask, int new_mask);
	void (*log_sync)(mv_listener *l, const mv_section *s);
	void (*log_global_start)(mv_listener *l);
	void (*log_global_stop)(mv_listener *l);
	/* Lower priority runs first in forward order (QEMU's rule). */
	int priority;
	const char *name;

	/* Private to the memory system. */
	struct {
		mv_address_space *as;
		mv_listener *next_global, *prev_global;
		mv_listener *next_as, *prev_as;
	} link;
};

/*
 * Attach @l (caller-owned, must stay alive until unregistered) to @as.
 * Equal priorities keep registration order. -EBUSY if already registered.
 */
int mv_listener_register(mv_listener *l, mv_address_space *as);
/* Detach: begin, region_del for each current section, commit. */
void mv_listener_unregister(mv_listener *l);

#endif
