/*
 * Access tests: RAM/ROM copies and dirty bits, unassigned and reservation
 * decode errors, and the callback path (size splitting and widening,
 * validity rules, byte order, ROM device modes, error propagation), all
 * through address spaces built with the core's public API.
 */
#include "testutil.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "memvirt/memory.h"

#define TOP (~(uint64_t)0)

/* A device that logs its calls and answers reads from a table. */
struct call {
	bool write;
	uint64_t addr, data;
	unsigned size;
};

struct dev {
	struct call log[64];
	unsigned nr;
	uint64_t rd[32];        /* read value by offset */
	uint64_t err_addr;      /* calls at this offset answer MV_MEMTX_ERROR */
	uint64_t reject_addr;   /* accepts() refuses this offset */
	unsigned accepts_calls;
};

static void dev_log(struct dev *d, bool w, uint64_t addr, uint64_t data, unsigned size)
{
	if (d->nr < 64)
		d->log[d->nr++] = (struct call){ w, addr, data, size };
}

static mv_memtx dev_read(void *opaque, uint64_t addr, uint64_t *data, unsigned size)
{
	struct dev *d = opaque;

	*data = addr < 32 ? d->rd[addr] : 0;
	dev_log(d, false, addr, *data, size);
	return addr == d->err_addr ? MV_MEMTX_ERROR : MV_MEMTX_OK;
}

static mv_memtx dev_write(void *opaque, uint64_t addr, uint64_t data, unsigned size)
{
	struct dev *d = opaque;

	dev_log(d, true, addr, data, size);
	return addr == d->err_addr ? MV_MEMTX_ERROR : MV_MEMTX_OK;
}

static bool dev_accepts(void *opaque, uint64_t addr, unsigned size, bool is_write)
{
	struct dev *d = opaque;

	(void)size;
	(void)is_write;
	d->accepts_calls++;
	return addr != d->reject_addr;
}

static void dev_init(struct dev *d)
{
	memset(d, 0, sizeof(*d));
	d->err_addr = TOP;
	d->reject_addr = TOP;
}

static void assert_call(const struct dev *d, unsigned i, bool w, uint64_t addr,
			uint64_t data, unsigned size)
{
	assert_true(i < d->nr);
	assert_int_equal(d->log[i].write, w);
	assert_int_equal(d->log[i].addr, addr);
	assert_int_equal(d->log[i].data, data);
	assert_int_equal(d->log[i].size, size);
}

/* One memory system with a 2^64 container as the root of one space. */
struct fx {
	mv_memory *mem;
	mv_region *root;
	mv_address_space *as;
	mv_ramblock *blocks[8];
	unsigned nr_blocks;
};

static void fx_init(struct fx *f)
{
	memset(f, 0, sizeof(*f));
	assert_int_equal(mv_memory_new(NULL, &f->mem), 0);
	assert_int_equal(mv_container_new(f->mem, "root", MV_2_64, &f->root), 0);
	assert_int_equal(mv_address_space_new(f->mem, f->root, "as", &f->as), 0);
}

static void fx_fini(struct fx *f)
{
	for (unsigned i = 0; i < f->nr_blocks; i++)
		mv_ramblock_unref(f->blocks[i]);
	mv_region_unref(f->root);
	mv_memory_free(f->mem);
}

/* Place @r at @off (the root keeps it alive). */
static mv_region *fx_place(struct fx *f, uint64_t off, mv_region *r)
{
	assert_int_equal(mv_region_add_subregion(f->root, off, r), 0);
	mv_region_unref(r);
	return r;
}

static mv_ramblock *fx_block(struct fx *f, const char *name, uint64_t size)
{
	mv_ramblock_opts opts = { 0 };
	mv_ramblock *b;

	assert_int_equal(mv_ramblock_new(mv_memory_ram_list(f->mem), name, size, &opts, &b,
					 NULL), 0);
	assert_true(f->nr_blocks < 8);
	f->blocks[f->nr_blocks++] = b;   /* the test's reference, for host/dirty checks */
	return b;
}

