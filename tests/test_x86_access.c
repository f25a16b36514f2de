/*
 * The access engine of the x86 soft vCPU (mv_x86_vcpu_access / pio /
 * complete) over KVM's TDP fault path, and the x86 soft VM around it
 * (memslot hooks, dirty logging, rings, notifiers, ageing, buses).
 *
 * Every EPT exit is reported through the vCPU's trace callback; exit
 * qualifications are spelled out bit by bit from the SDM (Vol. 3C Table
 * 27-7, "Exit Qualification for EPT Violations"). Guest paging structures
 * are written by hand into guest RAM (4-level, identity mapped).
 */
#include "testutil.h"

#include "soft/soft_notifier.h"
#include "soft/x86/x86_fault.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define SZ_4K (1ull << 12)
#define SZ_2M (1ull << 21)

#define RAM_GPA 0x40000000ull        /* slot 0: 16 MiB of RAM */
#define RAM_SIZE (16ull << 20)
#define LOG_GPA 0x80000000ull        /* slot 1 (tests that log): 1 MiB */
#define LOG_SIZE (1ull << 20)
#define MMIO_GPA 0xfee00000ull       /* no memslot */
#define TABLES_GPA (RAM_GPA + 0x100000)  /* guest page tables are allocated from here */
#define DATA_GPA (RAM_GPA + 0x400000)    /* data of the paging tests (identity mapped) */

/* Exit qualification bits (SDM Vol. 3C Table 27-7), written out. */
#define Q_READ (1ull << 0)
#define Q_WRITE (1ull << 1)
#define Q_INSTR (1ull << 2)
#define Q_R (1ull << 3)
#define Q_W (1ull << 4)
#define Q_X (1ull << 5)
#define Q_GVA_VALID (1ull << 7)
#define Q_GVA_TRANSLATED (1ull << 8)

/* Guest paging-structure entry bits (SDM Vol. 3A Table 4-15 and on). */
#define PTE_P 1ull
#define PTE_RW 2ull
#define PTE_US 4ull
#define PTE_A (1ull << 5)
#define PTE_D (1ull << 6)
#define PTE_PS (1ull << 7)
#define ADDR 0x000ffffffffff000ull

/* ------------------------------------------------------------------ */
/* Fixture                                                              */

#define MAX_EV 64

typedef struct fx {
	mv_x86_vm *vm;
	mv_x86_vcpu *vcpu;
	tu_region ram;
	tu_region log;
	uint64_t next_table;         /* GPA of the next free guest table page */
	unsigned nev;                /* trace: EPT exits seen */
	mv_x86_fault_event ev[MAX_EV];
} fx;

static void trace(void *arg, const mv_x86_fault_event *ev)
{
	fx *f = arg;

	if (f->nev < MAX_EV)
		f->ev[f->nev] = *ev;
	f->nev++;
}

/* The last trace event. */
static const mv_x86_fault_event *last_ev(const fx *f)
{
	assert_true(f->nev > 0 && f->nev <= MAX_EV);
	return &f->ev[f->nev - 1];
}

static uint64_t ram_hva(const fx *f, uint64_t gpa)
{
	return (uint64_t)(uintptr_t)f->ram.base + (gpa - RAM_GPA);
}

static void *ram_ptr(const fx *f, uint64_t gpa)
{
	return f->ram.base + (gpa - RAM_GPA);
}

static void set_slot(fx *f, uint32_t id, uint64_t gpa, uint64_t size, void *hva, uint32_t flags)
{
	hv_memslot m = { .slot = id, .flags = flags, .gpa = gpa, .size = size, .hva = hva };

	assert_int_equal(mv_x86_vm_set_memslot(f->vm, &m), 0);
}

static fx *fx_new(const mv_x86_vm_config *cfg)
{
	fx *f = calloc(1, sizeof(*f));
	mv_error err = { 0 };

	assert_non_null(f);
	assert_int_equal(mv_x86_vm_new(cfg, &f->vm, &err), 0);
	assert_int_equal(mv_x86_vcpu_new(f->vm, 0, &f->vcpu, &err), 0);
	tu_region_map(&f->ram, RAM_SIZE, SZ_2M, PROT_READ | PROT_WRITE);
	tu_region_map(&f->log, LOG_SIZE, SZ_2M, PROT_READ | PROT_WRITE);
	set_slot(f, 0, RAM_GPA, RAM_SIZE, f->ram.base, 0);
	f->next_table = TABLES_GPA;
	mv_x86_vcpu_set_trace(f->vcpu, trace, f);
	return f;
}

static void fx_free(fx *f)
{
	mv_x86_vcpu_free(f->vcpu);
	mv_x86_vm_free(f->vm);
	tu_region_unmap(&f->ram);
	tu_region_unmap(&f->log);
	free(f);
}

static int fx_setup(void **state)
{
	*state = fx_new(NULL);
	return 0;
}

static int fx_teardown(void **state)
{
	fx_free(*state);
	return 0;
}

/* ---- accesses ---- */

static mv_x86_outcome do_access(fx *f, mv_x86_acc acc, uint64_t gva, unsigned size, uint64_t value,
				unsigned cpl)
{
	mv_x86_access a = { .acc = acc, .gva = gva, .size = (uint8_t)size, .cpl = (uint8_t)cpl,
			    .value = value };
	mv_x86_outcome out;

	assert_int_equal(mv_x86_vcpu_access(f->vcpu, &a, &out), 0);
	return out;
}

/* A read that must complete; its value. */
static uint64_t rd(fx *f, uint64_t gva, unsigned size)
{
	mv_x86_outcome out = do_access(f, MV_X86_READ, gva, size, 0, 0);

	assert_int_equal(out.result, MV_X86_DONE);
	return out.value;
}

static void wr(fx *f, uint64_t gva, unsigned size, uint64_t value)
{
	mv_x86_outcome out = do_access(f, MV_X86_WRITE, gva, size, value, 0);

	assert_int_equal(out.result, MV_X86_DONE);
}

static mv_tlb_stats tlb_stats(const fx *f)
{
	mv_tlb_stats st;

	mv_tlb_get_stats(f->vcpu->tlb, &st);
	return st;
}

/* The EPT leaf at @gpa (0 when none) and its level. */
static mv_pte ept_leaf(fx *f, uint64_t gpa, int *level)
{
	mv_pte spte = 0;
	int l = 0;

	assert_int_equal(mv_ept_get_leaf(mv_x86_vm_ept(f->vm), gpa, &spte, &l), MV_PGT_OK);
	if (level)
		*level = l;
	return spte;
}

/* ---- guest paging: 4-level, identity-mapped pages, tables from TABLES_GPA ---- */

static uint64_t *gentry(fx *f, uint64_t table_gpa, unsigned idx)
{
	return (uint64_t *)ram_ptr(f, table_gpa) + idx;
}

static uint64_t alloc_table(fx *f)
{
	uint64_t gpa = f->next_table;

	f->next_table += SZ_4K;
	memset(ram_ptr(f, gpa), 0, SZ_4K);
	return gpa;
}

/* The table below @table's entry @idx, made when missing. */
static uint64_t next_level(fx *f, uint64_t table, unsigned idx)
{
	uint64_t *e = gentry(f, table, idx);

	if (!(*e & PTE_P))
		*e = alloc_table(f) | PTE_P | PTE_RW | PTE_US;
	return *e & ADDR;
}

/* Map the 4 KiB page @gva -> @gpa with leaf bits @bits (P added); the PTE's GPA. */
static uint64_t map_4k(fx *f, uint64_t cr3, uint64_t gva, uint64_t gpa, uint64_t bits)
{
	uint64_t t = cr3;

	for (int shift = 39; shift > 12; shift -= 9)
		t = next_level(f, t, (gva >> shift) & 511);
	*gentry(f, t, (gva >> 12) & 511) = gpa | bits | PTE_P;
	return t + ((gva >> 12) & 511) * 8;
}

static mv_x86_paging paging_4l(uint64_t cr3)
{
	return (mv_x86_paging){
		.cr0 = MV_X86_CR0_PG | MV_X86_CR0_WP | 1,
		.cr3 = cr3,
		.cr4 = MV_X86_CR4_PAE,
		.efer = MV_X86_EFER_LME | MV_X86_EFER_LMA | MV_X86_EFER_NXE,
	};
}

