/*
 * The VMM's lifetime: build the memory system, the x86 machine, the VM and
 * its memory listener, load the PVH guest, create the vCPUs (vmm_new);
 * run them to the end (vmm_run); tear everything down (vmm_free).
 */
#include "vmm/vmm_internal.h"

#include "memvirt/hv_soft.h"
#include "memvirt/testdev_abi.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

uint64_t vmm_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void vmm_end_run(vmm *v, vmm_end end, int status, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&v->lock);
	if (!v->ended) {
		v->ended = true;
		v->res.end = end;
		v->res.exit_status = status;
		va_start(ap, fmt);
		vsnprintf(v->res.message, sizeof(v->res.message), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&v->lock);
	atomic_store(&v->stop, true);
	for (unsigned i = 0; i < v->nr_vcpus; i++)
		hv_vcpu_kick(v->vcpus[i].hv);
	pthread_mutex_lock(&v->lock);
	pthread_cond_broadcast(&v->cond);
	pthread_mutex_unlock(&v->lock);
}

/* ---- device hooks that need only the VMM object ---- */

static void vmm_hook_console(void *opaque, const char *src, uint8_t byte)
{
	vmm *v = opaque;

	(void)src;
	if (v->cfg.console)
		v->cfg.console(v->cfg.console_opaque, byte);
}

static void vmm_hook_guest_exit(void *opaque, int status)
{
	vmm_end_run(opaque, VMM_END_GUEST_EXIT, status,
		    "the guest wrote isa-debug-exit: exit status %d", status);
}

static unsigned vmm_hook_current_vcpu(void *opaque)
{
	(void)opaque;
	return vmm_current_vcpu_id();
}

static void vmm_hook_result(void *opaque, unsigned vcpu, uint64_t value)
{
	(void)opaque;
	(void)vcpu;
	(void)value;
}

/* ---- building ---- */

static int vmm_check_config(const vmm_config *c, mv_error *err)
{
	if (c->nr_vcpus < 1 || c->nr_vcpus > VMM_MAX_VCPUS)
		return mv_error_set(err, -EINVAL, "--smp %u: the number of vCPUs must be 1..%d",
				    c->nr_vcpus, VMM_MAX_VCPUS);
	if (!c->elf || !c->elf_size)
		return mv_error_set(err, -EINVAL, "no guest image given");
	if (c->dirty == VMM_DIRTY_RING && c->ring_entries &&
	    (c->ring_entries & (c->ring_entries - 1)))
		return mv_error_set(err, -EINVAL, "dirty ring of %u entries: must be a power of two",
				    c->ring_entries);
	return 0;
}

static int vmm_build_machine(vmm *v, mv_error *err)
{
	vmm_hooks hooks = {
		.opaque = v,
		.console_out = vmm_hook_console,
		.guest_exit = vmm_hook_guest_exit,
		.current_vcpu = vmm_hook_current_vcpu,
		.ws_register = vmm_dirty_ws_register,
		.round_end = vmm_dirty_round_end,
		.result = vmm_hook_result,
	};
	int r = mv_memory_new(NULL, &v->mem);

	if (r)
		return mv_error_set(err, r, "cannot create the memory system: %s", strerror(-r));
	return vmm_x86_machine_new(v->mem, v->cfg.ram_size, v->nr_vcpus, &hooks, &v->machine, err);
}

