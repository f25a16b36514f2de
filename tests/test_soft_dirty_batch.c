/*
 * Batched dirty-log re-protection (arm64/dirty.c and x86/dirty.c: one
 * session per get, clear or ring reset, one table iterator carried from
 * mask to mask) against the per-mask re-protection it replaced, kept here
 * as the reference: a stage-2 / EPT walk from the root for every 64-page
 * mask (arm64: mv_s2_wrprotect from the first to the last page, widened to
 * the blocks at its ends and followed by mv_s2_split with INITIALLY_SET;
 * x86: mv_ept_split of that range with INITIALLY_SET unless lazy, then
 * mv_ept_wrprotect per run of set bits).
 *
 * Two VMs of one architecture get the same random mappings (writable and
 * read-only pages and 2 MiB blocks, holes) and the same dirty pages; one
 * harvests with the VM's call, the other with the reference, and then
 * every leaf covering the slot must be identical (value and level), as
 * must the bitmaps, the harvested ring entries and the table counts.
 * Modes: get, manual protect + clear, INITIALLY_SET (eager and lazy
 * splitting), dirty rings. The slot starts at a random page, so masks
 * straddle last-level tables. MV_SEED replays.
 */
#include "testutil.h"

#include "soft/arm64/a64_internal.h"
#include "soft/x86/x86_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define SZ_4K (1ull << 12)
#define SZ_2M (1ull << 21)
#define SLOT_PAGES 6000u                 /* 94 bitmap words, not a multiple of 64 pages */
#define RING_ENTRIES 4096u

typedef enum mode {
	M_GET,            /* KVM_GET_DIRTY_LOG protects */
	M_CLEAR,          /* manual protect: the get copies, KVM_CLEAR_DIRTY_LOG protects */
	M_INIT_SET,       /* ... with INITIALLY_SET (arm64: eager 2 MiB chunks; x86: eager) */
	M_INIT_SET_LAZY,  /* ... with INITIALLY_SET, blocks kept (arm64 default; x86 lazy_split) */
	M_RING,           /* dirty rings: harvest + KVM_RESET_DIRTY_RINGS protects */
	M_COUNT
} mode;

static const char *const mode_names[] = { "get", "clear", "init-set eager", "init-set lazy",
					  "ring" };

/* One VM of either architecture with slot 0 logging at @gpa. */
typedef struct tvm {
	bool x86;
	mode m;
	mv_a64_vm *a;
	mv_a64_vcpu *av;
	mv_x86_vm *x;
	mv_x86_vcpu *xv;
	const mv_memslot *slot;
	uint64_t gpa;
	uint8_t *host;        /* hva of the slot's first page (congruent with gpa modulo 2 MiB) */
} tvm;

static mv_dirty_ring *tvm_ring(tvm *v)
{
	return v->x86 ? v->xv->ring : v->av->ring;
}

static void tvm_new(tvm *v, bool x86, mode m, uint64_t gpa, uint8_t *host)
{
	uint32_t manual = m == M_CLEAR ? HV_DIRTY_PROTECT_ENABLE
			  : m == M_INIT_SET || m == M_INIT_SET_LAZY
				  ? HV_DIRTY_PROTECT_ENABLE | HV_DIRTY_PROTECT_INIT_SET
				  : 0;
	hv_memslot s = { .slot = 0, .flags = HV_MEM_LOG_DIRTY_PAGES, .gpa = gpa,
			 .size = SLOT_PAGES * SZ_4K, .hva = host };
	mv_error err = { 0 };

	memset(v, 0, sizeof(*v));
	v->x86 = x86;
	v->m = m;
	v->gpa = gpa;
	v->host = host;
	if (x86) {
		mv_x86_vm_config cfg = { .host_maxphyaddr = 46, .lazy_split = m == M_INIT_SET_LAZY };

		assert_int_equal(mv_x86_vm_new(&cfg, &v->x, &err), 0);
		assert_int_equal(mv_x86_vm_enable_manual_dirty_protect(v->x, manual), 0);
		if (m == M_RING)
			assert_int_equal(mv_x86_vm_enable_dirty_ring(v->x, RING_ENTRIES), 0);
		assert_int_equal(mv_x86_vcpu_new(v->x, 0, &v->xv, &err), 0);
		assert_int_equal(mv_x86_vm_set_memslot(v->x, &s), 0);
		v->slot = mv_memslots_get(v->x->slots, 0, 0);
		return;
	}
	assert_int_equal(mv_a64_vm_new(NULL, &v->a, &err), 0);
	assert_int_equal(mv_a64_vm_enable_manual_dirty_protect(v->a, manual), 0);
	if (m == M_INIT_SET)
		assert_int_equal(mv_a64_vm_enable_eager_split(v->a, SZ_2M), 0);
	if (m == M_RING)
		assert_int_equal(mv_a64_vm_enable_dirty_ring(v->a, RING_ENTRIES), 0);
	assert_int_equal(mv_a64_vcpu_new(v->a, 0, &v->av, &err), 0);
	assert_int_equal(mv_a64_vm_set_memslot(v->a, &s), 0);
	v->slot = mv_memslots_get(v->a->slots, 0, 0);
}

