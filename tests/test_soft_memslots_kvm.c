/*
 * The soft memslot set against the real KVM of this machine: the same
 * KVM_SET_USER_MEMORY_REGION calls go to an x86 "kvm" VM and to an
 * mv_memslots configured like it (HV_CAP_NR_MEMSLOTS / HV_CAP_NR_AS, an
 * x86-like arch_prepare), and must get the same answer, call by call.
 *
 * Host addresses come from one PROT_NONE, MAP_NORESERVE reservation big
 * enough for a slot of more than KVM_MEM_MAX_NR_PAGES pages: KVM checks
 * only access_ok() when a slot is set, never that the memory is mapped,
 * and nothing here runs a guest. Valid slots stay small, because x86 KVM
 * allocates per-page metadata (rmaps) for every slot it accepts.
 *
 * Without /dev/kvm the tests print "SKIP: /dev/kvm not available (<reason>)".
 */
#include "memslot_gen.h"
#include "testutil.h"

#include "memvirt/hv.h"
#include "memvirt/soft_memslot.h"
#include "memvirt/soft_x86.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PG 4096ull
#define MAXP MV_MEMSLOT_MAX_NR_PAGES
#define BITMAP_WORDS_MAX 1024        /* dirty logs of slots up to 64Ki pages */

/* ------------------------------------------------------------------ */
/* x86's kvm_arch_prepare_memory_region                                 */

/*
 * x86 rejects a created or moved slot whose last gfn is beyond
 * kvm_mmu_max_gfn(): the host MAXPHYADDR with TDP (EPT/NPT), 52 bits
 * with shadow paging (PVM, ept=N, npt=0). Deletes and flag changes pass.
 */
typedef struct x86_arch {
	uint64_t max_gfn;
	unsigned long changes[4];    /* accepted, by mv_memslot_change */
	unsigned long refused;       /* beyond max_gfn */
} x86_arch;

static int x86_prepare(void *arg, mv_memslot_change change, const mv_memslot *old,
		       mv_memslot *new)
{
	x86_arch *x = arg;

	(void)old;
	if ((change == MV_MR_CREATE || change == MV_MR_MOVE) &&
	    new->base_gfn + new->npages - 1 > x->max_gfn) {
		x->refused++;
		return -EINVAL;
	}
	x->changes[change]++;
	return 0;
}

/* ------------------------------------------------------------------ */
/* The pair under test                                                  */

typedef struct pair {
	hv_vm *vm;
	mv_memslots *ms;
	x86_arch arch;
	unsigned nr_as, nr_slots;
	uint8_t *res;                /* PROT_NONE reservation */
	unsigned max_phys_bits;
	unsigned long ops, ok, einval, eexist;
} pair;

/* Open the pair, or print the SKIP line and skip. */
static void pair_open(pair *p)
{
	hv_vm_config cfg = { .arch = HV_ARCH_X86_64 };
	mv_memslots_config scfg = { .dirty_bitmap = true, .arch_prepare = x86_prepare };

	memset(p, 0, sizeof(*p));
	if (!tu_kvm_vm_create(&cfg, &p->vm))
		skip();
	p->nr_slots = (unsigned)hv_vm_check_cap(p->vm, HV_CAP_NR_MEMSLOTS);
	p->nr_as = (unsigned)hv_vm_check_cap(p->vm, HV_CAP_NR_AS);
	p->max_phys_bits = mv_x86_host_kvm_phys_bits();
	p->arch.max_gfn = (1ull << (p->max_phys_bits - 12)) - 1;
	scfg.nr_as = p->nr_as;
	scfg.nr_slots = p->nr_slots;
	scfg.arg = &p->arch;
	assert_int_equal(mv_memslots_new(&scfg, &p->ms), 0);
	p->res = msgen_reserve();
	printf("# kvm: %u slots, %u address spaces, guest physical bits %u (%s)\n", p->nr_slots,
	       p->nr_as, p->max_phys_bits,
	       mv_x86_host_kvm_tdp() ? "TDP: host MAXPHYADDR" : "shadow paging");
}

static void pair_close(pair *p)
{
	printf("# %lu ops: %lu ok, %lu -EINVAL, %lu -EEXIST; %lu creates, %lu deletes, "
	       "%lu moves, %lu flag changes, %lu beyond the max gfn\n", p->ops, p->ok, p->einval,
	       p->eexist, p->arch.changes[MV_MR_CREATE], p->arch.changes[MV_MR_DELETE],
	       p->arch.changes[MV_MR_MOVE], p->arch.changes[MV_MR_FLAGS_ONLY], p->arch.refused);
	msgen_unreserve(p->res);
	mv_memslots_free(p->ms);
	hv_vm_destroy(p->vm);
}

/* One op on both; they must agree. Returns the common answer. */
static int pair_set(pair *p, const hv_memslot *m)
{
	int want = hv_set_memslot(p->vm, m);
	int got = mv_memslots_set(p->ms, m);
	char buf[160];

	if (want != got) {
		msgen_describe(m, buf, sizeof(buf));
		fail_msg("op %lu (%s): kvm %d, soft %d", p->ops, buf, want, got);
	}
	p->ops++;
	if (want == 0)
		p->ok++;
	else if (want == -EINVAL)
		p->einval++;
	else if (want == -EEXIST)
		p->eexist++;
	return want;
}

