/*
 * mv_a64_insn_parse: the load/store instructions of the scenario runner,
 * written as A64 assembly ("ldrsh x3, [x2, #4]"), turned into the
 * attributes the access engine and the ESR_EL2 syndrome need. The forms,
 * operand rules and immediate ranges are those of the A64 encodings (ARM
 * ARM C6.2, "Alphabetical list of A64 base instructions", and C7.2 for the
 * SIMD&FP LDR/STR/LDP/STP), so a line that parses is one an assembler
 * would accept; register-offset and literal forms are not modelled.
 */
#include "memvirt/soft_arm64.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Which registers a form takes as Rt (and Rt2). */
enum reg_rule {
	REGS_XW,        /* Xt (size 8) or Wt (size 4) */
	REGS_XW_SIMD,   /* also Bt/Ht/St/Dt/Qt (sizes 1..16) */
	REGS_W,         /* Wt only: the size is the form's */
	REGS_X,         /* Xt only: the size is the form's */
	REGS_SIGNED,    /* Wt or Xt: the size is the form's, sign-extended to the register */
};

/* How the address may be written (A64 immediate forms, ARM ARM C6.2). */
enum addr_rule {
	ADDR_IMM,       /* [Xn{, #imm}] scaled imm12 or unscaled imm9, [Xn, #imm9]!, [Xn], #imm9 */
	ADDR_UNSCALED,  /* LDUR/STUR: [Xn{, #imm9}] only */
	ADDR_PAIR,      /* LDP/STP: imm7 scaled by the register size, all three modes */
	ADDR_BASE,      /* LDAR/LDXR...: [Xn{, #0}] only */
};

enum {
	F_SIGNED = 1u << 0,   /* ldrs*: SSE */
	F_ACQREL = 1u << 1,   /* ldar/stlr/ldaxr/stlxr: AR */
	F_EXCL = 1u << 2,     /* ldxr/stxr: exclusive (ISV=0) */
	F_PAIR = 1u << 3,     /* ldp/stp: two registers (ISV=0) */
};

typedef struct a64_form {
	const char *name;
	mv_a64_op op;
	uint8_t size;          /* 0 = from the register */
	uint8_t regs;          /* enum reg_rule */
	uint8_t addr;          /* enum addr_rule */
	uint8_t flags;
} a64_form;