static mv_ramblock *fx_ram(struct fx *f, const char *name, uint64_t off, uint64_t size,
			   bool rom, mv_region **out)
{
	mv_ramblock *b = fx_block(f, name, size);
	mv_ram_region *r;

	if (rom)
		assert_int_equal(mv_rom_region_new(f->mem, name, b, &r), 0);
	else
		assert_int_equal(mv_ram_region_new(f->mem, name, b, &r), 0);
	fx_place(f, off, mv_ram_region_base(r));
	if (out)
		*out = mv_ram_region_base(r);
	return b;
}

static mv_region *fx_io(struct fx *f, uint64_t off, uint64_t size, const mv_region_ops *ops,
			struct dev *d)
{
	mv_io_region *r;

	assert_int_equal(mv_io_region_new(f->mem, "dev", size, ops, d, &r), 0);
	return fx_place(f, off, mv_io_region_base(r));
}

static const mv_region_ops ops_le32 = {
	.read = dev_read, .write = dev_write, .endianness = MV_ENDIAN_LITTLE,
	.valid = { .min_access_size = 1, .max_access_size = 8 },
	.impl = { .min_access_size = 1, .max_access_size = 4 },
};

static const mv_region_ops ops_be32 = {
	.read = dev_read, .write = dev_write, .endianness = MV_ENDIAN_BIG,
	.valid = { .min_access_size = 1, .max_access_size = 8 },
	.impl = { .min_access_size = 1, .max_access_size = 4 },
};

static void test_ram_rw_dirty(void **state)
{
	struct fx f;
	uint8_t in[16], out[16];
	mv_ramblock *b;

	(void)state;
	fx_init(&f);
	b = fx_ram(&f, "ram", 0x10000, 0x4000, false, NULL);
	for (int i = 0; i < 16; i++)
		in[i] = 0xa0 + i;
	/* Crosses the page border inside the block. */
	assert_int_equal(mv_as_write(f.as, 0x10ff8, in, 16), MV_MEMTX_OK);
	assert_memory_equal((uint8_t *)mv_ramblock_host(b) + 0xff8, in, 16);
	assert_int_equal(mv_as_read(f.as, 0x10ff8, out, 16), MV_MEMTX_OK);
	assert_memory_equal(out, in, 16);
	assert_true(mv_ramblock_test_dirty(b, 0x0000));
	assert_true(mv_ramblock_test_dirty(b, 0x1000));
	assert_false(mv_ramblock_test_dirty(b, 0x2000));
	assert_false(mv_ramblock_test_dirty(b, 0x3000));
	/* Length 0 does nothing and succeeds, anywhere. */
	assert_int_equal(mv_as_write(f.as, 0x13000, in, 0), MV_MEMTX_OK);
	assert_int_equal(mv_as_read(f.as, 0x5, out, 0), MV_MEMTX_OK);
	assert_false(mv_ramblock_test_dirty(b, 0x3000));
	fx_fini(&f);
}

static void test_rom_and_readonly(void **state)
{
	struct fx f;
	uint8_t buf[8] = { 1, 2, 3, 4, 5, 6, 7, 8 }, out[8];
	mv_region *ram;
	mv_ramblock *rom, *rb;

	(void)state;
	fx_init(&f);
	rom = fx_ram(&f, "rom", 0xf0000, 0x1000, true, NULL);
	rb = fx_ram(&f, "ram", 0x0, 0x1000, false, &ram);
	memset(mv_ramblock_host(rom), 0x5a, 0x1000);
	assert_int_equal(mv_as_write(f.as, 0xf0010, buf, 8), MV_MEMTX_DECODE_ERROR);
	assert_int_equal(mv_as_read(f.as, 0xf000c, out, 8), MV_MEMTX_OK);
	assert_memory_equal(out, "\x5a\x5a\x5a\x5a\x5a\x5a\x5a\x5a", 8);
	assert_false(mv_ramblock_test_dirty(rom, 0));

	/* RAM made read-only: writes dropped, reads still work. */
	mv_region_set_readonly(ram, true);
	assert_int_equal(mv_as_write(f.as, 0x10, buf, 8), MV_MEMTX_DECODE_ERROR);
	assert_int_equal(mv_as_read(f.as, 0x10, out, 8), MV_MEMTX_OK);
	assert_memory_equal(out, "\0\0\0\0\0\0\0\0", 8);
	assert_false(mv_ramblock_test_dirty(rb, 0));
	mv_region_set_readonly(ram, false);
	assert_int_equal(mv_as_write(f.as, 0x10, buf, 8), MV_MEMTX_OK);
	assert_true(mv_ramblock_test_dirty(rb, 0));
	fx_fini(&f);
}