/* ------------------------------------------------------------------ */
/* Configuration and memslots                                           */

static void test_vm_config(void **state)
{
	mv_x86_vm_config cfg = { .ept_levels = 3 };
	mv_error err = { 0 };
	mv_x86_vm *vm;
	hv_memslot m;
	tu_region r;

	(void)state;
	assert_int_equal(mv_x86_vm_new(&cfg, &vm, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "3 levels"));
	cfg = (mv_x86_vm_config){ .host_maxphyaddr = 40, .guest_maxphyaddr = 41 };
	assert_int_equal(mv_x86_vm_new(&cfg, &vm, &err), -EINVAL);
	cfg = (mv_x86_vm_config){ .nr_as = 3 };
	assert_int_equal(mv_x86_vm_new(&cfg, &vm, &err), -EINVAL);
	/* Defaults resolved: host MAXPHYADDR from CPUID, guest = host, 4 levels. */
	assert_int_equal(mv_x86_vm_new(NULL, &vm, &err), 0);
	assert_true(vm->cfg.host_maxphyaddr >= 32 && vm->cfg.host_maxphyaddr <= 52);
	assert_int_equal(vm->cfg.guest_maxphyaddr, vm->cfg.host_maxphyaddr);
	assert_int_equal(vm->cfg.ept_levels, 4);
	assert_int_equal(vm->max_gfn, (1ull << (vm->cfg.host_maxphyaddr - 12)) - 1);
	mv_x86_vm_free(vm);

	/* A slot must end at or below host MAXPHYADDR (kvm_mmu_max_gfn). */
	cfg = (mv_x86_vm_config){ .host_maxphyaddr = 36 };
	assert_int_equal(mv_x86_vm_new(&cfg, &vm, &err), 0);
	tu_region_map(&r, 2 * SZ_4K, SZ_4K, PROT_READ | PROT_WRITE);
	m = (hv_memslot){ .slot = 0, .gpa = (1ull << 36) - SZ_4K, .size = 2 * SZ_4K, .hva = r.base };
	assert_int_equal(mv_x86_vm_set_memslot(vm, &m), -EINVAL);
	m.size = SZ_4K;
	assert_int_equal(mv_x86_vm_set_memslot(vm, &m), 0);
	/* Moving it across the limit fails too; deleting works. */
	m.gpa = 1ull << 36;
	assert_int_equal(mv_x86_vm_set_memslot(vm, &m), -EINVAL);
	m.gpa = (1ull << 36) - SZ_4K;
	m.size = 0;
	assert_int_equal(mv_x86_vm_set_memslot(vm, &m), 0);
	mv_x86_vm_free(vm);
	tu_region_unmap(&r);
}

/* ------------------------------------------------------------------ */
/* First touch, values, TLB                                             */

static void test_first_touch(void **state)
{
	fx *f = *state;
	uint64_t gpa = RAM_GPA + 0x3000;
	const mv_x86_fault_event *ev;
	mv_tlb_stats before;
	int level;

	*(uint32_t *)ram_ptr(f, gpa) = 0xdeadbeef;
	assert_int_equal(rd(f, gpa, 4), 0xdeadbeef);
	assert_int_equal(f->nev, 1);
	ev = last_ev(f);
	assert_false(ev->misconfig);
	/* Paging off: the GPA is the translation of the linear address; nothing was mapped. */
	assert_int_equal(ev->exit_qual, Q_READ | Q_GVA_VALID | Q_GVA_TRANSLATED);
	assert_int_equal(ev->pferr, MV_PFERR_USER | MV_PFERR_GUEST_FINAL);
	assert_int_equal(ev->gpa, gpa);
	assert_int_equal(ev->gva, gpa);
	assert_int_equal(ev->len, 4);
	assert_false(ev->is_write);
	assert_int_equal(ev->action, MV_X86_ACT_MAPPED);
	assert_int_equal(ev->level, 3);
	assert_int_equal(ept_leaf(f, gpa, &level) & MV_EPT_ADDR_MASK, ram_hva(f, gpa));
	assert_int_equal(level, 3);
	/* Again: a TLB hit, no exit. */
	before = tlb_stats(f);
	assert_int_equal(rd(f, gpa, 4), 0xdeadbeef);
	assert_int_equal(f->nev, 1);
	assert_int_equal(tlb_stats(f).hits, before.hits + 1);
}

static void test_values(void **state)
{
	fx *f = *state;
	uint64_t gpa = RAM_GPA + 0x10000;
	uint8_t *p = ram_ptr(f, gpa);
	mv_x86_outcome out;

	wr(f, gpa, 1, 0x11);
	wr(f, gpa + 2, 2, 0x3322);
	wr(f, gpa + 4, 4, 0x77665544);
	wr(f, gpa + 8, 8, 0xffeeddccbbaa9988ull);
	for (unsigned i = 0; i < 16; i++)
		if (i != 1)
			assert_int_equal(p[i], i == 0 ? 0x11 : 0x11 * i);
	assert_int_equal(rd(f, gpa + 8, 8), 0xffeeddccbbaa9988ull);
	assert_int_equal(rd(f, gpa + 2, 2), 0x3322);
	assert_int_equal(rd(f, gpa + 9, 1), 0x99);
	/* Unaligned inside a page; values are truncated to the size. */
	wr(f, gpa + 0x101, 4, 0x1234567890ull);
	assert_int_equal(rd(f, gpa + 0x101, 4), 0x34567890);
	assert_int_equal(rd(f, gpa + 0x100, 8), 0x3456789000ull);
	/* A fetch reads like a read. */
	out = do_access(f, MV_X86_FETCH, gpa + 8, 4, 0, 0);
	assert_int_equal(out.result, MV_X86_DONE);
	assert_int_equal(out.value, 0xbbaa9988);
}

static void test_page_crossing(void **state)
{
	fx *f = *state;
	uint64_t gpa = RAM_GPA + 0x20000 - 3;
	uint8_t *p = ram_ptr(f, gpa);

	wr(f, gpa, 8, 0x0807060504030201ull);
	for (unsigned i = 0; i < 8; i++)
		assert_int_equal(p[i], i + 1);
	/* Both pages faulted in (one exit each), then the access was performed once. */
	assert_int_equal(f->nev, 2);
	assert_int_equal(f->ev[0].gpa, gpa);
	assert_int_equal(f->ev[0].len, 3);
	assert_int_equal(f->ev[1].gpa, RAM_GPA + 0x20000);
	assert_int_equal(f->ev[1].len, 5);
	assert_true(f->ev[1].is_write);
	assert_int_equal(rd(f, gpa, 8), 0x0807060504030201ull);
	assert_int_equal(rd(f, gpa + 2, 2), 0x0403);
}

static void test_tlb_flush_on_paging_change(void **state)
{
	fx *f = *state;
	mv_x86_paging p = { 0 };
	mv_tlb_stats st;

	wr(f, RAM_GPA, 8, 1);
	st = tlb_stats(f);
	rd(f, RAM_GPA, 8);
	assert_int_equal(tlb_stats(f).hits, st.hits + 1);
	mv_x86_vcpu_set_paging(f->vcpu, &p);
	/* The guest MAXPHYADDR defaults to the VM's. */
	mv_x86_vcpu_get_paging(f->vcpu, &p);
	assert_int_equal(p.maxphyaddr, f->vm->cfg.guest_maxphyaddr);
	st = tlb_stats(f);
	rd(f, RAM_GPA, 8);
	assert_int_equal(tlb_stats(f).misses, st.misses + 1);
}

static void test_malformed(void **state)
{
	fx *f = *state;
	mv_x86_access a = { .acc = MV_X86_READ, .gva = RAM_GPA, .size = 3 };
	mv_x86_outcome out;

	assert_int_equal(mv_x86_vcpu_access(f->vcpu, &a, &out), -EINVAL);
	a.size = 16;
	assert_int_equal(mv_x86_vcpu_access(f->vcpu, &a, &out), -EINVAL);
	a.size = 4;
	a.cpl = 4;
	assert_int_equal(mv_x86_vcpu_access(f->vcpu, &a, &out), -EINVAL);
	a.cpl = 0;
	a.acc = 7;
	assert_int_equal(mv_x86_vcpu_access(f->vcpu, &a, &out), -EINVAL);
	assert_int_equal(mv_x86_vcpu_pio(f->vcpu, 0x80, 8, false, 0, &out), -EINVAL);
	assert_int_equal(mv_x86_vcpu_pio(f->vcpu, 0x80, 3, false, 0, &out), -EINVAL);
	assert_int_equal(f->nev, 0);
}

