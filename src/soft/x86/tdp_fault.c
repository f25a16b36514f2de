/*
 * handle_ept_violation -> kvm_mmu_page_fault -> direct_page_fault /
 * kvm_tdp_page_fault (arch/x86/kvm/vmx/vmx.c, mmu/mmu.c, mmu/tdp_mmu.c):
 * map guest RAM after an EPT violation the fast path could not fix.
 *
 * - Order (KVM's): the invalidation sequence is read, then the memslot
 *   (none: MMIO, mmio_spte.c; a write to a read-only slot: MMIO without
 *   caching, KVM's KVM_PFN_ERR_RO_FAULT), then the host page
 *   (__gfn_to_pfn_memslot: poison and missing memory end KVM_RUN, here an
 *   ACT_ERROR sentence), then mmu_lock for reading: the sequence again
 *   (is_page_fault_stale), the level (lpage.c), the install.
 * - Rights (make_spte with ACC_ALL, arch/x86/kvm/mmu/spte.c): read
 *   always; execute unless the leaf is huge and NX huge pages are on;
 *   write when the slot is writable and the host page is too
 *   (HOST_WRITABLE + MMU_WRITABLE, hva_to_pfn's map_writable), whatever
 *   the access: a read or fetch fault gets a writable leaf as well, also
 *   in a dirty-logged slot. make_spte then marks the page dirty because
 *   the leaf is writable (mark_page_dirty_in_slot; 4 KiB only, since
 *   logging forces that level), so a read of a logged page counts as a
 *   write, as in KVM. (arm64 KVM differs: user_mem_abort maps a read
 *   fault read-only while logging.) With A/D the leaf is accessed, and
 *   dirty when writable, from the start.
 * - So two faults of one page at one level build the same leaf (the host
 *   page's writability changes only with an MMU-notifier invalidation,
 *   which makes one of them stale), and a fault over a leaf it did not
 *   build (a split child) only adds rights: a shared install never takes
 *   a right away, and no INVEPT runs under mmu_lock for reading (the
 *   access engine relies on it, access.c x86_try).
 * - Install: a compare-and-swap under mmu_lock for reading. When another
 *   size is in the way (a huge leaf above a 4 KiB target: dirty logging,
 *   NX; a table where a huge leaf goes: the host page became huge) the
 *   map is redone under mmu_lock for writing, where the install splits
 *   the huge leaf or frees the table, and the rmap of the largest page
 *   involved is re-read from the EPT.
 */
#include "soft/soft_fault.h"
#include "soft/soft_notifier.h"
#include "soft/x86/x86_fault.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

/* One fault's decisions (KVM's struct kvm_page_fault). */
typedef struct x86_fault {
	mv_x86_vcpu *vcpu;
	mv_x86_fault_event *ev;
	const mv_memslot *slot;
	uint64_t gfn;
	uint64_t hva;              /* host address of the faulting page */
	uint64_t seq;              /* mmu_invalidate_seq before the host page */
	bool write;
	bool host_writable;        /* hva_to_pfn's *writable */
	x86_level_req lvl;
} x86_fault;

const char *mv_x86_action_name(mv_x86_action a)
{
	static const char *const names[] = {
		[MV_X86_ACT_MAPPED] = "mapped",
		[MV_X86_ACT_FAST] = "fast",
		[MV_X86_ACT_SPURIOUS] = "spurious",
		[MV_X86_ACT_RETRY] = "retry",
		[MV_X86_ACT_MMIO_SPTE] = "mmio-spte",
		[MV_X86_ACT_MMIO] = "mmio",
		[MV_X86_ACT_MMIO_FAST] = "mmio-fast",
		[MV_X86_ACT_ERROR] = "error",
	};

	if ((unsigned)a >= sizeof(names) / sizeof(names[0]))
		return "unknown";
	return names[a];
}

void x86_fault_error(mv_x86_vcpu *vcpu, mv_x86_fault_event *ev, uint64_t hva, int err,
		     const char *why)
{
	snprintf(ev->detail, sizeof(ev->detail), "%s", why);
	ev->action = MV_X86_ACT_ERROR;
	vcpu->exit.reason = HV_EXIT_INTERNAL_ERROR;
	vcpu->exit.internal.suberror = X86_INTERNAL_ERROR_UNEXPECTED;
	vcpu->exit.internal.ndata = 4;
	vcpu->exit.internal.data[0] = ev->exit_qual;
	vcpu->exit.internal.data[1] = ev->gpa;
	vcpu->exit.internal.data[2] = hva;
	vcpu->exit.internal.data[3] = (uint64_t)-err;
}

/*
 * __kvm_faultin_pfn: the host page, writable when the host allows it. KVM
 * maps a read fault writable when the host page already is; the oracle
 * answers "may it be written" by faulting the page in for writing, and a
 * read-only host mapping then maps read-only.
 */
