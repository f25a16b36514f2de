/*
 * The KVM backend against the real /dev/kvm: memslot rules, every exit the
 * tiny guests provoke (MMIO, port I/O, string I/O, HLT, read-only slots),
 * dirty bitmaps and rings, coalesced MMIO, kicks and ioeventfd.
 *
 * Guests are hand-assembled 32-bit flat protected-mode code placed at
 * KT_CODE in a 1 MiB RAM slot at GPA 0. They are kept tiny: on some hosts
 * KVM runs CPL0 guest code through its instruction emulator.
 *
 * Without /dev/kvm every test prints "SKIP: <test>: /dev/kvm unavailable
 * (<reason>)" and is reported skipped by cmocka.
 */
#include "testutil.h"

#include "memvirt/hv.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define KT_RAM_SIZE 0x100000u         /* slot 0: RAM at GPA 0 */
#define KT_CODE 0x1000u               /* guest code */
#define KT_MMIO 0xd0000000u           /* nothing mapped there */
#define KT_DATA_GPA 0x200000u         /* slot 1 of the dirty-log tests */
#define KT_DATA_PAGES 16u

/* ------------------------------------------------------------------ */
/* Availability                                                         */

/*
 * Without /dev/kvm the accelerator must say so: -ENODEV and a sentence
 * naming the device.
 */
static void kt_check_enodev(void)
{
	hv_vm_config cfg = { .arch = HV_ARCH_X86_64 };
	mv_error err = { 0 };
	hv_vm *vm = NULL;

	assert_int_equal(hv_vm_create("kvm", &cfg, &vm, &err), -ENODEV);
	assert_non_null(strstr(err.msg, "/dev/kvm"));
}

/* Go on when /dev/kvm opens; otherwise print the SKIP line and skip. */
#define KT_REQUIRE_KVM()                                                        \
	do {                                                                    \
		int fd_ = open("/dev/kvm", O_RDWR | O_CLOEXEC);                 \
		if (fd_ < 0) {                                                  \
			printf("SKIP: %s: /dev/kvm unavailable (%s)\n", __func__,  \
			       strerror(errno));                                \
			kt_check_enodev();                                      \
			skip();                                                 \
		}                                                               \
		close(fd_);                                                     \
	} while (0)

/* ------------------------------------------------------------------ */
/* A test VM: RAM slot 0 at GPA 0, one vCPU in flat 32-bit mode         */

typedef struct kt_vm {
	hv_vm *vm;
	hv_vcpu *vcpu;
	uint8_t *ram;
	size_t code_len;             /* bytes emitted at KT_CODE */
} kt_vm;

static void *kt_map(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_true(p != MAP_FAILED);
	return p;
}

static void kt_vm_open(kt_vm *t)
{
	hv_vm_config cfg = { .arch = HV_ARCH_X86_64 };
	mv_error err = { 0 };

	memset(t, 0, sizeof(*t));
	assert_int_equal(hv_vm_create("kvm", &cfg, &t->vm, &err), 0);
	t->ram = kt_map(KT_RAM_SIZE);
	assert_int_equal(hv_set_memslot(t->vm, &(hv_memslot){
		.slot = 0, .gpa = 0, .size = KT_RAM_SIZE, .hva = t->ram }), 0);
}

/* Flat 4 GiB code/data segments, CR0.PE, RIP at KT_CODE. */
static void kt_vcpu_flat32(hv_vcpu *v)
{
	hv_x86_segment code = { .base = 0, .limit = 0xffffffff, .selector = 0x08, .type = 0xb,
				.present = 1, .db = 1, .s = 1, .g = 1 };
	hv_x86_segment data = code;
	hv_x86_sregs s;
	hv_x86_regs r = { .rip = KT_CODE, .rflags = 0x2 };

	data.type = 0x3;
	data.selector = 0x10;
	assert_int_equal(hv_vcpu_get_sregs(v, &s), 0);
	s.cs = code;
	s.ds = s.es = s.fs = s.gs = s.ss = data;
	s.cr0 |= 1;   /* PE */
	assert_int_equal(hv_vcpu_set_sregs(v, &s), 0);
	assert_int_equal(hv_vcpu_set_regs(v, &r), 0);
}

static void kt_vcpu_open(kt_vm *t)
{
	mv_error err = { 0 };

	assert_int_equal(hv_vcpu_create(t->vm, 0, &t->vcpu, &err), 0);
	kt_vcpu_flat32(t->vcpu);
}

static void kt_close(kt_vm *t)
{
	hv_vcpu_destroy(t->vcpu);
	hv_vm_destroy(t->vm);
	munmap(t->ram, KT_RAM_SIZE);
}

/* Restart the guest at KT_CODE. */
static void kt_rewind(kt_vm *t)
{
	hv_x86_regs r = { .rip = KT_CODE, .rflags = 0x2 };

	assert_int_equal(hv_vcpu_set_regs(t->vcpu, &r), 0);
}

static hv_exit *kt_run(kt_vm *t, hv_exit_reason want)
{
	hv_exit *x = NULL;

	assert_int_equal(hv_vcpu_run(t->vcpu, &x), 0);
	if (x->reason != want)
		fail_msg("exit %s, expected %s", hv_exit_reason_name(x->reason),
			 hv_exit_reason_name(want));
	return x;
}

/* ------------------------------------------------------------------ */
/* A tiny x86 (32-bit) assembler: one function per instruction used     */

static void kt_emit(kt_vm *t, const uint8_t *b, size_t n)
{
	assert_true(KT_CODE + t->code_len + n < KT_RAM_SIZE);
	memcpy(t->ram + KT_CODE + t->code_len, b, n);
	t->code_len += n;
}

