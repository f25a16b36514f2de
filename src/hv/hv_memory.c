/*
 * The accelerator memory object: creation, attaching listeners to address
 * spaces, the dirty mode, the vCPUs whose rings are harvested, the first
 * recorded error and the counters.
 */
#include "hv/hv_memory_internal.h"
#include "memvirt/hv_soft.h"
#include "memvirt/ramblock.h"
#include "util/alloc.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

/* KVM's historical minimum number of user memslots, if the cap says nothing. */
#define HV_MEM_DEFAULT_SLOTS 32
/* Slot ids are 16 bits wide in HV_SLOT. */
#define HV_MEM_MAX_SLOTS 65536u

void hv_mem_lock(hv_mem *hm) { pthread_mutex_lock(&hm->lock); }
void hv_mem_unlock(hv_mem *hm) { pthread_mutex_unlock(&hm->lock); }

static uint32_t cap_or(hv_vm *vm, hv_cap cap, uint32_t dflt, uint32_t max)
{
	long v = hv_vm_check_cap(vm, cap);

	if (v <= 0)
		return dflt;
	return (unsigned long)v > max ? max : (uint32_t)v;
}

/*
 * Host pages of a RAM block are being dropped or moved (discard, shrink,
 * free): an accelerator with its own mappings of them (soft) must drop
 * those first, as the kernel's MMU notifiers make real KVM do.
 */
static void hv_mem_ram_invalidate(mv_ram_notifier *n, mv_ramblock *rb, uint64_t hva,
				  uint64_t len, bool start)
{
	hv_mem *hm = (hv_mem *)((char *)n - offsetof(hv_mem, ram_notifier));

	(void)rb;
	if (start)
		hv_vm_invalidate_hva_start(hm->vm, hva, len);
	else
		hv_vm_invalidate_hva_end(hm->vm, hva, len);
}

int hv_mem_new(hv_vm *vm, mv_memory *mem, hv_mem **out, mv_error *err)
{
	const mv_allocator *a = mv_allocator_libc();
	hv_mem *hm = mv_zalloc(a, sizeof(*hm));

	if (!hm)
		return mv_error_set(err, -ENOMEM, "no memory for the accelerator memory listener");
	hm->ram_notifier.invalidate = hv_mem_ram_invalidate;
	if (mv_ram_list_add_notifier(mv_memory_ram_list(mem), &hm->ram_notifier)) {
		mv_free(a, hm);
		return mv_error_set(err, -ENOMEM, "no memory for the accelerator memory listener");
	}
	hm->vm = vm;
	hm->mem = mem;
	hm->alloc = a;
	hm->nr_as = (uint16_t)cap_or(vm, HV_CAP_NR_AS, 1, UINT16_MAX);
	hm->max_slots = cap_or(vm, HV_CAP_NR_MEMSLOTS, HV_MEM_DEFAULT_SLOTS, HV_MEM_MAX_SLOTS);
	hm->readonly_mem = hv_vm_check_cap(vm, HV_CAP_READONLY_MEM) > 0;
	hm->dirty.mode = HV_MEM_DIRTY_BITMAP;
	hm->spaces = mv_zalloc(a, hm->nr_as * sizeof(*hm->spaces));
	if (!hm->spaces) {
		mv_ram_list_remove_notifier(mv_memory_ram_list(mem), &hm->ram_notifier);
		mv_free(a, hm);
		return mv_error_set(err, -ENOMEM, "no memory for the accelerator memory listener");
	}
	pthread_mutex_init(&hm->lock, NULL);
	*out = hm;
	return 0;
}

/* Drop what a slot table still holds (slots the accelerator kept after a failed delete). */
static void hv_mem_as_free(hv_mem *hm, hv_mem_as *a)
{
	for (size_t i = 0; i < a->nr_slots; i++)
		if (a->slots[i].used)
			mv_ramblock_unref(a->slots[i].rb);
	mv_free(hm->alloc, a->slots);
	mv_free(hm->alloc, a);
}

