/*
 * The software KVM for arm64 guests: a VM (memslots, one stage-2 table,
 * VMID, mmu_lock, MMU-notifier sequence, in-kernel I/O bus) and soft
 * vCPUs whose access engine performs guest loads, stores and instruction
 * fetches through stage 1 (the guest's tables, when SCTLR_EL1.M = 1) and
 * stage 2, raising exactly the aborts hardware would give EL2 (ESR_EL2,
 * HPFAR_EL2, FAR_EL2) and handling them as KVM's kvm_handle_guest_abort.
 *
 * Threads: each vCPU is driven by one thread at a time; several vCPUs of
 * a VM may fault in parallel (faults take mmu_lock for reading and update
 * entries atomically; zaps and memslot changes take it for writing).
 * Memslot calls may come from any thread.
 */
#ifndef MEMVIRT_SOFT_ARM64_H
#define MEMVIRT_SOFT_ARM64_H

#include "memvirt/base.h"
#include "memvirt/hv.h"
#include "memvirt/soft_host.h"
#include "memvirt/soft_iobus.h"
#include "memvirt/soft_pgtable.h"
#include "memvirt/soft_stage2.h"
#include "memvirt/soft_tlb.h"

#include <stdint.h>

typedef struct mv_a64_vm mv_a64_vm;
typedef struct mv_a64_vcpu mv_a64_vcpu;

/* ---- ESR_EL2 (ARM ARM D17.2 ESR_EL2; ISS encoding for Data/Instruction Aborts) ---- */
#define MV_ESR_EC_SHIFT   26                 /* EC, bits[31:26] */
#define MV_ESR_EC_IABT_LOW 0x20u             /* Instruction Abort from a lower EL */
#define MV_ESR_EC_IABT_CUR 0x21u
#define MV_ESR_EC_DABT_LOW 0x24u             /* Data Abort from a lower EL */
#define MV_ESR_EC_DABT_CUR 0x25u
#define MV_ESR_IL         (1ull << 25)       /* 32-bit instruction */
#define MV_ESR_ISV        (1ull << 24)       /* ISS[23:14] valid */
#define MV_ESR_SAS_SHIFT  22                 /* SAS, bits[23:22]: log2(size) */
#define MV_ESR_SSE        (1ull << 21)       /* sign extend */
#define MV_ESR_SRT_SHIFT  16                 /* SRT, bits[20:16] */
#define MV_ESR_SF         (1ull << 15)       /* 64-bit register */
#define MV_ESR_AR         (1ull << 14)       /* acquire/release */
#define MV_ESR_FNV        (1ull << 10)       /* FAR not valid */
#define MV_ESR_EA         (1ull << 9)        /* external abort type */
#define MV_ESR_CM         (1ull << 8)        /* cache maintenance */
#define MV_ESR_S1PTW      (1ull << 7)        /* stage-2 fault on a stage-1 walk */
#define MV_ESR_WNR        (1ull << 6)        /* write not read */
#define MV_ESR_FSC_MASK   0x3full            /* DFSC/IFSC, bits[5:0] */
/* Fault status codes (level added where the code has one). */
#define MV_FSC_ADDR_SIZE  0x00u              /* + level 0..3 */
#define MV_FSC_TRANS      0x04u              /* + level 0..3 */
#define MV_FSC_ACCESS     0x08u              /* + level 1..3 */
#define MV_FSC_PERM       0x0cu              /* + level 1..3 */
#define MV_FSC_SEA        0x10u              /* synchronous external abort, not on a walk */
#define MV_FSC_SEA_TTW    0x14u              /* + level: SEA on a translation table walk */
/* HPFAR_EL2.FIPA, bits[39:4] = IPA[47:12] (ARM ARM D17.2 HPFAR_EL2). */
#define MV_HPFAR_FIPA(ipa) ((((ipa) >> 12) & ((1ull << 36) - 1)) << 4)
#define MV_HPFAR_IPA(hpfar) ((((hpfar) >> 4) & ((1ull << 36) - 1)) << 12)

/*
 * One-line decoding of an ESR_EL2 value for a data or instruction abort
 * ("EC=0x24 (DABT_LOW) IL=1 ISV=1 SAS=1 SSE=1 SRT=3 SF=1 AR=0 FnV=0 EA=0
 * CM=0 S1PTW=0 WnR=0 DFSC=0x07 (translation fault, level 3)"). Returns the
 * length snprintf would.
 */
