/* FlatView rendering: QEMU's documented examples and each rendering rule. */
#include "testutil.h"
#include "coreutil.h"


/*
 * docs/devel/memory.rst, "Overlapping regions and priority": B (container,
 * prio 2, at 0x2000) with D and E over C (prio 1): C D C E C.
 */
static void test_qemu_overlap_example(void **state)
{
	fixture *f = *state;
	mv_region *a = cu_container(f->mem, "A", 0x8000);
	mv_region *b = cu_container(f->mem, "B", 0x4000);

	cu_add(b, 0x0, cu_io(f->mem, "D", 0x1000), 0);
	cu_add(b, 0x2000, cu_io(f->mem, "E", 0x1000), 0);
	cu_add(a, 0x2000, b, 2);
	cu_add(a, 0x0, cu_io(f->mem, "C", 0x6000), 1);
	cu_add(f->root, 0, a, 0);
	cu_assert_flat(f->as,
		       "0-1fff C\n"
		       "2000-2fff D\n"
		       "3000-3fff C@3000\n"
		       "4000-4fff E\n"
		       "5000-5fff C@5000\n");
}

/* Same example with B providing its own MMIO: C D B E B C. */
static void test_qemu_overlap_example_with_contents(void **state)
{
	fixture *f = *state;
	mv_region *a = cu_container(f->mem, "A", 0x8000);
	mv_region *b = cu_io(f->mem, "B", 0x4000);

	cu_add(b, 0x0, cu_io(f->mem, "D", 0x1000), 0);
	cu_add(b, 0x2000, cu_io(f->mem, "E", 0x1000), 0);
	cu_add(a, 0x2000, b, 2);
	cu_add(a, 0x0, cu_io(f->mem, "C", 0x6000), 1);
	cu_add(f->root, 0, a, 0);
	cu_assert_flat(f->as,
		       "0-1fff C\n"
		       "2000-2fff D\n"
		       "3000-3fff B@1000\n"
		       "4000-4fff E\n"
		       "5000-5fff B@3000\n");
}

/*
 * docs/devel/memory.rst "Example memory map": RAM split by lomem/himem
 * aliases, a vga-window alias at prio 1 onto pci, the pci-hole alias.
 */
static void test_qemu_pc_example(void **state)
{
	fixture *f = *state;
	mv_region *ram = cu_io(f->mem, "ram", 0x100000000ULL);
	mv_region *pci = cu_container(f->mem, "pci", 0x100000000ULL);
	mv_region *vga = cu_container(f->mem, "vga-area", 0x20000);
	mv_region *vram = cu_io(f->mem, "vram", 0x1000000);

	cu_add(vga, 0x0, cu_alias(f->mem, "bank0", vram, 0x10000, 0x8000), 0);
	cu_add(vga, 0x8000, cu_alias(f->mem, "bank1", vram, 0x20000, 0x8000), 0);
	cu_add(pci, 0xa0000, vga, 0);
	mv_region_ref(vram);
	cu_add(pci, 0xe1000000, vram, 0);
	cu_add(pci, 0xe1000000, cu_io(f->mem, "vga-mmio", 0x10000), 0);
	mv_memory_begin(f->mem);
	cu_add(f->root, 0, cu_alias(f->mem, "lomem", ram, 0, 0xe0000000), 0);
	cu_add(f->root, 0x100000000ULL, cu_alias(f->mem, "himem", ram, 0xe0000000, 0x20000000), 0);
	cu_add(f->root, 0xa0000, cu_alias(f->mem, "vga-window", pci, 0xa0000, 0x20000), 1);
	cu_add(f->root, 0xe0000000, cu_alias(f->mem, "pci-hole", pci, 0xe0000000, 0x20000000), 0);
	assert_int_equal(mv_memory_commit(f->mem), 0);
	/* vga-mmio was added after vram at the same priority: it wins (QEMU's insertion rule). */
	cu_assert_flat(f->as,
		       "0-9ffff ram\n"
		       "a0000-a7fff vram@10000\n"
		       "a8000-affff vram@20000\n"
		       "b0000-dfffffff ram@b0000\n"
		       "e1000000-e100ffff vga-mmio\n"
		       "e1010000-e1ffffff vram@10000\n"
		       "100000000-11fffffff ram@e0000000\n");
	mv_region_unref(ram);
	mv_region_unref(pci);
	mv_region_unref(vram);
}

/* Among equal priorities the later-added child is rendered first and wins. */
static void test_equal_priority_later_wins(void **state)
{
	fixture *f = *state;

	cu_add(f->root, 0x0, cu_io(f->mem, "first", 0x2000), 0);
	cu_add(f->root, 0x1000, cu_io(f->mem, "second", 0x2000), 0);
	cu_assert_flat(f->as, "0-fff first\n1000-2fff second\n");
	assert_string_equal(mv_region_name(mv_region_subregion(f->root, 0)), "second");
}

