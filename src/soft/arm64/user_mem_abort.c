/*
 * user_mem_abort (arch/arm64/kvm/mmu.c): map guest RAM after a translation
 * or permission fault.
 *
 * - Size: the host backing around the page (hugetlb / THP / 4 KiB, from
 *   mv_soft_host_page) as long as the slot can hold a block there
 *   (fault_supports_stage2_huge_mapping); dirty logging forces pages.
 * - Rights: read always; write unless the slot is read-only, and while
 *   logging only on a write fault (which marks the page dirty); execute
 *   only on an instruction fetch (XN otherwise).
 * - Memory type: always Normal Write-Back. KVM maps VM_PFNMAP / IO pages as
 *   Device; host memory behind a soft slot is always ordinary RAM (an
 *   anonymous, file or hugetlbfs mapping of this process), so that case
 *   does not arise here.
 * - A permission fault on a leaf of the size we would map only relaxes its
 *   rights; otherwise the mapping is installed.
 * - MMU-notifier races: the invalidation sequence is read before the host
 *   page is resolved and checked again under mmu_lock (RETRY when raced).
 */
#include "soft/arm64/a64_abort.h"
#include "soft/arm64/a64_dirty.h"
#include "soft/soft_fault.h"
#include "soft/soft_notifier.h"

#include <inttypes.h>

#define A64_SZ_4K (1ull << 12)
#define A64_SZ_2M (1ull << 21)
#define A64_SZ_1G (1ull << 30)

/* One fault's decisions, shared by the steps below. */
typedef struct a64_uma {
	const a64_abort *a;
	const mv_memslot *slot;
	uint64_t hva;            /* host address of the faulting page */
	uint64_t size;           /* mapping size chosen */
	unsigned prot;           /* MV_S2_PROT_* */
	bool logging;
	bool exec_fault;
	bool is_perm;
} a64_uma;

/*
 * The mapping size for a host mapping of @host_size: the largest of 1 GiB,
 * 2 MiB, 4 KiB not above it that the slot allows (the 2 MiB blocks of a
 * 1 GiB hugetlb page are contiguous too); 1 GiB blocks need a stage 2
 * that starts at level 1 or above (KVM: the PUD is not folded). Logging
 * forces pages. A
 * permission fault on a block whose host range reports plain pages keeps
 * the block's size (KVM: the fault granule), so it is relaxed, not split.
 */
static uint64_t a64_mapping_size(const a64_uma *u, const mv_s2_config *cfg, uint64_t host_size,
				 uint64_t fault_granule)
{
	if (u->logging)
		return A64_SZ_4K;
	if (host_size >= A64_SZ_1G && cfg->start_level <= 1 &&
	    soft_slot_allows_block(u->slot, u->a->ipa >> 12, A64_SZ_1G))
		return A64_SZ_1G;
	if (host_size >= A64_SZ_2M && soft_slot_allows_block(u->slot, u->a->ipa >> 12, A64_SZ_2M))
		return A64_SZ_2M;
	if (u->is_perm && host_size == A64_SZ_4K && fault_granule > A64_SZ_4K)
		return fault_granule;
	return A64_SZ_4K;
}

/* Stage-2 level whose entries map @size (4 KiB granule). */
static int a64_size_level(uint64_t size)
{
	return size == A64_SZ_1G ? 1 : size == A64_SZ_2M ? 2 : 3;
}

/*
 * Install the block around the fault. A shared walk never breaks a live
 * entry, so when another size already sits there (a block being split
 * for logging, pages being replaced by a THP block) the map is redone
 * under mmu_lock for writing with break-before-make, after checking the
 * invalidation sequence again.
 */
static mv_pgt_result a64_uma_map(mv_a64_vm *vm, const a64_uma *u, uint64_t seq)
{
	uint64_t ipa = u->a->ipa & ~(u->size - 1);
	uint64_t hva = u->hva & ~(u->size - 1);
	uint64_t attr = mv_s2_prot_attr(u->prot);
	int level = a64_size_level(u->size);
	mv_pgt_result r;

	pthread_rwlock_rdlock(&vm->mmu_lock);
	r = MV_PGT_AGAIN;
	if (!soft_notifier_retry(&vm->kvm, seq, ipa >> 12, (ipa + u->size) >> 12))
		r = mv_s2_map(&vm->s2, ipa, u->size, hva, attr, level, MV_PGT_WALK_SHARED);
	pthread_rwlock_unlock(&vm->mmu_lock);
	if (r != MV_PGT_EXISTS)
		return r;
	pthread_rwlock_wrlock(&vm->mmu_lock);
	r = MV_PGT_AGAIN;
	if (!soft_notifier_retry(&vm->kvm, seq, ipa >> 12, (ipa + u->size) >> 12))
		r = mv_s2_map(&vm->s2, ipa, u->size, hva, attr, level, 0);
	pthread_rwlock_unlock(&vm->mmu_lock);
	return r;
}

