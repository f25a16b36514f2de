/*
 * Running `memvirt mmu run` scripts: the soft arm64 VM and its one vCPU,
 * host RAM, memslots, pre-installed stage-2 mappings, in-kernel devices,
 * registers, guest memory and stage-1 tables, then the accesses, whose
 * stage-2 aborts come back through the vCPU's trace hook.
 */
#define _GNU_SOURCE     /* strerrorname_np */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "cli.h"
#include "mmu_exec.h"
#include "mmu_run.h"

#ifndef MAP_HUGE_SHIFT
#define MAP_HUGE_SHIFT 26
#endif

#define THP_SIZE (2u << 20)

int mmu_fail(mmu_run *r, int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->msg, sizeof(r->msg), fmt, ap);
	va_end(ap);
	return status;
}

void *mmu_guest_ptr(void *run, uint64_t ipa, uint64_t len)
{
	mmu_run *r = run;

	for (size_t i = 0; i < r->nr_slots; i++) {
		const mmu_slot *s = &r->slots[i];

		if (ipa >= s->gpa && len <= s->size && ipa - s->gpa <= s->size - len)
			return s->hva + (ipa - s->gpa);
	}
	return NULL;
}

uint64_t mmu_le_load(const void *p, unsigned len)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < len && i < 8; i++)
		v |= (uint64_t)((const uint8_t *)p)[i] << (8 * i);
	return v;
}

void mmu_le_store(void *p, unsigned len, uint64_t v)
{
	for (unsigned i = 0; i < len; i++)
		((uint8_t *)p)[i] = i < 8 ? (uint8_t)(v >> (8 * i)) : 0;
}

const char *mmu_errno_name(int err)
{
	const char *name = strerrorname_np(-err);

	return name ? name : "an unknown errno";
}

const char *mmu_size_name(uint64_t size, char buf[24])
{
	static const char units[] = "KMGT";
	int u = -1;

	while (u < 3 && size && !(size & 1023)) {
		size >>= 10;
		u++;
	}
	if (u < 0)
		snprintf(buf, 24, "%llu bytes", (unsigned long long)size);
	else
		snprintf(buf, 24, "%llu%c", (unsigned long long)size, units[u]);
	return buf;
}

/* ---- the VM ---- */

static void on_abort(void *arg, const mv_a64_abort_event *ev)
{
	mmu_run *r = arg;

	r->last.nr_aborts++;
	r->last.ev = *ev;
	r->aborts++;
	mmu_report_abort(r, ev);
}

/* Create the VM and its vCPU (at EL1, every register 0) on the first line that needs them. */
static int need_vm(mmu_run *r)
{
	mv_a64_vm_config cfg = { .vtcr = r->vtcr };
	mv_a64_regs regs;
	mv_error err = { 0 };

	if (r->vm)
		return 0;
	if (mv_a64_vm_new(&cfg, &r->vm, &err))
		return mmu_fail(r, err.code == -ENOMEM ? CLI_FAIL : CLI_USAGE,
				"cannot create the VM with VTCR_EL2 0x%llx: %s",
				(unsigned long long)r->vtcr, err.msg);
	if (mv_a64_vcpu_new(r->vm, 0, &r->vcpu, &err))
		return mmu_fail(r, CLI_FAIL, "%s", err.msg);
	mv_a64_vcpu_set_trace(r->vcpu, on_abort, r);
	mv_a64_vcpu_get_regs(r->vcpu, &regs);
	regs.el = 1;
	mv_a64_vcpu_set_regs(r->vcpu, &regs);
	return 0;
}

/* ---- host memory and memslots ---- */

