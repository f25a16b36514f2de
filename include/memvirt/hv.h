/*
 * The accelerator interface: one API with the shape of the KVM API, which
 * every accelerator implements ("kvm": real /dev/kvm ioctls; "soft": the
 * in-process KVM MMU of later issues). Nothing above this header includes
 * <linux/kvm.h>; layers above see only memslots (slot, flags, gpa, size,
 * hva), exit records and dirty logs -- exactly the KVM contract.
 *
 * Return values: 0 (or a count where documented) on success, otherwise the
 * negative errno the KVM ioctl would give (so the same call on two
 * accelerators can be compared). Constructors also fill an mv_error
 * sentence.
 *
 * Threads: a vCPU is run by one thread at a time. hv_vcpu_kick may be
 * called from any thread. Memslot, dirty-log, coalesced and ioeventfd
 * calls may come from any thread (the VM serialises them); the coalesced
 * ring and the dirty rings are drained by whoever calls the drain /
 * harvest function, concurrently with running vCPUs.
 */
#ifndef MEMVIRT_HV_H
#define MEMVIRT_HV_H

#include "memvirt/base.h"

#include <stddef.h>
#include <stdint.h>

typedef struct hv_vm hv_vm;
typedef struct hv_vcpu hv_vcpu;

/* Guest architecture of a VM. */
typedef enum hv_arch {
	HV_ARCH_X86_64,
	HV_ARCH_ARM64,
} hv_arch;

/* The bus an address is on (MMIO = guest physical memory, PIO = x86 ports). */
typedef enum hv_bus {
	HV_BUS_MMIO,
	HV_BUS_PIO,
} hv_bus;

/* Host page size that memslots and dirty bitmaps are counted in. */
#define HV_PAGE_SIZE 4096u
#define HV_PAGE_SHIFT 12

/* ------------------------------------------------------------------ */
/* VMs                                                                  */

typedef struct hv_vm_config {
	hv_arch arch;
	/* Allocator for the accelerator's own structures; NULL = libc. */
	const mv_allocator *alloc;
} hv_vm_config;

/* Names of the accelerators compiled in, NULL-terminated ("kvm", ...). */
const char *const *hv_accel_names(void);

/*
 * Create a VM on accelerator @accel ("kvm"). Errors: -ENOENT unknown
 * accelerator; -ENODEV the accelerator is not usable on this host (for kvm:
 * /dev/kvm absent or not openable; the sentence says which); -EINVAL arch
 * not supported by it; else the errno of the failing step.
 */
int hv_vm_create(const char *accel, const hv_vm_config *cfg, hv_vm **out, mv_error *err);
/* Destroy the VM. All its vCPUs must have been destroyed. NULL is a no-op. */
void hv_vm_destroy(hv_vm *vm);
const char *hv_vm_accel_name(const hv_vm *vm);
hv_arch hv_vm_arch(const hv_vm *vm);

/* Capabilities (KVM_CHECK_EXTENSION). 0 = absent; >0 = present / a limit. */
typedef enum hv_cap {
	HV_CAP_NR_MEMSLOTS,        /* usable slots per address space */
	HV_CAP_NR_AS,              /* address spaces (x86: 2, with SMM) */
	HV_CAP_MAX_VCPUS,
	HV_CAP_READONLY_MEM,
	HV_CAP_MANUAL_DIRTY_PROTECT, /* KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 */
	HV_CAP_DIRTY_RING,         /* max dirty-ring entries per vCPU (0: none) */
	HV_CAP_COALESCED_MMIO,
	HV_CAP_COALESCED_PIO,
	HV_CAP_IOEVENTFD,
	HV_CAP_ARM_NISV,           /* KVM_CAP_ARM_NISV_TO_USER */
} hv_cap;
long hv_vm_check_cap(hv_vm *vm, hv_cap cap);

/* ------------------------------------------------------------------ */
/* Memslots (KVM_SET_USER_MEMORY_REGION)                                */

#define HV_MEM_LOG_DIRTY_PAGES (1u << 0)
#define HV_MEM_READONLY        (1u << 1)

