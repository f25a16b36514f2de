/*
 * The memvirt test device (include/memvirt/testdev_abi.h): registers the
 * test guests use to check the VMM and the accelerator below it.
 *
 * MMIO registers are 64-bit. The core only lets 4- and 8-byte aligned
 * accesses through (valid 4..8); a 4-byte read returns the addressed
 * half; a 4-byte write to the low half acts as an 8-byte write of the
 * zero-extended value and one to the high half is ignored, so 32-bit code
 * can drive every register whose value fits in 32 bits.
 *
 * Per-vCPU state (working-set base, page reports, round status, sequence)
 * is indexed by the vCPU in the value where the ABI puts one (PAGE_REPORT,
 * SEQ, ROUND_END: coalesced writes are drained by whichever thread drains
 * the ring) and by hooks.current_vcpu() otherwise. Ids >= NR_VCPUS are
 * ignored. Hooks are called without the device lock held, because a hook
 * may drain the coalesced ring, which writes back into this device.
 */
#include "vmm/devices.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "memvirt/testdev_abi.h"
#include "util/alloc.h"

#define TESTDEV_FIFO_SIZE 4096
/* PAGE_REPORT and SEQ carry the vCPU in bits 63:48, the payload below. */
#define TESTDEV_LOW48 ((1ULL << 48) - 1)
#define TESTDEV_PIO_SIZE 8

/*
 * The pages a vCPU reported this round: in report order (@list) plus an
 * open-addressing hash of gfn + 1 (0 = empty slot) to drop duplicates in
 * O(1). The hash is rebuilt from @list when it grows.
 */
typedef struct testdev_reports {
	uint64_t *list;
	size_t nr, cap;
	uint64_t *hash;
	size_t hash_cap;        /* power of two, > 2 * nr */
} testdev_reports;

typedef struct testdev_vcpu {
	uint64_t ws_base;       /* last WS_BASE written */
	testdev_reports rep;
	uint64_t round_status;  /* mismatches of the last ROUND_END */
	uint64_t seq_next;      /* the n its next SEQ write must carry */
} testdev_vcpu;

struct vmm_testdev {
	const vmm_hooks *hooks;
	unsigned nr_vcpus;
	uint64_t ram_size;
	/* Lock-free: vCPUs hammer these concurrently (__atomic builtins). */
	uint64_t scratch, scratch_ops;
	uint32_t pio_scratch, pio_ops;
	/* Everything below is under @lock. */
	pthread_mutex_t lock;
	bool seq_bad;
	uint64_t seq_count;
	uint8_t fifo[TESTDEV_FIFO_SIZE];
	size_t fifo_head, fifo_len;
	testdev_vcpu vcpu[];
};

/* ------------------------------------------------------------------ */
/* Page reports                                                         */

static size_t hash_slot(uint64_t key, size_t cap)
{
	/* Fibonacci hashing spreads consecutive frame numbers. */
	return (size_t)((key * 0x9e3779b97f4a7c15ULL) >> 20) & (cap - 1);
}

/* Insert @key; returns false if it was already there. */
static bool hash_insert(uint64_t *hash, size_t cap, uint64_t key)
{
	size_t i = hash_slot(key, cap);

	while (hash[i]) {
		if (hash[i] == key)
			return false;
		i = (i + 1) & (cap - 1);
	}
	hash[i] = key;
	return true;
}

/* Make room for one more entry in both the list and the hash. */
static int reports_reserve(testdev_reports *r)
{
	size_t cap;
	uint64_t *hash;

	if (mv_grow(NULL, (void **)&r->list, &r->cap, r->nr + 1, sizeof(*r->list)))
		return -ENOMEM;
	if (2 * (r->nr + 1) < r->hash_cap)
		return 0;
	cap = r->hash_cap ? 2 * r->hash_cap : 64;
	hash = mv_zalloc(NULL, cap * sizeof(*hash));
	if (!hash)
		return -ENOMEM;
	for (size_t i = 0; i < r->nr; i++)
		hash_insert(hash, cap, r->list[i] + 1);
	mv_free(NULL, r->hash);
	r->hash = hash;
	r->hash_cap = cap;
	return 0;
}

