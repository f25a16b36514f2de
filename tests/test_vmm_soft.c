/*
 * The VMM on the soft accelerator (`--accel soft`, docs/vmm.md): the test
 * guest's workloads run as access programs on soft vCPUs, compared
 *
 *  - with a model built from the guest's own generator (memvirt/guest_gen.h):
 *    the report lines and every round's working-set dirty log (always);
 *  - with the real guest on KVM, same command line and seed: the console
 *    text and every round's working-set dirty bitmap, exactly, in bitmap,
 *    manual-protect and dirty-ring mode (the KVM half prints SKIP without
 *    /dev/kvm; the soft half still runs).
 *
 * The dirty seed comes from MV_SEED (default 7) and is printed.
 */
#include "testutil.h"
#include "vmm_fx.h"

#include "memvirt/guest_gen.h"
#include "memvirt/hv.h"
#include "memvirt/testdev_abi.h"
#include "memvirt/vmm.h"
#include "vmm/soft_guest.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TS_RAM (256ull << 20)
#define TS_MAX_ROUNDS 256
/* What vCPU 0 prints first with the test device of a 1-vCPU, 256 MiB machine. */
#define TS_HEAD MVG_LINE_BOOT "mvt: device version 1 vcpus 1 ram 268435456\n"

/* One checked round's working-set dirty log (vmm_config.dirty_round). */
typedef struct ts_round {
	unsigned vcpu;
	uint32_t round;
	uint64_t gpa, pages;
	uint64_t *bits;
} ts_round;

typedef struct ts_out {
	char text[64 * 1024];
	size_t len;
	vmm_result res;
	vmm_stats stats;
	ts_round rounds[TS_MAX_ROUNDS];
	unsigned nr_rounds;
} ts_out;

typedef struct ts_spec {
	const char *cmdline;
	vmm_dirty_mode dirty;       /* 0: bitmap */
	unsigned smp;               /* 0: 1 */
	uint32_t ring_entries;
	void (*during)(vmm *v);     /* with the VMM running on another thread */
} ts_spec;

static void ts_console(void *opaque, uint8_t byte)
{
	ts_out *o = opaque;

	if (o->len + 1 < sizeof(o->text))
		o->text[o->len++] = (char)byte;
}

static void ts_dirty_round(void *opaque, unsigned vcpu, uint32_t round, uint64_t gpa,
			   uint64_t pages, const unsigned long *bits)
{
	ts_out *o = opaque;
	size_t words = (pages + 63) / 64;
	ts_round *r;

	if (o->nr_rounds == TS_MAX_ROUNDS)
		return;             /* the count check then fails */
	r = &o->rounds[o->nr_rounds++];
	*r = (ts_round){ .vcpu = vcpu, .round = round, .gpa = gpa, .pages = pages,
			 .bits = calloc(words ? words : 1, sizeof(uint64_t)) };
	if (r->bits)
		memcpy(r->bits, bits, words * sizeof(uint64_t));
}

static void ts_out_free(ts_out *o)
{
	for (unsigned i = 0; i < o->nr_rounds; i++)
		free(o->rounds[i].bits);
	o->nr_rounds = 0;
}

/* Is KVM usable here? If not, say so for @test's KVM half. */
static bool ts_kvm(const char *test)
{
	if (access("/dev/kvm", R_OK | W_OK)) {
		printf("SKIP: %s: KVM half: /dev/kvm unavailable (%s)\n", test, strerror(errno));
		return false;
	}
	return true;
}

/*
 * Boot the test guest on @accel with @spec until it ends; the guest must
 * end through isa-debug-exit with @status. Returns -ENODEV (after a SKIP
 * line) when the accelerator is not usable here.
 */
