/*
 * The x86 TDP fault path of the soft VM, driven directly: each test
 * builds the exit qualification (or misconfiguration) of one EPT exit,
 * hands it to x86_handle_ept_violation / x86_handle_ept_misconfig and
 * checks the action, the SPTE left (level, exact value), the exit record,
 * the statistics, dirty bits and the rmap -- for every level choice
 * (4 KiB, 2 MiB THP / hugetlb, 1 GiB hugetlb and each refusal), NX huge
 * pages, MMIO SPTEs and their generations, read-only slots, the fast path,
 * notifier races, poison, prefetch and random map / zap sequences.
 *
 * Guest RAM is anonymous memory of this process (the SPTE's output
 * address is the host address). Hugetlb backings are declarations to the
 * host oracle; THP placement is the kernel's, so the THP case checks what
 * the oracle reports and prints SKIP when no huge page was placed.
 */
#include "testutil.h"

#include "soft/x86/x86_fault.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define SZ_4K (1ull << 12)
#define SZ_1M (1ull << 20)
#define SZ_2M (1ull << 21)
#define SZ_1G (1ull << 30)

#define RAM_GPA 0x40000000ull     /* slot 0: 8 MiB of RAM, 2 MiB aligned host */
#define RAM_SIZE (8ull << 20)
#define MMIO_GPA 0xd0000000ull    /* no slot there */
#define TEST_GVA 0x7f0000001000ull

/* ------------------------------------------------------------------ */
/* A VM with vCPU 0 and (usually) RAM slot 0                            */

typedef struct fx {
	mv_x86_vm *vm;
	mv_x86_vcpu *vcpu;
	tu_region ram;
} fx;

static void fx_init(fx *f, const mv_x86_vm_config *cfg)
{
	mv_x86_vm_config c = { 0 };
	mv_error err = { 0 };

	if (cfg)
		c = *cfg;
	memset(f, 0, sizeof(*f));
	if (mv_x86_vm_new(&c, &f->vm, &err) != 0)
		fail_msg("mv_x86_vm_new: %s", err.msg);
	if (mv_x86_vcpu_new(f->vm, 0, &f->vcpu, &err) != 0)
		fail_msg("mv_x86_vcpu_new: %s", err.msg);
}

static void fx_fini(fx *f)
{
	mv_x86_vcpu_free(f->vcpu);
	mv_x86_vm_free(f->vm);
	tu_region_unmap(&f->ram);
}

static void fx_slot(fx *f, unsigned id, uint32_t flags, uint64_t gpa, uint64_t size, uint64_t hva)
{
	hv_memslot m = { .slot = id, .flags = flags, .gpa = gpa, .size = size,
			 .hva = (void *)(uintptr_t)hva };

	assert_int_equal(mv_x86_vm_set_memslot(f->vm, &m), 0);
}

/* The default VM: 8 MiB of RAM at RAM_GPA (host 2 MiB aligned) in slot 0 with @flags. */
static void fx_ram(fx *f, const mv_x86_vm_config *cfg, uint32_t flags)
{
	fx_init(f, cfg);
	tu_region_map(&f->ram, RAM_SIZE, SZ_2M, PROT_READ | PROT_WRITE);
	/* Keep the kernel from placing THP behind the tests' backs (residency, sizes). */
	madvise(f->ram.base, RAM_SIZE, MADV_NOHUGEPAGE);
	fx_slot(f, 0, flags, RAM_GPA, RAM_SIZE, tu_hva(&f->ram, 0));
}

static const mv_memslot *fx_get_slot(fx *f, unsigned id)
{
	return mv_memslots_get(f->vm->slots, 0, id);
}

static void fx_declare(fx *f, uint64_t hva, uint64_t size, mv_host_backing kind, uint64_t page)
{
	assert_int_equal(mv_soft_host_declare(mv_x86_vm_host(f->vm), hva, size, kind, page), 0);
}

static mv_x86_vm_stats fx_stats(fx *f)
{
	mv_x86_vm_stats st;

	mv_x86_vm_get_stats(f->vm, &st);
	return st;
}

/* ------------------------------------------------------------------ */
/* EPT exits                                                            */

static uint64_t acc_bit(mv_x86_acc acc)
{
	return acc == MV_X86_WRITE ? MV_EPT_VIOL_ACC_WRITE :
	       acc == MV_X86_FETCH ? MV_EPT_VIOL_ACC_INSTR : MV_EPT_VIOL_ACC_READ;
}

static mv_pte leaf_at(fx *f, uint64_t gpa, int *level)
{
	mv_pte spte = 0;
	int lvl = 0;

	assert_int_equal(mv_ept_get_leaf(mv_x86_vm_ept(f->vm), gpa, &spte, &lvl), MV_PGT_OK);
	if (level)
		*level = lvl;
	return spte;
}

/* The qualification the CPU reports for @acc at @gpa now: bits 5:3 are the leaf's R/W/X. */
static uint64_t qual_now(fx *f, uint64_t gpa, mv_x86_acc acc)
{
	mv_pte spte = leaf_at(f, gpa, NULL);
	uint64_t q = acc_bit(acc) | MV_EPT_VIOL_GVA_VALID | MV_EPT_VIOL_GVA_TRANSLATED;

	if (mv_ept_is_present(spte))
		q |= (spte & MV_EPT_RWX) << 3;
	return q;
}

static mv_x86_fault_event violation_q(fx *f, uint64_t gpa, uint64_t qual, bool is_write)
{
	mv_x86_fault_event ev = { .exit_qual = qual, .gpa = gpa, .gva = TEST_GVA, .len = 4,
				  .is_write = is_write };

	memset(&f->vcpu->exit, 0, sizeof(f->vcpu->exit));
	x86_handle_ept_violation(f->vcpu, &ev);
	return ev;
}

static mv_x86_fault_event violation(fx *f, uint64_t gpa, mv_x86_acc acc)
{
	return violation_q(f, gpa, qual_now(f, gpa, acc), acc == MV_X86_WRITE);
}

static mv_x86_fault_event misconfig(fx *f, uint64_t gpa, bool is_write)
{
	mv_x86_fault_event ev = { .misconfig = true, .gpa = gpa, .gva = TEST_GVA, .len = 2,
				  .is_write = is_write };

	memset(&f->vcpu->exit, 0, sizeof(f->vcpu->exit));
	x86_handle_ept_misconfig(f->vcpu, &ev);
	return ev;
}

static void assert_action(const mv_x86_fault_event *ev, mv_x86_action want)
{
	if (ev->action != want)
		fail_msg("action %s (detail \"%s\"), want %s", mv_x86_action_name(ev->action), ev->detail,
			 mv_x86_action_name(want));
}

/* A fault that must map at @level. */
static void assert_mapped(fx *f, uint64_t gpa, mv_x86_acc acc, int level)
{
	mv_x86_fault_event ev = violation(f, gpa, acc);

	assert_action(&ev, MV_X86_ACT_MAPPED);
	assert_int_equal(ev.level, level);
}

/* KVM's leaf for a fault of a writable slot (MMU_WRITABLE whenever the host may write). */
static mv_pte want_leaf(uint64_t hva, unsigned rwx, int level, bool host_writable)
{
	uint64_t hpa = hva & ~(x86_level_size(level) - 1);
	mv_pte spte = mv_ept_leaf(hpa, rwx, level, host_writable, true);

	return host_writable ? spte | MV_SPTE_MMU_WRITABLE : spte;
}

static void assert_leaf(fx *f, uint64_t gpa, int level, mv_pte want)
{
	int lvl = 0;
	mv_pte spte = leaf_at(f, gpa, &lvl);

	if (spte != want || lvl != level)
		fail_msg("GPA 0x%" PRIx64 ": level-%d SPTE 0x%016" PRIx64 ", want level-%d 0x%016" PRIx64,
			 gpa, lvl, spte, level, want);
}

static void assert_no_leaf(fx *f, uint64_t gpa)
{
	assert_int_equal(leaf_at(f, gpa, NULL), 0);
}

static void assert_rmap(fx *f)
{
	char why[200] = "";
	bool ok;

	pthread_rwlock_wrlock(&f->vm->mmu_lock);
	ok = x86_rmap_check(f->vm, why, sizeof(why));
	pthread_rwlock_unlock(&f->vm->mmu_lock);
	if (!ok)
		fail_msg("rmap: %s", why);
}

