/*
 * The pool of host table pages behind the software stage-2 / EPT tables
 * (Linux's kvm_pgtable_mm_ops over the page allocator): aligned zeroed
 * blocks with a reference count, reached by any address inside them.
 *
 * A block is one allocation through the pool's mv_allocator: its header,
 * then padding up to the alignment, then the block. A hash table (open
 * addressing, linear probing) maps every 4 KiB unit of every block to the
 * block header, so get_page / put_page on an entry find its page in one
 * probe sequence. The table is guarded by a rwlock: lookups take it for
 * reading and change counts atomically; allocation and freeing take it for
 * writing.
 */
#include "memvirt/soft_pgtable.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "util/alloc.h"

#define UNIT_SHIFT 12                       /* the hash key unit: 4 KiB */
#define UNIT_SIZE ((uintptr_t)1 << UNIT_SHIFT)
#define MIN_SLOT_BITS 6                     /* 64 slots at first */

typedef struct pool_block {
	uintptr_t va;           /* the aligned block */
	size_t size;
	int refs;               /* __atomic */
} pool_block;

typedef struct pool_slot {
	uintptr_t key;          /* va >> UNIT_SHIFT of one unit; 0 = empty */
	pool_block *b;
} pool_slot;

struct mv_pgt_pool {
	const mv_allocator *alloc;
	pthread_rwlock_t lock;
	pool_slot *slots;
	size_t cap;             /* 2^cap_bits slots; at most half full */
	unsigned cap_bits;
	size_t used;
	size_t live_units;      /* __atomic */
};

/* Fibonacci hashing: the top bits of key * 2^64/phi pick the slot. */
static size_t slot_of(const mv_pgt_pool *pool, uintptr_t key)
{
	return (size_t)(((uint64_t)key * 0x9e3779b97f4a7c15ull) >> (64 - pool->cap_bits));
}

static pool_block *lookup_locked(const mv_pgt_pool *pool, const void *va)
{
	uintptr_t key = (uintptr_t)va >> UNIT_SHIFT;
	size_t i;

	if (!pool->cap)
		return NULL;
	for (i = slot_of(pool, key); pool->slots[i].key; i = (i + 1) & (pool->cap - 1))
		if (pool->slots[i].key == key)
			return pool->slots[i].b;
	return NULL;
}

static void insert_slot(mv_pgt_pool *pool, uintptr_t key, pool_block *b)
{
	size_t i = slot_of(pool, key);

	while (pool->slots[i].key)
		i = (i + 1) & (pool->cap - 1);
	pool->slots[i].key = key;
	pool->slots[i].b = b;
}

/* Make room for @extra more keys (load at most 1/2). Returns false on no memory. */
static bool reserve_locked(mv_pgt_pool *pool, size_t extra)
{
	size_t need = (pool->used + extra) * 2, ocap = pool->cap;
	unsigned bits = pool->cap ? pool->cap_bits : MIN_SLOT_BITS;
	pool_slot *old = pool->slots, *slots;

	if (need <= pool->cap)
		return true;
	while (((size_t)1 << bits) < need)
		bits++;
	slots = mv_zalloc(pool->alloc, ((size_t)1 << bits) * sizeof(*slots));
	if (!slots)
		return false;
	pool->slots = slots;
	pool->cap = (size_t)1 << bits;
	pool->cap_bits = bits;
	for (size_t i = 0; i < ocap; i++)
		if (old[i].key)
			insert_slot(pool, old[i].key, old[i].b);
	mv_free(pool->alloc, old);
	return true;
}

/* Remove one key, shifting later members of its probe run back (no tombstones). */
static void remove_key_locked(mv_pgt_pool *pool, uintptr_t key)
{
	size_t mask = pool->cap - 1, i = slot_of(pool, key), j, home;

	while (pool->slots[i].key != key)
		i = (i + 1) & mask;
	for (j = (i + 1) & mask; pool->slots[j].key; j = (j + 1) & mask) {
		home = slot_of(pool, pool->slots[j].key);
		/* Move j into the hole at i unless its home lies cyclically in (i, j]. */
		if (((j - home) & mask) >= ((j - i) & mask)) {
			pool->slots[i] = pool->slots[j];
			i = j;
		}
	}
	pool->slots[i].key = 0;
	pool->slots[i].b = NULL;
	pool->used--;
}

static void *block_alloc(mv_pgt_pool *pool, size_t size, size_t align)
{
	size_t total = sizeof(pool_block) + align - 1 + size;
	uintptr_t va;
	pool_block *b;

	/* Not zeroed: only the block itself is, so untouched padding stays unbacked. */
	b = mv_realloc(pool->alloc, NULL, total);
	if (!b)
		return NULL;
	va = ((uintptr_t)(b + 1) + align - 1) & ~(uintptr_t)(align - 1);
	memset((void *)va, 0, size);
	b->va = va;
	b->size = size;
	b->refs = 1;

	pthread_rwlock_wrlock(&pool->lock);
	if (!reserve_locked(pool, size >> UNIT_SHIFT)) {
		pthread_rwlock_unlock(&pool->lock);
		mv_free(pool->alloc, b);
		return NULL;
	}
	for (uintptr_t u = va; u < va + size; u += UNIT_SIZE)
		insert_slot(pool, u >> UNIT_SHIFT, b);
	pool->used += size >> UNIT_SHIFT;
	pthread_rwlock_unlock(&pool->lock);
	__atomic_add_fetch(&pool->live_units, size >> UNIT_SHIFT, __ATOMIC_RELAXED);
	return (void *)va;
}

