/*
 * In-kernel I/O devices of a soft VM, as KVM puts them on its MMIO and PIO
 * buses: coalesced MMIO/PIO zones (virt/kvm/coalesced_mmio.c), whose guest
 * writes are queued in one ring per VM instead of exiting, and ioeventfds
 * (virt/kvm/eventfd.c), whose matching guest writes signal an eventfd.
 *
 * KVM's bus holds overlapping devices and offers a write to each one that
 * covers it, in (address, length) order, until one takes it; the arch
 * VM's mv_iobus holds disjoint devices only. So one dispatcher claims each
 * whole bus and keeps KVM's list itself. Reads are never taken (neither
 * device has a read), so they exit to user space, as do writes nobody
 * takes and writes to a zone whose ring is full.
 *
 * Locks: io->lock (device lists) is taken inside the mv_iobus's own lock
 * when a guest writes, and never held while calling the mv_iobus.
 */
#define _GNU_SOURCE
#include "soft/hv_soft_internal.h"
#include "util/alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Port addresses are 16 bits. */
#define SOFT_PIO_SPACE 0x10000ull

struct soft_iodev {
	bool eventfd;               /* an ioeventfd, else a coalesced zone */
	uint64_t addr, len;         /* ioeventfd len 0: any length at exactly @addr */
	/* ioeventfd: */
	int user_fd;                /* the caller's fd number: what a delete names */
	int fd;                     /* our duplicate of it, signalled */
	bool wildcard;              /* no datamatch */
	uint64_t datamatch;
};

/* ------------------------------------------------------------------ */
/* Matching (kvm_io_bus_cmp, coalesced_mmio_in_range, ioeventfd_in_range) */

/* Does device @d's range hold [addr, addr + len)? Length 0: the exact address. */
static bool dev_covers(const soft_iodev *d, uint64_t addr, uint64_t len)
{
	if (addr < d->addr)
		return false;
	if (!d->len)
		return addr == d->addr;
	return addr - d->addr <= d->len && len <= d->len - (addr - d->addr);
}

/* coalesced_mmio_in_range, with its 64-bit arithmetic. */
static bool zone_holds(const soft_iodev *z, uint64_t addr, uint64_t len)
{
	if (addr + len < addr || addr < z->addr)
		return false;
	return addr + len <= z->addr + z->len;
}

/* The @len guest bytes at @data as a number (little-endian, as on x86 and arm64 hosts). */
static uint64_t write_value(const void *data, unsigned len)
{
	uint64_t v = 0;

	memcpy(&v, data, len);
	return v;
}

static bool ioeventfd_matches(const soft_iodev *d, uint64_t addr, unsigned len, const void *data)
{
	if (addr != d->addr)
		return false;
	if (!d->len)
		return true;
	if (len != d->len)
		return false;
	return d->wildcard || write_value(data, len) == d->datamatch;
}

/* ------------------------------------------------------------------ */
/* Guest writes                                                          */

/* Queue a write, unless the ring is full (then the write exits normally). */
static int coalesced_push(soft_io *io, hv_bus bus, uint64_t addr, unsigned len, const void *data)
{
	int r = -EOPNOTSUPP;

	if (len > sizeof(io->ring[0].data))
		return r;
	pthread_mutex_lock(&io->ring_lock);
	if ((io->last + 1) % SOFT_COALESCED_MAX != io->first) {
		hv_coalesced_write *w = &io->ring[io->last];

		w->bus = bus;
		w->addr = addr;
		w->len = len;
		memset(w->data, 0, sizeof(w->data));
		memcpy(w->data, data, len);
		io->last = (io->last + 1) % SOFT_COALESCED_MAX;
		r = 0;
	}
	pthread_mutex_unlock(&io->ring_lock);
	return r;
}

static void signal_eventfd(int fd)
{
	uint64_t one = 1;

	/* The counter saturating is the guest's problem, as in the kernel. */
	if (write(fd, &one, sizeof(one)) < 0)
		return;
}

/* One device's answer: 0 taken, -EOPNOTSUPP declined. */
static int dev_write(soft_io_bus *b, const soft_iodev *d, uint64_t addr, unsigned len,
		     const void *data)
{
	if (!d->eventfd)
		return zone_holds(d, addr, len) ? coalesced_push(b->io, b->bus, addr, len, data)
						: -EOPNOTSUPP;
	if (!ioeventfd_matches(d, addr, len, data))
		return -EOPNOTSUPP;
	signal_eventfd(d->fd);
	return 0;
}

