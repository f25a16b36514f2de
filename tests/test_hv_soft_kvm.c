/*
 * The soft accelerator against this machine's KVM, through the same
 * interface (hv.h): an x86 "kvm" VM and an x86 "soft" VM get the same calls
 * and must give the same answers, call by call.
 *
 *  - capabilities the layers above depend on;
 *  - random sequences of memslot operations (overlaps, misalignment,
 *    size 0, too large, bad flags, slot and address-space ids out of
 *    range, moves, flag flips, the MAXPHYADDR limit KVM enforces here),
 *    interleaved with dirty-log calls (get / clear on absent, non-logging
 *    and out-of-range slots, clear alignment, manual protection switched
 *    on and off) whose bitmaps must be equal too;
 *  - dirty-ring enabling rules;
 *  - random ioeventfd and coalesced-zone registrations.
 *
 * Host addresses come from one PROT_NONE, MAP_NORESERVE reservation big
 * enough for a slot of more than 2^31 - 1 pages: KVM only checks
 * access_ok() when a slot is set, and no guest runs here. Valid slots stay
 * small: x86 KVM allocates per-page metadata for every slot it accepts.
 * Randomized tests print their seed; MV_SEED replays one. Without /dev/kvm
 * every test prints "SKIP: /dev/kvm not available (<reason>)".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "memslot_gen.h"
#include "testutil.h"

#include "memvirt/hv.h"
#include "memvirt/hv_soft.h"

#define PG 4096ull
#define MAXP ((1ull << 31) - 1)          /* KVM_MEM_MAX_NR_PAGES */
#define BM_WORDS 64                      /* dirty logs of slots up to 4096 pages */

/* ------------------------------------------------------------------ */
/* The pair under test                                                  */

typedef struct pair {
	hv_vm *kvm, *soft;
	uint8_t *res;                    /* PROT_NONE reservation */
	unsigned nr_slots;
	uint64_t max_gpa;                /* first gpa a slot may not reach (probed) */
	hv_memslot shadow[MSGEN_POOL_IDS];     /* live slots of as 0 with pool ids */
	unsigned long ops, agree_ok, agree_err, dirty_calls;
} pair;

/* A VM on each accelerator, or the SKIP line. */
static void pair_open(pair *p)
{
	hv_vm_config cfg = { .arch = HV_ARCH_X86_64 };
	mv_error err = { 0 };

	memset(p, 0, sizeof(*p));
	if (!tu_kvm_vm_create(&cfg, &p->kvm))
		skip();
	if (hv_vm_create("soft", &cfg, &p->soft, &err))
		fail_msg("%s", err.msg);
	p->nr_slots = (unsigned)hv_vm_check_cap(p->kvm, HV_CAP_NR_MEMSLOTS);
	p->res = msgen_reserve();
}

static void pair_close(pair *p)
{
	printf("# %lu memslot ops (%lu both ok, %lu both the same error), %lu dirty-log calls\n",
	       p->ops, p->agree_ok, p->agree_err, p->dirty_calls);
	msgen_unreserve(p->res);
	hv_vm_destroy(p->soft);
	hv_vm_destroy(p->kvm);
}

/* One memslot op on both; they must agree. Returns the common answer. */
static int pair_set(pair *p, const hv_memslot *m)
{
	int want = hv_set_memslot(p->kvm, m);
	int got = hv_set_memslot(p->soft, m);
	char buf[160];

	p->ops++;
	if (want != got) {
		msgen_describe(m, buf, sizeof(buf));
		fail_msg("memslot op %lu (%s): kvm %d, soft %d", p->ops, buf, want, got);
	}
	if (want) {
		p->agree_err++;
		return want;
	}
	p->agree_ok++;
	if (HV_SLOT_AS(m->slot) == 0 && HV_SLOT_ID(m->slot) < MSGEN_POOL_IDS) {
		hv_memslot *s = &p->shadow[HV_SLOT_ID(m->slot)];

		*s = *m;
		if (!m->size)
			memset(s, 0, sizeof(*s));
	}
	return want;
}

static int pair_set_args(pair *p, unsigned as_id, unsigned id, uint32_t flags, uint64_t gpa,
			 uint64_t size, uint64_t hva)
{
	hv_memslot m = msgen_slot(as_id, id, flags, gpa, size, hva);

	return pair_set(p, &m);
}

