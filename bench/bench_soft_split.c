/*
 * Eager against lazy splitting of huge pages when dirty logging starts on
 * an x86 soft VM (KVM's eager_page_split, on by default, against splitting
 * on the first write fault), all measured in one run:
 *
 * A THP-backed slot (MADV_HUGEPAGE memory, declared THP to the host page
 * oracle, populated) is first mapped by one read per 2 MiB, so EPT holds
 * 2 MiB pages. Then, per mode:
 *  1. the time to turn logging on (KVM_SET_USER_MEMORY_REGION with
 *     LOG_DIRTY_PAGES: eager splits every huge page to 4 KiB pages and
 *     write-protects them; lazy write-protects the huge pages whole);
 *  2. the time for the first write to N pages afterwards, and the EPT
 *     exits it takes: sparse (one page per 2 MiB) and dense (every page).
 * Lazy moves the split into the first write of each 2 MiB region (a slow
 * fault under mmu_lock for writing); eager pays for every region at once,
 * written or not.
 *
 * Figures are medians of ROUNDS rounds, printed with their ratios. Nothing
 * is asserted. Usage: bench_soft_split [rounds]   (default 5)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "memvirt/soft_x86.h"
#define BENCH_NAME "bench_soft_split"
#include "bench_util.h"

#define RAM_GPA        0x40000000ull
#define SLOT_SIZE      (256ull << 20)
#define PAGE           4096ull
#define SZ_2M          (2ull << 20)
#define DEFAULT_ROUNDS 5
#define MAX_ROUNDS     64

/* THP host memory, 2 MiB aligned, populated (the kernel maps it by PMDs if it can). */
static uint8_t *thp_alloc(void)
{
	size_t len = SLOT_SIZE + SZ_2M;
	uint8_t *raw = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t *mem;

	if (raw == MAP_FAILED)
		die("cannot map host memory");
	mem = (uint8_t *)(((uintptr_t)raw + SZ_2M - 1) & ~(uintptr_t)(SZ_2M - 1));
	madvise(mem, SLOT_SIZE, MADV_HUGEPAGE);
	for (uint64_t off = 0; off < SLOT_SIZE; off += PAGE)
		mem[off] = 1;
	return mem;
}

typedef struct bench_vm {
	mv_x86_vm *vm;
	mv_x86_vcpu *vcpu;
	uint8_t *mem;
	unsigned exits;
} bench_vm;

static void count_exit(void *arg, const mv_x86_fault_event *ev)
{
	(void)ev;
	((bench_vm *)arg)->exits++;
}

static void set_slot(bench_vm *b, uint32_t flags)
{
	hv_memslot m = { .slot = 0, .flags = flags, .gpa = RAM_GPA, .size = SLOT_SIZE, .hva = b->mem };

	if (mv_x86_vm_set_memslot(b->vm, &m))
		die("set_memslot failed");
}

static void bench_access(bench_vm *b, mv_x86_acc acc, uint64_t gpa)
{
	mv_x86_access a = { .acc = acc, .gva = gpa, .size = 8, .value = gpa };
	mv_x86_outcome out;

	if (mv_x86_vcpu_access(b->vcpu, &a, &out) || out.result != MV_X86_DONE)
		die("an access did not complete");
}

/* A VM over @mem with every 2 MiB region mapped by a read; the 2 MiB leaves it got. */
static uint64_t bench_vm_new(bench_vm *b, uint8_t *mem, bool lazy)
{
	mv_x86_vm_config cfg = { .lazy_split = lazy };
	mv_error err = { 0 };
	mv_x86_vm_stats st;

	memset(b, 0, sizeof(*b));
	b->mem = mem;
	if (mv_x86_vm_new(&cfg, &b->vm, &err) || mv_x86_vcpu_new(b->vm, 0, &b->vcpu, &err))
		die("%s", err.msg);
	if (mv_soft_host_declare(mv_x86_vm_host(b->vm), (uint64_t)(uintptr_t)mem, SLOT_SIZE,
				 MV_HOST_BACKING_THP, SZ_2M))
		die("cannot declare THP memory");
	mv_x86_vcpu_set_trace(b->vcpu, count_exit, b);
	set_slot(b, 0);
	for (uint64_t off = 0; off < SLOT_SIZE; off += SZ_2M)
		bench_access(b, MV_X86_READ, RAM_GPA + off);
	mv_x86_vm_get_stats(b->vm, &st);
	return st.mapped[2];
}

