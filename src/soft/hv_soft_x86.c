/*
 * The soft accelerator's x86 guests: soft_arch over the x86 soft VM and
 * vCPU of soft_x86.h. A program's accesses become mv_x86_vcpu_access (at
 * CPL 3 or 0) and mv_x86_vcpu_pio; a guest #PF (CR2, error code) or #GP
 * (a non-canonical address) is the program's fault.
 */
#include "soft/hv_soft_internal.h"

/* EPT reaches 48 guest-physical bits with 4 levels, 57 with 5. */
#define SOFT_X86_EPT4_PHYS_BITS 48
/* Exception vectors (SDM Vol. 3A 6.3.1): general protection, page fault. */
#define X86_VEC_GP 13
#define X86_VEC_PF 14

static int x86_vm_new(soft_vm *vm, mv_error *err)
{
	/* The same memslot calls get the same answers as this host's KVM. */
	unsigned bits = mv_x86_host_kvm_phys_bits();
	mv_x86_vm_config c = {
		/* KVM turns 5-level EPT on when 4 levels cannot reach MAXPHYADDR. */
		.ept_levels = bits > SOFT_X86_EPT4_PHYS_BITS ? 5 : 4,
		.host_maxphyaddr = bits,
		.nr_slots = SOFT_X86_NR_MEMSLOTS,
		.nr_as = 1,
		.max_vcpus = SOFT_MAX_VCPUS,
		.alloc = vm->alloc,
	};

	return mv_x86_vm_new(&c, &vm->x86, err);
}

static void x86_vm_free(soft_vm *vm) { mv_x86_vm_free(vm->x86); }

static mv_iobus *x86_bus(soft_vm *vm, hv_bus bus)
{
	return bus == HV_BUS_PIO ? mv_x86_vm_pio_bus(vm->x86) : mv_x86_vm_mmio_bus(vm->x86);
}

static int x86_set_memslot(soft_vm *vm, const hv_memslot *m)
{
	return mv_x86_vm_set_memslot(vm->x86, m);
}

static int x86_enable_manual(soft_vm *vm, uint32_t flags)
{
	return mv_x86_vm_enable_manual_dirty_protect(vm->x86, flags);
}

static int x86_get_dirty_log(soft_vm *vm, uint32_t slot, uint64_t *bitmap)
{
	return mv_x86_vm_get_dirty_log(vm->x86, slot, bitmap);
}

static int x86_clear_dirty_log(soft_vm *vm, uint32_t slot, uint64_t first_page,
			       uint32_t num_pages, const uint64_t *bitmap)
{
	return mv_x86_vm_clear_dirty_log(vm->x86, slot, first_page, num_pages, bitmap);
}

static int x86_enable_dirty_ring(soft_vm *vm, uint32_t entries)
{
	return mv_x86_vm_enable_dirty_ring(vm->x86, entries);
}

static int x86_dirty_rings_reset(soft_vm *vm) { return mv_x86_vm_dirty_rings_reset(vm->x86); }

static void x86_invalidate(soft_vm *vm, uint64_t hva_start, uint64_t hva_end, bool start)
{
	if (start)
		mv_x86_vm_invalidate_range_start(vm->x86, hva_start, hva_end);
	else
		mv_x86_vm_invalidate_range_end(vm->x86, hva_start, hva_end);
}

static int x86_vcpu_new(soft_vcpu *v, mv_error *err)
{
	return mv_x86_vcpu_new(v->vm->x86, v->id, &v->x86, err);
}

static void x86_vcpu_free(soft_vcpu *v) { mv_x86_vcpu_free(v->x86); }

static int x86_harvest(soft_vcpu *v, void (*fn)(void *, const hv_dirty_gfn *), void *opaque)
{
	return mv_x86_vcpu_dirty_ring_harvest(v->x86, fn, opaque);
}

static int x86_access(soft_vcpu *v, const soft_access *a, soft_outcome *out)
{
	static const mv_x86_acc kind[] = {
		[SOFT_READ] = MV_X86_READ, [SOFT_WRITE] = MV_X86_WRITE, [SOFT_FETCH] = MV_X86_FETCH,
	};
	mv_x86_outcome o = { 0 };
	int r;

	if (a->op == SOFT_PIO_IN || a->op == SOFT_PIO_OUT) {
		r = mv_x86_vcpu_pio(v->x86, (uint16_t)a->addr, (uint8_t)a->size,
				    a->op == SOFT_PIO_OUT, (uint32_t)a->value, &o);
	} else {
		mv_x86_access acc = {
			.acc = kind[a->op],
			.gva = a->addr,
			.size = (uint8_t)a->size,
			.cpl = a->user ? 3 : 0,
			.value = a->value,
		};
		r = mv_x86_vcpu_access(v->x86, &acc, &o);
	}
	if (r)
		return r;
	switch (o.result) {
	case MV_X86_DONE:
		out->result = SOFT_DONE;
		out->value = o.value;
		break;
	case MV_X86_EXIT:
		out->result = SOFT_EXIT;
		out->exit = o.exit;
		break;
	case MV_X86_GUEST_PF:
		out->result = SOFT_FAULT;
		out->fault = (hv_soft_fault){ .addr = o.cr2, .code = o.pferr, .vector = X86_VEC_PF };
		break;
	case MV_X86_GUEST_GP:
		out->result = SOFT_FAULT;
		out->fault = (hv_soft_fault){ .addr = a->addr, .code = 0, .vector = X86_VEC_GP };
		break;
	}
	return 0;
}

static void x86_complete(soft_vcpu *v, uint64_t *value) { mv_x86_vcpu_complete(v->x86, value); }

const soft_arch soft_arch_x86 = {
	.nr_memslots = SOFT_X86_NR_MEMSLOTS,
	.coalesced_mmio_page = 2,   /* KVM_COALESCED_MMIO_PAGE_OFFSET (x86: after the PIO page) */
	.arm_nisv = false,
	.vm_new = x86_vm_new,
	.vm_free = x86_vm_free,
	.bus = x86_bus,
	.set_memslot = x86_set_memslot,
	.enable_manual_dirty_protect = x86_enable_manual,
	.get_dirty_log = x86_get_dirty_log,
	.clear_dirty_log = x86_clear_dirty_log,
	.enable_dirty_ring = x86_enable_dirty_ring,
	.dirty_rings_reset = x86_dirty_rings_reset,
	.invalidate = x86_invalidate,
	.vcpu_new = x86_vcpu_new,
	.vcpu_free = x86_vcpu_free,
	.dirty_ring_harvest = x86_harvest,
	.access = x86_access,
	.complete = x86_complete,
};
