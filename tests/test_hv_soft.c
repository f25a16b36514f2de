/*
 * The accelerator interface (hv.h) on the "soft" accelerator, for x86 and
 * arm64 guests alike: capabilities, a program's RAM accesses through a
 * memslot, MMIO and port exits completed by the test, coalesced MMIO/PIO,
 * ioeventfd, dirty logging (bitmap, manual protect, ring with a ring-full
 * exit), kicks, destroying a vCPU with a suspended program, vCPU errors,
 * and the accelerator memory listener (hv_mem) driving a soft VM on the
 * pc, microvm and virt-arm64 machines.
 *
 * Most tests run a "script": a program that performs a list of steps
 * (read, write, fetch, port in/out, kick its own vCPU) and records each
 * step's return code and value, so the test can check exactly how far the
 * program got at every exit.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "testutil.h"
#include "coreutil.h"

#include "memvirt/hv.h"
#include "memvirt/hv_memory.h"
#include "memvirt/hv_soft.h"
#include "memvirt/machine.h"
#include "memvirt/ramblock.h"

#define PG 4096ull
#define RAM_GPA 0x40000000ull       /* inside arm64's 40-bit IPA space and below x86's 4 GiB */
#define RAM_SIZE (1ull << 20)       /* 256 pages */
#define MMIO_GPA 0x10000000ull      /* no slot there */
#define MAX_STEPS 512

static const hv_arch x86 = HV_ARCH_X86_64;
static const hv_arch arm64 = HV_ARCH_ARM64;

/* ------------------------------------------------------------------ */
/* Scripts                                                              */

typedef enum step_op {
	S_READ,
	S_WRITE,
	S_FETCH,
	S_PIO_IN,
	S_PIO_OUT,
	S_KICK,        /* hv_vcpu_kick on the script's own vCPU */
	S_SUPERVISOR,  /* accesses at CPL 0 / EL1 from here on */
} step_op;

typedef struct step {
	step_op op;
	uint64_t addr;
	unsigned size;
	uint64_t value;
} step;

typedef struct script {
	step steps[MAX_STEPS];
	unsigned n;
	hv_vcpu *vcpu;                 /* for S_KICK */
	int rc[MAX_STEPS];
	uint64_t got[MAX_STEPS];
	unsigned done;                 /* steps finished */
	hv_soft_fault fault;           /* of the last step that returned -EFAULT */
	int ret;                       /* what the program returns */
} script;

static void add(script *s, step_op op, uint64_t addr, unsigned size, uint64_t value)
{
	assert_true(s->n < MAX_STEPS);
	s->steps[s->n++] = (step){ op, addr, size, value };
}

static int do_step(hv_soft_cpu *cpu, script *s, const step *st, uint64_t *got)
{
	uint32_t v32 = 0;
	int r = 0;

	switch (st->op) {
	case S_READ: return hv_soft_read(cpu, st->addr, st->size, got);
	case S_WRITE: return hv_soft_write(cpu, st->addr, st->size, st->value);
	case S_FETCH: r = hv_soft_fetch(cpu, st->addr, &v32); break;
	case S_PIO_IN: r = hv_soft_pio_in(cpu, (uint16_t)st->addr, st->size, &v32); break;
	case S_PIO_OUT: return hv_soft_pio_out(cpu, (uint16_t)st->addr, st->size, (uint32_t)st->value);
	case S_KICK: hv_vcpu_kick(s->vcpu); return 0;
	case S_SUPERVISOR: hv_soft_set_user(cpu, false); return 0;
	}
	*got = v32;
	return r;
}

/* The program: every step in order; stops when the vCPU is being destroyed. */
static int script_program(hv_soft_cpu *cpu, void *arg)
{
	script *s = arg;

	for (unsigned i = 0; i < s->n; i++) {
		s->rc[i] = do_step(cpu, s, &s->steps[i], &s->got[i]);
		s->done = i + 1;
		if (s->rc[i] == -EFAULT)
			hv_soft_last_fault(cpu, &s->fault);
		if (s->rc[i] == -ECANCELED)
			return -ECANCELED;
	}
	return s->ret;
}

/* ------------------------------------------------------------------ */
/* Fixture: a soft VM with RAM at RAM_GPA (slot 0) and vCPU 0            */

typedef struct fx {
	hv_arch arch;
	hv_vm *vm;
	hv_vcpu *vcpu;
	uint8_t *ram;
	script *s;
} fx;

static hv_vm *new_vm(hv_arch arch)
{
	hv_vm_config cfg = { .arch = arch };
	mv_error err = { 0 };
	hv_vm *vm = NULL;

	if (hv_vm_create("soft", &cfg, &vm, &err))
		fail_msg("hv_vm_create(soft): %s", err.msg);
	return vm;
}

static void set_slot(hv_vm *vm, unsigned id, uint32_t flags, uint64_t gpa, uint64_t size,
		     void *hva)
{
	hv_memslot m = { .slot = HV_SLOT(0, id), .flags = flags, .gpa = gpa, .size = size,
			 .hva = hva };

	assert_int_equal(hv_set_memslot(vm, &m), 0);
}

static hv_vcpu *new_vcpu(hv_vm *vm, uint32_t id)
{
	mv_error err = { 0 };
	hv_vcpu *v = NULL;

	if (hv_vcpu_create(vm, id, &v, &err))
		fail_msg("hv_vcpu_create: %s", err.msg);
	return v;
}

/* VM, RAM slot with @flags, no vCPU yet. */
static void fx_open_novcpu(fx *x, hv_arch arch, uint32_t flags)
{
	memset(x, 0, sizeof(*x));
	x->arch = arch;
	x->vm = new_vm(arch);
	x->ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(x->ram != MAP_FAILED);
	set_slot(x->vm, 0, flags, RAM_GPA, RAM_SIZE, x->ram);
	x->s = calloc(1, sizeof(*x->s));
}

/* ... then vCPU 0 running the fixture's script. */
static void fx_start(fx *x)
{
	x->vcpu = new_vcpu(x->vm, 0);
	x->s->vcpu = x->vcpu;
	assert_int_equal(hv_soft_vcpu_set_program(x->vcpu, script_program, x->s), 0);
}

static void fx_open(fx *x, hv_arch arch, uint32_t flags)
{
	fx_open_novcpu(x, arch, flags);
	fx_start(x);
}

static void fx_close(fx *x)
{
	hv_vcpu_destroy(x->vcpu);
	hv_vm_destroy(x->vm);
	munmap(x->ram, RAM_SIZE);
	free(x->s);
}

static hv_exit *run(fx *x)
{
	hv_exit *e = NULL;

	assert_int_equal(hv_vcpu_run(x->vcpu, &e), 0);
	assert_non_null(e);
	return e;
}

static void run_expect(fx *x, hv_exit_reason want)
{
	hv_exit *e = run(x);

	if (e->reason != want)
		fail_msg("exit %s, expected %s (after %u steps)", hv_exit_reason_name(e->reason),
			 hv_exit_reason_name(want), x->s->done);
}

static uint64_t le(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	memcpy(&v, p, n);
	return v;
}

