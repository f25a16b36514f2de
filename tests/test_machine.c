/*
 * Machines: -m parsing, the pc / microvm / virt-arm64 layouts (pc and
 * microvm against saved QEMU 7.2 `info mtree` output), DIMM hot(un)plug
 * with every error path and what listeners see, failure injection.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "memvirt/listener.h"
#include "memvirt/machine.h"
#include "memvirt/mtree.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

/* ------------------------------------------------------------------ */
/* Helpers                                                              */

static mv_memory *new_mem(void)
{
	mv_memory *mem;

	assert_int_equal(mv_memory_new(NULL, &mem), 0);
	return mem;
}

static mv_machine *new_machine(mv_memory *mem, const char *type, const char *m_arg)
{
	mv_machine_opts o = { 0 };
	mv_error err = { 0 };
	mv_machine *m = NULL;

	if (m_arg && mv_machine_parse_mem(m_arg, &o, &err))
		fail_msg("-m %s: %s", m_arg, err.msg);
	if (mv_machine_new(mem, type, &o, &m, &err))
		fail_msg("machine %s -m %s: %s", type, m_arg ? m_arg : "", err.msg);
	return m;
}

static void expect_msg(const mv_error *err, const char *needle)
{
	if (!strstr(err->msg, needle))
		fail_msg("expected \"%s\" in: %s", needle, err->msg);
}

static char *slurp(const char *name)
{
	const char *src = getenv("MV_SRCDIR");
	char path[1024];
	char *buf;
	long n;
	FILE *f;

	if (src)
		snprintf(path, sizeof(path), "%s/tests/machine/%s", src, name);
	else	/* run by hand: next to this source file */
		snprintf(path, sizeof(path), "%.*smachine/%s",
			 (int)(strrchr(__FILE__, '/') ? strrchr(__FILE__, '/') - __FILE__ + 1 : 0),
			 __FILE__, name);
	f = fopen(path, "r");
	if (!f)
		fail_msg("cannot open %s (set MV_SRCDIR)", path);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = 0;
	fclose(f);
	return buf;
}

/* Our `info mtree -f` (flat) or `info mtree` output as one string. */
static char *print_mtree(mv_memory *mem, bool flat)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	assert_int_equal(flat ? mv_mtree_print_flat(f, mem) : mv_mtree_print_tree(f, mem), 0);
	fclose(f);
	return buf;
}

/*
 * The block of @text that contains the line starting with @marker, up to
 * the next blank line: the block of one address space. Range lines only
 * (headers differ: QEMU also has cpu-memory-0 etc.). Caller frees.
 */
static char *block_of(const char *text, const char *marker)
{
	const char *hit = strstr(text, marker), *start = text, *end, *p;
	char *out, *o;

	if (!hit)
		fail_msg("no block \"%s\" in output", marker);
	for (p = text; (p = strstr(p, "\n\n")) && p < hit; p += 2)
		start = p + 2;
	end = strstr(hit, "\n\n");
	end = end ? end + 1 : hit + strlen(hit);
	out = o = calloc(1, (size_t)(end - start) + 1);
	assert_non_null(out);
	while (start < end) {
		const char *nl = memchr(start, '\n', (size_t)(end - start));
		size_t n = nl ? (size_t)(nl - start) : (size_t)(end - start);

		/* range lines are indented by two spaces at least */
		if (n > 2 && start[0] == ' ' && start[1] == ' ') {
			memcpy(o, start, n);
			o += n;
			*o++ = '\n';
		}
		start += n + 1;
	}
	return out;
}

static void assert_same_block(const char *what, const char *qemu, const char *ours)
{
	if (strcmp(qemu, ours))
		fail_msg("%s differs from QEMU\n--- QEMU\n%s--- ours\n%s", what, qemu, ours);
}

/* One parsed `info mtree -f` range line. */
struct flat_line {
	uint64_t start, last, offset;
	int prio;
	char kind[16], name[64];
};

static bool parse_flat_line(const char *line, struct flat_line *fl)
{
	int n;

	fl->offset = 0;
	n = sscanf(line, " %" SCNx64 "-%" SCNx64 " (prio %d, %15[^)]): %63s @%" SCNx64,
		   &fl->start, &fl->last, &fl->prio, fl->kind, fl->name, &fl->offset);
	return n >= 5;
}

/* The FlatView of @as holds exactly this range (start, end, name, offset). */
static bool flatview_has(mv_address_space *as, const struct flat_line *fl)
{
	mv_flatview *fv = mv_address_space_get_flatview(as);
	bool found = false;

	for (size_t i = 0; i < mv_flatview_nr_ranges(fv) && !found; i++) {
		const mv_flat_range *fr = mv_flatview_range(fv, i);

		found = fr->start == fl->start && fr->start + (uint64_t)(fr->size - 1) == fl->last &&
			!strcmp(mv_region_name(fr->mr), fl->name) &&
			fr->offset_in_region == fl->offset &&
			mv_region_priority(fr->mr) == fl->prio;
	}
	mv_flatview_unref(fv);
	return found;
}

