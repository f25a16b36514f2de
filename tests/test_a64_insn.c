/*
 * mv_a64_insn_parse: every instruction form the scenario runner accepts
 * gives the attributes of its A64 encoding (size, SSE, SF, AR, pair,
 * exclusive, SIMD, writeback, registers), and every malformed or
 * unencodable line gives -EINVAL with one sentence naming it.
 */
#include "testutil.h"

#include "memvirt/soft_arm64.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

enum { SSE = 1, SF = 2, AR = 4, PAIR = 8, EXCL = 16, SIMD = 32 };

typedef struct good_case {
	const char *text;
	mv_a64_op op;
	uint8_t size, rt, rt2, rs, rn, wb;
	int64_t imm;
	uint64_t addr;
	unsigned flags;
} good_case;

#define ABS MV_A64_RN_ABS
#define NONE MV_A64_WB_NONE
#define PRE MV_A64_WB_PRE
#define POST MV_A64_WB_POST
#define LD MV_A64_LOAD
#define ST MV_A64_STORE

static const good_case good[] = {
	/* LDR/STR (immediate), X and W, every addressing mode */
	{ "ldr x1, [0x40000000]", LD, 8, 1, 0, 0, ABS, NONE, 0, 0x40000000, SF },
	{ "ldr w1, [x2]", LD, 4, 1, 0, 0, 2, NONE, 0, 0, 0 },
	{ "ldr x3, [x2, #16]", LD, 8, 3, 0, 0, 2, NONE, 16, 0, SF },
	{ "ldr x3, [x2, #-8]", LD, 8, 3, 0, 0, 2, NONE, -8, 0, SF },
	{ "ldr x3, [x2, #32760]", LD, 8, 3, 0, 0, 2, NONE, 32760, 0, SF },
	{ "ldr x3, [x2, #3]", LD, 8, 3, 0, 0, 2, NONE, 3, 0, SF },
	{ "ldr x3, [x2, #0x10]!", LD, 8, 3, 0, 0, 2, PRE, 16, 0, SF },
	{ "ldr x7, [x0], #8", LD, 8, 7, 0, 0, 0, POST, 8, 0, SF },
	{ "ldr x7, [x0], #-256", LD, 8, 7, 0, 0, 0, POST, -256, 0, SF },
	{ "ldr x7, [sp, #8]", LD, 8, 7, 0, 0, 31, NONE, 8, 0, SF },
	{ "ldr xzr, [x1]", LD, 8, 31, 0, 0, 1, NONE, 0, 0, SF },
	{ "str x6, [x0]", ST, 8, 6, 0, 0, 0, NONE, 0, 0, SF },
	{ "str wzr, [x0, 4]", ST, 4, 31, 0, 0, 0, NONE, 4, 0, 0 },
	{ "str x1, [sp, #-16]!", ST, 8, 1, 0, 0, 31, PRE, -16, 0, SF },
	/* byte / halfword, sign-extending loads: size, SSE and SF per the target */
	{ "ldrb w3, [x1]", LD, 1, 3, 0, 0, 1, NONE, 0, 0, 0 },
	{ "ldrb w3, [x1, #4095]", LD, 1, 3, 0, 0, 1, NONE, 4095, 0, 0 },
	{ "strb w3, [x1], #1", ST, 1, 3, 0, 0, 1, POST, 1, 0, 0 },
	{ "ldrh w3, [x1, #8190]", LD, 2, 3, 0, 0, 1, NONE, 8190, 0, 0 },
	{ "strh w3, [x1]", ST, 2, 3, 0, 0, 1, NONE, 0, 0, 0 },
	{ "ldrsb x3, [x1]", LD, 1, 3, 0, 0, 1, NONE, 0, 0, SSE | SF },
	{ "ldrsb w3, [x1]", LD, 1, 3, 0, 0, 1, NONE, 0, 0, SSE },
	{ "ldrsh x3, [0x40404002]", LD, 2, 3, 0, 0, ABS, NONE, 0, 0x40404002, SSE | SF },
	{ "ldrsh w3, [x1, #2]!", LD, 2, 3, 0, 0, 1, PRE, 2, 0, SSE },
	{ "ldrsw x4, [x1, #16380]", LD, 4, 4, 0, 0, 1, NONE, 16380, 0, SSE | SF },
	/* unscaled */
	{ "ldur x1, [x2, #-3]", LD, 8, 1, 0, 0, 2, NONE, -3, 0, SF },
	{ "stur w1, [x2, #255]", ST, 4, 1, 0, 0, 2, NONE, 255, 0, 0 },
	{ "ldurb w1, [x2, #1]", LD, 1, 1, 0, 0, 2, NONE, 1, 0, 0 },
	{ "sturb w1, [x2]", ST, 1, 1, 0, 0, 2, NONE, 0, 0, 0 },
	{ "ldurh w1, [x2, #-1]", LD, 2, 1, 0, 0, 2, NONE, -1, 0, 0 },
	{ "sturh w1, [x2]", ST, 2, 1, 0, 0, 2, NONE, 0, 0, 0 },
	{ "ldursb w1, [x2]", LD, 1, 1, 0, 0, 2, NONE, 0, 0, SSE },
	{ "ldursh x1, [x2]", LD, 2, 1, 0, 0, 2, NONE, 0, 0, SSE | SF },
	{ "ldursw x1, [x2, #-4]", LD, 4, 1, 0, 0, 2, NONE, -4, 0, SSE | SF },
	/* acquire / release: AR */
	{ "ldar x1, [x2]", LD, 8, 1, 0, 0, 2, NONE, 0, 0, AR | SF },
	{ "ldar w1, [sp, #0]", LD, 4, 1, 0, 0, 31, NONE, 0, 0, AR },
	{ "stlr x6, [0x80000000]", ST, 8, 6, 0, 0, ABS, NONE, 0, 0x80000000, AR | SF },
	{ "stlr w6, [x0]", ST, 4, 6, 0, 0, 0, NONE, 0, 0, AR },
	{ "ldarb w1, [x2]", LD, 1, 1, 0, 0, 2, NONE, 0, 0, AR },
	{ "stlrb w1, [x2]", ST, 1, 1, 0, 0, 2, NONE, 0, 0, AR },
	{ "ldarh w1, [x2]", LD, 2, 1, 0, 0, 2, NONE, 0, 0, AR },
	{ "stlrh w1, [x2]", ST, 2, 1, 0, 0, 2, NONE, 0, 0, AR },
	/* exclusives: the store has a status register */
	{ "ldxr x2, [x3]", LD, 8, 2, 0, 0, 3, NONE, 0, 0, EXCL | SF },
	{ "ldxr w2, [x3]", LD, 4, 2, 0, 0, 3, NONE, 0, 0, EXCL },
	{ "stxr w1, x2, [x3]", ST, 8, 2, 0, 1, 3, NONE, 0, 0, EXCL | SF },
	{ "stxr w1, w2, [sp]", ST, 4, 2, 0, 1, 31, NONE, 0, 0, EXCL },
	{ "ldxrb w2, [x3]", LD, 1, 2, 0, 0, 3, NONE, 0, 0, EXCL },
	{ "stxrb w1, w2, [x3]", ST, 1, 2, 0, 1, 3, NONE, 0, 0, EXCL },
	{ "ldxrh w2, [x3]", LD, 2, 2, 0, 0, 3, NONE, 0, 0, EXCL },
	{ "stxrh w1, w2, [x3]", ST, 2, 2, 0, 1, 3, NONE, 0, 0, EXCL },
	{ "ldaxr x2, [x3]", LD, 8, 2, 0, 0, 3, NONE, 0, 0, EXCL | AR | SF },
	{ "stlxr w4, x2, [x3]", ST, 8, 2, 0, 4, 3, NONE, 0, 0, EXCL | AR | SF },
	{ "ldaxrb w2, [x3]", LD, 1, 2, 0, 0, 3, NONE, 0, 0, EXCL | AR },
	{ "stlxrb w4, w2, [x3]", ST, 1, 2, 0, 4, 3, NONE, 0, 0, EXCL | AR },
	{ "ldaxrh w2, [x3]", LD, 2, 2, 0, 0, 3, NONE, 0, 0, EXCL | AR },
	{ "stlxrh w4, w2, [x3]", ST, 2, 2, 0, 4, 3, NONE, 0, 0, EXCL | AR },
	/* pairs */
	{ "ldp x4, x5, [0x40600000]", LD, 8, 4, 5, 0, ABS, NONE, 0, 0x40600000, PAIR | SF },
	{ "ldp w4, w5, [x1, #-256]", LD, 4, 4, 5, 0, 1, NONE, -256, 0, PAIR },
	{ "stp x29, x30, [sp, #-16]!", ST, 8, 29, 30, 0, 31, PRE, -16, 0, PAIR | SF },
	{ "ldp x29, x30, [sp], #16", LD, 8, 29, 30, 0, 31, POST, 16, 0, PAIR | SF },
	{ "stp x1, x1, [x2, #504]", ST, 8, 1, 1, 0, 2, NONE, 504, 0, PAIR | SF },
	{ "ldpsw x1, x2, [x3, #8]", LD, 4, 1, 2, 0, 3, NONE, 8, 0, PAIR | SSE | SF },
	/* SIMD&FP */
	{ "ldr q0, [x1]", LD, 16, 0, 0, 0, 1, NONE, 0, 0, SIMD },
	{ "str q31, [x1, #65520]", ST, 16, 31, 0, 0, 1, NONE, 65520, 0, SIMD },
	{ "ldr d2, [x1], #8", LD, 8, 2, 0, 0, 1, POST, 8, 0, SIMD },
	{ "str s3, [0x1000]", ST, 4, 3, 0, 0, ABS, NONE, 0, 0x1000, SIMD },
	{ "ldr h4, [x1]", LD, 2, 4, 0, 0, 1, NONE, 0, 0, SIMD },
	{ "ldr b5, [x1]", LD, 1, 5, 0, 0, 1, NONE, 0, 0, SIMD },
	{ "ldur q1, [x1, #-16]", LD, 16, 1, 0, 0, 1, NONE, -16, 0, SIMD },
	{ "ldp s0, s1, [x2, #252]", LD, 4, 0, 1, 0, 2, NONE, 252, 0, PAIR | SIMD },
	{ "stp d0, d1, [x2]", ST, 8, 0, 1, 0, 2, NONE, 0, 0, PAIR | SIMD },
	{ "ldr x0, [x0, #8]", LD, 8, 0, 0, 0, 0, NONE, 8, 0, SF },
	/* blanks and case */
	{ "  LDR  X1 ,[ X2 , # 8 ] ", LD, 8, 1, 0, 0, 2, NONE, 8, 0, SF },
	/* cache maintenance and fetches */
	{ "dc civac, x4", MV_A64_DC, 8, 4, 0, 0, 4, NONE, 0, 0, SF },
	{ "dc cvac, 0x40000000", MV_A64_DC, 8, 0, 0, 0, ABS, NONE, 0, 0x40000000, SF },
	{ "dc cvau, x1", MV_A64_DC, 8, 1, 0, 0, 1, NONE, 0, 0, SF },
	{ "dc cvap, x1", MV_A64_DC, 8, 1, 0, 0, 1, NONE, 0, 0, SF },
	{ "dc cvadp, x1", MV_A64_DC, 8, 1, 0, 0, 1, NONE, 0, 0, SF },
	{ "fetch 0x40405000", MV_A64_FETCH, 4, 0, 0, 0, ABS, NONE, 0, 0x40405000, 0 },
	{ "fetch 4096", MV_A64_FETCH, 4, 0, 0, 0, ABS, NONE, 0, 4096, 0 },
};

