/*
 * The host side of a software-MMU fault: what KVM learns from
 * get_user_pages and the host page tables (__gfn_to_pfn_memslot,
 * get_vma_page_shift, transparent_hugepage_adjust): is the host page
 * there, is it poisoned, and how large is the host mapping around it.
 *
 * Backing sizes come from declarations (a VMM declares hugetlbfs-backed
 * and THP-advised ranges, as it knows them from its RAM blocks); a THP
 * range is reported as 2 MiB-backed where the kernel maps the page by a
 * PMD right now (PAGEMAP_SCAN's PAGE_IS_HUGE, Linux >= 6.7; host.c says
 * why) and as 4 KiB elsewhere or when that cannot be known. Poisoned pages
 * (memory failure) and external-abort pages (an access raises a
 * synchronous external abort) are test-injectable.
 *
 * Threads: every call may run concurrently with every other on one oracle.
 * An oracle describes the process that created it (not for use across fork()).
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

/* A new oracle with no declarations and no marks. 0 or -ENOMEM. */
int mv_soft_host_new(const mv_allocator *alloc, mv_soft_host **out);
/* NULL is a no-op. */
void mv_soft_host_free(mv_soft_host *host);
/*
 * Declare [hva, hva + size) as backed by @kind; @page_size is the hugetlb
 * page size (64 KiB, 2 MiB, 32 MiB or 1 GiB: arm64's 4 KiB-granule sizes)
 * or, for THP, the PMD size (2 MiB), or for PAGE 0 or 4 KiB. @hva and
 * @size (> 0) must be multiples of max(page_size, 4 KiB). -EINVAL for a
 * misaligned or empty range, a range reaching 2^64 or a bad size, -ENOMEM.
 * Later declarations win: the parts of earlier ones outside the new range
 * keep their kind and page size (a PAGE declaration just removes them).
 */
int mv_soft_host_declare(mv_soft_host *host, uint64_t hva, uint64_t size, mv_host_backing kind,
			 uint64_t page_size);
/*
 * Mark the (4 KiB) host page at @hva as poisoned (memory failure) or clear
 * it. 0 (also when nothing changes) or -ENOMEM.
 */
int mv_soft_host_set_poison(mv_soft_host *host, uint64_t hva, bool poisoned);
/*
 * Mark the host page at @hva so that accesses raise a synchronous external
 * abort, or clear the mark. 0 or -ENOMEM.
 */
int mv_soft_host_set_sea(mv_soft_host *host, uint64_t hva, bool sea);
/*
 * Does an access to @hva raise a synchronous external abort? No lock when
 * there are no SEA marks at all, a read lock otherwise.
 */
bool mv_soft_host_is_sea(const mv_soft_host *host, uint64_t hva);

/*
 * Resolve the host page at @hva for a fault: 0 with *map_size = the host
 * mapping size around it (4 KiB, or a declared hugetlb size, or 2 MiB for
 * a PMD-mapped page of a THP declaration); -EHWPOISON for a poisoned page
 * (marked, or reported so by the kernel); -EFAULT when nothing is mapped
 * at @hva or the mapping does not allow the access (a write to a PROT_READ
 * mapping, any access to PROT_NONE, a file page beyond the end of the
 * file). Faults the page in (for writing when @write, without changing its
 * contents), as get_user_pages does. *map_size is left alone on errors.
 */
int mv_soft_host_page(mv_soft_host *host, uint64_t hva, bool write, uint64_t *map_size);

#endif
