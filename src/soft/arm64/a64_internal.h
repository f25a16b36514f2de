/*
 * The arm64 soft VM and vCPU as the modules of src/soft/arm64/ share them:
 * vm.c (lifecycle, memslots, locks, TLB maintenance, notifiers), access.c
 * + stage1.c + syndrome.c (the access engine), abort.c + user_mem_abort.c
 * + mmio.c + inject.c (KVM's guest-abort handling).
 *
 * Lock order: slots_lock -> mmu_lock -> vcpus_lock -> a vCPU's TLB lock.
 * A fault holds slots_lock for reading from its memslot lookup to its
 * install (KVM's SRCU read side), so a memslot change (slots_lock for
 * writing) never races a fault; MMU-notifier invalidations do not take
 * slots_lock for writing and are detected by the invalidation sequence.
 */
#ifndef MV_SOFT_A64_INTERNAL_H
#define MV_SOFT_A64_INTERNAL_H

#include "memvirt/soft_arm64.h"
#include "memvirt/soft_dirty.h"
#include "memvirt/soft_memslot.h"
#include "soft/soft_kvm.h"

#include <pthread.h>
#include <stddef.h>

struct mv_a64_vm {
	const mv_allocator *alloc;
	mv_memslots *slots;
	pthread_rwlock_t slots_lock;
	pthread_rwlock_t mmu_lock;
	mv_s2_pgt s2;
	mv_pgt_pool *pool;            /* owned when cfg->mm_ops was NULL */
	mv_vmid_alloc *vmids;
	bool own_vmids;
	mv_vmid vmid;
	mv_soft_host *host;
	bool own_host;
	mv_iobus *iobus;

	bool nisv_to_user;
	bool handler_on;
	bool (*sea_claim)(void *arg, uint64_t ipa);
	void *sea_claim_arg;
	void (*fault_hook)(void *arg, mv_a64_vcpu *vcpu, uint64_t ipa);
	void *fault_hook_arg;

	/* Eager splitting (dirty.c): changed under slots_lock for writing. */
	uint64_t split_chunk;         /* KVM_CAP_ARM_EAGER_SPLIT_CHUNK_SIZE; 0: lazy */

	/* The vCPU registry, the notifier state and the dirty-logging mode, shared with x86 (soft_kvm.h). */
	soft_kvm kvm;
};

/* The pending MMIO access (KVM's vcpu->mmio_needed + the decoded syndrome). */
typedef struct a64_mmio_pending {
	bool pending;
	bool is_write;
	uint8_t len;
	uint8_t rt;
	bool sign_extend;
	bool sf;
} a64_mmio_pending;

struct mv_a64_vcpu {
	mv_a64_vm *vm;
	unsigned id;
	mv_a64_regs regs;
	mv_a64_sysregs sys;
	mv_tlb *tlb;
	size_t slot_hint;             /* last-used memslot */
	hv_exit exit;
	a64_mmio_pending mmio;
	bool serror_pending;          /* virtual SError injected, not yet taken */
	void (*trace)(void *arg, const mv_a64_abort_event *ev);
	void *trace_arg;
	mv_dirty_ring *ring;          /* when vm->kvm.ring_entries (dirty.c) */
};

/* A stage-2 abort as EL2 sees it (KVM's kvm_vcpu_fault_info + FAR). */
typedef struct a64_fault {
	uint64_t esr;                 /* ESR_EL2 */
	uint64_t hpfar;               /* HPFAR_EL2 */
	uint64_t far;                 /* FAR_EL2 (the VA) */
} a64_fault;

/*
 * kvm_handle_guest_abort (abort.c): handle @f for @vcpu. Fills @ev's
 * action / map_size / detail (esr/hpfar/far are the caller's). May fill
 * vcpu->exit (MMIO, ARM_NISV, INTERNAL_ERROR), inject an exception or
 * advance PC. Takes its own locks; the caller holds none.
 */
void a64_handle_guest_abort(mv_a64_vcpu *vcpu, const a64_fault *f, mv_a64_abort_event *ev);

/* Stage-2 TLB maintenance of the VM (vm.c): the s2 table's tlbi hook. */
void a64_vm_tlbi_ipa(void *vm, uint64_t ipa, uint64_t size);

/* ---- Register access as the handler and the engine need it ---- */

/* Xn (n = 31: XZR reads 0), truncated to 32 bits unless @sf. */
static inline uint64_t a64_get_reg(const mv_a64_vcpu *vcpu, unsigned n, bool sf)
{
	uint64_t v = n == 31 ? 0 : vcpu->regs.x[n];
	return sf ? v : (uint32_t)v;
}

/* Write Xn (n = 31: XZR, discarded); a W write zeroes bits [63:32]. */
static inline void a64_set_reg(mv_a64_vcpu *vcpu, unsigned n, uint64_t v, bool sf)
{
	if (n != 31)
		vcpu->regs.x[n] = sf ? v : (uint32_t)v;
}

/* kvm_incr_pc: every A64 instruction is 4 bytes (IL = 1). */
static inline void a64_skip_insn(mv_a64_vcpu *vcpu)
{
	vcpu->regs.pc += 4;
}

/* ---- Exception injection (inject.c; KVM's inject_fault.c) ---- */
/* Synchronous external data / prefetch abort at @addr into EL1 (FSC 0x10). */
void a64_inject_dabt(mv_a64_vcpu *vcpu, uint64_t addr);
void a64_inject_pabt(mv_a64_vcpu *vcpu, uint64_t addr);
/* Address size fault (kvm_inject_size_fault): data abort, FSC 0x00 at level 0. */
void a64_inject_size_fault(mv_a64_vcpu *vcpu, uint64_t addr);
/* Virtual SError (kvm_inject_vabt). */
void a64_inject_serror(mv_a64_vcpu *vcpu);
/*
 * Take a synchronous exception to EL1 with @esr / @far (stage-1 faults of
 * the access engine use it too): ELR_EL1 = PC, SPSR_EL1 = PSTATE, PC =
 * VBAR_EL1 + 0x200 (from EL1) or 0x400 (from EL0), EL = 1.
 */
void a64_take_exception_el1(mv_a64_vcpu *vcpu, uint64_t esr, uint64_t far);

#endif