static const a64_form forms[] = {
	{ "ldr", MV_A64_LOAD, 0, REGS_XW_SIMD, ADDR_IMM, 0 },
	{ "str", MV_A64_STORE, 0, REGS_XW_SIMD, ADDR_IMM, 0 },
	{ "ldrb", MV_A64_LOAD, 1, REGS_W, ADDR_IMM, 0 },
	{ "strb", MV_A64_STORE, 1, REGS_W, ADDR_IMM, 0 },
	{ "ldrh", MV_A64_LOAD, 2, REGS_W, ADDR_IMM, 0 },
	{ "strh", MV_A64_STORE, 2, REGS_W, ADDR_IMM, 0 },
	{ "ldrsb", MV_A64_LOAD, 1, REGS_SIGNED, ADDR_IMM, F_SIGNED },
	{ "ldrsh", MV_A64_LOAD, 2, REGS_SIGNED, ADDR_IMM, F_SIGNED },
	{ "ldrsw", MV_A64_LOAD, 4, REGS_X, ADDR_IMM, F_SIGNED },
	{ "ldur", MV_A64_LOAD, 0, REGS_XW_SIMD, ADDR_UNSCALED, 0 },
	{ "stur", MV_A64_STORE, 0, REGS_XW_SIMD, ADDR_UNSCALED, 0 },
	{ "ldurb", MV_A64_LOAD, 1, REGS_W, ADDR_UNSCALED, 0 },
	{ "sturb", MV_A64_STORE, 1, REGS_W, ADDR_UNSCALED, 0 },
	{ "ldurh", MV_A64_LOAD, 2, REGS_W, ADDR_UNSCALED, 0 },
	{ "sturh", MV_A64_STORE, 2, REGS_W, ADDR_UNSCALED, 0 },
	{ "ldursb", MV_A64_LOAD, 1, REGS_SIGNED, ADDR_UNSCALED, F_SIGNED },
	{ "ldursh", MV_A64_LOAD, 2, REGS_SIGNED, ADDR_UNSCALED, F_SIGNED },
	{ "ldursw", MV_A64_LOAD, 4, REGS_X, ADDR_UNSCALED, F_SIGNED },
	{ "ldar", MV_A64_LOAD, 0, REGS_XW, ADDR_BASE, F_ACQREL },
	{ "stlr", MV_A64_STORE, 0, REGS_XW, ADDR_BASE, F_ACQREL },
	{ "ldarb", MV_A64_LOAD, 1, REGS_W, ADDR_BASE, F_ACQREL },
	{ "stlrb", MV_A64_STORE, 1, REGS_W, ADDR_BASE, F_ACQREL },
	{ "ldarh", MV_A64_LOAD, 2, REGS_W, ADDR_BASE, F_ACQREL },
	{ "stlrh", MV_A64_STORE, 2, REGS_W, ADDR_BASE, F_ACQREL },
	{ "ldxr", MV_A64_LOAD, 0, REGS_XW, ADDR_BASE, F_EXCL },
	{ "stxr", MV_A64_STORE, 0, REGS_XW, ADDR_BASE, F_EXCL },
	{ "ldxrb", MV_A64_LOAD, 1, REGS_W, ADDR_BASE, F_EXCL },
	{ "stxrb", MV_A64_STORE, 1, REGS_W, ADDR_BASE, F_EXCL },
	{ "ldxrh", MV_A64_LOAD, 2, REGS_W, ADDR_BASE, F_EXCL },
	{ "stxrh", MV_A64_STORE, 2, REGS_W, ADDR_BASE, F_EXCL },
	{ "ldaxr", MV_A64_LOAD, 0, REGS_XW, ADDR_BASE, F_EXCL | F_ACQREL },
	{ "stlxr", MV_A64_STORE, 0, REGS_XW, ADDR_BASE, F_EXCL | F_ACQREL },
	{ "ldaxrb", MV_A64_LOAD, 1, REGS_W, ADDR_BASE, F_EXCL | F_ACQREL },
	{ "stlxrb", MV_A64_STORE, 1, REGS_W, ADDR_BASE, F_EXCL | F_ACQREL },
	{ "ldaxrh", MV_A64_LOAD, 2, REGS_W, ADDR_BASE, F_EXCL | F_ACQREL },
	{ "stlxrh", MV_A64_STORE, 2, REGS_W, ADDR_BASE, F_EXCL | F_ACQREL },
	{ "ldp", MV_A64_LOAD, 0, REGS_XW_SIMD, ADDR_PAIR, F_PAIR },
	{ "stp", MV_A64_STORE, 0, REGS_XW_SIMD, ADDR_PAIR, F_PAIR },
	{ "ldpsw", MV_A64_LOAD, 4, REGS_X, ADDR_PAIR, F_PAIR | F_SIGNED },
};

/* DC operations that need only read permission (ARM ARM D7.5.9: DC IVAC also needs write). */
static const char *const dc_ops[] = { "civac", "cvac", "cvau", "cvap", "cvadp" };

/* A register operand as written. */
typedef struct a64_reg {
	char kind;      /* 'x', 'w', 's' (SP) or a SIMD&FP prefix 'b' 'h' 's' 'd' 'q' as 'B'..'Q' */
	uint8_t num;    /* 0..31 (31: XZR/WZR, SP, or V31) */
	uint8_t size;   /* bytes it transfers */
	char name[16];  /* as written, lower case (read_word's buffer) */
} a64_reg;

typedef struct a64_cursor {
	const char *p;
	const char *text;
	mv_error *err;
} a64_cursor;

/* -EINVAL with "instruction 'TEXT': <why>". */
static int __attribute__((format(printf, 2, 3))) fail(a64_cursor *c, const char *fmt, ...)
{
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return mv_error_set(c->err, -EINVAL, "instruction '%s': %s", c->text, why);
}

static void skip_space(a64_cursor *c)
{
	while (isspace((unsigned char)*c->p))
		c->p++;
}

/* Consume @ch (after blanks) if it is next. */
static bool accept(a64_cursor *c, char ch)
{
	skip_space(c);
	if (*c->p != ch)
		return false;
	c->p++;
	return true;
}

static int expect_char(a64_cursor *c, char ch, const char *what)
{
	if (accept(c, ch))
		return 0;
	if (!*c->p)
		return fail(c, "missing '%c'", ch);
	return fail(c, what, c->p);
}

/* A word of letters and digits, lower-cased into @buf. Returns its length (0 if none). */
static size_t read_word(a64_cursor *c, char *buf, size_t len)
{
	size_t n = 0;

	skip_space(c);
	while (isalnum((unsigned char)c->p[n]) || c->p[n] == '_') {
		if (n + 1 < len)
			buf[n] = (char)tolower((unsigned char)c->p[n]);
		n++;
	}
	buf[n < len ? n : len - 1] = 0;
	c->p += n;
	return n;
}

