/*
 * The part of a soft VM that the arm64 and x86 VMs share, as KVM's
 * generic struct kvm surrounds the arch's kvm_arch: embedded in mv_a64_vm
 * and mv_x86_vm as `kvm`. It holds the vCPU registry (kvm->vcpu_array,
 * created_vcpus and the TLB broadcast over them, soft_kvm.c), the
 * MMU-notifier state (soft_notifier.h) and the dirty-logging mode
 * (soft_dirty_vm.h), and points the shared code at the VM's own locks,
 * memslots and table, which stay fields of the arch's struct because
 * every file of the arch uses them. Internal to src/soft/.
 *
 * Lock order (a64_internal.h, x86_internal.h): slots_lock -> mmu_lock ->
 * vcpus_lock -> a vCPU's TLB lock.
 */
#ifndef MV_SOFT_KVM_H
#define MV_SOFT_KVM_H

#include "memvirt/base.h"
#include "memvirt/soft_dirty.h"
#include "memvirt/soft_memslot.h"
#include "memvirt/soft_pgtable.h"
#include "memvirt/soft_tlb.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

/* Entries of each vCPU's TLB. */
#define SOFT_VCPU_TLB_ENTRIES 256u

typedef struct soft_kvm_session soft_kvm_session;

/* What the arch does for the shared code; @vm is soft_kvm.vm. */
typedef struct soft_kvm_ops {
	/* kvm_unmap_gfn_range for [gfn_start, gfn_end) of @slot; mmu_lock is held for writing. */
	void (*unmap)(void *vm, const mv_memslot *slot, uint64_t gfn_start, uint64_t gfn_end);
	/*
	 * kvm_arch_mmu_enable_log_dirty_pt_masked for mask @m within session
	 * @s (soft_dirty_vm.h): mmu_lock is held for writing; what loses write
	 * permission is added to s->span, invalidated at the session's end.
	 */
	void (*protect)(soft_kvm_session *s, const mv_dirty_mask *m);
	/* Invalidate every vCPU's translations of guest addresses [start, start + size). */
	void (*invalidate)(void *vm, uint64_t start, uint64_t size);
} soft_kvm_ops;

/* A registered vCPU as the VM-wide operations reach it. */
typedef struct soft_kvm_vcpu {
	void *vcpu;                   /* the arch's vCPU; NULL: the id is free */
	mv_tlb *tlb;                  /* flushed by every TLB broadcast */
	mv_dirty_ring *ring;          /* NULL unless the VM uses dirty rings */
} soft_kvm_vcpu;

typedef struct soft_kvm {
	const soft_kvm_ops *ops;
	void *vm;                     /* the arch's VM, for @ops */
	const mv_allocator *alloc;
	/* The arch VM's own fields, set at creation. */
	pthread_rwlock_t *slots_lock;
	pthread_rwlock_t *mmu_lock;
	mv_memslots *slots;
	mv_pgt *pgt;                  /* stage 2 / EPT */

	/* KVM's mmu_invalidate_* (notifier.c): written under mmu_lock for writing. */
	uint64_t mmu_invalidate_seq;          /* read atomically by faults */
	long mmu_invalidate_in_progress;
	uint64_t mmu_invalidate_gfn_start;    /* union of the ranges in progress */
	uint64_t mmu_invalidate_gfn_end;

	/* Dirty logging mode (dirty_vm.c): changed under slots_lock for writing. */
	bool manual_protect;          /* KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 */
	bool init_set;                /* ... with KVM_DIRTY_LOG_INITIALLY_SET */
	uint32_t ring_entries;        /* 0: bitmaps; else every vCPU has a ring (also under vcpus_lock) */

	/* The vCPU registry. */
	pthread_mutex_t vcpus_lock;
	soft_kvm_vcpu *vcpus;         /* [max_vcpus], by id */
	unsigned max_vcpus;
	unsigned created_vcpus;       /* KVM's created_vcpus (never drops on free), under vcpus_lock */
} soft_kvm;

/*
 * @c as @parts (its ops, vm, alloc, locks, pgt and max_vcpus; slots may
 * follow once the memslots exist), with vcpus_lock and a registry of
 * max_vcpus free ids. 0 or -ENOMEM; soft_kvm_destroy undoes it either way.
 */
int soft_kvm_init(soft_kvm *c, const soft_kvm *parts);
void soft_kvm_destroy(soft_kvm *c);

/*
 * KVM_SET_USER_MEMORY_REGION: mv_memslots_set under slots_lock for
 * writing (faults in flight finish first; the arch's memslot hooks run
 * inside).
 */
int soft_kvm_set_memslot(soft_kvm *c, const hv_memslot *m);

/*
 * kvm_vm_ioctl_create_vcpu's generic part: vCPU @id (below max_vcpus, not
 * in use) as @size zeroed bytes with a TLB and, when the VM uses dirty
 * rings, a ring, registered and counted under vcpus_lock (so a ring is
 * enabled before every vCPU or never). *@ref: the new vCPU, its TLB and
 * ring, for the arch to set its own fields. -EINVAL, -EEXIST or -ENOMEM,
 * with a sentence.
 */
int soft_kvm_vcpu_new(soft_kvm *c, unsigned id, size_t size, soft_kvm_vcpu *ref, mv_error *err);
/*
 * Unregister vCPU @id and free it with its TLB and ring. Takes slots_lock
 * for writing: a ring reset uses the vCPUs under its read side.
 */
void soft_kvm_vcpu_free(soft_kvm *c, unsigned id);
/*
 * The TLB broadcast (TLBI ... IS, INVEPT): every registered vCPU's TLB
 * drops its entries tagged @tag for guest addresses [start, start + size).
 * Each flush waits for the access its vCPU has in flight (the TLB lock).
 * Never called with vcpus_lock or a TLB lock held.
 */
void soft_kvm_flush_tlbs(soft_kvm *c, uint16_t tag, uint64_t start, uint64_t size);

#endif
