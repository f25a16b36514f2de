/*
 * Dirty-logging figures of the software KVM, arm64 stage 2 and x86 EPT,
 * all measured in one run:
 *
 * 1. KVM_GET_DIRTY_LOG on a 64 GiB slot (16 Mi pages, a MAP_NORESERVE
 *    reservation that is never touched) with 0%, 0.1%, 1% and 10% of its
 *    pages dirty at random, and 1% and 10% as one run of consecutive
 *    pages: each dirty page is mapped writable (a 4 KiB leaf) and has its
 *    bit set, so a get exchanges the 2 MiB bitmap word by word and
 *    write-protects every dirty page (under mmu_lock, then one TLB
 *    invalidation). The same get with the previous re-protection, one walk
 *    from the root per 64-page mask (arm64: mv_s2_wrprotect from the
 *    first to the last page, TLBIs collected; x86: mv_ept_wrprotect per
 *    run of set bits), on the same VM, is the baseline. The goal is under
 *    5 ms per get.
 * 2. Manual protect (KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2): the get only
 *    copies the bitmap, the KVM_CLEAR_DIRTY_LOG of the whole slot with it
 *    re-protects; the two costs apart.
 * 3. Ring against bitmap for the same dirty pages (random, and one run of
 *    consecutive pages): a VMM harvesting the ring into its own bitmap and
 *    resetting it (re-protect), against a get of the whole slot's bitmap;
 *    per harvest and per dirty page.
 * 4. Lazy against eager splitting of a 1 GiB hugetlb-declared arm64 slot
 *    mapped with 2 MiB blocks when logging starts: the time logging takes
 *    to start, then the first write to one page of every block (through
 *    mv_a64_vcpu_exec: a block-breaking fault when lazy, a page permission
 *    fault when eager), and the stage-2 tables each leaves.
 *
 * Figures are medians of ROUNDS rounds (minimum printed too). Nothing is
 * asserted. Usage: bench_soft_dirty [rounds]   (default 3)
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "soft/arm64/a64_internal.h"
#include "soft/pgtable_ops.h"
#include "soft/x86/x86_internal.h"
#define BENCH_NAME "bench_soft_dirty"
#include "bench_util.h"

#define PAGE           4096ull
#define MIB            (1ull << 20)
#define GIB            (1ull << 30)
#define BIG_GPA        (1ull << 36)          /* the 64 GiB slot, 2 MiB aligned */
#define BIG_SIZE       (64ull * GIB)
#define BIG_PAGES      (BIG_SIZE / PAGE)
#define BIG_WORDS      (BIG_PAGES / 64)
#define SPLIT_GPA      (1ull << 32)
#define SPLIT_SIZE     GIB
#define RING_ENTRIES   65536u
#define X86_MAXPHYADDR 46
#define DEFAULT_ROUNDS 3
#define MAX_ROUNDS     15

/* Sorts @v; its minimum. */
static double minimum(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), bench_cmp_double);
	return v[0];
}

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dull;
}

/* A MAP_NORESERVE reservation whose usable part starts at a multiple of @align. */
typedef struct reservation {
	void *raw;
	size_t raw_len;
	uint8_t *base;
} reservation;