/* Register names: x0-x30, xzr, w0-w30, wzr, sp, b/h/s/d/q0-31. */
static bool decode_reg(const char *w, a64_reg *r)
{
	static const char simd[] = "bhsdq";
	const char *kind = strchr(simd, w[0]);
	char *end;
	unsigned long n;

	snprintf(r->name, sizeof(r->name), "%s", w);
	if (!strcmp(w, "sp") || !strcmp(w, "xzr") || !strcmp(w, "wzr")) {
		r->kind = w[0] == 's' ? 's' : w[0];
		r->num = 31;
		r->size = w[0] == 'w' ? 4 : 8;
		return true;
	}
	if (!w[0] || !isdigit((unsigned char)w[1]) || (w[1] == '0' && w[2]))
		return false;
	n = strtoul(w + 1, &end, 10);
	if (*end)
		return false;
	if ((w[0] == 'x' || w[0] == 'w') && n <= 30) {
		r->kind = w[0];
		r->num = (uint8_t)n;
		r->size = w[0] == 'x' ? 8 : 4;
		return true;
	}
	if (kind && *kind && n <= 31) {
		r->kind = (char)toupper((unsigned char)w[0]);
		r->num = (uint8_t)n;
		r->size = (uint8_t)(1u << (kind - simd));
		return true;
	}
	return false;
}

static int parse_reg(a64_cursor *c, a64_reg *r)
{
	char w[16];

	if (!read_word(c, w, sizeof(w)))
		return *c->p ? fail(c, "expected a register at '%s'", c->p) : fail(c, "missing a register");
	if (!decode_reg(w, r))
		return fail(c, "'%s' is not a register", w);
	return 0;
}

/* A number: decimal or 0x hex, with an optional sign when @is_signed. */
static int parse_number(a64_cursor *c, bool is_signed, uint64_t *out, bool *neg)
{
	const char *s;
	char *end;
	int base = 10;

	skip_space(c);
	s = c->p;
	*neg = false;
	if (is_signed && (*s == '-' || *s == '+'))
		*neg = *s++ == '-';
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
	}
	if (!isxdigit((unsigned char)*s) || (base == 10 && !isdigit((unsigned char)*s)))
		return *c->p ? fail(c, "expected a number at '%s'", c->p) : fail(c, "missing a number");
	errno = 0;
	*out = strtoull(s, &end, base);
	if (errno || isalnum((unsigned char)*end)) {
		while (isalnum((unsigned char)*end))
			end++;
		return fail(c, "'%.*s' is not a number (or does not fit in 64 bits)",
			    (int)(end - c->p), c->p);
	}
	c->p = end;
	return 0;
}

/* "#imm" (the '#' is optional, as GNU as allows). */
static int parse_imm(a64_cursor *c, int64_t *imm)
{
	uint64_t v;
	bool neg;

	accept(c, '#');
	if (parse_number(c, true, &v, &neg))
		return -EINVAL;
	if (v > (uint64_t)INT64_MAX)
		return fail(c, "offset '%s' is too large", c->p);
	*imm = neg ? -(int64_t)v : (int64_t)v;
	return 0;
}

static const a64_form *find_form(const char *name)
{
	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++)
		if (!strcmp(forms[i].name, name))
			return &forms[i];
	return NULL;
}

/* Check a transfer register against the form's rule; sets size/sf/simd. */
static int check_reg(a64_cursor *c, const a64_form *f, const a64_reg *r, mv_a64_insn *in)
{
	bool simd = r->kind >= 'A' && r->kind <= 'Z';

	if (r->kind == 's' || (simd && f->regs != REGS_XW_SIMD) ||
	    (f->regs == REGS_W && r->kind != 'w') || (f->regs == REGS_X && r->kind != 'x')) {
		char why[96];

		snprintf(why, sizeof(why), "%s takes %s, not %s", f->name,
			 f->regs == REGS_W ? "a W register" : f->regs == REGS_X ? "an X register" :
			 f->regs == REGS_XW_SIMD ? "an X, W or SIMD&FP register" :
			 "an X or W register", r->name);
		return fail(c, "%s", why);
	}
	in->simd = simd;
	in->sf = r->kind == 'x';
	in->size = f->size ? f->size : r->size;
	return 0;
}

/* Is @imm encodable for the form's addressing, with @in->size and @in->wb known? */
static bool imm_ok(const a64_form *f, const mv_a64_insn *in)
{
	int64_t imm = in->imm, sz = in->size;
	bool unscaled = imm >= -256 && imm <= 255;

	switch (f->addr) {
	case ADDR_PAIR:
		return imm % sz == 0 && imm >= -64 * sz && imm <= 63 * sz;
	case ADDR_UNSCALED:
		return in->wb == MV_A64_WB_NONE && unscaled;
	case ADDR_BASE:
		return in->wb == MV_A64_WB_NONE && imm == 0;
	default:
		return unscaled || (in->wb == MV_A64_WB_NONE && imm % sz == 0 && imm >= 0 &&
				    imm <= 4095 * sz);
	}
}