static void test_unassigned(void **state)
{
	struct fx f;
	uint8_t buf[32];
	mv_ramblock *b;

	(void)state;
	fx_init(&f);
	b = fx_ram(&f, "ram", 0x1000, 0x1000, false, NULL);
	memset(mv_ramblock_host(b), 0x11, 0x1000);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(mv_as_read(f.as, 0x123456789, buf, 32), MV_MEMTX_DECODE_ERROR);
	for (int i = 0; i < 32; i++)
		assert_int_equal(buf[i], 0xff);
	assert_int_equal(mv_as_write(f.as, 0x8000, buf, 32), MV_MEMTX_DECODE_ERROR);
	/* RAM, then the hole after it: RAM bytes intact, the rest all ones. */
	memset(buf, 0, sizeof(buf));
	assert_int_equal(mv_as_read(f.as, 0x1ff0, buf, 32), MV_MEMTX_DECODE_ERROR);
	for (int i = 0; i < 32; i++)
		assert_int_equal(buf[i], i < 16 ? 0x11 : 0xff);
	/* A big read across a hole of many pages is fine. */
	{
		static uint8_t big[0x5000];

		assert_int_equal(mv_as_read(f.as, 0x0, big, sizeof(big)), MV_MEMTX_DECODE_ERROR);
		assert_int_equal(big[0xfff], 0xff);
		assert_int_equal(big[0x1000], 0x11);
		assert_int_equal(big[0x2000], 0xff);
		assert_int_equal(big[0x4fff], 0xff);
	}
	fx_fini(&f);
}

static void test_reservation(void **state)
{
	struct fx f;
	mv_region *r;
	uint8_t buf[4] = { 0 };

	(void)state;
	fx_init(&f);
	assert_int_equal(mv_reservation_new(f.mem, "hole", 0x1000, &r), 0);
	fx_place(&f, 0x4000, r);
	assert_int_equal(mv_as_read(f.as, 0x4000, buf, 4), MV_MEMTX_DECODE_ERROR);
	assert_memory_equal(buf, "\xff\xff\xff\xff", 4);
	assert_int_equal(mv_as_write(f.as, 0x4000, buf, 4), MV_MEMTX_DECODE_ERROR);
	fx_fini(&f);
}

