/*
 * The VMM's figures, all from one run on one guest image (MV_GUEST_ELF):
 *
 * 1. Start-up against QEMU: from just before posix_spawn to the first byte
 *    of guest output read from the child's stdout (the guest's first act
 *    is printing "memvirt-guest: boot" on debugcon), and the child's peak
 *    RSS (wait4), for `memvirt run` and QEMU's microvm booting the same ELF
 *    with the same command line, alternated, medians after warm-ups.
 * 2. Per-operation costs through the vmm library, in this process: the
 *    vmm_run wall time of a guest doing N operations minus that of the
 *    same workload doing none (boot and teardown cancel), divided by N.
 *    Every configuration runs once per round, rounds repeated, medians.
 * 3. Dirty-log harvest in the three modes: the VMM's own sync timing
 *    (vmm_stats.dirty_sync_ns), bitmap as the baseline.
 *
 * Usage: bench_vmm [rounds]   (default 7; the start-up race is fixed at
 * 2 warm-ups + 15 runs per contender)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "memvirt/vmm.h"
#define BENCH_NAME "bench_vmm"
#include "bench_util.h"

#define RAM_SIZE        (256ull << 20)       /* as `memvirt run` and QEMU's -m 256M */
#define BOOT_LINE       "memvirt-guest: boot"
#define STARTUP_CMDLINE "workload=touch mib=1"
#define STARTUP_WARMUPS 2
#define STARTUP_RUNS    15
#define CHILD_TIMEOUT_MS 60000
#define DEFAULT_ROUNDS  7

/* Operation counts: large enough that N operations dwarf the run-to-run
 * noise of a boot (a few ms), small enough for the whole bench to stay
 * well under two minutes on kvm_pvm (~100 us per exit). */
#define TOUCH_MIB_BASE  1                    /* the guest refuses mib=0 */
#define TOUCH_MIB       64
#define SCRATCH_OPS     2000
#define SEQ_WRITES      10000
#define PIO_OPS         1000
#define DIRTY_CMDLINE   "workload=dirty ws_mib=16 pages=2000 rounds=8"

static double ms(double ns)
{
	return ns / 1e6;
}

static double us(double ns)
{
	return ns / 1e3;
}

/*
 * Median of column @col of @k rows of @width values each (row-major).
 * Samples are kept as rows of uint64_t so that one helper takes the
 * median of every figure of a configuration.
 */
static uint64_t median_col(const uint64_t *rows, int k, int width, int col)
{
	uint64_t v[k];

	for (int i = 0; i < k; i++)
		v[i] = rows[i * width + col];
	return median_u64(v, k);
}

static void median_rows(const uint64_t *rows, int k, int width, uint64_t *out)
{
	for (int c = 0; c < width; c++)
		out[c] = median_col(rows, k, width, c);
}

/* ================= 1. start-up against QEMU (child processes) ================= */

enum { P_FIRST_BYTE_NS, P_EXIT_NS, P_MAXRSS_KIB, P_NR };

typedef struct contender {
	const char *name;
	char **argv;                /* argv[0] is a path */
	int ok_status;              /* exit status of a clean guest exit */
	bool enabled;
} contender;

/* First line of what the child wrote on stderr (kept in a memfd), for messages. */
static void child_stderr(int memfd, char *buf, size_t size)
{
	ssize_t n = pread(memfd, buf, size - 1, 0);

	buf[n > 0 ? n : 0] = 0;
	buf[strcspn(buf, "\n")] = 0;
}

/*
 * Read the child's stdout to EOF; returns the time of the first byte
 * (relative to @t0, 0 if none) and keeps the first bytes in @head.
 * A child silent for CHILD_TIMEOUT_MS is killed.
 */
