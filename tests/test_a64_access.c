/*
 * The access engine of the arm64 soft vCPU (mv_a64_vcpu_exec): loads,
 * stores, fetches and DC through the guest's stage 1 and the VM's stage 2,
 * and the exact registers every fault is reported with.
 *
 * Most tests switch the VM's abort handler off (every stage-2 abort is
 * reported through the trace callback and the instruction skipped), so the
 * ESR_EL2 / HPFAR_EL2 / FAR_EL2 values are those the engine built, with
 * nothing done about them. Stage-2 layouts come from mv_a64_vm_s2_install;
 * guest stage-1 tables are written by hand into guest RAM. Expected
 * syndromes are spelled out bit by bit from the ARM ARM (D17.2 ESR_EL2,
 * ISS encoding for Data / Instruction Aborts), some as literal numbers.
 */
#include "testutil.h"

#include "soft/arm64/a64_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define SZ_4K (1ull << 12)
#define SZ_2M (1ull << 21)
#define SZ_1G (1ull << 30)

#define RAM_IPA 0x40000000ull      /* 16 MiB of RAM, 2 MiB-aligned host memory */
#define RAM_SIZE (16ull << 20)
#define TABLES_IPA (RAM_IPA + 0x100000)  /* guest stage-1 table pages are allocated from here */
#define DATA_IPA (RAM_IPA + 0x400000)    /* data pages for stage-1 tests */
#define BIG_IPA 0xc0000000ull      /* a 1 GiB block for level-1 tests */
#define TEST_PC 0x40001000ull
#define TEST_VBAR 0x40080000ull
#define MMIO_IPA 0x09000000ull     /* no memslot there */

/* ESR_ELx fields, written out (ARM ARM D17.2 ESR_EL2). */
#define EC_IABT_LOW 0x20ull
#define EC_IABT_CUR 0x21ull
#define EC_DABT_LOW 0x24ull
#define EC_DABT_CUR 0x25ull
#define IL (1ull << 25)
#define ISV (1ull << 24)
#define SSE (1ull << 21)
#define SF (1ull << 15)
#define AR (1ull << 14)
#define CM (1ull << 8)
#define S1PTW (1ull << 7)
#define WNR (1ull << 6)

/* Guest stage-1 descriptor bits, 4 KiB granule (ARM ARM D8.3). */
#define D_VALID 1ull
#define D_TABLE 3ull
#define D_PAGE 3ull
#define D_BLOCK 1ull
#define D_AP_EL0 (1ull << 6)
#define D_AP_RO (1ull << 7)
#define D_AF (1ull << 10)
#define D_PXN (1ull << 53)
#define D_UXN (1ull << 54)
#define T_PXN (1ull << 59)
#define T_UXN (1ull << 60)
#define T_NO_EL0 (1ull << 61)
#define T_RO (1ull << 62)
#define D_ADDR 0x0000fffffffff000ull

/* TCR_EL1 for T0SZ = T1SZ = 16 (48-bit VAs, start level 0), TG1 = 4 KiB, IPS = 48 bits. */
#define TCR_48 (16ull | 16ull << 16 | 2ull << 30 | 5ull << 32)

/* ------------------------------------------------------------------ */
/* Fixture                                                              */

typedef struct fx {
	mv_a64_vm *vm;
	mv_a64_vcpu *vcpu;
	tu_region ram;
	tu_region big;                /* 1 GiB-aligned, for level-1 blocks (touched sparsely) */
	uint64_t next_table;       /* IPA of the next free stage-1 table page */
	unsigned nev;              /* trace: aborts seen */
	mv_a64_abort_event ev;     /* trace: the last one */
} fx;

static void trace(void *arg, const mv_a64_abort_event *ev)
{
	fx *f = arg;

	f->nev++;
	f->ev = *ev;
}

static uint64_t ram_hva(const fx *f, uint64_t ipa)
{
	return (uint64_t)(uintptr_t)f->ram.base + (ipa - RAM_IPA);
}

static void *ram_ptr(const fx *f, uint64_t ipa)
{
	return f->ram.base + (ipa - RAM_IPA);
}

static void reset_cpu(fx *f, unsigned el)
{
	mv_a64_regs r = { .pc = TEST_PC, .el = (uint8_t)el };
	mv_a64_sysregs s = { .vbar_el1 = TEST_VBAR };

	mv_a64_vcpu_set_regs(f->vcpu, &r);
	mv_a64_vcpu_set_sysregs(f->vcpu, &s);
}

static fx *fx_new(const mv_a64_vm_config *cfg)
{
	fx *f = calloc(1, sizeof(*f));
	mv_error err = { 0 };

	assert_non_null(f);
	assert_int_equal(mv_a64_vm_new(cfg, &f->vm, &err), 0);
	assert_int_equal(mv_a64_vcpu_new(f->vm, 0, &f->vcpu, &err), 0);
	tu_region_map(&f->ram, RAM_SIZE, SZ_2M, PROT_READ | PROT_WRITE);
	f->next_table = TABLES_IPA;
	mv_a64_vcpu_set_trace(f->vcpu, trace, f);
	mv_a64_vm_set_handler(f->vm, false);
	reset_cpu(f, 1);
	return f;
}

static int fx_setup(void **state)
{
	*state = fx_new(NULL);
	return 0;
}

static int fx_teardown(void **state)
{
	fx *f = *state;

	mv_a64_vcpu_free(f->vcpu);
	mv_a64_vm_free(f->vm);
	tu_region_unmap(&f->ram);
	tu_region_unmap(&f->big);
	free(f);
	return 0;
}

/* Stage 2: [ipa, ipa + size) of RAM with @prot (MV_S2_PROT_*), AF unless @old, at @level. */
static void s2_map(fx *f, uint64_t ipa, uint64_t size, unsigned prot, bool old, int level)
{
	uint64_t attr = mv_s2_prot_attr(prot) & ~(old ? MV_S2_AF : 0);
	mv_error err = { 0 };

	if (mv_a64_vm_s2_install(f->vm, ipa, size, ram_hva(f, ipa), attr, level, &err))
		fail_msg("s2 install: %s", err.msg);
}

static void s2_map_ram(fx *f)
{
	s2_map(f, RAM_IPA, RAM_SIZE, MV_S2_PROT_R | MV_S2_PROT_W | MV_S2_PROT_X, false, 2);
}

/* A 1 GiB block at BIG_IPA over a 1 GiB-aligned host reservation. */
static void s2_map_big(fx *f, uint64_t attr)
{
	mv_error err = { 0 };

	tu_region_map(&f->big, SZ_1G, SZ_1G, PROT_READ | PROT_WRITE);
	if (mv_a64_vm_s2_install(f->vm, BIG_IPA, SZ_1G, (uint64_t)(uintptr_t)f->big.base, attr, 1,
				 &err))
		fail_msg("s2 install: %s", err.msg);
}

/* ------------------------------------------------------------------ */
/* Guest stage-1 tables (4 levels, T0SZ = T1SZ = 16)                    */

static uint64_t s1_new_table(fx *f)
{
	uint64_t ipa = f->next_table;

	f->next_table += SZ_4K;
	memset(ram_ptr(f, ipa), 0, SZ_4K);
	return ipa;
}

/* The descriptor slot for @va at @level under @root, creating tables (with @tattr) on the way. */
static uint64_t *s1_slot(fx *f, uint64_t root, uint64_t va, int level, uint64_t tattr)
{
	uint64_t table = root;

	for (int l = 0; l < level; l++) {
		uint64_t *e = (uint64_t *)ram_ptr(f, table) + ((va >> (39 - 9 * l)) & 511);

		if (!(*e & D_VALID))
			*e = s1_new_table(f) | D_TABLE | tattr;
		table = *e & D_ADDR;
	}
	return (uint64_t *)ram_ptr(f, table) + ((va >> (39 - 9 * level)) & 511);
}