/* Slot number: address-space id in bits [31:16], slot id in [15:0]. */
#define HV_SLOT(as_id, id) (((uint32_t)(as_id) << 16) | (uint16_t)(id))
#define HV_SLOT_AS(slot) ((uint16_t)((slot) >> 16))
#define HV_SLOT_ID(slot) ((uint16_t)(slot))

typedef struct hv_memslot {
	uint32_t slot;
	uint32_t flags;      /* HV_MEM_* */
	uint64_t gpa;        /* page aligned */
	uint64_t size;       /* bytes, page multiple; 0 deletes the slot */
	void *hva;           /* page aligned host address of gpa */
} hv_memslot;

/*
 * Create, delete (size 0), move (same size, new gpa) or change the flags of
 * a slot, with KVM's rules and errors: -EINVAL misaligned gpa/size/hva,
 * bad flags, slot id or as id out of range, size/hva change of an existing
 * slot, too many pages; -EEXIST overlap with another slot of the same
 * address space. A failed call changes nothing.
 */
int hv_set_memslot(hv_vm *vm, const hv_memslot *m);

/* ------------------------------------------------------------------ */
/* Dirty logging                                                        */

/* Number of uint64_t words in the dirty bitmap of a slot of @size bytes. */
#define HV_DIRTY_BITMAP_WORDS(size) \
	((((size) >> HV_PAGE_SHIFT) + 63) / 64)

/*
 * KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 with flags HV_DIRTY_PROTECT_* : after
 * it, hv_get_dirty_log no longer re-protects; hv_clear_dirty_log does.
 * With INIT_SET, a slot starts all dirty when logging is turned on.
 */
#define HV_DIRTY_PROTECT_ENABLE   (1u << 0)
#define HV_DIRTY_PROTECT_INIT_SET (1u << 1)
int hv_enable_manual_dirty_protect(hv_vm *vm, uint32_t flags);

/*
 * KVM_GET_DIRTY_LOG: copy the slot's dirty bitmap (bit n = page n of the
 * slot, HV_DIRTY_BITMAP_WORDS(size) words) into @bitmap and, unless manual
 * protection is on, clear it and write-protect again. As KVM: -EINVAL slot
 * id out of range; -ENOENT the slot is empty or does not log dirty pages;
 * -ENXIO a dirty ring is in use.
 */
int hv_get_dirty_log(hv_vm *vm, uint32_t slot, uint64_t *bitmap);
/*
 * KVM_CLEAR_DIRTY_LOG: clear (and re-protect) the pages of @bitmap set, bit
 * 0 = page @first_page. @first_page must be a multiple of 64 and
 * @num_pages too unless it reaches the end of the slot (-EINVAL otherwise).
 */
int hv_clear_dirty_log(hv_vm *vm, uint32_t slot, uint64_t first_page,
		       uint32_t num_pages, const uint64_t *bitmap);

/*
 * KVM_CAP_DIRTY_LOG_RING: one ring of @entries (a power of two, at most
 * HV_CAP_DIRTY_RING) per vCPU. Must be called before any vCPU is created
 * (-EINVAL otherwise). Bitmap dirty logging is then unavailable.
 */
int hv_enable_dirty_ring(hv_vm *vm, uint32_t entries);

/* One harvested dirty-ring entry: page @offset (in pages) of @slot. */
typedef struct hv_dirty_gfn {
	uint32_t slot;
	uint64_t offset;
} hv_dirty_gfn;

/*
 * Collect the entries of @vcpu's ring published since the last harvest, in
 * ring order, calling @fn for each and marking it harvested. Returns the
 * number collected. Safe while the vCPU runs.
 */
int hv_vcpu_dirty_ring_harvest(hv_vcpu *vcpu, void (*fn)(void *opaque, const hv_dirty_gfn *g),
			       void *opaque);
/* KVM_RESET_DIRTY_RINGS: recycle harvested entries and re-protect those
 * pages. Returns the number of entries reset. */
int hv_dirty_rings_reset(hv_vm *vm);

/* ------------------------------------------------------------------ */
/* Coalesced MMIO/PIO and ioeventfd                                     */

