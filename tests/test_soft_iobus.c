/*
 * The soft KVM's in-process I/O bus: registration rules, which device an
 * access reaches (whole access inside one range, or nobody), declining
 * devices, many devices, accesses racing registration, allocation failures.
 */
#include "testutil.h"

#include "memvirt/soft_iobus.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

/* A device that records its last access and answers from a register file. */
typedef struct tdev {
	uint64_t base;
	uint8_t regs[64];
	int decline;               /* return -EOPNOTSUPP */
	unsigned reads, writes;
	uint64_t last_addr;
	unsigned last_len;
} tdev;

static int tdev_read(void *opaque, uint64_t addr, unsigned len, void *data)
{
	tdev *d = opaque;

	d->reads++;
	d->last_addr = addr;
	d->last_len = len;
	if (d->decline)
		return -EOPNOTSUPP;
	memcpy(data, &d->regs[addr - d->base], len);
	return 0;
}

static int tdev_write(void *opaque, uint64_t addr, unsigned len, const void *data)
{
	tdev *d = opaque;

	d->writes++;
	d->last_addr = addr;
	d->last_len = len;
	if (d->decline)
		return -EOPNOTSUPP;
	memcpy(&d->regs[addr - d->base], data, len);
	return 0;
}

static const mv_iobus_dev_ops tdev_ops = { tdev_read, tdev_write };

/* A device that takes every read and tells nothing. */
static int null_read(void *opaque, uint64_t addr, unsigned len, void *data)
{
	(void)opaque;
	(void)addr;
	memset(data, 0, len);
	return 0;
}

static const mv_iobus_dev_ops null_ops = { null_read, NULL };

static mv_iobus *new_bus(void)
{
	mv_iobus *bus = NULL;

	assert_int_equal(mv_iobus_new(NULL, &bus), 0);
	return bus;
}

static void test_register_rules(void **state)
{
	mv_iobus *bus = new_bus();
	tdev d = { 0 };

	(void)state;
	assert_int_equal(mv_iobus_register(bus, 0x1000, 0, &tdev_ops, &d), -EINVAL);
	assert_int_equal(mv_iobus_register(bus, ~0ull, 2, &tdev_ops, &d), -EINVAL);
	assert_int_equal(mv_iobus_register(bus, 2, ~0ull, &tdev_ops, &d), -EINVAL);
	/* a range ending exactly at 2^64 does not wrap */
	assert_int_equal(mv_iobus_register(bus, ~0ull - 15, 16, &tdev_ops, &d), 0);
	assert_int_equal(mv_iobus_register(bus, ~0ull, 1, &tdev_ops, &d), -EEXIST);

	assert_int_equal(mv_iobus_register(bus, 0x1000, 0x100, &tdev_ops, &d), 0);
	/* overlaps: start, end, inside, around, identical */
	assert_int_equal(mv_iobus_register(bus, 0xf00, 0x101, &tdev_ops, &d), -EEXIST);
	assert_int_equal(mv_iobus_register(bus, 0x10ff, 0x10, &tdev_ops, &d), -EEXIST);
	assert_int_equal(mv_iobus_register(bus, 0x1010, 1, &tdev_ops, &d), -EEXIST);
	assert_int_equal(mv_iobus_register(bus, 0, 0x10000, &tdev_ops, &d), -EEXIST);
	assert_int_equal(mv_iobus_register(bus, 0x1000, 0x100, &tdev_ops, &d), -EEXIST);
	/* adjacent on both sides */
	assert_int_equal(mv_iobus_register(bus, 0xf00, 0x100, &tdev_ops, &d), 0);
	assert_int_equal(mv_iobus_register(bus, 0x1100, 0x100, &tdev_ops, &d), 0);
	/* the whole space below: overlaps the first */
	assert_int_equal(mv_iobus_register(bus, 0, 0xf01, &tdev_ops, &d), -EEXIST);
	assert_int_equal(mv_iobus_register(bus, 0, 0xf00, &tdev_ops, &d), 0);

	/* unregister: exact start only */
	assert_int_equal(mv_iobus_unregister(bus, 0x1001), -ENOENT);
	assert_int_equal(mv_iobus_unregister(bus, 0x2000), -ENOENT);
	assert_int_equal(mv_iobus_unregister(bus, 0x1000), 0);
	assert_int_equal(mv_iobus_unregister(bus, 0x1000), -ENOENT);
	assert_int_equal(mv_iobus_register(bus, 0x1000, 0x100, &tdev_ops, &d), 0);
	assert_int_equal(mv_iobus_unregister(bus, ~0ull - 15), 0);
	assert_int_equal(mv_iobus_unregister(bus, 0), 0);
	mv_iobus_free(bus);
	mv_iobus_free(NULL);
}