/* ------------------------------------------------------------------ */
/* MMIO and PIO                                                         */

static void test_mmio_exit(void **state)
{
	fx *f = *state;
	mv_x86_outcome out;
	uint64_t v = 0;

	out = do_access(f, MV_X86_READ, MMIO_GPA + 0x30, 4, 0, 0);
	assert_int_equal(out.result, MV_X86_EXIT);
	assert_ptr_equal(out.exit, &f->vcpu->exit);
	assert_int_equal(out.exit->reason, HV_EXIT_MMIO);
	assert_int_equal(out.exit->mmio.gpa, MMIO_GPA + 0x30);
	assert_int_equal(out.exit->mmio.len, 4);
	assert_false(out.exit->mmio.is_write);
	assert_int_equal(last_ev(f)->action, MV_X86_ACT_MMIO_SPTE);
	memcpy(out.exit->mmio.data, "\x78\x56\x34\x12", 4);
	mv_x86_vcpu_complete(f->vcpu, &v);
	assert_int_equal(v, 0x12345678);
	/* Completed once: a second call leaves *value alone. */
	v = 7;
	mv_x86_vcpu_complete(f->vcpu, &v);
	assert_int_equal(v, 7);

	/* The MMIO SPTE is current: an EPT misconfiguration, served without a slot lookup. */
	out = do_access(f, MV_X86_WRITE, MMIO_GPA + 0x38, 2, 0xbeef, 0);
	assert_int_equal(out.result, MV_X86_EXIT);
	assert_int_equal(out.exit->reason, HV_EXIT_MMIO);
	assert_int_equal(out.exit->mmio.gpa, MMIO_GPA + 0x38);
	assert_int_equal(out.exit->mmio.len, 2);
	assert_true(out.exit->mmio.is_write);
	assert_memory_equal(out.exit->mmio.data, "\xef\xbe", 2);
	assert_true(last_ev(f)->misconfig);
	assert_int_equal(last_ev(f)->pferr, MV_PFERR_RSVD);
	assert_int_equal(last_ev(f)->action, MV_X86_ACT_MMIO_FAST);
	assert_int_equal(f->nev, 2);

	/* A pending read is dropped by the next access if nobody completed it. */
	out = do_access(f, MV_X86_READ, MMIO_GPA, 8, 0, 0);
	assert_int_equal(out.exit->mmio.len, 8);
	wr(f, RAM_GPA, 4, 5);
	v = 9;
	mv_x86_vcpu_complete(f->vcpu, &v);
	assert_int_equal(v, 9);
}

static void test_mmio_crossing(void **state)
{
	fx *f = *state;
	uint64_t end = RAM_GPA + RAM_SIZE;
	uint8_t *last = ram_ptr(f, end - 4);
	mv_x86_outcome out;
	uint64_t v = 0;

	/* Write: the RAM part lands, the MMIO part exits. */
	out = do_access(f, MV_X86_WRITE, end - 4, 8, 0x8877665544332211ull, 0);
	assert_int_equal(out.result, MV_X86_EXIT);
	assert_int_equal(out.exit->reason, HV_EXIT_MMIO);
	assert_int_equal(out.exit->mmio.gpa, end);
	assert_int_equal(out.exit->mmio.len, 4);
	assert_memory_equal(out.exit->mmio.data, "\x55\x66\x77\x88", 4);
	assert_memory_equal(last, "\x11\x22\x33\x44", 4);
	/* Read: the RAM bytes are kept until user space answers for the rest. */
	out = do_access(f, MV_X86_READ, end - 2, 4, 0, 0);
	assert_int_equal(out.exit->mmio.gpa, end);
	assert_int_equal(out.exit->mmio.len, 2);
	memcpy(out.exit->mmio.data, "\xaa\xbb", 2);
	mv_x86_vcpu_complete(f->vcpu, &v);
	assert_int_equal(v, 0xbbaa4433);
	/* Both parts MMIO and contiguous: one exit of the whole access. */
	out = do_access(f, MV_X86_READ, MMIO_GPA + SZ_4K - 4, 8, 0, 0);
	assert_int_equal(out.exit->mmio.gpa, MMIO_GPA + SZ_4K - 4);
	assert_int_equal(out.exit->mmio.len, 8);
}

typedef struct dev {
	uint64_t addr;
	unsigned len;
	uint8_t data[8];
	unsigned reads, writes;
} dev;

static int dev_read(void *opaque, uint64_t addr, unsigned len, void *data)
{
	dev *d = opaque;

	d->reads++;
	d->addr = addr;
	d->len = len;
	for (unsigned i = 0; i < len; i++)
		((uint8_t *)data)[i] = (uint8_t)(0xa0 + i);
	return 0;
}

static int dev_write(void *opaque, uint64_t addr, unsigned len, const void *data)
{
	dev *d = opaque;

	d->writes++;
	d->addr = addr;
	d->len = len;
	memcpy(d->data, data, len);
	return 0;
}

static const mv_iobus_dev_ops dev_ops = { .read = dev_read, .write = dev_write };

static void test_mmio_bus(void **state)
{
	fx *f = *state;
	dev d = { 0 };
	mv_x86_outcome out;

	assert_int_equal(mv_iobus_register(mv_x86_vm_mmio_bus(f->vm), MMIO_GPA, SZ_4K, &dev_ops, &d), 0);
	assert_int_equal(rd(f, MMIO_GPA + 0x10, 4), 0xa3a2a1a0);
	assert_int_equal(d.reads, 1);
	assert_int_equal(d.addr, MMIO_GPA + 0x10);
	assert_int_equal(d.len, 4);
	wr(f, MMIO_GPA + 0x20, 2, 0x1234);
	assert_int_equal(d.writes, 1);
	assert_int_equal(d.addr, MMIO_GPA + 0x20);
	assert_memory_equal(d.data, "\x34\x12", 2);
	/* Outside the device's range: user space. */
	out = do_access(f, MV_X86_READ, MMIO_GPA + SZ_4K, 1, 0, 0);
	assert_int_equal(out.result, MV_X86_EXIT);
	assert_int_equal(out.exit->reason, HV_EXIT_MMIO);
	/* A fetch from MMIO cannot be emulated: KVM_INTERNAL_ERROR_EMULATION. */
	out = do_access(f, MV_X86_FETCH, MMIO_GPA, 4, 0, 0);
	assert_int_equal(out.result, MV_X86_EXIT);
	assert_int_equal(out.exit->reason, HV_EXIT_INTERNAL_ERROR);
	assert_int_equal(out.exit->internal.suberror, 1);
	assert_int_equal(out.exit->internal.data[0], MMIO_GPA);
	assert_int_equal(d.reads, 1);
}

static void test_pio(void **state)
{
	fx *f = *state;
	dev d = { 0 };
	mv_x86_outcome out;
	uint64_t v = 0;

	assert_int_equal(mv_x86_vcpu_pio(f->vcpu, 0x3f8, 1, true, 0x41, &out), 0);
	assert_int_equal(out.result, MV_X86_EXIT);
	assert_int_equal(out.exit->reason, HV_EXIT_IO);
	assert_int_equal(out.exit->io.port, 0x3f8);
	assert_int_equal(out.exit->io.size, 1);
	assert_true(out.exit->io.is_write);
	assert_int_equal(out.exit->io.count, 1);
	assert_ptr_equal(out.exit->io.data, f->vcpu->io_data);
	assert_int_equal(out.exit->io.data[0], 0x41);
	assert_int_equal(mv_x86_vcpu_pio(f->vcpu, 0x60, 2, false, 0, &out), 0);
	assert_int_equal(out.exit->reason, HV_EXIT_IO);
	assert_false(out.exit->io.is_write);
	out.exit->io.data[0] = 0x34;
	out.exit->io.data[1] = 0x12;
	mv_x86_vcpu_complete(f->vcpu, &v);
	assert_int_equal(v, 0x1234);
	/* An in-process device takes it. */
	assert_int_equal(mv_iobus_register(mv_x86_vm_pio_bus(f->vm), 0x70, 2, &dev_ops, &d), 0);
	assert_int_equal(mv_x86_vcpu_pio(f->vcpu, 0x71, 1, false, 0, &out), 0);
	assert_int_equal(out.result, MV_X86_DONE);
	assert_int_equal(out.value, 0xa0);
	assert_int_equal(mv_x86_vcpu_pio(f->vcpu, 0x70, 2, true, 0xbeef, &out), 0);
	assert_int_equal(out.result, MV_X86_DONE);
	assert_memory_equal(d.data, "\xef\xbe", 2);
	assert_int_equal(d.addr, 0x70);
}