static void tvm_free(tvm *v)
{
	if (v->x86) {
		mv_x86_vcpu_free(v->xv);
		mv_x86_vm_free(v->x);
	} else {
		mv_a64_vcpu_free(v->av);
		mv_a64_vm_free(v->a);
	}
}

/* Map @ipa (aligned to the level's size) to its slot page, writable or not, at level 2 or 3. */
static void tvm_map(tvm *v, uint64_t ipa, int level, bool writable)
{
	uint64_t hva = (uint64_t)(uintptr_t)v->host + (ipa - v->gpa);
	uint64_t size = level == 2 ? SZ_2M : SZ_4K;
	mv_error err = { 0 };

	if (v->x86) {
		unsigned rwx = writable ? MV_EPT_RWX : MV_EPT_R | MV_EPT_X;

		pthread_rwlock_wrlock(&v->x->mmu_lock);
		assert_int_equal(mv_ept_install(&v->x->ept, ipa, level,
						mv_ept_leaf(hva, rwx, level, true, v->x->ept.ad), 0, NULL),
				 MV_PGT_OK);
		pthread_rwlock_unlock(&v->x->mmu_lock);
		return;
	}
	assert_int_equal(mv_a64_vm_s2_install(v->a, ipa, size, hva,
					      mv_s2_prot_attr(MV_S2_PROT_R |
							      (writable ? MV_S2_PROT_W : 0)),
					      level, &err),
			 0);
}

static void tvm_mark(tvm *v, uint64_t page)
{
	if (v->m == M_RING)
		assert_int_equal(mv_dirty_ring_push(tvm_ring(v), 0, page), 0);
	else
		mv_memslot_mark_dirty(v->slot, v->slot->base_gfn + page);
}

static void tvm_leaf(tvm *v, uint64_t ipa, mv_pte *pte, int *level)
{
	if (v->x86)
		assert_int_equal(mv_ept_get_leaf(&v->x->ept, ipa, pte, level), MV_PGT_OK);
	else
		assert_int_equal(mv_a64_vm_s2_leaf(v->a, ipa, pte, level), MV_PGT_OK);
}

/* Table pages, then leaves per level 0..3. */
static void tvm_counts(tvm *v, uint64_t out[5])
{
	if (v->x86) {
		mv_ept_stats st;

		pthread_rwlock_wrlock(&v->x->mmu_lock);
		mv_ept_get_stats(&v->x->ept, &st);
		pthread_rwlock_unlock(&v->x->mmu_lock);
		out[0] = st.tables;
		memcpy(&out[1], st.leaves, sizeof(st.leaves));
	} else {
		mv_s2_stats st;

		mv_a64_vm_s2_stats(v->a, &st);
		out[0] = st.tables;
		memcpy(&out[1], st.leaves, sizeof(st.leaves));
	}
}

/* ------------------------------------------------------------------ */
/* The reference: the per-mask re-protection, one walk from the root each */

static uint64_t ref_a64_block_at(mv_a64_vm *vm, uint64_t ipa)
{
	mv_pte pte = 0;
	int level = 0;

	mv_s2_get_leaf(&vm->s2, ipa, &pte, &level);
	return (pte & MV_S2_VALID) && level < 3 ? mv_pgt_level_size(&vm->s2.pgt, level) : 0;
}

