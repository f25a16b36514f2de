#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static void *failing_realloc(void *ud, void *ptr, size_t size)
{
	tu_failing_alloc *fa = ud;

	if (size == 0) {
		free(ptr);
		return NULL;
	}
	fa->calls++;
	if (fa->fail_at && (fa->calls == fa->fail_at || (fa->fail_all && fa->calls > fa->fail_at)))
		return NULL;
	return realloc(ptr, size);
}

void tu_failing_alloc_init(tu_failing_alloc *fa, unsigned long fail_at, bool fail_all)
{
	fa->alloc.realloc = failing_realloc;
	fa->alloc.ud = fa;
	fa->calls = 0;
	fa->fail_at = fail_at;
	fa->fail_all = fail_all;
}

uint64_t tu_seed(uint64_t def_seed)
{
	const char *s = getenv("MV_SEED");
	uint64_t seed = s ? strtoull(s, NULL, 0) : def_seed;

	printf("# seed %llu (set MV_SEED to reproduce)\n", (unsigned long long)seed);
	return seed ? seed : 1;
}

uint64_t tu_rand(uint64_t *state)
{
	uint64_t x = *state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545F4914F6CDD1DULL;
}

uint64_t tu_rand_below(uint64_t *state, uint64_t n)
{
	return n ? tu_rand(state) % n : 0;
}

bool tu_kvm_vm_create(const hv_vm_config *cfg, hv_vm **out)
{
	mv_error err = { 0 };
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	int r;

	if (fd < 0) {
		printf("SKIP: /dev/kvm not available (%s)\n", strerror(errno));
		return false;
	}
	close(fd);
	r = hv_vm_create("kvm", cfg, out, &err);
	if (r == -ENODEV) {
		printf("SKIP: /dev/kvm not available (%s)\n", err.msg);
		return false;
	}
	if (r)
		fail_msg("hv_vm_create(\"kvm\"): %s", err.msg);
	return true;
}

void tu_region_map(tu_region *r, size_t size, size_t align, int prot)
{
	r->raw_len = size + align;
	r->raw = mmap(NULL, r->raw_len, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	assert_true(r->raw != MAP_FAILED);
	r->base = (uint8_t *)(((uintptr_t)r->raw + align - 1) & ~(uintptr_t)(align - 1));
	r->size = size;
}

void tu_region_unmap(tu_region *r)
{
	if (r->raw)
		munmap(r->raw, r->raw_len);
	r->raw = NULL;
}
