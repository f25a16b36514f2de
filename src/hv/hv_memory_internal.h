/*
 * Private structures of the accelerator memory listener
 * (include/memvirt/hv_memory.h), shared by its three files:
 *   hv_memory.c        the object, attach, dirty mode, vCPUs, errors, counters
 *   hv_memory_slots.c  sections -> memslots (region_add / region_del)
 *   hv_memory_dirty.c  log_start/stop, global logging, log_sync, ring harvest
 *
 * Locking: every field below except the constants set by hv_mem_new is
 * protected by hv_mem.lock. Functions named *_locked expect it held.
 */
#ifndef MV_HV_MEMORY_INTERNAL_H
#define MV_HV_MEMORY_INTERNAL_H

#include "memvirt/hv_memory.h"
#include "memvirt/listener.h"

#include <pthread.h>

/* One memslot as we asked the accelerator for it. */
typedef struct hv_mem_slot {
	bool used;
	uint32_t flags;        /* HV_MEM_* currently set in the accelerator */
	uint64_t gpa, size;    /* page aligned (the trimmed section) */
	void *hva;             /* host address of gpa */
	mv_ramblock *rb;       /* block behind it (a reference is held) */
	uint64_t rb_offset;    /* offset of gpa's byte inside rb */
	mv_region *mr;         /* for error sentences; alive while the slot is */
	uint8_t log_mask;      /* dirty-log clients of the section (MV_DIRTY_* bits) */
} hv_mem_slot;

/* The listener of one accelerator address space, with its slot table. */
typedef struct hv_mem_as {
	mv_listener l;         /* first: callbacks cast back from it */
	hv_mem *hm;
	uint16_t as_id;
	char name[32];         /* listener name "hv-mem as N" */
	hv_mem_slot *slots;    /* indexed by slot id */
	size_t nr_slots;       /* entries of @slots in use or free-and-initialised */
	size_t cap_slots;
} hv_mem_as;

struct hv_mem {
	hv_vm *vm;
	mv_memory *mem;
	const mv_allocator *alloc;
	uint16_t nr_as;        /* from HV_CAP_NR_AS */
	uint32_t max_slots;    /* from HV_CAP_NR_MEMSLOTS, per address space */
	bool readonly_mem;     /* HV_CAP_READONLY_MEM: HV_MEM_READONLY is honoured */
	/* Forwards the RAM list's notifiers to hv_vm_invalidate_hva_start/end. */
	mv_ram_notifier ram_notifier;

	pthread_mutex_t lock;
	hv_mem_as **spaces;    /* [nr_as], NULL until attached */
	hv_mem_dirty_config dirty;
	bool global_log;       /* between log_global_start and log_global_stop */
	bool closing;          /* hv_mem_free: delete slots without syncing */
	hv_vcpu **vcpus;
	size_t nr_vcpus, cap_vcpus;
	hv_mem_counters ctr;
	hv_mem_counters snapshot; /* what hv_mem_stats returned last */
	mv_error error;        /* the first error of a callback */
};

/* hv_memory.c */
void hv_mem_lock(hv_mem *hm);
void hv_mem_unlock(hv_mem *hm);
/*
 * Record the first error as "<what> of memslot N (gpa, size) for region
 * 'name': <call>: <strerror>" (later ones only count). Returns @code.
 */
int hv_mem_record_slot_error_locked(hv_mem *hm, const hv_mem_as *a, unsigned id,
				    const hv_mem_slot *sl, const char *call, int code);
int hv_mem_record_error_locked(hv_mem *hm, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* hv_memory_slots.c */
extern const mv_listener hv_mem_listener_template;
/*
 * What the accelerator should map for @s: false when nothing (not RAM-like,
 * a ROM device outside romd mode, or no whole page after trimming).
 * Fills gpa, size, hva, rb (no reference), rb_offset, mr, readonly flag and
 * the section's dirty-log mask.
 */
bool hv_mem_section_slot(const hv_mem *hm, const mv_section *s, hv_mem_slot *out);
/* The id of the used slot with exactly @want's gpa and size, or -1. */
int hv_mem_find_slot_locked(const hv_mem_as *a, const hv_mem_slot *want);
/* hv_set_memslot of slot @id with new @flags (same place); counts, records. */
int hv_mem_slot_set_flags_locked(hv_mem_as *a, unsigned id, uint32_t flags);

/* hv_memory_dirty.c */
/* HV_MEM_LOG_DIRTY_PAGES if a slot with dirty-log clients @mask must log. */
uint32_t hv_mem_log_flag_locked(const hv_mem *hm, uint8_t mask);
/* Re-evaluate the log flag of every slot (global logging or mode changed). */
void hv_mem_update_all_logs_locked(hv_mem *hm);
/* Copy slot @id's pending dirty pages into its RAM block (before a delete). */
void hv_mem_flush_slot_locked(hv_mem_as *a, unsigned id);
int hv_mem_ring_harvest_locked(hv_mem *hm);
void hv_mem_log_start(mv_listener *l, const mv_section *s, int old_mask, int new_mask);
void hv_mem_log_stop(mv_listener *l, const mv_section *s, int old_mask, int new_mask);
void hv_mem_log_sync(mv_listener *l, const mv_section *s);
void hv_mem_log_global_start(mv_listener *l);
void hv_mem_log_global_stop(mv_listener *l);

#endif