static int map_ram(mmu_run *r, mmu_ram *ram, const mmu_line *l)
{
	int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
	uint64_t align = l->ram.backing == MMU_RAM_THP ? THP_SIZE : 0;
	char sz[24];

	/* Hugetlb pages are reserved at mmap time (no MAP_NORESERVE): none free fails
	 * here rather than with SIGBUS at the first touch. */
	if (l->ram.backing == MMU_RAM_HUGETLB)
		flags = (flags & ~MAP_NORESERVE) | MAP_HUGETLB |
			(__builtin_ctzll(l->ram.page_size) << MAP_HUGE_SHIFT);
	/* THP needs 2 MiB-aligned host memory: map one PMD more and round up. */
	ram->map_len = l->ram.size + align;
	ram->map = mmap(NULL, ram->map_len, PROT_READ | PROT_WRITE, flags, -1, 0);
	if (ram->map == MAP_FAILED) {
		ram->map = NULL;
		if (l->ram.backing == MMU_RAM_HUGETLB)
			return mmu_fail(r, CLI_FAIL, "ram %s: cannot map %s hugetlb pages (%s); reserve "
					"some in /proc/sys/vm/nr_hugepages or the hugepages-* sysfs "
					"directories", l->ram.name, mmu_size_name(l->ram.page_size, sz),
					strerror(errno));
		return mmu_fail(r, CLI_FAIL, "ram %s: cannot map %s of memory (%s)", l->ram.name,
				mmu_size_name(l->ram.size, sz), strerror(errno));
	}
	ram->hva = ram->map;
	if (align)
		ram->hva = (uint8_t *)(((uintptr_t)ram->map + align - 1) & ~(uintptr_t)(align - 1));
	ram->size = l->ram.size;
	ram->name = l->ram.name;
	if (l->ram.backing == MMU_RAM_THP && madvise(ram->hva, ram->size, MADV_HUGEPAGE))
		return mmu_fail(r, CLI_FAIL, "ram %s: madvise(MADV_HUGEPAGE) fails (%s): this kernel "
				"has no transparent huge pages", l->ram.name, strerror(errno));
	return 0;
}

static int do_ram(mmu_run *r, const mmu_line *l)
{
	static const mv_host_backing kinds[] = {
		[MMU_RAM_PAGES] = MV_HOST_BACKING_PAGE,
		[MMU_RAM_THP] = MV_HOST_BACKING_THP,
		[MMU_RAM_HUGETLB] = MV_HOST_BACKING_HUGETLB,
	};
	mmu_ram *ram = &r->rams[r->nr_rams];
	int ret;

	if ((ret = map_ram(r, ram, l))) {
		if (ram->map)
			munmap(ram->map, ram->map_len);
		return ret;
	}
	r->nr_rams++;
	if (l->ram.backing == MMU_RAM_PAGES)
		return 0;
	ret = mv_soft_host_declare(mv_a64_vm_host(r->vm), (uintptr_t)ram->hva, ram->size,
				   kinds[l->ram.backing], l->ram.page_size);
	return ret ? mmu_fail(r, CLI_FAIL, "ram %s: the host page oracle refuses it (%s)",
			      l->ram.name, strerror(-ret)) : 0;
}

static const mmu_ram *find_ram(const mmu_run *r, const char *name)
{
	for (size_t i = 0; i < r->nr_rams; i++)
		if (!strcmp(r->rams[i].name, name))
			return &r->rams[i];
	return NULL;
}

static int do_slot(mmu_run *r, const mmu_line *l)
{
	const mmu_ram *ram = find_ram(r, l->slot.ram);
	mmu_slot *s = &r->slots[r->nr_slots];
	hv_memslot m = {
		.slot = HV_SLOT(0, l->slot.id),
		.flags = l->slot.flags,
		.gpa = l->slot.gpa,
		.size = l->slot.size,
		.hva = ram->hva + l->slot.offset,
	};
	int ret = mv_a64_vm_set_memslot(r->vm, &m);

	if (ret)
		return mmu_fail(r, CLI_USAGE, "slot %u: KVM_SET_USER_MEMORY_REGION fails with %s (%s)",
				l->slot.id, mmu_errno_name(ret), strerror(-ret));
	/* A slot id given again replaces (moves / changes) that slot. */
	for (size_t i = 0; i < r->nr_slots; i++)
		if (r->slots[i].id == l->slot.id)
			s = &r->slots[i];
	if (s == &r->slots[r->nr_slots])
		r->nr_slots++;
	*s = (mmu_slot){ .id = l->slot.id, .gpa = m.gpa, .size = m.size, .hva = m.hva };
	return 0;
}

/* ---- stage 2 ---- */

/* The stage-2 level whose entries map @block bytes (1..3), or 0. */
static int s2_level(const mmu_run *r, uint64_t block)
{
	const mv_s2_config *cfg = mv_a64_vm_s2_config(r->vm);
	unsigned g = cfg->granule_shift;

	for (int level = 1; level <= 3; level++)
		if (block == 1ull << (g + (g - 3) * (3 - level)))
			return level;
	return 0;
}