/* The dirty mode has to be chosen before vCPUs exist (the ring size). */
static int vmm_build_vm(vmm *v, mv_error *err)
{
	hv_vm_config hc = { .arch = HV_ARCH_X86_64 };
	hv_mem_dirty_config dc = { .mode = HV_MEM_DIRTY_OFF };
	int r = hv_vm_create(v->cfg.accel, &hc, &v->vm, err);

	if (r)
		return r;
	r = hv_mem_new(v->vm, v->mem, &v->hm, err);
	if (r)
		return r;
	switch (v->cfg.dirty) {
	case VMM_DIRTY_OFF: break;
	case VMM_DIRTY_BITMAP: dc.mode = HV_MEM_DIRTY_BITMAP; break;
	case VMM_DIRTY_MANUAL: dc.mode = HV_MEM_DIRTY_MANUAL; break;
	case VMM_DIRTY_RING:
		dc.mode = HV_MEM_DIRTY_RING;
		dc.ring_entries = v->cfg.ring_entries ? v->cfg.ring_entries : 4096;
		break;
	}
	r = hv_mem_set_dirty_mode(v->hm, &dc, err);
	if (r)
		return r;
	r = hv_mem_attach(v->hm, vmm_x86_memory_as(v->machine), 0, err);
	if (r)
		return r;
	if (hv_mem_error(v->hm))
		return mv_error_set(err, -EINVAL, "%s", hv_mem_error(v->hm));
	/*
	 * Reports of the dirty workload and SEQ writes: no exit per write.
	 * Except with dirty rings: kvm_pvm checks a ring for "soft full" only
	 * on a full guest entry, so a guest that dirties pages without exiting
	 * overruns it and entries are lost (docs/kvm.md); an exit per reported
	 * page keeps the ring checked.
	 */
	if (hv_vm_check_cap(v->vm, HV_CAP_COALESCED_MMIO) > 0 && v->cfg.dirty != VMM_DIRTY_RING) {
		r = hv_coalesced_zone_add(v->vm, HV_BUS_MMIO, MVT_MMIO_BASE + MVT_COALESCED_OFFSET,
					  MVT_MMIO_SIZE - MVT_COALESCED_OFFSET);
		if (r)
			return mv_error_set(err, r, "cannot register the coalesced MMIO zone: %s",
					    strerror(-r));
	}
	return 0;
}

static int vmm_build_vcpus(vmm *v, mv_error *err)
{
	for (unsigned i = 0; i < v->nr_vcpus; i++) {
		vmm_vcpu *c = &v->vcpus[i];
		int r;

		c->v = v;
		c->id = i;
		r = hv_vcpu_create(v->vm, i, &c->hv, err);
		if (r)
			return r;
		/* A soft vCPU runs a program: no registers, its paging stays off (GVA = GPA). */
		r = v->soft ? vmm_soft_guest_attach(v->soft, c->hv, err) :
			      vmm_x86_vcpu_boot_state(v->vm, c->hv, &v->boot, err);
		if (r)
			return r;
		r = hv_mem_add_vcpu(v->hm, c->hv);
		if (r)
			return mv_error_set(err, r, "vCPU %u: cannot track its dirty ring: %s", i,
					    strerror(-r));
	}
	return 0;
}

static int vmm_build(vmm *v, mv_error *err)
{
	int r = vmm_build_machine(v, err);

	/* The image first: a bad one is reported without needing /dev/kvm. */
	if (!r)
		r = vmm_pvh_load(v->machine, v->cfg.elf, v->cfg.elf_size, v->cfg.elf_name,
				 v->cfg.cmdline, &v->boot, err);
	if (!r)
		r = vmm_build_vm(v, err);
	/* The programs find hvm_start_info where a PVH entry finds it in EBX. */
	if (!r && hv_vm_is_soft(v->vm))
		r = vmm_soft_guest_new(v->boot.start_info, v->nr_vcpus, &v->soft, err);
	if (!r)
		r = vmm_build_vcpus(v, err);
	if (!r && hv_mem_error(v->hm))
		r = mv_error_set(err, -EINVAL, "%s", hv_mem_error(v->hm));
	return r;
}

