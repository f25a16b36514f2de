/*
 * The CPU's translation of one linear address for the x86 soft vCPU, as a
 * processor in VMX non-root operation with EPT performs it (SDM Vol. 3C
 * 28.2 "The Extended Page Table Mechanism"):
 *  - the guest's paging (mv_x86_guest_walk; CR0.PG = 0: the linear
 *    address is the GPA) reads every paging-structure entry, and writes
 *    every accessed / dirty flag, at its GPA through EPT;
 *  - then EPT translates the final GPA for the access (R for a read, W for
 *    a write, X for a fetch).
 * An EPT entry that is present (bits 2:0 not 000b) but misconfigured ends
 * the access with an EPT misconfiguration (28.2.3.1); a non-present entry
 * or missing rights with an EPT violation (28.2.3.2), whose exit
 * qualification (Vol. 3C 27.2.1, Table 27-7) holds the access type, the
 * AND of the R/W/X bits of every EPT entry used (0 when one was not
 * present), and whether the GPA is the translation of the linear address
 * (GVA_TRANSLATED) or a paging-structure access (GVA_VALID alone).
 *
 * With EPT accessed and dirty flags on (EPTP[6]), paging-structure
 * accesses count as writes for EPT (28.2.3.2, 28.2.4): they need W, a
 * violation reports both data read and data write, and the dirty flag of
 * the EPT entry mapping the guest table is set. Accessed flags are set in
 * every EPT entry the translation uses, the dirty flag in the final entry
 * of a write. An A/D update of a guest entry is a read-modify-write; with
 * EPT A/D off its violation reports a data write only (bit 0 is
 * implementation-specific for read-modify-writes, Table 27-7).
 *
 * Without mode-based execute control, X is the execute right at every
 * CPL and bit 6 of the qualification stays 0; bits 9-11 (advanced
 * information) are 0.
 */
#include "soft/x86/x86_access.h"

#include <errno.h>

/* The EPT translation of one GPA for one access. */
typedef struct ept_req {
	uint64_t gpa;
	unsigned need;                /* MV_EPT_R / W / X */
	uint64_t acc;                 /* MV_EPT_VIOL_ACC_* reported on a violation */
	bool translated;              /* the final GPA (GVA_TRANSLATED) rather than a table */
	uint64_t gva;
} ept_req;

/* What the EPT walk found for a GPA. */
typedef struct ept_walk {
	mv_pte leaf;
	mv_pte *ptep;
	int level;
	unsigned tables;              /* AND of the R/W/X bits of the tables above the leaf */
	bool ad;
	bool misconfig;               /* a table entry on the way is misconfigured */
} ept_walk;

/* Set @bits in the entry at @ptep if it still holds @old; false when it changed. */
static bool ept_set_bits(mv_pte *ptep, mv_pte old, mv_pte bits)
{
	if ((old & bits) == bits)
		return true;
	return __atomic_compare_exchange_n(ptep, &old, old | bits, false, __ATOMIC_RELAXED,
					   __ATOMIC_RELAXED);
}

/* Tables: collect their rights and mark them accessed; the first non-table entry ends the walk. */
static mv_pgt_result ept_visit(const mv_pgt_ctx *ctx, mv_pgt_visit visit)
{
	ept_walk *w = ctx->arg;

	if (visit == MV_PGT_VISIT_TABLE_PRE) {
		if (mv_ept_is_misconfig(ctx->old, ctx->level)) {
			w->misconfig = true;
			return MV_PGT_STOP;
		}
		w->tables &= (unsigned)(ctx->old & MV_EPT_RWX);
		/* A table entry that changed meanwhile is walked through as it was read. */
		if (w->ad)
			ept_set_bits(ctx->ptep, ctx->old, MV_EPT_A);
		return MV_PGT_OK;
	}
	w->leaf = ctx->old;
	w->ptep = ctx->ptep;
	w->level = ctx->level;
	return MV_PGT_STOP;
}