/* M = 1 with TTBR0 = @root0, TTBR1 = @root1. */
static void s1_enable(fx *f, uint64_t root0, uint64_t root1, uint64_t tcr)
{
	mv_a64_sysregs s = { .sctlr_el1 = 1, .tcr_el1 = tcr, .ttbr0_el1 = root0,
			     .ttbr1_el1 = root1, .vbar_el1 = TEST_VBAR };

	mv_a64_vcpu_set_sysregs(f->vcpu, &s);
}

/* The guest changed its tables or TCR: what a context switch would do (TLB flushed). */
static void s1_resync(fx *f)
{
	mv_a64_sysregs s;

	mv_a64_vcpu_get_sysregs(f->vcpu, &s);
	mv_a64_vcpu_set_sysregs(f->vcpu, &s);
}

/* ------------------------------------------------------------------ */
/* Running instructions                                                 */

static mv_a64_outcome run(fx *f, const char *text)
{
	mv_a64_outcome out;
	mv_a64_insn in;
	mv_error err = { 0 };
	int r;

	if (mv_a64_insn_parse(text, &in, &err))
		fail_msg("parse '%s': %s", text, err.msg);
	r = mv_a64_vcpu_exec(f->vcpu, &in, &out);
	if (r)
		fail_msg("exec '%s': %d", text, r);
	return out;
}

static mv_a64_outcome run_insn(fx *f, const mv_a64_insn *in)
{
	mv_a64_outcome out;

	assert_int_equal(mv_a64_vcpu_exec(f->vcpu, in, &out), 0);
	return out;
}

/* @text completes (DONE, PC + 4); PC is put back for the next one. */
static mv_a64_outcome run_done(fx *f, const char *text)
{
	mv_a64_outcome out = run(f, text);

	if (out.result != MV_A64_DONE)
		fail_msg("'%s': result %d, want DONE", text, out.result);
	assert_int_equal(f->vcpu->regs.pc, TEST_PC + 4);
	f->vcpu->regs.pc = TEST_PC;
	return out;
}

static void set_x(fx *f, unsigned n, uint64_t v)
{
	f->vcpu->regs.x[n] = v;
}

static uint64_t get_x(fx *f, unsigned n)
{
	return f->vcpu->regs.x[n];
}

/* The run was skipped by the handler-off mode after exactly one abort with these registers. */
static void assert_abort(fx *f, const mv_a64_outcome *out, uint64_t esr, uint64_t ipa, uint64_t far)
{
	char want[160], got[160];

	assert_int_equal(out->result, MV_A64_SKIPPED);
	assert_int_equal(f->nev, 1);
	if (f->ev.esr_el2 != esr) {
		mv_esr_describe(esr, want, sizeof(want));
		mv_esr_describe(f->ev.esr_el2, got, sizeof(got));
		fail_msg("ESR_EL2 0x%" PRIx64 " [%s], want 0x%" PRIx64 " [%s]", f->ev.esr_el2, got, esr,
			 want);
	}
	assert_int_equal(f->ev.hpfar_el2, (ipa >> 12) << 4);
	assert_int_equal(f->ev.far_el2, far);
	assert_int_equal(f->vcpu->regs.pc, TEST_PC + 4);
	f->nev = 0;
	f->vcpu->regs.pc = TEST_PC;
}

/* A stage-1 fault was taken to EL1 from @from_el with @esr / @far. */
static void assert_guest_fault(fx *f, const mv_a64_outcome *out, uint64_t esr, uint64_t far,
			       unsigned from_el)
{
	char want[160], got[160];

	assert_int_equal(out->result, MV_A64_GUEST_FAULT);
	assert_int_equal(f->nev, 0);
	if (out->esr_el1 != esr) {
		mv_esr_describe(esr, want, sizeof(want));
		mv_esr_describe(out->esr_el1, got, sizeof(got));
		fail_msg("ESR_EL1 0x%" PRIx64 " [%s], want 0x%" PRIx64 " [%s]", out->esr_el1, got, esr,
			 want);
	}
	assert_int_equal(f->vcpu->sys.esr_el1, esr);
	assert_int_equal(out->far_el1, far);
	assert_int_equal(f->vcpu->sys.far_el1, far);
	assert_int_equal(f->vcpu->sys.elr_el1, TEST_PC);
	assert_int_equal(f->vcpu->regs.pc, TEST_VBAR + (from_el ? 0x200 : 0x400));
	assert_int_equal(f->vcpu->regs.el, 1);
	f->vcpu->regs.pc = TEST_PC;
	f->vcpu->regs.el = (uint8_t)from_el;
}

static uint64_t dabt(uint64_t fsc)
{
	return EC_DABT_LOW << 26 | IL | fsc;
}

static uint64_t iabt(uint64_t fsc)
{
	return EC_IABT_LOW << 26 | IL | fsc;
}

/* ISV = 1 syndrome, by hand: SAS = log2(size). */
static uint64_t dabt_isv(uint64_t fsc, unsigned size, bool sse, unsigned srt, bool sf, bool ar,
			 bool wnr)
{
	uint64_t sas = size == 1 ? 0 : size == 2 ? 1 : size == 4 ? 2 : 3;

	return dabt(fsc) | ISV | sas << 22 | (sse ? SSE : 0) | (uint64_t)srt << 16 | (sf ? SF : 0) |
	       (ar ? AR : 0) | (wnr ? WNR : 0);
}

/* ------------------------------------------------------------------ */
/* ISS fields of stage-2 data aborts (stage 1 off: VA = IPA)            */

/* The ARM ARM's own example, as a number: ldrsh w3, [x2, #4] on an unmapped page. */
static void test_iss_literal(void **state)
{
	fx *f = *state;
	mv_a64_outcome out;

	set_x(f, 2, 0x40000ffcull);
	out = run(f, "ldrsh w3, [x2, #4]");
	/* EC 0x24, IL, ISV, SAS 01, SSE, SRT 3, SF 0, AR 0, WnR 0, DFSC 0x05 (nothing in the 1 GiB). */
	assert_abort(f, &out, 0x93630005ull, 0x40001000ull, 0x40001000ull);
	set_x(f, 2, 0x40000000ull);
	out = run(f, "stlr x30, [x2]");
	/* EC 0x24, IL, ISV, SAS 11, SRT 30, SF, AR, WnR, DFSC 0x05. */
	assert_abort(f, &out, 0x93dec045ull, 0x40000000ull, 0x40000000ull);
}

/* Every size / SSE / SF / AR / SRT / direction combination of a single-register access. */
static void test_iss_combinations(void **state)
{
	static const unsigned srts[] = { 0, 7, 30, 31 };
	fx *f = *state;
	unsigned n = 0;

	for (unsigned size = 1; size <= 8; size *= 2)
		for (unsigned bits = 0; bits < 16; bits++)
			for (unsigned k = 0; k < 4; k++) {
				mv_a64_insn in = {
					.op = (bits & 1) ? MV_A64_STORE : MV_A64_LOAD,
					.size = (uint8_t)size,
					.rt = (uint8_t)srts[k],
					.rn = MV_A64_RN_ABS,
					.addr = 0x80000000ull + n * 8,
					.sign_extend = (bits & 2) != 0,
					.sf = (bits & 4) != 0,
					.acq_rel = (bits & 8) != 0,
				};
				mv_a64_outcome out;

				if ((in.sign_extend && (in.op == MV_A64_STORE || size == 8)) ||
				    (size == 8 && !in.sf))
					continue;
				out = run_insn(f, &in);
				assert_abort(f, &out,
					     dabt_isv(0x05, size, in.sign_extend, in.rt, in.sf,
						      in.acq_rel, in.op == MV_A64_STORE),
					     in.addr, in.addr);
				n++;
			}
	/* Sizes 1-4: 8 load and 4 store forms; size 8: 2 and 2; each with 4 SRTs. */
	assert_int_equal(n, 3 * 12 * 4 + 4 * 4);
}

