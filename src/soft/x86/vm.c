/*
 * The x86 soft VM: its configuration, memslots with KVM/x86's prepare and
 * commit hooks (kvm_arch_prepare_memory_region, kvm_arch_commit_memory_region),
 * the EPT and its INVEPT broadcast, the MMU notifier and ageing, buses,
 * stats and switches.
 *
 * Dirty logging itself (logging start, re-protection) is dirty.c's; what
 * both arches share (vCPU registry, notifier bookkeeping, dirty-logging
 * calls) is soft_kvm.h's.
 */
#include "soft/soft_notifier.h"
#include "soft/x86/x86_dirty.h"
#include "util/alloc.h"

#include <errno.h>

#define X86_DEFAULT_MAX_VCPUS 64u
#define X86_NR_AS_MAX 2u       /* KVM_ADDRESS_SPACE_NUM: normal and SMM */
#define X86_MIN_MAXPHYADDR 32u
#define X86_MAX_MAXPHYADDR 52u

/* ---- configuration ---- */

/* @cfg with every default resolved, or -EINVAL with a sentence. */
static int x86_vm_config(const mv_x86_vm_config *cfg, mv_x86_vm_config *out, mv_error *err)
{
	*out = *cfg;
	out->ept_levels = cfg->ept_levels ? cfg->ept_levels : 4;
	out->host_maxphyaddr = cfg->host_maxphyaddr ? cfg->host_maxphyaddr : mv_x86_host_maxphyaddr();
	out->guest_maxphyaddr = cfg->guest_maxphyaddr ? cfg->guest_maxphyaddr : out->host_maxphyaddr;
	out->nr_as = cfg->nr_as ? cfg->nr_as : 1;
	out->max_vcpus = cfg->max_vcpus ? cfg->max_vcpus : X86_DEFAULT_MAX_VCPUS;
	out->alloc = cfg->alloc ? cfg->alloc : mv_allocator_libc();
	if (out->ept_levels != 4 && out->ept_levels != 5)
		return mv_error_set(err, -EINVAL, "EPT with %u levels does not exist: use 4 or 5",
				    out->ept_levels);
	if (out->host_maxphyaddr < X86_MIN_MAXPHYADDR || out->host_maxphyaddr > X86_MAX_MAXPHYADDR)
		return mv_error_set(err, -EINVAL, "host MAXPHYADDR %u is outside 32..52 bits",
				    out->host_maxphyaddr);
	if (out->guest_maxphyaddr < X86_MIN_MAXPHYADDR ||
	    out->guest_maxphyaddr > out->host_maxphyaddr)
		return mv_error_set(err, -EINVAL,
				    "guest MAXPHYADDR %u must be between 32 and the host's %u bits",
				    out->guest_maxphyaddr, out->host_maxphyaddr);
	if (out->nr_as > X86_NR_AS_MAX)
		return mv_error_set(err, -EINVAL, "nr_as %u is above x86's %u address spaces",
				    out->nr_as, X86_NR_AS_MAX);
	if (out->nr_slots > MV_MEMSLOT_SLOTS_NUM)
		return mv_error_set(err, -EINVAL, "nr_slots %u is above KVM's %u slots per address space",
				    out->nr_slots, MV_MEMSLOT_SLOTS_NUM);
	return 0;
}

/*
 * GPA bits EPT can map (kvm_mmu_max_gfn): the host's MAXPHYADDR, and 48
 * with 4-level EPT (KVM takes 5 levels when MAXPHYADDR is above 48).
 */
static unsigned x86_vm_gpa_bits(const mv_x86_vm_config *c)
{
	return c->ept_levels == 4 && c->host_maxphyaddr > 48 ? 48 : c->host_maxphyaddr;
}

/* ---- INVEPT ---- */

/*
 * INVEPT single-context, broadcast: every vCPU TLB drops the translations
 * whose GPA is in the range. Called with mmu_lock held, never with
 * vcpus_lock or a TLB lock.
 */
static void x86_vm_invept(void *arg, uint64_t gpa, uint64_t size)
{
	mv_x86_vm *vm = arg;

	soft_kvm_flush_tlbs(&vm->kvm, X86_TLB_TAG, gpa, size);
}

/* ---- memslots: kvm_arch_prepare/commit_memory_region ---- */

