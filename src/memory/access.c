/*
 * Guest memory accesses through a FlatView: QEMU's flatview_read/write
 * _continue, memory_region_dispatch_read/write, memory_access_size,
 * memory_region_access_valid and access_with_adjusted_size.
 *
 * An access is cut at section borders. Per section:
 *   unassigned (mr NULL)     reads all ones, MV_MEMTX_DECODE_ERROR
 *   reservation              same
 *   RAM / ROM / ROMD in romd mode, read    memcpy from the host pointer
 *   RAM write                memcpy, then the block's dirty bits
 *   ROMD write (any mode)    the device's write callback
 *   other read-only writes   dropped, MV_MEMTX_DECODE_ERROR
 *   I/O, ROMD not in romd mode             callbacks, piece by piece
 * Bytes in the buffer are in guest (little-endian) order; a value travels
 * to and from a callback in host order, byte-swapped for MV_ENDIAN_BIG.
 * The romd mode is read from the region at access time, as QEMU does.
 *
 * Bytes past 2^64 (addr + len wraps): the space ends at 2^64, so they are
 * treated as unassigned: reads give all ones, and the result carries
 * MV_MEMTX_DECODE_ERROR; nothing wraps around to address 0.
 */
#include <string.h>

#include <urcu/pointer.h>

#include "memory/internal.h"

#define ALL_ONES 0xff

/* Unassigned bytes: all ones on read, nothing on write (QEMU's unassigned_mem_ops). */
static mv_memtx unassigned_rw(uint8_t *buf, uint64_t len, bool is_write)
{
	if (!is_write)
		memset(buf, ALL_ONES, len);
	return MV_MEMTX_DECODE_ERROR;
}

static uint64_t size_mask(unsigned size)
{
	return size >= 8 ? ~(uint64_t)0 : ((uint64_t)1 << (size * 8)) - 1;
}

/* Largest power of two <= @x (x >= 1). */
static unsigned pow2floor(unsigned x)
{
	return 1u << (31 - __builtin_clz(x));
}

static unsigned clamp_size(unsigned v, unsigned dflt)
{
	if (!v)
		return dflt;
	return v > 8 ? 8 : v;
}

/* Guest order is little endian: @size bytes of @buf as a value. */
static uint64_t load_le(const uint8_t *buf, unsigned size)
{
	uint64_t v = 0;
	unsigned i;

	for (i = 0; i < size; i++)
		v |= (uint64_t)buf[i] << (i * 8);
	return v;
}

static void store_le(uint8_t *buf, uint64_t v, unsigned size)
{
	unsigned i;

	for (i = 0; i < size; i++)
		buf[i] = v >> (i * 8);
}

/* QEMU's adjust_endianness: device order vs. guest (little-endian) order. */
static uint64_t to_device_order(const mv_region_ops *ops, uint64_t v, unsigned size)
{
	if (ops->endianness != MV_ENDIAN_BIG)
		return v;
	switch (size) {
	case 2:
		return __builtin_bswap16(v);
	case 4:
		return __builtin_bswap32(v);
	case 8:
		return __builtin_bswap64(v);
	default:
		return v;
	}
}

/* QEMU's memory_access_size: the piece to issue at region offset @addr. */
static unsigned access_size(const mv_region_ops *ops, uint64_t len, uint64_t addr)
{
	unsigned max = clamp_size(ops->valid.max_access_size, 4);

	if (!ops->impl.unaligned) {
		uint64_t align = addr & -addr;

		if (align && align < max)
			max = align;
	}
	if (len > max)
		len = max;
	return pow2floor(len);
}

/*
 * QEMU's memory_region_access_valid. The device's accepts() is asked last,
 * so it only sees accesses that are otherwise well-formed.
 */
static bool access_valid(const mv_region_ops *ops, void *opaque, uint64_t addr,
			 unsigned size, bool is_write)
{
	if (!ops->valid.unaligned && (addr & (size - 1)))
		return false;
	/* max 0: any size is valid (QEMU's compatibility rule). */
	if (ops->valid.max_access_size) {
		unsigned min = ops->valid.min_access_size ? ops->valid.min_access_size : 1;

		if (size < min || size > ops->valid.max_access_size)
			return false;
	}
	if (ops->valid.accepts && !ops->valid.accepts(opaque, addr, size, is_write))
		return false;
	return true;
}

