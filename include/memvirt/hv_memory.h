/*
 * The accelerator memory listener (QEMU's KVM memory listener, made
 * accelerator-neutral): it follows the FlatViews of a VM's address spaces
 * and turns their RAM and ROM sections into memslots through hv.h only,
 * turns dirty-logging events into memslot flag changes, and copies the
 * accelerator's dirty logs (bitmaps or per-vCPU rings) into the dirty
 * bitmaps of the RAM blocks.
 *
 * Mapping rules (QEMU's kvm_set_phys_mem):
 *   - RAM sections map writable, ROM sections and sections shown read-only
 *     (readonly container or alias) map with HV_MEM_READONLY; a ROM device
 *     maps like ROM while in romd mode and not at all otherwise. I/O,
 *     reservations and holes are never mapped.
 *   - A section is trimmed to HV_PAGE_SIZE: start rounded up, end rounded
 *     down; nothing is mapped if that leaves no page.
 *   - One slot per section, at the lowest free slot id of its address
 *     space; the slot is deleted (size 0) when the section goes. A changed
 *     section is a delete then an add (the FlatView diff's order), so
 *     splits, merges and read-only toggles never overlap or change the
 *     READONLY flag of a live slot, which KVM refuses.
 *   - A slot logs dirty pages (HV_MEM_LOG_DIRTY_PAGES) while its section
 *     has a dirty-log client or global dirty logging is on, unless the
 *     dirty mode is HV_MEM_DIRTY_OFF.
 *
 * Errors inside listener callbacks cannot be returned to whoever edited the
 * memory tree: the first one is kept as a sentence (hv_mem_error) and the
 * section is left unmapped; nothing crashes.
 *
 * Threads: listener callbacks run under the memory system's commit (the
 * caller's big lock); hv_mem_ring_harvest, log_sync and hv_mem_stats may
 * run on any thread (a vCPU thread on a dirty-ring-full exit). The slot
 * tables are protected by one mutex per hv_mem.
 */
#ifndef MEMVIRT_HV_MEMORY_H
#define MEMVIRT_HV_MEMORY_H

#include "memvirt/hv.h"
#include "memvirt/memory.h"

typedef struct hv_mem hv_mem;

/*
 * Create the accelerator memory of @vm (one per VM) for memory system
 * @mem. Nothing is mapped until hv_mem_attach. The dirty mode starts as
 * HV_MEM_DIRTY_BITMAP. Allocations use the C library allocator.
 * A RAM notifier on @mem's RAM list forwards every drop of RAM-block host
 * pages (discard, shrink, free) to hv_vm_invalidate_hva_start/end, so
 * free @hm before @mem. Errors: -ENOMEM (sentence in @err).
 */
int hv_mem_new(hv_vm *vm, mv_memory *mem, hv_mem **out, mv_error *err);

/*
 * Unregister every listener (deleting every slot from the VM, without a
 * final dirty sync) and free @hm. Call it before hv_vm_destroy; vCPUs
 * registered with hv_mem_add_vcpu may already be destroyed. NULL is a no-op.
 */
void hv_mem_free(hv_mem *hm);

/*
 * Register a listener on @as for the accelerator's address space @as_id
 * (slot numbers HV_SLOT(as_id, n)). The registration replays the current
 * sections, so the slots exist when this returns; a slot the accelerator
 * refused shows in hv_mem_error, not in the return value.
 * Errors: -EINVAL @as_id not below HV_CAP_NR_AS (1 when the capability is
 * 0); -EEXIST @as_id already has a listener; -ENOMEM.
 */
int hv_mem_attach(hv_mem *hm, mv_address_space *as, uint16_t as_id, mv_error *err);

