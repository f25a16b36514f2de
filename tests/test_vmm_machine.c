/*
 * The x86 machine (src/vmm/machine_x86.c) and its devices: the FlatViews
 * of the layout for several RAM sizes, then every device through
 * mv_as_read/mv_as_write on the memory and I/O address spaces, with fake
 * hooks that record what the devices report to the VMM.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "memvirt/testdev_abi.h"
#include "vmm/machine_x86.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

/* ------------------------------------------------------------------ */
/* Fake hooks                                                           */

/* The vCPU a test thread plays (the VMM keeps the same per thread). */
static _Thread_local unsigned fake_vcpu;

typedef struct fake {
	pthread_mutex_t lock;
	char out[8192];
	size_t nout;
	char out_src[8192];     /* 'd' debugcon, 'c' com1, per byte */
	int exit_status, nr_exits;
	unsigned ws_vcpu;
	uint64_t ws_gpa, ws_pages;
	int nr_ws;
	unsigned re_vcpu;
	uint32_t re_round;
	uint64_t re_gfns[64];
	size_t re_n;
	int nr_round_ends;
	uint64_t re_return;     /* what round_end answers */
	unsigned res_vcpu;
	uint64_t res_value;
	int nr_results;
} fake;

static void f_console(void *o, const char *src, uint8_t b)
{
	fake *f = o;

	pthread_mutex_lock(&f->lock);
	if (f->nout < sizeof(f->out) - 1) {
		f->out_src[f->nout] = !strcmp(src, "debugcon") ? 'd' : !strcmp(src, "com1") ? 'c' : '?';
		f->out[f->nout++] = (char)b;
	}
	pthread_mutex_unlock(&f->lock);
}

static void f_exit(void *o, int status)
{
	fake *f = o;

	f->exit_status = status;
	f->nr_exits++;
}

static unsigned f_current(void *o)
{
	(void)o;
	return fake_vcpu;
}

static void f_ws(void *o, unsigned vcpu, uint64_t gpa, uint64_t pages)
{
	fake *f = o;

	f->ws_vcpu = vcpu;
	f->ws_gpa = gpa;
	f->ws_pages = pages;
	f->nr_ws++;
}

static uint64_t f_round_end(void *o, unsigned vcpu, uint32_t round, const uint64_t *gfns, size_t n)
{
	fake *f = o;

	f->re_vcpu = vcpu;
	f->re_round = round;
	f->re_n = n;
	memcpy(f->re_gfns, gfns, (n < 64 ? n : 64) * sizeof(*gfns));
	f->nr_round_ends++;
	return f->re_return;
}

static void f_result(void *o, unsigned vcpu, uint64_t value)
{
	fake *f = o;

	f->res_vcpu = vcpu;
	f->res_value = value;
	f->nr_results++;
}

/* ------------------------------------------------------------------ */
/* Fixture and helpers                                                  */

typedef struct env {
	fake f;
	mv_memory *mem;
	vmm_x86_machine *m;
	mv_address_space *mas, *ioas;
} env;

static env *env_new(uint64_t ram, unsigned vcpus)
{
	env *e = calloc(1, sizeof(*e));
	vmm_hooks h;
	mv_error err = { 0 };

	pthread_mutex_init(&e->f.lock, NULL);
	h = (vmm_hooks){ .opaque = &e->f, .console_out = f_console, .guest_exit = f_exit,
			 .current_vcpu = f_current, .ws_register = f_ws,
			 .round_end = f_round_end, .result = f_result };
	assert_int_equal(mv_memory_new(NULL, &e->mem), 0);
	if (vmm_x86_machine_new(e->mem, ram, vcpus, &h, &e->m, &err))
		fail_msg("machine: %s", err.msg);
	e->mas = vmm_x86_memory_as(e->m);
	e->ioas = vmm_x86_io_as(e->m);
	fake_vcpu = 0;
	return e;
}

static void env_free(env *e)
{
	vmm_x86_machine_free(e->m);
	mv_memory_free(e->mem);
	pthread_mutex_destroy(&e->f.lock);
	free(e);
}

static int setup(void **state)
{
	*state = env_new(64 * MiB, 4);
	return 0;
}

static int teardown(void **state)
{
	env_free(*state);
	return 0;
}

