/*
 * The soft test guest's accesses and console (guests/console.c): guest
 * loads, stores and port I/O through the soft vCPU's access engine, lines
 * on debugcon under a spin lock, FAIL bookkeeping and isa-debug-exit.
 *
 * The guest prints a line with one `rep outsb`; a program has no string
 * I/O, so it makes one OUT per byte. The bytes reach debugcon in the same
 * order, so the console shows the same line; only exit counts can differ.
 */
#include "vmm/soft_guest_internal.h"

#include "memvirt/testdev_abi.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>

#define SG_LINE_MAX 256         /* the guest's line buffer (console.c struct buf) */
#define SG_VECTOR_PF 14         /* SDM Vol. 3A 6.15: page fault */

/*
 * @r from an access: a guest fault (#PF, #GP) goes to the guest's
 * exception handler (its line, then isa-debug-exit 0x7f); any other
 * failure (-ECANCELED: the vCPU is being destroyed; an access the engine
 * refused) leaves the program with that errno.
 */
static void sg_check(vmm_sg_cpu *c, int r)
{
	hv_soft_fault f;

	if (!r)
		return;
	if (r != -EFAULT) {
		c->error = r;
		longjmp(c->leave, 1);
	}
	hv_soft_last_fault(c->cpu, &f);
	/* A program has no instruction pointer: RIP reads 0; CR2 is #PF's address. */
	vmm_sg_say_unlocked(c, MVG_FMT_EXCEPTION, (uint64_t)f.vector, f.code, (uint64_t)0,
			    f.vector == SG_VECTOR_PF ? f.addr : 0);
	vmm_sg_exit(c, MVG_EXIT_EXCEPTION);
}

uint64_t vmm_sg_read(vmm_sg_cpu *c, uint64_t gpa, unsigned size)
{
	uint64_t v = 0;

	sg_check(c, hv_soft_read(c->cpu, gpa, size, &v));
	return v;
}

void vmm_sg_write(vmm_sg_cpu *c, uint64_t gpa, unsigned size, uint64_t v)
{
	sg_check(c, hv_soft_write(c->cpu, gpa, size, v));
}

uint32_t vmm_sg_in(vmm_sg_cpu *c, uint16_t port, unsigned size)
{
	uint32_t v = 0;

	sg_check(c, hv_soft_pio_in(c->cpu, port, size, &v));
	return v;
}

void vmm_sg_out(vmm_sg_cpu *c, uint16_t port, unsigned size, uint32_t v)
{
	sg_check(c, hv_soft_pio_out(c->cpu, port, size, v));
}

uint64_t vmm_sg_mmio_read(vmm_sg_cpu *c, uint64_t reg)
{
	return vmm_sg_read(c, MVT_MMIO_BASE + reg, 8);
}

void vmm_sg_mmio_write(vmm_sg_cpu *c, uint64_t reg, uint64_t v)
{
	vmm_sg_write(c, MVT_MMIO_BASE + reg, 8, v);
}

void vmm_sg_relax(vmm_sg_cpu *c)
{
	/* hvm_start_info's magic: RAM the guest has read already, never an exit */
	(void)vmm_sg_read(c, c->g->start_info, 4);
	sched_yield();
}

void vmm_sg_lock(vmm_sg_cpu *c, atomic_uint *l)
{
	while (atomic_exchange_explicit(l, 1, memory_order_acquire))
		while (atomic_load_explicit(l, memory_order_relaxed))
			vmm_sg_relax(c);
}

void vmm_sg_unlock(atomic_uint *l)
{
	atomic_store_explicit(l, 0, memory_order_release);
}

/* Format into @buf (SG_LINE_MAX + 1 bytes); the length, cut at SG_LINE_MAX as the guest cuts. */
static size_t sg_format(char *buf, size_t off, const char *fmt, va_list ap)
{
	int n = vsnprintf(buf + off, SG_LINE_MAX + 1 - off, fmt, ap);

	if (n < 0)
		return off;
	return off + (size_t)n > SG_LINE_MAX ? SG_LINE_MAX : off + (size_t)n;
}

static void sg_emit(vmm_sg_cpu *c, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		vmm_sg_out(c, MVT_DEBUGCON_PORT, 1, (uint8_t)s[i]);
}

void vmm_sg_say(vmm_sg_cpu *c, const char *fmt, ...)
{
	char buf[SG_LINE_MAX + 1];
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	n = sg_format(buf, 0, fmt, ap);
	va_end(ap);
	vmm_sg_lock(c, &c->g->console_lock);
	sg_emit(c, buf, n);
	vmm_sg_unlock(&c->g->console_lock);
}

void vmm_sg_say_unlocked(vmm_sg_cpu *c, const char *fmt, ...)
{
	char buf[SG_LINE_MAX + 1];
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	n = sg_format(buf, 0, fmt, ap);
	va_end(ap);
	sg_emit(c, buf, n);
}

void vmm_sg_fail(vmm_sg_cpu *c, const char *fmt, ...)
{
	char buf[SG_LINE_MAX + 1] = MVG_FAIL_PREFIX;
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	n = sg_format(buf, sizeof(MVG_FAIL_PREFIX) - 1, fmt, ap);
	va_end(ap);
	if (n < SG_LINE_MAX)
		buf[n++] = '\n';
	atomic_fetch_add_explicit(&c->g->failures, 1, memory_order_relaxed);
	vmm_sg_lock(c, &c->g->console_lock);
	sg_emit(c, buf, n);
	vmm_sg_unlock(&c->g->console_lock);
}

__attribute__((noreturn)) void vmm_sg_exit(vmm_sg_cpu *c, uint8_t value)
{
	vmm_sg_out(c, MVT_DEBUG_EXIT_PORT, 1, value);
	for (;;)
		vmm_sg_relax(c);        /* as the guest at CPL3: the VM is ending anyway */
}
