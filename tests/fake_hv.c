/* The fake accelerator of tests/fake_hv.h. */
#include "fake_hv.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fake_slot {
	bool used;
	hv_memslot m;
	uint64_t *bitmap;     /* while HV_MEM_LOG_DIRTY_PAGES */
} fake_slot;

typedef struct fake_vcpu {
	hv_vcpu vcpu;         /* first: the hv layer casts */
	hv_dirty_gfn ring[FAKE_HV_RING_MAX];
	unsigned pushed, harvested;
} fake_vcpu;

struct fake_hv {
	hv_vm vm;             /* first: the hv layer casts */
	long caps[HV_CAP_ARM_NISV + 1];
	fake_slot slots[FAKE_HV_NR_AS][FAKE_HV_MAX_SLOTS];
	uint32_t manual_flags;
	uint32_t ring_entries;
	fake_vcpu *vcpus[FAKE_HV_MAX_VCPUS];
	unsigned nr_vcpus;
	unsigned to_reset;    /* ring entries harvested since the last reset */
	int fail_memslot;
	char *trace;
	size_t trace_len, trace_cap;
};

#define FAKE(vm) ((fake_hv *)(vm))
#define PAGE_MASK ((uint64_t)HV_PAGE_SIZE - 1)

static void trace(fake_hv *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void trace(fake_hv *f, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		size_t room = f->trace_cap - f->trace_len;

		va_start(ap, fmt);
		n = vsnprintf(f->trace + f->trace_len, room, fmt, ap);
		va_end(ap);
		if ((size_t)n + 2 <= room)
			break;
		f->trace_cap = f->trace_cap * 2 + (size_t)n + 64;
		f->trace = realloc(f->trace, f->trace_cap);
	}
	f->trace_len += (size_t)n;
	f->trace[f->trace_len++] = '\n';
	f->trace[f->trace_len] = 0;
}

static const char *flag_names(uint32_t flags)
{
	static const char *const names[] = { "-", "log", "ro", "ro,log" };

	return flags < 4 ? names[flags] : "?";
}

static uint64_t npages(const hv_memslot *m) { return m->size / HV_PAGE_SIZE; }

static fake_slot *lookup(fake_hv *f, uint32_t slot)
{
	uint16_t as = HV_SLOT_AS(slot), id = HV_SLOT_ID(slot);

	if (as >= FAKE_HV_NR_AS || id >= f->caps[HV_CAP_NR_MEMSLOTS])
		return NULL;
	return &f->slots[as][id];
}

/* -EEXIST if [gpa, gpa+size) overlaps a live slot of @as other than @self. */
static int check_overlap(fake_hv *f, uint16_t as, const fake_slot *self, const hv_memslot *m)
{
	for (int i = 0; i < FAKE_HV_MAX_SLOTS; i++) {
		const fake_slot *s = &f->slots[as][i];

		if (s != self && s->used && m->gpa < s->m.gpa + s->m.size &&
		    s->m.gpa < m->gpa + m->size)
			return -EEXIST;
	}
	return 0;
}

/* Dirty bitmap follows the log flag; INIT_SET starts it all dirty (KVM). */
static void update_bitmap(fake_hv *f, fake_slot *s)
{
	bool log = s->used && (s->m.flags & HV_MEM_LOG_DIRTY_PAGES);

	if (!log) {
		free(s->bitmap);
		s->bitmap = NULL;
	} else if (!s->bitmap) {
		size_t words = HV_DIRTY_BITMAP_WORDS(s->m.size);

		s->bitmap = calloc(words, sizeof(uint64_t));
		if (f->manual_flags & HV_DIRTY_PROTECT_INIT_SET)
			for (uint64_t p = 0; p < npages(&s->m); p++)
				s->bitmap[p / 64] |= 1ull << (p % 64);
	}
}

