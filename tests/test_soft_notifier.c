/*
 * MMU notifiers from the memory layer: the RAM list's notifiers around
 * every RAM-block operation that drops or moves host pages (zero, resize
 * shrink, discard, free), what a discard leaves behind per backing, the
 * accelerator memory listener forwarding them to hv_vm_invalidate_hva_*,
 * and what a soft VM does with them: its stage-2 / EPT leaf and TLB entry
 * for the page are gone, and the guest reads what the host memory now
 * holds (zeroes, or the file's contents), never stale data.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <urcu/urcu-memb.h>

#include "testutil.h"
#include "coreutil.h"

#include "hv/backend.h"
#include "memvirt/hv_memory.h"
#include "memvirt/hv_soft.h"
#include "memvirt/machine.h"
#include "memvirt/memory.h"
#include "memvirt/ramblock.h"
#include "soft/arm64/a64_internal.h"
#include "soft/hv_soft_internal.h"
#include "soft/x86/x86_internal.h"

#define PG 4096ull

/* ------------------------------------------------------------------ */
/* A recording notifier                                                 */

#define MAX_EVENTS 16

typedef struct event {
	uint64_t hva, len;
	bool start;
} event;

typedef struct recorder {
	mv_ram_notifier n;     /* first: the callback casts back */
	event ev[MAX_EVENTS];
	unsigned nr;
	int depth;             /* start calls without their end */
	const uint8_t *watch;  /* a byte whose value start / end record */
	uint8_t seen_at_start, seen_at_end;
} recorder;

static void record(mv_ram_notifier *n, mv_ramblock *rb, uint64_t hva, uint64_t len, bool start)
{
	recorder *r = (recorder *)n;

	(void)rb;
	assert_true(r->nr < MAX_EVENTS);
	r->ev[r->nr++] = (event){ hva, len, start };
	r->depth += start ? 1 : -1;
	assert_true(r->depth >= 0);
	if (r->watch && start)
		r->seen_at_start = *r->watch;
	else if (r->watch)
		r->seen_at_end = *r->watch;
}

static void recorder_init(recorder *r)
{
	memset(r, 0, sizeof(*r));
	r->n.invalidate = record;
}

/* The last two events are the start/end pair of [hva, hva + len). */
static void assert_pair(const recorder *r, const void *hva, uint64_t len)
{
	assert_true(r->nr >= 2);
	assert_int_equal(r->depth, 0);
	assert_true(r->ev[r->nr - 2].start);
	assert_false(r->ev[r->nr - 1].start);
	for (unsigned i = r->nr - 2; i < r->nr; i++) {
		assert_int_equal(r->ev[i].hva, (uint64_t)(uintptr_t)hva);
		assert_int_equal(r->ev[i].len, len);
	}
}

static mv_ramblock *new_block(mv_ram_list *l, const char *name, uint64_t size,
			      const mv_ramblock_opts *o)
{
	mv_error err = { 0 };
	mv_ramblock *rb = NULL;

	if (mv_ramblock_new(l, name, size, o, &rb, &err))
		fail_msg("mv_ramblock_new(%s): %s", name, err.msg);
	return rb;
}

/* ------------------------------------------------------------------ */
/* RAM notifiers                                                        */

/* Registration: once per notifier, removal of an absent one says so. */
static void test_notifier_register(void **state)
{
	mv_ram_list *l = mv_ram_list_new(NULL);
	recorder a, b;

	(void)state;
	recorder_init(&a);
	recorder_init(&b);
	assert_int_equal(mv_ram_list_add_notifier(l, &a.n), 0);
	assert_int_equal(mv_ram_list_add_notifier(l, &a.n), -EEXIST);
	assert_int_equal(mv_ram_list_add_notifier(l, &b.n), 0);
	assert_int_equal(mv_ram_list_remove_notifier(l, &a.n), 0);
	assert_int_equal(mv_ram_list_remove_notifier(l, &a.n), -ENOENT);
	assert_int_equal(mv_ram_list_remove_notifier(l, &b.n), 0);
	mv_ram_list_free(l);
}

