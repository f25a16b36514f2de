/*
 * Kicking a vCPU out of KVM_RUN from any thread.
 *
 * A kick sets kvm_run->immediate_exit (KVM_RUN then returns EINTR at once
 * instead of entering the guest) and, if the vCPU is inside vcpu_run, sends
 * KVM_KICK_SIGNAL to its thread so a guest already running is interrupted
 * too (KVM leaves the guest with EINTR when a signal is pending).
 *
 * No lost kick: the kicker stores immediate_exit and then reads in_run; the
 * runner stores in_run and then reads immediate_exit (inside KVM_RUN); both
 * sides are sequentially consistent, so either the runner's KVM_RUN sees
 * immediate_exit, or the kicker sees in_run and signals. immediate_exit is
 * only cleared after a KVM_RUN returned EINTR, i.e. just before that run
 * reports HV_EXIT_INTR, so every kick is followed by an HV_EXIT_INTR.
 *
 * The signal handler does nothing: its only job is to make the KVM_RUN
 * ioctl return. It is installed once per process without SA_RESTART (the
 * one piece of global state of the backend: signal dispositions are per
 * process). A thread running vCPUs can see EINTR from its own blocking
 * calls when a kick races with the vCPU leaving run.
 */
#include "kvm/kvm_internal.h"

#include <signal.h>
#include <string.h>

/* The kick signal; docs/kvm.md tells VMM authors it is taken. */
#define KVM_KICK_SIGNAL SIGUSR1

static pthread_once_t kvm_kick_once = PTHREAD_ONCE_INIT;

static void kvm_kick_handler(int sig)
{
	(void)sig;
}

static void kvm_kick_install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = kvm_kick_handler;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0;    /* no SA_RESTART: KVM_RUN must return EINTR */
	sigaction(KVM_KICK_SIGNAL, &sa, NULL);
}

void kvm_kick_signal_init(void)
{
	pthread_once(&kvm_kick_once, kvm_kick_install);
}

void kvm_kick_enter(kvm_vcpu *v)
{
	pthread_mutex_lock(&v->kick_lock);
	v->thread = pthread_self();
	v->in_run = true;
	pthread_mutex_unlock(&v->kick_lock);
	/* Order "in_run = true" before KVM_RUN reads immediate_exit. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

void kvm_kick_leave(kvm_vcpu *v)
{
	pthread_mutex_lock(&v->kick_lock);
	v->in_run = false;
	pthread_mutex_unlock(&v->kick_lock);
}

void kvm_kick_consume(kvm_vcpu *v)
{
	__atomic_store_n(&v->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
}

void kvm_vcpu_kick(hv_vcpu *hvcpu)
{
	kvm_vcpu *v = kvm_vcpu_of(hvcpu);

	__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	pthread_mutex_lock(&v->kick_lock);
	if (v->in_run)
		pthread_kill(v->thread, KVM_KICK_SIGNAL);
	pthread_mutex_unlock(&v->kick_lock);
}
