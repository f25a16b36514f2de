/*
 * `info mtree` and `info mtree -f` text, compared byte for byte with what
 * QEMU 7.2 prints for the same region trees (layouts modelled on QEMU's pc
 * board and on the cases its documentation describes).
 */
#include "testutil.h"
#include "mtreeutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memvirt/mtree.h"

/* ------------------------------------------------------------------ */
/* Builders                                                             */

static mv_memory *new_mem(void)
{
	mv_memory *mem;

	assert_int_equal(mv_memory_new(NULL, &mem), 0);
	return mem;
}

static mv_region *io(mv_memory *mem, const char *name, mv_u128 size)
{
	mv_io_region *r;

	assert_int_equal(mv_io_region_new(mem, name, size, NULL, NULL, &r), 0);
	return mv_io_region_base(r);
}

static mv_region *container(mv_memory *mem, const char *name, mv_u128 size)
{
	mv_region *r;

	assert_int_equal(mv_container_new(mem, name, size, &r), 0);
	return r;
}

static mv_region *alias(mv_memory *mem, const char *name, mv_region *target,
			uint64_t off, mv_u128 size)
{
	mv_alias_region *r;

	assert_int_equal(mv_alias_region_new(mem, name, target, off, size, &r), 0);
	return mv_alias_region_base(r);
}

/* RAM (or ROM when @rom) over a new block named @name. */
static mv_region *ram(mv_memory *mem, const char *name, uint64_t size, bool rom)
{
	mv_ramblock *rb;
	mv_ram_region *r;
	mv_error err;

	assert_int_equal(mv_ramblock_new(mv_memory_ram_list(mem), name, size, NULL, &rb, &err), 0);
	if (rom)
		assert_int_equal(mv_rom_region_new(mem, name, rb, &r), 0);
	else
		assert_int_equal(mv_ram_region_new(mem, name, rb, &r), 0);
	mv_ramblock_unref(rb);
	return mv_ram_region_base(r);
}

/* Add @child under @parent and drop the caller's reference. */
static void add(mv_region *parent, uint64_t off, mv_region *child, int prio)
{
	assert_int_equal(mv_region_add_subregion_overlap(parent, off, child, prio), 0);
	mv_region_unref(child);
}

static mv_address_space *space(mv_memory *mem, mv_region *root, const char *name)
{
	mv_address_space *as;

	assert_int_equal(mv_address_space_new(mem, root, name, &as), 0);
	return as;
}

/* Free spaces, drop the root references, free the memory system. */
static void teardown(mv_memory *mem, mv_region **roots, size_t nr)
{
	while (mv_memory_nr_address_spaces(mem))
		mv_address_space_free(mv_memory_address_space(mem, 0));
	for (size_t i = 0; i < nr; i++)
		mv_region_unref(roots[i]);
	mv_memory_free(mem);
}

/* ------------------------------------------------------------------ */
/* A pc-like layout: aliases into RAM, a PCI hole, PAM, overlap by prio */

static void test_pc_like(void **state)
{
	mv_memory *mem = new_mem();
	mv_region *sys = container(mem, "system", MV_2_64);
	mv_region *pcram = ram(mem, "pc.ram", 0x200000, false);
	mv_region *pci = container(mem, "pci", MV_2_64);
	mv_region *bios = ram(mem, "pc.bios", 0x40000, true);
	mv_region *roots[] = { sys, pcram };

	(void)state;
	mv_memory_begin(mem);
	add(pci, 0xfffc0000, bios, 0);
	add(pci, 0xe0000, alias(mem, "isa-bios", bios, 0x20000, 0x20000), 1);
	add(sys, 0, alias(mem, "ram-below", pcram, 0, 0x180000), 0);
	add(sys, 0x100000000ull, alias(mem, "ram-above", pcram, 0x180000, 0x80000), 0);
	add(sys, 0xfec00000, io(mem, "ioapic", 0x1000), 0);
	add(sys, 0xfee00000, io(mem, "apic-msi", 0x100000), 4096);
	add(sys, 0xe0000, alias(mem, "pam", pci, 0xe0000, 0x20000), 1);
	add(sys, 0, pci, -1);
	space(mem, sys, "memory");
	space(mem, sys, "cpu-memory-0");
	mv_memory_commit(mem);

	mtu_expect_golden(mv_mtree_print_tree, mem, "pc-like.tree");
	mtu_expect_golden(mv_mtree_print_flat, mem, "pc-like.flat");
	teardown(mem, roots, 2);
}

