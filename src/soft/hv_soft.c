/*
 * The "soft" accelerator's hv_ops table: the in-process KVM (src/soft/)
 * behind the same interface as real KVM. VMs are x86 (soft_x86.h) or
 * arm64 (soft_arm64.h) by hv_vm_config.arch; this file holds what both
 * share: capabilities, the KVM rules that live above the arch (dirty-ring
 * sizes, manual-protect flags), and the forwarding of memslots, dirty logs
 * and MMU notifiers to the arch VM. Every errno is the one the matching
 * KVM ioctl gives (docs/kvm.md, tests/test_hv_soft_kvm.c).
 */
#include "soft/hv_soft_internal.h"
#include "util/alloc.h"

#include <errno.h>

/* sizeof(struct kvm_dirty_gfn): KVM sizes dirty rings in bytes. */
#define SOFT_DIRTY_GFN_SIZE 16u

static const soft_arch *soft_arch_for(hv_arch arch)
{
	switch (arch) {
	case HV_ARCH_X86_64: return &soft_arch_x86;
	case HV_ARCH_ARM64: return &soft_arch_arm64;
	}
	return NULL;
}

/* Free what soft_vm_create built; safe on a partly built VM. */
static void soft_vm_free(soft_vm *vm)
{
	for (size_t i = 0; i < vm->nr_vcpus; i++)
		soft_vcpu_free(vm->vcpus[i]);
	/* The arch VM goes first: no guest write reaches the I/O devices after. */
	if (vm->x86)   /* either arch's: the pointers share a union */
		vm->arch->vm_free(vm);
	soft_io_destroy(&vm->io);
	pthread_mutex_destroy(&vm->lock);
	mv_free(vm->alloc, vm->vcpus);
	mv_free(vm->alloc, vm);
}

static int soft_vm_create(const hv_vm_config *cfg, hv_vm **out, mv_error *err)
{
	const mv_allocator *a = cfg->alloc ? cfg->alloc : mv_allocator_libc();
	const soft_arch *arch = soft_arch_for(cfg->arch);
	soft_vm *vm;
	int r;

	if (!arch)
		return mv_error_set(err, -EINVAL,
				    "the soft accelerator has no guest architecture number %d",
				    (int)cfg->arch);
	vm = mv_zalloc(a, sizeof(*vm));
	if (!vm)
		return mv_error_set(err, -ENOMEM, "out of memory creating a soft VM");
	vm->alloc = a;
	vm->arch = arch;
	pthread_mutex_init(&vm->lock, NULL);
	soft_io_init(&vm->io, a);
	r = arch->vm_new(vm, err);
	if (r == 0)
		r = soft_io_attach(&vm->io, arch->bus(vm, HV_BUS_MMIO), arch->bus(vm, HV_BUS_PIO));
	if (r < 0) {
		if (!err || !err->code)
			mv_error_set(err, r, "out of memory creating a soft VM");
		soft_vm_free(vm);
		return r;
	}
	*out = &vm->base;
	return 0;
}

static void soft_vm_destroy(hv_vm *vm)
{
	soft_vm_free(soft_vm_of(vm));
}

static long soft_check_cap(hv_vm *hvm, hv_cap cap)
{
	soft_vm *vm = soft_vm_of(hvm);

	switch (cap) {
	case HV_CAP_NR_MEMSLOTS: return vm->arch->nr_memslots;
	case HV_CAP_NR_AS: return 1;
	case HV_CAP_MAX_VCPUS: return SOFT_MAX_VCPUS;
	case HV_CAP_READONLY_MEM: return 1;
	/* KVM_DIRTY_LOG_MANUAL_CAPS */
	case HV_CAP_MANUAL_DIRTY_PROTECT: return HV_DIRTY_PROTECT_ENABLE | HV_DIRTY_PROTECT_INIT_SET;
	case HV_CAP_DIRTY_RING: return SOFT_DIRTY_RING_MAX;
	case HV_CAP_COALESCED_MMIO: return vm->arch->coalesced_mmio_page;
	case HV_CAP_COALESCED_PIO: return 1;
	case HV_CAP_IOEVENTFD: return 1;
	case HV_CAP_ARM_NISV: return vm->arch->arm_nisv;
	}
	return 0;
}

static int soft_set_memslot(hv_vm *vm, const hv_memslot *m)
{
	return soft_vm_of(vm)->arch->set_memslot(soft_vm_of(vm), m);
}

static int soft_enable_manual_dirty_protect(hv_vm *hvm, uint32_t flags)
{
	/* Bits KVM does not know are what the kvm backend refuses too. */
	if (flags & ~(HV_DIRTY_PROTECT_ENABLE | HV_DIRTY_PROTECT_INIT_SET))
		return -EINVAL;
	return soft_vm_of(hvm)->arch->enable_manual_dirty_protect(soft_vm_of(hvm), flags);
}