/* Pairs, writeback, exclusives and SIMD&FP registers give no syndrome (ISV = 0). */
static void test_isv_zero(void **state)
{
	static const struct {
		const char *text;
		bool wnr;
		uint64_t va;
	} cases[] = {
		{ "ldp x4, x5, [x1]", false, 0x80000100 },  { "stp w4, w5, [x1]", true, 0x80000100 },
		{ "ldr x7, [x1, #8]!", false, 0x80000108 }, { "str x7, [x1], #8", true, 0x80000100 },
		{ "ldxr x2, [x1]", false, 0x80000100 },     { "stxr w3, x2, [x1]", true, 0x80000100 },
		{ "ldaxr w2, [x1]", false, 0x80000100 },    { "str q0, [x1]", true, 0x80000100 },
		{ "ldr d1, [x1]", false, 0x80000100 },      { "ldp s2, s3, [x1]", false, 0x80000100 },
		{ "ldrb w9, [x1, #1]!", false, 0x80000101 },
	};
	fx *f = *state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		mv_a64_outcome out;

		set_x(f, 1, 0x80000100ull);
		out = run(f, cases[i].text);
		assert_int_equal(get_x(f, 1), 0x80000100ull);    /* skipped: no writeback */
		assert_abort(f, &out, dabt(0x05) | (cases[i].wnr ? WNR : 0), cases[i].va, cases[i].va);
	}
}

/* DC CIVAC: CM = 1 and WnR = 1, no syndrome. */
static void test_cache_maintenance(void **state)
{
	fx *f = *state;
	mv_a64_outcome out;

	set_x(f, 4, 0x80000040ull);
	out = run(f, "dc civac, x4");
	assert_abort(f, &out, dabt(0x05) | CM | WNR, 0x80000040ull, 0x80000040ull);
	/* DC needs read permission only: a read-only page is fine, a write-only one faults. */
	s2_map(f, RAM_IPA, SZ_4K, MV_S2_PROT_R, false, 3);
	s2_map(f, RAM_IPA + SZ_4K, SZ_4K, MV_S2_PROT_W, false, 3);
	set_x(f, 4, RAM_IPA + 0x80);
	out = run(f, "dc civac, x4");
	assert_int_equal(out.result, MV_A64_DONE);
	assert_int_equal(f->vcpu->regs.pc, TEST_PC + 4);
	f->vcpu->regs.pc = TEST_PC;
	set_x(f, 4, RAM_IPA + SZ_4K + 0x80);
	out = run(f, "dc civac, x4");
	assert_abort(f, &out, dabt(0x0f) | CM | WNR, RAM_IPA + SZ_4K, RAM_IPA + SZ_4K + 0x80);
}

/* Instruction fetches: Instruction Abort, IFSC only (no ISV, WnR, CM). */
static void test_fetch_abort(void **state)
{
	fx *f = *state;
	mv_a64_outcome out = run(f, "fetch 0x80001000");

	assert_abort(f, &out, iabt(0x05), 0x80001000ull, 0x80001000ull);
	assert_int_equal(out.result, MV_A64_SKIPPED);
}

/* ------------------------------------------------------------------ */
/* Fault status codes                                                   */

/* 0x04..0x07: the level of the first invalid entry; level 0 beyond the 40-bit IPA space. */
static void test_translation_levels(void **state)
{
	fx *f = *state;
	mv_a64_outcome out;

	s2_map(f, RAM_IPA, SZ_4K, MV_S2_PROT_R, false, 3);
	out = run(f, "ldr x1, [0x10000000000]");              /* IPA 2^40 */
	assert_abort(f, &out, dabt_isv(0x04, 8, 0, 1, 1, 0, 0), 1ull << 40, 1ull << 40);
	out = run(f, "ldr x1, [0x80000000]");                 /* empty 1 GiB */
	assert_abort(f, &out, dabt_isv(0x05, 8, 0, 1, 1, 0, 0), 0x80000000ull, 0x80000000ull);
	out = run(f, "ldr x1, [0x40200008]");                 /* empty 2 MiB next to the page */
	assert_abort(f, &out, dabt_isv(0x06, 8, 0, 1, 1, 0, 0), 0x40200000ull, 0x40200008ull);
	out = run(f, "ldr x1, [0x40001010]");                 /* empty page next to it */
	assert_abort(f, &out, dabt_isv(0x07, 8, 0, 1, 1, 0, 0), 0x40001000ull, 0x40001010ull);
	out = run(f, "ldr x1, [0x40000010]");
	assert_int_equal(out.result, MV_A64_DONE);
}

/* 0x09..0x0b: AF = 0 on a 1 GiB block, a 2 MiB block and a page. */
static void test_access_flag_levels(void **state)
{
	fx *f = *state;
	mv_a64_outcome out;

	s2_map_big(f, mv_s2_prot_attr(MV_S2_PROT_R | MV_S2_PROT_W) & ~MV_S2_AF);
	s2_map(f, RAM_IPA, SZ_2M, MV_S2_PROT_R | MV_S2_PROT_W, true, 2);
	s2_map(f, RAM_IPA + SZ_2M, SZ_4K, MV_S2_PROT_R | MV_S2_PROT_W, true, 3);
	out = run(f, "ldr w1, [0xc1234564]");
	assert_abort(f, &out, dabt_isv(0x09, 4, 0, 1, 0, 0, 0), 0xc1234000ull, 0xc1234564ull);
	out = run(f, "strh w2, [0x40100002]");
	assert_abort(f, &out, dabt_isv(0x0a, 2, 0, 2, 0, 0, 1), 0x40100000ull, 0x40100002ull);
	out = run(f, "fetch 0x40200ffc");
	assert_abort(f, &out, iabt(0x0b), 0x40200000ull, 0x40200ffcull);
}

/* 0x0d..0x0f: writes to S2AP = RO, reads of S2AP = WO, fetches of XN, at each level. */
static void test_permission_levels(void **state)
{
	fx *f = *state;
	mv_a64_outcome out;

	s2_map_big(f, mv_s2_prot_attr(MV_S2_PROT_R));
	s2_map(f, RAM_IPA, SZ_2M, MV_S2_PROT_W, false, 2);
	s2_map(f, RAM_IPA + SZ_2M, SZ_4K, MV_S2_PROT_R | MV_S2_PROT_W, false, 3);
	out = run(f, "str x3, [0xc0000008]");
	assert_abort(f, &out, dabt_isv(0x0d, 8, 0, 3, 1, 0, 1), 0xc0000000ull, 0xc0000008ull);
	out = run(f, "ldrsb x4, [0x40000001]");
	assert_abort(f, &out, dabt_isv(0x0e, 1, 1, 4, 1, 0, 0), 0x40000000ull, 0x40000001ull);
	out = run(f, "fetch 0x40200000");
	assert_abort(f, &out, iabt(0x0f), 0x40200000ull, 0x40200000ull);
	out = run(f, "fetch 0xc0000000");                      /* XN on the block too */
	assert_abort(f, &out, iabt(0x0d), 0xc0000000ull, 0xc0000000ull);
	/* What is allowed goes through. */
	out = run(f, "ldr x1, [0xc0000008]");
	assert_int_equal(out.result, MV_A64_DONE);
	f->vcpu->regs.pc = TEST_PC;
	out = run(f, "str x1, [0x40000008]");
	assert_int_equal(out.result, MV_A64_DONE);
}

