/*
 * Memslots: KVM_SET_USER_MEMORY_REGION. KVM itself checks alignment,
 * overlap, slot and address-space ranges and answers with the errno the
 * interface promises, so this only translates the flags.
 */
#include "kvm/kvm_internal.h"

#include <errno.h>

/* HV_MEM_* -> KVM_MEM_*; -EINVAL for a flag KVM would not accept either. */
static int kvm_memslot_flags(uint32_t hv_flags, uint32_t *kvm_flags)
{
	uint32_t f = 0;

	if (hv_flags & ~(HV_MEM_LOG_DIRTY_PAGES | HV_MEM_READONLY))
		return -EINVAL;
	if (hv_flags & HV_MEM_LOG_DIRTY_PAGES)
		f |= KVM_MEM_LOG_DIRTY_PAGES;
	if (hv_flags & HV_MEM_READONLY)
		f |= KVM_MEM_READONLY;
	*kvm_flags = f;
	return 0;
}

int kvm_set_memslot(hv_vm *hvm, const hv_memslot *m)
{
	struct kvm_userspace_memory_region region = {
		.slot = m->slot,
		.guest_phys_addr = m->gpa,
		.memory_size = m->size,
		.userspace_addr = (uint64_t)(uintptr_t)m->hva,
	};
	int r = kvm_memslot_flags(m->flags, &region.flags);

	if (r < 0)
		return r;
	return (int)kvm_ioctl(kvm_vm_of(hvm)->vm_fd, KVM_SET_USER_MEMORY_REGION, &region);
}