static void test_every_form(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		const good_case *g = &good[i];
		mv_a64_insn in;
		mv_error err = { 0 };
		int ret;

		memset(&in, 0xa5, sizeof(in));
		ret = mv_a64_insn_parse(g->text, &in, &err);
		if (ret)
			fail_msg("'%s': %s", g->text, err.msg);
		assert_int_equal(in.op, g->op);
		assert_int_equal(in.size, g->size);
		assert_int_equal(in.rt, g->rt);
		assert_int_equal(in.rt2, g->rt2);
		assert_int_equal(in.rs, g->rs);
		assert_int_equal(in.rn, g->rn);
		assert_int_equal(in.wb, g->wb);
		assert_int_equal(in.imm, g->imm);
		assert_int_equal(in.addr, g->addr);
		assert_int_equal(in.sign_extend, !!(g->flags & SSE));
		assert_int_equal(in.sf, !!(g->flags & SF));
		assert_int_equal(in.acq_rel, !!(g->flags & AR));
		assert_int_equal(in.pair, !!(g->flags & PAIR));
		assert_int_equal(in.exclusive, !!(g->flags & EXCL));
		assert_int_equal(in.simd, !!(g->flags & SIMD));
		assert_ptr_equal(in.text, g->text);
	}
}

typedef struct bad_case {
	const char *text;
	const char *says;     /* part of the sentence */
} bad_case;

