/*
 * KVM's emulation of an access that its fault path answered with "emulate"
 * (an MMIO SPTE, a GPA without a memslot, a write to a read-only slot, a
 * GPA beyond MAXPHYADDR): x86_emulate_instruction with its memory operand
 * handled by emulator_read_write (arch/x86/kvm/x86.c). The soft vCPU has
 * no instruction to decode; the access itself is the operand.
 *
 * Page by page, in order:
 *  - the linear address is translated by KVM's software walk
 *    (FNAME(walk_addr_generic)), which reads guest tables through the
 *    memslots, not through EPT: a table outside every memslot ends the
 *    walk with a not-present #PF for the guest; accessed / dirty flags are
 *    written back only where the table is writable (a read-only slot's
 *    table keeps its flags: update_accessed_dirty_bits skips it), and the
 *    table's page is logged dirty;
 *  - a GPA in a memslot (writable, for a write) is RAM and is accessed at
 *    once through the slot's host address, a write being logged dirty
 *    (kvm_vcpu_write_guest); anything else is MMIO.
 * Then the MMIO parts go to the in-process MMIO bus, and what no device
 * takes exits to user space (a read waits for mv_x86_vcpu_complete).
 *
 * Differences from KVM, on purpose:
 *  - KVM exits once per page fragment of a page-crossing MMIO access;
 *    here both fragments leave in one exit when their GPAs are contiguous
 *    (the exit records one access), and an access whose two fragments are
 *    not contiguous fails as an emulation error;
 *  - an instruction fetch from MMIO fails emulation as in KVM, but always
 *    exits (KVM_INTERNAL_ERROR_EMULATION; data[0] = the linear address)
 *    where KVM injects #UD without an exit at CPL > 0.
 */
#include "soft/x86/guest_paging.h"
#include "soft/x86/x86_access.h"

#include <errno.h>

/* The slot of @gpa in address space 0 (SMM is not modelled), or NULL. */
static const mv_memslot *emu_slot(mv_x86_vcpu *vcpu, uint64_t gpa)
{
	return mv_memslots_find(vcpu->vm->slots, 0, gpa >> X86_PAGE_SHIFT, &vcpu->slot_hint);
}

static uint64_t emu_host(const mv_memslot *slot, uint64_t gpa)
{
	return mv_memslot_gfn_to_hva(slot, gpa >> X86_PAGE_SHIFT) | (gpa & (X86_PAGE_SIZE - 1));
}

/* ---- the software walk's table accesses ---- */

static int emu_pt_read(void *arg, uint64_t gpa, uint64_t *val)
{
	const mv_memslot *slot = emu_slot(arg, gpa);

	if (!slot)
		return 1;
	*val = __atomic_load_n((uint64_t *)(uintptr_t)emu_host(slot, gpa), __ATOMIC_RELAXED);
	return 0;
}