static void test_readonly_slot(void **state)
{
	fx *f = *state;
	uint8_t *p = f->log.base;
	mv_x86_outcome out;
	int level;

	p[0x10] = 0x5a;
	set_slot(f, 1, LOG_GPA, LOG_SIZE, f->log.base, HV_MEM_READONLY);
	assert_int_equal(rd(f, LOG_GPA + 0x10, 1), 0x5a);
	/* Mapped without W. */
	assert_int_equal(ept_leaf(f, LOG_GPA, &level) & MV_EPT_RWX, MV_EPT_R | MV_EPT_X);
	out = do_access(f, MV_X86_WRITE, LOG_GPA + 0x10, 4, 0xcafe, 0);
	assert_int_equal(out.result, MV_X86_EXIT);
	assert_int_equal(out.exit->reason, HV_EXIT_MMIO);
	assert_int_equal(out.exit->mmio.gpa, LOG_GPA + 0x10);
	assert_int_equal(out.exit->mmio.len, 4);
	assert_true(out.exit->mmio.is_write);
	assert_memory_equal(out.exit->mmio.data, "\xfe\xca\x00\x00", 4);
	/* A write to a mapped read-only page: the qualification says readable and executable. */
	assert_int_equal(last_ev(f)->exit_qual,
			 Q_WRITE | Q_R | Q_X | Q_GVA_VALID | Q_GVA_TRANSLATED);
	assert_int_equal(last_ev(f)->action, MV_X86_ACT_MMIO);
	assert_int_equal(p[0x10], 0x5a);
}

/* ------------------------------------------------------------------ */
/* Guest paging                                                         */

static void test_guest_paging(void **state)
{
	fx *f = *state;
	uint64_t cr3 = alloc_table(f), gva = DATA_GPA + 0x5000, pte;
	mv_x86_paging p = paging_4l(cr3);
	uint64_t pml4e, pdpte, pde;
	mv_pte spte;

	pte = map_4k(f, cr3, gva, gva, PTE_RW | PTE_US);
	mv_x86_vcpu_set_paging(f->vcpu, &p);
	*(uint64_t *)ram_ptr(f, gva + 8) = 0x1122334455667788ull;
	assert_int_equal(rd(f, gva + 8, 8), 0x1122334455667788ull);
	/* A in every entry used; no D for a read. */
	pml4e = *gentry(f, cr3, (gva >> 39) & 511);
	pdpte = *gentry(f, pml4e & ADDR, (gva >> 30) & 511);
	pde = *gentry(f, pdpte & ADDR, (gva >> 21) & 511);
	assert_true(pml4e & PTE_A);
	assert_true(pdpte & PTE_A);
	assert_true(pde & PTE_A);
	assert_int_equal(*(uint64_t *)ram_ptr(f, pte) & (PTE_A | PTE_D), PTE_A);
	wr(f, gva, 4, 7);
	assert_int_equal(*(uint64_t *)ram_ptr(f, pte) & (PTE_A | PTE_D), PTE_A | PTE_D);
	assert_int_equal(*(uint32_t *)ram_ptr(f, gva), 7);
	/* EPT A/D: the table pages were written (guest paging-structure accesses count as writes). */
	spte = ept_leaf(f, pte & ~0xfffull, NULL);
	assert_int_equal(spte & (MV_EPT_A | MV_EPT_D), MV_EPT_A | MV_EPT_D);
	spte = ept_leaf(f, gva, NULL);
	assert_int_equal(spte & (MV_EPT_A | MV_EPT_D), MV_EPT_A | MV_EPT_D);
}

/*
 * The first access of a fresh VM with paging on: the walk's read of the
 * PML4E stops in EPT (nothing is mapped), a paging-structure access.
 */
static void check_table_violation(bool ad)
{
	mv_x86_vm_config cfg = { .no_ept_ad = !ad };
	fx *f = fx_new(&cfg);
	uint64_t cr3 = alloc_table(f), gva = DATA_GPA;
	mv_x86_paging p = paging_4l(cr3);
	uint64_t qual;

	map_4k(f, cr3, gva, gva, PTE_RW);
	mv_x86_vcpu_set_paging(f->vcpu, &p);
	rd(f, gva, 4);
	/* PML4, PDPT, PD, PT pages (4 exits, all in the first 2 MiB: one table each), then the data. */
	assert_int_equal(f->nev, 5);
	qual = ad ? Q_READ | Q_WRITE | Q_GVA_VALID : Q_READ | Q_GVA_VALID;
	assert_int_equal(f->ev[0].exit_qual, qual);
	assert_int_equal(f->ev[0].pferr, (ad ? MV_PFERR_USER | MV_PFERR_WRITE : MV_PFERR_USER) |
					  MV_PFERR_GUEST_PAGE);
	assert_int_equal(f->ev[0].gpa, cr3 + ((gva >> 39) & 511) * 8);
	assert_int_equal(f->ev[0].gva, gva);
	assert_int_equal(f->ev[0].len, 8);
	assert_int_equal(f->ev[0].action, MV_X86_ACT_MAPPED);
	assert_int_equal(f->ev[4].exit_qual, Q_READ | Q_GVA_VALID | Q_GVA_TRANSLATED);
	assert_int_equal(f->ev[4].gpa, gva);
	fx_free(f);
}

static void test_table_violation(void **state)
{
	(void)state;
	check_table_violation(true);
	check_table_violation(false);
}

/* Without EPT A/D flags, the A/D update of a page mapped read-only is a data write alone. */
static void test_ad_write_violation(void **state)
{
	mv_x86_vm_config cfg = { .no_ept_ad = true };
	fx *f = fx_new(&cfg);
	uint64_t cr3 = alloc_table(f), gva = DATA_GPA, pte;
	mv_x86_paging p = paging_4l(cr3);

	(void)state;
	pte = map_4k(f, cr3, gva, gva, PTE_RW);
	/* Tables readable first (A already set: the walk writes nothing)... */
	for (uint64_t t = TABLES_GPA; t < f->next_table; t += SZ_4K)
		for (unsigned i = 0; i < 512; i++)
			if (*gentry(f, t, i))
				*gentry(f, t, i) |= PTE_A;
	mv_x86_vcpu_set_paging(f->vcpu, &p);
	rd(f, gva, 4);
	/* ...then the slot starts logging: the tables lose W; the write's D update is a data write. */
	set_slot(f, 0, RAM_GPA, RAM_SIZE, f->ram.base, HV_MEM_LOG_DIRTY_PAGES);
	f->nev = 0;
	wr(f, gva, 4, 1);
	assert_true(f->nev >= 2);
	assert_int_equal(f->ev[0].exit_qual, Q_WRITE | Q_R | Q_X | Q_GVA_VALID);
	assert_int_equal(f->ev[0].gpa, pte);
	assert_true(f->ev[0].is_write);
	assert_int_equal(f->ev[0].action, MV_X86_ACT_FAST);
	assert_int_equal(*(uint64_t *)ram_ptr(f, pte) & PTE_D, PTE_D);
	fx_free(f);
}

