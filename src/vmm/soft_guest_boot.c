/*
 * The soft test guest's PVH entry and set-up (guests/entry.S, setup.c):
 * vCPU 0 prints the boot line first, then reads hvm_start_info, the RAM
 * ranges of its memory map and the command line from guest memory, where
 * the PVH loader put them, through guest reads, with the guest's own
 * checks and failure lines (memvirt/guest_gen.h).
 *
 * What the guest does here besides that has no counterpart in a program:
 * CPUID for its APIC id (a program knows its vCPU id), the switch to long
 * mode on boot page tables, GDT/TSS/IDT, the final page tables and the
 * drop to CPL3 (paging stays off: every address is guest-physical).
 */
#include "vmm/soft_guest_internal.h"

#include <string.h>

__attribute__((noreturn)) static void sg_setup_fatal(vmm_sg_cpu *c, const char *what, uint64_t v)
{
	vmm_sg_say_unlocked(c, MVG_FMT_SETUP_FAIL, what, v);
	vmm_sg_exit(c, MVG_EXIT_FAIL);
}

/* @len (a multiple of 8) bytes of guest memory at @gpa into @buf, a qword at a time. */
static void sg_read_words(vmm_sg_cpu *c, uint64_t gpa, void *buf, size_t len)
{
	for (size_t i = 0; i < len; i += 8) {
		uint64_t v = vmm_sg_read(c, gpa + i, 8);
		memcpy((char *)buf + i, &v, 8);
	}
}

/* The NUL-terminated command line at @gpa, at most MVG_CMDLINE_MAX - 1 bytes, a byte at a time. */
static void sg_read_cmdline(vmm_sg_cpu *c, uint64_t gpa)
{
	char *s = c->g->cmdline;
	size_t n = 0;

	while (n < MVG_CMDLINE_MAX - 1 && (s[n] = (char)vmm_sg_read(c, gpa + n, 1)))
		n++;
	s[n] = 0;
}

static void sg_read_start_info(vmm_sg_cpu *c)
{
	vmm_soft_guest *g = c->g;
	struct mvg_hvm_start_info si;
	uint64_t bad;
	const char *problem;

	_Static_assert(sizeof(si) % 8 == 0 && sizeof(struct mvg_hvm_memmap_entry) % 8 == 0,
		       "start_info structures are read a qword at a time");
	sg_read_words(c, g->start_info, &si, sizeof(si));
	problem = mvg_start_info_problem(&si, &bad);
	if (problem)
		sg_setup_fatal(c, problem, bad);
	if (si.cmdline_paddr)
		sg_read_cmdline(c, si.cmdline_paddr);
	for (uint32_t k = 0; k < si.memmap_entries; k++) {
		struct mvg_hvm_memmap_entry e;

		sg_read_words(c, si.memmap_paddr + k * sizeof(e), &e, sizeof(e));
		if (!mvg_ram_add(g->ram, &g->nr_ram, &e))
			sg_setup_fatal(c, MVG_SETUP_RAM_FULL, si.memmap_entries);
	}
	if (!g->nr_ram)
		sg_setup_fatal(c, MVG_SETUP_NO_RAM, si.memmap_entries);
}

void vmm_sg_boot(vmm_sg_cpu *c)
{
	vmm_soft_guest *g = c->g;

	if (c->id != 0) {
		while (!atomic_load_explicit(&g->tables_ready, memory_order_acquire))
			vmm_sg_relax(c);
		return;
	}
	/* entry.S: the boot line is the first thing vCPU 0 does, without the console lock */
	vmm_sg_say_unlocked(c, MVG_LINE_BOOT);
	sg_read_start_info(c);
	atomic_store_explicit(&g->tables_ready, 1, memory_order_release);
}
