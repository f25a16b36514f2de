/*
 * The access engine of a soft vCPU: one guest load, store, fetch or DC per
 * mv_a64_vcpu_exec, as a CPU performs it under KVM.
 *
 * Each try is one guest entry (kvm_arm_vmid_update, then the TLB is synced
 * with the VMID generation) and translates every page the access touches
 * (at most two: 32 bytes cross at most one page boundary):
 *  - all pages hit the TLB with the needed rights: the access is performed
 *    under the TLB lock;
 *  - otherwise mmu_lock is taken for reading, each page is translated
 *    (stage 1 + stage 2), the results are inserted and the access is
 *    performed under the TLB lock, still under mmu_lock.
 * Holding the TLB lock while touching host memory means an invalidation
 * (which takes it) returns only after the access through a removed entry
 * is over, as DSB after TLBI guarantees. Nothing is written before every
 * page is translated, so a fault leaves memory untouched.
 *
 * A stage-1 fault is taken to guest EL1. A stage-2 fault becomes ESR_EL2 /
 * HPFAR_EL2 / FAR_EL2 and goes to KVM's handler (abort.c); what it did
 * decides whether the access is tried again (mapped, relaxed, made young,
 * raced: up to A64_MAX_TRIES entries) or the run ends. A host page marked
 * for external aborts raises a synchronous external abort on a data access
 * or fetch (DC touches no data).
 *
 * Host memory is accessed with relaxed atomics of the access size (8-byte
 * halves for 16 bytes, bytes when unaligned); ldar / stlr are sequentially
 * consistent (RCsc). Not modelled: alignment faults, the exclusive monitor
 * (a store-exclusive always succeeds), big-endian data.
 */
#include "soft/arm64/a64_access.h"
#include "soft/arm64/a64_dirty.h"

#include <errno.h>
#include <string.h>

/* Guest entries per exec before giving up with -EAGAIN. */
#define A64_MAX_TRIES 64

/* One instruction, decoded for the engine. */
typedef struct a64_plan {
	a64_access acc;
	uint64_t va;          /* first byte accessed */
	uint64_t wb;          /* Rn after writeback */
	unsigned nregs;       /* registers transferred: 0 (fetch, DC), 1 or 2 */
	unsigned len;         /* bytes touched */
	uint64_t data[2][2];  /* per register: bits[63:0], [127:64] (store data / loaded data) */
} a64_plan;

/* Where the touched pages are: the page of the first byte and, when crossed, the next. */
typedef struct a64_span {
	unsigned npages;
	uint64_t va[2];       /* first byte accessed in each page */
	uint64_t ipa[2];      /* its IPA */
	uint64_t host[2];     /* its host address */
} a64_span;

/* ---- registers ---- */

void mv_a64_vcpu_get_regs(const mv_a64_vcpu *vcpu, mv_a64_regs *r)
{
	*r = vcpu->regs;
}

void mv_a64_vcpu_set_regs(mv_a64_vcpu *vcpu, const mv_a64_regs *r)
{
	vcpu->regs = *r;
}

void mv_a64_vcpu_get_sysregs(const mv_a64_vcpu *vcpu, mv_a64_sysregs *s)
{
	*s = vcpu->sys;
}

/* The translation regime changed: what the TLB cached was built from the old one. */
void mv_a64_vcpu_set_sysregs(mv_a64_vcpu *vcpu, const mv_a64_sysregs *s)
{
	vcpu->sys = *s;
	mv_tlb_flush_all(vcpu->tlb);
}

void mv_a64_vcpu_set_trace(mv_a64_vcpu *vcpu, void (*fn)(void *arg, const mv_a64_abort_event *ev),
			   void *arg)
{
	vcpu->trace = fn;
	vcpu->trace_arg = arg;
}

/* ---- decoding ---- */

static bool size_ok(const mv_a64_insn *i)
{
	unsigned max = i->simd && !i->pair ? 16 : 8;

	return i->size && i->size <= max && !(i->size & (i->size - 1));
}