int mv_esr_describe(uint64_t esr, char *buf, size_t len);

/* ---- VMs ---- */
typedef struct mv_a64_vm_config {
	uint64_t vtcr;               /* VTCR_EL2; 0 = KVM's default (40-bit IPA, 4 KiB) */
	unsigned nr_slots;           /* slot ids; 0 = MV_MEMSLOT_SLOTS_NUM */
	unsigned max_vcpus;          /* 0 = 64 */
	mv_vmid_alloc *vmids;        /* shared allocator; NULL = the VM owns a 16-bit one */
	mv_soft_host *host;          /* host page oracle; NULL = the VM owns a default one */
	const mv_pgt_mm_ops *mm_ops; /* stage-2 table memory; NULL = the VM owns a pool */
	void *mm_arg;
	const mv_allocator *alloc;   /* NULL = libc */
} mv_a64_vm_config;

/* Create a VM. -EINVAL (bad VTCR: the sentence names the field) or -ENOMEM. */
int mv_a64_vm_new(const mv_a64_vm_config *cfg, mv_a64_vm **out, mv_error *err);
/* Free the VM; its vCPUs must have been freed. NULL is a no-op. */
void mv_a64_vm_free(mv_a64_vm *vm);
/* KVM_SET_USER_MEMORY_REGION with KVM's errors (memvirt/soft_memslot.h). */
int mv_a64_vm_set_memslot(mv_a64_vm *vm, const hv_memslot *m);
/* KVM_CAP_ARM_NISV_TO_USER: ISV=0 MMIO aborts exit as HV_EXIT_ARM_NISV. */
void mv_a64_vm_enable_nisv_to_user(mv_a64_vm *vm, bool on);
/*
 * Switch the abort handler off (every stage-2 abort is reported and the
 * instruction skipped, like bare EL2 test code) or on (default).
 */
void mv_a64_vm_set_handler(mv_a64_vm *vm, bool on);
/*
 * Whether a synchronous external abort is claimed by the host (APEI's
 * ghes) before KVM injects anything: @fn returns true to claim. NULL = never.
 */
void mv_a64_vm_set_sea_claim(mv_a64_vm *vm, bool (*fn)(void *arg, uint64_t ipa), void *arg);
/* The VM's in-kernel I/O bus (for MMIO devices emulated in process). */
mv_iobus *mv_a64_vm_iobus(mv_a64_vm *vm);
mv_soft_host *mv_a64_vm_host(mv_a64_vm *vm);
const mv_s2_config *mv_a64_vm_s2_config(const mv_a64_vm *vm);
/*
 * Install a stage-2 mapping directly (bypassing the fault handler): maps
 * [ipa, ipa + size) to host address @hva with leaf attributes @attr
 * (MV_S2_* bits: S2AP, AF, XN, MemAttr, SH) at exactly @level (1, 2 or 3;
 * alignment must allow it). Takes mmu_lock for writing. -EINVAL with a
 * sentence for misalignment or a range outside the IPA size, -ENOMEM.
 */
int mv_a64_vm_s2_install(mv_a64_vm *vm, uint64_t ipa, uint64_t size, uint64_t hva, uint64_t attr,
			 int level, mv_error *err);
/* Leaf covering @ipa (under mmu_lock for reading). */
mv_pgt_result mv_a64_vm_s2_leaf(mv_a64_vm *vm, uint64_t ipa, mv_pte *pte, int *level);
void mv_a64_vm_s2_stats(mv_a64_vm *vm, mv_s2_stats *st);

/*
 * MMU notifier (KVM's kvm_mmu_notifier_invalidate_range_start/end): zap
 * every stage-2 mapping of the gfns that [hva_start, hva_end) backs, in
 * every slot, bump the invalidation sequence, and keep faults on those
 * gfns from installing until the matching end.
 */
void mv_a64_vm_invalidate_range_start(mv_a64_vm *vm, uint64_t hva_start, uint64_t hva_end);
void mv_a64_vm_invalidate_range_end(mv_a64_vm *vm, uint64_t hva_start, uint64_t hva_end);
uint64_t mv_a64_vm_invalidate_seq(mv_a64_vm *vm);
/*
 * Test hook: called by the fault path after it read the invalidation
 * sequence and resolved the host page, before it takes mmu_lock to install
 * (where an MMU-notifier invalidation can race it).
 */