static void bench_vm_free(bench_vm *b)
{
	mv_x86_vcpu_free(b->vcpu);
	mv_x86_vm_free(b->vm);
}

/* One round of one mode: enable time, then writes every @stride bytes (time, exits). */
typedef struct result {
	double enable_ns, write_ns;
	unsigned exits;
	uint64_t splits, huge;
} result;

static result bench_round(uint8_t *mem, bool lazy, uint64_t stride)
{
	bench_vm b;
	result r = { 0 };
	mv_x86_vm_stats st;
	double t;

	r.huge = bench_vm_new(&b, mem, lazy);
	t = now_ns();
	set_slot(&b, HV_MEM_LOG_DIRTY_PAGES);
	r.enable_ns = now_ns() - t;
	b.exits = 0;
	t = now_ns();
	for (uint64_t off = 0; off < SLOT_SIZE; off += stride)
		bench_access(&b, MV_X86_WRITE, RAM_GPA + off);
	r.write_ns = now_ns() - t;
	r.exits = b.exits;
	mv_x86_vm_get_stats(b.vm, &st);
	r.splits = st.eager_splits;
	bench_vm_free(&b);
	return r;
}

typedef struct figures {
	double enable_ns, write_ns;
	unsigned exits;
	uint64_t splits, huge;
} figures;

static figures bench_mode(uint8_t *mem, bool lazy, uint64_t stride, int rounds)
{
	double enable[MAX_ROUNDS], write[MAX_ROUNDS];
	figures f = { 0 };

	for (int i = 0; i < rounds; i++) {
		result r = bench_round(mem, lazy, stride);

		enable[i] = r.enable_ns;
		write[i] = r.write_ns;
		f.exits = r.exits;
		f.splits = r.splits;
		f.huge = r.huge;
	}
	f.enable_ns = median(enable, rounds);
	f.write_ns = median(write, rounds);
	return f;
}

static void report(const char *what, uint64_t stride, const figures *eager, const figures *lazy)
{
	uint64_t n = SLOT_SIZE / stride;

	printf("\n%s: first write to %llu pages (one every %llu KiB)\n", what, (unsigned long long)n,
	       (unsigned long long)(stride >> 10));
	printf("  %-6s enable logging %9.3f ms   first writes %9.3f ms (%6.2f us/page)   EPT exits %7u   "
	       "eager splits %llu\n",
	       "eager", eager->enable_ns / 1e6, eager->write_ns / 1e6, eager->write_ns / 1e3 / n,
	       eager->exits, (unsigned long long)eager->splits);
	printf("  %-6s enable logging %9.3f ms   first writes %9.3f ms (%6.2f us/page)   EPT exits %7u   "
	       "eager splits %llu\n",
	       "lazy", lazy->enable_ns / 1e6, lazy->write_ns / 1e6, lazy->write_ns / 1e3 / n,
	       lazy->exits, (unsigned long long)lazy->splits);
	printf("  ratios eager/lazy: enable %.2fx, first writes %.2fx, enable + writes %.2fx\n",
	       eager->enable_ns / lazy->enable_ns, eager->write_ns / lazy->write_ns,
	       (eager->enable_ns + eager->write_ns) / (lazy->enable_ns + lazy->write_ns));
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : DEFAULT_ROUNDS;
	static const struct {
		const char *what;
		uint64_t stride;
	} sets[] = {
		{ "sparse", SZ_2M },
		{ "dense", PAGE },
	};
	uint8_t *mem;

	if (rounds < 1 || rounds > MAX_ROUNDS)
		rounds = DEFAULT_ROUNDS;
	mem = thp_alloc();
	printf("bench_soft_split: %llu MiB THP-backed slot, %d rounds (medians)\n",
	       (unsigned long long)(SLOT_SIZE >> 20), rounds);
	for (unsigned i = 0; i < sizeof(sets) / sizeof(sets[0]); i++) {
		figures eager = bench_mode(mem, false, sets[i].stride, rounds);
		figures lazy = bench_mode(mem, true, sets[i].stride, rounds);

		if (i == 0)
			printf("EPT 2 MiB leaves after the first reads: %llu of %llu regions%s\n",
			       (unsigned long long)eager.huge, (unsigned long long)(SLOT_SIZE / SZ_2M),
			       eager.huge ? "" : " (no THP on this host: the figures compare 4 KiB pages)");
		report(sets[i].what, sets[i].stride, &eager, &lazy);
	}
	return 0;     /* the host memory goes with the process */
}
