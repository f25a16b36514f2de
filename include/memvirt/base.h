/*
 * memvirt base types shared by every module: 128-bit sizes, the injectable
 * allocator and the error record that carries one user-facing sentence.
 */
#ifndef MEMVIRT_BASE_H
#define MEMVIRT_BASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * mv_u128: an address-space size or end. A 64-bit space is 2^64 bytes long,
 * which does not fit in uint64_t, so sizes and range ends use 128 bits.
 */
typedef unsigned __int128 mv_u128;
#define MV_2_64 (((mv_u128)1) << 64)

/*
 * mv_allocator: every allocation of the library goes through one of these
 * (Lua style), so tests can inject failures. @realloc(ud, ptr, size) behaves
 * like realloc(ptr, size) except that size 0 frees ptr and returns NULL.
 * It must be thread-safe: RCU callbacks free memory on the RCU thread.
 * Passing NULL wherever an allocator is accepted means the C library's.
 */
typedef struct mv_allocator {
	void *(*realloc)(void *ud, void *ptr, size_t size);
	void *ud;
} mv_allocator;

/* The C library allocator (never NULL). */
const mv_allocator *mv_allocator_libc(void);

/*
 * mv_error: one clear sentence naming the bad input, for the user. Functions
 * that take user input fill it (when non-NULL) and return a negative errno.
 */
typedef struct mv_error {
	int code;        /* negative errno, 0 when no error was recorded */
	char msg[512];   /* NUL-terminated sentence */
} mv_error;

/*
 * Record @code and a printf-formatted sentence into @err (may be NULL).
 * Returns @code so callers can `return mv_error_set(err, -EINVAL, ...)`.
 */
int mv_error_set(mv_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Parse a size as QEMU's -m does: a decimal number with an optional suffix
 * K, M, G, T (powers of 1024; no suffix means MiB when @default_mib is true,
 * bytes otherwise), or a 0x hex number of bytes. Returns 0 or -EINVAL.
 */
int mv_parse_size(const char *text, bool default_mib, uint64_t *out);

#endif
