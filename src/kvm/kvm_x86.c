/*
 * x86 vCPU state: general and segment registers, CPUID and KVM_TRANSLATE,
 * converted field by field between the interface's structures and KVM's.
 * The segment layout is the same on both sides (limit is the byte limit
 * after granularity scaling, as in struct kvm_segment).
 */
#include "kvm/kvm_internal.h"
#include "util/alloc.h"

#include <errno.h>

/* KVM_GET_SUPPORTED_CPUID never answers more entries than this (KVM_MAX_CPUID_ENTRIES). */
#define KVM_CPUID_MAX_ENTRIES 256

int kvm_get_regs(hv_vcpu *hvcpu, hv_x86_regs *r)
{
	struct kvm_regs k;
	long e = kvm_ioctl(kvm_vcpu_of(hvcpu)->fd, KVM_GET_REGS, &k);

	if (e < 0)
		return (int)e;
	*r = (hv_x86_regs){
		.rax = k.rax, .rbx = k.rbx, .rcx = k.rcx, .rdx = k.rdx,
		.rsi = k.rsi, .rdi = k.rdi, .rsp = k.rsp, .rbp = k.rbp,
		.r8 = k.r8, .r9 = k.r9, .r10 = k.r10, .r11 = k.r11,
		.r12 = k.r12, .r13 = k.r13, .r14 = k.r14, .r15 = k.r15,
		.rip = k.rip, .rflags = k.rflags,
	};
	return 0;
}

int kvm_set_regs(hv_vcpu *hvcpu, const hv_x86_regs *r)
{
	struct kvm_regs k = {
		.rax = r->rax, .rbx = r->rbx, .rcx = r->rcx, .rdx = r->rdx,
		.rsi = r->rsi, .rdi = r->rdi, .rsp = r->rsp, .rbp = r->rbp,
		.r8 = r->r8, .r9 = r->r9, .r10 = r->r10, .r11 = r->r11,
		.r12 = r->r12, .r13 = r->r13, .r14 = r->r14, .r15 = r->r15,
		.rip = r->rip, .rflags = r->rflags,
	};

	return (int)kvm_ioctl(kvm_vcpu_of(hvcpu)->fd, KVM_SET_REGS, &k);
}

static void kvm_seg_from(const struct kvm_segment *k, hv_x86_segment *s)
{
	*s = (hv_x86_segment){
		.base = k->base, .limit = k->limit, .selector = k->selector,
		.type = k->type, .present = k->present, .dpl = k->dpl, .db = k->db,
		.s = k->s, .l = k->l, .g = k->g, .avl = k->avl, .unusable = k->unusable,
	};
}

static void kvm_seg_to(const hv_x86_segment *s, struct kvm_segment *k)
{
	*k = (struct kvm_segment){
		.base = s->base, .limit = s->limit, .selector = s->selector,
		.type = s->type, .present = s->present, .dpl = s->dpl, .db = s->db,
		.s = s->s, .l = s->l, .g = s->g, .avl = s->avl, .unusable = s->unusable,
	};
}

int kvm_get_sregs(hv_vcpu *hvcpu, hv_x86_sregs *s)
{
	struct kvm_sregs k;
	long e = kvm_ioctl(kvm_vcpu_of(hvcpu)->fd, KVM_GET_SREGS, &k);

	if (e < 0)
		return (int)e;
	kvm_seg_from(&k.cs, &s->cs);
	kvm_seg_from(&k.ds, &s->ds);
	kvm_seg_from(&k.es, &s->es);
	kvm_seg_from(&k.fs, &s->fs);
	kvm_seg_from(&k.gs, &s->gs);
	kvm_seg_from(&k.ss, &s->ss);
	kvm_seg_from(&k.tr, &s->tr);
	kvm_seg_from(&k.ldt, &s->ldt);
	s->gdt = (hv_x86_dtable){ .base = k.gdt.base, .limit = k.gdt.limit };
	s->idt = (hv_x86_dtable){ .base = k.idt.base, .limit = k.idt.limit };
	s->cr0 = k.cr0; s->cr2 = k.cr2; s->cr3 = k.cr3; s->cr4 = k.cr4; s->cr8 = k.cr8;
	s->efer = k.efer;
	s->apic_base = k.apic_base;
	return 0;
}

