/*
 * The public accelerator calls: name lookup, then thin wrappers over the
 * VM's or vCPU's ops table (src/hv/backend.h).
 */
#include "hv/backend.h"
#include "memvirt/hv_soft.h"

#include <errno.h>
#include <string.h>

static const hv_ops *const hv_accels[] = { &hv_kvm_ops, &hv_soft_ops };
static const char *const hv_accel_name_list[] = { "kvm", "soft", NULL };

const char *const *hv_accel_names(void)
{
	return hv_accel_name_list;
}

int hv_vm_create_ops(const hv_ops *ops, const hv_vm_config *cfg, hv_vm **out, mv_error *err)
{
	int r = ops->vm_create(cfg, out, err);

	if (r == 0) {
		(*out)->ops = ops;
		(*out)->arch = cfg->arch;
	}
	return r;
}

int hv_vm_create(const char *accel, const hv_vm_config *cfg, hv_vm **out, mv_error *err)
{
	for (size_t i = 0; i < sizeof(hv_accels) / sizeof(hv_accels[0]); i++)
		if (strcmp(hv_accels[i]->name, accel) == 0)
			return hv_vm_create_ops(hv_accels[i], cfg, out, err);
	return mv_error_set(err, -ENOENT, "unknown accelerator '%s' (known: kvm, soft)", accel);
}

void hv_vm_destroy(hv_vm *vm)
{
	if (vm)
		vm->ops->vm_destroy(vm);
}

const char *hv_vm_accel_name(const hv_vm *vm) { return vm->ops->name; }
hv_arch hv_vm_arch(const hv_vm *vm) { return vm->arch; }
long hv_vm_check_cap(hv_vm *vm, hv_cap cap) { return vm->ops->check_cap(vm, cap); }

int hv_set_memslot(hv_vm *vm, const hv_memslot *m) { return vm->ops->set_memslot(vm, m); }

int hv_enable_manual_dirty_protect(hv_vm *vm, uint32_t flags)
{
	return vm->ops->enable_manual_dirty_protect(vm, flags);
}

int hv_get_dirty_log(hv_vm *vm, uint32_t slot, uint64_t *bitmap)
{
	return vm->ops->get_dirty_log(vm, slot, bitmap);
}

int hv_clear_dirty_log(hv_vm *vm, uint32_t slot, uint64_t first_page, uint32_t num_pages,
		       const uint64_t *bitmap)
{
	return vm->ops->clear_dirty_log(vm, slot, first_page, num_pages, bitmap);
}

int hv_enable_dirty_ring(hv_vm *vm, uint32_t entries)
{
	return vm->ops->enable_dirty_ring(vm, entries);
}

int hv_vcpu_dirty_ring_harvest(hv_vcpu *vcpu, void (*fn)(void *, const hv_dirty_gfn *),
			       void *opaque)
{
	return vcpu->ops->dirty_ring_harvest(vcpu, fn, opaque);
}

int hv_dirty_rings_reset(hv_vm *vm) { return vm->ops->dirty_rings_reset(vm); }

int hv_coalesced_zone_add(hv_vm *vm, hv_bus bus, uint64_t addr, uint32_t size)
{
	return vm->ops->coalesced_zone(vm, bus, addr, size, true);
}

int hv_coalesced_zone_del(hv_vm *vm, hv_bus bus, uint64_t addr, uint32_t size)
{
	return vm->ops->coalesced_zone(vm, bus, addr, size, false);
}

int hv_coalesced_drain(hv_vm *vm, void (*fn)(void *, const hv_coalesced_write *), void *opaque)
{
	return vm->ops->coalesced_drain(vm, fn, opaque);
}

int hv_ioeventfd_add(hv_vm *vm, const hv_ioeventfd *e) { return vm->ops->ioeventfd(vm, e, true); }
int hv_ioeventfd_del(hv_vm *vm, const hv_ioeventfd *e) { return vm->ops->ioeventfd(vm, e, false); }

int hv_vcpu_create(hv_vm *vm, uint32_t id, hv_vcpu **out, mv_error *err)
{
	int r = vm->ops->vcpu_create(vm, id, out, err);

	if (r == 0) {
		(*out)->ops = vm->ops;
		(*out)->vm = vm;
		(*out)->id = id;
	}
	return r;
}

void hv_vcpu_destroy(hv_vcpu *vcpu)
{
	if (vcpu)
		vcpu->ops->vcpu_destroy(vcpu);
}

uint32_t hv_vcpu_id(const hv_vcpu *vcpu) { return vcpu->id; }
int hv_vcpu_run(hv_vcpu *vcpu, hv_exit **exit) { return vcpu->ops->vcpu_run(vcpu, exit); }
void hv_vcpu_kick(hv_vcpu *vcpu) { vcpu->ops->vcpu_kick(vcpu); }

const char *hv_exit_reason_name(hv_exit_reason r)
{
	static const char *const names[] = {
		[HV_EXIT_MMIO] = "mmio",
		[HV_EXIT_IO] = "io",
		[HV_EXIT_HLT] = "hlt",
		[HV_EXIT_SHUTDOWN] = "shutdown",
		[HV_EXIT_SYSTEM_EVENT] = "system-event",
		[HV_EXIT_INTERNAL_ERROR] = "internal-error",
		[HV_EXIT_FAIL_ENTRY] = "fail-entry",
		[HV_EXIT_DIRTY_RING_FULL] = "dirty-ring-full",
		[HV_EXIT_ARM_NISV] = "arm-nisv",
		[HV_EXIT_INTR] = "intr",
		[HV_EXIT_UNKNOWN] = "unknown",
	};

	return (unsigned)r < sizeof(names) / sizeof(names[0]) ? names[r] : "invalid";
}

/* x86 state: -ENOTSUP from accelerators without x86 vCPUs. */
#define HV_X86_CALL(obj, op, ...) ((obj)->ops->op ? (obj)->ops->op(obj, __VA_ARGS__) : -ENOTSUP)

int hv_vcpu_get_regs(hv_vcpu *v, hv_x86_regs *r) { return HV_X86_CALL(v, get_regs, r); }
int hv_vcpu_set_regs(hv_vcpu *v, const hv_x86_regs *r) { return HV_X86_CALL(v, set_regs, r); }
int hv_vcpu_get_sregs(hv_vcpu *v, hv_x86_sregs *s) { return HV_X86_CALL(v, get_sregs, s); }
int hv_vcpu_set_sregs(hv_vcpu *v, const hv_x86_sregs *s) { return HV_X86_CALL(v, set_sregs, s); }

int hv_vm_supported_cpuid(hv_vm *vm, hv_x86_cpuid *out, size_t max)
{
	return HV_X86_CALL(vm, supported_cpuid, out, max);
}

int hv_vcpu_set_cpuid(hv_vcpu *v, const hv_x86_cpuid *e, size_t n)
{
	return HV_X86_CALL(v, set_cpuid, e, n);
}

int hv_vcpu_translate(hv_vcpu *v, uint64_t gva, uint64_t *gpa)
{
	return HV_X86_CALL(v, translate, gva, gpa);
}

/* MMU notifiers: only accelerators with their own page tables over host memory care. */
void hv_vm_invalidate_hva_start(hv_vm *vm, uint64_t hva, uint64_t len)
{
	if (vm->ops->invalidate_hva)
		vm->ops->invalidate_hva(vm, hva, len, true);
}

void hv_vm_invalidate_hva_end(hv_vm *vm, uint64_t hva, uint64_t len)
{
	if (vm->ops->invalidate_hva)
		vm->ops->invalidate_hva(vm, hva, len, false);
}