static int pair_set_args(pair *p, unsigned as_id, unsigned id, uint32_t flags, uint64_t gpa,
			 uint64_t size, uint64_t hva)
{
	hv_memslot m = msgen_slot(as_id, id, flags, gpa, size, hva);

	return pair_set(p, &m);
}

/*
 * The state behind the answers: KVM_GET_DIRTY_LOG of every pool slot says
 * whether it exists and logs (0) or not (-ENOENT), as the soft set must.
 */
static void pair_check_state(pair *p)
{
	static uint64_t bitmap[BITMAP_WORDS_MAX];
	unsigned a, id;

	for (a = 0; a < p->nr_as; a++) {
		for (id = 0; id < MSGEN_POOL_IDS; id++) {
			const mv_memslot *s = mv_memslots_get(p->ms, a, id);
			int want = s && s->dirty_bitmap ? 0 : -ENOENT;
			int got;

			if (s)
				assert_true(HV_DIRTY_BITMAP_WORDS(s->npages * PG) <= BITMAP_WORDS_MAX);
			got = hv_get_dirty_log(p->vm, HV_SLOT(a, id), bitmap);
			if (got != want)
				fail_msg("after op %lu: dirty log of slot %u/%u: kvm %d, soft %d",
					 p->ops, a, id, got, want);
		}
	}
}

/* ------------------------------------------------------------------ */
/* Directed cases: each rule at its boundary                            */

static void test_kvm_rules_directed(void **state)
{
	pair p;
	uint64_t res, top = MV_MEMSLOT_TASK_SIZE, maxgpa;

	(void)state;
	pair_open(&p);
	res = (uint64_t)(uintptr_t)p.res;
	maxgpa = (p.arch.max_gfn + 1) * PG;

	/* flags */
	assert_int_equal(pair_set_args(&p, 0, 0, 4, 0, PG, res), -EINVAL);
	assert_int_equal(pair_set_args(&p, 0, 0, 1u << 31, 0, PG, res), -EINVAL);
	/* alignment of size, gpa, hva */
	assert_int_equal(pair_set_args(&p, 0, 0, 0, 0, PG + 1, res), -EINVAL);
	assert_int_equal(pair_set_args(&p, 0, 0, 0, 0x800, PG, res), -EINVAL);
	assert_int_equal(pair_set_args(&p, 0, 0, 0, 0, PG, res + 8), -EINVAL);
	/* the user-space end: hva + size <= TASK_SIZE_MAX, also for a delete */
	assert_int_equal(pair_set_args(&p, 0, 0, 0, 0, PG, top - PG), 0);
	assert_int_equal(pair_set_args(&p, 0, 0, 0, 0, 0, top), 0);
	assert_int_equal(pair_set_args(&p, 0, 1, 0, 0, PG, top), -EINVAL);
	pair_set_args(&p, 0, 1, 0, 0, 2 * PG, top - PG);
	assert_int_equal(pair_set_args(&p, 0, 1, 0, 0, 0, top + PG), -EINVAL);
	pair_set_args(&p, 0, 1, 0, 0, PG, ~0ull - PG + 1);
	pair_set_args(&p, 0, 1, 0, 0, PG, 1ull << 47);
	pair_set_args(&p, 0, 1, 0, 0, PG, 0);
	pair_set_args(&p, 0, 1, 0, 0, 0, 0);
	/* address space and slot ids */
	pair_set_args(&p, p.nr_as, 0, 0, 0, PG, res);
	pair_set_args(&p, 0xffff, 0, 0, 0, PG, res);
	assert_int_equal(pair_set_args(&p, 0, p.nr_slots - 1, 0, 0x100000, PG, res), 0);
	assert_int_equal(pair_set_args(&p, 0, p.nr_slots, 0, 0x200000, PG, res), -EINVAL);
	pair_set_args(&p, 0, 0xffff, 0, 0x200000, PG, res);
	pair_set_args(&p, 0, p.nr_slots - 1, 0, 0, 0, 0);
	/* gpa + size wrapping, ending at 2^64 exactly */
	assert_int_equal(pair_set_args(&p, 0, 2, 0, ~0ull - PG + 1, PG, res), -EINVAL);
	pair_set_args(&p, 0, 2, 0, ~0ull - PG + 1, 2 * PG, res);
	/* the arch limit: last gfn at and beyond max_gfn */
	assert_int_equal(pair_set_args(&p, 0, 2, 0, maxgpa - PG, PG, res), 0);
	assert_int_equal(pair_set_args(&p, 0, 3, 0, maxgpa, PG, res), -EINVAL);
	pair_set_args(&p, 0, 3, 0, maxgpa - PG, 2 * PG, res);
	pair_set_args(&p, 0, 3, 0, 1ull << 46, PG, res);
	pair_set_args(&p, 0, 3, 0, 1ull << 52, PG, res);
	pair_set_args(&p, 0, 2, 0, 0, 0, 0);
	/* more than KVM_MEM_MAX_NR_PAGES pages inside user space */
	assert_int_equal(pair_set_args(&p, 0, 4, 0, 0, (MAXP + 1) * PG, res), -EINVAL);
	pair_set_args(&p, 0, 4, 0, 0, (MAXP + 16) * PG, res);
	/* deleting an absent slot */
	assert_int_equal(pair_set_args(&p, 0, 5, 0, 0, 0, res), -EINVAL);
	/* changes of an existing slot */
	assert_int_equal(pair_set_args(&p, 0, 6, 0, 0x10000, 4 * PG, res), 0);
	pair_set_args(&p, 0, 6, 0, 0x10000, 4 * PG, res + PG);                    /* hva */
	pair_set_args(&p, 0, 6, 0, 0x10000, 8 * PG, res);                         /* size */
	/* READONLY on */
	assert_int_equal(pair_set_args(&p, 0, 6, HV_MEM_READONLY, 0x10000, 4 * PG, res), -EINVAL);
	pair_set_args(&p, 0, 6, 0, 0x10000, 4 * PG, res);                         /* no-op */
	pair_set_args(&p, 0, 6, HV_MEM_LOG_DIRTY_PAGES, 0x10000, 4 * PG, res);    /* flags */
	pair_set_args(&p, 0, 6, HV_MEM_LOG_DIRTY_PAGES, 0x20000, 4 * PG, res);    /* move */
	pair_set_args(&p, 0, 6, 0, 0x30000, 4 * PG, res);                         /* move+flags */
	assert_int_equal(pair_set_args(&p, 0, 7, HV_MEM_READONLY, 0x40000, 4 * PG, res), 0);
	pair_set_args(&p, 0, 7, 0, 0x40000, 4 * PG, res);                         /* RO off */
	pair_set_args(&p, 0, 7, HV_MEM_READONLY | HV_MEM_LOG_DIRTY_PAGES, 0x40000, 4 * PG, res);
	/* overlaps, and the order of two broken rules */
	assert_int_equal(pair_set_args(&p, 0, 8, 0, 0x32000, PG, res), -EEXIST);
	pair_set_args(&p, 0, 6, 0, 0x3e000, 4 * PG, res);                         /* move */
	pair_set_args(&p, 0, 6, 0, 0x32000, 4 * PG, res);                         /* onto itself */
	assert_int_equal(pair_set_args(&p, 0, 8, 0, 0x32800, PG, res), -EINVAL);  /* gpa first */
	pair_set_args(&p, 0, 6, 0, 0x40000, 8 * PG, res);                         /* size first */
	pair_set_args(&p, 0, 8, 0, 0x34000, PG, res + 3);                         /* hva first */
	pair_set_args(&p, 0, 8, 0, 0, (MAXP + 1) * PG, res);                      /* pages first */
	pair_set_args(&p, 0, 8, 0, 0x36000, 4 * PG, res);                         /* adjacent */
	pair_check_state(&p);
	pair_close(&p);
}

