/*
 * The software arm64 MMU's figures, all measured in one run:
 *
 * 1. Translations per second through mv_a64_vcpu_exec (an 8-byte load on
 *    RAM already mapped at stage 2): cycling over a few pages that stay in
 *    the vCPU's TLB (hits), against cycling over more pages than it holds
 *    (misses: a stage-2 walk each time), with stage 1 off and then on
 *    (a miss is then a two-dimensional walk: every stage-1 table read goes
 *    through stage 2). The TLB's own counters confirm the hit rates.
 * 2. 4 KiB fault-ins per second: the handler on, a fresh memslot over
 *    freshly mapped host memory, one store per page (translation fault,
 *    host page fault-in, stage-2 install, replay).
 * 3. What 2 MiB blocks save on a THP-backed slot: stage-2 faults (and time)
 *    to touch every page of N MiB with MADV_HUGEPAGE memory against plain
 *    4 KiB memory.
 *
 * Figures are medians of ROUNDS rounds. Nothing is asserted.
 * Usage: bench_soft_mmu [rounds]   (default 5)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "memvirt/soft_arm64.h"
#define BENCH_NAME "bench_soft_mmu"
#include "bench_util.h"

#define RAM_GPA        0x40000000ull
#define RAM_SIZE       (64ull << 20)         /* 16384 pages: 64 times the vCPU's TLB */
#define HOT_PAGES      64                    /* well inside the TLB (256 entries) */
#define XLAT_ACCESSES  (1u << 20)
#define FAULT_SIZE     (64ull << 20)
#define THP_SIZE       (64ull << 20)
#define S1_TABLES_GPA  (RAM_GPA + RAM_SIZE)  /* stage-1 tables: a slot of their own */
#define S1_TABLES_SIZE (1ull << 20)
#define DEFAULT_ROUNDS 5
#define PAGE           4096ull
#define MIB            (1ull << 20)

/* A VM with one vCPU; host memory mapped per slot and counted aborts. */
typedef struct bench_vm {
	mv_a64_vm *vm;
	mv_a64_vcpu *vcpu;
	void *mem[4];
	size_t mem_size[4];
	unsigned nr_mem;
	uint64_t aborts;
} bench_vm;

static void count_abort(void *arg, const mv_a64_abort_event *ev)
{
	(void)ev;
	((bench_vm *)arg)->aborts++;
}

static void vm_new(bench_vm *b)
{
	mv_a64_vm_config cfg = { 0 };
	mv_a64_regs regs;
	mv_error err = { 0 };

	memset(b, 0, sizeof(*b));
	if (mv_a64_vm_new(&cfg, &b->vm, &err) || mv_a64_vcpu_new(b->vm, 0, &b->vcpu, &err))
		die("%s", err.msg);
	mv_a64_vcpu_set_trace(b->vcpu, count_abort, b);
	mv_a64_vcpu_get_regs(b->vcpu, &regs);
	regs.el = 1;
	mv_a64_vcpu_set_regs(b->vcpu, &regs);
}

/* Fresh host memory (THP-advised and declared when @thp) as memslot @id at @gpa. */
static uint8_t *vm_add_slot(bench_vm *b, unsigned id, uint64_t gpa, uint64_t size, bool thp)
{
	size_t len = size + (thp ? 2 * MIB : 0);
	uint8_t *map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t *hva = map;
	hv_memslot m = { .slot = id, .gpa = gpa, .size = size };

	if (map == MAP_FAILED)
		die("cannot map guest RAM");
	if (thp) {
		hva = (uint8_t *)(((uintptr_t)map + 2 * MIB - 1) & ~(uintptr_t)(2 * MIB - 1));
		if (madvise(hva, size, MADV_HUGEPAGE) ||
		    mv_soft_host_declare(mv_a64_vm_host(b->vm), (uintptr_t)hva, size,
					 MV_HOST_BACKING_THP, 2 * MIB))
			die("cannot advise MADV_HUGEPAGE");
	}
	m.hva = hva;
	if (mv_a64_vm_set_memslot(b->vm, &m))
		die("KVM_SET_USER_MEMORY_REGION failed");
	b->mem[b->nr_mem] = map;
	b->mem_size[b->nr_mem++] = len;
	return hva;
}

static void vm_free(bench_vm *b)
{
	mv_a64_vcpu_free(b->vcpu);
	mv_a64_vm_free(b->vm);
	for (unsigned i = 0; i < b->nr_mem; i++)
		munmap(b->mem[i], b->mem_size[i]);
}

static mv_a64_insn insn(const char *text)
{
	mv_a64_insn in;
	mv_error err = { 0 };

	if (mv_a64_insn_parse(text, &in, &err))
		die("%s", err.msg);
	return in;
}