/* The dispatcher's write: every covering device in order until one takes it. */
static int dispatch_write(void *opaque, uint64_t addr, unsigned len, const void *data)
{
	soft_io_bus *b = opaque;
	int r = -EOPNOTSUPP;

	pthread_rwlock_rdlock(&b->io->lock);
	for (size_t i = 0; i < b->nr && r; i++)
		if (dev_covers(&b->devs[i], addr, len))
			r = dev_write(b, &b->devs[i], addr, len, data);
	pthread_rwlock_unlock(&b->io->lock);
	return r;
}

static const mv_iobus_dev_ops dispatch_ops = { .write = dispatch_write };

/* ------------------------------------------------------------------ */
/* Set-up                                                               */

void soft_io_init(soft_io *io, const mv_allocator *alloc)
{
	io->alloc = alloc;
	pthread_rwlock_init(&io->lock, NULL);
	pthread_mutex_init(&io->ring_lock, NULL);
	pthread_mutex_init(&io->drain_lock, NULL);
	for (unsigned i = 0; i < 2; i++) {
		io->bus[i].io = io;
		io->bus[i].bus = (hv_bus)i;
	}
}

int soft_io_attach(soft_io *io, mv_iobus *mmio, mv_iobus *pio)
{
	int r = mv_iobus_register(mmio, 0, UINT64_MAX, &dispatch_ops, &io->bus[HV_BUS_MMIO]);

	if (r == 0 && pio)
		r = mv_iobus_register(pio, 0, SOFT_PIO_SPACE, &dispatch_ops, &io->bus[HV_BUS_PIO]);
	return r;
}

void soft_io_destroy(soft_io *io)
{
	for (unsigned i = 0; i < 2; i++) {
		soft_io_bus *b = &io->bus[i];

		for (size_t j = 0; j < b->nr; j++)
			if (b->devs[j].eventfd)
				close(b->devs[j].fd);
		mv_free(io->alloc, b->devs);
	}
	pthread_mutex_destroy(&io->drain_lock);
	pthread_mutex_destroy(&io->ring_lock);
	pthread_rwlock_destroy(&io->lock);
}

/* ------------------------------------------------------------------ */
/* Device lists (io->lock held for writing)                             */

/* Insert @d after every device with a smaller or equal (addr, len), as kvm_io_bus_register_dev. */
static int dev_insert(soft_io *io, soft_io_bus *b, const soft_iodev *d)
{
	size_t pos = b->nr;

	/* kvm_io_bus_register_dev: the bus is full at NR_IOBUS_DEVS devices besides ioeventfds. */
	if (b->nr_zones >= SOFT_IOBUS_DEVS)
		return -ENOSPC;
	if (mv_grow(io->alloc, (void **)&b->devs, &b->cap, b->nr + 1, sizeof(b->devs[0])))
		return -ENOMEM;
	while (pos > 0 && (b->devs[pos - 1].addr > d->addr ||
			   (b->devs[pos - 1].addr == d->addr && b->devs[pos - 1].len > d->len)))
		pos--;
	memmove(&b->devs[pos + 1], &b->devs[pos], (b->nr - pos) * sizeof(b->devs[0]));
	b->devs[pos] = *d;
	b->nr++;
	if (!d->eventfd)
		b->nr_zones++;
	return 0;
}

static void dev_remove(soft_io_bus *b, size_t i)
{
	if (!b->devs[i].eventfd)
		b->nr_zones--;
	memmove(&b->devs[i], &b->devs[i + 1], (b->nr - i - 1) * sizeof(b->devs[0]));
	b->nr--;
}

/* ------------------------------------------------------------------ */
/* Coalesced zones and ring                                              */

/*
 * KVM_(UN)REGISTER_COALESCED_MMIO: any zone may be added, also twice or of
 * size 0 (it then never matches). A delete removes every zone of the bus
 * that holds all of [addr, addr + size) and always succeeds.
 */
int soft_io_coalesced_zone(soft_io *io, hv_bus bus, uint64_t addr, uint32_t size, bool add)
{
	soft_iodev z = { .addr = addr, .len = size };
	soft_io_bus *b;
	int r = 0;

	if ((unsigned)bus > HV_BUS_PIO)
		return -EINVAL;
	b = &io->bus[bus];
	pthread_rwlock_wrlock(&io->lock);
	if (add) {
		r = dev_insert(io, b, &z);
	} else {
		for (size_t i = b->nr; i-- > 0;)
			if (!b->devs[i].eventfd && zone_holds(&b->devs[i], addr, size))
				dev_remove(b, i);
	}
	pthread_rwlock_unlock(&io->lock);
	return r;
}

