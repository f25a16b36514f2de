/*
 * memvirt run: boot a PVH guest (default: the built-in test guest) on an
 * accelerator and print its output, then a summary of the run.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "memvirt/guest_gen.h"
#include "memvirt/hv.h"
#include "memvirt/mtree.h"
#include "memvirt/vmm.h"
#include "cli.h"

/* The test guest built by guests/, linked in by tools/builtin_guest.S. */
extern const unsigned char mv_builtin_guest_start[], mv_builtin_guest_end[];

#define RUN_DEFAULT_MEM (256ull << 20)

void cmd_run_usage(FILE *out)
{
	fputs("usage: memvirt run [GUEST.elf] [options]\n"
	      "\n"
	      "Boot a PVH guest on the memvirt x86 machine and print its console output\n"
	      "(debugcon and COM1), then a summary: the flat memory map, exits by reason,\n"
	      "MMIO/PIO counts, pages first-touched, time to the first guest instruction,\n"
	      "wall time, dirty-round checks and (--dirty-rate) the dirty rate.\n"
	      "Without GUEST.elf it runs the built-in test guest (guests/testguest.elf).\n"
	      "\n"
	      "options:\n"
	      "  --mem SIZE          guest RAM (default 256M; suffixes K/M/G, MiB by default)\n"
	      "  --smp N             vCPUs (default 1)\n"
	      "  --cmdline STR       PVH command line, e.g. \"workload=dirty rounds=8\"\n"
	      "  --accel NAME        accelerator: kvm (default) or soft (the software KVM MMU;\n"
	      "                      its vCPUs run the built-in test guest's workloads as\n"
	      "                      access programs, so it takes no GUEST.elf)\n"
	      "  --dirty-log MODE    off, bitmap (default), manual (MANUAL_DIRTY_LOG_PROTECT2)\n"
	      "                      or ring (per-vCPU dirty rings)\n"
	      "  --ring-entries N    dirty-ring entries per vCPU (default 4096)\n"
	      "  --dirty-rate        measure the dirty rate (sampled every 50 ms)\n"
	      "  --dirty-dump FILE   write the dirty log of every checked round to FILE:\n"
	      "                      \"dirty-log: cpu C round R pages N hash H\", hashed as\n"
	      "                      the guest hashes its \"dirty:\" line\n"
	      "  --no-summary        print only the guest output\n"
	      "\n"
	      "Exit status: 0 when the guest reports success through isa-debug-exit\n"
	      "(status (0 << 1) | 1), the guest's status (value << 1) | 1 otherwise,\n"
	      "1 when the run fails, 2 for a bad command line.\n", out);
}

struct run_opts {
	vmm_config cfg;
	const char *elf_path;
	const char *dirty_dump;
	bool summary;
};

static int run_parse_dirty(const char *arg, vmm_dirty_mode *mode)
{
	static const char *const names[] = { "off", "bitmap", "manual", "ring" };

	for (int i = 0; i < 4; i++)
		if (!strcmp(arg, names[i])) {
			*mode = (vmm_dirty_mode)i;
			return 0;
		}
	return cli_error(CLI_USAGE, "run: --dirty-log '%s': expected off, bitmap, manual or ring", arg);
}

static int run_parse_uint(const char *opt, const char *arg, unsigned max, unsigned *out)
{
	char *end;
	unsigned long n = strtoul(arg, &end, 10);

	if (!*arg || *end || n == 0 || n > max)
		return cli_error(CLI_USAGE, "run: %s '%s': expected a number from 1 to %u", opt, arg, max);
	*out = (unsigned)n;
	return 0;
}

