/*
 * KVM's guest-abort handling of the arm64 soft VM, driven directly: each
 * test builds the ESR_EL2 / HPFAR_EL2 / FAR_EL2 of one stage-2 abort, hands
 * it to a64_handle_guest_abort and checks the action, the stage-2 leaf it
 * left (level, output address, S2AP / XN / AF bits), the exit record, the
 * registers and the EL1 exception state -- for every FSC family and level,
 * MMIO of every size and extension, block size choices, dirty logging,
 * relaxing, the access flag, notifier races and memslot changes.
 *
 * Guest RAM is anonymous memory of this process (the stage-2 output
 * address is the host address). Hugetlb backings are declarations to the
 * host oracle; THP placement is the kernel's, so the THP case checks what
 * the oracle reports and prints SKIP when no huge page was placed.
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
#define SZ_64K (1ull << 16)
#define SZ_2M (1ull << 21)
#define SZ_32M (1ull << 25)
#define SZ_1G (1ull << 30)

#define RAM_GPA 0x40000000ull     /* slot 0: 8 MiB of RAM, 2 MiB aligned host */
#define RAM_SIZE (8ull << 20)
#define MMIO_GPA 0x09000000ull    /* no slot there */
#define TEST_PC 0x40001000ull
#define TEST_VBAR 0x40080000ull
#define TEST_VA 0xffff800000000000ull   /* FAR_EL2 = TEST_VA + IPA[31:0] */

/* ------------------------------------------------------------------ */
/* A VM with RAM slot 0 and vCPU 0                                      */

typedef struct fx {
	mv_a64_vm *vm;
	mv_a64_vcpu *vcpu;
	tu_region ram;
} fx;

static void fx_set_slot(fx *f, unsigned id, uint32_t flags, uint64_t gpa, uint64_t size, uint64_t hva)
{
	hv_memslot m = { .slot = id, .flags = flags, .gpa = gpa, .size = size,
			 .hva = (void *)(uintptr_t)hva };

	assert_int_equal(mv_a64_vm_set_memslot(f->vm, &m), 0);
}

static void fx_reset_cpu(fx *f)
{
	memset(&f->vcpu->regs, 0, sizeof(f->vcpu->regs));
	memset(&f->vcpu->sys, 0, sizeof(f->vcpu->sys));
	f->vcpu->regs.pc = TEST_PC;
	f->vcpu->regs.el = 1;
	f->vcpu->sys.vbar_el1 = TEST_VBAR;
}

static fx *fx_new_cfg(const mv_a64_vm_config *cfg)
{
	fx *f = calloc(1, sizeof(*f));
	mv_error err = { 0 };

	assert_non_null(f);
	assert_int_equal(mv_a64_vm_new(cfg, &f->vm, &err), 0);
	assert_int_equal(mv_a64_vcpu_new(f->vm, 0, &f->vcpu, &err), 0);
	tu_region_map(&f->ram, RAM_SIZE, SZ_2M, PROT_READ | PROT_WRITE);
	fx_set_slot(f, 0, 0, RAM_GPA, RAM_SIZE, tu_hva(&f->ram, 0));
	fx_reset_cpu(f);
	return f;
}

static int fx_setup(void **state)
{
	*state = fx_new_cfg(NULL);
	return 0;
}

