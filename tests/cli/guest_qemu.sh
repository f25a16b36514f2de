# The PVH test guest (guests/, docs/guests.md) under QEMU 7.2's microvm with
# KVM: the default workload list prints the expected report lines (mmio and
# pio are skipped: QEMU has no memvirt test device) and exits with status 1
# (isa-debug-exit value 0); RAM above 4 GiB, -smp 2 (only vCPU 0 enters under
# QEMU) and a bad command line (status 5) are checked too. A later test
# compares these lines with the memvirt VMM's.
BIN=$1 DIR=$2
. "$DIR/lib.sh.inc"

need_qemu_kvm_guest guest_qemu

# boot APPEND QEMU-ARGS...: the guest's debugcon text in OUT, QEMU's stderr in ERR, status in STATUS.
boot() {
	local append=$1 tmp_out tmp_err
	shift
	tmp_out=$(mktemp) tmp_err=$(mktemp)
	timeout 120 qemu-system-x86_64 -enable-kvm -M microvm -no-reboot -nodefaults -display none \
		-kernel "$ELF" -append "$append" -debugcon "file:$tmp_out" \
		-device isa-debug-exit,iobase=0xf4,iosize=0x04 "$@" 2>"$tmp_err"
	STATUS=$?
	OUT=$(tr -d '\r' <"$tmp_out")
	ERR=$(cat "$tmp_err")
	rm -f "$tmp_out" "$tmp_err"
	if [ "$STATUS" != 1 ] && printf '%s\n' "$ERR" | grep -qiE 'kvm.*(fail|could not|cannot)|(fail|could not|cannot).*kvm'; then
		echo "SKIP: guest_qemu: /dev/kvm not usable: $ERR"
		exit 0
	fi
}

# check WHAT STATUS EXPECTED: the last boot's status and whole output.
check() {
	[ "$STATUS" = "$2" ] || { printf '%s\n%s\n' "$OUT" "$ERR" >&2; fail "$1: exit status $STATUS, expected $2"; }
	same_text "$3" "$OUT" "$1: the guest's output differs"
}

DEFAULT_LINES='memvirt-guest: boot
touch: cpu 0 pages 2048
mmio: skipped (no test device)
pio: skipped (no test device)
dirty: cpu 0 round 1 pages 242 hash ce917ad0586c532e
dirty: cpu 0 round 2 pages 241 hash ceb29cc389cff1d4
dirty: cpu 0 round 3 pages 242 hash fc6eb0962c252d7b
dirty: cpu 0 round 4 pages 247 hash 6092f5aae31561ca
verify: cpu 0 mib 0 sum 8bd5950400c51c0e
verify: cpu 0 mib 1 sum fb515736a1af4101
verify: cpu 0 mib 2 sum b99d0f0bc10693fd
verify: cpu 0 mib 3 sum 3bf15cc369487f3e
rom: CHANGED
guest: done'
# "rom: CHANGED" is QEMU's: microvm maps qboot's BIOS at 0xffff0000 as RAM.

boot ""
check "default workloads" 1 "$DEFAULT_LINES"

# Explicit defaults print the same; 4 GiB and 5 GiB of RAM (part of it above 4 GiB).
boot "workload=touch,mmio,pio,dirty,verify,rom mib=8 ws_mib=8 rounds=4 pages=256 seed=1 spin=0 count=1000 verify_mib=4"
check "explicit defaults" 1 "$DEFAULT_LINES"
boot "" -m 4G
check "-m 4G" 1 "$DEFAULT_LINES"
boot "" -m 5G
check "-m 5G" 1 "$DEFAULT_LINES"

# The workload area above 4 GiB: same lines, the area's address is not printed.
boot "workload=touch,dirty,verify rounds=1 base_mib=4096" -m 5G
check "-m 5G, area at 4 GiB" 1 'memvirt-guest: boot
touch: cpu 0 pages 2048
dirty: cpu 0 round 1 pages 242 hash ce917ad0586c532e
verify: cpu 0 mib 0 sum 8bd5950400c51c0e
verify: cpu 0 mib 1 sum fb515736a1af4101
verify: cpu 0 mib 2 sum b99d0f0bc10693fd
verify: cpu 0 mib 3 sum 3bf15cc369487f3e
guest: done'

# -smp 2: QEMU starts only vCPU 0 at the PVH entry; the guest still finishes.
boot "workload=dirty,rom rounds=2" -smp 2
check "-smp 2" 1 'memvirt-guest: boot
dirty: cpu 0 round 1 pages 242 hash ce917ad0586c532e
dirty: cpu 0 round 2 pages 241 hash ceb29cc389cff1d4
rom: CHANGED
guest: done'

# Not enough RAM for the workload area: a failure (value 1, status 3).
boot "workload=touch mib=512" -m 256M
check "no room" 3 'memvirt-guest: boot
guest: FAIL memory: no room for 1 slices of 512 MiB from 16 MiB'

# A bad command line: one line and value 2 (status 5).
boot "workload=touch,nope"
check "unknown workload" 5 'memvirt-guest: boot
guest: bad command line: workload=touch,nope'
boot "rounds=12x"
check "bad number" 5 'memvirt-guest: boot
guest: bad command line: rounds=12x'
echo "ok"
