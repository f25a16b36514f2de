/*
 * The software TLB of a soft vCPU and the VMID allocator (after KVM's
 * arch/arm64/kvm/vmid.c).
 *
 * A TLB caches complete translations (input page -> IPA page -> host
 * page, with the stage-1 and stage-2 permissions of the walk), tagged by
 * VMID, one 4 KiB page per entry (a block is cached page by page). It is
 * invalidated by IPA range, by VMID, or entirely. For an IPA range KVM
 * issues TLBI IPAS2E1IS then VMALLE1IS, and the latter drops all of the
 * VMID's combined entries on hardware; an entry here knows its IPA page,
 * so exactly the entries whose IPA page is in the range go. Each TLB has
 * a lock (a mutex): the owning vCPU holds it from lookup to the end of the
 * access it performs, so an invalidation returns only when no access
 * through a removed entry is in flight (what DSB after TLBI guarantees on
 * hardware).
 *
 * VMIDs: @vmid_bits wide (8 or 16 on hardware); 0 is reserved. An id is
 * valid while its generation is the allocator's. When ids run out the
 * generation rolls
 * over: every id is released except those active on a CPU (kept as
 * "reserved"), and every TLB must be flushed before it is used with the
 * new generation (mv_tlb_sync_generation).
 */
#ifndef MEMVIRT_SOFT_TLB_H
#define MEMVIRT_SOFT_TLB_H

#include "memvirt/base.h"

#include <stdint.h>

/* ---- VMID allocator ---- */
typedef struct mv_vmid_alloc mv_vmid_alloc;

/* A VM's VMID: generation << vmid_bits | vmid; 0 = never allocated. Atomic. */
typedef struct mv_vmid {
	uint64_t id;
} mv_vmid;

/*
 * Allocator for @vmid_bits (2..16; small values let tests force rollover)
 * and @nr_cpus CPUs (soft vCPU threads that can be "in guest" at once; a
 * CPU index is used by one thread at a time). Returns 0, -ENOMEM or
 * -EINVAL: bits out of range, nr_cpus 0, or nr_cpus >= 2^bits - 1 (as in
 * KVM, there must be more usable VMIDs than CPUs so that a rollover always
 * frees one).
 */
int mv_vmid_alloc_new(unsigned vmid_bits, unsigned nr_cpus, const mv_allocator *alloc,
		      mv_vmid_alloc **out);
/* NULL is a no-op. */
void mv_vmid_alloc_free(mv_vmid_alloc *va);
/*
 * kvm_arm_vmid_update: before entering the guest on CPU @cpu, make @vmid
 * valid for the current generation (keeping its number when possible) and
 * mark it active on @cpu, which keeps its number across rollovers until
 * the CPU enters with another VMID or mv_vmid_clear_active. Returns true
 * when this call rolled the generation over. Lock-free when the id is
 * already valid. @cpu >= nr_cpus: the id is made valid but not marked
 * active (a rollover may then give its number away).
 */
bool mv_vmid_update(mv_vmid_alloc *va, mv_vmid *vmid, unsigned cpu);
/*
 * kvm_arm_vmid_clear_active: CPU @cpu left the guest (vcpu_put), so its
 * VMID need not be kept at the next rollover. @cpu >= nr_cpus: no-op.
 */
void mv_vmid_clear_active(mv_vmid_alloc *va, unsigned cpu);
/* The 8/16-bit VMID of @vmid (what TLB entries are tagged with). */
uint16_t mv_vmid_value(const mv_vmid_alloc *va, const mv_vmid *vmid);
/* Current generation (starts at 1; read atomically, any thread). */
uint64_t mv_vmid_generation(const mv_vmid_alloc *va);
/* The @vmid_bits the allocator was made with. */
unsigned mv_vmid_bits(const mv_vmid_alloc *va);

/* ---- TLB ---- */
typedef struct mv_tlb mv_tlb;

/* Access rights cached in an entry. */
enum {
	MV_TLB_R = 1u << 0,     /* stage-1 and stage-2 allow reads at the cached EL */
	MV_TLB_W = 1u << 1,
	MV_TLB_X = 1u << 2,
};

typedef struct mv_tlb_entry {
	uint16_t vmid;
	uint8_t el;             /* exception level the rights were computed for (0/1) */
	uint8_t rights;         /* MV_TLB_* */
	uint64_t va_page;       /* input address >> 12 (VA, or IPA with stage 1 off) */
	uint64_t ipa_page;      /* IPA >> 12 */
	uint64_t host_page;     /* host address >> 12 */
} mv_tlb_entry;

/*
 * A TLB of @nr_entries (a power of two, 1..2^20): 4-way set-associative
 * (fully associative below 4 entries), round-robin replacement in a set.
 * -EINVAL or -ENOMEM.
 */
int mv_tlb_new(unsigned nr_entries, const mv_allocator *alloc, mv_tlb **out);
/* NULL is a no-op. */
void mv_tlb_free(mv_tlb *tlb);
/* The TLB lock (a mutex, not recursive): the flush functions take it, never call them holding it. */
void mv_tlb_lock(mv_tlb *tlb);
void mv_tlb_unlock(mv_tlb *tlb);
/*
 * With the lock held: the entry for (@vmid, @el, @va_page) whose rights
 * include @need, copied to *out. False on a miss (counted).
 */
bool mv_tlb_lookup(mv_tlb *tlb, uint16_t vmid, uint8_t el, uint64_t va_page, unsigned need,
		   mv_tlb_entry *out);
/*
 * With the lock held: insert, replacing the entry with the same (vmid, el,
 * va_page) tag, else a free way, else the set's round-robin victim.
 */
void mv_tlb_insert(mv_tlb *tlb, const mv_tlb_entry *e);
/*
 * Take the lock and drop @vmid's entries whose IPA page is in [ipa, ipa +
 * size) (bytes; a partial page counts; an end beyond 2^64 is clamped).
 */
void mv_tlb_flush_ipa(mv_tlb *tlb, uint16_t vmid, uint64_t ipa, uint64_t size);
/* Take the lock and drop every entry of @vmid. */
void mv_tlb_flush_vmid(mv_tlb *tlb, uint16_t vmid);
/* Take the lock and drop everything. */
void mv_tlb_flush_all(mv_tlb *tlb);
/*
 * With the lock held, before using the TLB under @va's current
 * generation: flush everything if the TLB last saw an older generation
 * (a new TLB has seen none, so its first sync counts one flush).
 */
void mv_tlb_sync_generation(mv_tlb *tlb, const mv_vmid_alloc *va);

/*
 * Cumulative counts: lookups that hit / missed, inserts, entries dropped
 * by flushes, flush operations (every flush call and generation flush).
 */
typedef struct mv_tlb_stats {
	uint64_t hits, misses, inserts, flushed_entries, flushes;
} mv_tlb_stats;
/* A snapshot of the counters, with or without the lock held (not atomic as a whole). */
void mv_tlb_get_stats(mv_tlb *tlb, mv_tlb_stats *st);

#endif
