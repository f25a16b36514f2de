/*
 * The guest's linear-address translation (SDM Vol. 3A ch. 4) as KVM's
 * FNAME(walk_addr_generic) performs it for a guest whose paging-structure
 * accesses go through EPT: every entry is read, and every accessed /
 * dirty flag written, by a GPA access of the caller (mv_x86_pt_ops).
 *
 * The walk goes down from the top level. A non-present entry ends it with
 * a not-present #PF, a present entry with a reserved bit with an RSVD #PF
 * (reserved bits are not checked in non-present entries, SDM 4.7); the
 * rights of all entries are then checked together (SDM 4.6). Only when
 * the access is allowed are flags set, as KVM's walker does: A in every
 * entry used and D in the final entry for a write (SDM 4.8), top-down,
 * each by one compare-and-swap of the entry as it was read, so an entry
 * that changed meanwhile restarts the walk (update_accessed_dirty_bits).
 * Hardware may do more on a fault (the #PF reference, Vol. 3A 6.15, says a
 * PDE's A flag is set on a protection fault, the PTE's being model
 * specific); this walk sets nothing then. Flags set before an EPT stop on
 * a later A/D write stay set.
 */
#include "soft/x86/guest_paging.h"

#include <errno.h>
#include <string.h>

#define MAX_LEVELS 5
#define WALK_RESTART 1           /* walk_once: an A/D compare-and-swap lost a race */

/* An entry the walk used: where it is and the aligned 8 bytes it was read from. */
typedef struct used_entry {
	uint64_t gpa;
	uint64_t raw;
} used_entry;

/* The bit offset of a 4-byte entry inside its aligned 8 bytes (0 for 8-byte entries). */
static unsigned entry_shift(const x86_gp_geom *g, uint64_t gpa)
{
	return g->wide ? 0 : (unsigned)(gpa & 4) * 8;
}

int x86_gp_read(const x86_gp_geom *g, const mv_x86_pt_ops *ops, void *arg, uint64_t gpa,
		uint64_t *entry, uint64_t *raw)
{
	int rc = ops->read(arg, gpa & ~7ull, raw);

	if (rc)
		return rc;
	*entry = g->wide ? *raw : (uint32_t)(*raw >> entry_shift(g, gpa));
	return 0;
}

int x86_gp_stop(mv_x86_walk *w, uint64_t gpa, int rc, bool write)
{
	if (rc < 0)
		return rc;
	memset(w, 0, sizeof(*w));
	w->ept_stop = true;
	w->stop_write = write;
	w->stop_gpa = gpa;
	w->stop_rc = rc;
	return 0;
}

/* A #PF for the guest: @cause (0, P, or RSVD | P) and the access's bits. */
static int guest_pf(mv_x86_walk *w, const mv_x86_paging *p, uint64_t gva, mv_x86_acc acc,
		    unsigned cpl, uint64_t cause)
{
	memset(w, 0, sizeof(*w));
	w->guest_pf = true;
	w->pferr = cause | x86_gp_access_pferr(p, acc, cpl);
	w->cr2 = gva;
	return 0;
}

/*
 * Set A in every used entry and D in the last one for a write: 0 (done or
 * w->ept_stop), WALK_RESTART, or a negative errno.
 */
static int set_accessed_dirty(const x86_gp_geom *g, const used_entry *used, int n, bool write,
			      const mv_x86_pt_ops *ops, void *arg, mv_x86_walk *w)
{
	for (int i = 0; i < n; i++) {
		unsigned shift = entry_shift(g, used[i].gpa);
		uint64_t set = MV_X86_PTE_A | (i == n - 1 && write ? MV_X86_PTE_D : 0);
		uint64_t old = used[i].raw, new = old | (set << shift);
		int rc;

		if (new == old)
			continue;
		rc = ops->cmpxchg(arg, used[i].gpa & ~7ull, old, new);
		if (rc == -EAGAIN)
			return WALK_RESTART;
		if (rc)
			return x86_gp_stop(w, used[i].gpa, rc, true);
	}
	w->dirty = w->dirty || write;
	return 0;
}

/* The first table of the walk and its level: 0, or a PAE PDPTE that stops it (1 / -EINVAL). */
static int walk_start(const x86_gp_geom *g, const mv_x86_paging *p, uint64_t gva, uint64_t *table,
		      int *level)
{
	if (g->mode != X86_GP_PAE) {
		*table = x86_gp_root(g, p->cr3);
		*level = g->top;
		return 0;
	}
	*level = 2;
	return x86_gp_pdpte(g, p, gva, table);
}