static int do_s2map(mmu_run *r, const mmu_line *l)
{
	uint64_t attr = ((l->s2map.device ? MV_S2_MEMATTR_DEVICE_nGnRE : MV_S2_MEMATTR_NORMAL_WB)
			 << MV_S2_MEMATTR_SHIFT) |
			((uint64_t)l->s2map.ap << MV_S2_S2AP_SHIFT) | MV_S2_SH_INNER |
			(l->s2map.af ? MV_S2_AF : 0) | (l->s2map.xn ? MV_S2_XN : 0);
	int level = s2_level(r, l->s2map.block);
	char sz[24];

	if (!level)
		return mmu_fail(r, CLI_USAGE, "s2map: no stage-2 level maps %s blocks with this "
				"VTCR_EL2's granule", mmu_size_name(l->s2map.block, sz));
	for (uint64_t k = 0; k < l->s2map.count; k++) {
		uint64_t ipa = l->s2map.ipa + k * l->s2map.block;
		void *hva = mmu_guest_ptr(r, ipa, l->s2map.block);
		mv_error err = { 0 };

		if (!hva)
			return mmu_fail(r, CLI_USAGE, "s2map: no memslot holds all of [0x%llx, +%s)",
					(unsigned long long)ipa, mmu_size_name(l->s2map.block, sz));
		if (mv_a64_vm_s2_install(r->vm, ipa, l->s2map.block, (uintptr_t)hva, attr, level, &err))
			return mmu_fail(r, err.code == -ENOMEM ? CLI_FAIL : CLI_USAGE, "s2map: %s",
					err.msg);
	}
	return 0;
}

/* ---- in-kernel devices ---- */

static void dev_record(mmu_iodev *d, uint64_t addr, unsigned len, bool is_write, uint64_t data)
{
	*d->last = (mmu_dev_access){ .seen = true, .is_write = is_write, .addr = addr,
				     .len = len, .data = data };
}

static int dev_read(void *opaque, uint64_t addr, unsigned len, void *data)
{
	mmu_iodev *d = opaque;

	mmu_le_store(data, len, d->value);
	dev_record(d, addr, len, false, mmu_le_load(data, len));
	return 0;
}

static int dev_write(void *opaque, uint64_t addr, unsigned len, const void *data)
{
	dev_record(opaque, addr, len, true, mmu_le_load(data, len));
	return 0;
}

static const mv_iobus_dev_ops dev_ops = { .read = dev_read, .write = dev_write };

static int do_iodev(mmu_run *r, const mmu_line *l)
{
	mmu_iodev *d = &r->devs[r->nr_devs];
	int ret;

	*d = (mmu_iodev){ .value = l->iodev.value, .last = &r->dev_access };
	ret = mv_iobus_register(mv_a64_vm_iobus(r->vm), l->iodev.addr, l->iodev.size, &dev_ops, d);
	if (ret == -EEXIST)
		return mmu_fail(r, CLI_USAGE, "iodev: [0x%llx, 0x%llx) overlaps another device",
				(unsigned long long)l->iodev.addr,
				(unsigned long long)(l->iodev.addr + l->iodev.size));
	if (ret)
		return mmu_fail(r, CLI_FAIL, "iodev: cannot register it (%s)", strerror(-ret));
	r->nr_devs++;
	return 0;
}

/* ---- registers and guest memory ---- */

static int do_set(mmu_run *r, const mmu_line *l)
{
	const mmu_reg *reg = &l->set.reg;
	mv_a64_regs regs;
	mv_a64_sysregs sys;

	if (reg->kind == MMU_REG_SYS) {
		mv_a64_vcpu_get_sysregs(r->vcpu, &sys);
		memcpy((char *)&sys + reg->num, &l->set.value, sizeof(uint64_t));
		mv_a64_vcpu_set_sysregs(r->vcpu, &sys);
		return 0;
	}
	mv_a64_vcpu_get_regs(r->vcpu, &regs);
	switch (reg->kind) {
	case MMU_REG_X: regs.x[reg->num] = l->set.value; break;
	case MMU_REG_W: regs.x[reg->num] = (uint32_t)l->set.value; break;
	case MMU_REG_SP: regs.sp = l->set.value; break;
	case MMU_REG_PC: regs.pc = l->set.value; break;
	default: regs.el = (uint8_t)l->set.value; break;
	}
	mv_a64_vcpu_set_regs(r->vcpu, &regs);
	return 0;
}

