/* Internal allocation helpers over mv_allocator (see memvirt/base.h). */
#ifndef MV_UTIL_ALLOC_H
#define MV_UTIL_ALLOC_H

#include "memvirt/base.h"

/* Zeroed allocation; NULL on failure. */
void *mv_zalloc(const mv_allocator *a, size_t size);
/* realloc; on failure returns NULL and leaves @ptr untouched. */
void *mv_realloc(const mv_allocator *a, void *ptr, size_t size);
void mv_free(const mv_allocator *a, void *ptr);
char *mv_strdup(const mv_allocator *a, const char *s);
/*
 * Grow the array *@arr of *@cap elements of @elem bytes so that it can
 * hold @need elements (capacity doubles). Returns 0 or -ENOMEM.
 */
int mv_grow(const mv_allocator *a, void **arr, size_t *cap, size_t need, size_t elem);

#endif
