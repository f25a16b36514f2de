/*
 * KVM VMs: opening /dev/kvm, creating and destroying a VM, capabilities,
 * and the ops table that plugs the backend into src/hv.
 *
 * No in-kernel irqchip is created (no KVM_CREATE_IRQCHIP): with the local
 * APIC in user space, a guest HLT exits to user space as KVM_EXIT_HLT,
 * which is what the VMM's vCPU loop and the tests rely on.
 */
#include "kvm/kvm_internal.h"
#include "util/alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

/*
 * Where KVM puts the three pages of the real-mode TSS and the EPT identity
 * page table on Intel hosts: just below the BIOS at 4 GiB, out of the way of
 * guest RAM, as every x86 VMM does.
 */
#define KVM_X86_TSS_ADDR 0xfffbd000ul
#define KVM_X86_IDENTITY_MAP_ADDR 0xfffbc000ull

/* The only KVM API version there has ever been (KVM_GET_API_VERSION). */
#define KVM_EXPECTED_API_VERSION 12

long kvm_ioctl(int fd, unsigned long req, void *arg)
{
	long r = ioctl(fd, req, arg);

	return r < 0 ? -errno : r;
}

long kvm_vm_extension(kvm_vm *vm, long kvm_cap)
{
	long r = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, kvm_cap);

	return r < 0 ? 0 : r;
}

/* Open /dev/kvm and check the API version. */
static int kvm_open_system(kvm_vm *vm, mv_error *err)
{
	long ver;

	vm->sys_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->sys_fd < 0) {
		int e = errno;

		return mv_error_set(err, -ENODEV, "cannot open /dev/kvm: %s", strerror(e));
	}
	ver = kvm_ioctl(vm->sys_fd, KVM_GET_API_VERSION, NULL);
	if (ver != KVM_EXPECTED_API_VERSION)
		return mv_error_set(err, -ENODEV,
				    "/dev/kvm speaks KVM API version %ld, memvirt needs %d",
				    ver, KVM_EXPECTED_API_VERSION);
	return 0;
}

/*
 * x86 set-up KVM wants before the first vCPU: the TSS and identity-map
 * addresses that Intel hosts need for real-mode emulation. A host that
 * has no use for them may refuse them with EINVAL or ENOTTY (e.g. some
 * paravirtual hosts); it then does not use them, so those errors are
 * ignored and any other one fails the creation.
 */
static int kvm_x86_vm_setup(kvm_vm *vm, mv_error *err)
{
	uint64_t idmap = KVM_X86_IDENTITY_MAP_ADDR;
	long r;

	r = kvm_ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (void *)KVM_X86_TSS_ADDR);
	if (r < 0 && r != -EINVAL && r != -ENOTTY)
		return mv_error_set(err, (int)r, "KVM_SET_TSS_ADDR failed: %s", strerror((int)-r));
	r = kvm_ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap);
	if (r < 0 && r != -EINVAL && r != -ENOTTY)
		return mv_error_set(err, (int)r, "KVM_SET_IDENTITY_MAP_ADDR failed: %s",
				    strerror((int)-r));
	return 0;
}

/* Create the VM fd and learn the sizes the vCPUs will need. */
static int kvm_open_vm(kvm_vm *vm, mv_error *err)
{
	long r = kvm_ioctl(vm->sys_fd, KVM_CREATE_VM, NULL);

	if (r < 0)
		return mv_error_set(err, (int)r, "KVM_CREATE_VM failed: %s", strerror((int)-r));
	vm->vm_fd = (int)r;
	r = kvm_ioctl(vm->sys_fd, KVM_GET_VCPU_MMAP_SIZE, NULL);
	if (r <= 0)
		return mv_error_set(err, r < 0 ? (int)r : -EIO,
				    "KVM_GET_VCPU_MMAP_SIZE failed: %s",
				    strerror(r < 0 ? (int)-r : EIO));
	vm->run_size = (size_t)r;
	return kvm_x86_vm_setup(vm, err);
}

/* Release what kvm_vm_create acquired; safe on a partly built VM. */
static void kvm_vm_free(kvm_vm *vm)
{
	kvm_coalesced_unmap(vm);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->sys_fd >= 0)
		close(vm->sys_fd);
	pthread_mutex_destroy(&vm->lock);
	mv_free(vm->alloc, vm);
}