/* Allocation failures leave nothing behind. */
static void test_notifier_alloc_failures(void **state)
{
	tu_failing_alloc fa;
	mv_ram_list *l;
	recorder a;

	(void)state;
	recorder_init(&a);
	for (unsigned long at = 1; at <= 2; at++) {
		tu_failing_alloc_init(&fa, at, false);
		assert_null(mv_ram_list_new(&fa.alloc));
	}
	tu_failing_alloc_init(&fa, 3, false);
	l = mv_ram_list_new(&fa.alloc);
	assert_non_null(l);
	assert_int_equal(mv_ram_list_add_notifier(l, &a.n), -ENOMEM);
	assert_int_equal(mv_ram_list_remove_notifier(l, &a.n), -ENOENT);
	assert_int_equal(mv_ram_list_add_notifier(l, &a.n), 0);
	assert_int_equal(mv_ram_list_remove_notifier(l, &a.n), 0);
	mv_ram_list_free(l);
}

/* zero: only the whole pages it drops, around the MADV_DONTNEED. */
static void test_notify_zero(void **state)
{
	mv_ram_list *l = mv_ram_list_new(NULL);
	mv_ramblock *rb = new_block(l, "ram", 16 * PG, NULL);
	uint8_t *host = mv_ramblock_host(rb);
	recorder r;

	(void)state;
	recorder_init(&r);
	assert_int_equal(mv_ram_list_add_notifier(l, &r.n), 0);
	memset(host, 0xaa, 16 * PG);
	r.watch = host + 2 * PG;
	/* [PG + 100, 4 PG + 7): whole pages 2 and 3 are dropped, the rest cleared */
	assert_int_equal(mv_ramblock_zero(rb, PG + 100, 3 * PG - 93), 0);
	assert_int_equal(r.nr, 2);
	assert_pair(&r, host + 2 * PG, 2 * PG);
	assert_int_equal(r.seen_at_start, 0xaa);   /* still there when told "start" */
	assert_int_equal(r.seen_at_end, 0);        /* gone when told "end" */
	assert_int_equal(host[PG + 99], 0xaa);
	assert_int_equal(host[PG + 100], 0);
	assert_int_equal(host[4 * PG + 6], 0);
	assert_int_equal(host[4 * PG + 7], 0xaa);
	/* no whole page: nothing dropped, nobody told */
	assert_int_equal(mv_ramblock_zero(rb, 5 * PG + 1, PG), 0);
	assert_int_equal(r.nr, 2);
	assert_int_equal(mv_ram_list_remove_notifier(l, &r.n), 0);
	mv_ramblock_unref(rb);
	mv_ram_list_free(l);
}

/* A shrink tells about the discarded tail; a grow tells nothing. */
static void test_notify_resize(void **state)
{
	mv_ramblock_opts o = { .resizeable = true, .max_length = 32 * PG };
	mv_ram_list *l = mv_ram_list_new(NULL);
	mv_ramblock *rb = new_block(l, "ram", 16 * PG, &o);
	uint8_t *host = mv_ramblock_host(rb);
	recorder r;

	(void)state;
	recorder_init(&r);
	assert_int_equal(mv_ram_list_add_notifier(l, &r.n), 0);
	assert_int_equal(mv_ramblock_resize(rb, 32 * PG, NULL), 0);
	assert_int_equal(r.nr, 0);
	host[20 * PG] = 7;
	r.watch = host + 20 * PG;
	assert_int_equal(mv_ramblock_resize(rb, 8 * PG, NULL), 0);
	assert_int_equal(r.nr, 2);
	assert_pair(&r, host + 8 * PG, 24 * PG);
	assert_int_equal(r.seen_at_start, 7);
	assert_int_equal(r.seen_at_end, 0);
	assert_int_equal(mv_ram_list_remove_notifier(l, &r.n), 0);
	mv_ramblock_unref(rb);
	mv_ram_list_free(l);
}

