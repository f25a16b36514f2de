# The same PVH guest ELF under QEMU 7.2 microvm with KVM and under
# `memvirt run` gives the same report: every line that does not depend on
# the memvirt test device (the mvt:, mmio: and pio: lines) or on the
# board's ROM (rom: — QEMU's microvm maps its BIOS there as RAM) must be
# identical, in the same order. Run for several command lines, including
# RAM above 4 GiB and each dirty-log mode of memvirt.
BIN=$1 DIR=$2
. "$DIR/lib.sh.inc"

need_qemu_kvm_guest guest_compare

# The report lines both VMMs must agree on.
report() {
	tr -d '\r' | grep -vE '^(mvt|mmio|pio|rom): '
}

# compare MEM CMDLINE MEMVIRT-ARGS...
compare() {
	local mem=$1 cmdline=$2 tmp q m qs ms
	shift 2
	tmp=$(mktemp)
	timeout 300 qemu-system-x86_64 -enable-kvm -M microvm -m "$mem" -no-reboot -nodefaults \
		-display none -kernel "$ELF" -append "$cmdline" -debugcon "file:$tmp" \
		-device isa-debug-exit,iobase=0xf4,iosize=0x04 2>/dev/null
	qs=$?
	q=$(report <"$tmp")
	timeout 300 "$BIN" run --no-summary --mem "$mem" --cmdline "$cmdline" "$@" "$ELF" >"$tmp"
	ms=$?
	m=$(report <"$tmp")
	rm -f "$tmp"
	[ "$qs" = 1 ] || fail "guest_compare: QEMU exit status $qs for '$cmdline' (expected 1)"
	[ "$ms" = 0 ] || fail "guest_compare: memvirt run failed for '$cmdline' $*"
	[ -n "$q" ] || fail "guest_compare: QEMU printed nothing for '$cmdline'"
	same_text "$q" "$m" "guest_compare: reports differ for '$cmdline' $* (QEMU first)"
	echo "ok: '$cmdline' $* ($(printf '%s\n' "$q" | wc -l) lines)"
}

compare 256M ""
compare 256M "workload=dirty,verify rounds=6 pages=500 seed=42" --dirty-log manual
compare 256M "workload=dirty rounds=3 pages=200 seed=9 ws_mib=4" --dirty-log ring
compare 5G "workload=touch,verify,dirty mib=16 rounds=2 seed=3"
