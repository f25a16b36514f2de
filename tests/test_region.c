/* Region tree rules: constructors, edits and their errors, casts, lifetime. */
#include <errno.h>

#include "testutil.h"
#include "coreutil.h"

static mv_memory *new_mem(void)
{
	mv_memory *mem;

	assert_int_equal(mv_memory_new(NULL, &mem), 0);
	return mem;
}

static void test_constructor_sizes(void **state)
{
	mv_memory *mem = new_mem();
	mv_region *r;
	mv_io_region *io;

	(void)state;
	assert_int_equal(mv_container_new(mem, "zero", 0, &r), -EINVAL);
	assert_int_equal(mv_container_new(mem, "huge", MV_2_64 + 1, &r), -EINVAL);
	assert_int_equal(mv_io_region_new(mem, "io", 0, NULL, NULL, &io), -EINVAL);
	assert_int_equal(mv_container_new(mem, "max", MV_2_64, &r), 0);
	assert_true(mv_region_size(r) == MV_2_64);
	assert_true(mv_region_enabled(r));
	assert_false(mv_region_readonly(r));
	mv_region_unref(r);
	mv_memory_free(mem);
}

static void test_add_errors(void **state)
{
	mv_memory *mem = new_mem();
	mv_region *root = cu_container(mem, "root", MV_2_64);
	mv_region *c = cu_container(mem, "c", 0x10000);
	mv_region *d = cu_container(mem, "d", 0x1000);
	mv_region *big = cu_io(mem, "big", 0x2000);
	mv_region *al = cu_alias(mem, "al", root, 0, 0x1000);

	(void)state;
	/* Address + size beyond 2^64. */
	assert_int_equal(mv_region_add_subregion(root, 0xfffffffffffff000ULL, big), -EINVAL);
	/* Aliases take no children. */
	assert_int_equal(mv_region_add_subregion(al, 0, d), -EINVAL);
	/* Self and ancestors. */
	assert_int_equal(mv_region_add_subregion(c, 0, c), -ELOOP);
	assert_int_equal(mv_region_add_subregion(root, 0, c), 0);
	assert_int_equal(mv_region_add_subregion(c, 0, d), 0);
	assert_int_equal(mv_region_add_subregion(d, 0, root), -ELOOP);
	/* An alias reaching back to an ancestor would render forever. */
	assert_int_equal(mv_region_add_subregion(d, 0, al), -ELOOP);
	/* Already has a parent. */
	assert_int_equal(mv_region_add_subregion(root, 0x100000, d), -EBUSY);
	/* Not a child. */
	assert_int_equal(mv_region_del_subregion(root, d), -ENOENT);
	assert_int_equal(mv_region_del_subregion(c, d), 0);
	assert_null(mv_region_parent(d));
	assert_int_equal(mv_region_del_subregion(c, d), -ENOENT);
	mv_region_unref(al);
	mv_region_unref(big);
	mv_region_unref(d);
	mv_region_unref(c);
	mv_region_unref(root);
	mv_memory_free(mem);
}

static void test_casts_and_types(void **state)
{
	mv_memory *mem = new_mem();
	mv_region *io = cu_io(mem, "io", 0x1000);
	mv_region *c = cu_container(mem, "c", 0x1000);
	mv_region *al = cu_alias(mem, "al", io, 0, 0x1000);

	(void)state;
	assert_non_null(mv_region_as_io(io));
	assert_null(mv_region_as_ram(io));
	assert_null(mv_region_as_alias(io));
	assert_null(mv_region_as_romd(c));
	assert_ptr_equal(mv_alias_region_target(mv_region_as_alias(al)), io);
	assert_string_equal(mv_region_type_name(io), "i/o");
	assert_string_equal(mv_region_type_name(c), "i/o");
	assert_string_equal(mv_region_type_name(al), "i/o");
	assert_int_equal(mv_region_get_kind(al), MV_REGION_ALIAS);
	assert_false(mv_region_is_ram(al));
	assert_int_equal(mv_region_set_log(io, true, MV_DIRTY_MIGRATION), -EINVAL);
	mv_region_unref(al);
	mv_region_unref(io);
	mv_region_unref(c);
	mv_memory_free(mem);
}

/* The subregion list follows QEMU: priority descending, later first on ties. */
static void test_subregion_order(void **state)
{
	mv_memory *mem = new_mem();
	mv_region *root = cu_container(mem, "root", 0x100000);
	const char *expect[] = { "p5", "b0", "a0", "m1" };

	(void)state;
	cu_add(root, 0, cu_io(mem, "a0", 0x1000), 0);
	cu_add(root, 0, cu_io(mem, "p5", 0x1000), 5);
	cu_add(root, 0, cu_io(mem, "m1", 0x1000), -1);
	cu_add(root, 0, cu_io(mem, "b0", 0x1000), 0);
	assert_int_equal(mv_region_nr_subregions(root), 4);
	for (size_t i = 0; i < 4; i++)
		assert_string_equal(mv_region_name(mv_region_subregion(root, i)), expect[i]);
	mv_region_unref(root);
	mv_memory_free(mem);
}