static int fx_teardown(void **state)
{
	fx *f = *state;

	mv_a64_vcpu_free(f->vcpu);
	mv_a64_vm_free(f->vm);
	tu_region_unmap(&f->ram);
	free(f);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Syndromes                                                            */

static uint64_t esr_dabt(unsigned fsc)
{
	return (uint64_t)MV_ESR_EC_DABT_LOW << MV_ESR_EC_SHIFT | MV_ESR_IL | fsc;
}

static uint64_t esr_iabt(unsigned fsc)
{
	return (uint64_t)MV_ESR_EC_IABT_LOW << MV_ESR_EC_SHIFT | MV_ESR_IL | fsc;
}

/* ISV = 1 syndrome of a load/store: SAS = log2(size), SSE, SRT, SF, WnR. */
static uint64_t esr_isv(unsigned fsc, unsigned size, bool sse, unsigned rt, bool sf, bool wnr)
{
	unsigned sas = size == 1 ? 0 : size == 2 ? 1 : size == 4 ? 2 : 3;

	return esr_dabt(fsc) | MV_ESR_ISV | (uint64_t)sas << MV_ESR_SAS_SHIFT |
	       (sse ? MV_ESR_SSE : 0) | (uint64_t)rt << MV_ESR_SRT_SHIFT | (sf ? MV_ESR_SF : 0) |
	       (wnr ? MV_ESR_WNR : 0);
}

static uint64_t far_of(uint64_t ipa)
{
	return TEST_VA + (ipa & 0xffffffffull);
}

/* One abort at @ipa (byte address: HPFAR gets the page, FAR the offset). */
static mv_a64_abort_event fault(fx *f, uint64_t esr, uint64_t ipa)
{
	a64_fault flt = { .esr = esr, .hpfar = MV_HPFAR_FIPA(ipa), .far = far_of(ipa) };
	mv_a64_abort_event ev = { .esr_el2 = flt.esr, .hpfar_el2 = flt.hpfar, .far_el2 = flt.far };

	a64_handle_guest_abort(f->vcpu, &flt, &ev);
	return ev;
}

static void assert_action(const mv_a64_abort_event *ev, mv_a64_action want)
{
	if (ev->action != want)
		fail_msg("action %s (detail \"%s\"), want %s", mv_a64_action_name(ev->action), ev->detail,
			 mv_a64_action_name(want));
}

/* The leaf at @ipa: valid, at @level, output address @hva (block base). */
static mv_pte assert_leaf(fx *f, uint64_t ipa, int level, uint64_t oa)
{
	mv_pte pte = 0;
	int lvl = -9;

	assert_int_equal(mv_a64_vm_s2_leaf(f->vm, ipa, &pte, &lvl), MV_PGT_OK);
	if (!(pte & MV_S2_VALID))
		fail_msg("no leaf at IPA 0x%" PRIx64, ipa);
	assert_int_equal(lvl, level);
	assert_int_equal(mv_s2_pte_oa(pte, 12), oa);
	assert_true(pte & MV_S2_AF);
	assert_int_equal((pte & MV_S2_MEMATTR_MASK) >> MV_S2_MEMATTR_SHIFT, MV_S2_MEMATTR_NORMAL_WB);
	return pte;
}

static void assert_no_leaf(fx *f, uint64_t ipa)
{
	mv_pte pte = 0;
	int lvl;

	assert_int_equal(mv_a64_vm_s2_leaf(f->vm, ipa, &pte, &lvl), MV_PGT_OK);
	assert_false(pte & MV_S2_VALID);
}

static bool pte_w(mv_pte pte)
{
	return pte & MV_S2_S2AP_W;
}

static bool pte_xn(mv_pte pte)
{
	return pte & MV_S2_XN;
}

/* The exception state after an abort of @ec with @fsc at @far was taken from EL1. */
static void assert_el1_abort(fx *f, unsigned ec, unsigned fsc, uint64_t far, uint64_t from_pc,
			     unsigned from_el)
{
	mv_a64_vcpu *v = f->vcpu;

	assert_int_equal(v->sys.esr_el1, (uint64_t)ec << 26 | MV_ESR_IL | fsc);
	assert_int_equal(v->sys.far_el1, far);
	assert_int_equal(v->sys.elr_el1, from_pc);
	assert_int_equal(v->sys.spsr_el1, from_el ? 0x5u : 0x0u);
	assert_int_equal(v->regs.pc, TEST_VBAR + (from_el ? 0x200u : 0x400u));
	assert_int_equal(v->regs.el, 1);
}

/* ------------------------------------------------------------------ */
/* Translation faults                                                   */

static void test_action_names(void **state)
{
	(void)state;
	assert_string_equal(mv_a64_action_name(MV_A64_ACT_MAPPED), "mapped");
	assert_string_equal(mv_a64_action_name(MV_A64_ACT_INJECT_SERROR), "inject-serror");
	assert_string_equal(mv_a64_action_name(MV_A64_ACT_ERROR), "error");
	assert_string_equal(mv_a64_action_name((mv_a64_action)99), "unknown");
}

/* FSC 0x04..0x07: each level maps the 4 KiB page RW, XN, AF, Normal WB. */
static void test_translation_levels(void **state)
{
	fx *f = *state;

	for (unsigned lvl = 0; lvl < 4; lvl++) {
		uint64_t off = 0x10000 + lvl * SZ_4K;
		mv_a64_abort_event ev = fault(f, esr_dabt(MV_FSC_TRANS + lvl), RAM_GPA + off + 0x18);
		mv_pte pte;

		assert_action(&ev, MV_A64_ACT_MAPPED);
		assert_int_equal(ev.map_size, SZ_4K);
		pte = assert_leaf(f, RAM_GPA + off, 3, tu_hva(&f->ram, off));
		assert_true(pte & MV_S2_S2AP_R);
		assert_true(pte_w(pte));
		assert_true(pte_xn(pte));
		assert_int_equal(f->vcpu->regs.pc, TEST_PC);   /* the access is retried */
	}
}

/* A write fault maps the same way; a second fault on a mapped page keeps it. */
static void test_translation_write_and_refault(void **state)
{
	fx *f = *state;
	mv_a64_abort_event ev = fault(f, esr_dabt(0x07) | MV_ESR_WNR, RAM_GPA + 0x3000);
	mv_s2_stats st;

	assert_action(&ev, MV_A64_ACT_MAPPED);
	assert_true(pte_w(assert_leaf(f, RAM_GPA + 0x3000, 3, tu_hva(&f->ram, 0x3000))));
	ev = fault(f, esr_dabt(0x07), RAM_GPA + 0x3000);
	assert_action(&ev, MV_A64_ACT_MAPPED);
	mv_a64_vm_s2_stats(f->vm, &st);
	assert_int_equal(st.leaves[3], 1);
}

/* An instruction fetch maps executable (XN clear); a data access never does. */
static void test_exec_fault_clears_xn(void **state)
{
	fx *f = *state;
	mv_a64_abort_event ev = fault(f, esr_iabt(0x07), RAM_GPA + 0x5000);

	assert_action(&ev, MV_A64_ACT_MAPPED);
	assert_false(pte_xn(assert_leaf(f, RAM_GPA + 0x5000, 3, tu_hva(&f->ram, 0x5000))));
	ev = fault(f, esr_dabt(0x07), RAM_GPA + 0x6000);
	assert_true(pte_xn(assert_leaf(f, RAM_GPA + 0x6000, 3, tu_hva(&f->ram, 0x6000))));
}

/* ------------------------------------------------------------------ */
/* IPA range checks                                                     */

/* A VM with a 36-bit IPA space and a 40-bit PARange (VTCR_EL2.PS). */
static int fx_setup_small_ipa(void **state)
{
	mv_s2_config c;
	mv_a64_vm_config cfg = { 0 };

	assert_int_equal(mv_s2_config_for_ipa(36, 12, &c), 0);
	c.oa_bits = 40;
	cfg.vtcr = mv_vtcr_encode(&c);
	*state = fx_new_cfg(&cfg);
	assert_int_equal(mv_a64_vm_s2_config(((fx *)*state)->vm)->ia_bits, 36);
	return 0;
}

/* Between the IPA size and PARange: an external abort at IPA|FAR[11:0]; beyond: size fault. */
static void test_ipa_beyond_vm_and_limit(void **state)
{
	fx *f = *state;
	uint64_t ipa = (1ull << 36) + 0x5123;
	mv_a64_abort_event ev = fault(f, esr_dabt(0x06), ipa);

	assert_action(&ev, MV_A64_ACT_INJECT_DABT);
	assert_el1_abort(f, MV_ESR_EC_DABT_CUR, MV_FSC_SEA, ipa, TEST_PC, 1);

	fx_reset_cpu(f);
	ev = fault(f, esr_iabt(0x05), ipa);
	assert_action(&ev, MV_A64_ACT_INJECT_PABT);
	assert_el1_abort(f, MV_ESR_EC_IABT_CUR, MV_FSC_SEA, ipa, TEST_PC, 1);

	fx_reset_cpu(f);
	ipa = (1ull << 40) + 0x2abc;
	ev = fault(f, esr_dabt(0x04), ipa);
	assert_action(&ev, MV_A64_ACT_INJECT_SIZE);
	assert_el1_abort(f, MV_ESR_EC_DABT_CUR, MV_FSC_ADDR_SIZE, ipa, TEST_PC, 1);

	/* From EL0: the lower-EL vector and EC, SPSR.M = EL0t. */
	fx_reset_cpu(f);
	f->vcpu->regs.el = 0;
	ev = fault(f, esr_iabt(0x07), ipa);
	assert_action(&ev, MV_A64_ACT_INJECT_SIZE);
	assert_el1_abort(f, MV_ESR_EC_IABT_LOW, MV_FSC_ADDR_SIZE, ipa, TEST_PC, 0);

	fx_reset_cpu(f);
	f->vcpu->regs.el = 0;
	ev = fault(f, esr_dabt(0x07), (1ull << 36) + 0x10);
	assert_action(&ev, MV_A64_ACT_INJECT_DABT);
	assert_el1_abort(f, MV_ESR_EC_DABT_LOW, MV_FSC_SEA, (1ull << 36) + 0x10, TEST_PC, 0);
}

/* ------------------------------------------------------------------ */
/* External aborts and unsupported codes                               */

typedef struct claim {
	bool claim;
	unsigned calls;
	uint64_t ipa;
} claim;

static bool claim_fn(void *arg, uint64_t ipa)
{
	claim *c = arg;

	c->calls++;
	c->ipa = ipa;
	return c->claim;
}

/* SEA (0x10), SEA on a walk (0x13..0x17), parity (0x18, 0x1b..0x1f): host first, else SError. */
static void test_sea(void **state)
{
	static const unsigned codes[] = { 0x10, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x1b, 0x1c, 0x1f };
	fx *f = *state;
	claim c = { .claim = true };
	mv_a64_abort_event ev;

	mv_a64_vm_set_sea_claim(f->vm, claim_fn, &c);
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		fx_reset_cpu(f);
		ev = fault(f, esr_dabt(codes[i]), RAM_GPA + 0x7000);
		assert_action(&ev, MV_A64_ACT_HOST_SEA);
		assert_int_equal(c.ipa, RAM_GPA + 0x7000);
		assert_int_equal(f->vcpu->regs.pc, TEST_PC);
	}
	assert_int_equal(c.calls, sizeof(codes) / sizeof(codes[0]));

	/* Unclaimed: a virtual SError, EC 0x2F IL IDS, at the SError vector. */
	c.claim = false;
	for (int iabt = 0; iabt < 2; iabt++) {
		for (unsigned el = 0; el < 2; el++) {
			fx_reset_cpu(f);
			f->vcpu->regs.el = (uint8_t)el;
			f->vcpu->sys.far_el1 = 0x1234;
			ev = fault(f, iabt ? esr_iabt(0x10) : esr_dabt(0x15), RAM_GPA);
			assert_action(&ev, MV_A64_ACT_INJECT_SERROR);
			assert_int_equal(f->vcpu->sys.esr_el1, 0xbf000000u);
			assert_int_equal(f->vcpu->sys.elr_el1, TEST_PC);
			assert_int_equal(f->vcpu->sys.far_el1, 0x1234);
			assert_int_equal(f->vcpu->sys.spsr_el1, el ? 0x5u : 0x0u);
			assert_int_equal(f->vcpu->regs.pc, TEST_VBAR + (el ? 0x380u : 0x580u));
			assert_int_equal(f->vcpu->regs.el, 1);
		}
	}
	/* No claim function: never claimed. */
	mv_a64_vm_set_sea_claim(f->vm, NULL, NULL);
	fx_reset_cpu(f);
	ev = fault(f, esr_dabt(0x10), RAM_GPA);
	assert_action(&ev, MV_A64_ACT_INJECT_SERROR);
}