static const bad_case bad[] = {
	{ "", "expected an instruction" },
	{ "   ", "expected an instruction" },
	{ "mov x1, x2", "unknown instruction 'mov'" },
	{ "ldr x32, [x0]", "'x32' is not a register" },
	{ "ldr x01, [x0]", "'x01' is not a register" },
	{ "ldr v0, [x0]", "'v0' is not a register" },
	{ "ldr sp, [x0]", "ldr takes an X, W or SIMD&FP register, not sp" },
	{ "ldrb x3, [x0]", "ldrb takes a W register, not x3" },
	{ "strh x3, [x0]", "strh takes a W register, not x3" },
	{ "ldrsw w3, [x0]", "ldrsw takes an X register, not w3" },
	{ "ldrsh q3, [x0]", "ldrsh takes an X or W register, not q3" },
	{ "ldar q0, [x0]", "ldar takes an X or W register, not q0" },
	{ "ldp x1, w2, [x0]", "both registers of a pair must be of the same kind (x1)" },
	{ "ldp h1, h2, [x0]", "ldp takes S or D SIMD&FP registers" },
	{ "stp q1, q2, [x0]", "stp takes S or D SIMD&FP registers (Q pairs are not modelled)" },
	{ "ldp x1, x1, [x0]", "ldp into the same register twice is UNPREDICTABLE" },
	{ "ldp x1, [x0]", "expected a register at '[x0]'" },
	{ "ldr x1, [w0]", "the base register must be an X register or sp, not w0" },
	{ "ldr x1, [xzr]", "xzr cannot be a base register (use sp)" },
	{ "ldr x1, [x0, x2]", "register offsets (x2) are not modelled" },
	{ "ldr x1, [x0, x2, lsl #3]", "register offsets (x2) are not modelled" },
	{ "ldr x1, [x0", "missing ']'" },
	{ "ldr x1, x0", "expected '[' at 'x0' (the address is written in brackets)" },
	{ "ldr x1", "missing ','" },
	{ "ldr x1,", "missing '['" },
	{ "ldr x1, [0x1000], #8", "an absolute address takes no offset or writeback (', #8')" },
	{ "ldr x1, [0x1000]!", "an absolute address takes no offset or writeback ('!')" },
	{ "ldr x1, [0xfffffffffffffffff]", "does not fit in 64 bits" },
	{ "ldr x1, [0xg]", "expected a number at '0xg]'" },
	{ "ldr x1, [x0, #abc]", "expected a number at 'abc]'" },
	{ "ldr x1, [x0, #12z]", "'12z' is not a number" },
	{ "ldr x1, [x0, #]", "expected a number at ']'" },
	{ "ldr x1, [x0, #4]junk", "unexpected 'junk' at the end" },
	{ "ldr x1, [x0, #32768]", "offset 32768 is out of range for ldr (-256 to 255, or a multiple of 8 from 0 to 32760)" },
	{ "ldr x1, [x0, #260]", "offset 260 is out of range for ldr" },
	{ "ldr x1, [x0, #256]!", "offset 256 is out of range for ldr (-256 to 255)" },
	{ "ldr x1, [x0], #-257", "offset -257 is out of range for ldr (-256 to 255)" },
	{ "ldur x1, [x0, #256]", "offset 256 is out of range for ldur (-256 to 255)" },
	{ "ldur x1, [x0, #8]!", "ldur has no writeback form" },
	{ "ldp x1, x2, [x0, #4]", "offset 4 is out of range for ldp (a multiple of 8 from -512 to 504)" },
	{ "ldp w1, w2, [x0, #256]", "(a multiple of 4 from -256 to 252)" },
	{ "ldar x1, [x0, #8]", "ldar takes only a base register ([xN] or [sp])" },
	{ "ldxr x1, [x0], #8", "ldxr takes only a base register" },
	{ "ldr x0, [x0], #8", "writeback into a transferred register (x0) is UNPREDICTABLE" },
	{ "str x3, [x3, #8]!", "writeback into a transferred register (x3) is UNPREDICTABLE" },
	{ "ldp x1, x2, [x2], #16", "writeback into a transferred register (x2) is UNPREDICTABLE" },
	{ "stxr x1, x2, [x3]", "the status register of a store-exclusive is a W register, not x1" },
	{ "stxr w2, x2, [x3]", "the status register of stxr must differ" },
	{ "stxr w3, x2, [x3]", "the status register of stxr must differ" },
	{ "stxr w1, [x3]", "expected a register at '[x3]'" },
	{ "dc ivac, x1", "'dc ivac' is not modelled" },
	{ "dc civac x1", "expected ', xN' at 'x1'" },
	{ "dc civac, w1", "dc takes the address in an X register, not w1" },
	{ "dc civac, xzr", "dc takes the address in an X register, not xzr" },
	{ "fetch", "missing a number" },
	{ "fetch x1", "expected a number at 'x1'" },
	{ "fetch 0x1000 0x2000", "unexpected '0x2000' at the end" },
	{ "fetch -4", "expected a number at '-4'" },
};