static void test_access_routing(void **state)
{
	mv_iobus *bus = new_bus();
	tdev a = { .base = 0x1000 }, b = { .base = 0x1010 };
	uint8_t buf[8];
	uint32_t v = 0x11223344;

	(void)state;
	assert_int_equal(mv_iobus_register(bus, 0x1000, 16, &tdev_ops, &a), 0);
	assert_int_equal(mv_iobus_register(bus, 0x1010, 16, &tdev_ops, &b), 0);

	/* inside a device: its callback, with the absolute address */
	assert_int_equal(mv_iobus_write(bus, 0x1004, 4, &v), 0);
	assert_int_equal(a.writes, 1);
	assert_int_equal(a.last_addr, 0x1004);
	assert_int_equal(a.last_len, 4);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(mv_iobus_read(bus, 0x1004, 4, buf), 0);
	assert_memory_equal(buf, &v, 4);
	/* the first and last bytes of a range */
	assert_int_equal(mv_iobus_write(bus, 0x1010, 8, "abcdefgh"), 0);
	assert_int_equal(mv_iobus_read(bus, 0x1018, 8, buf), 0);
	assert_int_equal(b.writes, 1);
	assert_int_equal(b.reads, 1);
	assert_int_equal(mv_iobus_read(bus, 0x101f, 1, buf), 0);
	assert_int_equal(mv_iobus_read(bus, 0x1000, 1, buf), 0);

	/* straddling two devices, or the end of one: nobody */
	assert_int_equal(mv_iobus_read(bus, 0x100e, 4, buf), -EOPNOTSUPP);
	assert_int_equal(mv_iobus_write(bus, 0x101e, 4, buf), -EOPNOTSUPP);
	assert_int_equal(mv_iobus_read(bus, 0xffe, 4, buf), -EOPNOTSUPP);
	/* outside, empty, wrapping */
	assert_int_equal(mv_iobus_read(bus, 0xfff, 1, buf), -EOPNOTSUPP);
	assert_int_equal(mv_iobus_read(bus, 0x1020, 1, buf), -EOPNOTSUPP);
	assert_int_equal(mv_iobus_read(bus, 0x1000, 0, buf), -EOPNOTSUPP);
	assert_int_equal(mv_iobus_write(bus, ~0ull - 1, 4, buf), -EOPNOTSUPP);
	assert_int_equal(a.reads + a.writes, 3);
	assert_int_equal(b.reads + b.writes, 3);

	/* a declining device: no other device is asked */
	a.decline = 1;
	assert_int_equal(mv_iobus_write(bus, 0x1000, 4, &v), -EOPNOTSUPP);
	assert_int_equal(mv_iobus_read(bus, 0x1000, 4, buf), -EOPNOTSUPP);
	assert_int_equal(a.writes, 2);
	assert_int_equal(a.reads, 3);
	assert_int_equal(b.reads + b.writes, 3);

	/* after unregister the range is empty */
	assert_int_equal(mv_iobus_unregister(bus, 0x1010), 0);
	assert_int_equal(mv_iobus_read(bus, 0x1010, 1, buf), -EOPNOTSUPP);
	assert_int_equal(b.reads, 2);
	mv_iobus_free(bus);
}

/* A device with only one of the two callbacks declines the other access. */
static void test_missing_callbacks(void **state)
{
	mv_iobus *bus = new_bus();
	const mv_iobus_dev_ops ro = { tdev_read, NULL }, wo = { NULL, tdev_write };
	tdev a = { .base = 0 }, b = { .base = 0x100 };
	uint8_t buf[4] = { 0 };

	(void)state;
	assert_int_equal(mv_iobus_register(bus, 0, 4, &ro, &a), 0);
	assert_int_equal(mv_iobus_register(bus, 0x100, 4, &wo, &b), 0);
	assert_int_equal(mv_iobus_read(bus, 0, 4, buf), 0);
	assert_int_equal(mv_iobus_write(bus, 0, 4, buf), -EOPNOTSUPP);
	assert_int_equal(mv_iobus_write(bus, 0x100, 4, buf), 0);
	assert_int_equal(mv_iobus_read(bus, 0x100, 4, buf), -EOPNOTSUPP);
	assert_int_equal(a.reads + b.writes, 2);
	mv_iobus_free(bus);
}

static void test_many_devices(void **state)
{
	mv_iobus *bus = new_bus();
	static tdev devs[500];
	unsigned i, n = 500;
	uint8_t buf[2];

	(void)state;
	/* device k at 0x100 * k, 0x10 + k % 32 bytes, registered in scrambled order */
	for (i = 0; i < n; i++) {
		unsigned k = (i * 293u) % n;

		memset(&devs[k], 0, sizeof(devs[k]));
		devs[k].base = 0x100ull * k;
		assert_int_equal(mv_iobus_register(bus, devs[k].base, 0x10 + k % 32, &tdev_ops,
						   &devs[k]), 0);
	}
	for (i = 0; i < n; i++) {
		uint64_t end = 0x100ull * i + 0x10 + i % 32;

		assert_int_equal(mv_iobus_read(bus, 0x100ull * i, 2, buf), 0);
		assert_int_equal(mv_iobus_read(bus, end - 2, 2, buf), 0);
		assert_int_equal(mv_iobus_read(bus, end - 1, 2, buf), -EOPNOTSUPP);
		assert_int_equal(mv_iobus_read(bus, end, 1, buf), -EOPNOTSUPP);
		assert_int_equal(devs[i].reads, 2);
		assert_int_equal(devs[i].last_addr, end - 2);
	}
	for (i = 0; i < n; i += 2)
		assert_int_equal(mv_iobus_unregister(bus, 0x100ull * i), 0);
	for (i = 0; i < n; i++)
		assert_int_equal(mv_iobus_write(bus, 0x100ull * i + 1, 1, buf),
				 i % 2 ? 0 : -EOPNOTSUPP);
	mv_iobus_free(bus);
}