static int x86_faultin(x86_fault *f)
{
	mv_x86_vm *vm = f->vcpu->vm;
	bool ro_slot = f->slot->flags & HV_MEM_READONLY;
	uint64_t gpa = f->gfn << 12;
	char why[sizeof(f->ev->detail)];
	int r;

	f->lvl.host_size = 1ull << 12;
	r = soft_fault_host_page(vm->host, "GPA", gpa, f->hva, !ro_slot, &f->lvl.host_size, why,
				 sizeof(why));
	f->host_writable = !ro_slot && r == 0;
	if (r == -EFAULT && !ro_slot && !f->write)
		r = soft_fault_host_page(vm->host, "GPA", gpa, f->hva, false, &f->lvl.host_size, why,
					 sizeof(why));
	if (r < 0)
		x86_fault_error(f->vcpu, f->ev, f->hva, r, why);
	return r;
}

/*
 * is_page_fault_stale: an invalidation of the gfn started or ended since
 * the sequence was read. A huge leaf also needs no invalidation in
 * progress anywhere in it: KVM reads the host mapping level under
 * mmu_lock, we read it before, from a host range being changed.
 */
static bool x86_fault_stale(const x86_fault *f)
{
	uint64_t pages = x86_level_pages(f->lvl.level);
	uint64_t start = f->gfn & ~(pages - 1);

	return soft_notifier_retry(&f->vcpu->vm->kvm, f->seq, start, start + pages);
}

/* make_spte (see the top for the rights; x86_fault.h). */
mv_pte x86_make_spte(const mv_x86_vm *vm, uint64_t hva, int level, bool host_writable,
		     bool prefetch)
{
	bool exec = level == X86_LEVEL_4K || !vm->cfg.nx_huge_pages;
	unsigned rwx = MV_EPT_R | MV_EPT_W | (exec ? MV_EPT_X : 0);
	uint64_t hpa = hva & ~(x86_level_size(level) - 1);
	mv_pte spte = mv_ept_leaf(hpa, rwx, level, host_writable, vm->ept.ad);

	/* mark_spte_for_access_track: with A/D, a prefetched leaf is not accessed yet. */
	return prefetch ? spte & ~MV_EPT_A : spte;
}

/*
 * Under mmu_lock for writing: install, splitting a larger leaf above
 * (tdp_mmu_split_huge_page: its other pages stay mapped) or replacing a
 * table below (its tables freed), then re-read the rmap of the largest
 * page involved.
 */
static mv_pgt_result x86_map_exclusive(x86_fault *f, uint64_t gpa, mv_pte spte)
{
	mv_x86_vm *vm = f->vcpu->vm;
	int top = f->lvl.level;
	int old_level = X86_LEVEL_4K;
	mv_pte old = 0;
	uint64_t pages, first;
	mv_pgt_result r;

	if (mv_ept_get_leaf(&vm->ept, gpa, &old, &old_level) == MV_PGT_OK && mv_ept_is_present(old) &&
	    old_level < top)
		top = old_level;
	r = mv_ept_install(&vm->ept, gpa, f->lvl.level, spte, 0, NULL);
	pages = x86_level_pages(top);
	first = f->gfn & ~(pages - 1);
	x86_rmap_drop_range(vm, f->slot, first, first + pages);
	return r;
}

/*
 * Shared install, and the exclusive redo when another size is in the way
 * (mmu_lock for reading on entry; held in either mode on return).
 */
static mv_pgt_result x86_map(x86_fault *f, mv_pte *spte_out, mv_pte **sptep)
{
	mv_x86_vm *vm = f->vcpu->vm;
	uint64_t gpa = (f->gfn << 12) & ~(x86_level_size(f->lvl.level) - 1);
	mv_pte spte = x86_make_spte(vm, f->hva, f->lvl.level, f->host_writable, false);
	int level = 0;
	mv_pgt_result r;

	*spte_out = spte;
	*sptep = mv_ept_leaf_ptep(&vm->ept, gpa, &level);
	if (*sptep && level == f->lvl.level && mv_pgt_read(*sptep) == spte)
		return MV_PGT_STOP;     /* RET_PF_SPURIOUS: another vCPU did it */
	r = mv_ept_install(&vm->ept, gpa, f->lvl.level, spte, MV_PGT_WALK_SHARED, NULL);
	if (r == MV_PGT_EXISTS) {
		/* A shared walk never takes a live mapping away: the lock holder may. */
		pthread_rwlock_unlock(&vm->mmu_lock);
		pthread_rwlock_wrlock(&vm->mmu_lock);
		r = x86_fault_stale(f) ? MV_PGT_AGAIN : x86_map_exclusive(f, gpa, spte);
	}
	*sptep = r == MV_PGT_OK ? mv_ept_leaf_ptep(&vm->ept, gpa, &level) : NULL;
	return r;
}

