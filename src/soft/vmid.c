/*
 * The VMID allocator, after KVM's arch/arm64/kvm/vmid.c.
 *
 * An id is "generation << bits | number". Numbers are handed out from a
 * bitmap and never returned within a generation; when the bitmap is full
 * the generation rolls over: the bitmap is cleared except for the numbers
 * that CPUs are running with (kept as "reserved" so a CPU in the guest
 * keeps a valid number), and every VM re-validates its id on its next
 * entry, keeping its number when nobody else took it.
 *
 * Fast path (no lock): the VM's id is of the current generation, so the
 * CPU only publishes it as active with a compare-and-swap; the swap fails
 * when a rollover has just zeroed the CPU's slot, which sends the CPU to
 * the slow path. Slow path and rollover run under one mutex.
 *
 * Per-CPU "active" value ACTIVE_INVALID (generation 1, number 0) marks a
 * CPU that left the guest: it is non-zero, so the fast path still works,
 * and on a rollover it reserves number 0, which is never handed out.
 */
#include "memvirt/soft_tlb.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>

#include "util/alloc.h"

#define WORD_BITS (sizeof(unsigned long) * CHAR_BIT)

struct mv_vmid_alloc {
	const mv_allocator *alloc;
	unsigned bits;
	unsigned nr_cpus;
	uint64_t generation;       /* atomic: generation << bits */
	pthread_mutex_t lock;      /* slow path: everything below */
	unsigned long *map;        /* numbers taken in this generation */
	uint64_t next_number;      /* where the next search starts */
	uint64_t *active;          /* atomic, per CPU: id in use, 0 = cleared by rollover */
	uint64_t *reserved;        /* per CPU: id kept by the last rollover */
};

static uint64_t first_version(const mv_vmid_alloc *va)
{
	return 1ull << va->bits;
}

static uint64_t number_mask(const mv_vmid_alloc *va)
{
	return first_version(va) - 1;
}

#define ACTIVE_INVALID(va) first_version(va)

static bool generation_current(const mv_vmid_alloc *va, uint64_t id)
{
	return (id >> va->bits) == (__atomic_load_n(&va->generation, __ATOMIC_SEQ_CST) >> va->bits);
}

static bool map_test_and_set(mv_vmid_alloc *va, uint64_t n)
{
	unsigned long bit = 1ul << (n % WORD_BITS);
	bool was = va->map[n / WORD_BITS] & bit;

	va->map[n / WORD_BITS] |= bit;
	return was;
}

/* First free number at or after @from; 0 when there is none (0 is never free). */
static uint64_t map_find_free(const mv_vmid_alloc *va, uint64_t from)
{
	for (uint64_t n = from; n <= number_mask(va); n++) {
		if (!(va->map[n / WORD_BITS] & (1ul << (n % WORD_BITS))))
			return n;
	}
	return 0;
}

int mv_vmid_alloc_new(unsigned vmid_bits, unsigned nr_cpus, const mv_allocator *alloc,
		      mv_vmid_alloc **out)
{
	mv_vmid_alloc *va;
	size_t words;

	*out = NULL;
	/*
	 * After a rollover every CPU may hold a reserved number and the CPU
	 * rolling over still needs one: more usable numbers than CPUs.
	 */
	if (vmid_bits < 2 || vmid_bits > 16 || nr_cpus == 0 || nr_cpus >= (1u << vmid_bits) - 1)
		return -EINVAL;
	va = mv_zalloc(alloc, sizeof(*va));
	if (!va)
		return -ENOMEM;
	pthread_mutex_init(&va->lock, NULL);
	va->alloc = alloc;
	va->bits = vmid_bits;
	va->nr_cpus = nr_cpus;
	va->generation = first_version(va);
	va->next_number = 1;
	words = ((size_t)1 << vmid_bits) / WORD_BITS + 1;
	va->map = mv_zalloc(alloc, words * sizeof(*va->map));
	va->active = mv_zalloc(alloc, nr_cpus * sizeof(*va->active));
	va->reserved = mv_zalloc(alloc, nr_cpus * sizeof(*va->reserved));
	if (!va->map || !va->active || !va->reserved) {
		mv_vmid_alloc_free(va);
		return -ENOMEM;
	}
	map_test_and_set(va, 0);
	*out = va;
	return 0;
}

void mv_vmid_alloc_free(mv_vmid_alloc *va)
{
	if (!va)
		return;
	pthread_mutex_destroy(&va->lock);
	mv_free(va->alloc, va->map);
	mv_free(va->alloc, va->active);
	mv_free(va->alloc, va->reserved);
	mv_free(va->alloc, va);
}

