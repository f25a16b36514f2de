# Config files print exactly their golden `info mtree` / `info mtree -f` text.
BIN=$1 DIR=$2
. "$DIR/lib.sh.inc"

for cfg in pc-like features; do
	run mtree "$DIR/$cfg.json"
	[ "$STATUS" = 0 ] || fail "$cfg.json: exit status $STATUS: $ERR"
	same_text "$(cat "$DIR/$cfg.tree")" "$OUT" "$cfg.json: tree differs from $cfg.tree"
	run mtree -f "$DIR/$cfg.json"
	[ "$STATUS" = 0 ] || fail "$cfg.json -f: exit status $STATUS: $ERR"
	same_text "$(cat "$DIR/$cfg.flat")" "$OUT" "$cfg.json: flat view differs from $cfg.flat"
done
echo "ok"
