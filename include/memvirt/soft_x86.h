/*
 * The software KVM for x86 guests: a VM (memslots, one EPT, mmu_lock,
 * MMU-notifier sequence, dirty logging, MMIO and PIO buses) and soft vCPUs
 * whose access engine performs guest reads, writes and fetches through the
 * guest's paging (4-level, 5-level, PAE; or none) and EPT, taking EPT
 * violations and misconfigurations as KVM's VMX code handles them
 * (handle_ept_violation -> kvm_mmu_page_fault -> direct_page_fault, the
 * fast page fault path, MMIO SPTEs).
 *
 * Threads: each vCPU is driven by one thread at a time; vCPUs fault in
 * parallel (mmu_lock for reading, atomic SPTE updates; the fast path takes
 * no lock); zaps, memslot changes and notifiers take it for writing.
 */
#ifndef MEMVIRT_SOFT_X86_H
#define MEMVIRT_SOFT_X86_H

#include "memvirt/base.h"
#include "memvirt/hv.h"
#include "memvirt/soft_ept.h"
#include "memvirt/soft_host.h"
#include "memvirt/soft_iobus.h"

#include <stdint.h>

typedef struct mv_x86_vm mv_x86_vm;
typedef struct mv_x86_vcpu mv_x86_vcpu;

/* ---- Control bits of guest paging (SDM Vol. 3A 2.5, 4.1) ---- */
#define MV_X86_CR0_PG    (1ull << 31)
#define MV_X86_CR0_WP    (1ull << 16)
#define MV_X86_CR4_PSE   (1ull << 4)
#define MV_X86_CR4_PAE   (1ull << 5)
#define MV_X86_CR4_LA57  (1ull << 12)
#define MV_X86_CR4_SMEP  (1ull << 20)
#define MV_X86_CR4_SMAP  (1ull << 21)
#define MV_X86_EFER_LME  (1ull << 8)
#define MV_X86_EFER_LMA  (1ull << 10)
#define MV_X86_EFER_NXE  (1ull << 11)

/* ---- #PF error code (SDM Vol. 3A 4.7) and KVM's synthetic bits ---- */
#define MV_PFERR_PRESENT     (1ull << 0)
#define MV_PFERR_WRITE       (1ull << 1)
#define MV_PFERR_USER        (1ull << 2)
#define MV_PFERR_RSVD        (1ull << 3)
#define MV_PFERR_FETCH       (1ull << 4)
#define MV_PFERR_PK          (1ull << 5)
#define MV_PFERR_GUEST_FINAL (1ull << 32)  /* KVM: fault on the final GPA of a GVA walk */
#define MV_PFERR_GUEST_PAGE  (1ull << 33)  /* KVM: fault on a guest paging-structure access */

/* ---- EPT violation exit qualification (SDM Vol. 3C, "Exit Qualification for EPT Violations") ---- */
#define MV_EPT_VIOL_ACC_READ       (1ull << 0)
#define MV_EPT_VIOL_ACC_WRITE      (1ull << 1)
#define MV_EPT_VIOL_ACC_INSTR      (1ull << 2)
#define MV_EPT_VIOL_READABLE       (1ull << 3)  /* the GPA's EPT entries allow reads (AND of all levels) */
#define MV_EPT_VIOL_WRITABLE       (1ull << 4)
#define MV_EPT_VIOL_EXECUTABLE     (1ull << 5)
#define MV_EPT_VIOL_USER_EXEC      (1ull << 6)  /* with MBEC */
#define MV_EPT_VIOL_GVA_VALID      (1ull << 7)  /* guest linear address field valid */
#define MV_EPT_VIOL_GVA_TRANSLATED (1ull << 8)  /* 1: access to the translated GPA; 0: paging-structure access */
#define MV_EPT_VIOL_NMI_UNBLOCK    (1ull << 12) /* NMI unblocking due to IRET */

