/*
 * CPL3 main of every vCPU. vCPU 0 maps RAM (paging.c), probes the test
 * device, parses the command line and places each vCPU's slice of the
 * workload area, then releases the others; every vCPU runs the workload list on its slice;
 * vCPU 0 waits for all, prints "guest: done" and ends the VM.
 */
#include "guest.h"

static struct config g_cfg;
static bool g_dev;
static unsigned g_nr_cpus = 1;
static uint64_t g_slice;
static uint64_t g_base[MAX_CPUS];
static volatile uint32_t g_go;        /* 1 = run, 2 = vCPU 0 gave up */
static volatile uint32_t g_done;

/* Bytes of the workload area one vCPU needs for the configured workloads. */
static uint64_t slice_size(const struct config *c)
{
	uint64_t mib = 0;

	for (unsigned i = 0; i < c->nr_wl; i++) {
		uint64_t m = 0;
		switch (c->wl[i]) {
		case WL_TOUCH: m = c->touch_mib; break;
		case WL_DIRTY: m = c->ws_mib; break;
		case WL_VERIFY: m = c->verify_mib; break;
		default: break;
		}
		if (m > mib)
			mib = m;
	}
	return (mib * MIB + 2 * MIB - 1) & ~(2 * MIB - 1);
}

/*
 * Give each vCPU a 2 MiB aligned slice inside one RAM range, going up
 * from base_mib. Returns false when RAM runs out.
 */
static bool place_slices(void)
{
	uint64_t cur = g_cfg.base_mib * MIB;
	unsigned r = 0;

	g_slice = slice_size(&g_cfg);
	for (unsigned cpu = 0; cpu < g_nr_cpus; cpu++) {
		for (;; r++) {
			if (r == g_boot.nr_ram)
				return false;
			uint64_t a = g_boot.ram[r].start > cur ? g_boot.ram[r].start : cur;
			a = (a + 2 * MIB - 1) & ~(2 * MIB - 1);
			if (a + g_slice <= g_boot.ram[r].end && a + g_slice >= a) {
				g_base[cpu] = a;
				cur = a + g_slice;
				break;
			}
		}
	}
	return true;
}

static void prepare(void)
{
	char bad[64];

	if (g_boot.cmdline_src) {
		const char *s = (const char *)(uintptr_t)g_boot.cmdline_src;
		size_t n = 0;
		while (n < CMDLINE_MAX - 1 && s[n])
			n++;
		memcpy(g_boot.cmdline, s, n);
		g_boot.cmdline[n] = 0;
	}
	map_guest_ram();
	g_dev = mmio_read(MVT_REG_MAGIC) == MVT_MAGIC;
	if (parse_cmdline(g_boot.cmdline, &g_cfg, bad, sizeof(bad))) {
		say("guest: bad command line: %s\n", bad);
		guest_exit(EXIT_CMDLINE);
	}
	if (g_dev) {
		uint64_t n = mmio_read(MVT_REG_NR_VCPUS);
		say("mvt: device version %lu vcpus %lu ram %lu\n", mmio_read(MVT_REG_VERSION), n,
		    mmio_read(MVT_REG_RAM_SIZE));
		if (n < 1 || n > MAX_CPUS) {
			fail("vcpus %lu (this guest handles 1 to %u)", n, MAX_CPUS);
			guest_exit(EXIT_FAIL);
		}
		g_nr_cpus = (unsigned)n;
	}
	if (!place_slices()) {
		fail("memory: no room for %u slices of %lu MiB from %lu MiB", g_nr_cpus,
		     g_slice / MIB, g_cfg.base_mib);
		guest_exit(EXIT_FAIL);
	}
}

__attribute__((noreturn)) void user_main(unsigned cpu)
{
	if (cpu == 0) {
		prepare();
		__atomic_store_n(&g_go, 1, __ATOMIC_RELEASE);
	} else {
		while (!__atomic_load_n(&g_go, __ATOMIC_ACQUIRE))
			cpu_relax();
		/* vCPU 0 replaced page directories since this vCPU loaded CR3 */
		svc_call(SVC_FLUSH_TLB);
		if (cpu >= g_nr_cpus)
			for (;;)
				cpu_relax();    /* not part of this machine's count */
	}

	struct cpu_ctx c = { .cpu = cpu, .nr_cpus = g_nr_cpus, .dev = g_dev, .base = g_base[cpu], .slice = g_slice };
	for (unsigned i = 0; i < g_cfg.nr_wl; i++) {
		switch (g_cfg.wl[i]) {
		case WL_TOUCH: wl_touch(&c, &g_cfg); break;
		case WL_DIRTY: wl_dirty(&c, &g_cfg); break;
		case WL_MMIO: wl_mmio(&c, &g_cfg); break;
		case WL_PIO: wl_pio(&c, &g_cfg); break;
		case WL_VERIFY: wl_verify(&c, &g_cfg); break;
		case WL_ROM: wl_rom(&c, &g_cfg); break;
		}
	}
	__atomic_fetch_add(&g_done, 1, __ATOMIC_RELEASE);
	if (cpu != 0)
		for (;;)
			cpu_relax();
	while (__atomic_load_n(&g_done, __ATOMIC_ACQUIRE) < g_nr_cpus)
		cpu_relax();
	if (__atomic_load_n(&g_failures, __ATOMIC_RELAXED))
		guest_exit(EXIT_FAIL);
	say("guest: done\n");
	guest_exit(EXIT_OK);
}