#define KT_BYTES(t, ...) kt_emit(t, (const uint8_t[]){ __VA_ARGS__ }, \
				 sizeof((const uint8_t[]){ __VA_ARGS__ }))

static void kt_op_imm32(kt_vm *t, uint8_t op, uint32_t v)
{
	KT_BYTES(t, op, v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, v >> 24);
}

static void a_mov_eax(kt_vm *t, uint32_t v) { kt_op_imm32(t, 0xb8, v); }
static void a_mov_ecx(kt_vm *t, uint32_t v) { kt_op_imm32(t, 0xb9, v); }
static void a_mov_edx(kt_vm *t, uint32_t v) { kt_op_imm32(t, 0xba, v); }
static void a_mov_ebx(kt_vm *t, uint32_t v) { kt_op_imm32(t, 0xbb, v); }
static void a_mov_esi(kt_vm *t, uint32_t v) { kt_op_imm32(t, 0xbe, v); }
static void a_mov_edi(kt_vm *t, uint32_t v) { kt_op_imm32(t, 0xbf, v); }
static void a_store_eax(kt_vm *t, uint32_t addr) { kt_op_imm32(t, 0xa3, addr); } /* mov [a],eax */
static void a_load_eax(kt_vm *t, uint32_t addr) { kt_op_imm32(t, 0xa1, addr); }  /* mov eax,[a] */
static void a_store_al(kt_vm *t, uint32_t addr) { kt_op_imm32(t, 0xa2, addr); }  /* mov [a],al */
static void a_mov_al(kt_vm *t, uint8_t v) { KT_BYTES(t, 0xb0, v); }
static void a_out_al(kt_vm *t, uint8_t port) { KT_BYTES(t, 0xe6, port); }
static void a_out_eax(kt_vm *t, uint8_t port) { KT_BYTES(t, 0xe7, port); }
static void a_in_al(kt_vm *t, uint8_t port) { KT_BYTES(t, 0xe4, port); }
static void a_rep_outsb(kt_vm *t) { KT_BYTES(t, 0xfc, 0xf3, 0x6e); }            /* cld; rep outsb */
static void a_rep_insb(kt_vm *t) { KT_BYTES(t, 0xfc, 0xf3, 0x6c); }             /* cld; rep insb */
static void a_hlt(kt_vm *t) { KT_BYTES(t, 0xf4); }
/* L: inc eax; jmp L -- spins forever, counting in eax. */
static void a_spin(kt_vm *t) { KT_BYTES(t, 0x40, 0xeb, 0xfd); }

/*
 * mov ebx,@base; mov ecx,@n;
 * L: mov [ebx],eax; add ebx,4096; test cl,15; jnz +2; out 0x70,al; dec ecx; jnz L
 * Stores to @n pages, with a port exit every 16 pages: the PVM host checks
 * for a soft-full dirty ring only on entry, and its instruction emulator
 * can otherwise overrun the ring's 64 reserved entries (entries are lost).
 */
static void a_touch_pages(kt_vm *t, uint32_t base, uint32_t n)
{
	a_mov_ebx(t, base);
	a_mov_ecx(t, n);
	KT_BYTES(t, 0x89, 0x03, 0x81, 0xc3, 0x00, 0x10, 0x00, 0x00, 0xf6, 0xc1, 0x0f,
		 0x75, 0x02, 0xe6, 0x70, 0x49, 0x75, 0xee);
}

/* ------------------------------------------------------------------ */
/* VM creation and capabilities                                         */

static void test_vm_create(void **state)
{
	hv_vm_config cfg = { .arch = HV_ARCH_ARM64 };
	tu_failing_alloc fa;
	mv_error err = { 0 };
	hv_vm *vm = NULL;

	(void)state;
	KT_REQUIRE_KVM();
	assert_int_equal(hv_vm_create("kvm", &cfg, &vm, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "x86-64"));

	tu_failing_alloc_init(&fa, 1, true);
	cfg = (hv_vm_config){ .arch = HV_ARCH_X86_64, .alloc = &fa.alloc };
	assert_int_equal(hv_vm_create("kvm", &cfg, &vm, &err), -ENOMEM);

	cfg.alloc = NULL;
	assert_int_equal(hv_vm_create("kvm", &cfg, &vm, &err), 0);
	assert_string_equal(hv_vm_accel_name(vm), "kvm");
	assert_true(hv_vm_check_cap(vm, HV_CAP_NR_MEMSLOTS) > 0);
	assert_true(hv_vm_check_cap(vm, HV_CAP_NR_AS) >= 1);
	assert_true(hv_vm_check_cap(vm, HV_CAP_MAX_VCPUS) > 0);
	assert_true(hv_vm_check_cap(vm, HV_CAP_IOEVENTFD) > 0);
	assert_int_equal(hv_vm_check_cap(vm, HV_CAP_ARM_NISV), 0);
	printf("# caps: memslots %ld as %ld vcpus %ld ro %ld manual %ld ring %ld "
	       "coalesced %ld/%ld\n",
	       hv_vm_check_cap(vm, HV_CAP_NR_MEMSLOTS), hv_vm_check_cap(vm, HV_CAP_NR_AS),
	       hv_vm_check_cap(vm, HV_CAP_MAX_VCPUS), hv_vm_check_cap(vm, HV_CAP_READONLY_MEM),
	       hv_vm_check_cap(vm, HV_CAP_MANUAL_DIRTY_PROTECT),
	       hv_vm_check_cap(vm, HV_CAP_DIRTY_RING), hv_vm_check_cap(vm, HV_CAP_COALESCED_MMIO),
	       hv_vm_check_cap(vm, HV_CAP_COALESCED_PIO));
	hv_vm_destroy(vm);
}

