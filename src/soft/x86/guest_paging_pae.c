/*
 * PAE paging's PDPTE registers (SDM Vol. 3A 4.4.1 "PDPTE Registers",
 * Table 4-8). MOV to CR3 (and to CR0 / CR4 entering PAE paging) loads the
 * four PDPTEs of the 32-byte PDPT at CR3[31:5] and refuses, with #GP(0),
 * any present one with a reserved bit set; VM entry checks the PDPTE
 * fields the same way. A walk therefore starts from registers that are
 * already checked, never re-reads them from memory, and sets no accessed
 * flag in them (bit 5 is reserved).
 */
#include "soft/x86/guest_paging.h"

#include <errno.h>
#include <string.h>

#define PDPT_ENTRIES 4

uint64_t x86_gp_pdpte_rsvd(const x86_gp_geom *g)
{
	return x86_gp_bits(63, g->maxphy) | x86_gp_bits(8, 5) | x86_gp_bits(2, 1);
}

int x86_gp_pdpte(const x86_gp_geom *g, const mv_x86_paging *p, uint64_t gva, uint64_t *pd)
{
	uint64_t e = p->pdptr[(gva >> 30) & 3];   /* linear address bits 31:30 */

	if (!(e & MV_X86_PTE_P))
		return 1;
	if (e & x86_gp_pdpte_rsvd(g))
		return -EINVAL;
	*pd = e & x86_gp_bits(g->maxphy - 1, 12);
	return 0;
}

int mv_x86_load_pdptrs(mv_x86_paging *p, const mv_x86_pt_ops *ops, void *arg, mv_x86_walk *w)
{
	uint64_t pdpt = p->cr3 & x86_gp_bits(31, 5);
	/* Only MAXPHYADDR matters here; PDPTEs are 8-byte entries whatever CR4 says now. */
	x86_gp_geom g = { .mode = X86_GP_PAE, .wide = true, .maxphy = x86_gp_maxphy(p) };
	uint64_t e[PDPT_ENTRIES], raw;
	int rc, i;

	memset(w, 0, sizeof(*w));
	if (!g.maxphy)
		return -EINVAL;
	for (i = 0; i < PDPT_ENTRIES; i++) {
		uint64_t gpa = pdpt + (uint64_t)i * 8;

		rc = x86_gp_read(&g, ops, arg, gpa, &e[i], &raw);
		if (rc)
			return x86_gp_stop(w, gpa, rc, false);
		if ((e[i] & MV_X86_PTE_P) && (e[i] & x86_gp_pdpte_rsvd(&g))) {
			w->gp = true;
			return 0;
		}
	}
	memcpy(p->pdptr, e, sizeof(e));
	return 0;
}
