/*
 * debugcon: the Bochs/QEMU debug console on port 0xe9. Every byte written
 * is a console byte; a read returns 0xe9 so a guest can tell the port is
 * there (QEMU's default "readback" value).
 */
#include "vmm/devices.h"

#include "memvirt/testdev_abi.h"

static mv_memtx debugcon_read(void *opaque, uint64_t addr, uint64_t *data, unsigned size)
{
	(void)opaque;
	(void)addr;
	(void)size;
	*data = MVT_DEBUGCON_PORT;
	return MV_MEMTX_OK;
}

static mv_memtx debugcon_write(void *opaque, uint64_t addr, uint64_t data, unsigned size)
{
	(void)addr;
	(void)size;
	vmm_hook_console_out(opaque, "debugcon", (uint8_t)data);
	return MV_MEMTX_OK;
}

/* One byte-wide port: wider OUTs are cut at the region's end by the core. */
static const mv_region_ops debugcon_ops = {
	.read = debugcon_read,
	.write = debugcon_write,
	.endianness = MV_ENDIAN_LITTLE,
	.valid = { .min_access_size = 1, .max_access_size = 1 },
	.impl = { .min_access_size = 1, .max_access_size = 1 },
};

int vmm_debugcon_new(mv_memory *mem, const vmm_hooks *hooks, mv_region **out)
{
	mv_io_region *r;
	int ret = mv_io_region_new(mem, "debugcon", 1, &debugcon_ops, (void *)hooks, &r);

	if (!ret)
		*out = mv_io_region_base(r);
	return ret;
}
