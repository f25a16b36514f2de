/*
 * What the arm64 and x86 guest-fault handlers share (user_mem_abort and
 * direct_page_fault): the memslot rule for block / huge mappings and the
 * host-page resolution with its one-sentence errors. Internal to src/soft/.
 */
#ifndef MV_SOFT_FAULT_H
#define MV_SOFT_FAULT_H

#include "memvirt/soft_host.h"
#include "memvirt/soft_memslot.h"

#include <stddef.h>
#include <stdint.h>

/*
 * Can one block (arm64) / huge page (x86) of @size bytes map the guest
 * page @gfn of @slot? Only when the slot's guest and host addresses are
 * congruent modulo @size and the whole aligned block around @gfn lies
 * inside the slot (arm64's fault_supports_stage2_huge_mapping; x86 KVM
 * encodes the same rule in the lpage_info counts of a new slot). Always
 * true for 4 KiB.
 */
bool soft_slot_allows_block(const mv_memslot *slot, uint64_t gfn, uint64_t size);

/*
 * Resolve the host page at @hva behind guest address @addr (@space names
 * it in sentences: "IPA" or "GPA") as get_user_pages does for a fault:
 * mv_soft_host_page's 0 / -EHWPOISON / -EFAULT and *map_size. On an error
 * @why (of @why_len bytes) gets one sentence naming both addresses.
 */
int soft_fault_host_page(mv_soft_host *host, const char *space, uint64_t addr, uint64_t hva,
			 bool write, uint64_t *map_size, char *why, size_t why_len);

#endif