/*
 * Record @gfn unless already reported this round. Out of memory the
 * report is lost, which the round's comparison then shows as a mismatch.
 */
static void reports_add(testdev_reports *r, uint64_t gfn)
{
	if (reports_reserve(r))
		return;
	if (hash_insert(r->hash, r->hash_cap, gfn + 1))
		r->list[r->nr++] = gfn;
}

/* Hand the list over to the caller (who frees it) and start empty. */
static uint64_t *reports_take(testdev_reports *r, size_t *n)
{
	uint64_t *list = r->list;

	*n = r->nr;
	r->list = NULL;
	r->nr = r->cap = 0;
	if (r->hash)
		memset(r->hash, 0, r->hash_cap * sizeof(*r->hash));
	return list;
}

static void reports_free(testdev_reports *r)
{
	mv_free(NULL, r->list);
	mv_free(NULL, r->hash);
}

/* ------------------------------------------------------------------ */
/* MMIO registers                                                       */

/* The calling vCPU's state, or NULL for an id outside the machine. */
static testdev_vcpu *current(vmm_testdev *d, unsigned *id)
{
	*id = vmm_hook_current_vcpu(d->hooks);
	return *id < d->nr_vcpus ? &d->vcpu[*id] : NULL;
}

static uint64_t locked_u64(vmm_testdev *d, const uint64_t *p)
{
	uint64_t v;

	pthread_mutex_lock(&d->lock);
	v = *p;
	pthread_mutex_unlock(&d->lock);
	return v;
}

static uint64_t reg_read(vmm_testdev *d, uint64_t reg)
{
	testdev_vcpu *v;
	unsigned id;

	switch (reg) {
	case MVT_REG_MAGIC:
		return MVT_MAGIC;
	case MVT_REG_VERSION:
		return MVT_VERSION;
	case MVT_REG_NR_VCPUS:
		return d->nr_vcpus;
	case MVT_REG_RAM_SIZE:
		return d->ram_size;
	case MVT_REG_SCRATCH:
		__atomic_fetch_add(&d->scratch_ops, 1, __ATOMIC_RELAXED);
		return __atomic_load_n(&d->scratch, __ATOMIC_SEQ_CST);
	case MVT_REG_SCRATCH_OPS:
		return __atomic_load_n(&d->scratch_ops, __ATOMIC_RELAXED);
	case MVT_REG_ROUND_STATUS:
		v = current(d, &id);
		return v ? locked_u64(d, &v->round_status) : 0;
	case MVT_REG_SEQ_CHECK:
		pthread_mutex_lock(&d->lock);
		id = d->seq_bad;
		pthread_mutex_unlock(&d->lock);
		return id;
	case MVT_REG_SEQ_COUNT:
		return locked_u64(d, &d->seq_count);
	default:
		return 0;       /* write-only and unassigned offsets */
	}
}

static void ws_pages(vmm_testdev *d, uint64_t pages)
{
	unsigned id;
	testdev_vcpu *v = current(d, &id);

	if (v)
		vmm_hook_ws_register(d->hooks, id, locked_u64(d, &v->ws_base), pages);
}

static void ws_base(vmm_testdev *d, uint64_t gpa)
{
	unsigned id;
	testdev_vcpu *v = current(d, &id);

	if (!v)
		return;
	pthread_mutex_lock(&d->lock);
	v->ws_base = gpa;
	pthread_mutex_unlock(&d->lock);
}

/* ROUND_END: (vcpu << 32) | round. */
static void round_end(vmm_testdev *d, uint64_t value)
{
	unsigned id = (unsigned)(value >> 32);
	uint32_t round = (uint32_t)value;
	uint64_t *gfns, status;
	size_t n;

	if (id >= d->nr_vcpus)
		return;
	pthread_mutex_lock(&d->lock);
	gfns = reports_take(&d->vcpu[id].rep, &n);
	pthread_mutex_unlock(&d->lock);
	status = vmm_hook_round_end(d->hooks, id, round, gfns, n);
	pthread_mutex_lock(&d->lock);
	d->vcpu[id].round_status = status;
	pthread_mutex_unlock(&d->lock);
	mv_free(NULL, gfns);
}