static void test_guest_faults(void **state)
{
	fx *f = *state;
	uint64_t cr3 = alloc_table(f), gva = DATA_GPA;
	mv_x86_paging p = paging_4l(cr3);
	mv_x86_outcome out;

	map_4k(f, cr3, gva, gva, 0);        /* supervisor, read-only */
	mv_x86_vcpu_set_paging(f->vcpu, &p);
	/* Not present. */
	out = do_access(f, MV_X86_WRITE, gva + SZ_4K, 4, 0, 3);
	assert_int_equal(out.result, MV_X86_GUEST_PF);
	assert_int_equal(out.pferr, MV_PFERR_WRITE | MV_PFERR_USER);
	assert_int_equal(out.cr2, gva + SZ_4K);
	/* Protection: user access to a supervisor page; write to a read-only page (CR0.WP). */
	out = do_access(f, MV_X86_READ, gva, 4, 0, 3);
	assert_int_equal(out.result, MV_X86_GUEST_PF);
	assert_int_equal(out.pferr, MV_PFERR_PRESENT | MV_PFERR_USER);
	out = do_access(f, MV_X86_WRITE, gva, 4, 0, 0);
	assert_int_equal(out.result, MV_X86_GUEST_PF);
	assert_int_equal(out.pferr, MV_PFERR_PRESENT | MV_PFERR_WRITE);
	/* Allowed at CPL 0; then the cached translation is still checked at CPL 3. */
	assert_int_equal(rd(f, gva, 4), 0);
	out = do_access(f, MV_X86_READ, gva, 4, 0, 3);
	assert_int_equal(out.result, MV_X86_GUEST_PF);
	/* Non-canonical: #GP(0). */
	out = do_access(f, MV_X86_READ, 0x0000800000000000ull, 4, 0, 0);
	assert_int_equal(out.result, MV_X86_GUEST_GP);
}

/* A guest table outside every memslot: KVM's emulated walk cannot read it: #PF. */
static void test_table_in_mmio(void **state)
{
	fx *f = *state;
	uint64_t cr3 = alloc_table(f), gva = DATA_GPA, pdpt, pd;
	mv_x86_paging p = paging_4l(cr3);
	mv_x86_outcome out;

	map_4k(f, cr3, gva, gva, PTE_RW | PTE_US);
	/* Point the PDE to a table in the MMIO hole. */
	pdpt = *gentry(f, cr3, (gva >> 39) & 511) & ADDR;
	pd = *gentry(f, pdpt, (gva >> 30) & 511) & ADDR;
	*gentry(f, pd, (gva >> 21) & 511) = MMIO_GPA | PTE_P | PTE_RW | PTE_US;
	mv_x86_vcpu_set_paging(f->vcpu, &p);
	out = do_access(f, MV_X86_WRITE, gva, 4, 0, 3);
	assert_int_equal(out.result, MV_X86_GUEST_PF);
	assert_int_equal(out.pferr, MV_PFERR_WRITE | MV_PFERR_USER);
	assert_int_equal(out.cr2, gva);
	assert_int_equal(last_ev(f)->gpa, MMIO_GPA + ((gva >> 12) & 511) * 8);
	assert_int_equal(last_ev(f)->exit_qual, Q_READ | Q_WRITE | Q_GVA_VALID);
	assert_int_equal(last_ev(f)->action, MV_X86_ACT_MMIO_SPTE);
}

/*
 * Host MAXPHYADDR 39, guest 36 (KVM's allow_smaller_maxphyaddr): a guest
 * entry with an address bit above the guest's width is a reserved-bit #PF
 * (what KVM's emulation of the EPT violation makes of it); a GPA beyond
 * the host's width cannot be mapped: MMIO without an MMIO SPTE.
 */
static void test_maxphyaddr(void **state)
{
	mv_x86_vm_config cfg = { .host_maxphyaddr = 39, .guest_maxphyaddr = 36 };
	fx *f = fx_new(&cfg);
	uint64_t cr3 = alloc_table(f), gva = DATA_GPA;
	mv_x86_paging p = paging_4l(cr3);
	mv_x86_outcome out;

	(void)state;
	out = do_access(f, MV_X86_READ, 1ull << 40, 4, 0, 0);
	assert_int_equal(out.result, MV_X86_EXIT);
	assert_int_equal(out.exit->reason, HV_EXIT_MMIO);
	assert_int_equal(out.exit->mmio.gpa, 1ull << 40);
	assert_int_equal(last_ev(f)->action, MV_X86_ACT_MMIO);
	assert_int_equal(last_ev(f)->exit_qual, Q_READ | Q_GVA_VALID | Q_GVA_TRANSLATED);
	map_4k(f, cr3, gva, 1ull << 37, PTE_RW);
	mv_x86_vcpu_set_paging(f->vcpu, &p);
	mv_x86_vcpu_get_paging(f->vcpu, &p);
	assert_int_equal(p.maxphyaddr, 36);
	out = do_access(f, MV_X86_READ, gva, 4, 0, 0);
	assert_int_equal(out.result, MV_X86_GUEST_PF);
	assert_int_equal(out.pferr, MV_PFERR_RSVD | MV_PFERR_PRESENT);
	assert_int_equal(out.cr2, gva);
	fx_free(f);
}

/* ------------------------------------------------------------------ */
/* Exits before entry                                                   */

static void test_kick(void **state)
{
	fx *f = *state;
	mv_x86_outcome out;

	mv_x86_vcpu_kick(f->vcpu);
	out = do_access(f, MV_X86_WRITE, RAM_GPA, 4, 9, 0);
	assert_int_equal(out.result, MV_X86_EXIT);
	assert_int_equal(out.exit->reason, HV_EXIT_INTR);
	assert_int_equal(*(uint32_t *)ram_ptr(f, RAM_GPA), 0);
	assert_int_equal(mv_x86_vcpu_pio(f->vcpu, 0x80, 1, true, 0, &out), 0);
	assert_int_equal(out.exit->reason, HV_EXIT_IO);
	wr(f, RAM_GPA, 4, 9);
	assert_int_equal(*(uint32_t *)ram_ptr(f, RAM_GPA), 9);
}

static void count_gfn(void *opaque, const hv_dirty_gfn *g)
{
	unsigned *n = opaque;

	(void)g;
	(*n)++;
}

/*
 * Ring sizes, then the soft limit: the fault of the write that pushes the
 * entry reaching it maps the page, and the vCPU exits before the write runs
 * (KVM checks the ring at every guest entry, vcpu_enter_guest); harvest +
 * reset protect the page again, so the reissued write faults (fast path)
 * and logs its page a second time.
 */