static int soft_get_dirty_log(hv_vm *hvm, uint32_t slot, uint64_t *bitmap)
{
	return soft_vm_of(hvm)->arch->get_dirty_log(soft_vm_of(hvm), slot, bitmap);
}

static int soft_clear_dirty_log(hv_vm *hvm, uint32_t slot, uint64_t first_page,
				uint32_t num_pages, const uint64_t *bitmap)
{
	return soft_vm_of(hvm)->arch->clear_dirty_log(soft_vm_of(hvm), slot, first_page,
						       num_pages, bitmap);
}

/*
 * kvm_vm_ioctl_enable_dirty_log_ring, in its order: the size in bytes
 * (entries x 16, which KVM takes as a u32: larger sizes wrap) must be a
 * power of two of at least a page (-EINVAL) and at most
 * KVM_DIRTY_RING_MAX_ENTRIES entries (-E2BIG); then only once, and only
 * before the first vCPU (-EINVAL).
 */
static int soft_enable_dirty_ring(hv_vm *hvm, uint32_t entries)
{
	uint32_t bytes = entries * (uint32_t)SOFT_DIRTY_GFN_SIZE;
	soft_vm *vm = soft_vm_of(hvm);
	int r;

	if (!bytes || (bytes & (bytes - 1)) || bytes < SOFT_DIRTY_RING_MIN * SOFT_DIRTY_GFN_SIZE)
		return -EINVAL;
	if (bytes > SOFT_DIRTY_RING_MAX * SOFT_DIRTY_GFN_SIZE)
		return -E2BIG;
	entries = bytes / SOFT_DIRTY_GFN_SIZE;
	pthread_mutex_lock(&vm->lock);
	r = vm->ring_entries || vm->nr_vcpus ? -EINVAL : vm->arch->enable_dirty_ring(vm, entries);
	if (r == 0)
		__atomic_store_n(&vm->ring_entries, entries, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&vm->lock);
	return r;
}

/* KVM_RESET_DIRTY_RINGS: -EINVAL without a ring. */
static int soft_dirty_rings_reset(hv_vm *hvm)
{
	soft_vm *vm = soft_vm_of(hvm);

	if (!__atomic_load_n(&vm->ring_entries, __ATOMIC_ACQUIRE))
		return -EINVAL;
	return vm->arch->dirty_rings_reset(vm);
}

static int soft_coalesced_zone(hv_vm *vm, hv_bus bus, uint64_t addr, uint32_t size, bool add)
{
	return soft_io_coalesced_zone(&soft_vm_of(vm)->io, bus, addr, size, add);
}

static int soft_coalesced_drain(hv_vm *vm, void (*fn)(void *, const hv_coalesced_write *),
				void *opaque)
{
	return soft_io_coalesced_drain(&soft_vm_of(vm)->io, fn, opaque);
}

static int soft_ioeventfd(hv_vm *vm, const hv_ioeventfd *e, bool add)
{
	return soft_io_ioeventfd(&soft_vm_of(vm)->io, e, add);
}

/* The kernel's MMU notifier, told by the VMM (hv_vm_invalidate_hva_start/end). */
static void soft_invalidate_hva(hv_vm *hvm, uint64_t hva, uint64_t len, bool start)
{
	soft_vm *vm = soft_vm_of(hvm);
	uint64_t end = hva + len < hva ? UINT64_MAX : hva + len;

	if (len)
		vm->arch->invalidate(vm, hva, end, start);
}

const hv_ops hv_soft_ops = {
	.name = "soft",
	.vm_create = soft_vm_create,
	.vm_destroy = soft_vm_destroy,
	.check_cap = soft_check_cap,
	.set_memslot = soft_set_memslot,
	.enable_manual_dirty_protect = soft_enable_manual_dirty_protect,
	.get_dirty_log = soft_get_dirty_log,
	.clear_dirty_log = soft_clear_dirty_log,
	.enable_dirty_ring = soft_enable_dirty_ring,
	.dirty_ring_harvest = soft_vcpu_dirty_ring_harvest,
	.dirty_rings_reset = soft_dirty_rings_reset,
	.coalesced_zone = soft_coalesced_zone,
	.coalesced_drain = soft_coalesced_drain,
	.ioeventfd = soft_ioeventfd,
	.vcpu_create = soft_vcpu_create,
	.vcpu_destroy = soft_vcpu_destroy,
	.vcpu_run = soft_vcpu_run,
	.vcpu_kick = soft_vcpu_kick,
	.invalidate_hva = soft_invalidate_hva,
};

bool hv_vm_is_soft(const hv_vm *vm)
{
	return vm && vm->ops == &hv_soft_ops;
}
