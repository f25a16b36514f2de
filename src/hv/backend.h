/*
 * What an accelerator implements behind include/memvirt/hv.h: one ops
 * table. Every hv_* call of the public header is a thin wrapper that
 * checks nothing itself and forwards to the VM's or vCPU's ops, so each
 * accelerator gives its own (KVM-shaped) errors.
 *
 * A backend embeds struct hv_vm / struct hv_vcpu as the first member of
 * its own VM / vCPU structure and fills @ops.
 */
#ifndef MEMVIRT_HV_BACKEND_H
#define MEMVIRT_HV_BACKEND_H

#include "memvirt/hv.h"

typedef struct hv_ops {
	const char *name;
	int (*vm_create)(const hv_vm_config *cfg, hv_vm **out, mv_error *err);
	void (*vm_destroy)(hv_vm *vm);
	long (*check_cap)(hv_vm *vm, hv_cap cap);

	int (*set_memslot)(hv_vm *vm, const hv_memslot *m);
	int (*enable_manual_dirty_protect)(hv_vm *vm, uint32_t flags);
	int (*get_dirty_log)(hv_vm *vm, uint32_t slot, uint64_t *bitmap);
	int (*clear_dirty_log)(hv_vm *vm, uint32_t slot, uint64_t first_page,
			       uint32_t num_pages, const uint64_t *bitmap);
	int (*enable_dirty_ring)(hv_vm *vm, uint32_t entries);
	int (*dirty_ring_harvest)(hv_vcpu *vcpu, void (*fn)(void *, const hv_dirty_gfn *),
				  void *opaque);
	int (*dirty_rings_reset)(hv_vm *vm);

	int (*coalesced_zone)(hv_vm *vm, hv_bus bus, uint64_t addr, uint32_t size, bool add);
	int (*coalesced_drain)(hv_vm *vm, void (*fn)(void *, const hv_coalesced_write *),
			       void *opaque);
	int (*ioeventfd)(hv_vm *vm, const hv_ioeventfd *e, bool add);

	int (*vcpu_create)(hv_vm *vm, uint32_t id, hv_vcpu **out, mv_error *err);
	void (*vcpu_destroy)(hv_vcpu *vcpu);
	int (*vcpu_run)(hv_vcpu *vcpu, hv_exit **exit);
	void (*vcpu_kick)(hv_vcpu *vcpu);

	/* x86 state; NULL where the accelerator has no x86 vCPUs (-ENOTSUP). */
	int (*get_regs)(hv_vcpu *vcpu, hv_x86_regs *r);
	int (*set_regs)(hv_vcpu *vcpu, const hv_x86_regs *r);
	int (*get_sregs)(hv_vcpu *vcpu, hv_x86_sregs *s);
	int (*set_sregs)(hv_vcpu *vcpu, const hv_x86_sregs *s);
	int (*supported_cpuid)(hv_vm *vm, hv_x86_cpuid *out, size_t max);
	int (*set_cpuid)(hv_vcpu *vcpu, const hv_x86_cpuid *entries, size_t n);
	int (*translate)(hv_vcpu *vcpu, uint64_t gva, uint64_t *gpa);

	/*
	 * MMU notifier from the VMM (hv_vm_invalidate_hva_start/end, hv_soft.h):
	 * host memory [hva, hva + len) is about to be dropped or moved (@start)
	 * or has been. NULL where the kernel tells the accelerator itself (kvm).
	 */
	void (*invalidate_hva)(hv_vm *vm, uint64_t hva, uint64_t len, bool start);
} hv_ops;

struct hv_vm {
	const hv_ops *ops;
	hv_arch arch;
};

struct hv_vcpu {
	const hv_ops *ops;
	hv_vm *vm;
	uint32_t id;
};

/* The accelerators compiled in (listed in src/hv/hv.c). */
extern const hv_ops hv_kvm_ops;
extern const hv_ops hv_soft_ops;     /* the in-process KVM (src/soft/hv_soft*.c) */

/*
 * Create a VM on an explicit ops table: what hv_vm_create does after the
 * name lookup. Tests use it to drive the layers above with a fake
 * accelerator.
 */
int hv_vm_create_ops(const hv_ops *ops, const hv_vm_config *cfg, hv_vm **out, mv_error *err);

#endif
