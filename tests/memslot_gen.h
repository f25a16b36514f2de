/*
 * KVM_SET_USER_MEMORY_REGION requests for the tests that give the same
 * calls to this host's KVM and to a soft memslot set
 * (test_soft_memslots_kvm.c, test_hv_soft_kvm.c): built, described, and
 * random ones (slot ids, gpas, sizes, host addresses and flags, mostly
 * valid and from small pools so that slots collide, now and then just
 * past one of KVM's limits or wild).
 *
 * Host addresses fall in (or just outside) a PROT_NONE MAP_NORESERVE
 * reservation of MSGEN_RES_SIZE bytes, big enough for a slot of more than
 * KVM_MEM_MAX_NR_PAGES pages: KVM checks only access_ok() when a slot is
 * set, and nothing runs a guest on it.
 */
#ifndef MV_TESTS_MEMSLOT_GEN_H
#define MV_TESTS_MEMSLOT_GEN_H

#include "testutil.h"

#include "memvirt/hv.h"
#include "memvirt/soft_memslot.h"

#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>

#define MSGEN_PG 4096ull
#define MSGEN_RES_SIZE ((MV_MEMSLOT_MAX_NR_PAGES + 128) * MSGEN_PG)   /* 8 TiB + 508 KiB */
#define MSGEN_POOL_IDS 12u            /* most requests use slot ids 0..11 */
#define MSGEN_POOL_GFNS 512ull        /* and gfns 0..511 */

/* The reservation (PROT_NONE, never touched). */
static inline uint8_t *msgen_reserve(void)
{
	void *res = mmap(NULL, MSGEN_RES_SIZE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
			 -1, 0);

	assert_true(res != MAP_FAILED);
	return res;
}

static inline void msgen_unreserve(uint8_t *res)
{
	munmap(res, MSGEN_RES_SIZE);
}

static inline hv_memslot msgen_slot(unsigned as_id, unsigned id, uint32_t flags, uint64_t gpa,
				    uint64_t size, uint64_t hva)
{
	return (hv_memslot){ .slot = HV_SLOT(as_id, id), .flags = flags, .gpa = gpa, .size = size,
			     .hva = (void *)(uintptr_t)hva };
}

/* @m in words, for a failure message. */
static inline void msgen_describe(const hv_memslot *m, char *buf, size_t len)
{
	snprintf(buf, len, "as %u id %u flags %#x gpa %#llx size %#llx hva %#llx",
		 HV_SLOT_AS(m->slot), HV_SLOT_ID(m->slot), m->flags, (unsigned long long)m->gpa,
		 (unsigned long long)m->size, (unsigned long long)(uintptr_t)m->hva);
}

typedef struct msgen {
	uint64_t rng;
	unsigned nr_slots;            /* KVM's slots per address space */
	uint64_t max_gpa;             /* the first gpa a slot may not reach */
	uint64_t res;                 /* the reservation's host address */
} msgen;

static inline uint64_t msgen_pick(msgen *g, uint64_t n)
{
	return tu_rand_below(&g->rng, n);
}

/* A slot id: from the pool, or the last, one past it, 0xffff. */
static inline unsigned msgen_id(msgen *g)
{
	switch (msgen_pick(g, 40)) {
	case 0: return g->nr_slots - 1;
	case 1: return g->nr_slots;
	case 2: return 0xffff;
	default: return (unsigned)msgen_pick(g, MSGEN_POOL_IDS);
	}
}

static inline uint64_t msgen_gpa(msgen *g)
{
	switch (msgen_pick(g, 40)) {
	case 0: return g->max_gpa - msgen_pick(g, 8) * MSGEN_PG;
	case 1: return (1ull << 52) - msgen_pick(g, 8) * MSGEN_PG;
	case 2: return ~0ull - msgen_pick(g, 8) * MSGEN_PG + 1;
	case 3: return msgen_pick(g, MSGEN_POOL_GFNS) * MSGEN_PG + 1 + msgen_pick(g, MSGEN_PG - 1);
	case 4: return (1ull << 40) + msgen_pick(g, MSGEN_POOL_GFNS) * MSGEN_PG;
	default: return msgen_pick(g, MSGEN_POOL_GFNS) * MSGEN_PG;
	}
}

static inline uint64_t msgen_size(msgen *g)
{
	switch (msgen_pick(g, 40)) {
	case 0: case 1: case 2: return 0;
	case 3: return (MV_MEMSLOT_MAX_NR_PAGES + 1 + msgen_pick(g, 16)) * MSGEN_PG;  /* fits the reservation */
	case 4: return (1 + msgen_pick(g, 8)) * MSGEN_PG + 1 + msgen_pick(g, MSGEN_PG - 1);
	case 5: return (1 + msgen_pick(g, 1024)) * MSGEN_PG;
	default: return (1 + msgen_pick(g, 32)) * MSGEN_PG;
	}
}

static inline uint64_t msgen_hva(msgen *g, uint64_t size)
{
	switch (msgen_pick(g, 40)) {
	case 0: return MV_MEMSLOT_TASK_SIZE - size + (msgen_pick(g, 3) - 1) * MSGEN_PG;
	case 1: return g->res + msgen_pick(g, 64) * MSGEN_PG + 1 + msgen_pick(g, MSGEN_PG - 1);
	case 2: return ~0ull - msgen_pick(g, 4) * MSGEN_PG + 1;
	default: return g->res + msgen_pick(g, 64) * MSGEN_PG;
	}
}

/* The four defined flags, now and then with an undefined one. */
static inline uint32_t msgen_flags(msgen *g)
{
	uint32_t f = (uint32_t)msgen_pick(g, 4);

	if (!msgen_pick(g, 40))
		f |= 1u << (2 + msgen_pick(g, 30));
	return f;
}

/*
 * A request for @slot (as_id << 16 | id): fresh values for every field,
 * or, half of the time when @live (the slot as it is, NULL when absent),
 * its own hva and size with a new gpa or flags, so that moves, flag
 * changes, no-ops and READONLY flips come up often.
 */
static inline hv_memslot msgen_req(msgen *g, uint32_t slot, const hv_memslot *live)
{
	hv_memslot m = { .slot = slot };

	m.flags = msgen_flags(g);
	m.gpa = msgen_gpa(g);
	m.size = msgen_size(g);
	m.hva = (void *)(uintptr_t)msgen_hva(g, m.size);
	if (live && msgen_pick(g, 2)) {
		m.size = msgen_pick(g, 16) ? live->size : m.size;
		m.hva = msgen_pick(g, 16) ? live->hva : m.hva;
		if (msgen_pick(g, 2))
			m.gpa = live->gpa;
		if (msgen_pick(g, 4))
			m.flags = (live->flags & HV_MEM_READONLY) | (m.flags & ~HV_MEM_READONLY);
	}
	return m;
}

#endif
