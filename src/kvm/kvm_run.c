/*
 * KVM_RUN and the translation of struct kvm_run exits into hv_exit records.
 *
 * Completions: KVM finishes an MMIO read or a port IN on the next KVM_RUN
 * by reading kvm_run->mmio.data / the I/O data area. Port data is handed
 * out in place (io.data points into the kvm_run page), so nothing is
 * copied; MMIO data is copied from the exit record before each run while
 * the read is pending, which is until a run gets past the access: a run
 * that returns EINTR (a kick) leaves the access pending in KVM.
 */
#include "kvm/kvm_internal.h"

#include <errno.h>
#include <string.h>

/* Copy up to HV_EXIT_MAX_DATA words of exit payload. */
static uint32_t kvm_exit_copy_data(uint64_t *dst, const void *src, uint32_t ndata)
{
	if (ndata > HV_EXIT_MAX_DATA)
		ndata = HV_EXIT_MAX_DATA;
	memcpy(dst, src, ndata * sizeof(*dst));
	return ndata;
}

static void kvm_exit_mmio(kvm_vcpu *v, hv_exit *x)
{
	const struct kvm_run *run = v->run;

	x->reason = HV_EXIT_MMIO;
	x->mmio.gpa = run->mmio.phys_addr;
	x->mmio.len = run->mmio.len;
	x->mmio.is_write = run->mmio.is_write;
	memcpy(x->mmio.data, run->mmio.data, sizeof(x->mmio.data));
	v->mmio_read_pending = !run->mmio.is_write;
}

static void kvm_exit_io(kvm_vcpu *v, hv_exit *x)
{
	struct kvm_run *run = v->run;

	x->reason = HV_EXIT_IO;
	x->io.port = run->io.port;
	x->io.size = run->io.size;
	x->io.is_write = run->io.direction == KVM_EXIT_IO_OUT;
	x->io.count = run->io.count;
	x->io.data = (uint8_t *)run + run->io.data_offset;
}

/* Exits carrying an error or event payload. */
static void kvm_exit_event(const struct kvm_run *run, hv_exit *x)
{
	switch (run->exit_reason) {
	case KVM_EXIT_SYSTEM_EVENT:
		x->reason = HV_EXIT_SYSTEM_EVENT;
		x->system_event.type = run->system_event.type;
		x->system_event.ndata = kvm_exit_copy_data(x->system_event.data,
							   run->system_event.data,
							   run->system_event.ndata);
		break;
	case KVM_EXIT_INTERNAL_ERROR:
		x->reason = HV_EXIT_INTERNAL_ERROR;
		x->internal.suberror = run->internal.suberror;
		x->internal.ndata = kvm_exit_copy_data(x->internal.data, run->internal.data,
						       run->internal.ndata);
		break;
	case KVM_EXIT_FAIL_ENTRY:
		x->reason = HV_EXIT_FAIL_ENTRY;
		x->fail_entry.hardware_reason = run->fail_entry.hardware_entry_failure_reason;
		x->fail_entry.cpu = run->fail_entry.cpu;
		break;
	case KVM_EXIT_ARM_NISV:
		x->reason = HV_EXIT_ARM_NISV;
		x->arm_nisv.esr_iss = run->arm_nisv.esr_iss;
		x->arm_nisv.fault_ipa = run->arm_nisv.fault_ipa;
		break;
	default:
		x->reason = HV_EXIT_UNKNOWN;
		x->unknown.raw = run->exit_reason;
		break;
	}
}

/* Fill the exit record from kvm_run after a successful KVM_RUN. */
static void kvm_exit_decode(kvm_vcpu *v)
{
	hv_exit *x = &v->exit;

	/* Not past a pending access: keep the MMIO read (and its data) pending. */
	if (v->run->exit_reason == KVM_EXIT_INTR) {
		x->reason = HV_EXIT_INTR;
		return;
	}
	v->mmio_read_pending = false;
	switch (v->run->exit_reason) {
	case KVM_EXIT_MMIO: kvm_exit_mmio(v, x); break;
	case KVM_EXIT_IO: kvm_exit_io(v, x); break;
	case KVM_EXIT_HLT: x->reason = HV_EXIT_HLT; break;
	case KVM_EXIT_SHUTDOWN: x->reason = HV_EXIT_SHUTDOWN; break;
	case KVM_EXIT_DIRTY_RING_FULL: x->reason = HV_EXIT_DIRTY_RING_FULL; break;
	default: kvm_exit_event(v->run, x); break;
	}
}

/* Hand the caller's MMIO read data to KVM before it completes the access. */
static void kvm_run_complete_mmio(kvm_vcpu *v)
{
	if (v->mmio_read_pending)
		memcpy(v->run->mmio.data, v->exit.mmio.data, sizeof(v->run->mmio.data));
}

int kvm_vcpu_run(hv_vcpu *hvcpu, hv_exit **exit)
{
	kvm_vcpu *v = kvm_vcpu_of(hvcpu);
	long r;

	kvm_run_complete_mmio(v);
	kvm_kick_enter(v);
	r = kvm_ioctl(v->fd, KVM_RUN, NULL);
	kvm_kick_leave(v);
	if (r == -EINTR) {
		/*
		 * Kicked or signalled. The exit union is left alone, so a pending
		 * MMIO read keeps its data for the next run's completion.
		 */
		kvm_kick_consume(v);
		v->exit.reason = HV_EXIT_INTR;
	} else if (r < 0) {
		return (int)r;
	} else {
		kvm_exit_decode(v);
	}
	*exit = &v->exit;
	return 0;
}
