/*
 * ioeventfd: KVM_IOEVENTFD. A matching guest write signals the eventfd in
 * the kernel instead of exiting. KVM checks the rest (lengths, datamatch
 * with length 0, duplicates -EEXIST, absent on delete -ENOENT) except one
 * rule of the interface: length 0 ("any length") is for MMIO only, while
 * KVM would register a zero-length port too.
 */
#include "kvm/kvm_internal.h"

#include <errno.h>

int kvm_ioeventfd(hv_vm *hvm, const hv_ioeventfd *e, bool add)
{
	struct kvm_ioeventfd io = {
		.datamatch = e->datamatch ? e->data : 0,
		.addr = e->addr,
		.len = e->len,
		.fd = e->fd,
	};

	if (add && e->bus == HV_BUS_PIO && e->len == 0)
		return -EINVAL;
	if (e->datamatch)
		io.flags |= KVM_IOEVENTFD_FLAG_DATAMATCH;
	if (e->bus == HV_BUS_PIO)
		io.flags |= KVM_IOEVENTFD_FLAG_PIO;
	if (!add)
		io.flags |= KVM_IOEVENTFD_FLAG_DEASSIGN;
	return (int)kvm_ioctl(kvm_vm_of(hvm)->vm_fd, KVM_IOEVENTFD, &io);
}