/* 8-byte accesses into 4-byte callbacks: two calls, offsets and halves right. */
static void test_io_split(void **state)
{
	static const uint8_t bytes[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	struct fx f;
	struct dev le, be;
	uint8_t out[8];

	(void)state;
	fx_init(&f);
	dev_init(&le);
	dev_init(&be);
	fx_io(&f, 0x1000, 0x100, &ops_le32, &le);
	fx_io(&f, 0x2000, 0x100, &ops_be32, &be);

	assert_int_equal(mv_as_write(f.as, 0x1000, bytes, 8), MV_MEMTX_OK);
	assert_int_equal(le.nr, 2);
	assert_call(&le, 0, true, 0, 0x04030201, 4);
	assert_call(&le, 1, true, 4, 0x08070605, 4);
	/* Big endian: the register at offset 0 holds bytes 01 02 03 04. */
	assert_int_equal(mv_as_write(f.as, 0x2000, bytes, 8), MV_MEMTX_OK);
	assert_int_equal(be.nr, 2);
	assert_call(&be, 0, true, 0, 0x01020304, 4);
	assert_call(&be, 1, true, 4, 0x05060708, 4);

	le.nr = be.nr = 0;
	le.rd[0] = be.rd[0] = 0x11223344;
	le.rd[4] = be.rd[4] = 0x55667788;
	assert_int_equal(mv_as_read(f.as, 0x1000, out, 8), MV_MEMTX_OK);
	assert_memory_equal(out, "\x44\x33\x22\x11\x88\x77\x66\x55", 8);
	assert_int_equal(le.nr, 2);
	assert_call(&le, 0, false, 0, 0x11223344, 4);
	assert_call(&le, 1, false, 4, 0x55667788, 4);
	assert_int_equal(mv_as_read(f.as, 0x2000, out, 8), MV_MEMTX_OK);
	assert_memory_equal(out, "\x11\x22\x33\x44\x55\x66\x77\x88", 8);

	/* 7 bytes at offset 1: aligned pieces 1, 2, 4. */
	le.nr = 0;
	assert_int_equal(mv_as_write(f.as, 0x1001, bytes, 7), MV_MEMTX_OK);
	assert_int_equal(le.nr, 3);
	assert_call(&le, 0, true, 1, 0x01, 1);
	assert_call(&le, 1, true, 2, 0x0302, 2);
	assert_call(&le, 2, true, 4, 0x07060504, 4);
	fx_fini(&f);
}

/* valid.max 0 caps pieces at 4 bytes (QEMU's memory_access_size). */
static void test_io_default_sizes(void **state)
{
	static const mv_region_ops ops = { .read = dev_read, .write = dev_write };
	struct fx f;
	struct dev d;
	uint64_t v = 0x8877665544332211ull;

	(void)state;
	fx_init(&f);
	dev_init(&d);
	fx_io(&f, 0x0, 0x10, &ops, &d);
	assert_int_equal(mv_as_write(f.as, 0x8, &v, 8), MV_MEMTX_OK);
	assert_int_equal(d.nr, 2);
	assert_call(&d, 0, true, 8, 0x44332211, 4);
	assert_call(&d, 1, true, 12, 0x88776655, 4);
	fx_fini(&f);
}

/* 1-byte accesses into callbacks of at least 4 bytes (widening). */
static void test_io_widen(void **state)
{
	static const mv_region_ops le_ops = {
		.read = dev_read, .write = dev_write, .endianness = MV_ENDIAN_NATIVE,
		.impl = { .min_access_size = 4, .max_access_size = 4 },
	};
	static const mv_region_ops be_ops = {
		.read = dev_read, .write = dev_write, .endianness = MV_ENDIAN_BIG,
		.impl = { .min_access_size = 4, .max_access_size = 4 },
	};
	struct fx f;
	struct dev le, be;
	uint8_t b = 0;

	(void)state;
	fx_init(&f);
	dev_init(&le);
	dev_init(&be);
	fx_io(&f, 0x1000, 0x10, &le_ops, &le);
	fx_io(&f, 0x2000, 0x10, &be_ops, &be);
	le.rd[2] = be.rd[2] = 0xaabbccdd;
	assert_int_equal(mv_as_read(f.as, 0x1002, &b, 1), MV_MEMTX_OK);
	assert_int_equal(b, 0xdd);
	assert_call(&le, 0, false, 2, 0xaabbccdd, 4);
	assert_int_equal(mv_as_read(f.as, 0x2002, &b, 1), MV_MEMTX_OK);
	assert_int_equal(b, 0xaa);
	assert_call(&be, 0, false, 2, 0xaabbccdd, 4);

	b = 0x5a;
	assert_int_equal(mv_as_write(f.as, 0x1001, &b, 1), MV_MEMTX_OK);
	assert_call(&le, 1, true, 1, 0x5a, 4);
	assert_int_equal(mv_as_write(f.as, 0x2001, &b, 1), MV_MEMTX_OK);
	assert_call(&be, 1, true, 1, 0x5a000000, 4);
	fx_fini(&f);
}

static void test_io_valid_unaligned(void **state)
{
	/* Callbacks could take it, but the guest may not issue it. */
	static const mv_region_ops strict = {
		.read = dev_read, .write = dev_write,
		.valid = { .max_access_size = 4 },
		.impl = { .max_access_size = 4, .unaligned = true },
	};
	/* Same rules, but the core splits into aligned pieces first. */
	static const mv_region_ops split = {
		.read = dev_read, .write = dev_write,
		.valid = { .max_access_size = 4 },
		.impl = { .max_access_size = 4 },
	};
	static const mv_region_ops loose = {
		.read = dev_read, .write = dev_write,
		.valid = { .max_access_size = 4, .unaligned = true },
		.impl = { .max_access_size = 4, .unaligned = true },
	};
	struct fx f;
	struct dev a, b, c;
	uint32_t v = 0x12345678;
	uint8_t out[4] = { 0 };

	(void)state;
	fx_init(&f);
	dev_init(&a);
	dev_init(&b);
	dev_init(&c);
	fx_io(&f, 0x1000, 0x10, &strict, &a);
	fx_io(&f, 0x2000, 0x10, &split, &b);
	fx_io(&f, 0x3000, 0x10, &loose, &c);

	assert_int_equal(mv_as_write(f.as, 0x1002, &v, 4), MV_MEMTX_DECODE_ERROR);
	assert_int_equal(mv_as_read(f.as, 0x1002, out, 4), MV_MEMTX_DECODE_ERROR);
	assert_memory_equal(out, "\xff\xff\xff\xff", 4);
	assert_int_equal(a.nr, 0);

	assert_int_equal(mv_as_write(f.as, 0x2002, &v, 4), MV_MEMTX_OK);
	assert_int_equal(b.nr, 2);
	assert_call(&b, 0, true, 2, 0x5678, 2);
	assert_call(&b, 1, true, 4, 0x1234, 2);

	assert_int_equal(mv_as_write(f.as, 0x3002, &v, 4), MV_MEMTX_OK);
	assert_int_equal(c.nr, 1);
	assert_call(&c, 0, true, 2, 0x12345678, 4);
	fx_fini(&f);
}

static void test_io_valid_sizes_and_accepts(void **state)
{
	static const mv_region_ops ops = {
		.read = dev_read, .write = dev_write,
		.valid = { .min_access_size = 4, .max_access_size = 4, .accepts = dev_accepts },
		.impl = { .max_access_size = 4 },
	};
	struct fx f;
	struct dev d;
	uint8_t out[8];
	uint32_t v = 1;

	(void)state;
	fx_init(&f);
	dev_init(&d);
	d.reject_addr = 8;
	fx_io(&f, 0x1000, 0x10, &ops, &d);
	d.rd[4] = 0xcafef00d;
	/* Too small for valid.min: refused before the device is asked. */
	assert_int_equal(mv_as_read(f.as, 0x1000, out, 1), MV_MEMTX_DECODE_ERROR);
	assert_int_equal(out[0], 0xff);
	assert_int_equal(d.accepts_calls, 0);
	/* accepts() refuses offset 8 only; the pieces before still work. */
	memset(out, 0, 8);
	assert_int_equal(mv_as_read(f.as, 0x1004, out, 8), MV_MEMTX_DECODE_ERROR);
	assert_memory_equal(out, "\x0d\xf0\xfe\xca\xff\xff\xff\xff", 8);
	assert_int_equal(d.nr, 1);
	assert_int_equal(d.accepts_calls, 2);
	assert_int_equal(mv_as_write(f.as, 0x1008, &v, 4), MV_MEMTX_DECODE_ERROR);
	assert_int_equal(d.nr, 1);
	assert_int_equal(mv_as_write(f.as, 0x100c, &v, 4), MV_MEMTX_OK);
	assert_call(&d, 1, true, 0xc, 1, 4);
	fx_fini(&f);
}

/* Callbacks left NULL: reads all ones and OK, writes ignored and OK. */
static void test_io_null_callbacks(void **state)
{
	static const mv_region_ops none = { .endianness = MV_ENDIAN_LITTLE };
	struct fx f;
	uint8_t out[6] = { 0 };

	(void)state;
	fx_init(&f);
	fx_io(&f, 0x1000, 0x10, &none, NULL);
	assert_int_equal(mv_as_read(f.as, 0x1001, out, 6), MV_MEMTX_OK);
	assert_memory_equal(out, "\xff\xff\xff\xff\xff\xff", 6);
	assert_int_equal(mv_as_write(f.as, 0x1001, out, 6), MV_MEMTX_OK);
	fx_fini(&f);
}

/* RAM followed by I/O in one access; errors of both kinds OR together. */
static void test_cross_section_and_errors(void **state)
{
	static const uint8_t bytes[12] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };
	struct fx f;
	struct dev d;
	mv_ramblock *b;
	uint8_t out[16];

	(void)state;
	fx_init(&f);
	dev_init(&d);
	b = fx_ram(&f, "ram", 0x0, 0x1000, false, NULL);
	fx_io(&f, 0x1000, 0x8, &ops_le32, &d);
	assert_int_equal(mv_as_write(f.as, 0xffc, bytes, 12), MV_MEMTX_OK);
	assert_memory_equal((uint8_t *)mv_ramblock_host(b) + 0xffc, bytes, 4);
	assert_int_equal(d.nr, 2);
	assert_call(&d, 0, true, 0, 0x08070605, 4);
	assert_call(&d, 1, true, 4, 0x0c0b0a09, 4);

	/* Device error on the second piece, then a hole: both bits. */
	d.err_addr = 4;
	d.rd[0] = 0x44434241;
	d.rd[4] = 0x48474645;
	assert_int_equal(mv_as_read(f.as, 0xffc, out, 16),
			 MV_MEMTX_ERROR | MV_MEMTX_DECODE_ERROR);
	assert_memory_equal(out, "\x01\x02\x03\x04" "ABCD" "EFGH" "\xff\xff\xff\xff", 16);
	assert_int_equal(mv_as_write(f.as, 0x1004, bytes, 4), MV_MEMTX_ERROR);
	fx_fini(&f);
}

