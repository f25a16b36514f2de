/*
 * The parser of `memvirt mmu run` scripts (docs/mmu_script.md): one
 * directive or instruction per line, checked before anything runs so a
 * bad script fails with one "SCRIPT:LINE: ..." sentence and no output.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "memvirt/soft_memslot.h"
#include "mmu_script.h"

#define MAX_TOKENS 24

const char *const mmu_result_names[MMU_NR_RESULTS] = {
	[MMU_RES_DONE] = "done",
	[MMU_RES_MMIO] = "mmio",
	[MMU_RES_NISV] = "nisv",
	[MMU_RES_INTERNAL] = "internal-error",
	[MMU_RES_GUEST_FAULT] = "guest-fault",
	[MMU_RES_INJECTED] = "injected",
	[MMU_RES_SKIPPED] = "skipped",
	[MMU_RES_EXIT] = "exit",
	[MMU_RES_FAILED] = "failed",
};

/* The parser's state while it reads one script. */
typedef struct parser {
	mmu_script *s;
	mv_error *err;
	mmu_line *l;            /* the line being parsed */
	char *tok[MAX_TOKENS];  /* its words (tok[0] = the directive) */
	int ntok;
	bool created;           /* a line that needs the VM was seen */
	unsigned vtcr_line;     /* the vtcr / ipa line, 0 if none yet */
	bool s1pool;            /* an s1pool line was seen */
} parser;

typedef struct directive {
	const char *name;
	mmu_op op;
	const char *usage;
	int min_args;           /* words after the name */
	int (*parse)(parser *p);
	bool creates_vm;        /* the VM must exist for this line */
} directive;

