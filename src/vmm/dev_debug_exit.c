/*
 * isa-debug-exit: writing V to any of its 4 ports ends the VM with the
 * process exit status (V << 1) | 1, so a guest can report success or
 * failure without ever looking like a clean exit 0 (QEMU's device with
 * iobase=0xf4,iosize=4).
 */
#include "vmm/devices.h"

static mv_memtx debug_exit_read(void *opaque, uint64_t addr, uint64_t *data, unsigned size)
{
	(void)opaque;
	(void)addr;
	(void)size;
	*data = 0;
	return MV_MEMTX_OK;
}

static mv_memtx debug_exit_write(void *opaque, uint64_t addr, uint64_t data, unsigned size)
{
	(void)addr;
	(void)size;
	vmm_hook_guest_exit(opaque, (int)((data << 1) | 1));
	return MV_MEMTX_OK;
}

/*
 * Any size 1..4 at any offset reaches the callback as one access, so the
 * value the guest wrote is exactly V (not split into bytes).
 */
static const mv_region_ops debug_exit_ops = {
	.read = debug_exit_read,
	.write = debug_exit_write,
	.endianness = MV_ENDIAN_LITTLE,
	.valid = { .min_access_size = 1, .max_access_size = 4, .unaligned = true },
	.impl = { .min_access_size = 1, .max_access_size = 4, .unaligned = true },
};

int vmm_debug_exit_new(mv_memory *mem, const vmm_hooks *hooks, mv_region **out)
{
	mv_io_region *r;
	int ret = mv_io_region_new(mem, "isa-debug-exit", 4, &debug_exit_ops, (void *)hooks, &r);

	if (!ret)
		*out = mv_io_region_base(r);
	return ret;
}
