/*
 * What the pieces of KVM's guest-abort handling share between themselves
 * (abort.c dispatches to mmio.c, user_mem_abort.c and inject.c; vm.c owns
 * the invalidation state user_mem_abort.c checks). Nothing outside these
 * files includes it: the access engine sees only a64_internal.h.
 */
#ifndef MV_SOFT_A64_ABORT_H
#define MV_SOFT_A64_ABORT_H

#include "soft/arm64/a64_internal.h"

/* KVM_INTERNAL_ERROR_* numbers carried by an ERROR exit (linux/kvm.h). */
#define A64_INTERNAL_ERROR_EMULATION 1u   /* ISV = 0: the instruction is not decoded */
#define A64_INTERNAL_ERROR_UNEXPECTED 4u  /* any other abort the handler refuses */

/* One decoded stage-2 abort (KVM's kvm_vcpu_trap_* / kvm_vcpu_dabt_* accessors). */
typedef struct a64_abort {
	const a64_fault *f;
	unsigned ec;           /* ESR_EL2.EC */
	unsigned fsc;          /* ESR_EL2.{I,D}FSC, bits[5:0] */
	bool is_iabt;          /* EC 0x20 / 0x21 */
	bool s1ptw;
	bool write_fault;      /* kvm_is_write_fault */
	uint64_t ipa;          /* HPFAR_EL2.FIPA, page aligned */
} a64_abort;

/* FSC type (bits[5:2] of the code) and level (bits[1:0]) of the families that have one. */
static inline unsigned a64_fsc_type(unsigned fsc)
{
	return fsc & 0x3cu;
}

static inline int a64_fsc_level(unsigned fsc)
{
	return (int)(fsc & 3u);
}

/*
 * End @ev with MV_A64_ACT_ERROR: the sentence in ev->detail, and an
 * HV_EXIT_INTERNAL_ERROR exit (data: ESR_EL2, IPA, FAR_EL2) for user space.
 */
void a64_abort_error(mv_a64_vcpu *vcpu, const a64_abort *a, mv_a64_abort_event *ev,
		     uint32_t suberror, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* io_mem_abort (mmio.c): an access outside RAM at @ipa (FAR[11:0] included). */
void a64_io_mem_abort(mv_a64_vcpu *vcpu, const a64_abort *a, uint64_t ipa, mv_a64_abort_event *ev);

/*
 * user_mem_abort (user_mem_abort.c): a translation or permission fault on
 * RAM of @slot. Called with slots_lock held for reading.
 */
void a64_user_mem_abort(mv_a64_vcpu *vcpu, const a64_abort *a, const mv_memslot *slot,
			mv_a64_abort_event *ev);

/*
 * inject_abt64 (inject.c): a synchronous instruction or data abort with
 * @fsc at @addr taken to EL1 (EC by the EL the vCPU was at, IL = 1).
 */
void a64_inject_abort(mv_a64_vcpu *vcpu, bool is_iabt, uint64_t addr, unsigned fsc);

#endif