/* -EINVAL for what no instruction encodes (or the engine cannot run). */
static int a64_insn_check(const mv_a64_vcpu *vcpu, const mv_a64_insn *i)
{
	bool data = i->op == MV_A64_LOAD || i->op == MV_A64_STORE;

	if (vcpu->regs.el > 1 || i->op > MV_A64_DC || i->wb > MV_A64_WB_POST)
		return -EINVAL;
	if (i->rn > 31 && i->rn != MV_A64_RN_ABS)
		return -EINVAL;
	if (i->wb != MV_A64_WB_NONE && (i->rn == MV_A64_RN_ABS || !data))
		return -EINVAL;
	if (!data)
		return 0;
	if (!size_ok(i) || i->rt > 31 || (i->pair && i->rt2 > 31) || i->rs > 31)
		return -EINVAL;
	/* A W register holds at most 4 bytes. */
	if (!i->simd && !i->sf && i->size == 8)
		return -EINVAL;
	return 0;
}

static uint64_t a64_base(const mv_a64_vcpu *vcpu, const mv_a64_insn *i)
{
	if (i->rn == MV_A64_RN_ABS)
		return i->addr;
	return i->rn == 31 ? vcpu->regs.sp : vcpu->regs.x[i->rn];
}

/* The store data of register @n. */
static void a64_store_data(const mv_a64_vcpu *vcpu, const mv_a64_insn *i, unsigned n, uint64_t *d)
{
	if (i->simd) {
		d[0] = vcpu->regs.v[n][0];
		d[1] = vcpu->regs.v[n][1];
	} else {
		d[0] = a64_get_reg(vcpu, n, i->sf);
	}
}

static void a64_plan_init(const mv_a64_vcpu *vcpu, const mv_a64_insn *i, a64_plan *p)
{
	uint64_t base = a64_base(vcpu, i);
	a64_access *acc = &p->acc;

	memset(p, 0, sizeof(*p));
	acc->insn = i;
	acc->el = vcpu->regs.el;
	acc->write = i->op == MV_A64_STORE;
	acc->fetch = i->op == MV_A64_FETCH;
	acc->cm = i->op == MV_A64_DC;
	acc->need = acc->fetch ? MV_TLB_X : acc->write ? MV_TLB_W : MV_TLB_R;
	p->va = i->wb == MV_A64_WB_POST ? base : base + (uint64_t)i->imm;
	p->wb = base + (uint64_t)i->imm;
	if (acc->fetch || acc->cm) {
		p->len = acc->fetch ? 4 : 1;
		return;
	}
	p->nregs = i->pair ? 2 : 1;
	p->len = i->size * p->nregs;
	if (acc->write) {
		a64_store_data(vcpu, i, i->rt, p->data[0]);
		if (i->pair)
			a64_store_data(vcpu, i, i->rt2, p->data[1]);
	}
}

static void a64_span_init(const a64_plan *p, a64_span *s)
{
	uint64_t last = p->va + p->len - 1;

	s->va[0] = p->va;
	s->npages = (last >> A64_PAGE_SHIFT) != (p->va >> A64_PAGE_SHIFT) ? 2 : 1;
	s->va[1] = last & ~(A64_PAGE_SIZE - 1);
}

/* ---- host memory ---- */

static uint8_t *a64_host_byte(const a64_span *s, uint64_t va)
{
	unsigned i = (va >> A64_PAGE_SHIFT) != (s->va[0] >> A64_PAGE_SHIFT);

	return (uint8_t *)(uintptr_t)(s->host[i] + (va - s->va[i]));
}

/*
 * One aligned atomic of type T: sequentially consistent for ldar / stlr
 * (A64 load-acquire / store-release are RCsc), relaxed otherwise.
 */
#define A64_LOAD(T, p, sc) \
	((sc) ? __atomic_load_n((T *)(p), __ATOMIC_SEQ_CST) : __atomic_load_n((T *)(p), __ATOMIC_RELAXED))
#define A64_STORE(T, p, v, sc) \
	((sc) ? __atomic_store_n((T *)(p), (T)(v), __ATOMIC_SEQ_CST) \
	      : __atomic_store_n((T *)(p), (T)(v), __ATOMIC_RELAXED))

/* @n bytes (1, 2, 4 or 8) at @va, little-endian; one atomic when aligned. */
static uint64_t a64_load(const a64_span *s, uint64_t va, unsigned n, bool sc)
{
	void *p = a64_host_byte(s, va);
	uint64_t v = 0;

	if (!(va & (n - 1))) {
		switch (n) {
		case 1: return A64_LOAD(uint8_t, p, sc);
		case 2: return A64_LOAD(uint16_t, p, sc);
		case 4: return A64_LOAD(uint32_t, p, sc);
		default: return A64_LOAD(uint64_t, p, sc);
		}
	}
	for (unsigned b = 0; b < n; b++)
		v |= (uint64_t)__atomic_load_n(a64_host_byte(s, va + b), __ATOMIC_RELAXED) << (8 * b);
	return v;
}