/* Every other FSC is an error naming EC, xFSC and ESR_EL2, with an internal-error exit. */
static void test_unsupported_fsc(void **state)
{
	static const unsigned codes[] = { 0x00, 0x01, 0x02, 0x03, 0x11, 0x21, 0x22, 0x30, 0x31, 0x34, 0x35 };
	fx *f = *state;
	char want[160];

	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		uint64_t esr = esr_dabt(codes[i]) | MV_ESR_WNR;
		mv_a64_abort_event ev = fault(f, esr, RAM_GPA + 0x1000);

		assert_action(&ev, MV_A64_ACT_ERROR);
		snprintf(want, sizeof(want), "unsupported FSC: EC=0x24 xFSC=0x%02x ESR_EL2=0x%" PRIx64,
			 codes[i], esr);
		assert_string_equal(ev.detail, want);
		assert_int_equal(f->vcpu->exit.reason, HV_EXIT_INTERNAL_ERROR);
		assert_int_equal(f->vcpu->exit.internal.ndata, 3);
		assert_int_equal(f->vcpu->exit.internal.data[0], esr);
		assert_int_equal(f->vcpu->exit.internal.data[1], RAM_GPA + 0x1000);
		assert_int_equal(f->vcpu->exit.internal.data[2], far_of(RAM_GPA + 0x1000));
		assert_int_equal(f->vcpu->regs.pc, TEST_PC);
	}
	/* An instruction abort names its own EC. */
	mv_a64_abort_event ev = fault(f, esr_iabt(0x21), RAM_GPA);
	assert_action(&ev, MV_A64_ACT_ERROR);
	assert_non_null(strstr(ev.detail, "unsupported FSC: EC=0x20 xFSC=0x21 ESR_EL2=0x82000021"));
	/* Not an abort at all. */
	ev = fault(f, (uint64_t)0x16 << 26 | MV_ESR_IL, RAM_GPA);
	assert_action(&ev, MV_A64_ACT_ERROR);
	assert_string_equal(ev.detail, "ESR_EL2 0x5a000000 is not a stage-2 abort from the guest (EC=0x16)");
	assert_no_leaf(f, RAM_GPA);
}

/* ------------------------------------------------------------------ */
/* Outside RAM                                                          */

/* Fetches and stage-1 walks outside RAM go back to the guest; CM is skipped. */
static void test_no_slot(void **state)
{
	fx *f = *state;
	uint64_t ipa = MMIO_GPA + 0x40;
	mv_a64_abort_event ev = fault(f, esr_iabt(0x07), ipa);

	assert_action(&ev, MV_A64_ACT_INJECT_PABT);
	assert_el1_abort(f, MV_ESR_EC_IABT_CUR, MV_FSC_SEA, far_of(ipa), TEST_PC, 1);

	fx_reset_cpu(f);
	ev = fault(f, esr_dabt(0x06) | MV_ESR_S1PTW, ipa);
	assert_action(&ev, MV_A64_ACT_INJECT_DABT);
	assert_el1_abort(f, MV_ESR_EC_DABT_CUR, MV_FSC_SEA, far_of(ipa), TEST_PC, 1);

	fx_reset_cpu(f);
	f->vcpu->regs.el = 0;
	ev = fault(f, esr_dabt(0x07) | MV_ESR_S1PTW, ipa);
	assert_action(&ev, MV_A64_ACT_INJECT_DABT);
	assert_el1_abort(f, MV_ESR_EC_DABT_LOW, MV_FSC_SEA, far_of(ipa), TEST_PC, 0);

	fx_reset_cpu(f);
	ev = fault(f, esr_dabt(0x07) | MV_ESR_CM | MV_ESR_WNR, ipa);
	assert_action(&ev, MV_A64_ACT_SKIPPED);
	assert_int_equal(f->vcpu->regs.pc, TEST_PC + 4);
	assert_int_equal(f->vcpu->sys.esr_el1, 0);
}

/* A read-only slot: reads map without write permission, writes are MMIO. */
static void test_readonly_slot(void **state)
{
	fx *f = *state;
	uint64_t gpa = 0x80000000ull;
	mv_a64_abort_event ev;
	mv_pte pte;

	fx_set_slot(f, 1, HV_MEM_READONLY, gpa, SZ_2M, tu_hva(&f->ram, SZ_2M));
	ev = fault(f, esr_dabt(0x07), gpa + 0x1000);
	assert_action(&ev, MV_A64_ACT_MAPPED);
	pte = assert_leaf(f, gpa + 0x1000, 3, tu_hva(&f->ram, SZ_2M + 0x1000));
	assert_false(pte_w(pte));

	/* A stage-1 walk reading a table there is a read: mapped. */
	ev = fault(f, esr_dabt(0x07) | MV_ESR_S1PTW, gpa + 0x2000);
	assert_action(&ev, MV_A64_ACT_MAPPED);
	assert_false(pte_w(assert_leaf(f, gpa + 0x2000, 3, tu_hva(&f->ram, SZ_2M + 0x2000))));
	/* A permission fault of a walk (hardware AF/DB update) is a write: back to the guest. */
	ev = fault(f, esr_dabt(0x0f) | MV_ESR_S1PTW, gpa + 0x2000);
	assert_action(&ev, MV_A64_ACT_INJECT_DABT);

	/* A store: an MMIO exit with the data of Xt. */
	fx_reset_cpu(f);
	f->vcpu->regs.x[5] = 0x1122334455667788ull;
	ev = fault(f, esr_isv(0x0f, 4, false, 5, false, true), gpa + 0x1008);
	assert_action(&ev, MV_A64_ACT_MMIO_EXIT);
	assert_int_equal(f->vcpu->exit.reason, HV_EXIT_MMIO);
	assert_int_equal(f->vcpu->exit.mmio.gpa, gpa + 0x1008);
	assert_int_equal(f->vcpu->exit.mmio.len, 4);
	assert_true(f->vcpu->exit.mmio.is_write);
	assert_memory_equal(f->vcpu->exit.mmio.data, "\x88\x77\x66\x55", 4);
	mv_a64_vcpu_complete_mmio(f->vcpu, NULL);
	assert_int_equal(f->vcpu->regs.pc, TEST_PC + 4);
	assert_false(pte_w(assert_leaf(f, gpa + 0x1000, 3, tu_hva(&f->ram, SZ_2M + 0x1000))));

	/* Cache maintenance on a read-only slot is not skipped (KVM: only outside slots). */
	fx_reset_cpu(f);
	ev = fault(f, esr_dabt(0x0f) | MV_ESR_CM | MV_ESR_WNR, gpa + 0x1000);
	assert_action(&ev, MV_A64_ACT_ERROR);
	assert_int_equal(f->vcpu->regs.pc, TEST_PC);
}

/* ------------------------------------------------------------------ */
/* MMIO                                                                 */

typedef struct mmio_case {
	unsigned size;
	bool sse, sf;
	uint64_t data;       /* little-endian bytes from user space */
	uint64_t want;       /* Xt afterwards */
} mmio_case;

/* Loads of 1/2/4/8 bytes into Wt / Xt, zero- or sign-extended (kvm_handle_mmio_return). */
static void test_mmio_read_widths(void **state)
{
	static const mmio_case cases[] = {
		{ 1, true, false, 0x80, 0xffffff80ull },                 /* ldrsb w */
		{ 1, true, true, 0x80, 0xffffffffffffff80ull },          /* ldrsb x */
		{ 1, false, false, 0x80, 0x80 },                         /* ldrb w */
		{ 1, true, true, 0x7f, 0x7f },
		{ 2, true, true, 0x8001, 0xffffffffffff8001ull },        /* ldrsh x */
		{ 2, true, false, 0x8001, 0xffff8001ull },               /* ldrsh w */
		{ 2, false, false, 0xfffe, 0xfffe },                     /* ldrh */
		{ 4, true, true, 0x80000000, 0xffffffff80000000ull },    /* ldrsw */
		{ 4, false, false, 0xdeadbeef, 0xdeadbeef },             /* ldr w */
		{ 8, false, true, 0x8877665544332211ull, 0x8877665544332211ull },
	};
	fx *f = *state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const mmio_case *c = &cases[i];
		uint64_t ipa = MMIO_GPA + 0x100 + 8 * i, v = 1;
		mv_a64_abort_event ev;

		fx_reset_cpu(f);
		f->vcpu->regs.x[3] = 0x5555555555555555ull;
		ev = fault(f, esr_isv(0x07, c->size, c->sse, 3, c->sf, false), ipa);
		assert_action(&ev, MV_A64_ACT_MMIO_EXIT);
		assert_int_equal(f->vcpu->exit.reason, HV_EXIT_MMIO);
		assert_int_equal(f->vcpu->exit.mmio.gpa, ipa);
		assert_int_equal(f->vcpu->exit.mmio.len, c->size);
		assert_false(f->vcpu->exit.mmio.is_write);
		assert_int_equal(f->vcpu->regs.pc, TEST_PC);
		for (unsigned b = 0; b < 8; b++)
			f->vcpu->exit.mmio.data[b] = (uint8_t)(c->data >> (8 * b));
		mv_a64_vcpu_complete_mmio(f->vcpu, &v);
		assert_int_equal(f->vcpu->regs.x[3], c->want);
		assert_int_equal(v, c->want);
		assert_int_equal(f->vcpu->regs.pc, TEST_PC + 4);
		/* Nothing pending any more: a no-op. */
		mv_a64_vcpu_complete_mmio(f->vcpu, &v);
		assert_int_equal(f->vcpu->regs.pc, TEST_PC + 4);
		assert_int_equal(v, 0);
	}
	/* A load into XZR is discarded. */
	fx_reset_cpu(f);
	mv_a64_abort_event ev = fault(f, esr_isv(0x07, 8, false, 31, true, false), MMIO_GPA);
	assert_action(&ev, MV_A64_ACT_MMIO_EXIT);
	memset(f->vcpu->exit.mmio.data, 0xab, 8);
	mv_a64_vcpu_complete_mmio(f->vcpu, NULL);
	for (int r = 0; r < 31; r++)
		assert_int_equal(f->vcpu->regs.x[r], 0);
	assert_int_equal(f->vcpu->regs.pc, TEST_PC + 4);
}