static uint64_t read_output(int fd, pid_t pid, uint64_t t0, char *head, size_t size)
{
	uint64_t first = 0;
	size_t got = 0;
	char buf[4096];

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int r = poll(&p, 1, CHILD_TIMEOUT_MS);
		ssize_t n;

		if (r == 0) {
			kill(pid, SIGKILL);
			return first;
		}
		if (r < 0 || (n = read(fd, buf, sizeof(buf))) < 0) {
			if (errno == EINTR)
				continue;
			die("reading a child's output: %s", strerror(errno));
		}
		if (n == 0)
			return first;
		if (!first)
			first = now_ns() - t0;
		for (ssize_t i = 0; i < n && got + 1 < size; i++)
			head[got++] = buf[i];
		head[got] = 0;
	}
}

static void spawn_actions(posix_spawn_file_actions_t *fa, int out_fd, int err_fd)
{
	posix_spawn_file_actions_init(fa);
	posix_spawn_file_actions_adddup2(fa, out_fd, STDOUT_FILENO);
	posix_spawn_file_actions_adddup2(fa, err_fd, STDERR_FILENO);
	posix_spawn_file_actions_addopen(fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
}

/* Did the run go as a clean boot should? One sentence in @why if not. */
static int check_child(const contender *c, int status, const char *head, int memfd,
		       char *why, size_t size)
{
	char err[256];

	if (WIFEXITED(status) && WEXITSTATUS(status) == c->ok_status &&
	    !strncmp(head, BOOT_LINE, strlen(BOOT_LINE)))
		return 0;
	child_stderr(memfd, err, sizeof(err));
	snprintf(why, size, "%s %s (status 0x%x, output \"%.20s\"): %s", c->name,
		 WIFEXITED(status) ? "exited" : "was killed", status, head, err);
	return -1;
}

/* One boot of @c; fills @s (P_*) or says in @why what went wrong. */
static int spawn_once(const contender *c, uint64_t s[P_NR], char *why, size_t size)
{
	posix_spawn_file_actions_t fa;
	struct rusage ru;
	char head[sizeof(BOOT_LINE) + 4] = "";
	int fds[2], memfd, status, err, r;
	pid_t pid;
	uint64_t t0;

	/* The child's stderr goes to a memfd: QEMU's reason, if it fails, is kept. */
	if (pipe2(fds, O_CLOEXEC) || (memfd = memfd_create("bench_vmm-stderr", MFD_CLOEXEC)) < 0)
		die("pipe/memfd: %s", strerror(errno));
	spawn_actions(&fa, fds[1], memfd);
	t0 = now_ns();
	err = posix_spawn(&pid, c->argv[0], &fa, NULL, c->argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(fds[1]);
	if (err) {
		snprintf(why, size, "cannot start %s: %s", c->argv[0], strerror(err));
		close(fds[0]);
		close(memfd);
		return -1;
	}
	s[P_FIRST_BYTE_NS] = read_output(fds[0], pid, t0, head, sizeof(head));
	close(fds[0]);
	while ((r = wait4(pid, &status, 0, &ru)) < 0 && errno == EINTR)
		;
	if (r < 0)
		die("wait4: %s", strerror(errno));
	s[P_EXIT_NS] = now_ns() - t0;
	s[P_MAXRSS_KIB] = (uint64_t)ru.ru_maxrss;
	r = check_child(c, status, head, memfd, why, size);
	close(memfd);
	return r;
}

/*
 * Alternate the contenders, one boot each per round, so that whatever
 * else the host does hits both alike; medians of the runs after the
 * warm-ups into @med[i]. memvirt (contender 0) must work; a failing
 * QEMU is disabled with a SKIP line.
 */
static void race(contender *c, int n, uint64_t med[][P_NR])
{
	uint64_t rows[n][STARTUP_RUNS][P_NR];
	char why[512];

	for (int round = 0; round < STARTUP_WARMUPS + STARTUP_RUNS; round++)
		for (int i = 0; i < n; i++) {
			uint64_t s[P_NR];

			if (!c[i].enabled)
				continue;
			if (spawn_once(&c[i], s, why, sizeof(why))) {
				if (i == 0)
					die("%s", why);
				printf("SKIP: qemu comparison: %s\n", why);
				c[i].enabled = false;
				continue;
			}
			if (round >= STARTUP_WARMUPS)
				memcpy(rows[i][round - STARTUP_WARMUPS], s, sizeof(s));
		}
	for (int i = 0; i < n; i++)
		if (c[i].enabled)
			median_rows(&rows[i][0][0], STARTUP_RUNS, P_NR, med[i]);
}

/* @name in $PATH, into @buf; false if not found. */
static bool find_in_path(const char *name, char *buf, size_t size)
{
	const char *path = getenv("PATH");

	for (const char *p = path ? path : "/usr/bin:/bin"; *p;) {
		size_t len = strcspn(p, ":");

		snprintf(buf, size, "%.*s/%s", (int)len, len ? p : ".", name);
		if (!access(buf, X_OK))
			return true;
		p += len + (p[len] == ':');
	}
	return false;
}

static void print_startup_row(const char *name, const uint64_t m[P_NR])
{
	printf("  %-22s %10.2f ms %12.2f ms %10.1f MiB\n", name, ms((double)m[P_FIRST_BYTE_NS]),
	       ms((double)m[P_EXIT_NS]), (double)m[P_MAXRSS_KIB] / 1024);
}

typedef struct startup_result {
	bool qemu;                  /* QEMU ran: the ratios exist */
	double time_ratio, rss_ratio;   /* QEMU / memvirt */
} startup_result;

static startup_result bench_startup(const char *memvirt_bin, const char *elf)
{
	char qemu[4096];
	char *mv_argv[] = { (char *)memvirt_bin, "run", "--no-summary", "--dirty-log", "off",
			    "--cmdline", STARTUP_CMDLINE, (char *)elf, NULL };
	char *q_argv[] = { qemu, "-enable-kvm", "-M", "microvm", "-m", "256M", "-kernel",
			   (char *)elf, "-append", STARTUP_CMDLINE, "-debugcon", "stdio", "-device",
			   "isa-debug-exit,iobase=0xf4,iosize=0x04", "-display", "none",
			   "-nodefaults", "-no-user-config", NULL };
	/* isa-debug-exit value 0: memvirt run exits 0, QEMU (0 << 1) | 1. */
	contender c[2] = {
		{ "memvirt run", mv_argv, 0, true },
		{ "qemu-system-x86_64", q_argv, 1, find_in_path("qemu-system-x86_64", qemu, sizeof(qemu)) },
	};
	uint64_t med[2][P_NR];
	startup_result res = { 0 };

	if (!c[1].enabled)
		printf("SKIP: qemu comparison: qemu-system-x86_64 not installed\n");
	race(c, 2, med);
	printf("\nStart-up: \"%s\", process start -> first guest output byte on the child's stdout\n"
	       "(median of %d alternated runs each after %d warm-ups; memvirt run writes guest\n"
	       "output a line at a time, QEMU's debugcon a byte at a time)\n", STARTUP_CMDLINE,
	       STARTUP_RUNS, STARTUP_WARMUPS);
	printf("  %-22s %13s %15s %14s\n", "", "first byte", "process exit", "peak RSS");
	print_startup_row("memvirt run", med[0]);
	if (c[1].enabled) {
		print_startup_row("qemu microvm -m 256M", med[1]);
		res.qemu = true;
		res.time_ratio = (double)med[1][P_FIRST_BYTE_NS] / (double)med[0][P_FIRST_BYTE_NS];
		res.rss_ratio = (double)med[1][P_MAXRSS_KIB] / (double)med[0][P_MAXRSS_KIB];
	}
	return res;
}

/* ================= 2, 3. in-process runs through the vmm library ================= */

enum { S_WALL_NS, S_EXITS, S_MMIO_WRITES, S_COALESCED, S_RESIDENT, S_SYNCS, S_SYNC_NS,
       S_PAGES_SYNCED, S_NR };

typedef struct bench_env {
	const void *elf;
	size_t elf_size;
	const char *elf_path;
	int rounds;
} bench_env;

typedef struct vm_config {
	char cmdline[128];
	vmm_dirty_mode dirty;
} vm_config;

static void discard_console(void *opaque, uint8_t byte)
{
	(void)opaque;
	(void)byte;
}

static int vm_create(const bench_env *e, const vm_config *c, vmm **v, mv_error *err)
{
	vmm_config cfg = {
		.accel = "kvm", .ram_size = RAM_SIZE, .nr_vcpus = 1,
		.elf = e->elf, .elf_size = e->elf_size, .elf_name = e->elf_path,
		.cmdline = c->cmdline, .dirty = c->dirty, .console = discard_console,
	};

	return vmm_new(&cfg, v, err);
}

static uint64_t total_exits(const vmm_stats *st)
{
	uint64_t n = 0;

	for (int i = 0; i < VMM_NR_EXIT_REASONS; i++)
		n += st->exits[i];
	return n;
}

/* One boot of @c; vmm_run alone is timed (building and freeing the VM are not). */
static void run_guest(const bench_env *e, const vm_config *c, uint64_t s[S_NR])
{
	mv_error err = { 0 };
	vmm_result res = { 0 };
	vmm *v;
	uint64_t t0;

	if (vm_create(e, c, &v, &err))
		die("\"%s\": %s", c->cmdline, err.msg);
	t0 = now_ns();
	if (vmm_run(v, &res, &err))
		die("\"%s\": %s", c->cmdline, err.msg);
	s[S_WALL_NS] = now_ns() - t0;
	/* A guest check that failed would make the figures meaningless. */
	if (res.end != VMM_END_GUEST_EXIT || res.exit_status != 1)
		die("\"%s\": %s", c->cmdline, res.message);
	const vmm_stats *st = vmm_get_stats(v);
	s[S_EXITS] = total_exits(st);
	s[S_MMIO_WRITES] = st->mmio_writes;
	s[S_COALESCED] = st->coalesced_writes;
	s[S_RESIDENT] = st->pages_resident;
	s[S_SYNCS] = st->dirty_syncs;
	s[S_SYNC_NS] = st->dirty_sync_ns;
	s[S_PAGES_SYNCED] = st->pages_synced;
	vmm_free(v);
}

/*
 * Medians of e->rounds runs of each of the @n configurations into
 * @med[i]. Each round runs every configuration once, in order, so that
 * slow drift of the host hits a configuration and its baseline alike.
 */
static void measure(const bench_env *e, const vm_config *c, int n, uint64_t med[][S_NR])
{
	uint64_t (*rows)[e->rounds][S_NR] = calloc((size_t)n, sizeof(*rows));

	if (!rows)
		die("out of memory");
	for (int r = 0; r < e->rounds; r++)
		for (int i = 0; i < n; i++)
			run_guest(e, &c[i], rows[i][r]);
	for (int i = 0; i < n; i++)
		median_rows(&rows[i][0][0], e->rounds, S_NR, med[i]);
	free(rows);
}

/* (ops - base) / n of figure @f: the cost of one operation. */
static double per_op(const uint64_t ops[S_NR], const uint64_t base[S_NR], int f, uint64_t n)
{
	return ((double)ops[f] - (double)base[f]) / (double)n;
}

static void print_op_row(const char *what, uint64_t n, const uint64_t ops[S_NR],
			 const uint64_t base[S_NR])
{
	printf("  %-30s %6" PRIu64 " %10.1f ms %10.1f ms %9.2f us %7.3f\n", what, n,
	       ms((double)ops[S_WALL_NS]), ms((double)base[S_WALL_NS]),
	       us(per_op(ops, base, S_WALL_NS, n)), per_op(ops, base, S_EXITS, n));
}

/* The per-operation configurations; [0] of each pair is its baseline. */
enum { C_TOUCH_BASE, C_TOUCH, C_MMIO_BASE, C_SCRATCH, C_SEQ, C_MMIO, C_PIO_BASE, C_PIO, C_NR };

static void op_configs(vm_config c[C_NR])
{
	static const char *const fmt[C_NR] = {
		[C_TOUCH_BASE] = "workload=touch mib=%d", [C_TOUCH] = "workload=touch mib=%d",
		[C_MMIO_BASE] = "workload=mmio mmio_count=0 seq_count=0",
		[C_SCRATCH] = "workload=mmio mmio_count=%d seq_count=0",
		[C_SEQ] = "workload=mmio mmio_count=0 seq_count=%d",
		[C_MMIO] = "workload=mmio mmio_count=%d",
		[C_PIO_BASE] = "workload=pio pio_count=0", [C_PIO] = "workload=pio pio_count=%d",
	};
	static const int arg[C_NR] = {
		[C_TOUCH_BASE] = TOUCH_MIB_BASE, [C_TOUCH] = TOUCH_MIB, [C_SCRATCH] = SCRATCH_OPS,
		[C_SEQ] = SEQ_WRITES, [C_MMIO] = SCRATCH_OPS, [C_PIO] = PIO_OPS,
	};

	for (int i = 0; i < C_NR; i++) {
		snprintf(c[i].cmdline, sizeof(c[i].cmdline), fmt[i], arg[i]);
		c[i].dirty = VMM_DIRTY_OFF;
	}
}

typedef struct op_result {
	double mmio_exit_ns, pio_access_ns, seq_ns, mmio_op_ns, parts_ns;
} op_result;

static const char *host_kvm_module(void)
{
	static const char *const mods[] = { "kvm_pvm", "kvm_intel", "kvm_amd" };
	char path[64];

	for (size_t i = 0; i < sizeof(mods) / sizeof(mods[0]); i++) {
		snprintf(path, sizeof(path), "/sys/module/%s", mods[i]);
		if (!access(path, F_OK))
			return mods[i];
	}
	return NULL;
}

static void print_op_notes(uint64_t m[C_NR][S_NR])
{
	const char *mod = host_kvm_module();
	uint64_t seq_exited = m[C_SEQ][S_MMIO_WRITES] - m[C_MMIO_BASE][S_MMIO_WRITES];

	printf("  first touch: vmm_stats.pages_resident +%" PRIu64 " pages (touch mib=%d vs mib=%d)\n",
	       m[C_TOUCH][S_RESIDENT] - m[C_TOUCH_BASE][S_RESIDENT], TOUCH_MIB, TOUCH_MIB_BASE);
	printf("  SEQ writes: %" PRIu64 " through the coalesced ring, %" PRIu64
	       " exited (ring full), of %d\n", m[C_SEQ][S_COALESCED] - m[C_MMIO_BASE][S_COALESCED],
	       seq_exited, SEQ_WRITES);
	if (mod && !strcmp(mod, "kvm_pvm"))
		printf("  pio: host KVM is kvm_pvm: the guest's CPL3 in/out raise #GP and its CPL0\n"
		       "       handler performs the access (docs/guests.md), so each port access\n"
		       "       includes that exception round trip\n");
	else
		printf("  pio: host KVM is %s: CPL3 in/out under IOPL=3 exit directly\n",
		       mod ? mod : "unknown");
}

static op_result bench_ops(const bench_env *e)
{
	vm_config c[C_NR];
	uint64_t m[C_NR][S_NR];
	op_result r;

	op_configs(c);
	measure(e, c, C_NR, m);
	printf("\nPer-operation costs: vmm_run wall time with N operations minus without, / N\n"
	       "(in-process, 1 vCPU, dirty log off, median of %d rounds)\n", e->rounds);
	printf("  %-30s %6s %13s %13s %12s %7s\n", "operation", "N", "with N", "baseline", "per op",
	       "exits/op");
	print_op_row("first touch, per 4 KiB page", (TOUCH_MIB - TOUCH_MIB_BASE) * 256ull,
		     m[C_TOUCH], m[C_TOUCH_BASE]);
	print_op_row("MMIO SCRATCH write+read", SCRATCH_OPS, m[C_SCRATCH], m[C_MMIO_BASE]);
	print_op_row("MMIO coalesced SEQ write", SEQ_WRITES, m[C_SEQ], m[C_MMIO_BASE]);
	print_op_row("mmio op (SCRATCH w+r + SEQ)", SCRATCH_OPS, m[C_MMIO], m[C_MMIO_BASE]);
	print_op_row("PIO SCRATCH outl+inl", PIO_OPS, m[C_PIO], m[C_PIO_BASE]);
	/* SCRATCH and PIO ops are two exits each (write, then read back). */
	r.mmio_exit_ns = per_op(m[C_SCRATCH], m[C_MMIO_BASE], S_WALL_NS, SCRATCH_OPS) / 2;
	r.pio_access_ns = per_op(m[C_PIO], m[C_PIO_BASE], S_WALL_NS, PIO_OPS) / 2;
	printf("  exit round trip (half a SCRATCH op): MMIO %.2f us, PIO %.2f us\n",
	       us(r.mmio_exit_ns), us(r.pio_access_ns));
	print_op_notes(m);
	r.seq_ns = per_op(m[C_SEQ], m[C_MMIO_BASE], S_WALL_NS, SEQ_WRITES);
	r.mmio_op_ns = per_op(m[C_MMIO], m[C_MMIO_BASE], S_WALL_NS, SCRATCH_OPS);
	r.parts_ns = 2 * r.mmio_exit_ns + r.seq_ns;
	return r;
}

/* Dirty-log modes, bitmap first: it is the baseline of the ratios. */
static const vmm_dirty_mode dirty_modes[] = { VMM_DIRTY_BITMAP, VMM_DIRTY_MANUAL, VMM_DIRTY_RING };
static const char *const dirty_names[] = { "bitmap", "manual", "ring" };
#define NR_DIRTY_MODES 3

typedef struct dirty_result {
	double per_sync_ns[NR_DIRTY_MODES], per_page_ns[NR_DIRTY_MODES];
} dirty_result;

static dirty_result bench_dirty(const bench_env *e)
{
	vm_config c[NR_DIRTY_MODES];
	uint64_t m[NR_DIRTY_MODES][S_NR];
	dirty_result r;

	for (int i = 0; i < NR_DIRTY_MODES; i++) {
		snprintf(c[i].cmdline, sizeof(c[i].cmdline), "%s", DIRTY_CMDLINE);
		c[i].dirty = dirty_modes[i];
	}
	measure(e, c, NR_DIRTY_MODES, m);
	printf("\nDirty-log harvest: \"%s\", vmm_stats.dirty_sync_ns\n(median of %d rounds; "
	       "\"pages synced\" is vmm_stats.pages_synced, as each mode counts them)\n",
	       DIRTY_CMDLINE, e->rounds);
	printf("  %-8s %6s %13s %13s %12s %12s %13s\n", "mode", "syncs", "pages synced",
	       "sync total", "per sync", "per page", "run wall");
	for (int i = 0; i < NR_DIRTY_MODES; i++) {
		r.per_sync_ns[i] = (double)m[i][S_SYNC_NS] / (double)m[i][S_SYNCS];
		r.per_page_ns[i] = (double)m[i][S_SYNC_NS] / (double)m[i][S_PAGES_SYNCED];
		printf("  %-8s %6" PRIu64 " %13" PRIu64 " %10.3f ms %9.1f us %9.1f ns %10.1f ms\n",
		       dirty_names[i], m[i][S_SYNCS], m[i][S_PAGES_SYNCED], ms((double)m[i][S_SYNC_NS]),
		       us(r.per_sync_ns[i]), r.per_page_ns[i], ms((double)m[i][S_WALL_NS]));
	}
	printf("  manual: KVM_DIRTY_LOG_INITIALLY_SET makes its first sync report every RAM page\n"
	       "          (%llu), which its pages synced and per-page figure include\n"
	       "  ring:   the VMM registers no coalesced zone in ring mode, so the guest's\n"
	       "          page reports exit: that shows in run wall, not in sync time\n",
	       RAM_SIZE >> 12);
	return r;
}

/* ================= ratios, set-up ================= */

static const char *goal(double ratio)
{
	return ratio >= 10 ? "met" : "NOT met";
}

static void print_ratios(const startup_result *s, const op_result *o, const dirty_result *d)
{
	printf("\nRatios\n");
	if (s->qemu) {
		printf("  start-up to first output, QEMU/memvirt  %7.1fx  (goal >= 10x faster: %s)\n",
		       s->time_ratio, goal(s->time_ratio));
		printf("  peak RSS, QEMU/memvirt                  %7.1fx  (goal <= 1/10 of QEMU's: %s)\n",
		       s->rss_ratio, goal(s->rss_ratio));
	}
	printf("  PIO access / MMIO exit                  %7.2f\n", o->pio_access_ns / o->mmio_exit_ns);
	printf("  coalesced SEQ write / MMIO exit         %7.2f\n", o->seq_ns / o->mmio_exit_ns);
	printf("  mmio op / (2 MMIO exits + SEQ write)    %7.2f\n", o->mmio_op_ns / o->parts_ns);
	for (int i = 1; i < NR_DIRTY_MODES; i++)
		printf("  dirty sync %s/bitmap: per sync %5.2f, per page synced %5.2f\n", dirty_names[i],
		       d->per_sync_ns[i] / d->per_sync_ns[0], d->per_page_ns[i] / d->per_page_ns[0]);
}

/* SKIP (exit 0) when KVM cannot build this VM; any other failure is fatal. */
static void check_kvm(const bench_env *e)
{
	vm_config c = { .cmdline = STARTUP_CMDLINE, .dirty = VMM_DIRTY_OFF };
	mv_error err = { 0 };
	vmm *v;
	int r = access("/dev/kvm", R_OK | W_OK) ? -errno : vm_create(e, &c, &v, &err);

	if (r == -ENODEV || r == -EACCES || r == -ENOENT || r == -EPERM) {
		printf("SKIP: bench_vmm: /dev/kvm not usable: %s\n", *err.msg ? err.msg : strerror(-r));
		exit(0);
	}
	if (r)
		die("%s", err.msg);
	vmm_free(v);
}

int main(int argc, char **argv)
{
	bench_env e = { .elf_path = MV_GUEST_ELF,
			.rounds = argc > 1 ? atoi(argv[1]) : DEFAULT_ROUNDS };
	startup_result s;
	op_result o;
	dirty_result d;

	if (e.rounds < 1)
		e.rounds = 1;
	e.elf = read_file(e.elf_path, &e.elf_size);
	check_kvm(&e);
	if (access(MV_MEMVIRT_BIN, X_OK))
		die("%s: %s (build memvirt-bin)", MV_MEMVIRT_BIN, strerror(errno));
	printf("memvirt VMM bench: guest %s, %llu MiB RAM, 1 vCPU\n", e.elf_path, RAM_SIZE >> 20);
	fflush(stdout);
	s = bench_startup(MV_MEMVIRT_BIN, e.elf_path);
	fflush(stdout);
	o = bench_ops(&e);
	fflush(stdout);
	d = bench_dirty(&e);
	print_ratios(&s, &o, &d);
	free((void *)e.elf);
	return 0;
}
