/*
 * RCU glue over liburcu's membarrier flavour. Threads register lazily on
 * first use and unregister when they exit, so callers cannot forget.
 */
#include "memory/internal.h"

#include <pthread.h>

static pthread_key_t rcu_key;
static pthread_once_t rcu_key_once = PTHREAD_ONCE_INIT;
static __thread bool rcu_registered;

static void rcu_thread_exit(void *unused)
{
	(void)unused;
	if (rcu_registered) {
		urcu_memb_unregister_thread();
		rcu_registered = false;
	}
}

static void rcu_make_key(void)
{
	pthread_key_create(&rcu_key, rcu_thread_exit);
}

void mv_rcu_register_thread(void)
{
	if (rcu_registered)
		return;
	pthread_once(&rcu_key_once, rcu_make_key);
	urcu_memb_register_thread();
	rcu_registered = true;
	/* A non-NULL value makes the destructor run at thread exit. */
	pthread_setspecific(rcu_key, &rcu_registered);
}

void mv_rcu_unregister_thread(void)
{
	rcu_thread_exit(NULL);
}

void mv_rcu_read_lock(void)
{
	mv_rcu_register_thread();
	urcu_memb_read_lock();
}

void mv_rcu_read_unlock(void)
{
	urcu_memb_read_unlock();
}