/*
 * A created or moved slot must end at or below the host's MAXPHYADDR
 * (kvm_mmu_max_gfn: EPT cannot map more) and gets its metadata
 * (kvm_alloc_memslot_metadata); FLAGS_ONLY keeps the old one. A bitmap
 * allocated for a slot that starts logging is all set with INITIALLY_SET
 * (kvm_prepare_memory_region).
 */
static int x86_vm_arch_prepare(void *arg, mv_memslot_change change, const mv_memslot *old,
			       mv_memslot *new)
{
	mv_x86_vm *vm = arg;
	int r;

	if (change == MV_MR_DELETE)
		return 0;
	if (change == MV_MR_CREATE || change == MV_MR_MOVE) {
		if (new->base_gfn + new->npages - 1 > vm->max_gfn)
			return -EINVAL;
		r = x86_slot_arch_alloc(vm, new);
		if (r)
			return r;
	}
	soft_kvm_dirty_prepare(&vm->kvm, old, new);
	return 0;
}

/*
 * The new generation first (kvm_arch_memslots_updated: MMIO SPTEs when it
 * wraps, mmio_spte.c); then a deleted or moved slot loses its mappings and
 * rmap entries (kvm_arch_flush_shadow_memslot) and its metadata; a
 * writable slot that started logging gets kvm_mmu_slot_apply_flags (one
 * that stopped needs nothing, dirty.c). Faults are kept out by slots_lock.
 */
static void x86_vm_arch_commit(void *arg, mv_memslot_change change, const mv_memslot *old,
			       const mv_memslot *new)
{
	mv_x86_vm *vm = arg;

	pthread_rwlock_wrlock(&vm->mmu_lock);
	x86_mmio_gen_changed(vm);
	if (change == MV_MR_DELETE || change == MV_MR_MOVE) {
		mv_ept_zap(&vm->ept, old->base_gfn << 12, old->npages << 12);
		x86_rmap_drop_range(vm, old, old->base_gfn, old->base_gfn + old->npages);
		x86_slot_arch_free(vm, old->arch);
	}
	if (change == MV_MR_FLAGS_ONLY && !(new->flags & HV_MEM_READONLY) &&
	    ((old->flags ^ new->flags) & HV_MEM_LOG_DIRTY_PAGES) &&
	    (new->flags & HV_MEM_LOG_DIRTY_PAGES))
		x86_dirty_log_start(vm, new);
	pthread_rwlock_unlock(&vm->mmu_lock);
}

int mv_x86_vm_set_memslot(mv_x86_vm *vm, const hv_memslot *m)
{
	return soft_kvm_set_memslot(&vm->kvm, m);
}

/* ---- MMU notifier ---- */

/* kvm_unmap_gfn_range for one slot's part of an invalidated host range. */
static void x86_vm_unmap_slot(void *arg, const mv_memslot *slot, uint64_t gfn_start,
			      uint64_t gfn_end)
{
	mv_x86_vm *vm = arg;

	mv_ept_zap(&vm->ept, gfn_start << 12, (gfn_end - gfn_start) << 12);
	x86_rmap_drop_range(vm, slot, gfn_start, gfn_end);
}

void mv_x86_vm_invalidate_range_start(mv_x86_vm *vm, uint64_t hva_start, uint64_t hva_end)
{
	soft_notifier_range_start(&vm->kvm, hva_start, hva_end);
}

void mv_x86_vm_invalidate_range_end(mv_x86_vm *vm, uint64_t hva_start, uint64_t hva_end)
{
	(void)hva_start;
	(void)hva_end;
	soft_notifier_range_end(&vm->kvm);
}

uint64_t mv_x86_vm_invalidate_seq(mv_x86_vm *vm)
{
	return soft_notifier_seq(&vm->kvm);
}

/* kvm_age_gfn / kvm_test_age_gfn for one slot's part of the range. */
static bool x86_vm_test_young_slot(void *arg, const mv_memslot *slot, uint64_t gfn_start,
				   uint64_t gfn_end)
{
	mv_x86_vm *vm = arg;

	(void)slot;
	return mv_ept_test_clear_young(&vm->ept, gfn_start << 12, (gfn_end - gfn_start) << 12, false);
}