static void a64_store(const a64_span *s, uint64_t va, unsigned n, uint64_t v, bool sc)
{
	void *p = a64_host_byte(s, va);

	if (!(va & (n - 1))) {
		switch (n) {
		case 1: A64_STORE(uint8_t, p, v, sc); return;
		case 2: A64_STORE(uint16_t, p, v, sc); return;
		case 4: A64_STORE(uint32_t, p, v, sc); return;
		default: A64_STORE(uint64_t, p, v, sc); return;
		}
	}
	for (unsigned b = 0; b < n; b++)
		__atomic_store_n(a64_host_byte(s, va + b), (uint8_t)(v >> (8 * b)), __ATOMIC_RELAXED);
}

/* Move every register's bytes (16-byte registers as two 8-byte halves). */
static void a64_transfer(a64_plan *p, const a64_span *s)
{
	const mv_a64_insn *i = p->acc.insn;
	unsigned part = i->size > 8 ? 8 : i->size;

	for (unsigned r = 0; r < p->nregs; r++) {
		for (unsigned h = 0; h < i->size / part; h++) {
			uint64_t va = p->va + r * i->size + h * part;

			if (p->acc.write)
				a64_store(s, va, part, p->data[r][h], i->acq_rel);
			else
				p->data[r][h] = a64_load(s, va, part, i->acq_rel);
		}
	}
}

/* An access to a page marked for external aborts is a synchronous external abort. */
static bool a64_sea(const mv_a64_vm *vm, const a64_span *s, a64_xfault *f)
{
	for (unsigned i = 0; i < s->npages; i++) {
		if (!mv_soft_host_is_sea(vm->host, s->host[i]))
			continue;
		f->kind = A64_FAULT_SEA;
		f->level = 0;
		f->stage2 = true;    /* HCR_EL2.TEA: routed to EL2 */
		f->s1ptw = false;
		f->ipa = s->ipa[i];
		f->va = s->va[i];
		return true;
	}
	return false;
}

/* Perform the translated access (TLB lock held). False with *f on an external abort. */
static bool a64_perform(mv_a64_vcpu *vcpu, a64_plan *p, const a64_span *s, a64_xfault *f)
{
	if (p->acc.cm)
		return true;              /* DC: the translation was the whole point */
	if (a64_sea(vcpu->vm, s, f))
		return false;
	if (p->acc.fetch)
		p->data[0][0] = a64_load(s, p->va, 4, false);
	else
		a64_transfer(p, s);
	return true;
}

/* ---- translation ---- */

/* Every page from the TLB (lock held); false on a miss. */
static bool a64_span_lookup(mv_a64_vcpu *vcpu, uint16_t vmid, const a64_plan *p, a64_span *s)
{
	mv_tlb_entry e;

	for (unsigned i = 0; i < s->npages; i++) {
		if (!mv_tlb_lookup(vcpu->tlb, vmid, p->acc.el, s->va[i] >> A64_PAGE_SHIFT, p->acc.need,
				   &e))
			return false;
		s->ipa[i] = (e.ipa_page << A64_PAGE_SHIFT) | (s->va[i] & (A64_PAGE_SIZE - 1));
		s->host[i] = (e.host_page << A64_PAGE_SHIFT) | (s->va[i] & (A64_PAGE_SIZE - 1));
	}
	return true;
}

/* Every page by a walk (mmu_lock held for reading); the TLB entries to insert. */
static bool a64_span_walk(mv_a64_vcpu *vcpu, uint16_t vmid, const a64_plan *p, a64_span *s,
			  mv_tlb_entry *e, a64_xfault *f)
{
	a64_xlate x;

	for (unsigned i = 0; i < s->npages; i++) {
		if (!a64_translate(vcpu, &p->acc, s->va[i], &x, f))
			return false;
		s->ipa[i] = x.ipa;
		s->host[i] = x.host;
		e[i] = (mv_tlb_entry){
			.vmid = vmid,
			.el = p->acc.el,
			.rights = (uint8_t)x.rights,
			.va_page = s->va[i] >> A64_PAGE_SHIFT,
			.ipa_page = x.ipa >> A64_PAGE_SHIFT,
			.host_page = x.host >> A64_PAGE_SHIFT,
		};
	}
	return true;
}