/* ------------------------------------------------------------------ */
/* Overlap: priorities, later-wins among equals, sorted tree order      */

static void test_overlap(void **state)
{
	mv_memory *mem = new_mem();
	mv_region *root = container(mem, "root", 0x10000);

	(void)state;
	add(root, 0x0, io(mem, "a", 0x8000), 0);
	add(root, 0x4000, io(mem, "b", 0x8000), 0);      /* later: wins over a */
	add(root, 0x2000, io(mem, "c", 0x1000), 5);      /* higher prio: wins */
	add(root, 0x2000, io(mem, "d", 0x1000), 2);      /* same address, lower prio */
	space(mem, root, "as");

	mtu_expect(mv_mtree_print_tree, mem,
	       "address-space: as\n"
	       "  0000000000000000-000000000000ffff (prio 0, i/o): root\n"
	       "    0000000000000000-0000000000007fff (prio 0, i/o): a\n"
	       "    0000000000002000-0000000000002fff (prio 5, i/o): c\n"
	       "    0000000000002000-0000000000002fff (prio 2, i/o): d\n"
	       "    0000000000004000-000000000000bfff (prio 0, i/o): b\n"
	       "\n");
	mtu_expect(mv_mtree_print_flat, mem,
	       "FlatView #0\n"
	       " AS \"as\", root: root\n"
	       " Root memory region: root\n"
	       "  0000000000000000-0000000000001fff (prio 0, i/o): a\n"
	       "  0000000000002000-0000000000002fff (prio 5, i/o): c\n"
	       "  0000000000003000-0000000000003fff (prio 0, i/o): a @0000000000003000\n"
	       "  0000000000004000-000000000000bfff (prio 0, i/o): b\n"
	       "\n");
	teardown(mem, &root, 1);
}

/* ------------------------------------------------------------------ */
/* Disabled regions: own line hidden, children shown, alias target kept */

static void test_disabled(void **state)
{
	mv_memory *mem = new_mem();
	mv_region *root = container(mem, "root", 0x10000);
	mv_region *hidden = container(mem, "hidden", 0x4000);
	mv_region *target = io(mem, "target", 0x1000);
	mv_region *off = alias(mem, "off", target, 0, 0x1000);
	mv_region *roots[] = { root, target };

	(void)state;
	add(hidden, 0x1000, io(mem, "child", 0x1000), 0);
	mv_region_set_enabled(hidden, false);
	add(root, 0x8000, hidden, 0);
	mv_region_set_enabled(off, false);
	add(root, 0x2000, off, 0);
	add(root, 0x0, io(mem, "on", 0x1000), 0);
	space(mem, root, "as");

	/*
	 * QEMU 7.2 with display_disabled=false prints disabled children too.
	 * The view's root is "on", the only enabled child covering offset 0.
	 */
	mtu_expect(mv_mtree_print_tree, mem,
	       "address-space: as\n"
	       "  0000000000000000-000000000000ffff (prio 0, i/o): root\n"
	       "    0000000000000000-0000000000000fff (prio 0, i/o): on\n"
	       "      0000000000009000-0000000000009fff (prio 0, i/o): child\n"
	       "\n"
	       "memory-region: target\n"
	       "  0000000000000000-0000000000000fff (prio 0, i/o): target\n"
	       "\n");
	mtu_expect(mv_mtree_print_flat, mem,
	       "FlatView #0\n"
	       " AS \"as\", root: root\n"
	       " Root memory region: on\n"
	       "  0000000000000000-0000000000000fff (prio 0, i/o): on\n"
	       "\n");
	teardown(mem, roots, 2);
}