/* Stores of 1/2/4/8 bytes carry the low bytes of Xt; XZR stores zero. */
static void test_mmio_write_widths(void **state)
{
	static const unsigned sizes[] = { 1, 2, 4, 8 };
	static const uint8_t le[8] = { 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11 };
	fx *f = *state;

	for (size_t i = 0; i < 4; i++) {
		mv_a64_abort_event ev;

		fx_reset_cpu(f);
		f->vcpu->regs.x[9] = 0x1122334455667788ull;
		ev = fault(f, esr_isv(0x07, sizes[i], false, 9, sizes[i] == 8, true), MMIO_GPA + 0x20);
		assert_action(&ev, MV_A64_ACT_MMIO_EXIT);
		assert_true(f->vcpu->exit.mmio.is_write);
		assert_int_equal(f->vcpu->exit.mmio.len, sizes[i]);
		assert_memory_equal(f->vcpu->exit.mmio.data, le, sizes[i]);
		mv_a64_vcpu_complete_mmio(f->vcpu, NULL);
		assert_int_equal(f->vcpu->regs.x[9], 0x1122334455667788ull);
		assert_int_equal(f->vcpu->regs.pc, TEST_PC + 4);
	}
	fx_reset_cpu(f);
	mv_a64_abort_event ev = fault(f, esr_isv(0x07, 8, false, 31, true, true), MMIO_GPA);
	assert_action(&ev, MV_A64_ACT_MMIO_EXIT);
	assert_memory_equal(f->vcpu->exit.mmio.data, "\0\0\0\0\0\0\0\0", 8);
}

/* An in-process device at MMIO_GPA: reads return 0xf0 + offset bytes, writes are recorded. */
typedef struct dev {
	uint64_t addr;
	unsigned len;
	uint8_t data[8];
	bool decline;
	unsigned reads, writes;
} dev;

static int dev_read(void *opaque, uint64_t addr, unsigned len, void *data)
{
	dev *d = opaque;

	if (d->decline)
		return -EOPNOTSUPP;
	d->reads++;
	d->addr = addr;
	d->len = len;
	for (unsigned i = 0; i < len; i++)
		((uint8_t *)data)[i] = (uint8_t)(0xf0 + i);
	return 0;
}

static int dev_write(void *opaque, uint64_t addr, unsigned len, const void *data)
{
	dev *d = opaque;

	if (d->decline)
		return -EOPNOTSUPP;
	d->writes++;
	d->addr = addr;
	d->len = len;
	memcpy(d->data, data, len);
	return 0;
}

static void test_iobus_device(void **state)
{
	static const mv_iobus_dev_ops ops = { dev_read, dev_write };
	fx *f = *state;
	dev d = { 0 };
	mv_a64_abort_event ev;

	assert_int_equal(mv_iobus_register(mv_a64_vm_iobus(f->vm), MMIO_GPA, 0x1000, &ops, &d), 0);
	/* ldrsh w7 from the device: 0xf1f0 sign-extended into W7. */
	f->vcpu->regs.x[7] = ~0ull;
	ev = fault(f, esr_isv(0x07, 2, true, 7, false, false), MMIO_GPA + 0x12);
	assert_action(&ev, MV_A64_ACT_MMIO_KERNEL);
	assert_int_equal(d.reads, 1);
	assert_int_equal(d.addr, MMIO_GPA + 0x12);
	assert_int_equal(d.len, 2);
	assert_int_equal(f->vcpu->regs.x[7], 0xfffff1f0ull);
	assert_int_equal(f->vcpu->regs.pc, TEST_PC + 4);
	/* Completing afterwards does nothing: the access is done. */
	mv_a64_vcpu_complete_mmio(f->vcpu, NULL);
	assert_int_equal(f->vcpu->regs.pc, TEST_PC + 4);

	/* str x2 to the device. */
	fx_reset_cpu(f);
	f->vcpu->regs.x[2] = 0x0102030405060708ull;
	ev = fault(f, esr_isv(0x07, 8, false, 2, true, true), MMIO_GPA + 0x800);
	assert_action(&ev, MV_A64_ACT_MMIO_KERNEL);
	assert_int_equal(d.writes, 1);
	assert_memory_equal(d.data, "\x08\x07\x06\x05\x04\x03\x02\x01", 8);
	assert_int_equal(f->vcpu->regs.pc, TEST_PC + 4);

	/* Declined: the access exits to user space. */
	fx_reset_cpu(f);
	d.decline = true;
	ev = fault(f, esr_isv(0x07, 4, false, 2, false, false), MMIO_GPA + 0x10);
	assert_action(&ev, MV_A64_ACT_MMIO_EXIT);
	assert_int_equal(f->vcpu->exit.mmio.gpa, MMIO_GPA + 0x10);
	/* Not covered by the device: exits too. */
	d.decline = false;
	ev = fault(f, esr_isv(0x07, 4, false, 2, false, false), MMIO_GPA + 0x1000);
	assert_action(&ev, MV_A64_ACT_MMIO_EXIT);
	assert_int_equal(d.reads, 1);
}

/* ISV = 0 outside RAM: an error by default, an ARM_NISV exit with the capability. */
static void test_nisv(void **state)
{
	fx *f = *state;
	uint64_t esr = esr_dabt(0x07) | MV_ESR_WNR | MV_ESR_SF;
	mv_a64_abort_event ev = fault(f, esr, MMIO_GPA + 0x345);

	assert_action(&ev, MV_A64_ACT_ERROR);
	assert_string_equal(ev.detail, "data abort outside memory at IPA 0x9000345 has no valid "
				       "syndrome (ISV = 0) and NISV exits are off");
	assert_int_equal(f->vcpu->exit.reason, HV_EXIT_INTERNAL_ERROR);
	assert_int_equal(f->vcpu->exit.internal.suberror, 1);

	mv_a64_vm_enable_nisv_to_user(f->vm, true);
	ev = fault(f, esr, MMIO_GPA + 0x345);
	assert_action(&ev, MV_A64_ACT_NISV_EXIT);
	assert_int_equal(f->vcpu->exit.reason, HV_EXIT_ARM_NISV);
	assert_int_equal(f->vcpu->exit.arm_nisv.esr_iss, MV_ESR_WNR | 0x07);
	assert_int_equal(f->vcpu->exit.arm_nisv.fault_ipa, MMIO_GPA + 0x345);
	assert_int_equal(f->vcpu->regs.pc, TEST_PC);
}

/* ------------------------------------------------------------------ */
/* Block sizes                                                          */

/* Slot 1 at @gpa over [off, off + size) of a region declared @kind / @page. */
static void huge_slot(fx *f, tu_region *r, uint64_t gpa, uint64_t off, uint64_t size, uint32_t flags)
{
	fx_set_slot(f, 1, flags, gpa, size, tu_hva(r, off));
}

static void delete_slot(fx *f, unsigned id)
{
	hv_memslot m = { .slot = id };

	assert_int_equal(mv_a64_vm_set_memslot(f->vm, &m), 0);
}