static void ref_a64_protect(void *arg, const mv_memslot *slot, uint64_t offset, uint64_t mask)
{
	mv_a64_vm *vm = arg;
	uint64_t first = slot->base_gfn + offset + (uint64_t)__builtin_ctzll(mask);
	uint64_t end = slot->base_gfn + offset + 64 - (uint64_t)__builtin_clzll(mask);
	uint64_t start = first << 12, stop = end << 12, block;

	if (vm->kvm.init_set) {
		block = ref_a64_block_at(vm, start);
		if (block)
			start &= ~(block - 1);
		block = ref_a64_block_at(vm, stop - 1);
		if (block)
			stop = ((stop - 1) & ~(block - 1)) + block;
	}
	mv_s2_wrprotect(&vm->s2, start, stop - start);
	if (vm->kvm.init_set && vm->split_chunk)
		mv_s2_split(&vm->s2, first << 12, (end - first) << 12);
}

static void ref_x86_protect(void *arg, const mv_memslot *slot, uint64_t offset, uint64_t mask)
{
	mv_x86_vm *vm = arg;
	uint64_t base = slot->base_gfn + offset;
	uint64_t first = base + (uint64_t)__builtin_ctzll(mask);
	uint64_t end = base + 64 - (uint64_t)__builtin_clzll(mask);

	if (vm->kvm.init_set && !vm->cfg.lazy_split)
		mv_ept_split(&vm->ept, first << 12, (end - first) << 12);
	for (unsigned n = 0; n < 64; n++)
		if (mask >> n & 1)
			mv_ept_wrprotect(&vm->ept, (base + n) << 12, SZ_4K);
}

static pthread_rwlock_t *tvm_mmu_lock(tvm *v)
{
	return v->x86 ? &v->x->mmu_lock : &v->a->mmu_lock;
}

static pthread_rwlock_t *tvm_slots_lock(tvm *v)
{
	return v->x86 ? &v->x->slots_lock : &v->a->slots_lock;
}

static const mv_memslots *tvm_slots(tvm *v)
{
	return v->x86 ? v->x->slots : v->a->slots;
}

static mv_dirty_protect_fn ref_protect(tvm *v)
{
	return v->x86 ? ref_x86_protect : ref_a64_protect;
}

static void *ref_arg(tvm *v)
{
	return v->x86 ? (void *)v->x : (void *)v->a;
}

/* A ring batch of the reference takes mmu_lock for itself, as before. */
static tvm *ref_locking_vm;

static void ref_protect_locking(void *arg, const mv_memslot *slot, uint64_t offset, uint64_t mask)
{
	pthread_rwlock_wrlock(tvm_mmu_lock(ref_locking_vm));
	ref_protect(ref_locking_vm)(arg, slot, offset, mask);
	pthread_rwlock_unlock(tvm_mmu_lock(ref_locking_vm));
}

/* ------------------------------------------------------------------ */
/* The harvest, by the VM (@ref false) or by the reference              */

static void tvm_get(tvm *v, bool ref, uint64_t *bm)
{
	bool manual = v->m != M_GET;

	if (!ref || manual) {
		assert_int_equal(v->x86 ? mv_x86_vm_get_dirty_log(v->x, 0, bm)
					: mv_a64_vm_get_dirty_log(v->a, 0, bm),
				 0);
		return;
	}
	pthread_rwlock_rdlock(tvm_slots_lock(v));
	pthread_rwlock_wrlock(tvm_mmu_lock(v));
	assert_int_equal(mv_dirty_get_log(tvm_slots(v), 0, false, bm, ref_protect(v), ref_arg(v)), 0);
	pthread_rwlock_unlock(tvm_mmu_lock(v));
	pthread_rwlock_unlock(tvm_slots_lock(v));
}