/*
 * KVM's __vmx_handle_ept_violation (arch/x86/kvm/vmx/common.h, 6.18):
 * exit qualification -> page-fault error code. ACC_READ -> USER,
 * ACC_WRITE -> WRITE, ACC_INSTR -> FETCH; any of READABLE / WRITABLE /
 * EXECUTABLE (bits 5:3, EPT_VIOLATION_PROT_MASK) -> PRESENT; when
 * GVA_VALID, GVA_TRANSLATED ? GUEST_FINAL : GUEST_PAGE. USER_EXEC (bit 6)
 * is not folded into PRESENT: 6.18's EPT_VIOLATION_PROT_MASK is bits 5:3
 * only (KVM does not emulate MBEC). Every other bit is ignored.
 */
uint64_t mv_ept_violation_pferr(uint64_t exit_qual);

/* ---- Guest paging-structure entries (SDM Vol. 3A 4.3-4.5, Tables 4-4 to 4-20) ---- */
#define MV_X86_PTE_P         (1ull << 0)   /* present */
#define MV_X86_PTE_RW        (1ull << 1)   /* R/W: 0 = writes may not be allowed */
#define MV_X86_PTE_US        (1ull << 2)   /* U/S: 0 = user-mode accesses not allowed */
#define MV_X86_PTE_PWT       (1ull << 3)   /* page-level write-through */
#define MV_X86_PTE_PCD       (1ull << 4)   /* page-level cache disable */
#define MV_X86_PTE_A         (1ull << 5)   /* accessed (every entry but a PAE PDPTE) */
#define MV_X86_PTE_D         (1ull << 6)   /* dirty (entries that map a page) */
#define MV_X86_PTE_PS        (1ull << 7)   /* page size (PDE, PDPTE); PAT in a 4 KiB PTE */
#define MV_X86_PTE_G         (1ull << 8)   /* global (CR4.PGE; not modelled: no effect) */
#define MV_X86_PTE_PAT_LARGE (1ull << 12)  /* PAT of a 2 MiB / 4 MiB / 1 GiB page */
#define MV_X86_PTE_XD        (1ull << 63)  /* execute-disable if EFER.NXE, else reserved (PAE, 4/5-level) */

/* ---- Guest paging ---- */
typedef struct mv_x86_paging {
	uint64_t cr0, cr3, cr4, efer;
	uint64_t pdptr[4];        /* PAE: the PDPTE registers (see mv_x86_load_pdptrs) */
	unsigned maxphyaddr;      /* guest MAXPHYADDR in bits (CPUID 80000008H EAX[7:0]), 32..52; 0 = 52 */
} mv_x86_paging;

typedef enum mv_x86_acc {
	MV_X86_READ,
	MV_X86_WRITE,
	MV_X86_FETCH,
} mv_x86_acc;

/*
 * How the guest walk reaches paging structures: every read of an entry
 * and every A/D update is a GPA access through EPT. Both see an 8-byte
 * aligned @gpa and the little-endian 64-bit value there (32-bit paging's
 * 4-byte entries are read and compared-and-swapped as the aligned 8 bytes
 * that hold them, so an access never crosses a page).
 * @read: 0 with *val, a positive "EPT stopped this access" (the engine
 * then reports an EPT violation with GVA_TRANSLATED = 0), or a negative
 * errno. @cmpxchg: atomically replace @old by @new: 0 done, -EAGAIN when
 * the value was not @old (the walk restarts), a positive stop as @read
 * (stop_write is set: the access was the A/D write), or a negative errno.
 */
typedef struct mv_x86_pt_ops {
	int (*read)(void *arg, uint64_t gpa, uint64_t *val);
	int (*cmpxchg)(void *arg, uint64_t gpa, uint64_t old, uint64_t new);
} mv_x86_pt_ops;

/*
 * The result of a walk: exactly one of success (no flag), guest_pf, gp or
 * ept_stop. Accessed / dirty flags are set only on success (KVM's
 * walk_addr_generic; a fault sets none).
 */
