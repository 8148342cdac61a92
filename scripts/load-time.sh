#!/bin/bash
# How long the kernel takes to load (verify) each BPF program of a capture: strace -T around
# every BPF_PROG_LOAD of `allocprof record --exact -- true`, per --stacks mode, median of REPS.
#   scripts/load-time.sh [REPS]     (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
reps=${1:-5}
command -v strace >/dev/null || { echo "load-time.sh: needs strace (apt-get install strace)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "| --stacks | program | load time, s (median of $reps) |"
echo "|---|---|---|"
for mode in fp auto; do
	for _ in $(seq "$reps"); do
		strace -f -e trace=bpf -T ./allocprof record -q --exact --stacks "$mode" \
			-o "$tmp/p.pb.gz" -- true 2>&1 >/dev/null |
			sed -n 's/.*BPF_PROG_LOAD.*prog_name="\([a-z_][a-z_]*\)".*<\([0-9.]*\)>$/\1 \2/p'
	done | python3 -c '
import collections, statistics, sys
t = collections.defaultdict(list)
for line in sys.stdin:
    name, secs = line.split()
    t[name].append(float(secs))
for name in sorted(t):
    print("| %s | %s | %.3f |" % (sys.argv[1], name, statistics.median(t[name])))' "$mode"
done