static int emu_pt_cmpxchg(void *arg, uint64_t gpa, uint64_t old, uint64_t new)
{
	const mv_memslot *slot = emu_slot(arg, gpa);

	if (!slot)
		return 1;
	if (slot->flags & HV_MEM_READONLY)
		return 0;
	if (!__atomic_compare_exchange_n((uint64_t *)(uintptr_t)emu_host(slot, gpa), &old, new, false,
					 __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		return -EAGAIN;
	x86_mark_page_dirty(arg, slot, gpa >> X86_PAGE_SHIFT);
	return 0;
}

static const mv_x86_pt_ops emu_pt_ops = {
	.read = emu_pt_read,
	.cmpxchg = emu_pt_cmpxchg,
};

/* ---- one page ---- */

/*
 * Translate @part by the software walk and, when it is RAM, access it: 0
 * with *mmio telling whether it is left for the bus; 1 with a guest fault
 * in *out; or a negative errno.
 */
static int emu_page(mv_x86_vcpu *vcpu, x86_plan *p, x86_part *part, bool *mmio,
		    mv_x86_outcome *out)
{
	bool write = p->acc == MV_X86_WRITE;
	const mv_memslot *slot;
	mv_x86_walk w;
	int rc = mv_x86_guest_walk(&vcpu->paging, part->gva, p->acc, p->cpl, &emu_pt_ops, vcpu, &w);

	if (rc)
		return rc;
	if (w.gp) {
		out->result = MV_X86_GUEST_GP;
		return 1;
	}
	if (w.guest_pf || w.ept_stop) {
		/* A table outside RAM: walk_addr_generic fails before any rights are known. */
		out->result = MV_X86_GUEST_PF;
		out->pferr = w.guest_pf ? w.pferr : x86_gp_access_pferr(&vcpu->paging, p->acc, p->cpl);
		out->cr2 = part->gva;
		return 1;
	}
	part->gpa = w.gpa;
	slot = emu_slot(vcpu, w.gpa);
	*mmio = !slot || (write && (slot->flags & HV_MEM_READONLY));
	if (*mmio)
		return 0;
	part->host = emu_host(slot, w.gpa);
	if (write) {
		x86_host_store(part->host, part->len, x86_bytes(p->value, part->off, part->len));
		x86_mark_page_dirty(vcpu, slot, w.gpa >> X86_PAGE_SHIFT);
	} else {
		p->value |= x86_host_load(part->host, part->len) << (8 * part->off);
	}
	return 0;
}

/* ---- MMIO ---- */

/* Emulation failed: KVM_EXIT_INTERNAL_ERROR with KVM_INTERNAL_ERROR_EMULATION. */
static void emu_failure(mv_x86_vcpu *vcpu, const x86_plan *p, mv_x86_outcome *out)
{
	hv_exit *e = x86_exit_new(vcpu, HV_EXIT_INTERNAL_ERROR);

	e->internal.suberror = X86_INTERNAL_ERROR_EMULATION;
	e->internal.ndata = 1;
	e->internal.data[0] = p->part[0].gva;
	x86_outcome_exit(vcpu, out);
}

/* Offer @part to the MMIO bus: true when a device took it. */
static bool emu_bus(mv_x86_vcpu *vcpu, x86_plan *p, const x86_part *part)
{
	mv_iobus *bus = vcpu->vm->mmio_bus;
	uint8_t buf[8] = { 0 };

	if (p->acc == MV_X86_WRITE) {
		x86_le_store(buf, part->len, x86_bytes(p->value, part->off, part->len));
		return mv_iobus_write(bus, part->gpa, part->len, buf) == 0;
	}
	if (mv_iobus_read(bus, part->gpa, part->len, buf))
		return false;
	p->value |= x86_le_load(buf, part->len) << (8 * part->off);
	return true;
}

/* The MMIO parts of @p: the bus, then one exit for what is left. */
static void emu_mmio(mv_x86_vcpu *vcpu, x86_plan *p, const bool *mmio, mv_x86_outcome *out)
{
	const x86_part *user[2];
	unsigned nuser = 0, len;
	hv_exit *e;

	for (unsigned i = 0; i < p->nparts; i++)
		if (mmio[i] && !emu_bus(vcpu, p, &p->part[i]))
			user[nuser++] = &p->part[i];
	if (!nuser) {
		out->result = MV_X86_DONE;
		out->value = p->acc == MV_X86_WRITE ? 0 : p->value;
		return;
	}
	if (nuser == 2 && user[1]->gpa != user[0]->gpa + user[0]->len) {
		emu_failure(vcpu, p, out);
		return;
	}
	len = nuser == 2 ? p->size : user[0]->len;
	e = x86_exit_new(vcpu, HV_EXIT_MMIO);
	e->mmio.gpa = user[0]->gpa;
	e->mmio.len = len;
	e->mmio.is_write = p->acc == MV_X86_WRITE;
	if (e->mmio.is_write)
		x86_le_store(e->mmio.data, len, x86_bytes(p->value, user[0]->off, len));
	else
		x86_pend_read(vcpu, false, len, user[0]->off, p->value);
	x86_outcome_exit(vcpu, out);
}

int x86_emulate(mv_x86_vcpu *vcpu, x86_plan *p, mv_x86_outcome *out)
{
	bool mmio[2] = { false, false };
	int rc = 0;

	if (p->acc == MV_X86_FETCH) {
		emu_failure(vcpu, p, out);
		return 0;
	}
	pthread_rwlock_rdlock(&vcpu->vm->slots_lock);
	for (unsigned i = 0; i < p->nparts && !rc; i++)
		rc = emu_page(vcpu, p, &p->part[i], &mmio[i], out);
	pthread_rwlock_unlock(&vcpu->vm->slots_lock);
	if (rc)
		return rc < 0 ? rc : 0;
	emu_mmio(vcpu, p, mmio, out);
	return 0;
}
