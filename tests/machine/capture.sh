#!/bin/sh
# Regenerate the QEMU reference outputs of this directory (not run by the
# test suite). Needs Debian's qemu-system-x86 7.2; QEMU's monitor echo and
# terminal escapes are stripped so that only the command output remains.
#   sh tests/machine/capture.sh tests/machine
set -e
dir=${1:-.}

capture() {  # capture FILE MONITOR-COMMAND QEMU-ARGS...
	out=$1 cmd=$2
	shift 2
	printf '%s\nquit\n' "$cmd" |
		qemu-system-x86_64 -monitor stdio -S -display none -nodefaults "$@" 2>&1 |
		sed 's/\x1b\[[0-9;]*[A-Za-z]//g' | tr -d '\r' |
		grep -v '^QEMU .* monitor\|^(qemu)' > "$dir/$out"
}

capture qemu-7.2-pc-4G-mtree-f.txt 'info mtree -f' -M pc -m 4G
capture qemu-7.2-pc-4G-mtree.txt 'info mtree' -M pc -m 4G
capture qemu-7.2-pc-128M-mtree-f.txt 'info mtree -f' -M pc -m 128M
capture qemu-7.2-pc-4G-slots4-maxmem8G-mtree.txt 'info mtree' -M pc -m 4G,slots=4,maxmem=8G
capture qemu-7.2-microvm-4G-mtree-f.txt 'info mtree -f' -M microvm -m 4G