static void put_le(uint8_t *p, unsigned n, uint64_t v)
{
	memcpy(p, &v, n);
}

static hv_arch arch_of(void **state)
{
	return *(const hv_arch *)*state;
}

/* ------------------------------------------------------------------ */
/* The accelerator                                                      */

static void test_registry_and_caps(void **state)
{
	const char *const *names = hv_accel_names();
	hv_vm_config bad = { .arch = (hv_arch)7 };
	mv_error err = { 0 };
	hv_vm *vm;
	bool soft = false;

	(void)state;
	for (unsigned i = 0; names[i]; i++)
		soft |= !strcmp(names[i], "soft");
	assert_true(soft);
	assert_int_equal(hv_vm_create("soft", &bad, &vm, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "architecture"));

	vm = new_vm(HV_ARCH_X86_64);
	assert_string_equal(hv_vm_accel_name(vm), "soft");
	assert_true(hv_vm_is_soft(vm));
	assert_int_equal(hv_vm_arch(vm), HV_ARCH_X86_64);
	assert_int_equal(hv_vm_check_cap(vm, HV_CAP_NR_MEMSLOTS), 32764);
	assert_int_equal(hv_vm_check_cap(vm, HV_CAP_NR_AS), 1);
	assert_int_equal(hv_vm_check_cap(vm, HV_CAP_MAX_VCPUS), 64);
	assert_int_equal(hv_vm_check_cap(vm, HV_CAP_READONLY_MEM), 1);
	assert_int_equal(hv_vm_check_cap(vm, HV_CAP_MANUAL_DIRTY_PROTECT), 3);
	assert_int_equal(hv_vm_check_cap(vm, HV_CAP_DIRTY_RING), 65536);
	assert_int_equal(hv_vm_check_cap(vm, HV_CAP_COALESCED_MMIO), 2);
	assert_int_equal(hv_vm_check_cap(vm, HV_CAP_COALESCED_PIO), 1);
	assert_int_equal(hv_vm_check_cap(vm, HV_CAP_IOEVENTFD), 1);
	assert_int_equal(hv_vm_check_cap(vm, HV_CAP_ARM_NISV), 0);
	hv_vm_destroy(vm);

	vm = new_vm(HV_ARCH_ARM64);
	assert_int_equal(hv_vm_arch(vm), HV_ARCH_ARM64);
	assert_int_equal(hv_vm_check_cap(vm, HV_CAP_NR_MEMSLOTS), 32767);
	assert_int_equal(hv_vm_check_cap(vm, HV_CAP_ARM_NISV), 1);
	assert_int_equal(hv_vm_check_cap(vm, HV_CAP_COALESCED_MMIO), 1);
	assert_int_equal(hv_vm_check_cap(vm, HV_CAP_DIRTY_RING), 65536);
	hv_vm_destroy(vm);
}

/* No x86 register state on soft vCPUs; no program: a halted guest. */
static void test_no_program(void **state)
{
	hv_vm *vm = new_vm(arch_of(state));
	hv_vcpu *v = new_vcpu(vm, 3);
	hv_x86_regs regs;
	hv_exit *e;

	assert_int_equal(hv_vcpu_id(v), 3);
	assert_int_equal(hv_vcpu_get_regs(v, &regs), -ENOTSUP);
	assert_int_equal(hv_vcpu_run(v, &e), 0);
	assert_int_equal(e->reason, HV_EXIT_HLT);
	assert_false(hv_soft_vcpu_program_done(v, NULL));
	hv_vcpu_destroy(v);
	hv_vm_destroy(vm);
}

/* ------------------------------------------------------------------ */
/* RAM, MMIO and ports                                                  */

/* Writes and reads of every size land in the slot's host memory; return -> HLT forever. */
static void test_ram_program(void **state)
{
	static const unsigned sizes[] = { 1, 2, 4, 8 };
	fx x;
	int ret = 0;

	fx_open(&x, arch_of(state), 0);
	x.s->ret = 42;
	for (unsigned i = 0; i < 4; i++) {
		uint64_t gpa = RAM_GPA + 0x1000 * i + 8 * i;

		add(x.s, S_WRITE, gpa, sizes[i], 0x8877665544332211ull);
		add(x.s, S_READ, gpa, sizes[i], 0);
	}
	/* page-crossing 8-byte write, and the last byte of the slot */
	add(x.s, S_WRITE, RAM_GPA + 0x7ffc, 8, 0x0102030405060708ull);
	add(x.s, S_READ, RAM_GPA + 0x7ffc, 8, 0);
	add(x.s, S_WRITE, RAM_GPA + RAM_SIZE - 1, 1, 0xee);
	run_expect(&x, HV_EXIT_HLT);
	assert_int_equal(x.s->done, x.s->n);
	for (unsigned i = 0; i < 4; i++) {
		uint64_t mask = sizes[i] == 8 ? ~0ull : (1ull << (8 * sizes[i])) - 1;

		assert_int_equal(x.s->rc[2 * i + 1], 0);
		assert_int_equal(x.s->got[2 * i + 1], 0x8877665544332211ull & mask);
		assert_int_equal(le(x.ram + 0x1000 * i + 8 * i, sizes[i]),
				 0x8877665544332211ull & mask);
	}
	assert_int_equal(x.s->got[9], 0x0102030405060708ull);
	assert_int_equal(le(x.ram + 0x7ffc, 8), 0x0102030405060708ull);
	assert_int_equal(x.ram[RAM_SIZE - 1], 0xee);
	assert_true(hv_soft_vcpu_program_done(x.vcpu, &ret));
	assert_int_equal(ret, 42);
	run_expect(&x, HV_EXIT_HLT);
	assert_int_equal(hv_soft_vcpu_set_program(x.vcpu, script_program, x.s), -EINVAL);
	fx_close(&x);
}

/* A read outside every slot exits; the test's data completes it; a write exit carries its data. */
static void test_mmio_exits(void **state)
{
	fx x;
	hv_exit *e;

	fx_open(&x, arch_of(state), 0);
	add(x.s, S_WRITE, RAM_GPA, 4, 1);
	add(x.s, S_READ, MMIO_GPA + 0x10, 4, 0);
	add(x.s, S_READ, MMIO_GPA + 0x20, 2, 0);
	add(x.s, S_WRITE, MMIO_GPA + 0x28, 8, 0xa1a2a3a4a5a6a7a8ull);
	add(x.s, S_READ, MMIO_GPA + 0x30, 8, 0);
	e = run(&x);
	assert_int_equal(e->reason, HV_EXIT_MMIO);
	assert_int_equal(x.s->done, 1);
	assert_int_equal(e->mmio.gpa, MMIO_GPA + 0x10);
	assert_int_equal(e->mmio.len, 4);
	assert_false(e->mmio.is_write);
	put_le(e->mmio.data, 4, 0xdeadbeef);

	e = run(&x);
	assert_int_equal(x.s->rc[1], 0);
	assert_int_equal(x.s->got[1], 0xdeadbeef);
	assert_int_equal(e->reason, HV_EXIT_MMIO);
	assert_int_equal(e->mmio.gpa, MMIO_GPA + 0x20);
	assert_int_equal(e->mmio.len, 2);
	put_le(e->mmio.data, 8, 0xffffffffffff8001ull);   /* only len bytes count */

	e = run(&x);
	assert_int_equal(x.s->got[2], 0x8001);
	assert_int_equal(e->reason, HV_EXIT_MMIO);
	assert_true(e->mmio.is_write);
	assert_int_equal(e->mmio.gpa, MMIO_GPA + 0x28);
	assert_int_equal(e->mmio.len, 8);
	assert_int_equal(le(e->mmio.data, 8), 0xa1a2a3a4a5a6a7a8ull);

	e = run(&x);
	assert_int_equal(x.s->rc[3], 0);
	assert_int_equal(e->reason, HV_EXIT_MMIO);
	assert_int_equal(e->mmio.len, 8);
	put_le(e->mmio.data, 8, 0x1122334455667788ull);
	run_expect(&x, HV_EXIT_HLT);
	assert_int_equal(x.s->got[4], 0x1122334455667788ull);
	fx_close(&x);
}

