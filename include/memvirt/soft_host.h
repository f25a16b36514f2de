/*
 * The host side of a software-MMU fault: what KVM learns from
 * get_user_pages and the host page tables (__gfn_to_pfn_memslot,
 * get_vma_page_shift, transparent_hugepage_adjust): is the host page
 * there, is it poisoned, and how large is the host mapping around it.
 *
 * The process cannot see its own page-table levels cheaply, so backing
 * sizes come from declarations (a VMM declares hugetlbfs-backed and
 * THP-advised ranges, as it knows them from its RAM blocks); a THP range
 * is reported as 2 MiB-backed where the kernel really placed a huge page
 * (host.c says how it checks) and as 4 KiB elsewhere. Poisoned pages
 * (memory failure) and external-abort pages (an access raises a
 * synchronous external abort) are test-injectable.
 */
#ifndef MEMVIRT_SOFT_HOST_H
#define MEMVIRT_SOFT_HOST_H

#include "memvirt/base.h"

#include <stdint.h>

typedef struct mv_soft_host mv_soft_host;

typedef enum mv_host_backing {
	MV_HOST_BACKING_PAGE,      /* ordinary 4 KiB pages */
	MV_HOST_BACKING_THP,       /* anonymous memory advised MADV_HUGEPAGE */
	MV_HOST_BACKING_HUGETLB,   /* hugetlbfs pages of a fixed size */
} mv_host_backing;

int mv_soft_host_new(const mv_allocator *alloc, mv_soft_host **out);
void mv_soft_host_free(mv_soft_host *host);
/*
 * Declare [hva, hva + size) as backed by @kind; @page_size is the hugetlb
 * page size (2 MiB or 1 GiB) or, for THP, the PMD size (2 MiB). -EINVAL
 * for a misaligned range or bad size, -ENOMEM. Later declarations win.
 */
int mv_soft_host_declare(mv_soft_host *host, uint64_t hva, uint64_t size, mv_host_backing kind,
			 uint64_t page_size);
/* Mark the host page at @hva as poisoned (memory failure) or clear it. */
int mv_soft_host_set_poison(mv_soft_host *host, uint64_t hva, bool poisoned);
/* Mark the host page at @hva so that accesses raise a synchronous external abort. */
int mv_soft_host_set_sea(mv_soft_host *host, uint64_t hva, bool sea);
/* Does an access to @hva raise a synchronous external abort? (lock-free fast check) */
bool mv_soft_host_is_sea(const mv_soft_host *host, uint64_t hva);

/*
 * Resolve the host page at @hva for a fault: 0 with *map_size = the host
 * mapping size around it (4 KiB, 2 MiB, 1 GiB); -EHWPOISON for a poisoned
 * page; -EFAULT when nothing is mapped at @hva. Faults the page in
 * (for writing when @write, without changing its contents), as
 * get_user_pages does.
 */
int mv_soft_host_page(mv_soft_host *host, uint64_t hva, bool write, uint64_t *map_size);

#endif
