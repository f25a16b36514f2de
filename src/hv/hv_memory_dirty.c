/*
 * Dirty logging through memslots (QEMU's kvm_log_start/stop/sync and the
 * dirty-ring reaper): the log flag of each slot, global logging, and
 * copying the accelerator's dirty pages -- bitmaps per slot or entries per
 * vCPU ring -- into the dirty bitmaps of the RAM blocks behind the slots.
 */
#include "hv/hv_memory_internal.h"
#include "util/alloc.h"

#include <errno.h>
#include <string.h>

/* hv_clear_dirty_log takes a 32-bit page count: clear in chunks of this many. */
#define CLEAR_CHUNK_PAGES (1u << 30)

uint32_t hv_mem_log_flag_locked(const hv_mem *hm, uint8_t mask)
{
	if (hm->dirty.mode == HV_MEM_DIRTY_OFF)
		return 0;
	return mask || hm->global_log ? HV_MEM_LOG_DIRTY_PAGES : 0;
}

/* A flags-only memslot update when the slot's log flag must change. */
static void update_slot_log_locked(hv_mem_as *a, unsigned id)
{
	const hv_mem_slot *sl = &a->slots[id];
	uint32_t flags = (sl->flags & ~HV_MEM_LOG_DIRTY_PAGES) |
			 hv_mem_log_flag_locked(a->hm, sl->log_mask);

	hv_mem_slot_set_flags_locked(a, id, flags);
}

void hv_mem_update_all_logs_locked(hv_mem *hm)
{
	for (uint16_t i = 0; i < hm->nr_as; i++) {
		hv_mem_as *a = hm->spaces[i];

		for (size_t id = 0; a && id < a->nr_slots; id++)
			if (a->slots[id].used && a->slots[id].mr)
				update_slot_log_locked(a, (unsigned)id);
	}
}

/* log_start / log_stop: the section's clients are now @new_mask. */
static void section_set_log(mv_listener *l, const mv_section *s, int new_mask)
{
	hv_mem_as *a = (hv_mem_as *)l;
	hv_mem_slot want;
	int id;

	if (!hv_mem_section_slot(a->hm, s, &want))
		return;
	hv_mem_lock(a->hm);
	id = hv_mem_find_slot_locked(a, &want);
	if (id >= 0) {
		a->slots[id].log_mask = (uint8_t)new_mask;
		update_slot_log_locked(a, (unsigned)id);
	}
	hv_mem_unlock(a->hm);
}

void hv_mem_log_start(mv_listener *l, const mv_section *s, int old_mask, int new_mask)
{
	(void)old_mask;
	section_set_log(l, s, new_mask);
}

void hv_mem_log_stop(mv_listener *l, const mv_section *s, int old_mask, int new_mask)
{
	(void)old_mask;
	section_set_log(l, s, new_mask);
}

/*
 * The memory core announces global logging both ways: log_global_start /
 * stop, and a re-render whose sections gain or lose the MIGRATION client
 * (log_start / log_stop). Either alone leaves every slot logging.
 */
static void set_global_log(mv_listener *l, bool on)
{
	hv_mem *hm = ((hv_mem_as *)l)->hm;

	hv_mem_lock(hm);
	hm->global_log = on;
	hv_mem_update_all_logs_locked(hm);
	hv_mem_unlock(hm);
}

void hv_mem_log_global_start(mv_listener *l) { set_global_log(l, true); }
void hv_mem_log_global_stop(mv_listener *l) { set_global_log(l, false); }

/* ------------------------------------------------------------------ */
/* Bitmap modes                                                         */

static bool test_page(const uint64_t *bitmap, uint64_t n)
{
	return (bitmap[n / 64] >> (n % 64)) & 1;
}

/*
 * Set the RAM-block dirty bits of the pages set in @bitmap (bit n = page n
 * of the slot, which is page rb_offset/4K + n of the block), one call per
 * run of dirty pages. Returns the number of dirty pages.
 */
static uint64_t mark_dirty_pages(const hv_mem_slot *sl, const uint64_t *bitmap)
{
	uint64_t npages = sl->size >> HV_PAGE_SHIFT, count = 0, n = 0;

	while (n < npages) {
		uint64_t word = bitmap[n / 64] >> (n % 64), first;

		if (!word) {
			n = (n / 64 + 1) * 64;
			continue;
		}
		first = n += (uint64_t)__builtin_ctzll(word);
		while (n < npages && test_page(bitmap, n))
			n++;
		if (first >= npages)
			break;
		mv_ramblock_set_dirty(sl->rb, sl->rb_offset + (first << HV_PAGE_SHIFT),
				      (n - first) << HV_PAGE_SHIFT);
		count += n - first;
	}
	return count;
}

static bool chunk_empty(const uint64_t *bitmap, uint64_t first, uint64_t num)
{
	for (uint64_t w = first / 64; w < (first + num + 63) / 64; w++)
		if (bitmap[w])
			return false;
	return true;
}