/* Port I/O (x86): OUT carries its data, IN is completed by the test; arm64 has none. */
static void test_pio(void **state)
{
	hv_arch arch = arch_of(state);
	fx x;
	hv_exit *e;

	fx_open(&x, arch, 0);
	add(x.s, S_PIO_OUT, 0x3f8, 1, 'A');
	add(x.s, S_PIO_IN, 0x60, 2, 0);
	add(x.s, S_PIO_OUT, 0xcf8, 4, 0x80000010);
	add(x.s, S_PIO_IN, 0x60, 8, 0);
	if (arch == HV_ARCH_ARM64) {
		run_expect(&x, HV_EXIT_HLT);
		assert_int_equal(x.s->rc[0], -ENOTSUP);
		assert_int_equal(x.s->rc[1], -ENOTSUP);
		assert_int_equal(x.s->rc[3], -EINVAL);
		fx_close(&x);
		return;
	}
	e = run(&x);
	assert_int_equal(e->reason, HV_EXIT_IO);
	assert_int_equal(e->io.port, 0x3f8);
	assert_int_equal(e->io.size, 1);
	assert_true(e->io.is_write);
	assert_int_equal(e->io.count, 1);
	assert_int_equal(e->io.data[0], 'A');
	e = run(&x);
	assert_int_equal(e->reason, HV_EXIT_IO);
	assert_int_equal(e->io.port, 0x60);
	assert_int_equal(e->io.size, 2);
	assert_false(e->io.is_write);
	put_le(e->io.data, 2, 0xbeef);
	e = run(&x);
	assert_int_equal(x.s->got[1], 0xbeef);
	assert_int_equal(e->reason, HV_EXIT_IO);
	assert_int_equal(e->io.size, 4);
	assert_int_equal(le(e->io.data, 4), 0x80000010);
	run_expect(&x, HV_EXIT_HLT);
	assert_int_equal(x.s->rc[3], -EINVAL);   /* no 8-byte ports */
	fx_close(&x);
}

/* arm64: an IPA beyond the 40-bit space is an address size fault KVM injects into the guest. */
static void test_guest_fault_arm64(void **state)
{
	fx x;

	(void)state;
	fx_open(&x, HV_ARCH_ARM64, 0);
	add(x.s, S_READ, 1ull << 41, 8, 0);
	add(x.s, S_SUPERVISOR, 0, 0, 0);
	add(x.s, S_WRITE, 1ull << 40, 4, 0);
	add(x.s, S_READ, RAM_GPA, 8, 0);
	run_expect(&x, HV_EXIT_HLT);
	assert_int_equal(x.s->rc[0], -EFAULT);
	/*
	 * The last one, between the VM's IPA size and the host's limit: KVM
	 * injects a synchronous external abort, EC 0x25 (data abort, same EL),
	 * IL, DFSC 0x10.
	 */
	assert_int_equal(x.s->rc[2], -EFAULT);
	assert_int_equal(x.s->fault.code, 0x25ull << 26 | 1ull << 25 | 0x10);
	assert_int_equal(x.s->fault.addr, 1ull << 40);
	assert_int_equal(x.s->fault.vector, 0);
	assert_int_equal(x.s->rc[3], 0);   /* the program goes on after its faults */
	fx_close(&x);
}

/* ------------------------------------------------------------------ */
/* Coalesced MMIO / PIO and ioeventfd                                   */

#define MAX_DRAINED 256

typedef struct drained {
	hv_coalesced_write w[MAX_DRAINED];
	unsigned n;
} drained;

static void drain_fn(void *opaque, const hv_coalesced_write *w)
{
	drained *d = opaque;

	assert_true(d->n < MAX_DRAINED);
	d->w[d->n++] = *w;
}

/* Writes into a zone are queued in order without exits; reads exit; a full ring exits. */
static void test_coalesced_mmio(void **state)
{
	drained *d = calloc(1, sizeof(*d));
	fx x;
	hv_exit *e;

	fx_open(&x, arch_of(state), 0);
	assert_int_equal(hv_coalesced_zone_add(x.vm, HV_BUS_MMIO, MMIO_GPA, 0x800), 0);
	add(x.s, S_WRITE, MMIO_GPA + 0x0, 1, 0x11);
	add(x.s, S_WRITE, MMIO_GPA + 0x10, 2, 0x2222);
	add(x.s, S_WRITE, MMIO_GPA + 0x20, 4, 0x33333333);
	add(x.s, S_WRITE, MMIO_GPA + 0x7f8, 8, 0x4444444444444444ull);
	add(x.s, S_READ, MMIO_GPA + 0x20, 4, 0);                    /* reads are not coalesced */
	add(x.s, S_WRITE, MMIO_GPA + 0x7fc, 8, 5);                  /* sticks out of the zone */
	e = run(&x);
	assert_int_equal(e->reason, HV_EXIT_MMIO);
	assert_false(e->mmio.is_write);
	assert_int_equal(x.s->done, 4);
	assert_int_equal(hv_coalesced_drain(x.vm, drain_fn, d), 4);
	assert_int_equal(d->w[0].addr, MMIO_GPA);
	assert_int_equal(d->w[0].len, 1);
	assert_int_equal(d->w[0].bus, HV_BUS_MMIO);
	assert_int_equal(le(d->w[0].data, 8), 0x11);
	assert_int_equal(d->w[1].addr, MMIO_GPA + 0x10);
	assert_int_equal(le(d->w[1].data, 8), 0x2222);
	assert_int_equal(d->w[2].len, 4);
	assert_int_equal(d->w[3].addr, MMIO_GPA + 0x7f8);
	assert_int_equal(d->w[3].len, 8);
	assert_int_equal(le(d->w[3].data, 8), 0x4444444444444444ull);
	assert_int_equal(hv_coalesced_drain(x.vm, drain_fn, d), 0);
	put_le(e->mmio.data, 4, 7);
	e = run(&x);
	assert_int_equal(x.s->got[4], 7);
	assert_int_equal(e->reason, HV_EXIT_MMIO);
	assert_true(e->mmio.is_write);
	assert_int_equal(e->mmio.gpa, MMIO_GPA + 0x7fc);
	assert_int_equal(e->mmio.len, 8);
	run_expect(&x, HV_EXIT_HLT);
	fx_close(&x);
	free(d);
}