static void test_romd(void **state)
{
	static const mv_region_ops ops = {
		.read = dev_read, .write = dev_write, .endianness = MV_ENDIAN_LITTLE,
		.impl = { .max_access_size = 4 },
	};
	struct fx f;
	struct dev d;
	mv_ramblock *b;
	mv_romd_region *r;
	uint32_t v = 0;

	(void)state;
	fx_init(&f);
	dev_init(&d);
	b = fx_block(&f, "flash", 0x1000);
	memset(mv_ramblock_host(b), 0x77, 0x1000);
	assert_int_equal(mv_romd_region_new(f.mem, "flash", b, &ops, &d, &r), 0);
	fx_place(&f, 0x100000, mv_romd_region_base(r));
	/* romd mode: reads come from the block, writes go to the device. */
	assert_int_equal(mv_as_read(f.as, 0x100010, &v, 4), MV_MEMTX_OK);
	assert_int_equal(v, 0x77777777);
	assert_int_equal(d.nr, 0);
	v = 0xdeadbeef;
	assert_int_equal(mv_as_write(f.as, 0x100010, &v, 4), MV_MEMTX_OK);
	assert_int_equal(d.nr, 1);
	assert_call(&d, 0, true, 0x10, 0xdeadbeef, 4);
	assert_int_equal(((uint8_t *)mv_ramblock_host(b))[0x10], 0x77);
	assert_false(mv_ramblock_test_dirty(b, 0));
	/* I/O mode: reads go to the device too. */
	mv_romd_region_set_mode(r, false);
	d.rd[0x10] = 0x01020304;
	assert_int_equal(mv_as_read(f.as, 0x100010, &v, 4), MV_MEMTX_OK);
	assert_int_equal(v, 0x01020304);
	assert_call(&d, 1, false, 0x10, 0x01020304, 4);
	mv_romd_region_set_mode(r, true);
	assert_int_equal(mv_as_read(f.as, 0x100010, &v, 4), MV_MEMTX_OK);
	assert_int_equal(v, 0x77777777);
	assert_int_equal(d.nr, 2);
	fx_fini(&f);
}