/* "start-last name[@off] ro" per range. */
static void flat(mv_address_space *as, char *buf, size_t len)
{
	mv_flatview *fv = mv_address_space_get_flatview(as);
	size_t used = 0;
	uint64_t prev_end = 0;

	buf[0] = 0;
	for (size_t i = 0; i < mv_flatview_nr_ranges(fv); i++) {
		const mv_flat_range *fr = mv_flatview_range(fv, i);

		/* sorted and disjoint */
		assert_true(i == 0 || fr->start >= prev_end);
		prev_end = fr->start + (uint64_t)fr->size;
		used += snprintf(buf + used, len - used, "%" PRIx64 "-%" PRIx64 " %s",
				 fr->start, fr->start + (uint64_t)(fr->size - 1), mv_region_name(fr->mr));
		if (fr->offset_in_region)
			used += snprintf(buf + used, len - used, "@%" PRIx64, fr->offset_in_region);
		used += snprintf(buf + used, len - used, "%s\n", fr->readonly ? " ro" : "");
	}
	mv_flatview_unref(fv);
}

static uint64_t rd(mv_address_space *as, uint64_t addr, unsigned size, mv_memtx *res)
{
	uint8_t b[8] = { 0 };
	uint64_t v = 0;
	mv_memtx r = mv_as_read(as, addr, b, size);

	for (unsigned i = 0; i < size; i++)
		v |= (uint64_t)b[i] << (8 * i);
	if (res)
		*res = r;
	else
		assert_int_equal(r, MV_MEMTX_OK);
	return v;
}

