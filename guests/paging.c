/*
 * The RAM part of the final identity page tables, built by vCPU 0 at CPL3
 * before any workload runs (the fixed part, entry.S, maps the first
 * 16 MiB, the test device and the ROM). The tables are user-accessible
 * memory, and CPL3 runs natively while CPL0 may run in the hypervisor's
 * emulator (kvm_pvm: several us per instruction, 140 ms to map 5 GiB).
 *
 * Under shadow paging a write to a table in use traps and is emulated,
 * one trap per entry (50-70 ms for 1 GiB). So the directories of the
 * first 4 GiB, which the static tables link, are replaced by fresh copies
 * that are filled while unlinked, then linked with one PDPT write each;
 * directories above 4 GiB are fresh anyway (a not-present entry made
 * present needs no invalidation). The replaced PDPT entries need a TLB
 * flush: a CPL0 service call (svc_call) reloads CR3.
 */
#include "guest.h"

/* Page-table entry bits (Intel SDM vol. 3, 4.5). */
#define PTE_P 0x001ULL
#define PTE_RW 0x002ULL
#define PTE_US 0x004ULL
#define PTE_PS 0x080ULL
#define PTE_ADDR 0x000ffffffffff000ULL
#define PTE_TABLE (PTE_P | PTE_RW | PTE_US)
#define PTE_PAGE (PTE_P | PTE_RW | PTE_US)
#define LARGE (2 * MIB)

extern uint64_t fin_pml4[512], fin_pdpt[512];
extern uint8_t __pt_pool_start[], __pt_pool_end[];
static uint8_t *pt_next = __pt_pool_start;

/* A page from the pool: bss, so zeroed by the loader (PVH loaders zero p_memsz). */
static uint64_t *new_table(void)
{
	if (pt_next + PAGE_SIZE > __pt_pool_end) {
		fail("paging: the page-table pool (%lu KiB) is too small for this memory map",
		     (uint64_t)(__pt_pool_end - __pt_pool_start) / 1024);
		guest_exit(MVG_EXIT_FAIL);
	}
	pt_next += PAGE_SIZE;
	return (uint64_t *)(pt_next - PAGE_SIZE);
}

/* The next-level table under entry @e, created if absent. */
static uint64_t *next_level(volatile uint64_t *e)
{
	if (!(*e & PTE_P))
		*e = (uint64_t)(uintptr_t)new_table() | PTE_TABLE;
	return (uint64_t *)(uintptr_t)(*e & PTE_ADDR);
}

/* Unlinked copies of the static directories of 0-4 GiB, made on first use. */
static uint64_t *low_pd[4];

/* The page directory covering @gpa. */
static volatile uint64_t *pd_of(uint64_t gpa)
{
	if (gpa < (4ULL << 30)) {
		unsigned g = (unsigned)(gpa >> 30);
		if (!low_pd[g]) {
			const uint64_t *old = (const uint64_t *)(uintptr_t)(fin_pdpt[g] & PTE_ADDR);
			low_pd[g] = new_table();
			for (unsigned i = 0; i < 512; i++)
				low_pd[g][i] = old[i];
		}
		return low_pd[g];
	}
	uint64_t *pdpt = next_level(&fin_pml4[(gpa >> 39) & 511]);
	return next_level(&pdpt[(gpa >> 30) & 511]);
}

/* Map the 4 KiB page @gpa unless mapped (a 2 MiB page covering it counts). */
static void map_4k(uint64_t gpa)
{
	volatile uint64_t *pde = &pd_of(gpa)[(gpa >> 21) & 511];

	if ((*pde & (PTE_P | PTE_PS)) == (PTE_P | PTE_PS))
		return;
	volatile uint64_t *pt = next_level(pde);
	if (!(pt[(gpa >> 12) & 511] & PTE_P))
		pt[(gpa >> 12) & 511] = gpa | PTE_PAGE;
}

/*
 * Map RAM [start, end): 2 MiB pages where a whole aligned 2 MiB fits,
 * 4 KiB pages at unaligned ends and inside a 2 MiB range that already
 * has a page table (the first 2 MiB, the MMIO and ROM ones).
 */
static void map_ram(uint64_t start, uint64_t end)
{
	uint64_t a = start & ~(PAGE_SIZE - 1);

	end &= ~(PAGE_SIZE - 1);    /* a partial last page is not RAM as a whole */
	while (a < end) {
		if ((a & (LARGE - 1)) || end - a < LARGE) {
			map_4k(a);
			a += PAGE_SIZE;
			continue;
		}
		volatile uint64_t *pd = pd_of(a);
		for (unsigned i = (a >> 21) & 511; i < 512 && end - a >= LARGE; i++, a += LARGE) {
			uint64_t e = pd[i];
			if (!e) {
				pd[i] = a | PTE_PAGE | PTE_PS;
			} else if (!(e & PTE_PS)) {
				volatile uint64_t *pt = (uint64_t *)(uintptr_t)(e & PTE_ADDR);
				for (unsigned j = 0; j < 512; j++)
					if (!(pt[j] & PTE_P))
						pt[j] = (a + j * PAGE_SIZE) | PTE_PAGE;
			}
		}
	}
}

void map_guest_ram(void)
{
	for (unsigned i = 0; i < g_boot.nr_ram; i++)
		map_ram(g_boot.ram[i].start, g_boot.ram[i].end);
	for (unsigned g = 0; g < 4; g++)
		if (low_pd[g])
			*(volatile uint64_t *)&fin_pdpt[g] = (uint64_t)(uintptr_t)low_pd[g] | PTE_TABLE;
	svc_call(SVC_FLUSH_TLB);    /* CR3 reload; the exception is serializing too */
}
