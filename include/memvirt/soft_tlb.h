/*
 * The software TLB of a soft vCPU and the VMID allocator (after KVM's
 * arch/arm64/kvm/vmid.c).
 *
 * A TLB caches complete translations (input page -> IPA page -> host
 * page, with the stage-1 and stage-2 permissions of the walk), tagged by
 * VMID, one 4 KiB page per entry (a block is cached page by page). It is
 * invalidated by IPA range (an entry whose IPA page is in the range goes:
 * TLBI IPAS2E1IS followed by VMALLE1IS, as KVM issues them), by VMID, or
 * entirely. Each TLB has a lock: the owning vCPU holds it from lookup to
 * the end of the access it performs, so an invalidation returns only when
 * no access through a removed entry is in flight (what DSB after TLBI
 * guarantees on hardware).
 *
 * VMIDs: @vmid_bits wide (8 or 16); 0 is reserved. An id is valid while
 * its generation is the allocator's. When ids run out the generation rolls
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
 * and @nr_cpus CPUs (soft vCPU threads that can be "in guest" at once).
 * Returns 0, -EINVAL or -ENOMEM.
 */
int mv_vmid_alloc_new(unsigned vmid_bits, unsigned nr_cpus, const mv_allocator *alloc,
		      mv_vmid_alloc **out);
void mv_vmid_alloc_free(mv_vmid_alloc *va);
/*
 * kvm_arm_vmid_update: before entering the guest on CPU @cpu, make @vmid
 * valid for the current generation (keeping its number when possible) and
 * mark it active on @cpu. Returns true when this call rolled the
 * generation over.
 */
bool mv_vmid_update(mv_vmid_alloc *va, mv_vmid *vmid, unsigned cpu);
/* The 8/16-bit VMID of @vmid (what TLB entries are tagged with). */
uint16_t mv_vmid_value(const mv_vmid_alloc *va, const mv_vmid *vmid);
/* Current generation (starts at 1). */
uint64_t mv_vmid_generation(const mv_vmid_alloc *va);
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

/* A TLB of @nr_entries (power of two, set-associative or direct-mapped). */
int mv_tlb_new(unsigned nr_entries, const mv_allocator *alloc, mv_tlb **out);
void mv_tlb_free(mv_tlb *tlb);
void mv_tlb_lock(mv_tlb *tlb);
void mv_tlb_unlock(mv_tlb *tlb);
/*
 * With the lock held: the entry for (@vmid, @el, @va_page) whose rights
 * include @need, copied to *out. False on a miss (counted).
 */
bool mv_tlb_lookup(mv_tlb *tlb, uint16_t vmid, uint8_t el, uint64_t va_page, unsigned need,
		   mv_tlb_entry *out);
/* With the lock held: insert (replacing what is in its place). */
void mv_tlb_insert(mv_tlb *tlb, const mv_tlb_entry *e);
/* Take the lock and drop @vmid's entries whose IPA page is in [ipa, ipa + size). */
void mv_tlb_flush_ipa(mv_tlb *tlb, uint16_t vmid, uint64_t ipa, uint64_t size);
/* Take the lock and drop every entry of @vmid. */
void mv_tlb_flush_vmid(mv_tlb *tlb, uint16_t vmid);
/* Take the lock and drop everything. */
void mv_tlb_flush_all(mv_tlb *tlb);
/*
 * With the lock held, before using the TLB under @va's current
 * generation: flush everything if the TLB last saw an older generation.
 */
void mv_tlb_sync_generation(mv_tlb *tlb, const mv_vmid_alloc *va);

typedef struct mv_tlb_stats {
	uint64_t hits, misses, inserts, flushed_entries, flushes;
} mv_tlb_stats;
void mv_tlb_get_stats(mv_tlb *tlb, mv_tlb_stats *st);

#endif
