# `memvirt mtree -f --machine pc` prints the RAM split of QEMU 7.2's pc
# board. The goldens qemu72-*.flat are the ranges of the "memory" FlatView
# captured from qemu-system-x86_64 7.2 ('info mtree -f'); when QEMU is
# installed the 4G case is also compared live.
BIN=$1 DIR=$2
. "$DIR/lib.sh.inc"

check_golden() {
	local machine=$1 mem=$2 golden=$3 want got
	run mtree -f --machine "$machine" -m "$mem"
	[ "$STATUS" = 0 ] || fail "memvirt mtree -f --machine $machine -m $mem exited $STATUS: $ERR"
	want=$(cat "$DIR/$golden")
	got=$(printf '%s\n' "$OUT" | memory_ranges)
	same_text "$want" "$got" "$machine -m $mem: memory FlatView differs from QEMU 7.2 ($golden)"
}

check_golden pc 128M qemu72-pc-128M.flat
check_golden pc 3G qemu72-pc-3G.flat
check_golden pc 3584M qemu72-pc-3584M.flat
check_golden pc 4G qemu72-pc-4G.flat
check_golden pc 8G qemu72-pc-8G.flat
check_golden pc 4G,slots=2,maxmem=8G qemu72-pc-4G-slots2-maxmem8G.flat
check_golden microvm 4G qemu72-microvm-4G.flat

# The split itself, spelled out: low RAM, the 640K-1M hole, RAM to 3G, RAM above 4G.
run mtree -f --machine pc -m 4G
for line in \
	"  0000000000000000-00000000000bffff (prio 0, ram): pc.ram" \
	"  0000000000100000-00000000bfffffff (prio 0, ram): pc.ram @0000000000100000" \
	"  0000000100000000-000000013fffffff (prio 0, ram): pc.ram @00000000c0000000"; do
	printf '%s\n' "$OUT" | grep -qxF -- "$line" || fail "pc -m 4G: missing line '$line'"
done

if command -v qemu-system-x86_64 >/dev/null && [ -z "${MV_NO_QEMU:-}" ]; then
	live=$(printf 'info mtree -f\nquit\n' |
	       timeout 60 qemu-system-x86_64 -M pc -m 4G -monitor stdio -S -display none \
	       -nodefaults 2>/dev/null | sed 's/\x1b\[[0-9;]*[A-Za-z]//g' | memory_ranges)
	if [ -n "$live" ]; then
		same_text "$live" "$(printf '%s\n' "$OUT" | memory_ranges)" \
			"pc -m 4G: memory FlatView differs from the installed QEMU"
		echo "live QEMU comparison: ok"
	else
		echo "SKIP live QEMU comparison: qemu-system-x86_64 printed no FlatView"
	fi
else
	echo "SKIP live QEMU comparison: qemu-system-x86_64 not installed (or MV_NO_QEMU set)"
fi
echo "ok"