/* The ring holds 169 writes (KVM_COALESCED_MMIO_MAX - 1); the next one exits; a delete stops it. */
static void test_coalesced_ring_full(void **state)
{
	drained *d = calloc(1, sizeof(*d));
	fx x;
	hv_exit *e;

	fx_open(&x, arch_of(state), 0);
	assert_int_equal(hv_coalesced_zone_add(x.vm, HV_BUS_MMIO, MMIO_GPA, 0x1000), 0);
	for (unsigned i = 0; i < 171; i++)
		add(x.s, S_WRITE, MMIO_GPA + 8 * i, 8, i);
	e = run(&x);
	assert_int_equal(e->reason, HV_EXIT_MMIO);
	assert_true(e->mmio.is_write);
	assert_int_equal(e->mmio.gpa, MMIO_GPA + 8 * 169);
	assert_int_equal(le(e->mmio.data, 8), 169);
	assert_int_equal(hv_coalesced_drain(x.vm, drain_fn, d), 169);
	for (unsigned i = 0; i < 169; i++)
		assert_int_equal(le(d->w[i].data, 8), i);
	/* the zone is gone: a sub-range names it */
	assert_int_equal(hv_coalesced_zone_del(x.vm, HV_BUS_MMIO, MMIO_GPA + 0x100, 8), 0);
	assert_int_equal(hv_coalesced_zone_del(x.vm, HV_BUS_MMIO, MMIO_GPA, 8), 0);
	e = run(&x);
	assert_int_equal(e->reason, HV_EXIT_MMIO);
	assert_int_equal(e->mmio.gpa, MMIO_GPA + 8 * 170);
	run_expect(&x, HV_EXIT_HLT);
	assert_int_equal(hv_coalesced_drain(x.vm, drain_fn, d), 0);
	fx_close(&x);
	free(d);
}

/* x86: a coalesced port zone. */
static void test_coalesced_pio(void **state)
{
	drained *d = calloc(1, sizeof(*d));
	fx x;
	hv_exit *e;

	(void)state;
	fx_open(&x, HV_ARCH_X86_64, 0);
	assert_int_equal(hv_coalesced_zone_add(x.vm, HV_BUS_PIO, 0x70, 2), 0);
	add(x.s, S_PIO_OUT, 0x70, 1, 0x8f);
	add(x.s, S_PIO_OUT, 0x71, 1, 0x01);
	add(x.s, S_PIO_OUT, 0x71, 2, 0x0101);     /* not inside [0x70, 0x72) */
	e = run(&x);
	assert_int_equal(e->reason, HV_EXIT_IO);
	assert_int_equal(e->io.port, 0x71);
	assert_int_equal(e->io.size, 2);
	assert_int_equal(hv_coalesced_drain(x.vm, drain_fn, d), 2);
	assert_int_equal(d->w[0].bus, HV_BUS_PIO);
	assert_int_equal(d->w[0].addr, 0x70);
	assert_int_equal(d->w[0].data[0], 0x8f);
	assert_int_equal(d->w[1].addr, 0x71);
	run_expect(&x, HV_EXIT_HLT);
	fx_close(&x);
	free(d);
}

static uint64_t eventfd_count(int fd)
{
	uint64_t v = 0;

	if (read(fd, &v, sizeof(v)) != sizeof(v))
		return 0;
	return v;
}

/* Matching writes signal the eventfd instead of exiting; KVM's argument errors. */
static void test_ioeventfd(void **state)
{
	int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), any = eventfd(0, EFD_NONBLOCK), p[2];
	hv_ioeventfd dm = { .bus = HV_BUS_MMIO, .addr = MMIO_GPA + 0x100, .len = 4, .fd = efd,
			    .datamatch = true, .data = 7 };
	hv_ioeventfd wild = { .bus = HV_BUS_MMIO, .addr = MMIO_GPA + 0x200, .len = 0, .fd = any };
	hv_ioeventfd e2;
	fx x;
	hv_exit *e;

	assert_int_equal(pipe(p), 0);
	fx_open(&x, arch_of(state), 0);
	assert_int_equal(hv_ioeventfd_add(x.vm, &dm), 0);
	assert_int_equal(hv_ioeventfd_add(x.vm, &wild), 0);
	/* errors, in KVM's order */
	e2 = dm;
	assert_int_equal(hv_ioeventfd_add(x.vm, &e2), -EEXIST);
	e2.data = 8;
	assert_int_equal(hv_ioeventfd_add(x.vm, &e2), 0);             /* another datamatch */
	assert_int_equal(hv_ioeventfd_del(x.vm, &e2), 0);
	e2.datamatch = false;
	assert_int_equal(hv_ioeventfd_add(x.vm, &e2), -EEXIST);        /* wildcard vs datamatch */
	e2 = dm;
	e2.len = 3;
	assert_int_equal(hv_ioeventfd_add(x.vm, &e2), -EINVAL);
	e2.len = 0;
	assert_int_equal(hv_ioeventfd_add(x.vm, &e2), -EINVAL);        /* length 0 with datamatch */
	e2 = dm;
	e2.addr = ~0ull - 1;
	assert_int_equal(hv_ioeventfd_add(x.vm, &e2), -EINVAL);        /* wraps */
	e2 = dm;
	e2.fd = 1000;
	assert_int_equal(hv_ioeventfd_add(x.vm, &e2), -EBADF);
	e2.fd = p[0];
	assert_int_equal(hv_ioeventfd_add(x.vm, &e2), -EINVAL);        /* not an eventfd */
	e2 = (hv_ioeventfd){ .bus = HV_BUS_PIO, .addr = 0x80, .len = 0, .fd = efd };
	assert_int_equal(hv_ioeventfd_add(x.vm, &e2), -EINVAL);        /* port, any length */
	e2 = dm;
	e2.addr += 4;
	assert_int_equal(hv_ioeventfd_del(x.vm, &e2), -ENOENT);
	e2 = dm;
	e2.fd = any;
	assert_int_equal(hv_ioeventfd_del(x.vm, &e2), -ENOENT);        /* another eventfd */

	add(x.s, S_WRITE, dm.addr, 4, 7);          /* signals */
	add(x.s, S_WRITE, dm.addr, 4, 7);          /* again */
	add(x.s, S_WRITE, wild.addr, 1, 9);        /* any length, any data */
	add(x.s, S_WRITE, wild.addr, 8, 9);
	add(x.s, S_WRITE, dm.addr, 4, 8);          /* wrong data: exits */
	add(x.s, S_WRITE, dm.addr, 2, 7);          /* wrong length: exits */
	add(x.s, S_READ, dm.addr, 4, 0);           /* reads exit */
	add(x.s, S_WRITE, dm.addr, 4, 7);          /* after the delete: exits */
	e = run(&x);
	assert_int_equal(x.s->done, 4);
	assert_int_equal(eventfd_count(efd), 2);
	assert_int_equal(eventfd_count(any), 2);
	assert_int_equal(e->reason, HV_EXIT_MMIO);
	assert_int_equal(le(e->mmio.data, 4), 8);
	e = run(&x);
	assert_int_equal(e->reason, HV_EXIT_MMIO);
	assert_int_equal(e->mmio.len, 2);
	e = run(&x);
	assert_int_equal(e->reason, HV_EXIT_MMIO);
	assert_false(e->mmio.is_write);
	assert_int_equal(hv_ioeventfd_del(x.vm, &dm), 0);
	assert_int_equal(hv_ioeventfd_del(x.vm, &dm), -ENOENT);
	e = run(&x);
	assert_int_equal(e->reason, HV_EXIT_MMIO);
	assert_true(e->mmio.is_write);
	run_expect(&x, HV_EXIT_HLT);
	assert_int_equal(eventfd_count(efd), 0);
	fx_close(&x);
	close(efd);
	close(any);
	close(p[0]);
	close(p[1]);
}

