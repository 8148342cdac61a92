#!/bin/bash
# What a system-wide capture costs, as ratios measured in one run (the machine is shared):
#   1. A busy process that is not the one you care about: ns per malloc+free pair of
#      build/tests/bench (1 thread) untraced; under `-a` (counted, as every process is), at the
#      default and with --alloc-only; and skipped in the kernel, taking the traps only: under
#      `-a --exclude-pid` it, and beside `-p` of 9 idle processes (one link per file).
#   2. The tracer itself: CPU time and peak RSS of `record -a -d SECONDS` with 200 extra idle
#      processes alive (and the bench process allocating beside it).
# Each cell is the median of REPS runs; modes alternate run by run.
#   scripts/cost-all.sh [ITERS] [REPS] [SECONDS]      (defaults 300000, 5, 10)
set -euo pipefail
cd "$(dirname "$0")/.."
iters=${1:-300000}
reps=${2:-5}
secs=${3:-10}
bench=build/tests/bench
tmp=$(mktemp -d)
idle=()
cleanup() { [ ${#idle[@]} -eq 0 ] || kill "${idle[@]}" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

# Starts allocprof with "$@", waits until its probes are live; its pid in $tracer.
start_tracer() {
	rm -f "$tmp/log"
	./allocprof record -v -q -o "$tmp/p.pb.gz" "$@" 2>"$tmp/log" &
	tracer=$!
	until grep -qs "recording: probes live" "$tmp/log"; do
		kill -0 "$tracer" 2>/dev/null || { cat "$tmp/log" >&2; exit 1; }
		sleep 0.02
	done
}

# ns per pair of bench under mode $1.
run() {
	local mode=$1 pid out
	rm -f "$tmp/ready"
	"$bench" --threads 1 --iters "$iters" --wait >"$tmp/out" 2>"$tmp/ready" &
	pid=$!
	until grep -qs waiting "$tmp/ready"; do sleep 0.01; done
	tracer=
	case $mode in
	untraced) ;;
	all) start_tracer -a ;;
	all_alloc_only) start_tracer -a --alloc-only ;;
	all_excluded) start_tracer -a --exclude-pid "$pid" ;;
	pids9) start_tracer -p "$(IFS=,; echo "${idle[*]:0:9}")" ;;
	esac
	kill -USR1 "$pid"
	wait "$pid"
	[ -z "$tracer" ] || { kill -INT "$tracer"; wait "$tracer"; }
	cat "$tmp/out"
}

median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

for _ in $(seq 200); do
	sleep 3600 &
	idle+=($!)
done
modes="untraced all all_alloc_only all_excluded pids9"
for _ in $(seq "$reps"); do
	for m in $modes; do
		run "$m" | head -1 >>"$tmp/$m"
	done
done
echo "machine: $(nproc) CPUs, $(uname -r), $(date -u +%Y-%m-%d); command: scripts/cost-all.sh $iters $reps $secs"
echo
echo "| bench, 1 thread, ns per malloc+free | untraced | -a | -a --alloc-only | -a, this process excluded | -p of 9 others |"
echo "|---|---|---|---|---|---|"
u=$(median <"$tmp/untraced")
printf "| ns (ratio to untraced) | %.0f" "$u"
for m in all all_alloc_only all_excluded pids9; do
	v=$(median <"$tmp/$m")
	awk -v v="$v" -v u="$u" 'BEGIN { printf " | %.0f (%.2fx)", v, v / u }'
done
echo " |"
echo
# The tracer with 200 idle processes and one allocating steadily beside it.
"$bench" --threads 1 --iters 100000000 --rate 100000 >/dev/null 2>&1 &
busy=$!
/usr/bin/time -f "%U %S %M" -o "$tmp/time" ./allocprof record -q -a -d "${secs}s" -o "$tmp/p.pb.gz" 2>/dev/null
kill "$busy"; wait "$busy" 2>/dev/null || true
read -r user sys rss <"$tmp/time"
awk -v u="$user" -v s="$sys" -v r="$rss" -v d="$secs" -v n="$(ls /proc | grep -c '^[0-9]')" \
	'BEGIN { printf "tracer, -a -d %ss with %d processes alive: %.2f s CPU (%.1f%% of one CPU), peak RSS %.1f MB\n", d, n, u + s, 100 * (u + s) / d, r / 1024 }'
