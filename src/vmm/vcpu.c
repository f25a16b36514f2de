/*
 * vCPU threads: one per vCPU, each looping on hv_vcpu_run and dispatching
 * the exit through the memory model (MMIO -> the memory address space,
 * port I/O -> the I/O address space), after draining the coalesced ring so
 * devices see writes in guest order (as QEMU's kvm_cpu_exec). Pause,
 * resume and stop come from other threads: set a flag, kick, and the
 * thread parks or returns after its current exit (no exit is lost: an
 * access left pending by a kick is completed by the next run).
 */
#include "vmm/vmm_internal.h"

#include "memvirt/hv_soft.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static _Thread_local unsigned vmm_tls_vcpu;

unsigned vmm_current_vcpu_id(void)
{
	return vmm_tls_vcpu;
}

static void vmm_count(uint64_t *counter)
{
	__atomic_fetch_add(counter, 1, __ATOMIC_RELAXED);
}

/* ---- exits ---- */

static void vmm_coalesced_write(void *opaque, const hv_coalesced_write *w)
{
	vmm *v = opaque;
	mv_address_space *as = w->bus == HV_BUS_PIO ? vmm_x86_io_as(v->machine) :
						      vmm_x86_memory_as(v->machine);

	mv_as_write(as, w->addr, w->data, w->len);
	vmm_count(&v->stats.coalesced_writes);
}

static void vmm_exit_mmio(vmm *v, hv_exit *e)
{
	mv_as_rw(vmm_x86_memory_as(v->machine), e->mmio.gpa, e->mmio.data, e->mmio.len,
		 e->mmio.is_write);
	vmm_count(e->mmio.is_write ? &v->stats.mmio_writes : &v->stats.mmio_reads);
}

/* String I/O (rep ins/outs) arrives as @count accesses of @size bytes. */
static void vmm_exit_io(vmm *v, hv_exit *e)
{
	mv_address_space *io = vmm_x86_io_as(v->machine);

	for (uint32_t i = 0; i < e->io.count; i++) {
		mv_as_rw(io, e->io.port, e->io.data + (size_t)i * e->io.size, e->io.size,
			 e->io.is_write);
		vmm_count(e->io.is_write ? &v->stats.pio_writes : &v->stats.pio_reads);
	}
}

/*
 * Describe an internal error: on this host it is usually an instruction
 * KVM's emulator cannot run at CPL0, so show RIP and the bytes there.
 */
static void vmm_exit_internal(vmm_vcpu *c, hv_exit *e)
{
	hv_x86_regs regs = { 0 };
	hv_x86_sregs sregs = { 0 };
	uint8_t bytes[16];
	char hex[3 * sizeof(bytes) + 1] = "unreadable";
	uint64_t gva, gpa;

	hv_vcpu_get_regs(c->hv, &regs);
	hv_vcpu_get_sregs(c->hv, &sregs);
	gva = sregs.cs.base + regs.rip;
	if (hv_vcpu_translate(c->hv, gva, &gpa))
		gpa = gva;
	if (mv_as_read(vmm_x86_memory_as(c->v->machine), gpa, bytes, sizeof(bytes)) ==
	    MV_MEMTX_OK)
		for (size_t i = 0; i < sizeof(bytes); i++)
			snprintf(hex + 3 * i, 4, "%02x%s", bytes[i], i + 1 < sizeof(bytes) ? " " : "");
	vmm_end_run(c->v, VMM_END_ERROR, 0,
		    "vCPU %u: internal error, suberror %" PRIu32 " (%s), RIP 0x%" PRIx64
		    " (gpa 0x%" PRIx64 "), bytes at RIP: %s", c->id, e->internal.suberror,
		    e->internal.suberror == 1 ? "emulation failure: an instruction the accelerator cannot emulate" :
		    "see the accelerator's documentation", regs.rip, gpa, hex);
}

static void vmm_exit_stop(vmm_vcpu *c, hv_exit *e)
{
	int ret;

	switch (e->reason) {
	case HV_EXIT_HLT:
		/* A soft vCPU's program that ends halts it: say why when an access failed. */
		if (hv_soft_vcpu_program_done(c->hv, &ret) && ret)
			vmm_end_run(c->v, VMM_END_ERROR, 0, "vCPU %u: its access program stopped: "
				    "an access failed: %s", c->id, strerror(-ret));
		else
			vmm_end_run(c->v, VMM_END_HLT, 0, "vCPU %u halted (HLT with nothing to wake it)",
				    c->id);
		break;
	case HV_EXIT_SHUTDOWN:
		vmm_end_run(c->v, VMM_END_SHUTDOWN, 0,
			    "vCPU %u: shutdown (triple fault: the guest could not deliver an exception)",
			    c->id);
		break;
	case HV_EXIT_SYSTEM_EVENT:
		vmm_end_run(c->v, VMM_END_SYSTEM_EVENT, 0, "vCPU %u: system event %" PRIu32,
			    c->id, e->system_event.type);
		break;
	case HV_EXIT_FAIL_ENTRY:
		vmm_end_run(c->v, VMM_END_ERROR, 0,
			    "vCPU %u: entry failed, hardware reason 0x%" PRIx64, c->id,
			    e->fail_entry.hardware_reason);
		break;
	case HV_EXIT_INTERNAL_ERROR:
		vmm_exit_internal(c, e);
		break;
	default:
		vmm_end_run(c->v, VMM_END_ERROR, 0, "vCPU %u: unexpected exit '%s'", c->id,
			    hv_exit_reason_name(e->reason));
	}
}