/* The range of the FlatView of @as named @name that contains @addr. */
static bool find_range(mv_address_space *as, const char *name, uint64_t addr, uint64_t *start,
		       uint64_t *size)
{
	mv_flatview *fv = mv_address_space_get_flatview(as);
	bool found = false;

	for (size_t i = 0; i < mv_flatview_nr_ranges(fv) && !found; i++) {
		const mv_flat_range *fr = mv_flatview_range(fv, i);

		if (!strcmp(mv_region_name(fr->mr), name) && addr >= fr->start &&
		    addr - fr->start < fr->size) {
			found = true;
			*start = fr->start;
			*size = (uint64_t)fr->size;
		}
	}
	mv_flatview_unref(fv);
	return found;
}

static void expect_range(mv_address_space *as, const char *name, uint64_t start, uint64_t size)
{
	uint64_t s = 0, z = 0;

	if (!find_range(as, name, start, &s, &z) || s != start || z != size)
		fail_msg("no range %s at 0x%" PRIx64 " size 0x%" PRIx64 " (found 0x%" PRIx64 "+0x%" PRIx64 ")",
			 name, start, size, s, z);
}

static uint64_t count_ranges(mv_address_space *as, const char *name)
{
	mv_flatview *fv = mv_address_space_get_flatview(as);
	uint64_t n = 0;

	for (size_t i = 0; i < mv_flatview_nr_ranges(fv); i++)
		n += !strcmp(mv_region_name(mv_flatview_range(fv, i)->mr), name);
	mv_flatview_unref(fv);
	return n;
}

/* ------------------------------------------------------------------ */
/* -m parsing                                                           */

static void expect_parse(const char *arg, uint64_t size, unsigned slots, uint64_t maxmem)
{
	mv_machine_opts o;
	mv_error err = { 0 };

	memset(&o, 0xaa, sizeof(o));
	if (mv_machine_parse_mem(arg, &o, &err))
		fail_msg("-m %s: %s", arg, err.msg);
	assert_int_equal(o.ram_size, size);
	assert_int_equal(o.slots, slots);
	assert_int_equal(o.maxmem, maxmem);
}

static void expect_parse_error(const char *arg, const char *needle)
{
	mv_machine_opts o = { .ram_size = 77, .slots = 7, .maxmem = 777 };
	mv_error err = { 0 };

	assert_int_equal(mv_machine_parse_mem(arg, &o, &err), -EINVAL);
	assert_int_equal(err.code, -EINVAL);
	expect_msg(&err, needle);
	/* nothing written on error */
	assert_int_equal(o.ram_size, 77);
	assert_int_equal(o.slots, 7);
	assert_int_equal(o.maxmem, 777);
}

static void test_parse_good(void **state)
{
	(void)state;
	expect_parse("4G", 4 * GiB, 0, 0);
	expect_parse("4096", 4 * GiB, 0, 0);           /* MiB without suffix */
	expect_parse("size=4G", 4 * GiB, 0, 0);
	expect_parse("size=4096", 4 * GiB, 0, 0);
	expect_parse("128M", 128 * MiB, 0, 0);
	expect_parse("1.5G", 3 * GiB / 2, 0, 0);
	expect_parse("4G,slots=4,maxmem=8G", 4 * GiB, 4, 8 * GiB);
	expect_parse("size=4G,maxmem=8G,slots=2", 4 * GiB, 2, 8 * GiB);
	expect_parse("4G,maxmem=8G", 4 * GiB, 0, 8 * GiB);
	expect_parse("4G,maxmem=0x200000000", 4 * GiB, 0, 8 * GiB);
	expect_parse("4G,maxmem=8G,maxmem=9G", 4 * GiB, 0, 9 * GiB);   /* last wins */
	expect_parse("4G,slots=256,maxmem=8G", 4 * GiB, 256, 8 * GiB);
	expect_parse("0", 0, 0, 0);                     /* board default */
	expect_parse("", 0, 0, 0);
	expect_parse("64M,slots=1,maxmem=1G", 64 * MiB, 1, GiB);
}