static bool dirty_bit(fx *f, unsigned slot_id, uint64_t page)
{
	const mv_memslot *s = fx_get_slot(f, slot_id);

	assert_non_null(s->dirty_bitmap);
	return (s->dirty_bitmap[page / 64] >> (page % 64)) & 1;
}

/* Zap [gpa, gpa + size) as a notifier would: mmu_lock for writing, EPT zap, rmap. */
static void zap(fx *f, uint64_t gpa, uint64_t size)
{
	const mv_memslot *s = mv_memslots_find(f->vm->slots, 0, gpa >> 12, NULL);

	pthread_rwlock_wrlock(&f->vm->mmu_lock);
	assert_int_equal(mv_ept_zap(mv_x86_vm_ept(f->vm), gpa, size), MV_PGT_OK);
	if (s)
		x86_rmap_drop_range(f->vm, s, gpa >> 12, (gpa + size) >> 12);
	pthread_rwlock_unlock(&f->vm->mmu_lock);
}

/* Write-protect [gpa, gpa + size) as GET_DIRTY_LOG does (mmu_lock for writing). */
static void wrprotect(fx *f, uint64_t gpa, uint64_t size)
{
	pthread_rwlock_wrlock(&f->vm->mmu_lock);
	assert_true(mv_ept_wrprotect(mv_x86_vm_ept(f->vm), gpa, size));
	pthread_rwlock_unlock(&f->vm->mmu_lock);
}

/* ------------------------------------------------------------------ */
/* Names and the exit qualification                                     */

static void test_action_names(void **state)
{
	(void)state;
	assert_string_equal(mv_x86_action_name(MV_X86_ACT_MAPPED), "mapped");
	assert_string_equal(mv_x86_action_name(MV_X86_ACT_FAST), "fast");
	assert_string_equal(mv_x86_action_name(MV_X86_ACT_SPURIOUS), "spurious");
	assert_string_equal(mv_x86_action_name(MV_X86_ACT_RETRY), "retry");
	assert_string_equal(mv_x86_action_name(MV_X86_ACT_MMIO_SPTE), "mmio-spte");
	assert_string_equal(mv_x86_action_name(MV_X86_ACT_MMIO), "mmio");
	assert_string_equal(mv_x86_action_name(MV_X86_ACT_MMIO_FAST), "mmio-fast");
	assert_string_equal(mv_x86_action_name(MV_X86_ACT_ERROR), "error");
	assert_string_equal(mv_x86_action_name((mv_x86_action)99), "unknown");
}

/*
 * The error code comes from the exit qualification (ev->pferr), and the
 * fast path follows it: only a write whose qualification says the GPA was
 * mapped (bits 5:3) is tried lock-free.
 */
static void test_exit_qual_to_error_code(void **state)
{
	uint64_t gpa = RAM_GPA + 0x3000, hva;
	mv_x86_fault_event ev;
	fx f;

	(void)state;
	fx_ram(&f, NULL, HV_MEM_LOG_DIRTY_PAGES);
	hva = tu_hva(&f.ram, 0x3000);
	f.ram.base[0x3000] = 1;   /* host-written: a read maps it writable (see below) */

	ev = violation_q(&f, gpa, MV_EPT_VIOL_ACC_READ | MV_EPT_VIOL_GVA_VALID | MV_EPT_VIOL_GVA_TRANSLATED,
			 false);
	assert_action(&ev, MV_X86_ACT_MAPPED);
	assert_int_equal(ev.pferr, MV_PFERR_USER | MV_PFERR_GUEST_FINAL);
	/* A read of a logging slot: writable (make_spte), the page logged; then protected. */
	assert_leaf(&f, gpa, 3, want_leaf(hva, MV_EPT_RWX, 3, true));
	assert_true(dirty_bit(&f, 0, 3));
	wrprotect(&f, gpa, SZ_4K);

	/* A write the CPU reports as "not mapped" (bits 5:3 clear) is not tried fast. */
	ev = violation_q(&f, gpa, MV_EPT_VIOL_ACC_WRITE | MV_EPT_VIOL_GVA_VALID, true);
	assert_int_equal(ev.pferr, MV_PFERR_WRITE | MV_PFERR_GUEST_PAGE);
	assert_action(&ev, MV_X86_ACT_MAPPED);
	assert_int_equal(fx_stats(&f).fast_fixed, 0);
	assert_leaf(&f, gpa, 3, want_leaf(hva, MV_EPT_RWX, 3, true));
	assert_true(dirty_bit(&f, 0, 3));

	/* The same write on a present read-only leaf: the fast path. */
	zap(&f, gpa, SZ_4K);
	assert_mapped(&f, gpa, MV_X86_READ, 3);
	wrprotect(&f, gpa, SZ_4K);
	ev = violation_q(&f, gpa,
			 MV_EPT_VIOL_ACC_WRITE | MV_EPT_VIOL_READABLE | MV_EPT_VIOL_EXECUTABLE |
				 MV_EPT_VIOL_GVA_VALID | MV_EPT_VIOL_GVA_TRANSLATED,
			 true);
	assert_int_equal(ev.pferr, MV_PFERR_WRITE | MV_PFERR_PRESENT | MV_PFERR_GUEST_FINAL);
	assert_action(&ev, MV_X86_ACT_FAST);

	/* A fetch: FETCH, and 4 KiB leaves are executable. */
	ev = violation_q(&f, gpa + SZ_4K, MV_EPT_VIOL_ACC_INSTR, false);
	assert_int_equal(ev.pferr, MV_PFERR_FETCH);
	assert_action(&ev, MV_X86_ACT_MAPPED);
	assert_true(leaf_at(&f, gpa + SZ_4K, NULL) & MV_EPT_X);
	assert_int_equal(fx_stats(&f).faults, 5);
	assert_rmap(&f);
	fx_fini(&f);
}

/* ------------------------------------------------------------------ */
/* Level choice                                                         */

static void test_level_4k_plain(void **state)
{
	mv_x86_vm_stats st;
	fx f;

	(void)state;
	fx_ram(&f, NULL, 0);
	/* A read of a writable, non-logging slot maps writable at once (KVM's map_writable). */
	assert_mapped(&f, RAM_GPA + 0x5000, MV_X86_READ, 3);
	assert_leaf(&f, RAM_GPA + 0x5000, 3, want_leaf(tu_hva(&f.ram, 0x5000), MV_EPT_RWX, 3, true));
	assert_mapped(&f, RAM_GPA + RAM_SIZE - SZ_4K, MV_X86_WRITE, 3);
	assert_mapped(&f, RAM_GPA + SZ_2M, MV_X86_FETCH, 3);
	st = fx_stats(&f);
	assert_int_equal(st.mapped[3], 3);
	assert_int_equal(st.mapped[2] + st.mapped[1], 0);
	assert_int_equal(st.faults, 3);
	assert_no_leaf(&f, RAM_GPA + 0x6000);
	assert_rmap(&f);
	fx_fini(&f);
}

static void test_level_2m_hugetlb(void **state)
{
	uint64_t gpa = RAM_GPA + SZ_2M + 0x7000;
	fx f;

	(void)state;
	fx_ram(&f, NULL, 0);
	fx_declare(&f, tu_hva(&f.ram, 0), RAM_SIZE, MV_HOST_BACKING_HUGETLB, SZ_2M);
	assert_mapped(&f, gpa, MV_X86_WRITE, 2);
	assert_leaf(&f, gpa, 2, want_leaf(tu_hva(&f.ram, SZ_2M), MV_EPT_RWX, 2, true));
	/* The whole 2 MiB is mapped by that leaf. */
	assert_leaf(&f, RAM_GPA + 2 * SZ_2M - SZ_4K, 2, want_leaf(tu_hva(&f.ram, SZ_2M), MV_EPT_RWX, 2, true));
	assert_int_equal(fx_stats(&f).mapped[2], 1);
	assert_rmap(&f);
	fx_fini(&f);
}

