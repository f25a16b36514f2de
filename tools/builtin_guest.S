/* The built-in test guest of `memvirt run` (guests/testguest.elf). */
	.section .rodata
	.balign 64
	.globl mv_builtin_guest_start
	.globl mv_builtin_guest_end
mv_builtin_guest_start:
	.incbin MV_GUEST_ELF_PATH
mv_builtin_guest_end:
	.section .note.GNU-stack,"",%progbits