/* KVM's __kvm_set_memory_region checks, in its order. */
static int memslot_check(fake_hv *f, const hv_memslot *m, fake_slot **out)
{
	uint32_t valid = HV_MEM_LOG_DIRTY_PAGES |
			 (f->caps[HV_CAP_READONLY_MEM] ? HV_MEM_READONLY : 0);
	fake_slot *s = lookup(f, m->slot);

	if (m->flags & ~valid)
		return -EINVAL;
	if ((m->size & PAGE_MASK) || (m->gpa & PAGE_MASK) || ((uintptr_t)m->hva & PAGE_MASK))
		return -EINVAL;
	if (!s || m->gpa + m->size < m->gpa)
		return -EINVAL;
	*out = s;
	if (!m->size)
		return s->used ? 0 : -EINVAL;
	if (s->used && (m->size != s->m.size || m->hva != s->m.hva ||
			((m->flags ^ s->m.flags) & HV_MEM_READONLY)))
		return -EINVAL;
	if (!s->used || m->gpa != s->m.gpa)
		return check_overlap(f, HV_SLOT_AS(m->slot), s, m);
	return 0;
}

static int fake_set_memslot(hv_vm *vm, const hv_memslot *m)
{
	fake_hv *f = FAKE(vm);
	fake_slot *s = NULL;
	int r = f->fail_memslot ? f->fail_memslot : memslot_check(f, m, &s);

	f->fail_memslot = 0;
	if (!r) {
		s->used = m->size != 0;
		s->m = *m;
		update_bitmap(f, s);
	}
	trace(f, "set %u:%u gpa=0x%llx size=0x%llx flags=%s -> %d", HV_SLOT_AS(m->slot),
	      HV_SLOT_ID(m->slot), (unsigned long long)m->gpa, (unsigned long long)m->size,
	      flag_names(m->flags), r);
	return r;
}

static int fake_enable_manual(hv_vm *vm, uint32_t flags)
{
	fake_hv *f = FAKE(vm);
	int r = flags & ~(uint32_t)f->caps[HV_CAP_MANUAL_DIRTY_PROTECT] ? -EINVAL : 0;

	if (!r)
		f->manual_flags = flags;
	trace(f, "manual 0x%x -> %d", flags, r);
	return r;
}

static int fake_get_dirty_log(hv_vm *vm, uint32_t slot, uint64_t *bitmap)
{
	fake_hv *f = FAKE(vm);
	fake_slot *s = lookup(f, slot);
	int r = 0;

	if (!s || !s->used)
		r = -ENOENT;
	else if (!s->bitmap || f->ring_entries)
		r = -EINVAL;
	if (!r) {
		size_t bytes = HV_DIRTY_BITMAP_WORDS(s->m.size) * sizeof(uint64_t);

		memcpy(bitmap, s->bitmap, bytes);
		if (!(f->manual_flags & HV_DIRTY_PROTECT_ENABLE))
			memset(s->bitmap, 0, bytes);
	}
	trace(f, "get %u:%u -> %d", HV_SLOT_AS(slot), HV_SLOT_ID(slot), r);
	return r;
}

static int clear_check(fake_hv *f, fake_slot *s, uint64_t first, uint32_t num)
{
	if (!(f->manual_flags & HV_DIRTY_PROTECT_ENABLE))
		return -EINVAL;
	if (!s || !s->used)
		return -ENOENT;
	if (!s->bitmap || first % 64 || first + num > npages(&s->m) ||
	    (num % 64 && first + num != npages(&s->m)))
		return -EINVAL;
	return 0;
}