/*
 * Under the lock, after the generation was bumped: start a fresh bitmap
 * holding only the numbers CPUs still run with (their active id, or the
 * id they kept at the previous rollover if they have not entered since).
 */
static void rollover_locked(mv_vmid_alloc *va)
{
	size_t words = ((size_t)1 << va->bits) / WORD_BITS + 1;

	for (size_t i = 0; i < words; i++)
		va->map[i] = 0;
	map_test_and_set(va, 0);
	for (unsigned cpu = 0; cpu < va->nr_cpus; cpu++) {
		uint64_t id = __atomic_exchange_n(&va->active[cpu], 0, __ATOMIC_SEQ_CST);

		if (id == 0)
			id = va->reserved[cpu];
		map_test_and_set(va, id & number_mask(va));
		va->reserved[cpu] = id;
	}
}

/* Is @id reserved by some CPU? Then every such reservation becomes @new_id. */
static bool take_reserved_locked(mv_vmid_alloc *va, uint64_t id, uint64_t new_id)
{
	bool hit = false;

	for (unsigned cpu = 0; cpu < va->nr_cpus; cpu++) {
		if (va->reserved[cpu] == id) {
			va->reserved[cpu] = new_id;
			hit = true;
		}
	}
	return hit;
}

/* Under the lock: give @vmid an id of the current generation. True when it rolled over. */
static bool new_id_locked(mv_vmid_alloc *va, mv_vmid *vmid)
{
	uint64_t id = __atomic_load_n(&vmid->id, __ATOMIC_SEQ_CST);
	uint64_t gen = __atomic_load_n(&va->generation, __ATOMIC_SEQ_CST);
	uint64_t number;
	bool rolled = false;

	if (id != 0) {
		uint64_t same = gen | (id & number_mask(va));

		/* Keep the number: reserved for it at the rollover, or still free. */
		if (take_reserved_locked(va, id, same) ||
		    !map_test_and_set(va, id & number_mask(va))) {
			__atomic_store_n(&vmid->id, same, __ATOMIC_SEQ_CST);
			return false;
		}
	}
	number = map_find_free(va, va->next_number);
	if (number == 0) {
		gen = __atomic_add_fetch(&va->generation, first_version(va), __ATOMIC_SEQ_CST);
		rollover_locked(va);
		/* More numbers than CPUs: one is free now. */
		number = map_find_free(va, 1);
		rolled = true;
	}
	map_test_and_set(va, number);
	va->next_number = number;
	__atomic_store_n(&vmid->id, gen | number, __ATOMIC_SEQ_CST);
	return rolled;
}

bool mv_vmid_update(mv_vmid_alloc *va, mv_vmid *vmid, unsigned cpu)
{
	uint64_t id = __atomic_load_n(&vmid->id, __ATOMIC_SEQ_CST);
	uint64_t *active = cpu < va->nr_cpus ? &va->active[cpu] : NULL;
	uint64_t old;
	bool rolled = false;

	if (active) {
		old = __atomic_load_n(active, __ATOMIC_SEQ_CST);
		/* Fails when a rollover zeroed our slot since: then take the lock. */
		if (old != 0 && generation_current(va, id) &&
		    __atomic_compare_exchange_n(active, &old, id, false, __ATOMIC_SEQ_CST,
						__ATOMIC_SEQ_CST))
			return false;
	}
	pthread_mutex_lock(&va->lock);
	if (!generation_current(va, __atomic_load_n(&vmid->id, __ATOMIC_SEQ_CST)))
		rolled = new_id_locked(va, vmid);
	if (active)
		__atomic_store_n(active, __atomic_load_n(&vmid->id, __ATOMIC_SEQ_CST),
				 __ATOMIC_SEQ_CST);
	pthread_mutex_unlock(&va->lock);
	return rolled;
}

void mv_vmid_clear_active(mv_vmid_alloc *va, unsigned cpu)
{
	if (cpu < va->nr_cpus)
		__atomic_store_n(&va->active[cpu], ACTIVE_INVALID(va), __ATOMIC_SEQ_CST);
}

uint16_t mv_vmid_value(const mv_vmid_alloc *va, const mv_vmid *vmid)
{
	return (uint16_t)(__atomic_load_n(&vmid->id, __ATOMIC_SEQ_CST) & number_mask(va));
}

uint64_t mv_vmid_generation(const mv_vmid_alloc *va)
{
	return __atomic_load_n(&va->generation, __ATOMIC_SEQ_CST) >> va->bits;
}

unsigned mv_vmid_bits(const mv_vmid_alloc *va)
{
	return va->bits;
}