void mv_a64_vm_set_fault_hook(mv_a64_vm *vm, void (*fn)(void *arg, mv_a64_vcpu *vcpu, uint64_t ipa),
			      void *arg);

/* ---- vCPUs ---- */
typedef struct mv_a64_regs {
	uint64_t x[31];   /* X0..X30 */
	uint64_t sp;      /* SP of the current EL */
	uint64_t pc;
	uint8_t el;       /* 0 or 1 */
	uint64_t v[32][2]; /* V0..V31 (SIMD&FP): [0] = bits[63:0], [1] = bits[127:64] */
} mv_a64_regs;

/* The EL1 system registers the access engine uses (ARM ARM D17.2). */
typedef struct mv_a64_sysregs {
	uint64_t sctlr_el1;   /* M (bit 0) enables stage 1 */
	uint64_t tcr_el1;     /* T0SZ [5:0], EPD0 [7], TG0 [15:14], T1SZ [21:16], EPD1 [23], TG1 [31:30], IPS [34:32] */
	uint64_t ttbr0_el1;
	uint64_t ttbr1_el1;
	uint64_t vbar_el1;
	uint64_t elr_el1, spsr_el1, esr_el1, far_el1;  /* written by exception entry */
} mv_a64_sysregs;

/* Create vCPU @id (< max_vcpus, unused). -EINVAL, -EEXIST or -ENOMEM. */
int mv_a64_vcpu_new(mv_a64_vm *vm, unsigned id, mv_a64_vcpu **out, mv_error *err);
void mv_a64_vcpu_free(mv_a64_vcpu *vcpu);
void mv_a64_vcpu_get_regs(const mv_a64_vcpu *vcpu, mv_a64_regs *r);
void mv_a64_vcpu_set_regs(mv_a64_vcpu *vcpu, const mv_a64_regs *r);
void mv_a64_vcpu_get_sysregs(const mv_a64_vcpu *vcpu, mv_a64_sysregs *s);
/* Set the EL1 registers (TLB entries built from old values are flushed). */
void mv_a64_vcpu_set_sysregs(mv_a64_vcpu *vcpu, const mv_a64_sysregs *s);
/* The vCPU's TLB (statistics, tests). */
mv_tlb *mv_a64_vcpu_tlb(mv_a64_vcpu *vcpu);

/* ---- The access engine ---- */
typedef enum mv_a64_op {
	MV_A64_LOAD,
	MV_A64_STORE,
	MV_A64_FETCH,    /* instruction fetch (4 bytes) */
	MV_A64_DC,       /* data cache maintenance by VA (DC CIVAC): CM=1, a read for permissions */
} mv_a64_op;

enum {
	MV_A64_WB_NONE,
	MV_A64_WB_PRE,   /* [Xn, #imm]! */
	MV_A64_WB_POST,  /* [Xn], #imm */
};
#define MV_A64_RN_ABS 0xff   /* the address is @addr, not a register */
#define MV_A64_XZR 31         /* Rt = 31: XZR/WZR */

/* One guest access, with the attributes the fault syndrome reports. */
typedef struct mv_a64_insn {
	mv_a64_op op;
	uint8_t size;       /* bytes per register: 1, 2, 4, 8 or 16 (Qt) */
	uint8_t rt, rt2;    /* target register(s); rt2 only for pairs */
	uint8_t rs;         /* store-exclusive: status register Ws (0 = stored, 1 = failed) */
	uint8_t rn;         /* base register 0..30, 31 = SP, MV_A64_RN_ABS */
	uint8_t wb;         /* MV_A64_WB_* (ISV=0 when not NONE) */
	int64_t imm;        /* offset added to the base (or the writeback amount for POST) */
	uint64_t addr;      /* absolute address when rn == MV_A64_RN_ABS */
	bool sign_extend;   /* ldrs*: SSE */
	bool sf;            /* Xt (true) or Wt target: SF */
	bool acq_rel;       /* ldar/stlr: AR */
	bool pair;          /* ldp/stp: ISV=0 */
	bool exclusive;     /* ldxr/stxr: ISV=0 */
	bool simd;          /* a SIMD&FP register (Qt/Dt): ISV=0 */
	const char *text;   /* the instruction as written (traces); may be NULL */
} mv_a64_insn;

