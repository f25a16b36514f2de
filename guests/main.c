/*
 * CPL3 main of every vCPU. vCPU 0 maps RAM (paging.c), probes the test
 * device, parses the command line and places each vCPU's slice of the
 * workload area, then releases the others; every vCPU runs the workload list on its slice;
 * vCPU 0 waits for all, prints "guest: done" and ends the VM.
 */
#include "guest.h"

static struct mvg_config g_cfg;
static bool g_dev;
static unsigned g_nr_cpus = 1;
static uint64_t g_slice;
static uint64_t g_base[MVG_MAX_CPUS];
static volatile uint32_t g_go;        /* 1 = run, 2 = vCPU 0 gave up */
static volatile uint32_t g_done;

static void prepare(void)
{
	char bad[64];

	if (g_boot.cmdline_src) {
		const char *s = (const char *)(uintptr_t)g_boot.cmdline_src;
		size_t n = 0;
		while (n < MVG_CMDLINE_MAX - 1 && s[n])
			n++;
		memcpy(g_boot.cmdline, s, n);
		g_boot.cmdline[n] = 0;
	}
	map_guest_ram();
	g_dev = mmio_read(MVT_REG_MAGIC) == MVT_MAGIC;
	if (mvg_parse_cmdline(g_boot.cmdline, &g_cfg, bad, sizeof(bad))) {
		say(MVG_FMT_BAD_CMDLINE, bad);
		guest_exit(MVG_EXIT_CMDLINE);
	}
	if (g_dev) {
		uint64_t n = mmio_read(MVT_REG_NR_VCPUS);
		say(MVG_FMT_DEVICE, mmio_read(MVT_REG_VERSION), n, mmio_read(MVT_REG_RAM_SIZE));
		if (n < 1 || n > MVG_MAX_CPUS) {
			fail(MVG_FAIL_VCPUS, n, MVG_MAX_CPUS);
			guest_exit(MVG_EXIT_FAIL);
		}
		g_nr_cpus = (unsigned)n;
	}
	g_slice = mvg_slice_size(&g_cfg);
	if (!mvg_place_slices(g_cfg.base_mib, g_slice, g_boot.ram, g_boot.nr_ram, g_nr_cpus, g_base)) {
		fail(MVG_FAIL_NO_ROOM, g_nr_cpus, g_slice / MIB, g_cfg.base_mib);
		guest_exit(MVG_EXIT_FAIL);
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
		case MVG_WL_TOUCH: wl_touch(&c, &g_cfg); break;
		case MVG_WL_DIRTY: wl_dirty(&c, &g_cfg); break;
		case MVG_WL_MMIO: wl_mmio(&c, &g_cfg); break;
		case MVG_WL_PIO: wl_pio(&c, &g_cfg); break;
		case MVG_WL_VERIFY: wl_verify(&c, &g_cfg); break;
		case MVG_WL_ROM: wl_rom(&c, &g_cfg); break;
		}
	}
	__atomic_fetch_add(&g_done, 1, __ATOMIC_RELEASE);
	if (cpu != 0)
		for (;;)
			cpu_relax();
	while (__atomic_load_n(&g_done, __ATOMIC_ACQUIRE) < g_nr_cpus)
		cpu_relax();
	if (__atomic_load_n(&g_failures, __ATOMIC_RELAXED))
		guest_exit(MVG_EXIT_FAIL);
	say(MVG_LINE_DONE);
	guest_exit(MVG_EXIT_OK);
}