static int ts_boot_status(const char *test, const char *accel, const ts_spec *spec, ts_out *out,
			  int status)
{
	size_t size = 0;
	void *elf = vfx_guest(&size);
	vmm_config cfg = {
		.accel = accel, .ram_size = TS_RAM, .nr_vcpus = spec->smp ? spec->smp : 1,
		.elf = elf, .elf_size = size, .elf_name = "testguest.elf", .cmdline = spec->cmdline,
		.dirty = spec->dirty ? spec->dirty : VMM_DIRTY_BITMAP,
		.ring_entries = spec->ring_entries, .console = ts_console, .console_opaque = out,
		.dirty_round = ts_dirty_round, .dirty_round_opaque = out,
	};
	mv_error err = { 0 };
	vmm *v;
	int r;

	ts_out_free(out);
	memset(out, 0, sizeof(*out));
	r = vmm_new(&cfg, &v, &err);
	free(elf);
	if (r == -ENODEV) {
		printf("SKIP: %s: %s half: %s\n", test, accel, err.msg);
		return r;
	}
	if (r)
		fail_msg("%s on %s: vmm_new: %s", test, accel, err.msg);
	assert_int_equal(vfx_run(v, &out->res, spec->during), 0);
	out->stats = *vmm_get_stats(v);
	assert_null(vmm_memslot_error(v));
	vmm_free(v);
	out->text[out->len] = 0;
	if (out->res.end != VMM_END_GUEST_EXIT || out->res.exit_status != status)
		fail_msg("%s on %s: \"%s\" ended with \"%s\" (status %d, expected %d); output:\n%s", test,
			 accel, spec->cmdline, out->res.message, out->res.exit_status, status, out->text);
	return 0;
}

static int ts_boot(const char *test, const char *accel, const ts_spec *spec, ts_out *out)
{
	return ts_boot_status(test, accel, spec, out, 1);
}

/* skip() leaves a test by longjmp: the outputs are static, not malloc'ed per test. */
static ts_out ts_soft, ts_kvm_out;

static int ts_teardown(void **state)
{
	(void)state;
	ts_out_free(&ts_soft);
	ts_out_free(&ts_kvm_out);
	return 0;
}

/* @line is a whole line of @o's console. */
static void ts_expect_line(const ts_out *o, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = o->text; (p = strstr(p, line)); p++)
		if ((p == o->text || p[-1] == '\n') && p[n] == '\n')
			return;
	fail_msg("missing line '%s' in:\n%s", line, o->text);
}

/* ---- the model: the dirty workload's pages, from the guest's generator ---- */

/*
 * The rounds of "workload=dirty" for one vCPU: round r's pages as a bitmap
 * of the working set at bits + (r - 1) * words.
 */
typedef struct ts_model {
	uint64_t ws_pages, words;
	uint64_t *bits;             /* rounds * words */
} ts_model;

static void ts_model_build(ts_model *m, uint64_t seed, unsigned cpu, uint64_t ws_mib,
			   uint64_t rounds, uint64_t pages)
{
	uint64_t st = mvg_cpu_seed(seed, cpu);

	m->ws_pages = ws_mib * MVG_MIB / MVG_PAGE_SIZE;
	m->words = (m->ws_pages + 63) / 64;
	m->bits = calloc(rounds * m->words, sizeof(uint64_t));
	assert_non_null(m->bits);
	for (uint64_t r = 0; r < rounds; r++)
		for (uint64_t i = 0; i < pages; i++)
			mvg_bit_set_first(m->bits + r * m->words,
					  mvg_dirty_page(mvg_splitmix64(&st), m->ws_pages));
}

static uint64_t ts_popcount(const uint64_t *bits, uint64_t words)
{
	uint64_t n = 0;

	for (uint64_t w = 0; w < words; w++)
		n += (uint64_t)__builtin_popcountll(bits[w]);
	return n;
}

/* The recorded round @round of @vcpu, or fail. */
static const ts_round *ts_find_round(const ts_out *o, unsigned vcpu, uint32_t round)
{
	for (unsigned i = 0; i < o->nr_rounds; i++)
		if (o->rounds[i].vcpu == vcpu && o->rounds[i].round == round)
			return &o->rounds[i];
	fail_msg("no dirty log recorded for vCPU %u round %u", vcpu, round);
	return NULL;
}

/*
 * Every round of vCPU @cpu in @o: the dirty log equals the model's page
 * set exactly, and the guest's "dirty:" line says the model's count and
 * hash.
 */