static int fake_clear_dirty_log(hv_vm *vm, uint32_t slot, uint64_t first, uint32_t num,
				const uint64_t *bitmap)
{
	fake_hv *f = FAKE(vm);
	fake_slot *s = lookup(f, slot);
	int r = clear_check(f, s, first, num);
	char words[512] = "";
	size_t used = 0;

	for (uint32_t w = 0; w < (num + 63) / 64 && used < sizeof(words) - 20; w++)
		used += snprintf(words + used, sizeof(words) - used, "%s%llx", w ? "," : "",
				 (unsigned long long)bitmap[w]);
	for (uint32_t p = 0; !r && p < num; p++)
		if ((bitmap[p / 64] >> (p % 64)) & 1)
			s->bitmap[(first + p) / 64] &= ~(1ull << ((first + p) % 64));
	trace(f, "clear %u:%u first=%llu num=%u bits=%s -> %d", HV_SLOT_AS(slot),
	      HV_SLOT_ID(slot), (unsigned long long)first, num, words, r);
	return r;
}

static int fake_enable_dirty_ring(hv_vm *vm, uint32_t entries)
{
	fake_hv *f = FAKE(vm);
	int r = 0;

	if (f->nr_vcpus || !entries || (entries & (entries - 1)) ||
	    entries > f->caps[HV_CAP_DIRTY_RING])
		r = -EINVAL;
	else
		f->ring_entries = entries;
	trace(f, "ring %u -> %d", entries, r);
	return r;
}

static int fake_ring_harvest(hv_vcpu *vcpu, void (*fn)(void *, const hv_dirty_gfn *),
			     void *opaque)
{
	fake_vcpu *v = (fake_vcpu *)vcpu;
	unsigned n = v->pushed - v->harvested;

	for (unsigned i = v->harvested; i < v->pushed; i++)
		fn(opaque, &v->ring[i]);
	v->harvested = v->pushed;
	FAKE(vcpu->vm)->to_reset += n;
	trace(FAKE(vcpu->vm), "harvest vcpu %u: %u", vcpu->id, n);
	return (int)n;
}

static int fake_rings_reset(hv_vm *vm)
{
	fake_hv *f = FAKE(vm);
	int n = (int)f->to_reset;

	/* Recycle: harvested entries leave the rings. */
	for (unsigned i = 0; i < f->nr_vcpus; i++)
		f->vcpus[i]->pushed = f->vcpus[i]->harvested = 0;
	f->to_reset = 0;
	trace(f, "reset %d", n);
	return n;
}

static int fake_vcpu_create(hv_vm *vm, uint32_t id, hv_vcpu **out, mv_error *err)
{
	fake_hv *f = FAKE(vm);
	fake_vcpu *v;

	if (f->nr_vcpus == FAKE_HV_MAX_VCPUS)
		return mv_error_set(err, -EINVAL, "fake accelerator: too many vCPUs");
	v = calloc(1, sizeof(*v));
	f->vcpus[f->nr_vcpus++] = v;
	(void)id;
	*out = &v->vcpu;
	return 0;
}

static void fake_vcpu_destroy(hv_vcpu *vcpu)
{
	fake_hv *f = FAKE(vcpu->vm);

	for (unsigned i = 0; i < f->nr_vcpus; i++)
		if (&f->vcpus[i]->vcpu == vcpu)
			f->vcpus[i] = f->vcpus[--f->nr_vcpus];
	free(vcpu);
}

static long fake_check_cap(hv_vm *vm, hv_cap cap)
{
	return (unsigned)cap <= HV_CAP_ARM_NISV ? FAKE(vm)->caps[cap] : 0;
}

static int fake_vm_create(const hv_vm_config *cfg, hv_vm **out, mv_error *err)
{
	fake_hv *f = calloc(1, sizeof(*f));

	(void)cfg;
	if (!f)
		return mv_error_set(err, -ENOMEM, "fake accelerator: out of memory");
	f->caps[HV_CAP_NR_MEMSLOTS] = FAKE_HV_MAX_SLOTS;
	f->caps[HV_CAP_NR_AS] = FAKE_HV_NR_AS;
	f->caps[HV_CAP_MAX_VCPUS] = FAKE_HV_MAX_VCPUS;
	f->caps[HV_CAP_READONLY_MEM] = 1;
	f->caps[HV_CAP_MANUAL_DIRTY_PROTECT] = HV_DIRTY_PROTECT_ENABLE | HV_DIRTY_PROTECT_INIT_SET;
	f->caps[HV_CAP_DIRTY_RING] = FAKE_HV_RING_MAX;
	*out = &f->vm;
	return 0;
}

