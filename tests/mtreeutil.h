/*
 * Helpers for tests of the mtree printers: capture a printer's output and
 * compare it with a string or with a golden file in tests/cli/.
 */
#ifndef MV_TESTS_MTREEUTIL_H
#define MV_TESTS_MTREEUTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memvirt/mtree.h"

/* Path of a file in tests/cli/ of the source tree (MV_SRCDIR, set by ctest). */
static inline const char *mtu_cli_file(char *buf, size_t len, const char *name)
{
	const char *src = getenv("MV_SRCDIR");

	snprintf(buf, len, "%s/tests/cli/%s", src ? src : "..", name);
	return buf;
}

/* What @print writes for @mem, as a malloc'ed string. */
static inline char *mtu_capture(int (*print)(FILE *, mv_memory *), mv_memory *mem)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	assert_int_equal(print(f, mem), 0);
	fclose(f);
	return buf;
}

static inline void mtu_expect(int (*print)(FILE *, mv_memory *), mv_memory *mem,
			      const char *want)
{
	char *got = mtu_capture(print, mem);

	if (strcmp(got, want))
		printf("--- want\n%s--- got\n%s---\n", want, got);
	assert_string_equal(got, want);
	free(got);
}

/* Compare with the golden file tests/cli/@name (shared with the CLI tests). */
static inline void mtu_expect_golden(int (*print)(FILE *, mv_memory *), mv_memory *mem,
				     const char *name)
{
	char path[4096], *want = NULL;
	size_t len = 0;
	FILE *f = fopen(mtu_cli_file(path, sizeof(path), name), "r");

	assert_non_null(f);
	assert_int_not_equal(getdelim(&want, &len, '\0', f), -1);
	fclose(f);
	mtu_expect(print, mem, want);
	free(want);
}

#endif