typedef struct mv_x86_walk {
	uint64_t gpa;             /* translated address (success) */
	uint64_t page_size;       /* 4K, 2M, 4M (32-bit paging, CR4.PSE), 1G; paging off: 4K */
	bool writable, user, nx;  /* effective rights: R/W and U/S of every entry, XD of any (NXE) */
	bool dirty;               /* the final entry's D flag is set (a cached translation with
				     dirty == false must be walked again for a write) */
	/* failure: */
	bool guest_pf;            /* a #PF for the guest: pferr, cr2 */
	uint64_t pferr;           /* MV_PFERR_* (P, W/R, U/S, RSVD, I/D) */
	uint64_t cr2;             /* the faulting linear address (= gva) */
	bool gp;                  /* #GP(0) for the guest: non-canonical address (4/5-level, SDM 3.3.7.1);
				     from mv_x86_load_pdptrs: a reserved bit in a present PDPTE */
	bool ept_stop;            /* a paging-structure access stopped in EPT at stop_gpa (stop_rc) */
	bool stop_write;          /* ... and it was the A/D update (a write), not a read */
	uint64_t stop_gpa;        /* the entry's own GPA (4-byte entries: not rounded down) */
	int stop_rc;
} mv_x86_walk;

/* Restarts (cmpxchg -EAGAIN) after which mv_x86_guest_walk gives up with -EAGAIN. */
#define MV_X86_WALK_MAX_RESTARTS 64

/*
 * Translate @gva for an access of @acc at CPL @cpl (0..3; 3 = user-mode
 * access) under @paging (SDM Vol. 3A ch. 4). The mode comes from CR0.PG,
 * CR4.PAE and EFER.LMA: paging off (GPA = GVA, any 64-bit value accepted,
 * 4K, full rights), 32-bit (CR4.PSE 4 MiB pages with PSE-36 up to
 * min(MAXPHYADDR, 40) bits), PAE (PDPTEs from paging->pdptr), 4-level or
 * 5-level (CR4.LA57; 2 MiB and 1 GiB pages). Rights of SDM 4.6 with
 * CR0.WP, CR4.SMEP, CR4.SMAP (explicit accesses, EFLAGS.AC = 0) and
 * EFER.NXE; reserved bits of SDM 4.7 (above MAXPHYADDR, PS in a PML4E /
 * PML5E, large-page address bits, XD without NXE) -> #PF with RSVD | P.
 * The error code follows SDM 4.7 (I/D only when SMEP, or PAE paging and
 * NXE). Protection keys, CET shadow stacks, HLAT, LAM and implicit
 * supervisor accesses are not modelled. On success, A is set top-down in
 * every entry used and D in the final entry for a write, each by one
 * @cmpxchg. Non-canonical @gva (4/5-level) -> w->gp, nothing read.
 * Returns 0 with *w filled, -EINVAL for a state the processor cannot be
 * in (cpl > 3, @acc not an mv_x86_acc, EFER.LMA without CR0.PG and
 * CR4.PAE, maxphyaddr outside 32..52, gva above 4 GiB in 32-bit / PAE
 * paging, a present PDPTE register with a reserved bit), -EAGAIN after
 * MV_X86_WALK_MAX_RESTARTS restarts, or a negative errno from @ops.
 */
int mv_x86_guest_walk(const mv_x86_paging *paging, uint64_t gva, mv_x86_acc acc, unsigned cpl,
		      const mv_x86_pt_ops *ops, void *arg, mv_x86_walk *w);

/*
 * The access-rights check of SDM Vol. 3A 4.6 for a translation whose
 * effective rights are w->writable / user / nx: 0 when @acc at @cpl is
 * allowed, else the #PF error code (PRESENT | W/R | U/S | I/D). The walk
 * applies it after its last level; a cached translation (TLB hit) must
 * apply it again, as the answer depends on CPL, CR0.WP and CR4.SMEP/SMAP.
 * Paging off (CR0.PG = 0): always 0.
 */
uint64_t mv_x86_rights_fault(const mv_x86_paging *paging, const mv_x86_walk *w, mv_x86_acc acc,
			     unsigned cpl);

