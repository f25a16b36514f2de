/*
 * The soft accelerator's arm64 guests: soft_arch over the arm64 soft VM
 * and vCPU of soft_arm64.h (KVM's default 40-bit IPA space, 4 KiB
 * granule). A program's access becomes one A64 instruction for
 * mv_a64_vcpu_exec at an absolute address with X0 / W0 as the register
 * (ldr/ldrh/ldrb, str/strh/strb; a 64-bit access uses Xt, a smaller one
 * Wt, as the real instructions), executed at EL0 or EL1. A stage-1 fault
 * taken to EL1 or an abort KVM injects is the program's fault (FAR_EL1,
 * ESR_EL1). There is no port I/O.
 */
#include "soft/hv_soft_internal.h"

#include <errno.h>

/* The register every access goes through. */
#define SOFT_A64_RT 0

static int a64_vm_new(soft_vm *vm, mv_error *err)
{
	mv_a64_vm_config c = {
		.nr_slots = SOFT_ARM64_NR_MEMSLOTS,
		.max_vcpus = SOFT_MAX_VCPUS,
		.alloc = vm->alloc,
	};

	return mv_a64_vm_new(&c, &vm->a64, err);
}

static void a64_vm_free(soft_vm *vm) { mv_a64_vm_free(vm->a64); }

static mv_iobus *a64_bus(soft_vm *vm, hv_bus bus)
{
	return bus == HV_BUS_MMIO ? mv_a64_vm_iobus(vm->a64) : NULL;
}

static int a64_set_memslot(soft_vm *vm, const hv_memslot *m)
{
	return mv_a64_vm_set_memslot(vm->a64, m);
}

static int a64_enable_manual(soft_vm *vm, uint32_t flags)
{
	return mv_a64_vm_enable_manual_dirty_protect(vm->a64, flags);
}

static int a64_get_dirty_log(soft_vm *vm, uint32_t slot, uint64_t *bitmap)
{
	return mv_a64_vm_get_dirty_log(vm->a64, slot, bitmap);
}

static int a64_clear_dirty_log(soft_vm *vm, uint32_t slot, uint64_t first_page,
			       uint32_t num_pages, const uint64_t *bitmap)
{
	return mv_a64_vm_clear_dirty_log(vm->a64, slot, first_page, num_pages, bitmap);
}

static int a64_enable_dirty_ring(soft_vm *vm, uint32_t entries)
{
	return mv_a64_vm_enable_dirty_ring(vm->a64, entries);
}

static int a64_dirty_rings_reset(soft_vm *vm) { return mv_a64_vm_dirty_rings_reset(vm->a64); }

static void a64_invalidate(soft_vm *vm, uint64_t hva_start, uint64_t hva_end, bool start)
{
	if (start)
		mv_a64_vm_invalidate_range_start(vm->a64, hva_start, hva_end);
	else
		mv_a64_vm_invalidate_range_end(vm->a64, hva_start, hva_end);
}

static int a64_vcpu_new(soft_vcpu *v, mv_error *err)
{
	return mv_a64_vcpu_new(v->vm->a64, v->id, &v->a64, err);
}

static void a64_vcpu_free(soft_vcpu *v) { mv_a64_vcpu_free(v->a64); }

static int a64_harvest(soft_vcpu *v, void (*fn)(void *, const hv_dirty_gfn *), void *opaque)
{
	return mv_a64_vcpu_dirty_ring_harvest(v->a64, fn, opaque);
}

/* The instruction for @a: false for port I/O. */
static bool a64_insn(const soft_access *a, mv_a64_insn *i)
{
	*i = (mv_a64_insn){
		.rt = SOFT_A64_RT,
		.rn = MV_A64_RN_ABS,
		.addr = a->addr,
		.size = (uint8_t)a->size,
		.sf = a->size == 8,
	};
	switch (a->op) {
	case SOFT_READ: i->op = MV_A64_LOAD; return true;
	case SOFT_WRITE: i->op = MV_A64_STORE; return true;
	case SOFT_FETCH: i->op = MV_A64_FETCH; return true;
	case SOFT_PIO_IN:
	case SOFT_PIO_OUT:
		break;
	}
	return false;
}

/* Exception level and, for a store, the data register, as the access needs them. */
static void a64_prepare(mv_a64_vcpu *vcpu, const soft_access *a)
{
	uint8_t el = a->user ? 0 : 1;
	mv_a64_regs regs;

	mv_a64_vcpu_get_regs(vcpu, &regs);
	if (regs.el == el && (a->op != SOFT_WRITE || regs.x[SOFT_A64_RT] == a->value))
		return;
	regs.el = el;
	if (a->op == SOFT_WRITE)
		regs.x[SOFT_A64_RT] = a->value;
	mv_a64_vcpu_set_regs(vcpu, &regs);
}

static int a64_access(soft_vcpu *v, const soft_access *a, soft_outcome *out)
{
	mv_a64_outcome o;
	mv_a64_insn insn;
	int r;

	if (!a64_insn(a, &insn))
		return -ENOTSUP;
	a64_prepare(v->a64, a);
	r = mv_a64_vcpu_exec(v->a64, &insn, &o);
	if (r)
		return r;
	switch (o.result) {
	case MV_A64_DONE:
		out->result = SOFT_DONE;
		out->value = o.value[0];
		break;
	case MV_A64_SKIPPED:
		/* Nothing was accessed (the handler skipped the instruction). */
		out->result = SOFT_DONE;
		break;
	case MV_A64_EXIT:
		out->result = SOFT_EXIT;
		out->exit = o.exit;
		break;
	case MV_A64_GUEST_FAULT:
	case MV_A64_INJECTED:
		out->result = SOFT_FAULT;
		out->fault.addr = o.far_el1;
		out->fault.code = o.esr_el1;
		break;
	}
	return 0;
}

static void a64_complete(soft_vcpu *v, uint64_t *value) { mv_a64_vcpu_complete_mmio(v->a64, value); }

const soft_arch soft_arch_arm64 = {
	.nr_memslots = SOFT_ARM64_NR_MEMSLOTS,
	.coalesced_mmio_page = 1,   /* KVM_COALESCED_MMIO_PAGE_OFFSET (arm64: no PIO page) */
	.arm_nisv = true,
	.vm_new = a64_vm_new,
	.vm_free = a64_vm_free,
	.bus = a64_bus,
	.set_memslot = a64_set_memslot,
	.enable_manual_dirty_protect = a64_enable_manual,
	.get_dirty_log = a64_get_dirty_log,
	.clear_dirty_log = a64_clear_dirty_log,
	.enable_dirty_ring = a64_enable_dirty_ring,
	.dirty_rings_reset = a64_dirty_rings_reset,
	.invalidate = a64_invalidate,
	.vcpu_new = a64_vcpu_new,
	.vcpu_free = a64_vcpu_free,
	.dirty_ring_harvest = a64_harvest,
	.access = a64_access,
	.complete = a64_complete,
};
