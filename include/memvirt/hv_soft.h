/*
 * The "soft" accelerator's own additions to the accelerator interface
 * (hv.h): what a soft vCPU runs. A soft vCPU has no instruction decoder;
 * its "guest" is an access program: straight-line host C code that performs
 * guest accesses (reads, writes, fetches at a GVA; port I/O) through the
 * soft vCPU's access engine, as the KVM test guest's workloads perform them
 * with real instructions.
 *
 * hv_vcpu_run on a soft vCPU resumes the program until its next access
 * leaves the guest (MMIO or PIO exit, dirty ring full, kick, error), then
 * returns that exit record, exactly as KVM_RUN does. The program runs on
 * a thread of its own that only ever runs while hv_vcpu_run waits for it,
 * so to the caller it behaves as if it ran on the calling thread. A read
 * that exited returns to the program with the data user space put in the
 * exit record (KVM's completion on the next KVM_RUN).
 *
 * When the program returns, the vCPU exits with HV_EXIT_HLT (as a guest
 * that halts with interrupts off) and every later run does the same; a
 * vCPU without a program exits with HV_EXIT_HLT at once.
 *
 * hv_vcpu_kick makes the current run return HV_EXIT_INTR before the
 * program's next access (the program computing without accesses is not
 * interrupted), or the next run return it at once; the program keeps its
 * place, and a read the vCPU had exited for is still completed by the run
 * after. hv_vcpu_destroy on a vCPU whose program is suspended in an access
 * resumes it with -ECANCELED from that access (and from every later one);
 * the program must then return. As with KVM, a destroyed vCPU's id stays
 * taken until the VM is destroyed.
 *
 * The accelerator: hv_vm_create("soft", ...) with HV_ARCH_X86_64 (the
 * x86 soft VM of soft_x86.h: memslots up to the MAXPHYADDR this host's KVM
 * enforces) or HV_ARCH_ARM64 (soft_arm64.h: 40-bit IPA space, 4 KiB
 * granule). Capabilities and errnos are KVM's (docs/hv_soft.md). No x86
 * register state: hv_vcpu_get_regs and friends answer -ENOTSUP.
 */
#ifndef MEMVIRT_HV_SOFT_H
#define MEMVIRT_HV_SOFT_H

#include "memvirt/hv.h"

#include <stdint.h>

/* The program's handle on its vCPU. */
typedef struct hv_soft_cpu hv_soft_cpu;

/* An access program; hv_soft_vcpu_program_done reports its return value. */
typedef int (*hv_soft_program_fn)(hv_soft_cpu *cpu, void *arg);

/*
 * Give soft vCPU @vcpu its program (before it starts: the first run that
 * has a program starts it). -EINVAL when @vcpu is not a soft vCPU, @fn is
 * NULL, or a program already started.
 */
int hv_soft_vcpu_set_program(hv_vcpu *vcpu, hv_soft_program_fn fn, void *arg);
/*
 * Has @vcpu's program returned? Then true with its return value in *@ret
 * (may be NULL). False for a vCPU that is not soft or has no program.
 */
bool hv_soft_vcpu_program_done(hv_vcpu *vcpu, int *ret);
/* Is @vm on the soft accelerator? */
bool hv_vm_is_soft(const hv_vm *vm);

/*
 * Guest accesses from a program (call them on the program's thread only),
 * at the vCPU's current privilege (CPL 3 / EL0 by default,
 * hv_soft_set_user). Sizes 1, 2, 4, 8 (-EINVAL otherwise); values are
 * little-endian numbers, a read's zero-extended. An access that leaves the
 * guest suspends the program inside the call until the next run: an MMIO
 * or port read then returns the data user space put in the exit record; a
 * dirty-ring-full, kick or error exit performs the access again. A guest
 * fault (x86 #PF or #GP, arm64 stage-1 abort or injected abort) returns
 * -EFAULT, with the details in hv_soft_last_fault; -ECANCELED when the
 * vCPU is being destroyed; -EINVAL for what the access engine refuses.
 */
int hv_soft_read(hv_soft_cpu *cpu, uint64_t gva, unsigned size, uint64_t *value);
int hv_soft_write(hv_soft_cpu *cpu, uint64_t gva, unsigned size, uint64_t value);
int hv_soft_fetch(hv_soft_cpu *cpu, uint64_t gva, uint32_t *insn);
/* x86 port I/O, sizes 1, 2, 4 (-ENOTSUP on arm64). */
int hv_soft_pio_in(hv_soft_cpu *cpu, uint16_t port, unsigned size, uint32_t *value);
int hv_soft_pio_out(hv_soft_cpu *cpu, uint16_t port, unsigned size, uint32_t value);
/* Run the next accesses at user (true) or supervisor privilege. */
void hv_soft_set_user(hv_soft_cpu *cpu, bool user);
/* The vCPU's index (hv_vcpu_create's id). */
uint32_t hv_soft_cpu_id(const hv_soft_cpu *cpu);

typedef struct hv_soft_fault {
	uint64_t addr;        /* x86 #PF: CR2; #GP: the non-canonical address; arm64: FAR_EL1 */
	uint64_t code;        /* x86: the error code (#GP: 0); arm64: ESR_EL1 */
	uint32_t vector;      /* x86: 14 (#PF) or 13 (#GP); arm64: 0 (ESR_EL1.EC tells) */
} hv_soft_fault;
/* The fault of the program's last access that returned -EFAULT. */
void hv_soft_last_fault(const hv_soft_cpu *cpu, hv_soft_fault *f);

/*
 * MMU notifier for host memory that the VMM is about to drop or move
 * (MADV_DONTNEED discard, resize, DIMM unplug): on a soft VM, zap every
 * mapping of [hva, hva + len) (invalidate_range_start) or end the
 * invalidation (end). Real KVM gets these from the kernel; on a KVM VM they
 * are no-ops. The accelerator memory listener (hv_memory.h) calls them for
 * every RAM-block operation that drops host pages (RAM notifiers,
 * ramblock.h), so a VMM using hv_mem need not.
 */
void hv_vm_invalidate_hva_start(hv_vm *vm, uint64_t hva, uint64_t len);
void hv_vm_invalidate_hva_end(hv_vm *vm, uint64_t hva, uint64_t len);

#endif
