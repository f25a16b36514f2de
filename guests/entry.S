/*
 * PVH entry of the memvirt test guest (32-bit flat protected mode, paging
 * off, EBX = hvm_start_info), the switch to long mode on static boot page
 * tables, and the exception entry stubs. Every vCPU enters here (memvirt
 * convention, docs/guests.md); only APIC id 0 prints the boot line.
 */
#include "memvirt/guest_gen.h"

#define KSTACK_SHIFT 13                 /* KSTACK_SIZE = 8 KiB */

/* ---- ELF note: XEN_ELFNOTE_PHYS32_ENTRY (type 18, name "Xen") ---- */
	.section .note.Xen, "a", @note
	.p2align 2
	.long 4                         /* namesz */
	.long 4                         /* descsz */
	.long 18                        /* XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz "Xen"
	.long pvh_entry

/* ---- 32-bit entry ---- */
	.section .text.boot, "ax"
	.code32
	.globl pvh_entry
pvh_entry:
	mov $1, %eax
	mov %ebx, %edi                  /* keep start_info: cpuid clobbers EBX */
	cpuid
	shr $24, %ebx                   /* CPUID.1:EBX[31:24] = initial APIC id */
	mov %ebx, %ebp
	test %ebp, %ebp
	jnz 1f
	cld
	mov $boot_msg, %esi
	mov $boot_msg_end - boot_msg, %ecx
	mov $0xe9, %dx
	rep outsb                       /* "memvirt-guest: boot\n" */
1:	cmp $MVG_MAX_CPUS, %ebp
	jae park32
	lgdt boot_gdtr
	mov %cr4, %eax
	or $0x20, %eax                  /* CR4.PAE */
	mov %eax, %cr4
	mov $boot_pml4, %eax
	mov %eax, %cr3
	mov $0xc0000080, %ecx           /* IA32_EFER */
	rdmsr
	or $0x100, %eax                 /* EFER.LME */
	wrmsr
	mov %cr0, %eax
	or $0x80010021, %eax            /* CR0.PG | CR0.WP | CR0.NE | CR0.PE */
	mov %eax, %cr0
	ljmp $0x08, $entry64
park32:
	cli
	hlt
	jmp park32

	.code64
entry64:
	mov $0x10, %eax
	mov %eax, %ds
	mov %eax, %es
	mov %eax, %ss
	xor %eax, %eax
	mov %eax, %fs
	mov %eax, %gs
	mov %ebp, %eax
	inc %eax
	shl $KSTACK_SHIFT, %rax
	add $kstacks, %rax
	mov %rax, %rsp                  /* top of kstacks[apic id] */
	mov %edi, %esi                  /* start_info */
	mov %ebp, %edi                  /* cpu */
	call cpu_setup                  /* does not return */
1:	cli
	hlt
	jmp 1b

/* ---- exception stubs: vectors 0..31, frame = vector, error code, CPU frame ---- */
	.section .text
	/* vectors with an error code: 8, 10-14, 17, 21, 29, 30 */
	.macro stub v
	.p2align 4
exc_stub_\v:
	.if !(\v == 8 || (\v >= 10 && \v <= 14) || \v == 17 || \v == 21 || \v == 29 || \v == 30)
	pushq $0                        /* no error code: push a zero */
	.endif
	pushq $\v
	jmp exc_common
	.endm

	.altmacro
	.set v, 0
	.rept 13
	stub %v
	.set v, v + 1
	.endr

	/*
	 * #GP: fast path for the one-byte port instructions of CPL3 (in/out
	 * AL/EAX with DX) on hosts that do not honour IOPL=3 for the guest's
	 * user mode: perform the access here and step over it. Anything
	 * else goes to exception_handler (which also emulates the other
	 * forms). Frame: error code, RIP, CS, RFLAGS, RSP, SS.
	 */
	.p2align 4
exc_stub_13:
	cmpq $0, (%rsp)
	jne 9f
	testb $3, 16(%rsp)
	jz 9f
	push %rsi
	mov 16(%rsp), %rsi
	movzbl (%rsi), %esi
	cmp $0xee, %esi
	je 1f
	cmp $0xef, %esi
	je 2f
	cmp $0xec, %esi
	je 3f
	cmp $0xed, %esi
	je 4f
	pop %rsi
9:	pushq $13
	jmp exc_common
1:	pop %rsi
	outb %al, %dx
	jmp 5f
2:	pop %rsi
	outl %eax, %dx
	jmp 5f
3:	pop %rsi
	inb %dx, %al
	jmp 5f
4:	pop %rsi
	inl %dx, %eax                   /* zero-extends into RAX, as at CPL3 */
