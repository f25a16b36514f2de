/*
 * vCPU life cycle: KVM_CREATE_VCPU, the kvm_run mapping, and attaching the
 * vCPU to the VM's dirty ring and coalesced ring.
 *
 * KVM never destroys a vCPU before its VM (closing the fd only drops our
 * handle), so the id stays taken and the VM keeps counting it as created.
 */
#include "kvm/kvm_internal.h"
#include "util/alloc.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Undo kvm_vcpu_attach and free; safe on a partly built vCPU. */
static void kvm_vcpu_free(kvm_vcpu *v, const mv_allocator *a)
{
	kvm_dirty_ring_unmap(v);
	if (v->run)
		munmap(v->run, kvm_vcpu_vm(v)->run_size);
	if (v->fd >= 0)
		close(v->fd);
	pthread_mutex_destroy(&v->ring_lock);
	pthread_mutex_destroy(&v->kick_lock);
	mv_free(a, v);
}

/* Create the KVM vCPU and map its shared pages; VM lock held. */
static int kvm_vcpu_attach(kvm_vm *vm, kvm_vcpu *v, uint32_t id, mv_error *err)
{
	long r = kvm_ioctl(vm->vm_fd, KVM_CREATE_VCPU, (void *)(uintptr_t)id);
	void *run;

	if (r < 0)
		return mv_error_set(err, (int)r, "KVM_CREATE_VCPU %u failed: %s", id,
				    strerror((int)-r));
	v->fd = (int)r;
	vm->nr_vcpus_created++;
	run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (run == MAP_FAILED)
		return mv_error_set(err, -errno, "cannot map the kvm_run area of vCPU %u: %s",
				    id, strerror(errno));
	v->run = run;
	r = vm->ring_entries ? kvm_dirty_ring_map(v) : 0;
	if (r < 0)
		return mv_error_set(err, (int)r, "cannot map the dirty ring of vCPU %u: %s",
				    id, strerror((int)-r));
	r = kvm_coalesced_map(v);
	if (r < 0)
		return mv_error_set(err, (int)r, "cannot map the coalesced MMIO ring: %s",
				    strerror((int)-r));
	return 0;
}

int kvm_vcpu_create(hv_vm *hvm, uint32_t id, hv_vcpu **out, mv_error *err)
{
	kvm_vm *vm = kvm_vm_of(hvm);
	kvm_vcpu *v;
	int r;

	kvm_kick_signal_init();
	v = mv_zalloc(vm->alloc, sizeof(*v));
	if (!v)
		return mv_error_set(err, -ENOMEM, "out of memory creating vCPU %u", id);
	v->fd = -1;
	v->base.vm = hvm;   /* hv.c fills it too; needed before that here */
	pthread_mutex_init(&v->ring_lock, NULL);
	pthread_mutex_init(&v->kick_lock, NULL);
	pthread_mutex_lock(&vm->lock);
	r = kvm_vcpu_attach(vm, v, id, err);
	pthread_mutex_unlock(&vm->lock);
	if (r < 0) {
		kvm_vcpu_free(v, vm->alloc);
		return r;
	}
	*out = &v->base;
	return 0;
}

void kvm_vcpu_destroy(hv_vcpu *hvcpu)
{
	kvm_vcpu *v = kvm_vcpu_of(hvcpu);

	kvm_vcpu_free(v, kvm_vcpu_vm(v)->alloc);
}