static void test_alloc_failures(void **state)
{
	unsigned long i, points = 0;
	bool done = false;

	(void)state;
	for (i = 1; !done; i++) {
		tu_failing_alloc fa;
		mv_iobus *bus = NULL;
		unsigned k;
		int r = 0;

		tu_failing_alloc_init(&fa, i, false);
		if (mv_iobus_new(&fa.alloc, &bus)) {
			points++;
			continue;
		}
		for (k = 0; k < 20; k++) {
			r = mv_iobus_register(bus, 0x10ull * k, 8, &null_ops, NULL);
			if (r)
				break;
		}
		if (r) {
			uint8_t b;

			assert_int_equal(r, -ENOMEM);
			/* the failed device is absent, the others answer */
			assert_int_equal(mv_iobus_read(bus, 0x10ull * k, 1, &b), -EOPNOTSUPP);
			assert_int_equal(mv_iobus_unregister(bus, 0x10ull * k), -ENOENT);
			if (k > 0)
				assert_int_equal(mv_iobus_read(bus, 0x10ull * (k - 1), 1, &b), 0);
			points++;
		}
		mv_iobus_free(bus);
		done = fa.calls < fa.fail_at;
	}
	printf("# %lu allocation failure points checked\n", points);
	assert_true(points >= 3);
}

/* ------------------------------------------------------------------ */
/* Accesses racing registration                                         */

#define RACE_DEVS 8
#define RACE_ROUNDS 3000

/* Counts its accesses; the owner frees nothing, so a late access would show. */
typedef struct race_dev {
	uint64_t base;
	unsigned long hits;         /* __atomic */
	int alive;                  /* __atomic: 0 after unregister returned */
	unsigned long late;         /* accesses seen while !alive */
} race_dev;

static int race_read(void *opaque, uint64_t addr, unsigned len, void *data)
{
	race_dev *d = opaque;

	if (!__atomic_load_n(&d->alive, __ATOMIC_ACQUIRE))
		__atomic_fetch_add(&d->late, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&d->hits, 1, __ATOMIC_RELAXED);
	memset(data, (int)(addr - d->base), len);
	return 0;
}

static const mv_iobus_dev_ops race_ops = { race_read, NULL };

typedef struct race {
	mv_iobus *bus;
	race_dev devs[RACE_DEVS];
	int stop;                   /* __atomic */
	unsigned long wrong;        /* __atomic: data not from the right device */
} race;

static void *race_reader(void *arg)
{
	race *r = arg;
	uint64_t rng = (uint64_t)(uintptr_t)&rng | 1;

	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		unsigned k = (unsigned)tu_rand_below(&rng, RACE_DEVS);
		unsigned off = (unsigned)tu_rand_below(&rng, 8);
		uint8_t b = 0xee;

		if (mv_iobus_read(r->bus, 0x1000ull * k + off, 1, &b) == 0 && b != off)
			__atomic_fetch_add(&r->wrong, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void test_concurrent_access_and_registration(void **state)
{
	static race r;
	pthread_t th[2];
	unsigned i, k;
	unsigned long hits = 0, late = 0;

	(void)state;
	memset(&r, 0, sizeof(r));
	r.bus = new_bus();
	for (k = 0; k < RACE_DEVS; k++)
		r.devs[k].base = 0x1000ull * k;
	for (i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, race_reader, &r), 0);
	for (i = 0; i < RACE_ROUNDS; i++) {
		race_dev *d = &r.devs[i % RACE_DEVS];

		__atomic_store_n(&d->alive, 1, __ATOMIC_RELEASE);
		assert_int_equal(mv_iobus_register(r.bus, d->base, 8, &race_ops, d), 0);
		if (i % 3 == 0)
			sched_yield();
		assert_int_equal(mv_iobus_unregister(r.bus, d->base), 0);
		/* from here on no access may reach d */
		__atomic_store_n(&d->alive, 0, __ATOMIC_RELEASE);
	}
	__atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
	for (i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	for (k = 0; k < RACE_DEVS; k++) {
		hits += r.devs[k].hits;
		late += r.devs[k].late;
	}
	printf("# %lu device hits during %u register/unregister rounds\n", hits, RACE_ROUNDS);
	assert_int_equal(late, 0);
	assert_int_equal(r.wrong, 0);
	mv_iobus_free(r.bus);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_register_rules),
		cmocka_unit_test(test_access_routing),
		cmocka_unit_test(test_missing_callbacks),
		cmocka_unit_test(test_many_devices),
		cmocka_unit_test(test_alloc_failures),
		cmocka_unit_test(test_concurrent_access_and_registration),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