static void ts_check_model(const ts_out *o, unsigned cpu, uint64_t seed, uint64_t ws_mib,
			   uint64_t rounds, uint64_t pages)
{
	ts_model m;
	char line[128];

	ts_model_build(&m, seed, cpu, ws_mib, rounds, pages);
	for (uint64_t r = 1; r <= rounds; r++) {
		const uint64_t *want = m.bits + (r - 1) * m.words;
		const ts_round *got = ts_find_round(o, cpu, (uint32_t)r);

		assert_int_equal(got->pages, m.ws_pages);
		assert_non_null(got->bits);
		if (memcmp(got->bits, want, m.words * sizeof(uint64_t)))
			fail_msg("vCPU %u round %" PRIu64 ": dirty log (%" PRIu64 " pages) differs from "
				 "the pages the generator picks (%" PRIu64 ")", cpu, r,
				 ts_popcount(got->bits, m.words), ts_popcount(want, m.words));
		snprintf(line, sizeof(line), "dirty: cpu %u round %" PRIu64 " pages %" PRIu64
			 " hash %016" PRIx64, cpu, r, ts_popcount(want, m.words),
			 mvg_bitmap_hash(want, m.words));
		ts_expect_line(o, line);
		snprintf(line, sizeof(line), "mvt: dirty cpu %u round %" PRIu64 " status 0", cpu, r);
		ts_expect_line(o, line);
	}
	free(m.bits);
}

/* The two runs logged the same working sets, round by round, bit for bit. */
static void ts_compare_rounds(const ts_out *soft, const ts_out *kvm)
{
	assert_int_equal(soft->nr_rounds, kvm->nr_rounds);
	for (unsigned i = 0; i < kvm->nr_rounds; i++) {
		const ts_round *k = &kvm->rounds[i];
		const ts_round *s = ts_find_round(soft, k->vcpu, k->round);
		uint64_t words = (k->pages + 63) / 64;

		assert_int_equal(s->gpa, k->gpa);
		assert_int_equal(s->pages, k->pages);
		assert_non_null(s->bits);
		assert_non_null(k->bits);
		if (memcmp(s->bits, k->bits, words * sizeof(uint64_t)))
			fail_msg("vCPU %u round %u: soft's dirty log (%" PRIu64 " pages) differs from "
				 "KVM's (%" PRIu64 ")", k->vcpu, k->round, ts_popcount(s->bits, words),
				 ts_popcount(k->bits, words));
	}
}

/* ---- line comparison ---- */

static int ts_cmp_lines(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * @text's lines, sorted when @sorted (vCPUs print in no fixed order), with
 * the machine-wide SEQ_COUNT value blanked (it depends on how the vCPUs
 * interleave), joined again into a new string.
 */
static char *ts_normalise(const char *text, bool sorted)
{
	size_t len = strlen(text), n = 0, off = 0;
	char *copy = strdup(text), **lines = calloc(len + 1, sizeof(char *));
	char *out = calloc(len + 1, 1), *save = NULL;

	assert_true(copy && lines && out);
	for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		char *seq = strstr(l, " seq_count ");
		if (seq)
			seq[strlen(" seq_count")] = 0;
		lines[n++] = l;
	}
	if (sorted)
		qsort(lines, n, sizeof(*lines), ts_cmp_lines);
	for (size_t i = 0; i < n; i++)
		off += (size_t)sprintf(out + off, "%s\n", lines[i]);
	free(lines);
	free(copy);
	return out;
}

static void ts_compare_console(const ts_out *soft, const ts_out *kvm, unsigned smp)
{
	char *s, *k;

	if (smp <= 1) {
		if (strcmp(soft->text, kvm->text))
			fail_msg("console differs\n--- kvm:\n%s--- soft:\n%s", kvm->text, soft->text);
		return;
	}
	s = ts_normalise(soft->text, true);
	k = ts_normalise(kvm->text, true);
	if (strcmp(s, k)) {
		print_message("--- kvm:\n%s--- soft:\n%s", k, s);
		free(s);
		free(k);
		fail_msg("console lines differ (sorted, SEQ_COUNT blanked)");
	}
	free(s);
	free(k);
}