/* x86: a port ioeventfd; the caller may close its fd, the VM keeps its own. */
static void test_ioeventfd_pio(void **state)
{
	int efd = eventfd(0, EFD_NONBLOCK), dup_fd;
	hv_ioeventfd io = { .bus = HV_BUS_PIO, .addr = 0xcfc, .len = 2, .fd = efd };
	fx x;

	(void)state;
	fx_open(&x, HV_ARCH_X86_64, 0);
	assert_int_equal(hv_ioeventfd_add(x.vm, &io), 0);
	dup_fd = dup(efd);
	close(efd);
	add(x.s, S_PIO_OUT, 0xcfc, 2, 0x1234);
	run_expect(&x, HV_EXIT_HLT);
	assert_int_equal(eventfd_count(dup_fd), 1);
	fx_close(&x);
	close(dup_fd);
}

/* ------------------------------------------------------------------ */
/* Dirty logging                                                        */

static void write_pages(script *s, const unsigned *pages, unsigned n, uint64_t value)
{
	for (unsigned i = 0; i < n; i++)
		add(s, S_WRITE, RAM_GPA + pages[i] * PG + 8, 8, value);
}

static void assert_bitmap(const uint64_t *bm, uint64_t w0, uint64_t w1)
{
	assert_int_equal(bm[0], w0);
	assert_int_equal(bm[1], w1);
	for (unsigned i = 2; i < HV_DIRTY_BITMAP_WORDS(RAM_SIZE); i++)
		assert_int_equal(bm[i], 0);
}

/* KVM_GET_DIRTY_LOG: bits of the pages written, cleared and re-protected by each get. */
static void test_dirty_bitmap(void **state)
{
	static const unsigned pages[] = { 0, 3, 3, 64 };
	uint64_t bm[HV_DIRTY_BITMAP_WORDS(RAM_SIZE)];
	fx x;

	fx_open(&x, arch_of(state), HV_MEM_LOG_DIRTY_PAGES);
	/*
	 * A read of a page the host wrote: arm64 maps it read-only while
	 * logging and logs nothing; x86 maps it writable and logs it at once
	 * (make_spte), as KVM does on each.
	 */
	x.ram[5 * PG] = 1;
	add(&x.s[0], S_READ, RAM_GPA + 5 * PG, 8, 0);
	write_pages(x.s, pages, 4, 1);
	add(x.s, S_READ, MMIO_GPA, 1, 0);               /* an exit to look in between */
	write_pages(x.s, pages + 1, 1, 2);
	run_expect(&x, HV_EXIT_MMIO);
	assert_int_equal(hv_get_dirty_log(x.vm, HV_SLOT(0, 0), bm), 0);
	assert_bitmap(bm, 1u << 0 | 1u << 3 | (x.arch == HV_ARCH_X86_64 ? 1u << 5 : 0), 1);
	assert_int_equal(hv_get_dirty_log(x.vm, HV_SLOT(0, 0), bm), 0);
	assert_bitmap(bm, 0, 0);
	run_expect(&x, HV_EXIT_HLT);
	/* the page was protected again: its write was seen */
	assert_int_equal(hv_get_dirty_log(x.vm, HV_SLOT(0, 0), bm), 0);
	assert_bitmap(bm, 1u << 3, 0);
	assert_int_equal(le(x.ram + 3 * PG + 8, 8), 2);

	/* errors: no such slot, a slot id out of range, a slot that does not log */
	assert_int_equal(hv_get_dirty_log(x.vm, HV_SLOT(0, 1), bm), -ENOENT);
	assert_int_equal(hv_get_dirty_log(x.vm, HV_SLOT(0, 40000), bm), -EINVAL);
	assert_int_equal(hv_get_dirty_log(x.vm, HV_SLOT(1, 0), bm), -EINVAL);
	set_slot(x.vm, 0, 0, RAM_GPA, RAM_SIZE, x.ram);
	assert_int_equal(hv_get_dirty_log(x.vm, HV_SLOT(0, 0), bm), -ENOENT);
	fx_close(&x);
}

/* Manual protect: get leaves the bits, clear re-protects exactly the pages asked. */
static void test_dirty_manual(void **state)
{
	static const unsigned pages[] = { 1, 2, 70 };
	uint64_t bm[HV_DIRTY_BITMAP_WORDS(RAM_SIZE)];
	uint64_t clr[2] = { 1u << 1, 0 };
	fx x;

	fx_open_novcpu(&x, arch_of(state), 0);
	assert_int_equal(hv_enable_manual_dirty_protect(x.vm, 4), -EINVAL);
	assert_int_equal(hv_enable_manual_dirty_protect(x.vm, HV_DIRTY_PROTECT_INIT_SET), -EINVAL);
	assert_int_equal(hv_enable_manual_dirty_protect(x.vm, HV_DIRTY_PROTECT_ENABLE), 0);
	set_slot(x.vm, 0, HV_MEM_LOG_DIRTY_PAGES, RAM_GPA, RAM_SIZE, x.ram);
	fx_start(&x);
	write_pages(x.s, pages, 3, 1);
	add(x.s, S_READ, MMIO_GPA, 1, 0);
	write_pages(x.s, pages, 2, 2);
	run_expect(&x, HV_EXIT_MMIO);
	assert_int_equal(hv_get_dirty_log(x.vm, HV_SLOT(0, 0), bm), 0);
	assert_bitmap(bm, 1u << 1 | 1u << 2, 1u << 6);
	assert_int_equal(hv_get_dirty_log(x.vm, HV_SLOT(0, 0), bm), 0);
	assert_bitmap(bm, 1u << 1 | 1u << 2, 1u << 6);
	/* clear page 1 only: a rewrite of page 1 shows again, page 2 never left */
	assert_int_equal(hv_clear_dirty_log(x.vm, HV_SLOT(0, 0), 0, 64, clr), 0);
	assert_int_equal(hv_get_dirty_log(x.vm, HV_SLOT(0, 0), bm), 0);
	assert_bitmap(bm, 1u << 2, 1u << 6);
	run_expect(&x, HV_EXIT_HLT);
	assert_int_equal(hv_get_dirty_log(x.vm, HV_SLOT(0, 0), bm), 0);
	assert_bitmap(bm, 1u << 1 | 1u << 2, 1u << 6);
	/* clear's alignment rules */
	assert_int_equal(hv_clear_dirty_log(x.vm, HV_SLOT(0, 0), 1, 64, clr), -EINVAL);
	assert_int_equal(hv_clear_dirty_log(x.vm, HV_SLOT(0, 0), 0, 63, clr), -EINVAL);
	assert_int_equal(hv_clear_dirty_log(x.vm, HV_SLOT(0, 0), 192, 64, clr), 0);   /* to the end */
	assert_int_equal(hv_clear_dirty_log(x.vm, HV_SLOT(0, 0), 192, 65, clr), -EINVAL);
	assert_int_equal(hv_clear_dirty_log(x.vm, HV_SLOT(0, 1), 0, 64, clr), -ENOENT);
	fx_close(&x);
}