/* ------------------------------------------------------------------ */
/* 1. Memslot rules                                                     */

static int kt_slot(hv_vm *vm, uint32_t slot, uint32_t flags, uint64_t gpa, uint64_t size,
		   void *hva)
{
	return hv_set_memslot(vm, &(hv_memslot){ .slot = slot, .flags = flags, .gpa = gpa,
						 .size = size, .hva = hva });
}

static void test_memslot_rules(void **state)
{
	hv_vm_config cfg = { .arch = HV_ARCH_X86_64 };
	mv_error err = { 0 };
	hv_vm *vm;
	uint8_t *m;
	long nslots, nas;

	(void)state;
	KT_REQUIRE_KVM();
	assert_int_equal(hv_vm_create("kvm", &cfg, &vm, &err), 0);
	m = kt_map(16 * HV_PAGE_SIZE);
	nslots = hv_vm_check_cap(vm, HV_CAP_NR_MEMSLOTS);
	nas = hv_vm_check_cap(vm, HV_CAP_NR_AS);

	/* misaligned gpa, size, hva */
	assert_int_equal(kt_slot(vm, 0, 0, 0x1001, 0x4000, m), -EINVAL);
	assert_int_equal(kt_slot(vm, 0, 0, 0, 0x4001, m), -EINVAL);
	assert_int_equal(kt_slot(vm, 0, 0, 0, 0x4000, m + 1), -EINVAL);
	/* bad flags */
	assert_int_equal(kt_slot(vm, 0, 1u << 7, 0, 0x4000, m), -EINVAL);
	/* slot / address-space id out of range */
	assert_int_equal(kt_slot(vm, HV_SLOT(0, nslots), 0, 0, 0x4000, m), -EINVAL);
	assert_int_equal(kt_slot(vm, HV_SLOT(nas, 0), 0, 0, 0x4000, m), -EINVAL);

	/* create, overlap, size change */
	assert_int_equal(kt_slot(vm, 0, 0, 0, 0x4000, m), 0);
	assert_int_equal(kt_slot(vm, 1, 0, 0x2000, 0x4000, m + 0x8000), -EEXIST);
	assert_int_equal(kt_slot(vm, 0, 0, 0, 0x8000, m), -EINVAL);
	/* the same range in the other address space does not overlap */
	if (nas > 1)
		assert_int_equal(kt_slot(vm, HV_SLOT(1, 1), 0, 0x2000, 0x4000, m + 0x8000), 0);

	/* LOG flag flip, both ways */
	assert_int_equal(kt_slot(vm, 0, HV_MEM_LOG_DIRTY_PAGES, 0, 0x4000, m), 0);
	assert_int_equal(kt_slot(vm, 0, 0, 0, 0x4000, m), 0);

	/* move: same size, new gpa; the old range is then free */
	assert_int_equal(kt_slot(vm, 0, 0, 0x100000, 0x4000, m), 0);
	assert_int_equal(kt_slot(vm, 1, 0, 0x2000, 0x4000, m + 0x8000), 0);
	assert_int_equal(kt_slot(vm, 2, 0, 0x102000, 0x4000, m + 0x8000), -EEXIST);

	/* delete (size 0) frees the range */
	assert_int_equal(kt_slot(vm, 0, 0, 0x100000, 0, m), 0);
	assert_int_equal(kt_slot(vm, 2, 0, 0x102000, 0x4000, m + 0x8000), 0);

	if (hv_vm_check_cap(vm, HV_CAP_READONLY_MEM) > 0)
		assert_int_equal(kt_slot(vm, 3, HV_MEM_READONLY, 0x200000, 0x1000, m), 0);
	hv_vm_destroy(vm);
	munmap(m, 16 * HV_PAGE_SIZE);
}

/* ------------------------------------------------------------------ */
/* 2-5. Exits                                                           */

static void test_mmio_exit(void **state)
{
	kt_vm t;
	hv_exit *x;

	(void)state;
	KT_REQUIRE_KVM();
	kt_vm_open(&t);
	a_mov_eax(&t, 0xdeadbeef);
	a_store_eax(&t, KT_MMIO);
	a_load_eax(&t, KT_MMIO + 8);
	a_out_eax(&t, 0x10);
	a_hlt(&t);
	kt_vcpu_open(&t);

	x = kt_run(&t, HV_EXIT_MMIO);
	assert_true(x->mmio.is_write);
	assert_int_equal(x->mmio.gpa, KT_MMIO);
	assert_int_equal(x->mmio.len, 4);
	assert_memory_equal(x->mmio.data, "\xef\xbe\xad\xde", 4);

	x = kt_run(&t, HV_EXIT_MMIO);
	assert_false(x->mmio.is_write);
	assert_int_equal(x->mmio.gpa, KT_MMIO + 8);
	assert_int_equal(x->mmio.len, 4);
	memcpy(x->mmio.data, "\x44\x33\x22\x11", 4);

	/* the loaded value reaches the guest: it OUTs it */
	x = kt_run(&t, HV_EXIT_IO);
	assert_true(x->io.is_write);
	assert_int_equal(x->io.port, 0x10);
	assert_int_equal(x->io.size, 4);
	assert_int_equal(x->io.count, 1);
	assert_memory_equal(x->io.data, "\x44\x33\x22\x11", 4);
	kt_run(&t, HV_EXIT_HLT);
	kt_close(&t);
}

