/*
 * The program side of a soft vCPU (hv_soft.h): each guest access of a
 * program goes to the arch's access engine (soft_arch.access); an access
 * that leaves the guest suspends the program in soft_vcpu_yield until the
 * next hv_vcpu_run, which then finds it as KVM_RUN finds a vCPU after an
 * exit:
 *   - MMIO / port I/O: the access is finished with the data user space
 *     left in the exit record (an MMIO read's data is copied back to the
 *     arch vCPU's own record first; port data is shared in place);
 *   - anything else (dirty ring full, kick, internal error): nothing was
 *     done, so the access is performed again.
 */
#include "soft/hv_soft_internal.h"

#include <errno.h>
#include <string.h>

/* Suspend with exit @x (the arch's record, or NULL for a kick); false when cancelled. */
static bool suspend(soft_vcpu *v, const hv_exit *x)
{
	if (x)
		v->exit = *x;
	else
		v->exit.reason = HV_EXIT_INTR;   /* the union keeps a pending read's data */
	return soft_vcpu_yield(v);
}

/* KVM's completion on the next KVM_RUN: hand the caller's data to the arch vCPU. */
static void finish(soft_vcpu *v, hv_exit *arch_exit, uint64_t *value)
{
	if (arch_exit->reason == HV_EXIT_MMIO)
		memcpy(arch_exit->mmio.data, v->exit.mmio.data, sizeof(arch_exit->mmio.data));
	v->vm->arch->complete(v, value);
}

/* Perform @a until it is done, faults or fails; 0 with *value, or a negative errno. */
static int perform(soft_vcpu *v, const soft_access *a, uint64_t *value)
{
	soft_outcome o;
	int r;

	for (;;) {
		if (v->cancel)
			return -ECANCELED;
		if (__atomic_exchange_n(&v->kicked, 0, __ATOMIC_ACQ_REL)) {
			if (!suspend(v, NULL))
				return -ECANCELED;
			continue;
		}
		memset(&o, 0, sizeof(o));
		r = v->vm->arch->access(v, a, &o);
		if (r == -EAGAIN)
			continue;        /* nothing was done: enter the guest again */
		if (r)
			return r;
		switch (o.result) {
		case SOFT_DONE:
			*value = o.value;
			return 0;
		case SOFT_FAULT:
			v->fault = o.fault;
			return -EFAULT;
		case SOFT_EXIT:
			break;
		}
		if (!suspend(v, o.exit))
			return -ECANCELED;
		if (o.exit->reason == HV_EXIT_MMIO || o.exit->reason == HV_EXIT_IO) {
			finish(v, o.exit, value);
			return 0;
		}
	}
}

/* Sizes of an access: 1, 2, 4 or 8 bytes of memory, 1, 2 or 4 of a port. */
static bool size_ok(soft_op op, unsigned size)
{
	bool port = op == SOFT_PIO_IN || op == SOFT_PIO_OUT;

	return size == 1 || size == 2 || size == 4 || (size == 8 && !port);
}

/* One access of the program: -EINVAL for a bad size; *@read (if non-NULL) gets what it read. */
static int program_access(hv_soft_cpu *cpu, soft_op op, uint64_t addr, unsigned size,
			  uint64_t value, uint64_t *read)
{
	soft_access a = { .op = op, .addr = addr, .size = size, .value = value, .user = cpu->user };
	uint64_t v = 0;
	int r;

	if (!size_ok(op, size))
		return -EINVAL;
	r = perform(cpu, &a, &v);
	if (r == 0 && read)
		*read = v;
	return r;
}

int hv_soft_read(hv_soft_cpu *cpu, uint64_t gva, unsigned size, uint64_t *value)
{
	return program_access(cpu, SOFT_READ, gva, size, 0, value);
}

int hv_soft_write(hv_soft_cpu *cpu, uint64_t gva, unsigned size, uint64_t value)
{
	return program_access(cpu, SOFT_WRITE, gva, size, value, NULL);
}

int hv_soft_fetch(hv_soft_cpu *cpu, uint64_t gva, uint32_t *insn)
{
	uint64_t v;
	int r = program_access(cpu, SOFT_FETCH, gva, 4, 0, &v);

	if (r == 0 && insn)
		*insn = (uint32_t)v;
	return r;
}

int hv_soft_pio_in(hv_soft_cpu *cpu, uint16_t port, unsigned size, uint32_t *value)
{
	uint64_t v;
	int r = program_access(cpu, SOFT_PIO_IN, port, size, 0, &v);

	if (r == 0 && value)
		*value = (uint32_t)v;
	return r;
}

int hv_soft_pio_out(hv_soft_cpu *cpu, uint16_t port, unsigned size, uint32_t value)
{
	return program_access(cpu, SOFT_PIO_OUT, port, size, value, NULL);
}

void hv_soft_set_user(hv_soft_cpu *cpu, bool user)
{
	cpu->user = user;
}

uint32_t hv_soft_cpu_id(const hv_soft_cpu *cpu)
{
	return cpu->id;
}

void hv_soft_last_fault(const hv_soft_cpu *cpu, hv_soft_fault *f)
{
	*f = cpu->fault;
}