#define MAX_HARVEST 1024

typedef struct harvest {
	hv_dirty_gfn g[MAX_HARVEST];
	unsigned n;
} harvest;

static void harvest_fn(void *opaque, const hv_dirty_gfn *g)
{
	harvest *h = opaque;

	assert_true(h->n < MAX_HARVEST);
	h->g[h->n++] = *g;
}

/* Ring rules: sizes, once, before any vCPU; a ring VM has no bitmaps. */
static void test_dirty_ring_rules(void **state)
{
	hv_arch arch = arch_of(state);
	hv_vm *vm = new_vm(arch);
	uint64_t bm[4];
	hv_vcpu *v;
	harvest *h = calloc(1, sizeof(*h));

	assert_int_equal(hv_dirty_rings_reset(vm), -EINVAL);
	assert_int_equal(hv_enable_dirty_ring(vm, 0), -EINVAL);
	assert_int_equal(hv_enable_dirty_ring(vm, 300), -EINVAL);
	assert_int_equal(hv_enable_dirty_ring(vm, 128), -EINVAL);      /* less than a page */
	assert_int_equal(hv_enable_dirty_ring(vm, 131072), -E2BIG);
	assert_int_equal(hv_enable_dirty_ring(vm, 256), 0);
	assert_int_equal(hv_enable_dirty_ring(vm, 512), -EINVAL);       /* once */
	assert_int_equal(hv_get_dirty_log(vm, HV_SLOT(0, 0), bm), -ENXIO);
	v = new_vcpu(vm, 0);
	assert_int_equal(hv_vcpu_dirty_ring_harvest(v, harvest_fn, h), 0);
	assert_int_equal(hv_dirty_rings_reset(vm), 0);
	hv_vcpu_destroy(v);
	hv_vm_destroy(vm);

	vm = new_vm(arch);
	v = new_vcpu(vm, 0);
	assert_int_equal(hv_enable_dirty_ring(vm, 256), -EINVAL);       /* a vCPU exists */
	assert_int_equal(hv_vcpu_dirty_ring_harvest(v, harvest_fn, h), -EINVAL);
	hv_vcpu_destroy(v);
	assert_int_equal(hv_enable_dirty_ring(vm, 256), -EINVAL);       /* ... ever existed */
	hv_vm_destroy(vm);
	free(h);
}

/*
 * Ring entries in write order; the ring fills, exits, is harvested and
 * reset, and the program goes on. On both architectures, as in KVM, the
 * write whose fault pushed the entry that made the ring soft-full has not
 * happened yet when the vCPU exits (the ring is checked at every guest
 * entry, also the one after the fault): the reset protects its page again,
 * so its retry logs it twice.
 */
static void test_dirty_ring_full(void **state)
{
	harvest *h = calloc(1, sizeof(*h));
	unsigned pages[200], firstfull = 0, fulls = 0;
	fx x;
	hv_exit *e;

	fx_open_novcpu(&x, arch_of(state), 0);
	assert_int_equal(hv_enable_dirty_ring(x.vm, 256), 0);
	set_slot(x.vm, 0, HV_MEM_LOG_DIRTY_PAGES, RAM_GPA, RAM_SIZE, x.ram);
	fx_start(&x);
	for (unsigned i = 0; i < 200; i++)
		pages[i] = (i * 7) % 256;                /* 200 distinct pages */
	write_pages(x.s, pages, 200, 3);
	for (;;) {
		e = run(&x);
		if (e->reason == HV_EXIT_HLT)
			break;
		assert_int_equal(e->reason, HV_EXIT_DIRTY_RING_FULL);
		if (!fulls++)
			firstfull = (unsigned)hv_vcpu_dirty_ring_harvest(x.vcpu, harvest_fn, h);
		else
			hv_vcpu_dirty_ring_harvest(x.vcpu, harvest_fn, h);
		assert_true(hv_dirty_rings_reset(x.vm) > 0);
	}
	/* the soft limit: 256 entries less KVM_DIRTY_RING_RSVD_ENTRIES (64) */
	assert_int_equal(fulls, 1);
	assert_int_equal(firstfull, 192);
	hv_vcpu_dirty_ring_harvest(x.vcpu, harvest_fn, h);
	/* page 191 twice: before the exit and when its write is retried */
	assert_int_equal(h->n, 201);
	for (unsigned i = 0; i < h->n; i++) {
		unsigned want = pages[i < 192 ? i : i - 1];

		assert_int_equal(h->g[i].slot, HV_SLOT(0, 0));
		assert_int_equal(h->g[i].offset, want);
		assert_int_equal(le(x.ram + want * PG + 8, 8), 3);
	}
	assert_int_equal(hv_dirty_rings_reset(x.vm), 9);
	assert_int_equal(hv_dirty_rings_reset(x.vm), 0);
	fx_close(&x);
	free(h);
}

/* ------------------------------------------------------------------ */
/* Kicks and destroy                                                    */

/* A kick during a run ends it before the next access; the next run resumes there. */
static void test_kick_self(void **state)
{
	fx x;

	fx_open(&x, arch_of(state), 0);
	for (unsigned i = 0; i < 100; i++) {
		if (i == 50)
			add(x.s, S_KICK, 0, 0, 0);
		add(x.s, S_WRITE, RAM_GPA + 8 * i, 8, i + 1);
	}
	run_expect(&x, HV_EXIT_INTR);
	assert_int_equal(x.s->done, 51);
	assert_int_equal(le(x.ram + 8 * 49, 8), 50);
	assert_int_equal(le(x.ram + 8 * 50, 8), 0);
	run_expect(&x, HV_EXIT_HLT);
	assert_int_equal(x.s->done, 101);
	assert_int_equal(le(x.ram + 8 * 99, 8), 100);
	fx_close(&x);
}

