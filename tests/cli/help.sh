# --help on the top level and on every subcommand exits 0 with a usage
# text on stdout; bad command lines exit 2 with one "memvirt: " line.
BIN=$1 DIR=$2
. "$DIR/lib.sh.inc"

for args in "--help" "-h" "help" "help mtree" "help machines" "help help" \
	    "mtree --help" "mtree -h" "machines --help" "help --help"; do
	# shellcheck disable=SC2086
	run $args
	[ "$STATUS" = 0 ] || fail "memvirt $args exited $STATUS"
	printf '%s\n' "$OUT" | grep -q '^usage: memvirt' || fail "memvirt $args: no usage text"
	[ -z "$ERR" ] || fail "memvirt $args wrote to stderr: $ERR"
done

run machines
[ "$STATUS" = 0 ] || fail "memvirt machines exited $STATUS"
printf '%s\n' "$OUT" | grep -qx pc || fail "memvirt machines does not list pc"

usage_error() {
	run "$@"
	[ "$STATUS" = 2 ] || fail "memvirt $* exited $STATUS, expected 2"
	[ "$(printf '%s\n' "$ERR" | wc -l)" = 1 ] || fail "memvirt $*: expected one line, got: $ERR"
	case "$ERR" in memvirt:\ *) ;; *) fail "memvirt $*: no 'memvirt: ' prefix: $ERR" ;; esac
}

usage_error
usage_error bogus
usage_error --bogus
usage_error mtree
usage_error mtree --bogus
usage_error mtree -x --machine pc
usage_error mtree --machine
usage_error mtree --machine pc "$DIR/pc-like.json"
usage_error mtree -m 4G "$DIR/pc-like.json"
usage_error mtree a.json b.json
usage_error machines extra
usage_error help nosuchcommand
echo "ok"
