/*
 * Dirty-logging figures of the software KVM on the arm64 soft VM, all
 * measured in one run:
 *
 * 1. KVM_GET_DIRTY_LOG on a 64 GiB slot (16 Mi pages, a MAP_NORESERVE
 *    reservation that is never touched) with 0%, 0.1%, 1% and 10% of its
 *    pages dirty at random: each dirty page is mapped writable at stage 2
 *    and has its bit set, so a get exchanges the 2 MiB bitmap word by word
 *    and write-protects every dirty page (under mmu_lock, with the TLBI).
 *    The goal is under 5 ms per get.
 * 2. Ring against bitmap for the same dirty pages (random, and one run of
 *    consecutive pages): a VMM harvesting the ring into its own bitmap and
 *    resetting it (re-protect), against a get of the whole slot's bitmap;
 *    per harvest and per dirty page.
 * 3. Lazy against eager splitting of a 1 GiB hugetlb-declared slot mapped
 *    with 2 MiB blocks when logging starts: the time logging takes to
 *    start, then the first write to one page of every block (through
 *    mv_a64_vcpu_exec: a block-breaking fault when lazy, a page
 *    permission fault when eager), and the stage-2 tables each leaves.
 *
 * Figures are medians of ROUNDS rounds (minimum printed too). Nothing is
 * asserted. Usage: bench_soft_dirty [rounds]   (default 3)
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "soft/arm64/a64_internal.h"

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
#define DEFAULT_ROUNDS 3
#define MAX_ROUNDS     15

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Sorts @v; its median. */
static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return v[n / 2];
}

