/* mv_error: the one-sentence error record, and QEMU-style size parsing. */
#include "memvirt/base.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

int mv_error_set(mv_error *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (err) {
		err->code = code;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
	}
	return code;
}

int mv_parse_size(const char *text, bool default_mib, uint64_t *out)
{
	unsigned shift = default_mib ? 20 : 0;
	unsigned long long v;
	char *end;

	if (!text || !isdigit((unsigned char)text[0]))
		return -EINVAL;
	errno = 0;
	v = strtoull(text, &end, 0);
	if (errno)
		return -EINVAL;
	if (end[0] && !end[1]) {
		switch (toupper((unsigned char)end[0])) {
		case 'B': shift = 0; break;
		case 'K': shift = 10; break;
		case 'M': shift = 20; break;
		case 'G': shift = 30; break;
		case 'T': shift = 40; break;
		default: return -EINVAL;
		}
	} else if (end[0]) {
		return -EINVAL;
	} else if (text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
		shift = 0;    /* hex numbers are byte counts */
	}
	if (shift && v > (UINT64_MAX >> shift))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}