static void test_dirty_ring_full(void **state)
{
	mv_error err = { 0 };
	mv_x86_vm *vm;
	mv_x86_vcpu *vcpu;
	tu_region r;
	hv_memslot m;
	mv_x86_outcome out;
	mv_x86_access a = { .acc = MV_X86_WRITE, .size = 1 };
	mv_x86_vm_stats st;
	unsigned n = 0, limit, last;
	uint64_t bitmap[4];
	mv_pte spte = 0;
	int level = 0;

	(void)state;
	assert_int_equal(mv_x86_vm_new(NULL, &vm, &err), 0);
	assert_int_equal(mv_x86_vm_enable_dirty_ring(vm, 100), -EINVAL);
	assert_int_equal(mv_x86_vm_enable_dirty_ring(vm, 1u << 17), -E2BIG);
	assert_int_equal(mv_x86_vm_enable_dirty_ring(vm, 256), 0);
	assert_int_equal(mv_x86_vm_enable_dirty_ring(vm, 256), -EINVAL);
	tu_region_map(&r, 1ull << 20, SZ_4K, PROT_READ | PROT_WRITE);
	m = (hv_memslot){ .slot = 0, .flags = HV_MEM_LOG_DIRTY_PAGES, .gpa = RAM_GPA, .size = 1ull << 20,
			  .hva = r.base };
	assert_int_equal(mv_x86_vm_set_memslot(vm, &m), 0);
	assert_int_equal(mv_x86_vcpu_new(vm, 0, &vcpu, &err), 0);
	limit = mv_dirty_ring_soft_limit(vcpu->ring);
	assert_int_equal(limit, 256 - 64);
	last = limit - 1;
	/* Bitmap calls answer -ENXIO. */
	assert_int_equal(mv_x86_vm_get_dirty_log(vm, 0, bitmap), -ENXIO);
	assert_int_equal(mv_x86_vm_clear_dirty_log(vm, 0, 0, 64, bitmap), -ENXIO);
	for (unsigned i = 0; i < last; i++) {
		a.gva = RAM_GPA + (uint64_t)i * SZ_4K;
		assert_int_equal(mv_x86_vcpu_access(vcpu, &a, &out), 0);
		assert_int_equal(out.result, MV_X86_DONE);
	}
	/* The fault of page `last` pushes entry `limit`: mapped, then the exit, the write not done. */
	a.gva = RAM_GPA + (uint64_t)last * SZ_4K;
	a.value = 0x77;
	assert_int_equal(mv_x86_vcpu_access(vcpu, &a, &out), 0);
	assert_int_equal(out.result, MV_X86_EXIT);
	assert_int_equal(out.exit->reason, HV_EXIT_DIRTY_RING_FULL);
	assert_int_equal(r.base[last * SZ_4K], 0);
	assert_int_equal(mv_dirty_ring_used(vcpu->ring), limit);
	assert_int_equal(mv_ept_get_leaf(mv_x86_vm_ept(vm), a.gva, &spte, &level), MV_PGT_OK);
	assert_int_equal(level, 3);
	assert_true(spte & MV_EPT_W);
	/* Still soft-full: exit before anything is done. */
	assert_int_equal(mv_x86_vcpu_access(vcpu, &a, &out), 0);
	assert_int_equal(out.exit->reason, HV_EXIT_DIRTY_RING_FULL);
	assert_int_equal(r.base[last * SZ_4K], 0);
	assert_int_equal(mv_x86_vcpu_dirty_ring_harvest(vcpu, count_gfn, &n), (int)limit);
	assert_int_equal(n, limit);
	assert_int_equal(mv_x86_vm_dirty_rings_reset(vm), (int)limit);
	/* Reissued: W was taken away by the reset, the fast path logs the page again. */
	assert_int_equal(mv_x86_vcpu_access(vcpu, &a, &out), 0);
	assert_int_equal(out.result, MV_X86_DONE);
	assert_int_equal(r.base[last * SZ_4K], 0x77);
	assert_int_equal(mv_dirty_ring_used(vcpu->ring), 1);
	mv_x86_vm_get_stats(vm, &st);
	assert_int_equal(st.fast_fixed, 1);
	/* The reset re-protected page 0: its next write is logged again. */
	a.gva = RAM_GPA;
	assert_int_equal(mv_x86_vcpu_access(vcpu, &a, &out), 0);
	assert_int_equal(out.result, MV_X86_DONE);
	assert_int_equal(mv_dirty_ring_used(vcpu->ring), 2);
	mv_x86_vcpu_free(vcpu);
	/* created_vcpus never drops: still too late for a ring. */
	mv_x86_vm_free(vm);
	tu_region_unmap(&r);
}

static void test_ring_after_vcpu(void **state)
{
	fx *f = *state;
	mv_error err = { 0 };
	mv_x86_vcpu *v;

	assert_int_equal(mv_x86_vm_enable_dirty_ring(f->vm, 256), -EINVAL);
	assert_int_equal(mv_x86_vcpu_dirty_ring_harvest(f->vcpu, count_gfn, NULL), -EINVAL);
	assert_int_equal(mv_x86_vm_dirty_rings_reset(f->vm), -EINVAL);
	assert_int_equal(mv_x86_vcpu_new(f->vm, 0, &v, &err), -EEXIST);
	assert_int_equal(mv_x86_vcpu_new(f->vm, 64, &v, &err), -EINVAL);
}

/* ------------------------------------------------------------------ */
/* Dirty logging                                                        */

static uint64_t log_gpa(unsigned page)
{
	return LOG_GPA + (uint64_t)page * SZ_4K;
}

static void get_log(fx *f, uint64_t *bm)
{
	memset(bm, 0xff, HV_DIRTY_BITMAP_WORDS(LOG_SIZE) * 8);
	assert_int_equal(mv_x86_vm_get_dirty_log(f->vm, 1, bm), 0);
}

static void test_dirty_log(void **state)
{
	fx *f = *state;
	uint64_t bm[HV_DIRTY_BITMAP_WORDS(LOG_SIZE)];
	unsigned before;

	set_slot(f, 1, LOG_GPA, LOG_SIZE, f->log.base, 0);
	/* Mapped writable before logging starts. */
	wr(f, log_gpa(3), 4, 1);
	wr(f, log_gpa(200), 4, 1);
	assert_int_equal(mv_x86_vm_get_dirty_log(f->vm, 1, bm), -ENOENT);
	set_slot(f, 1, LOG_GPA, LOG_SIZE, f->log.base, HV_MEM_LOG_DIRTY_PAGES);
	assert_false(ept_leaf(f, log_gpa(3), NULL) & MV_EPT_W);
	wr(f, log_gpa(3), 4, 2);
	wr(f, log_gpa(7), 4, 2);
	wr(f, log_gpa(64), 8, 2);
	/*
	 * x86 KVM's make_spte: a read maps the writable host page writable and
	 * logs it at once; the write after it needs no fault. (The host wrote
	 * the page first: hva_to_pfn maps a read writable only when the host
	 * PTE already is.)
	 */
	f->log.base[100 * SZ_4K] = 1;
	before = f->nev;
	rd(f, log_gpa(100), 4);
	assert_int_equal(f->nev, before + 1);
	assert_int_equal(last_ev(f)->action, MV_X86_ACT_MAPPED);
	assert_true(ept_leaf(f, log_gpa(100), NULL) & MV_EPT_W);
	wr(f, log_gpa(100), 4, 2);
	assert_int_equal(f->nev, before + 1);
	get_log(f, bm);
	assert_int_equal(bm[0], (1ull << 3) | (1ull << 7));
	assert_int_equal(bm[1], 1 | (1ull << 36));
	for (unsigned i = 2; i < HV_DIRTY_BITMAP_WORDS(LOG_SIZE); i++)
		assert_int_equal(bm[i], 0);
	/* Re-protected: the next write faults again, through the fast path. */
	before = f->nev;
	wr(f, log_gpa(3), 4, 3);
	assert_int_equal(f->nev, before + 1);
	assert_int_equal(last_ev(f)->action, MV_X86_ACT_FAST);
	assert_int_equal(last_ev(f)->exit_qual, Q_WRITE | Q_R | Q_X | Q_GVA_VALID | Q_GVA_TRANSLATED);
	wr(f, log_gpa(3), 4, 4);
	assert_int_equal(f->nev, before + 1);
	get_log(f, bm);
	assert_int_equal(bm[0], 1ull << 3);
	assert_int_equal(bm[1], 0);
	get_log(f, bm);
	assert_int_equal(bm[0], 0);
	/* Logging off: writes are no longer logged (nor faulted after the next fault). */
	set_slot(f, 1, LOG_GPA, LOG_SIZE, f->log.base, 0);
	wr(f, log_gpa(9), 4, 1);
	assert_int_equal(mv_x86_vm_get_dirty_log(f->vm, 1, bm), -ENOENT);
}

static void test_manual_protect(void **state)
{
	fx *f = *state;
	uint64_t bm[HV_DIRTY_BITMAP_WORDS(LOG_SIZE)], clr = 1ull << 5;
	unsigned before;

	assert_int_equal(mv_x86_vm_enable_manual_dirty_protect(f->vm, HV_DIRTY_PROTECT_INIT_SET),
			 -EINVAL);
	assert_int_equal(mv_x86_vm_enable_manual_dirty_protect(f->vm, HV_DIRTY_PROTECT_ENABLE), 0);
	set_slot(f, 1, LOG_GPA, LOG_SIZE, f->log.base, HV_MEM_LOG_DIRTY_PAGES);
	wr(f, log_gpa(5), 4, 1);
	wr(f, log_gpa(6), 4, 1);
	get_log(f, bm);
	assert_int_equal(bm[0], (1ull << 5) | (1ull << 6));
	/* Nothing was cleared or protected by the get. */
	get_log(f, bm);
	assert_int_equal(bm[0], (1ull << 5) | (1ull << 6));
	before = f->nev;
	wr(f, log_gpa(5), 4, 2);
	assert_int_equal(f->nev, before);
	/* Clear page 5: its bit goes and it is protected again; page 6 stays writable. */
	assert_int_equal(mv_x86_vm_clear_dirty_log(f->vm, 1, 0, 64, &clr), 0);
	get_log(f, bm);
	assert_int_equal(bm[0], 1ull << 6);
	wr(f, log_gpa(6), 4, 2);
	assert_int_equal(f->nev, before);
	wr(f, log_gpa(5), 4, 3);
	assert_int_equal(f->nev, before + 1);
	assert_int_equal(last_ev(f)->action, MV_X86_ACT_FAST);
	get_log(f, bm);
	assert_int_equal(bm[0], (1ull << 5) | (1ull << 6));
}