/* One access at @addr; dies unless it completes. */
static void do_access(bench_vm *b, mv_a64_insn *in, uint64_t addr)
{
	mv_a64_outcome o;

	in->addr = addr;
	if (mv_a64_vcpu_exec(b->vcpu, in, &o) || o.result != MV_A64_DONE)
		die("an access did not complete");
}

/* ---- 1. translations ---- */

/*
 * Identity stage-1 tables for [RAM_GPA, RAM_GPA + RAM_SIZE) with 4 KiB
 * pages (ARM ARM D8.3: table descriptor 0b11, page descriptor 0b11 with
 * AF, bit 10), TCR_EL1 T0SZ = 25 (39-bit VAs: walk from level 1), in the
 * table slot at S1_TABLES_GPA.
 */
static void build_stage1(bench_vm *b, uint8_t *tables)
{
	uint64_t *l1 = (uint64_t *)tables, *l2 = (uint64_t *)(tables + PAGE);
	mv_a64_sysregs sys;

	l1[RAM_GPA >> 30] = (S1_TABLES_GPA + PAGE) | 3;
	for (uint64_t va = RAM_GPA; va < RAM_GPA + RAM_SIZE; va += PAGE) {
		uint64_t l3_index = (va - RAM_GPA) >> 21;
		uint64_t *l3 = (uint64_t *)(tables + (2 + l3_index) * PAGE);

		l2[(va >> 21) & 511] = (S1_TABLES_GPA + (2 + l3_index) * PAGE) | 3;
		l3[(va >> 12) & 511] = va | (1ull << 10) | (3ull << 8) | 3;
	}
	mv_a64_vcpu_get_sysregs(b->vcpu, &sys);
	sys.tcr_el1 = 25 | (1ull << 23) | (2ull << 32);   /* T0SZ 25, EPD1, IPS 40 bits */
	sys.ttbr0_el1 = S1_TABLES_GPA;
	sys.sctlr_el1 |= 1;                               /* M: stage 1 on */
	mv_a64_vcpu_set_sysregs(b->vcpu, &sys);
}

typedef struct xlat_figures {
	double hit_ns, miss_ns;
	double hit_rate_hot, hit_rate_cold;
} xlat_figures;

/* ns per access cycling over @pages pages; *hit_rate from the TLB's counters. */
static double time_cycle(bench_vm *b, mv_a64_insn *in, uint64_t pages, double *hit_rate)
{
	mv_tlb *tlb = mv_a64_vcpu_tlb(b->vcpu);
	mv_tlb_stats s0, s1;
	double t0, t;

	for (uint64_t p = 0; p < pages; p++)          /* warm: every page mapped and walked once */
		do_access(b, in, RAM_GPA + p * PAGE);
	mv_tlb_get_stats(tlb, &s0);
	t0 = now_ns();
	for (uint32_t i = 0; i < XLAT_ACCESSES; i++)
		do_access(b, in, RAM_GPA + (i % pages) * PAGE + (i & 0xff8));
	t = (now_ns() - t0) / XLAT_ACCESSES;
	mv_tlb_get_stats(tlb, &s1);
	*hit_rate = (double)(s1.hits - s0.hits) / (double)(s1.hits - s0.hits + s1.misses - s0.misses);
	return t;
}

static void measure_xlat(bool stage1, int rounds, xlat_figures *f)
{
	double hit[rounds], miss[rounds];
	mv_a64_insn in = insn("ldr x1, [0x40000000]");
	bench_vm b;

	vm_new(&b);
	vm_add_slot(&b, 0, RAM_GPA, RAM_SIZE, false);
	if (stage1)
		build_stage1(&b, vm_add_slot(&b, 1, S1_TABLES_GPA, S1_TABLES_SIZE, false));
	for (int r = 0; r < rounds; r++) {
		hit[r] = time_cycle(&b, &in, HOT_PAGES, &f->hit_rate_hot);
		miss[r] = time_cycle(&b, &in, RAM_SIZE / PAGE, &f->hit_rate_cold);
	}
	f->hit_ns = median(hit, rounds);
	f->miss_ns = median(miss, rounds);
	vm_free(&b);
}

/* ---- 2. 4 KiB fault-ins ---- */

/* ns per fault touching every page of a fresh slot; *faults per round. */
static double measure_faults(int rounds, uint64_t *faults)
{
	double ns[rounds];
	mv_a64_insn in = insn("str x1, [0x40000000]");

	for (int r = 0; r < rounds; r++) {
		bench_vm b;
		double t0;

		vm_new(&b);
		vm_add_slot(&b, 0, RAM_GPA, FAULT_SIZE, false);
		t0 = now_ns();
		for (uint64_t off = 0; off < FAULT_SIZE; off += PAGE)
			do_access(&b, &in, RAM_GPA + off);
		ns[r] = (now_ns() - t0) / (double)b.aborts;
		*faults = b.aborts;
		vm_free(&b);
	}
	return median(ns, rounds);
}