void hv_mem_free(hv_mem *hm)
{
	if (!hm)
		return;
	/* The vCPUs may be gone already: deletes must not harvest their rings. */
	hv_mem_lock(hm);
	hm->closing = true;
	hv_mem_unlock(hm);
	for (uint16_t i = 0; i < hm->nr_as; i++) {
		if (!hm->spaces[i])
			continue;
		/* No-op if the address space was freed first (it unregistered us). */
		mv_listener_unregister(&hm->spaces[i]->l);
		hv_mem_as_free(hm, hm->spaces[i]);
	}
	mv_ram_list_remove_notifier(mv_memory_ram_list(hm->mem), &hm->ram_notifier);
	pthread_mutex_destroy(&hm->lock);
	mv_free(hm->alloc, hm->vcpus);
	mv_free(hm->alloc, hm->spaces);
	mv_free(hm->alloc, hm);
}

int hv_mem_attach(hv_mem *hm, mv_address_space *as, uint16_t as_id, mv_error *err)
{
	hv_mem_as *a;
	int r = 0;

	if (as_id >= hm->nr_as)
		return mv_error_set(err, -EINVAL,
				    "address space id %u is out of range: the accelerator has %u",
				    as_id, hm->nr_as);
	a = mv_zalloc(hm->alloc, sizeof(*a));
	if (!a)
		return mv_error_set(err, -ENOMEM, "no memory for the listener of address space %u",
				    as_id);
	a->l = hv_mem_listener_template;
	a->hm = hm;
	a->as_id = as_id;
	snprintf(a->name, sizeof(a->name), "hv-mem as %u", as_id);
	a->l.name = a->name;

	hv_mem_lock(hm);
	if (hm->spaces[as_id])
		r = -EEXIST;
	else
		hm->spaces[as_id] = a;
	hv_mem_unlock(hm);
	if (r) {
		mv_free(hm->alloc, a);
		return mv_error_set(err, r, "address space id %u already has a listener ('%s')",
				    as_id, mv_address_space_name(as));
	}
	/* Registration replays the current sections: the slots appear now. */
	return mv_listener_register(&a->l, as);
}

/* ------------------------------------------------------------------ */
/* Dirty mode                                                           */

static int enable_manual(hv_mem *hm, mv_error *err)
{
	long cap = hv_vm_check_cap(hm->vm, HV_CAP_MANUAL_DIRTY_PROTECT);
	uint32_t flags = HV_DIRTY_PROTECT_ENABLE;
	int r;

	if (cap <= 0)
		return mv_error_set(err, -ENOTSUP,
				    "accelerator '%s' has no manual dirty-log protection",
				    hv_vm_accel_name(hm->vm));
	/* INIT_SET spares write-protecting all of RAM when logging starts. */
	flags |= (uint32_t)cap & HV_DIRTY_PROTECT_INIT_SET;
	r = hv_enable_manual_dirty_protect(hm->vm, flags);
	if (r)
		return mv_error_set(err, r, "cannot enable manual dirty-log protection: %s",
				    strerror(-r));
	return 0;
}

static int enable_ring(hv_mem *hm, uint32_t entries, mv_error *err)
{
	long max = hv_vm_check_cap(hm->vm, HV_CAP_DIRTY_RING);
	int r;

	if (max <= 0)
		return mv_error_set(err, -ENOTSUP, "accelerator '%s' has no dirty ring",
				    hv_vm_accel_name(hm->vm));
	if (!entries || (entries & (entries - 1)) || entries > (unsigned long)max)
		return mv_error_set(err, -EINVAL,
				    "dirty ring size %u is not a power of two up to %ld",
				    entries, max);
	r = hv_enable_dirty_ring(hm->vm, entries);
	if (r)
		return mv_error_set(err, r, "cannot enable a dirty ring of %u entries: %s",
				    entries, strerror(-r));
	return 0;
}

/* MANUAL and RING change the VM for good: they cannot be switched away from. */
static bool mode_is_sticky(hv_mem_dirty_mode m)
{
	return m == HV_MEM_DIRTY_MANUAL || m == HV_MEM_DIRTY_RING;
}