static bool x86_vm_clear_young_slot(void *arg, const mv_memslot *slot, uint64_t gfn_start,
				    uint64_t gfn_end)
{
	mv_x86_vm *vm = arg;
	bool young = mv_ept_test_clear_young(&vm->ept, gfn_start << 12, (gfn_end - gfn_start) << 12,
					     true);

	if (young && !vm->ept.ad)
		x86_rmap_drop_range(vm, slot, gfn_start, gfn_end);
	return young;
}

bool mv_x86_vm_test_young(mv_x86_vm *vm, uint64_t hva_start, uint64_t hva_end)
{
	return soft_notifier_for_each(&vm->kvm, hva_start, hva_end, x86_vm_test_young_slot, vm);
}

/*
 * kvm_mmu_notifier_clear_young. Without EPT A/D flags young leaves are
 * zapped (soft_ept.h), so the rmap re-reads the range.
 */
bool mv_x86_vm_clear_young(mv_x86_vm *vm, uint64_t hva_start, uint64_t hva_end)
{
	return soft_notifier_for_each(&vm->kvm, hva_start, hva_end, x86_vm_clear_young_slot, vm);
}

/* ---- creation ---- */

/*
 * mmu_lock prefers writers, as KVM's queued rwlock lets a waiting writer
 * in before new readers: zaps, write-protection and ring resets are not
 * starved by vCPUs faulting in a loop. Nothing takes it for reading twice.
 */
static void x86_vm_mmu_lock_init(pthread_rwlock_t *lock)
{
	pthread_rwlockattr_t attr;

	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(lock, &attr);
	pthread_rwlockattr_destroy(&attr);
}

/* Undo x86_vm_init_parts; safe on a partly built VM. */
static void x86_vm_free_parts(mv_x86_vm *vm)
{
	mv_iobus_free(vm->pio_bus);
	mv_iobus_free(vm->mmio_bus);
	mv_memslots_free(vm->slots);
	mv_pgt_pool_free(vm->pool);
	if (vm->own_host)
		mv_soft_host_free(vm->host);
	soft_kvm_destroy(&vm->kvm);
	pthread_rwlock_destroy(&vm->mmu_lock);
	pthread_rwlock_destroy(&vm->slots_lock);
	mv_free(vm->alloc, vm);
}

/* What the shared code (soft_kvm.h) calls back. */
static const soft_kvm_ops x86_kvm_ops = {
	.unmap = x86_vm_unmap_slot,
	.protect = x86_dirty_protect_mask,
	.invalidate = x86_dirty_invalidate,
};

/* Everything but the EPT: what the config does not provide is owned. */
static int x86_vm_init_parts(mv_x86_vm *vm)
{
	soft_kvm kvm = {
		.ops = &x86_kvm_ops,
		.vm = vm,
		.alloc = vm->alloc,
		.slots_lock = &vm->slots_lock,
		.mmu_lock = &vm->mmu_lock,
		.pgt = &vm->ept.pgt,
		.max_vcpus = vm->cfg.max_vcpus,
	};
	mv_memslots_config mcfg = {
		.nr_as = vm->cfg.nr_as,
		.nr_slots = vm->cfg.nr_slots,
		.dirty_bitmap = true,
		.arch_prepare = x86_vm_arch_prepare,
		.arch_commit = x86_vm_arch_commit,
		.arg = vm,
		.alloc = vm->alloc,
		.generation = vm->cfg.memslot_generation,
	};
	int r;

	r = soft_kvm_init(&vm->kvm, &kvm);
	if (r)
		return r;
	vm->host = vm->cfg.host;
	if (!vm->host) {
		r = mv_soft_host_new(vm->alloc, &vm->host);
		if (r)
			return r;
		vm->own_host = true;
	}
	if (!vm->cfg.mm_ops) {
		r = mv_pgt_pool_new(vm->alloc, &vm->pool);
		if (r)
			return r;
	}
	r = mv_memslots_new(&mcfg, &vm->slots);
	if (r)
		return r;
	vm->kvm.slots = vm->slots;
	r = mv_iobus_new(vm->alloc, &vm->mmio_bus);
	if (r)
		return r;
	return mv_iobus_new(vm->alloc, &vm->pio_bus);
}