/* Higher priority wins whatever the insertion order. */
static void test_priority_beats_order(void **state)
{
	fixture *f = *state;

	cu_add(f->root, 0x0, cu_io(f->mem, "high", 0x2000), 5);
	cu_add(f->root, 0x1000, cu_io(f->mem, "low", 0x2000), -3);
	cu_assert_flat(f->as, "0-1fff high\n2000-2fff low@1000\n");
}

/* Children are clipped to their container. */
static void test_clipping(void **state)
{
	fixture *f = *state;
	mv_region *c = cu_container(f->mem, "c", 0x1000);

	cu_add(c, 0x800, cu_io(f->mem, "big", 0x10000), 0);
	cu_add(f->root, 0x4000, c, 0);
	cu_assert_flat(f->as, "4800-4fff big\n");
}

/* Aliases of aliases accumulate offsets; readonly is inherited along the way. */
static void test_alias_of_alias_readonly(void **state)
{
	fixture *f = *state;
	mv_region *dev = cu_io(f->mem, "dev", 0x10000);
	mv_region *a1 = cu_alias(f->mem, "a1", dev, 0x4000, 0x8000);
	mv_region *a2 = cu_alias(f->mem, "a2", a1, 0x1000, 0x2000);

	mv_region_set_readonly(a2, true);
	cu_add(f->root, 0x100000, a2, 0);
	cu_assert_flat(f->as, "100000-101fff dev@5000 ro\n");
	mv_region_unref(a1);
	mv_region_unref(dev);
}

/*
 * An alias whose offset exceeds its address makes the render base negative;
 * it must still map the right window (QEMU's Int128 base).
 */
static void test_alias_negative_base(void **state)
{
	fixture *f = *state;
	mv_region *dev = cu_io(f->mem, "dev", 0x100000);

	cu_add(f->root, 0x1000, cu_alias(f->mem, "win", dev, 0x80000, 0x1000), 0);
	cu_assert_flat(f->as, "1000-1fff dev@80000\n");
	mv_region_unref(dev);
}

/* Disabled regions (and their children) vanish; re-enabling restores them. */
static void test_disabled(void **state)
{
	fixture *f = *state;
	mv_region *c = cu_container(f->mem, "c", 0x4000);

	cu_add(c, 0, cu_io(f->mem, "x", 0x1000), 0);
	mv_region_ref(c);
	cu_add(f->root, 0, c, 0);
	mv_region_set_enabled(c, false);
	cu_assert_flat(f->as, "");
	mv_region_set_enabled(c, true);
	cu_assert_flat(f->as, "0-fff x\n");
	mv_region_unref(c);
}

/* Nonvolatile is inherited like readonly. */
static void test_nonvolatile(void **state)
{
	fixture *f = *state;
	mv_region *c = cu_container(f->mem, "c", 0x2000);

	cu_add(c, 0, cu_io(f->mem, "pmem", 0x1000), 0);
	mv_region_set_nonvolatile(c, true);
	cu_add(f->root, 0, c, 0);
	cu_assert_flat(f->as, "0-fff pmem nv\n");
}

/* Neighbouring pieces of one region through two aliases merge (flatview_simplify). */
static void test_simplify_merges(void **state)
{
	fixture *f = *state;
	mv_region *dev = cu_io(f->mem, "dev", 0x4000);

	mv_memory_begin(f->mem);
	cu_add(f->root, 0x0, cu_alias(f->mem, "lo", dev, 0, 0x2000), 0);
	cu_add(f->root, 0x2000, cu_alias(f->mem, "hi", dev, 0x2000, 0x2000), 0);
	/* Not contiguous in the region: stays apart. */
	cu_add(f->root, 0x4000, cu_alias(f->mem, "again", dev, 0x0, 0x1000), 0);
	mv_memory_commit(f->mem);
	cu_assert_flat(f->as, "0-3fff dev\n4000-4fff dev\n");
	mv_region_unref(dev);
}

/* A region at the very top of the 64-bit space, ending at 2^64. */
static void test_top_of_space(void **state)
{
	fixture *f = *state;

	cu_add(f->root, 0xfffffffffffff000ULL, cu_io(f->mem, "top", 0x1000), 0);
	cu_add(f->root, 0, cu_io(f->mem, "all", MV_2_64), -1);
	cu_assert_flat(f->as,
		       "0-ffffffffffffefff all\n"
		       "fffffffffffff000-ffffffffffffffff top\n");
	{
		mv_flatview *fv = mv_address_space_get_flatview(f->as);

		assert_true(mv_flatview_range(fv, 1)->size == 0x1000);
		assert_true(mv_flatview_range(fv, 0)->size == MV_2_64 - 0x1000);
		mv_flatview_unref(fv);
	}
}

