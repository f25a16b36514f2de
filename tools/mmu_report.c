/*
 * What `memvirt mmu run` prints (docs/mmu_script.md, "Output"): each
 * access as "LINE: <instruction>", then one indented line per stage-2
 * abort ("abort"), per handler decision ("handler") and for the outcome
 * ("done", "mmio", "nisv", "guest-fault", "injected", "skipped", ...).
 */
#include <errno.h>
#include <string.h>

#include "mmu_run.h"

#define TAG "    %-8s "

void mmu_report_access(mmu_run *r, const mmu_line *l)
{
	fprintf(r->out, "%u: %s\n", l->lineno, l->text);
}

/* What an in-kernel device saw during this abort. */
static void report_dev_access(mmu_run *r)
{
	const mmu_dev_access *a = &r->dev_access;

	if (!a->seen)
		return;
	fprintf(r->out, ": %s 0x%llx len %u %s 0x%llx", a->is_write ? "write" : "read",
		(unsigned long long)a->addr, a->len, a->is_write ? "data" : "->",
		(unsigned long long)a->data);
}

void mmu_report_abort(mmu_run *r, const mv_a64_abort_event *ev)
{
	char desc[256], sz[24];

	mv_esr_describe(ev->esr_el2, desc, sizeof(desc));
	fprintf(r->out, TAG "ESR_EL2 0x%08llx HPFAR_EL2 0x%llx FAR_EL2 0x%llx: %s\n", "abort",
		(unsigned long long)ev->esr_el2, (unsigned long long)ev->hpfar_el2,
		(unsigned long long)ev->far_el2, desc);
	fprintf(r->out, TAG "%s", "handler", mv_a64_action_name(ev->action));
	if (ev->action == MV_A64_ACT_MAPPED)
		fprintf(r->out, " %s", mmu_size_name(ev->map_size, sz));
	if (ev->action == MV_A64_ACT_MMIO_KERNEL)
		report_dev_access(r);
	if (ev->detail[0])
		fprintf(r->out, ": %s", ev->detail);
	fputc('\n', r->out);
	r->dev_access.seen = false;
}

/* The name of transfer register @n of @in ("x3", "wzr", "q0"). */
static const char *reg_name(const mv_a64_insn *in, unsigned n, char buf[8])
{
	static const char simd[] = "bhsdq";

	if (in->simd)
		snprintf(buf, 8, "%c%u", simd[__builtin_ctz(in->size)], n);
	else if (n == MV_A64_XZR)
		snprintf(buf, 8, "%czr", in->sf ? 'x' : 'w');
	else
		snprintf(buf, 8, "%c%u", in->sf ? 'x' : 'w', n);
	return buf;
}

/* "x3 = 0x..." for a loaded register; a Q register shows all 128 bits. */
static void print_loaded(mmu_run *r, const mv_a64_insn *in, unsigned n, const uint64_t *v)
{
	char name[8];

	if (in->size == 16)
		fprintf(r->out, "%s = 0x%016llx%016llx", reg_name(in, n, name),
			(unsigned long long)v[1], (unsigned long long)v[0]);
	else
		fprintf(r->out, "%s = 0x%llx", reg_name(in, n, name),
			(unsigned long long)(in->sf || in->simd ? v[0] : (uint32_t)v[0]));
}

/* The base register after a writeback. */
static void print_writeback(mmu_run *r, const mv_a64_insn *in)
{
	mv_a64_regs regs;

	if (in->wb == MV_A64_WB_NONE || in->rn == MV_A64_RN_ABS)
		return;
	mv_a64_vcpu_get_regs(r->vcpu, &regs);
	if (in->rn == 31)
		fprintf(r->out, ", sp = 0x%llx (writeback)", (unsigned long long)regs.sp);
	else
		fprintf(r->out, ", x%u = 0x%llx (writeback)", in->rn,
			(unsigned long long)regs.x[in->rn]);
}

static void report_done(mmu_run *r, const mv_a64_insn *in, const mv_a64_outcome *o)
{
	mv_a64_regs regs;

	fprintf(r->out, TAG, "done");
	switch (in->op) {
	case MV_A64_LOAD:
		print_loaded(r, in, in->rt, o->value);
		if (in->pair) {
			fputs(", ", r->out);
			print_loaded(r, in, in->rt2, o->value + 1);
		}
		break;
	case MV_A64_STORE:
		fputs("stored", r->out);
		if (in->exclusive) {
			mv_a64_vcpu_get_regs(r->vcpu, &regs);
			fprintf(r->out, ", w%u = %llu", in->rs, (unsigned long long)regs.x[in->rs]);
		}
		break;
	case MV_A64_FETCH:
		fprintf(r->out, "fetched 0x%08llx", (unsigned long long)o->value[0]);
		break;
	case MV_A64_DC:
		fputs("cache maintenance", r->out);
		break;
	}
	print_writeback(r, in);
	fputc('\n', r->out);
}

