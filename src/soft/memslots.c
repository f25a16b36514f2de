/*
 * The memslot set of the software KVM: KVM_SET_USER_MEMORY_REGION
 * (virt/kvm/kvm_main.c __kvm_set_memory_region) with KVM's rules, errors
 * and check order, and KVM's lookups (search_memslots, id_to_memslot,
 * kvm_for_each_memslot_in_hva_range).
 *
 * Per address space the slots are two arrays of pointers: one sorted by
 * base_gfn (slots never overlap, so their ends are sorted too: a binary
 * search finds the slot of a gfn) and one sorted by id. A change builds a
 * fresh mv_memslot for the new state and swaps pointers, so the old slot
 * stays readable (for arch_commit) until it is freed after the commit, and
 * every allocation happens before anything visible changes.
 */
#include "memvirt/soft_memslot.h"

#include <errno.h>
#include <string.h>

#include "util/alloc.h"

#define MS_PAGE_MASK ((uint64_t)HV_PAGE_SIZE - 1)
#define MS_MAX_AS 16u
#define MS_VALID_FLAGS (HV_MEM_LOG_DIRTY_PAGES | HV_MEM_READONLY)

typedef struct ms_as {
	mv_memslot **by_gfn;      /* sorted by base_gfn */
	mv_memslot **by_id;       /* sorted by id */
	size_t nr;
	size_t cap_gfn, cap_id;
} ms_as;

struct mv_memslots {
	const mv_allocator *alloc;
	unsigned nr_as;
	unsigned nr_slots;
	bool dirty_bitmap;
	int (*arch_prepare)(void *arg, mv_memslot_change change, const mv_memslot *old,
			    mv_memslot *new);
	void (*arch_commit)(void *arg, mv_memslot_change change, const mv_memslot *old,
			    const mv_memslot *new);
	void *arg;
	uint64_t generation;
	ms_as as[];               /* nr_as */
};

/* ------------------------------------------------------------------ */
/* Set lifecycle                                                        */

int mv_memslots_new(const mv_memslots_config *cfg, mv_memslots **out)
{
	mv_memslots *ms;

	if (cfg->nr_as == 0 || cfg->nr_as > MS_MAX_AS || cfg->nr_slots > MV_MEMSLOT_SLOTS_NUM)
		return -EINVAL;
	ms = mv_zalloc(cfg->alloc, sizeof(*ms) + cfg->nr_as * sizeof(ms_as));
	if (!ms)
		return -ENOMEM;
	ms->alloc = cfg->alloc;
	ms->nr_as = cfg->nr_as;
	ms->nr_slots = cfg->nr_slots ? cfg->nr_slots : MV_MEMSLOT_SLOTS_NUM;
	ms->generation = cfg->generation;
	ms->dirty_bitmap = cfg->dirty_bitmap;
	ms->arch_prepare = cfg->arch_prepare;
	ms->arch_commit = cfg->arch_commit;
	ms->arg = cfg->arg;
	*out = ms;
	return 0;
}

static void slot_free(const mv_allocator *alloc, mv_memslot *slot)
{
	mv_free(alloc, slot->dirty_bitmap);
	mv_free(alloc, slot);
}

void mv_memslots_free(mv_memslots *ms)
{
	unsigned a;
	size_t i;

	if (!ms)
		return;
	for (a = 0; a < ms->nr_as; a++) {
		for (i = 0; i < ms->as[a].nr; i++)
			slot_free(ms->alloc, ms->as[a].by_gfn[i]);
		mv_free(ms->alloc, ms->as[a].by_gfn);
		mv_free(ms->alloc, ms->as[a].by_id);
	}
	mv_free(ms->alloc, ms);
}

void mv_memslots_set_dirty_bitmap(mv_memslots *ms, bool on)
{
	ms->dirty_bitmap = on;
}

bool mv_memslots_id_valid(const mv_memslots *ms, uint32_t slot)
{
	return HV_SLOT_AS(slot) < ms->nr_as && HV_SLOT_ID(slot) < ms->nr_slots;
}

/* ------------------------------------------------------------------ */
/* Sorted-array helpers                                                 */

static uint64_t slot_end_gfn(const mv_memslot *slot)
{
	return slot->base_gfn + slot->npages;
}