static void tvm_clear(tvm *v, bool ref, const uint64_t *bm)
{
	if (!ref) {
		assert_int_equal(v->x86 ? mv_x86_vm_clear_dirty_log(v->x, 0, 0, SLOT_PAGES, bm)
					: mv_a64_vm_clear_dirty_log(v->a, 0, 0, SLOT_PAGES, bm),
				 0);
		return;
	}
	pthread_rwlock_rdlock(tvm_slots_lock(v));
	pthread_rwlock_wrlock(tvm_mmu_lock(v));
	assert_int_equal(mv_dirty_clear_log(tvm_slots(v), 0, 0, SLOT_PAGES, bm, ref_protect(v),
					    ref_arg(v)),
			 0);
	pthread_rwlock_unlock(tvm_mmu_lock(v));
	pthread_rwlock_unlock(tvm_slots_lock(v));
}

typedef struct harvest {
	uint64_t offsets[RING_ENTRIES];
	unsigned n;
} harvest;

static void harvest_one(void *opaque, const hv_dirty_gfn *g)
{
	harvest *h = opaque;

	assert_int_equal(g->slot, 0);
	h->offsets[h->n++] = g->offset;
}

static int tvm_ring_reset(tvm *v, bool ref, harvest *h)
{
	int n;

	h->n = 0;
	if (v->x86)
		assert_true(mv_x86_vcpu_dirty_ring_harvest(v->xv, harvest_one, h) >= 0);
	else
		assert_true(mv_a64_vcpu_dirty_ring_harvest(v->av, harvest_one, h) >= 0);
	if (!ref)
		return v->x86 ? mv_x86_vm_dirty_rings_reset(v->x) : mv_a64_vm_dirty_rings_reset(v->a);
	ref_locking_vm = v;
	pthread_rwlock_rdlock(tvm_slots_lock(v));
	n = mv_dirty_ring_reset(tvm_ring(v), tvm_slots(v), ref_protect_locking, ref_arg(v));
	pthread_rwlock_unlock(tvm_slots_lock(v));
	return n;
}

/* ------------------------------------------------------------------ */
/* The comparison                                                       */

#define BM_WORDS ((SLOT_PAGES + 63) / 64)

/* Every leaf covering the slot (the 2 MiB blocks around it included) and the table counts. */
static void assert_same_tables(tvm *a, tvm *b)
{
	uint64_t lo = a->gpa & ~(SZ_2M - 1), hi = (a->gpa + SLOT_PAGES * SZ_4K + SZ_2M - 1) & ~(SZ_2M - 1);
	uint64_t ca[5], cb[5];

	for (uint64_t ipa = lo; ipa < hi; ipa += SZ_4K) {
		mv_pte pa = 0, pb = 0;
		int la = -1, lb = -1;

		tvm_leaf(a, ipa, &pa, &la);
		tvm_leaf(b, ipa, &pb, &lb);
		if (pa != pb || la != lb)
			fail_msg("%s %s: IPA 0x%llx: batched leaf 0x%llx (level %d), per-mask 0x%llx "
				 "(level %d)",
				 a->x86 ? "x86" : "arm64", mode_names[a->m], (unsigned long long)ipa,
				 (unsigned long long)pa, la, (unsigned long long)pb, lb);
	}
	tvm_counts(a, ca);
	tvm_counts(b, cb);
	assert_memory_equal(ca, cb, sizeof(ca));
}

/*
 * Random mappings, the same in both VMs: each 2 MiB region inside the slot
 * becomes a writable or read-only block, or pages (writable or read-only)
 * at a random density; the regions at the slot's ends get pages.
 */
static void random_mappings(tvm *v[2], uint64_t *rng)
{
	uint64_t gpa = v[0]->gpa, end = gpa + SLOT_PAGES * SZ_4K;
	unsigned density = 1 + (unsigned)tu_rand_below(rng, 60);

	for (uint64_t blk = gpa & ~(SZ_2M - 1); blk < end; blk += SZ_2M) {
		unsigned kind = (unsigned)tu_rand_below(rng, 4);

		if (blk >= gpa && blk + SZ_2M <= end && kind < 2) {
			for (unsigned k = 0; k < 2; k++)
				tvm_map(v[k], blk, 2, kind == 0);
			continue;
		}
		for (uint64_t ipa = blk; ipa < blk + SZ_2M; ipa += SZ_4K) {
			bool writable = tu_rand_below(rng, 10) < 7;

			if (ipa < gpa || ipa >= end || tu_rand_below(rng, 100) >= density)
				continue;
			for (unsigned k = 0; k < 2; k++)
				tvm_map(v[k], ipa, 3, writable);
		}
	}
}