/* The stage-2 leaf for @ipa at @level, by hand from the root (own index arithmetic). */
static uint64_t *s2_slot(fx *f, uint64_t ipa, int want)
{
	const mv_s2_pgt *s2 = &f->vm->s2;
	uint64_t *table = (uint64_t *)(uintptr_t)s2->pgt.root_pa;

	for (int l = s2->pgt.start_level;; l++) {
		unsigned shift = 12 + 9 * (3 - l);
		unsigned bits = l == s2->pgt.start_level ? s2->pgt.ia_bits - shift : 9;
		uint64_t *e = &table[(ipa >> shift) & ((1ull << bits) - 1)];

		if (l == want)
			return e;
		table = (uint64_t *)(uintptr_t)(*e & D_ADDR);
	}
}

/*
 * 0x02 / 0x03: a leaf whose output address is above VTCR_EL2.PS (40 bits
 * here). Leaves are installed below PS over host memory placed low, then
 * an output address bit above PS is set by hand.
 */
static void test_address_size(void **state)
{
	mv_s2_config cfg = { 0 };
	mv_a64_vm_config vc = { 0 };
	mv_a64_outcome out;
	void *low;
	fx *f;

	(void)state;
	assert_int_equal(mv_s2_config_for_ipa(40, 12, &cfg), 0);
	cfg.oa_bits = 40;
	vc.vtcr = mv_vtcr_encode(&cfg);
	low = mmap((void *)0x60000000ull, 4 * SZ_2M, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (low == MAP_FAILED) {
		printf("SKIP: no free host memory below 2^40 at 0x60000000 for a 40-bit PS\n");
		skip();
	}
	f = fx_new(&vc);
	assert_int_equal(mv_a64_vm_s2_install(f->vm, RAM_IPA, SZ_2M, 0x60000000ull,
					      mv_s2_prot_attr(MV_S2_PROT_R), 2, NULL), 0);
	assert_int_equal(mv_a64_vm_s2_install(f->vm, RAM_IPA + SZ_2M, SZ_4K, 0x60200000ull,
					      mv_s2_prot_attr(MV_S2_PROT_R), 3, NULL), 0);
	*s2_slot(f, RAM_IPA, 2) |= 1ull << 40;
	*s2_slot(f, RAM_IPA + SZ_2M, 3) |= 1ull << 47;
	out = run(f, "ldr x1, [0x40000100]");
	assert_abort(f, &out, dabt_isv(0x02, 8, 0, 1, 1, 0, 0), RAM_IPA, 0x40000100ull);
	out = run(f, "ldr x1, [0x40200100]");
	assert_abort(f, &out, dabt_isv(0x03, 8, 0, 1, 1, 0, 0), RAM_IPA + SZ_2M, 0x40200100ull);
	*s2_slot(f, RAM_IPA, 2) &= ~(1ull << 40);
	*s2_slot(f, RAM_IPA + SZ_2M, 3) &= ~(1ull << 47);
	fx_teardown((void **)&f);
	munmap(low, 4 * SZ_2M);
}

/* 0x10: a host page marked for external aborts, on loads, stores and fetches; not on DC. */
static void test_external_abort(void **state)
{
	fx *f = *state;
	mv_a64_outcome out;

	s2_map_ram(f);
	assert_int_equal(mv_soft_host_set_sea(mv_a64_vm_host(f->vm), ram_hva(f, RAM_IPA + 0x5000), true),
			 0);
	*(uint64_t *)ram_ptr(f, RAM_IPA + 0x5008) = 0x1122334455667788ull;
	out = run(f, "ldr x1, [0x40005008]");
	assert_abort(f, &out, dabt(0x10), RAM_IPA + 0x5000, 0x40005008ull);
	out = run(f, "str x1, [0x40005010]");
	assert_abort(f, &out, dabt(0x10) | WNR, RAM_IPA + 0x5000, 0x40005010ull);
	out = run(f, "fetch 0x40005ffc");
	assert_abort(f, &out, iabt(0x10), RAM_IPA + 0x5000, 0x40005ffcull);
	out = run(f, "dc civac, 0x40005000");
	assert_int_equal(out.result, MV_A64_DONE);
	assert_int_equal(f->nev, 0);
	f->vcpu->regs.pc = TEST_PC;
	/* The TLB hit path checks it too. */
	assert_int_equal(mv_soft_host_set_sea(mv_a64_vm_host(f->vm), ram_hva(f, RAM_IPA + 0x5000), false),
			 0);
	out = run(f, "ldr x1, [0x40005008]");
	assert_int_equal(out.result, MV_A64_DONE);
	assert_int_equal(out.value[0], 0x1122334455667788ull);
	f->vcpu->regs.pc = TEST_PC;
	assert_int_equal(mv_soft_host_set_sea(mv_a64_vm_host(f->vm), ram_hva(f, RAM_IPA + 0x5000), true),
			 0);
	out = run(f, "ldr x1, [0x40005008]");
	assert_abort(f, &out, dabt(0x10), RAM_IPA + 0x5000, 0x40005008ull);
}

/* ------------------------------------------------------------------ */
/* Stage 1                                                              */

#define VA_LOW 0x0000001234567000ull   /* TTBR0 */
#define VA_HIGH 0xffff800000201000ull  /* TTBR1 */

/* RAM mapped at stage 2, two roots, M = 1; @va maps DATA_IPA with @attr at level 3. */
static uint64_t *s1_setup_page(fx *f, uint64_t va, uint64_t attr)
{
	uint64_t root0, root1, *e;

	s2_map_ram(f);
	root0 = s1_new_table(f);
	root1 = s1_new_table(f);
	e = s1_slot(f, (va >> 55) & 1 ? root1 : root0, va, 3, 0);
	*e = DATA_IPA | D_PAGE | attr;
	s1_enable(f, root0, root1, TCR_48);
	return e;
}

/* A load through both stages: FAR = VA, HPFAR = IPA, on stage-2 faults as on success. */
static void test_s1_two_stages(void **state)
{
	fx *f = *state;
	mv_a64_outcome out;
	uint64_t root;

	s1_setup_page(f, VA_LOW, D_AF);
	*(uint64_t *)ram_ptr(f, DATA_IPA + 0x18) = 0xfeedfacecafebeefull;
	out = run(f, "ldr x1, [0x1234567018]");
	assert_int_equal(out.result, MV_A64_DONE);
	assert_int_equal(out.value[0], 0xfeedfacecafebeefull);
	assert_int_equal(get_x(f, 1), 0xfeedfacecafebeefull);
	assert_int_equal(f->vcpu->regs.pc, TEST_PC + 4);
	f->vcpu->regs.pc = TEST_PC;
	/* A TTBR1 page whose output IPA has no stage-2 mapping. */
	root = f->vcpu->sys.ttbr1_el1;
	*s1_slot(f, root, VA_HIGH, 3, 0) = 0x80003000ull | D_PAGE | D_AF;
	s1_resync(f);
	out = run(f, "str w5, [0xffff800000201ff0]");
	assert_abort(f, &out, dabt_isv(0x05, 4, 0, 5, 0, 0, 1), 0x80003000ull, VA_HIGH + 0xff0);
}

/* Stage-2 faults on table reads: S1PTW = 1, HPFAR = the table's IPA, WnR as the instruction. */
static void test_s1ptw(void **state)
{
	fx *f = *state;
	uint64_t root0, l1, *e;
	mv_a64_outcome out;

	s2_map(f, RAM_IPA, SZ_2M, MV_S2_PROT_R | MV_S2_PROT_W, false, 2);
	root0 = s1_new_table(f);
	/* The level-1 table lives at an IPA nothing maps (translation, level 1). */
	*(uint64_t *)ram_ptr(f, root0) = 0x80000000ull | D_TABLE;
	s1_enable(f, root0, s1_new_table(f), TCR_48);
	out = run(f, "ldr x1, [0x1000]");
	assert_abort(f, &out, dabt(0x05) | S1PTW, 0x80000000ull, 0x1000);
	out = run(f, "str x1, [0x1008]");
	assert_abort(f, &out, dabt(0x05) | S1PTW | WNR, 0x80000000ull, 0x1008);
	out = run(f, "fetch 0x2000");
	assert_abort(f, &out, iabt(0x05) | S1PTW, 0x80000000ull, 0x2000);
	out = run(f, "dc civac, 0x3000");
	assert_abort(f, &out, dabt(0x05) | S1PTW | CM | WNR, 0x80000000ull, 0x3000);
	/* A level-1 table in a page with AF = 0, then in a write-only page. */
	l1 = RAM_IPA + SZ_2M;
	s2_map(f, l1, SZ_4K, MV_S2_PROT_R, true, 3);
	*(uint64_t *)ram_ptr(f, root0) = l1 | D_TABLE;
	memset(ram_ptr(f, l1), 0, SZ_4K);
	s1_resync(f);
	out = run(f, "ldrb w1, [0x1000]");
	assert_abort(f, &out, dabt(0x0b) | S1PTW, l1, 0x1000);
	e = s2_slot(f, l1, 3);
	*e = (*e | MV_S2_AF) & ~MV_S2_S2AP_R;
	*e |= MV_S2_S2AP_W;
	out = run(f, "ldrb w1, [0x1000]");
	assert_abort(f, &out, dabt(0x0f) | S1PTW, l1, 0x1000);
	/* Readable: the walk goes on and ends at the empty level-1 table (a stage-1 fault). */
	*e |= MV_S2_S2AP_R;
	out = run(f, "ldrb w1, [0x1000]");
	assert_guest_fault(f, &out, EC_DABT_CUR << 26 | IL | 0x05, 0x1000, 1);
}

/* Stage-1 translation faults: the level of the invalid entry; level 0 outside TxSZ or with EPDx. */
static void test_s1_translation(void **state)
{
	fx *f = *state;
	mv_a64_outcome out;
	uint64_t *e = s1_setup_page(f, VA_LOW, D_AF);
	uint64_t desc = *e;

	*e = 0;
	s1_resync(f);
	out = run(f, "ldr x1, [0x1234567000]");
	assert_guest_fault(f, &out, EC_DABT_CUR << 26 | IL | 0x07, VA_LOW, 1);
	out = run(f, "ldr x1, [0x1234800000]");                 /* empty level-2 entry */
	assert_guest_fault(f, &out, EC_DABT_CUR << 26 | IL | 0x06, 0x1234800000ull, 1);
	out = run(f, "ldr x1, [0x7ffff0000000]");               /* empty level-0 entry */
	assert_guest_fault(f, &out, EC_DABT_CUR << 26 | IL | 0x04, 0x7ffff0000000ull, 1);
	out = run(f, "ldr x1, [0x1000000000000]");              /* VA[63:48] not all 0 or 1 */
	assert_guest_fault(f, &out, EC_DABT_CUR << 26 | IL | 0x04, 1ull << 48, 1);
	/* T0SZ outside 16..39 (4 KiB, no FEAT_LVA / FEAT_TTST): level 0, without a walk. */
	f->vcpu->sys.tcr_el1 = (TCR_48 & ~63ull) | 12;
	s1_resync(f);
	out = run(f, "ldr x1, [0x1234]");
	assert_guest_fault(f, &out, EC_DABT_CUR << 26 | IL | 0x04, 0x1234, 1);
	f->vcpu->sys.tcr_el1 = (TCR_48 & ~63ull) | 40;
	s1_resync(f);
	out = run(f, "ldr x1, [0x1234]");
	assert_guest_fault(f, &out, EC_DABT_CUR << 26 | IL | 0x04, 0x1234, 1);
	f->vcpu->sys.tcr_el1 = TCR_48;
	*e = desc;
	f->vcpu->sys.tcr_el1 |= 1ull << 7;                      /* EPD0 */
	s1_resync(f);
	out = run(f, "str x1, [0x1234567000]");
	assert_guest_fault(f, &out, EC_DABT_CUR << 26 | IL | WNR | 0x04, VA_LOW, 1);
	/* A block descriptor at level 0 is invalid; at levels 1 and 2 it maps. */
	f->vcpu->sys.tcr_el1 &= ~(1ull << 7);
	s1_resync(f);
	*s1_slot(f, f->vcpu->sys.ttbr0_el1, 0x008000000000ull, 0, 0) = D_BLOCK | D_AF;
	out = run(f, "ldr x1, [0x8000000000]");
	assert_guest_fault(f, &out, EC_DABT_CUR << 26 | IL | 0x04, 0x8000000000ull, 1);
	*s1_slot(f, f->vcpu->sys.ttbr0_el1, 0x40000000ull, 1, 0) = RAM_IPA | D_BLOCK | D_AF;
	*s1_slot(f, f->vcpu->sys.ttbr0_el1, 0x80200000ull, 2, 0) = DATA_IPA | D_BLOCK | D_AF;
	*(uint32_t *)ram_ptr(f, RAM_IPA + 0x123458) = 0x8badf00d;
	*(uint32_t *)ram_ptr(f, DATA_IPA + 0x1f0) = 0xdeadc0de;
	out = run(f, "ldr w1, [0x40123458]");
	assert_int_equal(out.result, MV_A64_DONE);
	assert_int_equal(out.value[0], 0x8badf00d);
	f->vcpu->regs.pc = TEST_PC;
	out = run(f, "ldr w1, [0x802001f0]");
	assert_int_equal(out.result, MV_A64_DONE);
	assert_int_equal(out.value[0], 0xdeadc0de);
}

/* Stage-1 AF = 0: access flag fault at the leaf's level (no hardware update). */
static void test_s1_access_flag(void **state)
{
	fx *f = *state;
	mv_a64_outcome out;
	uint64_t *e = s1_setup_page(f, VA_LOW, 0);

	out = run(f, "ldr x1, [0x1234567008]");
	assert_guest_fault(f, &out, EC_DABT_CUR << 26 | IL | 0x0b, VA_LOW + 8, 1);
	assert_int_equal(*e & D_AF, 0);
	*s1_slot(f, f->vcpu->sys.ttbr0_el1, 0x40000000ull, 1, 0) = RAM_IPA | D_BLOCK;
	f->vcpu->regs.el = 0;
	out = run(f, "fetch 0x40000000");
	assert_guest_fault(f, &out, EC_IABT_LOW << 26 | IL | 0x09, 0x40000000ull, 0);
}

/* AP[2:1] at EL0 and EL1, UXN / PXN, and the implicit PXN of EL0-writable memory. */
static void test_s1_permissions(void **state)
{
	static const struct {
		uint64_t attr;
		unsigned el;
		const char *text;
		bool ok;
		uint64_t esr;       /* when !ok */
	} cases[] = {
		/* AP = 00: EL1 RW, EL0 nothing. */
		{ 0, 1, "str x1, [0x1234567000]", true, 0 },
		{ 0, 0, "ldr x1, [0x1234567000]", false, EC_DABT_LOW << 26 | IL | 0x0f },
		{ 0, 0, "dc civac, 0x1234567000", false, EC_DABT_LOW << 26 | IL | CM | WNR | 0x0f },
		/* AP = 01: RW at both; not executable at EL1. */
		{ D_AP_EL0, 0, "str x1, [0x1234567000]", true, 0 },
		{ D_AP_EL0, 0, "fetch 0x1234567000", true, 0 },
		{ D_AP_EL0, 1, "fetch 0x1234567000", false, EC_IABT_CUR << 26 | IL | 0x0f },
		/* AP = 10: EL1 read-only. */
		{ D_AP_RO, 1, "ldr x1, [0x1234567000]", true, 0 },
		{ D_AP_RO, 1, "str x1, [0x1234567000]", false, EC_DABT_CUR << 26 | IL | WNR | 0x0f },
		{ D_AP_RO, 0, "ldr x1, [0x1234567000]", false, EC_DABT_LOW << 26 | IL | 0x0f },
		/* AP = 11: read-only at both; executable at EL1 again. */
		{ D_AP_RO | D_AP_EL0, 0, "ldr x1, [0x1234567000]", true, 0 },
		{ D_AP_RO | D_AP_EL0, 0, "str x1, [0x1234567000]", false,
		  EC_DABT_LOW << 26 | IL | WNR | 0x0f },
		{ D_AP_RO | D_AP_EL0, 1, "fetch 0x1234567000", true, 0 },
		/* EL0 execute-only memory: AP = 00 with UXN = 0. */
		{ 0, 0, "fetch 0x1234567000", true, 0 },
		{ D_UXN, 0, "fetch 0x1234567000", false, EC_IABT_LOW << 26 | IL | 0x0f },
		{ D_UXN, 1, "fetch 0x1234567000", true, 0 },
		{ D_PXN, 1, "fetch 0x1234567000", false, EC_IABT_CUR << 26 | IL | 0x0f },
		{ D_PXN, 0, "fetch 0x1234567000", true, 0 },
	};
	fx *f = *state;
	uint64_t *e = s1_setup_page(f, VA_LOW, D_AF);

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		mv_a64_outcome out;

		*e = DATA_IPA | D_PAGE | D_AF | cases[i].attr;
		s1_resync(f);
		f->vcpu->regs.el = (uint8_t)cases[i].el;
		out = run(f, cases[i].text);
		if (cases[i].ok) {
			if (out.result != MV_A64_DONE)
				fail_msg("case %zu (%s): result %d", i, cases[i].text, out.result);
			f->vcpu->regs.pc = TEST_PC;
		} else {
			assert_guest_fault(f, &out, cases[i].esr, VA_LOW, cases[i].el);
		}
	}
}