static void die(const char *what)
{
	fprintf(stderr, "bench_soft_dirty: %s\n", what);
	exit(1);
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
/* A VM with the 64 GiB logging slot 0                                  */

typedef struct big_vm {
	mv_a64_vm *vm;
	mv_a64_vcpu *vcpu;            /* ring VMs: pushes go to its ring */
	const mv_memslot *slot;       /* bitmap VMs */
	uint8_t *host;
} big_vm;

static void big_vm_new(big_vm *b, uint8_t *host, bool ring)
{
	mv_error err = { 0 };
	hv_memslot m = { .slot = 0, .flags = HV_MEM_LOG_DIRTY_PAGES, .gpa = BIG_GPA,
			 .size = BIG_SIZE, .hva = host };

	memset(b, 0, sizeof(*b));
	b->host = host;
	if (mv_a64_vm_new(NULL, &b->vm, &err))
		die(err.msg);
	if (ring && mv_a64_vm_enable_dirty_ring(b->vm, RING_ENTRIES))
		die("cannot enable dirty rings");
	if (mv_a64_vcpu_new(b->vm, 0, &b->vcpu, &err))
		die(err.msg);
	if (mv_a64_vm_set_memslot(b->vm, &m))
		die("cannot create the 64 GiB slot");
	b->slot = mv_memslots_get(b->vm->slots, 0, 0);
}

static void big_vm_free(big_vm *b)
{
	mv_a64_vcpu_free(b->vcpu);
	mv_a64_vm_free(b->vm);
}

/*
 * What a guest write does to page @p of the slot, without touching host
 * memory: a writable stage-2 page, and its bit or ring entry.
 */
static void dirty_page(big_vm *b, uint64_t p)
{
	mv_error err = { 0 };

	if (mv_a64_vm_s2_install(b->vm, BIG_GPA + p * PAGE, PAGE, (uint64_t)(uintptr_t)b->host + p * PAGE,
				 mv_s2_prot_attr(MV_S2_PROT_R | MV_S2_PROT_W), 3, &err))
		die(err.msg);
	if (b->vcpu->ring) {
		if (mv_dirty_ring_push(b->vcpu->ring, 0, p))
			die("the ring is full");
	} else {
		mv_memslot_mark_dirty(b->slot, b->slot->base_gfn + p);
	}
}

/* @n distinct random pages of the slot (or consecutive from a random start when @seq). */
static uint64_t *pick_pages(uint64_t n, bool seq, uint64_t *rng)
{
	uint64_t *pages = malloc(n * sizeof(*pages));
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

/* ---- 1. get_dirty_log of 64 GiB ---- */

static void bench_get(uint8_t *host, int rounds)
{
	static const double fractions[] = { 0, 0.001, 0.01, 0.10 };
	uint64_t *bitmap = malloc(BIG_WORDS * sizeof(uint64_t));
	uint64_t rng = 0x64d1e7;

	if (!bitmap)
		die("out of memory");
	printf("1. KVM_GET_DIRTY_LOG of a 64 GiB slot (%" PRIu64 " pages, %" PRIu64
	       " KiB bitmap); dirty pages random, mapped writable, re-protected by the get\n",
	       (uint64_t)BIG_PAGES, (uint64_t)BIG_WORDS * 8 / 1024);
	printf("   %-8s %10s %12s %12s %14s %12s\n", "dirty", "pages", "median ms", "min ms",
	       "ns/dirty page", "goal <5 ms");
	for (unsigned f = 0; f < sizeof(fractions) / sizeof(fractions[0]); f++) {
		uint64_t n = (uint64_t)(fractions[f] * (double)BIG_PAGES);
		uint64_t *pages = pick_pages(n, false, &rng);
		double t[MAX_ROUNDS], best;
		mv_s2_stats st;
		big_vm b;

		big_vm_new(&b, host, false);
		for (int r = 0; r < rounds; r++) {
			double t0;

			for (uint64_t i = 0; i < n; i++)
				dirty_page(&b, pages[i]);
			t0 = now_ns();
			if (mv_a64_vm_get_dirty_log(b.vm, 0, bitmap))
				die("get_dirty_log failed");
			t[r] = now_ns() - t0;
			if (popcount_words(bitmap, BIG_WORDS) != n)
				die("the get did not report the dirty pages");
		}
		mv_a64_vm_s2_stats(b.vm, &st);
		best = t[0];
		for (int r = 1; r < rounds; r++)
			best = t[r] < best ? t[r] : best;
		{
			double med = median(t, rounds);

			printf("   %6.1f%% %10" PRIu64 " %12.3f %12.3f %14.1f %12s   (%" PRIu64
			       " stage-2 table pages)\n",
			       fractions[f] * 100, n, med / 1e6, best / 1e6, n ? med / (double)n : 0.0,
			       med < 5e6 ? "met" : "missed", st.tables);
		}
		big_vm_free(&b);
		free(pages);
	}
	free(bitmap);
}

/* ---- 2. ring vs bitmap ---- */

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

static void bench_ring_vs_bitmap(uint8_t *host, int rounds)
{
	static const struct { uint64_t n; bool seq; } sets[] = {
		{ 1024, false }, { 16384, false }, { 65000, false }, { 65000, true },
	};
	vmm_bitmap v = { calloc(BIG_WORDS, sizeof(uint64_t)), 0 };
	uint64_t rng = 0x7269;

	if (!v.words)
		die("out of memory");
	printf("\n2. The same dirty pages through a %u-entry ring (harvest into a VMM bitmap + reset) "
	       "and through the bitmap (get of the 64 GiB slot); medians\n", RING_ENTRIES);
	printf("   %-14s %9s %11s %11s %11s %9s %11s %9s %8s\n", "pages", "", "harvest ms", "reset ms",
	       "ring ms", "ns/page", "bitmap ms", "ns/page", "ring/bm");
	for (unsigned s = 0; s < sizeof(sets) / sizeof(sets[0]); s++) {
		uint64_t *pages = pick_pages(sets[s].n, sets[s].seq, &rng);
		double th[MAX_ROUNDS], tr[MAX_ROUNDS], tb[MAX_ROUNDS], h, r, bm;
		big_vm ring, bmp;

		big_vm_new(&ring, host, true);
		big_vm_new(&bmp, host, false);
		for (int k = 0; k < rounds; k++) {
			double t0;
			int got;

			for (uint64_t i = 0; i < sets[s].n; i++) {
				dirty_page(&ring, pages[i]);
				dirty_page(&bmp, pages[i]);
			}
			v.n = 0;
			t0 = now_ns();
			got = mv_a64_vcpu_dirty_ring_harvest(ring.vcpu, collect, &v);
			th[k] = now_ns() - t0;
			t0 = now_ns();
			if (mv_a64_vm_dirty_rings_reset(ring.vm) != got || (uint64_t)got != sets[s].n)
				die("the ring lost entries");
			tr[k] = now_ns() - t0;
			t0 = now_ns();
			if (mv_a64_vm_get_dirty_log(bmp.vm, 0, v.words))
				die("get_dirty_log failed");
			tb[k] = now_ns() - t0;
			if (popcount_words(v.words, BIG_WORDS) != sets[s].n)
				die("the get did not report the dirty pages");
		}
		h = median(th, rounds);
		r = median(tr, rounds);
		bm = median(tb, rounds);
		printf("   %6" PRIu64 " %-10s %11.3f %11.3f %11.3f %9.1f %11.3f %9.1f %8.2f\n",
		       sets[s].n, sets[s].seq ? "in a run" : "random", h / 1e6, r / 1e6, (h + r) / 1e6,
		       (h + r) / (double)sets[s].n, bm / 1e6, bm / (double)sets[s].n, (h + r) / bm);
		big_vm_free(&ring);
		big_vm_free(&bmp);
		free(pages);
	}
	free(v.words);
}

/* ---- 3. lazy vs eager split ---- */

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
		die(err.msg);
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

	printf("\n3. Logging starts on a 1 GiB slot mapped by %" PRIu64 " writable 2 MiB blocks, then one "
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
	bench_ring_vs_bitmap(big.base, rounds);
	bench_split(rounds);
	munmap(big.raw, big.raw_len);
	return 0;
}
