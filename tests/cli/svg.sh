# --svg writes a well-formed SVG with every range labelled (xmllint checks
# the XML when installed), and still prints the text view.
BIN=$1 DIR=$2
. "$DIR/lib.sh.inc"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

run mtree -f --svg "$tmp/pc.svg" --machine pc -m 4G
[ "$STATUS" = 0 ] || fail "--svg exited $STATUS: $ERR"
printf '%s\n' "$OUT" | grep -q '^FlatView #0' || fail "--svg did not print the flat view"
[ -s "$tmp/pc.svg" ] || fail "no SVG written"
head -1 "$tmp/pc.svg" | grep -q '^<?xml' || fail "SVG lacks the XML declaration"
for label in 'pc.ram (ram, 768 KiB)' 'pc.bios @0x20000 (rom' 'apic-msi (i/o, 1 MiB)' \
	     '0x0000000100000000' 'unassigned'; do
	grep -qF -- "$label" "$tmp/pc.svg" || fail "SVG lacks '$label'"
done
if command -v xmllint >/dev/null; then
	xmllint --noout "$tmp/pc.svg" || fail "xmllint rejects the SVG"
else
	echo "SKIP xmllint: not installed"
fi

# Names with XML metacharacters are escaped.
run mtree --svg "$tmp/features.svg" "$DIR/features.json"
[ "$STATUS" = 0 ] || fail "--svg on features.json exited $STATUS: $ERR"
command -v xmllint >/dev/null && { xmllint --noout "$tmp/features.svg" || fail "features.svg invalid"; }

run mtree --svg /nonexistent-dir/x.svg --machine pc
[ "$STATUS" = 1 ] || fail "unwritable --svg path: exit status $STATUS"
echo "ok"