/* Random pages marked dirty in both (ring: the same entries in the same order). */
static void random_dirty(tvm *v[2], uint64_t *rng)
{
	unsigned density = 1 + (unsigned)tu_rand_below(rng, 100);
	unsigned pushed = 0;

	for (uint64_t p = 0; p < SLOT_PAGES; p++) {
		uint64_t page = v[0]->m == M_RING ? tu_rand_below(rng, SLOT_PAGES) : p;

		if (tu_rand_below(rng, 100) >= density)
			continue;
		if (v[0]->m == M_RING && ++pushed >= mv_dirty_ring_soft_limit(tvm_ring(v[0])))
			break;
		for (unsigned k = 0; k < 2; k++)
			tvm_mark(v[k], page);
	}
}

static void run_mode(bool x86, mode m, uint64_t *rng)
{
	uint64_t gpa = (1ull << 30) + tu_rand_below(rng, 512) * SZ_4K;
	size_t len = SLOT_PAGES * SZ_4K + 2 * SZ_2M;
	uint8_t *raw = mmap(NULL, len, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	uint8_t *host;
	static harvest ha, hb;
	tvm a, b, *v[2] = { &a, &b };

	assert_true(raw != MAP_FAILED);
	/* Host addresses congruent with guest ones modulo 2 MiB, so blocks can map them. */
	host = (uint8_t *)((((uintptr_t)raw + SZ_2M - 1) & ~(uintptr_t)(SZ_2M - 1)) +
			   (gpa & (SZ_2M - 1)));
	tvm_new(&a, x86, m, gpa, host);
	tvm_new(&b, x86, m, gpa, host);
	for (unsigned round = 0; round < 8; round++) {
		uint64_t bma[BM_WORDS], bmb[BM_WORDS], user[BM_WORDS];

		random_mappings(v, rng);
		random_dirty(v, rng);
		assert_same_tables(&a, &b);
		if (m == M_RING) {
			int na = tvm_ring_reset(&a, false, &ha), nb = tvm_ring_reset(&b, true, &hb);

			assert_int_equal(na, nb);
			assert_int_equal(ha.n, hb.n);
			assert_memory_equal(ha.offsets, hb.offsets, ha.n * sizeof(ha.offsets[0]));
		} else {
			tvm_get(&a, false, bma);
			tvm_get(&b, true, bmb);
			assert_memory_equal(bma, bmb, sizeof(bma));
		}
		if (m == M_CLEAR || m == M_INIT_SET || m == M_INIT_SET_LAZY) {
			unsigned density = (unsigned)tu_rand_below(rng, 101);

			for (unsigned w = 0; w < BM_WORDS; w++) {
				user[w] = 0;
				for (unsigned bit = 0; bit < 64; bit++)
					if (tu_rand_below(rng, 100) < density)
						user[w] |= 1ull << bit;
			}
			tvm_clear(&a, false, user);
			tvm_clear(&b, true, user);
			tvm_get(&a, false, bma);
			tvm_get(&b, false, bmb);
			assert_memory_equal(bma, bmb, sizeof(bma));
		}
		assert_same_tables(&a, &b);
	}
	tvm_free(&a);
	tvm_free(&b);
	munmap(raw, len);
}

static void test_arm64_batched_equals_per_mask(void **state)
{
	uint64_t rng = tu_seed(0xa64);

	(void)state;
	for (unsigned seed_round = 0; seed_round < 3; seed_round++)
		for (mode m = 0; m < M_COUNT; m++)
			run_mode(false, m, &rng);
}

static void test_x86_batched_equals_per_mask(void **state)
{
	uint64_t rng = tu_seed(0x86);

	(void)state;
	for (unsigned seed_round = 0; seed_round < 3; seed_round++)
		for (mode m = 0; m < M_COUNT; m++)
			run_mode(true, m, &rng);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_arm64_batched_equals_per_mask),
		cmocka_unit_test(test_x86_batched_equals_per_mask),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