/* Collect string I/O exits until @want bytes moved; returns the largest count seen. */
static uint32_t kt_string_out(kt_vm *t, uint16_t port, uint8_t *got, size_t want)
{
	uint32_t max_count = 0;
	size_t n = 0;

	while (n < want) {
		hv_exit *x = kt_run(t, HV_EXIT_IO);

		assert_true(x->io.is_write);
		assert_int_equal(x->io.port, port);
		assert_int_equal(x->io.size, 1);
		assert_true(n + x->io.count <= want);
		memcpy(got + n, x->io.data, x->io.count);
		n += x->io.count;
		if (x->io.count > max_count)
			max_count = x->io.count;
	}
	return max_count;
}

static void test_port_io(void **state)
{
	static const char msg[] = "memvirt!";
	uint8_t got[sizeof(msg) - 1];
	kt_vm t;
	hv_exit *x;
	uint32_t max_count;

	(void)state;
	KT_REQUIRE_KVM();
	kt_vm_open(&t);
	memcpy(t.ram + 0x9000, msg, sizeof(msg) - 1);
	a_mov_al(&t, 0x5a);
	a_out_al(&t, 0x20);
	a_in_al(&t, 0x21);
	a_store_al(&t, 0x8000);
	a_mov_esi(&t, 0x9000);
	a_mov_ecx(&t, sizeof(msg) - 1);
	a_mov_edx(&t, 0x30);
	a_rep_outsb(&t);
	a_mov_edi(&t, 0x9100);
	a_mov_ecx(&t, 4);
	a_mov_edx(&t, 0x31);
	a_rep_insb(&t);
	a_hlt(&t);
	kt_vcpu_open(&t);

	x = kt_run(&t, HV_EXIT_IO);
	assert_true(x->io.is_write);
	assert_int_equal(x->io.port, 0x20);
	assert_int_equal(x->io.size, 1);
	assert_int_equal(x->io.data[0], 0x5a);

	x = kt_run(&t, HV_EXIT_IO);
	assert_false(x->io.is_write);
	assert_int_equal(x->io.port, 0x21);
	x->io.data[0] = 0xa5;

	/* KVM's emulator performs OUTS one element per exit; INS is batched */
	max_count = kt_string_out(&t, 0x30, got, sizeof(got));
	assert_memory_equal(got, msg, sizeof(got));
	printf("# rep outsb of %zu bytes: at most %u per exit\n", sizeof(got), max_count);
	assert_int_equal(t.ram[0x8000], 0xa5);

	x = kt_run(&t, HV_EXIT_IO);
	assert_false(x->io.is_write);
	assert_int_equal(x->io.port, 0x31);
	assert_int_equal(x->io.count, 4);
	memcpy(x->io.data, "WXYZ", 4);
	kt_run(&t, HV_EXIT_HLT);
	assert_memory_equal(t.ram + 0x9100, "WXYZ", 4);
	kt_close(&t);
}

static void test_hlt(void **state)
{
	hv_x86_regs r;
	kt_vm t;

	(void)state;
	KT_REQUIRE_KVM();
	kt_vm_open(&t);
	a_mov_eax(&t, 42);
	a_hlt(&t);
	kt_vcpu_open(&t);
	kt_run(&t, HV_EXIT_HLT);
	assert_int_equal(hv_vcpu_get_regs(t.vcpu, &r), 0);
	assert_int_equal(r.rip, KT_CODE + 6);
	assert_int_equal(r.rax, 42);
	kt_close(&t);
}

static void test_readonly_slot(void **state)
{
	uint8_t *rom;
	uint8_t expect[HV_PAGE_SIZE];
	kt_vm t;
	hv_exit *x;

	(void)state;
	KT_REQUIRE_KVM();
	kt_vm_open(&t);
	if (hv_vm_check_cap(t.vm, HV_CAP_READONLY_MEM) <= 0) {
		printf("SKIP: %s: no KVM_CAP_READONLY_MEM\n", __func__);
		kt_close(&t);
		skip();
	}
	rom = kt_map(HV_PAGE_SIZE);
	memset(rom, 0xaa, HV_PAGE_SIZE);
	memcpy(expect, rom, sizeof(expect));
	assert_int_equal(kt_slot(t.vm, 1, HV_MEM_READONLY, 0x300000, HV_PAGE_SIZE, rom), 0);
	a_mov_eax(&t, 0x12345678);
	a_store_eax(&t, 0x300010);
	a_load_eax(&t, 0x300020);
	a_out_eax(&t, 0x10);
	a_hlt(&t);
	kt_vcpu_open(&t);

	x = kt_run(&t, HV_EXIT_MMIO);
	assert_true(x->mmio.is_write);
	assert_int_equal(x->mmio.gpa, 0x300010);
	assert_int_equal(x->mmio.len, 4);
	assert_memory_equal(x->mmio.data, "\x78\x56\x34\x12", 4);
	/* reads are served from the memory */
	x = kt_run(&t, HV_EXIT_IO);
	assert_memory_equal(x->io.data, "\xaa\xaa\xaa\xaa", 4);
	kt_run(&t, HV_EXIT_HLT);
	assert_memory_equal(rom, expect, sizeof(expect));
	kt_close(&t);
	munmap(rom, HV_PAGE_SIZE);
}

/* ------------------------------------------------------------------ */
/* 6. Dirty logging                                                     */

static const uint32_t kt_dirty_pages[] = { 1, 4, 5, 15 };
#define KT_DIRTY_MASK ((1u << 1) | (1u << 4) | (1u << 5) | (1u << 15))

/* RAM + a logged data slot (slot 1) + a guest storing to kt_dirty_pages. */
static uint8_t *kt_dirty_setup(kt_vm *t, uint32_t extra_flags)
{
	uint8_t *data = kt_map(KT_DATA_PAGES * HV_PAGE_SIZE);

	assert_int_equal(kt_slot(t->vm, 1, HV_MEM_LOG_DIRTY_PAGES | extra_flags, KT_DATA_GPA,
				 KT_DATA_PAGES * HV_PAGE_SIZE, data), 0);
	for (size_t i = 0; i < sizeof(kt_dirty_pages) / sizeof(kt_dirty_pages[0]); i++)
		a_store_eax(t, KT_DATA_GPA + kt_dirty_pages[i] * HV_PAGE_SIZE + 8 * i);
	a_hlt(t);
	return data;
}

