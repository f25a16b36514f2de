/*
 * What the tests that boot the test guest through the vmm library share
 * (test_vmm_run.c on KVM, test_vmm_soft.c on soft and KVM): the guest
 * image, a run on its own thread with something done meanwhile, and the
 * pause/resume storm.
 */
#ifndef MV_TESTS_VMM_FX_H
#define MV_TESTS_VMM_FX_H

#include "testutil.h"

#include "memvirt/vmm.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* The guest image (MV_GUEST, built with the project: missing is a failure), malloc'ed. */
static inline void *vfx_guest(size_t *size)
{
	const char *path = getenv("MV_GUEST");
	FILE *f;
	void *buf;
	long n;

	if (!path || !(f = fopen(path, "rb")))
		fail_msg("cannot open the guest ELF (MV_GUEST=%s)", path ? path : "unset");
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*size = (size_t)n;
	return buf;
}

typedef struct vfx_thread_arg {
	vmm *v;
	vmm_result *res;
	int r;
} vfx_thread_arg;

static inline void *vfx_run_thread(void *p)
{
	vfx_thread_arg *a = p;
	mv_error err = { 0 };

	a->r = vmm_run(a->v, a->res, &err);
	return NULL;
}

/* vmm_run of @v into @res on another thread, with @during(@v) (if any) called meanwhile. */
static inline int vfx_run(vmm *v, vmm_result *res, void (*during)(vmm *v))
{
	vfx_thread_arg arg = { .v = v, .res = res };
	pthread_t t;

	assert_int_equal(pthread_create(&t, NULL, vfx_run_thread, &arg), 0);
	if (during)
		during(v);
	pthread_join(t, NULL);
	return arg.r;
}

/* Pause and resume @v many times, 2 ms apart (a vfx_run @during). */
static inline void vfx_pause_resume(vmm *v)
{
	struct timespec ms = { 0, 2000000 };

	for (int i = 0; i < 40; i++) {
		nanosleep(&ms, NULL);
		vmm_pause(v);
		nanosleep(&ms, NULL);
		vmm_resume(v);
	}
}

#endif
