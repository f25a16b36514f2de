/*
 * What the benchmarks share: the clock, medians, the fatal error and
 * reading the guest image. Header-only, as every bench is one .c file; a
 * bench defines BENCH_NAME (its name in messages) before including it.
 */
#ifndef MV_BENCH_UTIL_H
#define MV_BENCH_UTIL_H

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef BENCH_NAME
#error "define BENCH_NAME, the bench's name in messages, before including bench_util.h"
#endif

/* CLOCK_MONOTONIC, in nanoseconds. */
static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* "BENCH_NAME: <message>" on stderr, then exit(1): the bench cannot go on. */
static inline __attribute__((noreturn, format(printf, 1, 2))) void die(const char *fmt, ...)
{
	va_list ap;

	fputs(BENCH_NAME ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static inline int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static inline int bench_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* Sorts the @n (>= 1) values of @v; their median (the mean of the middle two when @n is even). */
static inline double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), bench_cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static inline uint64_t median_u64(uint64_t *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), bench_cmp_u64);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The guest image at @path, whole, in a malloc'ed buffer of *@size bytes. */
static inline void *read_file(const char *path, size_t *size)
{
	FILE *f = fopen(path, "rb");
	long n;
	void *buf;

	if (!f)
		die("cannot open %s: %s (build the guest first)", path, strerror(errno));
	if (fseek(f, 0, SEEK_END) || (n = ftell(f)) <= 0 || fseek(f, 0, SEEK_SET))
		die("cannot read %s", path);
	if (!(buf = malloc((size_t)n)) || fread(buf, 1, (size_t)n, f) != (size_t)n)
		die("cannot read %s", path);
	fclose(f);
	*size = (size_t)n;
	return buf;
}

#endif
