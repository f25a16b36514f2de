/*
 * Sections to memslots (QEMU's kvm_set_phys_mem, kvm_region_add/del): which
 * sections are mapped and how, the slot table with lowest-free-id
 * allocation, and the hv_set_memslot calls that create, delete or re-flag
 * a slot.
 */
#include "hv/hv_memory_internal.h"
#include "util/alloc.h"

#include <errno.h>

#define PAGE_MASK128 (~(mv_u128)(HV_PAGE_SIZE - 1))

/* The range of the section's FlatView the section was made from (by start). */
static const mv_flat_range *section_range(const mv_section *s)
{
	size_t lo = 0, hi = s->fv ? mv_flatview_nr_ranges(s->fv) : 0;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const mv_flat_range *fr = mv_flatview_range(s->fv, mid);

		if (fr->start == s->offset_within_address_space)
			return fr;
		if (fr->start < s->offset_within_address_space)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/*
 * The RAM block to map for @s and whether the guest may only read it, or
 * NULL when the section is not mapped (QEMU: I/O traps; a ROM device out of
 * romd mode traps too, and without read-only slots it can never be mapped,
 * while plain ROM then maps writable).
 */
static mv_ramblock *section_block(const hv_mem *hm, const mv_section *s,
				  const mv_flat_range *fr, bool *readonly)
{
	switch (mv_region_get_kind(s->mr)) {
	case MV_REGION_RAM:
		*readonly = s->readonly;
		return mv_ram_region_block(mv_region_as_ram(s->mr));
	case MV_REGION_ROM:
		*readonly = true;
		return mv_ram_region_block(mv_region_as_ram(s->mr));
	case MV_REGION_ROMD:
		if (!fr || !fr->romd_mode || !hm->readonly_mem)
			return NULL;
		*readonly = true;
		return mv_romd_region_block(mv_region_as_romd(s->mr));
	default:
		return NULL;
	}
}

bool hv_mem_section_slot(const hv_mem *hm, const mv_section *s, hv_mem_slot *out)
{
	const mv_flat_range *fr;
	mv_ramblock *rb;
	mv_u128 start, end;
	bool readonly = false;

	if (!s->mr)
		return false;
	fr = section_range(s);
	rb = section_block(hm, s, fr, &readonly);
	if (!rb)
		return false;
	/* Memslots hold whole pages: keep only the pages inside the section. */
	start = ((mv_u128)s->offset_within_address_space + HV_PAGE_SIZE - 1) & PAGE_MASK128;
	end = ((mv_u128)s->offset_within_address_space + s->size) & PAGE_MASK128;
	if (end <= start)
		return false;
	*out = (hv_mem_slot){
		.gpa = (uint64_t)start,
		.size = (uint64_t)(end - start),
		.rb = rb,
		.rb_offset = s->offset_within_region +
			     (uint64_t)(start - s->offset_within_address_space),
		.mr = s->mr,
		.flags = readonly && hm->readonly_mem ? HV_MEM_READONLY : 0,
		.log_mask = fr ? fr->dirty_log_mask : 0,
	};
	out->hva = (uint8_t *)mv_ramblock_host(rb) + out->rb_offset;
	return true;
}

int hv_mem_find_slot_locked(const hv_mem_as *a, const hv_mem_slot *want)
{
	for (size_t i = 0; i < a->nr_slots; i++) {
		const hv_mem_slot *sl = &a->slots[i];

		if (sl->used && sl->gpa == want->gpa && sl->size == want->size)
			return (int)i;
	}
	return -1;
}

/* The lowest free slot id (ids are reused, as KVM's and QEMU's are), or -errno. */
static int slot_alloc_locked(hv_mem_as *a)
{
	hv_mem *hm = a->hm;

	for (size_t i = 0; i < a->nr_slots; i++)
		if (!a->slots[i].used)
			return (int)i;
	if (a->nr_slots >= hm->max_slots)
		return -ENOSPC;
	if (mv_grow(hm->alloc, (void **)&a->slots, &a->cap_slots, a->nr_slots + 1,
		    sizeof(*a->slots)))
		return -ENOMEM;
	a->slots[a->nr_slots] = (hv_mem_slot){ .used = false };
	return (int)a->nr_slots++;
}

/* One hv_set_memslot for slot @id at @sl's place; counts it, records a failure. */
static int set_memslot_locked(hv_mem_as *a, unsigned id, const hv_mem_slot *sl,
			      uint64_t size, uint32_t flags, const char *call)
{
	hv_mem *hm = a->hm;
	hv_memslot m = {
		.slot = HV_SLOT(a->as_id, id),
		.flags = flags,
		.gpa = sl->gpa,
		.size = size,
		.hva = sl->hva,
	};
	int r = hv_set_memslot(hm->vm, &m);

	hm->ctr.memslot_calls++;
	if (r) {
		hm->ctr.memslot_errors++;
		hv_mem_record_slot_error_locked(hm, a, id, sl, call, r);
	}
	return r;
}

static void slot_add_locked(hv_mem_as *a, hv_mem_slot *want)
{
	hv_mem *hm = a->hm;
	int id = slot_alloc_locked(a);

	if (id < 0) {
		hv_mem_record_error_locked(hm, id,
					   "no free memslot for region '%s' (gpa 0x%llx, 0x%llx bytes): %s",
					   mv_region_name(want->mr), (unsigned long long)want->gpa,
					   (unsigned long long)want->size,
					   id == -ENOSPC ? "all slots of the address space are in use"
							 : "out of memory");
		return;
	}
	want->flags |= hv_mem_log_flag_locked(hm, want->log_mask);
	if (set_memslot_locked(a, (unsigned)id, want, want->size, want->flags, "hv_set_memslot"))
		return;
	mv_ramblock_ref(want->rb);
	want->used = true;
	a->slots[id] = *want;
	if (++hm->ctr.slots_in_use > hm->ctr.slots_max)
		hm->ctr.slots_max = hm->ctr.slots_in_use;
}

static void slot_del_locked(hv_mem_as *a, unsigned id)
{
	hv_mem *hm = a->hm;
	hv_mem_slot *sl = &a->slots[id];

	/* The accelerator forgets the slot's dirty pages with it: keep them. */
	if (!hm->closing && (sl->flags & HV_MEM_LOG_DIRTY_PAGES))
		hv_mem_flush_slot_locked(a, id);
	if (set_memslot_locked(a, id, sl, 0, sl->flags, "hv_set_memslot (delete)")) {
		/* Still mapped by the accelerator: keep the block, forget the region. */
		sl->mr = NULL;
		return;
	}
	mv_ramblock_unref(sl->rb);
	*sl = (hv_mem_slot){ .used = false };
	hm->ctr.slots_in_use--;
}

int hv_mem_slot_set_flags_locked(hv_mem_as *a, unsigned id, uint32_t flags)
{
	hv_mem_slot *sl = &a->slots[id];
	int r;

	if (flags == sl->flags)
		return 0;
	r = set_memslot_locked(a, id, sl, sl->size, flags, "hv_set_memslot (flags)");
	if (!r)
		sl->flags = flags;
	return r;
}

static void hv_mem_region_add(mv_listener *l, const mv_section *s)
{
	hv_mem_as *a = (hv_mem_as *)l;
	hv_mem_slot want;

	if (!hv_mem_section_slot(a->hm, s, &want))
		return;
	hv_mem_lock(a->hm);
	slot_add_locked(a, &want);
	hv_mem_unlock(a->hm);
}

static void hv_mem_region_del(mv_listener *l, const mv_section *s)
{
	hv_mem_as *a = (hv_mem_as *)l;
	hv_mem_slot want;
	int id;

	if (!hv_mem_section_slot(a->hm, s, &want))
		return;
	hv_mem_lock(a->hm);
	id = hv_mem_find_slot_locked(a, &want);
	if (id >= 0)
		slot_del_locked(a, (unsigned)id);
	hv_mem_unlock(a->hm);
}

/* QEMU's KVM listener priority: after the core's own listeners. */
const mv_listener hv_mem_listener_template = {
	.region_add = hv_mem_region_add,
	.region_del = hv_mem_region_del,
	.log_start = hv_mem_log_start,
	.log_stop = hv_mem_log_stop,
	.log_sync = hv_mem_log_sync,
	.log_global_start = hv_mem_log_global_start,
	.log_global_stop = hv_mem_log_global_stop,
	.priority = 10,
};