static void vmm_exit_dispatch(vmm_vcpu *c, hv_exit *e)
{
	vmm *v = c->v;

	hv_coalesced_drain(v->vm, vmm_coalesced_write, v);
	switch (e->reason) {
	case HV_EXIT_MMIO:
		vmm_exit_mmio(v, e);
		break;
	case HV_EXIT_IO:
		vmm_exit_io(v, e);
		break;
	case HV_EXIT_INTR:
		break;
	case HV_EXIT_DIRTY_RING_FULL:
		pthread_mutex_lock(&v->dirty_lock);
		hv_mem_ring_harvest(v->hm);
		pthread_mutex_unlock(&v->dirty_lock);
		break;
	default:
		vmm_exit_stop(c, e);
	}
}

/* ---- run control ---- */

/* Park while a pause is requested; returns false when the run must end. */
static bool vmm_vcpu_wait(vmm *v)
{
	if (!atomic_load(&v->pause))
		return !atomic_load(&v->stop);
	pthread_mutex_lock(&v->lock);
	v->parked++;
	pthread_cond_broadcast(&v->cond);
	while (atomic_load(&v->pause) && !atomic_load(&v->stop))
		pthread_cond_wait(&v->cond, &v->lock);
	v->parked--;
	pthread_mutex_unlock(&v->lock);
	return !atomic_load(&v->stop);
}

static void vmm_note_first_exit(vmm *v)
{
	uint_fast64_t zero = 0;

	if (atomic_load_explicit(&v->t_first_exit_ns, memory_order_relaxed) == 0)
		atomic_compare_exchange_strong(&v->t_first_exit_ns, &zero,
					       vmm_now_ns() - v->t0_ns);
}

static void *vmm_vcpu_thread(void *arg)
{
	vmm_vcpu *c = arg;
	vmm *v = c->v;
	hv_exit *e;

	vmm_tls_vcpu = c->id;
	mv_rcu_register_thread();
	while (vmm_vcpu_wait(v)) {
		int r = hv_vcpu_run(c->hv, &e);

		if (r) {
			vmm_end_run(v, VMM_END_ERROR, 0, "vCPU %u: cannot run: %s", c->id,
				    strerror(-r));
			break;
		}
		if (e->reason != HV_EXIT_INTR)
			vmm_note_first_exit(v);
		if ((unsigned)e->reason < VMM_NR_EXIT_REASONS)
			vmm_count(&v->stats.exits[e->reason]);
		vmm_exit_dispatch(c, e);
	}
	/* Writes queued before the end still reach their devices. */
	hv_coalesced_drain(v->vm, vmm_coalesced_write, v);
	mv_rcu_unregister_thread();
	pthread_mutex_lock(&v->lock);
	v->running--;
	pthread_cond_broadcast(&v->cond);
	pthread_mutex_unlock(&v->lock);
	return NULL;
}

int vmm_vcpus_start(vmm *v, mv_error *err)
{
	for (unsigned i = 0; i < v->nr_vcpus; i++) {
		int r;

		pthread_mutex_lock(&v->lock);
		v->running++;
		pthread_mutex_unlock(&v->lock);
		r = pthread_create(&v->vcpus[i].thread, NULL, vmm_vcpu_thread, &v->vcpus[i]);
		if (r) {
			pthread_mutex_lock(&v->lock);
			v->running--;
			pthread_mutex_unlock(&v->lock);
			return mv_error_set(err, -r, "cannot start the thread of vCPU %u: %s", i,
					    strerror(r));
		}
		v->vcpus[i].started = true;
	}
	return 0;
}

void vmm_vcpus_join(vmm *v)
{
	for (unsigned i = 0; i < v->nr_vcpus; i++)
		if (v->vcpus[i].started) {
			pthread_join(v->vcpus[i].thread, NULL);
			v->vcpus[i].started = false;
		}
}

void vmm_pause(vmm *v)
{
	atomic_store(&v->pause, true);
	for (unsigned i = 0; i < v->nr_vcpus; i++)
		hv_vcpu_kick(v->vcpus[i].hv);
	pthread_mutex_lock(&v->lock);
	while (v->parked < v->running && !atomic_load(&v->stop))
		pthread_cond_wait(&v->cond, &v->lock);
	pthread_mutex_unlock(&v->lock);
}

void vmm_resume(vmm *v)
{
	pthread_mutex_lock(&v->lock);
	atomic_store(&v->pause, false);
	pthread_cond_broadcast(&v->cond);
	pthread_mutex_unlock(&v->lock);
}

void vmm_stop(vmm *v)
{
	vmm_end_run(v, VMM_END_STOPPED, 0, "stopped by the VMM");
}