int kvm_set_sregs(hv_vcpu *hvcpu, const hv_x86_sregs *s)
{
	kvm_vcpu *v = kvm_vcpu_of(hvcpu);
	struct kvm_sregs k;
	/* Read first: keeps the pending-interrupt bitmap the interface does not model. */
	long e = kvm_ioctl(v->fd, KVM_GET_SREGS, &k);

	if (e < 0)
		return (int)e;
	kvm_seg_to(&s->cs, &k.cs);
	kvm_seg_to(&s->ds, &k.ds);
	kvm_seg_to(&s->es, &k.es);
	kvm_seg_to(&s->fs, &k.fs);
	kvm_seg_to(&s->gs, &k.gs);
	kvm_seg_to(&s->ss, &k.ss);
	kvm_seg_to(&s->tr, &k.tr);
	kvm_seg_to(&s->ldt, &k.ldt);
	k.gdt = (struct kvm_dtable){ .base = s->gdt.base, .limit = s->gdt.limit };
	k.idt = (struct kvm_dtable){ .base = s->idt.base, .limit = s->idt.limit };
	k.cr0 = s->cr0; k.cr2 = s->cr2; k.cr3 = s->cr3; k.cr4 = s->cr4; k.cr8 = s->cr8;
	k.efer = s->efer;
	k.apic_base = s->apic_base;
	return (int)kvm_ioctl(v->fd, KVM_SET_SREGS, &k);
}

/* A struct kvm_cpuid2 with room for @n entries, from @a. */
static struct kvm_cpuid2 *kvm_cpuid_alloc(const mv_allocator *a, size_t n)
{
	struct kvm_cpuid2 *c = mv_zalloc(a, sizeof(*c) + n * sizeof(c->entries[0]));

	if (c)
		c->nent = (uint32_t)n;
	return c;
}

int kvm_supported_cpuid(hv_vm *hvm, hv_x86_cpuid *out, size_t max)
{
	kvm_vm *vm = kvm_vm_of(hvm);
	size_t room = max < KVM_CPUID_MAX_ENTRIES ? max : KVM_CPUID_MAX_ENTRIES;
	struct kvm_cpuid2 *c;
	long r;

	if (room == 0)
		return -E2BIG;
	c = kvm_cpuid_alloc(vm->alloc, room);
	if (!c)
		return -ENOMEM;
	/* A system ioctl: asked of /dev/kvm, not of the VM. */
	r = kvm_ioctl(vm->sys_fd, KVM_GET_SUPPORTED_CPUID, c);
	for (uint32_t i = 0; r == 0 && i < c->nent; i++) {
		const struct kvm_cpuid_entry2 *e = &c->entries[i];

		out[i] = (hv_x86_cpuid){
			.function = e->function, .index = e->index,
			.flags = (e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) ?
				 HV_CPUID_INDEX_SIGNIFICANT : 0,
			.eax = e->eax, .ebx = e->ebx, .ecx = e->ecx, .edx = e->edx,
		};
	}
	if (r == 0)
		r = c->nent;
	mv_free(vm->alloc, c);
	return (int)r;
}

int kvm_set_cpuid(hv_vcpu *hvcpu, const hv_x86_cpuid *entries, size_t n)
{
	kvm_vcpu *v = kvm_vcpu_of(hvcpu);
	const mv_allocator *a = kvm_vcpu_vm(v)->alloc;
	struct kvm_cpuid2 *c = kvm_cpuid_alloc(a, n);
	long r;

	if (!c)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const hv_x86_cpuid *e = &entries[i];

		c->entries[i] = (struct kvm_cpuid_entry2){
			.function = e->function, .index = e->index,
			.flags = (e->flags & HV_CPUID_INDEX_SIGNIFICANT) ?
				 KVM_CPUID_FLAG_SIGNIFCANT_INDEX : 0,
			.eax = e->eax, .ebx = e->ebx, .ecx = e->ecx, .edx = e->edx,
		};
	}
	r = kvm_ioctl(v->fd, KVM_SET_CPUID2, c);
	mv_free(a, c);
	return (int)r;
}

int kvm_translate(hv_vcpu *hvcpu, uint64_t gva, uint64_t *gpa)
{
	struct kvm_translation t = { .linear_address = gva };
	long r = kvm_ioctl(kvm_vcpu_of(hvcpu)->fd, KVM_TRANSLATE, &t);

	if (r < 0)
		return (int)r;
	if (!t.valid)
		return -EFAULT;
	*gpa = t.physical_address;
	return 0;
}