static mv_memtx wr(mv_address_space *as, uint64_t addr, uint64_t v, unsigned size)
{
	uint8_t b[8];

	for (unsigned i = 0; i < size; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	return mv_as_write(as, addr, b, size);
}

static uint64_t reg(env *e, uint64_t off)
{
	return rd(e->mas, MVT_MMIO_BASE + off, 8, NULL);
}

static void set_reg(env *e, uint64_t off, uint64_t v)
{
	assert_int_equal(wr(e->mas, MVT_MMIO_BASE + off, v, 8), MV_MEMTX_OK);
}

/* ------------------------------------------------------------------ */
/* Layout                                                               */

static void check_layout(uint64_t ram, const char *want)
{
	env *e = env_new(ram, 1);
	char buf[2048];
	uint64_t r[2][2];
	size_t n = vmm_x86_ram_ranges(e->m, r, 2);

	flat(e->mas, buf, sizeof(buf));
	assert_string_equal(buf, want);
	assert_int_equal(vmm_x86_ram_size(e->m), ram);
	assert_int_equal(mv_ramblock_used_length(vmm_x86_ram(e->m)), ram);
	assert_string_equal(mv_ramblock_name(vmm_x86_ram(e->m)), "guest.ram");
	assert_int_equal(n, ram > 3 * GiB ? 2 : 1);
	assert_int_equal(r[0][0], 0);
	assert_int_equal(r[0][1], ram > 3 * GiB ? 3 * GiB : ram);
	if (n == 2) {
		assert_int_equal(r[1][0], 4 * GiB);
		assert_int_equal(r[1][1], ram - 3 * GiB);
	}
	env_free(e);
}

static void test_layout_small(void **state)
{
	(void)state;
	check_layout(64 * MiB,
		     "0-3ffffff guest.ram\n"
		     "fe000000-fe001fff memvirt-testdev\n"
		     "ffff0000-ffffffff memvirt.rom ro\n");
}

static void test_layout_4g(void **state)
{
	(void)state;
	check_layout(4 * GiB,
		     "0-bfffffff guest.ram\n"
		     "fe000000-fe001fff memvirt-testdev\n"
		     "ffff0000-ffffffff memvirt.rom ro\n"
		     "100000000-13fffffff guest.ram@c0000000\n");
}

static void test_layout_5g(void **state)
{
	(void)state;
	check_layout(5 * GiB,
		     "0-bfffffff guest.ram\n"
		     "fe000000-fe001fff memvirt-testdev\n"
		     "ffff0000-ffffffff memvirt.rom ro\n"
		     "100000000-17fffffff guest.ram@c0000000\n");
}

/* The region tree: aliases and the window as the interface names them. */
static void test_tree(void **state)
{
	env *e = *state;
	mv_region *sys = mv_address_space_root(e->mas), *win = NULL;
	bool below = false;

	for (size_t i = 0; i < mv_region_nr_subregions(sys); i++) {
		mv_region *c = mv_region_subregion(sys, i);

		if (!strcmp(mv_region_name(c), "mmio-window"))
			win = c;
		if (!strcmp(mv_region_name(c), "ram-below-4g")) {
			below = true;
			assert_int_equal(mv_region_get_kind(c), MV_REGION_ALIAS);
		}
		/* 64 MiB: nothing above 4 GiB */
		assert_string_not_equal(mv_region_name(c), "ram-above-4g");
	}
	assert_true(below);
	assert_non_null(win);
	assert_int_equal(mv_region_addr(win), MVT_MMIO_WINDOW_BASE);
	assert_true(mv_region_size(win) == MVT_MMIO_WINDOW_END - MVT_MMIO_WINDOW_BASE);
	assert_int_equal(mv_region_nr_subregions(win), 1);
	assert_int_equal(mv_region_addr(mv_region_subregion(win, 0)), MVT_MMIO_BASE - MVT_MMIO_WINDOW_BASE);
	assert_int_equal(mv_region_get_kind(mv_region_subregion(win, 0)), MV_REGION_IO);
}

static void test_io_layout(void **state)
{
	env *e = *state;
	char buf[2048];

	flat(e->ioas, buf, sizeof(buf));
	assert_string_equal(buf,
			    "0-e8 io\n"
			    "e9-e9 debugcon\n"
			    "ea-f3 io@ea\n"
			    "f4-f7 isa-debug-exit\n"
			    "f8-3f7 io@f8\n"
			    "3f8-3ff serial\n"
			    "400-59f io@400\n"
			    "5a0-5a7 memvirt-testdev-pio\n"
			    "5a8-ffff io@5a8\n");
	/* ports nobody decodes: all ones, no bus error (an ISA bus) */
	assert_int_equal(rd(e->ioas, 0x80, 1, NULL), 0xff);
}

static void test_bad_config(void **state)
{
	mv_memory *mem;
	vmm_x86_machine *m = NULL;
	mv_error err = { 0 };

	(void)state;
	assert_int_equal(mv_memory_new(NULL, &mem), 0);
	assert_int_equal(vmm_x86_machine_new(mem, 8 * MiB, 1, NULL, &m, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "--mem: guest RAM of 0x800000 bytes"));
	assert_int_equal(vmm_x86_machine_new(mem, 17 * MiB, 1, NULL, &m, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "multiple of 2 MiB"));
	assert_int_equal(vmm_x86_machine_new(mem, 1ULL << 53, 1, NULL, &m, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "52-bit"));
	assert_int_equal(vmm_x86_machine_new(mem, 64 * MiB, 0, NULL, &m, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "--smp: 0 vCPUs"));
	assert_int_equal(vmm_x86_machine_new(mem, 64 * MiB, 257, NULL, &m, &err), -EINVAL);
	assert_null(m);
	/* nothing was left behind: a good machine still builds in the same memory */
	assert_int_equal(vmm_x86_machine_new(mem, 64 * MiB, 1, NULL, &m, &err), 0);
	/* and with no hooks, the devices do nothing harmful */
	assert_int_equal(wr(vmm_x86_io_as(m), MVT_DEBUGCON_PORT, 'x', 1), MV_MEMTX_OK);
	assert_int_equal(wr(vmm_x86_io_as(m), MVT_DEBUG_EXIT_PORT, 1, 1), MV_MEMTX_OK);
	assert_int_equal(wr(vmm_x86_memory_as(m), MVT_MMIO_BASE + MVT_REG_ROUND_END, 0, 8), MV_MEMTX_OK);
	vmm_x86_machine_free(m);
	mv_memory_free(mem);
}

/* ------------------------------------------------------------------ */
/* RAM and ROM                                                          */

static void test_ram_high_alias(void **state)
{
	env *e = env_new(4 * GiB, 1);
	uint8_t *host = mv_ramblock_host(vmm_x86_ram(e->m));

	(void)state;
	assert_int_equal(wr(e->mas, 0x1000, 0x1122334455667788ULL, 8), MV_MEMTX_OK);
	assert_int_equal(host[0x1000], 0x88);
	assert_int_equal(wr(e->mas, 4 * GiB + 0x10, 0xab, 1), MV_MEMTX_OK);
	assert_int_equal(host[3 * GiB + 0x10], 0xab);
	assert_true(mv_ramblock_test_dirty(vmm_x86_ram(e->m), 3 * GiB));
	/* the hole between RAM and the window, and above RAM: unassigned */
	mv_memtx r;

	assert_int_equal(rd(e->mas, 5 * GiB, 4, &r), 0xffffffff);
	assert_int_equal(r, MV_MEMTX_DECODE_ERROR);
	assert_int_equal(rd(e->mas, MVT_MMIO_WINDOW_BASE, 4, &r), 0xffffffff);
	assert_int_equal(r, MV_MEMTX_DECODE_ERROR);
	env_free(e);
}

static void test_rom(void **state)
{
	env *e = *state;
	uint8_t buf[256];
	mv_memtx r;

	assert_int_equal(rd(e->mas, MVT_ROM_BASE, 8, NULL), MVT_ROM_MAGIC);
	assert_int_equal(mv_as_read(e->mas, MVT_ROM_BASE + 0x1200, buf, sizeof(buf)), MV_MEMTX_OK);
	for (unsigned i = 0; i < sizeof(buf); i++)
		assert_int_equal(buf[i], vmm_x86_rom_byte(0x1200 + i));
	assert_int_equal(vmm_x86_rom_byte(8), (uint8_t)(0 ^ 8 ^ 0x5a));
	assert_int_equal(vmm_x86_rom_byte(0x1234), (uint8_t)(0x12 ^ 0x34 ^ 0x5a));
	/* writes are dropped */
	assert_int_equal(wr(e->mas, MVT_ROM_BASE, 0, 8), MV_MEMTX_DECODE_ERROR);
	assert_int_equal(wr(e->mas, MVT_ROM_BASE + MVT_ROM_SIZE - 1, 0, 1), MV_MEMTX_DECODE_ERROR);
	assert_int_equal(rd(e->mas, MVT_ROM_BASE, 8, NULL), MVT_ROM_MAGIC);
	assert_int_equal(rd(e->mas, MVT_ROM_BASE + MVT_ROM_SIZE - 1, 1, &r),
			 vmm_x86_rom_byte(MVT_ROM_SIZE - 1));
}

/* ------------------------------------------------------------------ */
/* Port devices                                                         */

static void test_debugcon(void **state)
{
	env *e = *state;

	assert_int_equal(wr(e->ioas, MVT_DEBUGCON_PORT, 'h', 1), MV_MEMTX_OK);
	assert_int_equal(wr(e->ioas, MVT_DEBUGCON_PORT, 'i', 1), MV_MEMTX_OK);
	assert_int_equal(e->f.nout, 2);
	assert_memory_equal(e->f.out, "hi", 2);
	assert_memory_equal(e->f.out_src, "dd", 2);
	assert_int_equal(rd(e->ioas, MVT_DEBUGCON_PORT, 1, NULL), 0xe9);
}

static void test_debug_exit(void **state)
{
	env *e = *state;

	assert_int_equal(wr(e->ioas, MVT_DEBUG_EXIT_PORT, 0x10, 1), MV_MEMTX_OK);
	assert_int_equal(e->f.exit_status, 0x21);
	assert_int_equal(wr(e->ioas, MVT_DEBUG_EXIT_PORT, 0x1234, 2), MV_MEMTX_OK);
	assert_int_equal(e->f.exit_status, 0x2469);
	assert_int_equal(wr(e->ioas, MVT_DEBUG_EXIT_PORT, 0x01020304, 4), MV_MEMTX_OK);
	assert_int_equal(e->f.exit_status, 0x02040609);
	/* any port of the four, any size: one guest_exit with the value written */
	assert_int_equal(wr(e->ioas, MVT_DEBUG_EXIT_PORT + 2, 0, 2), MV_MEMTX_OK);
	assert_int_equal(e->f.exit_status, 1);
	assert_int_equal(wr(e->ioas, MVT_DEBUG_EXIT_PORT + 3, 3, 1), MV_MEMTX_OK);
	assert_int_equal(e->f.exit_status, 7);
	assert_int_equal(e->f.nr_exits, 5);
	assert_int_equal(rd(e->ioas, MVT_DEBUG_EXIT_PORT, 4, NULL), 0);
}

static void test_uart(void **state)
{
	env *e = *state;
	const uint64_t p = MVT_COM1_PORT;
	mv_memtx r;

	assert_int_equal(rd(e->ioas, p + 5, 1, NULL), 0x60);       /* LSR: THRE|TEMT, DR clear */
	assert_int_equal(rd(e->ioas, p + 0, 1, NULL), 0);          /* RBR: nothing received */
	assert_int_equal(wr(e->ioas, p + 0, 'O', 1), MV_MEMTX_OK);
	assert_int_equal(wr(e->ioas, p + 0, 'K', 1), MV_MEMTX_OK);
	assert_int_equal(e->f.nout, 2);
	assert_memory_equal(e->f.out, "OK", 2);
	assert_memory_equal(e->f.out_src, "cc", 2);
	/* divisor latch: DLAB=1 turns ports 0/1 into DLL/DLM, no output */
	assert_int_equal(wr(e->ioas, p + 3, 0x83, 1), MV_MEMTX_OK);
	assert_int_equal(wr(e->ioas, p + 0, 0x01, 1), MV_MEMTX_OK);
	assert_int_equal(wr(e->ioas, p + 1, 0x02, 1), MV_MEMTX_OK);
	assert_int_equal(rd(e->ioas, p + 0, 1, NULL), 0x01);
	assert_int_equal(rd(e->ioas, p + 1, 1, NULL), 0x02);
	assert_int_equal(e->f.nout, 2);
	assert_int_equal(wr(e->ioas, p + 3, 0x03, 1), MV_MEMTX_OK);
	assert_int_equal(rd(e->ioas, p + 3, 1, NULL), 0x03);       /* LCR kept */
	assert_int_equal(wr(e->ioas, p + 1, 0x05, 1), MV_MEMTX_OK);
	assert_int_equal(rd(e->ioas, p + 1, 1, NULL), 0x05);       /* IER */
	assert_int_equal(wr(e->ioas, p + 4, 0x0b, 1), MV_MEMTX_OK);
	assert_int_equal(rd(e->ioas, p + 4, 1, NULL), 0x0b);       /* MCR */
	assert_int_equal(wr(e->ioas, p + 7, 0x5a, 1), MV_MEMTX_OK);
	assert_int_equal(rd(e->ioas, p + 7, 1, NULL), 0x5a);       /* SCR */
	assert_int_equal(rd(e->ioas, p + 2, 1, NULL), 0x01);       /* IIR: no interrupt */
	/* LSR is read-only */
	assert_int_equal(wr(e->ioas, p + 5, 0, 1), MV_MEMTX_OK);
	assert_int_equal(rd(e->ioas, p + 5, 1, NULL), 0x60);
	/* registers are bytes: the core splits a 2-byte IN into RBR, IER */
	assert_int_equal(rd(e->ioas, p + 0, 2, &r), 0x0500);
	assert_int_equal(r, MV_MEMTX_OK);
	/* loopback: THR goes nowhere, MSR mirrors MCR */
	assert_int_equal(wr(e->ioas, p + 4, 0x10 | 0x03, 1), MV_MEMTX_OK);
	assert_int_equal(wr(e->ioas, p + 0, 'x', 1), MV_MEMTX_OK);
	assert_int_equal(e->f.nout, 2);
	assert_int_equal(rd(e->ioas, p + 6, 1, NULL), 0x30);
}

/* ------------------------------------------------------------------ */
/* Test device: MMIO                                                    */

static void test_testdev_ids(void **state)
{
	env *e = *state;
	mv_memtx r;

	assert_int_equal(reg(e, MVT_REG_MAGIC), MVT_MAGIC);
	assert_int_equal(reg(e, MVT_REG_VERSION), MVT_VERSION);
	assert_int_equal(reg(e, MVT_REG_NR_VCPUS), 4);
	assert_int_equal(reg(e, MVT_REG_RAM_SIZE), 64 * MiB);
	/* 4-byte halves */
	assert_int_equal(rd(e->mas, MVT_MMIO_BASE + MVT_REG_RAM_SIZE, 4, NULL), 64 * MiB);
	assert_int_equal(rd(e->mas, MVT_MMIO_BASE + MVT_REG_RAM_SIZE + 4, 4, NULL), 0);
	/* read-only: writes ignored */
	set_reg(e, MVT_REG_MAGIC, 0);
	assert_int_equal(reg(e, MVT_REG_MAGIC), MVT_MAGIC);
	/* 1- and 2-byte accesses and misaligned ones never reach the device */
	assert_int_equal(rd(e->mas, MVT_MMIO_BASE + MVT_REG_MAGIC, 1, &r), 0xff);
	assert_int_equal(r, MV_MEMTX_DECODE_ERROR);
	assert_int_equal(rd(e->mas, MVT_MMIO_BASE + MVT_REG_MAGIC, 2, &r), 0xffff);
	assert_int_equal(r, MV_MEMTX_DECODE_ERROR);
	assert_int_equal(rd(e->mas, MVT_MMIO_BASE + 2, 4, &r), 0xffffffff);
	assert_int_equal(r, MV_MEMTX_DECODE_ERROR);
	/* unassigned offsets inside the device read 0 */
	assert_int_equal(reg(e, 0x800), 0);
	assert_int_equal(reg(e, MVT_REG_WS_BASE), 0);  /* write-only */
}

static void test_testdev_scratch(void **state)
{
	env *e = *state;

	assert_int_equal(reg(e, MVT_REG_SCRATCH_OPS), 0);
	set_reg(e, MVT_REG_SCRATCH, 0xdeadbeefcafef00dULL);
	assert_int_equal(reg(e, MVT_REG_SCRATCH), 0xdeadbeefcafef00dULL);
	assert_int_equal(reg(e, MVT_REG_SCRATCH_OPS), 2);
	/* a 32-bit store writes the zero-extended value; to the high half: ignored */
	assert_int_equal(wr(e->mas, MVT_MMIO_BASE + MVT_REG_SCRATCH, 0x12345678, 4), MV_MEMTX_OK);
	assert_int_equal(wr(e->mas, MVT_MMIO_BASE + MVT_REG_SCRATCH + 4, 0x9, 4), MV_MEMTX_OK);
	assert_int_equal(reg(e, MVT_REG_SCRATCH), 0x12345678);
	assert_int_equal(rd(e->mas, MVT_MMIO_BASE + MVT_REG_SCRATCH + 4, 4, NULL), 0);
	/* SCRATCH_OPS reads do not count themselves */
	assert_int_equal(reg(e, MVT_REG_SCRATCH_OPS), 5);
	assert_int_equal(reg(e, MVT_REG_SCRATCH_OPS), 5);
}

static void test_testdev_ws_and_result(void **state)
{
	env *e = *state;

	fake_vcpu = 2;
	set_reg(e, MVT_REG_WS_BASE, 0x200000);
	assert_int_equal(e->f.nr_ws, 0);
	fake_vcpu = 1;
	set_reg(e, MVT_REG_WS_BASE, 0x400000);
	set_reg(e, MVT_REG_WS_PAGES, 16);
	assert_int_equal(e->f.nr_ws, 1);
	assert_int_equal(e->f.ws_vcpu, 1);
	assert_int_equal(e->f.ws_gpa, 0x400000);
	assert_int_equal(e->f.ws_pages, 16);
	fake_vcpu = 2;
	set_reg(e, MVT_REG_WS_PAGES, 8);
	assert_int_equal(e->f.ws_vcpu, 2);
	assert_int_equal(e->f.ws_gpa, 0x200000);   /* per vCPU base */
	assert_int_equal(e->f.ws_pages, 8);
	/* a vCPU outside the machine is ignored */
	fake_vcpu = 9;
	set_reg(e, MVT_REG_WS_PAGES, 8);
	assert_int_equal(e->f.nr_ws, 2);
	fake_vcpu = 3;
	set_reg(e, MVT_REG_RESULT, 0xfeedULL << 40);
	assert_int_equal(e->f.nr_results, 1);
	assert_int_equal(e->f.res_vcpu, 3);
	assert_int_equal(e->f.res_value, 0xfeedULL << 40);
}

static void report(env *e, unsigned vcpu, uint64_t gfn)
{
	set_reg(e, MVT_REG_PAGE_REPORT, ((uint64_t)vcpu << 48) | gfn);
}

static void test_testdev_rounds(void **state)
{
	env *e = *state;

	/* vCPU 1 reports 5, 3, 5 (dup), 7, 3 (dup); vCPU 2 reports 4 */
	report(e, 1, 5);
	report(e, 1, 3);
	report(e, 2, 4);
	report(e, 1, 5);
	report(e, 1, 7);
	report(e, 1, 3);
	e->f.re_return = 3;
	fake_vcpu = 1;
	set_reg(e, MVT_REG_ROUND_END, (1ULL << 32) | 42);
	assert_int_equal(e->f.nr_round_ends, 1);
	assert_int_equal(e->f.re_vcpu, 1);
	assert_int_equal(e->f.re_round, 42);
	assert_int_equal(e->f.re_n, 3);
	assert_int_equal(e->f.re_gfns[0], 5);
	assert_int_equal(e->f.re_gfns[1], 3);
	assert_int_equal(e->f.re_gfns[2], 7);
	/* the mismatch count is vCPU 1's status; vCPU 2 has had no round */
	assert_int_equal(reg(e, MVT_REG_ROUND_STATUS), 3);
	fake_vcpu = 2;
	assert_int_equal(reg(e, MVT_REG_ROUND_STATUS), 0);
	/* vCPU 1's list was emptied: the next round sees only new reports, a
	 * page reported in the last round counts again */
	report(e, 1, 5);
	e->f.re_return = 0;
	set_reg(e, MVT_REG_ROUND_END, (1ULL << 32) | 43);
	assert_int_equal(e->f.re_n, 1);
	assert_int_equal(e->f.re_gfns[0], 5);
	fake_vcpu = 1;
	assert_int_equal(reg(e, MVT_REG_ROUND_STATUS), 0);
	/* vCPU 2's list was kept across vCPU 1's rounds */
	e->f.re_return = 1;
	set_reg(e, MVT_REG_ROUND_END, (2ULL << 32) | 1);
	assert_int_equal(e->f.re_vcpu, 2);
	assert_int_equal(e->f.re_n, 1);
	assert_int_equal(e->f.re_gfns[0], 4);
	fake_vcpu = 2;
	assert_int_equal(reg(e, MVT_REG_ROUND_STATUS), 1);
	/* vCPU ids outside the machine are ignored */
	report(e, 7, 1);
	set_reg(e, MVT_REG_ROUND_END, (7ULL << 32) | 1);
	assert_int_equal(e->f.nr_round_ends, 3);
}

/* Many reports: the dedupe set grows and keeps report order. */
static void test_testdev_many_reports(void **state)
{
	env *e = *state;
	enum { N = 5000 };

	for (int pass = 0; pass < 2; pass++)
		for (uint64_t g = 0; g < N; g++)
			report(e, 0, (g * 7919) % N + 0x100);
	set_reg(e, MVT_REG_ROUND_END, 0);
	assert_int_equal(e->f.re_n, N);
	for (unsigned i = 0; i < 64; i++)
		assert_int_equal(e->f.re_gfns[i], (i * 7919) % N + 0x100);
}

static void seq_write(env *e, unsigned vcpu, uint64_t n)
{
	set_reg(e, MVT_REG_SEQ, ((uint64_t)vcpu << 48) | n);
}

static void test_testdev_seq(void **state)
{
	env *e = *state;

	for (uint64_t n = 0; n < 10; n++) {
		seq_write(e, 0, n);
		seq_write(e, 3, n);
	}
	assert_int_equal(reg(e, MVT_REG_SEQ_CHECK), 0);
	assert_int_equal(reg(e, MVT_REG_SEQ_COUNT), 20);
	seq_write(e, 0, 11);    /* skipped 10 */
	assert_int_equal(reg(e, MVT_REG_SEQ_CHECK), 1);
	seq_write(e, 0, 12);    /* sticky */
	assert_int_equal(reg(e, MVT_REG_SEQ_CHECK), 1);
	assert_int_equal(reg(e, MVT_REG_SEQ_COUNT), 22);
}

static void test_testdev_seq_order(void **state)
{
	env *e = *state;

	seq_write(e, 1, 0);
	seq_write(e, 1, 2);
	seq_write(e, 1, 1);     /* out of order */
	assert_int_equal(reg(e, MVT_REG_SEQ_CHECK), 1);
	assert_int_equal(reg(e, MVT_REG_SEQ_COUNT), 3);
}

static void test_testdev_seq_repeat(void **state)
{
	env *e = *state;

	seq_write(e, 2, 0);
	seq_write(e, 2, 0);     /* repeated */
	assert_int_equal(reg(e, MVT_REG_SEQ_CHECK), 1);
}

/* ------------------------------------------------------------------ */
/* Test device: ports                                                   */

static void test_testdev_pio(void **state)
{
	env *e = *state;
	mv_memtx r;

	assert_int_equal(rd(e->ioas, MVT_PIO_OPS, 2, NULL), 0);
	assert_int_equal(wr(e->ioas, MVT_PIO_SCRATCH, 0xa5a5f00d, 4), MV_MEMTX_OK);
	assert_int_equal(rd(e->ioas, MVT_PIO_SCRATCH, 4, NULL), 0xa5a5f00d);
	/* OPS: the port accesses before this read (the first OPS read counted) */
	assert_int_equal(rd(e->ioas, MVT_PIO_OPS, 2, NULL), 3);
	/* wrong widths never reach the device: all ones */
	assert_int_equal(rd(e->ioas, MVT_PIO_SCRATCH, 1, &r), 0xff);
	assert_int_equal(r, MV_MEMTX_DECODE_ERROR);
	assert_int_equal(rd(e->ioas, MVT_PIO_FIFO, 2, &r), 0xffff);
	assert_int_equal(r, MV_MEMTX_DECODE_ERROR);
	assert_int_equal(rd(e->ioas, MVT_PIO_FIFO, 4, &r), 0xffffffff);
	assert_int_equal(r, MV_MEMTX_DECODE_ERROR);
	assert_int_equal(rd(e->ioas, MVT_PIO_OPS, 2, NULL), 4);
	/* OPS is read-only */
	assert_int_equal(wr(e->ioas, MVT_PIO_OPS, 0, 2), MV_MEMTX_OK);
	assert_int_equal(rd(e->ioas, MVT_PIO_OPS, 2, NULL), 6);
}

static void test_testdev_fifo(void **state)
{
	env *e = *state;

	assert_int_equal(rd(e->ioas, MVT_PIO_FIFO, 1, NULL), 0xff);   /* empty */
	for (int i = 0; i < 3; i++)
		assert_int_equal(wr(e->ioas, MVT_PIO_FIFO, 'a' + i, 1), MV_MEMTX_OK);
	for (int i = 0; i < 3; i++)
		assert_int_equal(rd(e->ioas, MVT_PIO_FIFO, 1, NULL), 'a' + i);
	assert_int_equal(rd(e->ioas, MVT_PIO_FIFO, 1, NULL), 0xff);
	/* 4 KiB capacity: the byte past it is dropped, order kept across the wrap */
	for (int i = 0; i < 4097; i++)
		assert_int_equal(wr(e->ioas, MVT_PIO_FIFO, i & 0x7f, 1), MV_MEMTX_OK);
	for (int i = 0; i < 4096; i++)
		assert_int_equal(rd(e->ioas, MVT_PIO_FIFO, 1, NULL), i & 0x7f);
	assert_int_equal(rd(e->ioas, MVT_PIO_FIFO, 1, NULL), 0xff);
}

/* ------------------------------------------------------------------ */
/* Concurrency: vCPU threads on the device at once                      */

enum { THREADS = 4, ITERS = 2000 };

typedef struct worker {
	env *e;
	unsigned id;
} worker;

static void *hammer(void *arg)
{
	worker *w = arg;

	mv_rcu_register_thread();
	fake_vcpu = w->id;
	for (uint64_t n = 0; n < ITERS; n++) {
		set_reg(w->e, MVT_REG_SCRATCH, n);
		seq_write(w->e, w->id, n);
		report(w->e, w->id, n % 100);
		assert_int_equal(wr(w->e->ioas, MVT_DEBUGCON_PORT, 'a' + w->id, 1), MV_MEMTX_OK);
	}
	mv_rcu_unregister_thread();
	return NULL;
}

static void test_concurrent(void **state)
{
	env *e = *state;
	pthread_t t[THREADS];
	worker w[THREADS];

	e->f.nout = 0;
	for (unsigned i = 0; i < THREADS; i++) {
		w[i] = (worker){ e, i };
		assert_int_equal(pthread_create(&t[i], NULL, hammer, &w[i]), 0);
	}
	for (unsigned i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	fake_vcpu = 0;
	assert_int_equal(reg(e, MVT_REG_SCRATCH_OPS), THREADS * ITERS);
	assert_int_equal(reg(e, MVT_REG_SEQ_COUNT), THREADS * ITERS);
	assert_int_equal(reg(e, MVT_REG_SEQ_CHECK), 0);
	for (unsigned i = 0; i < THREADS; i++) {
		set_reg(e, MVT_REG_ROUND_END, (uint64_t)i << 32);
		assert_int_equal(e->f.re_n, 100);
	}
	assert_int_equal(e->f.nout, sizeof(e->f.out) - 1 < THREADS * ITERS ? sizeof(e->f.out) - 1 :
									      THREADS * ITERS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_layout_small),
		cmocka_unit_test(test_layout_4g),
		cmocka_unit_test(test_layout_5g),
		cmocka_unit_test_setup_teardown(test_tree, setup, teardown),
		cmocka_unit_test_setup_teardown(test_io_layout, setup, teardown),
		cmocka_unit_test(test_bad_config),
		cmocka_unit_test(test_ram_high_alias),
		cmocka_unit_test_setup_teardown(test_rom, setup, teardown),
		cmocka_unit_test_setup_teardown(test_debugcon, setup, teardown),
		cmocka_unit_test_setup_teardown(test_debug_exit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_uart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_testdev_ids, setup, teardown),
		cmocka_unit_test_setup_teardown(test_testdev_scratch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_testdev_ws_and_result, setup, teardown),
		cmocka_unit_test_setup_teardown(test_testdev_rounds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_testdev_many_reports, setup, teardown),
		cmocka_unit_test_setup_teardown(test_testdev_seq, setup, teardown),
		cmocka_unit_test_setup_teardown(test_testdev_seq_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_testdev_seq_repeat, setup, teardown),
		cmocka_unit_test_setup_teardown(test_testdev_pio, setup, teardown),
		cmocka_unit_test_setup_teardown(test_testdev_fifo, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
	};

	mv_rcu_register_thread();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