/* The space ends at 2^64: bytes beyond read as all ones, nothing wraps. */
static void test_top_of_space(void **state)
{
	struct fx f;
	mv_ramblock *top, *low;
	uint8_t buf[16];

	(void)state;
	fx_init(&f);
	top = fx_ram(&f, "top", TOP - 0xfff, 0x1000, false, NULL);
	low = fx_ram(&f, "low", 0, 0x1000, false, NULL);
	memset(mv_ramblock_host(top), 0x22, 0x1000);
	memset(mv_ramblock_host(low), 0x33, 0x1000);
	assert_int_equal(mv_as_read(f.as, TOP - 7, buf, 16), MV_MEMTX_DECODE_ERROR);
	for (int i = 0; i < 16; i++)
		assert_int_equal(buf[i], i < 8 ? 0x22 : 0xff);
	memset(buf, 0x44, 16);
	assert_int_equal(mv_as_write(f.as, TOP - 7, buf, 16), MV_MEMTX_DECODE_ERROR);
	assert_int_equal(((uint8_t *)mv_ramblock_host(top))[0xfff], 0x44);
	assert_int_equal(((uint8_t *)mv_ramblock_host(low))[0], 0x33);
	assert_false(mv_ramblock_test_dirty(low, 0));
	assert_int_equal(mv_as_read(f.as, TOP, buf, 1), MV_MEMTX_OK);
	assert_int_equal(buf[0], 0x44);
	fx_fini(&f);
}