/* THP: a 2 MiB leaf where the kernel placed a huge page (else SKIP, the 4 KiB leaf checked). */
static void test_level_2m_thp(void **state)
{
	uint64_t host_size = 0;
	mv_x86_fault_event ev;
	fx f;

	(void)state;
	fx_ram(&f, NULL, 0);
	madvise(f.ram.base, RAM_SIZE, MADV_HUGEPAGE);
	fx_declare(&f, tu_hva(&f.ram, 0), RAM_SIZE, MV_HOST_BACKING_THP, SZ_2M);
	ev = violation(&f, RAM_GPA + 2 * SZ_2M + 0x1000, MV_X86_WRITE);
	assert_action(&ev, MV_X86_ACT_MAPPED);
	assert_int_equal(mv_soft_host_page(mv_x86_vm_host(f.vm), tu_hva(&f.ram, 2 * SZ_2M + 0x1000), true,
					   &host_size),
			 0);
	if (host_size == SZ_2M) {
		assert_int_equal(ev.level, 2);
		assert_leaf(&f, RAM_GPA + 2 * SZ_2M, 2, want_leaf(tu_hva(&f.ram, 2 * SZ_2M), MV_EPT_RWX, 2, true));
	} else {
		assert_int_equal(ev.level, 3);
	}
	assert_rmap(&f);
	fx_fini(&f);
	if (host_size != SZ_2M) {
		printf("SKIP: %s: the kernel placed no transparent huge page (4 KiB mapping checked)\n",
		       __func__);
		skip();
	}
}

/* 1 GiB hugetlb: a 1 GiB leaf when the slot is 1 GiB congruent and whole, else 2 MiB pieces. */
static void test_level_1g_hugetlb(void **state)
{
	uint64_t gpa = 0x80000000ull;
	fx f;

	(void)state;
	fx_init(&f, NULL);
	tu_region_map(&f.ram, 2 * SZ_1G, SZ_1G, PROT_READ | PROT_WRITE);
	fx_declare(&f, tu_hva(&f.ram, 0), 2 * SZ_1G, MV_HOST_BACKING_HUGETLB, SZ_1G);
	fx_slot(&f, 0, 0, gpa, SZ_1G, tu_hva(&f.ram, 0));
	assert_mapped(&f, gpa + 0x12345000, MV_X86_WRITE, 1);
	assert_leaf(&f, gpa, 1, want_leaf(tu_hva(&f.ram, 0), MV_EPT_RWX, 1, true));
	assert_int_equal(fx_stats(&f).mapped[1], 1);
	assert_rmap(&f);

	/* Congruent modulo 2 MiB only: the 1 GiB page's 2 MiB pieces. */
	fx_slot(&f, 1, 0, 3 * SZ_1G + SZ_2M, SZ_1G - SZ_2M, tu_hva(&f.ram, SZ_1G));
	assert_mapped(&f, 3 * SZ_1G + 5 * SZ_2M + 0x3000, MV_X86_READ, 2);
	assert_leaf(&f, 3 * SZ_1G + 5 * SZ_2M, 2, want_leaf(tu_hva(&f.ram, SZ_1G + 4 * SZ_2M), MV_EPT_RWX, 2, true));
	assert_rmap(&f);
	fx_fini(&f);
}

/* lpage_info of a new slot: head and tail refused, everything refused when incongruent. */
static void test_lpage_info_counts(void **state)
{
	const struct x86_slot_arch *arch;
	fx f;

	(void)state;
	fx_init(&f, NULL);
	tu_region_map(&f.ram, RAM_SIZE, SZ_2M, PROT_READ | PROT_WRITE);
	/* 4 MiB at RAM_GPA + 1 MiB: 2 MiB pages {head, whole, tail}, one partial 1 GiB page. */
	fx_slot(&f, 0, 0, RAM_GPA + SZ_1M, 4 * SZ_1M, tu_hva(&f.ram, SZ_1M));
	arch = fx_get_slot(&f, 0)->arch;
	assert_int_equal(arch->nr_lpages[0], 3);
	assert_int_equal(arch->lpage[0][0].disallow_lpage, 1);
	assert_int_equal(arch->lpage[0][1].disallow_lpage, 0);
	assert_int_equal(arch->lpage[0][2].disallow_lpage, 1);
	assert_int_equal(arch->nr_lpages[1], 1);
	assert_int_equal(arch->lpage[1][0].disallow_lpage, 1);
	/* Guest and host 4 KiB apart modulo 2 MiB: nothing huge anywhere. */
	fx_slot(&f, 1, 0, 2 * SZ_1G, 4 * SZ_1M, tu_hva(&f.ram, SZ_4K));
	arch = fx_get_slot(&f, 1)->arch;
	assert_int_equal(arch->nr_lpages[0], 2);
	assert_int_equal(arch->lpage[0][0].disallow_lpage, 1);
	assert_int_equal(arch->lpage[0][1].disallow_lpage, 1);
	fx_fini(&f);
}

/* Every reason a 2 MiB host page still maps 4 KiB. */
static void test_level_refusals(void **state)
{
	const mv_memslot *s;
	fx f;

	(void)state;
	fx_init(&f, NULL);
	tu_region_map(&f.ram, 4 * SZ_2M, SZ_2M, PROT_READ | PROT_WRITE);
	fx_declare(&f, tu_hva(&f.ram, 0), 4 * SZ_2M, MV_HOST_BACKING_HUGETLB, SZ_2M);

	/* Guest and host addresses not congruent modulo 2 MiB. */
	fx_slot(&f, 0, 0, RAM_GPA, 2 * SZ_2M, tu_hva(&f.ram, SZ_4K));
	assert_mapped(&f, RAM_GPA + SZ_2M, MV_X86_READ, 3);
	fx_slot(&f, 0, 0, RAM_GPA, 0, 0);

	/* Slot head and tail: the partial 2 MiB pages map 4 KiB, the whole one 2 MiB. */
	fx_slot(&f, 0, 0, RAM_GPA + SZ_1M, 4 * SZ_1M, tu_hva(&f.ram, SZ_1M));
	assert_mapped(&f, RAM_GPA + SZ_1M + SZ_4K, MV_X86_READ, 3);
	assert_mapped(&f, RAM_GPA + SZ_2M + 0x8000, MV_X86_READ, 2);
	assert_mapped(&f, RAM_GPA + 2 * SZ_2M + SZ_4K, MV_X86_READ, 3);
	assert_rmap(&f);
	fx_slot(&f, 0, 0, RAM_GPA + SZ_1M, 0, 0);

	/* A disallow count (KVM's write tracking) keeps the page small until it drops. */
	fx_slot(&f, 0, 0, RAM_GPA, 4 * SZ_2M, tu_hva(&f.ram, 0));
	s = fx_get_slot(&f, 0);
	pthread_rwlock_wrlock(&f.vm->mmu_lock);
	x86_lpage_disallow_update(s, (RAM_GPA + SZ_2M) >> 12, 1);
	pthread_rwlock_unlock(&f.vm->mmu_lock);
	assert_mapped(&f, RAM_GPA + SZ_2M, MV_X86_WRITE, 3);
	assert_mapped(&f, RAM_GPA + 2 * SZ_2M, MV_X86_WRITE, 2);
	zap(&f, RAM_GPA + SZ_2M, SZ_2M);
	pthread_rwlock_wrlock(&f.vm->mmu_lock);
	x86_lpage_disallow_update(s, (RAM_GPA + SZ_2M) >> 12, -1);
	pthread_rwlock_unlock(&f.vm->mmu_lock);
	assert_mapped(&f, RAM_GPA + SZ_2M, MV_X86_WRITE, 2);
	assert_rmap(&f);
	fx_slot(&f, 0, 0, RAM_GPA, 0, 0);

	/* Dirty logging: 4 KiB for reads and writes, both logged (writable leaves, make_spte). */
	fx_slot(&f, 0, HV_MEM_LOG_DIRTY_PAGES, RAM_GPA, 4 * SZ_2M, tu_hva(&f.ram, 0));
	f.ram.base[0] = 1;
	assert_mapped(&f, RAM_GPA, MV_X86_READ, 3);
	assert_mapped(&f, RAM_GPA + SZ_2M, MV_X86_WRITE, 3);
	assert_true(dirty_bit(&f, 0, 512));
	assert_true(dirty_bit(&f, 0, 0));
	assert_false(dirty_bit(&f, 0, 1));
	assert_rmap(&f);
	fx_fini(&f);
}

/* ------------------------------------------------------------------ */
/* NX huge pages                                                        */