/* The leaf entry for @gpa; leaf 0 when the GPA is beyond the EPT's input size. */
static void ept_walk_gpa(mv_ept *ept, uint64_t gpa, ept_walk *w)
{
	mv_pgt_walker walker = {
		.cb = ept_visit,
		.arg = w,
		.flags = MV_PGT_VISIT_LEAF | MV_PGT_VISIT_TABLE_PRE | MV_PGT_WALK_SHARED,
	};

	*w = (ept_walk){ .tables = MV_EPT_RWX, .ad = ept->ad, .level = ept->pgt.start_level };
	if (mv_pgt_walk(&ept->pgt, gpa, 1, &walker) != MV_PGT_STOP)
		w->leaf = 0;
}

static void ept_violation(const ept_req *rq, unsigned rights, x86_xfault *f)
{
	f->kind = X86_XF_VIOLATION;
	f->gpa = rq->gpa;
	f->gva = rq->gva;
	f->qual = rq->acc | MV_EPT_VIOL_GVA_VALID |
		  (rq->translated ? MV_EPT_VIOL_GVA_TRANSLATED : 0) |
		  (rights & MV_EPT_R ? MV_EPT_VIOL_READABLE : 0) |
		  (rights & MV_EPT_W ? MV_EPT_VIOL_WRITABLE : 0) |
		  (rights & MV_EPT_X ? MV_EPT_VIOL_EXECUTABLE : 0);
}

/* What a TLB entry may cache of the EPT rights: W only once the page is dirty (or A/D is off). */
static unsigned ept_tlb_rights(const ept_walk *w, unsigned rights, mv_pte leaf)
{
	unsigned r = 0;

	if (rights & MV_EPT_R)
		r |= MV_TLB_R;
	if ((rights & MV_EPT_W) && (!w->ad || (leaf & MV_EPT_D)))
		r |= MV_TLB_W;
	if (rights & MV_EPT_X)
		r |= MV_TLB_X;
	return r;
}

/*
 * EPT for one access (mmu_lock held for reading): true with *host and
 * *rights (MV_TLB_*); false with a violation or misconfiguration in *f.
 * Setting the accessed / dirty flags races the lock-free fast path and
 * other vCPUs: a leaf that changed before its flags were set is walked
 * again, as the CPU's locked update would see the new value.
 */
static bool ept_access(mv_x86_vm *vm, const ept_req *rq, uint64_t *host, unsigned *rights,
		       x86_xfault *f)
{
	bool write = rq->need & MV_EPT_W;
	ept_walk w;
	unsigned r;
	uint64_t size;

	do {
		ept_walk_gpa(&vm->ept, rq->gpa, &w);
		if (w.misconfig || mv_ept_is_misconfig(w.leaf, w.level)) {
			f->kind = X86_XF_MISCONFIG;
			f->gpa = rq->gpa;
			f->gva = rq->gva;
			return false;
		}
		r = w.tables & (unsigned)(w.leaf & MV_EPT_RWX);
		if (!(w.leaf & MV_EPT_RWX) || (rq->need & ~r)) {
			ept_violation(rq, r, f);
			return false;
		}
	} while (w.ad && !ept_set_bits(w.ptep, w.leaf, MV_EPT_A | (write ? MV_EPT_D : 0)));
	if (w.ad)
		w.leaf |= MV_EPT_A | (write ? MV_EPT_D : 0);
	size = mv_pgt_level_size(&vm->ept.pgt, w.level);
	*host = (w.leaf & MV_EPT_ADDR_MASK & ~(size - 1)) | (rq->gpa & (size - 1));
	*rights = ept_tlb_rights(&w, r, w.leaf);
	return true;
}

/* ---- guest paging-structure accesses through EPT ---- */

typedef struct pt_walk {
	mv_x86_vm *vm;
	uint64_t gva;
	x86_xfault *f;
} pt_walk;

/* A paging-structure access to @gpa; with EPT A/D on it is a write for EPT (28.2.3.2). */
static bool pt_access(pt_walk *pw, uint64_t gpa, bool ad_update, uint64_t *host)
{
	bool as_write = ad_update || pw->vm->ept.ad;
	ept_req rq = {
		.gpa = gpa,
		.need = as_write ? MV_EPT_R | MV_EPT_W : MV_EPT_R,
		.acc = (ad_update && !pw->vm->ept.ad ? 0 : MV_EPT_VIOL_ACC_READ) |
		       (as_write ? MV_EPT_VIOL_ACC_WRITE : 0),
		.gva = pw->gva,
	};
	unsigned rights;

	if (ept_access(pw->vm, &rq, host, &rights, pw->f))
		return true;
	pw->f->table = true;
	pw->f->write = ad_update;
	return false;
}