static int __attribute__((format(printf, 2, 3))) perr(parser *p, const char *fmt, ...)
{
	char why[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return mv_error_set(p->err, -EINVAL, "%s:%u: %s", p->s->name, p->l->lineno, why);
}

/* A whole token as a decimal or 0x-hex number of 64 bits at most. */
static bool parse_u64(const char *tok, uint64_t *out)
{
	bool hex = tok[0] == '0' && (tok[1] == 'x' || tok[1] == 'X');
	const char *digits = hex ? tok + 2 : tok;
	char *end;

	if (!isxdigit((unsigned char)digits[0]) || (!hex && !isdigit((unsigned char)digits[0])))
		return false;
	errno = 0;
	*out = strtoull(digits, &end, hex ? 16 : 10);
	return !errno && !*end;
}

static int num(parser *p, int i, uint64_t *out)
{
	if (!parse_u64(p->tok[i], out))
		return perr(p, "%s: '%s' is not a number", p->tok[0], p->tok[i]);
	return 0;
}

static int size(parser *p, int i, uint64_t *out)
{
	if (mv_parse_size(p->tok[i], false, out) || !*out)
		return perr(p, "%s: '%s' is not a size (write e.g. 4096, 0x1000, 64K, 2M)",
			    p->tok[0], p->tok[i]);
	return 0;
}

/* A block size: a size, or "page" for 4 KiB (the granule every table here uses). */
static int block(parser *p, int i, uint64_t *out)
{
	if (!strcmp(p->tok[i], "page")) {
		*out = HV_PAGE_SIZE;
		return 0;
	}
	return size(p, i, out);
}

static int page_aligned(parser *p, const char *what, uint64_t v)
{
	if (v & (HV_PAGE_SIZE - 1))
		return perr(p, "%s: %s 0x%llx is not a multiple of 4 KiB", p->tok[0], what,
			    (unsigned long long)v);
	return 0;
}

/* The option word at @i needs a value: -EINVAL with a sentence when it is missing. */
static int opt_value(parser *p, int i)
{
	if (i + 1 >= p->ntok)
		return perr(p, "%s: option '%s' needs a value", p->tok[0], p->tok[i]);
	return 0;
}

static int bad_option(parser *p, int i, const char *expected)
{
	return perr(p, "%s: unknown option '%s' (expected %s)", p->tok[0], p->tok[i], expected);
}

const char *const mmu_s2ap_names[4] = { "none", "ro", "wo", "rw" };

/* Option tok[*i] takes one of the four @names (an AP field): its index in *out; skips the value. */
static int ap_option(parser *p, int *i, const char *const names[4], unsigned *out)
{
	unsigned a = 0;

	if (opt_value(p, *i))
		return -EINVAL;
	while (a < 4 && strcmp(p->tok[*i + 1], names[a]))
		a++;
	if (a == 4)
		return perr(p, "%s: ap '%s' is not %s, %s, %s or %s", p->tok[0], p->tok[*i + 1],
			    names[0], names[1], names[2], names[3]);
	*out = a;
	(*i)++;
	return 0;
}

static int on_off(parser *p, int i, bool *out)
{
	if (!strcmp(p->tok[i], "on") || !strcmp(p->tok[i], "1"))
		*out = true;
	else if (!strcmp(p->tok[i], "off") || !strcmp(p->tok[i], "0"))
		*out = false;
	else
		return perr(p, "%s: '%s' is not on or off", p->tok[0], p->tok[i]);
	return 0;
}

/* "af 0|1" at @i; advances *i past the value. */
static int af_option(parser *p, int *i, bool *af)
{
	if (opt_value(p, *i) || on_off(p, ++*i, af))
		return -EINVAL;
	return 0;
}

/* ---- set-up ---- */

static int parse_vtcr(parser *p)
{
	mv_s2_config cfg;
	mv_error e = { 0 };

	if (p->ntok != 2)
		return perr(p, "vtcr: expected 'vtcr VALUE'");
	if (num(p, 1, &p->l->vtcr))
		return -EINVAL;
	if (mv_vtcr_decode(p->l->vtcr, &cfg, &e))
		return perr(p, "vtcr 0x%llx: %s", (unsigned long long)p->l->vtcr, e.msg);
	return 0;
}

/* ipa BITS [granule 4K|16K|64K] [start-level N]: KVM's VTCR for that IPA size. */
static int parse_ipa(parser *p)
{
	uint64_t bits, v, gran = 4096;
	int64_t level = -1;
	mv_s2_config cfg;
	mv_error e = { 0 };

	if (num(p, 1, &bits))
		return -EINVAL;
	for (int i = 2; i < p->ntok; i++) {
		if (!strcmp(p->tok[i], "granule")) {
			if (opt_value(p, i) || size(p, ++i, &gran))
				return -EINVAL;
			if (gran != 4096 && gran != 16384 && gran != 65536)
				return perr(p, "ipa: granule '%s' is not 4K, 16K or 64K", p->tok[i]);
		} else if (!strcmp(p->tok[i], "start-level")) {
			if (opt_value(p, i) || num(p, ++i, &v))
				return -EINVAL;
			if (v > 3)
				return perr(p, "ipa: start level %s is not 0 to 3", p->tok[i]);
			level = (int64_t)v;
		} else {
			return bad_option(p, i, "granule or start-level");
		}
	}
	if (bits > 64 || mv_s2_config_for_ipa((unsigned)bits, (unsigned)__builtin_ctzll(gran), &cfg))
		return perr(p, "ipa: %s bits is not an IPA size from 32 to 48", p->tok[1]);
	if (level >= 0)
		cfg.start_level = (int)level;
	p->l->vtcr = mv_vtcr_encode(&cfg);
	if (mv_vtcr_decode(p->l->vtcr, &cfg, &e))
		return perr(p, "ipa: %s", e.msg);
	return 0;
}

static int parse_ram(parser *p)
{
	typeof(p->l->ram) *r = &p->l->ram;

	r->name = p->tok[1];
	if (size(p, 2, &r->size) || page_aligned(p, "size", r->size))
		return -EINVAL;
	for (int i = 3; i < p->ntok; i++) {
		if (r->backing != MMU_RAM_PAGES)
			return perr(p, "ram: '%s' after the backing (thp or hugetlb) was given",
				    p->tok[i]);
		if (!strcmp(p->tok[i], "thp")) {
			r->backing = MMU_RAM_THP;
			r->page_size = 2u << 20;
		} else if (!strcmp(p->tok[i], "hugetlb")) {
			if (opt_value(p, i) || size(p, ++i, &r->page_size))
				return -EINVAL;
			if (r->page_size != (2u << 20) && r->page_size != (1u << 30))
				return perr(p, "ram: hugetlb page size '%s' is not 2M or 1G", p->tok[i]);
			if (r->size % r->page_size)
				return perr(p, "ram %s: size is not a multiple of the %s hugetlb page",
					    r->name, p->tok[i]);
			r->backing = MMU_RAM_HUGETLB;
		} else {
			return bad_option(p, i, "thp or hugetlb SIZE");
		}
	}
	if (r->backing == MMU_RAM_THP && r->size % r->page_size)
		return perr(p, "ram %s: a thp block's size must be a multiple of 2M", r->name);
	for (size_t i = 0; i + 1 < p->s->nr; i++)
		if (p->s->lines[i].op == MMU_RAM && !strcmp(p->s->lines[i].ram.name, r->name))
			return perr(p, "ram: '%s' is already defined on line %u", r->name,
				    p->s->lines[i].lineno);
	return 0;
}

static const mmu_line *find_ram(parser *p, const char *name)
{
	for (size_t i = 0; i + 1 < p->s->nr; i++)
		if (p->s->lines[i].op == MMU_RAM && !strcmp(p->s->lines[i].ram.name, name))
			return &p->s->lines[i];
	return NULL;
}

static int parse_slot(parser *p)
{
	typeof(p->l->slot) *s = &p->l->slot;
	const mmu_line *ram;
	uint64_t id;

	if (num(p, 1, &id) || num(p, 2, &s->gpa))
		return -EINVAL;
	if (id >= MV_MEMSLOT_SLOTS_NUM)
		return perr(p, "slot: id %s is not 0 to %u", p->tok[1], MV_MEMSLOT_SLOTS_NUM - 1);
	s->id = (unsigned)id;
	s->ram = p->tok[3];
	ram = find_ram(p, s->ram);
	if (!ram)
		return perr(p, "slot: no ram named '%s' before this line", s->ram);
	for (int i = 4; i < p->ntok; i++) {
		if (!strcmp(p->tok[i], "offset")) {
			if (opt_value(p, i) || size(p, ++i, &s->offset))
				return -EINVAL;
		} else if (!strcmp(p->tok[i], "size")) {
			if (opt_value(p, i) || size(p, ++i, &s->size))
				return -EINVAL;
		} else if (!strcmp(p->tok[i], "ro")) {
			s->flags |= HV_MEM_READONLY;
		} else if (!strcmp(p->tok[i], "log")) {
			s->flags |= HV_MEM_LOG_DIRTY_PAGES;
		} else {
			return bad_option(p, i, "offset, size, ro or log");
		}
	}
	if (!s->size)
		s->size = ram->ram.size > s->offset ? ram->ram.size - s->offset : 0;
	if (s->offset >= ram->ram.size || s->size > ram->ram.size - s->offset)
		return perr(p, "slot %u: offset 0x%llx + size 0x%llx is beyond ram %s (0x%llx bytes)",
			    s->id, (unsigned long long)s->offset, (unsigned long long)s->size,
			    s->ram, (unsigned long long)ram->ram.size);
	return page_aligned(p, "offset", s->offset);
}

/* "count N" at *i. */
static int count_option(parser *p, int *i, uint64_t *count)
{
	if (opt_value(p, *i) || num(p, ++*i, count))
		return -EINVAL;
	if (!*count)
		return perr(p, "%s: count must be at least 1", p->tok[0]);
	return 0;
}

static int parse_s2map(parser *p)
{
	typeof(p->l->s2map) *m = &p->l->s2map;

	m->count = 1;
	m->ap = MMU_S2AP_RW;
	m->af = true;
	if (num(p, 1, &m->ipa) || block(p, 2, &m->block))
		return -EINVAL;
	for (int i = 3; i < p->ntok; i++) {
		if (!strcmp(p->tok[i], "count")) {
			if (count_option(p, &i, &m->count))
				return -EINVAL;
		} else if (!strcmp(p->tok[i], "ap")) {
			unsigned a;

			if (ap_option(p, &i, mmu_s2ap_names, &a))
				return -EINVAL;
			m->ap = (mmu_s2ap)a;
		} else if (!strcmp(p->tok[i], "af")) {
			if (af_option(p, &i, &m->af))
				return -EINVAL;
		} else if (!strcmp(p->tok[i], "xn")) {
			m->xn = true;
		} else if (!strcmp(p->tok[i], "device")) {
			m->device = true;
		} else if (!strcmp(p->tok[i], "normal")) {
			m->device = false;
		} else {
			return bad_option(p, i, "count, ap, af, xn, device or normal");
		}
	}
	if (m->ipa % m->block)
		return perr(p, "s2map: IPA 0x%llx is not aligned to its %s block",
			    (unsigned long long)m->ipa, p->tok[2]);
	return 0;
}

static int parse_on_off(parser *p)
{
	if (p->ntok != 2)
		return perr(p, "%s: expected '%s on' or '%s off'", p->tok[0], p->tok[0], p->tok[0]);
	return on_off(p, 1, &p->l->on);
}

static int parse_iodev(parser *p)
{
	typeof(p->l->iodev) *d = &p->l->iodev;

	if (num(p, 1, &d->addr) || size(p, 2, &d->size))
		return -EINVAL;
	for (int i = 3; i < p->ntok; i++) {
		if (strcmp(p->tok[i], "value"))
			return bad_option(p, i, "value");
		if (opt_value(p, i) || num(p, ++i, &d->value))
			return -EINVAL;
	}
	if (d->addr + d->size < d->addr)
		return perr(p, "iodev: 0x%llx + %s wraps around", (unsigned long long)d->addr,
			    p->tok[2]);
	return 0;
}

static int parse_mmio_reply(parser *p)
{
	if (p->ntok != 2)
		return perr(p, "mmio-reply: expected 'mmio-reply VALUE'");
	return num(p, 1, &p->l->mmio_reply);
}

/* ---- registers ---- */

#define SYSREG(n, f) { n, MMU_REG_SYS, offsetof(mv_a64_sysregs, f) }
static const struct { const char *name; mmu_reg_kind kind; unsigned num; } named_regs[] = {
	{ "sp", MMU_REG_SP, 0 },
	{ "pc", MMU_REG_PC, 0 },
	{ "el", MMU_REG_EL, 0 },
	SYSREG("sctlr", sctlr_el1), SYSREG("sctlr_el1", sctlr_el1),
	SYSREG("tcr", tcr_el1), SYSREG("tcr_el1", tcr_el1),
	SYSREG("ttbr0", ttbr0_el1), SYSREG("ttbr0_el1", ttbr0_el1),
	SYSREG("ttbr1", ttbr1_el1), SYSREG("ttbr1_el1", ttbr1_el1),
	SYSREG("vbar", vbar_el1), SYSREG("vbar_el1", vbar_el1),
	SYSREG("elr_el1", elr_el1), SYSREG("spsr_el1", spsr_el1),
	SYSREG("esr_el1", esr_el1), SYSREG("far_el1", far_el1),
};

/* A decimal number without leading zeros ("0", "17"). */
static bool decimal(const char *t, uint64_t *n)
{
	if (!isdigit((unsigned char)t[0]) || (t[0] == '0' && t[1]))
		return false;
	for (const char *c = t; *c; c++)
		if (!isdigit((unsigned char)*c))
			return false;
	return parse_u64(t, n);
}

/* x0..x30, w0..w30, sp, pc, el or an EL1 system register (@tok is kept). */
static int parse_reg(parser *p, int i, mmu_reg *r)
{
	const char *t = p->tok[i];
	uint64_t n;

	r->name = t;
	for (size_t k = 0; k < sizeof(named_regs) / sizeof(named_regs[0]); k++)
		if (!strcmp(t, named_regs[k].name)) {
			r->kind = named_regs[k].kind;
			r->num = named_regs[k].num;
			return 0;
		}
	if ((t[0] == 'x' || t[0] == 'w') && decimal(t + 1, &n) && n <= 30) {
		r->kind = t[0] == 'x' ? MMU_REG_X : MMU_REG_W;
		r->num = (unsigned)n;
		return 0;
	}
	return perr(p, "%s: unknown register '%s' (x0-x30, w0-w30, sp, pc, el, sctlr, tcr, "
		    "ttbr0, ttbr1, vbar, elr_el1, spsr_el1, esr_el1, far_el1)", p->tok[0], t);
}

static int parse_set(parser *p)
{
	if (p->ntok != 3)
		return perr(p, "set: expected 'set REGISTER VALUE'");
	if (parse_reg(p, 1, &p->l->set.reg) || num(p, 2, &p->l->set.value))
		return -EINVAL;
	if (p->l->set.reg.kind == MMU_REG_EL && p->l->set.value > 1)
		return perr(p, "set: el %s is not 0 or 1", p->tok[2]);
	return 0;
}

/* "write8" .. "write64" / "mem8" .. "mem64": the width in bytes, 0 if none. */
static unsigned width_suffix(const char *tok, const char *prefix)
{
	size_t n = strlen(prefix);

	if (strncmp(tok, prefix, n))
		return 0;
	tok += n;
	return !strcmp(tok, "8") ? 1 : !strcmp(tok, "16") ? 2 : !strcmp(tok, "32") ? 4 :
	       !strcmp(tok, "64") ? 8 : 0;
}

/* VALUE fits in @width bytes. */
static int fits(parser *p, int i, uint64_t v, unsigned width)
{
	if (width < 8 && v >> (8 * width))
		return perr(p, "%s: %s does not fit in %u bits", p->tok[0], p->tok[i], 8 * width);
	return 0;
}

static int parse_write(parser *p)
{
	typeof(p->l->write) *w = &p->l->write;

	if (p->ntok != 3)
		return perr(p, "%s: expected '%s IPA VALUE'", p->tok[0], p->tok[0]);
	w->width = width_suffix(p->tok[0], "write");
	if (num(p, 1, &w->ipa) || num(p, 2, &w->value) || fits(p, 2, w->value, w->width))
		return -EINVAL;
	if (w->ipa % w->width)
		return perr(p, "%s: IPA 0x%llx is not aligned to %u bytes", p->tok[0],
			    (unsigned long long)w->ipa, w->width);
	return 0;
}

/* ---- stage 1 ---- */

static int parse_s1pool(parser *p)
{
	if (p->ntok != 3)
		return perr(p, "s1pool: expected 's1pool IPA SIZE'");
	if (num(p, 1, &p->l->s1pool.ipa) || size(p, 2, &p->l->s1pool.size) ||
	    page_aligned(p, "IPA", p->l->s1pool.ipa) || page_aligned(p, "size", p->l->s1pool.size))
		return -EINVAL;
	p->s1pool = true;
	return 0;
}

/* Stage-1 AP[2:1] (ARM ARM D8.4.1, "Data access permissions"). */
static const char *const s1_aps[] = { "rw-el1", "rw", "ro-el1", "ro" };

static int parse_s1map(parser *p)
{
	typeof(p->l->s1map) *m = &p->l->s1map;
	int i = 3;

	if (!p->s1pool)
		return perr(p, "s1map: no s1pool line before it (stage-1 tables need guest memory)");
	m->block = 4096;
	m->count = 1;
	m->af = true;
	if (num(p, 1, &m->va) || num(p, 2, &m->ipa))
		return -EINVAL;
	if (i < p->ntok && (isdigit((unsigned char)p->tok[i][0]) || !strcmp(p->tok[i], "page")) &&
	    block(p, i++, &m->block))
		return -EINVAL;
	if (m->block != 4096 && m->block != (2u << 20) && m->block != (1u << 30))
		return perr(p, "s1map: block '%s' is not page (4K), 2M or 1G (4 KiB granule)",
			    p->tok[3]);
	for (; i < p->ntok; i++) {
		if (!strcmp(p->tok[i], "count")) {
			if (count_option(p, &i, &m->count))
				return -EINVAL;
		} else if (!strcmp(p->tok[i], "ap")) {
			unsigned a;

			if (ap_option(p, &i, s1_aps, &a))
				return -EINVAL;
			m->ap = a;
		} else if (!strcmp(p->tok[i], "uxn")) {
			m->uxn = true;
		} else if (!strcmp(p->tok[i], "pxn")) {
			m->pxn = true;
		} else if (!strcmp(p->tok[i], "af")) {
			if (af_option(p, &i, &m->af))
				return -EINVAL;
		} else {
			return bad_option(p, i, "a block size, count, ap, uxn, pxn or af");
		}
	}
	if ((m->va | m->ipa) % m->block)
		return perr(p, "s1map: VA 0x%llx and IPA 0x%llx must be aligned to the block",
			    (unsigned long long)m->va, (unsigned long long)m->ipa);
	return 0;
}

/* ---- the rest ---- */

static int parse_tlbi(parser *p)
{
	return p->ntok == 1 ? 0 : perr(p, "tlbi: takes no arguments");
}

static int parse_show(parser *p)
{
	if (p->ntok != 3 || strcmp(p->tok[1], "s2"))
		return perr(p, "show: expected 'show s2 IPA'");
	return num(p, 2, &p->l->show_ipa);
}

static int parse_echo(parser *p)
{
	const char *t = p->l->text + strlen("echo");

	while (isspace((unsigned char)*t))
		t++;
	p->l->echo = t;
	return 0;
}

/* ---- expect ---- */

static int expect_action(parser *p)
{
	typeof(p->l->expect) *e = &p->l->expect;
	int a;

	if (p->ntok < 3 || p->ntok > 4)
		return perr(p, "expect: expected 'expect action NAME [SIZE]'");
	for (a = MV_A64_ACT_MAPPED; a <= MV_A64_ACT_ERROR; a++)
		if (!strcmp(p->tok[2], mv_a64_action_name((mv_a64_action)a)))
			break;
	if (a > MV_A64_ACT_ERROR)
		return perr(p, "expect: '%s' is not a handler action (docs/mmu_script.md lists them)",
			    p->tok[2]);
	e->action = (mv_a64_action)a;
	if (p->ntok == 4) {
		if (e->action != MV_A64_ACT_MAPPED)
			return perr(p, "expect: only 'mapped' takes a size");
		return block(p, 3, &e->block);
	}
	return 0;
}

static int expect_result(parser *p)
{
	if (p->ntok != 3)
		return perr(p, "expect: expected 'expect result NAME'");
	for (int r = 0; r < MMU_NR_RESULTS; r++)
		if (!strcmp(p->tok[2], mmu_result_names[r])) {
			p->l->expect.result = (mmu_result)r;
			return 0;
		}
	return perr(p, "expect: '%s' is not a result (done, mmio, nisv, internal-error, "
		    "guest-fault, injected, skipped, exit or failed)", p->tok[2]);
}

static int expect_s2(parser *p)
{
	typeof(p->l->expect) *e = &p->l->expect;

	e->ap = e->af = -1;
	if (p->ntok < 4)
		return perr(p, "expect: expected 'expect s2 IPA none|SIZE [ap ..] [af 0|1]'");
	if (num(p, 2, &e->addr) || (strcmp(p->tok[3], "none") && block(p, 3, &e->block)))
		return -EINVAL;
	for (int i = 4; i < p->ntok; i++) {
		bool af;

		if (!e->block)
			return perr(p, "expect: 's2 ... none' takes no attributes");
		if (!strcmp(p->tok[i], "af")) {
			if (af_option(p, &i, &af))
				return -EINVAL;
			e->af = af;
		} else if (!strcmp(p->tok[i], "ap")) {
			unsigned a;

			if (ap_option(p, &i, mmu_s2ap_names, &a))
				return -EINVAL;
			e->ap = (int)a;
		} else {
			return bad_option(p, i, "ap or af");
		}
	}
	return 0;
}

static int expect_value(parser *p, mmu_expect_kind kind)
{
	p->l->expect.kind = kind;
	if (p->ntok != 3)
		return perr(p, "expect: expected 'expect %s VALUE'", p->tok[1]);
	return num(p, 2, &p->l->expect.value);
}

static int parse_expect(parser *p)
{
	typeof(p->l->expect) *e = &p->l->expect;
	const char *what = p->tok[1];

	if (!strcmp(what, "esr"))
		return expect_value(p, MMU_EXP_ESR);
	if (!strcmp(what, "hpfar"))
		return expect_value(p, MMU_EXP_HPFAR);
	if (!strcmp(what, "far"))
		return expect_value(p, MMU_EXP_FAR);
	if (!strcmp(what, "aborts"))
		return expect_value(p, MMU_EXP_ABORTS);
	e->kind = MMU_EXP_ACTION;
	if (!strcmp(what, "action"))
		return expect_action(p);
	e->kind = MMU_EXP_RESULT;
	if (!strcmp(what, "result"))
		return expect_result(p);
	e->kind = MMU_EXP_S2;
	if (!strcmp(what, "s2"))
		return expect_s2(p);
	e->kind = MMU_EXP_MEM;
	e->width = width_suffix(what, "mem");
	if (e->width) {
		if (p->ntok != 4)
			return perr(p, "expect: expected 'expect %s IPA VALUE'", what);
		return num(p, 2, &e->addr) || num(p, 3, &e->value) || fits(p, 3, e->value, e->width)
			? -EINVAL : 0;
	}
	e->kind = MMU_EXP_REG;
	if (parse_reg(p, 1, &e->reg))
		return -EINVAL;
	if (p->ntok != 3)
		return perr(p, "expect: expected 'expect %s VALUE'", what);
	return num(p, 2, &e->value);
}

static int parse_access(parser *p)
{
	mv_error e = { 0 };

	if (mv_a64_insn_parse(p->l->text, &p->l->insn, &e))
		return perr(p, "%s", e.msg);
	return 0;
}

static const directive directives[] = {
	{ "vtcr", MMU_VTCR, "vtcr VALUE", 1, parse_vtcr, false },
	{ "ipa", MMU_VTCR, "ipa BITS [granule 4K|16K|64K] [start-level N]", 1, parse_ipa, false },
	{ "ram", MMU_RAM, "ram NAME SIZE [thp | hugetlb 2M|1G]", 2, parse_ram, true },
	{ "slot", MMU_SLOT, "slot ID GPA RAM [offset OFF] [size SIZE] [ro] [log]", 3, parse_slot,
	  true },
	{ "s2map", MMU_S2MAP, "s2map IPA BLOCK [count N] [ap none|ro|wo|rw] [af 0|1] [xn] [device]",
	  2, parse_s2map, true },
	{ "handler", MMU_HANDLER, "handler on|off", 1, parse_on_off, true },
	{ "nisv", MMU_NISV, "nisv on|off", 1, parse_on_off, true },
	{ "iodev", MMU_IODEV, "iodev ADDR SIZE [value V]", 2, parse_iodev, true },
	{ "mmio-reply", MMU_MMIO_REPLY, "mmio-reply VALUE", 1, parse_mmio_reply, false },
	{ "set", MMU_SET, "set REGISTER VALUE", 2, parse_set, true },
	{ "write8", MMU_WRITE, "write8 IPA VALUE", 2, parse_write, true },
	{ "write16", MMU_WRITE, "write16 IPA VALUE", 2, parse_write, true },
	{ "write32", MMU_WRITE, "write32 IPA VALUE", 2, parse_write, true },
	{ "write64", MMU_WRITE, "write64 IPA VALUE", 2, parse_write, true },
	{ "s1pool", MMU_S1POOL, "s1pool IPA SIZE", 2, parse_s1pool, true },
	{ "s1map", MMU_S1MAP, "s1map VA IPA [BLOCK] [count N] [ap ..] [uxn] [pxn] [af 0|1]", 2,
	  parse_s1map, true },
	{ "tlbi", MMU_TLBI, "tlbi", 0, parse_tlbi, true },
	{ "show", MMU_SHOW_S2, "show s2 IPA", 2, parse_show, true },
	{ "echo", MMU_ECHO, "echo TEXT", 0, parse_echo, false },
	{ "expect", MMU_EXPECT, "expect WHAT VALUE", 2, parse_expect, true },
};

/* Split p->l's words into p->tok (in a copy kept in the line's text tail). */
static int tokenize(parser *p, char *words)
{
	p->ntok = 0;
	char *save;

	for (char *w = strtok_r(words, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
		if (p->ntok == MAX_TOKENS)
			return perr(p, "more than %d words on one line", MAX_TOKENS);
		p->tok[p->ntok++] = w;
	}
	return 0;
}

static bool is_instruction(const char *word)
{
	return !strncasecmp(word, "ld", 2) || !strncasecmp(word, "st", 2) ||
	       !strcasecmp(word, "dc") || !strcasecmp(word, "fetch");
}

static int parse_directive(parser *p)
{
	const directive *d = NULL;

	for (size_t i = 0; i < sizeof(directives) / sizeof(directives[0]); i++)
		if (!strcmp(p->tok[0], directives[i].name)) {
			d = &directives[i];
			break;
		}
	if (!d && is_instruction(p->tok[0])) {
		p->l->op = MMU_ACCESS;
		p->created = true;
		return parse_access(p);
	}
	if (!d)
		return perr(p, "unknown directive or instruction '%s'", p->tok[0]);
	if (p->ntok - 1 < d->min_args)
		return perr(p, "%s: expected '%s'", d->name, d->usage);
	p->l->op = d->op;
	if (p->l->op == MMU_VTCR && p->vtcr_line)
		return perr(p, "%s: VTCR_EL2 was already set on line %u", d->name, p->vtcr_line);
	if (p->l->op == MMU_VTCR && p->created)
		return perr(p, "%s must come before every line that sets up the VM (it is created "
			    "with its VTCR_EL2)", d->name);
	if (p->l->op == MMU_VTCR)
		p->vtcr_line = p->l->lineno;
	p->created |= d->creates_vm;
	return d->parse(p);
}

/* Trim the comment ("#" first on the line, or "//" anywhere) and blanks in place. */
static char *strip(char *line)
{
	char *c = strstr(line, "//"), *end;

	if (c)
		*c = 0;
	while (isspace((unsigned char)*line))
		line++;
	if (*line == '#')
		*line = 0;
	end = line + strlen(line);
	while (end > line && isspace((unsigned char)end[-1]))
		*--end = 0;
	return line;
}

static int add_line(parser *p, const char *text, unsigned lineno)
{
	size_t len = strlen(text) + 1;
	mmu_line *l;

	if (p->s->nr == p->s->cap) {
		size_t cap = p->s->cap ? 2 * p->s->cap : 32;
		mmu_line *n = realloc(p->s->lines, cap * sizeof(*n));

		if (!n)
			return mv_error_set(p->err, -ENOMEM, "out of memory");
		p->s->lines = n;
		p->s->cap = cap;
	}
	l = &p->s->lines[p->s->nr];
	memset(l, 0, sizeof(*l));
	/* The text, then a second copy that tokenize() cuts into words. */
	l->text = malloc(2 * len);
	if (!l->text)
		return mv_error_set(p->err, -ENOMEM, "out of memory");
	memcpy(l->text, text, len);
	memcpy(l->text + len, text, len);
	l->lineno = lineno;
	p->s->nr++;
	p->l = l;
	if (tokenize(p, l->text + len))
		return -EINVAL;
	return parse_directive(p);
}

void mmu_script_free(mmu_script *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nr; i++)
		free(s->lines[i].text);
	free(s->lines);
	free(s->name);
	free(s);
}

int mmu_script_parse(FILE *f, const char *name, mmu_script **out, mv_error *err)
{
	parser p = { .err = err };
	char *buf = NULL;
	size_t cap = 0;
	unsigned lineno = 0;
	int ret = 0;

	p.s = calloc(1, sizeof(*p.s));
	if (!p.s || !(p.s->name = strdup(name))) {
		free(p.s);
		return mv_error_set(err, -ENOMEM, "out of memory");
	}
	while (!ret && getline(&buf, &cap, f) >= 0) {
		char *line = strip(buf);

		lineno++;
		if (*line)
			ret = add_line(&p, line, lineno);
	}
	if (!ret && ferror(f))
		ret = mv_error_set(err, -EIO, "cannot read %s: %s", name, strerror(errno));
	free(buf);
	if (ret) {
		mmu_script_free(p.s);
		return -1;
	}
	*out = p.s;
	return 0;
}
