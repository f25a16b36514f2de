/*
 * Soft vCPUs: creation, hv_vcpu_run, kicks, and the handoff with the
 * program thread.
 *
 * A vCPU's program (hv_soft.h) runs on a thread of its own, but only ever
 * while hv_vcpu_run waits for it: @turn says who may run, and each side
 * hands it over under @lock and waits on @cond until it comes back. So the
 * program behaves as if it ran on the caller's thread, and an access that
 * leaves the guest simply waits inside the program (soft_vcpu_yield) for
 * the next run, which is KVM_RUN's "complete the access, then resume".
 *
 * Kicks: a flag. hv_vcpu_run consumes it before resuming the program (a
 * kick outside run makes the next run return at once) and the program
 * consumes it before each access (a kick during run ends it at the next
 * access); either way the run returns HV_EXIT_INTR and the program keeps
 * its place. A program that computes without accessing guest memory is not
 * interrupted.
 */
#include "soft/hv_soft_internal.h"
#include "util/alloc.h"

#include <errno.h>
#include <string.h>

int soft_vcpu_create(hv_vm *hvm, uint32_t id, hv_vcpu **out, mv_error *err)
{
	soft_vm *vm = soft_vm_of(hvm);
	soft_vcpu *v = mv_zalloc(vm->alloc, sizeof(*v));
	int r;

	if (!v)
		return mv_error_set(err, -ENOMEM, "out of memory creating vCPU %u", id);
	v->base.vm = hvm;   /* hv.c fills it too, after us */
	v->vm = vm;
	v->id = id;
	v->user = true;
	pthread_mutex_init(&v->lock, NULL);
	pthread_cond_init(&v->cond, NULL);
	/* Under the VM lock: hv_enable_dirty_ring must see no vCPU, or this one with its ring. */
	pthread_mutex_lock(&vm->lock);
	r = mv_grow(vm->alloc, (void **)&vm->vcpus, &vm->cap_vcpus, vm->nr_vcpus + 1,
		    sizeof(vm->vcpus[0]));
	if (r)
		mv_error_set(err, r, "out of memory creating vCPU %u", id);
	else
		r = vm->arch->vcpu_new(v, err);
	if (r == 0)
		vm->vcpus[vm->nr_vcpus++] = v;
	pthread_mutex_unlock(&vm->lock);
	if (r) {
		pthread_cond_destroy(&v->cond);
		pthread_mutex_destroy(&v->lock);
		mv_free(vm->alloc, v);
		return r;
	}
	*out = &v->base;
	return 0;
}

/*
 * End the program: a suspended one is resumed with @cancel set, so its
 * pending access (and every later one) returns -ECANCELED and it must
 * return; then its thread is joined.
 */
static void program_end(soft_vcpu *v)
{
	bool join;

	pthread_mutex_lock(&v->lock);
	join = v->started;
	if (v->started && !v->finished) {
		v->cancel = true;
		v->turn = SOFT_TURN_PROGRAM;
		pthread_cond_broadcast(&v->cond);
	}
	v->started = false;
	v->finished = true;
	pthread_mutex_unlock(&v->lock);
	if (join)
		pthread_join(v->thread, NULL);
}

/* As KVM, the vCPU itself lives until its VM: only the program ends here. */
void soft_vcpu_destroy(hv_vcpu *vcpu)
{
	program_end(soft_vcpu_of(vcpu));
}

void soft_vcpu_free(soft_vcpu *v)
{
	const mv_allocator *a = v->vm->alloc;

	program_end(v);
	v->vm->arch->vcpu_free(v);
	pthread_cond_destroy(&v->cond);
	pthread_mutex_destroy(&v->lock);
	mv_free(a, v);
}

/* ------------------------------------------------------------------ */
/* The handoff                                                          */

/* Give the turn to the other side and wait until it comes back. Lock held. */
static void hand_over(soft_vcpu *v, soft_turn to)
{
	v->turn = to;
	pthread_cond_broadcast(&v->cond);
	while (v->turn == to)
		pthread_cond_wait(&v->cond, &v->lock);
}