/* ---- 3. THP ---- */

typedef struct touch_figures {
	uint64_t faults;
	double ms;
	uint64_t blocks;      /* 2 MiB stage-2 leaves at the end */
} touch_figures;

/* Touch every 4 KiB page of a fresh THP-advised or plain slot (median time). */
static void measure_touch(bool thp, int rounds, touch_figures *f)
{
	double ms[rounds];
	mv_a64_insn in = insn("str x1, [0x40000000]");

	for (int r = 0; r < rounds; r++) {
		mv_s2_stats st;
		bench_vm b;
		double t0;

		vm_new(&b);
		vm_add_slot(&b, 0, RAM_GPA, THP_SIZE, thp);
		t0 = now_ns();
		for (uint64_t off = 0; off < THP_SIZE; off += PAGE)
			do_access(&b, &in, RAM_GPA + off);
		ms[r] = (now_ns() - t0) / 1e6;
		mv_a64_vm_s2_stats(b.vm, &st);
		f->faults = b.aborts;
		f->blocks = st.leaves[2];
		vm_free(&b);
	}
	f->ms = median(ms, rounds);
}

int main(int argc, char *argv[])
{
	int rounds = argc > 1 ? atoi(argv[1]) : DEFAULT_ROUNDS;
	xlat_figures s2, s12;
	touch_figures thp, plain;
	uint64_t faults = 0;
	double fault_ns;

	if (rounds < 1)
		die("usage: bench_soft_mmu [rounds >= 1]");
	measure_xlat(false, rounds, &s2);
	measure_xlat(true, rounds, &s12);
	fault_ns = measure_faults(rounds, &faults);
	measure_touch(true, rounds, &thp);
	measure_touch(false, rounds, &plain);

	printf("bench_soft_mmu: median of %d rounds\n", rounds);
	printf("\nTranslations: 8-byte loads on mapped RAM, %u per figure (vCPU TLB: 256 entries)\n",
	       XLAT_ACCESSES);
	printf("  %-26s %10s %14s %10s %14s %8s\n", "", "TLB hit", "per second", "TLB miss",
	       "per second", "miss/hit");
	printf("  %-26s %7.1f ns %12.2f M %7.1f ns %12.2f M %7.1fx\n", "stage 2 only",
	       s2.hit_ns, 1e3 / s2.hit_ns, s2.miss_ns, 1e3 / s2.miss_ns, s2.miss_ns / s2.hit_ns);
	printf("  %-26s %7.1f ns %12.2f M %7.1f ns %12.2f M %7.1fx\n", "stage 1 + stage 2 (4 KiB)",
	       s12.hit_ns, 1e3 / s12.hit_ns, s12.miss_ns, 1e3 / s12.miss_ns,
	       s12.miss_ns / s12.hit_ns);
	printf("  TLB hit rate: %d hot pages %.1f%%, %llu cold pages %.1f%% (stage 2 only); "
	       "%.1f%% / %.1f%% (both stages)\n", HOT_PAGES, 100 * s2.hit_rate_hot,
	       (unsigned long long)(RAM_SIZE / PAGE), 100 * s2.hit_rate_cold,
	       100 * s12.hit_rate_hot, 100 * s12.hit_rate_cold);
	printf("  2D walk miss / stage-2 walk miss: %.2fx\n", s12.miss_ns / s2.miss_ns);

	printf("\n4 KiB fault-ins: one store per page of a fresh %llu MiB slot (handler on)\n",
	       (unsigned long long)(FAULT_SIZE / MIB));
	printf("  %llu faults, %.2f us per fault-in, %.0f fault-ins per second\n",
	       (unsigned long long)faults, fault_ns / 1e3, 1e9 / fault_ns);

	printf("\nTHP: one store per 4 KiB page of a fresh %llu MiB slot\n",
	       (unsigned long long)(THP_SIZE / MIB));
	printf("  %-22s %10s %10s %12s\n", "", "faults", "2M blocks", "time");
	printf("  %-22s %10llu %10llu %9.2f ms\n", "MADV_HUGEPAGE (THP)",
	       (unsigned long long)thp.faults, (unsigned long long)thp.blocks, thp.ms);
	printf("  %-22s %10llu %10llu %9.2f ms\n", "4 KiB pages",
	       (unsigned long long)plain.faults, (unsigned long long)plain.blocks, plain.ms);
	printf("  faults saved by 2 MiB blocks: %llu (%.1fx fewer), time %.1fx less\n",
	       (unsigned long long)(plain.faults - thp.faults),
	       (double)plain.faults / (double)(thp.faults ? thp.faults : 1), plain.ms / thp.ms);
	if (!thp.blocks)
		printf("  (no 2 MiB block was mapped: the host gave the THP slot no huge page;\n"
		       "   see /sys/kernel/mm/transparent_hugepage/enabled)\n");
	return 0;
}
