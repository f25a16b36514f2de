/*
 * kvm_handle_guest_abort (arch/arm64/kvm/mmu.c): every stage-2 abort of a
 * soft vCPU comes here. External aborts go to the host or become a virtual
 * SError; translation faults on IPAs the VM cannot have are reflected into
 * the guest; then the memslot decides between RAM (user_mem_abort, or
 * setting the access flag) and MMIO (io_mem_abort), with the special cases
 * KVM has for instruction fetches, stage-1 walks and cache maintenance
 * outside RAM.
 */
#include "soft/arm64/a64_abort.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

const char *mv_a64_action_name(mv_a64_action a)
{
	static const char *const names[] = {
		[MV_A64_ACT_MAPPED] = "mapped",
		[MV_A64_ACT_RELAXED] = "relaxed",
		[MV_A64_ACT_MKYOUNG] = "mkyoung",
		[MV_A64_ACT_RETRY] = "retry",
		[MV_A64_ACT_MMIO_KERNEL] = "mmio-kernel",
		[MV_A64_ACT_MMIO_EXIT] = "mmio-exit",
		[MV_A64_ACT_NISV_EXIT] = "nisv-exit",
		[MV_A64_ACT_INJECT_DABT] = "inject-dabt",
		[MV_A64_ACT_INJECT_PABT] = "inject-pabt",
		[MV_A64_ACT_INJECT_SERROR] = "inject-serror",
		[MV_A64_ACT_INJECT_SIZE] = "inject-size",
		[MV_A64_ACT_HOST_SEA] = "host-sea",
		[MV_A64_ACT_SKIPPED] = "skipped",
		[MV_A64_ACT_ERROR] = "error",
	};

	if ((unsigned)a >= sizeof(names) / sizeof(names[0]))
		return "unknown";
	return names[a];
}

void a64_abort_error(mv_a64_vcpu *vcpu, const a64_abort *a, mv_a64_abort_event *ev,
		     uint32_t suberror, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(ev->detail, sizeof(ev->detail), fmt, ap);
	va_end(ap);
	ev->action = MV_A64_ACT_ERROR;
	vcpu->exit.reason = HV_EXIT_INTERNAL_ERROR;
	vcpu->exit.internal.suberror = suberror;
	vcpu->exit.internal.ndata = 3;
	vcpu->exit.internal.data[0] = a->f->esr;
	vcpu->exit.internal.data[1] = a->ipa;
	vcpu->exit.internal.data[2] = a->f->far;
}

/* kvm_is_write_fault: a stage-1 walk counts as a write only on a permission fault. */
static bool a64_is_write_fault(const a64_abort *a)
{
	if (a->s1ptw)
		return a64_fsc_type(a->fsc) == MV_FSC_PERM;
	if (a->is_iabt)
		return false;
	return a->f->esr & MV_ESR_WNR;
}

static void a64_abort_decode(const a64_fault *f, a64_abort *a)
{
	a->f = f;
	a->ec = (unsigned)(f->esr >> MV_ESR_EC_SHIFT) & 0x3fu;
	a->fsc = (unsigned)(f->esr & MV_ESR_FSC_MASK);
	a->is_iabt = a->ec == MV_ESR_EC_IABT_LOW;
	a->s1ptw = f->esr & MV_ESR_S1PTW;
	a->ipa = MV_HPFAR_IPA(f->hpfar);
	a->write_fault = a64_is_write_fault(a);
}

/*
 * kvm_vcpu_abt_issea: synchronous external aborts and parity/ECC errors,
 * on the access or on a table walk at levels -1..3 (ARM ARM D17.2 ESR_EL2,
 * DFSC 0b010000, 0b010011..0b010111, 0b011000, 0b011011..0b011111).
 */
static bool a64_fsc_is_sea(unsigned fsc)
{
	return fsc == MV_FSC_SEA || (fsc >= 0x13u && fsc <= 0x18u) || (fsc >= 0x1bu && fsc <= 0x1fu);
}

/* The host (APEI) may claim an external abort; otherwise the guest gets an SError. */
static void a64_handle_sea(mv_a64_vcpu *vcpu, const a64_abort *a, mv_a64_abort_event *ev)
{
	mv_a64_vm *vm = vcpu->vm;

	if (vm->sea_claim && vm->sea_claim(vm->sea_claim_arg, a->ipa)) {
		ev->action = MV_A64_ACT_HOST_SEA;
		return;
	}
	a64_inject_serror(vcpu);
	ev->action = MV_A64_ACT_INJECT_SERROR;
}

/*
 * A translation fault on an IPA the VM cannot have: beyond the IPA limit
 * (VTCR_EL2.PS, the PARange KVM programs) it is an address size fault;
 * between the VM's IPA size and that limit an external abort. Both report
 * the IPA (with FAR[11:0]) as the faulting address, as KVM does.
 */
static bool a64_ipa_out_of_range(mv_a64_vcpu *vcpu, const a64_abort *a, mv_a64_abort_event *ev)
{
	const mv_s2_config *cfg = &vcpu->vm->s2.cfg;
	uint64_t addr = a->ipa | (a->f->far & 0xfffu);

	if (a->ipa >> cfg->oa_bits) {
		a64_inject_abort(vcpu, a->is_iabt, addr, MV_FSC_ADDR_SIZE);
		ev->action = MV_A64_ACT_INJECT_SIZE;
		return true;
	}
	if (a->ipa >> cfg->ia_bits) {
		a64_inject_abort(vcpu, a->is_iabt, addr, MV_FSC_SEA);
		ev->action = a->is_iabt ? MV_A64_ACT_INJECT_PABT : MV_A64_ACT_INJECT_DABT;
		return true;
	}
	return false;
}

