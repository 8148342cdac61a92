#!/bin/bash
# How long the kernel takes to load (verify) each BPF program of a capture: strace -T around
# every BPF_PROG_LOAD of `allocprof record --exact -- true`, per --stacks mode, median of REPS;
# beside it the instructions the verifier went through (bpf_prog_info.verified_insns, from
# allocprof's -v line of the same run), the measure of its work that the machine's load does
# not change.
#   scripts/load-time.sh [REPS]     (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
reps=${1:-5}
command -v strace >/dev/null || { echo "load-time.sh: needs strace (apt-get install strace)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "| --stacks | program | verified instructions | load time, s (median of $reps) |"
echo "|---|---|---|---|"
for mode in fp auto; do
	for _ in $(seq "$reps"); do
		strace -f -e trace=bpf -T ./allocprof record -v -q --exact --stacks "$mode" \
			-o "$tmp/p.pb.gz" -- true 2>&1 >/dev/null |
			sed -n -e 's/.*BPF_PROG_LOAD.*prog_name="\([a-z_][a-z_]*\)".*<\([0-9.]*\)>$/\1 \2/p' \
				-e 's/.*program \([a-z_]*\): \([0-9]*\) instructions verified.*/insns \1 \2/p'
	done | python3 -c '
import collections, statistics, sys
t = collections.defaultdict(list)
insns = {}
for line in sys.stdin:
    f = line.split()
    if f[0] == "insns":
        insns[f[1]] = f[2]
    else:
        t[f[0]].append(float(f[1]))
for name in sorted(t):
    # strace shows the kernel name, at most 15 characters of the program name
    full = [k for k in insns if k[:15] == name]
    if insns and not full:
        continue  # the feature probes of libbpf and allocprof
    print("| %s | %s | %s | %.3f |" % (sys.argv[1], full[0] if full else name,
                                      insns[full[0]] if full else "?",
                                      statistics.median(t[name])))' "$mode"
done
