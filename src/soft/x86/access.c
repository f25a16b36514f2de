/*
 * The access engine of the x86 soft vCPU: one guest read, write or fetch
 * per mv_x86_vcpu_access, one port access per mv_x86_vcpu_pio, as a CPU
 * in VMX non-root operation performs them under KVM.
 *
 * KVM_RUN first completes a read user space answered, then exits for a
 * soft-full dirty ring (KVM_REQ_DIRTY_RING_SOFT_FULL) or a kick; the ring
 * is checked again before every later guest entry of the same access (after
 * a fault was handled), as vcpu_enter_guest does. Each try then
 * translates every page the access touches (at most two):
 *  - all pages hit the TLB with the needed rights: the access is performed
 *    under the TLB lock;
 *  - otherwise mmu_lock is taken for reading, each page is translated
 *    (xlate.c: guest paging through EPT, then EPT), the translations are
 *    inserted and the access is performed under the TLB lock, still under
 *    mmu_lock.
 * Holding the TLB lock while touching host memory means an INVEPT (which
 * takes it) returns only after an access through a removed entry is over.
 * Nothing is written before every page is translated, so a fault leaves
 * memory untouched.
 *
 * A guest #PF / #GP ends the access for the guest. An EPT violation or
 * misconfiguration goes to KVM's fault path (tdp_fault.c and friends),
 * which maps, fixes, retries (the access is tried again, at most
 * X86_MAX_TRIES entries) or answers "emulate", and the access is then
 * emulated (emulate.c) as KVM does: RAM parts directly, MMIO through the
 * bus or an exit.
 *
 * Host memory is accessed with relaxed atomics of the access size when
 * aligned, bytes otherwise. A TLB entry is tagged with the privilege class
 * (CPL 3 or not) its rights were computed for; a change of paging
 * registers flushes the TLB (mv_x86_vcpu_set_paging).
 */
#include "soft/x86/x86_access.h"

#include <errno.h>
#include <string.h>

/* Guest entries per access before giving up with -EAGAIN. */
#define X86_MAX_TRIES 64

/* TLB rights an access needs. */
static const unsigned acc_tlb[] = {
	[MV_X86_READ] = MV_TLB_R,
	[MV_X86_WRITE] = MV_TLB_W,
	[MV_X86_FETCH] = MV_TLB_X,
};

/* ---- exits and pending reads ---- */

hv_exit *x86_exit_new(mv_x86_vcpu *vcpu, hv_exit_reason reason)
{
	memset(&vcpu->exit, 0, sizeof(vcpu->exit));
	vcpu->exit.reason = reason;
	return &vcpu->exit;
}

void x86_outcome_exit(mv_x86_vcpu *vcpu, mv_x86_outcome *out)
{
	out->result = MV_X86_EXIT;
	out->exit = &vcpu->exit;
}

void x86_pend_read(mv_x86_vcpu *vcpu, bool is_io, unsigned len, unsigned shift, uint64_t value)
{
	vcpu->pending = (x86_pending){
		.pending = true,
		.is_io = is_io,
		.len = (uint8_t)len,
		.shift = (uint8_t)shift,
		.value = value,
	};
}

void mv_x86_vcpu_complete(mv_x86_vcpu *vcpu, uint64_t *value)
{
	x86_pending *p = &vcpu->pending;
	const uint8_t *data;

	if (!p->pending)
		return;
	data = p->is_io ? vcpu->io_data : vcpu->exit.mmio.data;
	p->pending = false;
	if (value)
		*value = p->value | x86_le_load(data, p->len) << (8 * p->shift);
}

/*
 * KVM_REQ_DIRTY_RING_SOFT_FULL, which vcpu_enter_guest checks before
 * every guest entry (kvm_dirty_ring_check_request): a soft-full ring
 * exits with HV_EXIT_DIRTY_RING_FULL instead of entering.
 */
static bool x86_ring_full_exit(mv_x86_vcpu *vcpu, mv_x86_outcome *out)
{
	if (!vcpu->ring || !mv_dirty_ring_soft_full(vcpu->ring))
		return false;
	x86_exit_new(vcpu, HV_EXIT_DIRTY_RING_FULL);
	x86_outcome_exit(vcpu, out);
	return true;
}

/* KVM_RUN: complete what user space answered, then the exits taken before the first entry. */
static bool x86_entry(mv_x86_vcpu *vcpu, mv_x86_outcome *out)
{
	mv_x86_vcpu_complete(vcpu, NULL);
	if (x86_ring_full_exit(vcpu, out))
		return true;
	if (!__atomic_exchange_n(&vcpu->kicked, 0, __ATOMIC_ACQ_REL))
		return false;
	x86_exit_new(vcpu, HV_EXIT_INTR);
	x86_outcome_exit(vcpu, out);
	return true;
}

/* ---- the plan ---- */