static void test_nx_fetch_maps_4k(void **state)
{
	mv_x86_vm_config cfg = { .nx_huge_pages = true };
	mv_x86_vm_stats st;
	fx f;

	(void)state;
	fx_ram(&f, &cfg, 0);
	fx_declare(&f, tu_hva(&f.ram, 0), RAM_SIZE, MV_HOST_BACKING_HUGETLB, SZ_2M);
	/* A fetch: 4 KiB, executable, and the huge page it could have had is counted. */
	assert_mapped(&f, RAM_GPA + 0x3000, MV_X86_FETCH, 3);
	assert_leaf(&f, RAM_GPA + 0x3000, 3, want_leaf(tu_hva(&f.ram, 0x3000), MV_EPT_RWX, 3, true));
	assert_int_equal(fx_stats(&f).nx_splits, 1);
	/* A read next to it stays 4 KiB: a huge leaf would swallow the executable page. */
	assert_mapped(&f, RAM_GPA + 0x9000, MV_X86_READ, 3);
	/* Elsewhere a read maps 2 MiB, not executable. */
	assert_mapped(&f, RAM_GPA + SZ_2M, MV_X86_READ, 2);
	assert_leaf(&f, RAM_GPA + SZ_2M, 2, want_leaf(tu_hva(&f.ram, SZ_2M), MV_EPT_R | MV_EPT_W, 2, true));
	st = fx_stats(&f);
	assert_int_equal(st.nx_splits, 1);
	assert_int_equal(st.mapped[3], 2);
	assert_int_equal(st.mapped[2], 1);
	assert_rmap(&f);
	fx_fini(&f);
}

/* A fetch from a non-executable 2 MiB leaf splits it (disallowed_hugepage_adjust). */
static void test_nx_fetch_splits_huge_leaf(void **state)
{
	mv_x86_vm_config cfg = { .nx_huge_pages = true };
	uint64_t base = RAM_GPA + 2 * SZ_2M;
	fx f;

	(void)state;
	fx_ram(&f, &cfg, 0);
	fx_declare(&f, tu_hva(&f.ram, 0), RAM_SIZE, MV_HOST_BACKING_HUGETLB, SZ_2M);
	assert_mapped(&f, base + 0x1000, MV_X86_WRITE, 2);
	assert_mapped(&f, base + 0x5000, MV_X86_FETCH, 3);
	assert_leaf(&f, base + 0x5000, 3, want_leaf(tu_hva(&f.ram, 2 * SZ_2M + 0x5000), MV_EPT_RWX, 3, true));
	/* The other pages stay mapped, with the huge leaf's rights (no X). */
	assert_leaf(&f, base + 0x1000, 3,
		    want_leaf(tu_hva(&f.ram, 2 * SZ_2M + 0x1000), MV_EPT_R | MV_EPT_W, 3, true));
	assert_int_equal(fx_stats(&f).nx_splits, 1);
	/* Fetching from one of them makes it executable in place. */
	assert_mapped(&f, base + 0x1000, MV_X86_FETCH, 3);
	assert_true(leaf_at(&f, base + 0x1000, NULL) & MV_EPT_X);
	assert_rmap(&f);
	fx_fini(&f);
}

/* ------------------------------------------------------------------ */
/* MMIO                                                                 */

static void assert_mmio_exit(fx *f, uint64_t gpa, uint32_t len, bool is_write)
{
	assert_int_equal(f->vcpu->exit.reason, HV_EXIT_MMIO);
	assert_int_equal(f->vcpu->exit.mmio.gpa, gpa);
	assert_int_equal(f->vcpu->exit.mmio.len, len);
	assert_int_equal(f->vcpu->exit.mmio.is_write, is_write);
}

static void test_mmio_spte_then_fast(void **state)
{
	uint64_t gen, gpa = MMIO_GPA + 0x10;
	mv_x86_fault_event ev;
	mv_x86_vm_stats st;
	mv_pte spte;
	int level;
	fx f;

	(void)state;
	fx_ram(&f, NULL, 0);
	gen = mv_memslots_generation(f.vm->slots);
	ev = violation(&f, gpa, MV_X86_WRITE);
	assert_action(&ev, MV_X86_ACT_MMIO_SPTE);
	assert_mmio_exit(&f, gpa, 4, true);
	spte = leaf_at(&f, gpa, &level);
	assert_int_equal(level, 3);
	assert_int_equal(spte, mv_ept_mmio_spte(MMIO_GPA >> 12, gen));
	assert_true(mv_ept_is_misconfig(spte, 3));

	/* The next access misconfigures: MMIO straight away. */
	ev = misconfig(&f, gpa, false);
	assert_action(&ev, MV_X86_ACT_MMIO_FAST);
	assert_int_equal(ev.pferr, MV_PFERR_RSVD);
	assert_mmio_exit(&f, gpa, 2, false);
	st = fx_stats(&f);
	assert_int_equal(st.mmio_sptes, 1);
	assert_int_equal(st.mmio_fast, 1);
	assert_int_equal(st.faults, 1);      /* misconfigurations are not violations */
	assert_int_equal(st.mmio_stale, 0);

	/* A misconfiguration whose SPTE was zapped meanwhile just retries. */
	zap(&f, MMIO_GPA, SZ_4K);
	ev = misconfig(&f, gpa, false);
	assert_action(&ev, MV_X86_ACT_RETRY);
	fx_fini(&f);
}

/* A memslot change makes MMIO SPTEs stale: the slow path decides again. */
static void test_mmio_generation(void **state)
{
	uint64_t gen0, gen1, gpa = MMIO_GPA + 0x2000;
	tu_region other;
	mv_x86_fault_event ev;
	fx f;

	(void)state;
	fx_ram(&f, NULL, 0);
	tu_region_map(&other, 2 * SZ_4K, SZ_4K, PROT_READ | PROT_WRITE);
	gen0 = mv_memslots_generation(f.vm->slots);
	ev = violation(&f, gpa, MV_X86_READ);
	assert_action(&ev, MV_X86_ACT_MMIO_SPTE);

	/* An unrelated slot: still no RAM at gpa, a new MMIO SPTE of the new generation. */
	fx_slot(&f, 1, 0, 0x10000000ull, SZ_4K, tu_hva(&other, 0));
	gen1 = mv_memslots_generation(f.vm->slots);
	assert_true(gen1 != gen0);
	assert_int_equal(leaf_at(&f, gpa, NULL), mv_ept_mmio_spte(gpa >> 12, gen0));
	ev = misconfig(&f, gpa, true);
	assert_action(&ev, MV_X86_ACT_MMIO_SPTE);
	assert_mmio_exit(&f, gpa, 2, true);
	assert_int_equal(leaf_at(&f, gpa, NULL), mv_ept_mmio_spte(gpa >> 12, gen1));
	assert_int_equal(fx_stats(&f).mmio_stale, 1);
	assert_int_equal(fx_stats(&f).mmio_sptes, 2);

	/* Now RAM there: the stale SPTE gives way to a mapping (a read: RSVD alone). */
	fx_slot(&f, 2, 0, gpa, SZ_4K, tu_hva(&other, SZ_4K));
	ev = misconfig(&f, gpa, false);
	assert_action(&ev, MV_X86_ACT_MAPPED);
	assert_int_equal(ev.level, 3);
	assert_leaf(&f, gpa, 3, want_leaf(tu_hva(&other, SZ_4K), MV_EPT_RWX, 3, true));
	assert_int_equal(fx_stats(&f).mmio_stale, 2);
	assert_rmap(&f);
	fx_fini(&f);
	tu_region_unmap(&other);
}

/*
 * MMIO SPTEs keep 19 bits of the generation: the memslot change whose
 * generation ends in 19 zero bits zaps the whole EPT
 * (kvm_mmu_invalidate_mmio_sptes -> kvm_mmu_zap_all_fast), or an SPTE
 * 2^19 changes old would look current. The VM starts just below the wrap.
 */