/* No address space contents, NULL buffers, NULL views: answers, no crash. */
static void test_degenerate(void **state)
{
	struct fx f;
	uint8_t buf[4];

	(void)state;
	fx_init(&f);
	assert_int_equal(mv_as_read(f.as, 0, buf, 4), MV_MEMTX_DECODE_ERROR);
	assert_int_equal(mv_as_read(f.as, 0, NULL, 4), MV_MEMTX_DECODE_ERROR);
	assert_int_equal(mv_as_read(f.as, 0, NULL, 0), MV_MEMTX_OK);
	assert_int_equal(mv_flatview_rw(NULL, 0x10, buf, 4, false), MV_MEMTX_DECODE_ERROR);
	assert_memory_equal(buf, "\xff\xff\xff\xff", 4);
	fx_fini(&f);
}

/* Random accesses vs. a byte model of RAM and holes. */
static const uint64_t rnd_base[3] = { 0x1000, 0x3000, 0x9000 };
static const uint64_t rnd_size[3] = { 0x1000, 0x4000, 0x2000 };

static bool rnd_mapped(uint64_t a)
{
	for (int i = 0; i < 3; i++)
		if (a >= rnd_base[i] && a < rnd_base[i] + rnd_size[i])
			return true;
	return false;
}

static void test_random_ram(void **state)
{
	static uint8_t model[0x10000], buf[0x3000];
	uint64_t seed = tu_seed(42);
	struct fx f;

	(void)state;
	fx_init(&f);
	memset(model, 0xff, sizeof(model));
	for (int i = 0; i < 3; i++) {
		char name[8] = { 'r', '0' + i, 0 };

		fx_ram(&f, name, rnd_base[i], rnd_size[i], false, NULL);
		memset(model + rnd_base[i], 0, rnd_size[i]);
	}
	for (int it = 0; it < 2000; it++) {
		uint64_t addr = tu_rand_below(&seed, 0x10000 - 0x3000);
		size_t len = tu_rand_below(&seed, tu_rand_below(&seed, 2) ? 16 : 0x3000);
		bool hole = false;
		mv_memtx r;

		for (size_t k = 0; k < len; k++)
			hole |= !rnd_mapped(addr + k);
		if (tu_rand_below(&seed, 2)) {
			for (size_t k = 0; k < len; k++)
				buf[k] = tu_rand(&seed);
			r = mv_as_write(f.as, addr, buf, len);
			for (size_t k = 0; k < len; k++)
				if (rnd_mapped(addr + k))
					model[addr + k] = buf[k];
		} else {
			r = mv_as_read(f.as, addr, buf, len);
			assert_memory_equal(buf, model + addr, len);
		}
		assert_int_equal(r, hole ? MV_MEMTX_DECODE_ERROR : MV_MEMTX_OK);
	}
	fx_fini(&f);
}

