/*
 * `expect` lines of `memvirt mmu run` scripts: registers, the last
 * stage-2 abort and what the handler did, how the last access ended,
 * guest memory and stage-2 leaves. A mismatch is one sentence on stderr
 * naming the line; the script goes on and the run ends with status 1.
 */
#include <stdarg.h>
#include <string.h>

#include "cli.h"
#include "mmu_run.h"

static int __attribute__((format(printf, 2, 3))) mismatch(mmu_run *r, const char *fmt, ...)
{
	char why[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	r->mismatches++;
	return cli_error(CLI_FAIL, "%s:%u: %s: %s", r->s->name, r->l->lineno, r->l->text, why);
}

static uint64_t reg_value(mmu_run *r, const mmu_reg *reg)
{
	mv_a64_regs regs;
	mv_a64_sysregs sys;
	uint64_t v;

	if (reg->kind == MMU_REG_SYS) {
		mv_a64_vcpu_get_sysregs(r->vcpu, &sys);
		memcpy(&v, (const char *)&sys + reg->num, sizeof(v));
		return v;
	}
	mv_a64_vcpu_get_regs(r->vcpu, &regs);
	switch (reg->kind) {
	case MMU_REG_X: return regs.x[reg->num];
	case MMU_REG_W: return (uint32_t)regs.x[reg->num];
	case MMU_REG_SP: return regs.sp;
	case MMU_REG_PC: return regs.pc;
	default: return regs.el;
	}
}

/* ESR_EL2 / HPFAR_EL2 / FAR_EL2 of the last stage-2 abort. */
static int expect_abort_reg(mmu_run *r, const mmu_line *l)
{
	static const char *const names[] = { "ESR_EL2", "HPFAR_EL2", "FAR_EL2" };
	unsigned i = l->expect.kind - MMU_EXP_ESR;
	uint64_t got = i == 0 ? r->last.ev.esr_el2 : i == 1 ? r->last.ev.hpfar_el2 : r->last.ev.far_el2;

	if (!r->last.nr_aborts)
		return mismatch(r, "the last access took no stage-2 abort");
	if (got != l->expect.value)
		return mismatch(r, "%s is 0x%llx", names[i], (unsigned long long)got);
	return 0;
}

static int expect_action(mmu_run *r, const mmu_line *l)
{
	const mv_a64_abort_event *ev = &r->last.ev;
	char sz[24];

	if (!r->last.nr_aborts)
		return mismatch(r, "the last access took no stage-2 abort");
	if (ev->action == l->expect.action &&
	    (!l->expect.block || ev->map_size == l->expect.block))
		return 0;
	if (ev->action == MV_A64_ACT_MAPPED)
		return mismatch(r, "the handler mapped %s", mmu_size_name(ev->map_size, sz));
	return mismatch(r, "the handler's action was %s", mv_a64_action_name(ev->action));
}

static int expect_mem(mmu_run *r, const mmu_line *l)
{
	uint64_t got;

	if (!mmu_guest_read(r, l->expect.addr, l->expect.width, &got))
		return mmu_fail(r, CLI_USAGE, "expect: no memslot holds IPA 0x%llx",
				(unsigned long long)l->expect.addr);
	if (got != l->expect.value)
		return mismatch(r, "IPA 0x%llx holds 0x%llx", (unsigned long long)l->expect.addr,
				(unsigned long long)got);
	return 0;
}

static int expect_s2(mmu_run *r, const mmu_line *l)
{
	uint64_t size, base;
	mv_pte pte = 0;
	int ap, af;
	char sz[24];

	mmu_s2_leaf(r, l->expect.addr, &size, &base, &pte);
	ap = (int)((pte & MV_S2_S2AP_MASK) >> MV_S2_S2AP_SHIFT);
	af = !!(pte & MV_S2_AF);
	if (!size && l->expect.block)
		return mismatch(r, "no stage-2 leaf maps IPA 0x%llx", (unsigned long long)l->expect.addr);
	if (size != l->expect.block || (l->expect.ap >= 0 && ap != l->expect.ap) ||
	    (l->expect.af >= 0 && af != l->expect.af))
		return mismatch(r, "IPA 0x%llx is mapped by a %s leaf with S2AP %s, AF %d",
				(unsigned long long)l->expect.addr, mmu_size_name(size, sz), mmu_s2ap_names[ap], af);
	return 0;
}

int mmu_expect(mmu_run *r, const mmu_line *l)
{
	uint64_t got;

	r->expects++;
	if (!r->last.ran && l->expect.kind >= MMU_EXP_ESR && l->expect.kind <= MMU_EXP_RESULT)
		return mismatch(r, "no access ran before it");
	switch (l->expect.kind) {
	case MMU_EXP_REG:
		got = reg_value(r, &l->expect.reg);
		if (got != l->expect.value)
			return mismatch(r, "%s is 0x%llx", l->expect.reg.name, (unsigned long long)got);
		return 0;
	case MMU_EXP_ESR:
	case MMU_EXP_HPFAR:
	case MMU_EXP_FAR:
		return expect_abort_reg(r, l);
	case MMU_EXP_ABORTS:
		if (r->last.nr_aborts != l->expect.value)
			return mismatch(r, "the last access took %u stage-2 aborts", r->last.nr_aborts);
		return 0;
	case MMU_EXP_ACTION:
		return expect_action(r, l);
	case MMU_EXP_RESULT:
		if (r->last.result != l->expect.result)
			return mismatch(r, "the last access ended with %s", mmu_result_names[r->last.result]);
		return 0;
	case MMU_EXP_MEM:
		return expect_mem(r, l);
	default:
		return expect_s2(r, l);
	}
}
