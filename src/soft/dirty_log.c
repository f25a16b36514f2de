/*
 * Bitmap dirty logging of the software KVM (virt/kvm/kvm_main.c:
 * kvm_get_dirty_log_protect, kvm_clear_dirty_log_protect and the
 * INITIALLY_SET rule of kvm_prepare_memory_region), with KVM's checks in
 * KVM's order. Bit n of word w is page 64 * w + n of the slot, the layout
 * of KVM's unsigned longs on a 64-bit host.
 */
#include "memvirt/soft_dirty.h"

#include <errno.h>

#define DL_WORD_BITS 64u

/* The slot a get / clear names: -EINVAL for ids out of range, -ENOENT when it does not log. */
static int dl_slot(const mv_memslots *ms, uint32_t slot, const mv_memslot **out)
{
	if (!mv_memslots_id_valid(ms, slot))
		return -EINVAL;
	*out = mv_memslots_get(ms, HV_SLOT_AS(slot), HV_SLOT_ID(slot));
	return *out && (*out)->dirty_bitmap ? 0 : -ENOENT;
}

static uint64_t dl_words(const mv_memslot *s)
{
	return (s->npages + DL_WORD_BITS - 1) / DL_WORD_BITS;
}

int mv_dirty_get_log(const mv_memslots *ms, uint32_t slot, bool manual, uint64_t *out,
		     mv_dirty_protect_fn protect, void *arg)
{
	const mv_memslot *s;
	uint64_t i, n;
	int r = dl_slot(ms, slot, &s);

	if (r)
		return r;
	n = dl_words(s);
	for (i = 0; i < n; i++) {
		uint64_t w = __atomic_load_n(&s->dirty_bitmap[i], __ATOMIC_RELAXED);

		/* Manual protect: the bits stay until KVM_CLEAR_DIRTY_LOG. */
		if (w && !manual) {
			/* A vCPU may set more bits between the load and here: take them all. */
			w = __atomic_exchange_n(&s->dirty_bitmap[i], 0, __ATOMIC_RELAXED);
			if (w)   /* zero only when a concurrent get took them first */
				protect(arg, s, i * DL_WORD_BITS, w);
		}
		out[i] = w;
	}
	return 0;
}

/* KVM's range rule: inside the slot, and whole words unless the range reaches the slot's end. */
static bool dl_clear_range_ok(const mv_memslot *s, uint64_t first_page, uint32_t num_pages)
{
	if (first_page > s->npages || num_pages > s->npages - first_page)
		return false;
	return num_pages == s->npages - first_page || num_pages % DL_WORD_BITS == 0;
}

int mv_dirty_clear_log(const mv_memslots *ms, uint32_t slot, uint64_t first_page,
		       uint32_t num_pages, const uint64_t *bitmap, mv_dirty_protect_fn protect,
		       void *arg)
{
	const mv_memslot *s;
	uint64_t k, n, base;
	int r;

	if (!mv_memslots_id_valid(ms, slot))
		return -EINVAL;
	if (first_page % DL_WORD_BITS)
		return -EINVAL;
	r = dl_slot(ms, slot, &s);
	if (r)
		return r;
	if (!dl_clear_range_ok(s, first_page, num_pages))
		return -EINVAL;
	base = first_page / DL_WORD_BITS;
	n = ((uint64_t)num_pages + DL_WORD_BITS - 1) / DL_WORD_BITS;
	for (k = 0; k < n; k++) {
		uint64_t mask = bitmap[k];

		if (!mask)
			continue;
		/*
		 * Only the bits that were set are re-protected; bits past the
		 * slot's end are never set in the slot, so they drop out here.
		 */
		mask &= __atomic_fetch_and(&s->dirty_bitmap[base + k], ~mask, __ATOMIC_RELAXED);
		if (mask)
			protect(arg, s, first_page + k * DL_WORD_BITS, mask);
	}
	return 0;
}

void mv_dirty_init_set(const mv_memslot *old, const mv_memslot *new)
{
	uint64_t full, rest, i;

	if (!new->dirty_bitmap || (old && old->dirty_bitmap == new->dirty_bitmap))
		return;
	full = new->npages / DL_WORD_BITS;
	rest = new->npages % DL_WORD_BITS;
	/* The slot is not visible yet: plain stores are enough. */
	for (i = 0; i < full; i++)
		new->dirty_bitmap[i] = ~0ull;
	if (rest)
		new->dirty_bitmap[full] = (1ull << rest) - 1;
}