/* ---- tests: the soft half alone ---- */

static void test_soft_workloads(void **state)
{
	ts_spec spec = { .cmdline = "workload=touch,dirty,mmio,pio,verify,rom mib=2 rounds=3 "
				    "pages=100 ws_mib=2 count=50 seed=11" };
	ts_out *o = &ts_soft;

	(void)state;
	ts_boot(__func__, "soft", &spec, o);
	/* entry.S's line first, then vCPU 0's device line */
	assert_int_equal(strncmp(o->text, TS_HEAD, strlen(TS_HEAD)), 0);
	ts_expect_line(o, "touch: cpu 0 pages 512");
	ts_expect_line(o, "mmio: cpu 0 ops 50 ok");
	ts_expect_line(o, "mvt: mmio cpu 0 scratch_bad 0 seq_check 0 seq_count 50");
	ts_expect_line(o, "pio: cpu 0 ops 50 string 64 ok");
	ts_expect_line(o, "rom: unchanged");
	ts_expect_line(o, "mvt: rom magic ok");
	ts_expect_line(o, "guest: done");
	ts_check_model(o, 0, 11, 2, 3, 100);
	assert_int_equal(o->stats.dirty_rounds, 3);
	assert_int_equal(o->stats.dirty_mismatches, 0);
	/* the ROM store exited and was dropped; 50 SCRATCH writes exited */
	assert_true(o->stats.mmio_writes + o->stats.coalesced_writes >= 50 + 50 + 1);
	assert_true(o->stats.pio_writes >= 50 + 64 && o->stats.pio_reads >= 50 + 64);
	assert_true(o->stats.pages_resident >= 512);
}

/* verify's sums: the model regenerates the stream and hashes it per MiB. */
static void test_soft_verify_sums(void **state)
{
	ts_spec spec = { .cmdline = "workload=verify verify_mib=2 verify_seed=0x5eed base_mib=40" };
	ts_out *o = &ts_soft;
	uint64_t st = mvg_cpu_seed(0x5eed, 0);
	char line[128];

	(void)state;
	ts_boot(__func__, "soft", &spec, o);
	for (uint64_t m = 0; m < 2; m++) {
		uint64_t h = MVG_FNV_OFFSET;

		for (uint64_t i = 0; i < MVG_MIB / 8; i++)
			h = mvg_fnv1a_u64(h, mvg_splitmix64(&st));
		snprintf(line, sizeof(line), "verify: cpu 0 mib %" PRIu64 " sum %016" PRIx64, m, h);
		ts_expect_line(o, line);
	}
}

static void test_soft_bad_cmdline(void **state)
{
	ts_spec spec = { .cmdline = "workload=touch,,dirty" };
	ts_out *o = &ts_soft;

	(void)state;
	ts_boot_status(__func__, "soft", &spec, o, (MVG_EXIT_CMDLINE << 1) | 1);
	/* the command line is parsed before the device line is printed */
	assert_string_equal(o->text, MVG_LINE_BOOT "guest: bad command line: workload=touch,,dirty\n");
}

/* No room for the slices: the guest's FAIL line and exit value 1 (status 3). */
static void test_soft_no_room(void **state)
{
	ts_spec spec = { .cmdline = "workload=touch mib=2 base_mib=300" };
	ts_out *o = &ts_soft;

	(void)state;
	ts_boot_status(__func__, "soft", &spec, o, (MVG_EXIT_FAIL << 1) | 1);
	ts_expect_line(o, "guest: FAIL memory: no room for 1 slices of 2 MiB from 300 MiB");
}

static void ts_soft_dirty_mode(const char *test, vmm_dirty_mode mode, uint32_t ring)
{
	uint64_t seed = tu_seed(7);
	char cmdline[128];
	ts_spec spec = { .cmdline = cmdline, .dirty = mode, .ring_entries = ring };
	ts_out *o = &ts_soft;

	snprintf(cmdline, sizeof(cmdline), "workload=dirty rounds=6 pages=300 ws_mib=4 seed=%" PRIu64,
		 seed);
	ts_boot(test, "soft", &spec, o);
	ts_check_model(o, 0, seed, 4, 6, 300);
	assert_int_equal(o->stats.dirty_rounds, 6);
	assert_int_equal(o->stats.dirty_mismatches, 0);
	if (ring && ring <= 256)
		assert_true(o->stats.exits[HV_EXIT_DIRTY_RING_FULL] > 0);
}