static int set_mode_locked(hv_mem *hm, const hv_mem_dirty_config *dc, mv_error *err)
{
	if (dc->mode == hm->dirty.mode && dc->ring_entries == hm->dirty.ring_entries)
		return 0;
	if (hm->nr_vcpus)
		return mv_error_set(err, -EBUSY, "the dirty mode must be chosen before any vCPU");
	if (mode_is_sticky(hm->dirty.mode))
		return mv_error_set(err, -EBUSY, "the dirty mode was already chosen");
	switch (dc->mode) {
	case HV_MEM_DIRTY_OFF:
	case HV_MEM_DIRTY_BITMAP:
		return 0;
	case HV_MEM_DIRTY_MANUAL:
		return enable_manual(hm, err);
	case HV_MEM_DIRTY_RING:
		return enable_ring(hm, dc->ring_entries, err);
	}
	return mv_error_set(err, -EINVAL, "unknown dirty mode %d", (int)dc->mode);
}

int hv_mem_set_dirty_mode(hv_mem *hm, const hv_mem_dirty_config *dc, mv_error *err)
{
	int r;

	hv_mem_lock(hm);
	r = set_mode_locked(hm, dc, err);
	if (!r) {
		hm->dirty = *dc;
		/* OFF <-> BITMAP changes which existing slots log. */
		hv_mem_update_all_logs_locked(hm);
	}
	hv_mem_unlock(hm);
	return r;
}

hv_mem_dirty_mode hv_mem_get_dirty_mode(const hv_mem *hm)
{
	return hm->dirty.mode;
}

/* ------------------------------------------------------------------ */
/* vCPUs                                                                */

static ssize_t vcpu_index_locked(const hv_mem *hm, const hv_vcpu *vcpu)
{
	for (size_t i = 0; i < hm->nr_vcpus; i++)
		if (hm->vcpus[i] == vcpu)
			return (ssize_t)i;
	return -1;
}

int hv_mem_add_vcpu(hv_mem *hm, hv_vcpu *vcpu)
{
	int r = 0;

	hv_mem_lock(hm);
	if (vcpu_index_locked(hm, vcpu) >= 0)
		r = -EEXIST;
	else
		r = mv_grow(hm->alloc, (void **)&hm->vcpus, &hm->cap_vcpus, hm->nr_vcpus + 1,
			    sizeof(*hm->vcpus));
	if (!r)
		hm->vcpus[hm->nr_vcpus++] = vcpu;
	hv_mem_unlock(hm);
	return r;
}

int hv_mem_del_vcpu(hv_mem *hm, hv_vcpu *vcpu)
{
	ssize_t i;

	hv_mem_lock(hm);
	i = vcpu_index_locked(hm, vcpu);
	if (i >= 0) {
		/* Its ring may hold the last dirty pages it wrote. */
		if (hm->dirty.mode == HV_MEM_DIRTY_RING && !hm->closing)
			hv_mem_ring_harvest_locked(hm);
		hm->vcpus[i] = hm->vcpus[--hm->nr_vcpus];
	}
	hv_mem_unlock(hm);
	return i >= 0 ? 0 : -ENOENT;
}

/* ------------------------------------------------------------------ */
/* Errors and counters                                                  */

int hv_mem_record_error_locked(hv_mem *hm, int code, const char *fmt, ...)
{
	va_list ap;

	if (hm->error.code)
		return code;
	hm->error.code = code;
	va_start(ap, fmt);
	vsnprintf(hm->error.msg, sizeof(hm->error.msg), fmt, ap);
	va_end(ap);
	return code;
}

int hv_mem_record_slot_error_locked(hv_mem *hm, const hv_mem_as *a, unsigned id,
				    const hv_mem_slot *sl, const char *call, int code)
{
	char as_part[32] = "";

	if (a->as_id)
		snprintf(as_part, sizeof(as_part), " of address space %u", a->as_id);
	return hv_mem_record_error_locked(hm, code,
					  "memslot %u%s (gpa 0x%llx, 0x%llx bytes) for region '%s': %s: %s",
					  id, as_part, (unsigned long long)sl->gpa,
					  (unsigned long long)sl->size,
					  sl->mr ? mv_region_name(sl->mr) : "(removed)", call,
					  strerror(-code));
}

const char *hv_mem_error(hv_mem *hm)
{
	const char *msg;

	hv_mem_lock(hm);
	msg = hm->error.code ? hm->error.msg : NULL;
	hv_mem_unlock(hm);
	return msg;
}

const hv_mem_counters *hv_mem_stats(hv_mem *hm)
{
	hv_mem_lock(hm);
	hm->snapshot = hm->ctr;
	hv_mem_unlock(hm);
	return &hm->snapshot;
}