static void test_init_set(void **state)
{
	fx *f = *state;
	uint64_t bm[HV_DIRTY_BITMAP_WORDS(LOG_SIZE)], clr = ~0ull;

	assert_int_equal(mv_x86_vm_enable_manual_dirty_protect(f->vm, HV_DIRTY_PROTECT_ENABLE |
									       HV_DIRTY_PROTECT_INIT_SET),
			 0);
	set_slot(f, 1, LOG_GPA, LOG_SIZE, f->log.base, 0);
	wr(f, log_gpa(1), 4, 1);
	set_slot(f, 1, LOG_GPA, LOG_SIZE, f->log.base, HV_MEM_LOG_DIRTY_PAGES);
	get_log(f, bm);
	for (unsigned i = 0; i < HV_DIRTY_BITMAP_WORDS(LOG_SIZE); i++)
		assert_int_equal(bm[i], ~0ull);
	/* Not protected at enable time; a clear protects. */
	assert_true(ept_leaf(f, log_gpa(1), NULL) & MV_EPT_W);
	assert_int_equal(mv_x86_vm_clear_dirty_log(f->vm, 1, 0, 64, &clr), 0);
	assert_false(ept_leaf(f, log_gpa(1), NULL) & MV_EPT_W);
	get_log(f, bm);
	assert_int_equal(bm[0], 0);
	assert_int_equal(bm[1], ~0ull);
}

/* ------------------------------------------------------------------ */
/* Memslot changes, notifiers, ageing                                   */

static void test_memslot_delete(void **state)
{
	fx *f = *state;
	mv_x86_outcome out;
	char why[160];

	set_slot(f, 1, LOG_GPA, LOG_SIZE, f->log.base, 0);
	mv_tlb_stats st;

	wr(f, log_gpa(2), 4, 0x1234);
	assert_int_equal(rd(f, log_gpa(2), 4), 0x1234);
	st = tlb_stats(f);
	set_slot(f, 1, LOG_GPA, 0, f->log.base, 0);
	assert_int_equal(ept_leaf(f, log_gpa(2), NULL), 0);
	assert_int_equal(tlb_stats(f).flushed_entries, st.flushed_entries + 1);
	/* Not from the TLB: the GPA is a hole now. */
	out = do_access(f, MV_X86_READ, log_gpa(2), 4, 0, 0);
	assert_int_equal(out.result, MV_X86_EXIT);
	assert_int_equal(out.exit->reason, HV_EXIT_MMIO);
	assert_int_equal(last_ev(f)->action, MV_X86_ACT_MMIO_SPTE);
	/* Moved elsewhere: the old range is gone, the new one faults in. */
	set_slot(f, 1, LOG_GPA + LOG_SIZE, LOG_SIZE, f->log.base, 0);
	assert_int_equal(rd(f, LOG_GPA + LOG_SIZE + 2 * SZ_4K, 4), 0x1234);
	set_slot(f, 1, LOG_GPA + 2 * LOG_SIZE, LOG_SIZE, f->log.base, 0);
	assert_int_equal(ept_leaf(f, LOG_GPA + LOG_SIZE + 2 * SZ_4K, NULL), 0);
	assert_int_equal(rd(f, LOG_GPA + 2 * LOG_SIZE + 2 * SZ_4K, 4), 0x1234);
	if (!x86_rmap_check(f->vm, why, sizeof(why)))
		fail_msg("%s", why);
}

/* mmu_invalidate_retry_gfn for one gfn, as the fault path asks it. */
static bool x86_invalidate_retry(mv_x86_vm *vm, uint64_t seq, uint64_t gfn)
{
	return soft_notifier_retry(&vm->kvm, seq, gfn, gfn + 1);
}

static void test_notifier(void **state)
{
	fx *f = *state;
	uint64_t gpa = RAM_GPA + 0x7000, seq = mv_x86_vm_invalidate_seq(f->vm);
	unsigned before;
	char why[160];

	wr(f, gpa, 4, 5);
	assert_int_not_equal(ept_leaf(f, gpa, NULL), 0);
	mv_x86_vm_invalidate_range_start(f->vm, ram_hva(f, gpa), ram_hva(f, gpa) + SZ_4K);
	assert_int_equal(ept_leaf(f, gpa, NULL), 0);
	assert_true(x86_invalidate_retry(f->vm, seq, gpa >> 12));
	assert_false(x86_invalidate_retry(f->vm, seq, (gpa >> 12) + 1));
	mv_x86_vm_invalidate_range_end(f->vm, ram_hva(f, gpa), ram_hva(f, gpa) + SZ_4K);
	assert_int_equal(mv_x86_vm_invalidate_seq(f->vm), seq + 1);
	assert_true(x86_invalidate_retry(f->vm, seq, (gpa >> 12) + 1));
	assert_false(x86_invalidate_retry(f->vm, seq + 1, gpa >> 12));
	before = f->nev;
	assert_int_equal(rd(f, gpa, 4), 5);
	assert_int_equal(f->nev, before + 1);
	assert_int_equal(last_ev(f)->action, MV_X86_ACT_MAPPED);
	if (!x86_rmap_check(f->vm, why, sizeof(why)))
		fail_msg("%s", why);
}

static void test_young(void **state)
{
	fx *f = *state;
	uint64_t gpa = RAM_GPA + 0x9000, hva = ram_hva(f, gpa);

	assert_false(mv_x86_vm_test_young(f->vm, hva, hva + SZ_4K));
	rd(f, gpa, 4);
	assert_true(mv_x86_vm_test_young(f->vm, hva, hva + SZ_4K));
	assert_true(mv_x86_vm_clear_young(f->vm, hva, hva + SZ_4K));
	assert_false(mv_x86_vm_test_young(f->vm, hva, hva + SZ_4K));
	/* The CPU sets A again on its next use (the clear flushed the TLB). */
	rd(f, gpa, 4);
	assert_true(mv_x86_vm_test_young(f->vm, hva, hva + SZ_4K));
	assert_false(mv_x86_vm_test_young(f->vm, hva + SZ_4K, hva + 2 * SZ_4K));
}

/* An invalidation between every fault's sequence read and its install: -EAGAIN after 64 tries. */
static void invalidate_hook(void *arg, mv_x86_vcpu *vcpu, uint64_t gpa)
{
	fx *f = arg;
	uint64_t hva = ram_hva(f, gpa & ~(SZ_4K - 1));

	(void)vcpu;
	mv_x86_vm_invalidate_range_start(f->vm, hva, hva + SZ_4K);
	mv_x86_vm_invalidate_range_end(f->vm, hva, hva + SZ_4K);
}

static void test_retry_bound(void **state)
{
	fx *f = *state;
	mv_x86_access a = { .acc = MV_X86_READ, .gva = RAM_GPA + 0xa000, .size = 4 };
	mv_x86_outcome out;

	mv_x86_vm_set_fault_hook(f->vm, invalidate_hook, f);
	assert_int_equal(mv_x86_vcpu_access(f->vcpu, &a, &out), -EAGAIN);
	assert_int_equal(f->nev, 64);
	assert_int_equal(last_ev(f)->action, MV_X86_ACT_RETRY);
	mv_x86_vm_set_fault_hook(f->vm, NULL, NULL);
	assert_int_equal(rd(f, a.gva, 4), 0);
}

static void test_stats(void **state)
{
	fx *f = *state;
	mv_x86_vm_stats st;

	rd(f, RAM_GPA, 4);
	rd(f, RAM_GPA + SZ_4K, 4);
	do_access(f, MV_X86_READ, MMIO_GPA, 4, 0, 0);
	mv_x86_vm_get_stats(f->vm, &st);
	assert_int_equal(st.faults, 3);
	assert_int_equal(st.mapped[3], 2);
	assert_int_equal(st.mmio_sptes, 1);
	assert_int_equal(st.eager_splits, 0);
}


/* ------------------------------------------------------------------ */
/* Huge pages when logging starts                                       */

#define HUGE_GPA (RAM_GPA + 0x400000)   /* a 2 MiB region of slot 0 declared hugetlb-backed */
#define HUGE_PAGE ((HUGE_GPA - RAM_GPA) >> 12)
#define RAM_WORDS HV_DIRTY_BITMAP_WORDS(RAM_SIZE)