int mv_x86_vm_new(const mv_x86_vm_config *cfg, mv_x86_vm **out, mv_error *err)
{
	static const mv_x86_vm_config defaults;
	mv_x86_vm_config c;
	mv_x86_vm *vm;
	int r;

	r = x86_vm_config(cfg ? cfg : &defaults, &c, err);
	if (r)
		return r;
	vm = mv_zalloc(c.alloc, sizeof(*vm));
	if (!vm)
		return mv_error_set(err, -ENOMEM, "out of memory for the x86 VM");
	vm->alloc = c.alloc;
	vm->cfg = c;
	vm->max_gfn = (1ull << (x86_vm_gpa_bits(&c) - 12)) - 1;
	vm->guest_max_gfn = (1ull << (c.guest_maxphyaddr - 12)) - 1;
	pthread_rwlock_init(&vm->slots_lock, NULL);
	x86_vm_mmu_lock_init(&vm->mmu_lock);
	r = x86_vm_init_parts(vm);
	if (!r) {
		const mv_pgt_mm_ops *mm = c.mm_ops ? c.mm_ops : mv_pgt_pool_mm_ops();
		void *mm_arg = c.mm_ops ? c.mm_arg : vm->pool;

		r = mv_ept_init(&vm->ept, c.ept_levels, !c.no_ept_ad, mm, mm_arg, x86_vm_invept, vm);
	}
	if (r) {
		x86_vm_free_parts(vm);
		return mv_error_set(err, r, "cannot create the x86 VM: %s",
				    r == -ENOMEM ? "out of memory" : "bad configuration");
	}
	*out = vm;
	return 0;
}

/* The slots' metadata (the set frees slots without the arch hooks). */
static void x86_vm_free_slot_arch(mv_x86_vm *vm)
{
	for (unsigned as = 0; as < vm->cfg.nr_as; as++)
		for (size_t i = 0; i < mv_memslots_count(vm->slots, as); i++)
			x86_slot_arch_free(vm, mv_memslots_at(vm->slots, as, i)->arch);
}

void mv_x86_vm_free(mv_x86_vm *vm)
{
	if (!vm)
		return;
	mv_ept_destroy(&vm->ept);
	x86_vm_free_slot_arch(vm);
	x86_vm_free_parts(vm);
}

/* ---- switches, parts and stats ---- */

/* Under slots_lock for writing: a fault in flight sees one setting. */
void mv_x86_vm_set_fault_hook(mv_x86_vm *vm, void (*fn)(void *arg, mv_x86_vcpu *vcpu, uint64_t gpa),
			      void *arg)
{
	pthread_rwlock_wrlock(&vm->slots_lock);
	vm->fault_hook = fn;
	vm->fault_hook_arg = arg;
	pthread_rwlock_unlock(&vm->slots_lock);
}

mv_iobus *mv_x86_vm_mmio_bus(mv_x86_vm *vm)
{
	return vm->mmio_bus;
}

mv_iobus *mv_x86_vm_pio_bus(mv_x86_vm *vm)
{
	return vm->pio_bus;
}

mv_soft_host *mv_x86_vm_host(mv_x86_vm *vm)
{
	return vm->host;
}

mv_ept *mv_x86_vm_ept(mv_x86_vm *vm)
{
	return &vm->ept;
}

static uint64_t x86_stat(const uint64_t *v)
{
	return __atomic_load_n(v, __ATOMIC_RELAXED);
}

void mv_x86_vm_get_stats(mv_x86_vm *vm, mv_x86_vm_stats *st)
{
	const mv_x86_vm_stats *s = &vm->stats;

	st->faults = x86_stat(&s->faults);
	st->fast_fixed = x86_stat(&s->fast_fixed);
	for (unsigned i = 0; i < 4; i++)
		st->mapped[i] = x86_stat(&s->mapped[i]);
	st->prefetched = x86_stat(&s->prefetched);
	st->mmio_sptes = x86_stat(&s->mmio_sptes);
	st->mmio_fast = x86_stat(&s->mmio_fast);
	st->mmio_stale = x86_stat(&s->mmio_stale);
	st->mmio_gen_wraps = x86_stat(&s->mmio_gen_wraps);
	st->retries = x86_stat(&s->retries);
	st->nx_splits = x86_stat(&s->nx_splits);
	st->eager_splits = x86_stat(&s->eager_splits);
}
