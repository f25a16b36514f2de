# `memvirt mmu run`: every scenario of examples/mmu prints its golden output
# (tests/cli/mmu/NAME.out, written by tests/cli/regen-mmu-goldens) and ends
# with status 0; a bad script is one "SCRIPT:LINE: ..." sentence and status
# 2 with nothing run; a failed expect or a refused host resource status 1.
BIN=$1 DIR=$2
. "$DIR/lib.sh.inc"
EXAMPLES=$DIR/../../examples/mmu
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# Transparent huge pages are a host setting: thp.mmu needs them.
thp_usable() {
	local f=/sys/kernel/mm/transparent_hugepage/enabled
	[ -r "$f" ] && ! grep -q '\[never\]' "$f"
}

nr=0
for f in "$EXAMPLES"/*.mmu; do
	name=$(basename "$f" .mmu)
	if [ "$name" = thp ] && ! thp_usable; then
		echo "SKIP: mmu: thp.mmu: transparent huge pages are off on this host"
		continue
	fi
	[ -f "$DIR/mmu/$name.out" ] || fail "mmu: no golden output tests/cli/mmu/$name.out for $name.mmu"
	cd "$EXAMPLES" || fail "cannot enter $EXAMPLES"
	run mmu run "$name.mmu"
	[ "$STATUS" = 0 ] || fail "mmu run $name.mmu: exit status $STATUS ($ERR)"
	same_text "$OUT" "$(cat "$DIR/mmu/$name.out")" "mmu run $name.mmu differs from tests/cli/mmu/$name.out"
	nr=$((nr + 1))
done
[ "$nr" -ge 6 ] || fail "mmu: only $nr examples ran"

# script_says STATUS SENTENCE TEXT: run the script TEXT (as bad.mmu); check
# the status and that stderr is the one line "memvirt: bad.mmu:SENTENCE".
script_says() {
	local status=$1 says=$2
	printf '%b' "$3" > "$TMP/bad.mmu"
	cd "$TMP" || fail "cannot enter $TMP"
	run mmu run bad.mmu
	[ "$STATUS" = "$status" ] || fail "mmu run '$3': exit status $STATUS, expected $status ($ERR)"
	[ "$(printf '%s\n' "$ERR" | wc -l)" = 1 ] || fail "mmu run '$3': expected one error line, got: $ERR"
	case "$ERR" in
	"memvirt: bad.mmu:$says"*) ;;
	*) fail "mmu run '$3': error '$ERR' does not start with 'memvirt: bad.mmu:$says'" ;;
	esac
}

# Errors found before anything runs: no output at all.
script_says 2 "2: unknown directive or instruction 'frobnicate'" 'ipa 40\nfrobnicate 3\n'
[ -z "$OUT" ] || fail "mmu run: a bad script printed output: $OUT"
script_says 2 "1: set: '0x1g' is not a number" 'set x1 0x1g\n'
script_says 2 "1: ram: 'lots' is not a size" 'ram main lots\n'
script_says 2 "1: set: unknown register 'x31' (x0-x30, w0-w30, sp, pc, el," 'set x31 5\n'
script_says 2 "2: expect: unknown register 'q0'" 'ipa 40\nexpect q0 1\n'
script_says 2 "1: vtcr 0x80000000: VTCR_EL2.T0SZ=0" 'vtcr 0x80000000\n'
script_says 2 "1: ipa: 56 bits is not an IPA size from 32 to 48" 'ipa 56\n'
script_says 2 "1: ipa: granule '8K' is not 4K, 16K or 64K" 'ipa 40 granule 8K\n'
script_says 2 "2: ipa must come before every line that sets up the VM" 'ram a 1M\nipa 40\n'
script_says 2 "2: vtcr: VTCR_EL2 was already set on line 1" 'ipa 40\nvtcr 0x80023558\n'
script_says 2 "1: instruction 'ldrb x3, [x0]': ldrb takes a W register, not x3" 'ldrb x3, [x0]\n'
script_says 2 "1: instruction 'ldr x1, [x0, x2]': register offsets (x2) are not modelled" 'ldr x1, [x0, x2]\n'
script_says 2 "1: slot: no ram named 'main' before this line" 'slot 0 0x40000000 main\n'
script_says 2 "2: slot: unknown option 'rw' (expected offset, size, ro or log)" 'ram a 1M\nslot 0 0 a rw\n'
script_says 2 "2: slot 0: offset 0x0 + size 0x200000 is beyond ram a" 'ram a 1M\nslot 0 0 a size 2M\n'
script_says 2 "1: s1map: no s1pool line before it" 's1map 0x1000 0x40000000\n'
script_says 2 "1: s2map: IPA 0x1000 is not aligned to its 2M block" 's2map 0x1000 2M\n'
script_says 2 "1: expect: 'teleported' is not a handler action" 'expect action teleported\n'
script_says 2 "1: write32: 0x100000000 does not fit in 32 bits" 'write32 0x1000 0x100000000\n'
# Errors found while running: the run stops at the line.
script_says 2 "3: slot 1: KVM_SET_USER_MEMORY_REGION fails with EEXIST (File exists)" \
	'ram a 1M\nslot 0 0x1000 a\nslot 1 0x2000 a\n'
script_says 2 "2: write64: no memslot holds IPA 0x1000" 'ipa 40\nwrite64 0x1000 1\n'
script_says 2 "1: vtcr 0x80003558: " 'vtcr 0x80003558\n'
# A failed expect names its line; the script goes on to the end.
script_says 1 "3: expect x1 5: x1 is 0x0" 'ipa 40\nset x1 0\nexpect x1 5\nexpect x1 0\n'
case "$OUT" in *"end: 0 accesses, 0 stage-2 aborts, 1 of 2 expectations met"*) ;;
*) fail "mmu run: a failed expect should still run the script to its end: $OUT" ;; esac
script_says 1 "2: expect esr 0x1: no access ran before it" 'ipa 40\nexpect esr 0x1\n'
if [ "$(cat /proc/sys/vm/nr_hugepages 2>/dev/null || echo 0)" = 0 ]; then
	script_says 1 "1: ram a: cannot map 2M hugetlb pages" 'ram a 2M hugetlb 2M\n'
fi

# The command line.
cd "$TMP" || fail "cannot enter $TMP"
run mmu run --help
[ "$STATUS" = 0 ] && case "$OUT" in *"usage: memvirt mmu run SCRIPT"*) ;; *) false ;; esac ||
	fail "mmu run --help: status $STATUS"
run mmu
[ "$STATUS" = 2 ] && [ "$ERR" = "memvirt: mmu: no subcommand given (see 'memvirt mmu --help')" ] ||
	fail "mmu without a subcommand: $STATUS $ERR"
run mmu walk x.mmu
[ "$STATUS" = 2 ] && [ "$ERR" = "memvirt: mmu: unknown subcommand 'walk' (see 'memvirt mmu --help')" ] ||
	fail "mmu walk: $STATUS $ERR"
run mmu run
[ "$STATUS" = 2 ] || fail "mmu run without a script: status $STATUS"
run mmu run no-such.mmu
[ "$STATUS" = 1 ] && [ "$ERR" = "memvirt: mmu run: cannot open no-such.mmu: No such file or directory" ] ||
	fail "mmu run no-such.mmu: $STATUS $ERR"
# '-' reads the script from stdin.
OUT=$(printf 'ram a 1M\nslot 0 0x40000000 a\nldr x1, [0x40000000]\nexpect aborts 1\n' | "$BIN" mmu run -)
STATUS=$?
[ "$STATUS" = 0 ] && case "$OUT" in "3: ldr x1, [0x40000000]"*"mapped 4K"*) ;; *) false ;; esac ||
	fail "mmu run -: status $STATUS: $OUT"
echo ok