/* ------------------------------------------------------------------ */
/* Attributes: readonly inheritance -> "rom", nonvolatile -> "nv-"      */

static void test_attributes(void **state)
{
	mv_memory *mem = new_mem();
	mv_region *root = container(mem, "root", 0x100000);
	mv_region *ro = container(mem, "ro-window", 0x10000);
	mv_region *nvram = ram(mem, "nvram", 0x2000, false);
	mv_romd_region *flash;
	mv_ramblock *rb;
	mv_error err;

	(void)state;
	add(ro, 0, ram(mem, "shadow", 0x4000, false), 0);
	mv_region_set_readonly(ro, true);
	add(root, 0x10000, ro, 0);
	mv_region_set_nonvolatile(nvram, true);
	add(root, 0x40000, nvram, 0);
	assert_int_equal(mv_ramblock_new(mv_memory_ram_list(mem), "flash", 0x1000, NULL, &rb,
					 &err), 0);
	assert_int_equal(mv_romd_region_new(mem, "flash", rb, NULL, NULL, &flash), 0);
	mv_ramblock_unref(rb);
	add(root, 0x80000, mv_romd_region_base(flash), 0);
	space(mem, root, "as");

	mtu_expect(mv_mtree_print_tree, mem,
	       "address-space: as\n"
	       "  0000000000000000-00000000000fffff (prio 0, i/o): root\n"
	       "    0000000000010000-000000000001ffff (prio 0, i/o): ro-window\n"
	       "      0000000000010000-0000000000013fff (prio 0, ram): shadow\n"
	       "    0000000000040000-0000000000041fff (prio 0, nv-ram): nvram\n"
	       "    0000000000080000-0000000000080fff (prio 0, romd): flash\n"
	       "\n");
	mtu_expect(mv_mtree_print_flat, mem,
	       "FlatView #0\n"
	       " AS \"as\", root: root\n"
	       " Root memory region: root\n"
	       "  0000000000010000-0000000000013fff (prio 0, rom): shadow\n"
	       "  0000000000040000-0000000000041fff (prio 0, nv-ram): nvram\n"
	       "  0000000000080000-0000000000080fff (prio 0, romd): flash\n"
	       "\n");

	/* A ROM device out of romd mode is dispatched to its callbacks: "i/o". */
	mv_romd_region_set_mode(flash, false);
	mtu_expect(mv_mtree_print_flat, mem,
	       "FlatView #0\n"
	       " AS \"as\", root: root\n"
	       " Root memory region: root\n"
	       "  0000000000010000-0000000000013fff (prio 0, rom): shadow\n"
	       "  0000000000040000-0000000000041fff (prio 0, nv-ram): nvram\n"
	       "  0000000000080000-0000000000080fff (prio 0, i/o): flash\n"
	       "\n");
	teardown(mem, &root, 1);
}

/* ------------------------------------------------------------------ */
/* Views: empty root, two spaces sharing one view through an alias root */