static void test_mmio_generation_wrap(void **state)
{
	const uint64_t wrap = 1ull << MV_SPTE_MMIO_GEN_BITS;
	mv_x86_vm_config cfg = { .memslot_generation = 3 * wrap - 2 };
	uint64_t gpa = MMIO_GPA + 0x3000;
	mv_x86_fault_event ev;
	tu_region other;
	fx f;

	(void)state;
	fx_ram(&f, &cfg, 0);
	tu_region_map(&other, SZ_4K, SZ_4K, PROT_READ | PROT_WRITE);
	assert_int_equal(mv_memslots_generation(f.vm->slots), 3 * wrap - 1);
	ev = violation(&f, gpa, MV_X86_READ);
	assert_action(&ev, MV_X86_ACT_MMIO_SPTE);
	assert_int_equal(mv_ept_mmio_spte_gen(leaf_at(&f, gpa, NULL)), wrap - 1);
	assert_mapped(&f, RAM_GPA + 0x5000, MV_X86_WRITE, 3);
	assert_int_equal(fx_stats(&f).mmio_gen_wraps, 0);

	/* The change to generation 3 * 2^19: everything goes, the rmap with it. */
	fx_slot(&f, 1, 0, 0x10000000ull, SZ_4K, tu_hva(&other, 0));
	assert_int_equal(mv_memslots_generation(f.vm->slots) & (wrap - 1), 0);
	assert_no_leaf(&f, gpa);
	assert_no_leaf(&f, RAM_GPA + 0x5000);
	assert_int_equal(fx_stats(&f).mmio_gen_wraps, 1);
	assert_rmap(&f);
	/* The next access misconfigures no more: it faults, and caches generation 0. */
	ev = misconfig(&f, gpa, false);
	assert_action(&ev, MV_X86_ACT_RETRY);
	ev = violation(&f, gpa, MV_X86_READ);
	assert_action(&ev, MV_X86_ACT_MMIO_SPTE);
	assert_int_equal(leaf_at(&f, gpa, NULL), mv_ept_mmio_spte(gpa >> 12, 0));
	ev = misconfig(&f, gpa, false);
	assert_action(&ev, MV_X86_ACT_MMIO_FAST);
	assert_mapped(&f, RAM_GPA + 0x5000, MV_X86_WRITE, 3);

	/* Later changes keep the SPTEs (the slow path rechecks them) until the next wrap. */
	fx_slot(&f, 1, 0, 0x10000000ull, 0, 0);
	assert_int_equal(leaf_at(&f, gpa, NULL), mv_ept_mmio_spte(gpa >> 12, 0));
	assert_int_equal(fx_stats(&f).mmio_gen_wraps, 1);
	assert_rmap(&f);
	fx_fini(&f);
	tu_region_unmap(&other);
}

/* Beyond the host's MAXPHYADDR: MMIO without an SPTE (the entry could not hold the gfn). */
static void test_mmio_beyond_max_gfn(void **state)
{
	mv_x86_vm_config cfg = { .host_maxphyaddr = 36 };
	uint64_t gpa = 1ull << 37;
	mv_x86_fault_event ev;
	fx f;

	(void)state;
	fx_ram(&f, &cfg, 0);
	assert_int_equal(f.vm->max_gfn, (1ull << 24) - 1);
	ev = violation(&f, gpa + 8, MV_X86_READ);
	assert_action(&ev, MV_X86_ACT_MMIO);
	assert_mmio_exit(&f, gpa + 8, 4, false);
	assert_no_leaf(&f, gpa);
	/* The last gfn below it still gets its SPTE. */
	ev = violation(&f, (1ull << 36) - SZ_4K, MV_X86_READ);
	assert_action(&ev, MV_X86_ACT_MMIO_SPTE);
	assert_int_equal(fx_stats(&f).mmio_sptes, 1);
	fx_fini(&f);
}

/* A write to a read-only slot is emulated (MMIO), never cached; reads map read-only. */
static void test_readonly_slot(void **state)
{
	uint64_t gpa = RAM_GPA + 0x4000;
	mv_x86_fault_event ev;
	fx f;

	(void)state;
	fx_ram(&f, NULL, HV_MEM_READONLY);
	ev = violation(&f, gpa + 4, MV_X86_WRITE);
	assert_action(&ev, MV_X86_ACT_MMIO);
	assert_mmio_exit(&f, gpa + 4, 4, true);
	assert_no_leaf(&f, gpa);

	assert_mapped(&f, gpa, MV_X86_READ, 3);
	assert_leaf(&f, gpa, 3, want_leaf(tu_hva(&f.ram, 0x4000), MV_EPT_R | MV_EPT_X, 3, false));
	/* Write to the read-only leaf: not MMU-writable, so no fast path; MMIO again. */
	ev = violation(&f, gpa, MV_X86_WRITE);
	assert_action(&ev, MV_X86_ACT_MMIO);
	assert_int_equal(fx_stats(&f).fast_fixed, 0);
	assert_int_equal(fx_stats(&f).mmio_sptes, 0);
	fx_fini(&f);
}

/* ------------------------------------------------------------------ */
/* The fast path                                                        */

typedef struct fast_call {
	fx *f;
	uint64_t gpa;
	mv_x86_fault_event ev;
	int done;
} fast_call;

