/*
 * MMIO SPTEs (arch/x86/kvm/mmu/mmu.c, spte.c): a guest frame without a
 * memslot is cached in EPT as a deliberately misconfigured entry carrying
 * the memslot generation, so the next access to it exits with an EPT
 * misconfiguration that needs no memslot lookup (handle_ept_misconfig ->
 * handle_mmio_page_fault).
 *
 * - kvm_handle_noslot_fault: beyond the host's MAXPHYADDR nothing can be
 *   installed (the entry could not hold the gfn): emulate without caching.
 *   Otherwise a 4 KiB MMIO SPTE with the current generation.
 * - handle_mmio_page_fault: an MMIO SPTE of the current generation is
 *   MMIO at once. One of an older generation may be stale (the memslots
 *   changed since: maybe there is RAM now), so the fault goes down the
 *   ordinary slow path, which installs over it (KVM's RET_PF_INVALID; the
 *   error code is RSVD alone, so the slow path treats it as a read). An
 *   entry that is no longer an MMIO SPTE was zapped meanwhile: retry.
 *   Any other misconfiguration is a bug: KVM warns and KVM_RUN fails.
 * - Generations wrap at 19 bits; a memslot change that wraps them to 0
 *   must zap every MMIO SPTE (kvm_mmu_invalidate_mmio_sptes), or one
 *   2^19 changes old would look current. KVM has no list of them and zaps
 *   everything (kvm_mmu_zap_all_fast); so does this VM, so that the rest
 *   of the EPT behaves after a wrap as KVM's (every page faults again).
 */
#include "soft/x86/x86_fault.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

#define X86_MMIO_GEN_MASK ((1ull << MV_SPTE_MMIO_GEN_BITS) - 1)

void x86_mmio_exit(mv_x86_vcpu *vcpu, mv_x86_fault_event *ev, mv_x86_action action)
{
	vcpu->exit.reason = HV_EXIT_MMIO;
	vcpu->exit.mmio.gpa = ev->gpa;
	vcpu->exit.mmio.len = ev->len;
	vcpu->exit.mmio.is_write = ev->is_write;
	ev->action = action;
}

void x86_noslot_fault(mv_x86_vcpu *vcpu, mv_x86_fault_event *ev)
{
	mv_x86_vm *vm = vcpu->vm;
	uint64_t gfn = ev->gpa >> 12;
	char why[sizeof(ev->detail)];
	mv_pgt_result r;
	mv_pte spte;

	if (gfn > vm->max_gfn) {
		x86_mmio_exit(vcpu, ev, MV_X86_ACT_MMIO);
		return;
	}
	spte = mv_ept_mmio_spte(gfn, mv_memslots_generation(vm->slots));
	pthread_rwlock_rdlock(&vm->mmu_lock);
	r = mv_ept_install(&vm->ept, gfn << 12, X86_LEVEL_4K, spte, MV_PGT_WALK_SHARED, NULL);
	pthread_rwlock_unlock(&vm->mmu_lock);
	if (r == MV_PGT_OK) {
		X86_STAT_INC(vm, mmio_sptes);
		x86_mmio_exit(vcpu, ev, MV_X86_ACT_MMIO_SPTE);
	} else if (r == MV_PGT_AGAIN) {
		X86_STAT_INC(vm, retries);
		ev->action = MV_X86_ACT_RETRY;
	} else {
		snprintf(why, sizeof(why), "installing the MMIO SPTE of GPA 0x%" PRIx64 " failed: %s",
			 gfn << 12, mv_pgt_result_name(r));
		x86_fault_error(vcpu, ev, 0, r == MV_PGT_NOMEM ? -ENOMEM : -EFAULT, why);
	}
}

void x86_mmio_gen_changed(mv_x86_vm *vm)
{
	if (mv_memslots_generation(vm->slots) & X86_MMIO_GEN_MASK)
		return;
	mv_ept_zap(&vm->ept, 0, (vm->max_gfn + 1) << 12);
	/* Only address space 0 is mapped (SMM is not modelled). */
	for (size_t i = 0; i < mv_memslots_count(vm->slots, 0); i++) {
		const mv_memslot *s = mv_memslots_at(vm->slots, 0, i);

		x86_rmap_drop_range(vm, s, s->base_gfn, s->base_gfn + s->npages);
	}
	X86_STAT_INC(vm, mmio_gen_wraps);
}

/* handle_mmio_page_fault, with slots_lock held for reading. */
static void x86_mmio_page_fault(mv_x86_vcpu *vcpu, mv_x86_fault_event *ev)
{
	mv_x86_vm *vm = vcpu->vm;
	uint64_t gen = mv_memslots_generation(vm->slots) & X86_MMIO_GEN_MASK;
	char why[sizeof(ev->detail)];
	mv_pte spte = 0;
	int level = 0;

	pthread_rwlock_rdlock(&vm->mmu_lock);
	mv_ept_get_leaf(&vm->ept, ev->gpa, &spte, &level);
	pthread_rwlock_unlock(&vm->mmu_lock);
	if (mv_ept_is_mmio_spte(spte)) {
		if (mv_ept_mmio_spte_gen(spte) == gen) {
			X86_STAT_INC(vm, mmio_fast);
			x86_mmio_exit(vcpu, ev, MV_X86_ACT_MMIO_FAST);
			return;
		}
		X86_STAT_INC(vm, mmio_stale);
		x86_direct_page_fault(vcpu, ev, ev->pferr);
		return;
	}
	if (spte && mv_ept_is_misconfig(spte, level)) {
		snprintf(why, sizeof(why),
			 "EPT misconfiguration at GPA 0x%" PRIx64 ": level-%d entry 0x%016" PRIx64
			 " is not an MMIO SPTE",
			 ev->gpa, level, spte);
		x86_fault_error(vcpu, ev, 0, -EINVAL, why);
		return;
	}
	X86_STAT_INC(vm, retries);
	ev->action = MV_X86_ACT_RETRY;
}

void x86_handle_ept_misconfig(mv_x86_vcpu *vcpu, mv_x86_fault_event *ev)
{
	mv_x86_vm *vm = vcpu->vm;

	ev->pferr = MV_PFERR_RSVD;
	ev->action = MV_X86_ACT_ERROR;
	ev->level = 0;
	ev->detail[0] = '\0';
	pthread_rwlock_rdlock(&vm->slots_lock);
	x86_mmio_page_fault(vcpu, ev);
	pthread_rwlock_unlock(&vm->slots_lock);
}