static int run_parse(int argc, char *argv[], struct run_opts *o)
{
	static const struct option longopts[] = {
		{ "mem", required_argument, NULL, 'm' },
		{ "smp", required_argument, NULL, 's' },
		{ "cmdline", required_argument, NULL, 'c' },
		{ "accel", required_argument, NULL, 'a' },
		{ "dirty-log", required_argument, NULL, 'd' },
		{ "ring-entries", required_argument, NULL, 'r' },
		{ "dirty-rate", no_argument, NULL, 'R' },
		{ "dirty-dump", required_argument, NULL, 'D' },
		{ "no-summary", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int opt, r = 0;

	while (!r && (opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'm':
			if (mv_parse_size(optarg, true, &o->cfg.ram_size))
				r = cli_error(CLI_USAGE, "run: --mem '%s': not a size", optarg);
			break;
		case 's': r = run_parse_uint("--smp", optarg, 64, &o->cfg.nr_vcpus); break;
		case 'c': o->cfg.cmdline = optarg; break;
		case 'a': o->cfg.accel = optarg; break;
		case 'd': r = run_parse_dirty(optarg, &o->cfg.dirty); break;
		case 'r': r = run_parse_uint("--ring-entries", optarg, 1u << 16, &o->cfg.ring_entries); break;
		case 'R': o->cfg.dirty_rate = true; break;
		case 'D': o->dirty_dump = optarg; break;
		case 'q': o->summary = false; break;
		case 'h': cmd_run_usage(stdout); return -1;
		default: return cli_bad_option("run", opt, argv);
		}
	}
	if (r)
		return r;
	if (optind + 1 < argc)
		return cli_error(CLI_USAGE, "run: one guest image at most (got '%s' and '%s')",
				 argv[optind], argv[optind + 1]);
	o->elf_path = optind < argc ? argv[optind] : NULL;
	if (o->elf_path && !strcmp(o->cfg.accel, "soft"))
		return cli_error(CLI_USAGE, "run: --accel soft runs the built-in test guest's workloads "
				 "as access programs and cannot run '%s'", o->elf_path);
	return 0;
}

/* Read a whole file; one sentence on failure. */
static int run_read_file(const char *path, void **buf, size_t *size)
{
	FILE *f = fopen(path, "rb");
	long n;

	if (!f)
		return cli_error(CLI_FAIL, "run: cannot open guest '%s': %s", path, strerror(errno));
	if (fseek(f, 0, SEEK_END) || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
		fclose(f);
		return cli_error(CLI_FAIL, "run: cannot read guest '%s': %s", path, strerror(errno));
	}
	*buf = malloc(n ? (size_t)n : 1);
	if (!*buf || fread(*buf, 1, (size_t)n, f) != (size_t)n) {
		fclose(f);
		free(*buf);
		return cli_error(CLI_FAIL, "run: cannot read guest '%s'", path);
	}
	fclose(f);
	*size = (size_t)n;
	return 0;
}

static void run_console(void *opaque, uint8_t byte)
{
	(void)opaque;
	putchar(byte);
	if (byte == '\n')
		fflush(stdout);
}

/* vmm_config.dirty_round: one line per round, with the guest's hash of its "dirty:" line. */
static void run_dirty_dump(void *opaque, unsigned vcpu, uint32_t round, uint64_t gpa,
			   uint64_t pages, const unsigned long *bits)
{
	uint64_t words = (pages + 63) / 64, n = 0;

	(void)gpa;
	for (uint64_t w = 0; w < words; w++)
		n += (uint64_t)__builtin_popcountl(bits[w]);
	fprintf(opaque, "dirty-log: cpu %u round %" PRIu32 " pages %" PRIu64 " hash %016" PRIx64 "\n",
		vcpu, round, n, mvg_bitmap_hash(bits, words));
}

static double run_ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

static const char *run_dirty_name(vmm_dirty_mode m)
{
	static const char *const names[] = { "off", "bitmap", "manual", "ring" };

	return names[m];
}

static void run_print_exits(const vmm_stats *s)
{
	bool any = false;

	printf("  exits:                ");
	for (int i = 0; i < VMM_NR_EXIT_REASONS; i++)
		if (s->exits[i]) {
			printf("%s%s %" PRIu64, any ? ", " : "", hv_exit_reason_name((hv_exit_reason)i),
			       s->exits[i]);
			any = true;
		}
	printf("%s\n", any ? "" : "none");
}

static void run_print_summary(vmm *v, const struct run_opts *o, const vmm_result *res)
{
	const vmm_stats *s = vmm_get_stats(v);

	printf("\n== memvirt run summary\n");
	printf("  guest:                %s, cmdline \"%s\"\n",
	       o->elf_path ? o->elf_path : "built-in test guest", o->cfg.cmdline ? o->cfg.cmdline : "");
	printf("  accelerator:          %s, %u vCPU(s), %" PRIu64 " MiB RAM, dirty log %s\n",
	       o->cfg.accel, o->cfg.nr_vcpus, o->cfg.ram_size >> 20, run_dirty_name(o->cfg.dirty));
	printf("  ended:                %s\n", res->message);
	printf("  flat memory map:\n");
	mv_mtree_print_flat(stdout, vmm_memory(v));
	run_print_exits(s);
	printf("  mmio:                 %" PRIu64 " reads, %" PRIu64 " writes, %" PRIu64
	       " coalesced writes\n", s->mmio_reads, s->mmio_writes, s->coalesced_writes);
	printf("  pio:                  %" PRIu64 " reads, %" PRIu64 " writes\n", s->pio_reads,
	       s->pio_writes);
	printf("  memslot updates:      %" PRIu64 "\n", s->memslot_calls);
	printf("  dirty sync:           %" PRIu64 " pages synced (%" PRIu64 " get-log, %" PRIu64
	       " clear-log calls, %" PRIu64 " ring entries)\n", s->pages_synced, s->dirty_log_calls,
	       s->clear_log_calls, s->ring_entries);
	printf("  dirty syncs:          %" PRIu64 " taking %.3f ms\n", s->dirty_syncs,
	       run_ms(s->dirty_sync_ns));
	printf("  pages first-touched:  %" PRIu64 " (%.1f MiB resident)\n", s->pages_resident,
	       (double)s->pages_resident * 4096 / (1 << 20));
	printf("  first guest exit:     %.3f ms after process start (VM ready at %.3f ms)\n",
	       run_ms(s->t_first_exit_ns), run_ms(s->t_create_ns));
	printf("  wall time:            %.3f ms\n", run_ms(s->t_wall_ns));
	printf("  dirty rounds checked: %" PRIu64 ", pages reported %" PRIu64 ", mismatches %" PRIu64
	       "\n", s->dirty_rounds, s->dirty_pages_reported, s->dirty_mismatches);
	if (o->cfg.dirty_rate)
		printf("  dirty rate:           %.1f MiB/s (%" PRIu64 " pages in %.1f ms, %" PRIu64
		       " samples)\n", s->rate_ns ? (double)s->rate_pages * 4096 / (1 << 20) /
		       ((double)s->rate_ns / 1e9) : 0.0, s->rate_pages, run_ms(s->rate_ns),
		       s->rate_samples);
}

static int run_status(const vmm_result *res)
{
	switch (res->end) {
	case VMM_END_GUEST_EXIT:
		return res->exit_status == 1 ? CLI_OK : res->exit_status;
	case VMM_END_ERROR:
		return cli_error(CLI_FAIL, "run: %s", res->message);
	default:
		return CLI_FAIL;
	}
}

static uint64_t run_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int cmd_run(int argc, char *argv[])
{
	struct run_opts o = {
		.cfg = { .accel = "kvm", .ram_size = RUN_DEFAULT_MEM, .nr_vcpus = 1,
			 .dirty = VMM_DIRTY_BITMAP, .console = run_console,
			 .t_process_start_ns = run_now_ns() },
		.summary = true,
	};
	mv_error err = { 0 };
	vmm_result res = { 0 };
	void *image = NULL;
	FILE *dump = NULL;
	vmm *v;
	int r = run_parse(argc, argv, &o);

	if (r)
		return r < 0 ? CLI_OK : r;
	if (o.elf_path) {
		if ((r = run_read_file(o.elf_path, &image, &o.cfg.elf_size)))
			return r;
		o.cfg.elf = image;
		o.cfg.elf_name = o.elf_path;
	} else {
		o.cfg.elf = mv_builtin_guest_start;
		o.cfg.elf_size = (size_t)(mv_builtin_guest_end - mv_builtin_guest_start);
		o.cfg.elf_name = "built-in test guest";
	}
	if (o.dirty_dump) {
		if (!(dump = fopen(o.dirty_dump, "w"))) {
			free(image);
			return cli_error(CLI_FAIL, "run: --dirty-dump '%s': %s", o.dirty_dump,
					 strerror(errno));
		}
		o.cfg.dirty_round = run_dirty_dump;
		o.cfg.dirty_round_opaque = dump;
	}
	r = vmm_new(&o.cfg, &v, &err);
	free(image);
	if (r) {
		if (dump)
			fclose(dump);
		return cli_error(CLI_FAIL, "run: %s", err.msg);
	}
	r = vmm_run(v, &res, &err);
	fflush(stdout);
	if (!r && o.summary)
		run_print_summary(v, &o, &res);
	fflush(stdout);
	vmm_free(v);
	if (dump && fclose(dump) && !r)
		return cli_error(CLI_FAIL, "run: --dirty-dump '%s': %s", o.dirty_dump, strerror(errno));
	return r ? cli_error(CLI_FAIL, "run: %s", err.msg) : run_status(&res);
}
