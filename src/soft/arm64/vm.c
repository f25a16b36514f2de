/*
 * The arm64 soft VM: its memslots (with KVM/arm64's prepare and commit
 * hooks), the stage-2 table and the TLB maintenance it needs, the MMU
 * notifier's stage-2 side, the VM's switches, and its vCPUs. What both
 * arches share (vCPU registry, notifier bookkeeping, dirty-logging calls)
 * is soft_kvm.h's.
 */
#include "soft/arm64/a64_abort.h"
#include "soft/arm64/a64_dirty.h"
#include "soft/soft_notifier.h"
#include "util/alloc.h"

#include <errno.h>
#include <inttypes.h>

/* VMID width of an allocator the VM owns (VTCR_EL2.VS = 1). */
#define A64_VMID_BITS 16u
#define A64_DEFAULT_MAX_VCPUS 64u
/* kvm_get_vtcr's default IPA size (KVM_VM_TYPE_ARM_IPA_SIZE 0). */
#define A64_DEFAULT_IPA_BITS 40u

/* ---- memslots: kvm_arch_prepare/commit_memory_region ---- */

/* A slot must lie inside the VM's IPA space (the check KVM/arm64 adds). */
static int a64_vm_arch_prepare(void *arg, mv_memslot_change change, const mv_memslot *old,
			       mv_memslot *new)
{
	mv_a64_vm *vm = arg;

	(void)old;
	if (change == MV_MR_DELETE)
		return 0;
	if (new->base_gfn + new->npages > (1ull << vm->s2.cfg.ia_bits) >> 12)
		return -EFAULT;
	soft_kvm_dirty_prepare(&vm->kvm, old, new);
	return 0;
}

/*
 * A deleted or moved slot loses its stage-2 mappings
 * (kvm_arch_flush_shadow_memslot); a slot that logs dirty pages starts
 * write-protected, so its first write to each page faults and is logged
 * (dirty.c: kvm_mmu_wp_memory_region, eager splitting). Faults are kept
 * out by slots_lock.
 */
static void a64_vm_arch_commit(void *arg, mv_memslot_change change, const mv_memslot *old,
			       const mv_memslot *new)
{
	mv_a64_vm *vm = arg;

	if (change == MV_MR_DELETE || change == MV_MR_MOVE) {
		pthread_rwlock_wrlock(&vm->mmu_lock);
		mv_s2_unmap(&vm->s2, old->base_gfn << 12, old->npages << 12);
		pthread_rwlock_unlock(&vm->mmu_lock);
	}
	if (change != MV_MR_DELETE && (new->flags & HV_MEM_LOG_DIRTY_PAGES))
		a64_dirty_log_start(vm, new);
}

int mv_a64_vm_set_memslot(mv_a64_vm *vm, const hv_memslot *m)
{
	return soft_kvm_set_memslot(&vm->kvm, m);
}

/* ---- creation ---- */

/* The stage-2 configuration of @vtcr (0: KVM's default); 4 KiB granule only. */
static int a64_vm_s2_config(uint64_t vtcr, mv_s2_config *cfg, mv_error *err)
{
	int r;

	if (!vtcr) {
		r = mv_s2_config_for_ipa(A64_DEFAULT_IPA_BITS, 12, cfg);
		return r ? mv_error_set(err, r, "the default 40-bit IPA stage 2 cannot be set up") : 0;
	}
	r = mv_vtcr_decode(vtcr, cfg, err);
	if (r)
		return r;
	if (cfg->granule_shift != 12)
		return mv_error_set(err, -EINVAL,
				    "VTCR_EL2.TG0 selects a %u KiB granule; stage 2 uses the host's "
				    "4 KiB pages",
				    (1u << cfg->granule_shift) >> 10);
	return 0;
}