int soft_io_coalesced_drain(soft_io *io, void (*fn)(void *, const hv_coalesced_write *),
			    void *opaque)
{
	int n = 0;

	pthread_mutex_lock(&io->drain_lock);
	for (;;) {
		hv_coalesced_write w;

		pthread_mutex_lock(&io->ring_lock);
		if (io->first == io->last) {
			pthread_mutex_unlock(&io->ring_lock);
			break;
		}
		w = io->ring[io->first];
		io->first = (io->first + 1) % SOFT_COALESCED_MAX;
		pthread_mutex_unlock(&io->ring_lock);
		/* Without the ring lock: @fn may take its time while vCPUs keep queueing. */
		fn(opaque, &w);
		n++;
	}
	pthread_mutex_unlock(&io->drain_lock);
	return n;
}

/* ------------------------------------------------------------------ */
/* ioeventfd                                                            */

/*
 * eventfd_ctx_fdget's answers: -EBADF for a number that is not an open
 * file, -EINVAL for a file that is not an eventfd (told by its /proc link;
 * without /proc the fd is taken on trust).
 */
static int check_eventfd(int fd)
{
	char path[64], link[64];
	ssize_t n;

	if (fd < 0 || fcntl(fd, F_GETFD) < 0)
		return -EBADF;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return 0;
	link[n] = 0;
	return strcmp(link, "anon_inode:[eventfd]") ? -EINVAL : 0;
}

/* ioeventfd_check_collision: same bus and address, and lengths / data that could both match. */
static bool ioeventfd_collides(const soft_io_bus *b, const soft_iodev *p)
{
	for (size_t i = 0; i < b->nr; i++) {
		const soft_iodev *q = &b->devs[i];

		if (q->eventfd && q->addr == p->addr &&
		    (!q->len || !p->len ||
		     (q->len == p->len &&
		      (q->wildcard || p->wildcard || q->datamatch == p->datamatch))))
			return true;
	}
	return false;
}

/* kvm_assign_ioeventfd's argument checks, in its order. */
static int ioeventfd_args_ok(const hv_ioeventfd *e)
{
	/* The interface's own rule (the kvm backend's too): length 0 is MMIO only. */
	if (e->bus == HV_BUS_PIO && e->len == 0)
		return -EINVAL;
	if (e->len != 0 && e->len != 1 && e->len != 2 && e->len != 4 && e->len != 8)
		return -EINVAL;
	if (e->addr + e->len < e->addr)
		return -EINVAL;
	if (!e->len && e->datamatch)
		return -EINVAL;
	return check_eventfd(e->fd);
}

static int ioeventfd_add(soft_io *io, soft_io_bus *b, const hv_ioeventfd *e)
{
	soft_iodev d = {
		.eventfd = true,
		.addr = e->addr,
		.len = e->len,
		.user_fd = e->fd,
		.wildcard = !e->datamatch,
		.datamatch = e->datamatch ? e->data : 0,
	};
	int r = ioeventfd_args_ok(e);

	if (r)
		return r;
	/* Our own reference, as the kernel's: the caller may close its fd. */
	d.fd = fcntl(e->fd, F_DUPFD_CLOEXEC, 0);
	if (d.fd < 0)
		return -errno;
	pthread_rwlock_wrlock(&io->lock);
	r = ioeventfd_collides(b, &d) ? -EEXIST : dev_insert(io, b, &d);
	pthread_rwlock_unlock(&io->lock);
	if (r)
		close(d.fd);
	return r;
}

/*
 * kvm_deassign_ioeventfd: the entry with the same fd (here: the same fd
 * number; KVM compares the eventfd itself), address, length and datamatch.
 */
static int ioeventfd_del(soft_io *io, soft_io_bus *b, const hv_ioeventfd *e)
{
	int fd = -1, r = check_eventfd(e->fd);

	if (r)
		return r;
	r = -ENOENT;
	pthread_rwlock_wrlock(&io->lock);
	for (size_t i = 0; i < b->nr; i++) {
		const soft_iodev *d = &b->devs[i];

		if (!d->eventfd || d->user_fd != e->fd || d->addr != e->addr || d->len != e->len ||
		    d->wildcard != !e->datamatch || (!d->wildcard && d->datamatch != e->data))
			continue;
		fd = d->fd;
		dev_remove(b, i);
		r = 0;
		break;
	}
	pthread_rwlock_unlock(&io->lock);
	/* After the unlock: no guest write can be signalling it any more. */
	if (fd >= 0)
		close(fd);
	return r;
}

int soft_io_ioeventfd(soft_io *io, const hv_ioeventfd *e, bool add)
{
	if ((unsigned)e->bus > HV_BUS_PIO)
		return -EINVAL;
	return add ? ioeventfd_add(io, &io->bus[e->bus], e) : ioeventfd_del(io, &io->bus[e->bus], e);
}