static reservation reserve(uint64_t size, uint64_t align)
{
	reservation r = { .raw_len = size + align };

	r.raw = mmap(NULL, r.raw_len, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (r.raw == MAP_FAILED)
		die("cannot reserve host memory");
	r.base = (uint8_t *)(((uintptr_t)r.raw + align - 1) & ~(uintptr_t)(align - 1));
	return r;
}

/* ------------------------------------------------------------------ */
/* A VM of either architecture with the 64 GiB logging slot 0          */

enum { BV_RING = 1, BV_MANUAL = 2 };

typedef struct big_vm {
	bool x86;
	mv_a64_vm *a;
	mv_a64_vcpu *av;
	mv_x86_vm *x;
	mv_x86_vcpu *xv;
	mv_dirty_ring *ring;          /* ring VMs: pushes go to vCPU 0's */
	const mv_memslot *slot;
	uint8_t *host;
} big_vm;

static const char *arch_name(bool x86)
{
	return x86 ? "x86 EPT" : "arm64 S2";
}

static void big_vm_new(big_vm *b, bool x86, uint8_t *host, unsigned flags)
{
	hv_memslot m = { .slot = 0, .flags = HV_MEM_LOG_DIRTY_PAGES, .gpa = BIG_GPA,
			 .size = BIG_SIZE, .hva = host };
	uint32_t manual = flags & BV_MANUAL ? HV_DIRTY_PROTECT_ENABLE : 0;
	mv_error err = { 0 };
	int r;

	memset(b, 0, sizeof(*b));
	b->x86 = x86;
	b->host = host;
	if (x86) {
		mv_x86_vm_config cfg = { .host_maxphyaddr = X86_MAXPHYADDR };

		if (mv_x86_vm_new(&cfg, &b->x, &err))
			die("%s", err.msg);
		r = mv_x86_vm_enable_manual_dirty_protect(b->x, manual) ||
		    ((flags & BV_RING) && mv_x86_vm_enable_dirty_ring(b->x, RING_ENTRIES)) ||
		    mv_x86_vcpu_new(b->x, 0, &b->xv, &err) || mv_x86_vm_set_memslot(b->x, &m);
		b->ring = b->xv ? b->xv->ring : NULL;
		b->slot = mv_memslots_get(b->x->slots, 0, 0);
	} else {
		if (mv_a64_vm_new(NULL, &b->a, &err))
			die("%s", err.msg);
		r = mv_a64_vm_enable_manual_dirty_protect(b->a, manual) ||
		    ((flags & BV_RING) && mv_a64_vm_enable_dirty_ring(b->a, RING_ENTRIES)) ||
		    mv_a64_vcpu_new(b->a, 0, &b->av, &err) || mv_a64_vm_set_memslot(b->a, &m);
		b->ring = b->av ? b->av->ring : NULL;
		b->slot = mv_memslots_get(b->a->slots, 0, 0);
	}
	if (r || !b->slot)
		die("cannot create the 64 GiB slot");
}

static void big_vm_free(big_vm *b)
{
	if (b->x86) {
		mv_x86_vcpu_free(b->xv);
		mv_x86_vm_free(b->x);
	} else {
		mv_a64_vcpu_free(b->av);
		mv_a64_vm_free(b->a);
	}
}

/*
 * What a guest write does to page @p of the slot, without touching host
 * memory: a writable 4 KiB leaf, and its bit or ring entry.
 */
static void dirty_page(big_vm *b, uint64_t p)
{
	uint64_t gpa = BIG_GPA + p * PAGE, hva = (uint64_t)(uintptr_t)b->host + p * PAGE;
	mv_error err = { 0 };

	if (b->x86) {
		mv_pgt_result r;

		pthread_rwlock_wrlock(&b->x->mmu_lock);
		r = mv_ept_install(&b->x->ept, gpa, 3, mv_ept_leaf(hva, MV_EPT_RWX, 3, true, b->x->ept.ad),
				   0, NULL);
		pthread_rwlock_unlock(&b->x->mmu_lock);
		if (r != MV_PGT_OK)
			die("cannot map a page");
	} else if (mv_a64_vm_s2_install(b->a, gpa, PAGE, hva,
					mv_s2_prot_attr(MV_S2_PROT_R | MV_S2_PROT_W), 3, &err)) {
		die("%s", err.msg);
	}
	if (b->ring) {
		if (mv_dirty_ring_push(b->ring, 0, p))
			die("the ring is full");
	} else {
		mv_memslot_mark_dirty(b->slot, b->slot->base_gfn + p);
	}
}

static void dirty_pages(big_vm *b, const uint64_t *pages, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		dirty_page(b, pages[i]);
}

static int vm_get(big_vm *b, uint64_t *bitmap)
{
	return b->x86 ? mv_x86_vm_get_dirty_log(b->x, 0, bitmap) : mv_a64_vm_get_dirty_log(b->a, 0, bitmap);
}

static int vm_clear(big_vm *b, const uint64_t *bitmap)
{
	return b->x86 ? mv_x86_vm_clear_dirty_log(b->x, 0, 0, (uint32_t)BIG_PAGES, bitmap)
		      : mv_a64_vm_clear_dirty_log(b->a, 0, 0, (uint32_t)BIG_PAGES, bitmap);
}

static uint64_t vm_tables(big_vm *b)
{
	if (b->x86) {
		mv_ept_stats st;

		pthread_rwlock_wrlock(&b->x->mmu_lock);
		mv_ept_get_stats(&b->x->ept, &st);
		pthread_rwlock_unlock(&b->x->mmu_lock);
		return st.tables;
	} else {
		mv_s2_stats st;

		mv_a64_vm_s2_stats(b->a, &st);
		return st.tables;
	}
}

/* ---- the baseline: the previous re-protection, one walk from the root per mask ---- */

static void collect_tlbi(void *arg, uint64_t ipa, uint64_t size)
{
	mv_pgt_span *span = arg;

	if (!span->hi || ipa < span->lo)
		span->lo = ipa;
	if (ipa + size > span->hi)
		span->hi = ipa + size;
}

/* arm64: mv_s2_wrprotect from the first to the last page of the mask. */
static void per_mask_a64(void *arg, const mv_memslot *slot, uint64_t offset, uint64_t mask)
{
	mv_a64_vm *vm = arg;
	uint64_t first = slot->base_gfn + offset + (uint64_t)__builtin_ctzll(mask);
	uint64_t end = slot->base_gfn + offset + 64 - (uint64_t)__builtin_clzll(mask);

	mv_s2_wrprotect(&vm->s2, first << 12, (end - first) << 12);
}

/* x86: mv_ept_wrprotect (and its INVEPT) per run of set bits. */
static void per_mask_x86(void *arg, const mv_memslot *slot, uint64_t offset, uint64_t mask)
{
	mv_x86_vm *vm = arg;
	uint64_t base = slot->base_gfn + offset;

	while (mask) {
		unsigned start = (unsigned)__builtin_ctzll(mask);
		uint64_t rest = ~(mask >> start);
		unsigned run = rest ? (unsigned)__builtin_ctzll(rest) : 64;

		mv_ept_wrprotect(&vm->ept, (base + start) << 12, (uint64_t)run << 12);
		mask = start + run >= 64 ? 0 : mask & (~0ull << (start + run));
	}
}

/* A get re-protecting with the baseline, under the VM's locks (arm64: one TLBI at the end). */
static int vm_get_per_mask(big_vm *b, uint64_t *bitmap)
{
	mv_pgt_span span = { 0 };
	int r;

	if (b->x86) {
		pthread_rwlock_rdlock(&b->x->slots_lock);
		pthread_rwlock_wrlock(&b->x->mmu_lock);
		r = mv_dirty_get_log(b->x->slots, 0, false, bitmap, per_mask_x86, b->x);
		pthread_rwlock_unlock(&b->x->mmu_lock);
		pthread_rwlock_unlock(&b->x->slots_lock);
		return r;
	}
	pthread_rwlock_rdlock(&b->a->slots_lock);
	pthread_rwlock_wrlock(&b->a->mmu_lock);
	b->a->s2.tlbi = collect_tlbi;
	b->a->s2.tlbi_arg = &span;
	r = mv_dirty_get_log(b->a->slots, 0, false, bitmap, per_mask_a64, b->a);
	b->a->s2.tlbi = a64_vm_tlbi_ipa;
	b->a->s2.tlbi_arg = b->a;
	if (span.hi)
		a64_vm_tlbi_ipa(b->a, span.lo, span.hi - span.lo);
	pthread_rwlock_unlock(&b->a->mmu_lock);
	pthread_rwlock_unlock(&b->a->slots_lock);
	return r;
}

/* @n distinct random pages of the slot (or consecutive from a random start when @seq). */
static uint64_t *pick_pages(uint64_t n, bool seq, uint64_t *rng)
{
	uint64_t *pages = malloc((n ? n : 1) * sizeof(*pages));
	uint8_t *taken = seq ? NULL : calloc(BIG_PAGES / 8, 1);
	uint64_t start = rng_next(rng) % (BIG_PAGES - n);

	if (!pages || (!seq && !taken))
		die("out of memory");
	for (uint64_t i = 0; i < n; i++) {
		uint64_t p = start + i;

		while (!seq) {
			p = rng_next(rng) % BIG_PAGES;
			if (!(taken[p / 8] & (1u << (p % 8)))) {
				taken[p / 8] |= (uint8_t)(1u << (p % 8));
				break;
			}
		}
		pages[i] = p;
	}
	free(taken);
	return pages;
}

static uint64_t popcount_words(const uint64_t *w, uint64_t n)
{
	uint64_t c = 0;

	for (uint64_t i = 0; i < n; i++)
		c += (uint64_t)__builtin_popcountll(w[i]);
	return c;
}

/* A get of slot 0 by @get into @bitmap, which must report the @n dirty pages; its time in ns. */
static double timed_get(int (*get)(big_vm *, uint64_t *), big_vm *b, uint64_t *bitmap, uint64_t n)
{
	double t0 = now_ns(), t;

	if (get(b, bitmap))
		die("get_dirty_log failed");
	t = now_ns() - t0;
	if (popcount_words(bitmap, BIG_WORDS) != n)
		die("the get did not report the dirty pages");
	return t;
}

/* The dirty-page patterns of sections 1 and 2. */
typedef struct pattern {
	double fraction;
	bool seq;
} pattern;

static const pattern patterns[] = {
	{ 0, false }, { 0.001, false }, { 0.01, false }, { 0.10, false }, { 0.01, true }, { 0.10, true },
};
#define NR_PATTERNS (sizeof(patterns) / sizeof(patterns[0]))

static const char *pattern_name(const pattern *p, char *buf, size_t len)
{
	snprintf(buf, len, "%5.1f%% %s", p->fraction * 100, p->seq ? "run" : "random");
	return buf;
}

/* ---- 1. get_dirty_log of 64 GiB ---- */

static void bench_get(uint8_t *host, int rounds)
{
	uint64_t *bitmap = malloc(BIG_WORDS * sizeof(uint64_t));
	uint64_t rng = 0x64d1e7;

	if (!bitmap)
		die("out of memory");
	printf("1. KVM_GET_DIRTY_LOG of a 64 GiB slot (%" PRIu64 " pages, %" PRIu64
	       " KiB bitmap); dirty pages mapped writable, re-protected by the get;\n"
	       "   baseline: the same get re-protecting with one walk from the root per 64-page mask\n",
	       (uint64_t)BIG_PAGES, (uint64_t)BIG_WORDS * 8 / 1024);
	printf("   %-9s %-13s %8s %10s %9s %9s %12s %10s %8s %8s\n", "arch", "dirty", "pages",
	       "median ms", "min ms", "ns/page", "baseline ms", "old/new", "goal", "tables");
	for (unsigned x86 = 0; x86 < 2; x86++) {
		for (unsigned f = 0; f < NR_PATTERNS; f++) {
			uint64_t n = (uint64_t)(patterns[f].fraction * (double)BIG_PAGES);
			uint64_t *pages = pick_pages(n, patterns[f].seq, &rng);
			double t[MAX_ROUNDS], tb[MAX_ROUNDS], med, base;
			char name[32];
			big_vm b;

			big_vm_new(&b, x86, host, 0);
			for (int r = 0; r < rounds; r++) {
				dirty_pages(&b, pages, n);
				t[r] = timed_get(vm_get, &b, bitmap, n);
				dirty_pages(&b, pages, n);
				tb[r] = timed_get(vm_get_per_mask, &b, bitmap, n);
			}
			med = median(t, rounds);
			base = median(tb, rounds);
			printf("   %-9s %-13s %8" PRIu64 " %10.3f %9.3f %9.1f %12.3f %10.1f %8s %8" PRIu64 "\n",
			       arch_name(x86), pattern_name(&patterns[f], name, sizeof(name)), n,
			       med / 1e6, minimum(t, rounds) / 1e6, n ? med / (double)n : 0.0, base / 1e6,
			       base / med, med < 5e6 ? "met" : "missed", vm_tables(&b));
			big_vm_free(&b);
			free(pages);
		}
	}
	free(bitmap);
}

/* ---- 2. manual protect: get (copy) and clear (re-protect) apart ---- */

static void bench_manual(uint8_t *host, int rounds)
{
	uint64_t *bitmap = malloc(BIG_WORDS * sizeof(uint64_t));
	uint64_t rng = 0x6d616e;

	if (!bitmap)
		die("out of memory");
	printf("\n2. Manual protect on the 64 GiB slot: KVM_GET_DIRTY_LOG copies, KVM_CLEAR_DIRTY_LOG of the "
	       "whole slot with that bitmap re-protects; medians\n");
	printf("   %-9s %-13s %8s %12s %12s %12s %12s\n", "arch", "dirty", "pages", "get ms",
	       "clear ms", "total ms", "clear ns/pg");
	for (unsigned x86 = 0; x86 < 2; x86++) {
		for (unsigned f = 1; f < NR_PATTERNS; f++) {
			uint64_t n = (uint64_t)(patterns[f].fraction * (double)BIG_PAGES);
			uint64_t *pages = pick_pages(n, patterns[f].seq, &rng);
			double tg[MAX_ROUNDS], tc[MAX_ROUNDS], g, c;
			char name[32];
			big_vm b;

			big_vm_new(&b, x86, host, BV_MANUAL);
			for (int r = 0; r < rounds; r++) {
				double t0;

				dirty_pages(&b, pages, n);
				tg[r] = timed_get(vm_get, &b, bitmap, n);
				t0 = now_ns();
				if (vm_clear(&b, bitmap))
					die("clear_dirty_log failed");
				tc[r] = now_ns() - t0;
			}
			g = median(tg, rounds);
			c = median(tc, rounds);
			printf("   %-9s %-13s %8" PRIu64 " %12.3f %12.3f %12.3f %12.1f\n", arch_name(x86),
			       pattern_name(&patterns[f], name, sizeof(name)), n, g / 1e6, c / 1e6,
			       (g + c) / 1e6, c / (double)n);
			big_vm_free(&b);
			free(pages);
		}
	}
	free(bitmap);
}

/* ---- 3. ring vs bitmap ---- */

typedef struct vmm_bitmap {
	uint64_t *words;
	uint64_t n;
} vmm_bitmap;

/* What QEMU does with each harvested entry: set the page in its own dirty bitmap. */
static void collect(void *opaque, const hv_dirty_gfn *g)
{
	vmm_bitmap *v = opaque;

	v->words[g->offset / 64] |= 1ull << (g->offset % 64);
	v->n++;
}

static int vm_harvest(big_vm *b, vmm_bitmap *v)
{
	return b->x86 ? mv_x86_vcpu_dirty_ring_harvest(b->xv, collect, v)
		      : mv_a64_vcpu_dirty_ring_harvest(b->av, collect, v);
}

static int vm_reset(big_vm *b)
{
	return b->x86 ? mv_x86_vm_dirty_rings_reset(b->x) : mv_a64_vm_dirty_rings_reset(b->a);
}

static void bench_ring_vs_bitmap(uint8_t *host, int rounds)
{
	static const struct { uint64_t n; bool seq; } sets[] = {
		{ 1024, false }, { 16384, false }, { 65000, false }, { 65000, true },
	};
	vmm_bitmap v = { calloc(BIG_WORDS, sizeof(uint64_t)), 0 };
	uint64_t rng = 0x7269;

	if (!v.words)
		die("out of memory");
	printf("\n3. The same dirty pages through a %u-entry ring (harvest into a VMM bitmap + reset) "
	       "and through the bitmap (get of the 64 GiB slot); medians\n", RING_ENTRIES);
	printf("   %-9s %-14s %9s %11s %11s %11s %9s %11s %9s %8s\n", "arch", "pages", "",
	       "harvest ms", "reset ms", "ring ms", "ns/page", "bitmap ms", "ns/page", "ring/bm");
	for (unsigned x86 = 0; x86 < 2; x86++) {
		for (unsigned s = 0; s < sizeof(sets) / sizeof(sets[0]); s++) {
			uint64_t *pages = pick_pages(sets[s].n, sets[s].seq, &rng);
			double th[MAX_ROUNDS], tr[MAX_ROUNDS], tb[MAX_ROUNDS], h, r, bm;
			big_vm ring, bmp;

			big_vm_new(&ring, x86, host, BV_RING);
			big_vm_new(&bmp, x86, host, 0);
			for (int k = 0; k < rounds; k++) {
				double t0;
				int got;

				dirty_pages(&ring, pages, sets[s].n);
				dirty_pages(&bmp, pages, sets[s].n);
				v.n = 0;
				t0 = now_ns();
				got = vm_harvest(&ring, &v);
				th[k] = now_ns() - t0;
				t0 = now_ns();
				if (vm_reset(&ring) != got || (uint64_t)got != sets[s].n)
					die("the ring lost entries");
				tr[k] = now_ns() - t0;
				tb[k] = timed_get(vm_get, &bmp, v.words, sets[s].n);
			}
			h = median(th, rounds);
			r = median(tr, rounds);
			bm = median(tb, rounds);
			printf("   %-9s %6" PRIu64 " %-10s %11.3f %11.3f %11.3f %9.1f %11.3f %9.1f %8.2f\n",
			       arch_name(x86), sets[s].n, sets[s].seq ? "in a run" : "random", h / 1e6,
			       r / 1e6, (h + r) / 1e6, (h + r) / (double)sets[s].n, bm / 1e6,
			       bm / (double)sets[s].n, (h + r) / bm);
			big_vm_free(&ring);
			big_vm_free(&bmp);
			free(pages);
		}
	}
	free(v.words);
}

/* ---- 4. lazy vs eager split (arm64) ---- */

typedef struct split_run {
	double start_ns;              /* logging turned on */
	double writes_ns;             /* one store per block */
	uint64_t tables_before, tables_after_start, tables_after_writes;
} split_run;

static void store(mv_a64_vcpu *vcpu, uint64_t ipa)
{
	mv_a64_insn in = { .op = MV_A64_STORE, .size = 8, .rt = 1, .rn = MV_A64_RN_ABS, .addr = ipa,
			   .sf = true };
	mv_a64_outcome out;

	if (mv_a64_vcpu_exec(vcpu, &in, &out) || out.result != MV_A64_DONE)
		die("a store did not complete");
}

static void split_once(uint64_t chunk, split_run *res)
{
	reservation res_mem = reserve(SPLIT_SIZE, 2 * MIB);
	uint8_t *host = res_mem.base;
	hv_memslot m = { .slot = 0, .gpa = SPLIT_GPA, .size = SPLIT_SIZE, .hva = host };
	mv_a64_regs regs = { .pc = SPLIT_GPA, .el = 1 };
	mv_error err = { 0 };
	mv_a64_vcpu *vcpu;
	mv_a64_vm *vm;
	mv_s2_stats st;
	double t0;

	if (mv_a64_vm_new(NULL, &vm, &err) || mv_a64_vcpu_new(vm, 0, &vcpu, &err))
		die("%s", err.msg);
	mv_a64_vcpu_set_regs(vcpu, &regs);
	if (mv_soft_host_declare(mv_a64_vm_host(vm), (uint64_t)(uintptr_t)host, SPLIT_SIZE,
				 MV_HOST_BACKING_HUGETLB, 2 * MIB) ||
	    mv_a64_vm_enable_eager_split(vm, chunk) || mv_a64_vm_set_memslot(vm, &m))
		die("cannot set up the split slot");
	/* One write per 2 MiB maps the slot with writable blocks. */
	for (uint64_t a = 0; a < SPLIT_SIZE; a += 2 * MIB)
		store(vcpu, SPLIT_GPA + a);
	mv_a64_vm_s2_stats(vm, &st);
	res->tables_before = st.tables;
	m.flags = HV_MEM_LOG_DIRTY_PAGES;
	t0 = now_ns();
	if (mv_a64_vm_set_memslot(vm, &m))
		die("cannot start logging");
	res->start_ns = now_ns() - t0;
	mv_a64_vm_s2_stats(vm, &st);
	res->tables_after_start = st.tables;
	t0 = now_ns();
	for (uint64_t a = PAGE; a < SPLIT_SIZE; a += 2 * MIB)
		store(vcpu, SPLIT_GPA + a);
	res->writes_ns = now_ns() - t0;
	mv_a64_vm_s2_stats(vm, &st);
	res->tables_after_writes = st.tables;
	mv_a64_vcpu_free(vcpu);
	mv_a64_vm_free(vm);
	munmap(res_mem.raw, res_mem.raw_len);
}

static void bench_split(int rounds)
{
	static const struct { const char *name; uint64_t chunk; } modes[] = {
		{ "lazy (KVM's default)", 0 }, { "eager, 2 MiB chunks", 2 * MIB },
		{ "eager, 1 GiB chunks", GIB },
	};
	const uint64_t blocks = SPLIT_SIZE / (2 * MIB);

	printf("\n4. Logging starts on a 1 GiB arm64 slot mapped by %" PRIu64 " writable 2 MiB blocks, then one "
	       "write per block; medians\n", blocks);
	printf("   %-22s %14s %16s %14s %22s\n", "split", "start ms", "writes ms", "us/write",
	       "tables: before/start/end");
	for (unsigned mo = 0; mo < sizeof(modes) / sizeof(modes[0]); mo++) {
		double ts[MAX_ROUNDS], tw[MAX_ROUNDS];
		split_run res = { 0 };

		for (int r = 0; r < rounds; r++) {
			split_once(modes[mo].chunk, &res);
			ts[r] = res.start_ns;
			tw[r] = res.writes_ns;
		}
		{
			double s = median(ts, rounds), w = median(tw, rounds);

			printf("   %-22s %14.3f %16.3f %14.2f %10" PRIu64 "/%" PRIu64 "/%" PRIu64 "\n",
			       modes[mo].name, s / 1e6, w / 1e6, w / (double)blocks / 1e3, res.tables_before,
			       res.tables_after_start, res.tables_after_writes);
		}
	}
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : DEFAULT_ROUNDS;
	reservation big;

	if (rounds < 1 || rounds > MAX_ROUNDS)
		die("rounds must be 1..15");
	big = reserve(BIG_SIZE, 2 * MIB);
	printf("bench_soft_dirty: %d rounds\n\n", rounds);
	bench_get(big.base, rounds);
	bench_manual(big.base, rounds);
	bench_ring_vs_bitmap(big.base, rounds);
	bench_split(rounds);
	munmap(big.raw, big.raw_len);
	return 0;
}