static void test_move_resize_offset(void **state)
{
	mv_memory *mem = new_mem();
	mv_region *root = cu_container(mem, "root", MV_2_64);
	mv_region *dev = cu_io(mem, "dev", 0x4000);
	mv_region *win = cu_alias(mem, "win", dev, 0, 0x1000);
	mv_address_space *as;

	(void)state;
	assert_int_equal(mv_address_space_new(mem, root, "as", &as), 0);
	assert_int_equal(mv_region_add_subregion(root, 0x1000, win), 0);
	cu_assert_flat(as, "1000-1fff dev\n");
	assert_int_equal(mv_region_set_address(win, 0x8000), 0);
	cu_assert_flat(as, "8000-8fff dev\n");
	assert_int_equal(mv_alias_region_set_offset(mv_region_as_alias(win), 0x2000), 0);
	cu_assert_flat(as, "8000-8fff dev@2000\n");
	assert_int_equal(mv_region_set_size(win, 0x2000), 0);
	cu_assert_flat(as, "8000-9fff dev@2000\n");
	assert_int_equal(mv_region_set_size(win, 0), -EINVAL);
	assert_int_equal(mv_region_set_address(win, 0xffffffffffffffffULL), -EINVAL);
	cu_assert_flat(as, "8000-9fff dev@2000\n");
	mv_region_unref(win);
	mv_region_unref(dev);
	mv_region_unref(root);
	mv_memory_free(mem);
}

/*
 * A region removed from the tree and released by its owner stays valid
 * while a FlatView that a reader holds still shows it.
 */
static void test_removed_region_outlives_view(void **state)
{
	mv_memory *mem = new_mem();
	mv_region *root = cu_container(mem, "root", MV_2_64);
	mv_region *dev = cu_io(mem, "dev", 0x1000);
	mv_address_space *as;
	mv_flatview *old;

	(void)state;
	assert_int_equal(mv_address_space_new(mem, root, "as", &as), 0);
	assert_int_equal(mv_region_add_subregion(root, 0, dev), 0);
	old = mv_address_space_get_flatview(as);
	assert_int_equal(mv_region_del_subregion(root, dev), 0);
	mv_region_unref(dev);   /* the owner lets go: only the old view holds it */
	cu_assert_flat(as, "");
	/* ASan would flag a use after free here. */
	assert_string_equal(mv_region_name(mv_flatview_range(old, 0)->mr), "dev");
	mv_flatview_unref(old);
	mv_region_unref(root);
	mv_memory_free(mem);
}

/* Every allocation failing in turn: clean -ENOMEM, no leak (ASan checks). */
static void test_allocation_failures(void **state)
{
	(void)state;
	for (unsigned long fail = 1; fail < 200; fail++) {
		tu_failing_alloc fa;
		mv_memory *mem;
		mv_region *root = NULL, *dev = NULL, *al = NULL;
		mv_address_space *as = NULL;
		mv_io_region *io;
		mv_alias_region *a;
		bool done = false;

		tu_failing_alloc_init(&fa, fail, false);
		if (mv_memory_new(&fa.alloc, &mem))
			continue;
		if (mv_container_new(mem, "root", MV_2_64, &root))
			goto out;
		if (mv_address_space_new(mem, root, "as", &as))
			goto out;
		if (mv_io_region_new(mem, "dev", 0x1000, NULL, NULL, &io))
			goto out;
		dev = mv_io_region_base(io);
		if (mv_alias_region_new(mem, "al", dev, 0, 0x800, &a))
			goto out;
		al = mv_alias_region_base(a);
		mv_memory_begin(mem);
		if (mv_region_add_subregion(root, 0x1000, dev) ||
		    mv_region_add_subregion(root, 0x4000, al)) {
			mv_memory_commit(mem);
			goto out;
		}
		if (mv_memory_commit(mem) == 0) {
			cu_assert_flat(as, "1000-1fff dev\n4000-47ff dev\n");
			done = true;
		} else {
			/* The old (empty) view stays published. */
			cu_assert_flat(as, "");
		}
out:
		mv_region_unref(al);
		mv_region_unref(dev);
		mv_region_unref(root);
		mv_memory_free(mem);
		if (done && fa.calls < fail)
			break;  /* every allocation point has been failed once */
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_constructor_sizes),
		cmocka_unit_test(test_add_errors),
		cmocka_unit_test(test_casts_and_types),
		cmocka_unit_test(test_subregion_order),
		cmocka_unit_test(test_move_resize_offset),
		cmocka_unit_test(test_removed_region_outlives_view),
		cmocka_unit_test(test_allocation_failures),
	};

	return cmocka_run_group_tests_name("region", tests, NULL, NULL);
}
