# `memvirt run`: bad command lines and bad inputs give one sentence and the
# documented status; where /dev/kvm works, the built-in guest runs to
# "guest: done" with status 0 and a summary whose dirty rounds all match.
BIN=$1 DIR=$2
. "$DIR/lib.sh.inc"

# expect STATUS TEXT ARGS...: run memvirt with ARGS; check the status and that
# stderr is the one line "memvirt: run: ...TEXT...".
expect() {
	local status=$1 text=$2
	shift 2
	run "$@"
	[ "$STATUS" = "$status" ] || fail "run $*: exit status $STATUS, expected $status ($ERR)"
	[ "$(printf '%s\n' "$ERR" | wc -l)" = 1 ] || fail "run $*: expected one error line, got: $ERR"
	case "$ERR" in
	"memvirt: run: "*"$text"*) ;;
	*) fail "run $*: error '$ERR' does not say '$text'" ;;
	esac
}

run run --help
[ "$STATUS" = 0 ] && case "$OUT" in *"usage: memvirt run"*) ;; *) false ;; esac ||
	fail "run --help: status $STATUS"
expect 2 "--dirty-log 'foo'" run --dirty-log foo
expect 2 "--smp '0'" run --smp 0
expect 2 "--mem 'lots'" run --mem lots
expect 2 "one guest image at most" run a.elf b.elf
expect 1 "cannot open guest 'no-such.elf'" run no-such.elf
expect 1 "not an ELF file" run "$DIR/lib.sh.inc"

if ! [ -r /dev/kvm ] || ! [ -w /dev/kvm ]; then
	expect 1 "/dev/kvm" run
	echo "SKIP: run: /dev/kvm not usable; only the error paths were checked"
	exit 0
fi
expect 1 "--mem: guest RAM of 0x300000 bytes" run --mem 3
run run --cmdline "workload=touch,dirty,rom mib=2 rounds=3"
[ "$STATUS" = 0 ] || fail "run: exit status $STATUS: $OUT $ERR"
for want in "guest: done" "touch: cpu 0 pages 512" "rom: unchanged" \
	"ended:                the guest wrote isa-debug-exit: exit status 1" \
	"dirty rounds checked: 3, pages reported" ", mismatches 0" "(prio 0, rom): memvirt.rom"; do
	case "$OUT" in *"$want"*) ;; *) fail "run: output lacks '$want': $OUT" ;; esac
done
run run --no-summary --cmdline "workload=bogus"
[ "$STATUS" = 5 ] || fail "run: a bad guest command line should end with the guest's status 5, got $STATUS"
echo ok