/* Readers run lock-free while the writer re-renders under them. */
struct race {
	mv_address_space *as;
	atomic_bool stop;
	atomic_ulong reads;
	atomic_int bad;
};

static void *race_reader(void *opaque)
{
	struct race *r = opaque;
	uint8_t buf[8];

	mv_rcu_register_thread();
	while (!atomic_load(&r->stop)) {
		/* 4 bytes of RAM, then 4 of RAM or of the I/O window above it. */
		mv_memtx ret = mv_as_read(r->as, 0xffc, buf, 8);
		bool ram = buf[4] == 0x11, io = buf[4] == 0xff;

		if (ret != MV_MEMTX_OK || memcmp(buf, "\x11\x11\x11\x11", 4) ||
		    !(ram || io) || memcmp(buf + 4, buf + 5, 3))
			atomic_fetch_add(&r->bad, 1);
		atomic_fetch_add(&r->reads, 1);
	}
	mv_rcu_unregister_thread();
	return NULL;
}

static void test_concurrent_readers(void **state)
{
	static const mv_region_ops none = { .endianness = MV_ENDIAN_LITTLE };
	struct race r = { 0 };
	pthread_t th[2];
	mv_ramblock *b;
	mv_io_region *io;
	struct fx f;

	(void)state;
	fx_init(&f);
	b = fx_ram(&f, "ram", 0, 0x2000, false, NULL);
	memset(mv_ramblock_host(b), 0x11, 0x2000);
	assert_int_equal(mv_io_region_new(f.mem, "win", 0x1000, &none, NULL, &io), 0);
	assert_int_equal(mv_region_add_subregion_overlap(f.root, 0x1000, mv_io_region_base(io), 1), 0);
	r.as = f.as;
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, race_reader, &r), 0);
	for (int i = 0; i < 2000; i++)
		mv_region_set_enabled(mv_io_region_base(io), i & 1);
	atomic_store(&r.stop, true);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(atomic_load(&r.bad), 0);
	assert_true(atomic_load(&r.reads) > 0);
	mv_region_unref(mv_io_region_base(io));
	fx_fini(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ram_rw_dirty),
		cmocka_unit_test(test_rom_and_readonly),
		cmocka_unit_test(test_unassigned),
		cmocka_unit_test(test_reservation),
		cmocka_unit_test(test_io_split),
		cmocka_unit_test(test_io_default_sizes),
		cmocka_unit_test(test_io_widen),
		cmocka_unit_test(test_io_valid_unaligned),
		cmocka_unit_test(test_io_valid_sizes_and_accepts),
		cmocka_unit_test(test_io_null_callbacks),
		cmocka_unit_test(test_cross_section_and_errors),
		cmocka_unit_test(test_romd),
		cmocka_unit_test(test_top_of_space),
		cmocka_unit_test(test_degenerate),
		cmocka_unit_test(test_random_ram),
		cmocka_unit_test(test_concurrent_readers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