static void test_views(void **state)
{
	mv_memory *mem = new_mem();
	mv_region *empty = container(mem, "bus master container", MV_2_64);
	mv_region *sys = container(mem, "system", 0x10000);
	mv_region *whole = alias(mem, "whole", sys, 0, 0x10000);
	mv_region *roots[] = { empty, sys, whole };

	(void)state;
	add(sys, 0x1000, io(mem, "dev", 0x100), 0);
	space(mem, empty, "PIIX3");
	space(mem, sys, "memory");
	space(mem, whole, "dma");
	space(mem, empty, "i440FX");

	mtu_expect(mv_mtree_print_flat, mem,
	       "FlatView #0\n"
	       " AS \"PIIX3\", root: bus master container\n"
	       " AS \"i440FX\", root: bus master container\n"
	       " Root memory region: (none)\n"
	       "  No rendered FlatView\n"
	       "\n"
	       "FlatView #1\n"
	       " AS \"memory\", root: system\n"
	       " AS \"dma\", root: whole, alias system\n"
	       " Root memory region: system\n"
	       "  0000000000001000-00000000000010ff (prio 0, i/o): dev\n"
	       "\n");
	mtu_expect(mv_mtree_print_tree, mem,
	       "address-space: PIIX3\n"
	       "address-space: i440FX\n"
	       "  0000000000000000-ffffffffffffffff (prio 0, i/o): bus master container\n"
	       "\n"
	       "address-space: memory\n"
	       "  0000000000000000-000000000000ffff (prio 0, i/o): system\n"
	       "    0000000000001000-00000000000010ff (prio 0, i/o): dev\n"
	       "\n"
	       "address-space: dma\n"
	       "  0000000000000000-000000000000ffff (prio 0, i/o): alias whole @system 0000000000000000-000000000000ffff\n"
	       "\n"
	       "memory-region: system\n"
	       "  0000000000000000-000000000000ffff (prio 0, i/o): system\n"
	       "    0000000000001000-00000000000010ff (prio 0, i/o): dev\n"
	       "\n");
	teardown(mem, roots, 3);
}

/* ------------------------------------------------------------------ */
/* Aliases of aliases are queued while the queue is printed             */

static void test_alias_chain(void **state)
{
	mv_memory *mem = new_mem();
	mv_region *root = container(mem, "root", 0x100000);
	mv_region *r = ram(mem, "ram", 0x10000, false);
	mv_region *mid = alias(mem, "mid", r, 0x8000, 0x8000);
	mv_region *roots[] = { root, r, mid };

	(void)state;
	add(root, 0x40000, alias(mem, "outer", mid, 0x1000, 0x2000), 0);
	space(mem, root, "as");

	mtu_expect(mv_mtree_print_tree, mem,
	       "address-space: as\n"
	       "  0000000000000000-00000000000fffff (prio 0, i/o): root\n"
	       "    0000000000040000-0000000000041fff (prio 0, ram): alias outer @mid 0000000000001000-0000000000002fff\n"
	       "\n"
	       "memory-region: mid\n"
	       "  0000000000000000-0000000000007fff (prio 0, ram): alias mid @ram 0000000000008000-000000000000ffff\n"
	       "\n"
	       "memory-region: ram\n"
	       "  0000000000000000-000000000000ffff (prio 0, ram): ram\n"
	       "\n");
	mtu_expect(mv_mtree_print_flat, mem,
	       "FlatView #0\n"
	       " AS \"as\", root: root\n"
	       " Root memory region: root\n"
	       "  0000000000040000-0000000000041fff (prio 0, ram): ram @0000000000009000\n"
	       "\n");
	teardown(mem, roots, 3);
}

/* ------------------------------------------------------------------ */
/* An I/O region with children shows through their gaps; 2^64 ends     */

static void test_io_with_children(void **state)
{
	mv_memory *mem = new_mem();
	mv_region *root = io(mem, "io", 0x10000);

	(void)state;
	add(root, 0x60, io(mem, "kbd", 0x1), 0);
	add(root, 0x70, io(mem, "rtc", 0x2), 0);
	space(mem, root, "I/O");

	mtu_expect(mv_mtree_print_flat, mem,
	       "FlatView #0\n"
	       " AS \"I/O\", root: io\n"
	       " Root memory region: io\n"
	       "  0000000000000000-000000000000005f (prio 0, i/o): io\n"
	       "  0000000000000060-0000000000000060 (prio 0, i/o): kbd\n"
	       "  0000000000000061-000000000000006f (prio 0, i/o): io @0000000000000061\n"
	       "  0000000000000070-0000000000000071 (prio 0, i/o): rtc\n"
	       "  0000000000000072-000000000000ffff (prio 0, i/o): io @0000000000000072\n"
	       "\n");
	teardown(mem, &root, 1);
}