/*
 * No RAM at the IPA (or a write to a read-only slot). Instructions and
 * stage-1 tables cannot live in MMIO: the abort goes back to the guest.
 * Cache maintenance outside any slot is skipped (the range cannot be
 * cached anyway). Anything else is an MMIO access.
 */
static void a64_outside_ram(mv_a64_vcpu *vcpu, const a64_abort *a, bool no_slot,
			    mv_a64_abort_event *ev)
{
	if (a->is_iabt) {
		a64_inject_pabt(vcpu, a->f->far);
		ev->action = MV_A64_ACT_INJECT_PABT;
	} else if (a->s1ptw) {
		a64_inject_dabt(vcpu, a->f->far);
		ev->action = MV_A64_ACT_INJECT_DABT;
	} else if (no_slot && (a->f->esr & MV_ESR_CM)) {
		a64_skip_insn(vcpu);
		ev->action = MV_A64_ACT_SKIPPED;
	} else {
		/* HPFAR gives IPA[47:12]; the page offset is FAR's, whatever the granule. */
		a64_io_mem_abort(vcpu, a, a->ipa | (a->f->far & 0xfffu), ev);
	}
}

/* handle_access_fault: set AF on the leaf; a vanished leaf just refaults. */
static void a64_handle_access_fault(mv_a64_vcpu *vcpu, const a64_abort *a, mv_a64_abort_event *ev)
{
	mv_a64_vm *vm = vcpu->vm;
	mv_pgt_result r;
	mv_pte pte;

	pthread_rwlock_rdlock(&vm->mmu_lock);
	r = mv_s2_mkyoung(&vm->s2, a->ipa, &pte, MV_PGT_WALK_SHARED);
	pthread_rwlock_unlock(&vm->mmu_lock);
	ev->action = r == MV_PGT_OK ? MV_A64_ACT_MKYOUNG : MV_A64_ACT_RETRY;
}

/* Translation, permission and access-flag faults: RAM or MMIO by the memslot. */
static void a64_handle_memory_fault(mv_a64_vcpu *vcpu, const a64_abort *a, mv_a64_abort_event *ev)
{
	const mv_memslot *slot = mv_memslots_find(vcpu->vm->slots, 0, a->ipa >> 12, &vcpu->slot_hint);

	if (!slot || (a->write_fault && (slot->flags & HV_MEM_READONLY)))
		a64_outside_ram(vcpu, a, !slot, ev);
	else if (a64_fsc_type(a->fsc) == MV_FSC_ACCESS)
		a64_handle_access_fault(vcpu, a, ev);
	else
		a64_user_mem_abort(vcpu, a, slot, ev);
}

/* Everything but the lock, in the order of KVM's checks. */
static void a64_dispatch(mv_a64_vcpu *vcpu, const a64_abort *a, mv_a64_abort_event *ev)
{
	unsigned type = a64_fsc_type(a->fsc);

	if (!vcpu->vm->handler_on) {
		a64_skip_insn(vcpu);
		ev->action = MV_A64_ACT_SKIPPED;
		return;
	}
	if (a->ec != MV_ESR_EC_IABT_LOW && a->ec != MV_ESR_EC_DABT_LOW) {
		a64_abort_error(vcpu, a, ev, A64_INTERNAL_ERROR_UNEXPECTED,
				"ESR_EL2 0x%" PRIx64 " is not a stage-2 abort from the guest (EC=0x%02x)",
				a->f->esr, a->ec);
		return;
	}
	if (a64_fsc_is_sea(a->fsc)) {
		a64_handle_sea(vcpu, a, ev);
		return;
	}
	if (type == MV_FSC_TRANS && a64_ipa_out_of_range(vcpu, a, ev))
		return;
	if (type != MV_FSC_TRANS && type != MV_FSC_PERM && type != MV_FSC_ACCESS) {
		a64_abort_error(vcpu, a, ev, A64_INTERNAL_ERROR_UNEXPECTED,
				"unsupported FSC: EC=0x%02x xFSC=0x%02x ESR_EL2=0x%" PRIx64, a->ec, a->fsc,
				a->f->esr);
		return;
	}
	a64_handle_memory_fault(vcpu, a, ev);
}

/*
 * slots_lock is held for reading throughout (KVM's SRCU read side): the
 * memslot stays valid up to the install, and the VM's switches (handler,
 * NISV, SEA claim, fault hook), which change under it for writing, stay
 * consistent for the whole abort.
 */
void a64_handle_guest_abort(mv_a64_vcpu *vcpu, const a64_fault *f, mv_a64_abort_event *ev)
{
	mv_a64_vm *vm = vcpu->vm;
	a64_abort a;

	ev->action = MV_A64_ACT_ERROR;
	ev->map_size = 0;
	ev->detail[0] = '\0';
	a64_abort_decode(f, &a);
	pthread_rwlock_rdlock(&vm->slots_lock);
	a64_dispatch(vcpu, &a, ev);
	pthread_rwlock_unlock(&vm->slots_lock);
}