static void test_parse_bad(void **state)
{
	(void)state;
	expect_parse_error("4G,maxmem=2G", "less than the initial memory size");
	/* maxmem is in bytes without a suffix, as in QEMU */
	expect_parse_error("4G,maxmem=8192", "maxmem=8 KiB (0x2000) is less than");
	expect_parse_error("4G,slots=2", "slots=2 needs maxmem");
	expect_parse_error("4G,slots=2,maxmem=4G", "equals the initial memory size");
	expect_parse_error("4G,slots=257,maxmem=8G", "more than the 256 memory slots");
	expect_parse_error("4097K", "not a multiple of the 4 KiB page size");
	expect_parse_error("4G,maxmem=4194305K", "maxmem=4194305 KiB is not a multiple");
	expect_parse_error("foo", "invalid size 'foo'");
	expect_parse_error("4Q", "invalid size '4Q'");
	expect_parse_error("1.3", "invalid size '1.3'");   /* not whole bytes */
	expect_parse_error("4G,bar=1", "unknown parameter 'bar'");
	expect_parse_error("4G,slots=abc,maxmem=8G", "invalid slots 'abc'");
	expect_parse_error("4G,slots=-1,maxmem=8G", "invalid slots '-1'");
	expect_parse_error("4G,maxmem=lots", "invalid maxmem 'lots'");
	expect_parse_error(",slots=1", "starts with an empty size");
	expect_parse_error("4G,8G", "'8G' is not of the form key=value");
	expect_parse_error("99999999999T", "invalid size");
}

/* ------------------------------------------------------------------ */
/* Machine creation errors                                              */

static void test_new_errors(void **state)
{
	mv_memory *mem = new_mem();
	mv_machine_opts o = { 0 };
	mv_error err = { 0 };
	mv_machine *m = NULL;
	const char *const *types = mv_machine_types();

	(void)state;
	assert_string_equal(types[0], "pc");
	assert_string_equal(types[1], "microvm");
	assert_string_equal(types[2], "virt-arm64");
	assert_null(types[3]);

	assert_int_equal(mv_machine_new(mem, "q35", &o, &m, &err), -EINVAL);
	expect_msg(&err, "unknown machine type 'q35'");
	o = (mv_machine_opts){ .ram_size = 1 * GiB, .slots = 2, .maxmem = 2 * GiB };
	assert_int_equal(mv_machine_new(mem, "microvm", &o, &m, &err), -EINVAL);
	expect_msg(&err, "machine 'microvm' has no memory hotplug");
	o = (mv_machine_opts){ .ram_size = 4097 * 1024 };
	assert_int_equal(mv_machine_new(mem, "pc", &o, &m, &err), -EINVAL);
	expect_msg(&err, "4 KiB page size");
	o = (mv_machine_opts){ .ram_size = 1 * GiB, .slots = 300, .maxmem = 2 * GiB };
	assert_int_equal(mv_machine_new(mem, "pc", &o, &m, &err), -EINVAL);
	expect_msg(&err, "slots=300");
	o = (mv_machine_opts){ .ram_size = 1024 * GiB };
	assert_int_equal(mv_machine_new(mem, "virt-arm64", &o, &m, &err), -EINVAL);
	expect_msg(&err, "40-bit IPA space");
	o = (mv_machine_opts){ .ram_size = 1ULL << 52 };
	assert_int_equal(mv_machine_new(mem, "pc", &o, &m, &err), -EINVAL);
	expect_msg(&err, "52-bit");
	assert_null(m);
	/* nothing was left behind */
	assert_int_equal(mv_memory_nr_address_spaces(mem), 0);
	assert_null(mv_ram_list_find(mv_memory_ram_list(mem), "pc.ram"));
	mv_memory_free(mem);
}

/* ------------------------------------------------------------------ */
/* pc against QEMU 7.2                                                  */

/* The names the brief singles out: every QEMU line with one must be ours too. */
static bool mentions_pc_memory(const char *line)
{
	static const char *const names[] = { "pc.ram", "pc.bios", "pc.rom", "ram-below-4g",
					     "ram-above-4g", "isa-bios" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strstr(line, names[i]))
			return true;
	return false;
}