/* One walk: 0 with *w filled, WALK_RESTART, or a negative errno. */
static int walk_once(const x86_gp_geom *g, const mv_x86_paging *p, uint64_t gva, mv_x86_acc acc,
		     unsigned cpl, const mv_x86_pt_ops *ops, void *arg, mv_x86_walk *w)
{
	used_entry used[MAX_LEVELS];
	uint64_t table, e = 0, size;
	int level, n = 0, rc;

	memset(w, 0, sizeof(*w));
	w->writable = w->user = true;
	rc = walk_start(g, p, gva, &table, &level);
	if (rc)
		return rc > 0 ? guest_pf(w, p, gva, acc, cpl, 0) : rc;
	for (;; level--) {
		uint64_t gpa = x86_gp_entry_gpa(g, table, gva, level);
		bool leaf;

		rc = x86_gp_read(g, ops, arg, gpa, &e, &used[n].raw);
		if (rc)
			return x86_gp_stop(w, gpa, rc, false);
		if (!(e & MV_X86_PTE_P))
			return guest_pf(w, p, gva, acc, cpl, 0);
		leaf = x86_gp_is_leaf(g, level, e);
		if (e & x86_gp_rsvd(g, level, leaf))
			return guest_pf(w, p, gva, acc, cpl, MV_PFERR_RSVD | MV_PFERR_PRESENT);
		used[n++].gpa = gpa;
		w->writable = w->writable && (e & MV_X86_PTE_RW);
		w->user = w->user && (e & MV_X86_PTE_US);
		w->nx = w->nx || (g->nxe && (e & MV_X86_PTE_XD));
		if (leaf)
			break;
		table = x86_gp_table(g, e);
	}
	if (mv_x86_rights_fault(p, w, acc, cpl))
		return guest_pf(w, p, gva, acc, cpl, MV_PFERR_PRESENT);
	size = 1ull << x86_gp_shift(g, level);
	w->gpa = x86_gp_page(g, level, e) | (gva & (size - 1));
	w->page_size = size;
	w->dirty = e & MV_X86_PTE_D;
	return set_accessed_dirty(g, used, n, acc == MV_X86_WRITE, ops, arg, w);
}

/* Paging off: the linear address is the physical address, no rights apply. */
static int walk_off(uint64_t gva, mv_x86_walk *w)
{
	memset(w, 0, sizeof(*w));
	w->gpa = gva;
	w->page_size = 1ull << 12;
	w->writable = w->user = w->dirty = true;
	return 0;
}

/* Is @gva a valid linear address of the mode: -EINVAL, 1 (non-canonical: #GP) or 0? */
static int check_linear(const x86_gp_geom *g, uint64_t gva)
{
	unsigned bits;

	if (g->mode == X86_GP_32 || g->mode == X86_GP_PAE)
		return gva >> 32 ? -EINVAL : 0;
	/* Canonical: bits 63:N-1 all equal, N = 48 or 57 (SDM Vol. 1 3.3.7.1). */
	bits = g->mode == X86_GP_5L ? 57 : 48;
	return (uint64_t)((int64_t)(gva << (64 - bits)) >> (64 - bits)) != gva;
}

int mv_x86_guest_walk(const mv_x86_paging *paging, uint64_t gva, mv_x86_acc acc, unsigned cpl,
		      const mv_x86_pt_ops *ops, void *arg, mv_x86_walk *w)
{
	x86_gp_geom g;
	int rc;

	if (cpl > 3 || acc > MV_X86_FETCH || x86_gp_decode(paging, &g))
		return -EINVAL;
	if (g.mode == X86_GP_OFF)
		return walk_off(gva, w);
	rc = check_linear(&g, gva);
	if (rc < 0)
		return rc;
	if (rc) {
		memset(w, 0, sizeof(*w));
		w->gp = true;
		return 0;
	}
	for (int i = 0; i <= MV_X86_WALK_MAX_RESTARTS; i++) {
		rc = walk_once(&g, paging, gva, acc, cpl, ops, arg, w);
		if (rc != WALK_RESTART)
			return rc;
	}
	return -EAGAIN;
}