/* A VM whose slot 0 has one 2 MiB region mapped by a 2 MiB leaf. */
static fx *fx_huge(const mv_x86_vm_config *cfg)
{
	fx *f = fx_new(cfg);
	int level;

	assert_int_equal(mv_soft_host_declare(mv_x86_vm_host(f->vm), ram_hva(f, HUGE_GPA), SZ_2M,
					      MV_HOST_BACKING_HUGETLB, SZ_2M),
			 0);
	rd(f, HUGE_GPA + 0x3000, 4);
	assert_int_equal(last_ev(f)->level, 2);
	assert_true(ept_leaf(f, HUGE_GPA, &level) & MV_EPT_W);
	assert_int_equal(level, 2);
	return f;
}

static void check_rmap(fx *f)
{
	char why[160];

	if (!x86_rmap_check(f->vm, why, sizeof(why)))
		fail_msg("%s", why);
}

/* The slot's bitmap has exactly page @page set. */
static void check_log_exactly(fx *f, uint64_t page)
{
	uint64_t bm[RAM_WORDS];

	assert_int_equal(mv_x86_vm_get_dirty_log(f->vm, 0, bm), 0);
	for (unsigned i = 0; i < RAM_WORDS; i++)
		assert_int_equal(bm[i], i == page / 64 ? 1ull << (page % 64) : 0);
}

static void test_eager_split(void **state)
{
	fx *f = fx_huge(NULL);
	mv_x86_vm_stats st;
	int level;

	(void)state;
	set_slot(f, 0, RAM_GPA, RAM_SIZE, f->ram.base, HV_MEM_LOG_DIRTY_PAGES);
	mv_x86_vm_get_stats(f->vm, &st);
	assert_int_equal(st.eager_splits, 1);
	for (uint64_t off = 0; off < SZ_2M; off += 0x7000) {
		mv_pte spte = ept_leaf(f, HUGE_GPA + off, &level);

		assert_int_equal(level, 3);
		assert_int_equal(spte & MV_EPT_ADDR_MASK, ram_hva(f, HUGE_GPA + off));
		assert_false(spte & MV_EPT_W);
	}
	check_rmap(f);
	wr(f, HUGE_GPA + 0x5000, 4, 1);
	assert_int_equal(last_ev(f)->action, MV_X86_ACT_FAST);
	check_log_exactly(f, HUGE_PAGE + 5);
	fx_free(f);
}

static void test_lazy_split(void **state)
{
	mv_x86_vm_config cfg = { .lazy_split = true };
	fx *f = fx_huge(&cfg);
	mv_x86_vm_stats st;
	int level;

	(void)state;
	set_slot(f, 0, RAM_GPA, RAM_SIZE, f->ram.base, HV_MEM_LOG_DIRTY_PAGES);
	mv_x86_vm_get_stats(f->vm, &st);
	assert_int_equal(st.eager_splits, 0);
	assert_false(ept_leaf(f, HUGE_GPA, &level) & MV_EPT_W);
	assert_int_equal(level, 2);
	/* Reads still go through the huge page. */
	assert_int_equal(rd(f, HUGE_GPA + 0x3000, 4), 0);
	/* The first write maps a 4 KiB page (the fault path splits), and only that page is dirty. */
	wr(f, HUGE_GPA + 0x5000, 4, 1);
	assert_int_equal(last_ev(f)->action, MV_X86_ACT_MAPPED);
	assert_int_equal(last_ev(f)->level, 3);
	assert_true(ept_leaf(f, HUGE_GPA + 0x5000, &level) & MV_EPT_W);
	assert_int_equal(level, 3);
	assert_false(ept_leaf(f, HUGE_GPA + 0x6000, &level) & MV_EPT_W);
	check_rmap(f);
	check_log_exactly(f, HUGE_PAGE + 5);
	fx_free(f);
}

/* INITIALLY_SET: nothing at enable; a clear splits the masked range (eager) or protects the huge page. */
static void check_init_set_split(bool lazy)
{
	mv_x86_vm_config cfg = { .lazy_split = lazy };
	fx *f = fx_huge(&cfg);
	uint64_t mask = 1ull << 3;
	mv_x86_vm_stats st;
	int level;

	assert_int_equal(mv_x86_vm_enable_manual_dirty_protect(f->vm, HV_DIRTY_PROTECT_ENABLE |
									       HV_DIRTY_PROTECT_INIT_SET),
			 0);
	set_slot(f, 0, RAM_GPA, RAM_SIZE, f->ram.base, HV_MEM_LOG_DIRTY_PAGES);
	assert_true(ept_leaf(f, HUGE_GPA, &level) & MV_EPT_W);
	assert_int_equal(level, 2);
	assert_int_equal(mv_x86_vm_clear_dirty_log(f->vm, 0, HUGE_PAGE, 64, &mask), 0);
	mv_x86_vm_get_stats(f->vm, &st);
	assert_int_equal(st.eager_splits, lazy ? 0 : 1);
	assert_false(ept_leaf(f, HUGE_GPA + 3 * SZ_4K, &level) & MV_EPT_W);
	assert_int_equal(level, lazy ? 2 : 3);
	/* Eager: the split pages outside the mask keep W. */
	assert_int_equal(!!(ept_leaf(f, HUGE_GPA + 4 * SZ_4K, &level) & MV_EPT_W), !lazy);
	check_rmap(f);
	fx_free(f);
}

static void test_init_set_split(void **state)
{
	(void)state;
	check_init_set_split(false);
	check_init_set_split(true);
}

/* Every allocation of VM, slot and vCPU creation failing in turn: -ENOMEM, nothing leaked. */
static void test_alloc_failures(void **state)
{
	tu_region r;
	unsigned long n;
	bool done = false;

	(void)state;
	tu_region_map(&r, SZ_2M, SZ_4K, PROT_READ | PROT_WRITE);
	for (n = 1; !done && n < 200; n++) {
		tu_failing_alloc fa;
		mv_x86_vm_config cfg = { .alloc = &fa.alloc };
		hv_memslot m = { .slot = 0, .flags = HV_MEM_LOG_DIRTY_PAGES, .gpa = RAM_GPA, .size = SZ_2M,
				 .hva = r.base };
		mv_error err = { 0 };
		mv_x86_vcpu *v = NULL;
		mv_x86_vm *vm;
		int rc;

		tu_failing_alloc_init(&fa, n, true);
		rc = mv_x86_vm_new(&cfg, &vm, &err);
		if (rc) {
			assert_int_equal(rc, -ENOMEM);
			continue;
		}
		rc = mv_x86_vm_enable_dirty_ring(vm, 256);
		assert_int_equal(rc, 0);
		rc = mv_x86_vm_set_memslot(vm, &m);
		if (!rc)
			rc = mv_x86_vcpu_new(vm, 0, &v, &err);
		if (rc)
			assert_int_equal(rc, -ENOMEM);
		else
			done = true;
		mv_x86_vcpu_free(v);
		mv_x86_vm_free(vm);
	}
	assert_true(done);
	tu_region_unmap(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vm_config),
		cmocka_unit_test(test_alloc_failures),
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
		T(test_first_touch),
		T(test_values),
		T(test_page_crossing),
		T(test_tlb_flush_on_paging_change),
		T(test_malformed),
		T(test_mmio_exit),
		T(test_mmio_crossing),
		T(test_mmio_bus),
		T(test_pio),
		T(test_readonly_slot),
		T(test_guest_paging),
		cmocka_unit_test(test_table_violation),
		cmocka_unit_test(test_ad_write_violation),
		T(test_guest_faults),
		T(test_table_in_mmio),
		cmocka_unit_test(test_maxphyaddr),
		T(test_kick),
		cmocka_unit_test(test_dirty_ring_full),
		T(test_ring_after_vcpu),
		T(test_dirty_log),
		T(test_manual_protect),
		T(test_init_set),
		T(test_memslot_delete),
		T(test_notifier),
		T(test_young),
		T(test_retry_bound),
		T(test_stats),
#undef T
		cmocka_unit_test(test_eager_split),
		cmocka_unit_test(test_lazy_split),
		cmocka_unit_test(test_init_set_split),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