/* ------------------------------------------------------------------ */
/* Random sequences                                                     */

typedef struct gen {
	msgen m;
	const pair *p;
} gen;

/* Any address space of the VM, now and then one past them or a wild one. */
static unsigned random_as(gen *g)
{
	switch (msgen_pick(&g->m, 32)) {
	case 0: return g->p->nr_as;
	case 1: return 0xffff;
	default: return (unsigned)msgen_pick(&g->m, g->p->nr_as);
	}
}

/* A request; a slot's live values come from the soft set. */
static hv_memslot random_req(gen *g)
{
	unsigned as_id = random_as(g), id = msgen_id(&g->m);
	const mv_memslot *s = mv_memslots_get(g->p->ms, as_id, id);
	hv_memslot live = { 0 };

	if (s)
		live = (hv_memslot){ .gpa = s->base_gfn * PG, .size = s->npages * PG,
				     .hva = (void *)(uintptr_t)s->userspace_addr, .flags = s->flags };
	return msgen_req(&g->m, HV_SLOT(as_id, id), s ? &live : NULL);
}

static void test_kvm_random(void **state)
{
	pair p;
	gen g;
	unsigned i;

	(void)state;
	pair_open(&p);
	g = (gen){ .m = { .rng = tu_seed(0xc0ffee5107ull), .nr_slots = p.nr_slots,
			  .max_gpa = (p.arch.max_gfn + 1) * PG, .res = (uint64_t)(uintptr_t)p.res },
		   .p = &p };
	for (i = 0; i < 5000; i++) {
		hv_memslot m = random_req(&g);

		pair_set(&p, &m);
		if (i % 64 == 63)
			pair_check_state(&p);
	}
	pair_check_state(&p);
	assert_true(p.ok > 300 && p.einval > 300 && p.eexist > 100 && p.arch.refused > 10);
	assert_true(p.arch.changes[MV_MR_MOVE] > 50 && p.arch.changes[MV_MR_FLAGS_ONLY] > 50);
	assert_true(p.arch.changes[MV_MR_DELETE] > 50);
	pair_close(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kvm_rules_directed),
		cmocka_unit_test(test_kvm_random),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