/* PAGE_REPORT: (vcpu << 48) | gfn. */
static void page_report(vmm_testdev *d, uint64_t value)
{
	unsigned id = (unsigned)(value >> 48);

	if (id >= d->nr_vcpus)
		return;
	pthread_mutex_lock(&d->lock);
	reports_add(&d->vcpu[id].rep, value & TESTDEV_LOW48);
	pthread_mutex_unlock(&d->lock);
}

/* SEQ: (vcpu << 48) | n with n = 0, 1, 2, ... per vCPU. */
static void seq(vmm_testdev *d, uint64_t value)
{
	unsigned id = (unsigned)(value >> 48);
	uint64_t n = value & TESTDEV_LOW48;

	pthread_mutex_lock(&d->lock);
	d->seq_count++;
	if (id >= d->nr_vcpus) {
		d->seq_bad = true;
	} else {
		if (n != d->vcpu[id].seq_next)
			d->seq_bad = true;
		/* Resynchronise, so one lost write is not reported again and again. */
		d->vcpu[id].seq_next = n + 1;
	}
	pthread_mutex_unlock(&d->lock);
}

static void reg_write(vmm_testdev *d, uint64_t reg, uint64_t value)
{
	unsigned id;

	switch (reg) {
	case MVT_REG_SCRATCH:
		__atomic_store_n(&d->scratch, value, __ATOMIC_SEQ_CST);
		__atomic_fetch_add(&d->scratch_ops, 1, __ATOMIC_RELAXED);
		break;
	case MVT_REG_WS_BASE:
		ws_base(d, value);
		break;
	case MVT_REG_WS_PAGES:
		ws_pages(d, value);
		break;
	case MVT_REG_ROUND_END:
		round_end(d, value);
		break;
	case MVT_REG_RESULT:
		id = vmm_hook_current_vcpu(d->hooks);
		vmm_hook_result(d->hooks, id, value);
		break;
	case MVT_REG_PAGE_REPORT:
		page_report(d, value);
		break;
	case MVT_REG_SEQ:
		seq(d, value);
		break;
	default:
		break;          /* read-only and unassigned offsets */
	}
}

static mv_memtx mmio_read(void *opaque, uint64_t addr, uint64_t *data, unsigned size)
{
	uint64_t v = reg_read(opaque, addr & ~7ULL);

	if (size == 4)
		v = (uint32_t)(v >> ((addr & 4) * 8));
	*data = v;
	return MV_MEMTX_OK;
}

static mv_memtx mmio_write(void *opaque, uint64_t addr, uint64_t data, unsigned size)
{
	/* A 32-bit store to the high half has no meaning of its own. */
	if (size == 4 && (addr & 4))
		return MV_MEMTX_OK;
	reg_write(opaque, addr & ~7ULL, size == 4 ? (uint32_t)data : data);
	return MV_MEMTX_OK;
}

/* 4- and 8-byte aligned accesses; anything else is a decode error. */
static const mv_region_ops testdev_mmio_ops = {
	.read = mmio_read,
	.write = mmio_write,
	.endianness = MV_ENDIAN_LITTLE,
	.valid = { .min_access_size = 4, .max_access_size = 8 },
	.impl = { .min_access_size = 4, .max_access_size = 8 },
};

/* ------------------------------------------------------------------ */
/* Port registers                                                       */

#define PIO_SCRATCH (MVT_PIO_SCRATCH - MVT_PIO_BASE)
#define PIO_FIFO (MVT_PIO_FIFO - MVT_PIO_BASE)
#define PIO_OPS (MVT_PIO_OPS - MVT_PIO_BASE)

/* Each port register has exactly one width; other accesses never reach us. */
static bool pio_accepts(void *opaque, uint64_t addr, unsigned size, bool is_write)
{
	(void)opaque;
	(void)is_write;
	return (addr == PIO_SCRATCH && size == 4) || (addr == PIO_FIFO && size == 1) ||
	       (addr == PIO_OPS && size == 2);
}