5:	incq 8(%rsp)                    /* RIP past the one-byte instruction */
	add $8, %rsp                    /* error code */
	iretq

	.set v, 14
	.rept 18
	stub %v
	.set v, v + 1
	.endr

exc_common:
	push %rax
	push %rcx
	push %rdx
	push %rbx
	push %rbp
	push %rsi
	push %rdi
	push %r8
	push %r9
	push %r10
	push %r11
	push %r12
	push %r13
	push %r14
	push %r15
	mov %rsp, %rdi
	mov %rsp, %rbx
	and $-16, %rsp
	call exception_handler          /* returns only for an emulated CPL3 port access */
	mov %rbx, %rsp
	pop %r15
	pop %r14
	pop %r13
	pop %r12
	pop %r11
	pop %r10
	pop %r9
	pop %r8
	pop %rdi
	pop %rsi
	pop %rbp
	pop %rbx
	pop %rdx
	pop %rcx
	pop %rax
	add $16, %rsp                   /* vector, error code */
	iretq

	.section .rodata
	.p2align 3
	.globl exc_stubs
exc_stubs:
	.macro stubaddr v
	.quad exc_stub_\v
	.endm
	.set v, 0
	.rept 32
	stubaddr %v
	.set v, v + 1
	.endr

boot_msg:
	.ascii MVG_LINE_BOOT
boot_msg_end:

/* ---- boot GDT and page tables (identity, 0..4 GiB, 2 MiB pages) ---- */
	.section .data
	.p2align 3
boot_gdt:
	.quad 0
	.quad 0x00af9a000000ffff        /* 0x08: code64, DPL0 */
	.quad 0x00cf92000000ffff        /* 0x10: data, DPL0 */
boot_gdt_end:
boot_gdtr:
	.word boot_gdt_end - boot_gdt - 1
	.long boot_gdt

	.p2align 12
boot_pml4:
	.quad boot_pdpt + 0x3
	.fill 511, 8, 0
boot_pdpt:
	.quad boot_pd + 0x3
	.quad boot_pd + 0x1003
	.quad boot_pd + 0x2003
	.quad boot_pd + 0x3003
	.fill 508, 8, 0
boot_pd:
	.set i, 0
	.rept 2048
	.quad (i << 21) | 0x83          /* P | RW | PS */
	.set i, i + 1
	.endr

/*
 * The fixed part of the final page tables (identity, all entries
 * user-accessible): PML4[0] -> PDPT, PDPT[0..3] -> PD0..PD3 (0-4 GiB);
 * PD0[0] -> a page table of the first 2 MiB in 4 KiB pages; PD0[1..7]:
 * 2-16 MiB (the image) in 2 MiB pages; PD3[496] -> the test device's two
 * MMIO pages (PCD|PWT); PD3[511] -> the 64 KiB ROM. The RAM above is
 * mapped by vCPU 0 at CPL3 (paging.c) before the workloads start.
 */
	.p2align 12
	.globl fin_pml4, fin_pdpt
fin_pml4:
	.quad fin_pdpt + 0x7
	.fill 511, 8, 0
fin_pdpt:
	.quad fin_pd + 0x7
	.quad fin_pd + 0x1007
	.quad fin_pd + 0x2007
	.quad fin_pd + 0x3007
	.fill 508, 8, 0
fin_pd:
	.quad fin_pt_low + 0x7          /* 0-1 GiB */
	.set i, 1
	.rept 7
	.quad (i << 21) | 0x87          /* 2-16 MiB, the image: P | RW | US | PS */
	.set i, i + 1
	.endr
	.fill 504, 8, 0
	.fill 512, 8, 0                 /* 1-2 GiB */
	.fill 512, 8, 0                 /* 2-3 GiB */
	.fill 496, 8, 0                 /* 3-4 GiB */
	.quad fin_pt_mmio + 0x7         /* 0xfe000000 */
	.fill 14, 8, 0
	.quad fin_pt_rom + 0x7          /* 0xffe00000 */
fin_pt_low:
	.set i, 0
	.rept 512
	.quad (i << 12) | 0x7           /* P | RW | US */
	.set i, i + 1
	.endr
fin_pt_mmio:
	.quad 0xfe000000 | 0x1f         /* P | RW | US | PWT | PCD */
	.quad 0xfe001000 | 0x1f
	.fill 510, 8, 0
fin_pt_rom:
	.fill 496, 8, 0
	.set i, 0
	.rept 16
	.quad (0xffff0000 + (i << 12)) | 0x7
	.set i, i + 1
	.endr