/*
 * MOV to CR3 (or CR0/CR4) entering PAE paging (SDM Vol. 3A 4.4.1; KVM's
 * load_pdptrs): read the four PDPTEs at CR3[31:5] through @ops and load
 * them into paging->pdptr. A present PDPTE with a reserved bit (2:1, 8:5,
 * 63:MAXPHYADDR) -> w->gp and nothing is loaded; a stopped read ->
 * w->ept_stop. Returns 0 with *w, -EINVAL for a bad maxphyaddr, or a
 * negative errno from @ops.
 */
int mv_x86_load_pdptrs(mv_x86_paging *paging, const mv_x86_pt_ops *ops, void *arg,
		       mv_x86_walk *w);

/* ---- this host ---- */
/*
 * MAXPHYADDR of this host: CPUID.80000008H:EAX[7:0] (SDM Vol. 2A, CPUID),
 * 36 when the leaf is missing (SDM Vol. 3A 4.1.4), 48 on a host without
 * CPUID. What mv_x86_vm_config.host_maxphyaddr 0 stands for.
 */
unsigned mv_x86_host_maxphyaddr(void);
/* Does this host's KVM use two-dimensional paging (kvm_intel.ept or kvm_amd.npt on)? */
bool mv_x86_host_kvm_tdp(void);
/*
 * The guest-physical bits this host's KVM holds memslots to (x86's
 * kvm_arch_prepare_memory_region refuses a slot past kvm_mmu_max_gfn()):
 * the host MAXPHYADDR with EPT / NPT, 52 with shadow paging.
 */
unsigned mv_x86_host_kvm_phys_bits(void);

/* ---- VMs ---- */
typedef struct mv_x86_vm_config {
	unsigned ept_levels;         /* 4 (0 = default) or 5 */
	bool no_ept_ad;              /* clear EPTP[6] (A/D flags off) */
	unsigned host_maxphyaddr;    /* 0 = CPUID 0x80000008 of this host */
	unsigned guest_maxphyaddr;   /* 0 = host_maxphyaddr */
	bool nx_huge_pages;          /* KVM's nx_huge_pages mitigation */
	bool lazy_split;             /* logging does not split huge pages eagerly (split on write fault) */
	bool prefetch;               /* map up to 8 neighbouring PTEs on a fault (direct_pte_prefetch) */
	unsigned nr_slots;           /* 0 = MV_MEMSLOT_SLOTS_NUM */
	unsigned nr_as;              /* 0 = 1 */
	unsigned max_vcpus;          /* 0 = 64 */
	mv_soft_host *host;          /* NULL = the VM owns one */
	const mv_pgt_mm_ops *mm_ops; /* NULL = the VM owns a pool */
	void *mm_arg;
	const mv_allocator *alloc;
	/*
	 * For tests: the memslot generation before the first change (0), so
	 * that a test can drive the 19 bits MMIO SPTEs keep across their wrap.
	 */
	uint64_t memslot_generation;
} mv_x86_vm_config;

int mv_x86_vm_new(const mv_x86_vm_config *cfg, mv_x86_vm **out, mv_error *err);
void mv_x86_vm_free(mv_x86_vm *vm);
/* KVM_SET_USER_MEMORY_REGION (x86 prepare: slot end beyond host MAXPHYADDR -> -EINVAL). */
int mv_x86_vm_set_memslot(mv_x86_vm *vm, const hv_memslot *m);
/* Dirty logging with KVM's semantics (memvirt/soft_dirty.h). */
int mv_x86_vm_enable_manual_dirty_protect(mv_x86_vm *vm, uint32_t flags);
int mv_x86_vm_get_dirty_log(mv_x86_vm *vm, uint32_t slot, uint64_t *bitmap);
int mv_x86_vm_clear_dirty_log(mv_x86_vm *vm, uint32_t slot, uint64_t first_page,
			      uint32_t num_pages, const uint64_t *bitmap);
