/*
 * Access rights of a translation (SDM Vol. 3A 4.6 "Access Rights") and the
 * page-fault error code's access bits (4.7 "Page-Fault Exceptions").
 *
 * An access at CPL 3 is a user-mode access, any other a supervisor-mode
 * access; implicit supervisor-mode accesses (descriptor tables, shadow
 * stacks) are not modelled. SMAP is applied with EFLAGS.AC = 0, so it
 * forbids every supervisor data access to a user-mode address. Protection
 * keys (CR4.PKE / PKS) are not modelled: PK is never reported.
 *
 * I/D follows the SDM, which reports it for a fetch only under CR4.SMEP or
 * CR4.PAE with EFER.NXE. KVM's own walker (FNAME(walk_addr_generic), used
 * when it emulates) tests EFER.NXE alone, so under 32-bit paging with
 * NXE = 1 it would set I/D where the processor does not.
 */
#include "soft/x86/guest_paging.h"

uint64_t x86_gp_access_pferr(const mv_x86_paging *p, mv_x86_acc acc, unsigned cpl)
{
	uint64_t pferr = 0;
	bool nx_fetch = (p->cr4 & MV_X86_CR4_PAE) && (p->efer & MV_X86_EFER_NXE);

	if (acc == MV_X86_WRITE)
		pferr |= MV_PFERR_WRITE;
	if (cpl == 3)
		pferr |= MV_PFERR_USER;
	/* I/D: an instruction fetch with CR4.SMEP, or with CR4.PAE and EFER.NXE. */
	if (acc == MV_X86_FETCH && ((p->cr4 & MV_X86_CR4_SMEP) || nx_fetch))
		pferr |= MV_PFERR_FETCH;
	return pferr;
}

/* SDM 4.6.1: may a supervisor-mode access of @acc use this translation? */
static bool supervisor_allowed(const mv_x86_paging *p, const mv_x86_walk *w, mv_x86_acc acc)
{
	bool smap_denies = w->user && (p->cr4 & MV_X86_CR4_SMAP);

	switch (acc) {
	case MV_X86_READ:
		return !smap_denies;
	case MV_X86_WRITE:
		/* CR0.WP = 0 lets supervisor writes through read-only pages. */
		return !smap_denies && (w->writable || !(p->cr0 & MV_X86_CR0_WP));
	case MV_X86_FETCH:
		return !w->nx && !(w->user && (p->cr4 & MV_X86_CR4_SMEP));
	}
	return false;
}

/* SDM 4.6.1: user-mode accesses need U/S = 1 in every entry, and R/W or no XD. */
static bool user_allowed(const mv_x86_walk *w, mv_x86_acc acc)
{
	switch (acc) {
	case MV_X86_READ:
		return w->user;
	case MV_X86_WRITE:
		return w->user && w->writable;
	case MV_X86_FETCH:
		return w->user && !w->nx;
	}
	return false;
}

uint64_t mv_x86_rights_fault(const mv_x86_paging *p, const mv_x86_walk *w, mv_x86_acc acc,
			     unsigned cpl)
{
	bool ok;

	/* Without paging there are no access rights to check. */
	if (!(p->cr0 & MV_X86_CR0_PG))
		return 0;
	ok = cpl == 3 ? user_allowed(w, acc) : supervisor_allowed(p, w, acc);
	return ok ? 0 : MV_PFERR_PRESENT | x86_gp_access_pferr(p, acc, cpl);
}