/* ------------------------------------------------------------------ */
/* A subtree that wraps past 2^64 is flagged as QEMU does               */

static void test_overflow(void **state)
{
	mv_memory *mem = new_mem();
	mv_region *root = container(mem, "root", MV_2_64);
	mv_region *top = container(mem, "top", 0x1000);

	(void)state;
	/* Children may stick out of their parent; only 2^64 is checked per level. */
	add(top, 0x800, io(mem, "wraps", 0x1000), 0);
	add(top, 0x1000, io(mem, "past", 0x10), 0);
	add(root, 0xfffffffffffff000ull, top, 0);
	space(mem, root, "as");

	mtu_expect(mv_mtree_print_tree, mem,
	       "address-space: as\n"
	       "  0000000000000000-ffffffffffffffff (prio 0, i/o): root\n"
	       "    fffffffffffff000-ffffffffffffffff (prio 0, i/o): top\n"
	       "[DETECTED OVERFLOW!]       fffffffffffff800-00000000000007ff (prio 0, i/o): wraps\n"
	       "[DETECTED OVERFLOW!]       0000000000000000-000000000000000f (prio 0, i/o): past\n"
	       "\n");
	teardown(mem, &root, 1);
}

/* No address spaces: nothing at all is printed. */
static void test_nothing(void **state)
{
	mv_memory *mem = new_mem();

	(void)state;
	mtu_expect(mv_mtree_print_tree, mem, "");
	mtu_expect(mv_mtree_print_flat, mem, "");
	mv_memory_free(mem);
}

/* The SVG is well formed enough to start and end right and label ranges. */
static void test_svg(void **state)
{
	mv_memory *mem = new_mem();
	mv_region *root = container(mem, "root", MV_2_64);
	char *svg;

	(void)state;
	add(root, 0x1000, io(mem, "a<b&c", 0x10), 0);
	add(root, 0x100000, ram(mem, "ram", 0x100000, false), 0);
	space(mem, root, "memory");
	svg = mtu_capture(mv_mtree_print_svg, mem);
	assert_non_null(strstr(svg, "<?xml"));
	assert_non_null(strstr(svg, "a&lt;b&amp;c"));
	assert_non_null(strstr(svg, "0x0000000000100000"));
	assert_non_null(strstr(svg, "0xffffffffffffffff"));
	assert_non_null(strstr(svg, "</svg>\n"));
	assert_null(strstr(svg, "a<b"));
	free(svg);
	teardown(mem, &root, 1);
}

/* A stream that cannot be written reports -EIO rather than success. */
static void test_write_error(void **state)
{
	mv_memory *mem = new_mem();
	mv_region *root = container(mem, "root", 0x1000);
	FILE *f = fopen("/dev/null", "r");

	(void)state;
	assert_non_null(f);
	space(mem, root, "as");
	assert_int_equal(mv_mtree_print_tree(f, mem), -EIO);
	assert_int_equal(mv_mtree_print_flat(f, mem), -EIO);
	assert_int_equal(mv_mtree_print_svg(f, mem), -EIO);
	fclose(f);
	teardown(mem, &root, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pc_like),
		cmocka_unit_test(test_overlap),
		cmocka_unit_test(test_disabled),
		cmocka_unit_test(test_attributes),
		cmocka_unit_test(test_views),
		cmocka_unit_test(test_alias_chain),
		cmocka_unit_test(test_io_with_children),
		cmocka_unit_test(test_overflow),
		cmocka_unit_test(test_nothing),
		cmocka_unit_test(test_svg),
		cmocka_unit_test(test_write_error),
	};

	mv_rcu_register_thread();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