static int imm_error(a64_cursor *c, const a64_form *f, const mv_a64_insn *in)
{
	char why[160];
	int64_t sz = in->size;

	if (f->addr == ADDR_BASE)
		snprintf(why, sizeof(why), "%s takes only a base register ([xN] or [sp])", f->name);
	else if (f->addr == ADDR_UNSCALED && in->wb != MV_A64_WB_NONE)
		snprintf(why, sizeof(why), "%s has no writeback form", f->name);
	else if (f->addr == ADDR_PAIR)
		snprintf(why, sizeof(why), "offset %lld is out of range for %s (a multiple of %lld "
			 "from %lld to %lld)", (long long)in->imm, f->name, (long long)sz,
			 (long long)(-64 * sz), (long long)(63 * sz));
	else if (f->addr == ADDR_UNSCALED || in->wb != MV_A64_WB_NONE)
		snprintf(why, sizeof(why), "offset %lld is out of range for %s (-256 to 255)",
			 (long long)in->imm, f->name);
	else
		snprintf(why, sizeof(why), "offset %lld is out of range for %s (-256 to 255, or a "
			 "multiple of %lld from 0 to %lld)", (long long)in->imm, f->name,
			 (long long)sz, (long long)(4095 * sz));
	return fail(c, "%s", why);
}

/* "[0xABS]", "[Xn|SP{, #imm}]", "[Xn|SP, #imm]!", "[Xn|SP], #imm". */
static int parse_address(a64_cursor *c, mv_a64_insn *in)
{
	a64_reg base;
	uint64_t addr;
	bool neg;

	if (expect_char(c, '[', "expected '[' at '%s' (the address is written in brackets)"))
		return -EINVAL;
	skip_space(c);
	if (isdigit((unsigned char)*c->p)) {
		if (parse_number(c, false, &addr, &neg) ||
		    expect_char(c, ']', "expected ']' after the address at '%s'"))
			return -EINVAL;
		in->rn = MV_A64_RN_ABS;
		in->addr = addr;
		skip_space(c);
		if (*c->p == '!' || *c->p == ',')
			return fail(c, "an absolute address takes no offset or writeback ('%s')", c->p);
		return 0;
	}
	if (parse_reg(c, &base))
		return -EINVAL;
	if (base.kind != 'x' && base.kind != 's')
		return fail(c, "the base register must be an X register or sp, not %s", base.name);
	if (base.kind == 'x' && base.num == 31)
		return fail(c, "%s cannot be a base register (use sp)", base.name);
	in->rn = base.num;
	if (accept(c, ',')) {
		skip_space(c);
		if (isalpha((unsigned char)*c->p)) {
			char w[16];

			read_word(c, w, sizeof(w));
			return fail(c, "register offsets (%s) are not modelled", w);
		}
		if (parse_imm(c, &in->imm))
			return -EINVAL;
		if (expect_char(c, ']', "expected ']' at '%s'"))
			return -EINVAL;
		if (accept(c, '!'))
			in->wb = MV_A64_WB_PRE;
		return 0;
	}
	if (expect_char(c, ']', "expected ']' or ', #offset' at '%s'"))
		return -EINVAL;
	if (accept(c, ',')) {
		in->wb = MV_A64_WB_POST;
		return parse_imm(c, &in->imm);
	}
	return 0;
}

/* The A64 register-overlap rules that make a form CONSTRAINED UNPREDICTABLE. */
static int check_overlaps(a64_cursor *c, const a64_form *f, const mv_a64_insn *in)
{
	bool gpr = !in->simd;

	if (gpr && in->wb != MV_A64_WB_NONE && in->rn != 31 &&
	    (in->rn == in->rt || ((f->flags & F_PAIR) && in->rn == in->rt2)))
		return fail(c, "writeback into a transferred register (x%u) is UNPREDICTABLE",
			    in->rn);
	if ((f->flags & F_PAIR) && in->op == MV_A64_LOAD && in->rt == in->rt2)
		return fail(c, "%s into the same register twice is UNPREDICTABLE", f->name);
	if ((f->flags & F_EXCL) && in->op == MV_A64_STORE &&
	    (in->rs == in->rt || (in->rs == in->rn && in->rn != 31)))
		return fail(c, "the status register of %s must differ from the data and base "
			    "registers (UNPREDICTABLE otherwise)", f->name);
	return 0;
}

