/*
 * The x86 access engine's own interfaces: access.c (mv_x86_vcpu_access /
 * pio / complete: the TLB, the fault loop, exits) over xlate.c (the CPU's
 * translation: guest paging with every paging-structure access through
 * EPT, then EPT for the final GPA, with the exit qualification of a
 * violation) and emulate.c (KVM's emulation of an access the fault path
 * sent to MMIO: a software walk through the memslots, RAM parts performed
 * directly, MMIO parts offered to the bus or to user space).
 *
 * An access is cut at page boundaries into at most two parts (8 bytes
 * cross at most one boundary); its value is little-endian, part n holding
 * bytes [off, off + len).
 */
#ifndef MV_SOFT_X86_ACCESS_H
#define MV_SOFT_X86_ACCESS_H

#include "soft/x86/x86_internal.h"

#define X86_PAGE_SHIFT 12
#define X86_PAGE_SIZE (1ull << X86_PAGE_SHIFT)
/* KVM_INTERNAL_ERROR_EMULATION (linux/kvm.h): the suberror of an emulation failure. */
#define X86_INTERNAL_ERROR_EMULATION 1u

/* One page's part of an access. */
typedef struct x86_part {
	uint64_t gva;                 /* its first byte */
	unsigned off;                 /* its first byte's offset in the access */
	unsigned len;
	uint64_t gpa;                 /* translated */
	uint64_t host;                /* host address of the first byte (RAM) */
} x86_part;

typedef struct x86_plan {
	mv_x86_acc acc;
	unsigned cpl;
	unsigned size;
	uint64_t value;               /* write data; read data as it is gathered */
	unsigned nparts;
	x86_part part[2];
} x86_plan;

/* Why a translation stopped. */
typedef enum x86_xfault_kind {
	X86_XF_GUEST_PF,              /* #PF for the guest: pferr, cr2 */
	X86_XF_GUEST_GP,              /* #GP(0): a non-canonical address */
	X86_XF_VIOLATION,             /* EPT violation: qual, gpa, gva */
	X86_XF_MISCONFIG,             /* EPT misconfiguration at gpa */
	X86_XF_ERROR,                 /* the walk failed with err (a state the CPU cannot be in) */
} x86_xfault_kind;

typedef struct x86_xfault {
	x86_xfault_kind kind;
	bool table;                   /* a paging-structure access, not the final GPA */
	bool write;                   /* the stopped access was a write (A/D update, or the final write) */
	uint64_t gpa, gva;
	uint64_t qual;                /* exit qualification of a violation */
	uint64_t pferr, cr2;
	int err;
} x86_xfault;

/* A successful translation of one linear address. */
typedef struct x86_xlate {
	uint64_t gpa;
	uint64_t host;                /* host address of the byte at the linear address */
	unsigned rights;              /* MV_TLB_* both the guest's paging and EPT grant at this CPL */
} x86_xlate;

/* ---- xlate.c ---- */
/*
 * The CPU's translation of @gva for @acc at @cpl, with vm->mmu_lock held
 * for reading: true with *out (EPT accessed / dirty flags set as the CPU
 * sets them); false with *f.
 */
bool x86_translate(mv_x86_vcpu *vcpu, mv_x86_acc acc, unsigned cpl, uint64_t gva, x86_xlate *out,
		   x86_xfault *f);

/* ---- emulate.c ---- */
/*
 * KVM's x86_emulate_instruction for the access of @p (no lock held): 0
 * with *out (DONE, EXIT for MMIO or an emulation failure, or a guest
 * fault of the software walk), or a negative errno of the walk.
 */
int x86_emulate(mv_x86_vcpu *vcpu, x86_plan *p, mv_x86_outcome *out);

/* ---- access.c ---- */
/* A fresh exit record (the previous one's data cleared) for @reason. */
hv_exit *x86_exit_new(mv_x86_vcpu *vcpu, hv_exit_reason reason);
/* The run ends with vcpu->exit. */
void x86_outcome_exit(mv_x86_vcpu *vcpu, mv_x86_outcome *out);
/* A read that exited waits for user space's @len bytes, placed at byte @shift over @value. */
void x86_pend_read(mv_x86_vcpu *vcpu, bool is_io, unsigned len, unsigned shift, uint64_t value);

/* ---- host memory: relaxed atomics of the access size when aligned, bytes otherwise ---- */
static inline uint64_t x86_host_load(uint64_t host, unsigned n)
{
	void *p = (void *)(uintptr_t)host;
	uint64_t v = 0;

	if (!(host & (n - 1)) && (n & (n - 1)) == 0) {
		switch (n) {
		case 1: return __atomic_load_n((uint8_t *)p, __ATOMIC_RELAXED);
		case 2: return __atomic_load_n((uint16_t *)p, __ATOMIC_RELAXED);
		case 4: return __atomic_load_n((uint32_t *)p, __ATOMIC_RELAXED);
		case 8: return __atomic_load_n((uint64_t *)p, __ATOMIC_RELAXED);
		}
	}
	for (unsigned b = 0; b < n; b++)
		v |= (uint64_t)__atomic_load_n((uint8_t *)p + b, __ATOMIC_RELAXED) << (8 * b);
	return v;
}

static inline void x86_host_store(uint64_t host, unsigned n, uint64_t v)
{
	void *p = (void *)(uintptr_t)host;

	if (!(host & (n - 1)) && (n & (n - 1)) == 0) {
		switch (n) {
		case 1: __atomic_store_n((uint8_t *)p, (uint8_t)v, __ATOMIC_RELAXED); return;
		case 2: __atomic_store_n((uint16_t *)p, (uint16_t)v, __ATOMIC_RELAXED); return;
		case 4: __atomic_store_n((uint32_t *)p, (uint32_t)v, __ATOMIC_RELAXED); return;
		case 8: __atomic_store_n((uint64_t *)p, v, __ATOMIC_RELAXED); return;
		}
	}
	for (unsigned b = 0; b < n; b++)
		__atomic_store_n((uint8_t *)p + b, (uint8_t)(v >> (8 * b)), __ATOMIC_RELAXED);
}

/* Bytes [off, off + len) of @v, as the low bytes. */
static inline uint64_t x86_bytes(uint64_t v, unsigned off, unsigned len)
{
	v >>= 8 * off;
	return len >= 8 ? v : v & ((1ull << (8 * len)) - 1);
}

/* Little-endian @len bytes of @buf / into @buf (exit records, bus data). */
static inline uint64_t x86_le_load(const uint8_t *buf, unsigned len)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < len; i++)
		v |= (uint64_t)buf[i] << (8 * i);
	return v;
}

static inline void x86_le_store(uint8_t *buf, unsigned len, uint64_t v)
{
	for (unsigned i = 0; i < len; i++)
		buf[i] = (uint8_t)(v >> (8 * i));
}

#endif