static void test_soft_dirty_bitmap(void **state) { (void)state; ts_soft_dirty_mode(__func__, VMM_DIRTY_BITMAP, 0); }
static void test_soft_dirty_manual(void **state) { (void)state; ts_soft_dirty_mode(__func__, VMM_DIRTY_MANUAL, 0); }
static void test_soft_dirty_ring(void **state) { (void)state; ts_soft_dirty_mode(__func__, VMM_DIRTY_RING, 4096); }
/* A ring smaller than a round: "dirty ring full" exits, and nothing is lost. */
static void test_soft_dirty_ring_full(void **state) { (void)state; ts_soft_dirty_mode(__func__, VMM_DIRTY_RING, 256); }

static void test_soft_two_vcpus(void **state)
{
	ts_spec spec = { .cmdline = "workload=touch,dirty,mmio,pio mib=2 rounds=3 pages=100 ws_mib=2 "
				    "count=100 seed=3", .smp = 2 };
	ts_out *o = &ts_soft;

	(void)state;
	ts_boot(__func__, "soft", &spec, o);
	ts_expect_line(o, "touch: cpu 0 pages 512");
	ts_expect_line(o, "touch: cpu 1 pages 512");
	ts_expect_line(o, "mmio: cpu 0 ops 100 ok");
	ts_expect_line(o, "mmio: cpu 1 ops 100 ok");
	ts_expect_line(o, "pio: cpu 1 ops 100 string 64 ok");
	ts_check_model(o, 0, 3, 2, 3, 100);
	ts_check_model(o, 1, 3, 2, 3, 100);
	/* vCPU 1's slice follows vCPU 0's */
	assert_int_equal(ts_find_round(o, 1, 1)->gpa, ts_find_round(o, 0, 1)->gpa + 2 * MVG_MIB);
	assert_int_equal(o->stats.dirty_mismatches, 0);
}

/* Pause and resume from another thread many times: no access is lost. */
static void test_soft_pause_resume(void **state)
{
	ts_spec spec = { .cmdline = "workload=mmio,pio,mmio count=2000", .smp = 2,
			 .during = vfx_pause_resume };
	ts_out *o = &ts_soft;
	char *lines;

	(void)state;
	ts_boot(__func__, "soft", &spec, o);
	lines = ts_normalise(o->text, true);
	if (!strstr(lines, "mmio: cpu 0 ops 2000 ok\nmmio: cpu 0 ops 2000 ok\n") ||
	    !strstr(lines, "mmio: cpu 1 ops 2000 ok\nmmio: cpu 1 ops 2000 ok\n") ||
	    !strstr(lines, "pio: cpu 0 ops 2000 string 64 ok\npio: cpu 1 ops 2000 string 64 ok\n")) {
		free(lines);
		fail_msg("unexpected output:\n%s", o->text);
	}
	free(lines);
	assert_true(o->stats.exits[HV_EXIT_INTR] > 0);
}

static void test_soft_guest_errors(void **state)
{
	mv_error err = { 0 };
	vmm_soft_guest *g = NULL;

	(void)state;
	assert_int_equal(vmm_soft_guest_new(0x6000, 0, &g, &err), -EINVAL);
	assert_string_equal(err.msg, "the soft test guest runs on 1 to 64 vCPUs, not 0");
	assert_int_equal(vmm_soft_guest_new(0x6000, 65, &g, &err), -EINVAL);
	assert_null(g);
}

/* ---- tests: soft against KVM ---- */

/*
 * The dirty workload with the same seed on both: the same console text and,
 * round by round, the same working-set dirty bitmap.
 */