static uint64_t kt_dirty_get(kt_vm *t)
{
	uint64_t bm[HV_DIRTY_BITMAP_WORDS(KT_DATA_PAGES * HV_PAGE_SIZE)] = { 0 };

	assert_int_equal(hv_get_dirty_log(t->vm, 1, bm), 0);
	return bm[0];
}

static void test_dirty_log(void **state)
{
	uint64_t bm[1];
	uint8_t *data;
	kt_vm t;

	(void)state;
	KT_REQUIRE_KVM();
	kt_vm_open(&t);
	data = kt_dirty_setup(&t, 0);
	kt_vcpu_open(&t);
	/* the RAM slot does not log; KVM answers ENOENT for it as for no slot */
	assert_int_equal(hv_get_dirty_log(t.vm, 0, bm), -ENOENT);
	assert_int_equal(hv_get_dirty_log(t.vm, 7, bm), -ENOENT);

	assert_int_equal(kt_dirty_get(&t), 0);
	kt_run(&t, HV_EXIT_HLT);
	assert_int_equal(kt_dirty_get(&t), KT_DIRTY_MASK);
	assert_int_equal(kt_dirty_get(&t), 0);
	/* get re-protected the pages: writing again dirties them again */
	kt_rewind(&t);
	kt_run(&t, HV_EXIT_HLT);
	assert_int_equal(kt_dirty_get(&t), KT_DIRTY_MASK);
	kt_close(&t);
	munmap(data, KT_DATA_PAGES * HV_PAGE_SIZE);
}

static void test_dirty_log_manual(void **state)
{
	uint64_t clear = (1u << 1) | (1u << 4);
	uint8_t *data;
	kt_vm t;

	(void)state;
	KT_REQUIRE_KVM();
	kt_vm_open(&t);
	if (hv_vm_check_cap(t.vm, HV_CAP_MANUAL_DIRTY_PROTECT) <= 0) {
		printf("SKIP: %s: no KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2\n", __func__);
		kt_close(&t);
		skip();
	}
	assert_int_equal(hv_enable_manual_dirty_protect(t.vm, 1u << 5), -EINVAL);
	assert_int_equal(hv_enable_manual_dirty_protect(t.vm, HV_DIRTY_PROTECT_ENABLE), 0);
	data = kt_dirty_setup(&t, 0);
	kt_vcpu_open(&t);
	kt_run(&t, HV_EXIT_HLT);

	/* get no longer clears */
	assert_int_equal(kt_dirty_get(&t), KT_DIRTY_MASK);
	assert_int_equal(kt_dirty_get(&t), KT_DIRTY_MASK);
	/* alignment: first_page multiple of 64, num_pages too unless it ends the slot */
	assert_int_equal(hv_clear_dirty_log(t.vm, 1, 1, 15, &clear), -EINVAL);
	assert_int_equal(hv_clear_dirty_log(t.vm, 1, 0, 3, &clear), -EINVAL);
	assert_int_equal(kt_dirty_get(&t), KT_DIRTY_MASK);
	/* clear exactly the given bits */
	assert_int_equal(hv_clear_dirty_log(t.vm, 1, 0, KT_DATA_PAGES, &clear), 0);
	assert_int_equal(kt_dirty_get(&t), KT_DIRTY_MASK & ~clear);
	/* and re-protect them: rewriting dirties them again */
	kt_rewind(&t);
	kt_run(&t, HV_EXIT_HLT);
	assert_int_equal(kt_dirty_get(&t), KT_DIRTY_MASK);
	kt_close(&t);
	munmap(data, KT_DATA_PAGES * HV_PAGE_SIZE);
}

/* Dirty-ring harvest sink: records (slot, offset) pairs. */
typedef struct kt_gfns {
	hv_dirty_gfn g[4096];
	size_t n;
} kt_gfns;

static void kt_gfn_sink(void *opaque, const hv_dirty_gfn *g)
{
	kt_gfns *s = opaque;

	assert_true(s->n < sizeof(s->g) / sizeof(s->g[0]));
	s->g[s->n++] = *g;
}

/*
 * Enable the smallest ring KVM accepts (it wants at least a page and
 * room for its reserved entries); returns its entries, 0 if no ring.
 */
static uint32_t kt_ring_enable(kt_vm *t)
{
	long max = hv_vm_check_cap(t->vm, HV_CAP_DIRTY_RING);

	if (max <= 0)
		return 0;
	assert_int_equal(hv_enable_dirty_ring(t->vm, 100), -EINVAL);   /* not a power of 2 */
	for (uint32_t e = 256; e <= (uint32_t)max; e *= 2)
		if (hv_enable_dirty_ring(t->vm, e) == 0)
			return e;
	fail_msg("no dirty-ring size accepted up to %ld", max);
	return 0;
}

