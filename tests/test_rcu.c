/*
 * Readers never block and never see a half-built view: reader threads read
 * through the address space while the main thread swaps layouts and drops
 * regions. Run under ASan, a premature free is a reported use after free.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "testutil.h"
#include "coreutil.h"

static mv_memtx read_tag(void *opaque, uint64_t addr, uint64_t *data, unsigned size)
{
	(void)addr;
	(void)size;
	*data = (uintptr_t)opaque;
	return MV_MEMTX_OK;
}

static const mv_region_ops tag_ops = {
	.read = read_tag,
	.valid = { .min_access_size = 1, .max_access_size = 8 },
	.impl = { .min_access_size = 1, .max_access_size = 8 },
};

typedef struct shared {
	mv_address_space *as;
	atomic_bool stop;
	atomic_ulong reads, bad;
} shared;

static void *reader(void *arg)
{
	shared *s = arg;

	while (!atomic_load(&s->stop)) {
		uint64_t a = 0, b = 0;
		mv_flatview *fv;

		/* Two reads of one view: both from the same layout. */
		fv = mv_address_space_get_flatview(s->as);
		if (mv_flatview_rw(fv, 0x0, &a, 8, false) != MV_MEMTX_OK ||
		    mv_flatview_rw(fv, 0x1800, &b, 8, false) != MV_MEMTX_OK || a != b ||
		    (a != 0x1111 && a != 0x2222))
			atomic_fetch_add(&s->bad, 1);
		mv_flatview_unref(fv);
		/* And through the space itself, inside an RCU read section. */
		a = 0;
		if (mv_as_read(s->as, 0x10, &a, 4) != MV_MEMTX_OK || (a != 0x1111 && a != 0x2222))
			atomic_fetch_add(&s->bad, 1);
		atomic_fetch_add(&s->reads, 1);
	}
	return NULL;
}

static void test_readers_during_swaps(void **state)
{
	mv_memory *mem;
	mv_region *root;
	shared s = { 0 };
	pthread_t th[2];

	(void)state;
	assert_int_equal(mv_memory_new(NULL, &mem), 0);
	root = cu_container(mem, "root", MV_2_64);
	assert_int_equal(mv_address_space_new(mem, root, "as", &s.as), 0);
	{
		mv_io_region *io;

		assert_int_equal(mv_io_region_new(mem, "A", 0x2000, &tag_ops, (void *)0x1111, &io), 0);
		cu_add(root, 0, mv_io_region_base(io), 0);
	}
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, reader, &s), 0);
	for (int round = 0; round < 2000; round++) {
		mv_region *old = mv_region_subregion(root, 0);
		mv_io_region *io;

		/* Replace the region in one transaction; the old one is released at once. */
		assert_int_equal(mv_io_region_new(mem, round & 1 ? "A" : "B", 0x2000, &tag_ops,
						  (void *)(uintptr_t)(round & 1 ? 0x1111 : 0x2222), &io), 0);
		mv_memory_begin(mem);
		assert_int_equal(mv_region_del_subregion(root, old), 0);
		cu_add(root, 0, mv_io_region_base(io), 0);
		assert_int_equal(mv_memory_commit(mem), 0);
	}
	atomic_store(&s.stop, true);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	printf("# %lu reads during 2000 swaps\n", atomic_load(&s.reads));
	assert_true(atomic_load(&s.reads) > 0);
	assert_int_equal(atomic_load(&s.bad), 0);
	mv_region_unref(root);
	mv_memory_free(mem);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_readers_during_swaps),
	};

	return cmocka_run_group_tests_name("rcu", tests, NULL, NULL);
}
