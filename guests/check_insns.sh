#!/bin/sh
# Fail when the guest ELF contains instructions that KVM's emulator (which
# runs the guest's CPL0 code on kvm_pvm hosts) or a plain x86-64 CPU
# cannot run: SSE/AVX registers, cmpxchg16b, xsave family, popcnt, int3,
# endbr64 and the BMI/LZCNT encodings.
# Usage: check_insns.sh OBJDUMP ELF
objdump=$1 elf=$2
bad=$("$objdump" -d --no-show-raw-insn "$elf" |
	grep -E '%[xyz]mm|cmpxchg16b|xsave|xrstor|popcnt|int3|endbr|lzcnt|tzcnt|vzero|\bv[a-z]+ ' || true)
if [ -n "$bad" ]; then
	echo "check_insns: forbidden instructions in $elf:" >&2
	printf '%s\n' "$bad" >&2
	exit 1
fi
