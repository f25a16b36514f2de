/*
 * The memvirt x86 machine: a microvm-like layout built with the memory
 * model, its devices and PVH boot (the guest ABI is in
 * include/memvirt/testdev_abi.h).
 *
 * Layout: one RAM block "guest.ram" shown through the aliases
 * "ram-below-4g" (up to MVT_LOWMEM_END) and "ram-above-4g" (the rest, from
 * 4 GiB); the container "mmio-window" [MVT_MMIO_WINDOW_BASE,
 * MVT_MMIO_WINDOW_END) holding the test device; the ROM "memvirt.rom" at
 * MVT_ROM_BASE. Ports: debugcon, isa-debug-exit, COM1 16550, test device.
 *
 * The devices call back into the VMM through vmm_hooks; device callbacks
 * run on the vCPU thread that made the access (or, for writes queued in a
 * coalesced zone, on the thread that drains the ring). Devices call no
 * hook while holding a device lock, so a hook may access the machine.
 */
#ifndef MEMVIRT_VMM_MACHINE_X86_H
#define MEMVIRT_VMM_MACHINE_X86_H

#include "memvirt/hv.h"
#include "memvirt/memory.h"
#include "memvirt/ramblock.h"

/* Any hook may be NULL: the device then does nothing (see each hook). */
typedef struct vmm_hooks {
	void *opaque;
	/* A byte written to debugcon (@src "debugcon") or the UART ("com1"). */
	void (*console_out)(void *opaque, const char *src, uint8_t byte);
	/* isa-debug-exit was written: the VM should end with @status = (v << 1) | 1. */
	void (*guest_exit)(void *opaque, int status);
	/* The vCPU making the current access (the VMM keeps it per thread); NULL: 0. */
	unsigned (*current_vcpu)(void *opaque);
	/*
	 * Test device: @vcpu declared its dirty working set [gpa, gpa + pages *
	 * 4 KiB); the VMM forgets any dirty state there so round 1 starts clean.
	 */
	void (*ws_register)(void *opaque, unsigned vcpu, uint64_t gpa, uint64_t pages);
	/*
	 * Test device: end of round @round of @vcpu, which reported the @n guest
	 * frame numbers in @gfns (in report order, no duplicates) since the
	 * previous round end. Returns the number of mismatching pages between
	 * the dirty log of the working set and @gfns (0 = exact). NULL: 0.
	 * @gfns is only valid during the call.
	 */
	uint64_t (*round_end)(void *opaque, unsigned vcpu, uint32_t round,
			      const uint64_t *gfns, size_t n);
	/* Test device: a RESULT value. */
	void (*result)(void *opaque, unsigned vcpu, uint64_t value);
} vmm_hooks;

typedef struct vmm_x86_machine vmm_x86_machine;

/* vCPU ids must fit the 8-bit initial APIC id of CPUID leaf 1. */
#define VMM_X86_MAX_VCPUS 256u

/*
 * Build the machine in @mem (which must be otherwise empty) with @ram_size
 * bytes of RAM (a multiple of 2 MiB, at least 16 MiB, ending below 2^52)
 * for @nr_vcpus vCPUs (1..VMM_X86_MAX_VCPUS). @hooks is copied (NULL: no
 * hooks). Errors (-EINVAL/-ENOMEM with a sentence naming the option, "--mem"
 * or "--smp"): bad size or vCPU count, RAM allocation failure.
 */
int vmm_x86_machine_new(mv_memory *mem, uint64_t ram_size, unsigned nr_vcpus,
			const vmm_hooks *hooks, vmm_x86_machine **out, mv_error *err);
/*
 * Free the machine and everything it built in the memory system. No vCPU
 * may be running: device state goes at once. NULL is a no-op.
 */
void vmm_x86_machine_free(vmm_x86_machine *m);

mv_address_space *vmm_x86_memory_as(vmm_x86_machine *m);
mv_address_space *vmm_x86_io_as(vmm_x86_machine *m);
mv_ramblock *vmm_x86_ram(vmm_x86_machine *m);
uint64_t vmm_x86_ram_size(const vmm_x86_machine *m);
unsigned vmm_x86_nr_vcpus(const vmm_x86_machine *m);

/*
 * Byte @offset of "memvirt.rom": MVT_ROM_MAGIC (little endian) in bytes
 * 0..7, then the fixed pattern (offset >> 8) ^ offset ^ 0x5a (low 8 bits),
 * so a guest or test can check any byte it reads.
 */
uint8_t vmm_x86_rom_byte(uint64_t offset);

/*
 * Guest-physical RAM ranges of the machine in address order (the e820
 * "usable" entries) as {gpa, size} pairs: returns how many there are (1
 * or 2), filling at most @max pairs. ranges[i][0] is the first GPA,
 * ranges[i][1] the length in bytes.
 */
size_t vmm_x86_ram_ranges(const vmm_x86_machine *m, uint64_t (*ranges)[2], size_t max);

/*
 * The PVH boot area: hvm_start_info at VMM_PVH_START_INFO, then the
 * memory map (+0x80) and the command line (+0x200, up to VMM_PVH_BOOT_END).
 * Low RAM that kernels do not load into (they load at 1 MiB and above).
 */
#define VMM_PVH_START_INFO 0x6000u
#define VMM_PVH_BOOT_END 0x8000u

/* Result of loading a PVH kernel. */
typedef struct vmm_pvh_boot {
	uint32_t entry;          /* XEN_ELFNOTE_PHYS32_ENTRY */
	uint64_t start_info;     /* guest physical address of hvm_start_info */
	uint64_t image_start, image_end; /* lowest and highest byte loaded + 1 */
} vmm_pvh_boot;

/*
 * Load the PVH ELF image @elf (@size bytes; @name for messages) into guest
 * RAM: its PT_LOAD segments (file bytes, then zeroes up to p_memsz), and
 * an hvm_start_info (version 1) with the memory map (the RAM ranges, type
 * 1) and @cmdline (may be NULL: cmdline_paddr 0). ELF32 and ELF64, EM_386
 * and EM_X86_64 are accepted; the entry note's value may be 4 or 8 bytes.
 * One sentence naming @name and -EINVAL, nothing written, for: not an
 * ELF / wrong class, byte order or machine, truncated file or headers, a
 * segment outside RAM, wrapping, or overlapping the boot area, a
 * malformed note, no XEN_ELFNOTE_PHYS32_ENTRY note, an entry outside the
 * loaded segments, a command line longer than the boot area holds.
 * Guest RAM is written through the RAM block (marked dirty, as a guest
 * write would be); call before the vCPUs run.
 */
int vmm_pvh_load(vmm_x86_machine *m, const void *elf, size_t size, const char *name,
		 const char *cmdline, vmm_pvh_boot *out, mv_error *err);

/*
 * Put @vcpu in the PVH entry state: 32-bit flat protected mode, paging
 * off, CS/DS/ES/SS flat 4 GiB, EIP = entry, EBX = start_info, EFLAGS = 2;
 * CPUID = the accelerator's supported CPUID with this vCPU's APIC id.
 */
int vmm_x86_vcpu_boot_state(hv_vm *vm, hv_vcpu *vcpu, const vmm_pvh_boot *boot,
			    mv_error *err);

#endif