static void block_free_locked(mv_pgt_pool *pool, pool_block *b)
{
	for (uintptr_t u = b->va; u < b->va + b->size; u += UNIT_SIZE)
		remove_key_locked(pool, u >> UNIT_SHIFT);
	__atomic_sub_fetch(&pool->live_units, b->size >> UNIT_SHIFT, __ATOMIC_RELAXED);
	mv_free(pool->alloc, b);
}

static bool size_ok(size_t size)
{
	return size >= UNIT_SIZE && !(size & (UNIT_SIZE - 1));
}

static void *pool_zalloc_page(void *arg, size_t granule)
{
	if (!size_ok(granule) || (granule & (granule - 1)))
		return NULL;
	return block_alloc(arg, granule, granule);
}

static void *pool_zalloc_pages_exact(void *arg, size_t size)
{
	if (!size_ok(size))
		return NULL;
	return block_alloc(arg, size, size & -size);
}

static void pool_free_pages_exact(void *arg, void *va, size_t size)
{
	mv_pgt_pool *pool = arg;
	pool_block *b;

	(void)size;
	pthread_rwlock_wrlock(&pool->lock);
	b = lookup_locked(pool, va);
	if (b)
		block_free_locked(pool, b);
	pthread_rwlock_unlock(&pool->lock);
}

static void pool_get_page(void *arg, void *va)
{
	mv_pgt_pool *pool = arg;
	pool_block *b;

	pthread_rwlock_rdlock(&pool->lock);
	b = lookup_locked(pool, va);
	if (b)
		__atomic_add_fetch(&b->refs, 1, __ATOMIC_RELAXED);
	pthread_rwlock_unlock(&pool->lock);
}

static void pool_put_page(void *arg, void *va)
{
	mv_pgt_pool *pool = arg;
	pool_block *b;
	bool last = false;

	pthread_rwlock_rdlock(&pool->lock);
	b = lookup_locked(pool, va);
	if (b)
		last = __atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) == 0;
	pthread_rwlock_unlock(&pool->lock);
	/* At zero nobody else references the block: free it under the write lock. */
	if (last) {
		pthread_rwlock_wrlock(&pool->lock);
		block_free_locked(pool, b);
		pthread_rwlock_unlock(&pool->lock);
	}
}

static int pool_page_count(void *arg, void *va)
{
	mv_pgt_pool *pool = arg;
	pool_block *b;
	int n = 0;

	pthread_rwlock_rdlock(&pool->lock);
	b = lookup_locked(pool, va);
	if (b)
		n = __atomic_load_n(&b->refs, __ATOMIC_ACQUIRE);
	pthread_rwlock_unlock(&pool->lock);
	return n;
}

/* Table addresses are host addresses: both conversions are the identity. */
static void *pool_phys_to_virt(void *arg, uint64_t pa)
{
	(void)arg;
	return (void *)(uintptr_t)pa;
}

static uint64_t pool_virt_to_phys(void *arg, void *va)
{
	(void)arg;
	return (uint64_t)(uintptr_t)va;
}

static const mv_pgt_mm_ops pool_mm_ops = {
	.zalloc_page = pool_zalloc_page,
	.zalloc_pages_exact = pool_zalloc_pages_exact,
	.free_pages_exact = pool_free_pages_exact,
	.get_page = pool_get_page,
	.put_page = pool_put_page,
	.page_count = pool_page_count,
	.phys_to_virt = pool_phys_to_virt,
	.virt_to_phys = pool_virt_to_phys,
};

const mv_pgt_mm_ops *mv_pgt_pool_mm_ops(void)
{
	return &pool_mm_ops;
}

int mv_pgt_pool_new(const mv_allocator *alloc, mv_pgt_pool **out)
{
	mv_pgt_pool *pool = mv_zalloc(alloc, sizeof(*pool));

	if (!pool)
		return -ENOMEM;
	pool->alloc = alloc;
	pthread_rwlock_init(&pool->lock, NULL);
	*out = pool;
	return 0;
}

void mv_pgt_pool_free(mv_pgt_pool *pool)
{
	if (!pool)
		return;
	/* Free each remaining block once: forget all slots but its first unit's, then free. */
	for (size_t i = 0; i < pool->cap; i++) {
		pool_block *b = pool->slots[i].b;

		if (b && pool->slots[i].key != b->va >> UNIT_SHIFT)
			pool->slots[i].b = NULL;
	}
	for (size_t i = 0; i < pool->cap; i++)
		mv_free(pool->alloc, pool->slots[i].b);
	mv_free(pool->alloc, pool->slots);
	pthread_rwlock_destroy(&pool->lock);
	mv_free(pool->alloc, pool);
}

size_t mv_pgt_pool_live_pages(const mv_pgt_pool *pool)
{
	return __atomic_load_n(&pool->live_units, __ATOMIC_RELAXED);
}
