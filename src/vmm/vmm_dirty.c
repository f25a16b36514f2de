/*
 * Dirty tracking seen from the VMM: the test device's dirty rounds are
 * checked against the accelerator's dirty log (synced into the RAM block's
 * dirty bitmap through the memory listeners, as QEMU's migration does),
 * and the optional dirty-rate sampler.
 */
#include "vmm/vmm_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define VMM_RATE_PERIOD_NS 50000000ull

/* The RAM block and offset that guest-physical [gpa, gpa + len) shows, or NULL. */
static mv_ramblock *vmm_gpa_to_ram(vmm *v, uint64_t gpa, uint64_t len, uint64_t *offset)
{
	mv_flatview *fv = mv_address_space_get_flatview(vmm_x86_memory_as(v->machine));
	uint64_t xlat, plen = len;
	const mv_section *s = mv_flatview_lookup(fv, gpa, &xlat, &plen);
	mv_ram_region *ram = s->mr ? mv_region_as_ram(s->mr) : NULL;
	mv_ramblock *rb = ram && plen >= len ? mv_ram_region_block(ram) : NULL;

	mv_flatview_unref(fv);
	*offset = xlat;
	return rb;
}

/*
 * Start dirty logging on first use (a working set or the rate sampler), as
 * QEMU starts it for migration: turning it on write-protects guest RAM,
 * which costs milliseconds per GiB, so boot does not pay for it.
 * Call with dirty_lock held.
 */
static void vmm_dirty_log_start(vmm *v)
{
	if (v->cfg.dirty != VMM_DIRTY_OFF && !mv_memory_global_dirty_log(v->mem))
		mv_memory_global_dirty_log_start(v->mem);
}

/* Pull the accelerator's dirty log into the RAM blocks' bitmaps (dirty_lock held). */
static void vmm_dirty_sync(vmm *v)
{
	uint64_t t = vmm_now_ns();

	mv_memory_global_dirty_log_sync(v->mem);
	v->stats.dirty_syncs++;
	v->stats.dirty_sync_ns += vmm_now_ns() - t;
}

/*
 * Sync, then take (fetch and clear) the dirty bits of working set @ws from
 * its RAM block: a bitmap, bit i = page i of the set, to free; NULL when
 * the set is empty, not plain RAM, or memory is short. dirty_lock held.
 */
static unsigned long *vmm_ws_take_dirty(vmm *v, const vmm_ws *ws)
{
	uint64_t off, len = ws->pages * HV_PAGE_SIZE;
	mv_ramblock *rb = ws->pages ? vmm_gpa_to_ram(v, ws->gpa, len, &off) : NULL;
	unsigned long *bits = rb ? calloc((ws->pages + 63) / 64, sizeof(*bits)) : NULL;

	if (bits) {
		vmm_dirty_sync(v);
		mv_ramblock_take_dirty(rb, off, len, bits);
	}
	return bits;
}

void vmm_dirty_ws_register(void *opaque, unsigned vcpu, uint64_t gpa, uint64_t pages)
{
	vmm *v = opaque;

	if (vcpu >= VMM_MAX_VCPUS)
		return;
	pthread_mutex_lock(&v->dirty_lock);
	v->ws[vcpu] = (vmm_ws){ gpa, pages };
	vmm_dirty_log_start(v);
	/* Whatever was dirty before the set was declared is not round 1's. */
	free(vmm_ws_take_dirty(v, &v->ws[vcpu]));
	pthread_mutex_unlock(&v->dirty_lock);
}

static int vmm_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

uint64_t vmm_dirty_diff(const vmm_ws *ws, const unsigned long *dirty, uint64_t *gfns, size_t n)
{
	uint64_t base = ws->gpa / HV_PAGE_SIZE, mismatches = 0;
	size_t j = 0;

	if (n)
		qsort(gfns, n, sizeof(*gfns), vmm_cmp_u64);
	for (uint64_t i = 0; i < ws->pages; i++) {
		bool is_dirty = dirty[i / 64] >> (i % 64) & 1;
		bool reported;

		while (j < n && gfns[j] < base + i)
			j++, mismatches++;   /* reported below this page: outside or duplicate */
		reported = j < n && gfns[j] == base + i;
		if (reported)
			j++;
		mismatches += is_dirty != reported;
	}
	return mismatches + (n - j);
}

