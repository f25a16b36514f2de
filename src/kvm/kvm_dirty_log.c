/*
 * Bitmap dirty logging: KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, KVM_GET_DIRTY_LOG
 * and KVM_CLEAR_DIRTY_LOG. On x86-64 KVM's bitmap is an array of 64-bit
 * longs, bit n = page n of the slot: the interface's uint64_t words as is.
 */
#include "kvm/kvm_internal.h"

#include <errno.h>

int kvm_enable_manual_dirty_protect(hv_vm *hvm, uint32_t flags)
{
	struct kvm_enable_cap cap = { .cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 };

	/* An unknown flag is what KVM would refuse too. */
	if (flags & ~(HV_DIRTY_PROTECT_ENABLE | HV_DIRTY_PROTECT_INIT_SET))
		return -EINVAL;
	if (flags & HV_DIRTY_PROTECT_ENABLE)
		cap.args[0] |= KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE;
	if (flags & HV_DIRTY_PROTECT_INIT_SET)
		cap.args[0] |= KVM_DIRTY_LOG_INITIALLY_SET;
	return (int)kvm_ioctl(kvm_vm_of(hvm)->vm_fd, KVM_ENABLE_CAP, &cap);
}

int kvm_get_dirty_log(hv_vm *hvm, uint32_t slot, uint64_t *bitmap)
{
	struct kvm_dirty_log log = { .slot = slot, .dirty_bitmap = bitmap };

	return (int)kvm_ioctl(kvm_vm_of(hvm)->vm_fd, KVM_GET_DIRTY_LOG, &log);
}

int kvm_clear_dirty_log(hv_vm *hvm, uint32_t slot, uint64_t first_page,
			uint32_t num_pages, const uint64_t *bitmap)
{
	/* KVM only reads the bitmap (copy_from_user); the cast drops const. */
	struct kvm_clear_dirty_log log = {
		.slot = slot,
		.num_pages = num_pages,
		.first_page = first_page,
		.dirty_bitmap = (void *)(uintptr_t)bitmap,
	};

	return (int)kvm_ioctl(kvm_vm_of(hvm)->vm_fd, KVM_CLEAR_DIRTY_LOG, &log);
}
