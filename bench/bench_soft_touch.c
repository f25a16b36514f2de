/*
 * First touch of guest RAM on the soft accelerator against real KVM, in
 * one run: the test guest's `touch` workload (one qword store per 4 KiB
 * page) booted through the vmm library on both accelerators, the real
 * guest on KVM and its access program on soft (docs/vmm.md, "--accel
 * soft"). The cost per page is the vmm_run wall time of `touch mib=64`
 * minus that of `touch mib=1` (the guest's minimum; boot and teardown
 * cancel), divided by the pages between them, as bench_vmm does. Every
 * round runs the four configurations once, alternating accelerators, so
 * host drift hits both alike; medians over the rounds. Never asserted.
 *
 * Usage: bench_soft_touch [rounds]   (default 7)
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "memvirt/vmm.h"
#define BENCH_NAME "bench_soft_touch"
#include "bench_util.h"

#define RAM_SIZE       (256ull << 20)
#define TOUCH_MIB_BASE 1          /* the guest refuses mib=0 */
#define TOUCH_MIB      64
#define DEFAULT_ROUNDS 7

enum { ACC_KVM, ACC_SOFT, NR_ACC };
static const char *const acc_names[NR_ACC] = { "kvm", "soft" };
enum { S_WALL_NS, S_RESIDENT, S_NR };

typedef struct bench_env {
	const void *elf;
	size_t elf_size;
	int rounds;
	bool kvm;                   /* KVM usable here */
} bench_env;

static void discard_console(void *opaque, uint8_t byte)
{
	(void)opaque;
	(void)byte;
}

static int vm_create(const bench_env *e, const char *accel, unsigned mib, vmm **v, mv_error *err)
{
	char cmdline[64];
	vmm_config cfg = {
		.accel = accel, .ram_size = RAM_SIZE, .nr_vcpus = 1,
		.elf = e->elf, .elf_size = e->elf_size, .elf_name = MV_GUEST_ELF,
		.cmdline = cmdline, .dirty = VMM_DIRTY_OFF, .console = discard_console,
	};

	snprintf(cmdline, sizeof(cmdline), "workload=touch mib=%u", mib);
	return vmm_new(&cfg, v, err);
}

/* One boot; vmm_run alone is timed (building and freeing the VM are not). */
static void run_touch(const bench_env *e, const char *accel, unsigned mib, uint64_t s[S_NR])
{
	mv_error err = { 0 };
	vmm_result res = { 0 };
	vmm *v;
	uint64_t t0;

	if (vm_create(e, accel, mib, &v, &err))
		die("%s, touch mib=%u: %s", accel, mib, err.msg);
	t0 = now_ns();
	if (vmm_run(v, &res, &err))
		die("%s, touch mib=%u: %s", accel, mib, err.msg);
	s[S_WALL_NS] = now_ns() - t0;
	if (res.end != VMM_END_GUEST_EXIT || res.exit_status != 1)
		die("%s, touch mib=%u: %s", accel, mib, res.message);
	s[S_RESIDENT] = vmm_get_stats(v)->pages_resident;
	vmm_free(v);
}

/* KVM usable? A SKIP line for the KVM half if not; any other failure is fatal. */
static bool check_kvm(const bench_env *e)
{
	mv_error err = { 0 };
	vmm *v;
	int r = access("/dev/kvm", R_OK | W_OK) ? -errno : vm_create(e, "kvm", 1, &v, &err);

	if (r == -ENODEV || r == -EACCES || r == -ENOENT || r == -EPERM) {
		printf("SKIP: bench_soft_touch: KVM half: /dev/kvm not usable: %s\n",
		       *err.msg ? err.msg : strerror(-r));
		return false;
	}
	if (r)
		die("%s", err.msg);
	vmm_free(v);
	return true;
}

int main(int argc, char **argv)
{
	bench_env e = { .rounds = argc > 1 ? atoi(argv[1]) : DEFAULT_ROUNDS };
	static const unsigned mibs[2] = { TOUCH_MIB_BASE, TOUCH_MIB };
	const uint64_t pages = (TOUCH_MIB - TOUCH_MIB_BASE) * 256ull;
	double per_page[NR_ACC] = { 0 };

	if (e.rounds < 1)
		e.rounds = 1;
	e.elf = read_file(MV_GUEST_ELF, &e.elf_size);
	e.kvm = check_kvm(&e);
	printf("memvirt first-touch bench: the test guest's touch workload, %llu MiB RAM, 1 vCPU,\n"
	       "dirty log off; vmm_run wall time of touch mib=%d minus mib=%d, / %" PRIu64 " pages\n"
	       "(median of %d rounds, accelerators alternated in each round)\n",
	       RAM_SIZE >> 20, TOUCH_MIB, TOUCH_MIB_BASE, pages, e.rounds);
	uint64_t (*rows)[2][S_NR][e.rounds] = calloc(NR_ACC, sizeof(*rows));
	if (!rows)
		die("out of memory");
	for (int r = 0; r < e.rounds; r++)
		for (int m = 0; m < 2; m++)
			for (int a = 0; a < NR_ACC; a++) {
				uint64_t s[S_NR];

				if (a == ACC_KVM && !e.kvm)
					continue;
				run_touch(&e, acc_names[a], mibs[m], s);
				for (int f = 0; f < S_NR; f++)
					rows[a][m][f][r] = s[f];
			}
	printf("  %-6s %14s %14s %12s %16s\n", "accel", "touch 64 MiB", "touch 1 MiB", "per page",
	       "pages resident");
	for (int a = 0; a < NR_ACC; a++) {
		uint64_t med[2][S_NR];

		if (a == ACC_KVM && !e.kvm)
			continue;
		for (int m = 0; m < 2; m++)
			for (int f = 0; f < S_NR; f++)
				med[m][f] = median_u64(rows[a][m][f], e.rounds);
		per_page[a] = ((double)med[1][S_WALL_NS] - (double)med[0][S_WALL_NS]) / (double)pages;
		printf("  %-6s %11.1f ms %11.1f ms %9.2f us %+16" PRId64 "\n", acc_names[a],
		       (double)med[1][S_WALL_NS] / 1e6, (double)med[0][S_WALL_NS] / 1e6,
		       per_page[a] / 1e3, (int64_t)(med[1][S_RESIDENT] - med[0][S_RESIDENT]));
	}
	if (e.kvm)
		printf("Ratio\n  first touch per page, soft/KVM  %8.3f\n",
		       per_page[ACC_SOFT] / per_page[ACC_KVM]);
	free(rows);
	free((void *)e.elf);
	return 0;
}
