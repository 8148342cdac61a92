#!/bin/sh
# Writes vmlinux.h (kernel type definitions for the BPF programs) to $1: dumped from the
# running kernel's BTF when it has one, so CO-RE relocations match this kernel exactly, and
# the committed x86_64 copy otherwise (e.g. building in a container without /sys/kernel/btf).
set -eu
out=$1
dir=$(dirname "$0")/../vmlinux
if [ -r /sys/kernel/btf/vmlinux ] && command -v bpftool >/dev/null 2>&1 &&
	bpftool btf dump file /sys/kernel/btf/vmlinux format c >"$out.tmp" 2>/dev/null; then
	mv "$out.tmp" "$out"
elif [ "$(uname -m)" = x86_64 ]; then
	rm -f "$out.tmp"
	cp "$dir/vmlinux_x86_64.h" "$out"
else
	rm -f "$out.tmp"
	echo "gen-vmlinux: no kernel BTF and no committed vmlinux.h for $(uname -m)" >&2
	exit 1
fi