static int pt_read(void *arg, uint64_t gpa, uint64_t *val)
{
	uint64_t host;

	if (!pt_access(arg, gpa, false, &host))
		return 1;
	*val = __atomic_load_n((uint64_t *)(uintptr_t)host, __ATOMIC_RELAXED);
	return 0;
}

static int pt_cmpxchg(void *arg, uint64_t gpa, uint64_t old, uint64_t new)
{
	uint64_t host;

	if (!pt_access(arg, gpa, true, &host))
		return 1;
	return __atomic_compare_exchange_n((uint64_t *)(uintptr_t)host, &old, new, false,
					   __ATOMIC_RELAXED, __ATOMIC_RELAXED) ? 0 : -EAGAIN;
}

static const mv_x86_pt_ops pt_ops = {
	.read = pt_read,
	.cmpxchg = pt_cmpxchg,
};

/* ---- the translation ---- */

/* The rights the guest's paging grants at @cpl (SDM 4.6); W only once the final entry is dirty. */
static unsigned guest_rights(const mv_x86_paging *p, const mv_x86_walk *w, unsigned cpl)
{
	unsigned r = 0;

	if (!mv_x86_rights_fault(p, w, MV_X86_READ, cpl))
		r |= MV_TLB_R;
	if (w->dirty && !mv_x86_rights_fault(p, w, MV_X86_WRITE, cpl))
		r |= MV_TLB_W;
	if (!mv_x86_rights_fault(p, w, MV_X86_FETCH, cpl))
		r |= MV_TLB_X;
	return r;
}

/* The guest walk's failure as a fault; false when the walk succeeded. */
static bool walk_failed(int rc, const mv_x86_walk *w, x86_xfault *f)
{
	if (rc) {
		f->kind = X86_XF_ERROR;
		f->err = rc;
	} else if (w->guest_pf) {
		f->kind = X86_XF_GUEST_PF;
		f->pferr = w->pferr;
		f->cr2 = w->cr2;
	} else if (w->gp) {
		f->kind = X86_XF_GUEST_GP;
	} else if (w->ept_stop) {
		/* pt_access filled *f; the entry's own GPA (4-byte entries are not rounded down). */
		f->gpa = w->stop_gpa;
	} else {
		return false;
	}
	return true;
}

static const uint64_t acc_qual[] = {
	[MV_X86_READ] = MV_EPT_VIOL_ACC_READ,
	[MV_X86_WRITE] = MV_EPT_VIOL_ACC_WRITE,
	[MV_X86_FETCH] = MV_EPT_VIOL_ACC_INSTR,
};

static const unsigned acc_need[] = {
	[MV_X86_READ] = MV_EPT_R,
	[MV_X86_WRITE] = MV_EPT_W,
	[MV_X86_FETCH] = MV_EPT_X,
};

bool x86_translate(mv_x86_vcpu *vcpu, mv_x86_acc acc, unsigned cpl, uint64_t gva, x86_xlate *out,
		   x86_xfault *f)
{
	pt_walk pw = { .vm = vcpu->vm, .gva = gva, .f = f };
	ept_req rq = { .need = acc_need[acc], .acc = acc_qual[acc], .translated = true, .gva = gva };
	unsigned ept_rights;
	mv_x86_walk w;
	int rc;

	*f = (x86_xfault){ .gva = gva };
	rc = mv_x86_guest_walk(&vcpu->paging, gva, acc, cpl, &pt_ops, &pw, &w);
	if (walk_failed(rc, &w, f))
		return false;
	rq.gpa = w.gpa;
	if (!ept_access(vcpu->vm, &rq, &out->host, &ept_rights, f)) {
		f->write = acc == MV_X86_WRITE;
		return false;
	}
	out->gpa = w.gpa;
	out->rights = guest_rights(&vcpu->paging, &w, cpl) & ept_rights;
	return true;
}
