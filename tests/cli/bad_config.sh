# A bad config or machine option: exit status 1 and exactly one line on
# stderr, "memvirt: ...", naming the bad region (by id) and field.
BIN=$1 DIR=$2
. "$DIR/lib.sh.inc"

one_error() {
	local file=$1; shift
	run mtree -f "$DIR/$file"
	[ "$STATUS" = 1 ] || fail "$file: exit status $STATUS, expected 1"
	[ -z "$OUT" ] || fail "$file: printed output despite the error"
	[ "$(printf '%s\n' "$ERR" | wc -l)" = 1 ] || fail "$file: expected one line, got: $ERR"
	case "$ERR" in "memvirt: $DIR/$file"*) ;; *) fail "$file: message does not start with 'memvirt: PATH': $ERR" ;; esac
	for needle in "$@"; do
		printf '%s\n' "$ERR" | grep -qF -- "$needle" || fail "$file: '$needle' not in: $ERR"
	done
	echo "$file: $ERR"
}

one_error bad-parent.json 'region "uart0"' '"parent"' '"sysbus"'
one_error bad-alias-cycle.json 'region "b"' '"alias-of"' 'alias cycle'
one_error bad-size.json 'region "rom0"' '"size"' '"0x1000z"'
one_error bad-syntax.json 'bad-syntax.json:5:' 'JSON syntax error'

run mtree "$DIR/does-not-exist.json"
[ "$STATUS" = 1 ] || fail "missing file: exit status $STATUS"
printf '%s\n' "$ERR" | grep -qF "does-not-exist.json" || fail "missing file not named: $ERR"

run mtree --machine nosuch
[ "$STATUS" = 1 ] || fail "unknown machine: exit status $STATUS"
[ "$(printf '%s\n' "$ERR" | wc -l)" = 1 ] || fail "unknown machine: expected one line: $ERR"
printf '%s\n' "$ERR" | grep -qF nosuch || fail "unknown machine not named: $ERR"

run mtree --machine pc -m 4Q
[ "$STATUS" = 1 ] || fail "bad -m: exit status $STATUS"
[ "$(printf '%s\n' "$ERR" | wc -l)" = 1 ] || fail "bad -m: expected one line: $ERR"
echo "ok"