/* What the install did, in @ev and the statistics; a writable page is dirty (if logged). */
static void x86_map_done(x86_fault *f, mv_pgt_result r, mv_pte spte)
{
	mv_x86_vm *vm = f->vcpu->vm;
	mv_x86_fault_event *ev = f->ev;
	char why[sizeof(ev->detail)];

	switch (r) {
	case MV_PGT_OK:
		if (spte & MV_EPT_W)
			x86_mark_page_dirty(f->vcpu, f->slot, f->gfn);
		ev->action = MV_X86_ACT_MAPPED;
		ev->level = f->lvl.level;
		X86_STAT_INC(vm, mapped[f->lvl.level]);
		if (f->lvl.nx_refused)
			X86_STAT_INC(vm, nx_splits);
		break;
	case MV_PGT_STOP:
		ev->action = MV_X86_ACT_SPURIOUS;
		break;
	case MV_PGT_AGAIN:
		ev->action = MV_X86_ACT_RETRY;
		X86_STAT_INC(vm, retries);
		break;
	default:
		snprintf(why, sizeof(why),
			 "mapping guest page at GPA 0x%" PRIx64 " (host 0x%" PRIx64
			 ") in EPT at level %d failed: %s",
			 f->gfn << 12, f->hva, f->lvl.level, mv_pgt_result_name(r));
		x86_fault_error(f->vcpu, ev, f->hva, r == MV_PGT_NOMEM ? -ENOMEM : -EFAULT, why);
	}
}

/* kvm_tdp_mmu_map under mmu_lock: staleness, level, install, rmap, prefetch. */
static void x86_tdp_map(x86_fault *f)
{
	mv_x86_vm *vm = f->vcpu->vm;
	mv_pte spte = 0, *sptep = NULL;
	mv_pgt_result r = MV_PGT_AGAIN;

	pthread_rwlock_rdlock(&vm->mmu_lock);
	x86_fault_level(vm, f->slot, f->gfn, &f->lvl);
	if (!x86_fault_stale(f))
		r = x86_map(f, &spte, &sptep);
	if (r == MV_PGT_OK) {
		x86_rmap_add(f->slot, f->gfn, f->lvl.level, sptep);
		if (f->lvl.level == X86_LEVEL_4K)
			x86_prefetch(f->vcpu, f->slot, f->gfn, sptep);
	}
	pthread_rwlock_unlock(&vm->mmu_lock);
	x86_map_done(f, r, spte);
}

void x86_direct_page_fault(mv_x86_vcpu *vcpu, mv_x86_fault_event *ev, uint64_t pferr)
{
	mv_x86_vm *vm = vcpu->vm;
	x86_fault f = {
		.vcpu = vcpu,
		.ev = ev,
		.gfn = ev->gpa >> 12,
		.write = pferr & MV_PFERR_WRITE,
		.lvl.exec = pferr & MV_PFERR_FETCH,
	};

	if (x86_fast_page_fault(vcpu, ev, pferr))
		return;
	/* Read before the host page: an invalidation after this point is seen under mmu_lock. */
	f.seq = soft_notifier_seq(&vm->kvm);
	f.slot = mv_memslots_find(vm->slots, 0, f.gfn, &vcpu->slot_hint);
	if (!f.slot) {
		x86_noslot_fault(vcpu, ev);
		return;
	}
	if (f.write && (f.slot->flags & HV_MEM_READONLY)) {
		x86_mmio_exit(vcpu, ev, MV_X86_ACT_MMIO);
		return;
	}
	f.hva = mv_memslot_gfn_to_hva(f.slot, f.gfn);
	if (x86_faultin(&f) < 0)
		return;
	if (vm->fault_hook)
		vm->fault_hook(vm->fault_hook_arg, vcpu, ev->gpa);
	x86_tdp_map(&f);
}

/*
 * handle_ept_violation -> kvm_mmu_page_fault: slots_lock is held for
 * reading throughout (KVM's SRCU read side), so the memslot found stays
 * valid up to the install.
 */
void x86_handle_ept_violation(mv_x86_vcpu *vcpu, mv_x86_fault_event *ev)
{
	mv_x86_vm *vm = vcpu->vm;

	ev->pferr = mv_ept_violation_pferr(ev->exit_qual);
	ev->action = MV_X86_ACT_ERROR;
	ev->level = 0;
	ev->detail[0] = '\0';
	X86_STAT_INC(vm, faults);
	pthread_rwlock_rdlock(&vm->slots_lock);
	x86_direct_page_fault(vcpu, ev, ev->pferr);
	pthread_rwlock_unlock(&vm->slots_lock);
}