/* Before any vCPU exists: -EINVAL otherwise, or for a bad size. */
int mv_x86_vm_enable_dirty_ring(mv_x86_vm *vm, uint32_t entries);
int mv_x86_vm_dirty_rings_reset(mv_x86_vm *vm);
/* MMU notifier (as mv_a64_vm_invalidate_range_*), and ageing by host range. */
void mv_x86_vm_invalidate_range_start(mv_x86_vm *vm, uint64_t hva_start, uint64_t hva_end);
void mv_x86_vm_invalidate_range_end(mv_x86_vm *vm, uint64_t hva_start, uint64_t hva_end);
bool mv_x86_vm_test_young(mv_x86_vm *vm, uint64_t hva_start, uint64_t hva_end);
bool mv_x86_vm_clear_young(mv_x86_vm *vm, uint64_t hva_start, uint64_t hva_end);
uint64_t mv_x86_vm_invalidate_seq(mv_x86_vm *vm);
/* Test hook between reading the invalidation sequence and installing (see soft_arm64.h). */
void mv_x86_vm_set_fault_hook(mv_x86_vm *vm, void (*fn)(void *arg, mv_x86_vcpu *vcpu, uint64_t gpa),
			      void *arg);
mv_iobus *mv_x86_vm_mmio_bus(mv_x86_vm *vm);
mv_iobus *mv_x86_vm_pio_bus(mv_x86_vm *vm);
mv_soft_host *mv_x86_vm_host(mv_x86_vm *vm);
mv_ept *mv_x86_vm_ept(mv_x86_vm *vm);   /* tests and stats; take care with locking */

typedef struct mv_x86_vm_stats {
	uint64_t faults;            /* EPT violations handled */
	uint64_t fast_fixed;        /* fixed by the lock-free fast path */
	uint64_t mapped[4];         /* leaves installed per level (1 = 1G, 2 = 2M, 3 = 4K) */
	uint64_t prefetched;
	uint64_t mmio_sptes;        /* MMIO SPTEs installed */
	uint64_t mmio_fast;         /* misconfig exits served from a current MMIO SPTE */
	uint64_t mmio_stale;        /* MMIO SPTEs found with an old generation */
	uint64_t mmio_gen_wraps;    /* memslot changes that wrapped the MMIO generation: EPT zapped */
	uint64_t retries;           /* faults retried after an invalidation or a lost race */
	uint64_t nx_splits;         /* huge pages refused / split for executable code */
	uint64_t eager_splits;      /* huge pages split when logging started */
} mv_x86_vm_stats;
void mv_x86_vm_get_stats(mv_x86_vm *vm, mv_x86_vm_stats *st);

/* ---- vCPUs ---- */
int mv_x86_vcpu_new(mv_x86_vm *vm, unsigned id, mv_x86_vcpu **out, mv_error *err);
void mv_x86_vcpu_free(mv_x86_vcpu *vcpu);
/* Set CR0/CR3/CR4/EFER (and PDPTEs); flushes the vCPU's TLB. */
void mv_x86_vcpu_set_paging(mv_x86_vcpu *vcpu, const mv_x86_paging *p);
void mv_x86_vcpu_get_paging(const mv_x86_vcpu *vcpu, mv_x86_paging *p);

/* What the fault path did about one EPT violation / misconfiguration. */
typedef enum mv_x86_action {
	MV_X86_ACT_MAPPED,        /* a leaf was installed (level) */
	MV_X86_ACT_FAST,          /* fast path: W restored by compare-and-swap (page logged dirty) */
	MV_X86_ACT_SPURIOUS,      /* already fixed by another vCPU */
	MV_X86_ACT_RETRY,         /* raced an invalidation or another vCPU */
	MV_X86_ACT_MMIO_SPTE,     /* hole: MMIO SPTE installed, then MMIO emulation */
	MV_X86_ACT_MMIO,          /* MMIO emulation without caching (read-only slot write, GPA beyond MAXPHYADDR, stale SPTE) */
	MV_X86_ACT_MMIO_FAST,     /* EPT misconfig on a current MMIO SPTE: MMIO without a slot lookup */
	MV_X86_ACT_ERROR,         /* KVM_RUN would fail (-EFAULT / -EHWPOISON): sentence in detail */
} mv_x86_action;
const char *mv_x86_action_name(mv_x86_action a);

