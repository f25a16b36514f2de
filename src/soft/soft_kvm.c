/*
 * The soft VMs' shared part (see soft_kvm.h): the memslot update, the
 * vCPU registry and the TLB broadcast over it.
 */
#include "soft/soft_kvm.h"
#include "util/alloc.h"

#include <errno.h>
#include <string.h>

int soft_kvm_init(soft_kvm *c, const soft_kvm *parts)
{
	*c = *parts;
	pthread_mutex_init(&c->vcpus_lock, NULL);
	c->vcpus = mv_zalloc(c->alloc, c->max_vcpus * sizeof(*c->vcpus));
	return c->vcpus ? 0 : -ENOMEM;
}

void soft_kvm_destroy(soft_kvm *c)
{
	mv_free(c->alloc, c->vcpus);
	pthread_mutex_destroy(&c->vcpus_lock);
}

int soft_kvm_set_memslot(soft_kvm *c, const hv_memslot *m)
{
	int r;

	pthread_rwlock_wrlock(c->slots_lock);
	r = mv_memslots_set(c->slots, m);
	pthread_rwlock_unlock(c->slots_lock);
	return r;
}

static void soft_kvm_vcpu_release(soft_kvm *c, const soft_kvm_vcpu *ref)
{
	mv_dirty_ring_free(ref->ring);
	mv_tlb_free(ref->tlb);
	mv_free(c->alloc, ref->vcpu);
}

/* The vCPU's memory, TLB and ring into *@ref (vcpus_lock held: ring_entries cannot change). */
static int soft_kvm_vcpu_build(soft_kvm *c, unsigned id, size_t size, soft_kvm_vcpu *ref, mv_error *err)
{
	soft_kvm_vcpu v = { .vcpu = mv_zalloc(c->alloc, size) };
	int r;

	if (!v.vcpu)
		return mv_error_set(err, -ENOMEM, "out of memory for vCPU %u", id);
	r = mv_tlb_new(SOFT_VCPU_TLB_ENTRIES, c->alloc, &v.tlb);
	if (r) {
		soft_kvm_vcpu_release(c, &v);
		return mv_error_set(err, r, "out of memory for the TLB of vCPU %u", id);
	}
	if (c->ring_entries) {
		r = mv_dirty_ring_new(c->ring_entries, c->alloc, &v.ring);
		if (r) {
			soft_kvm_vcpu_release(c, &v);
			return mv_error_set(err, r, "cannot make the %u-entry dirty ring of vCPU %u: %s",
					    c->ring_entries, id,
					    r == -ENOMEM ? "out of memory" : "bad ring size");
		}
	}
	*ref = v;
	return 0;
}

int soft_kvm_vcpu_new(soft_kvm *c, unsigned id, size_t size, soft_kvm_vcpu *ref, mv_error *err)
{
	int r;

	if (id >= c->max_vcpus)
		return mv_error_set(err, -EINVAL, "vCPU id %u is not below the VM's limit of %u vCPUs", id,
				    c->max_vcpus);
	pthread_mutex_lock(&c->vcpus_lock);
	if (c->vcpus[id].vcpu)
		r = mv_error_set(err, -EEXIST, "vCPU %u already exists", id);
	else
		r = soft_kvm_vcpu_build(c, id, size, &c->vcpus[id], err);
	if (!r) {
		c->created_vcpus++;
		*ref = c->vcpus[id];
	}
	pthread_mutex_unlock(&c->vcpus_lock);
	return r;
}

void soft_kvm_vcpu_free(soft_kvm *c, unsigned id)
{
	soft_kvm_vcpu ref;

	pthread_rwlock_wrlock(c->slots_lock);
	pthread_mutex_lock(&c->vcpus_lock);
	ref = c->vcpus[id];
	memset(&c->vcpus[id], 0, sizeof(c->vcpus[id]));
	pthread_mutex_unlock(&c->vcpus_lock);
	pthread_rwlock_unlock(c->slots_lock);
	soft_kvm_vcpu_release(c, &ref);
}

void soft_kvm_flush_tlbs(soft_kvm *c, uint16_t tag, uint64_t start, uint64_t size)
{
	pthread_mutex_lock(&c->vcpus_lock);
	for (unsigned i = 0; i < c->max_vcpus; i++)
		if (c->vcpus[i].tlb)
			mv_tlb_flush_ipa(c->vcpus[i].tlb, tag, start, size);
	pthread_mutex_unlock(&c->vcpus_lock);
}