/* A miss: walk under mmu_lock, insert, perform. */
static bool a64_try_walk(mv_a64_vcpu *vcpu, uint16_t vmid, a64_plan *p, a64_span *s,
			 a64_xfault *f)
{
	mv_a64_vm *vm = vcpu->vm;
	mv_tlb_entry e[2];
	bool ok;

	pthread_rwlock_rdlock(&vm->mmu_lock);
	ok = a64_span_walk(vcpu, vmid, p, s, e, f);
	if (ok) {
		mv_tlb_lock(vcpu->tlb);
		for (unsigned i = 0; i < s->npages; i++)
			mv_tlb_insert(vcpu->tlb, &e[i]);
		ok = a64_perform(vcpu, p, s, f);
		mv_tlb_unlock(vcpu->tlb);
	}
	pthread_rwlock_unlock(&vm->mmu_lock);
	return ok;
}

/* One guest entry: translate and perform, or fail with *f. */
static bool a64_try(mv_a64_vcpu *vcpu, a64_plan *p, a64_xfault *f)
{
	mv_a64_vm *vm = vcpu->vm;
	uint16_t vmid;
	a64_span s;
	bool ok;

	/* kvm_arm_vmid_update at entry; the vCPU id is its CPU index. */
	mv_vmid_update(vm->vmids, &vm->vmid, vcpu->id);
	vmid = mv_vmid_value(vm->vmids, &vm->vmid);
	a64_span_init(p, &s);
	mv_tlb_lock(vcpu->tlb);
	mv_tlb_sync_generation(vcpu->tlb, vm->vmids);
	if (a64_span_lookup(vcpu, vmid, p, &s)) {
		ok = a64_perform(vcpu, p, &s, f);
		mv_tlb_unlock(vcpu->tlb);
		return ok;
	}
	mv_tlb_unlock(vcpu->tlb);
	return a64_try_walk(vcpu, vmid, p, &s, f);
}

/* ---- outcomes ---- */

static uint64_t a64_sign_extend(uint64_t v, unsigned bytes)
{
	uint64_t sign = 1ull << (8 * bytes - 1);

	return bytes >= 8 ? v : ((v & ((sign << 1) - 1)) ^ sign) - sign;
}

/* Write loaded register @n from @d; returns the value reported in out->value. */
static uint64_t a64_load_reg(mv_a64_vcpu *vcpu, const mv_a64_insn *i, unsigned n, const uint64_t *d)
{
	uint64_t v = d[0];

	if (i->simd) {
		vcpu->regs.v[n][0] = v;
		vcpu->regs.v[n][1] = i->size > 8 ? d[1] : 0;
		return v;
	}
	if (i->sign_extend)
		v = a64_sign_extend(v, i->size);
	v = i->sf ? v : (uint32_t)v;
	a64_set_reg(vcpu, n, v, true);
	return v;
}

/* The access was performed: registers, writeback, PC. */
static void a64_complete(mv_a64_vcpu *vcpu, const a64_plan *p, mv_a64_outcome *out)
{
	const mv_a64_insn *i = p->acc.insn;

	out->result = MV_A64_DONE;
	if (i->wb != MV_A64_WB_NONE) {
		if (i->rn == 31)
			vcpu->regs.sp = p->wb;
		else
			vcpu->regs.x[i->rn] = p->wb;
	}
	if (p->acc.fetch) {
		out->value[0] = p->data[0][0];
	} else if (i->op == MV_A64_LOAD) {
		out->value[0] = a64_load_reg(vcpu, i, i->rt, p->data[0]);
		if (i->pair)
			out->value[1] = a64_load_reg(vcpu, i, i->rt2, p->data[1]);
		else if (i->simd)
			out->value[1] = vcpu->regs.v[i->rt][1];
	} else if (i->op == MV_A64_STORE && i->exclusive) {
		a64_set_reg(vcpu, i->rs, 0, false);   /* Ws = 0: the store happened */
	}
	a64_skip_insn(vcpu);
}