static int do_write(mmu_run *r, const mmu_line *l)
{
	uint8_t *p = mmu_guest_ptr(r, l->write.ipa, l->write.width);

	if (!p)
		return mmu_fail(r, CLI_USAGE, "write%u: no memslot holds IPA 0x%llx", 8 * l->write.width,
				(unsigned long long)l->write.ipa);
	mmu_le_store(p, l->write.width, l->write.value);
	return 0;
}

/* ---- stage 1 ---- */

static int do_s1pool(mmu_run *r, const mmu_line *l)
{
	mv_a64_sysregs sys;

	if (!mmu_guest_ptr(r, l->s1pool.ipa, l->s1pool.size))
		return mmu_fail(r, CLI_USAGE, "s1pool: no memslot holds all of [0x%llx, 0x%llx)",
				(unsigned long long)l->s1pool.ipa,
				(unsigned long long)(l->s1pool.ipa + l->s1pool.size));
	r->pool = (mmu_s1_pool){ .ipa = l->s1pool.ipa, .size = l->s1pool.size };
	mv_a64_vcpu_get_sysregs(r->vcpu, &sys);
	if (!sys.tcr_el1) {
		sys.tcr_el1 = mmu_s1_default_tcr(mv_a64_vm_s2_config(r->vm)->ia_bits);
		mv_a64_vcpu_set_sysregs(r->vcpu, &sys);
	}
	return 0;
}

static int do_s1map(mmu_run *r, const mmu_line *l)
{
	mv_a64_sysregs sys;
	mv_error err = { 0 };

	mv_a64_vcpu_get_sysregs(r->vcpu, &sys);
	if (mmu_s1_map(&r->pool, &sys, l, mmu_guest_ptr, r, &err))
		return mmu_fail(r, CLI_USAGE, "s1map: %s", err.msg);
	/* The tables changed: the guest would TLBI VMALLE1 here. */
	mv_a64_vcpu_set_sysregs(r->vcpu, &sys);
	mv_tlb_flush_all(mv_a64_vcpu_tlb(r->vcpu));
	return 0;
}

bool mmu_guest_read(mmu_run *r, uint64_t ipa, unsigned width, uint64_t *value)
{
	const uint8_t *p = mmu_guest_ptr(r, ipa, width);

	if (!p)
		return false;
	*value = mmu_le_load(p, width);
	return true;
}

void mmu_s2_leaf(mmu_run *r, uint64_t ipa, uint64_t *size, uint64_t *base, mv_pte *pte)
{
	const mv_s2_config *cfg = mv_a64_vm_s2_config(r->vm);
	unsigned g = cfg->granule_shift;
	int level = 0;

	*size = 0;
	if (mv_a64_vm_s2_leaf(r->vm, ipa, pte, &level) != MV_PGT_OK || !(*pte & MV_S2_VALID))
		return;
	*size = 1ull << (g + (g - 3) * (3 - level));
	*base = ipa & ~(*size - 1);
}

/* ---- accesses ---- */

/* How mv_a64_vcpu_exec's answer is named in the output and by `expect result`. */
static mmu_result classify(int ret, const mv_a64_outcome *o)
{
	static const mmu_result by_result[] = {
		[MV_A64_DONE] = MMU_RES_DONE,
		[MV_A64_GUEST_FAULT] = MMU_RES_GUEST_FAULT,
		[MV_A64_INJECTED] = MMU_RES_INJECTED,
		[MV_A64_SKIPPED] = MMU_RES_SKIPPED,
	};

	if (ret)
		return MMU_RES_FAILED;
	if (o->result != MV_A64_EXIT)
		return by_result[o->result];
	switch (o->exit->reason) {
	case HV_EXIT_MMIO: return MMU_RES_MMIO;
	case HV_EXIT_ARM_NISV: return MMU_RES_NISV;
	case HV_EXIT_INTERNAL_ERROR: return MMU_RES_INTERNAL;
	default: return MMU_RES_EXIT;
	}
}

