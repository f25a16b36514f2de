/*
 * The pieces of a guest fault that do not depend on the architecture
 * (soft_fault.h): the slot's block-mapping rule and the host page.
 */
#include "soft/soft_fault.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

bool soft_slot_allows_block(const mv_memslot *slot, uint64_t gfn, uint64_t size)
{
	uint64_t gpa_start = slot->base_gfn << 12;
	uint64_t uaddr_start = slot->userspace_addr;
	uint64_t uaddr_end = uaddr_start + (slot->npages << 12);
	uint64_t block = mv_memslot_gfn_to_hva(slot, gfn) & ~(size - 1);

	if (size == 1ull << 12)
		return true;
	if ((gpa_start & (size - 1)) != (uaddr_start & (size - 1)))
		return false;
	return block >= uaddr_start && block + size <= uaddr_end;
}

int soft_fault_host_page(mv_soft_host *host, const char *space, uint64_t addr, uint64_t hva,
			 bool write, uint64_t *map_size, char *why, size_t why_len)
{
	int r = mv_soft_host_page(host, hva, write, map_size);

	if (r == -EHWPOISON)
		snprintf(why, why_len,
			 "memory failure: guest page at %s 0x%" PRIx64 " (host 0x%" PRIx64 ") is poisoned",
			 space, addr, hva);
	else if (r < 0)
		snprintf(why, why_len, "guest page at %s 0x%" PRIx64 " has no host memory at 0x%" PRIx64,
			 space, addr, hva);
	return r;
}