typedef struct mv_x86_fault_event {
	bool misconfig;           /* EPT misconfiguration rather than violation */
	uint64_t exit_qual;       /* violation only */
	uint64_t gpa, gva;
	uint64_t pferr;           /* mv_ept_violation_pferr(exit_qual); PFERR_RSVD for a misconfiguration */
	/* The caller's, for an MMIO exit (a misconfiguration has no exit qualification): */
	uint8_t len;              /* bytes of the access at gpa in this page, 1..8 */
	bool is_write;
	mv_x86_action action;
	int level;                /* MAPPED: 1, 2 or 3 */
	char detail[160];
} mv_x86_fault_event;
void mv_x86_vcpu_set_trace(mv_x86_vcpu *vcpu, void (*fn)(void *arg, const mv_x86_fault_event *ev),
			   void *arg);

typedef struct mv_x86_access {
	mv_x86_acc acc;
	uint64_t gva;
	uint8_t size;             /* 1, 2, 4 or 8 (an access may cross a page) */
	uint8_t cpl;              /* 0 or 3 */
	uint64_t value;           /* data for writes */
} mv_x86_access;

typedef enum mv_x86_result {
	MV_X86_DONE,              /* performed; out->value for reads / fetches */
	MV_X86_EXIT,              /* out->exit: MMIO, IO, DIRTY_RING_FULL, INTR, INTERNAL_ERROR */
	MV_X86_GUEST_PF,          /* #PF for the guest: out->pferr, out->cr2 */
	MV_X86_GUEST_GP,          /* #GP(0) for the guest: a non-canonical address (mv_x86_walk.gp) */
} mv_x86_result;

typedef struct mv_x86_outcome {
	mv_x86_result result;
	uint64_t value;
	hv_exit *exit;
	uint64_t pferr, cr2;
} mv_x86_outcome;

/*
 * Perform one access: a pending MMIO / PIO read is completed first (see
 * mv_x86_vcpu_complete); a soft-full dirty ring exits with
 * HV_EXIT_DIRTY_RING_FULL before anything is done; a pending kick exits
 * with HV_EXIT_INTR. Then TLB or guest walk + EPT, EPT violations and
 * misconfigurations handled in a loop until the access completes or leaves
 * the guest (MMIO: the in-process MMIO bus first, else HV_EXIT_MMIO).
 * Every re-entry after a handled fault checks the ring again (KVM's
 * vcpu_enter_guest): when that fault filled the ring to its soft limit,
 * the access exits with HV_EXIT_DIRTY_RING_FULL before it is performed,
 * and is to be issued again after harvest + reset.
 * Returns 0 with *out, or -EINVAL for a malformed access, -EAGAIN when
 * 64 faults in a row did not let it complete.
 */
int mv_x86_vcpu_access(mv_x86_vcpu *vcpu, const mv_x86_access *a, mv_x86_outcome *out);
/* Port I/O: the PIO bus first, else HV_EXIT_IO (count 1). Same pre-checks as access. */
int mv_x86_vcpu_pio(mv_x86_vcpu *vcpu, uint16_t port, uint8_t size, bool is_write, uint32_t value,
		    mv_x86_outcome *out);
/*
 * Complete the pending MMIO / IO read with the data user space put in the
 * exit record; *value gets it (zero-extended). No-op when nothing is pending.
 */
void mv_x86_vcpu_complete(mv_x86_vcpu *vcpu, uint64_t *value);
/* Make the next access/pio return HV_EXIT_INTR (any thread). */
void mv_x86_vcpu_kick(mv_x86_vcpu *vcpu);
int mv_x86_vcpu_dirty_ring_harvest(mv_x86_vcpu *vcpu, void (*fn)(void *, const hv_dirty_gfn *),
				   void *opaque);

#endif