/* Rt{, Rt2} or, for a store-exclusive, Ws, Rt. */
static int parse_transfer_regs(a64_cursor *c, const a64_form *f, mv_a64_insn *in)
{
	a64_reg r, r2;

	if ((f->flags & F_EXCL) && in->op == MV_A64_STORE) {
		if (parse_reg(c, &r))
			return -EINVAL;
		if (r.kind != 'w')
			return fail(c, "the status register of a store-exclusive is a W register, not %s",
				    r.name);
		in->rs = r.num;
		if (expect_char(c, ',', "expected ',' at '%s'"))
			return -EINVAL;
	}
	if (parse_reg(c, &r) || check_reg(c, f, &r, in))
		return -EINVAL;
	in->rt = r.num;
	if (f->flags & F_PAIR) {
		if (expect_char(c, ',', "expected ',' and a second register at '%s'") ||
		    parse_reg(c, &r2) || check_reg(c, f, &r2, in))
			return -EINVAL;
		if (r2.kind != r.kind)
			return fail(c, "both registers of a pair must be of the same kind (%s)", r.name);
		in->rt2 = r2.num;
	}
	/* A Q pair moves 32 bytes: more than an access's two 64-bit values hold. */
	if (in->simd && (f->flags & F_PAIR) && (in->size < 4 || in->size > 8))
		return fail(c, "%s takes S or D SIMD&FP registers (Q pairs are not modelled)", f->name);
	return expect_char(c, ',', "expected ',' and an address at '%s'");
}

static int parse_load_store(a64_cursor *c, const a64_form *f, mv_a64_insn *in)
{
	in->op = f->op;
	in->sign_extend = f->flags & F_SIGNED;
	in->acq_rel = f->flags & F_ACQREL;
	in->exclusive = f->flags & F_EXCL;
	in->pair = f->flags & F_PAIR;
	if (parse_transfer_regs(c, f, in) || parse_address(c, in))
		return -EINVAL;
	if (in->rn == MV_A64_RN_ABS)
		return 0;
	if (!imm_ok(f, in))
		return imm_error(c, f, in);
	return check_overlaps(c, f, in);
}

/* "dc civac, xN" (or an absolute address: "dc civac, 0x40000000"). */
static int parse_dc(a64_cursor *c, mv_a64_insn *in)
{
	char op[16];
	a64_reg r;
	bool known = false, neg;

	read_word(c, op, sizeof(op));
	for (size_t i = 0; i < sizeof(dc_ops) / sizeof(dc_ops[0]); i++)
		known |= !strcmp(op, dc_ops[i]);
	if (!known)
		return fail(c, "'dc %s' is not modelled (dc takes civac, cvac, cvau, cvap or cvadp)", op);
	if (expect_char(c, ',', "expected ', xN' at '%s'"))
		return -EINVAL;
	in->op = MV_A64_DC;
	in->size = 8;
	in->sf = true;
	skip_space(c);
	if (isdigit((unsigned char)*c->p)) {
		in->rn = MV_A64_RN_ABS;
		return parse_number(c, false, &in->addr, &neg);
	}
	if (parse_reg(c, &r))
		return -EINVAL;
	if (r.kind != 'x' || r.num == 31)
		return fail(c, "dc takes the address in an X register, not %s", r.name);
	in->rn = in->rt = r.num;
	return 0;
}

/* "fetch 0xADDR": an instruction fetch of 4 bytes. */
static int parse_fetch(a64_cursor *c, mv_a64_insn *in)
{
	bool neg;

	in->op = MV_A64_FETCH;
	in->size = 4;
	in->rn = MV_A64_RN_ABS;
	return parse_number(c, false, &in->addr, &neg);
}

int mv_a64_insn_parse(const char *text, mv_a64_insn *out, mv_error *err)
{
	a64_cursor c = { .p = text, .text = text, .err = err };
	mv_a64_insn in = { .text = text };
	const a64_form *f = NULL;
	char name[16];
	int ret;

	if (!read_word(&c, name, sizeof(name)))
		return fail(&c, "expected an instruction");
	if (!strcmp(name, "fetch"))
		ret = parse_fetch(&c, &in);
	else if (!strcmp(name, "dc"))
		ret = parse_dc(&c, &in);
	else if ((f = find_form(name)))
		ret = parse_load_store(&c, f, &in);
	else
		return fail(&c, "unknown instruction '%s'", name);
	if (ret)
		return ret;
	skip_space(&c);
	if (*c.p)
		return fail(&c, "unexpected '%s' at the end", c.p);
	*out = in;
	return 0;
}