/* A stage-1 fault: the guest takes it at EL1. */
static void a64_guest_fault(mv_a64_vcpu *vcpu, const a64_plan *p, const a64_xfault *f,
			    mv_a64_outcome *out)
{
	uint64_t esr = a64_syndrome_el1(&p->acc, f);

	a64_take_exception_el1(vcpu, esr, f->va);
	out->result = MV_A64_GUEST_FAULT;
	out->esr_el1 = esr;
	out->far_el1 = f->va;
}

/* How the run ends after the handler's @action; false: enter the guest again. */
static bool a64_abort_outcome(mv_a64_vcpu *vcpu, const a64_plan *p, mv_a64_action action,
			      mv_a64_outcome *out)
{
	switch (action) {
	case MV_A64_ACT_MAPPED:
	case MV_A64_ACT_RELAXED:
	case MV_A64_ACT_MKYOUNG:
	case MV_A64_ACT_RETRY:
		return false;
	case MV_A64_ACT_MMIO_KERNEL:
		/* The device's data is in Rt and PC has moved (kvm_handle_mmio_return). */
		out->result = MV_A64_DONE;
		if (p->acc.insn->op == MV_A64_LOAD)
			out->value[0] = a64_get_reg(vcpu, p->acc.insn->rt, true);
		return true;
	case MV_A64_ACT_INJECT_DABT:
	case MV_A64_ACT_INJECT_PABT:
	case MV_A64_ACT_INJECT_SERROR:
	case MV_A64_ACT_INJECT_SIZE:
		out->result = MV_A64_INJECTED;
		out->esr_el1 = vcpu->sys.esr_el1;
		out->far_el1 = vcpu->sys.far_el1;
		return true;
	case MV_A64_ACT_SKIPPED:
		out->result = MV_A64_SKIPPED;
		return true;
	case MV_A64_ACT_HOST_SEA:
		/* The host took the error (and signals the VMM): the run is interrupted. */
		vcpu->exit.reason = HV_EXIT_INTR;
		break;
	case MV_A64_ACT_MMIO_EXIT:
	case MV_A64_ACT_NISV_EXIT:
	case MV_A64_ACT_ERROR:
		break;
	}
	out->result = MV_A64_EXIT;
	out->exit = &vcpu->exit;
	return true;
}

/* A stage-2 fault: the syndrome EL2 sees, KVM's handler, the trace. True when the run ends. */
static bool a64_stage2_abort(mv_a64_vcpu *vcpu, const a64_plan *p, const a64_xfault *f,
			     mv_a64_outcome *out)
{
	mv_a64_abort_event ev = { 0 };
	a64_fault af;

	a64_syndrome_el2(&p->acc, f, &af);
	ev.esr_el2 = af.esr;
	ev.hpfar_el2 = af.hpfar;
	ev.far_el2 = af.far;
	a64_handle_guest_abort(vcpu, &af, &ev);
	if (vcpu->trace)
		vcpu->trace(vcpu->trace_arg, &ev);
	return a64_abort_outcome(vcpu, p, ev.action, out);
}

/* Enter the guest until the access completes or the run ends; -EAGAIN after A64_MAX_TRIES. */
static int a64_run(mv_a64_vcpu *vcpu, a64_plan *p, mv_a64_outcome *out)
{
	a64_xfault f;

	for (unsigned tries = 0; tries < A64_MAX_TRIES; tries++) {
		/* Each try is a guest entry: a soft-full dirty ring stops the vCPU first. */
		if (a64_dirty_ring_full_exit(vcpu, out))
			return 0;
		if (a64_try(vcpu, p, &f)) {
			a64_complete(vcpu, p, out);
			return 0;
		}
		if (!f.stage2) {
			a64_guest_fault(vcpu, p, &f, out);
			return 0;
		}
		if (a64_stage2_abort(vcpu, p, &f, out))
			return 0;
	}
	return -EAGAIN;
}

int mv_a64_vcpu_exec(mv_a64_vcpu *vcpu, const mv_a64_insn *insn, mv_a64_outcome *out)
{
	a64_plan p;
	int r = a64_insn_check(vcpu, insn);

	memset(out, 0, sizeof(*out));
	if (r)
		return r;
	mv_a64_vcpu_complete_mmio(vcpu, NULL);
	a64_plan_init(vcpu, insn, &p);
	r = a64_run(vcpu, &p, out);
	/* kvm_arch_vcpu_put: this CPU left the guest. */
	mv_vmid_clear_active(vcpu->vm->vmids, vcpu->id);
	return r;
}