/* User space's side of an MMIO exit: a read gets the mmio-reply value. */
static uint64_t complete_mmio(mmu_run *r, hv_exit *exit)
{
	uint64_t value = 0;

	if (!exit->mmio.is_write)
		mmu_le_store(exit->mmio.data, exit->mmio.len, r->mmio_reply);
	mv_a64_vcpu_complete_mmio(r->vcpu, &value);
	return value;
}

static int do_access(mmu_run *r, const mmu_line *l)
{
	mv_a64_outcome o = { 0 };
	uint64_t value = 0;
	int ret;

	r->last = (mmu_last){ .ran = true };
	r->dev_access.seen = false;
	r->accesses++;
	mmu_report_access(r, l);
	ret = mv_a64_vcpu_exec(r->vcpu, &l->insn, &o);
	r->last.result = classify(ret, &o);
	if (r->last.result == MMU_RES_MMIO)
		value = complete_mmio(r, o.exit);
	mmu_report_outcome(r, &l->insn, ret, &o, value);
	return 0;
}

/* ---- the loop ---- */

static int run_line(mmu_run *r, const mmu_line *l)
{
	int ret;

	r->l = l;
	if (l->op == MMU_VTCR) {
		r->vtcr = l->vtcr;
		return need_vm(r);
	}
	if (l->op == MMU_ECHO) {
		fprintf(r->out, "%s\n", l->echo);
		return 0;
	}
	if (l->op == MMU_MMIO_REPLY) {
		r->mmio_reply = l->mmio_reply;
		return 0;
	}
	if ((ret = need_vm(r)))
		return ret;
	switch (l->op) {
	case MMU_RAM: return do_ram(r, l);
	case MMU_SLOT: return do_slot(r, l);
	case MMU_S2MAP: return do_s2map(r, l);
	case MMU_HANDLER: mv_a64_vm_set_handler(r->vm, l->on); return 0;
	case MMU_NISV: mv_a64_vm_enable_nisv_to_user(r->vm, l->on); return 0;
	case MMU_IODEV: return do_iodev(r, l);
	case MMU_SET: return do_set(r, l);
	case MMU_WRITE: return do_write(r, l);
	case MMU_S1POOL: return do_s1pool(r, l);
	case MMU_S1MAP: return do_s1map(r, l);
	case MMU_TLBI: mv_tlb_flush_all(mv_a64_vcpu_tlb(r->vcpu)); return 0;
	case MMU_SHOW_S2: mmu_report_leaf(r, l->show_ipa); return 0;
	case MMU_ACCESS: return do_access(r, l);
	default: return mmu_expect(r, l);
	}
}

static void run_free(mmu_run *r)
{
	mv_a64_vcpu_free(r->vcpu);
	mv_a64_vm_free(r->vm);
	for (size_t i = 0; i < r->nr_rams; i++)
		munmap(r->rams[i].map, r->rams[i].map_len);
	free(r->rams);
	free(r->slots);
	free(r->devs);
}

int mmu_script_run(const mmu_script *s, FILE *out)
{
	mmu_run r = { .s = s, .out = out };
	int status = CLI_OK;

	r.rams = calloc(s->nr + 1, sizeof(*r.rams));
	r.slots = calloc(s->nr + 1, sizeof(*r.slots));
	r.devs = calloc(s->nr + 1, sizeof(*r.devs));
	if (!r.rams || !r.slots || !r.devs) {
		run_free(&r);
		return cli_error(CLI_FAIL, "out of memory");
	}
	for (size_t i = 0; i < s->nr; i++) {
		int ret = run_line(&r, &s->lines[i]);

		/* A failed expect was reported; the script goes on. */
		if (ret == CLI_FAIL && s->lines[i].op == MMU_EXPECT) {
			status = CLI_FAIL;
		} else if (ret) {
			status = cli_error(ret, "%s:%u: %s", s->name, s->lines[i].lineno, r.msg);
			run_free(&r);
			return status;
		}
	}
	fprintf(out, "end: %u accesses, %u stage-2 aborts, %u of %u expectations met\n",
		r.accesses, r.aborts, r.expects - r.mismatches, r.expects);
	run_free(&r);
	return status;
}