/* Hugetlb 2 MiB: a block when congruent and inside the slot, pages otherwise. */
static void test_hugetlb_2m(void **state)
{
	fx *f = *state;
	mv_soft_host *host = mv_a64_vm_host(f->vm);
	tu_region r;
	mv_a64_abort_event ev;

	tu_region_map(&r, 8 * SZ_2M, SZ_2M, PROT_READ | PROT_WRITE);
	assert_int_equal(mv_soft_host_declare(host, tu_hva(&r, 0), 8 * SZ_2M, MV_HOST_BACKING_HUGETLB, SZ_2M), 0);

	/* Congruent slot of 4 MiB: the 2 MiB block around the fault. */
	huge_slot(f, &r, 0x100000000ull, 0, 2 * SZ_2M, 0);
	ev = fault(f, esr_dabt(0x06), 0x100000000ull + SZ_2M + 0x3456);
	assert_action(&ev, MV_A64_ACT_MAPPED);
	assert_int_equal(ev.map_size, SZ_2M);
	assert_true(pte_w(assert_leaf(f, 0x100000000ull + SZ_2M + 0x3000, 2, tu_hva(&r, SZ_2M))));
	delete_slot(f, 1);
	assert_no_leaf(f, 0x100000000ull + SZ_2M);

	/* gpa and hva not congruent modulo 2 MiB: pages. */
	huge_slot(f, &r, 0x100000000ull + SZ_4K, 0, 2 * SZ_2M, 0);
	ev = fault(f, esr_dabt(0x07), 0x100000000ull + SZ_2M);
	assert_action(&ev, MV_A64_ACT_MAPPED);
	assert_int_equal(ev.map_size, SZ_4K);
	assert_leaf(f, 0x100000000ull + SZ_2M, 3, tu_hva(&r, SZ_2M - SZ_4K));
	delete_slot(f, 1);

	/* The block would pass the slot's end: pages at the tail, a block before it. */
	huge_slot(f, &r, 0x100000000ull, 0, SZ_2M + 16 * SZ_4K, 0);
	ev = fault(f, esr_dabt(0x07), 0x100000000ull + SZ_2M + 0x5000);
	assert_int_equal(ev.map_size, SZ_4K);
	assert_leaf(f, 0x100000000ull + SZ_2M + 0x5000, 3, tu_hva(&r, SZ_2M + 0x5000));
	ev = fault(f, esr_dabt(0x07), 0x100000000ull + 0x5000);
	assert_int_equal(ev.map_size, SZ_2M);
	delete_slot(f, 1);

	/* The block would start before the slot: pages. */
	huge_slot(f, &r, 0x100000000ull + 16 * SZ_4K, 16 * SZ_4K, 2 * SZ_2M, 0);
	ev = fault(f, esr_dabt(0x07), 0x100000000ull + 0x20000);
	assert_int_equal(ev.map_size, SZ_4K);
	ev = fault(f, esr_dabt(0x07), 0x100000000ull + SZ_2M + 0x20000);
	assert_int_equal(ev.map_size, SZ_2M);
	delete_slot(f, 1);

	/* Contiguous-hint sizes: 64 KiB backs pages, 32 MiB backs 2 MiB blocks. */
	assert_int_equal(mv_soft_host_declare(host, tu_hva(&r, 0), SZ_2M, MV_HOST_BACKING_HUGETLB, SZ_64K), 0);
	huge_slot(f, &r, 0x100000000ull, 0, 2 * SZ_2M, 0);
	ev = fault(f, esr_dabt(0x07), 0x100000000ull + 0x10000);
	assert_int_equal(ev.map_size, SZ_4K);
	delete_slot(f, 1);
	tu_region_unmap(&r);

	tu_region_map(&r, SZ_32M, SZ_32M, PROT_READ | PROT_WRITE);
	assert_int_equal(mv_soft_host_declare(host, tu_hva(&r, 0), SZ_32M, MV_HOST_BACKING_HUGETLB, SZ_32M), 0);
	huge_slot(f, &r, 0x100000000ull, 0, SZ_32M, 0);
	ev = fault(f, esr_dabt(0x07), 0x100000000ull + 3 * SZ_2M + 0x10);
	assert_int_equal(ev.map_size, SZ_2M);
	assert_leaf(f, 0x100000000ull + 3 * SZ_2M, 2, tu_hva(&r, 3 * SZ_2M));
	delete_slot(f, 1);
	tu_region_unmap(&r);
}

/* Hugetlb 1 GiB: a level-1 block, or 2 MiB blocks when the slot holds only part of it. */
static void test_hugetlb_1g(void **state)
{
	fx *f = *state;
	mv_soft_host *host = mv_a64_vm_host(f->vm);
	uint64_t gpa = 0x140000000ull;
	tu_region r;
	mv_a64_abort_event ev;

	tu_region_map(&r, SZ_1G, SZ_1G, PROT_READ | PROT_WRITE);
	assert_int_equal(mv_soft_host_declare(host, tu_hva(&r, 0), SZ_1G, MV_HOST_BACKING_HUGETLB, SZ_1G), 0);
	huge_slot(f, &r, gpa, 0, SZ_1G, 0);
	ev = fault(f, esr_iabt(0x05), gpa + 0x12345678);
	assert_action(&ev, MV_A64_ACT_MAPPED);
	assert_int_equal(ev.map_size, SZ_1G);
	assert_false(pte_xn(assert_leaf(f, gpa + 0x12345000, 1, tu_hva(&r, 0))));
	delete_slot(f, 1);

	huge_slot(f, &r, gpa, 0, SZ_1G - SZ_2M, 0);
	ev = fault(f, esr_dabt(0x05), gpa + 0x12345678);
	assert_int_equal(ev.map_size, SZ_2M);
	assert_leaf(f, gpa + 0x12345000, 2, tu_hva(&r, 0x12200000));
	delete_slot(f, 1);
	tu_region_unmap(&r);
}

/* A 32-bit IPA stage 2 starts at level 2: a 1 GiB hugetlb page is mapped by 2 MiB blocks. */
static void test_hugetlb_1g_no_level1(void **state)
{
	mv_a64_vm_config cfg = { 0 };
	uint64_t gpa = 2 * SZ_1G;
	mv_s2_config c;
	tu_region r;
	fx *f;
	mv_a64_abort_event ev;

	(void)state;
	assert_int_equal(mv_s2_config_for_ipa(32, 12, &c), 0);
	assert_int_equal(c.start_level, 2);
	cfg.vtcr = mv_vtcr_encode(&c);
	f = fx_new_cfg(&cfg);
	tu_region_map(&r, SZ_1G, SZ_1G, PROT_READ | PROT_WRITE);
	assert_int_equal(mv_soft_host_declare(mv_a64_vm_host(f->vm), tu_hva(&r, 0), SZ_1G,
					      MV_HOST_BACKING_HUGETLB, SZ_1G), 0);
	huge_slot(f, &r, gpa, 0, SZ_1G, 0);
	ev = fault(f, esr_dabt(0x06), gpa + 0x12345678);
	assert_action(&ev, MV_A64_ACT_MAPPED);
	assert_int_equal(ev.map_size, SZ_2M);
	assert_leaf(f, gpa + 0x12345000, 2, tu_hva(&r, 0x12200000));
	delete_slot(f, 1);
	tu_region_unmap(&r);
	fx_teardown((void **)&f);
}

/* THP: a 2 MiB block where the kernel placed a huge page (else SKIP). */
static void test_thp(void **state)
{
	fx *f = *state;
	mv_soft_host *host = mv_a64_vm_host(f->vm);
	uint64_t gpa = 0x100000000ull, host_size = 0;
	tu_region r;
	mv_a64_abort_event ev;

	tu_region_map(&r, 2 * SZ_2M, SZ_2M, PROT_READ | PROT_WRITE);
	madvise(r.base, 2 * SZ_2M, MADV_HUGEPAGE);
	assert_int_equal(mv_soft_host_declare(host, tu_hva(&r, 0), 2 * SZ_2M, MV_HOST_BACKING_THP, SZ_2M), 0);
	huge_slot(f, &r, gpa, 0, 2 * SZ_2M, 0);
	ev = fault(f, esr_dabt(0x07) | MV_ESR_WNR, gpa + 0x1000);
	assert_action(&ev, MV_A64_ACT_MAPPED);
	assert_int_equal(mv_soft_host_page(host, tu_hva(&r, 0x1000), false, &host_size), 0);
	assert_int_equal(ev.map_size, host_size == SZ_2M ? SZ_2M : SZ_4K);
	delete_slot(f, 1);
	tu_region_unmap(&r);
	if (host_size != SZ_2M) {
		printf("SKIP: %s: the kernel placed no transparent huge page (4 KiB mapping checked)\n",
		       __func__);
		skip();
	}
}