/* APTable / UXNTable / PXNTable on the way down restrict what the leaf grants. */
static void test_s1_table_attributes(void **state)
{
	static const struct {
		uint64_t tattr;
		unsigned el;
		const char *text;
		uint64_t esr;       /* 0: allowed */
	} cases[] = {
		{ T_NO_EL0, 0, "ldr x1, [0x1234567000]", EC_DABT_LOW << 26 | IL | 0x0f },
		{ T_NO_EL0, 1, "str x1, [0x1234567000]", 0 },
		/* APTable[0] takes EL0 write away, so EL1 may execute again. */
		{ T_NO_EL0, 1, "fetch 0x1234567000", 0 },
		{ T_RO, 1, "str x1, [0x1234567000]", EC_DABT_CUR << 26 | IL | WNR | 0x0f },
		{ T_RO, 0, "ldr x1, [0x1234567000]", 0 },
		{ T_RO, 1, "fetch 0x1234567000", 0 },
		{ T_UXN, 0, "fetch 0x1234567000", EC_IABT_LOW << 26 | IL | 0x0f },
		{ T_UXN, 1, "ldr x1, [0x1234567000]", 0 },
		{ T_PXN | T_NO_EL0, 1, "fetch 0x1234567000", EC_IABT_CUR << 26 | IL | 0x0f },
	};
	fx *f = *state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t root0 = s1_new_table(f), *e;
		mv_a64_outcome out;

		if (i == 0)
			s2_map_ram(f);
		/* Leaf AP = 01 (RW at both ELs, EL1 non-executable unless a table removes EL0 write). */
		e = s1_slot(f, root0, VA_LOW, 3, 0);
		*e = DATA_IPA | D_PAGE | D_AF | D_AP_EL0;
		/* The attribute on the level-1 table entry (in the level-0 table). */
		*(uint64_t *)ram_ptr(f, root0 + 8 * ((VA_LOW >> 39) & 511)) |= cases[i].tattr;
		s1_enable(f, root0, root0, TCR_48);
		f->vcpu->regs.el = (uint8_t)cases[i].el;
		out = run(f, cases[i].text);
		if (!cases[i].esr) {
			if (out.result != MV_A64_DONE)
				fail_msg("case %zu (%s): result %d", i, cases[i].text, out.result);
			f->vcpu->regs.pc = TEST_PC;
		} else {
			assert_guest_fault(f, &out, cases[i].esr, VA_LOW, cases[i].el);
		}
	}
}

