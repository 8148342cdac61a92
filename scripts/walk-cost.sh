#!/bin/bash
# What a stack walk costs in the kernel: the allocation program's time per run (kernel.bpf_stats_enabled)
# under --exact, for build/tests/bench-nofp (built without frame pointers) at stack depth 0 and
# 20, with the unwind tables (--stacks auto) and with frame pointers only (--stacks fp). The
# difference between depths, divided by the 20 extra frames, is the cost of one frame.
#   scripts/walk-cost.sh [ITERS]     (default 400000)
set -euo pipefail
cd "$(dirname "$0")/.."
iters=${1:-400000}
tmp=$(mktemp -d)
old=$(sysctl -n kernel.bpf_stats_enabled)
trap 'sysctl -q kernel.bpf_stats_enabled="$old"; rm -rf "$tmp"' EXIT
sysctl -q kernel.bpf_stats_enabled=1
echo "| --stacks | depth | frames per stack | ns per run (entry and return) |"
echo "|---|---|---|---|"
for mode in auto fp; do
	for depth in 0 20; do
		rm -f "$tmp/ready" "$tmp/log" "$tmp/p.pb.gz"
		build/tests/bench-nofp --depth "$depth" --iters "$iters" --wait >/dev/null 2>"$tmp/ready" &
		pid=$!
		until grep -qs waiting "$tmp/ready"; do sleep 0.01; done
		./allocprof record -v --exact -n 0 --stacks "$mode" -o "$tmp/p.pb.gz" -p "$pid" 2>"$tmp/log" &
		tracer=$!
		until grep -qs "probes attached" "$tmp/log"; do sleep 0.05; done
		kill -USR1 "$pid"
		wait "$pid"
		kill -INT "$tracer"
		wait "$tracer" || true
		ns=$(sed -n 's/.*allocation session (entry and return) program: [0-9]* runs, \([0-9.]*\) ns per run.*/\1/p' "$tmp/log")
		# Frames of the stack with the most allocations.
		frames=$(pprof -traces -sample_index=alloc_objects "$tmp/p.pb.gz" 2>/dev/null | python3 -c '
import re, sys
best, n, v = (0, 0), 0, None
for line in sys.stdin:
    if line.startswith("-----"):
        if v is not None: best = max(best, (v, n))
        n, v = 0, None
        continue
    m = re.match(r"\s+([0-9.]+)([kMG]?)\s+\S", line)
    if m and v is None and not line.strip().startswith(("comm:", "pid:")):
        v = float(m.group(1)) * {"": 1, "k": 1e3, "M": 1e6, "G": 1e9}[m.group(2)]
        n = 1
    elif v is not None and line.strip():
        n += 1
if v is not None: best = max(best, (v, n))
print(best[1])')
		echo "| $mode | $depth | $frames | $ns |"
	done
done
