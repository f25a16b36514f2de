/*
 * x86 soft vCPUs: creation and the VM's registry (the INVEPT broadcast
 * reaches every registered TLB), with the vCPU's dirty ring when the VM
 * uses rings; the paging registers, kicks and the trace callback.
 */
#include "soft/x86/x86_internal.h"
#include "util/alloc.h"

#include <errno.h>

/* Entries of each vCPU's TLB. */
#define X86_VCPU_TLB_ENTRIES 256u

static void x86_vcpu_release(mv_x86_vcpu *v)
{
	mv_dirty_ring_free(v->ring);
	mv_tlb_free(v->tlb);
	mv_free(v->vm->alloc, v);
}

/* A vCPU with its TLB, and its ring when the VM uses dirty rings (vcpus_lock held). */
static int x86_vcpu_build(mv_x86_vm *vm, unsigned id, mv_x86_vcpu **out, mv_error *err)
{
	mv_x86_vcpu *v = mv_zalloc(vm->alloc, sizeof(*v));
	int r;

	if (!v)
		return mv_error_set(err, -ENOMEM, "out of memory for vCPU %u", id);
	v->vm = vm;
	v->id = id;
	v->paging.maxphyaddr = vm->cfg.guest_maxphyaddr;
	r = mv_tlb_new(X86_VCPU_TLB_ENTRIES, vm->alloc, &v->tlb);
	if (r) {
		x86_vcpu_release(v);
		return mv_error_set(err, r, "out of memory for the TLB of vCPU %u", id);
	}
	if (vm->ring_entries) {
		r = mv_dirty_ring_new(vm->ring_entries, vm->alloc, &v->ring);
		if (r) {
			x86_vcpu_release(v);
			return mv_error_set(err, r, "cannot make the %u-entry dirty ring of vCPU %u: %s",
					    vm->ring_entries, id,
					    r == -ENOMEM ? "out of memory" : "bad ring size");
		}
	}
	*out = v;
	return 0;
}

/* Built and counted under vcpus_lock: a dirty ring is enabled before (every vCPU has one) or never. */
int mv_x86_vcpu_new(mv_x86_vm *vm, unsigned id, mv_x86_vcpu **out, mv_error *err)
{
	int r;

	if (id >= vm->max_vcpus)
		return mv_error_set(err, -EINVAL, "vCPU id %u is not below the VM's limit of %u vCPUs", id,
				    vm->max_vcpus);
	pthread_mutex_lock(&vm->vcpus_lock);
	if (vm->vcpus[id])
		r = mv_error_set(err, -EEXIST, "vCPU %u already exists", id);
	else
		r = x86_vcpu_build(vm, id, &vm->vcpus[id], err);
	if (!r) {
		vm->created_vcpus++;
		*out = vm->vcpus[id];
	}
	pthread_mutex_unlock(&vm->vcpus_lock);
	return r;
}

/* slots_lock for writing: mv_x86_vm_dirty_rings_reset uses vCPUs under its read side. */
void mv_x86_vcpu_free(mv_x86_vcpu *vcpu)
{
	mv_x86_vm *vm;

	if (!vcpu)
		return;
	vm = vcpu->vm;
	pthread_rwlock_wrlock(&vm->slots_lock);
	pthread_mutex_lock(&vm->vcpus_lock);
	vm->vcpus[vcpu->id] = NULL;
	pthread_mutex_unlock(&vm->vcpus_lock);
	pthread_rwlock_unlock(&vm->slots_lock);
	x86_vcpu_release(vcpu);
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
