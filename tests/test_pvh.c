/*
 * PVH loading (src/vmm/pvh.c) and the vCPU boot state (src/vmm/x86_boot.c).
 * ELF images are built in memory: a good ELF64 and ELF32 image (segments,
 * bss, start_info, memmap, command line checked in guest RAM), then one
 * broken image per check, each giving its sentence and leaving guest
 * memory untouched. The boot state is checked on a fake accelerator and,
 * where /dev/kvm exists, by running a tiny PVH image on KVM. The project's
 * guest (<build>/guests/testguest.elf or $MV_GUEST_ELF) is loaded when built.
 */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "pvh_image.h"
#include "hv/backend.h"
#include "memvirt/testdev_abi.h"
#include "vmm/machine_x86.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)
#define FILL 0xcc               /* guest RAM before a load */
#define NOTE_OFF 0x100          /* where the images keep their notes */
#define ENTRY 0x100010u

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "ELF images are built in host order");

/* ------------------------------------------------------------------ */
/* Machine fixture                                                      */

typedef struct env {
	mv_memory *mem;
	vmm_x86_machine *m;
	uint8_t *ram;
	uint64_t ram_size;
	int exit_status, nr_exits;
	char out[256];
	size_t nout;
} env;

static void e_console(void *o, const char *src, uint8_t b)
{
	env *e = o;

	(void)src;
	if (e->nout < sizeof(e->out) - 1)
		e->out[e->nout++] = (char)b;
}

static void e_exit(void *o, int status)
{
	env *e = o;

	e->exit_status = status;
	e->nr_exits++;
}

static env *env_new(uint64_t ram)
{
	env *e = calloc(1, sizeof(*e));
	vmm_hooks h = { .opaque = e, .console_out = e_console, .guest_exit = e_exit };
	mv_error err = { 0 };

	assert_int_equal(mv_memory_new(NULL, &e->mem), 0);
	if (vmm_x86_machine_new(e->mem, ram, 1, &h, &e->m, &err))
		fail_msg("machine: %s", err.msg);
	e->ram = mv_ramblock_host(vmm_x86_ram(e->m));
	e->ram_size = ram;
	return e;
}

static void env_free(env *e)
{
	vmm_x86_machine_free(e->m);
	mv_memory_free(e->mem);
	free(e);
}

static int setup(void **state)
{
	env *e = env_new(64 * MiB);

	memset(e->ram, FILL, e->ram_size);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	env_free(*state);
	return 0;
}

static void assert_ram_untouched(env *e)
{
	for (uint64_t i = 0; i < e->ram_size; i++)
		if (e->ram[i] != FILL)
			fail_msg("guest RAM changed at 0x%" PRIx64 " after a failed load", i);
}