static void test_errors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		mv_a64_insn in = { .size = 77 };
		mv_error err = { 0 };
		char prefix[128];

		if (mv_a64_insn_parse(bad[i].text, &in, &err) != -EINVAL)
			fail_msg("'%s' was accepted", bad[i].text);
		assert_int_equal(err.code, -EINVAL);
		snprintf(prefix, sizeof(prefix), "instruction '%s': ", bad[i].text);
		if (strncmp(err.msg, prefix, strlen(prefix)) || !strstr(err.msg, bad[i].says))
			fail_msg("'%s' gave \"%s\", expected \"%s\"", bad[i].text, err.msg, bad[i].says);
		/* One sentence, and nothing written on failure. */
		assert_null(strchr(err.msg, '\n'));
		assert_int_equal(in.size, 77);
	}
}

/* A NULL error record is allowed. */
static void test_null_error(void **state)
{
	mv_a64_insn in;

	(void)state;
	assert_int_equal(mv_a64_insn_parse("ldr x1, [x99]", &in, NULL), -EINVAL);
	assert_int_equal(mv_a64_insn_parse("ldr x1, [x9]", &in, NULL), 0);
}

/* A random line: mostly well-shaped (mnemonic, registers, address), with random defects. */
static void random_line(uint64_t *rng, char *line, size_t len)
{
	static const char *const mnems[] = {
		"ldr", "str", "ldrb", "strb", "ldrh", "strh", "ldrsb", "ldrsh", "ldrsw", "ldur",
		"stur", "ldursw", "ldar", "stlr", "ldarb", "ldxr", "stxr", "ldaxr", "stlxrh", "ldp",
		"stp", "ldpsw", "dc civac,", "fetch", "mov", "",
	};
	static const char *const regs[] = {
		"x0", "x1", "x7", "x30", "xzr", "w0", "w2", "w30", "wzr", "sp", "q0", "d1", "s2",
		"h3", "b4", "x31", "v0", "",
	};
	static const char *const addrs[] = {
		"[x1]", "[sp]", "[x2, #8]", "[x3, #-8]!", "[x4], #16", "[x5, #4095]", "[0x40000000]",
		"[x6, #32760]", "[x1, x2]", "[w1]", "[x1", "x1", "0x1000", "[x1, #0x10]!", "[x0], #8",
		"[sp, #-512]!", "[x2, #1]", "",
	};
	const char *m = mnems[tu_rand_below(rng, sizeof(mnems) / sizeof(mnems[0]))];
	int nregs = (int)tu_rand_below(rng, 4);

	snprintf(line, len, "%s", m);
	for (int k = 0; k < nregs; k++) {
		strncat(line, k ? ", " : " ", len - strlen(line) - 1);
		strncat(line, regs[tu_rand_below(rng, sizeof(regs) / sizeof(regs[0]))],
			len - strlen(line) - 1);
	}
	strncat(line, nregs ? ", " : " ", len - strlen(line) - 1);
	strncat(line, addrs[tu_rand_below(rng, sizeof(addrs) / sizeof(addrs[0]))],
		len - strlen(line) - 1);
	/* Now and then a stray character somewhere. */
	if (!tu_rand_below(rng, 8) && strlen(line))
		line[tu_rand_below(rng, strlen(line))] = "#,[]!x -"[tu_rand_below(rng, 8)];
}