static void x86_plan_init(const mv_x86_access *a, x86_plan *p)
{
	uint64_t first_end = (a->gva | (X86_PAGE_SIZE - 1)) + 1;
	uint64_t len0 = first_end - a->gva;

	memset(p, 0, sizeof(*p));
	p->acc = a->acc;
	p->cpl = a->cpl;
	p->size = a->size;
	p->value = a->acc == MV_X86_WRITE ? x86_bytes(a->value, 0, a->size) : 0;
	p->nparts = len0 < a->size ? 2 : 1;
	p->part[0] = (x86_part){ .gva = a->gva, .len = p->nparts == 2 ? (unsigned)len0 : a->size };
	if (p->nparts == 2)
		p->part[1] = (x86_part){
			.gva = first_end,
			.off = (unsigned)len0,
			.len = a->size - (unsigned)len0,
		};
}

/* The TLB tag of the privilege class the rights were computed for: 0 user, 1 supervisor. */
static uint8_t x86_tlb_el(unsigned cpl)
{
	return cpl == 3 ? 0 : 1;
}

/* ---- one try ---- */

/* Perform the translated access (TLB lock held). */
static void x86_perform(x86_plan *p)
{
	for (unsigned i = 0; i < p->nparts; i++) {
		const x86_part *part = &p->part[i];

		if (p->acc == MV_X86_WRITE)
			x86_host_store(part->host, part->len, x86_bytes(p->value, part->off, part->len));
		else
			p->value |= x86_host_load(part->host, part->len) << (8 * part->off);
	}
}

/* Every page from the TLB (lock held); false on a miss. */
static bool x86_lookup(mv_x86_vcpu *vcpu, x86_plan *p)
{
	mv_tlb_entry e;

	for (unsigned i = 0; i < p->nparts; i++) {
		x86_part *part = &p->part[i];
		uint64_t off = part->gva & (X86_PAGE_SIZE - 1);

		if (!mv_tlb_lookup(vcpu->tlb, X86_TLB_TAG, x86_tlb_el(p->cpl),
				   part->gva >> X86_PAGE_SHIFT, acc_tlb[p->acc], &e))
			return false;
		part->gpa = e.ipa_page << X86_PAGE_SHIFT | off;
		part->host = e.host_page << X86_PAGE_SHIFT | off;
	}
	return true;
}

/* Every page by translation (mmu_lock held for reading); the entries to insert. */
static bool x86_walk(mv_x86_vcpu *vcpu, x86_plan *p, mv_tlb_entry *e, x86_xfault *f)
{
	x86_xlate x;

	for (unsigned i = 0; i < p->nparts; i++) {
		x86_part *part = &p->part[i];

		if (!x86_translate(vcpu, p->acc, p->cpl, part->gva, &x, f))
			return false;
		part->gpa = x.gpa;
		part->host = x.host;
		e[i] = (mv_tlb_entry){
			.vmid = X86_TLB_TAG,
			.el = x86_tlb_el(p->cpl),
			.rights = (uint8_t)x.rights,
			.va_page = part->gva >> X86_PAGE_SHIFT,
			.ipa_page = x.gpa >> X86_PAGE_SHIFT,
			.host_page = x.host >> X86_PAGE_SHIFT,
		};
	}
	return true;
}

/*
 * One guest entry: translate and perform, or fail with *f. What the walk
 * saw can be cached: mmu_lock held for reading keeps every INVEPT out
 * (only the lock's writers take rights or outputs away; faults under it
 * build the leaf another fault of the page built, or add rights, see
 * tdp_fault.c; prefetch only fills empty entries; the fast path only
 * adds W).
 */
static bool x86_try(mv_x86_vcpu *vcpu, x86_plan *p, x86_xfault *f)
{
	mv_x86_vm *vm = vcpu->vm;
	mv_tlb_entry e[2];
	bool ok;

	mv_tlb_lock(vcpu->tlb);
	if (x86_lookup(vcpu, p)) {
		x86_perform(p);
		mv_tlb_unlock(vcpu->tlb);
		return true;
	}
	mv_tlb_unlock(vcpu->tlb);
	pthread_rwlock_rdlock(&vm->mmu_lock);
	ok = x86_walk(vcpu, p, e, f);
	if (ok) {
		mv_tlb_lock(vcpu->tlb);
		for (unsigned i = 0; i < p->nparts; i++)
			mv_tlb_insert(vcpu->tlb, &e[i]);
		x86_perform(p);
		mv_tlb_unlock(vcpu->tlb);
	}
	pthread_rwlock_unlock(&vm->mmu_lock);
	return ok;
}

/* ---- faults ---- */

/* Bytes of the stopped access in its page: the part's, or one paging-structure entry. */
static uint8_t x86_fault_len(const x86_plan *p, const x86_xfault *f)
{
	if (f->table)
		return 8;
	for (unsigned i = 0; i < p->nparts; i++)
		if ((f->gva >> X86_PAGE_SHIFT) == (p->part[i].gva >> X86_PAGE_SHIFT))
			return (uint8_t)p->part[i].len;
	return (uint8_t)p->size;
}