static uint64_t ld(env *e, uint64_t gpa, unsigned size)
{
	uint8_t b[8] = { 0 };
	uint64_t v = 0;

	assert_int_equal(mv_as_read(vmm_x86_memory_as(e->m), gpa, b, size), MV_MEMTX_OK);
	for (unsigned i = 0; i < size; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

/* ------------------------------------------------------------------ */
/* ELF image builder                                                    */

/*
 * The good image: program header 0 = PT_NOTE (a GNU note, then the Xen
 * entry note), 1 = .text at 1 MiB (0x300 file bytes, 0x1000 in memory:
 * bss), 2 = .data at 2 MiB.
 */
static void build_good(img *im, bool is64)
{
	uint32_t entry = ENTRY;
	uint8_t gnu[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	size_t notes;

	memset(im, 0, sizeof(*im));
	im->is64 = is64;
	im->entry = ENTRY;
	im->phoff = is64 ? sizeof(Elf64_Ehdr) : sizeof(Elf32_Ehdr);
	im->phnum = 3;
	notes = pvh_img_note(im->buf + NOTE_OFF, "GNU", NT_GNU_BUILD_ID, gnu, sizeof(gnu));
	notes += pvh_img_note(im->buf + NOTE_OFF + notes, "Xen", 18, &entry, 4);
	for (unsigned i = 0; i < 0x300; i++)
		im->buf[0x200 + i] = (uint8_t)(i * 13 + 1);
	for (unsigned i = 0; i < 0x10; i++)
		im->buf[0x600 + i] = (uint8_t)(0xa0 + i);
	im->size = 0x610;
	pvh_img_ehdr(im, is64 ? EM_X86_64 : EM_386);
	pvh_img_phdr(im, 0, &(seg){ PT_NOTE, NOTE_OFF, 0, notes, notes });
	pvh_img_phdr(im, 1, &(seg){ PT_LOAD, 0x200, 0x100000, 0x300, 0x1000 });
	pvh_img_phdr(im, 2, &(seg){ PT_LOAD, 0x600, 0x200000, 0x10, 0x10 });
}

static int load(env *e, const img *im, const char *cmdline, vmm_pvh_boot *boot, mv_error *err)
{
	return vmm_pvh_load(e->m, im->buf, im->size, "guest.elf", cmdline, boot, err);
}

/* A broken image: -EINVAL, the sentence, RAM untouched. */
static void expect_bad(env *e, const img *im, const char *cmdline, const char *msg)
{
	mv_error err = { 0 };
	vmm_pvh_boot boot = { 0 };

	assert_int_equal(load(e, im, cmdline, &boot, &err), -EINVAL);
	if (strcmp(err.msg, msg))
		fail_msg("expected \"%s\", got \"%s\"", msg, err.msg);
	assert_int_equal(err.code, -EINVAL);
	assert_ram_untouched(e);
}

/* ------------------------------------------------------------------ */
/* Good images                                                          */

static void check_loaded(env *e, const vmm_pvh_boot *boot, const char *cmdline)
{
	uint64_t si = VMM_PVH_START_INFO, mm, cl;

	assert_int_equal(boot->entry, ENTRY);
	assert_int_equal(boot->start_info, VMM_PVH_START_INFO);
	assert_int_equal(boot->image_start, 0x100000);
	assert_int_equal(boot->image_end, 0x200010);
	/* segments: file bytes, then bss zeroed, and nothing after */
	for (unsigned i = 0; i < 0x300; i++)
		assert_int_equal(e->ram[0x100000 + i], (uint8_t)(i * 13 + 1));
	for (unsigned i = 0x300; i < 0x1000; i++)
		assert_int_equal(e->ram[0x100000 + i], 0);
	assert_int_equal(e->ram[0x101000], FILL);
	assert_int_equal(e->ram[0xfffff], FILL);
	for (unsigned i = 0; i < 0x10; i++)
		assert_int_equal(e->ram[0x200000 + i], 0xa0 + i);
	/* struct hvm_start_info, version 1 */
	assert_int_equal(ld(e, si + 0, 4), 0x336ec578);
	assert_int_equal(ld(e, si + 4, 4), 1);
	assert_int_equal(ld(e, si + 8, 4), 0);          /* flags */
	assert_int_equal(ld(e, si + 12, 4), 0);         /* nr_modules */
	assert_int_equal(ld(e, si + 16, 8), 0);         /* modlist_paddr */
	cl = ld(e, si + 24, 8);
	assert_int_equal(ld(e, si + 32, 8), 0);         /* rsdp_paddr */
	mm = ld(e, si + 40, 8);
	assert_int_equal(ld(e, si + 48, 4), 1);         /* memmap_entries */
	/* the memory map: all of RAM, type 1 */
	assert_true(mm >= si + 56 && mm < VMM_PVH_BOOT_END);
	assert_int_equal(ld(e, mm + 0, 8), 0);
	assert_int_equal(ld(e, mm + 8, 8), e->ram_size);
	assert_int_equal(ld(e, mm + 16, 4), 1);
	assert_int_equal(ld(e, mm + 20, 4), 0);
	if (!cmdline) {
		assert_int_equal(cl, 0);
		return;
	}
	assert_true(cl > mm && cl < VMM_PVH_BOOT_END);
	assert_string_equal((const char *)e->ram + cl, cmdline);
	assert_true(mv_ramblock_test_dirty(vmm_x86_ram(e->m), 0x100000));
}

static void test_good_elf64(void **state)
{
	env *e = *state;
	img im;
	vmm_pvh_boot boot;
	mv_error err = { 0 };

	build_good(&im, true);
	if (load(e, &im, "console=hvc0 workload=dirty", &boot, &err))
		fail_msg("%s", err.msg);
	check_loaded(e, &boot, "console=hvc0 workload=dirty");
}

static void test_good_elf32(void **state)
{
	env *e = *state;
	img im;
	vmm_pvh_boot boot;
	mv_error err = { 0 };

	build_good(&im, false);
	if (load(e, &im, NULL, &boot, &err))
		fail_msg("%s", err.msg);
	check_loaded(e, &boot, NULL);
}

/* Linux's vmlinux carries the entry as an 8-byte value (_ASM_PTR). */
static void test_entry_note_8_bytes(void **state)
{
	env *e = *state;
	img im;
	vmm_pvh_boot boot;
	uint64_t entry = ENTRY;
	mv_error err = { 0 };

	build_good(&im, true);
	pvh_img_phdr(&im, 0, &(seg){ PT_NOTE, NOTE_OFF, 0, pvh_img_note(im.buf + NOTE_OFF, "Xen", 18, &entry, 8), 0 });
	if (load(e, &im, "", &boot, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(boot.entry, ENTRY);
	entry = 1ULL << 32;
	pvh_img_note(im.buf + NOTE_OFF, "Xen", 18, &entry, 8);
	memset(e->ram, FILL, e->ram_size);
	expect_bad(e, &im, NULL, "guest.elf: PVH entry 0x100000000 is above 4 GiB");
}

/* Above 4 GiB: two memmap entries, a segment loaded into the high alias. */
static void test_high_ram(void **state)
{
	env *e = env_new(4 * GiB);
	img im;
	vmm_pvh_boot boot;
	mv_error err = { 0 };
	uint64_t mm;

	(void)state;
	build_good(&im, true);
	pvh_img_phdr(&im, 2, &(seg){ PT_LOAD, 0x600, 4 * GiB + 0x1000, 0x10, 0x20 });
	if (load(e, &im, NULL, &boot, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(boot.image_end, 4 * GiB + 0x1020);
	assert_int_equal(e->ram[3 * GiB + 0x1000], 0xa0);
	assert_int_equal(e->ram[3 * GiB + 0x101f], 0);
	assert_int_equal(ld(e, 4 * GiB + 0x1000, 1), 0xa0);
	mm = ld(e, VMM_PVH_START_INFO + 40, 8);
	assert_int_equal(ld(e, VMM_PVH_START_INFO + 48, 4), 2);
	assert_int_equal(ld(e, mm + 0, 8), 0);
	assert_int_equal(ld(e, mm + 8, 8), 3 * GiB);
	assert_int_equal(ld(e, mm + 24, 8), 4 * GiB);
	assert_int_equal(ld(e, mm + 32, 8), 1 * GiB);
	assert_int_equal(ld(e, mm + 40, 4), 1);
	/* the 32-bit hole is not RAM */
	pvh_img_phdr(&im, 2, &(seg){ PT_LOAD, 0x600, 3 * GiB, 0x10, 0x10 });
	assert_int_equal(load(e, &im, NULL, &boot, &err), -EINVAL);
	assert_string_equal(err.msg, "guest.elf: segment 2 [0xc0000000, 0xc0000010) is outside guest RAM");
	env_free(e);
}

/* ------------------------------------------------------------------ */
/* Headers                                                              */

static void test_not_elf(void **state)
{
	env *e = *state;
	img im;

	build_good(&im, true);
	im.buf[1] = 'X';
	expect_bad(e, &im, NULL, "guest.elf: not an ELF file");
	build_good(&im, true);
	im.size = 10;
	expect_bad(e, &im, NULL, "guest.elf: not an ELF file");
	assert_int_equal(vmm_pvh_load(e->m, NULL, 0, "empty.elf", NULL, NULL, NULL), -EINVAL);
}

static void test_bad_ident(void **state)
{
	env *e = *state;
	img im;

	build_good(&im, true);
	im.buf[EI_CLASS] = 3;
	expect_bad(e, &im, NULL, "guest.elf: unsupported ELF class 3 (expected ELF32 or ELF64)");
	build_good(&im, true);
	im.buf[EI_DATA] = ELFDATA2MSB;
	expect_bad(e, &im, NULL, "guest.elf: not a little-endian ELF file");
	build_good(&im, true);
	pvh_img_ehdr(&im, EM_AARCH64);
	expect_bad(e, &im, NULL, "guest.elf: ELF machine 183 is not x86 (EM_X86_64 or EM_386)");
}

static void test_truncated_headers(void **state)
{
	env *e = *state;
	img im;

	build_good(&im, true);
	im.size = 40;
	expect_bad(e, &im, NULL, "guest.elf: truncated: ELF header ends at byte 64 of 40");
	build_good(&im, false);
	im.size = 50;
	expect_bad(e, &im, NULL, "guest.elf: truncated: ELF header ends at byte 52 of 50");
	/* ELF64: headers at 64, 56 bytes each: header 2 would end at 232 */
	build_good(&im, true);
	im.size = 200;
	expect_bad(e, &im, NULL, "guest.elf: truncated: program header 2 ends at byte 232 of 200");
	build_good(&im, true);
	im.phoff = 0x10000;
	pvh_img_ehdr(&im, EM_X86_64);
	expect_bad(e, &im, NULL, "guest.elf: truncated: program headers start at byte 65536 of 1552");
	build_good(&im, false);
	im.size = 60;
	expect_bad(e, &im, NULL, "guest.elf: truncated: program header 0 ends at byte 84 of 60");
}

static void test_bad_phdr_table(void **state)
{
	env *e = *state;
	img im;

	build_good(&im, true);
	im.phnum = 0;
	pvh_img_ehdr(&im, EM_X86_64);
	expect_bad(e, &im, NULL, "guest.elf: no program headers");
	build_good(&im, true);
	im.phnum = PN_XNUM;
	pvh_img_ehdr(&im, EM_X86_64);
	expect_bad(e, &im, NULL, "guest.elf: too many (extended numbering) program headers");
	build_good(&im, true);
	((Elf64_Ehdr *)im.buf)->e_phentsize = 32;
	expect_bad(e, &im, NULL, "guest.elf: program header size is 32 bytes, expected 56 for ELF64");
}

/* ------------------------------------------------------------------ */
/* Segments                                                             */

static void test_truncated_segment(void **state)
{
	env *e = *state;
	img im;

	build_good(&im, true);
	im.size = 0x580;
	expect_bad(e, &im, NULL, "guest.elf: truncated: segment 2 ends at byte 1552 of 1408");
	build_good(&im, false);
	pvh_img_phdr(&im, 1, &(seg){ PT_LOAD, 0x200, 0x100000, 0x1000, 0x1000 });
	expect_bad(e, &im, NULL, "guest.elf: truncated: segment 1 ends at byte 4608 of 1552");
	build_good(&im, true);
	pvh_img_phdr(&im, 1, &(seg){ PT_LOAD, UINT64_MAX - 0xff, 0x100000, 0x200, 0x1000 });
	expect_bad(e, &im, NULL, "guest.elf: segment 1: file offset 0xffffffffffffff00 plus size 0x200 overflows");
}

static void test_segment_outside_ram(void **state)
{
	env *e = *state;
	img im;

	build_good(&im, true);
	pvh_img_phdr(&im, 2, &(seg){ PT_LOAD, 0x600, 0x10000000, 0x10, 0x1000 });
	expect_bad(e, &im, NULL, "guest.elf: segment 2 [0x10000000, 0x10001000) is outside guest RAM");
	/* straddling the end of RAM */
	pvh_img_phdr(&im, 2, &(seg){ PT_LOAD, 0x600, 64 * MiB - 0x8, 0x10, 0x10 });
	expect_bad(e, &im, NULL, "guest.elf: segment 2 [0x3fffff8, 0x4000008) is outside guest RAM");
	/* ELF32 into the ROM */
	build_good(&im, false);
	pvh_img_phdr(&im, 1, &(seg){ PT_LOAD, 0x200, MVT_ROM_BASE, 0x300, 0x300 });
	expect_bad(e, &im, NULL, "guest.elf: segment 1 [0xffff0000, 0xffff0300) is outside guest RAM");
}

static void test_segment_wraps(void **state)
{
	env *e = *state;
	img im;

	build_good(&im, true);
	pvh_img_phdr(&im, 1, &(seg){ PT_LOAD, 0x200, 0xfffffffffffff000ULL, 0x300, 0x2000 });
	expect_bad(e, &im, NULL,
		   "guest.elf: segment 1 at 0xfffffffffffff000 with 0x2000 bytes wraps past the end of the address space");
}

static void test_segment_filesz_gt_memsz(void **state)
{
	env *e = *state;
	img im;

	build_good(&im, true);
	pvh_img_phdr(&im, 1, &(seg){ PT_LOAD, 0x200, 0x100000, 0x300, 0x200 });
	expect_bad(e, &im, NULL, "guest.elf: segment 1 has more file bytes (0x300) than memory bytes (0x200)");
}

static void test_segment_over_boot_area(void **state)
{
	env *e = *state;
	img im;

	build_good(&im, true);
	pvh_img_phdr(&im, 2, &(seg){ PT_LOAD, 0x600, 0x5000, 0x10, 0x1001 });
	expect_bad(e, &im, NULL, "guest.elf: segment 2 [0x5000, 0x6001) overlaps the PVH boot area [0x6000, 0x8000)");
	/* just below and just above are fine */
	pvh_img_phdr(&im, 2, &(seg){ PT_LOAD, 0x600, 0x5000, 0x10, 0x1000 });
	assert_int_equal(load(e, &im, NULL, NULL, NULL), 0);
	pvh_img_phdr(&im, 2, &(seg){ PT_LOAD, 0x600, 0x8000, 0x10, 0x10 });
	assert_int_equal(load(e, &im, NULL, NULL, NULL), 0);
}

static void test_entry_outside_image(void **state)
{
	env *e = *state;
	img im;
	uint32_t entry = 0x300000;

	build_good(&im, true);
	pvh_img_phdr(&im, 0, &(seg){ PT_NOTE, NOTE_OFF, 0, pvh_img_note(im.buf + NOTE_OFF, "Xen", 18, &entry, 4), 0 });
	expect_bad(e, &im, NULL, "guest.elf: PVH entry 0x300000 is not inside any loaded segment");
}

static void test_cmdline_too_long(void **state)
{
	env *e = *state;
	img im;
	size_t n = VMM_PVH_BOOT_END - VMM_PVH_START_INFO;
	char *cl = malloc(n);

	memset(cl, 'x', n - 1);
	cl[n - 1] = 0;
	build_good(&im, true);
	assert_int_equal(load(e, &im, cl, NULL, NULL), -EINVAL);
	memset(e->ram, FILL, e->ram_size);
	expect_bad(e, &im, cl, "command line: 8192 bytes do not fit the 7680 the PVH boot area holds");
	/* the longest that fits */
	cl[7679] = 0;
	assert_int_equal(load(e, &im, cl, NULL, NULL), 0);
	assert_int_equal(strlen((char *)e->ram + ld(e, VMM_PVH_START_INFO + 24, 8)), 7679);
	free(cl);
}

/* ------------------------------------------------------------------ */
/* Notes                                                                */

static void test_no_note(void **state)
{
	env *e = *state;
	img im;

	/* the notes are there but in a segment that is not PT_NOTE */
	build_good(&im, true);
	pvh_img_phdr(&im, 0, &(seg){ PT_NULL, NOTE_OFF, 0, 44, 44 });
	expect_bad(e, &im, NULL, "guest.elf: no XEN_ELFNOTE_PHYS32_ENTRY note (not a PVH kernel)");
	/* right type, wrong name */
	build_good(&im, false);
	memcpy(im.buf + NOTE_OFF + 24 + 12, "Xe!", 4);
	expect_bad(e, &im, NULL, "guest.elf: no XEN_ELFNOTE_PHYS32_ENTRY note (not a PVH kernel)");
	/* right name, another Xen note type */
	build_good(&im, true);
	im.buf[NOTE_OFF + 24 + 8] = 17;
	expect_bad(e, &im, NULL, "guest.elf: no XEN_ELFNOTE_PHYS32_ENTRY note (not a PVH kernel)");
}

static void test_hostile_notes(void **state)
{
	env *e = *state;
	img im;
	Elf64_Nhdr *gnu;

	/* the first note claims a 4 GiB value: it would run past the segment */
	build_good(&im, true);
	gnu = (Elf64_Nhdr *)(im.buf + NOTE_OFF);
	gnu->n_descsz = 0xfffffff0u;
	expect_bad(e, &im, NULL,
		   "guest.elf: note at byte 256 (4-byte name, 4294967280-byte value) runs past the end of segment 0");
	build_good(&im, true);
	gnu = (Elf64_Nhdr *)(im.buf + NOTE_OFF);
	gnu->n_namesz = 0xffffffffu;
	expect_bad(e, &im, NULL,
		   "guest.elf: note at byte 256 (4294967295-byte name, 8-byte value) runs past the end of segment 0");
	/* the Xen note's value one byte past the segment */
	build_good(&im, true);
	pvh_img_phdr(&im, 0, &(seg){ PT_NOTE, NOTE_OFF, 0, 43, 43 });
	expect_bad(e, &im, NULL,
		   "guest.elf: note at byte 280 (4-byte name, 4-byte value) runs past the end of segment 0");
	/* a note header cut short */
	build_good(&im, true);
	pvh_img_phdr(&im, 0, &(seg){ PT_NOTE, NOTE_OFF, 0, 30, 30 });
	expect_bad(e, &im, NULL, "guest.elf: note at byte 280 is cut off by the end of segment 0");
	/* the Xen note with a 2-byte value */
	build_good(&im, true);
	im.buf[NOTE_OFF + 24 + 4] = 2;
	expect_bad(e, &im, NULL,
		   "guest.elf: the XEN_ELFNOTE_PHYS32_ENTRY note has a 2-byte value (expected 4 or 8)");
	/* a PT_NOTE segment past the end of the file */
	build_good(&im, true);
	pvh_img_phdr(&im, 0, &(seg){ PT_NOTE, 0x1000, 0, 0x100, 0 });
	expect_bad(e, &im, NULL, "guest.elf: truncated: segment 0 ends at byte 4352 of 1552");
}

/* ------------------------------------------------------------------ */
/* The project's guest                                                  */

static bool guest_elf_path(char *path, size_t len)
{
	const char *env_path = getenv("MV_GUEST_ELF");
	char exe[PATH_MAX];
	ssize_t n;

	if (env_path && *env_path) {
		snprintf(path, len, "%s", env_path);
		return true;
	}
	/* tests run from <build>/tests/; the guest is <build>/guests/testguest.elf */
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return false;
	exe[n] = 0;
	snprintf(path, len, "%s/../guests/testguest.elf", dirname(exe));
	return true;
}

static uint8_t *slurp(const char *path, size_t *size)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = malloc(n > 0 ? n : 1);
	if (fread(buf, 1, n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	*size = (size_t)n;
	return buf;
}

static void test_project_guest(void **state)
{
	env *e = env_new(256 * MiB);
	char path[PATH_MAX + 64];
	vmm_pvh_boot boot;
	mv_error err = { 0 };
	uint8_t *elf = NULL;
	size_t size = 0;

	(void)state;
	if (guest_elf_path(path, sizeof(path)))
		elf = slurp(path, &size);
	if (!elf) {
		printf("SKIP: test_project_guest: no guest ELF at %s (guests/ not built)\n", path);
		env_free(e);
		skip();
	}
	if (vmm_pvh_load(e->m, elf, size, path, "workload=touch", &boot, &err))
		fail_msg("%s", err.msg);
	assert_true(boot.entry >= boot.image_start && boot.entry < boot.image_end);
	assert_true(boot.image_start >= VMM_PVH_BOOT_END);
	assert_int_equal(ld(e, boot.start_info, 4), 0x336ec578);
	/* every truncation of a real image is refused and writes nothing */
	memset(e->ram, FILL, 4 * MiB);
	for (size_t cut = 0; cut < size; cut += 1 + size / 97) {
		if (vmm_pvh_load(e->m, elf, cut, path, NULL, &boot, &err) == 0)
			continue;  /* a cut past the last segment's file bytes is a valid image */
		assert_int_equal(err.code, -EINVAL);
		for (uint64_t i = 0; i < 4 * MiB; i++)
			if (e->ram[i] != FILL)
				fail_msg("cut at %zu: RAM changed at 0x%" PRIx64, cut, i);
	}
	free(elf);
	env_free(e);
}

/* ------------------------------------------------------------------ */
/* Boot state on a fake accelerator                                     */

typedef struct fake_vm {
	hv_vm base;
	size_t nr_cpuid;        /* entries the fake reports */
	int calls_supported;
} fake_vm;

typedef struct fake_vcpu {
	hv_vcpu base;
	hv_x86_regs regs;
	hv_x86_sregs sregs;
	hv_x86_cpuid cpuid[200];
	size_t nr_cpuid;
	int order;              /* 1: CPUID was set before the segment registers */
} fake_vcpu;

static int fk_vm_create(const hv_vm_config *cfg, hv_vm **out, mv_error *err)
{
	fake_vm *v = calloc(1, sizeof(*v));

	(void)cfg;
	(void)err;
	v->nr_cpuid = 100;
	*out = &v->base;
	return 0;
}

static void fk_vm_destroy(hv_vm *vm) { free(vm); }

static int fk_vcpu_create(hv_vm *vm, uint32_t id, hv_vcpu **out, mv_error *err)
{
	fake_vcpu *c = calloc(1, sizeof(*c));

	(void)vm;
	(void)id;
	(void)err;
	c->sregs.apic_base = 0xfee00900;
	c->sregs.cr8 = 3;
	c->regs.rax = 0x1234;
	*out = &c->base;
	return 0;
}

static void fk_vcpu_destroy(hv_vcpu *v) { free(v); }

static int fk_get_regs(hv_vcpu *v, hv_x86_regs *r) { *r = ((fake_vcpu *)v)->regs; return 0; }
static int fk_set_regs(hv_vcpu *v, const hv_x86_regs *r) { ((fake_vcpu *)v)->regs = *r; return 0; }
static int fk_get_sregs(hv_vcpu *v, hv_x86_sregs *s) { *s = ((fake_vcpu *)v)->sregs; return 0; }

static int fk_set_sregs(hv_vcpu *v, const hv_x86_sregs *s)
{
	fake_vcpu *c = (fake_vcpu *)v;

	c->sregs = *s;
	c->order = c->nr_cpuid ? 1 : 2;
	return 0;
}

/* Leaves 0..nr-1 plus leaf 0xb sub-leaves and 0x1f; -E2BIG as KVM. */
static int fk_supported_cpuid(hv_vm *vm, hv_x86_cpuid *out, size_t max)
{
	fake_vm *v = (fake_vm *)vm;

	v->calls_supported++;
	if (max < v->nr_cpuid)
		return -E2BIG;
	for (size_t i = 0; i < v->nr_cpuid; i++)
		out[i] = (hv_x86_cpuid){ .function = i < 2 ? i : i < 4 ? 0xb : i < 5 ? 0x1f : 0x80000000u + i,
					 .index = i == 3, .ebx = 0xaabbccdd, .edx = 0x11 };
	return (int)v->nr_cpuid;
}

static int fk_set_cpuid(hv_vcpu *v, const hv_x86_cpuid *e, size_t n)
{
	fake_vcpu *c = (fake_vcpu *)v;

	if (n > 200)
		return -E2BIG;
	memcpy(c->cpuid, e, n * sizeof(*e));
	c->nr_cpuid = n;
	return 0;
}

static const hv_ops fake_ops = {
	.name = "fake",
	.vm_create = fk_vm_create,
	.vm_destroy = fk_vm_destroy,
	.vcpu_create = fk_vcpu_create,
	.vcpu_destroy = fk_vcpu_destroy,
	.get_regs = fk_get_regs,
	.set_regs = fk_set_regs,
	.get_sregs = fk_get_sregs,
	.set_sregs = fk_set_sregs,
	.supported_cpuid = fk_supported_cpuid,
	.set_cpuid = fk_set_cpuid,
};

static void check_flat(const hv_x86_segment *s, uint16_t sel, uint8_t type)
{
	assert_int_equal(s->selector, sel);
	assert_int_equal(s->type, type);
	assert_int_equal(s->base, 0);
	assert_int_equal(s->limit, 0xffffffff);
	assert_int_equal(s->present, 1);
	assert_int_equal(s->s, 1);
	assert_int_equal(s->db, 1);
	assert_int_equal(s->g, 1);
	assert_int_equal(s->l, 0);
	assert_int_equal(s->dpl, 0);
	assert_int_equal(s->unusable, 0);
}

static void test_boot_state_fake(void **state)
{
	hv_vm_config cfg = { .arch = HV_ARCH_X86_64 };
	vmm_pvh_boot boot = { .entry = 0x1000c0, .start_info = VMM_PVH_START_INFO };
	mv_error err = { 0 };
	hv_vm *vm;
	hv_vcpu *vcpu;
	fake_vcpu *c;

	(void)state;
	assert_int_equal(hv_vm_create_ops(&fake_ops, &cfg, &vm, &err), 0);
	assert_int_equal(hv_vcpu_create(vm, 5, &vcpu, &err), 0);
	if (vmm_x86_vcpu_boot_state(vm, vcpu, &boot, &err))
		fail_msg("%s", err.msg);
	c = (fake_vcpu *)vcpu;
	check_flat(&c->sregs.cs, 0x8, 0xb);
	check_flat(&c->sregs.ds, 0x10, 3);
	check_flat(&c->sregs.es, 0x10, 3);
	check_flat(&c->sregs.fs, 0x10, 3);
	check_flat(&c->sregs.gs, 0x10, 3);
	check_flat(&c->sregs.ss, 0x10, 3);
	assert_int_equal(c->sregs.tr.type, 0xb);
	assert_int_equal(c->sregs.tr.present, 1);
	assert_int_equal(c->sregs.tr.s, 0);
	assert_int_equal(c->sregs.tr.unusable, 0);
	assert_int_equal(c->sregs.ldt.unusable, 1);
	assert_int_equal(c->sregs.cr0, 0x11);
	assert_int_equal(c->sregs.cr4, 0);
	assert_int_equal(c->sregs.cr3, 0);
	assert_int_equal(c->sregs.efer, 0);
	assert_int_equal(c->sregs.apic_base, 0xfee00900);   /* kept */
	assert_int_equal(c->regs.rip, 0x1000c0);
	assert_int_equal(c->regs.rbx, VMM_PVH_START_INFO);
	assert_int_equal(c->regs.rflags, 2);
	assert_int_equal(c->regs.rax, 0);
	/* CPUID: the whole table (grown past -E2BIG), APIC ids of vCPU 5 */
	assert_int_equal(c->nr_cpuid, 100);
	assert_true(((fake_vm *)vm)->calls_supported >= 2);
	assert_int_equal(c->cpuid[0].ebx, 0xaabbccdd);
	assert_int_equal(c->cpuid[1].function, 1);
	assert_int_equal(c->cpuid[1].ebx, 0x05bbccdd);
	assert_int_equal(c->cpuid[1].edx, 0x11);
	assert_int_equal(c->cpuid[2].edx, 5);
	assert_int_equal(c->cpuid[3].edx, 5);
	assert_int_equal(c->cpuid[4].edx, 5);
	assert_int_equal(c->cpuid[5].edx, 0x11);
	assert_int_equal(c->order, 1);
	hv_vcpu_destroy(vcpu);
	hv_vm_destroy(vm);
}

/* ------------------------------------------------------------------ */
/* Boot state on KVM: a tiny PVH image prints and exits                 */

/*
 * 32-bit code at ENTRY: out 'P' to debugcon, then the start_info magic
 * (read through EBX) to isa-debug-exit, then hlt.
 */
static const uint8_t tiny_code[] = {
	0x66, 0xba, 0xe9, 0x00,         /* mov dx, 0xe9 */
	0xb0, 'P',                      /* mov al, 'P' */
	0xee,                           /* out dx, al */
	0x8b, 0x03,                     /* mov eax, [ebx] */
	0x66, 0xba, 0xf4, 0x00,         /* mov dx, 0xf4 */
	0xef,                           /* out dx, eax */
	0xf4,                           /* hlt */
};

static void build_tiny(img *im)
{
	uint32_t entry = ENTRY;

	build_good(im, true);
	pvh_img_phdr(im, 0, &(seg){ PT_NOTE, NOTE_OFF, 0, pvh_img_note(im->buf + NOTE_OFF, "Xen", 18, &entry, 4), 0 });
	memcpy(im->buf + 0x200 + (ENTRY - 0x100000), tiny_code, sizeof(tiny_code));
}

static void run_tiny(env *e, hv_vcpu *vcpu)
{
	for (int i = 0; i < 16 && !e->nr_exits; i++) {
		hv_exit *x;

		assert_int_equal(hv_vcpu_run(vcpu, &x), 0);
		if (x->reason != HV_EXIT_IO)
			fail_msg("unexpected exit %s", hv_exit_reason_name(x->reason));
		assert_true(x->io.is_write);
		assert_int_equal(mv_as_write(vmm_x86_io_as(e->m), x->io.port, x->io.data,
					     (size_t)x->io.size * x->io.count), MV_MEMTX_OK);
	}
}

static void test_boot_state_kvm(void **state)
{
	hv_vm_config cfg = { .arch = HV_ARCH_X86_64 };
	env *e = *state;
	mv_error err = { 0 };
	vmm_pvh_boot boot;
	hv_vm *vm;
	hv_vcpu *vcpu;
	hv_x86_sregs s;
	img im;
	int ret = hv_vm_create("kvm", &cfg, &vm, &err);

	if (ret == -ENODEV) {
		printf("SKIP: test_boot_state_kvm: %s\n", err.msg);
		skip();
	}
	assert_int_equal(ret, 0);
	build_tiny(&im);
	if (load(e, &im, NULL, &boot, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(hv_set_memslot(vm, &(hv_memslot){ .slot = 0, .gpa = 0, .size = e->ram_size,
							  .hva = e->ram }), 0);
	assert_int_equal(hv_vcpu_create(vm, 0, &vcpu, &err), 0);
	if (vmm_x86_vcpu_boot_state(vm, vcpu, &boot, &err))
		fail_msg("%s", err.msg);
	/* KVM took the state as given */
	assert_int_equal(hv_vcpu_get_sregs(vcpu, &s), 0);
	assert_int_equal(s.cs.selector, 0x8);
	assert_int_equal(s.cs.limit, 0xffffffff);
	assert_int_equal(s.tr.type, 0xb);
	assert_int_equal(s.cr0 & 0x11, 0x11);
	run_tiny(e, vcpu);
	assert_int_equal(e->nout, 1);
	assert_int_equal(e->out[0], 'P');
	assert_int_equal(e->nr_exits, 1);
	assert_int_equal(e->exit_status, (int)((0x336ec578u << 1) | 1));
	hv_vcpu_destroy(vcpu);
	hv_vm_destroy(vm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_good_elf64, setup, teardown),
		cmocka_unit_test_setup_teardown(test_good_elf32, setup, teardown),
		cmocka_unit_test_setup_teardown(test_entry_note_8_bytes, setup, teardown),
		cmocka_unit_test(test_high_ram),
		cmocka_unit_test_setup_teardown(test_not_elf, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_ident, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_headers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_phdr_table, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_segment, setup, teardown),
		cmocka_unit_test_setup_teardown(test_segment_outside_ram, setup, teardown),
		cmocka_unit_test_setup_teardown(test_segment_wraps, setup, teardown),
		cmocka_unit_test_setup_teardown(test_segment_filesz_gt_memsz, setup, teardown),
		cmocka_unit_test_setup_teardown(test_segment_over_boot_area, setup, teardown),
		cmocka_unit_test_setup_teardown(test_entry_outside_image, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cmdline_too_long, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_note, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_notes, setup, teardown),
		cmocka_unit_test(test_project_guest),
		cmocka_unit_test(test_boot_state_fake),
		cmocka_unit_test_setup_teardown(test_boot_state_kvm, setup, teardown),
	};

	mv_rcu_register_thread();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