static uint8_t fifo_pop(vmm_testdev *d)
{
	uint8_t b = 0xff;

	pthread_mutex_lock(&d->lock);
	if (d->fifo_len) {
		b = d->fifo[d->fifo_head];
		d->fifo_head = (d->fifo_head + 1) % TESTDEV_FIFO_SIZE;
		d->fifo_len--;
	}
	pthread_mutex_unlock(&d->lock);
	return b;
}

/* A full FIFO drops the byte, as a real one would overrun. */
static void fifo_push(vmm_testdev *d, uint8_t b)
{
	pthread_mutex_lock(&d->lock);
	if (d->fifo_len < TESTDEV_FIFO_SIZE) {
		d->fifo[(d->fifo_head + d->fifo_len) % TESTDEV_FIFO_SIZE] = b;
		d->fifo_len++;
	}
	pthread_mutex_unlock(&d->lock);
}

/* OPS reads the number of port accesses before this one. */
static mv_memtx pio_read(void *opaque, uint64_t addr, uint64_t *data, unsigned size)
{
	vmm_testdev *d = opaque;
	uint32_t ops = __atomic_fetch_add(&d->pio_ops, 1, __ATOMIC_RELAXED);

	(void)size;
	if (addr == PIO_SCRATCH)
		*data = __atomic_load_n(&d->pio_scratch, __ATOMIC_SEQ_CST);
	else if (addr == PIO_FIFO)
		*data = fifo_pop(d);
	else
		*data = (uint16_t)ops;
	return MV_MEMTX_OK;
}

static mv_memtx pio_write(void *opaque, uint64_t addr, uint64_t data, unsigned size)
{
	vmm_testdev *d = opaque;

	(void)size;
	__atomic_fetch_add(&d->pio_ops, 1, __ATOMIC_RELAXED);
	if (addr == PIO_SCRATCH)
		__atomic_store_n(&d->pio_scratch, (uint32_t)data, __ATOMIC_SEQ_CST);
	else if (addr == PIO_FIFO)
		fifo_push(d, (uint8_t)data);
	return MV_MEMTX_OK;   /* OPS is read-only */
}

static const mv_region_ops testdev_pio_ops = {
	.read = pio_read,
	.write = pio_write,
	.endianness = MV_ENDIAN_LITTLE,
	.valid = { .min_access_size = 1, .max_access_size = 4, .accepts = pio_accepts },
	.impl = { .min_access_size = 1, .max_access_size = 4 },
};

/* ------------------------------------------------------------------ */
/* Construction                                                         */

static int testdev_regions(mv_memory *mem, vmm_testdev *d, mv_region **mmio, mv_region **pio)
{
	mv_io_region *m, *p;
	int ret = mv_io_region_new(mem, "memvirt-testdev", MVT_MMIO_SIZE, &testdev_mmio_ops, d, &m);

	if (ret)
		return ret;
	ret = mv_io_region_new(mem, "memvirt-testdev-pio", TESTDEV_PIO_SIZE, &testdev_pio_ops, d, &p);
	if (ret) {
		mv_region_unref(mv_io_region_base(m));
		return ret;
	}
	*mmio = mv_io_region_base(m);
	*pio = mv_io_region_base(p);
	return 0;
}

int vmm_testdev_new(mv_memory *mem, const vmm_hooks *hooks, unsigned nr_vcpus,
		    uint64_t ram_size, vmm_testdev **dev, mv_region **mmio, mv_region **pio)
{
	vmm_testdev *d = mv_zalloc(NULL, sizeof(*d) + nr_vcpus * sizeof(d->vcpu[0]));
	int ret;

	if (!d)
		return -ENOMEM;
	pthread_mutex_init(&d->lock, NULL);
	d->hooks = hooks;
	d->nr_vcpus = nr_vcpus;
	d->ram_size = ram_size;
	ret = testdev_regions(mem, d, mmio, pio);
	if (ret) {
		vmm_testdev_free(d);
		return ret;
	}
	*dev = d;
	return 0;
}

void vmm_testdev_free(vmm_testdev *d)
{
	if (!d)
		return;
	for (unsigned i = 0; i < d->nr_vcpus; i++)
		reports_free(&d->vcpu[i].rep);
	pthread_mutex_destroy(&d->lock);
	mv_free(NULL, d);
}