static void test_dirty_ring(void **state)
{
	static kt_gfns s;
	uint64_t bm[1];
	uint8_t *data;
	kt_vm t;
	size_t npages = sizeof(kt_dirty_pages) / sizeof(kt_dirty_pages[0]);

	(void)state;
	KT_REQUIRE_KVM();
	kt_vm_open(&t);
	if (kt_ring_enable(&t) == 0) {
		printf("SKIP: %s: no KVM_CAP_DIRTY_LOG_RING\n", __func__);
		kt_close(&t);
		skip();
	}
	data = kt_dirty_setup(&t, 0);
	kt_vcpu_open(&t);
	assert_int_equal(hv_enable_dirty_ring(t.vm, 4096), -EINVAL);   /* vCPU exists */
	assert_int_equal(hv_get_dirty_log(t.vm, 1, bm), -ENXIO);      /* KVM's answer with a ring */

	memset(&s, 0, sizeof(s));
	kt_run(&t, HV_EXIT_HLT);
	assert_int_equal(hv_vcpu_dirty_ring_harvest(t.vcpu, kt_gfn_sink, &s), (int)npages);
	for (size_t i = 0; i < npages; i++) {
		assert_int_equal(s.g[i].slot, 1);
		assert_int_equal(s.g[i].offset, kt_dirty_pages[i]);
	}
	assert_int_equal(hv_vcpu_dirty_ring_harvest(t.vcpu, kt_gfn_sink, &s), 0);
	assert_int_equal(hv_dirty_rings_reset(t.vm), (int)npages);
	assert_int_equal(hv_dirty_rings_reset(t.vm), 0);

	/* reset re-protected the pages: the same stores are logged again */
	s.n = 0;
	kt_rewind(&t);
	kt_run(&t, HV_EXIT_HLT);
	assert_int_equal(hv_vcpu_dirty_ring_harvest(t.vcpu, kt_gfn_sink, &s), (int)npages);
	assert_int_equal(s.g[3].offset, kt_dirty_pages[3]);
	kt_close(&t);
	munmap(data, KT_DATA_PAGES * HV_PAGE_SIZE);
}

static void test_dirty_ring_full(void **state)
{
	static kt_gfns s;
	static uint8_t seen[4096];
	uint32_t entries, pages, fulls = 0;
	uint8_t *data;
	kt_vm t;
	hv_exit *x;

	(void)state;
	KT_REQUIRE_KVM();
	kt_vm_open(&t);
	entries = kt_ring_enable(&t);
	if (entries == 0 || entries > 1024) {
		printf("SKIP: %s: no small dirty ring\n", __func__);
		kt_close(&t);
		skip();
	}
	pages = 2 * entries;
	data = kt_map((size_t)pages * HV_PAGE_SIZE);
	assert_int_equal(kt_slot(t.vm, 1, HV_MEM_LOG_DIRTY_PAGES, 0x400000,
				 (uint64_t)pages * HV_PAGE_SIZE, data), 0);
	a_touch_pages(&t, 0x400000, pages);
	a_hlt(&t);
	kt_vcpu_open(&t);

	memset(&s, 0, sizeof(s));
	memset(seen, 0, sizeof(seen));
	/* harvest only when KVM asks (ring full) and at the end */
	for (;;) {
		assert_int_equal(hv_vcpu_run(t.vcpu, &x), 0);
		if (x->reason == HV_EXIT_IO && x->io.port == 0x70)
			continue;
		s.n = 0;
		hv_vcpu_dirty_ring_harvest(t.vcpu, kt_gfn_sink, &s);
		for (size_t i = 0; i < s.n; i++) {
			assert_int_equal(s.g[i].slot, 1);
			assert_true(s.g[i].offset < pages);
			seen[s.g[i].offset] = 1;
		}
		assert_int_equal(hv_dirty_rings_reset(t.vm), (int)s.n);
		if (x->reason == HV_EXIT_HLT)
			break;
		assert_int_equal(x->reason, HV_EXIT_DIRTY_RING_FULL);
		fulls++;
	}
	printf("# ring of %u entries: %u ring-full exits for %u pages\n", entries, fulls, pages);
	assert_true(fulls >= 1);
	for (uint32_t i = 0; i < pages; i++)
		assert_int_equal(seen[i], 1);
	kt_close(&t);
	munmap(data, (size_t)pages * HV_PAGE_SIZE);
}

/* ------------------------------------------------------------------ */
/* 7. Coalesced MMIO / PIO                                              */

typedef struct kt_writes {
	hv_coalesced_write w[64];
	size_t n;
} kt_writes;

static void kt_write_sink(void *opaque, const hv_coalesced_write *w)
{
	kt_writes *s = opaque;

	assert_true(s->n < 64);
	s->w[s->n++] = *w;
}