/* IPS: output addresses above it are address size faults (TTBR: level 0; leaf: its level). */
static void test_s1_address_size(void **state)
{
	fx *f = *state;
	mv_a64_outcome out;
	uint64_t *e = s1_setup_page(f, VA_LOW, D_AF);

	f->vcpu->sys.tcr_el1 = (TCR_48 & ~(7ull << 32)) | 0ull << 32;   /* IPS = 32 bits */
	s1_resync(f);
	*e = 0x100000000ull | D_PAGE | D_AF;
	out = run(f, "ldr x1, [0x1234567000]");
	assert_guest_fault(f, &out, EC_DABT_CUR << 26 | IL | 0x03, VA_LOW, 1);
	f->vcpu->sys.ttbr0_el1 |= 1ull << 33;
	s1_resync(f);
	out = run(f, "ldr x1, [0x1234567000]");
	assert_guest_fault(f, &out, EC_DABT_CUR << 26 | IL | 0x00, VA_LOW, 1);
	/* Stage 1 off: a VA above PAMax (48 bits) is an address size fault at level 0. */
	f->vcpu->sys.sctlr_el1 = 0;
	s1_resync(f);
	out = run(f, "ldr x1, [0x1000000000000]");
	assert_guest_fault(f, &out, EC_DABT_CUR << 26 | IL | 0x00, 1ull << 48, 1);
}

/* ------------------------------------------------------------------ */
/* Data, registers and the TLB                                          */

static void test_load_store_values(void **state)
{
	fx *f = *state;
	uint8_t *m = ram_ptr(f, RAM_IPA + 0x2000);
	mv_a64_outcome out;

	s2_map_ram(f);
	for (unsigned i = 0; i < 64; i++)
		m[i] = (uint8_t)(0x80 + i);
	set_x(f, 2, RAM_IPA + 0x2000);
	out = run_done(f, "ldrsb w3, [x2]");
	assert_int_equal(get_x(f, 3), 0xffffff80ull);
	out = run_done(f, "ldrsh x3, [x2, #2]");
	assert_int_equal(get_x(f, 3), 0xffffffffffff8382ull);
	out = run_done(f, "ldrsw x3, [x2, #4]");
	assert_int_equal(get_x(f, 3), 0xffffffff87868584ull);
	out = run_done(f, "ldrh w3, [x2, #6]");
	assert_int_equal(get_x(f, 3), 0x8786ull);
	out = run_done(f, "ldp x4, x5, [x2, #16]");
	assert_int_equal(out.value[0], 0x9796959493929190ull);
	assert_int_equal(out.value[1], 0x9f9e9d9c9b9a9998ull);
	assert_int_equal(get_x(f, 5), 0x9f9e9d9c9b9a9998ull);
	out = run_done(f, "ldr q7, [x2, #32]");
	assert_int_equal(f->vcpu->regs.v[7][0], 0xa7a6a5a4a3a2a1a0ull);
	assert_int_equal(f->vcpu->regs.v[7][1], 0xafaeadacabaaa9a8ull);
	assert_int_equal(out.value[1], 0xafaeadacabaaa9a8ull);
	out = run_done(f, "str q7, [x2, #48]");
	assert_memory_equal(m + 48, m + 32, 16);
	/* Writeback, pre and post; SP as the base; a W store keeps the low bytes. */
	out = run_done(f, "ldr w6, [x2, #8]!");
	assert_int_equal(get_x(f, 2), RAM_IPA + 0x2008);
	assert_int_equal(get_x(f, 6), 0x8b8a8988ull);
	out = run_done(f, "ldrb w6, [x2], #-8");
	assert_int_equal(get_x(f, 2), RAM_IPA + 0x2000);
	assert_int_equal(get_x(f, 6), 0x88);
	f->vcpu->regs.sp = RAM_IPA + 0x3000;
	set_x(f, 9, 0x1122334455667788ull);
	out = run_done(f, "str w9, [sp, #16]");
	assert_int_equal(*(uint64_t *)ram_ptr(f, RAM_IPA + 0x3010), 0x55667788ull);
	out = run_done(f, "stp x9, xzr, [sp, #-16]!");
	assert_int_equal(f->vcpu->regs.sp, RAM_IPA + 0x2ff0);
	assert_int_equal(*(uint64_t *)ram_ptr(f, RAM_IPA + 0x2ff0), 0x1122334455667788ull);
	assert_int_equal(*(uint64_t *)ram_ptr(f, RAM_IPA + 0x2ff8), 0);
	/* A store-exclusive always succeeds (Ws = 0). */
	set_x(f, 7, 99);
	out = run_done(f, "stxr w7, x9, [x2]");
	assert_int_equal(get_x(f, 7), 0);
	assert_int_equal(*(uint64_t *)m, 0x1122334455667788ull);
	/* A fetch returns the word. */
	*(uint32_t *)ram_ptr(f, RAM_IPA + 0x4000) = 0xd503201f;
	out = run_done(f, "fetch 0x40004000");
	assert_int_equal(out.value[0], 0xd503201f);
}