/* Shift of piece @i (of @piece bytes) inside a @size-byte value. */
static int piece_shift(const mv_region_ops *ops, unsigned size, unsigned piece, unsigned i)
{
	/* Big-endian devices hold the first bytes in the high bits. */
	if (ops->endianness == MV_ENDIAN_BIG)
		return ((int)size - (int)piece - (int)i) * 8;
	return (int)i * 8;
}

static uint64_t shift_in(uint64_t v, int shift)
{
	return shift >= 0 ? v << shift : v >> -shift;
}

static uint64_t shift_out(uint64_t v, int shift)
{
	return shift >= 0 ? v >> shift : v << -shift;
}

/* The callback size for a @size-byte access (QEMU's access_with_adjusted_size). */
static unsigned impl_size(const mv_region_ops *ops, unsigned size)
{
	unsigned min = clamp_size(ops->impl.min_access_size, 1);
	unsigned max = clamp_size(ops->impl.max_access_size, 4);
	unsigned piece = size < max ? size : max;

	return piece > min ? piece : min;
}

/* QEMU's access_with_adjusted_size with memory_region_read_accessor. */
static mv_memtx adjusted_read(const mv_region_ops *ops, void *opaque, uint64_t addr,
			      uint64_t *value, unsigned size)
{
	unsigned piece = impl_size(ops, size), i;
	uint64_t mask = size_mask(piece);
	mv_memtx r = MV_MEMTX_OK;

	*value = 0;
	for (i = 0; i < size; i += piece) {
		uint64_t tmp = ~(uint64_t)0;

		if (ops->read) {
			tmp = 0;
			r |= ops->read(opaque, addr + i, &tmp, piece);
		}
		*value |= shift_in(tmp & mask, piece_shift(ops, size, piece, i));
	}
	return r;
}

/* QEMU's access_with_adjusted_size with memory_region_write_accessor. */
static mv_memtx adjusted_write(const mv_region_ops *ops, void *opaque, uint64_t addr,
			       uint64_t value, unsigned size)
{
	unsigned piece = impl_size(ops, size), i;
	uint64_t mask = size_mask(piece);
	mv_memtx r = MV_MEMTX_OK;

	if (!ops->write)
		return MV_MEMTX_OK;
	for (i = 0; i < size; i += piece) {
		uint64_t tmp = shift_out(value, piece_shift(ops, size, piece, i)) & mask;

		r |= ops->write(opaque, addr + i, tmp, piece);
	}
	return r;
}

/* QEMU's memory_region_dispatch_read: one valid-sized piece. */
static mv_memtx dispatch_read(const mv_region_ops *ops, void *opaque, uint64_t addr,
			      uint8_t *buf, unsigned size)
{
	uint64_t v;
	mv_memtx r;

	if (!access_valid(ops, opaque, addr, size, false))
		return unassigned_rw(buf, size, false);
	r = adjusted_read(ops, opaque, addr, &v, size);
	store_le(buf, to_device_order(ops, v, size), size);
	return r;
}

/* QEMU's memory_region_dispatch_write: one valid-sized piece. */
static mv_memtx dispatch_write(const mv_region_ops *ops, void *opaque, uint64_t addr,
			       const uint8_t *buf, unsigned size)
{
	uint64_t v = to_device_order(ops, load_le(buf, size), size);

	if (!access_valid(ops, opaque, addr, size, true))
		return MV_MEMTX_DECODE_ERROR;
	return adjusted_write(ops, opaque, addr, v, size);
}

/* The callback path of flatview_read/write_continue for one section. */
static mv_memtx io_rw(const mv_region *mr, uint64_t xlat, uint8_t *buf, uint64_t len,
		      bool is_write)
{
	void *opaque;
	const mv_region_ops *ops = mv_region_ops_of(mr, &opaque);
	mv_memtx r = MV_MEMTX_OK;

	if (!ops)
		return unassigned_rw(buf, len, is_write);
	while (len) {
		unsigned l = access_size(ops, len, xlat);

		if (is_write)
			r |= dispatch_write(ops, opaque, xlat, buf, l);
		else
			r |= dispatch_read(ops, opaque, xlat, buf, l);
		xlat += l;
		buf += l;
		len -= l;
	}
	return r;
}