static void test_coalesced(void **state)
{
	enum { N = 5 };
	kt_writes s = { .n = 0 };
	bool pio;
	kt_vm t;
	hv_exit *x;

	(void)state;
	KT_REQUIRE_KVM();
	kt_vm_open(&t);
	if (hv_vm_check_cap(t.vm, HV_CAP_COALESCED_MMIO) <= 0) {
		printf("SKIP: %s: no KVM_CAP_COALESCED_MMIO\n", __func__);
		kt_close(&t);
		skip();
	}
	pio = hv_vm_check_cap(t.vm, HV_CAP_COALESCED_PIO) > 0;
	assert_int_equal(hv_coalesced_zone_add(t.vm, HV_BUS_MMIO, KT_MMIO, 0x1000), 0);
	if (pio)
		assert_int_equal(hv_coalesced_zone_add(t.vm, HV_BUS_PIO, 0x40, 1), 0);
	/* no vCPU, no ring yet */
	assert_int_equal(hv_coalesced_drain(t.vm, kt_write_sink, &s), 0);

	for (uint32_t i = 0; i < N; i++) {
		a_mov_eax(&t, 0xc0de0000 + i);
		a_store_eax(&t, KT_MMIO + 4 * i);
	}
	a_store_al(&t, KT_MMIO + 0x100);
	if (pio)
		a_out_al(&t, 0x40);
	a_hlt(&t);
	a_store_eax(&t, KT_MMIO);    /* second run, after the zone is gone */
	a_hlt(&t);
	kt_vcpu_open(&t);

	kt_run(&t, HV_EXIT_HLT);
	assert_int_equal(hv_coalesced_drain(t.vm, kt_write_sink, &s), N + 1 + pio);
	for (uint32_t i = 0; i < N; i++) {
		uint32_t v = 0xc0de0000 + i;

		assert_int_equal(s.w[i].bus, HV_BUS_MMIO);
		assert_int_equal(s.w[i].addr, KT_MMIO + 4 * i);
		assert_int_equal(s.w[i].len, 4);
		assert_memory_equal(s.w[i].data, &v, 4);
	}
	assert_int_equal(s.w[N].addr, KT_MMIO + 0x100);
	assert_int_equal(s.w[N].len, 1);
	assert_int_equal(s.w[N].data[0], 0x04);   /* al of 0xc0de0004 */
	if (pio) {
		assert_int_equal(s.w[N + 1].bus, HV_BUS_PIO);
		assert_int_equal(s.w[N + 1].addr, 0x40);
		assert_int_equal(s.w[N + 1].len, 1);
		assert_int_equal(s.w[N + 1].data[0], 0x04);
	}
	assert_int_equal(hv_coalesced_drain(t.vm, kt_write_sink, &s), 0);

	/* without the zone the store exits again */
	assert_int_equal(hv_coalesced_zone_del(t.vm, HV_BUS_MMIO, KT_MMIO, 0x1000), 0);
	x = kt_run(&t, HV_EXIT_MMIO);
	assert_int_equal(x->mmio.gpa, KT_MMIO);
	kt_run(&t, HV_EXIT_HLT);
	kt_close(&t);
}

/* ------------------------------------------------------------------ */
/* 8. Kicks                                                             */

typedef struct kt_kicker {
	hv_vcpu *vcpu;
	unsigned delay_ms;
} kt_kicker;

static void kt_sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

static void *kt_kick_later(void *opaque)
{
	kt_kicker *k = opaque;

	kt_sleep_ms(k->delay_ms);
	hv_vcpu_kick(k->vcpu);
	return NULL;
}

/* Run the spinning guest until a kick from another thread; returns its eax. */
static uint64_t kt_run_until_kicked(kt_vm *t)
{
	kt_kicker k = { .vcpu = t->vcpu, .delay_ms = 50 };
	hv_x86_regs r;
	pthread_t th;

	assert_int_equal(pthread_create(&th, NULL, kt_kick_later, &k), 0);
	kt_run(t, HV_EXIT_INTR);
	pthread_join(th, NULL);
	assert_int_equal(hv_vcpu_get_regs(t->vcpu, &r), 0);
	assert_true(r.rip >= KT_CODE && r.rip < KT_CODE + 3);
	return r.rax;
}

static void test_kick(void **state)
{
	uint64_t a, b;
	hv_x86_regs r;
	kt_vm t;

	(void)state;
	KT_REQUIRE_KVM();
	kt_vm_open(&t);
	a_spin(&t);
	kt_vcpu_open(&t);

	/* kick before run: the run returns at once, the guest has not moved */
	hv_vcpu_kick(t.vcpu);
	kt_run(&t, HV_EXIT_INTR);
	assert_int_equal(hv_vcpu_get_regs(t.vcpu, &r), 0);
	assert_int_equal(r.rip, KT_CODE);
	assert_int_equal(r.rax, 0);

	/* kicks from another thread interrupt the guest; running again continues */
	a = kt_run_until_kicked(&t);
	b = kt_run_until_kicked(&t);
	printf("# spin loop: %llu iterations after the first kick, %llu after the second\n",
	       (unsigned long long)a, (unsigned long long)b);
	assert_true(a > 0);
	assert_true(b > a);
	kt_close(&t);
}

/* A kicker that raises a numbered request, kicks, and waits for the ack. */
typedef struct kt_stress {
	hv_vcpu *vcpu;
	atomic_uint req, ack;
	atomic_bool lost;
	unsigned rounds;
} kt_stress;

static void *kt_stress_kicker(void *opaque)
{
	kt_stress *s = opaque;

	for (unsigned i = 1; i <= s->rounds; i++) {
		struct timespec t0, t1;

		atomic_store(&s->req, i);
		hv_vcpu_kick(s->vcpu);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		while (atomic_load(&s->ack) != i) {
			clock_gettime(CLOCK_MONOTONIC, &t1);
			if (t1.tv_sec - t0.tv_sec > 5) {
				/* a lost kick: note it, then unstick the runner */
				atomic_store(&s->lost, true);
				hv_vcpu_kick(s->vcpu);
				t0 = t1;
			}
			if (i % 8 == 0)
				sched_yield();
		}
	}
	return NULL;
}

/* Many kicks racing with runs returning: every request is acknowledged. */
static void test_kick_no_loss(void **state)
{
	kt_stress s = { .rounds = 300 };
	pthread_t th;
	kt_vm t;

	(void)state;
	KT_REQUIRE_KVM();
	kt_vm_open(&t);
	a_spin(&t);
	kt_vcpu_open(&t);
	s.vcpu = t.vcpu;
	assert_int_equal(pthread_create(&th, NULL, kt_stress_kicker, &s), 0);
	while (atomic_load(&s.ack) != s.rounds) {
		kt_run(&t, HV_EXIT_INTR);
		/* the caller's loop: re-check its own flags after each INTR */
		atomic_store(&s.ack, atomic_load(&s.req));
	}
	pthread_join(th, NULL);
	assert_false(atomic_load(&s.lost));
	kt_close(&t);
}