/* Freeing a block tells about its whole mapping, also after mv_ramblock_remove. */
static void test_notify_free(void **state)
{
	mv_ramblock_opts o = { .resizeable = true, .max_length = 8 * PG };
	mv_ram_list *l = mv_ram_list_new(NULL);
	mv_ramblock *a = new_block(l, "a", 4 * PG, &o);
	mv_ramblock *b = new_block(l, "dimm", 2 * PG, NULL);
	void *ha = mv_ramblock_host(a), *hb = mv_ramblock_host(b);
	recorder r;

	(void)state;
	recorder_init(&r);
	assert_int_equal(mv_ram_list_add_notifier(l, &r.n), 0);
	mv_ramblock_unref(a);
	assert_int_equal(r.nr, 2);
	assert_pair(&r, ha, 8 * PG);   /* max_length: the whole mapping */
	/* DIMM unplug: off the list at once, unmapped with the last reference */
	mv_ramblock_ref(b);
	mv_ramblock_remove(b);
	mv_ramblock_unref(b);
	assert_int_equal(r.nr, 2);
	mv_ramblock_unref(b);
	assert_int_equal(r.nr, 4);
	assert_pair(&r, hb, 2 * PG);
	assert_int_equal(mv_ram_list_remove_notifier(l, &r.n), 0);
	mv_ram_list_free(l);
}

/* A block that outlives its list (a contract breach) still frees cleanly. */
static void test_block_outlives_list(void **state)
{
	mv_ram_list *l = mv_ram_list_new(NULL);
	mv_ramblock *rb = new_block(l, "late", PG, NULL);

	(void)state;
	mv_ramblock_remove(rb);
	mv_ram_list_free(l);
	mv_ramblock_unref(rb);
}

/* ------------------------------------------------------------------ */
/* mv_ramblock_discard per backing                                      */

