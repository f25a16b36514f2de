/*
 * Dirty rings (KVM_CAP_DIRTY_LOG_RING): one ring of struct kvm_dirty_gfn
 * per vCPU, shared with the kernel through an mmap of the vCPU fd. KVM
 * publishes an entry by setting KVM_DIRTY_GFN_F_DIRTY after filling it; we
 * consume it (acquire), hand (slot, offset) to the caller and mark it
 * KVM_DIRTY_GFN_F_RESET (release) so KVM_RESET_DIRTY_RINGS may recycle it
 * and write-protect the page again.
 */
#include "kvm/kvm_internal.h"

#include <errno.h>
#include <sys/mman.h>

/*
 * The capability to enable: the acquire/release flavour where the headers
 * and the kernel know it (it tells KVM that we order our accesses to the
 * ring, which weakly ordered hosts require), else the original one.
 */
static long kvm_dirty_ring_cap_id(kvm_vm *vm)
{
#ifdef KVM_CAP_DIRTY_LOG_RING_ACQ_REL
	if (kvm_vm_extension(vm, KVM_CAP_DIRTY_LOG_RING_ACQ_REL) > 0)
		return KVM_CAP_DIRTY_LOG_RING_ACQ_REL;
#else
	(void)vm;
#endif
	return KVM_CAP_DIRTY_LOG_RING;
}

int kvm_enable_dirty_ring(hv_vm *hvm, uint32_t entries)
{
	kvm_vm *vm = kvm_vm_of(hvm);
	struct kvm_enable_cap cap = {
		.cap = (uint32_t)kvm_dirty_ring_cap_id(vm),
		.args[0] = (uint64_t)entries * sizeof(struct kvm_dirty_gfn),
	};
	int r = -EINVAL;

	pthread_mutex_lock(&vm->lock);
	/* KVM sizes each ring when the vCPU is created: only before the first. */
	if (vm->nr_vcpus_created == 0) {
		r = (int)kvm_ioctl(vm->vm_fd, KVM_ENABLE_CAP, &cap);
		if (r == 0)
			vm->ring_entries = entries;
	}
	pthread_mutex_unlock(&vm->lock);
	return r;
}

int kvm_dirty_ring_map(kvm_vcpu *v)
{
	kvm_vm *vm = kvm_vcpu_vm(v);
	size_t bytes = (size_t)vm->ring_entries * sizeof(struct kvm_dirty_gfn);
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd,
		       (off_t)KVM_DIRTY_LOG_PAGE_OFFSET * (off_t)vm->page_size);

	if (p == MAP_FAILED)
		return -errno;
	v->ring = p;
	v->ring_entries = vm->ring_entries;
	v->ring_fetch = 0;
	return 0;
}

void kvm_dirty_ring_unmap(kvm_vcpu *v)
{
	if (v->ring)
		munmap(v->ring, (size_t)v->ring_entries * sizeof(struct kvm_dirty_gfn));
	v->ring = NULL;
}

int kvm_dirty_ring_harvest(hv_vcpu *hvcpu, void (*fn)(void *, const hv_dirty_gfn *),
			   void *opaque)
{
	kvm_vcpu *v = kvm_vcpu_of(hvcpu);
	int n = 0;

	if (!v->ring)
		return -EINVAL;
	pthread_mutex_lock(&v->ring_lock);
	for (;;) {
		struct kvm_dirty_gfn *e = &v->ring[v->ring_fetch & (v->ring_entries - 1)];
		hv_dirty_gfn g;

		/* Pairs with the kernel's release of the flags after the entry. */
		if (!(__atomic_load_n(&e->flags, __ATOMIC_ACQUIRE) & KVM_DIRTY_GFN_F_DIRTY))
			break;
		g.slot = e->slot;
		g.offset = e->offset;
		fn(opaque, &g);
		/* The kernel may recycle the entry once it sees RESET. */
		__atomic_store_n(&e->flags, KVM_DIRTY_GFN_F_RESET, __ATOMIC_RELEASE);
		v->ring_fetch++;
		n++;
	}
	pthread_mutex_unlock(&v->ring_lock);
	return n;
}

int kvm_dirty_rings_reset(hv_vm *hvm)
{
	return (int)kvm_ioctl(kvm_vm_of(hvm)->vm_fd, KVM_RESET_DIRTY_RINGS, NULL);
}