uint64_t vmm_dirty_round_end(void *opaque, unsigned vcpu, uint32_t round,
			     const uint64_t *gfns, size_t n)
{
	vmm *v = opaque;
	uint64_t mismatches = UINT64_MAX;
	uint64_t *sorted = malloc((n ? n : 1) * sizeof(*sorted));
	unsigned long *dirty = NULL;

	pthread_mutex_lock(&v->dirty_lock);
	if (sorted && vcpu < VMM_MAX_VCPUS && v->cfg.dirty != VMM_DIRTY_OFF)
		dirty = vmm_ws_take_dirty(v, &v->ws[vcpu]);
	if (dirty) {
		if (v->cfg.dirty_round)
			v->cfg.dirty_round(v->cfg.dirty_round_opaque, vcpu, round, v->ws[vcpu].gpa,
					   v->ws[vcpu].pages, dirty);
		memcpy(sorted, gfns, n * sizeof(*sorted));
		mismatches = vmm_dirty_diff(&v->ws[vcpu], dirty, sorted, n);
		v->stats.dirty_rounds++;
		v->stats.dirty_pages_reported += n;
		v->stats.dirty_mismatches += mismatches;
	}
	pthread_mutex_unlock(&v->dirty_lock);
	free(dirty);
	free(sorted);
	return mismatches;
}

/* ---- dirty-rate sampling ---- */

static bool vmm_rate_sleep(vmm *v)
{
	struct timespec until;
	bool stop;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_nsec += VMM_RATE_PERIOD_NS;
	until.tv_sec += until.tv_nsec / 1000000000;
	until.tv_nsec %= 1000000000;
	pthread_mutex_lock(&v->lock);
	while (!(stop = atomic_load(&v->stop)))
		if (pthread_cond_timedwait(&v->cond, &v->lock, &until) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&v->lock);
	return !stop;
}

/*
 * Every period: sync, and count the pages the accelerator reported dirty
 * since the previous sync (each page at most once per period, as QEMU's
 * calc-dirty-rate in dirty-bitmap / dirty-ring mode).
 */
static void *vmm_rate_thread(void *arg)
{
	vmm *v = arg;
	uint64_t t0 = vmm_now_ns();
	uint64_t base;

	mv_rcu_register_thread();
	pthread_mutex_lock(&v->dirty_lock);
	vmm_dirty_log_start(v);
	vmm_dirty_sync(v);
	base = hv_mem_stats(v->hm)->pages_synced;
	pthread_mutex_unlock(&v->dirty_lock);
	while (vmm_rate_sleep(v)) {
		pthread_mutex_lock(&v->dirty_lock);
		vmm_dirty_sync(v);
		v->stats.rate_samples++;
		v->stats.rate_pages = hv_mem_stats(v->hm)->pages_synced - base;
		v->stats.rate_ns = vmm_now_ns() - t0;
		pthread_mutex_unlock(&v->dirty_lock);
	}
	mv_rcu_unregister_thread();
	return NULL;
}

int vmm_dirty_start(vmm *v, mv_error *err)
{
	int r;

	if (!v->cfg.dirty_rate)
		return 0;
	if (v->cfg.dirty == VMM_DIRTY_OFF)
		return mv_error_set(err, -EINVAL, "--dirty-rate needs dirty logging (--dirty-log bitmap, manual or ring)");
	r = pthread_create(&v->rate_thread, NULL, vmm_rate_thread, v);
	if (r)
		return mv_error_set(err, -r, "cannot start the dirty-rate thread: %s", strerror(r));
	v->rate_started = true;
	return 0;
}

void vmm_dirty_stop(vmm *v)
{
	if (v->rate_started)
		pthread_join(v->rate_thread, NULL);
	v->rate_started = false;
}
