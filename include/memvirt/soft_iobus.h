/*
 * The in-process I/O bus of the software KVM (KVM's kvm_io_bus): devices
 * emulated "in the kernel" that the MMIO / PIO exit path offers an access
 * to before exiting to user space. Thread-safe: registration may race
 * with accesses from vCPU threads. Once mv_iobus_unregister returns, no
 * callback of the removed device is running or will run. A callback must
 * not call into its own bus.
 */
#ifndef MEMVIRT_SOFT_IOBUS_H
#define MEMVIRT_SOFT_IOBUS_H

#include "memvirt/base.h"

#include <stdint.h>

typedef struct mv_iobus mv_iobus;

/*
 * A device. Return 0 when the access was handled, -EOPNOTSUPP to decline
 * it (the bus then tries no other device and the access exits to user
 * space, as kvm_io_bus_read/write). @addr is the absolute bus address;
 * @data is @len bytes in guest byte order. A NULL callback declines. The
 * bus copies the ops at registration.
 */
typedef struct mv_iobus_dev_ops {
	int (*read)(void *opaque, uint64_t addr, unsigned len, void *data);
	int (*write)(void *opaque, uint64_t addr, unsigned len, const void *data);
} mv_iobus_dev_ops;

/* An empty bus (@alloc NULL = libc). 0 or -ENOMEM. */
int mv_iobus_new(const mv_allocator *alloc, mv_iobus **out);
/* Free the bus; no access may be in flight. NULL is a no-op. */
void mv_iobus_free(mv_iobus *bus);
/*
 * Claim [addr, addr + len) for a device. -EINVAL for len 0 or a wrapping
 * range, -EEXIST when it overlaps a registered device, -ENOMEM.
 */
int mv_iobus_register(mv_iobus *bus, uint64_t addr, uint64_t len, const mv_iobus_dev_ops *ops,
		      void *opaque);
/* Remove the device registered at exactly @addr. -ENOENT when there is none. */
int mv_iobus_unregister(mv_iobus *bus, uint64_t addr);
/*
 * Offer an access of @len bytes at @addr to the device whose range holds
 * all of it. 0 = handled; -EOPNOTSUPP = no device took it.
 */
int mv_iobus_read(mv_iobus *bus, uint64_t addr, unsigned len, void *data);
int mv_iobus_write(mv_iobus *bus, uint64_t addr, unsigned len, const void *data);

#endif
