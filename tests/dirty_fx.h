/*
 * Fixtures of the dirty-logging tests (test_soft_dirty*.c): a recording
 * re-protect callback for the generic module, and an arm64 soft VM with one
 * RAM slot whose guest runs with stage 1 off (VA = IPA) so a test can store
 * to and load from guest pages by IPA through mv_a64_vcpu_exec, counting
 * the stage-2 aborts the vCPU takes.
 */
#ifndef MV_TESTS_DIRTY_FX_H
#define MV_TESTS_DIRTY_FX_H

#include "testutil.h"

#include "memvirt/soft_arm64.h"
#include "memvirt/soft_dirty.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define DFX_4K (1ull << 12)
#define DFX_2M (1ull << 21)
#define DFX_RAM_GPA 0x40000000ull
#define DFX_MAX_CALLS 4096

/* ---- a re-protect callback that records its calls ---- */

typedef struct dfx_call {
	uint16_t as_id, id;
	uint64_t offset, mask;
} dfx_call;

typedef struct dfx_rec {
	pthread_mutex_t lock;      /* callers may be on several threads */
	unsigned n;
	dfx_call calls[DFX_MAX_CALLS];
	uint64_t pages;            /* bits seen, over all calls */
} dfx_rec;

static inline void dfx_rec_init(dfx_rec *r)
{
	memset(r, 0, sizeof(*r));
	pthread_mutex_init(&r->lock, NULL);
}

static inline void dfx_rec_protect(void *arg, const mv_memslot *slot, uint64_t offset, uint64_t mask)
{
	dfx_rec *r = arg;

	pthread_mutex_lock(&r->lock);
	if (r->n < DFX_MAX_CALLS)
		r->calls[r->n] = (dfx_call){ slot->as_id, slot->id, offset, mask };
	r->n++;
	r->pages += (uint64_t)__builtin_popcountll(mask);
	pthread_mutex_unlock(&r->lock);
}

/* ---- an arm64 VM with slot 0 of RAM at DFX_RAM_GPA and vCPU 0 ---- */

typedef struct dfx_opts {
	size_t ram_size;           /* bytes; 0 = 1 MiB */
	uint32_t slot_flags;       /* HV_MEM_* of slot 0 when created */
	uint32_t ring_entries;     /* enable dirty rings before the vCPU */
	uint64_t split_chunk;      /* mv_a64_vm_enable_eager_split before the slot */
	bool hugetlb;              /* declare the RAM hugetlb 2 MiB-backed */
	bool no_slot;              /* leave slot 0 for the test to create */
} dfx_opts;

typedef struct dfx {
	mv_a64_vm *vm;
	mv_a64_vcpu *vcpu;
	tu_region ram;
	unsigned aborts;           /* stage-2 aborts taken */
	mv_a64_abort_event last;   /* the latest one */
} dfx;

static inline void dfx_trace(void *arg, const mv_a64_abort_event *ev)
{
	dfx *f = arg;

	f->aborts++;
	f->last = *ev;
}

static inline uint64_t dfx_hva(const dfx *f, uint64_t page)
{
	return (uint64_t)(uintptr_t)f->ram.base + page * DFX_4K;
}

static inline void dfx_set_slot(dfx *f, uint32_t flags)
{
	hv_memslot m = { .slot = 0, .flags = flags, .gpa = DFX_RAM_GPA, .size = f->ram.size,
			 .hva = f->ram.base };

	assert_int_equal(mv_a64_vm_set_memslot(f->vm, &m), 0);
}

static inline dfx *dfx_new(const dfx_opts *o)
{
	dfx *f = calloc(1, sizeof(*f));
	mv_error err = { 0 };
	mv_a64_regs regs = { .pc = DFX_RAM_GPA, .el = 1 };
	mv_a64_sysregs sys = { 0 };

	assert_non_null(f);
	assert_int_equal(mv_a64_vm_new(NULL, &f->vm, &err), 0);
	tu_region_map(&f->ram, o->ram_size ? o->ram_size : (1u << 20), DFX_2M, PROT_READ | PROT_WRITE);
	if (o->hugetlb)
		assert_int_equal(mv_soft_host_declare(mv_a64_vm_host(f->vm), dfx_hva(f, 0), f->ram.size,
						      MV_HOST_BACKING_HUGETLB, DFX_2M), 0);
	if (o->ring_entries)
		assert_int_equal(mv_a64_vm_enable_dirty_ring(f->vm, o->ring_entries), 0);
	if (o->split_chunk)
		assert_int_equal(mv_a64_vm_enable_eager_split(f->vm, o->split_chunk), 0);
	assert_int_equal(mv_a64_vcpu_new(f->vm, 0, &f->vcpu, &err), 0);
	mv_a64_vcpu_set_regs(f->vcpu, &regs);
	mv_a64_vcpu_set_sysregs(f->vcpu, &sys);
	mv_a64_vcpu_set_trace(f->vcpu, dfx_trace, f);
	if (!o->no_slot)
		dfx_set_slot(f, o->slot_flags);
	return f;
}

static inline void dfx_free(dfx *f)
{
	mv_a64_vcpu_free(f->vcpu);
	mv_a64_vm_free(f->vm);
	tu_region_unmap(&f->ram);
	free(f);
}

/* Run one 8-byte store (@value) or load of guest page @page (+ @off) on vCPU 0. */
static inline mv_a64_outcome dfx_access(dfx *f, bool store, uint64_t page, uint64_t off,
					 uint64_t value)
{
	mv_a64_insn in = { .op = store ? MV_A64_STORE : MV_A64_LOAD, .size = 8, .rt = 1,
			   .rn = MV_A64_RN_ABS, .addr = DFX_RAM_GPA + page * DFX_4K + off, .sf = true };
	mv_a64_regs regs;
	mv_a64_outcome out;

	mv_a64_vcpu_get_regs(f->vcpu, &regs);
	regs.x[1] = value;
	mv_a64_vcpu_set_regs(f->vcpu, &regs);
	assert_int_equal(mv_a64_vcpu_exec(f->vcpu, &in, &out), 0);
	return out;
}

/* A store that completes; returns the aborts it took. */
static inline unsigned dfx_store(dfx *f, uint64_t page, uint64_t value)
{
	unsigned before = f->aborts;
	mv_a64_outcome out = dfx_access(f, true, page, 0, value);

	assert_int_equal(out.result, MV_A64_DONE);
	assert_int_equal(*(uint64_t *)(uintptr_t)dfx_hva(f, page), value);
	return f->aborts - before;
}

/* A load that completes; returns the aborts it took. */
static inline unsigned dfx_load(dfx *f, uint64_t page)
{
	unsigned before = f->aborts;
	mv_a64_outcome out = dfx_access(f, false, page, 0, 0);

	assert_int_equal(out.result, MV_A64_DONE);
	return f->aborts - before;
}

/* The stage-2 leaf of guest page @page: its level, and whether it grants writes. */
static inline int dfx_leaf(dfx *f, uint64_t page, bool *writable)
{
	mv_pte pte = 0;
	int level = -1;

	mv_a64_vm_s2_leaf(f->vm, DFX_RAM_GPA + page * DFX_4K, &pte, &level);
	if (!(pte & MV_S2_VALID))
		return -1;
	if (writable)
		*writable = pte & MV_S2_S2AP_W;
	return level;
}

#endif