int kvm_vm_create(const hv_vm_config *cfg, hv_vm **out, mv_error *err)
{
	const mv_allocator *a = cfg->alloc ? cfg->alloc : mv_allocator_libc();
	kvm_vm *vm;
	int r;

	if (cfg->arch != HV_ARCH_X86_64)
		return mv_error_set(err, -EINVAL,
				    "the kvm accelerator only runs x86-64 guests on this host");
	vm = mv_zalloc(a, sizeof(*vm));
	if (!vm)
		return mv_error_set(err, -ENOMEM, "out of memory creating a KVM VM");
	vm->alloc = a;
	vm->sys_fd = vm->vm_fd = -1;
	vm->page_size = (size_t)sysconf(_SC_PAGESIZE);
	pthread_mutex_init(&vm->lock, NULL);
	r = kvm_open_system(vm, err);
	if (r == 0)
		r = kvm_open_vm(vm, err);
	if (r < 0) {
		kvm_vm_free(vm);
		return r;
	}
	*out = &vm->base;
	return 0;
}

void kvm_vm_destroy(hv_vm *vm)
{
	kvm_vm_free(kvm_vm_of(vm));
}

/* KVM_CAP_DIRTY_LOG_RING(_ACQ_REL) answers bytes; the interface counts entries. */
static long kvm_dirty_ring_cap(kvm_vm *vm)
{
	long bytes = kvm_vm_extension(vm, KVM_CAP_DIRTY_LOG_RING);

#ifdef KVM_CAP_DIRTY_LOG_RING_ACQ_REL
	if (bytes <= 0)
		bytes = kvm_vm_extension(vm, KVM_CAP_DIRTY_LOG_RING_ACQ_REL);
#endif
	return bytes / (long)sizeof(struct kvm_dirty_gfn);
}

long kvm_check_cap(hv_vm *hvm, hv_cap cap)
{
	kvm_vm *vm = kvm_vm_of(hvm);
	long r;

	switch (cap) {
	case HV_CAP_NR_MEMSLOTS: return kvm_vm_extension(vm, KVM_CAP_NR_MEMSLOTS);
	case HV_CAP_NR_AS:
		/* 0 means the capability is absent: one address space. */
		r = kvm_vm_extension(vm, KVM_CAP_MULTI_ADDRESS_SPACE);
		return r > 0 ? r : 1;
	case HV_CAP_MAX_VCPUS: return kvm_vm_extension(vm, KVM_CAP_MAX_VCPUS);
	case HV_CAP_READONLY_MEM: return kvm_vm_extension(vm, KVM_CAP_READONLY_MEM);
	case HV_CAP_MANUAL_DIRTY_PROTECT:
		return kvm_vm_extension(vm, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2);
	case HV_CAP_DIRTY_RING: return kvm_dirty_ring_cap(vm);
	case HV_CAP_COALESCED_MMIO: return kvm_vm_extension(vm, KVM_CAP_COALESCED_MMIO);
	case HV_CAP_COALESCED_PIO: return kvm_vm_extension(vm, KVM_CAP_COALESCED_PIO);
	case HV_CAP_IOEVENTFD: return kvm_vm_extension(vm, KVM_CAP_IOEVENTFD);
	case HV_CAP_ARM_NISV: return kvm_vm_extension(vm, KVM_CAP_ARM_NISV_TO_USER);
	}
	return 0;
}

const hv_ops hv_kvm_ops = {
	.name = "kvm",
	.vm_create = kvm_vm_create,
	.vm_destroy = kvm_vm_destroy,
	.check_cap = kvm_check_cap,
	.set_memslot = kvm_set_memslot,
	.enable_manual_dirty_protect = kvm_enable_manual_dirty_protect,
	.get_dirty_log = kvm_get_dirty_log,
	.clear_dirty_log = kvm_clear_dirty_log,
	.enable_dirty_ring = kvm_enable_dirty_ring,
	.dirty_ring_harvest = kvm_dirty_ring_harvest,
	.dirty_rings_reset = kvm_dirty_rings_reset,
	.coalesced_zone = kvm_coalesced_zone,
	.coalesced_drain = kvm_coalesced_drain,
	.ioeventfd = kvm_ioeventfd,
	.vcpu_create = kvm_vcpu_create,
	.vcpu_destroy = kvm_vcpu_destroy,
	.vcpu_run = kvm_vcpu_run,
	.vcpu_kick = kvm_vcpu_kick,
	.get_regs = kvm_get_regs,
	.set_regs = kvm_set_regs,
	.get_sregs = kvm_get_sregs,
	.set_sregs = kvm_set_sregs,
	.supported_cpuid = kvm_supported_cpuid,
	.set_cpuid = kvm_set_cpuid,
	.translate = kvm_translate,
};