int vmm_new(const vmm_config *cfg, vmm **out, mv_error *err)
{
	uint64_t t = vmm_now_ns();
	int r = vmm_check_config(cfg, err);
	vmm *v;

	if (r)
		return r;
	v = calloc(1, sizeof(*v));
	if (!v)
		return mv_error_set(err, -ENOMEM, "out of memory creating the VMM");
	v->cfg = *cfg;
	v->nr_vcpus = cfg->nr_vcpus;
	v->t0_ns = cfg->t_process_start_ns ? cfg->t_process_start_ns : t;
	pthread_mutex_init(&v->lock, NULL);
	pthread_cond_init(&v->cond, NULL);
	pthread_mutex_init(&v->dirty_lock, NULL);
	r = vmm_build(v, err);
	v->cfg.elf = NULL;  /* borrowed only while loading */
	if (r) {
		vmm_free(v);
		return r;
	}
	v->stats.t_create_ns = vmm_now_ns() - v->t0_ns;
	*out = v;
	return 0;
}

/* Guest RAM pages that are resident: those the guest (or the loader) touched. */
static uint64_t vmm_resident_pages(vmm *v)
{
	mv_ramblock *rb = vmm_x86_ram(v->machine);
	uint64_t len = mv_ramblock_used_length(rb);
	size_t pages = len / HV_PAGE_SIZE;
	unsigned char *vec = malloc(pages);
	uint64_t n = 0;

	if (!vec || mincore(mv_ramblock_host(rb), len, vec)) {
		free(vec);
		return 0;
	}
	for (size_t i = 0; i < pages; i++)
		n += vec[i] & 1;
	free(vec);
	return n;
}

static void vmm_copy_listener_stats(vmm *v)
{
	const hv_mem_counters *c = hv_mem_stats(v->hm);

	v->stats.memslot_calls = c->memslot_calls;
	v->stats.dirty_log_calls = c->dirty_log_calls;
	v->stats.clear_log_calls = c->clear_log_calls;
	v->stats.ring_entries = c->ring_entries;
	v->stats.pages_synced = c->pages_synced;
}

int vmm_run(vmm *v, vmm_result *res, mv_error *err)
{
	uint64_t t = vmm_now_ns();
	int r = vmm_dirty_start(v, err);

	if (!r)
		r = vmm_vcpus_start(v, err);
	if (r) {
		vmm_end_run(v, VMM_END_ERROR, 0, "%s", err ? err->msg : "cannot start");
		vmm_vcpus_join(v);
		vmm_dirty_stop(v);
		return r;
	}
	vmm_vcpus_join(v);
	vmm_dirty_stop(v);
	v->stats.t_wall_ns = vmm_now_ns() - t;
	v->stats.t_first_exit_ns = atomic_load(&v->t_first_exit_ns);
	v->stats.pages_resident = vmm_resident_pages(v);
	vmm_copy_listener_stats(v);
	*res = v->res;
	if (hv_mem_error(v->hm) && res->end != VMM_END_ERROR) {
		res->end = VMM_END_ERROR;
		snprintf(res->message, sizeof(res->message), "%s", hv_mem_error(v->hm));
	}
	return 0;
}

void vmm_free(vmm *v)
{
	if (!v)
		return;
	for (unsigned i = 0; i < v->nr_vcpus; i++) {
		if (v->hm && v->vcpus[i].hv)
			hv_mem_del_vcpu(v->hm, v->vcpus[i].hv);
		hv_vcpu_destroy(v->vcpus[i].hv);
	}
	vmm_soft_guest_free(v->soft);
	/* The listener goes before the machine so its slots are deleted in order. */
	hv_mem_free(v->hm);
	vmm_x86_machine_free(v->machine);
	hv_vm_destroy(v->vm);
	mv_memory_free(v->mem);
	pthread_mutex_destroy(&v->dirty_lock);
	pthread_cond_destroy(&v->cond);
	pthread_mutex_destroy(&v->lock);
	free(v);
}

const vmm_stats *vmm_get_stats(const vmm *v) { return &v->stats; }
mv_memory *vmm_memory(vmm *v) { return v->mem; }
const char *vmm_memslot_error(const vmm *v) { return v->hm ? hv_mem_error(v->hm) : NULL; }