/*
 * The parser accepts or refuses each random line with a sentence and never
 * crashes; what it accepts is well-formed (a size the engine knows,
 * registers in range) and parses the same way again.
 */
static void test_random_lines(void **state)
{
	uint64_t seed = tu_seed(0x1e57), rng = seed;
	unsigned accepted = 0, lines = 200000;

	(void)state;
	for (unsigned i = 0; i < lines; i++) {
		mv_a64_insn in, again;
		mv_error err = { 0 };
		char line[128];

		random_line(&rng, line, sizeof(line));
		if (mv_a64_insn_parse(line, &in, &err)) {
			if (err.code != -EINVAL || strncmp(err.msg, "instruction '", 13))
				fail_msg("seed %llu: '%s' gave %d \"%s\"", (unsigned long long)seed, line,
					 err.code, err.msg);
			continue;
		}
		accepted++;
		if (!(in.size == 1 || in.size == 2 || in.size == 4 || in.size == 8 || in.size == 16) ||
		    in.rt > 31 || in.rt2 > 31 || in.rs > 31 || (in.rn > 31 && in.rn != MV_A64_RN_ABS))
			fail_msg("seed %llu: '%s' parsed into a malformed access", (unsigned long long)seed,
				 line);
		assert_int_equal(mv_a64_insn_parse(line, &again, NULL), 0);
		assert_int_equal(again.op, in.op);
		assert_int_equal(again.size, in.size);
		assert_int_equal(again.rn, in.rn);
		assert_int_equal(again.imm, in.imm);
	}
	printf("# %u of %u random lines parsed\n", accepted, lines);
	assert_true(accepted > lines / 50);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_form),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_null_error),
		cmocka_unit_test(test_random_lines),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
