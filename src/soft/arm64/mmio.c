/*
 * MMIO aborts (arch/arm64/kvm/mmio.c): io_mem_abort decodes the access from
 * the ESR_EL2 syndrome alone -- never from the instruction, which the
 * handler does not see on hardware either -- offers it to the in-process
 * I/O bus, and otherwise exits to user space; kvm_handle_mmio_return
 * writes the data of a completed read to Rt.
 *
 * Data is little-endian guest byte order (the guest runs with
 * SCTLR_EL1.EE = 0; big-endian guests are not modelled).
 */
#include "soft/arm64/a64_abort.h"

#include <inttypes.h>
#include <string.h>

/* kvm_vcpu_dabt_iss_nisv_sanitized: the ISS bits an ARM_NISV exit reports. */
#define A64_NISV_ISS_MASK (MV_ESR_CM | MV_ESR_WNR | MV_ESR_FSC_MASK)

static uint64_t a64_le_load(const uint8_t *buf, unsigned len)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < len; i++)
		v |= (uint64_t)buf[i] << (8 * i);
	return v;
}

static void a64_le_store(uint8_t *buf, unsigned len, uint64_t v)
{
	for (unsigned i = 0; i < len; i++)
		buf[i] = (uint8_t)(v >> (8 * i));
}

/*
 * The register value of a @len-byte load: sign-extended from bit
 * 8*len - 1 when SSE, then truncated to 32 bits when the target is Wt.
 */
static uint64_t a64_mmio_extend(uint64_t data, unsigned len, bool sse, bool sf)
{
	if (sse && len < 8) {
		uint64_t sign = 1ull << (8 * len - 1);

		data = (data ^ sign) - sign;
	}
	return sf ? data : (uint32_t)data;
}

/* Finish a pending access with the read data in @buf: write Rt, skip the instruction. */
static uint64_t a64_mmio_finish(mv_a64_vcpu *vcpu, const uint8_t *buf)
{
	a64_mmio_pending *p = &vcpu->mmio;
	uint64_t v = 0;

	p->pending = false;
	if (!p->is_write) {
		v = a64_mmio_extend(a64_le_load(buf, p->len), p->len, p->sign_extend, p->sf);
		a64_set_reg(vcpu, p->rt, v, true);
	}
	a64_skip_insn(vcpu);
	return v;
}

void mv_a64_vcpu_complete_mmio(mv_a64_vcpu *vcpu, uint64_t *value)
{
	uint64_t v = 0;

	if (vcpu->mmio.pending)
		v = a64_mmio_finish(vcpu, vcpu->exit.mmio.data);
	if (value)
		*value = v;
}

/* KVM_CAP_ARM_NISV_TO_USER: hand an access without syndrome to user space. */
static void a64_nisv_exit(mv_a64_vcpu *vcpu, const a64_abort *a, uint64_t ipa,
			  mv_a64_abort_event *ev)
{
	vcpu->exit.reason = HV_EXIT_ARM_NISV;
	vcpu->exit.arm_nisv.esr_iss = a->f->esr & A64_NISV_ISS_MASK;
	vcpu->exit.arm_nisv.fault_ipa = ipa;
	ev->action = MV_A64_ACT_NISV_EXIT;
}

/* The access as ESR_EL2.ISS describes it (ISV = 1). */
static void a64_mmio_decode(uint64_t esr, a64_mmio_pending *p)
{
	p->is_write = esr & MV_ESR_WNR;
	p->len = (uint8_t)(1u << ((esr >> MV_ESR_SAS_SHIFT) & 3u));
	p->sign_extend = esr & MV_ESR_SSE;
	p->rt = (uint8_t)((esr >> MV_ESR_SRT_SHIFT) & 0x1fu);
	p->sf = esr & MV_ESR_SF;
}

void a64_io_mem_abort(mv_a64_vcpu *vcpu, const a64_abort *a, uint64_t ipa, mv_a64_abort_event *ev)
{
	a64_mmio_pending *p = &vcpu->mmio;
	mv_iobus *bus = vcpu->vm->iobus;
	uint8_t buf[8] = { 0 };
	int r;

	if (!(a->f->esr & MV_ESR_ISV)) {
		if (vcpu->vm->nisv_to_user)
			a64_nisv_exit(vcpu, a, ipa, ev);
		else
			a64_abort_error(vcpu, a, ev, A64_INTERNAL_ERROR_EMULATION,
					"data abort outside memory at IPA 0x%" PRIx64
					" has no valid syndrome (ISV = 0) and NISV exits are off",
					ipa);
		return;
	}
	a64_mmio_decode(a->f->esr, p);
	p->pending = true;
	if (p->is_write) {
		a64_le_store(buf, p->len, a64_get_reg(vcpu, p->rt, true));
		r = mv_iobus_write(bus, ipa, p->len, buf);
	} else {
		r = mv_iobus_read(bus, ipa, p->len, buf);
	}
	if (r == 0) {
		a64_mmio_finish(vcpu, buf);
		ev->action = MV_A64_ACT_MMIO_KERNEL;
		return;
	}
	vcpu->exit.reason = HV_EXIT_MMIO;
	vcpu->exit.mmio.gpa = ipa;
	vcpu->exit.mmio.len = p->len;
	vcpu->exit.mmio.is_write = p->is_write;
	memcpy(vcpu->exit.mmio.data, buf, sizeof(buf));
	ev->action = MV_A64_ACT_MMIO_EXIT;
}