/* ------------------------------------------------------------------ */
/* Dirty logging, permissions, access flag                              */

static bool dirty_bit(fx *f, unsigned id, uint64_t page)
{
	const mv_memslot *s = mv_memslots_get(f->vm->slots, 0, id);

	assert_non_null(s);
	assert_non_null(s->dirty_bitmap);
	return s->dirty_bitmap[page / 64] >> (page % 64) & 1;
}

/* Logging forces pages even on hugetlb; reads map read-only, writes writable and dirty. */
static void test_logging(void **state)
{
	fx *f = *state;
	mv_soft_host *host = mv_a64_vm_host(f->vm);
	uint64_t gpa = 0x100000000ull;
	tu_region r;
	mv_a64_abort_event ev;

	tu_region_map(&r, 2 * SZ_2M, SZ_2M, PROT_READ | PROT_WRITE);
	assert_int_equal(mv_soft_host_declare(host, tu_hva(&r, 0), 2 * SZ_2M, MV_HOST_BACKING_HUGETLB, SZ_2M), 0);
	huge_slot(f, &r, gpa, 0, 2 * SZ_2M, HV_MEM_LOG_DIRTY_PAGES);

	ev = fault(f, esr_dabt(0x06), gpa + 0x3000);
	assert_action(&ev, MV_A64_ACT_MAPPED);
	assert_int_equal(ev.map_size, SZ_4K);
	assert_false(pte_w(assert_leaf(f, gpa + 0x3000, 3, tu_hva(&r, 0x3000))));
	assert_false(dirty_bit(f, 1, 3));

	/* The write that follows is a permission fault on that page: relaxed and logged. */
	ev = fault(f, esr_dabt(0x0f) | MV_ESR_WNR, gpa + 0x3000);
	assert_action(&ev, MV_A64_ACT_RELAXED);
	assert_true(pte_w(assert_leaf(f, gpa + 0x3000, 3, tu_hva(&r, 0x3000))));
	assert_true(dirty_bit(f, 1, 3));

	/* A write translation fault maps writable and logs. */
	ev = fault(f, esr_dabt(0x05) | MV_ESR_WNR, gpa + SZ_2M + 0x8000);
	assert_action(&ev, MV_A64_ACT_MAPPED);
	assert_int_equal(ev.map_size, SZ_4K);
	assert_true(pte_w(assert_leaf(f, gpa + SZ_2M + 0x8000, 3, tu_hva(&r, SZ_2M + 0x8000))));
	assert_true(dirty_bit(f, 1, 512 + 8));
	assert_false(dirty_bit(f, 1, 512 + 7));
	delete_slot(f, 1);
	tu_region_unmap(&r);
}

/* Turning logging on write-protects the slot; a write to a block then maps one page. */
static void test_logging_splits_block(void **state)
{
	fx *f = *state;
	mv_soft_host *host = mv_a64_vm_host(f->vm);
	uint64_t gpa = 0x100000000ull;
	tu_region r;
	mv_a64_abort_event ev;

	tu_region_map(&r, SZ_2M, SZ_2M, PROT_READ | PROT_WRITE);
	assert_int_equal(mv_soft_host_declare(host, tu_hva(&r, 0), SZ_2M, MV_HOST_BACKING_HUGETLB, SZ_2M), 0);
	huge_slot(f, &r, gpa, 0, SZ_2M, 0);
	ev = fault(f, esr_dabt(0x06) | MV_ESR_WNR, gpa);
	assert_int_equal(ev.map_size, SZ_2M);
	assert_true(pte_w(assert_leaf(f, gpa, 2, tu_hva(&r, 0))));

	huge_slot(f, &r, gpa, 0, SZ_2M, HV_MEM_LOG_DIRTY_PAGES);
	assert_false(pte_w(assert_leaf(f, gpa, 2, tu_hva(&r, 0))));
	ev = fault(f, esr_dabt(0x0e) | MV_ESR_WNR, gpa + 0x7000);
	assert_action(&ev, MV_A64_ACT_MAPPED);
	assert_int_equal(ev.map_size, SZ_4K);
	assert_true(pte_w(assert_leaf(f, gpa + 0x7000, 3, tu_hva(&r, 0x7000))));
	assert_true(dirty_bit(f, 1, 7));
	delete_slot(f, 1);
	tu_region_unmap(&r);
}

/* Permission faults on a leaf of the size to map relax it in place. */
static void test_permission_relax(void **state)
{
	fx *f = *state;
	uint64_t ro = mv_s2_prot_attr(MV_S2_PROT_R);
	mv_error err = { 0 };
	mv_a64_abort_event ev;
	mv_pte pte;

	assert_int_equal(mv_a64_vm_s2_install(f->vm, RAM_GPA + 0x9000, SZ_4K, tu_hva(&f->ram, 0x9000), ro, 3, &err), 0);
	ev = fault(f, esr_dabt(0x0f) | MV_ESR_WNR, RAM_GPA + 0x9010);
	assert_action(&ev, MV_A64_ACT_RELAXED);
	pte = assert_leaf(f, RAM_GPA + 0x9000, 3, tu_hva(&f->ram, 0x9000));
	assert_true(pte_w(pte));
	assert_true(pte_xn(pte));

	ev = fault(f, esr_iabt(0x0f), RAM_GPA + 0x9000);
	assert_action(&ev, MV_A64_ACT_RELAXED);
	assert_false(pte_xn(assert_leaf(f, RAM_GPA + 0x9000, 3, tu_hva(&f->ram, 0x9000))));

	/* A read cannot take a permission fault (read is always granted). */
	ev = fault(f, esr_dabt(0x0f), RAM_GPA + 0x9000);
	assert_action(&ev, MV_A64_ACT_ERROR);
	assert_string_equal(ev.detail, "unexpected stage-2 read permission fault at IPA 0x40009000");

	/* A 2 MiB read-only block over 4 KiB host pages: relaxed as a block (fault granule). */
	assert_int_equal(mv_a64_vm_s2_install(f->vm, RAM_GPA + SZ_2M, SZ_2M, tu_hva(&f->ram, SZ_2M), ro, 2, &err), 0);
	ev = fault(f, esr_dabt(0x0e) | MV_ESR_WNR, RAM_GPA + SZ_2M + 0x4000);
	assert_action(&ev, MV_A64_ACT_RELAXED);
	assert_true(pte_w(assert_leaf(f, RAM_GPA + SZ_2M + 0x4000, 2, tu_hva(&f->ram, SZ_2M))));

	/* Relaxing a leaf that is gone: retry. */
	ev = fault(f, esr_dabt(0x0f) | MV_ESR_WNR, RAM_GPA + 0xa000);
	assert_action(&ev, MV_A64_ACT_RETRY);
}

/* Access-flag faults (0x09..0x0b) set AF on page, 2 MiB and 1 GiB leaves. */
static void test_access_flag(void **state)
{
	fx *f = *state;
	uint64_t old = mv_s2_prot_attr(MV_S2_PROT_R | MV_S2_PROT_W) & ~MV_S2_AF;
	uint64_t gpa = 0x140000000ull;
	mv_error err = { 0 };
	mv_a64_abort_event ev;
	tu_region r;
	mv_pte pte;
	int lvl;

	tu_region_map(&r, SZ_1G, SZ_1G, PROT_READ | PROT_WRITE);
	fx_set_slot(f, 1, 0, gpa, SZ_1G, tu_hva(&r, 0));
	assert_int_equal(mv_a64_vm_s2_install(f->vm, RAM_GPA, SZ_4K, tu_hva(&f->ram, 0), old, 3, &err), 0);
	assert_int_equal(mv_a64_vm_s2_install(f->vm, RAM_GPA + SZ_2M, SZ_2M, tu_hva(&f->ram, SZ_2M), old, 2, &err), 0);
	assert_int_equal(mv_a64_vm_s2_install(f->vm, gpa, SZ_1G, tu_hva(&r, 0), old, 1, &err), 0);
	assert_int_equal(mv_a64_vm_s2_leaf(f->vm, RAM_GPA, &pte, &lvl), MV_PGT_OK);
	assert_false(pte & MV_S2_AF);

	ev = fault(f, esr_dabt(0x0b), RAM_GPA + 0x10);
	assert_action(&ev, MV_A64_ACT_MKYOUNG);
	assert_leaf(f, RAM_GPA, 3, tu_hva(&f->ram, 0));
	ev = fault(f, esr_dabt(0x0a) | MV_ESR_WNR, RAM_GPA + SZ_2M + 0x123000);
	assert_action(&ev, MV_A64_ACT_MKYOUNG);
	assert_leaf(f, RAM_GPA + SZ_2M, 2, tu_hva(&f->ram, SZ_2M));
	ev = fault(f, esr_iabt(0x09), gpa + 0x3000000);
	assert_action(&ev, MV_A64_ACT_MKYOUNG);
	pte = assert_leaf(f, gpa, 1, tu_hva(&r, 0));
	assert_true(pte_w(pte));   /* only AF changed */
	/* No leaf: the access just refaults. */
	ev = fault(f, esr_dabt(0x0b), RAM_GPA + 0x5000);
	assert_action(&ev, MV_A64_ACT_RETRY);
	delete_slot(f, 1);
	tu_region_unmap(&r);
}