static void test_pc_4G_vs_qemu(void **state)
{
	mv_memory *mem = new_mem();
	mv_machine *m = new_machine(mem, "pc", "4G");
	char *qemu = slurp("qemu-7.2-pc-4G-mtree-f.txt");
	char *ours = print_mtree(mem, true);
	char *qblock, *oblock, *line, *save = NULL;
	int checked = 0;

	(void)state;
	/* every line naming our RAM/ROM regions, anywhere in QEMU's output */
	for (line = strtok_r(qemu, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		struct flat_line fl;
		char want[256];

		if (!mentions_pc_memory(line))
			continue;
		snprintf(want, sizeof(want), "%s\n", line);
		if (!strstr(ours, want))
			fail_msg("QEMU line missing from our mtree -f:\n%s\nours:\n%s", line, ours);
		/* and straight from the FlatView, independent of the printer */
		assert_true(parse_flat_line(line, &fl));
		if (!flatview_has(mv_machine_memory_as(m), &fl))
			fail_msg("QEMU range not in our FlatView: %s", line);
		checked++;
	}
	assert_true(checked >= 5 * 2);   /* FlatViews #0 and #2 of QEMU */
	free(qemu);

	/* the whole "memory" FlatView is identical, I/O windows included */
	qemu = slurp("qemu-7.2-pc-4G-mtree-f.txt");
	qblock = block_of(qemu, "AS \"memory\"");
	oblock = block_of(ours, "AS \"memory\"");
	assert_same_block("pc -m 4G FlatView", qblock, oblock);
	free(qblock);
	free(oblock);
	free(qemu);
	free(ours);

	/* and the tree of the "memory" address space, PAM and SMRAM aliases too */
	qemu = slurp("qemu-7.2-pc-4G-mtree.txt");
	ours = print_mtree(mem, false);
	qblock = block_of(qemu, "address-space: memory\n");
	oblock = block_of(ours, "address-space: memory\n");
	assert_same_block("pc -m 4G tree", qblock, oblock);
	free(qblock);
	free(oblock);
	free(qemu);
	free(ours);

	assert_string_equal(mv_machine_type(m), "pc");
	assert_int_equal(mv_ramblock_used_length(mv_machine_ram_block(m)), 4 * GiB);
	assert_string_equal(mv_ramblock_name(mv_machine_ram_block(m)), "pc.ram");
	assert_string_equal(mv_address_space_name(mv_machine_io_as(m)), "I/O");
	assert_int_equal((uint64_t)mv_region_size(mv_address_space_root(mv_machine_io_as(m))), 0x10000);
	assert_int_equal(mv_machine_device_memory_size(m), 0);
	mv_machine_free(m);
	mv_memory_free(mem);
}

static void test_pc_128M(void **state)
{
	mv_memory *mem = new_mem();
	mv_machine *m = new_machine(mem, "pc", "128M");
	mv_address_space *as = mv_machine_memory_as(m);
	char *qemu = slurp("qemu-7.2-pc-128M-mtree-f.txt");
	char *ours = print_mtree(mem, true);
	char *qblock = block_of(qemu, "AS \"memory\""), *oblock = block_of(ours, "AS \"memory\"");
	uint8_t buf[4] = { 1, 2, 3, 4 }, back[4];

	(void)state;
	assert_same_block("pc -m 128M FlatView", qblock, oblock);
	expect_range(as, "pc.ram", 0, 0xc0000);
	expect_range(as, "pc.ram", 0x100000, 128 * MiB - 0x100000);
	assert_false(find_range(as, "pc.ram", 4 * GiB, &(uint64_t){ 0 }, &(uint64_t){ 0 }));
	/* RAM works through the space; the BIOS is read-only */
	assert_int_equal(mv_as_write(as, 0x200000, buf, 4), MV_MEMTX_OK);
	assert_int_equal(mv_as_read(as, 0x200000, back, 4), MV_MEMTX_OK);
	assert_memory_equal(buf, back, 4);
	assert_int_equal(mv_as_write(as, 0xfffffff0, buf, 4), MV_MEMTX_DECODE_ERROR);
	/* placeholder devices read as zero */
	memset(back, 0xff, 4);
	assert_int_equal(mv_as_read(as, 0xfec00000, back, 4), MV_MEMTX_OK);
	assert_int_equal(back[0] | back[1] | back[2] | back[3], 0);
	free(qblock);
	free(oblock);
	free(qemu);
	free(ours);
	mv_machine_free(m);
	mv_memory_free(mem);
}

static void test_pc_device_memory_vs_qemu(void **state)
{
	mv_memory *mem = new_mem();
	mv_machine *m = new_machine(mem, "pc", "4G,slots=4,maxmem=8G");
	char *qemu = slurp("qemu-7.2-pc-4G-slots4-maxmem8G-mtree.txt");
	char *ours = print_mtree(mem, false);
	char *qblock = block_of(qemu, "address-space: memory\n");
	char *oblock = block_of(ours, "address-space: memory\n");

	(void)state;
	assert_same_block("pc -m 4G,slots=4,maxmem=8G tree", qblock, oblock);
	/* pc_memory_init: 1 GiB aligned after RAM; maxmem - ram + 1 GiB per slot */
	assert_int_equal(mv_machine_device_memory_base(m), 0x140000000ULL);
	assert_int_equal(mv_machine_device_memory_size(m), 8 * GiB);
	free(qblock);
	free(oblock);
	free(qemu);
	free(ours);
	mv_machine_free(m);
	mv_memory_free(mem);
}

/* The split rules of pc_init1 at a few sizes around 3.5 GiB. */
static void test_pc_split(void **state)
{
	static const struct {
		const char *m;
		uint64_t below, above, dm_base, dm_size;
	} cases[] = {
		{ "3300M", 3300 * MiB, 0, 0, 0 },
		{ "3583M", 3583 * MiB, 0, 0, 0 },
		{ "3584M", 0xc0000000, 512 * MiB, 0, 0 },     /* gigabyte_align kicks in */
		{ "8G", 0xc0000000, 5 * GiB, 0, 0 },
		{ "3585M,slots=1,maxmem=4G", 0xc0000000, 513 * MiB, 0x140000000, 511 * MiB + GiB },
		{ "4G,maxmem=8G", 0xc0000000, GiB, 0x140000000, 4 * GiB },
		{ "128M,slots=2,maxmem=1G", 128 * MiB, 0, 0x100000000, 896 * MiB + 2 * GiB },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		mv_memory *mem = new_mem();
		mv_machine *m = new_machine(mem, "pc", cases[i].m);
		mv_address_space *as = mv_machine_memory_as(m);
		uint64_t s = 0, z = 0;

		assert_true(find_range(as, "pc.ram", 0x100000, &s, &z));
		assert_int_equal(s + z, cases[i].below);
		if (cases[i].above)
			expect_range(as, "pc.ram", 4 * GiB, cases[i].above);
		else
			assert_false(find_range(as, "pc.ram", 4 * GiB, &s, &z));
		assert_int_equal(mv_machine_device_memory_base(m), cases[i].dm_base);
		assert_int_equal(mv_machine_device_memory_size(m), cases[i].dm_size);
		mv_machine_free(m);
		mv_memory_free(mem);
	}
}

/* ------------------------------------------------------------------ */
/* microvm and virt-arm64                                               */

static void test_microvm_vs_qemu(void **state)
{
	mv_memory *mem = new_mem();
	mv_machine *m = new_machine(mem, "microvm", "4G");
	mv_address_space *as = mv_machine_memory_as(m);
	char *qemu = slurp("qemu-7.2-microvm-4G-mtree-f.txt");
	char *ours = print_mtree(mem, true);
	char *qblock = block_of(qemu, "AS \"memory\""), *oblock = block_of(ours, "AS \"memory\"");

	(void)state;
	assert_same_block("microvm -m 4G FlatView", qblock, oblock);
	expect_range(as, "microvm.ram", 0x100000, 0xc0000000 - 0x100000);
	expect_range(as, "microvm.ram", 4 * GiB, GiB);
	expect_range(as, "pc.bios", 0xffff0000, 0x10000);
	expect_range(as, "ioapic", 0xfec00000, 0x1000);
	assert_int_equal(count_ranges(as, "virtio-mmio"), 24);
	expect_range(as, "virtio-mmio", 0xfeb00000, 512);
	expect_range(as, "virtio-mmio", 0xfeb00000 + 23 * 512, 512);
	assert_non_null(mv_machine_io_as(m));
	free(qblock);
	free(oblock);
	free(qemu);
	free(ours);
	mv_machine_free(m);
	mv_memory_free(mem);

	/* 3 GiB exactly stays below 4 GiB */
	mem = new_mem();
	m = new_machine(mem, "microvm", "3G");
	expect_range(mv_machine_memory_as(m), "microvm.ram", 0x100000, 3 * GiB - 0x100000);
	assert_false(find_range(mv_machine_memory_as(m), "microvm.ram", 4 * GiB,
				&(uint64_t){ 0 }, &(uint64_t){ 0 }));
	mv_machine_free(m);
	mv_memory_free(mem);
}

static void test_virt_arm64(void **state)
{
	mv_memory *mem = new_mem();
	mv_machine *m = new_machine(mem, "virt-arm64", "2G,slots=2,maxmem=4G");
	mv_address_space *as = mv_machine_memory_as(m);
	uint8_t b[4];

	(void)state;
	assert_null(mv_machine_io_as(m));
	expect_range(as, "mach-virt.ram", 0x40000000, 2 * GiB);
	expect_range(as, "virt.flash0", 0, 0x04000000);
	expect_range(as, "virt.flash1", 0x04000000, 0x04000000);
	expect_range(as, "gicv3_dist", 0x08000000, 0x10000);
	expect_range(as, "control", 0x08080000, 0x10000);
	expect_range(as, "translation", 0x08090000, 0x10000);
	expect_range(as, "gicv3_redist_region[0]", 0x080a0000, 0x20000);
	expect_range(as, "pl011", 0x09000000, 0x1000);
	expect_range(as, "pl031", 0x09010000, 0x1000);
	expect_range(as, "fwcfg.data", 0x09020000, 8);
	expect_range(as, "fwcfg.ctl", 0x09020008, 2);
	expect_range(as, "fwcfg.dma", 0x09020010, 8);
	expect_range(as, "pl061", 0x09030000, 0x1000);
	assert_int_equal(count_ranges(as, "virtio-mmio"), 32);
	expect_range(as, "virtio-mmio", 0x0a000000, 0x200);
	expect_range(as, "virtio-mmio", 0x0a000000 + 31 * 0x200, 0x200);
	expect_range(as, "gpex_mmio_window", 0x10000000, 0x2eff0000);
	expect_range(as, "gpex_ioport_window", 0x3eff0000, 0x10000);
	/* highmem: ECAM and the second PCIe window float above 256 GiB */
	expect_range(as, "pcie-mmcfg-mmio", 0x4010000000ULL, 256 * MiB);
	expect_range(as, "gpex_mmio_window", 0x8000000000ULL, 512 * GiB);
	/* virt_set_memmap: device memory after RAM, 1 GiB per slot on top */
	assert_int_equal(mv_machine_device_memory_base(m), 0xc0000000);
	assert_int_equal(mv_machine_device_memory_size(m), 4 * GiB);
	/* devices read 0, PCI holes all ones, flash reads its RAM */
	assert_int_equal(mv_as_read(as, 0x09000000, b, 4), MV_MEMTX_OK);
	assert_int_equal(b[0] | b[1] | b[2] | b[3], 0);
	assert_int_equal(mv_as_read(as, 0x10000000, b, 4), MV_MEMTX_OK);
	assert_int_equal(b[0] & b[1] & b[2] & b[3], 0xff);
	assert_int_equal(mv_as_read(as, 0x100, b, 4), MV_MEMTX_OK);
	assert_int_equal(b[0] | b[1] | b[2] | b[3], 0);
	mv_machine_free(m);
	mv_memory_free(mem);
}

/* Large RAM pushes the floating high regions up; what no longer fits goes. */
static void test_virt_arm64_highmem(void **state)
{
	mv_memory *mem = new_mem();
	mv_machine *m = new_machine(mem, "virt-arm64", "300G");
	mv_address_space *as = mv_machine_memory_as(m);

	(void)state;
	/* memtop 301 GiB: REDIST2 there, ECAM 256 MiB aligned after it */
	expect_range(as, "pcie-mmcfg-mmio", 0x4b50000000ULL, 256 * MiB);
	expect_range(as, "gpex_mmio_window", 0x8000000000ULL, 512 * GiB);
	mv_machine_free(m);
	mv_memory_free(mem);

	mem = new_mem();
	m = new_machine(mem, "virt-arm64", "600G");
	as = mv_machine_memory_as(m);
	/* the 512 GiB window would end past 2^40: no pcie-mmio-high */
	assert_int_equal(count_ranges(as, "gpex_mmio_window"), 1);
	expect_range(as, "pcie-mmcfg-mmio", 0x9650000000ULL, 256 * MiB);
	mv_machine_free(m);
	mv_memory_free(mem);
}

/* ------------------------------------------------------------------ */
/* DIMM hot(un)plug                                                     */

struct dimm_listener {
	mv_listener l;
	const char *watch;
	int adds, dels;
	uint64_t last_gpa, last_size;
};

static void dl_add(mv_listener *l, const mv_section *s)
{
	struct dimm_listener *d = (struct dimm_listener *)l;

	if (s->mr && !strcmp(mv_region_name(s->mr), d->watch)) {
		d->adds++;
		d->last_gpa = s->offset_within_address_space;
		d->last_size = (uint64_t)s->size;
	}
}

static void dl_del(mv_listener *l, const mv_section *s)
{
	struct dimm_listener *d = (struct dimm_listener *)l;

	if (s->mr && !strcmp(mv_region_name(s->mr), d->watch)) {
		d->dels++;
		d->last_gpa = s->offset_within_address_space;
		d->last_size = (uint64_t)s->size;
	}
}

/* A failed plug must leave everything as it was. */
static void expect_plug_error(mv_machine *m, const char *id, uint64_t size, uint64_t addr,
			      int code, const char *needle)
{
	mv_address_space *as = mv_machine_memory_as(m);
	mv_flatview *before = mv_address_space_get_flatview(as), *after;
	uint64_t out = 0x1234;
	mv_error err = { 0 };

	assert_int_equal(mv_machine_dimm_plug(m, id, size, addr, &out, &err), code);
	expect_msg(&err, needle);
	expect_msg(&err, id);
	assert_int_equal(out, 0x1234);
	after = mv_address_space_get_flatview(as);
	assert_ptr_equal(before, after);       /* no new view was published */
	mv_flatview_unref(before);
	mv_flatview_unref(after);
}

static void test_dimm_plug_unplug(void **state)
{
	mv_memory *mem = new_mem();
	mv_machine *m = new_machine(mem, "pc", "4G,slots=2,maxmem=8G");
	mv_address_space *as = mv_machine_memory_as(m);
	struct dimm_listener dl = { .l = { .region_add = dl_add, .region_del = dl_del },
				    .watch = "dimm0" };
	uint64_t base = mv_machine_device_memory_base(m), addr = 0;
	mv_ramblock *rb;
	mv_error err = { 0 };
	uint32_t v = 0xfeedf00d, back = 0;

	(void)state;
	assert_int_equal(base, 0x140000000ULL);
	assert_int_equal(mv_machine_device_memory_size(m), 6 * GiB);
	assert_int_equal(mv_listener_register(&dl.l, as), 0);

	/* auto placement: the start of the window */
	assert_int_equal(mv_machine_dimm_plug(m, "dimm0", GiB, MV_DIMM_ADDR_AUTO, &addr, &err), 0);
	assert_int_equal(addr, base);
	assert_int_equal(dl.adds, 1);
	assert_int_equal(dl.last_gpa, base);
	assert_int_equal(dl.last_size, GiB);
	expect_range(as, "dimm0", base, GiB);
	/* the DIMM is RAM of its own block, named after the id */
	rb = mv_ram_list_find(mv_memory_ram_list(mem), "dimm0");
	assert_non_null(rb);
	assert_int_equal(mv_ramblock_used_length(rb), GiB);
	assert_int_equal(mv_as_write(as, base + 4096, &v, 4), MV_MEMTX_OK);
	memcpy(&back, (char *)mv_ramblock_host(rb) + 4096, 4);
	assert_int_equal(back, v);

	/* every refusal, each leaving the state unchanged */
	expect_plug_error(m, "dimm0", GiB, MV_DIMM_ADDR_AUTO, -EEXIST, "already plugged");
	expect_plug_error(m, "pc.ram", GiB, MV_DIMM_ADDR_AUTO, -EEXIST, "already used by a RAM block");
	expect_plug_error(m, "odd", 3 * MiB, MV_DIMM_ADDR_AUTO, -EINVAL, "not a positive multiple of 2 MiB");
	expect_plug_error(m, "zero", 0, MV_DIMM_ADDR_AUTO, -EINVAL, "multiple of 2 MiB");
	expect_plug_error(m, "unaligned", GiB, base + GiB + 4096, -EINVAL, "not 2 MiB aligned");
	expect_plug_error(m, "overlap", GiB, base + 512 * MiB, -EBUSY, "overlaps DIMM 'dimm0'");
	expect_plug_error(m, "below", GiB, 4 * GiB, -ERANGE, "outside the device-memory window");
	expect_plug_error(m, "beyond", GiB, base + 6 * GiB - 512 * MiB, -ERANGE, "outside");
	expect_plug_error(m, "huge", 4 * GiB, MV_DIMM_ADDR_AUTO, -ENOSPC, "exceed maxmem=8 GiB");
	expect_plug_error(m, "", GiB, MV_DIMM_ADDR_AUTO, -EINVAL, "non-empty id");
	assert_int_equal(dl.adds, 1);
	assert_int_equal(dl.dels, 0);
	assert_null(mv_ram_list_find(mv_memory_ram_list(mem), "odd"));
	assert_null(mv_ram_list_find(mv_memory_ram_list(mem), "overlap"));

	/* explicit placement, then the slots are full */
	assert_int_equal(mv_machine_dimm_plug(m, "dimm1", 512 * MiB, base + 3 * GiB, &addr, &err), 0);
	assert_int_equal(addr, base + 3 * GiB);
	expect_range(as, "dimm1", base + 3 * GiB, 512 * MiB);
	expect_plug_error(m, "dimm2", 2 * MiB, MV_DIMM_ADDR_AUTO, -ENOSPC, "all 2 DIMM slots are in use");

	/* unplug: listeners see region_del; the id is free again at once */
	assert_int_equal(mv_machine_dimm_unplug(m, "dimm0", &err), 0);
	assert_int_equal(dl.dels, 1);
	assert_int_equal(dl.last_gpa, base);
	assert_int_equal(count_ranges(as, "dimm0"), 0);
	assert_int_equal(mv_machine_dimm_unplug(m, "dimm0", &err), -ENOENT);
	expect_msg(&err, "DIMM 'dimm0' is not plugged");

	/* first fit skips dimm1: 3.5 GiB does not fit before it, nor after */
	expect_plug_error(m, "big", 3584 * MiB, MV_DIMM_ADDR_AUTO, -ENOSPC, "no free 3584 MiB range");
	assert_int_equal(mv_machine_dimm_plug(m, "dimm0", 2 * GiB, MV_DIMM_ADDR_AUTO, &addr, &err), 0);
	assert_int_equal(addr, base);
	assert_int_equal(dl.adds, 2);
	assert_int_equal(dl.last_size, 2 * GiB);
	/* a hole between two DIMMs is used by first fit */
	assert_int_equal(mv_machine_dimm_unplug(m, "dimm0", &err), 0);
	assert_int_equal(mv_machine_dimm_unplug(m, "dimm1", &err), 0);
	assert_int_equal(mv_machine_dimm_plug(m, "a", 2 * MiB, base + 4 * MiB, NULL, &err), 0);
	assert_int_equal(mv_machine_dimm_plug(m, "b", 6 * MiB, MV_DIMM_ADDR_AUTO, &addr, &err), 0);
	assert_int_equal(addr, base + 6 * MiB);         /* does not fit before 'a' */
	assert_int_equal(mv_machine_dimm_unplug(m, "b", &err), 0);
	assert_int_equal(mv_machine_dimm_plug(m, "c", 4 * MiB, MV_DIMM_ADDR_AUTO, &addr, &err), 0);
	assert_int_equal(addr, base);                   /* fits the hole before 'a' */

	mv_listener_unregister(&dl.l);
	/* DIMMs still plugged go with the machine */
	mv_machine_free(m);
	mv_memory_free(mem);
}

static void test_dimm_no_slots(void **state)
{
	static const char *const configs[][2] = {
		{ "pc", "4G" },
		{ "pc", "4G,maxmem=8G" },       /* a window, as QEMU, but no slot */
		{ "microvm", "1G" },
		{ "virt-arm64", "1G" },
	};
	mv_error err = { 0 };

	(void)state;
	for (size_t i = 0; i < sizeof(configs) / sizeof(configs[0]); i++) {
		mv_memory *mem = new_mem();
		mv_machine *m = new_machine(mem, configs[i][0], configs[i][1]);

		assert_int_equal(mv_machine_dimm_plug(m, "d", GiB, MV_DIMM_ADDR_AUTO, NULL, &err),
				 -ENODEV);
		expect_msg(&err, "DIMM 'd': machine");
		expect_msg(&err, "has no DIMM slots");
		mv_machine_free(m);
		mv_memory_free(mem);
	}
}

static void test_dimm_virt_arm64(void **state)
{
	mv_memory *mem = new_mem();
	mv_machine *m = new_machine(mem, "virt-arm64", "1G,slots=1,maxmem=2G");
	mv_error err = { 0 };
	uint64_t addr = 0;

	(void)state;
	assert_int_equal(mv_machine_dimm_plug(m, "mem0", GiB, MV_DIMM_ADDR_AUTO, &addr, &err), 0);
	assert_int_equal(addr, 0x80000000);
	expect_range(mv_machine_memory_as(m), "mem0", 0x80000000, GiB);
	mv_machine_free(m);
	mv_memory_free(mem);
}

/* ------------------------------------------------------------------ */
/* Failure injection                                                    */

/* Every allocation of the memory system failing in turn: clean -ENOMEM. */
static void test_alloc_failures(void **state)
{
	static const char *const types[] = { "pc", "microvm", "virt-arm64" };
	unsigned long points = 0;

	(void)state;
	for (size_t t = 0; t < 3; t++) {
		bool done = false;

		for (unsigned long i = 1; !done; i++) {
			mv_machine_opts o = { .ram_size = 64 * MiB, .slots = 1, .maxmem = 128 * MiB };
			tu_failing_alloc fa;
			mv_error err = { 0 };
			mv_machine *m = NULL;
			mv_memory *mem;
			int ret;

			if (!strcmp(types[t], "microvm"))
				o = (mv_machine_opts){ .ram_size = 64 * MiB };
			tu_failing_alloc_init(&fa, i, false);
			if (mv_memory_new(&fa.alloc, &mem))
				continue;
			ret = mv_machine_new(mem, types[t], &o, &m, &err);
			if (ret) {
				assert_int_equal(ret, -ENOMEM);
				assert_true(err.msg[0] != 0);
				assert_null(m);
				assert_int_equal(mv_memory_nr_address_spaces(mem), 0);
			} else if (o.slots) {
				ret = mv_machine_dimm_plug(m, "d", 64 * MiB, MV_DIMM_ADDR_AUTO, NULL, &err);
				assert_true(ret == 0 || ret == -ENOMEM);
			}
			mv_machine_free(m);
			mv_memory_free(mem);
			done = fa.calls < fa.fail_at;
			points++;
		}
	}
	printf("# %lu allocation failure points checked\n", points);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_good),
		cmocka_unit_test(test_parse_bad),
		cmocka_unit_test(test_new_errors),
		cmocka_unit_test(test_pc_4G_vs_qemu),
		cmocka_unit_test(test_pc_128M),
		cmocka_unit_test(test_pc_device_memory_vs_qemu),
		cmocka_unit_test(test_pc_split),
		cmocka_unit_test(test_microvm_vs_qemu),
		cmocka_unit_test(test_virt_arm64),
		cmocka_unit_test(test_virt_arm64_highmem),
		cmocka_unit_test(test_dimm_plug_unplug),
		cmocka_unit_test(test_dimm_no_slots),
		cmocka_unit_test(test_dimm_virt_arm64),
		cmocka_unit_test(test_alloc_failures),
	};
	int ret;

	mv_rcu_register_thread();
	ret = cmocka_run_group_tests(tests, NULL, NULL);
	mv_rcu_unregister_thread();
	return ret;
}