static void report_mmio(mmu_run *r, const mv_a64_insn *in, const hv_exit *e, uint64_t value)
{
	char name[8];

	if (!e->mmio.is_write) {
		fprintf(r->out, TAG "read 0x%llx len %u, reply 0x%llx: %s = 0x%llx\n", "mmio",
			(unsigned long long)e->mmio.gpa, e->mmio.len, (unsigned long long)r->mmio_reply,
			reg_name(in, in->rt, name), (unsigned long long)value);
		return;
	}
	fprintf(r->out, TAG "write 0x%llx len %u data 0x%llx\n", "mmio",
		(unsigned long long)e->mmio.gpa, e->mmio.len,
		(unsigned long long)mmu_le_load(e->mmio.data, e->mmio.len));
}

/* A synchronous exception taken to guest EL1. */
static void report_el1(mmu_run *r, const char *tag, const mv_a64_outcome *o)
{
	char desc[256];

	mv_esr_describe(o->esr_el1, desc, sizeof(desc));
	fprintf(r->out, TAG "ESR_EL1 0x%08llx FAR_EL1 0x%llx: %s\n", tag,
		(unsigned long long)o->esr_el1, (unsigned long long)o->far_el1, desc);
}

static void report_exit(mmu_run *r, const hv_exit *e)
{
	if (e->reason == HV_EXIT_ARM_NISV) {
		fprintf(r->out, TAG "esr_iss 0x%llx fault_ipa 0x%llx\n", "nisv",
			(unsigned long long)e->arm_nisv.esr_iss, (unsigned long long)e->arm_nisv.fault_ipa);
		return;
	}
	if (e->reason != HV_EXIT_INTERNAL_ERROR) {
		fprintf(r->out, TAG "%s\n", "exit", hv_exit_reason_name(e->reason));
		return;
	}
	fprintf(r->out, TAG "suberror %u", "internal-error", e->internal.suberror);
	for (unsigned i = 0; i < e->internal.ndata && i < HV_EXIT_MAX_DATA; i++)
		fprintf(r->out, "%s0x%llx", i ? " " : " data ", (unsigned long long)e->internal.data[i]);
	fputc('\n', r->out);
}

void mmu_report_outcome(mmu_run *r, const mv_a64_insn *in, int ret, const mv_a64_outcome *o,
			uint64_t value)
{
	if (ret) {
		fprintf(r->out, TAG "mv_a64_vcpu_exec: %s (%s)\n", "failed", strerror(-ret),
			mmu_errno_name(ret));
		return;
	}
	switch (o->result) {
	case MV_A64_DONE: report_done(r, in, o); break;
	case MV_A64_EXIT:
		if (o->exit->reason == HV_EXIT_MMIO)
			report_mmio(r, in, o->exit, value);
		else
			report_exit(r, o->exit);
		break;
	case MV_A64_GUEST_FAULT: report_el1(r, "guest-fault", o); break;
	case MV_A64_INJECTED: report_el1(r, "injected", o); break;
	case MV_A64_SKIPPED: fprintf(r->out, "    skipped\n"); break;
	}
}

void mmu_report_leaf(mmu_run *r, uint64_t ipa)
{
	uint64_t size, base = 0, memattr;
	mv_pte pte = 0;
	char sz[24];

	fprintf(r->out, "%u: %s\n", r->l->lineno, r->l->text);
	mmu_s2_leaf(r, ipa, &size, &base, &pte);
	if (!size) {
		fprintf(r->out, TAG "no mapping at 0x%llx\n", "s2", (unsigned long long)ipa);
		return;
	}
	memattr = (pte & MV_S2_MEMATTR_MASK) >> MV_S2_MEMATTR_SHIFT;
	fprintf(r->out, TAG "%s %s at 0x%llx: S2AP %s, AF %d, XN %d, MemAttr %s\n", "s2",
		mmu_size_name(size, sz), size == 1ull << mv_a64_vm_s2_config(r->vm)->granule_shift ?
		"page" : "block", (unsigned long long)base,
		mmu_s2ap_names[(pte & MV_S2_S2AP_MASK) >> MV_S2_S2AP_SHIFT], !!(pte & MV_S2_AF),
		!!(pte & MV_S2_XN), memattr == MV_S2_MEMATTR_NORMAL_WB ? "normal" :
		memattr == MV_S2_MEMATTR_DEVICE_nGnRE ? "device" : "other");
}