/* Manual protect: clear (re-protect) exactly the pages that were got. */
static void clear_got_locked(hv_mem_as *a, unsigned id, const uint64_t *bitmap)
{
	hv_mem *hm = a->hm;
	const hv_mem_slot *sl = &a->slots[id];
	uint64_t npages = sl->size >> HV_PAGE_SHIFT;

	for (uint64_t first = 0; first < npages; first += CLEAR_CHUNK_PAGES) {
		uint64_t num = npages - first < CLEAR_CHUNK_PAGES ? npages - first
								  : CLEAR_CHUNK_PAGES;
		int r;

		if (chunk_empty(bitmap, first, num))
			continue;
		r = hv_clear_dirty_log(hm->vm, HV_SLOT(a->as_id, id), first, (uint32_t)num,
				       bitmap + first / 64);
		hm->ctr.clear_log_calls++;
		if (r)
			hv_mem_record_slot_error_locked(hm, a, id, sl, "hv_clear_dirty_log", r);
	}
}

static void sync_slot_bitmap_locked(hv_mem_as *a, unsigned id)
{
	hv_mem *hm = a->hm;
	const hv_mem_slot *sl = &a->slots[id];
	uint64_t *bitmap = mv_zalloc(hm->alloc, HV_DIRTY_BITMAP_WORDS(sl->size) * sizeof(uint64_t));
	uint64_t pages;
	int r;

	if (!bitmap) {
		hv_mem_record_slot_error_locked(hm, a, id, sl, "dirty bitmap", -ENOMEM);
		return;
	}
	r = hv_get_dirty_log(hm->vm, HV_SLOT(a->as_id, id), bitmap);
	hm->ctr.dirty_log_calls++;
	if (r) {
		hv_mem_record_slot_error_locked(hm, a, id, sl, "hv_get_dirty_log", r);
	} else {
		pages = mark_dirty_pages(sl, bitmap);
		hm->ctr.pages_synced += pages;
		if (pages && hm->dirty.mode == HV_MEM_DIRTY_MANUAL)
			clear_got_locked(a, id, bitmap);
	}
	mv_free(hm->alloc, bitmap);
}

void hv_mem_flush_slot_locked(hv_mem_as *a, unsigned id)
{
	switch (a->hm->dirty.mode) {
	case HV_MEM_DIRTY_BITMAP:
	case HV_MEM_DIRTY_MANUAL:
		sync_slot_bitmap_locked(a, id);
		break;
	case HV_MEM_DIRTY_RING:
		/* Entries name slot ids, which are reused: harvest before the id goes. */
		hv_mem_ring_harvest_locked(a->hm);
		break;
	case HV_MEM_DIRTY_OFF:
		break;
	}
}

void hv_mem_log_sync(mv_listener *l, const mv_section *s)
{
	hv_mem_as *a = (hv_mem_as *)l;
	hv_mem_slot want;
	bool mapped = hv_mem_section_slot(a->hm, s, &want);
	int id;

	hv_mem_lock(a->hm);
	if (a->hm->dirty.mode == HV_MEM_DIRTY_RING) {
		/* A ring holds every slot's pages: harvesting it syncs all sections. */
		hv_mem_ring_harvest_locked(a->hm);
	} else if (mapped) {
		id = hv_mem_find_slot_locked(a, &want);
		if (id >= 0 && (a->slots[id].flags & HV_MEM_LOG_DIRTY_PAGES))
			sync_slot_bitmap_locked(a, (unsigned)id);
	}
	hv_mem_unlock(a->hm);
}

/* ------------------------------------------------------------------ */
/* Dirty rings                                                          */

typedef struct ring_ctx {
	hv_mem *hm;
	uint64_t entries, pages;
} ring_ctx;

/* One (slot, page) entry back to its RAM block through the slot table. */
static void ring_entry(void *opaque, const hv_dirty_gfn *g)
{
	ring_ctx *c = opaque;
	uint16_t as_id = HV_SLOT_AS(g->slot), id = HV_SLOT_ID(g->slot);
	const hv_mem_as *a;
	const hv_mem_slot *sl;

	c->entries++;
	if (as_id >= c->hm->nr_as || !(a = c->hm->spaces[as_id]) || id >= a->nr_slots)
		return;
	sl = &a->slots[id];
	/* A slot deleted since (after its own flush) has nothing left to mark. */
	if (!sl->used || g->offset >= sl->size >> HV_PAGE_SHIFT)
		return;
	mv_ramblock_set_dirty(sl->rb, sl->rb_offset + (g->offset << HV_PAGE_SHIFT), HV_PAGE_SIZE);
	c->pages++;
}

int hv_mem_ring_harvest_locked(hv_mem *hm)
{
	ring_ctx c = { .hm = hm };
	int ret = 0;

	if (hm->dirty.mode != HV_MEM_DIRTY_RING)
		return 0;
	hm->ctr.ring_harvests++;
	for (size_t i = 0; i < hm->nr_vcpus; i++) {
		int r = hv_vcpu_dirty_ring_harvest(hm->vcpus[i], ring_entry, &c);

		if (r < 0)
			ret = hv_mem_record_error_locked(hm, r,
							 "cannot harvest the dirty ring of vCPU %u: %s",
							 hv_vcpu_id(hm->vcpus[i]), strerror(-r));
	}
	if (c.entries) {
		int r = hv_dirty_rings_reset(hm->vm);

		if (r < 0)
			ret = hv_mem_record_error_locked(hm, r, "cannot reset the dirty rings: %s",
							 strerror(-r));
	}
	hm->ctr.ring_entries += c.entries;
	hm->ctr.pages_synced += c.pages;
	return ret ? ret : (int)c.entries;
}

int hv_mem_ring_harvest(hv_mem *hm)
{
	int r;

	hv_mem_lock(hm);
	r = hv_mem_ring_harvest_locked(hm);
	hv_mem_unlock(hm);
	return r;
}