static mv_memtx ram_read(const mv_region *mr, uint64_t xlat, uint8_t *buf, uint64_t len)
{
	const void *host = mv_region_host_ptr(mr, xlat);

	if (!host)
		return unassigned_rw(buf, len, false);
	memcpy(buf, host, len);
	return MV_MEMTX_OK;
}

/* QEMU's flatview_write_continue direct path + invalidate_and_set_dirty. */
static mv_memtx ram_write(const mv_region *mr, uint64_t xlat, const uint8_t *buf,
			  uint64_t len)
{
	void *host = mv_region_host_ptr(mr, xlat);
	mv_ramblock *block = mv_region_block(mr);

	if (!host)
		return MV_MEMTX_DECODE_ERROR;
	memcpy(host, buf, len);
	if (block)
		mv_ramblock_set_dirty(block, xlat, len);
	return MV_MEMTX_OK;
}

static bool romd_mode(const mv_region *mr)
{
	const struct mv_romd_region *rd = (const struct mv_romd_region *)mr;

	/* Flipped by the writer thread while readers run. */
	return __atomic_load_n(&rd->romd_mode, __ATOMIC_RELAXED);
}

/* One section's share of an access: @len bytes at offset @xlat of s->mr. */
static mv_memtx section_rw(const mv_section *s, uint64_t xlat, uint8_t *buf,
			   uint64_t len, bool is_write)
{
	const mv_region *mr = s->mr;

	if (!mr)
		return unassigned_rw(buf, len, is_write);
	switch (mr->kind) {
	case MV_REGION_RAM:
		if (!is_write)
			return ram_read(mr, xlat, buf, len);
		if (s->readonly)
			return MV_MEMTX_DECODE_ERROR;
		return ram_write(mr, xlat, buf, len);
	case MV_REGION_ROM:
		if (is_write)
			return MV_MEMTX_DECODE_ERROR;
		return ram_read(mr, xlat, buf, len);
	case MV_REGION_ROMD:
		if (!is_write && romd_mode(mr))
			return ram_read(mr, xlat, buf, len);
		return io_rw(mr, xlat, buf, len, is_write);
	case MV_REGION_IO:
		if (is_write && s->readonly)
			return MV_MEMTX_DECODE_ERROR;
		return io_rw(mr, xlat, buf, len, is_write);
	default:
		/* Reservations; containers and aliases never reach a FlatView. */
		return unassigned_rw(buf, len, is_write);
	}
}

/* QEMU's flatview_read/flatview_write with their _continue loops. */
mv_memtx mv_flatview_rw(mv_flatview *fv, uint64_t addr, void *buf, size_t len, bool is_write)
{
	uint8_t *p = buf;
	mv_memtx r = MV_MEMTX_OK;

	if (!len)
		return MV_MEMTX_OK;
	if (!p)
		return MV_MEMTX_DECODE_ERROR;
	while (len) {
		uint64_t l = len, xlat;
		const mv_section *s = mv_flatview_lookup(fv, addr, &xlat, &l);

		r |= section_rw(s, xlat, p, l, is_write);
		p += l;
		len -= l;
		addr += l;
		/* Sections end at 2^64 at the latest: addr wrapped to 0 exactly there. */
		if (!addr && len)
			return r | unassigned_rw(p, len, is_write);
	}
	return r;
}

/* QEMU's address_space_rw: the current view, inside an RCU read section. */
mv_memtx mv_as_rw(mv_address_space *as, uint64_t addr, void *buf, size_t len, bool is_write)
{
	mv_flatview *fv;
	mv_memtx r;

	mv_rcu_read_lock();
	fv = as ? rcu_dereference(as->current) : NULL;
	r = mv_flatview_rw(fv, addr, buf, len, is_write);
	mv_rcu_read_unlock();
	return r;
}

mv_memtx mv_as_read(mv_address_space *as, uint64_t addr, void *buf, size_t len)
{
	return mv_as_rw(as, addr, buf, len, false);
}

mv_memtx mv_as_write(mv_address_space *as, uint64_t addr, const void *buf, size_t len)
{
	/* The write path only reads @buf. */
	return mv_as_rw(as, addr, (void *)buf, len, true);
}