/* ------------------------------------------------------------------ */
/* Host page problems, notifiers, memslot changes                      */

static void test_poison_and_missing_host(void **state)
{
	fx *f = *state;
	mv_soft_host *host = mv_a64_vm_host(f->vm);
	char want[160];
	tu_region r;
	mv_a64_abort_event ev;

	f->ram.base[0x4000] = 1;   /* a poisoned page is one that was there */
	assert_int_equal(mv_soft_host_set_poison(host, tu_hva(&f->ram, 0x4000), true), 0);
	ev = fault(f, esr_dabt(0x07), RAM_GPA + 0x4008);
	assert_action(&ev, MV_A64_ACT_ERROR);
	snprintf(want, sizeof(want),
		 "memory failure: guest page at IPA 0x40004000 (host 0x%" PRIx64 ") is poisoned",
		 tu_hva(&f->ram, 0x4000));
	assert_string_equal(ev.detail, want);
	assert_int_equal(f->vcpu->exit.reason, HV_EXIT_INTERNAL_ERROR);
	assert_no_leaf(f, RAM_GPA + 0x4000);
	assert_int_equal(mv_soft_host_set_poison(host, tu_hva(&f->ram, 0x4000), false), 0);
	ev = fault(f, esr_dabt(0x07), RAM_GPA + 0x4008);
	assert_action(&ev, MV_A64_ACT_MAPPED);

	/* A slot over memory that is not accessible. */
	tu_region_map(&r, SZ_2M, SZ_2M, PROT_NONE);
	fx_set_slot(f, 1, 0, 0x100000000ull, SZ_2M, tu_hva(&r, 0));
	ev = fault(f, esr_dabt(0x07), 0x100000000ull + 0x1000);
	assert_action(&ev, MV_A64_ACT_ERROR);
	snprintf(want, sizeof(want), "guest page at IPA 0x100001000 has no host memory at 0x%" PRIx64,
		 tu_hva(&r, 0x1000));
	assert_string_equal(ev.detail, want);
	delete_slot(f, 1);
	tu_region_unmap(&r);
}

typedef struct race {
	fx *f;
	int mode;          /* 0: off, 1: start + end, 2: start only */
	unsigned calls;
} race;

static void race_hook(void *arg, mv_a64_vcpu *vcpu, uint64_t ipa)
{
	race *rc = arg;
	uint64_t hva = tu_hva(&rc->f->ram, ipa - RAM_GPA);

	(void)vcpu;
	rc->calls++;
	if (rc->mode)
		mv_a64_vm_invalidate_range_start(rc->f->vm, hva, hva + SZ_4K);
	if (rc->mode == 1)
		mv_a64_vm_invalidate_range_end(rc->f->vm, hva, hva + SZ_4K);
}

/* An invalidation between resolving the host page and installing: retry, then map. */
static void test_invalidation_race(void **state)
{
	fx *f = *state;
	race rc = { .f = f, .mode = 1 };
	uint64_t seq = mv_a64_vm_invalidate_seq(f->vm);
	mv_a64_abort_event ev;

	mv_a64_vm_set_fault_hook(f->vm, race_hook, &rc);
	ev = fault(f, esr_dabt(0x07), RAM_GPA + 0xb000);
	assert_action(&ev, MV_A64_ACT_RETRY);
	assert_int_equal(mv_a64_vm_invalidate_seq(f->vm), seq + 1);
	assert_no_leaf(f, RAM_GPA + 0xb000);
	rc.mode = 0;
	ev = fault(f, esr_dabt(0x07), RAM_GPA + 0xb000);
	assert_action(&ev, MV_A64_ACT_MAPPED);

	/* An invalidation still in progress blocks its gfns only. */
	rc.mode = 2;
	ev = fault(f, esr_dabt(0x07), RAM_GPA + 0xc000);
	assert_action(&ev, MV_A64_ACT_RETRY);
	rc.mode = 0;
	ev = fault(f, esr_dabt(0x07), RAM_GPA + 0xc000);
	assert_action(&ev, MV_A64_ACT_RETRY);
	ev = fault(f, esr_dabt(0x07), RAM_GPA + 0xd000);
	assert_action(&ev, MV_A64_ACT_MAPPED);
	mv_a64_vm_invalidate_range_end(f->vm, tu_hva(&f->ram, 0xc000), tu_hva(&f->ram, 0xd000));
	ev = fault(f, esr_dabt(0x07), RAM_GPA + 0xc000);
	assert_action(&ev, MV_A64_ACT_MAPPED);
	assert_int_equal(rc.calls, 6);
	mv_a64_vm_set_fault_hook(f->vm, NULL, NULL);
}

/* The notifier zaps every slot's mapping of the host range (aliases included). */
static void test_notifier_zap(void **state)
{
	fx *f = *state;
	uint64_t alias = 0x100000000ull;
	mv_a64_abort_event ev;

	fx_set_slot(f, 1, 0, alias, SZ_2M, tu_hva(&f->ram, 0));
	for (uint64_t off = 0; off < 4 * SZ_4K; off += SZ_4K) {
		ev = fault(f, esr_dabt(0x07), RAM_GPA + off);
		assert_action(&ev, MV_A64_ACT_MAPPED);
		ev = fault(f, esr_dabt(0x07), alias + off);
		assert_action(&ev, MV_A64_ACT_MAPPED);
		assert_leaf(f, alias + off, 3, tu_hva(&f->ram, off));
	}
	mv_a64_vm_invalidate_range_start(f->vm, tu_hva(&f->ram, SZ_4K), tu_hva(&f->ram, 3 * SZ_4K));
	assert_leaf(f, RAM_GPA, 3, tu_hva(&f->ram, 0));
	assert_no_leaf(f, RAM_GPA + SZ_4K);
	assert_no_leaf(f, RAM_GPA + 2 * SZ_4K);
	assert_no_leaf(f, alias + SZ_4K);
	assert_no_leaf(f, alias + 2 * SZ_4K);
	assert_leaf(f, alias + 3 * SZ_4K, 3, tu_hva(&f->ram, 3 * SZ_4K));
	mv_a64_vm_invalidate_range_end(f->vm, tu_hva(&f->ram, SZ_4K), tu_hva(&f->ram, 3 * SZ_4K));
	ev = fault(f, esr_dabt(0x07), alias + SZ_4K);
	assert_action(&ev, MV_A64_ACT_MAPPED);
	delete_slot(f, 1);
}

