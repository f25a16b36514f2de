/*
 * The -m option: "[size=]SIZE[,slots=N][,maxmem=SIZE]" with QEMU 7.2's
 * rules (softmmu/vl.c parse_memory_options, hw/core/machine.c
 * machine_set_mem, hw/i386/pc.c pc_memory_init).
 */
#include "machine/board.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *mvm_size_str(char buf[32], uint64_t size)
{
	static const char *const units[] = { "bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	unsigned u = 0;

	while (u < 6 && size && !(size & 1023)) {
		size >>= 10;
		u++;
	}
	snprintf(buf, 32, "%" PRIu64 " %s", size, units[u]);
	return buf;
}

/*
 * A size with an optional fraction, "1.5G", as QEMU's qemu_strtosz
 * accepts; the fraction must give a whole number of bytes. Whole numbers
 * go through mv_parse_size (@default_mib: no suffix means MiB).
 */
static int parse_size(const char *text, bool default_mib, uint64_t *out)
{
	const char *p, *dot = strchr(text, '.');
	uint64_t ipart = 0, frac = 0, den = 1, mul;
	char unit[3] = "1";
	unsigned __int128 total;

	if (!dot)
		return mv_parse_size(text, default_mib, out);
	if (dot == text)
		return -EINVAL;
	for (p = text; p < dot; p++) {
		if (!isdigit((unsigned char)*p) || ipart > UINT64_MAX / 10 - 1)
			return -EINVAL;
		ipart = ipart * 10 + (uint64_t)(*p - '0');
	}
	for (p = dot + 1; isdigit((unsigned char)*p); p++) {
		if (den >= 1000000000000000000ULL)
			return -EINVAL;
		frac = frac * 10 + (uint64_t)(*p - '0');
		den *= 10;
	}
	if (p == dot + 1 || strlen(p) > 1)
		return -EINVAL;
	unit[1] = *p;
	if (mv_parse_size(unit, default_mib, &mul))
		return -EINVAL;
	if (((unsigned __int128)frac * mul) % den)
		return -EINVAL;
	total = (unsigned __int128)ipart * mul + (unsigned __int128)frac * mul / den;
	if (total > UINT64_MAX)
		return -EINVAL;
	*out = (uint64_t)total;
	return 0;
}

/* slots=N: a decimal count. */
static int parse_count(const char *text, unsigned *out)
{
	unsigned long long v;
	char *end;

	if (!isdigit((unsigned char)text[0]))
		return -EINVAL;
	errno = 0;
	v = strtoull(text, &end, 10);
	if (errno || *end || v > UINT32_MAX)
		return -EINVAL;
	*out = (unsigned)v;
	return 0;
}

int mvm_check_mem(const mv_machine_opts *o, uint64_t ram, mv_error *err)
{
	char a[32], b[32];

	if (ram % MV_MACHINE_PAGE_SIZE)
		return mv_error_set(err, -EINVAL,
				    "-m: the memory size %s is not a multiple of the 4 KiB page size",
				    mvm_size_str(a, ram));
	if (o->slots > MV_MAX_RAM_SLOTS)
		return mv_error_set(err, -EINVAL,
				    "-m: slots=%u is more than the %d memory slots supported",
				    o->slots, MV_MAX_RAM_SLOTS);
	if (o->slots && !o->maxmem)
		return mv_error_set(err, -EINVAL, "-m: slots=%u needs maxmem=SIZE as well",
				    o->slots);
	if (!o->maxmem)
		return 0;
	if (o->maxmem < ram)
		return mv_error_set(err, -EINVAL,
				    "-m: maxmem=%s (0x%" PRIx64 ") is less than the initial memory size %s (0x%" PRIx64 ")",
				    mvm_size_str(a, o->maxmem), o->maxmem, mvm_size_str(b, ram), ram);
	if (o->slots && o->maxmem == ram)
		return mv_error_set(err, -EINVAL,
				    "-m: slots=%u were given but maxmem=%s equals the initial memory size, leaving no room for DIMMs",
				    o->slots, mvm_size_str(a, o->maxmem));
	if (o->maxmem % MV_MACHINE_PAGE_SIZE)
		return mv_error_set(err, -EINVAL,
				    "-m: maxmem=%s is not a multiple of the 4 KiB page size",
				    mvm_size_str(a, o->maxmem));
	return 0;
}

/* Apply one "key=value" (or the bare first size) to @o. */
static int parse_item(const char *item, bool first, mv_machine_opts *o, mv_error *err)
{
	const char *eq = strchr(item, '=');
	const char *val = eq ? eq + 1 : item;
	size_t klen = eq ? (size_t)(eq - item) : 0;

	if (!eq && !first)
		return mv_error_set(err, -EINVAL,
				    "-m: '%s' is not of the form key=value (keys: size, slots, maxmem)", item);
	if (!eq || (klen == 4 && !strncmp(item, "size", 4))) {
		if (parse_size(val, true, &o->ram_size))
			return mv_error_set(err, -EINVAL,
					    "-m: invalid size '%s' (a number of MiB, or with a K, M, G or T suffix)", val);
		return 0;
	}
	if (klen == 6 && !strncmp(item, "maxmem", 6)) {
		/* QEMU reads maxmem in bytes unless suffixed, unlike size */
		if (parse_size(val, false, &o->maxmem))
			return mv_error_set(err, -EINVAL,
					    "-m: invalid maxmem '%s' (bytes, or a number with a K, M, G or T suffix)", val);
		return 0;
	}
	if (klen == 5 && !strncmp(item, "slots", 5)) {
		if (parse_count(val, &o->slots))
			return mv_error_set(err, -EINVAL, "-m: invalid slots '%s' (a number of DIMM slots)", val);
		return 0;
	}
	return mv_error_set(err, -EINVAL, "-m: unknown parameter '%.*s' (known: size, slots, maxmem)",
			    (int)klen, item);
}

/* As QEMU's QemuOpts, a key given twice takes its last value. */
int mv_machine_parse_mem(const char *arg, mv_machine_opts *opts, mv_error *err)
{
	mv_machine_opts o = { 0 };
	char buf[256], *item, *save = NULL;
	bool first = true;
	int ret;

	if (!arg || !opts)
		return mv_error_set(err, -EINVAL, "-m: no option text given");
	if (strlen(arg) >= sizeof(buf))
		return mv_error_set(err, -EINVAL, "-m: option text '%.32s...' is too long", arg);
	if (arg[0] == ',')
		return mv_error_set(err, -EINVAL, "-m: '%s' starts with an empty size", arg);
	strcpy(buf, arg);
	for (item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		ret = parse_item(item, first, &o, err);
		if (ret)
			return ret;
		first = false;
	}
	/* size 0 means the board default (QEMU's default_ram_size) */
	ret = mvm_check_mem(&o, o.ram_size ? o.ram_size : MV_DEFAULT_RAM_SIZE, err);
	if (ret)
		return ret;
	*opts = o;
	return 0;
}