/* An access across a page boundary: both pages translated first, so a fault touches nothing. */
static void test_page_crossing(void **state)
{
	fx *f = *state;
	mv_a64_outcome out;

	s2_map(f, RAM_IPA, SZ_4K, MV_S2_PROT_R | MV_S2_PROT_W, false, 3);
	memset(ram_ptr(f, RAM_IPA), 0x5a, SZ_4K);
	set_x(f, 1, 0x0102030405060708ull);
	out = run(f, "str x1, [0x40000ffc]");
	assert_abort(f, &out, dabt_isv(0x07, 8, 0, 1, 1, 0, 1), RAM_IPA + SZ_4K, RAM_IPA + SZ_4K);
	assert_int_equal(*(uint32_t *)ram_ptr(f, RAM_IPA + 0xffc), 0x5a5a5a5a);
	s2_map(f, RAM_IPA + SZ_4K, SZ_4K, MV_S2_PROT_R | MV_S2_PROT_W, false, 3);
	out = run(f, "str x1, [0x40000ffc]");
	assert_int_equal(out.result, MV_A64_DONE);
	f->vcpu->regs.pc = TEST_PC;
	out = run(f, "ldr x2, [0x40000ffc]");
	assert_int_equal(out.value[0], 0x0102030405060708ull);
	assert_int_equal(*(uint32_t *)ram_ptr(f, RAM_IPA + 0x1000), 0x01020304);
}

static void test_tlb_hits_and_flush(void **state)
{
	fx *f = *state;
	mv_tlb_stats st0, st1;
	mv_a64_outcome out;
	hv_memslot m = { .slot = 0, .gpa = RAM_IPA, .size = RAM_SIZE, .hva = f->ram.base };

	assert_int_equal(mv_a64_vm_set_memslot(f->vm, &m), 0);
	mv_a64_vm_set_handler(f->vm, true);
	*(uint64_t *)ram_ptr(f, RAM_IPA + 0x7000) = 42;
	/* First access: a stage-2 translation fault the handler maps, then the access. */
	out = run(f, "ldr x1, [0x40007000]");
	assert_int_equal(out.result, MV_A64_DONE);
	assert_int_equal(out.value[0], 42);
	assert_int_equal(f->nev, 1);
	assert_int_equal(f->ev.action, MV_A64_ACT_MAPPED);
	assert_int_equal(f->ev.esr_el2, dabt_isv(0x05, 8, 0, 1, 1, 0, 0));   /* empty stage 2 */
	/* Second access: a TLB hit, no walk, no abort. */
	mv_tlb_get_stats(mv_a64_vcpu_tlb(f->vcpu), &st0);
	out = run(f, "ldr x2, [0x40007008]");
	mv_tlb_get_stats(mv_a64_vcpu_tlb(f->vcpu), &st1);
	assert_int_equal(out.result, MV_A64_DONE);
	assert_int_equal(st1.hits, st0.hits + 1);
	assert_int_equal(st1.misses, st0.misses);
	assert_int_equal(f->nev, 1);
	/* A store hits too: the handler mapped the page writable (no dirty logging). */
	out = run(f, "str x2, [0x40007010]");
	assert_int_equal(out.result, MV_A64_DONE);
	assert_int_equal(f->nev, 1);
	/* The MMU notifier zaps stage 2: the TLB entry goes, the next access faults again. */
	mv_tlb_get_stats(mv_a64_vcpu_tlb(f->vcpu), &st0);
	mv_a64_vm_invalidate_range_start(f->vm, ram_hva(f, RAM_IPA + 0x7000),
					 ram_hva(f, RAM_IPA + 0x8000));
	mv_a64_vm_invalidate_range_end(f->vm, ram_hva(f, RAM_IPA + 0x7000),
				       ram_hva(f, RAM_IPA + 0x8000));
	mv_tlb_get_stats(mv_a64_vcpu_tlb(f->vcpu), &st1);
	assert_true(st1.flushed_entries > st0.flushed_entries);
	out = run(f, "ldr x3, [0x40007000]");
	assert_int_equal(out.result, MV_A64_DONE);
	assert_int_equal(out.value[0], 42);
	assert_int_equal(f->nev, 2);
	assert_int_equal(f->ev.action, MV_A64_ACT_MAPPED);
	/* New sysregs flush the TLB too. */
	s1_resync(f);
	mv_tlb_get_stats(mv_a64_vcpu_tlb(f->vcpu), &st0);
	out = run(f, "ldr x3, [0x40007000]");
	mv_tlb_get_stats(mv_a64_vcpu_tlb(f->vcpu), &st1);
	assert_int_equal(st1.misses, st0.misses + 1);
	assert_int_equal(f->nev, 2);
}

/* With the handler on: MMIO exits complete on the next exec; injections and errors end the run. */
static void test_handler_outcomes(void **state)
{
	fx *f = *state;
	mv_a64_outcome out;
	hv_memslot m = { .slot = 0, .gpa = RAM_IPA, .size = RAM_SIZE, .hva = f->ram.base };

	assert_int_equal(mv_a64_vm_set_memslot(f->vm, &m), 0);
	mv_a64_vm_set_handler(f->vm, true);
	out = run(f, "ldrsh x5, [0x09000010]");
	assert_int_equal(out.result, MV_A64_EXIT);
	assert_int_equal(out.exit->reason, HV_EXIT_MMIO);
	assert_int_equal(out.exit->mmio.gpa, MMIO_IPA + 0x10);
	assert_int_equal(out.exit->mmio.len, 2);
	assert_false(out.exit->mmio.is_write);
	assert_int_equal(f->vcpu->regs.pc, TEST_PC);
	out.exit->mmio.data[0] = 0x34;
	out.exit->mmio.data[1] = 0x92;
	/* The next exec completes the read first (Rt, PC), then runs its own access. */
	*(uint32_t *)ram_ptr(f, RAM_IPA + 0x8000) = 7;
	out = run(f, "ldr w6, [0x40008000]");
	assert_int_equal(get_x(f, 5), 0xffffffffffff9234ull);
	assert_int_equal(out.result, MV_A64_DONE);
	assert_int_equal(get_x(f, 6), 7);
	assert_int_equal(f->vcpu->regs.pc, TEST_PC + 8);
	/* ISV = 0 outside memory without NISV exits: an internal error exit. */
	f->vcpu->regs.pc = TEST_PC;
	out = run(f, "ldp x1, x2, [0x09000000]");
	assert_int_equal(out.result, MV_A64_EXIT);
	assert_int_equal(out.exit->reason, HV_EXIT_INTERNAL_ERROR);
	/* An instruction fetch outside memory: a prefetch abort injected into the guest. */
	out = run(f, "fetch 0x09000000");
	assert_int_equal(out.result, MV_A64_INJECTED);
	assert_int_equal(out.esr_el1, EC_IABT_CUR << 26 | IL | 0x10);
	assert_int_equal(out.far_el1, MMIO_IPA);
	assert_int_equal(f->vcpu->regs.pc, TEST_VBAR + 0x200);
}