/* Undo a64_vm_init_parts; safe on a partly built VM. */
static void a64_vm_free_parts(mv_a64_vm *vm)
{
	if (vm->iobus)
		mv_iobus_free(vm->iobus);
	mv_memslots_free(vm->slots);
	mv_pgt_pool_free(vm->pool);
	if (vm->own_host)
		mv_soft_host_free(vm->host);
	if (vm->own_vmids)
		mv_vmid_alloc_free(vm->vmids);
	soft_kvm_destroy(&vm->kvm);
	pthread_rwlock_destroy(&vm->mmu_lock);
	pthread_rwlock_destroy(&vm->slots_lock);
	mv_free(vm->alloc, vm);
}

/* kvm_unmap_gfn_range for one slot's part of an invalidated host range. */
static void a64_vm_unmap_slot(void *arg, const mv_memslot *slot, uint64_t gfn_start,
			      uint64_t gfn_end)
{
	mv_a64_vm *vm = arg;

	(void)slot;
	mv_s2_unmap(&vm->s2, gfn_start << 12, (gfn_end - gfn_start) << 12);
}

/* What the shared code (soft_kvm.h) calls back. */
static const soft_kvm_ops a64_kvm_ops = {
	.unmap = a64_vm_unmap_slot,
	.protect = a64_dirty_protect_mask,
	.invalidate = a64_vm_tlbi_ipa,
};

/* Everything but the stage-2 table: what the config does not provide is owned. */
static int a64_vm_init_parts(mv_a64_vm *vm, const mv_a64_vm_config *cfg)
{
	soft_kvm kvm = {
		.ops = &a64_kvm_ops,
		.vm = vm,
		.alloc = vm->alloc,
		.slots_lock = &vm->slots_lock,
		.mmu_lock = &vm->mmu_lock,
		.pgt = &vm->s2.pgt,
		.max_vcpus = cfg->max_vcpus ? cfg->max_vcpus : A64_DEFAULT_MAX_VCPUS,
	};
	mv_memslots_config mcfg = {
		.nr_as = 1,
		.nr_slots = cfg->nr_slots,
		.dirty_bitmap = true,
		.arch_prepare = a64_vm_arch_prepare,
		.arch_commit = a64_vm_arch_commit,
		.arg = vm,
		.alloc = vm->alloc,
	};
	int r;

	r = soft_kvm_init(&vm->kvm, &kvm);
	if (r)
		return r;
	vm->vmids = cfg->vmids;
	if (!vm->vmids) {
		r = mv_vmid_alloc_new(A64_VMID_BITS, kvm.max_vcpus, vm->alloc, &vm->vmids);
		if (r)
			return r;
		vm->own_vmids = true;
	}
	vm->host = cfg->host;
	if (!vm->host) {
		r = mv_soft_host_new(vm->alloc, &vm->host);
		if (r)
			return r;
		vm->own_host = true;
	}
	if (!cfg->mm_ops) {
		r = mv_pgt_pool_new(vm->alloc, &vm->pool);
		if (r)
			return r;
	}
	r = mv_memslots_new(&mcfg, &vm->slots);
	if (r)
		return r;
	vm->kvm.slots = vm->slots;
	return mv_iobus_new(vm->alloc, &vm->iobus);
}

int mv_a64_vm_new(const mv_a64_vm_config *cfg, mv_a64_vm **out, mv_error *err)
{
	static const mv_a64_vm_config defaults;
	const mv_allocator *alloc;
	mv_s2_config s2cfg;
	mv_a64_vm *vm;
	int r;

	cfg = cfg ? cfg : &defaults;
	alloc = cfg->alloc ? cfg->alloc : mv_allocator_libc();
	r = a64_vm_s2_config(cfg->vtcr, &s2cfg, err);
	if (r)
		return r;
	if (cfg->nr_slots > MV_MEMSLOT_SLOTS_NUM)
		return mv_error_set(err, -EINVAL, "nr_slots %u is above KVM's %u slots per address space",
				    cfg->nr_slots, MV_MEMSLOT_SLOTS_NUM);
	vm = mv_zalloc(alloc, sizeof(*vm));
	if (!vm)
		return mv_error_set(err, -ENOMEM, "out of memory for the arm64 VM");
	vm->alloc = alloc;
	vm->handler_on = true;
	pthread_rwlock_init(&vm->slots_lock, NULL);
	pthread_rwlock_init(&vm->mmu_lock, NULL);
	r = a64_vm_init_parts(vm, cfg);
	if (!r) {
		const mv_pgt_mm_ops *mm = cfg->mm_ops ? cfg->mm_ops : mv_pgt_pool_mm_ops();
		void *mm_arg = cfg->mm_ops ? cfg->mm_arg : vm->pool;

		r = mv_s2_init(&vm->s2, &s2cfg, mm, mm_arg, a64_vm_tlbi_ipa, vm);
	}
	if (r) {
		a64_vm_free_parts(vm);
		return mv_error_set(err, r, "cannot create the arm64 VM: %s",
				    r == -ENOMEM ? "out of memory" : "bad configuration");
	}
	*out = vm;
	return 0;
}