static void ts_diff_dirty(const char *test, vmm_dirty_mode mode, unsigned smp)
{
	uint64_t seed = tu_seed(7);
	char cmdline[128];
	ts_spec spec = { .cmdline = cmdline, .dirty = mode, .smp = smp };

	snprintf(cmdline, sizeof(cmdline), "workload=dirty rounds=6 pages=400 ws_mib=4 seed=%" PRIu64,
		 seed);
	ts_boot(test, "soft", &spec, &ts_soft);
	for (unsigned cpu = 0; cpu < (smp ? smp : 1); cpu++)
		ts_check_model(&ts_soft, cpu, seed, 4, 6, 400);
	if (!ts_kvm(test) || ts_boot(test, "kvm", &spec, &ts_kvm_out))
		skip();
	assert_int_equal(ts_kvm_out.stats.dirty_mismatches, 0);
	ts_compare_rounds(&ts_soft, &ts_kvm_out);
	ts_compare_console(&ts_soft, &ts_kvm_out, smp);
}

static void test_diff_dirty_bitmap(void **state) { (void)state; ts_diff_dirty(__func__, VMM_DIRTY_BITMAP, 1); }
static void test_diff_dirty_manual(void **state) { (void)state; ts_diff_dirty(__func__, VMM_DIRTY_MANUAL, 1); }
static void test_diff_dirty_ring(void **state) { (void)state; ts_diff_dirty(__func__, VMM_DIRTY_RING, 1); }
static void test_diff_dirty_two_vcpus(void **state) { (void)state; ts_diff_dirty(__func__, VMM_DIRTY_BITMAP, 2); }

/* Each workload alone, then all together, on one and on two vCPUs: the same lines. */
static void test_diff_console(void **state)
{
	static const struct { const char *cmdline; unsigned smp; } runs[] = {
		{ "workload=touch mib=3", 1 },
		{ "workload=dirty rounds=2 pages=64 ws_mib=1 seed=99", 1 },
		{ "workload=mmio count=300 seq_count=40", 1 },
		{ "workload=pio count=300", 1 },
		{ "workload=verify verify_mib=2 verify_seed=77", 1 },
		{ "workload=rom", 1 },
		{ "workload=touch,dirty,mmio,pio,verify,rom mib=2 rounds=2 pages=50 count=20", 1 },
		{ "workload=touch,dirty,mmio,pio,verify mib=2 rounds=3 pages=100 ws_mib=2 count=50 seed=5", 2 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
		ts_spec spec = { .cmdline = runs[i].cmdline, .smp = runs[i].smp };

		ts_boot(__func__, "soft", &spec, &ts_soft);
		if (i == 0 && !ts_kvm(__func__))
			skip();
		if (ts_boot(__func__, "kvm", &spec, &ts_kvm_out))
			skip();
		ts_compare_console(&ts_soft, &ts_kvm_out, runs[i].smp);
		printf("ok: \"%s\" (%u vCPU%s)\n", runs[i].cmdline, runs[i].smp, runs[i].smp > 1 ? "s" : "");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_soft_workloads, ts_teardown),
		cmocka_unit_test_teardown(test_soft_verify_sums, ts_teardown),
		cmocka_unit_test_teardown(test_soft_bad_cmdline, ts_teardown),
		cmocka_unit_test_teardown(test_soft_no_room, ts_teardown),
		cmocka_unit_test_teardown(test_soft_dirty_bitmap, ts_teardown),
		cmocka_unit_test_teardown(test_soft_dirty_manual, ts_teardown),
		cmocka_unit_test_teardown(test_soft_dirty_ring, ts_teardown),
		cmocka_unit_test_teardown(test_soft_dirty_ring_full, ts_teardown),
		cmocka_unit_test_teardown(test_soft_two_vcpus, ts_teardown),
		cmocka_unit_test_teardown(test_soft_pause_resume, ts_teardown),
		cmocka_unit_test(test_soft_guest_errors),
		cmocka_unit_test_teardown(test_diff_dirty_bitmap, ts_teardown),
		cmocka_unit_test_teardown(test_diff_dirty_manual, ts_teardown),
		cmocka_unit_test_teardown(test_diff_dirty_ring, ts_teardown),
		cmocka_unit_test_teardown(test_diff_dirty_two_vcpus, ts_teardown),
		cmocka_unit_test_teardown(test_diff_console, ts_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
