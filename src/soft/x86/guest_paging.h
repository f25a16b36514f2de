/*
 * The guest paging modes of SDM Vol. 3A ch. 4 as the modules of the x86
 * guest walk share them: guest_paging_format.c (mode decoding, entry
 * formats: index bits, reserved bits, addresses), guest_paging_rights.c
 * (access rights and the #PF error code), guest_paging_pae.c (the PDPTE
 * registers) and guest_paging.c (the walk, accessed and dirty flags).
 *
 * Levels are numbered as the SDM's tables are nested: 1 = PTE, 2 = PDE,
 * 3 = PDPTE, 4 = PML4E, 5 = PML5E.
 */
#ifndef MV_SOFT_X86_GUEST_PAGING_H
#define MV_SOFT_X86_GUEST_PAGING_H

#include "memvirt/soft_x86.h"

typedef enum x86_gp_mode {
	X86_GP_OFF,     /* CR0.PG = 0 */
	X86_GP_32,      /* 32-bit paging (SDM 4.3) */
	X86_GP_PAE,     /* PAE paging (SDM 4.4) */
	X86_GP_4L,      /* 4-level paging (SDM 4.5) */
	X86_GP_5L,      /* 5-level paging (SDM 4.5) */
} x86_gp_mode;

/* One walk's view of the paging registers. */
typedef struct x86_gp_geom {
	x86_gp_mode mode;
	int top;               /* level of the first entry read from memory */
	bool wide;             /* 8-byte entries, 9 index bits per level (else 4-byte, 10) */
	bool nxe;              /* XD is execute-disable (EFER.NXE in PAE / 4-level / 5-level) */
	bool pse;              /* 32-bit paging: PS in a PDE maps 4 MiB (CR4.PSE) */
	unsigned maxphy;       /* MAXPHYADDR, 32..52 */
} x86_gp_geom;

/* paging->maxphyaddr resolved (0 = 52), or 0 when outside 32..52. */
unsigned x86_gp_maxphy(const mv_x86_paging *p);
/* Decode @p: 0, or -EINVAL for a state the processor cannot be in (see mv_x86_guest_walk). */
int x86_gp_decode(const mv_x86_paging *p, x86_gp_geom *g);

/* Bits [hi:lo] set (hi >= lo, both <= 63). */
static inline uint64_t x86_gp_bits(unsigned hi, unsigned lo)
{
	return (~0ull >> (63 - hi)) & (~0ull << lo);
}

/* log2 of the region one entry of @level maps (12 for a PTE). */
static inline unsigned x86_gp_shift(const x86_gp_geom *g, int level)
{
	return 12 + (g->wide ? 9u : 10u) * (unsigned)(level - 1);
}

/* GPA of the entry of @level for @gva in the table at @table. */
uint64_t x86_gp_entry_gpa(const x86_gp_geom *g, uint64_t table, uint64_t gva, int level);
/* GPA of the top-level table (not PAE, whose top is the PDPTE registers). */
uint64_t x86_gp_root(const x86_gp_geom *g, uint64_t cr3);
/* Does the present @entry of @level map a page (PS honoured at this level)? */
bool x86_gp_is_leaf(const x86_gp_geom *g, int level, uint64_t entry);
/* The bits of an entry of @level that must be 0 (@leaf: it maps a page). */
uint64_t x86_gp_rsvd(const x86_gp_geom *g, int level, bool leaf);
/* The table address in a non-leaf entry. */
uint64_t x86_gp_table(const x86_gp_geom *g, uint64_t entry);
/* The page base address in a leaf @entry of @level. */
uint64_t x86_gp_page(const x86_gp_geom *g, int level, uint64_t entry);

/* The reserved bits of a PAE PDPTE (SDM Table 4-8): 2:1, 8:5, 63:MAXPHYADDR. */
uint64_t x86_gp_pdpte_rsvd(const x86_gp_geom *g);
/*
 * The PDPTE register for @gva (SDM 4.4.2): 0 with the page directory's
 * GPA in *pd, 1 when not present, -EINVAL when present with a reserved bit
 * (the processor refuses to load such a PDPTE).
 */
int x86_gp_pdpte(const x86_gp_geom *g, const mv_x86_paging *p, uint64_t gva, uint64_t *pd);

/* W/R, U/S and I/D of the error code for @acc at @cpl (SDM 4.7). */
uint64_t x86_gp_access_pferr(const mv_x86_paging *p, mv_x86_acc acc, unsigned cpl);

/*
 * Read the entry at @gpa (8-byte aligned for wide entries, 4-byte for
 * 32-bit paging) through @ops: 0 with *entry and the aligned 8 bytes
 * holding it in *raw, a positive stop or a negative errno.
 */
int x86_gp_read(const x86_gp_geom *g, const mv_x86_pt_ops *ops, void *arg, uint64_t gpa,
		uint64_t *entry, uint64_t *raw);
/*
 * A paging-structure access to @gpa returned @rc: positive (EPT stopped
 * it) -> w->ept_stop and 0; negative -> @rc. @write: it was an A/D update.
 */
int x86_gp_stop(mv_x86_walk *w, uint64_t gpa, int rc, bool write);

#endif
