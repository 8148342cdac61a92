#!/bin/bash
# `make bench`: ns per malloc+free pair of build/tests/bench, in one run, for: untraced; the
# floor (a no-op BPF program on exactly allocprof's probe sites, attached by apfloor); allocprof
# sampled (default rate); allocprof --exact. Each is the median of REPS runs; ratios are to the
# floor measured in the same run, since the machines are shared and noisy.
#   scripts/bench.sh [ITERS] [REPS]     (defaults 300000 and 5)
set -euo pipefail
cd "$(dirname "$0")/.."
iters=${1:-300000}
reps=${2:-5}
bench=build/tests/bench
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Starts the benchmark held at --wait, attaches `$@ PID` (which must print "probes attached"
# on stderr), releases it and prints its result.
attached_run() {
	local threads=$1
	shift
	"$bench" --threads "$threads" --iters "$iters" --wait >"$tmp/out" 2>"$tmp/ready" &
	local pid=$!
	until grep -qs waiting "$tmp/ready"; do sleep 0.01; done
	"$@" "$pid" 2>"$tmp/log" &
	local tracer=$!
	for _ in $(seq 200); do
		grep -q "probes attached" "$tmp/log" && break
		sleep 0.05
	done
	grep -q "probes attached" "$tmp/log" || { cat "$tmp/log" >&2; kill "$pid" "$tracer"; exit 1; }
	kill -USR1 "$pid"
	wait "$pid"
	wait "$tracer"
	cat "$tmp/out"
}

untraced() { "$bench" --threads "$1" --iters "$iters"; }
floor() { attached_run "$1" build/tests/apfloor; }
ap_sampled() { attached_run "$1" ./allocprof record -v -q -o "$tmp/p.pb.gz" -p; }
ap_exact() { attached_run "$1" ./allocprof record -v -q --exact -o "$tmp/p.pb.gz" -p; }

median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

echo "machine: $(nproc) CPUs, $(uname -r), $(date -u +%Y-%m-%d)"
echo "command: scripts/bench.sh $iters $reps"
echo
echo "| threads | untraced | floor (no-op program) | allocprof sampled | allocprof --exact |"
echo "|---|---|---|---|---|"
modes="untraced floor ap_sampled ap_exact"
for threads in 1 2; do
	# Round-robin over the modes, so drift on a shared machine hits them all alike.
	for rep in $(seq "$reps"); do
		for m in $modes; do
			"$m" "$threads" >>"$tmp/$m.$threads"
		done
	done
	u=$(median <"$tmp/untraced.$threads")
	f=$(median <"$tmp/floor.$threads")
	s=$(median <"$tmp/ap_sampled.$threads")
	e=$(median <"$tmp/ap_exact.$threads")
	awk -v t="$threads" -v u="$u" -v f="$f" -v s="$s" -v e="$e" 'BEGIN {
		printf "| %d | %.0f ns | %.0f ns | %.0f ns (%.2fx floor) | %.0f ns (%.2fx floor) |\n",
			t, u, f, s, s / f, e, e / f }'
done
echo
echo "ns per malloc+free pair per thread, median of $reps runs of $iters pairs per thread;"
echo "the modes alternate run by run."