static void *program_main(void *arg)
{
	soft_vcpu *v = arg;
	int ret = v->fn(v, v->arg);

	/* A guest that halts with interrupts off: HLT now and for every later run. */
	pthread_mutex_lock(&v->lock);
	v->result = ret;
	v->finished = true;
	v->exit.reason = HV_EXIT_HLT;
	v->turn = SOFT_TURN_CALLER;
	pthread_cond_broadcast(&v->cond);
	pthread_mutex_unlock(&v->lock);
	return NULL;
}

bool soft_vcpu_yield(soft_vcpu *v)
{
	bool go;

	pthread_mutex_lock(&v->lock);
	hand_over(v, SOFT_TURN_CALLER);
	go = !v->cancel;
	pthread_mutex_unlock(&v->lock);
	return go;
}

/* Start the program thread with the turn; lock held. */
static int program_start(soft_vcpu *v)
{
	int e;

	v->turn = SOFT_TURN_PROGRAM;
	e = pthread_create(&v->thread, NULL, program_main, v);
	if (e) {
		v->turn = SOFT_TURN_CALLER;
		return -e;
	}
	v->started = true;
	while (v->turn == SOFT_TURN_PROGRAM)
		pthread_cond_wait(&v->cond, &v->lock);
	return 0;
}

int soft_vcpu_run(hv_vcpu *vcpu, hv_exit **exit)
{
	soft_vcpu *v = soft_vcpu_of(vcpu);
	int r = 0;

	*exit = &v->exit;
	/* KVM's immediate_exit: the exit union (a pending read's data) stays as it was. */
	if (__atomic_exchange_n(&v->kicked, 0, __ATOMIC_ACQ_REL)) {
		v->exit.reason = HV_EXIT_INTR;
		return 0;
	}
	pthread_mutex_lock(&v->lock);
	if (v->finished || !v->fn)
		v->exit.reason = HV_EXIT_HLT;
	else if (!v->started)
		r = program_start(v);
	else
		hand_over(v, SOFT_TURN_PROGRAM);
	pthread_mutex_unlock(&v->lock);
	return r;
}

void soft_vcpu_kick(hv_vcpu *vcpu)
{
	__atomic_store_n(&soft_vcpu_of(vcpu)->kicked, 1, __ATOMIC_RELEASE);
}

int soft_vcpu_dirty_ring_harvest(hv_vcpu *vcpu, void (*fn)(void *, const hv_dirty_gfn *),
				 void *opaque)
{
	soft_vcpu *v = soft_vcpu_of(vcpu);

	/* As the kvm backend: a VM without a ring has nothing to harvest. */
	if (!__atomic_load_n(&v->vm->ring_entries, __ATOMIC_ACQUIRE))
		return -EINVAL;
	return v->vm->arch->dirty_ring_harvest(v, fn, opaque);
}

/* ------------------------------------------------------------------ */
/* Public calls of hv_soft.h                                            */

int hv_soft_vcpu_set_program(hv_vcpu *vcpu, hv_soft_program_fn fn, void *arg)
{
	soft_vcpu *v;
	int r = 0;

	if (!vcpu || !fn || !hv_vm_is_soft(vcpu->vm))
		return -EINVAL;
	v = soft_vcpu_of(vcpu);
	pthread_mutex_lock(&v->lock);
	if (v->started || v->finished)
		r = -EINVAL;
	else {
		v->fn = fn;
		v->arg = arg;
	}
	pthread_mutex_unlock(&v->lock);
	return r;
}

bool hv_soft_vcpu_program_done(hv_vcpu *vcpu, int *ret)
{
	soft_vcpu *v;
	bool done;

	if (!vcpu || !hv_vm_is_soft(vcpu->vm))
		return false;
	v = soft_vcpu_of(vcpu);
	pthread_mutex_lock(&v->lock);
	done = v->finished && v->fn;
	if (done && ret)
		*ret = v->result;
	pthread_mutex_unlock(&v->lock);
	return done;
}