void mv_a64_vm_free(mv_a64_vm *vm)
{
	if (!vm)
		return;
	mv_s2_destroy(&vm->s2);
	a64_vm_free_parts(vm);
}

/* ---- switches and parts ---- */

/* The switches change under slots_lock for writing: an abort in flight sees one setting. */
void mv_a64_vm_enable_nisv_to_user(mv_a64_vm *vm, bool on)
{
	pthread_rwlock_wrlock(&vm->slots_lock);
	vm->nisv_to_user = on;
	pthread_rwlock_unlock(&vm->slots_lock);
}

void mv_a64_vm_set_handler(mv_a64_vm *vm, bool on)
{
	pthread_rwlock_wrlock(&vm->slots_lock);
	vm->handler_on = on;
	pthread_rwlock_unlock(&vm->slots_lock);
}

void mv_a64_vm_set_sea_claim(mv_a64_vm *vm, bool (*fn)(void *arg, uint64_t ipa), void *arg)
{
	pthread_rwlock_wrlock(&vm->slots_lock);
	vm->sea_claim = fn;
	vm->sea_claim_arg = arg;
	pthread_rwlock_unlock(&vm->slots_lock);
}

void mv_a64_vm_set_fault_hook(mv_a64_vm *vm, void (*fn)(void *arg, mv_a64_vcpu *vcpu, uint64_t ipa),
			      void *arg)
{
	pthread_rwlock_wrlock(&vm->slots_lock);
	vm->fault_hook = fn;
	vm->fault_hook_arg = arg;
	pthread_rwlock_unlock(&vm->slots_lock);
}

mv_iobus *mv_a64_vm_iobus(mv_a64_vm *vm)
{
	return vm->iobus;
}

mv_soft_host *mv_a64_vm_host(mv_a64_vm *vm)
{
	return vm->host;
}

const mv_s2_config *mv_a64_vm_s2_config(const mv_a64_vm *vm)
{
	return &vm->s2.cfg;
}

/* ---- direct stage-2 access ---- */

/* -EINVAL with a sentence unless [ipa, ipa + size) -> hva can be one run of level-@level leaves. */
static int a64_vm_install_check(const mv_a64_vm *vm, uint64_t ipa, uint64_t size, uint64_t hva,
				int level, mv_error *err)
{
	const mv_s2_pgt *s2 = &vm->s2;
	uint64_t block, ipa_end;

	if (level < 1 || level > 3 || level < s2->cfg.start_level)
		return mv_error_set(err, -EINVAL,
				    "stage-2 level %d cannot hold leaves: use level 1, 2 or 3, not above the "
				    "start level %d",
				    level, s2->cfg.start_level);
	block = mv_pgt_level_size(&s2->pgt, level);
	if (!size || (size | ipa | hva) & (block - 1))
		return mv_error_set(err, -EINVAL,
				    "IPA 0x%" PRIx64 ", host 0x%" PRIx64 " and size 0x%" PRIx64
				    " must be multiples of the level-%d size 0x%" PRIx64,
				    ipa, hva, size, level, block);
	ipa_end = ipa + size;
	if (ipa_end < ipa || ipa_end > 1ull << s2->cfg.ia_bits)
		return mv_error_set(err, -EINVAL,
				    "IPA range 0x%" PRIx64 "+0x%" PRIx64 " is outside the %u-bit IPA space",
				    ipa, size, s2->cfg.ia_bits);
	return 0;
}