/*
 * Parse one instruction as the scenario runner writes it: "ldr x1,
 * [0x40000000]", "ldrsh w3, [x2, #4]", "stlr x6, [x0]", "ldp x4, x5,
 * [0x40600000]", "ldr x7, [x0], #8", "str q0, [x1]", "ldxr x2, [x3]",
 * "dc civac, x4", "fetch 0x40405000" (docs/mmu_script.md has the list).
 * out->text points at @text. -EINVAL with a sentence naming the text.
 */
int mv_a64_insn_parse(const char *text, mv_a64_insn *out, mv_error *err);

/* What the KVM abort handler did about one stage-2 abort. */
typedef enum mv_a64_action {
	MV_A64_ACT_MAPPED,        /* user_mem_abort installed a mapping (map_size) */
	MV_A64_ACT_RELAXED,       /* permission fault: permissions relaxed in place */
	MV_A64_ACT_MKYOUNG,       /* access-flag fault: AF set */
	MV_A64_ACT_RETRY,         /* raced an invalidation or another vCPU: resume, refault */
	MV_A64_ACT_MMIO_KERNEL,   /* MMIO handled by an in-kernel device */
	MV_A64_ACT_MMIO_EXIT,     /* exit to user space (HV_EXIT_MMIO) */
	MV_A64_ACT_NISV_EXIT,     /* exit to user space (HV_EXIT_ARM_NISV) */
	MV_A64_ACT_INJECT_DABT,   /* data abort injected into the guest */
	MV_A64_ACT_INJECT_PABT,   /* prefetch abort injected into the guest */
	MV_A64_ACT_INJECT_SERROR, /* virtual SError injected */
	MV_A64_ACT_INJECT_SIZE,   /* address size fault injected (IPA beyond the host's limit) */
	MV_A64_ACT_HOST_SEA,      /* external abort claimed by the host */
	MV_A64_ACT_SKIPPED,       /* instruction skipped (CM=1 on no memory, or handler off) */
	MV_A64_ACT_ERROR,         /* error exit (unsupported FSC, ISV=0 without NISV, poison...) */
} mv_a64_action;

const char *mv_a64_action_name(mv_a64_action a);

/* One stage-2 abort as EL2 saw it, and what was done. */
typedef struct mv_a64_abort_event {
	uint64_t esr_el2;
	uint64_t hpfar_el2;
	uint64_t far_el2;
	mv_a64_action action;
	uint64_t map_size;        /* MAPPED: 4K, 2M, 1G (or other granule multiples) */
	char detail[160];         /* ERROR: the sentence */
} mv_a64_abort_event;

/* Called for every stage-2 abort the vCPU takes (on the vCPU's thread). */
void mv_a64_vcpu_set_trace(mv_a64_vcpu *vcpu, void (*fn)(void *arg, const mv_a64_abort_event *ev),
			   void *arg);

/* How an access ended. */
typedef enum mv_a64_result {
	MV_A64_DONE,          /* performed; loaded values in out->value, PC advanced */
	MV_A64_EXIT,          /* exit to user space: out->exit (MMIO, ARM_NISV, INTERNAL_ERROR,
	                         INTR after an external abort the host claimed) */
	MV_A64_GUEST_FAULT,   /* a stage-1 fault was taken to guest EL1 (ESR_EL1/FAR_EL1, PC = vector) */
	MV_A64_INJECTED,      /* the handler injected an abort / SError into the guest */
	MV_A64_SKIPPED,       /* the instruction was skipped (PC advanced, nothing accessed) */
} mv_a64_result;

typedef struct mv_a64_outcome {
	mv_a64_result result;
	uint64_t value[2];    /* for DONE: loaded Rt, Rt2 (after extension); a Qt load: its
	                         bits[63:0], [127:64]; a fetch: the instruction word */
	hv_exit *exit;        /* for EXIT: the vCPU's record, valid until the next exec */
	uint64_t esr_el1;     /* for GUEST_FAULT / INJECTED */
	uint64_t far_el1;
} mv_a64_outcome;