/* Deleting or moving a slot zaps its stage-2 range; the TLB entries go too. */
static void test_memslot_delete_move(void **state)
{
	fx *f = *state;
	uint64_t gpa = 0x100000000ull, moved = 0x180000000ull;
	mv_a64_abort_event ev;
	mv_tlb_entry e = { 0 }, got;
	uint16_t vmid;

	fx_set_slot(f, 1, 0, gpa, SZ_2M, tu_hva(&f->ram, SZ_2M));
	ev = fault(f, esr_dabt(0x07), gpa + 0x1000);
	assert_action(&ev, MV_A64_ACT_MAPPED);
	/* A TLB entry built from that mapping. */
	mv_vmid_update(f->vm->vmids, &f->vm->vmid, 0);
	vmid = mv_vmid_value(f->vm->vmids, &f->vm->vmid);
	e = (mv_tlb_entry){ .vmid = vmid, .el = 1, .rights = MV_TLB_R, .va_page = 0x1234,
			    .ipa_page = (gpa + 0x1000) >> 12, .host_page = tu_hva(&f->ram, SZ_2M + 0x1000) >> 12 };
	mv_tlb_lock(f->vcpu->tlb);
	mv_tlb_insert(f->vcpu->tlb, &e);
	assert_true(mv_tlb_lookup(f->vcpu->tlb, vmid, 1, 0x1234, MV_TLB_R, &got));
	mv_tlb_unlock(f->vcpu->tlb);

	fx_set_slot(f, 1, 0, moved, SZ_2M, tu_hva(&f->ram, SZ_2M));
	assert_no_leaf(f, gpa + 0x1000);
	mv_tlb_lock(f->vcpu->tlb);
	assert_false(mv_tlb_lookup(f->vcpu->tlb, vmid, 1, 0x1234, MV_TLB_R, &got));
	mv_tlb_unlock(f->vcpu->tlb);
	ev = fault(f, esr_dabt(0x07), gpa + 0x1000);
	assert_action(&ev, MV_A64_ACT_ERROR);   /* no slot there any more, and ISV = 0 */
	ev = fault(f, esr_dabt(0x07), moved + 0x1000);
	assert_action(&ev, MV_A64_ACT_MAPPED);
	assert_leaf(f, moved + 0x1000, 3, tu_hva(&f->ram, SZ_2M + 0x1000));
	delete_slot(f, 1);
	assert_no_leaf(f, moved + 0x1000);
}

/* ------------------------------------------------------------------ */
/* VM set-up and direct stage-2 access                                 */

static void test_handler_off(void **state)
{
	fx *f = *state;
	mv_a64_abort_event ev;

	mv_a64_vm_set_handler(f->vm, false);
	ev = fault(f, esr_dabt(0x07), RAM_GPA);
	assert_action(&ev, MV_A64_ACT_SKIPPED);
	assert_int_equal(f->vcpu->regs.pc, TEST_PC + 4);
	assert_no_leaf(f, RAM_GPA);
	mv_a64_vm_set_handler(f->vm, true);
	ev = fault(f, esr_dabt(0x07), RAM_GPA);
	assert_action(&ev, MV_A64_ACT_MAPPED);
}

static void test_s2_install_errors(void **state)
{
	fx *f = *state;
	uint64_t attr = mv_s2_prot_attr(MV_S2_PROT_R);
	uint64_t hva = tu_hva(&f->ram, 0);
	mv_error err = { 0 };

	assert_int_equal(mv_a64_vm_s2_install(f->vm, RAM_GPA, SZ_4K, hva, attr, 0, &err), -EINVAL);
	assert_string_equal(err.msg, "stage-2 level 0 cannot hold leaves: use level 1, 2 or 3, not above the start level 1");
	assert_int_equal(mv_a64_vm_s2_install(f->vm, RAM_GPA + SZ_4K, SZ_2M, hva, attr, 2, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "must be multiples of the level-2 size 0x200000"));
	assert_int_equal(mv_a64_vm_s2_install(f->vm, RAM_GPA, SZ_2M, hva + SZ_4K, attr, 2, &err), -EINVAL);
	assert_int_equal(mv_a64_vm_s2_install(f->vm, RAM_GPA, 0, hva, attr, 3, &err), -EINVAL);
	assert_int_equal(mv_a64_vm_s2_install(f->vm, (1ull << 40) - SZ_4K, 2 * SZ_4K, hva, attr, 3, &err), -EINVAL);
	assert_string_equal(err.msg, "IPA range 0xfffffff000+0x2000 is outside the 40-bit IPA space");
	/* Exactly the level asked for, even where a larger block would fit. */
	assert_int_equal(mv_a64_vm_s2_install(f->vm, RAM_GPA, SZ_2M, hva, attr, 3, &err), 0);
	assert_leaf(f, RAM_GPA + SZ_2M - SZ_4K, 3, hva + SZ_2M - SZ_4K);
}

static void test_vm_errors(void **state)
{
	mv_a64_vm_config cfg = { 0 };
	mv_error err = { 0 };
	mv_a64_vm *vm = NULL;
	mv_a64_vcpu *v = NULL, *v2 = NULL;
	mv_s2_config c;
	hv_memslot m;
	char buf[SZ_4K * 2];
	uint64_t hva = ((uint64_t)(uintptr_t)buf + SZ_4K - 1) & ~(SZ_4K - 1);

	(void)state;
	/* A 64 KiB granule. */
	assert_int_equal(mv_s2_config_for_ipa(40, 16, &c), 0);
	cfg.vtcr = mv_vtcr_encode(&c);
	assert_int_equal(mv_a64_vm_new(&cfg, &vm, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "TG0"));

	cfg = (mv_a64_vm_config){ .max_vcpus = 2 };
	assert_int_equal(mv_a64_vm_new(&cfg, &vm, &err), 0);
	assert_int_equal(mv_a64_vcpu_new(vm, 2, &v, &err), -EINVAL);
	assert_string_equal(err.msg, "vCPU id 2 is not below the VM's limit of 2 vCPUs");
	assert_int_equal(mv_a64_vcpu_new(vm, 1, &v, &err), 0);
	assert_int_equal(mv_a64_vcpu_new(vm, 1, &v2, &err), -EEXIST);
	assert_int_equal(v->regs.el, 1);
	assert_non_null(mv_a64_vcpu_tlb(v));

	/* kvm_arch_prepare_memory_region: the slot's end beyond the IPA size. */
	m = (hv_memslot){ .slot = 0, .gpa = (1ull << 40) - SZ_4K, .size = 2 * SZ_4K,
			  .hva = (void *)(uintptr_t)hva };
	m.size = SZ_4K;
	assert_int_equal(mv_a64_vm_set_memslot(vm, &m), 0);
	m.slot = 1;
	m.gpa = 1ull << 40;
	assert_int_equal(mv_a64_vm_set_memslot(vm, &m), -EFAULT);
	m.slot = 0;
	m.size = 0;
	assert_int_equal(mv_a64_vm_set_memslot(vm, &m), 0);
	mv_a64_vcpu_free(v);
	/* The id is free again. */
	assert_int_equal(mv_a64_vcpu_new(vm, 1, &v, &err), 0);
	mv_a64_vcpu_free(v);
	mv_a64_vm_free(vm);
	mv_a64_vm_free(NULL);
	mv_a64_vcpu_free(NULL);
}

/* Every allocation of VM and vCPU creation failing in turn: -ENOMEM, nothing leaked. */
static void test_vm_alloc_failures(void **state)
{
	tu_failing_alloc fa;
	mv_error err;
	unsigned long n;

	(void)state;
	for (n = 1;; n++) {
		mv_a64_vm_config cfg = { .alloc = &fa.alloc };
		mv_a64_vm *vm = NULL;
		mv_a64_vcpu *v = NULL;
		int r;

		tu_failing_alloc_init(&fa, n, false);
		r = mv_a64_vm_new(&cfg, &vm, &err);
		if (r == 0)
			r = mv_a64_vcpu_new(vm, 0, &v, &err);
		if (r == 0) {
			mv_a64_vcpu_free(v);
			mv_a64_vm_free(vm);
			break;
		}
		assert_int_equal(r, -ENOMEM);
		mv_a64_vm_free(vm);
	}
	assert_true(n > 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_action_names),
		cmocka_unit_test_setup_teardown(test_translation_levels, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_translation_write_and_refault, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_exec_fault_clears_xn, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_ipa_beyond_vm_and_limit, fx_setup_small_ipa, fx_teardown),
		cmocka_unit_test_setup_teardown(test_sea, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_unsupported_fsc, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_no_slot, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_readonly_slot, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_mmio_read_widths, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_mmio_write_widths, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_iobus_device, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_nisv, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_hugetlb_2m, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_hugetlb_1g, fx_setup, fx_teardown),
		cmocka_unit_test(test_hugetlb_1g_no_level1),
		cmocka_unit_test_setup_teardown(test_thp, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_logging, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_logging_splits_block, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_permission_relax, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_access_flag, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_poison_and_missing_host, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_invalidation_race, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_notifier_zap, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_memslot_delete_move, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_handler_off, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_s2_install_errors, fx_setup, fx_teardown),
		cmocka_unit_test(test_vm_errors),
		cmocka_unit_test(test_vm_alloc_failures),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
