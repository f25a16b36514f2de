# `memvirt run --accel soft` against `--accel kvm` (docs/vmm.md, "--accel
# soft"): for each command line and dirty-log mode, the soft run must end
# with status 0, print "guest: done" and match every dirty round; where
# /dev/kvm works, the KVM run must print the same console lines (sorted
# with SEQ_COUNT blanked when several vCPUs print in no fixed order), the
# same --dirty-dump lines (each round's working-set dirty log, hashed) and
# the same summary lines except the accelerator's own (see the list in
# summary() below).
BIN=$1 DIR=$2
. "$DIR/lib.sh.inc"

KVM=1
if ! [ -r /dev/kvm ] || ! [ -w /dev/kvm ]; then
	KVM=0
	echo "SKIP: guest_soft_compare: KVM half: /dev/kvm not usable; only the soft runs are checked"
fi

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# The console: everything before the summary, normalised for SMP runs.
console() {
	local smp=$1
	sed '/^== memvirt run summary$/,$d' | sed '${/^$/d}' |
		if [ "$smp" = 1 ]; then cat; else sed 's/ seq_count [0-9]*$/ seq_count */' | LC_ALL=C sort; fi
}

# The summary lines both accelerators must agree on. Not compared: the
# accelerator line, exits (a soft vCPU makes one exit per byte of a string
# the guest moves with rep outsb / rep insb), the MMIO write / coalesced
# split (a write that finds the ring full exits: when depends on the ring's
# size and on when it is drained), dirty-sync page counts and first-touched
# pages (the guest also writes its own stacks, tables and bitmaps), and
# timings.
summary() {
	sed -n '/^== memvirt run summary$/,$p' | grep -E '^(  (guest|ended|pio|memslot updates|dirty rounds checked):|FlatView| AS | Root|  [0-9a-f]{16}-)'
}

mmio_total() {
	sed -n 's/^  mmio: *\([0-9]*\) reads, \([0-9]*\) writes, \([0-9]*\) coalesced writes$/\1 \2 \3/p' |
		awk '{ print $1 " reads, " $2 + $3 " writes" }'
}

# compare SMP CMDLINE RUN-ARGS...
compare() {
	local smp=$1 cmdline=$2 s k
	shift 2
	timeout 300 "$BIN" run --accel soft --smp "$smp" --cmdline "$cmdline" \
		--dirty-dump "$TMP/soft.dump" "$@" >"$TMP/soft.out"
	s=$?
	[ "$s" = 0 ] || fail "guest_soft_compare: soft run of '$cmdline' $* ended with status $s: $(cat "$TMP/soft.out")"
	grep -qx "guest: done" "$TMP/soft.out" || fail "guest_soft_compare: soft '$cmdline' $*: no 'guest: done'"
	grep -q "^  accelerator:          soft, $smp vCPU(s)" "$TMP/soft.out" ||
		fail "guest_soft_compare: soft '$cmdline' $*: no accelerator line"
	grep -q "^  dirty rounds checked: .*, mismatches 0$" "$TMP/soft.out" ||
		fail "guest_soft_compare: soft '$cmdline' $*: dirty rounds mismatch"
	if [ "$KVM" = 0 ]; then
		echo "ok: soft '$cmdline' --smp $smp${*:+ $*}"
		return
	fi
	timeout 300 "$BIN" run --accel kvm --smp "$smp" --cmdline "$cmdline" \
		--dirty-dump "$TMP/kvm.dump" "$@" >"$TMP/kvm.out"
	k=$?
	[ "$k" = 0 ] || fail "guest_soft_compare: KVM run of '$cmdline' $* ended with status $k"
	same_text "$(console "$smp" <"$TMP/kvm.out")" "$(console "$smp" <"$TMP/soft.out")" \
		"guest_soft_compare: consoles differ for '$cmdline' --smp $smp $* (KVM first)"
	same_text "$(LC_ALL=C sort "$TMP/kvm.dump")" "$(LC_ALL=C sort "$TMP/soft.dump")" \
		"guest_soft_compare: dirty logs differ for '$cmdline' --smp $smp $* (KVM first)"
	same_text "$(summary <"$TMP/kvm.out")" "$(summary <"$TMP/soft.out")" \
		"guest_soft_compare: summaries differ for '$cmdline' --smp $smp $* (KVM first)"
	same_text "$(mmio_total <"$TMP/kvm.out")" "$(mmio_total <"$TMP/soft.out")" \
		"guest_soft_compare: MMIO counts differ for '$cmdline' --smp $smp $* (KVM first)"
	echo "ok: '$cmdline' --smp $smp${*:+ $*} ($(console "$smp" <"$TMP/soft.out" | wc -l) lines," \
		"$(wc -l <"$TMP/soft.dump") dirty rounds)"
}

compare 1 "workload=touch,dirty,mmio,pio,verify,rom mib=2 rounds=3 pages=100 count=100"
compare 1 "workload=dirty,verify rounds=6 pages=500 seed=42" --dirty-log manual
compare 1 "workload=dirty rounds=3 pages=200 seed=9 ws_mib=4" --dirty-log ring
compare 1 "workload=dirty rounds=2 pages=300 seed=5 ws_mib=2" --dirty-log ring --ring-entries 256
compare 2 "workload=touch,dirty,mmio,pio,verify mib=2 rounds=3 pages=100 ws_mib=2 count=50 seed=5"
compare 1 "workload=touch,verify,dirty mib=4 rounds=2 seed=3" --mem 5G

# `make run` without a guest image runs the built-in guest on soft too.
run run --accel soft --no-summary --cmdline "workload=touch mib=1"
[ "$STATUS" = 0 ] && [ "$OUT" = "memvirt-guest: boot
mvt: device version 1 vcpus 1 ram 268435456
touch: cpu 0 pages 256
guest: done" ] || fail "guest_soft_compare: soft touch run: status $STATUS: $OUT $ERR"
run run --accel soft "$DIR/lib.sh.inc"
[ "$STATUS" = 2 ] && case "$ERR" in *"--accel soft runs the built-in test guest"*) true ;; *) false ;; esac ||
	fail "guest_soft_compare: --accel soft with an image: status $STATUS: $ERR"
echo ok