/*
 * Writes inside a coalesced zone do not exit: they are queued in one ring
 * per VM, which the VMM drains before dispatching any other exit so the
 * device sees the writes in guest order. -ENOTSUP without the capability.
 */
int hv_coalesced_zone_add(hv_vm *vm, hv_bus bus, uint64_t addr, uint32_t size);
int hv_coalesced_zone_del(hv_vm *vm, hv_bus bus, uint64_t addr, uint32_t size);

typedef struct hv_coalesced_write {
	hv_bus bus;
	uint64_t addr;
	uint32_t len;        /* 1..8 */
	uint8_t data[8];     /* guest byte order */
} hv_coalesced_write;

/* Drain the ring in order into @fn. Returns the number of writes drained. */
int hv_coalesced_drain(hv_vm *vm, void (*fn)(void *opaque, const hv_coalesced_write *w),
		       void *opaque);

/*
 * KVM_IOEVENTFD: a guest write of @len bytes (0 = any length, MMIO only) to
 * @addr signals eventfd @fd instead of exiting; with @datamatch only when
 * the value equals @data. -EEXIST duplicate, -ENOENT on delete if absent.
 */
typedef struct hv_ioeventfd {
	hv_bus bus;
	uint64_t addr;
	uint32_t len;
	int fd;
	bool datamatch;
	uint64_t data;
} hv_ioeventfd;
int hv_ioeventfd_add(hv_vm *vm, const hv_ioeventfd *e);
int hv_ioeventfd_del(hv_vm *vm, const hv_ioeventfd *e);

/* ------------------------------------------------------------------ */
/* vCPUs and exits                                                      */

/* Create vCPU @id (x86: also its initial APIC id). Errors as KVM_CREATE_VCPU. */
int hv_vcpu_create(hv_vm *vm, uint32_t id, hv_vcpu **out, mv_error *err);
/* Destroy a vCPU that is not running. NULL is a no-op. */
void hv_vcpu_destroy(hv_vcpu *vcpu);
uint32_t hv_vcpu_id(const hv_vcpu *vcpu);

typedef enum hv_exit_reason {
	HV_EXIT_MMIO,             /* complete reads by filling mmio.data, then run again */
	HV_EXIT_IO,               /* x86 port I/O; complete INs by filling io.data */
	HV_EXIT_HLT,
	HV_EXIT_SHUTDOWN,         /* x86 triple fault */
	HV_EXIT_SYSTEM_EVENT,     /* PSCI off/reset, ... */
	HV_EXIT_INTERNAL_ERROR,   /* e.g. emulation failure */
	HV_EXIT_FAIL_ENTRY,       /* the hardware refused to enter the guest */
	HV_EXIT_DIRTY_RING_FULL,  /* harvest + reset, then run again */
	HV_EXIT_ARM_NISV,         /* arm64 data abort without valid syndrome */
	HV_EXIT_INTR,             /* kicked (hv_vcpu_kick) or interrupted by a signal */
	HV_EXIT_UNKNOWN,          /* an exit the interface does not model; see unknown.raw */
} hv_exit_reason;

/* System event types (KVM_SYSTEM_EVENT_*). */
enum {
	HV_SYSTEM_EVENT_SHUTDOWN = 1,
	HV_SYSTEM_EVENT_RESET = 2,
	HV_SYSTEM_EVENT_CRASH = 3,
};

#define HV_EXIT_MAX_DATA 16

/*
 * One exit. Owned by the vCPU; valid until the next hv_vcpu_run. Fill the
 * data of an MMIO read / port IN here before running again: the next run
 * completes the access first (as KVM does), even after an HV_EXIT_INTR.
 */
