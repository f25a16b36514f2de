/*
 * The KVM backend's private view: the VM and vCPU structures behind
 * hv_kvm_ops and the helpers the kvm_*.c files share. This directory is the
 * only place in the tree that includes <linux/kvm.h>.
 */
#ifndef MV_KVM_INTERNAL_H
#define MV_KVM_INTERNAL_H

#include "hv/backend.h"

#include <linux/kvm.h>
#include <pthread.h>

/*
 * One VM: the /dev/kvm fd (system ioctls such as KVM_GET_SUPPORTED_CPUID),
 * the VM fd, and the per-VM shared state the vCPUs attach to.
 */
typedef struct kvm_vm {
	hv_vm base;                  /* first member: hv_vm * <-> kvm_vm * */
	const mv_allocator *alloc;
	int sys_fd;                  /* /dev/kvm */
	int vm_fd;
	size_t page_size;            /* host page size (mmap offsets, ring size) */
	size_t run_size;             /* KVM_GET_VCPU_MMAP_SIZE */

	/*
	 * @lock serialises vCPU creation against dirty-ring enabling (KVM
	 * only accepts the ring before the first vCPU) and the coalesced
	 * ring's consumer side (one drainer at a time).
	 */
	pthread_mutex_t lock;
	uint32_t nr_vcpus_created;   /* as KVM's created_vcpus: never decreases */
	uint32_t ring_entries;       /* dirty ring entries per vCPU; 0 = off */

	/*
	 * The coalesced MMIO ring, one per VM, mapped from the first vCPU's
	 * fd (the kernel only exposes it there). The mapping keeps the file
	 * alive, so it outlives that vCPU; unmapped with the VM.
	 */
	struct kvm_coalesced_mmio_ring *coalesced;
	uint32_t coalesced_max;      /* entries in the ring */
} kvm_vm;

/* One vCPU: its fd, the shared kvm_run page, its dirty ring, its exit. */
typedef struct kvm_vcpu {
	hv_vcpu base;                /* first member: hv_vcpu * <-> kvm_vcpu * */
	int fd;
	struct kvm_run *run;         /* mmap of the vCPU fd, kvm_vm.run_size bytes */

	/* Dirty ring (NULL when the VM has none); @ring_lock: one harvester. */
	struct kvm_dirty_gfn *ring;
	uint32_t ring_entries;
	uint32_t ring_fetch;         /* next entry to harvest (free-running) */
	pthread_mutex_t ring_lock;

	/* Exit record handed to the caller; valid until the next run. */
	hv_exit exit;
	/*
	 * The last real exit was an MMIO read whose completion KVM still
	 * expects: copied from exit.mmio.data before every KVM_RUN until a
	 * run gets past the access (it survives HV_EXIT_INTR in between).
	 */
	bool mmio_read_pending;

	/*
	 * Kick state. @in_run is true while the owning thread is inside
	 * vcpu_run; @thread is that thread. @kick_lock makes "is it running?
	 * then signal it" atomic against the runner leaving run, so a kick
	 * signal is never sent to a thread that already left.
	 */
	pthread_mutex_t kick_lock;
	bool in_run;
	pthread_t thread;
} kvm_vcpu;

static inline kvm_vm *kvm_vm_of(hv_vm *vm) { return (kvm_vm *)vm; }
static inline kvm_vcpu *kvm_vcpu_of(hv_vcpu *vcpu) { return (kvm_vcpu *)vcpu; }
static inline kvm_vm *kvm_vcpu_vm(kvm_vcpu *v) { return kvm_vm_of(v->base.vm); }

/* ioctl() returning the result or the negative errno (never -1). */
long kvm_ioctl(int fd, unsigned long req, void *arg);
/* KVM_CHECK_EXTENSION on the VM fd; 0 when absent or on error. */
long kvm_vm_extension(kvm_vm *vm, long kvm_cap);

/* kvm_vm.c */
int kvm_vm_create(const hv_vm_config *cfg, hv_vm **out, mv_error *err);
void kvm_vm_destroy(hv_vm *vm);
long kvm_check_cap(hv_vm *vm, hv_cap cap);

/* kvm_memslot.c */
int kvm_set_memslot(hv_vm *vm, const hv_memslot *m);

/* kvm_dirty_log.c: bitmap dirty logging */
int kvm_enable_manual_dirty_protect(hv_vm *vm, uint32_t flags);
int kvm_get_dirty_log(hv_vm *vm, uint32_t slot, uint64_t *bitmap);
int kvm_clear_dirty_log(hv_vm *vm, uint32_t slot, uint64_t first_page,
			uint32_t num_pages, const uint64_t *bitmap);

/* kvm_dirty_ring.c */
int kvm_enable_dirty_ring(hv_vm *vm, uint32_t entries);
/* -EINVAL when the VM has no dirty ring. */
int kvm_dirty_ring_harvest(hv_vcpu *vcpu, void (*fn)(void *, const hv_dirty_gfn *),
			   void *opaque);
int kvm_dirty_rings_reset(hv_vm *vm);
/* Map @v's ring (VM lock held, ring enabled). 0 or -errno. */
int kvm_dirty_ring_map(kvm_vcpu *v);
void kvm_dirty_ring_unmap(kvm_vcpu *v);

/* kvm_coalesced.c */
int kvm_coalesced_zone(hv_vm *vm, hv_bus bus, uint64_t addr, uint32_t size, bool add);
int kvm_coalesced_drain(hv_vm *vm, void (*fn)(void *, const hv_coalesced_write *),
			void *opaque);
/* Map the VM's ring from @v's fd if not mapped yet (VM lock held). */
int kvm_coalesced_map(kvm_vcpu *v);
void kvm_coalesced_unmap(kvm_vm *vm);

/* kvm_ioeventfd.c */
int kvm_ioeventfd(hv_vm *vm, const hv_ioeventfd *e, bool add);

/* kvm_vcpu.c */
int kvm_vcpu_create(hv_vm *vm, uint32_t id, hv_vcpu **out, mv_error *err);
void kvm_vcpu_destroy(hv_vcpu *vcpu);

/* kvm_run.c: KVM_RUN and the exit mapping */
int kvm_vcpu_run(hv_vcpu *vcpu, hv_exit **exit);

/* kvm_kick.c */
void kvm_vcpu_kick(hv_vcpu *vcpu);
/* Install the no-op kick signal handler once per process. */
void kvm_kick_signal_init(void);
/* Bracket KVM_RUN: publish / retract "this thread is running @v". */
void kvm_kick_enter(kvm_vcpu *v);
void kvm_kick_leave(kvm_vcpu *v);
/* Consume a pending immediate_exit after KVM_RUN returned EINTR. */
void kvm_kick_consume(kvm_vcpu *v);

/* kvm_x86.c */
int kvm_get_regs(hv_vcpu *vcpu, hv_x86_regs *r);
int kvm_set_regs(hv_vcpu *vcpu, const hv_x86_regs *r);
int kvm_get_sregs(hv_vcpu *vcpu, hv_x86_sregs *s);
int kvm_set_sregs(hv_vcpu *vcpu, const hv_x86_sregs *s);
int kvm_supported_cpuid(hv_vm *vm, hv_x86_cpuid *out, size_t max);
int kvm_set_cpuid(hv_vcpu *vcpu, const hv_x86_cpuid *entries, size_t n);
int kvm_translate(hv_vcpu *vcpu, uint64_t gva, uint64_t *gpa);

#endif