/* A kick before a run: that run returns at once, without starting the program. */
static void test_kick_before_run(void **state)
{
	fx x;

	fx_open(&x, arch_of(state), 0);
	add(x.s, S_WRITE, RAM_GPA, 8, 5);
	hv_vcpu_kick(x.vcpu);
	hv_vcpu_kick(x.vcpu);   /* kicks do not queue */
	run_expect(&x, HV_EXIT_INTR);
	assert_int_equal(x.s->done, 0);
	assert_int_equal(le(x.ram, 8), 0);
	run_expect(&x, HV_EXIT_HLT);
	assert_int_equal(le(x.ram, 8), 5);
	fx_close(&x);
}

typedef struct kicker {
	hv_vcpu *vcpu;
	volatile uint64_t *flag;   /* guest RAM the program polls */
} kicker;

static void *kick_thread(void *arg)
{
	kicker *k = arg;

	hv_vcpu_kick(k->vcpu);
	__atomic_store_n(k->flag, 1, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * A long program, polling RAM until another thread writes it, is kicked from
 * that thread: the kick comes before the write, so it is seen at the latest
 * by the access after the one that sees the write.
 */
static int poll_program(hv_soft_cpu *cpu, void *arg)
{
	uint64_t *polls = arg, v = 0;
	int r;

	do {
		r = hv_soft_read(cpu, RAM_GPA, 8, &v);
		(*polls)++;
	} while (r == 0 && v == 0);
	return r ? r : hv_soft_write(cpu, RAM_GPA + 8, 8, *polls);
}

static void test_kick_other_thread(void **state)
{
	uint64_t polls = 0, after;
	pthread_t t;
	kicker k;
	fx x;
	int ret = -1;

	fx_open_novcpu(&x, arch_of(state), 0);
	x.vcpu = new_vcpu(x.vm, 0);
	assert_int_equal(hv_soft_vcpu_set_program(x.vcpu, poll_program, &polls), 0);
	k.vcpu = x.vcpu;
	k.flag = (volatile uint64_t *)x.ram;
	assert_int_equal(pthread_create(&t, NULL, kick_thread, &k), 0);
	run_expect(&x, HV_EXIT_INTR);
	pthread_join(t, NULL);
	after = polls;
	run_expect(&x, HV_EXIT_HLT);
	assert_true(hv_soft_vcpu_program_done(x.vcpu, &ret));
	assert_int_equal(ret, 0);
	assert_true(polls >= after);
	assert_int_equal(le(x.ram + 8, 8), polls);
	fx_close(&x);
}

/* A read completed after a kick in between: the data set before the INTR run is used. */
static void test_kick_pending_read(void **state)
{
	fx x;
	hv_exit *e;

	fx_open(&x, arch_of(state), 0);
	add(x.s, S_READ, MMIO_GPA, 4, 0);
	e = run(&x);
	assert_int_equal(e->reason, HV_EXIT_MMIO);
	put_le(e->mmio.data, 4, 0xcafe);
	hv_vcpu_kick(x.vcpu);
	e = run(&x);
	assert_int_equal(e->reason, HV_EXIT_INTR);
	assert_int_equal(x.s->done, 0);
	run_expect(&x, HV_EXIT_HLT);
	assert_int_equal(x.s->got[0], 0xcafe);
	fx_close(&x);
}

/* Destroying a vCPU whose program waits in an MMIO read: the read gets -ECANCELED. */
static void test_destroy_suspended(void **state)
{
	fx x;

	fx_open(&x, arch_of(state), 0);
	add(x.s, S_WRITE, RAM_GPA, 8, 1);
	add(x.s, S_READ, MMIO_GPA, 8, 0);
	add(x.s, S_WRITE, RAM_GPA, 8, 2);
	run_expect(&x, HV_EXIT_MMIO);
	hv_vcpu_destroy(x.vcpu);
	assert_int_equal(x.s->done, 2);
	assert_int_equal(x.s->rc[1], -ECANCELED);
	assert_int_equal(le(x.ram, 8), 1);
	x.vcpu = NULL;
	fx_close(&x);
}

/* A program that ignores the cancel gets -ECANCELED from every later access too. */
static int stubborn_program(hv_soft_cpu *cpu, void *arg)
{
	int *rcs = arg;

	for (unsigned i = 0; i < 3; i++)
		rcs[i] = hv_soft_write(cpu, MMIO_GPA, 4, i);
	return 0;
}

static void test_destroy_stubborn(void **state)
{
	int rcs[3] = { 1, 1, 1 };
	hv_vm *vm = new_vm(arch_of(state));
	hv_vcpu *v = new_vcpu(vm, 0), *w = new_vcpu(vm, 1);
	hv_exit *e;

	assert_int_equal(hv_soft_vcpu_set_program(v, stubborn_program, rcs), 0);
	assert_int_equal(hv_soft_vcpu_set_program(w, stubborn_program, rcs), 0);
	assert_int_equal(hv_vcpu_run(v, &e), 0);
	assert_int_equal(e->reason, HV_EXIT_MMIO);
	assert_int_equal(hv_soft_vcpu_set_program(v, stubborn_program, rcs), -EINVAL);
	hv_vcpu_destroy(v);
	assert_int_equal(rcs[0], -ECANCELED);
	assert_int_equal(rcs[1], -ECANCELED);
	assert_int_equal(rcs[2], -ECANCELED);
	hv_vcpu_destroy(w);     /* never ran: nothing to cancel */
	hv_vm_destroy(vm);
}

/* KVM_CREATE_VCPU's errors; a destroyed vCPU's id stays taken. */
static void test_vcpu_errors(void **state)
{
	hv_vm *vm = new_vm(arch_of(state));
	mv_error err = { 0 };
	hv_vcpu *v = new_vcpu(vm, 0), *w;

	assert_int_equal(hv_vcpu_create(vm, 0, &w, &err), -EEXIST);
	assert_int_equal(hv_vcpu_create(vm, 64, &w, &err), -EINVAL);
	assert_int_equal(hv_soft_vcpu_set_program(v, NULL, NULL), -EINVAL);
	hv_vcpu_destroy(v);
	assert_int_equal(hv_vcpu_create(vm, 0, &w, &err), -EEXIST);
	hv_vm_destroy(vm);
}

/* Every allocation failing in turn: -ENOMEM with a sentence, nothing half-built left. */
static void test_alloc_failures(void **state)
{
	hv_arch arch = arch_of(state);
	int efd = eventfd(0, EFD_CLOEXEC);
	hv_ioeventfd io = { .bus = HV_BUS_MMIO, .addr = MMIO_GPA, .len = 4, .fd = efd };
	tu_failing_alloc fa;
	unsigned long at, vm_allocs;
	hv_vcpu *v = NULL;
	hv_vm *vm = NULL;

	for (at = 1;; at++) {
		hv_vm_config cfg = { .arch = arch, .alloc = &fa.alloc };
		mv_error err = { 0 };
		int r;

		tu_failing_alloc_init(&fa, at, true);
		r = hv_vm_create("soft", &cfg, &vm, &err);
		if (r == 0)
			break;
		assert_int_equal(r, -ENOMEM);
		assert_int_equal(err.code, -ENOMEM);
		assert_true(err.msg[0] != 0);
	}
	vm_allocs = at - 1;
	assert_true(vm_allocs > 1);
	/* from now on, the k-th allocation after this point fails */
	for (at = 1;; at++) {
		mv_error err = { 0 };
		int r;

		fa.fail_at = fa.calls + at;
		r = hv_vcpu_create(vm, 0, &v, &err);
		if (r == 0)
			break;
		assert_int_equal(r, -ENOMEM);
		assert_true(err.msg[0] != 0);
	}
	fa.fail_at = fa.calls + 1;
	assert_int_equal(hv_coalesced_zone_add(vm, HV_BUS_MMIO, MMIO_GPA, 0x1000), -ENOMEM);
	assert_int_equal(hv_ioeventfd_add(vm, &io), -ENOMEM);
	fa.fail_at = 0;
	assert_int_equal(hv_coalesced_zone_add(vm, HV_BUS_MMIO, MMIO_GPA, 0x1000), 0);
	assert_int_equal(hv_ioeventfd_add(vm, &io), 0);
	printf("# %s: %lu allocations to create a VM, %lu more for a vCPU\n",
	       arch == HV_ARCH_X86_64 ? "x86" : "arm64", vm_allocs, at - 1);
	hv_vcpu_destroy(v);
	hv_vm_destroy(vm);
	close(efd);
}

/* ------------------------------------------------------------------ */
/* The accelerator memory listener on a soft VM                          */

typedef struct machine_case {
	const char *type;
	hv_arch arch;
	uint64_t ram_gpa;          /* where the main RAM block starts */
} machine_case;

static const machine_case pc_case = { "pc", HV_ARCH_X86_64, 0 };
static const machine_case microvm_case = { "microvm", HV_ARCH_X86_64, 0 };
static const machine_case virt_case = { "virt-arm64", HV_ARCH_ARM64, 0x40000000 };

/*
 * hv_mem maps the machine's RAM and ROM into a soft VM: every section gets
 * a slot, a program's writes reach the RAM block, dirty logging through the
 * listener copies the program's dirty pages into the block's bitmap, in
 * bitmap and ring mode.
 */
static void check_machine(const machine_case *mc, hv_mem_dirty_mode mode)
{
	hv_mem_dirty_config dc = { .mode = mode, .ring_entries = 256 };
	mv_machine_opts opts = { .ram_size = 64ull << 20 };
	mv_error err = { 0 };
	unsigned long bm[(64 << 20) / PG / 64];
	mv_memory *mem;
	mv_machine *m;
	mv_flatview *fv;
	mv_ramblock *rb;
	script *s = calloc(1, sizeof(*s));
	hv_vcpu *v;
	hv_mem *hm;
	hv_vm *vm = new_vm(mc->arch);
	hv_exit *e;

	assert_int_equal(mv_memory_new(NULL, &mem), 0);
	if (mv_machine_new(mem, mc->type, &opts, &m, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(hv_mem_new(vm, mem, &hm, &err), 0);
	assert_int_equal(hv_mem_set_dirty_mode(hm, &dc, &err), 0);
	assert_int_equal(hv_mem_attach(hm, mv_machine_memory_as(m), 0, &err), 0);
	if (hv_mem_error(hm))
		fail_msg("%s", hv_mem_error(hm));
	fv = mv_address_space_get_flatview(mv_machine_memory_as(m));
	assert_int_equal(hv_mem_stats(hm)->slots_in_use, cu_mappable_sections(fv));
	mv_flatview_unref(fv);

	v = new_vcpu(vm, 0);
	assert_int_equal(hv_mem_add_vcpu(hm, v), 0);
	s->vcpu = v;
	assert_int_equal(hv_soft_vcpu_set_program(v, script_program, s), 0);
	rb = mv_machine_ram_block(m);
	mv_memory_global_dirty_log_start(mem);
	/* MANUAL with INIT_SET starts all dirty: a first sync takes that away */
	mv_memory_global_dirty_log_sync(mem);
	mv_ramblock_take_dirty(rb, 0, mv_ramblock_used_length(rb), bm);
	add(s, S_WRITE, mc->ram_gpa + 0x5000, 8, 0x1234);
	add(s, S_WRITE, mc->ram_gpa + 0x300000, 4, 0x99);
	add(s, S_READ, mc->ram_gpa + 0x5000, 8, 0);
	assert_int_equal(hv_vcpu_run(v, &e), 0);
	assert_int_equal(e->reason, HV_EXIT_HLT);
	assert_int_equal(s->got[2], 0x1234);
	assert_int_equal(le((uint8_t *)mv_ramblock_host(rb) + 0x5000, 8), 0x1234);
	assert_int_equal(le((uint8_t *)mv_ramblock_host(rb) + 0x300000, 4), 0x99);
	mv_memory_global_dirty_log_sync(mem);
	assert_true(mv_ramblock_test_dirty(rb, 0x5000));
	assert_true(mv_ramblock_test_dirty(rb, 0x300000));
	assert_false(mv_ramblock_test_dirty(rb, 0x6000));
	mv_memory_global_dirty_log_stop(mem);
	if (hv_mem_error(hm))
		fail_msg("%s", hv_mem_error(hm));

	assert_int_equal(hv_mem_del_vcpu(hm, v), 0);
	hv_vcpu_destroy(v);
	hv_mem_free(hm);
	mv_machine_free(m);
	hv_vm_destroy(vm);
	mv_memory_free(mem);
	free(s);
}

static void test_hv_mem_machine(void **state)
{
	const machine_case *mc = *state;

	check_machine(mc, HV_MEM_DIRTY_BITMAP);
	check_machine(mc, HV_MEM_DIRTY_MANUAL);
	check_machine(mc, HV_MEM_DIRTY_RING);
}

#define BOTH(fn) cmocka_unit_test_prestate(fn, (void *)&x86), \
		 cmocka_unit_test_prestate(fn, (void *)&arm64)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_registry_and_caps),
		BOTH(test_no_program),
		BOTH(test_ram_program),
		BOTH(test_mmio_exits),
		BOTH(test_pio),
		cmocka_unit_test(test_guest_fault_arm64),
		BOTH(test_coalesced_mmio),
		BOTH(test_coalesced_ring_full),
		cmocka_unit_test(test_coalesced_pio),
		BOTH(test_ioeventfd),
		cmocka_unit_test(test_ioeventfd_pio),
		BOTH(test_dirty_bitmap),
		BOTH(test_dirty_manual),
		BOTH(test_dirty_ring_rules),
		BOTH(test_dirty_ring_full),
		BOTH(test_kick_self),
		BOTH(test_kick_before_run),
		BOTH(test_kick_other_thread),
		BOTH(test_kick_pending_read),
		BOTH(test_destroy_suspended),
		BOTH(test_destroy_stubborn),
		BOTH(test_vcpu_errors),
		BOTH(test_alloc_failures),
		cmocka_unit_test_prestate(test_hv_mem_machine, (void *)&pc_case),
		cmocka_unit_test_prestate(test_hv_mem_machine, (void *)&microvm_case),
		cmocka_unit_test_prestate(test_hv_mem_machine, (void *)&virt_case),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