typedef struct hv_exit {
	hv_exit_reason reason;
	union {
		struct {
			uint64_t gpa;
			uint32_t len;        /* 1..8 */
			bool is_write;
			uint8_t data[8];     /* guest byte order */
		} mmio;
		struct {
			uint16_t port;
			uint8_t size;        /* 1, 2 or 4 */
			bool is_write;       /* OUT */
			uint32_t count;      /* > 1 for string I/O (rep ins/outs) */
			uint8_t *data;       /* count * size bytes, in order */
		} io;
		struct {
			uint32_t type;       /* HV_SYSTEM_EVENT_* */
			uint32_t ndata;
			uint64_t data[HV_EXIT_MAX_DATA];
		} system_event;
		struct {
			uint32_t suberror;   /* KVM_INTERNAL_ERROR_* numbering */
			uint32_t ndata;
			uint64_t data[HV_EXIT_MAX_DATA];
		} internal;
		struct {
			uint64_t hardware_reason;
			uint32_t cpu;
		} fail_entry;
		struct {
			uint64_t esr_iss;    /* ESR_EL2 ISS bits (ISV = 0) */
			uint64_t fault_ipa;
		} arm_nisv;
		struct {
			uint32_t raw;        /* the accelerator's own exit number */
		} unknown;
	};
} hv_exit;

/*
 * Enter the guest until the next exit; *exit points to the vCPU's record.
 * Returns 0 (the exit says why, HV_EXIT_INTR included) or a negative errno
 * when the vCPU could not run at all.
 */
int hv_vcpu_run(hv_vcpu *vcpu, hv_exit **exit);
/*
 * Make the vCPU's current or next hv_vcpu_run return HV_EXIT_INTR soon
 * (KVM: immediate_exit + a signal to the running thread). Any thread.
 * A kick that arrives while the vCPU is outside run is not lost: the next
 * run returns at once.
 */
void hv_vcpu_kick(hv_vcpu *vcpu);
/* Name of an exit reason ("mmio", "io", "hlt", ...). */
const char *hv_exit_reason_name(hv_exit_reason r);

/* ------------------------------------------------------------------ */
/* x86 vCPU state (the subset a PVH boot and exit diagnostics need)     */

typedef struct hv_x86_regs {
	uint64_t rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp;
	uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
	uint64_t rip, rflags;
} hv_x86_regs;

typedef struct hv_x86_segment {
	uint64_t base;
	uint32_t limit;          /* in bytes - 1, after granularity scaling */
	uint16_t selector;
	uint8_t type;            /* SDM Vol. 3A 3.4.5.1 segment type */
	uint8_t present, dpl, db, s, l, g, avl;
	uint8_t unusable;
} hv_x86_segment;

typedef struct hv_x86_dtable {
	uint64_t base;
	uint16_t limit;
} hv_x86_dtable;

typedef struct hv_x86_sregs {
	hv_x86_segment cs, ds, es, fs, gs, ss, tr, ldt;
	hv_x86_dtable gdt, idt;
	uint64_t cr0, cr2, cr3, cr4, cr8, efer, apic_base;
} hv_x86_sregs;

typedef struct hv_x86_cpuid {
	uint32_t function, index;
	uint32_t flags;          /* HV_CPUID_INDEX_SIGNIFICANT when @index matters */
	uint32_t eax, ebx, ecx, edx;
} hv_x86_cpuid;
#define HV_CPUID_INDEX_SIGNIFICANT (1u << 0)

int hv_vcpu_get_regs(hv_vcpu *vcpu, hv_x86_regs *r);
int hv_vcpu_set_regs(hv_vcpu *vcpu, const hv_x86_regs *r);
int hv_vcpu_get_sregs(hv_vcpu *vcpu, hv_x86_sregs *s);
int hv_vcpu_set_sregs(hv_vcpu *vcpu, const hv_x86_sregs *s);
/*
 * KVM_GET_SUPPORTED_CPUID: up to @max entries into @out; returns the number
 * of entries, or -E2BIG if @max is too small.
 */
int hv_vm_supported_cpuid(hv_vm *vm, hv_x86_cpuid *out, size_t max);
int hv_vcpu_set_cpuid(hv_vcpu *vcpu, const hv_x86_cpuid *entries, size_t n);
/*
 * KVM_TRANSLATE: guest virtual -> guest physical with the vCPU's current
 * paging mode. -EFAULT when @gva is not mapped.
 */
int hv_vcpu_translate(hv_vcpu *vcpu, uint64_t gva, uint64_t *gpa);

#endif
