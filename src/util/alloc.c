/* The default allocator and the helpers every module allocates through. */
#include "util/alloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void *libc_realloc(void *ud, void *ptr, size_t size)
{
	(void)ud;
	if (size == 0) {
		free(ptr);
		return NULL;
	}
	return realloc(ptr, size);
}

static const mv_allocator libc_allocator = { libc_realloc, NULL };

const mv_allocator *mv_allocator_libc(void)
{
	return &libc_allocator;
}

static const mv_allocator *pick(const mv_allocator *a)
{
	return a ? a : &libc_allocator;
}

void *mv_realloc(const mv_allocator *a, void *ptr, size_t size)
{
	a = pick(a);
	return a->realloc(a->ud, ptr, size ? size : 1);
}

void *mv_zalloc(const mv_allocator *a, size_t size)
{
	void *p = mv_realloc(a, NULL, size);

	if (p)
		memset(p, 0, size);
	return p;
}

void mv_free(const mv_allocator *a, void *ptr)
{
	if (ptr) {
		a = pick(a);
		a->realloc(a->ud, ptr, 0);
	}
}

char *mv_strdup(const mv_allocator *a, const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = mv_realloc(a, NULL, n);

	if (p)
		memcpy(p, s, n);
	return p;
}

int mv_grow(const mv_allocator *a, void **arr, size_t *cap, size_t need, size_t elem)
{
	size_t ncap;
	void *p;

	if (need <= *cap)
		return 0;
	ncap = *cap ? *cap : 4;
	while (ncap < need)
		ncap *= 2;
	p = mv_realloc(a, *arr, ncap * elem);
	if (!p)
		return -ENOMEM;
	*arr = p;
	*cap = ncap;
	return 0;
}