static void make_file(char *path, size_t n, uint8_t fill, uint64_t size)
{
	uint8_t buf[PG];
	int fd;

	snprintf(path, n, "/tmp/mv-notifier-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	memset(buf, fill, sizeof(buf));
	for (uint64_t off = 0; off < size; off += PG)
		assert_int_equal(pwrite(fd, buf, PG, (off_t)off), (ssize_t)PG);
	close(fd);
}

static void clear_all_dirty(mv_ramblock *rb)
{
	unsigned long bm[8];

	mv_ramblock_take_dirty(rb, 0, mv_ramblock_used_length(rb), bm);
}

/*
 * Discard [PG, 3 PG) of a block whose bytes were all set to 0x55 and check
 * what it reads afterwards (@expect in the range, 0x55 around it), the
 * notifier pair and the dirty bits (set iff the contents changed).
 */
static void check_discard(mv_ram_list *l, mv_ramblock *rb, uint8_t expect, bool dirty)
{
	uint8_t *host = mv_ramblock_host(rb);
	recorder r;

	recorder_init(&r);
	memset(host, 0x55, 4 * PG);
	clear_all_dirty(rb);
	assert_int_equal(mv_ram_list_add_notifier(l, &r.n), 0);
	assert_int_equal(mv_ramblock_discard(rb, PG, 2 * PG), 0);
	assert_int_equal(mv_ram_list_remove_notifier(l, &r.n), 0);
	assert_int_equal(r.nr, 2);
	assert_pair(&r, host + PG, 2 * PG);
	assert_int_equal(host[PG - 1], 0x55);
	assert_int_equal(host[PG], expect);
	assert_int_equal(host[3 * PG - 1], expect);
	assert_int_equal(host[3 * PG], 0x55);
	assert_false(mv_ramblock_test_dirty(rb, 0));
	assert_int_equal(mv_ramblock_test_dirty(rb, PG), dirty);
	assert_int_equal(mv_ramblock_test_dirty(rb, 2 * PG), dirty);
	assert_false(mv_ramblock_test_dirty(rb, 3 * PG));
}

static void test_discard_backings(void **state)
{
	mv_ramblock_opts o = { 0 };
	mv_ram_list *l = mv_ram_list_new(NULL);
	mv_ramblock *rb;
	char path[64];

	(void)state;
	/* anonymous private: zeroes */
	rb = new_block(l, "anon", 4 * PG, NULL);
	check_discard(l, rb, 0, true);
	mv_ramblock_unref(rb);

	/* MAP_PRIVATE file: the file's contents again */
	make_file(path, sizeof(path), 0x3c, 4 * PG);
	o.backing = MV_RAM_FILE;
	o.path = path;
	o.private_file = true;
	rb = new_block(l, "file-private", 4 * PG, &o);
	check_discard(l, rb, 0x3c, true);
	mv_ramblock_unref(rb);

	/* MAP_SHARED file: the data stays (it is the file's) */
	o.private_file = false;
	rb = new_block(l, "file-shared", 4 * PG, &o);
	check_discard(l, rb, 0x55, false);
	mv_ramblock_unref(rb);
	unlink(path);

	/* memfd and shared anonymous memory: the data stays */
	o = (mv_ramblock_opts){ .backing = MV_RAM_MEMFD };
	rb = new_block(l, "memfd", 4 * PG, &o);
	check_discard(l, rb, 0x55, false);
	mv_ramblock_unref(rb);
	o.backing = MV_RAM_ANON_SHARED;
	rb = new_block(l, "shared", 4 * PG, &o);
	check_discard(l, rb, 0x55, false);
	mv_ramblock_unref(rb);
	mv_ram_list_free(l);
}

/* Only whole pages inside used_length; nothing is told about a refused call. */
static void test_discard_errors(void **state)
{
	mv_ramblock_opts o = { .resizeable = true, .max_length = 8 * PG };
	mv_ram_list *l = mv_ram_list_new(NULL);
	mv_ramblock *rb = new_block(l, "ram", 4 * PG, &o);
	recorder r;

	(void)state;
	recorder_init(&r);
	assert_int_equal(mv_ram_list_add_notifier(l, &r.n), 0);
	assert_int_equal(mv_ramblock_discard(rb, 1, PG), -EINVAL);
	assert_int_equal(mv_ramblock_discard(rb, 0, PG + 1), -EINVAL);
	assert_int_equal(mv_ramblock_discard(rb, 4 * PG, PG), -EINVAL);   /* past used_length */
	assert_int_equal(mv_ramblock_discard(rb, 5 * PG, 0), -EINVAL);
	assert_int_equal(mv_ramblock_discard(rb, PG, ~0ull & ~(PG - 1)), -EINVAL);
	assert_int_equal(r.nr, 0);
	assert_int_equal(mv_ramblock_discard(rb, 4 * PG, 0), 0);          /* empty, at the end */
	assert_int_equal(r.nr, 0);
	assert_int_equal(mv_ramblock_discard(rb, 0, 4 * PG), 0);
	assert_int_equal(r.nr, 2);
	assert_int_equal(mv_ram_list_remove_notifier(l, &r.n), 0);
	mv_ramblock_unref(rb);
	mv_ram_list_free(l);
}

/* ------------------------------------------------------------------ */
/* hv_mem forwards to hv_vm_invalidate_hva_*                           */

typedef struct inval_vm {
	hv_vm base;
	event ev[MAX_EVENTS];
	unsigned nr;
} inval_vm;

static int inval_vm_create(const hv_vm_config *cfg, hv_vm **out, mv_error *err)
{
	inval_vm *v = calloc(1, sizeof(*v));

	(void)cfg;
	(void)err;
	*out = &v->base;
	return 0;
}

static void inval_vm_destroy(hv_vm *vm) { free(vm); }
static long inval_check_cap(hv_vm *vm, hv_cap cap) { (void)vm; return cap == HV_CAP_NR_AS; }

static void inval_hva(hv_vm *vm, uint64_t hva, uint64_t len, bool start)
{
	inval_vm *v = (inval_vm *)vm;

	assert_true(v->nr < MAX_EVENTS);
	v->ev[v->nr++] = (event){ hva, len, start };
}

static const hv_ops inval_ops = {
	.name = "inval",
	.vm_create = inval_vm_create,
	.vm_destroy = inval_vm_destroy,
	.check_cap = inval_check_cap,
	.invalidate_hva = inval_hva,
};

static void test_hv_mem_forwards(void **state)
{
	hv_vm_config cfg = { .arch = HV_ARCH_X86_64 };
	mv_memory *mem;
	mv_ramblock *rb;
	hv_mem *hm;
	inval_vm *v;
	hv_vm *vm;
	uint8_t *host;

	(void)state;
	assert_int_equal(hv_vm_create_ops(&inval_ops, &cfg, &vm, NULL), 0);
	v = (inval_vm *)vm;
	assert_int_equal(mv_memory_new(NULL, &mem), 0);
	assert_int_equal(hv_mem_new(vm, mem, &hm, NULL), 0);
	rb = new_block(mv_memory_ram_list(mem), "ram", 8 * PG, NULL);
	host = mv_ramblock_host(rb);
	assert_int_equal(mv_ramblock_discard(rb, 2 * PG, 3 * PG), 0);
	assert_int_equal(v->nr, 2);
	for (unsigned i = 0; i < 2; i++) {
		assert_int_equal(v->ev[i].hva, (uint64_t)(uintptr_t)(host + 2 * PG));
		assert_int_equal(v->ev[i].len, 3 * PG);
		assert_int_equal(v->ev[i].start, i == 0);
	}
	/* after hv_mem_free the VM hears nothing more */
	hv_mem_free(hm);
	assert_int_equal(mv_ramblock_discard(rb, 0, PG), 0);
	assert_int_equal(v->nr, 2);
	mv_ramblock_unref(rb);
	mv_memory_free(mem);
	hv_vm_destroy(vm);
}

/* ------------------------------------------------------------------ */
/* A soft VM behind hv_mem                                              */

#define RAM_GPA 0x40000000ull
#define CMD_GPA 0x10000000ull       /* MMIO: the test's commands to the program */
#define RESULT_GPA 0x10000100ull    /* MMIO: the program's answers */

enum { CMD_STOP, CMD_READ, CMD_WRITE };

/*
 * The guest: a program the test drives through MMIO. It reads a command
 * (an exit the test answers: op | value << 8) and an address (another
 * exit), performs one 8-byte read or write there, and sends a read's value
 * back with an MMIO write.
 */
static int remote_program(hv_soft_cpu *cpu, void *arg)
{
	uint64_t cmd, addr, v = 0;

	(void)arg;
	for (;;) {
		if (hv_soft_read(cpu, CMD_GPA, 8, &cmd) || (cmd & 0xff) == CMD_STOP)
			return 0;
		if (hv_soft_read(cpu, CMD_GPA + 8, 8, &addr))
			return 0;
		if ((cmd & 0xff) == CMD_WRITE) {
			hv_soft_write(cpu, addr, 8, cmd >> 8);
			continue;
		}
		hv_soft_read(cpu, addr, 8, &v);
		hv_soft_write(cpu, RESULT_GPA, 8, v);
	}
}

typedef struct soft_fx {
	hv_arch arch;
	mv_memory *mem;
	mv_region *root;
	mv_address_space *as;
	mv_ram_region *ram;
	mv_ramblock *rb;
	hv_vm *vm;
	hv_mem *hm;
	hv_vcpu *vcpu;
	hv_exit *e;
} soft_fx;

static void soft_run(soft_fx *x)
{
	assert_int_equal(hv_vcpu_run(x->vcpu, &x->e), 0);
}

static void expect_mmio(soft_fx *x, uint64_t gpa, bool is_write)
{
	assert_int_equal(x->e->reason, HV_EXIT_MMIO);
	assert_int_equal(x->e->mmio.gpa, gpa);
	assert_int_equal(x->e->mmio.is_write, is_write);
}

/* Answer the command exit with @cmd and the address exit with @gpa. */
static void send(soft_fx *x, uint64_t cmd, uint64_t gpa)
{
	expect_mmio(x, CMD_GPA, false);
	memcpy(x->e->mmio.data, &cmd, 8);
	soft_run(x);
	expect_mmio(x, CMD_GPA + 8, false);
	memcpy(x->e->mmio.data, &gpa, 8);
	soft_run(x);
}

static void guest_write(soft_fx *x, uint64_t gpa, uint64_t value)
{
	send(x, CMD_WRITE | value << 8, gpa);
}

/* Tell the program to return: the vCPU halts. */
static void guest_stop(soft_fx *x)
{
	uint64_t stop = CMD_STOP;

	expect_mmio(x, CMD_GPA, false);
	memcpy(x->e->mmio.data, &stop, 8);
	soft_run(x);
	assert_int_equal(x->e->reason, HV_EXIT_HLT);
}

static uint64_t guest_read(soft_fx *x, uint64_t gpa)
{
	uint64_t v;

	send(x, CMD_READ, gpa);
	expect_mmio(x, RESULT_GPA, true);
	memcpy(&v, x->e->mmio.data, 8);
	soft_run(x);
	return v;
}

/*
 * A soft VM of @arch whose address space shows a RAM region over a block
 * of @size bytes made with @o at RAM_GPA, through hv_mem; the program is
 * waiting for its first command.
 */
static void soft_open(soft_fx *x, hv_arch arch, uint64_t size, const mv_ramblock_opts *o)
{
	hv_vm_config cfg = { .arch = arch };
	mv_error err = { 0 };

	memset(x, 0, sizeof(*x));
	x->arch = arch;
	assert_int_equal(mv_memory_new(NULL, &x->mem), 0);
	x->root = cu_container(x->mem, "system", (mv_u128)1 << 40);
	assert_int_equal(mv_address_space_new(x->mem, x->root, "memory", &x->as), 0);
	x->rb = new_block(mv_memory_ram_list(x->mem), "ram", size, o);
	assert_int_equal(mv_ram_region_new(x->mem, "ram", x->rb, &x->ram), 0);
	mv_ramblock_unref(x->rb);   /* the region holds it */
	cu_add(x->root, RAM_GPA, mv_ram_region_base(x->ram), 0);
	if (hv_vm_create("soft", &cfg, &x->vm, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(hv_mem_new(x->vm, x->mem, &x->hm, &err), 0);
	assert_int_equal(hv_mem_attach(x->hm, x->as, 0, &err), 0);
	assert_null(hv_mem_error(x->hm));
	assert_int_equal(hv_vcpu_create(x->vm, 0, &x->vcpu, &err), 0);
	assert_int_equal(hv_soft_vcpu_set_program(x->vcpu, remote_program, NULL), 0);
	soft_run(x);
}

static void soft_close(soft_fx *x)
{
	guest_stop(x);
	hv_vcpu_destroy(x->vcpu);
	hv_mem_free(x->hm);
	hv_vm_destroy(x->vm);
	mv_region_unref(x->root);
	mv_memory_free(x->mem);
}

/* The stage-2 (arm64) or EPT (x86) leaf mapping @gpa, 0 when none. */
static uint64_t leaf(soft_fx *x, uint64_t gpa)
{
	soft_vm *vm = soft_vm_of(x->vm);
	mv_pte pte = 0;
	int level;

	if (x->arch == HV_ARCH_ARM64)
		mv_a64_vm_s2_leaf(vm->a64, gpa, &pte, &level);
	else
		mv_ept_get_leaf(mv_x86_vm_ept(vm->x86), gpa, &pte, &level);
	return pte;
}

static uint64_t inval_seq(soft_fx *x)
{
	soft_vm *vm = soft_vm_of(x->vm);

	return x->arch == HV_ARCH_ARM64 ? mv_a64_vm_invalidate_seq(vm->a64)
					: mv_x86_vm_invalidate_seq(vm->x86);
}

/*
 * Does vCPU 0's TLB hold a readable user-mode entry for @gpa (no guest
 * paging: VA = GPA)? Tagged with the VMID on arm64, X86_TLB_TAG on x86.
 */
static bool tlb_has(soft_fx *x, uint64_t gpa)
{
	soft_vcpu *v = soft_vcpu_of(x->vcpu);
	mv_a64_vm *vm = soft_vm_of(x->vm)->a64;
	mv_tlb *tlb = x->arch == HV_ARCH_ARM64 ? v->a64->tlb : v->x86->tlb;
	uint16_t tag = x->arch == HV_ARCH_ARM64 ? mv_vmid_value(vm->vmids, &vm->vmid) : X86_TLB_TAG;
	mv_tlb_entry e;
	bool hit;

	mv_tlb_lock(tlb);
	hit = mv_tlb_lookup(tlb, tag, 0, gpa >> 12, MV_TLB_R, &e);
	mv_tlb_unlock(tlb);
	return hit;
}

/* Discarding anonymous memory: the leaf goes, the guest reads zeroes, other pages stay. */
static void test_soft_discard_anon(void **state)
{
	hv_arch arch = *(const hv_arch *)*state;
	uint8_t *host;
	uint64_t seq;
	soft_fx x;

	soft_open(&x, arch, 16 * PG, NULL);
	host = mv_ramblock_host(x.rb);
	guest_write(&x, RAM_GPA, 0x1111);
	guest_write(&x, RAM_GPA + 2 * PG + 8, 0x2222);
	assert_int_equal(guest_read(&x, RAM_GPA + 2 * PG + 8), 0x2222);
	assert_int_equal(*(uint64_t *)(host + 2 * PG + 8), 0x2222);
	assert_int_not_equal(leaf(&x, RAM_GPA + 2 * PG), 0);
	assert_int_not_equal(leaf(&x, RAM_GPA), 0);
	assert_true(tlb_has(&x, RAM_GPA + 2 * PG));
	seq = inval_seq(&x);

	assert_int_equal(mv_ramblock_discard(x.rb, 2 * PG, PG), 0);
	assert_int_equal(inval_seq(&x), seq + 1);
	assert_int_equal(leaf(&x, RAM_GPA + 2 * PG), 0);
	assert_int_not_equal(leaf(&x, RAM_GPA), 0);      /* outside the range: kept */
	assert_false(tlb_has(&x, RAM_GPA + 2 * PG));
	assert_true(tlb_has(&x, RAM_GPA));
	assert_int_equal(guest_read(&x, RAM_GPA + 2 * PG + 8), 0);
	assert_int_equal(guest_read(&x, RAM_GPA), 0x1111);
	assert_int_not_equal(leaf(&x, RAM_GPA + 2 * PG), 0);   /* faulted in again */
	/* the page is live again: a write reaches the new host page */
	guest_write(&x, RAM_GPA + 2 * PG + 8, 0x3333);
	assert_int_equal(*(uint64_t *)(host + 2 * PG + 8), 0x3333);
	soft_close(&x);
}

/* Discarding a MAP_PRIVATE file block: the guest reads the file again. */
static void test_soft_discard_private_file(void **state)
{
	hv_arch arch = *(const hv_arch *)*state;
	mv_ramblock_opts o = { .backing = MV_RAM_FILE, .private_file = true };
	char path[64];
	soft_fx x;

	make_file(path, sizeof(path), 0x3c, 8 * PG);
	o.path = path;
	soft_open(&x, arch, 8 * PG, &o);
	assert_int_equal(guest_read(&x, RAM_GPA + PG), 0x3c3c3c3c3c3c3c3cull);
	guest_write(&x, RAM_GPA + PG, 0x77);
	assert_int_equal(guest_read(&x, RAM_GPA + PG), 0x77);
	assert_int_equal(mv_ramblock_discard(x.rb, 0, 8 * PG), 0);
	assert_int_equal(leaf(&x, RAM_GPA + PG), 0);
	assert_int_equal(guest_read(&x, RAM_GPA + PG), 0x3c3c3c3c3c3c3c3cull);
	soft_close(&x);
	unlink(path);
}

/* Zeroing whole pages (the loader's bss) zaps them too. */
static void test_soft_zero(void **state)
{
	hv_arch arch = *(const hv_arch *)*state;
	soft_fx x;

	soft_open(&x, arch, 8 * PG, NULL);
	guest_write(&x, RAM_GPA + 3 * PG, 5);
	assert_int_not_equal(leaf(&x, RAM_GPA + 3 * PG), 0);
	assert_int_equal(mv_ramblock_zero(x.rb, 3 * PG, PG), 0);
	assert_int_equal(leaf(&x, RAM_GPA + 3 * PG), 0);
	assert_int_equal(guest_read(&x, RAM_GPA + 3 * PG), 0);
	soft_close(&x);
}

/* A shrink zaps the tail before the memory goes; the shrunk slot ends there. */
static void test_soft_resize_shrink(void **state)
{
	hv_arch arch = *(const hv_arch *)*state;
	mv_ramblock_opts o = { .resizeable = true, .max_length = 16 * PG };
	uint64_t seq, zero = 0;
	soft_fx x;

	soft_open(&x, arch, 16 * PG, &o);
	guest_write(&x, RAM_GPA + 12 * PG, 0xabc);
	guest_write(&x, RAM_GPA + 4 * PG, 0xdef);
	assert_int_not_equal(leaf(&x, RAM_GPA + 12 * PG), 0);
	seq = inval_seq(&x);
	assert_int_equal(mv_ram_region_resize(x.ram, 8 * PG, NULL), 0);
	assert_true(inval_seq(&x) > seq);
	assert_int_equal(leaf(&x, RAM_GPA + 12 * PG), 0);
	assert_int_equal(guest_read(&x, RAM_GPA + 4 * PG), 0xdef);
	/* past the new end there is no memory: an MMIO read */
	send(&x, CMD_READ, RAM_GPA + 12 * PG);
	expect_mmio(&x, RAM_GPA + 12 * PG, false);
	memcpy(x.e->mmio.data, &zero, 8);
	soft_run(&x);
	expect_mmio(&x, RESULT_GPA, true);
	soft_run(&x);
	/* grown back: the tail reads zeroes */
	assert_int_equal(mv_ram_region_resize(x.ram, 16 * PG, NULL), 0);
	assert_int_equal(guest_read(&x, RAM_GPA + 12 * PG), 0);
	soft_close(&x);
}

/* DIMM unplug: the slot goes, and the block's free tells the VM before the munmap. */
static void test_soft_dimm_unplug(void **state)
{
	const char *type = *(const char *const *)*state;
	hv_arch arch = strcmp(type, "virt-arm64") ? HV_ARCH_X86_64 : HV_ARCH_ARM64;
	mv_machine_opts opts = { .ram_size = 128ull << 20, .slots = 2, .maxmem = 1ull << 30 };
	hv_vm_config cfg = { .arch = arch };
	mv_error err = { 0 };
	soft_fx x = { .arch = arch };
	uint64_t addr, seq;
	mv_ramblock *rb;
	mv_machine *m;

	assert_int_equal(mv_memory_new(NULL, &x.mem), 0);
	if (mv_machine_new(x.mem, type, &opts, &m, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(hv_vm_create("soft", &cfg, &x.vm, &err), 0);
	assert_int_equal(hv_mem_new(x.vm, x.mem, &x.hm, &err), 0);
	assert_int_equal(hv_mem_attach(x.hm, mv_machine_memory_as(m), 0, &err), 0);
	assert_int_equal(mv_machine_dimm_plug(m, "dimm0", 2ull << 20, MV_DIMM_ADDR_AUTO, &addr,
					      &err), 0);
	assert_null(hv_mem_error(x.hm));
	assert_int_equal(hv_vcpu_create(x.vm, 0, &x.vcpu, &err), 0);
	assert_int_equal(hv_soft_vcpu_set_program(x.vcpu, remote_program, NULL), 0);
	soft_run(&x);
	guest_write(&x, addr + PG, 0x600d);
	assert_int_equal(guest_read(&x, addr + PG), 0x600d);
	assert_int_not_equal(leaf(&x, addr + PG), 0);
	/* our reference makes the block's free happen here, not on the RCU thread */
	rb = mv_ram_list_find(mv_memory_ram_list(x.mem), "dimm0");
	mv_ramblock_ref(rb);
	assert_int_equal(mv_machine_dimm_unplug(m, "dimm0", &err), 0);
	urcu_memb_barrier();
	/* the memslot delete zapped it */
	assert_int_equal(leaf(&x, addr + PG), 0);
	seq = inval_seq(&x);
	mv_ramblock_unref(rb);
	/* the free told the VM before unmapping: one more invalidation */
	assert_int_equal(inval_seq(&x), seq + 1);
	guest_stop(&x);
	hv_vcpu_destroy(x.vcpu);
	hv_mem_free(x.hm);
	mv_machine_free(m);
	hv_vm_destroy(x.vm);
	mv_memory_free(x.mem);
}

static const hv_arch x86 = HV_ARCH_X86_64;
static const hv_arch arm64 = HV_ARCH_ARM64;
static const char *const pc = "pc";
static const char *const virt = "virt-arm64";

#define BOTH(fn) cmocka_unit_test_prestate(fn, (void *)&x86), \
		 cmocka_unit_test_prestate(fn, (void *)&arm64)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_notifier_register),
		cmocka_unit_test(test_notifier_alloc_failures),
		cmocka_unit_test(test_notify_zero),
		cmocka_unit_test(test_notify_resize),
		cmocka_unit_test(test_notify_free),
		cmocka_unit_test(test_block_outlives_list),
		cmocka_unit_test(test_discard_backings),
		cmocka_unit_test(test_discard_errors),
		cmocka_unit_test(test_hv_mem_forwards),
		BOTH(test_soft_discard_anon),
		BOTH(test_soft_discard_private_file),
		BOTH(test_soft_zero),
		BOTH(test_soft_resize_shrink),
		cmocka_unit_test_prestate(test_soft_dimm_unplug, (void *)&pc),
		cmocka_unit_test_prestate(test_soft_dimm_unplug, (void *)&virt),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
