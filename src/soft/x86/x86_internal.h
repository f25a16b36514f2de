/*
 * The x86 soft VM and vCPU as the modules of src/soft/x86/ share them:
 * vm.c (lifecycle, memslots and their arch hooks, locks, INVEPT/TLB
 * maintenance, notifiers, dirty logging glue), vcpu.c + access.c (the
 * access engine: guest walk, EPT walk, violations and misconfigurations,
 * MMIO/PIO exits), and the fault path: ept_violation.c (exit
 * qualification), tdp_fault.c (direct_page_fault), fast_pf.c (the
 * lock-free fast path), mmio_spte.c, lpage.c (level choice, large-page
 * disallow counts, NX huge pages), rmap.c.
 *
 * Lock order: slots_lock -> mmu_lock -> vcpus_lock -> a vCPU's TLB lock,
 * as on arm64 (src/soft/arm64/a64_internal.h). The fast path takes no
 * lock: it only changes a present SPTE with a compare-and-swap and needs
 * the slot (held by slots_lock for reading, as the whole fault does).
 */
#ifndef MV_SOFT_X86_INTERNAL_H
#define MV_SOFT_X86_INTERNAL_H

#include "memvirt/soft_dirty.h"
#include "memvirt/soft_memslot.h"
#include "memvirt/soft_tlb.h"
#include "memvirt/soft_x86.h"
#include "soft/soft_kvm.h"

#include <pthread.h>
#include <stddef.h>

/* The TLB tag of every x86 soft VM's entries (the TLB is per vCPU, one VM per vCPU). */
#define X86_TLB_TAG 1

struct mv_x86_vm {
	const mv_allocator *alloc;
	mv_x86_vm_config cfg;          /* defaults resolved */
	uint64_t max_gfn;              /* last gfn below host MAXPHYADDR */
	uint64_t guest_max_gfn;        /* last gfn below guest MAXPHYADDR */
	mv_memslots *slots;
	pthread_rwlock_t slots_lock;
	pthread_rwlock_t mmu_lock;
	mv_ept ept;
	mv_pgt_pool *pool;             /* owned when cfg.mm_ops was NULL */
	mv_soft_host *host;
	bool own_host;
	mv_iobus *mmio_bus;
	mv_iobus *pio_bus;

	void (*fault_hook)(void *arg, mv_x86_vcpu *vcpu, uint64_t gpa);
	void *fault_hook_arg;

	mv_x86_vm_stats stats;         /* updated with atomics */

	/* The vCPU registry, the notifier state and the dirty-logging mode, shared with arm64 (soft_kvm.h). */
	soft_kvm kvm;
};

/* A read the vCPU exited for and user space must answer (KVM's mmio_needed / pio). */
typedef struct x86_pending {
	bool pending;
	bool is_io;
	uint8_t len;
	/* A page-crossing read whose other part was RAM or an in-process device: */
	uint8_t shift;                 /* byte offset of the exit's data in the access */
	uint64_t value;                /* the bytes already read */
} x86_pending;

struct mv_x86_vcpu {
	mv_x86_vm *vm;
	unsigned id;
	mv_x86_paging paging;
	mv_tlb *tlb;
	size_t slot_hint;
	hv_exit exit;
	uint8_t io_data[8];            /* exit.io.data points here */
	x86_pending pending;
	int kicked;                    /* atomic: the next access exits with INTR */
	mv_dirty_ring *ring;           /* when vm->kvm.ring_entries */
	void (*trace)(void *arg, const mv_x86_fault_event *ev);
	void *trace_arg;
};

/* Per-slot arch data (slot->arch): KVM's kvm_arch_memory_slot (lpage.c / rmap.c). */
typedef struct x86_slot_arch x86_slot_arch;

/*
 * The fault path (owned by tdp_fault.c and friends). Both fill @ev (gpa,
 * gva, exit_qual are the caller's) and may fill vcpu->exit for MMIO
 * (HV_EXIT_MMIO with gpa/len/is_write; the caller performs the in-process
 * bus attempt and data copy, see access.c) or an error
 * (HV_EXIT_INTERNAL_ERROR). They take their own locks; the caller holds
 * none.
 */
void x86_handle_ept_violation(mv_x86_vcpu *vcpu, mv_x86_fault_event *ev);
void x86_handle_ept_misconfig(mv_x86_vcpu *vcpu, mv_x86_fault_event *ev);

/* Slot metadata (lpage.c / rmap.c), called from vm.c's memslot hooks. */
int x86_slot_arch_alloc(mv_x86_vm *vm, mv_memslot *slot);
void x86_slot_arch_free(mv_x86_vm *vm, void *arch);
/* rmap: remove every leaf of [gfn_start, gfn_end) of @slot from the rmap (after a zap). */
void x86_rmap_drop_range(mv_x86_vm *vm, const mv_memslot *slot, uint64_t gfn_start, uint64_t gfn_end);
/*
 * It re-reads the range (widened to the huge leaves the rmap had at its
 * ends) from the EPT, so call it also after a split (mv_ept_split) or any
 * other change of the EPT's structure inside a slot; mmu_lock held for
 * writing.
 */

/*
 * Mark @gfn of @slot dirty: the slot bitmap, or the vCPU's ring in ring
 * mode (mark_page_dirty_in_slot). Called by the fault path.
 */
void x86_mark_page_dirty(mv_x86_vcpu *vcpu, const mv_memslot *slot, uint64_t gfn);
/*
 * kvm_mmu_invalidate_mmio_sptes, after a memslot change (mmio_spte.c):
 * when the generation's low 19 bits wrapped to 0, zap the whole EPT.
 * mmu_lock held for writing.
 */
void x86_mmio_gen_changed(mv_x86_vm *vm);

#endif
