/*
 * The in-process I/O bus (KVM's kvm_io_bus): devices sorted by address in
 * an array, found by binary search. Accesses hold the rwlock for reading
 * while they call the device, so that once unregister (the write side)
 * returns, no access is still inside the removed device and its owner may
 * free it (KVM gets the same from SRCU). The lock prefers writers, so a
 * registration is not starved by busy vCPUs; a device callback therefore
 * must not call into its own bus (its nested read could wait behind a
 * waiting writer).
 */
#define _GNU_SOURCE
#include "memvirt/soft_iobus.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "util/alloc.h"

typedef struct iobus_dev {
	uint64_t addr;
	uint64_t last;              /* addr + len - 1: a range may end at 2^64 */
	mv_iobus_dev_ops ops;
	void *opaque;
} iobus_dev;

struct mv_iobus {
	const mv_allocator *alloc;
	pthread_rwlock_t lock;
	iobus_dev *devs;            /* sorted by addr, never overlapping */
	size_t nr, cap;
};

int mv_iobus_new(const mv_allocator *alloc, mv_iobus **out)
{
	mv_iobus *bus = mv_zalloc(alloc, sizeof(*bus));
	pthread_rwlockattr_t attr;

	if (!bus)
		return -ENOMEM;
	bus->alloc = alloc;
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&bus->lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	*out = bus;
	return 0;
}

void mv_iobus_free(mv_iobus *bus)
{
	if (!bus)
		return;
	pthread_rwlock_destroy(&bus->lock);
	mv_free(bus->alloc, bus->devs);
	mv_free(bus->alloc, bus);
}

/* Number of devices starting at or below @addr. Lock held. */
static size_t upper(const mv_iobus *bus, uint64_t addr)
{
	size_t lo = 0, hi = bus->nr;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (bus->devs[mid].addr <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int mv_iobus_register(mv_iobus *bus, uint64_t addr, uint64_t len, const mv_iobus_dev_ops *ops,
		      void *opaque)
{
	iobus_dev dev = { .addr = addr, .last = addr + len - 1, .ops = *ops, .opaque = opaque };
	size_t pos;
	int r;

	if (len == 0 || dev.last < addr)
		return -EINVAL;
	pthread_rwlock_wrlock(&bus->lock);
	pos = upper(bus, addr);
	if ((pos > 0 && bus->devs[pos - 1].last >= addr) ||
	    (pos < bus->nr && bus->devs[pos].addr <= dev.last)) {
		r = -EEXIST;
	} else {
		r = mv_grow(bus->alloc, (void **)&bus->devs, &bus->cap, bus->nr + 1,
			    sizeof(*bus->devs));
	}
	if (!r) {
		memmove(&bus->devs[pos + 1], &bus->devs[pos], (bus->nr - pos) * sizeof(*bus->devs));
		bus->devs[pos] = dev;
		bus->nr++;
	}
	pthread_rwlock_unlock(&bus->lock);
	return r;
}

int mv_iobus_unregister(mv_iobus *bus, uint64_t addr)
{
	size_t pos;
	int r = -ENOENT;

	pthread_rwlock_wrlock(&bus->lock);
	pos = upper(bus, addr);
	if (pos > 0 && bus->devs[pos - 1].addr == addr) {
		memmove(&bus->devs[pos - 1], &bus->devs[pos], (bus->nr - pos) * sizeof(*bus->devs));
		bus->nr--;
		r = 0;
	}
	pthread_rwlock_unlock(&bus->lock);
	return r;
}

/*
 * The device whose range holds all of [addr, addr + len), or NULL (also
 * for len 0 and a wrapping access). Lock held.
 */
static const iobus_dev *find(const mv_iobus *bus, uint64_t addr, unsigned len)
{
	uint64_t last = addr + len - 1;
	size_t pos;

	if (len == 0 || last < addr)
		return NULL;
	pos = upper(bus, addr);
	if (pos == 0 || bus->devs[pos - 1].last < last)
		return NULL;
	return &bus->devs[pos - 1];
}

int mv_iobus_read(mv_iobus *bus, uint64_t addr, unsigned len, void *data)
{
	const iobus_dev *dev;
	int r = -EOPNOTSUPP;

	pthread_rwlock_rdlock(&bus->lock);
	dev = find(bus, addr, len);
	if (dev && dev->ops.read)
		r = dev->ops.read(dev->opaque, addr, len, data);
	pthread_rwlock_unlock(&bus->lock);
	return r;
}

int mv_iobus_write(mv_iobus *bus, uint64_t addr, unsigned len, const void *data)
{
	const iobus_dev *dev;
	int r = -EOPNOTSUPP;

	pthread_rwlock_rdlock(&bus->lock);
	dev = find(bus, addr, len);
	if (dev && dev->ops.write)
		r = dev->ops.write(dev->opaque, addr, len, data);
	pthread_rwlock_unlock(&bus->lock);
	return r;
}