/* Reservations claim space like I/O (QEMU: unassigned ops) and hide what is below. */
static void test_reservation(void **state)
{
	fixture *f = *state;
	mv_region *res;

	assert_int_equal(mv_reservation_new(f->mem, "hole", 0x1000, &res), 0);
	cu_add(f->root, 0x1000, res, 1);
	cu_add(f->root, 0, cu_io(f->mem, "dev", 0x4000), 0);
	cu_assert_flat(f->as, "0-fff dev\n1000-1fff hole\n2000-3fff dev@2000\n");
}

/* Two spaces whose roots resolve to the same region share one FlatView. */
static void test_shared_flatview(void **state)
{
	fixture *f = *state;
	mv_region *wrap = cu_container(f->mem, "wrap", MV_2_64);
	mv_region *whole = cu_alias(f->mem, "whole", f->root, 0, MV_2_64);
	mv_address_space *as2, *as3;
	mv_flatview *v1, *v2, *v3;

	cu_add(f->root, 0, cu_io(f->mem, "dev", 0x1000), 0);
	mv_region_ref(f->root);
	cu_add(wrap, 0, f->root, 0);
	assert_int_equal(mv_address_space_new(f->mem, wrap, "wrapped", &as2), 0);
	assert_int_equal(mv_address_space_new(f->mem, whole, "aliased", &as3), 0);
	v1 = mv_address_space_get_flatview(f->as);
	v2 = mv_address_space_get_flatview(as2);
	v3 = mv_address_space_get_flatview(as3);
	assert_ptr_equal(v1, v2);
	assert_ptr_equal(v1, v3);
	/* QEMU's rule descends through sole children covering from 0: down to dev. */
	assert_string_equal(mv_region_name(mv_flatview_root(v1)), "dev");
	mv_flatview_unref(v1);
	mv_flatview_unref(v2);
	mv_flatview_unref(v3);
	mv_address_space_free(as2);
	mv_address_space_free(as3);
	mv_region_unref(wrap);
	mv_region_unref(whole);
}

/* An empty root renders an empty view (root NULL in QEMU's terms). */
static void test_empty_root(void **state)
{
	fixture *f = *state;
	mv_flatview *fv = mv_address_space_get_flatview(f->as);

	assert_int_equal(mv_flatview_nr_ranges(fv), 0);
	assert_null(mv_flatview_root(fv));
	mv_flatview_unref(fv);
}

/* N edits in one transaction render once. */
static void test_transaction_renders_once(void **state)
{
	fixture *f = *state;
	uint64_t before = mv_memory_render_count(f->mem);

	mv_memory_begin(f->mem);
	mv_memory_begin(f->mem);
	for (int i = 0; i < 50; i++)
		cu_add(f->root, (uint64_t)i * 0x1000, cu_io(f->mem, "r", 0x1000), 0);
	mv_memory_commit(f->mem);
	assert_int_equal(mv_memory_render_count(f->mem), before);
	cu_assert_flat(f->as, "");  /* not visible before the outermost commit */
	mv_memory_commit(f->mem);
	assert_int_equal(mv_memory_render_count(f->mem), before + 1);
	{
		mv_flatview *fv = mv_address_space_get_flatview(f->as);

		/* Fifty regions of one name stay fifty ranges: different regions never merge. */
		assert_int_equal(mv_flatview_nr_ranges(fv), 50);
		mv_flatview_unref(fv);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_qemu_overlap_example, cu_setup, cu_teardown),
		cmocka_unit_test_setup_teardown(test_qemu_overlap_example_with_contents, cu_setup, cu_teardown),
		cmocka_unit_test_setup_teardown(test_qemu_pc_example, cu_setup, cu_teardown),
		cmocka_unit_test_setup_teardown(test_equal_priority_later_wins, cu_setup, cu_teardown),
		cmocka_unit_test_setup_teardown(test_priority_beats_order, cu_setup, cu_teardown),
		cmocka_unit_test_setup_teardown(test_clipping, cu_setup, cu_teardown),
		cmocka_unit_test_setup_teardown(test_alias_of_alias_readonly, cu_setup, cu_teardown),
		cmocka_unit_test_setup_teardown(test_alias_negative_base, cu_setup, cu_teardown),
		cmocka_unit_test_setup_teardown(test_disabled, cu_setup, cu_teardown),
		cmocka_unit_test_setup_teardown(test_nonvolatile, cu_setup, cu_teardown),
		cmocka_unit_test_setup_teardown(test_simplify_merges, cu_setup, cu_teardown),
		cmocka_unit_test_setup_teardown(test_top_of_space, cu_setup, cu_teardown),
		cmocka_unit_test_setup_teardown(test_reservation, cu_setup, cu_teardown),
		cmocka_unit_test_setup_teardown(test_shared_flatview, cu_setup, cu_teardown),
		cmocka_unit_test_setup_teardown(test_empty_root, cu_setup, cu_teardown),
		cmocka_unit_test_setup_teardown(test_transaction_renders_once, cu_setup, cu_teardown),
	};

	return cmocka_run_group_tests_name("render", tests, NULL, NULL);
}
