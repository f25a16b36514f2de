/*
 * Guest paging modes and their entry formats (SDM Vol. 3A 4.1.1 "Four
 * Paging Modes", 4.3 Tables 4-4 to 4-6, 4.4 Tables 4-8 to 4-11, 4.5
 * Tables 4-14 to 4-20): which mode the registers select, where each level
 * indexes the linear address, which bits of an entry are reserved and
 * where its address bits are.
 *
 * Assumed processor features: PSE-36 (32-bit paging's 4 MiB pages reach
 * min(MAXPHYADDR, 40) bits), 1-GByte pages (CPUID.80000001H:EDX[26]), PAT
 * (bit 7 of a 4 KiB PTE and bit 12 of a large page are PAT, not reserved);
 * no protection keys (bits 62:59 are ignored in 4/5-level entries, as all
 * of 62:52 are, and reserved in PAE entries, as all of 62:MAXPHYADDR are).
 */
#include "soft/x86/guest_paging.h"

#include <errno.h>

#define DEFAULT_MAXPHY 52u
#define MIN_MAXPHY 32u
#define PSE36_MAXPHY 40u         /* 32-bit paging's 4 MiB pages hold address bits 39:32 in 20:13 */

static x86_gp_mode decode_mode(const mv_x86_paging *p)
{
	if (!(p->cr0 & MV_X86_CR0_PG))
		return X86_GP_OFF;
	if (p->efer & MV_X86_EFER_LMA)
		return (p->cr4 & MV_X86_CR4_LA57) ? X86_GP_5L : X86_GP_4L;
	return (p->cr4 & MV_X86_CR4_PAE) ? X86_GP_PAE : X86_GP_32;
}

unsigned x86_gp_maxphy(const mv_x86_paging *p)
{
	unsigned m = p->maxphyaddr ? p->maxphyaddr : DEFAULT_MAXPHY;

	return m >= MIN_MAXPHY && m <= DEFAULT_MAXPHY ? m : 0;
}

int x86_gp_decode(const mv_x86_paging *p, x86_gp_geom *g)
{
	static const int top[] = {
		[X86_GP_OFF] = 0, [X86_GP_32] = 2, [X86_GP_PAE] = 3, [X86_GP_4L] = 4, [X86_GP_5L] = 5,
	};
	bool lma = p->efer & MV_X86_EFER_LMA;

	/* EFER.LMA = 1 only with CR0.PG = 1 and CR4.PAE = 1 (SDM 4.1.2). */
	if (lma && (!(p->cr0 & MV_X86_CR0_PG) || !(p->cr4 & MV_X86_CR4_PAE)))
		return -EINVAL;
	g->maxphy = x86_gp_maxphy(p);
	if (!g->maxphy)
		return -EINVAL;
	g->mode = decode_mode(p);
	g->top = top[g->mode];
	g->wide = g->mode != X86_GP_32;
	/* 32-bit entries have no XD bit: NXE changes nothing there (SDM 4.6.2). */
	g->nxe = g->wide && (p->efer & MV_X86_EFER_NXE);
	g->pse = g->mode == X86_GP_32 && (p->cr4 & MV_X86_CR4_PSE);
	return 0;
}

uint64_t x86_gp_entry_gpa(const x86_gp_geom *g, uint64_t table, uint64_t gva, int level)
{
	unsigned size = g->wide ? 8 : 4;
	uint64_t nr = g->wide ? 512 : 1024;

	return table + ((gva >> x86_gp_shift(g, level)) % nr) * size;
}

uint64_t x86_gp_root(const x86_gp_geom *g, uint64_t cr3)
{
	/*
	 * 32-bit paging: CR3[31:12]; 4/5-level: CR3[M-1:12] (Tables 4-3, 4-12).
	 * The other bits are flags, a PCID, or bits MOV to CR3 refuses.
	 */
	unsigned hi = g->mode == X86_GP_32 ? 31 : g->maxphy - 1;

	return cr3 & x86_gp_bits(hi, 12);
}

bool x86_gp_is_leaf(const x86_gp_geom *g, int level, uint64_t entry)
{
	if (level == 1)
		return true;
	if (!(entry & MV_X86_PTE_PS))
		return false;
	switch (g->mode) {
	case X86_GP_32:
		return level == 2 && g->pse;   /* CR4.PSE = 0: PS is ignored (Table 4-5) */
	case X86_GP_PAE:
		return level == 2;
	default:
		return level == 2 || level == 3; /* PS in a PML4E / PML5E is reserved */
	}
}

/* 32-bit paging (SDM 4.3, Table 4-4): only a 4 MiB PDE has reserved bits, 21 and 20:(M-19). */
static uint64_t rsvd_32(const x86_gp_geom *g, int level, bool leaf)
{
	unsigned m = g->maxphy < PSE36_MAXPHY ? g->maxphy : PSE36_MAXPHY;

	if (level != 2 || !leaf)
		return 0;
	return x86_gp_bits(21, m - 19);
}

uint64_t x86_gp_rsvd(const x86_gp_geom *g, int level, bool leaf)
{
	uint64_t r;

	if (g->mode == X86_GP_32)
		return rsvd_32(g, level, leaf);
	/* PAE entries reserve 62:M (Tables 4-9 to 4-11); 4/5-level 51:M, 62:52 ignored. */
	if (g->mode == X86_GP_PAE)
		r = x86_gp_bits(62, g->maxphy);
	else
		r = g->maxphy < 52 ? x86_gp_bits(51, g->maxphy) : 0;
	if (!g->nxe)
		r |= MV_X86_PTE_XD;
	if (level >= 4)
		r |= MV_X86_PTE_PS;            /* PML4E / PML5E bit 7 (Tables 4-14, 4-15) */
	else if (leaf && level > 1)
		r |= x86_gp_bits(x86_gp_shift(g, level) - 1, 13); /* between PAT (12) and the address */
	return r;
}

uint64_t x86_gp_table(const x86_gp_geom *g, uint64_t entry)
{
	if (!g->wide)
		return entry & x86_gp_bits(31, 12);
	return entry & x86_gp_bits(g->maxphy - 1, 12);
}

uint64_t x86_gp_page(const x86_gp_geom *g, int level, uint64_t entry)
{
	if (level == 1)
		return x86_gp_table(g, entry);
	if (!g->wide)   /* 4 MiB: bits 31:22, and 39:32 from 20:13 (PSE-36) */
		return (entry & x86_gp_bits(31, 22)) | (((entry >> 13) & 0xff) << 32);
	return entry & x86_gp_bits(g->maxphy - 1, x86_gp_shift(g, level));
}