/*
 * An EPT exit: KVM's handle_ept_violation / handle_ept_misconfig and the
 * trace. True when the access must be emulated; *exited when the fault
 * path ended the run (an error exit).
 */
static bool x86_ept_exit(mv_x86_vcpu *vcpu, const x86_plan *p, const x86_xfault *f, bool *exited)
{
	mv_x86_fault_event ev = {
		.misconfig = f->kind == X86_XF_MISCONFIG,
		.gpa = f->gpa,
		.gva = f->gva,
		.len = x86_fault_len(p, f),
		.is_write = f->write,
	};

	if (ev.misconfig) {
		ev.pferr = MV_PFERR_RSVD;
		x86_handle_ept_misconfig(vcpu, &ev);
	} else {
		ev.exit_qual = f->qual;
		ev.pferr = mv_ept_violation_pferr(f->qual);
		x86_handle_ept_violation(vcpu, &ev);
	}
	if (vcpu->trace)
		vcpu->trace(vcpu->trace_arg, &ev);
	*exited = ev.action == MV_X86_ACT_ERROR;
	return ev.action == MV_X86_ACT_MMIO_SPTE || ev.action == MV_X86_ACT_MMIO ||
	       ev.action == MV_X86_ACT_MMIO_FAST;
}

/* Enter the guest until the access completes or the run ends; -EAGAIN after X86_MAX_TRIES. */
static int x86_run(mv_x86_vcpu *vcpu, x86_plan *p, mv_x86_outcome *out)
{
	x86_xfault f;
	bool exited;

	for (unsigned tries = 0; tries < X86_MAX_TRIES; tries++) {
		if (x86_try(vcpu, p, &f)) {
			out->result = MV_X86_DONE;
			out->value = p->acc == MV_X86_WRITE ? 0 : p->value;
			return 0;
		}
		switch (f.kind) {
		case X86_XF_GUEST_PF:
			out->result = MV_X86_GUEST_PF;
			out->pferr = f.pferr;
			out->cr2 = f.cr2;
			return 0;
		case X86_XF_GUEST_GP:
			out->result = MV_X86_GUEST_GP;
			return 0;
		case X86_XF_ERROR:
			return f.err;
		case X86_XF_VIOLATION:
		case X86_XF_MISCONFIG:
			if (x86_ept_exit(vcpu, p, &f, &exited))
				return x86_emulate(vcpu, p, out);
			if (exited) {
				x86_outcome_exit(vcpu, out);
				return 0;
			}
			/*
			 * Handled: the next try is a guest entry. The fault may
			 * have pushed the entry that made the ring soft-full;
			 * then the vCPU exits before the access runs, and after
			 * harvest + reset (which protects the page again) the
			 * access faults and logs its page once more, as in KVM.
			 */
			if (x86_ring_full_exit(vcpu, out))
				return 0;
			break;
		}
	}
	return -EAGAIN;
}

static bool x86_access_ok(const mv_x86_access *a)
{
	return a->acc <= MV_X86_FETCH && a->cpl <= 3 && a->size && a->size <= 8 &&
	       !(a->size & (a->size - 1));
}

int mv_x86_vcpu_access(mv_x86_vcpu *vcpu, const mv_x86_access *a, mv_x86_outcome *out)
{
	x86_plan p;

	memset(out, 0, sizeof(*out));
	if (!x86_access_ok(a))
		return -EINVAL;
	if (x86_entry(vcpu, out))
		return 0;
	x86_plan_init(a, &p);
	return x86_run(vcpu, &p, out);
}

/* ---- port I/O ---- */

int mv_x86_vcpu_pio(mv_x86_vcpu *vcpu, uint16_t port, uint8_t size, bool is_write, uint32_t value,
		    mv_x86_outcome *out)
{
	mv_iobus *bus = vcpu->vm->pio_bus;
	uint8_t buf[4] = { 0 };
	hv_exit *e;

	memset(out, 0, sizeof(*out));
	if (size != 1 && size != 2 && size != 4)
		return -EINVAL;
	if (x86_entry(vcpu, out))
		return 0;
	if (is_write)
		x86_le_store(buf, size, value);
	if ((is_write ? mv_iobus_write(bus, port, size, buf) : mv_iobus_read(bus, port, size, buf)) == 0) {
		out->result = MV_X86_DONE;
		out->value = is_write ? 0 : x86_le_load(buf, size);
		return 0;
	}
	e = x86_exit_new(vcpu, HV_EXIT_IO);
	e->io.port = port;
	e->io.size = size;
	e->io.is_write = is_write;
	e->io.count = 1;
	e->io.data = vcpu->io_data;
	memset(vcpu->io_data, 0, sizeof(vcpu->io_data));
	if (is_write)
		memcpy(vcpu->io_data, buf, size);
	else
		x86_pend_read(vcpu, true, size, 0, 0);
	x86_outcome_exit(vcpu, out);
	return 0;
}