static void fake_vm_destroy(hv_vm *vm)
{
	fake_hv *f = FAKE(vm);

	for (int as = 0; as < FAKE_HV_NR_AS; as++)
		for (int i = 0; i < FAKE_HV_MAX_SLOTS; i++)
			free(f->slots[as][i].bitmap);
	free(f->trace);
	free(f);
}

/* Calls outside memory management are not faked (NULL: the test must not make them). */
static const hv_ops fake_hv_ops = {
	.name = "fake",
	.vm_create = fake_vm_create,
	.vm_destroy = fake_vm_destroy,
	.check_cap = fake_check_cap,
	.set_memslot = fake_set_memslot,
	.enable_manual_dirty_protect = fake_enable_manual,
	.get_dirty_log = fake_get_dirty_log,
	.clear_dirty_log = fake_clear_dirty_log,
	.enable_dirty_ring = fake_enable_dirty_ring,
	.dirty_ring_harvest = fake_ring_harvest,
	.dirty_rings_reset = fake_rings_reset,
	.vcpu_create = fake_vcpu_create,
	.vcpu_destroy = fake_vcpu_destroy,
};

fake_hv *fake_hv_new(unsigned nr_slots)
{
	hv_vm_config cfg = { .arch = HV_ARCH_X86_64 };
	hv_vm *vm = NULL;

	if (hv_vm_create_ops(&fake_hv_ops, &cfg, &vm, NULL))
		return NULL;
	FAKE(vm)->caps[HV_CAP_NR_MEMSLOTS] = nr_slots < FAKE_HV_MAX_SLOTS ? nr_slots
									   : FAKE_HV_MAX_SLOTS;
	FAKE(vm)->trace = calloc(1, 1);
	FAKE(vm)->trace_cap = 1;
	return FAKE(vm);
}

hv_vm *fake_hv_vm(fake_hv *f) { return &f->vm; }
void fake_hv_free(fake_hv *f) { hv_vm_destroy(&f->vm); }
void fake_hv_set_cap(fake_hv *f, hv_cap cap, long value) { f->caps[cap] = value; }

const hv_memslot *fake_hv_slot(fake_hv *f, uint32_t slot)
{
	fake_slot *s = lookup(f, slot);

	return s && s->used ? &s->m : NULL;
}

unsigned fake_hv_nr_slots(fake_hv *f)
{
	unsigned n = 0;

	for (int as = 0; as < FAKE_HV_NR_AS; as++)
		for (int i = 0; i < FAKE_HV_MAX_SLOTS; i++)
			n += f->slots[as][i].used;
	return n;
}

const char *fake_hv_trace(fake_hv *f) { return f->trace; }

void fake_hv_trace_reset(fake_hv *f)
{
	f->trace_len = 0;
	f->trace[0] = 0;
}

void fake_hv_fail_next_memslot(fake_hv *f, int err) { f->fail_memslot = err; }

void fake_hv_dirty(fake_hv *f, uint32_t slot, uint64_t page)
{
	fake_slot *s = lookup(f, slot);

	if (s && s->bitmap && page < npages(&s->m))
		s->bitmap[page / 64] |= 1ull << (page % 64);
}

void fake_hv_ring_push(hv_vcpu *vcpu, uint32_t slot, uint64_t offset)
{
	fake_vcpu *v = (fake_vcpu *)vcpu;

	if (v->pushed < FAKE_HV_RING_MAX)
		v->ring[v->pushed++] = (hv_dirty_gfn){ .slot = slot, .offset = offset };
}