static void *fast_thread(void *p)
{
	fast_call *c = p;

	c->ev = violation(c->f, c->gpa, MV_X86_WRITE);
	__atomic_store_n(&c->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * Run a write fault on another thread while this one holds mmu_lock for
 * writing: it can only finish if it takes no mmu_lock. Waits up to 10 s
 * (a deadlock detector, not a timing check), then lets it go.
 */
static mv_x86_fault_event write_fault_under_mmu_wrlock(fx *f, uint64_t gpa)
{
	fast_call c = { .f = f, .gpa = gpa };
	struct timespec ts = { 0, 1000000 };
	pthread_t t;
	int waited = 0;

	pthread_rwlock_wrlock(&f->vm->mmu_lock);
	assert_int_equal(pthread_create(&t, NULL, fast_thread, &c), 0);
	while (!__atomic_load_n(&c.done, __ATOMIC_ACQUIRE) && waited++ < 10000)
		nanosleep(&ts, NULL);
	pthread_rwlock_unlock(&f->vm->mmu_lock);
	pthread_join(t, NULL);
	if (waited > 10000)
		fail_msg("the write fault at GPA 0x%" PRIx64 " waited for mmu_lock", gpa);
	return c.ev;
}

static void test_fast_path_logging(void **state)
{
	uint64_t gpa = RAM_GPA + 0x7000, hva;
	mv_x86_fault_event ev;
	fx f;

	(void)state;
	fx_ram(&f, NULL, HV_MEM_LOG_DIRTY_PAGES);
	hva = tu_hva(&f.ram, 0x7000);
	f.ram.base[0x7000] = 1;
	/* make_spte: the read maps the page writable and logs it; GET_DIRTY_LOG then protects it. */
	assert_mapped(&f, gpa, MV_X86_READ, 3);
	assert_leaf(&f, gpa, 3, want_leaf(hva, MV_EPT_RWX, 3, true));
	assert_true(dirty_bit(&f, 0, 7));
	fx_get_slot(&f, 0)->dirty_bitmap[0] = 0;
	wrprotect(&f, gpa, SZ_4K);
	assert_false(leaf_at(&f, gpa, NULL) & MV_EPT_W);

	ev = write_fault_under_mmu_wrlock(&f, gpa);
	assert_action(&ev, MV_X86_ACT_FAST);
	/* W back, D set (A/D on), the page logged. */
	assert_leaf(&f, gpa, 3, want_leaf(hva, MV_EPT_RWX, 3, true));
	assert_true(leaf_at(&f, gpa, NULL) & MV_EPT_D);
	assert_true(dirty_bit(&f, 0, 7));
	assert_int_equal(fx_stats(&f).fast_fixed, 1);

	/* Fixed already (another vCPU): spurious, also without mmu_lock. */
	ev = write_fault_under_mmu_wrlock(&f, gpa);
	assert_action(&ev, MV_X86_ACT_SPURIOUS);
	assert_int_equal(fx_stats(&f).fast_fixed, 1);

	/* Re-protected (GET_DIRTY_LOG): fast again, logged again. */
	wrprotect(&f, gpa, SZ_4K);
	fx_get_slot(&f, 0)->dirty_bitmap[0] = 0;
	ev = violation(&f, gpa, MV_X86_WRITE);
	assert_action(&ev, MV_X86_ACT_FAST);
	assert_true(dirty_bit(&f, 0, 7));
	assert_int_equal(fx_stats(&f).fast_fixed, 2);
	assert_rmap(&f);
	fx_fini(&f);
}

/*
 * Dirty logging follows x86 KVM's make_spte: a read or fetch fault maps a
 * writable host page writable (ACC_ALL, map_writable) and, the leaf being
 * writable in a logging slot, logs the page at once, at 4 KiB. A
 * read-only host page maps read-only and is not logged. The pages are
 * written by the host first: KVM's hva_to_pfn maps a read fault writable
 * only when the host PTE already is (an untouched anonymous page would be
 * the shared zero page; docs/soft_mmu.md, x86 differences).
 */
static void test_logging_read_maps_writable(void **state)
{
	mv_x86_vm_config cfg = { .nx_huge_pages = true };
	tu_region ro;
	fx f;

	(void)state;
	fx_ram(&f, &cfg, HV_MEM_LOG_DIRTY_PAGES);
	fx_declare(&f, tu_hva(&f.ram, 0), RAM_SIZE, MV_HOST_BACKING_HUGETLB, SZ_2M);
	f.ram.base[0x3000] = 1;
	f.ram.base[SZ_2M + 0x5000] = 1;
	assert_mapped(&f, RAM_GPA + 0x3000, MV_X86_READ, 3);
	assert_leaf(&f, RAM_GPA + 0x3000, 3, want_leaf(tu_hva(&f.ram, 0x3000), MV_EPT_RWX, 3, true));
	assert_true(dirty_bit(&f, 0, 3));
	assert_mapped(&f, RAM_GPA + SZ_2M + 0x5000, MV_X86_FETCH, 3);
	assert_leaf(&f, RAM_GPA + SZ_2M + 0x5000, 3,
		    want_leaf(tu_hva(&f.ram, SZ_2M + 0x5000), MV_EPT_RWX, 3, true));
	assert_true(dirty_bit(&f, 0, 512 + 5));
	assert_false(dirty_bit(&f, 0, 4));
	assert_int_equal(fx_stats(&f).mapped[3], 2);

	/* A read-only host mapping behind the logging slot: read-only, not logged. */
	tu_region_map(&ro, SZ_4K, SZ_4K, PROT_READ);
	fx_slot(&f, 1, HV_MEM_LOG_DIRTY_PAGES, MMIO_GPA, SZ_4K, tu_hva(&ro, 0));
	assert_mapped(&f, MMIO_GPA, MV_X86_READ, 3);
	assert_leaf(&f, MMIO_GPA, 3, want_leaf(tu_hva(&ro, 0), MV_EPT_R | MV_EPT_X, 3, false));
	assert_false(dirty_bit(&f, 1, 0));
	assert_rmap(&f);
	fx_fini(&f);
	tu_region_unmap(&ro);
}

/* vCPU 1's write fault of the same page, run between vCPU 0's host page and its install. */
typedef struct race_ctx {
	mv_x86_vcpu *other;
	mv_x86_fault_event ev;
	int calls;
} race_ctx;

static void racing_write_hook(void *arg, mv_x86_vcpu *vcpu, uint64_t gpa)
{
	race_ctx *r = arg;

	if (vcpu == r->other || r->calls++)
		return;
	r->ev = (mv_x86_fault_event){
		.exit_qual = MV_EPT_VIOL_ACC_WRITE | MV_EPT_VIOL_GVA_VALID | MV_EPT_VIOL_GVA_TRANSLATED,
		.gpa = gpa,
		.gva = TEST_GVA,
		.len = 4,
		.is_write = true,
	};
	x86_handle_ept_violation(r->other, &r->ev);
}

/*
 * A read fault that loses the race to a write fault of the same page of a
 * logging slot builds the very leaf the write installed: spurious, W kept,
 * no INVEPT under mmu_lock for reading (the read-only leaf it used to
 * build took W away under the read lock).
 */
static void test_logging_read_races_write(void **state)
{
	mv_error err = { 0 };
	race_ctx r = { 0 };
	uint64_t gpa = RAM_GPA + 0x9000, invept;
	mv_x86_fault_event ev;
	fx f;

	(void)state;
	fx_ram(&f, NULL, HV_MEM_LOG_DIRTY_PAGES);
	assert_int_equal(mv_x86_vcpu_new(f.vm, 1, &r.other, &err), 0);
	invept = __atomic_load_n(&mv_x86_vm_ept(f.vm)->nr_invept, __ATOMIC_RELAXED);
	mv_x86_vm_set_fault_hook(f.vm, racing_write_hook, &r);
	ev = violation(&f, gpa, MV_X86_READ);
	mv_x86_vm_set_fault_hook(f.vm, NULL, NULL);
	assert_int_equal(r.calls, 1);
	assert_action(&r.ev, MV_X86_ACT_MAPPED);
	assert_action(&ev, MV_X86_ACT_SPURIOUS);
	assert_leaf(&f, gpa, 3, want_leaf(tu_hva(&f.ram, 0x9000), MV_EPT_RWX, 3, true));
	assert_int_equal(__atomic_load_n(&mv_x86_vm_ept(f.vm)->nr_invept, __ATOMIC_RELAXED), invept);
	assert_true(dirty_bit(&f, 0, 9));
	assert_rmap(&f);
	mv_x86_vcpu_free(r.other);
	fx_fini(&f);
}

/* A write-protected huge leaf of a logging slot is split by the slow path, not fixed fast. */
static void test_fast_path_refuses_huge_logging(void **state)
{
	mv_x86_vm_config cfg = { .lazy_split = true };
	uint64_t base = RAM_GPA + SZ_2M;
	mv_x86_fault_event ev;
	fx f;

	(void)state;
	fx_ram(&f, &cfg, 0);
	fx_declare(&f, tu_hva(&f.ram, 0), RAM_SIZE, MV_HOST_BACKING_HUGETLB, SZ_2M);
	assert_mapped(&f, base, MV_X86_WRITE, 2);
	/* Logging starts: (lazily) the huge leaf is only write-protected, or split eagerly. */
	fx_slot(&f, 0, HV_MEM_LOG_DIRTY_PAGES, RAM_GPA, RAM_SIZE, tu_hva(&f.ram, 0));
	assert_false(leaf_at(&f, base, NULL) & MV_EPT_W);
	ev = violation(&f, base + 0x3000, MV_X86_WRITE);
	assert_action(&ev, MV_X86_ACT_MAPPED);
	assert_int_equal(ev.level, 3);
	assert_int_equal(fx_stats(&f).fast_fixed, 0);
	assert_leaf(&f, base + 0x3000, 3, want_leaf(tu_hva(&f.ram, SZ_2M + 0x3000), MV_EPT_RWX, 3, true));
	/* Its neighbours stay mapped read-only, MMU-writable: their writes are fast. */
	assert_false(leaf_at(&f, base + 0x4000, NULL) & MV_EPT_W);
	assert_true(leaf_at(&f, base + 0x4000, NULL) & MV_SPTE_MMU_WRITABLE);
	assert_true(dirty_bit(&f, 0, 512 + 3));
	assert_false(dirty_bit(&f, 0, 512 + 4));
	ev = violation(&f, base + 0x4000, MV_X86_WRITE);
	assert_action(&ev, MV_X86_ACT_FAST);
	assert_true(dirty_bit(&f, 0, 512 + 4));
	assert_rmap(&f);
	fx_fini(&f);
}

/* Two vCPUs fault the same page: the second finds it done. */
static void test_spurious_slow_path(void **state)
{
	mv_x86_fault_event ev;
	fx f;

	(void)state;
	fx_ram(&f, NULL, 0);
	assert_mapped(&f, RAM_GPA, MV_X86_READ, 3);
	ev = violation_q(&f, RAM_GPA, MV_EPT_VIOL_ACC_READ, false);
	assert_action(&ev, MV_X86_ACT_SPURIOUS);
	assert_int_equal(fx_stats(&f).mapped[3], 1);
	fx_fini(&f);
}

/* ------------------------------------------------------------------ */
/* Notifier races, host errors                                          */

typedef struct hook_ctx {
	fx *f;
	uint64_t start, end;     /* host range to invalidate */
	bool finish;             /* end the invalidation too */
	int calls;
} hook_ctx;

static void invalidate_hook(void *arg, mv_x86_vcpu *vcpu, uint64_t gpa)
{
	hook_ctx *h = arg;

	(void)vcpu;
	(void)gpa;
	h->calls++;
	mv_x86_vm_invalidate_range_start(h->f->vm, h->start, h->end);
	if (h->finish)
		mv_x86_vm_invalidate_range_end(h->f->vm, h->start, h->end);
}

static void test_notifier_race(void **state)
{
	hook_ctx h;
	mv_x86_fault_event ev;
	fx f;

	(void)state;
	fx_ram(&f, NULL, 0);
	h = (hook_ctx){ &f, tu_hva(&f.ram, 0x2000), tu_hva(&f.ram, 0x3000), true, 0 };
	mv_x86_vm_set_fault_hook(f.vm, invalidate_hook, &h);
	ev = violation(&f, RAM_GPA + 0x2000, MV_X86_WRITE);
	assert_action(&ev, MV_X86_ACT_RETRY);
	assert_int_equal(h.calls, 1);
	assert_no_leaf(&f, RAM_GPA + 0x2000);
	assert_int_equal(fx_stats(&f).retries, 1);
	mv_x86_vm_set_fault_hook(f.vm, NULL, NULL);
	assert_mapped(&f, RAM_GPA + 0x2000, MV_X86_WRITE, 3);
	assert_rmap(&f);
	fx_fini(&f);
}

/* An invalidation in progress anywhere inside a huge page keeps it from being mapped. */
static void test_notifier_in_progress_huge(void **state)
{
	hook_ctx h;
	mv_x86_fault_event ev;
	fx f;

	(void)state;
	fx_ram(&f, NULL, 0);
	fx_declare(&f, tu_hva(&f.ram, 0), RAM_SIZE, MV_HOST_BACKING_HUGETLB, SZ_2M);
	h = (hook_ctx){ &f, tu_hva(&f.ram, SZ_2M + 0x100000), tu_hva(&f.ram, SZ_2M + 0x101000), false, 0 };
	mv_x86_vm_set_fault_hook(f.vm, invalidate_hook, &h);
	ev = violation(&f, RAM_GPA + SZ_2M, MV_X86_READ);
	assert_action(&ev, MV_X86_ACT_RETRY);
	mv_x86_vm_set_fault_hook(f.vm, NULL, NULL);
	mv_x86_vm_invalidate_range_end(f.vm, h.start, h.end);
	assert_mapped(&f, RAM_GPA + SZ_2M, MV_X86_READ, 2);
	assert_rmap(&f);
	fx_fini(&f);
}

static void assert_error_exit(fx *f, const mv_x86_fault_event *ev, uint64_t gpa, uint64_t hva, int err,
			      const char *want)
{
	assert_action(ev, MV_X86_ACT_ERROR);
	assert_string_equal(ev->detail, want);
	assert_int_equal(f->vcpu->exit.reason, HV_EXIT_INTERNAL_ERROR);
	assert_int_equal(f->vcpu->exit.internal.suberror, X86_INTERNAL_ERROR_UNEXPECTED);
	assert_int_equal(f->vcpu->exit.internal.ndata, 4);
	assert_int_equal(f->vcpu->exit.internal.data[0], ev->exit_qual);
	assert_int_equal(f->vcpu->exit.internal.data[1], gpa);
	assert_int_equal(f->vcpu->exit.internal.data[2], hva);
	assert_int_equal(f->vcpu->exit.internal.data[3], err);
}

static void test_poison_and_missing_host(void **state)
{
	mv_soft_host *host;
	uint64_t gpa = RAM_GPA + 0x4000, hva;
	char want[160];
	mv_x86_fault_event ev;
	tu_region ro;
	fx f;

	(void)state;
	fx_ram(&f, NULL, 0);
	host = mv_x86_vm_host(f.vm);
	hva = tu_hva(&f.ram, 0x4000);
	f.ram.base[0x4000] = 1;   /* a poisoned page is one that was there */
	assert_int_equal(mv_soft_host_set_poison(host, hva, true), 0);
	ev = violation(&f, gpa + 0x10, MV_X86_READ);
	snprintf(want, sizeof(want),
		 "memory failure: guest page at GPA 0x40004000 (host 0x%" PRIx64 ") is poisoned", hva);
	assert_error_exit(&f, &ev, gpa + 0x10, hva, EHWPOISON, want);
	assert_no_leaf(&f, gpa);
	assert_int_equal(mv_soft_host_set_poison(host, hva, false), 0);
	assert_mapped(&f, gpa, MV_X86_READ, 3);

	/* Nothing mapped at the slot's host address. */
	assert_int_equal(mprotect(f.ram.base + 0x6000, SZ_4K, PROT_NONE), 0);
	hva = tu_hva(&f.ram, 0x6000);
	ev = violation(&f, RAM_GPA + 0x6000, MV_X86_WRITE);
	snprintf(want, sizeof(want), "guest page at GPA 0x40006000 has no host memory at 0x%" PRIx64, hva);
	assert_error_exit(&f, &ev, RAM_GPA + 0x6000, hva, EFAULT, want);

	/* A read-only host mapping behind a writable slot: reads map read-only, writes fail. */
	tu_region_map(&ro, SZ_4K, SZ_4K, PROT_READ);
	fx_slot(&f, 1, 0, MMIO_GPA, SZ_4K, tu_hva(&ro, 0));
	assert_mapped(&f, MMIO_GPA, MV_X86_READ, 3);
	assert_leaf(&f, MMIO_GPA, 3, want_leaf(tu_hva(&ro, 0), MV_EPT_R | MV_EPT_X, 3, false));
	ev = violation(&f, MMIO_GPA, MV_X86_WRITE);
	assert_action(&ev, MV_X86_ACT_ERROR);
	assert_int_equal(fx_stats(&f).fast_fixed, 0);
	assert_rmap(&f);
	fx_fini(&f);
	tu_region_unmap(&ro);
}

/* ------------------------------------------------------------------ */
/* Prefetch                                                             */

static void test_prefetch(void **state)
{
	mv_x86_vm_config cfg = { .prefetch = true };
	uint64_t group = RAM_GPA + 0x10000;
	fx f;

	(void)state;
	fx_ram(&f, &cfg, 0);
	for (unsigned i = 0; i < 8; i++) {
		if (i != 5)
			f.ram.base[0x10000 + i * SZ_4K] = (uint8_t)i;   /* resident, except page 5 */
	}
	assert_mapped(&f, group + 2 * SZ_4K, MV_X86_READ, 3);
	for (unsigned i = 0; i < 8; i++) {
		uint64_t hva = tu_hva(&f.ram, 0x10000 + i * SZ_4K);

		if (i == 2)
			assert_leaf(&f, group + i * SZ_4K, 3, want_leaf(hva, MV_EPT_RWX, 3, true));
		else if (i == 5)
			assert_no_leaf(&f, group + i * SZ_4K);
		else   /* prefetched: not accessed */
			assert_leaf(&f, group + i * SZ_4K, 3, want_leaf(hva, MV_EPT_RWX, 3, true) & ~MV_EPT_A);
	}
	assert_no_leaf(&f, group + 8 * SZ_4K);
	assert_int_equal(fx_stats(&f).prefetched, 6);
	assert_int_equal(fx_stats(&f).mapped[3], 1);
	assert_rmap(&f);
	fx_fini(&f);

	/* Off by default, and never on a logging slot or without A/D. */
	fx_ram(&f, NULL, 0);
	memset(f.ram.base, 1, 8 * SZ_4K);
	assert_mapped(&f, RAM_GPA, MV_X86_READ, 3);
	assert_no_leaf(&f, RAM_GPA + SZ_4K);
	fx_fini(&f);
	fx_ram(&f, &cfg, HV_MEM_LOG_DIRTY_PAGES);
	memset(f.ram.base, 1, 8 * SZ_4K);
	assert_mapped(&f, RAM_GPA, MV_X86_READ, 3);
	assert_no_leaf(&f, RAM_GPA + SZ_4K);
	fx_fini(&f);
	cfg.no_ept_ad = true;
	fx_ram(&f, &cfg, 0);
	memset(f.ram.base, 1, 8 * SZ_4K);
	assert_mapped(&f, RAM_GPA, MV_X86_READ, 3);
	assert_no_leaf(&f, RAM_GPA + SZ_4K);
	assert_int_equal(fx_stats(&f).prefetched, 0);
	fx_fini(&f);
}

/* A table where a huge leaf now fits (the host page became huge) is replaced by it. */
static void test_table_collapses_to_huge_leaf(void **state)
{
	uint64_t base = RAM_GPA + SZ_2M;
	fx f;

	(void)state;
	fx_ram(&f, NULL, 0);
	assert_mapped(&f, base + 0x1000, MV_X86_WRITE, 3);
	assert_mapped(&f, base + 0x2000, MV_X86_READ, 3);
	fx_declare(&f, tu_hva(&f.ram, 0), RAM_SIZE, MV_HOST_BACKING_HUGETLB, SZ_2M);
	assert_mapped(&f, base + 0x3000, MV_X86_READ, 2);
	assert_leaf(&f, base + 0x1000, 2, want_leaf(tu_hva(&f.ram, SZ_2M), MV_EPT_RWX, 2, true));
	assert_rmap(&f);
	fx_fini(&f);
}

/* A misconfiguration on an entry that is no MMIO SPTE is a bug: KVM_RUN would fail. */
static void test_misconfig_not_mmio(void **state)
{
	uint64_t gpa = RAM_GPA + 0x1000, hva;
	char want[160];
	mv_x86_fault_event ev;
	mv_pte bad;
	fx f;

	(void)state;
	fx_ram(&f, NULL, 0);
	hva = tu_hva(&f.ram, 0x1000);
	/* Memory type 2 is reserved (SDM "EPT Misconfigurations"). */
	bad = (mv_ept_leaf(hva, MV_EPT_RWX, 3, true, true) & ~MV_EPT_MT_MASK) | (2ull << MV_EPT_MT_SHIFT);
	pthread_rwlock_wrlock(&f.vm->mmu_lock);
	assert_int_equal(mv_ept_install(mv_x86_vm_ept(f.vm), gpa, 3, bad, 0, NULL), MV_PGT_OK);
	pthread_rwlock_unlock(&f.vm->mmu_lock);
	ev = misconfig(&f, gpa + 8, false);
	snprintf(want, sizeof(want),
		 "EPT misconfiguration at GPA 0x40001008: level-3 entry 0x%016" PRIx64
		 " is not an MMIO SPTE",
		 bad);
	assert_error_exit(&f, &ev, gpa + 8, 0, EINVAL, want);
	fx_fini(&f);
}

/* ------------------------------------------------------------------ */
/* Slot metadata allocation, rmap under random operations               */

static void test_slot_arch_alloc_failures(void **state)
{
	tu_failing_alloc fa;
	mv_x86_vm_config cfg = { 0 };
	mv_memslot s = { .base_gfn = (RAM_GPA + SZ_1M) >> 12, .npages = 1024,
			 .userspace_addr = 0x7f0000100000ull };
	unsigned long k;
	fx f;

	(void)state;
	tu_failing_alloc_init(&fa, 0, false);
	cfg.alloc = &fa.alloc;
	fx_init(&f, &cfg);
	for (k = 1;; k++) {
		fa.fail_at = fa.calls + k;
		if (x86_slot_arch_alloc(f.vm, &s) == 0)
			break;
		assert_null(s.arch);
	}
	fa.fail_at = 0;
	assert_int_equal(k, 7);   /* the struct, 2 lpage arrays and 3 rmap arrays come first */
	x86_slot_arch_free(f.vm, s.arch);
	x86_slot_arch_free(f.vm, NULL);
	fx_fini(&f);
}

/* Random faults, notifier invalidations, zaps and logging switches on two slots. */
static void rmap_random_run(const mv_x86_vm_config *cfg, uint64_t *rng)
{
	const uint64_t gpa1 = 0x100000000ull;
	mv_x86_vm_stats st;
	tu_region r1;
	fx f;

	fx_ram(&f, cfg, 0);
	fx_declare(&f, tu_hva(&f.ram, 0), RAM_SIZE / 2, MV_HOST_BACKING_HUGETLB, SZ_2M);
	tu_region_map(&r1, RAM_SIZE, SZ_2M, PROT_READ | PROT_WRITE);
	fx_declare(&f, tu_hva(&r1, 0), RAM_SIZE, MV_HOST_BACKING_HUGETLB, SZ_2M);
	fx_slot(&f, 1, 0, gpa1 + SZ_1M, RAM_SIZE - SZ_1M, tu_hva(&r1, SZ_1M));
	for (int op = 0; op < 2000; op++) {
		unsigned kind = (unsigned)tu_rand_below(rng, 10);
		bool in1 = tu_rand_below(rng, 2);
		uint64_t base = in1 ? gpa1 + SZ_1M : RAM_GPA;
		uint64_t off = tu_rand_below(rng, RAM_SIZE - SZ_1M) & ~(SZ_4K - 1);
		mv_x86_fault_event ev;

		if (kind < 6) {
			ev = violation(&f, base + off, (mv_x86_acc)tu_rand_below(rng, 3));
			if (ev.action == MV_X86_ACT_ERROR)
				fail_msg("op %d: %s", op, ev.detail);
		} else if (kind < 8) {
			uint64_t hva = in1 ? tu_hva(&r1, SZ_1M + off) : tu_hva(&f.ram, off);
			uint64_t len = (1 + tu_rand_below(rng, 600)) * SZ_4K;

			mv_x86_vm_invalidate_range_start(f.vm, hva, hva + len);
			mv_x86_vm_invalidate_range_end(f.vm, hva, hva + len);
		} else if (kind == 8) {
			uint32_t flags = tu_rand_below(rng, 2) ? HV_MEM_LOG_DIRTY_PAGES : 0;

			fx_slot(&f, 1, flags, gpa1 + SZ_1M, RAM_SIZE - SZ_1M, tu_hva(&r1, SZ_1M));
		} else {
			zap(&f, base + off, (1 + tu_rand_below(rng, 64)) * SZ_4K);
		}
		assert_rmap(&f);
	}
	st = fx_stats(&f);
	printf("test_rmap_random: %" PRIu64 " faults: mapped 2M/4K %" PRIu64 "/%" PRIu64 ", fast %" PRIu64
	       ", prefetched %" PRIu64 ", nx %" PRIu64 ", eager splits %" PRIu64 "\n",
	       st.faults, st.mapped[2], st.mapped[3], st.fast_fixed, st.prefetched, st.nx_splits,
	       st.eager_splits);
	fx_fini(&f);
	tu_region_unmap(&r1);
}

static void test_rmap_random(void **state)
{
	mv_x86_vm_config lazy_nx = { .nx_huge_pages = true, .prefetch = true, .lazy_split = true };
	mv_x86_vm_config eager = { 0 };
	uint64_t rng = tu_seed(0x4a86f417ull);

	(void)state;
	rmap_random_run(&lazy_nx, &rng);
	rmap_random_run(&eager, &rng);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_action_names),
		cmocka_unit_test(test_exit_qual_to_error_code),
		cmocka_unit_test(test_level_4k_plain),
		cmocka_unit_test(test_level_2m_hugetlb),
		cmocka_unit_test(test_level_2m_thp),
		cmocka_unit_test(test_level_1g_hugetlb),
		cmocka_unit_test(test_lpage_info_counts),
		cmocka_unit_test(test_level_refusals),
		cmocka_unit_test(test_nx_fetch_maps_4k),
		cmocka_unit_test(test_nx_fetch_splits_huge_leaf),
		cmocka_unit_test(test_mmio_spte_then_fast),
		cmocka_unit_test(test_mmio_generation),
		cmocka_unit_test(test_mmio_generation_wrap),
		cmocka_unit_test(test_mmio_beyond_max_gfn),
		cmocka_unit_test(test_readonly_slot),
		cmocka_unit_test(test_fast_path_logging),
		cmocka_unit_test(test_logging_read_maps_writable),
		cmocka_unit_test(test_logging_read_races_write),
		cmocka_unit_test(test_fast_path_refuses_huge_logging),
		cmocka_unit_test(test_spurious_slow_path),
		cmocka_unit_test(test_notifier_race),
		cmocka_unit_test(test_notifier_in_progress_huge),
		cmocka_unit_test(test_poison_and_missing_host),
		cmocka_unit_test(test_prefetch),
		cmocka_unit_test(test_table_collapses_to_huge_leaf),
		cmocka_unit_test(test_misconfig_not_mmio),
		cmocka_unit_test(test_slot_arch_alloc_failures),
		cmocka_unit_test(test_rmap_random),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