/*
 * The first gpa KVM refuses a one-page slot at, by bisection between 32
 * and 64 bits: the MAXPHYADDR limit of this host's KVM (52 bits with
 * shadow paging, the host's with EPT/NPT), which the soft VM must share.
 */
static void probe_max_gpa(pair *p)
{
	unsigned lo = 32, hi = 64;

	while (hi - lo > 1) {
		unsigned mid = (lo + hi) / 2;
		int r = pair_set_args(p, 0, 0, 0, (1ull << mid) - PG, PG, (uintptr_t)p->res);

		if (r == 0) {
			lo = mid;
			pair_set_args(p, 0, 0, 0, 0, 0, (uintptr_t)p->res);
		} else {
			hi = mid;
		}
	}
	p->max_gpa = 1ull << lo;
	printf("# memslots end below 2^%u on both\n", lo);
}

/* ------------------------------------------------------------------ */
/* Dirty-log calls                                                      */

static void fill(uint64_t *bm, uint64_t pattern)
{
	for (unsigned i = 0; i < BM_WORDS; i++)
		bm[i] = pattern;
}

/* KVM_GET_DIRTY_LOG on both: same answer, same bitmap. */
static void pair_get(pair *p, uint32_t slot)
{
	uint64_t a[BM_WORDS], b[BM_WORDS];
	int ra, rb;

	fill(a, 0x5a5a5a5a5a5a5a5aull);
	fill(b, 0x5a5a5a5a5a5a5a5aull);
	ra = hv_get_dirty_log(p->kvm, slot, a);
	rb = hv_get_dirty_log(p->soft, slot, b);
	p->dirty_calls++;
	if (ra != rb)
		fail_msg("after memslot op %lu: get_dirty_log(%#x): kvm %d, soft %d", p->ops, slot,
			 ra, rb);
	if (ra == 0 && memcmp(a, b, sizeof(a)))
		fail_msg("after memslot op %lu: get_dirty_log(%#x): bitmaps differ (kvm %#llx.., soft %#llx..)",
			 p->ops, slot, (unsigned long long)a[0], (unsigned long long)b[0]);
}

static void pair_clear(pair *p, uint32_t slot, uint64_t first, uint32_t num)
{
	uint64_t ones[BM_WORDS + 1];
	int ra, rb;

	memset(ones, 0xff, sizeof(ones));
	/* The bitmap must cover num pages: larger requests are refused before reading it. */
	if (num > BM_WORDS * 64)
		num = BM_WORDS * 64 + 1;
	ra = hv_clear_dirty_log(p->kvm, slot, first, num, ones);
	rb = hv_clear_dirty_log(p->soft, slot, first, num, ones);
	p->dirty_calls++;
	if (ra != rb)
		fail_msg("after memslot op %lu: clear_dirty_log(%#x, first %llu, num %u): kvm %d, soft %d",
			 p->ops, slot, (unsigned long long)first, num, ra, rb);
}

static void pair_manual(pair *p, uint32_t flags)
{
	int ra = hv_enable_manual_dirty_protect(p->kvm, flags);
	int rb = hv_enable_manual_dirty_protect(p->soft, flags);

	p->dirty_calls++;
	if (ra != rb)
		fail_msg("after memslot op %lu: manual protect %#x: kvm %d, soft %d", p->ops, flags,
			 ra, rb);
}

/* ------------------------------------------------------------------ */
/* Directed cases                                                       */