/* Number of slots whose base_gfn <= @gfn (the slot of @gfn is the one before). */
static size_t gfn_upper(const ms_as *as, uint64_t gfn)
{
	size_t lo = 0, hi = as->nr;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (as->by_gfn[mid]->base_gfn <= gfn)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Index of the first slot whose id >= @id. */
static size_t id_lower(const ms_as *as, unsigned id)
{
	size_t lo = 0, hi = as->nr;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (as->by_id[mid]->id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Slot @id of @as, or NULL. */
static mv_memslot *slot_by_id(const ms_as *as, unsigned id)
{
	size_t i = id_lower(as, id);

	return i < as->nr && as->by_id[i]->id == id ? as->by_id[i] : NULL;
}

/* Index of @slot in the by-gfn array (it is there). */
static size_t gfn_index_of(const ms_as *as, const mv_memslot *slot)
{
	return gfn_upper(as, slot->base_gfn) - 1;
}

static void array_insert(mv_memslot **arr, size_t nr, size_t pos, mv_memslot *slot)
{
	memmove(&arr[pos + 1], &arr[pos], (nr - pos) * sizeof(*arr));
	arr[pos] = slot;
}

static void array_remove(mv_memslot **arr, size_t nr, size_t pos)
{
	memmove(&arr[pos], &arr[pos + 1], (nr - pos - 1) * sizeof(*arr));
}

/* ------------------------------------------------------------------ */
/* KVM_SET_USER_MEMORY_REGION                                           */

/*
 * The generic checks of __kvm_set_memory_region, in KVM's order (all
 * -EINVAL, so the order only matters against the later errnos). The hva
 * rule is x86-64's access_ok(): hva + size may not wrap nor exceed
 * TASK_SIZE_MAX, even for a delete.
 */
static int check_request(const mv_memslots *ms, const hv_memslot *req)
{
	uint64_t hva = (uint64_t)(uintptr_t)req->hva;

	if (req->flags & ~MS_VALID_FLAGS)
		return -EINVAL;
	if (req->size & MS_PAGE_MASK)
		return -EINVAL;
	if (req->gpa & MS_PAGE_MASK)
		return -EINVAL;
	if ((hva & MS_PAGE_MASK) || hva + req->size < hva || hva + req->size > MV_MEMSLOT_TASK_SIZE)
		return -EINVAL;
	if (!mv_memslots_id_valid(ms, req->slot))
		return -EINVAL;
	if (req->gpa + req->size < req->gpa)
		return -EINVAL;
	if ((req->size >> HV_PAGE_SHIFT) > MV_MEMSLOT_MAX_NR_PAGES)
		return -EINVAL;
	return 0;
}

/*
 * What the request does to the existing slot @old (NULL = none): sets
 * *@change and returns 0, returns 1 for an identical re-registration, or
 * -EINVAL for deleting an absent slot or changing what a slot cannot
 * change (hva, size, READONLY).
 */
static int classify(const mv_memslot *old, const hv_memslot *req, mv_memslot_change *change)
{
	if (req->size == 0) {
		if (!old)
			return -EINVAL;
		*change = MV_MR_DELETE;
		return 0;
	}
	if (!old) {
		*change = MV_MR_CREATE;
		return 0;
	}
	if ((uint64_t)(uintptr_t)req->hva != old->userspace_addr ||
	    (req->size >> HV_PAGE_SHIFT) != old->npages ||
	    ((req->flags ^ old->flags) & HV_MEM_READONLY))
		return -EINVAL;
	if ((req->gpa >> HV_PAGE_SHIFT) != old->base_gfn)
		*change = MV_MR_MOVE;
	else if (req->flags != old->flags)
		*change = MV_MR_FLAGS_ONLY;
	else
		return 1;
	return 0;
}

/* kvm_check_memslot_overlap: does [start, end) meet a slot other than @id? */
static bool overlaps(const ms_as *as, unsigned id, uint64_t start, uint64_t end)
{
	size_t i = gfn_upper(as, start);

	/* the slot before the one starting after @start may reach into the range */
	if (i > 0)
		i--;
	for (; i < as->nr && as->by_gfn[i]->base_gfn < end; i++) {
		const mv_memslot *s = as->by_gfn[i];

		if (s->id != id && slot_end_gfn(s) > start)
			return true;
	}
	return false;
}

/*
 * The new state of the slot, with KVM's dirty-bitmap rule
 * (kvm_prepare_memory_region): no logging, no bitmap; logging before and
 * after (only a MOVE: READONLY is the one other flag and cannot change),
 * the old bitmap carries over with its bits; logging turned on, a fresh
 * zeroed bitmap.
 * The arch data follows the slot across MOVE and FLAGS_ONLY.
 */
static int build_new(const mv_memslots *ms, const mv_memslot *old, const hv_memslot *req,
		     mv_memslot **out)
{
	mv_memslot *slot = mv_zalloc(ms->alloc, sizeof(*slot));

	if (!slot)
		return -ENOMEM;
	slot->as_id = HV_SLOT_AS(req->slot);
	slot->id = HV_SLOT_ID(req->slot);
	slot->flags = req->flags;
	slot->base_gfn = req->gpa >> HV_PAGE_SHIFT;
	slot->npages = req->size >> HV_PAGE_SHIFT;
	slot->userspace_addr = (uint64_t)(uintptr_t)req->hva;
	if (old)
		slot->arch = old->arch;
	if (!(slot->flags & HV_MEM_LOG_DIRTY_PAGES) || !ms->dirty_bitmap) {
		slot->dirty_bitmap = NULL;
	} else if (old && old->dirty_bitmap) {
		slot->dirty_bitmap = old->dirty_bitmap;
	} else {
		slot->dirty_bitmap = mv_zalloc(ms->alloc, HV_DIRTY_BITMAP_WORDS(req->size) *
							  sizeof(uint64_t));
		if (!slot->dirty_bitmap) {
			mv_free(ms->alloc, slot);
			return -ENOMEM;
		}
	}
	*out = slot;
	return 0;
}

/* Undo build_new: free @new and its bitmap unless that is @old's. */
static void drop_new(const mv_memslots *ms, const mv_memslot *old, mv_memslot *new)
{
	if (!new)
		return;
	if (old && new->dirty_bitmap == old->dirty_bitmap)
		new->dirty_bitmap = NULL;
	slot_free(ms->alloc, new);
}

/* Make room for one more slot so that the commit cannot fail. */
static int reserve_one(const mv_memslots *ms, ms_as *as)
{
	int r = mv_grow(ms->alloc, (void **)&as->by_gfn, &as->cap_gfn, as->nr + 1,
			sizeof(*as->by_gfn));

	if (r)
		return r;
	return mv_grow(ms->alloc, (void **)&as->by_id, &as->cap_id, as->nr + 1, sizeof(*as->by_id));
}

/* Make the change visible: swap @old for @new in both arrays (either may be NULL). */
static void install(ms_as *as, mv_memslot *old, mv_memslot *new)
{
	if (old) {
		array_remove(as->by_gfn, as->nr, gfn_index_of(as, old));
		if (new)
			as->by_id[id_lower(as, old->id)] = new;
		else
			array_remove(as->by_id, as->nr, id_lower(as, old->id));
		as->nr--;
	} else {
		array_insert(as->by_id, as->nr, id_lower(as, new->id), new);
	}
	if (new) {
		array_insert(as->by_gfn, as->nr, gfn_upper(as, new->base_gfn), new);
		as->nr++;
	}
}

/* Free what the committed change left behind: @old, and its bitmap unless @new kept it. */
static void retire_old(const mv_memslots *ms, mv_memslot *old, const mv_memslot *new)
{
	if (!old)
		return;
	if (new && new->dirty_bitmap == old->dirty_bitmap)
		old->dirty_bitmap = NULL;
	slot_free(ms->alloc, old);
}

int mv_memslots_set(mv_memslots *ms, const hv_memslot *req)
{
	mv_memslot_change change;
	mv_memslot *old, *new = NULL;
	ms_as *as;
	int r;

	r = check_request(ms, req);
	if (r)
		return r;
	as = &ms->as[HV_SLOT_AS(req->slot)];
	old = slot_by_id(as, HV_SLOT_ID(req->slot));
	r = classify(old, req, &change);
	if (r)
		return r < 0 ? r : 0;
	if ((change == MV_MR_CREATE || change == MV_MR_MOVE) &&
	    overlaps(as, HV_SLOT_ID(req->slot), req->gpa >> HV_PAGE_SHIFT,
		     (req->gpa + req->size) >> HV_PAGE_SHIFT))
		return -EEXIST;
	/* As KVM, every allocation comes before the arch hook. */
	if (change != MV_MR_DELETE) {
		r = build_new(ms, old, req, &new);
		if (r)
			return r;
	}
	if (change == MV_MR_CREATE)
		r = reserve_one(ms, as);
	if (!r && ms->arch_prepare)
		r = ms->arch_prepare(ms->arg, change, old, new);
	if (r) {
		drop_new(ms, old, new);
		return r;
	}
	install(as, old, new);
	ms->generation++;
	if (ms->arch_commit)
		ms->arch_commit(ms->arg, change, old, new);
	retire_old(ms, old, new);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Lookups                                                              */

static bool slot_holds(const mv_memslot *slot, uint64_t gfn)
{
	return gfn >= slot->base_gfn && gfn - slot->base_gfn < slot->npages;
}

const mv_memslot *mv_memslots_find(const mv_memslots *ms, unsigned as_id, uint64_t gfn,
				   size_t *hint)
{
	const ms_as *as;
	size_t i;

	if (as_id >= ms->nr_as)
		return NULL;
	as = &ms->as[as_id];
	if (hint && *hint < as->nr && slot_holds(as->by_gfn[*hint], gfn))
		return as->by_gfn[*hint];
	i = gfn_upper(as, gfn);
	if (i == 0 || !slot_holds(as->by_gfn[i - 1], gfn))
		return NULL;
	if (hint)
		*hint = i - 1;
	return as->by_gfn[i - 1];
}

const mv_memslot *mv_memslots_get(const mv_memslots *ms, unsigned as_id, unsigned id)
{
	return as_id < ms->nr_as ? slot_by_id(&ms->as[as_id], id) : NULL;
}

uint64_t mv_memslots_generation(const mv_memslots *ms)
{
	return ms->generation;
}

size_t mv_memslots_count(const mv_memslots *ms, unsigned as_id)
{
	return as_id < ms->nr_as ? ms->as[as_id].nr : 0;
}

const mv_memslot *mv_memslots_at(const mv_memslots *ms, unsigned as_id, size_t i)
{
	return as_id < ms->nr_as && i < ms->as[as_id].nr ? ms->as[as_id].by_gfn[i] : NULL;
}

/*
 * kvm_handle_hva_range: the gfn range of a slot touched by an hva range
 * rounds the start down and the end up to whole pages. Slots may alias
 * the same host memory, so every slot is visited (a linear scan: sets are
 * small, and notifiers are rare next to faults).
 */
int mv_memslots_foreach_hva(const mv_memslots *ms, uint64_t hva_start, uint64_t hva_end,
			    int (*fn)(void *arg, const mv_memslot *slot, uint64_t gfn_start,
				      uint64_t gfn_end),
			    void *arg)
{
	unsigned a;
	size_t i;
	int r;

	for (a = 0; a < ms->nr_as; a++) {
		for (i = 0; i < ms->as[a].nr; i++) {
			const mv_memslot *s = ms->as[a].by_gfn[i];
			uint64_t ua_end = s->userspace_addr + (s->npages << HV_PAGE_SHIFT);
			uint64_t start = hva_start > s->userspace_addr ? hva_start : s->userspace_addr;
			uint64_t end = hva_end < ua_end ? hva_end : ua_end;

			if (start >= end)
				continue;
			r = fn(arg, s, s->base_gfn + ((start - s->userspace_addr) >> HV_PAGE_SHIFT),
			       s->base_gfn + ((end - s->userspace_addr + MS_PAGE_MASK) >> HV_PAGE_SHIFT));
			if (r)
				return r;
		}
	}
	return 0;
}

void mv_memslot_mark_dirty(const mv_memslot *slot, uint64_t gfn)
{
	uint64_t rel = gfn - slot->base_gfn;

	if (!slot->dirty_bitmap || !slot_holds(slot, gfn))
		return;
	__atomic_fetch_or(&slot->dirty_bitmap[rel / 64], 1ull << (rel % 64), __ATOMIC_RELAXED);
}