/*
 * Perform @insn on the vCPU: translate (TLB, else stage-1 walk + stage-2
 * walk), take stage-2 aborts to the KVM handler (which may map and resume,
 * looping until the access completes or leaves the guest), access host
 * memory, update registers (Rt, writeback) and PC. A pending MMIO read is
 * completed first (mv_a64_vcpu_complete_mmio). Returns 0 with *out filled,
 * or a negative errno when the vCPU cannot run (-EINVAL malformed insn:
 * bad size/register, or regs.el > 1; -EAGAIN: 64 aborts in a row were
 * handled and the access still faults, e.g. while MMU-notifier
 * invalidations keep racing it; nothing was done, run it again).
 */
int mv_a64_vcpu_exec(mv_a64_vcpu *vcpu, const mv_a64_insn *insn, mv_a64_outcome *out);
/*
 * kvm_handle_mmio_return: after an HV_EXIT_MMIO read, user space put the
 * data in exit->mmio.data; write it to Rt (zero- or sign-extended to W/X
 * per SSE/SF) and advance PC. A write exit just advances PC. No-op when
 * nothing is pending. *value gets the register value (may be NULL).
 */
void mv_a64_vcpu_complete_mmio(mv_a64_vcpu *vcpu, uint64_t *value);

/* ---- Dirty logging (memvirt/soft_dirty.h; docs/soft_mmu.md "Dirty logging") ---- */
/*
 * KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 with HV_DIRTY_PROTECT_* flags (0 turns
 * it off; INIT_SET needs ENABLE): a get no longer clears nor re-protects,
 * KVM_CLEAR_DIRTY_LOG does. With INIT_SET a slot that starts logging gets
 * a bitmap with every page set and nothing is write-protected (pages are
 * protected as user space clears them). -EINVAL for other flags.
 */
int mv_a64_vm_enable_manual_dirty_protect(mv_a64_vm *vm, uint32_t flags);
/*
 * KVM_GET_DIRTY_LOG / KVM_CLEAR_DIRTY_LOG with KVM's errors (soft_dirty.h),
 * -ENXIO on a VM with dirty rings. Re-protection write-protects, under
 * mmu_lock for writing, the stage-2 range from the first to the last page
 * of each 64-page mask (kvm_arch_mmu_enable_log_dirty_pt_masked).
 */
int mv_a64_vm_get_dirty_log(mv_a64_vm *vm, uint32_t slot, uint64_t *bitmap);
int mv_a64_vm_clear_dirty_log(mv_a64_vm *vm, uint32_t slot, uint64_t first_page,
			      uint32_t num_pages, const uint64_t *bitmap);
/*
 * KVM_CAP_ARM_EAGER_SPLIT_CHUNK_SIZE: @chunk_size 0 (the default, as KVM's)
 * leaves the blocks of a slot that starts logging in place, write-protected,
 * and breaks each one on its first write fault (lazy); a block size (4 KiB,
 * 2 MiB or 1 GiB) splits every block of the slot into pages when logging
 * starts (or, with INIT_SET, the blocks under each cleared mask), chunk by
 * chunk, dropping mmu_lock between chunks; best effort (stops when out of
 * memory). -EINVAL for another size or once the VM has a memslot.
 */
int mv_a64_vm_enable_eager_split(mv_a64_vm *vm, uint64_t chunk_size);
/*
 * KVM_CAP_DIRTY_LOG_RING: every vCPU created afterwards gets a ring of
 * @entries; logging slots then have no bitmap, and a vCPU whose ring is
 * soft-full exits with HV_EXIT_DIRTY_RING_FULL at its next guest entry.
 * -EINVAL (bad size, enabled already, or a vCPU was ever created), -E2BIG
 * (mv_dirty_ring_check_entries).
 */
int mv_a64_vm_enable_dirty_ring(mv_a64_vm *vm, uint32_t entries);
/*
 * KVM_RESET_DIRTY_RINGS: reset every vCPU's ring (mv_dirty_ring_reset),
 * write-protecting each coalesced batch under mmu_lock. Returns the number
 * of entries reset, or -EINVAL without rings. Not concurrently with
 * mv_a64_vcpu_free of this VM's vCPUs.
 */
int mv_a64_vm_dirty_rings_reset(mv_a64_vm *vm);
/* Harvest @vcpu's ring (mv_dirty_ring_harvest; any thread). -EINVAL without a ring. */
int mv_a64_vcpu_dirty_ring_harvest(mv_a64_vcpu *vcpu, void (*fn)(void *opaque, const hv_dirty_gfn *g),
				   void *opaque);

#endif