int mv_a64_vm_s2_install(mv_a64_vm *vm, uint64_t ipa, uint64_t size, uint64_t hva, uint64_t attr,
			 int level, mv_error *err)
{
	mv_pgt_result r;
	int rc = a64_vm_install_check(vm, ipa, size, hva, level, err);

	if (rc)
		return rc;
	pthread_rwlock_wrlock(&vm->mmu_lock);
	r = mv_s2_map(&vm->s2, ipa, size, hva, attr, level, 0);
	pthread_rwlock_unlock(&vm->mmu_lock);
	if (r == MV_PGT_OK)
		return 0;
	return mv_error_set(err, r == MV_PGT_NOMEM ? -ENOMEM : -EINVAL,
			    "installing IPA 0x%" PRIx64 "+0x%" PRIx64 " in stage 2 failed: %s", ipa, size,
			    mv_pgt_result_name(r));
}

mv_pgt_result mv_a64_vm_s2_leaf(mv_a64_vm *vm, uint64_t ipa, mv_pte *pte, int *level)
{
	mv_pgt_result r;

	pthread_rwlock_rdlock(&vm->mmu_lock);
	r = mv_s2_get_leaf(&vm->s2, ipa, pte, level);
	pthread_rwlock_unlock(&vm->mmu_lock);
	return r;
}

void mv_a64_vm_s2_stats(mv_a64_vm *vm, mv_s2_stats *st)
{
	pthread_rwlock_rdlock(&vm->mmu_lock);
	mv_s2_get_stats(&vm->s2, st);
	pthread_rwlock_unlock(&vm->mmu_lock);
}

/*
 * TLBI IPAS2E1IS + VMALLE1IS, broadcast: every vCPU TLB drops the VM's
 * entries for the range; each flush waits for the access its vCPU has in
 * flight, as DSB waits for the TLBI to complete.
 */
void a64_vm_tlbi_ipa(void *arg, uint64_t ipa, uint64_t size)
{
	mv_a64_vm *vm = arg;

	soft_kvm_flush_tlbs(&vm->kvm, mv_vmid_value(vm->vmids, &vm->vmid), ipa, size);
}

/* ---- MMU notifier ---- */

void mv_a64_vm_invalidate_range_start(mv_a64_vm *vm, uint64_t hva_start, uint64_t hva_end)
{
	soft_notifier_range_start(&vm->kvm, hva_start, hva_end);
}

void mv_a64_vm_invalidate_range_end(mv_a64_vm *vm, uint64_t hva_start, uint64_t hva_end)
{
	(void)hva_start;
	(void)hva_end;
	soft_notifier_range_end(&vm->kvm);
}

uint64_t mv_a64_vm_invalidate_seq(mv_a64_vm *vm)
{
	return soft_notifier_seq(&vm->kvm);
}

/* ---- vCPUs ---- */

int mv_a64_vcpu_new(mv_a64_vm *vm, unsigned id, mv_a64_vcpu **out, mv_error *err)
{
	soft_kvm_vcpu ref;
	mv_a64_vcpu *v;
	int r = soft_kvm_vcpu_new(&vm->kvm, id, sizeof(*v), &ref, err);

	if (r)
		return r;
	v = ref.vcpu;
	/* KVM_ARM_VCPU_INIT resets to EL1h. */
	*v = (mv_a64_vcpu){ .vm = vm, .id = id, .tlb = ref.tlb, .ring = ref.ring, .regs.el = 1 };
	*out = v;
	return 0;
}

void mv_a64_vcpu_free(mv_a64_vcpu *vcpu)
{
	if (vcpu)
		soft_kvm_vcpu_free(&vcpu->vm->kvm, vcpu->id);
}

mv_tlb *mv_a64_vcpu_tlb(mv_a64_vcpu *vcpu)
{
	return vcpu->tlb;
}