/* kvm_pgtable_stage2_relax_perms on the leaf that faulted. */
static mv_pgt_result a64_uma_relax(mv_a64_vm *vm, const a64_uma *u, uint64_t seq)
{
	uint64_t ipa = u->a->ipa & ~(u->size - 1);
	mv_pgt_result r = MV_PGT_AGAIN;

	pthread_rwlock_rdlock(&vm->mmu_lock);
	if (!soft_notifier_retry(&vm->kvm, seq, ipa >> 12, (ipa + u->size) >> 12))
		r = mv_s2_relax_perms(&vm->s2, u->a->ipa, u->prot, MV_PGT_WALK_SHARED);
	pthread_rwlock_unlock(&vm->mmu_lock);
	return r;
}

/* Install or relax, and say what happened in @ev. */
static void a64_uma_commit(mv_a64_vcpu *vcpu, const a64_uma *u, uint64_t seq, uint64_t fault_granule,
			   mv_a64_abort_event *ev)
{
	bool relax = u->is_perm && u->size == fault_granule;
	mv_pgt_result r;

	r = relax ? a64_uma_relax(vcpu->vm, u, seq) : a64_uma_map(vcpu->vm, u, seq);
	switch (r) {
	case MV_PGT_OK:
		if (u->prot & MV_S2_PROT_W)
			a64_mark_page_dirty(vcpu, u->slot, u->a->ipa >> 12);
		ev->action = relax ? MV_A64_ACT_RELAXED : MV_A64_ACT_MAPPED;
		ev->map_size = relax ? 0 : u->size;
		break;
	case MV_PGT_AGAIN:   /* lost to another vCPU or to an invalidation */
	case MV_PGT_NOENT:   /* the leaf to relax was zapped meanwhile */
		ev->action = MV_A64_ACT_RETRY;
		break;
	default:
		a64_abort_error(vcpu, u->a, ev, A64_INTERNAL_ERROR_UNEXPECTED,
				"mapping guest page at IPA 0x%" PRIx64 " (host 0x%" PRIx64
				") in stage 2 failed: %s",
				u->a->ipa, u->hva, mv_pgt_result_name(r));
	}
}

void a64_user_mem_abort(mv_a64_vcpu *vcpu, const a64_abort *a, const mv_memslot *slot,
			mv_a64_abort_event *ev)
{
	mv_a64_vm *vm = vcpu->vm;
	uint64_t fault_granule = mv_pgt_level_size(&vm->s2.pgt, a64_fsc_level(a->fsc));
	uint64_t seq, host_size = A64_SZ_4K;
	char why[sizeof(ev->detail)];
	bool writable;
	a64_uma u = {
		.a = a,
		.slot = slot,
		.hva = mv_memslot_gfn_to_hva(slot, a->ipa >> 12),
		.logging = (slot->flags & HV_MEM_LOG_DIRTY_PAGES) && !(slot->flags & HV_MEM_READONLY),
		.exec_fault = a->is_iabt && !a->s1ptw,
		.is_perm = a64_fsc_type(a->fsc) == MV_FSC_PERM,
	};
	int r;

	if (u.is_perm && !a->write_fault && !u.exec_fault) {
		a64_abort_error(vcpu, a, ev, A64_INTERNAL_ERROR_UNEXPECTED,
				"unexpected stage-2 read permission fault at IPA 0x%" PRIx64, a->ipa);
		return;
	}
	/* Read before the host page: an invalidation after this point is seen under mmu_lock. */
	seq = soft_notifier_seq(&vm->kvm);
	r = soft_fault_host_page(vm->host, "IPA", a->ipa, u.hva, a->write_fault, &host_size, why,
				 sizeof(why));
	if (r < 0) {
		a64_abort_error(vcpu, a, ev, A64_INTERNAL_ERROR_UNEXPECTED, "%s", why);
		return;
	}
	u.size = a64_mapping_size(&u, &vm->s2.cfg, host_size, fault_granule);
	writable = !(slot->flags & HV_MEM_READONLY) && (!u.logging || a->write_fault);
	u.prot = MV_S2_PROT_R | (writable ? MV_S2_PROT_W : 0) | (u.exec_fault ? MV_S2_PROT_X : 0);
	if (vm->fault_hook)
		vm->fault_hook(vm->fault_hook_arg, vcpu, a->ipa);
	a64_uma_commit(vcpu, &u, seq, fault_granule, ev);
}