/* How the accelerator reports dirty pages. */
typedef enum hv_mem_dirty_mode {
	HV_MEM_DIRTY_OFF,    /* never log: slots get no HV_MEM_LOG_DIRTY_PAGES, log_sync does nothing */
	HV_MEM_DIRTY_BITMAP, /* per-slot bitmaps; hv_get_dirty_log re-protects (the default) */
	HV_MEM_DIRTY_MANUAL, /* bitmaps with manual protect: get, then clear exactly the bits got */
	HV_MEM_DIRTY_RING,   /* per-vCPU rings of (slot, page) entries */
} hv_mem_dirty_mode;

typedef struct hv_mem_dirty_config {
	hv_mem_dirty_mode mode;
	uint32_t ring_entries;   /* HV_MEM_DIRTY_RING: entries per vCPU, a power of two */
} hv_mem_dirty_config;

/*
 * Choose the dirty mode, enabling what the accelerator needs (MANUAL:
 * hv_enable_manual_dirty_protect with INIT_SET when the capability offers
 * it; RING: hv_enable_dirty_ring). Call before any vCPU exists and before
 * dirty logging starts. Errors (sentence in @err): -EBUSY a vCPU was
 * already added or a mode other than OFF/BITMAP was already chosen;
 * -EINVAL unknown mode or bad ring size; -ENOTSUP the accelerator lacks
 * the capability; else the accelerator's errno.
 */
int hv_mem_set_dirty_mode(hv_mem *hm, const hv_mem_dirty_config *dc, mv_error *err);
hv_mem_dirty_mode hv_mem_get_dirty_mode(const hv_mem *hm);

/*
 * Track @vcpu's dirty ring (every mode accepts vCPUs; only RING harvests
 * them). The vCPU is borrowed: call hv_mem_del_vcpu before destroying it
 * while dirty pages may still be synced. Errors: -EEXIST already added,
 * -ENOMEM.
 */
int hv_mem_add_vcpu(hv_mem *hm, hv_vcpu *vcpu);
/* Stop tracking @vcpu (harvesting its ring first in RING mode). -ENOENT if unknown. */
int hv_mem_del_vcpu(hv_mem *hm, hv_vcpu *vcpu);

/*
 * RING mode: harvest every tracked vCPU's ring into the RAM blocks' dirty
 * bitmaps (each (slot, page) entry mapped back to its block and offset
 * through the slot table; entries of slots deleted meanwhile are dropped),
 * then hv_dirty_rings_reset. The VMM calls it on HV_EXIT_DIRTY_RING_FULL;
 * log_sync calls it too. Any thread. Returns the number of entries
 * harvested, or the accelerator's negative errno (also recorded in
 * hv_mem_error). Other modes: returns 0.
 */
int hv_mem_ring_harvest(hv_mem *hm);

/*
 * The first error recorded by a listener callback or a sync, as one
 * sentence naming the slot and region, e.g. "memslot 3 (gpa 0xc0000,
 * 0x20000 bytes) for region 'pc.rom': hv_set_memslot: Invalid argument";
 * NULL when none. The string lives as long as @hm.
 */
const char *hv_mem_error(hv_mem *hm);

/* Counters for the VMM's summary. */
typedef struct hv_mem_counters {
	uint32_t slots_in_use;    /* memslots currently mapped, all address spaces */
	uint32_t slots_max;       /* most slots in use at once */
	uint64_t memslot_calls;   /* hv_set_memslot calls (failed ones included) */
	uint64_t memslot_errors;  /* of which failed */
	uint64_t dirty_log_calls; /* hv_get_dirty_log calls */
	uint64_t clear_log_calls; /* hv_clear_dirty_log calls */
	uint64_t ring_harvests;   /* hv_mem_ring_harvest runs */
	uint64_t ring_entries;    /* dirty-ring entries harvested */
	uint64_t pages_synced;    /* dirty pages copied into RAM-block bitmaps */
} hv_mem_counters;

/*
 * A consistent snapshot of the counters, stored in @hm: valid until the
 * next hv_mem_stats call on @hm (call it from one thread at a time).
 */
const hv_mem_counters *hv_mem_stats(hv_mem *hm);

#endif