static bool claim_sea(void *arg, uint64_t ipa)
{
	*(uint64_t *)arg = ipa;
	return true;
}

/* With the handler on, an external abort is an SError for the guest, or the host's to take. */
static void test_sea_outcomes(void **state)
{
	fx *f = *state;
	hv_memslot m = { .slot = 0, .gpa = RAM_IPA, .size = RAM_SIZE, .hva = f->ram.base };
	uint64_t claimed = 0;
	mv_a64_outcome out;

	assert_int_equal(mv_a64_vm_set_memslot(f->vm, &m), 0);
	mv_a64_vm_set_handler(f->vm, true);
	assert_int_equal(mv_soft_host_set_sea(mv_a64_vm_host(f->vm), ram_hva(f, RAM_IPA + 0x6000), true),
			 0);
	out = run(f, "ldr x1, [0x40006010]");
	assert_int_equal(out.result, MV_A64_INJECTED);
	assert_int_equal(f->ev.action, MV_A64_ACT_INJECT_SERROR);
	assert_int_equal(f->ev.esr_el2, dabt(0x10));
	assert_int_equal(out.esr_el1 >> 26, 0x2f);               /* SError */
	reset_cpu(f, 1);
	mv_a64_vm_set_sea_claim(f->vm, claim_sea, &claimed);
	out = run(f, "ldr x1, [0x40006010]");
	assert_int_equal(out.result, MV_A64_EXIT);
	assert_int_equal(out.exit->reason, HV_EXIT_INTR);
	assert_int_equal(f->ev.action, MV_A64_ACT_HOST_SEA);
	assert_int_equal(claimed, RAM_IPA + 0x6000);              /* HPFAR's IPA, page aligned */
	assert_int_equal(f->vcpu->regs.pc, TEST_PC);
}

/* A fault hook that invalidates the page each time: every fault retries, until -EAGAIN. */
static void invalidate_hook(void *arg, mv_a64_vcpu *vcpu, uint64_t ipa)
{
	fx *f = arg;

	(void)vcpu;
	mv_a64_vm_invalidate_range_start(f->vm, ram_hva(f, ipa), ram_hva(f, ipa) + SZ_4K);
	mv_a64_vm_invalidate_range_end(f->vm, ram_hva(f, ipa), ram_hva(f, ipa) + SZ_4K);
}

static void test_retry_bound(void **state)
{
	fx *f = *state;
	hv_memslot m = { .slot = 0, .gpa = RAM_IPA, .size = RAM_SIZE, .hva = f->ram.base };
	mv_a64_outcome out;
	mv_a64_insn in;

	assert_int_equal(mv_a64_vm_set_memslot(f->vm, &m), 0);
	mv_a64_vm_set_handler(f->vm, true);
	mv_a64_vm_set_fault_hook(f->vm, invalidate_hook, f);
	assert_int_equal(mv_a64_insn_parse("ldr x1, [0x40009000]", &in, NULL), 0);
	assert_int_equal(mv_a64_vcpu_exec(f->vcpu, &in, &out), -EAGAIN);
	assert_int_equal(f->nev, 64);
	assert_int_equal(f->ev.action, MV_A64_ACT_RETRY);
	assert_int_equal(f->vcpu->regs.pc, TEST_PC);
	mv_a64_vm_set_fault_hook(f->vm, NULL, NULL);
	out = run(f, "ldr x1, [0x40009000]");
	assert_int_equal(out.result, MV_A64_DONE);
}

static void test_malformed(void **state)
{
	fx *f = *state;
	mv_a64_insn ok = { .op = MV_A64_LOAD, .size = 8, .rt = 1, .rn = 2, .sf = true };
	mv_a64_insn bad[8];
	mv_a64_outcome out;

	for (unsigned i = 0; i < 8; i++)
		bad[i] = ok;
	bad[0].size = 3;
	bad[1].size = 16;                 /* 16 bytes only for Qt */
	bad[2].sf = false;                /* 8 bytes into Wt */
	bad[3].rn = 40;
	bad[4].rn = MV_A64_RN_ABS;
	bad[4].wb = MV_A64_WB_PRE;
	bad[5].op = (mv_a64_op)7;
	bad[6].rt = 32;
	bad[7].simd = true;
	bad[7].pair = true;
	bad[7].size = 16;                 /* Q pairs are not modelled */
	for (unsigned i = 0; i < 8; i++)
		assert_int_equal(mv_a64_vcpu_exec(f->vcpu, &bad[i], &out), -EINVAL);
	f->vcpu->regs.el = 2;
	assert_int_equal(mv_a64_vcpu_exec(f->vcpu, &ok, &out), -EINVAL);
	assert_int_equal(f->nev, 0);
}

static void test_esr_describe(void **state)
{
	char buf[200];
	int n;

	(void)state;
	n = mv_esr_describe(0x93630007ull, buf, sizeof(buf));
	assert_string_equal(buf, "EC=0x24 (DABT_LOW) IL=1 ISV=1 SAS=1 SSE=1 SRT=3 SF=0 AR=0 FnV=0 "
				 "EA=0 CM=0 S1PTW=0 WnR=0 DFSC=0x07 (translation fault, level 3)");
	assert_int_equal(n, (int)strlen(buf));
	mv_esr_describe(iabt(0x0d) | S1PTW, buf, sizeof(buf));
	assert_string_equal(buf, "EC=0x20 (IABT_LOW) IL=1 FnV=0 EA=0 S1PTW=1 "
				 "IFSC=0x0d (permission fault, level 1)");
	mv_esr_describe(dabt(0x10) | CM | WNR, buf, sizeof(buf));
	assert_string_equal(buf, "EC=0x24 (DABT_LOW) IL=1 ISV=0 FnV=0 EA=0 CM=1 S1PTW=0 WnR=1 "
				 "DFSC=0x10 (synchronous external abort)");
	mv_esr_describe(EC_DABT_CUR << 26 | IL | 0x15, buf, sizeof(buf));
	assert_string_equal(buf, "EC=0x25 (DABT_CUR) IL=1 ISV=0 FnV=0 EA=0 CM=0 S1PTW=0 WnR=0 "
				 "DFSC=0x15 (synchronous external abort on translation table walk, "
				 "level 1)");
	mv_esr_describe(0x16ull << 26 | IL | 0x1234, buf, sizeof(buf));
	assert_string_equal(buf, "EC=0x16 IL=1 ISS=0x0001234");
	/* Truncation: the length snprintf would have written. */
	assert_int_equal(mv_esr_describe(0x93630007ull, buf, 10), n);
	assert_string_equal(buf, "EC=0x24 (");
	assert_int_equal(mv_esr_describe(0x93630007ull, NULL, 0), n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
		T(test_iss_literal),
		T(test_iss_combinations),
		T(test_isv_zero),
		T(test_cache_maintenance),
		T(test_fetch_abort),
		T(test_translation_levels),
		T(test_access_flag_levels),
		T(test_permission_levels),
		cmocka_unit_test(test_address_size),
		T(test_external_abort),
		T(test_s1_two_stages),
		T(test_s1ptw),
		T(test_s1_translation),
		T(test_s1_access_flag),
		T(test_s1_permissions),
		T(test_s1_table_attributes),
		T(test_s1_address_size),
		T(test_load_store_values),
		T(test_page_crossing),
		T(test_tlb_hits_and_flush),
		T(test_handler_outcomes),
		T(test_sea_outcomes),
		T(test_retry_bound),
		T(test_malformed),
		cmocka_unit_test(test_esr_describe),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