static void test_caps(void **state)
{
	static const hv_cap caps[] = {
		HV_CAP_NR_MEMSLOTS, HV_CAP_NR_AS, HV_CAP_READONLY_MEM, HV_CAP_MANUAL_DIRTY_PROTECT,
		HV_CAP_DIRTY_RING, HV_CAP_COALESCED_MMIO, HV_CAP_COALESCED_PIO, HV_CAP_IOEVENTFD,
		HV_CAP_ARM_NISV,
	};
	pair p;

	(void)state;
	pair_open(&p);
	for (unsigned i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
		if (hv_vm_check_cap(p.kvm, caps[i]) != hv_vm_check_cap(p.soft, caps[i]))
			fail_msg("capability %u: kvm %ld, soft %ld", caps[i],
				 hv_vm_check_cap(p.kvm, caps[i]), hv_vm_check_cap(p.soft, caps[i]));
	pair_close(&p);
}

/* Each memslot rule at its boundary, and the dirty-log errors around them. */
static void test_directed(void **state)
{
	uint64_t res, top = MV_MEMSLOT_TASK_SIZE, maxgpa;
	pair p;

	(void)state;
	pair_open(&p);
	probe_max_gpa(&p);
	res = (uint64_t)(uintptr_t)p.res;
	maxgpa = p.max_gpa;
	/* flags, alignment, user-space end */
	pair_set_args(&p, 0, 0, 4, 0, PG, res);
	pair_set_args(&p, 0, 0, 1u << 31, 0, PG, res);
	pair_set_args(&p, 0, 0, 0, 0, PG + 1, res);
	pair_set_args(&p, 0, 0, 0, 0x800, PG, res);
	pair_set_args(&p, 0, 0, 0, 0, PG, res + 8);
	pair_set_args(&p, 0, 0, 0, 0, PG, top - PG);
	pair_set_args(&p, 0, 0, 0, 0, 0, top);
	pair_set_args(&p, 0, 1, 0, 0, PG, top);
	/* ids */
	pair_set_args(&p, 1, 0, 0, 0, PG, res);
	pair_set_args(&p, 0xffff, 0, 0, 0, PG, res);
	pair_set_args(&p, 0, p.nr_slots - 1, 0, 0x100000, PG, res);
	pair_set_args(&p, 0, p.nr_slots, 0, 0x200000, PG, res);
	pair_set_args(&p, 0, p.nr_slots - 1, 0, 0, 0, 0);
	/* wrap, the MAXPHYADDR limit, too many pages */
	pair_set_args(&p, 0, 2, 0, ~0ull - PG + 1, PG, res);
	pair_set_args(&p, 0, 2, 0, maxgpa - PG, PG, res);
	pair_set_args(&p, 0, 3, 0, maxgpa, PG, res);
	pair_set_args(&p, 0, 3, 0, maxgpa - PG, 2 * PG, res);
	pair_set_args(&p, 0, 2, 0, 0, 0, 0);
	pair_set_args(&p, 0, 4, 0, 0, (MAXP + 1) * PG, res);
	/* absent delete; changes of a live slot; overlaps */
	pair_set_args(&p, 0, 5, 0, 0, 0, res);
	pair_set_args(&p, 0, 6, 0, 0x10000, 4 * PG, res);
	pair_set_args(&p, 0, 6, 0, 0x10000, 4 * PG, res + PG);
	pair_set_args(&p, 0, 6, 0, 0x10000, 8 * PG, res);
	pair_set_args(&p, 0, 6, HV_MEM_READONLY, 0x10000, 4 * PG, res);
	pair_set_args(&p, 0, 6, HV_MEM_LOG_DIRTY_PAGES, 0x20000, 4 * PG, res);
	pair_set_args(&p, 0, 7, 0, 0x22000, PG, res);
	pair_set_args(&p, 0, 7, 0, 0x24000, PG, res);

	/* dirty logs: logging slot, non-logging slot, absent slot, ids out of range */
	pair_get(&p, HV_SLOT(0, 6));
	pair_get(&p, HV_SLOT(0, 7));
	pair_get(&p, HV_SLOT(0, 8));
	pair_get(&p, HV_SLOT(0, p.nr_slots));
	pair_get(&p, HV_SLOT(1, 6));
	pair_clear(&p, HV_SLOT(0, 6), 0, 4);
	pair_clear(&p, HV_SLOT(0, 6), 1, 3);
	pair_clear(&p, HV_SLOT(0, 6), 0, 3);
	pair_clear(&p, HV_SLOT(0, 6), 0, 5);
	pair_clear(&p, HV_SLOT(0, 6), 64, 0);
	pair_clear(&p, HV_SLOT(0, 7), 0, 1);
	pair_clear(&p, HV_SLOT(0, 8), 0, 1);
	pair_clear(&p, HV_SLOT(2, 6), 0, 1);
	/* manual protection, with INIT_SET: a slot that starts logging is all dirty */
	pair_manual(&p, HV_DIRTY_PROTECT_INIT_SET);
	pair_manual(&p, 8);
	pair_manual(&p, HV_DIRTY_PROTECT_ENABLE | HV_DIRTY_PROTECT_INIT_SET);
	pair_set_args(&p, 0, 7, HV_MEM_LOG_DIRTY_PAGES, 0x24000, PG, res);
	pair_set_args(&p, 0, 8, HV_MEM_LOG_DIRTY_PAGES, 0x100000, 100 * PG, res);
	pair_get(&p, HV_SLOT(0, 6));
	pair_get(&p, HV_SLOT(0, 7));
	pair_get(&p, HV_SLOT(0, 8));
	pair_clear(&p, HV_SLOT(0, 8), 64, 36);
	pair_get(&p, HV_SLOT(0, 8));
	pair_clear(&p, HV_SLOT(0, 8), 0, 64);
	pair_get(&p, HV_SLOT(0, 8));
	pair_manual(&p, 0);
	pair_get(&p, HV_SLOT(0, 8));
	pair_close(&p);
}

/* KVM_CAP_DIRTY_LOG_RING: sizes, once, before any vCPU; a ring VM has no bitmaps. */
static void test_dirty_ring_rules(void **state)
{
	/* KVM takes entries x 16 as a u32: 2^28 + 256 entries wrap to a 256-entry ring */
	static const uint32_t sizes[] = { 0, 1, 128, 255, 300, 131072, 1u << 27, 1u << 31,
					  (1u << 28) + 256, 512 };
	mv_error err = { 0 };
	hv_vcpu *vk, *vs;
	uint64_t bm[BM_WORDS];
	pair p;

	(void)state;
	pair_open(&p);
	pair_set_args(&p, 0, 0, HV_MEM_LOG_DIRTY_PAGES, 0, 4 * PG, (uintptr_t)p.res);
	for (unsigned i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		int a = hv_enable_dirty_ring(p.kvm, sizes[i]), b = hv_enable_dirty_ring(p.soft, sizes[i]);

		if (a != b)
			fail_msg("enable_dirty_ring(%u): kvm %d, soft %d", sizes[i], a, b);
	}
	assert_int_equal(hv_get_dirty_log(p.kvm, HV_SLOT(0, 0), bm),
			 hv_get_dirty_log(p.soft, HV_SLOT(0, 0), bm));
	assert_int_equal(hv_dirty_rings_reset(p.kvm), hv_dirty_rings_reset(p.soft));
	pair_close(&p);

	/* after a vCPU: refused on both */
	pair_open(&p);
	assert_int_equal(hv_vcpu_create(p.kvm, 0, &vk, &err), 0);
	assert_int_equal(hv_vcpu_create(p.soft, 0, &vs, &err), 0);
	assert_int_equal(hv_enable_dirty_ring(p.kvm, 256), hv_enable_dirty_ring(p.soft, 256));
	assert_int_equal(hv_dirty_rings_reset(p.kvm), hv_dirty_rings_reset(p.soft));
	assert_int_equal(hv_vcpu_create(p.kvm, 0, &vk, &err), hv_vcpu_create(p.soft, 0, &vs, &err));
	hv_vcpu_destroy(vk);
	hv_vcpu_destroy(vs);
	pair_close(&p);
}

/* ------------------------------------------------------------------ */
/* Random sequences                                                     */

typedef struct gen {
	msgen m;
	const pair *p;
} gen;

static gen gen_new(const pair *p, uint64_t def_seed)
{
	return (gen){ .m = { .rng = tu_seed(def_seed), .nr_slots = p->nr_slots,
			     .max_gpa = p->max_gpa, .res = (uint64_t)(uintptr_t)p->res },
		      .p = p };
}

static uint64_t pick(gen *g, uint64_t n)
{
	return msgen_pick(&g->m, n);
}

/* Address space 0, now and then the second (x86's SMM, not enabled here) or a wild one. */
static unsigned random_as(gen *g)
{
	switch (pick(g, 32)) {
	case 0: return 1;
	case 1: return 0xffff;
	default: return 0;
	}
}

/* A request; pool slots of address space 0 are known live from the shadow. */
static hv_memslot random_req(gen *g)
{
	unsigned as_id = random_as(g), id = msgen_id(&g->m);
	const hv_memslot *s = as_id == 0 && id < MSGEN_POOL_IDS ? &g->p->shadow[id] : NULL;

	return msgen_req(&g->m, HV_SLOT(as_id, id), s && s->size ? s : NULL);
}

static uint32_t random_dirty_slot(gen *g)
{
	return HV_SLOT(random_as(g), msgen_id(&g->m));
}

/* A dirty-log call: get, clear with good and bad ranges, or manual protection. */
static void random_dirty_call(gen *g, pair *p)
{
	static const uint32_t manual[] = { 0, 1, 2, 3, 4, 7 };
	uint32_t slot = random_dirty_slot(g);
	const hv_memslot *s = HV_SLOT_ID(slot) < MSGEN_POOL_IDS ? &p->shadow[HV_SLOT_ID(slot)] : NULL;
	uint64_t npages = s ? s->size / PG : 0, first;
	uint32_t num;

	switch (pick(g, 8)) {
	case 0:
		if (!pick(g, 4))
			pair_manual(p, manual[pick(g, 6)]);
		return;
	case 1: case 2: case 3:
		pair_get(p, slot);
		return;
	default:
		break;
	}
	first = pick(g, 4) ? 64 * pick(g, npages / 64 + 2) : pick(g, npages + 2);
	switch (pick(g, 5)) {
	case 0: num = (uint32_t)(npages > first ? npages - first : 0); break;
	case 1: num = (uint32_t)(64 * pick(g, 4)); break;
	case 2: num = (uint32_t)(npages > first ? npages - first + 1 : 1); break;
	default: num = (uint32_t)pick(g, npages + 65); break;
	}
	pair_clear(p, slot, first, num);
}

static void test_random(void **state)
{
	pair p;
	gen g;

	(void)state;
	pair_open(&p);
	probe_max_gpa(&p);
	g = gen_new(&p, 0x50f7c0de5107ull);
	for (unsigned i = 0; i < 4000; i++) {
		hv_memslot m = random_req(&g);

		pair_set(&p, &m);
		if (!pick(&g, 4))
			random_dirty_call(&g, &p);
	}
	/* every pool slot's log, at the end */
	for (unsigned id = 0; id < MSGEN_POOL_IDS; id++)
		pair_get(&p, HV_SLOT(0, id));
	pair_close(&p);
}

/* ------------------------------------------------------------------ */
/* ioeventfd and coalesced zones                                        */

static void test_random_io(void **state)
{
	int efd[2] = { eventfd(0, EFD_CLOEXEC), eventfd(0, EFD_CLOEXEC) }, pfd[2];
	static const uint32_t lens[] = { 0, 1, 2, 3, 4, 8, 16 };
	unsigned long calls = 0, ok = 0;
	pair p;
	gen g;

	(void)state;
	assert_int_equal(pipe(pfd), 0);
	pair_open(&p);
	g = gen_new(&p, 0x10e7e17fdull);
	for (unsigned i = 0; i < 3000; i++) {
		int fds[4] = { efd[0], efd[1], pfd[0], 999 };
		hv_ioeventfd e = {
			.bus = pick(&g, 2) ? HV_BUS_MMIO : HV_BUS_PIO,
			.addr = pick(&g, 20) ? 0x1000 + 4 * pick(&g, 4) : ~0ull - pick(&g, 4),
			.len = lens[pick(&g, 7)],
			.fd = fds[pick(&g, 10) ? pick(&g, 2) : 2 + pick(&g, 2)],
			.datamatch = pick(&g, 2),
			.data = pick(&g, 3),
		};
		bool add = pick(&g, 3) != 0;
		int a, b;

		if (!pick(&g, 8)) {
			uint32_t size = (uint32_t)pick(&g, 3) * 8;

			a = add ? hv_coalesced_zone_add(p.kvm, e.bus, e.addr, size)
				: hv_coalesced_zone_del(p.kvm, e.bus, e.addr, size);
			b = add ? hv_coalesced_zone_add(p.soft, e.bus, e.addr, size)
				: hv_coalesced_zone_del(p.soft, e.bus, e.addr, size);
		} else {
			a = add ? hv_ioeventfd_add(p.kvm, &e) : hv_ioeventfd_del(p.kvm, &e);
			b = add ? hv_ioeventfd_add(p.soft, &e) : hv_ioeventfd_del(p.soft, &e);
		}
		calls++;
		ok += a == 0;
		if (a != b)
			fail_msg("io op %u (%s bus %d addr %#llx len %u fd %d dm %d data %llu): kvm %d, soft %d",
				 i, add ? "add" : "del", e.bus, (unsigned long long)e.addr, e.len, e.fd,
				 e.datamatch, (unsigned long long)e.data, a, b);
	}
	printf("# %lu ioeventfd / coalesced calls, %lu succeeded on both\n", calls, ok);
	pair_close(&p);
	close(efd[0]);
	close(efd[1]);
	close(pfd[0]);
	close(pfd[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_caps),
		cmocka_unit_test(test_directed),
		cmocka_unit_test(test_dirty_ring_rules),
		cmocka_unit_test(test_random),
		cmocka_unit_test(test_random_io),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
