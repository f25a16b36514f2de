/*
 * Coalesced MMIO/PIO: KVM_(UN)REGISTER_COALESCED_MMIO zones whose writes KVM
 * queues in one ring per VM instead of exiting. The ring page is only
 * reachable through a vCPU fd (at KVM_COALESCED_MMIO_PAGE_OFFSET), so it is
 * mapped with the first vCPU and kept for the VM's lifetime.
 *
 * Ring protocol: the kernel fills coalesced_mmio[last] and then advances
 * @last; we consume from @first and advance it. One drainer at a time (the
 * VM lock), concurrently with vCPUs producing.
 */
#include "kvm/kvm_internal.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

int kvm_coalesced_zone(hv_vm *hvm, hv_bus bus, uint64_t addr, uint32_t size, bool add)
{
	kvm_vm *vm = kvm_vm_of(hvm);
	struct kvm_coalesced_mmio_zone zone = { .addr = addr, .size = size };
	long cap = KVM_CAP_COALESCED_MMIO;

	if (bus == HV_BUS_PIO) {
		cap = KVM_CAP_COALESCED_PIO;
		zone.pio = 1;
	}
	if (kvm_vm_extension(vm, cap) <= 0)
		return -ENOTSUP;
	return (int)kvm_ioctl(vm->vm_fd, add ? KVM_REGISTER_COALESCED_MMIO
				       : KVM_UNREGISTER_COALESCED_MMIO, &zone);
}

int kvm_coalesced_map(kvm_vcpu *v)
{
	kvm_vm *vm = kvm_vcpu_vm(v);
	void *p;

	if (vm->coalesced || kvm_vm_extension(vm, KVM_CAP_COALESCED_MMIO) <= 0)
		return 0;
	p = mmap(NULL, vm->page_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd,
		 (off_t)KVM_COALESCED_MMIO_PAGE_OFFSET * (off_t)vm->page_size);
	if (p == MAP_FAILED)
		return -errno;
	vm->coalesced = p;
	/* The kernel's KVM_COALESCED_MMIO_MAX, from the page size we mapped. */
	vm->coalesced_max = (uint32_t)((vm->page_size - sizeof(struct kvm_coalesced_mmio_ring)) /
				       sizeof(struct kvm_coalesced_mmio));
	return 0;
}

void kvm_coalesced_unmap(kvm_vm *vm)
{
	if (vm->coalesced)
		munmap(vm->coalesced, vm->page_size);
	vm->coalesced = NULL;
}

/* Convert ring entry @e into the interface's record. */
static void kvm_coalesced_entry(const struct kvm_coalesced_mmio *e, hv_coalesced_write *w)
{
	w->bus = e->pio ? HV_BUS_PIO : HV_BUS_MMIO;
	w->addr = e->phys_addr;
	w->len = e->len <= sizeof(w->data) ? e->len : sizeof(w->data);
	memcpy(w->data, e->data, sizeof(w->data));
}

/* Consume the published entries; caller holds the VM lock. */
static int kvm_coalesced_drain_locked(kvm_vm *vm, void (*fn)(void *, const hv_coalesced_write *),
				      void *opaque)
{
	struct kvm_coalesced_mmio_ring *ring = vm->coalesced;
	uint32_t first = ring->first;
	int n = 0;

	/* Acquire pairs with the kernel's barrier before it advances @last. */
	while (first != __atomic_load_n(&ring->last, __ATOMIC_ACQUIRE)) {
		hv_coalesced_write w;

		kvm_coalesced_entry(&ring->coalesced_mmio[first], &w);
		fn(opaque, &w);
		first = (first + 1) % vm->coalesced_max;
		/* Release: the slot is free only after we have read it. */
		__atomic_store_n(&ring->first, first, __ATOMIC_RELEASE);
		n++;
	}
	return n;
}

int kvm_coalesced_drain(hv_vm *hvm, void (*fn)(void *, const hv_coalesced_write *),
			void *opaque)
{
	kvm_vm *vm = kvm_vm_of(hvm);
	int n = 0;

	pthread_mutex_lock(&vm->lock);
	if (vm->coalesced)
		n = kvm_coalesced_drain_locked(vm, fn, opaque);
	pthread_mutex_unlock(&vm->lock);
	return n;
}
