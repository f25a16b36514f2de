/*
 * x86 soft vCPUs: creation (the registry, TLB and dirty ring are
 * soft_kvm.c's), the paging registers, kicks and the trace callback.
 */
#include "soft/x86/x86_internal.h"

int mv_x86_vcpu_new(mv_x86_vm *vm, unsigned id, mv_x86_vcpu **out, mv_error *err)
{
	soft_kvm_vcpu ref;
	mv_x86_vcpu *v;
	int r = soft_kvm_vcpu_new(&vm->kvm, id, sizeof(*v), &ref, err);

	if (r)
		return r;
	v = ref.vcpu;
	*v = (mv_x86_vcpu){ .vm = vm, .id = id, .tlb = ref.tlb, .ring = ref.ring,
			    .paging.maxphyaddr = vm->cfg.guest_maxphyaddr };
	*out = v;
	return 0;
}

void mv_x86_vcpu_free(mv_x86_vcpu *vcpu)
{
	if (vcpu)
		soft_kvm_vcpu_free(&vcpu->vm->kvm, vcpu->id);
}

/*
 * MOV to CR0/CR3/CR4 or WRMSR EFER: the TLB holds translations of the old
 * regime (and their rights under the old CR0.WP / CR4.SMEP / SMAP). A
 * guest MAXPHYADDR of 0 means the VM's.
 */
void mv_x86_vcpu_set_paging(mv_x86_vcpu *vcpu, const mv_x86_paging *p)
{
	vcpu->paging = *p;
	if (!p->maxphyaddr)
		vcpu->paging.maxphyaddr = vcpu->vm->cfg.guest_maxphyaddr;
	mv_tlb_flush_all(vcpu->tlb);
}

void mv_x86_vcpu_get_paging(const mv_x86_vcpu *vcpu, mv_x86_paging *p)
{
	*p = vcpu->paging;
}

void mv_x86_vcpu_kick(mv_x86_vcpu *vcpu)
{
	__atomic_store_n(&vcpu->kicked, 1, __ATOMIC_RELEASE);
}

void mv_x86_vcpu_set_trace(mv_x86_vcpu *vcpu, void (*fn)(void *arg, const mv_x86_fault_event *ev),
			   void *arg)
{
	vcpu->trace = fn;
	vcpu->trace_arg = arg;
}