/* An MMIO read completion survives an HV_EXIT_INTR in between. */
static void test_kick_pending_mmio(void **state)
{
	kt_vm t;
	hv_exit *x;

	(void)state;
	KT_REQUIRE_KVM();
	kt_vm_open(&t);
	a_load_eax(&t, KT_MMIO);
	a_out_eax(&t, 0x10);
	a_hlt(&t);
	kt_vcpu_open(&t);

	x = kt_run(&t, HV_EXIT_MMIO);
	assert_false(x->mmio.is_write);
	memcpy(x->mmio.data, "\x0d\xd0\xfe\xca", 4);
	hv_vcpu_kick(t.vcpu);
	kt_run(&t, HV_EXIT_INTR);
	x = kt_run(&t, HV_EXIT_IO);
	assert_int_equal(x->io.port, 0x10);
	assert_memory_equal(x->io.data, "\x0d\xd0\xfe\xca", 4);
	kt_run(&t, HV_EXIT_HLT);
	kt_close(&t);
}

/* ------------------------------------------------------------------ */
/* 9. ioeventfd                                                         */

static uint64_t kt_eventfd_read(int fd)
{
	uint64_t v = 0;

	if (read(fd, &v, sizeof(v)) != sizeof(v))
		return 0;
	return v;
}

static void test_ioeventfd(void **state)
{
	int mfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	int pfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	hv_ioeventfd m = { .bus = HV_BUS_MMIO, .addr = 0xe0000000, .len = 4, .fd = mfd };
	hv_ioeventfd p = { .bus = HV_BUS_PIO, .addr = 0x50, .len = 1, .fd = pfd,
			   .datamatch = true, .data = 7 };
	hv_ioeventfd bad = { .bus = HV_BUS_PIO, .addr = 0x60, .len = 0, .fd = pfd };
	kt_vm t;
	hv_exit *x;

	(void)state;
	KT_REQUIRE_KVM();
	assert_true(mfd >= 0 && pfd >= 0);
	kt_vm_open(&t);
	assert_int_equal(hv_ioeventfd_add(t.vm, &m), 0);
	assert_int_equal(hv_ioeventfd_add(t.vm, &m), -EEXIST);
	assert_int_equal(hv_ioeventfd_add(t.vm, &p), 0);
	assert_int_equal(hv_ioeventfd_add(t.vm, &bad), -EINVAL);   /* len 0: MMIO only */

	a_store_eax(&t, 0xe0000000);
	a_mov_al(&t, 7);
	a_out_al(&t, 0x50);
	a_mov_al(&t, 8);             /* no datamatch: exits */
	a_out_al(&t, 0x50);
	a_hlt(&t);
	kt_vcpu_open(&t);

	x = kt_run(&t, HV_EXIT_IO);
	assert_int_equal(x->io.port, 0x50);
	assert_int_equal(x->io.data[0], 8);
	assert_int_equal(kt_eventfd_read(mfd), 1);
	assert_int_equal(kt_eventfd_read(pfd), 1);
	kt_run(&t, HV_EXIT_HLT);

	assert_int_equal(hv_ioeventfd_del(t.vm, &m), 0);
	assert_int_equal(hv_ioeventfd_del(t.vm, &m), -ENOENT);
	assert_int_equal(hv_ioeventfd_del(t.vm, &p), 0);
	kt_close(&t);
	close(mfd);
	close(pfd);
}

/* ------------------------------------------------------------------ */
/* x86 state                                                            */

static void test_x86_state(void **state)
{
	hv_x86_regs r = { .rax = 1, .rbx = 2, .r15 = 0xf15, .rip = 0x1234, .rflags = 0x202 };
	hv_x86_regs g;
	hv_x86_sregs s;
	hv_x86_cpuid one[1];
	static hv_x86_cpuid all[512];
	uint64_t gpa = 0;
	int n;
	kt_vm t;

	(void)state;
	KT_REQUIRE_KVM();
	kt_vm_open(&t);
	kt_vcpu_open(&t);
	assert_int_equal(hv_vcpu_set_regs(t.vcpu, &r), 0);
	assert_int_equal(hv_vcpu_get_regs(t.vcpu, &g), 0);
	assert_memory_equal(&r, &g, sizeof(r));

	assert_int_equal(hv_vcpu_get_sregs(t.vcpu, &s), 0);
	assert_int_equal(s.cs.limit, 0xffffffff);
	assert_int_equal(s.cs.selector, 0x08);
	assert_true(s.cr0 & 1);

	/* paging off: GVA = GPA */
	assert_int_equal(hv_vcpu_translate(t.vcpu, 0x5000, &gpa), 0);
	assert_int_equal(gpa, 0x5000);

	assert_int_equal(hv_vm_supported_cpuid(t.vm, one, 1), -E2BIG);
	n = hv_vm_supported_cpuid(t.vm, all, 512);
	assert_true(n > 1);
	assert_int_equal(all[0].function, 0);
	assert_int_equal(hv_vcpu_set_cpuid(t.vcpu, all, (size_t)n), 0);
	kt_close(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vm_create),
		cmocka_unit_test(test_memslot_rules),
		cmocka_unit_test(test_mmio_exit),
		cmocka_unit_test(test_port_io),
		cmocka_unit_test(test_hlt),
		cmocka_unit_test(test_readonly_slot),
		cmocka_unit_test(test_dirty_log),
		cmocka_unit_test(test_dirty_log_manual),
		cmocka_unit_test(test_dirty_ring),
		cmocka_unit_test(test_dirty_ring_full),
		cmocka_unit_test(test_coalesced),
		cmocka_unit_test(test_kick),
		cmocka_unit_test(test_kick_no_loss),
		cmocka_unit_test(test_kick_pending_mmio),
		cmocka_unit_test(test_ioeventfd),
		cmocka_unit_test(test_x86_state),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
