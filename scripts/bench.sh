#!/bin/bash
# `make bench`: what allocprof costs the process it watches, as ratios to floors measured in the
# same run (the machines are shared and noisy):
#   1. ns per malloc+free pair of build/tests/bench (1 and 2 threads) for: untraced; three
#      floors, a no-op BPF program on exactly the probe sites allocprof uses (apfloor): the
#      allocation functions only, with free and delete, and with return probes too; allocprof
#      --alloc-only, default (all four sample types) and --exact.
#   2. A real program: redis-server (jemalloc) under redis-benchmark, ns per request, the same
#      modes.
#   3. Deep stacks without frame pointers: build/tests/bench-nofp --depth 20 (each pair 20
#      calls deep, ~23 frames), default and --exact with the unwind tables (--stacks auto) and
#      --exact with frame pointers only (--stacks fp), against the m+f and m+f+r floors.
#   4. The aggregator itself: CPU time and peak RSS of a 60 s capture (default mode) of a
#      process doing ~200k malloc+free pairs per second.
# Each cell of 1 and 2 is the median of REPS runs; modes alternate run by run.
#   scripts/bench.sh [ITERS] [REPS] [CAPTURE_SECONDS]     (defaults 300000, 5, 60)
set -euo pipefail
cd "$(dirname "$0")/.."
iters=${1:-300000}
reps=${2:-5}
capture=${3:-60}
bench=build/tests/bench
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; [ -n "${redis:-}" ] && kill "$redis" 2>/dev/null; true' EXIT

# Attaches `$@ PID` (which must print "probes attached" on stderr) to process $1, waiting for
# it; the tracer's pid is left in $tracer.
attach() {
	local pid=$1
	shift
	# Not the last tracer's log: the new one is truncated only once its process starts.
	rm -f "$tmp/log"
	"$@" "$pid" 2>"$tmp/log" &
	tracer=$!
	for _ in $(seq 200); do
		grep -qs "probes attached" "$tmp/log" && return 0
		sleep 0.05
	done
	cat "$tmp/log" >&2
	kill "$pid" "$tracer"
	exit 1
}

# The modes: a command taking a pid, or "untraced".
floor_m() { build/tests/apfloor "$@"; }
floor_mf() { build/tests/apfloor --free "$@"; }
floor_mfr() { build/tests/apfloor --free --ret "$@"; }
ap_alloc_only() { ./allocprof record -v -q --alloc-only -o "$tmp/p.pb.gz" -p "$@"; }
ap_default() { ./allocprof record -v -q -o "$tmp/p.pb.gz" -p "$@"; }
ap_exact() { ./allocprof record -v -q --exact -o "$tmp/p.pb.gz" -p "$@"; }
modes="untraced floor_m floor_mf floor_mfr ap_alloc_only ap_default ap_exact"

ap_exact_fp() { ./allocprof record -v -q --exact --stacks fp -o "$tmp/p.pb.gz" -p "$@"; }

# ns per pair of the microbenchmark with $2 threads under mode $1 (extra arguments: bench's).
micro() {
	local mode=$1 threads=$2
	shift 2
	if [ "$mode" = untraced ]; then
		"$bench" --threads "$threads" --iters "$iters" "$@"
		return
	fi
	rm -f "$tmp/ready"
	"$bench" --threads "$threads" --iters "$iters" --wait "$@" >"$tmp/out" 2>"$tmp/ready" &
	local pid=$!
	until grep -qs waiting "$tmp/ready"; do sleep 0.01; done
	attach "$pid" "$mode"
	kill -USR1 "$pid"
	wait "$pid"
	if ! wait "$tracer"; then
		echo "bench.sh: $mode failed on bench $*:" >&2
		cat "$tmp/log" >&2
		exit 1
	fi
	cat "$tmp/out"
}

# ns per request of redis-benchmark against a redis-server under mode $1.
real_program() {
	local mode=$1 sock=$tmp/redis.sock n=100000 t0 t1
	redis-server --port 0 --unixsocket "$sock" --save '' --appendonly no \
		--daemonize no >"$tmp/redis.log" 2>&1 &
	redis=$!
	until [ -S "$sock" ]; do sleep 0.01; done
	[ "$mode" = untraced ] || attach "$redis" "$mode"
	t0=$(date +%s%N)
	redis-benchmark -s "$sock" -n "$n" -c 8 -t set,get,lpush,lpop,sadd -d 100 -q >/dev/null
	t1=$(date +%s%N)
	[ "$mode" = untraced ] || kill -INT "$tracer"
	kill "$redis"
	wait "$redis" || true
	[ "$mode" = untraced ] || wait "$tracer"
	redis=
	echo $(((t1 - t0) / (5 * n)))
}

median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

row() { # label, then the medians in $modes order
	awk -v l="$1" -v u="$2" -v fm="$3" -v ff="$4" -v fr="$5" -v a="$6" -v d="$7" -v e="$8" \
		'BEGIN { printf "| %s | %.0f | %.0f | %.0f | %.0f | %.0f (%.2fx) | %.0f (%.2fx) | %.0f (%.2fx, %.2fx) |\n",
			l, u, fm, ff, fr, a, a / fm, d, d / ff, e, e / ff, e / fr }'
}

echo "machine: $(nproc) CPUs, $(uname -r), $(. /etc/os-release && echo "$PRETTY_NAME"), $(date -u +%Y-%m-%d)"
echo "command: scripts/bench.sh $iters $reps $capture"
echo
echo "Floors: no-op program on allocprof's probe sites. m: allocation functions (what"
echo "--alloc-only probes); m+f: and free/delete (the default's probes; its returns are taken"
echo "only for sampled calls); m+f+r: and a return probe on every allocation (--exact's)."
echo "Ratios: --alloc-only to m, default to m+f, --exact to m+f and to m+f+r."
echo
echo "| workload | untraced | floor m | floor m+f | floor m+f+r | --alloc-only | default | --exact |"
echo "|---|---|---|---|---|---|---|---|"
for threads in 1 2; do
	for rep in $(seq "$reps"); do
		for m in $modes; do
			micro "$m" "$threads" >>"$tmp/$m.$threads"
		done
	done
	vals=""
	for m in $modes; do vals="$vals $(median <"$tmp/$m.$threads")"; done
	# shellcheck disable=SC2086
	row "bench, $threads thread$([ "$threads" = 1 ] || echo s), ns/pair" $vals
done
if command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null; then
	for rep in $(seq "$(((reps + 1) / 2))"); do
		for m in $modes; do
			real_program "$m" >>"$tmp/$m.redis"
		done
	done
	vals=""
	for m in $modes; do vals="$vals $(median <"$tmp/$m.redis")"; done
	# shellcheck disable=SC2086
	row "redis-server, ns/request" $vals
else
	echo "(redis-server or redis-benchmark missing: no real-program row)"
fi
echo
echo "bench: ns per malloc+free pair per thread, median of $reps runs of $iters pairs per thread."
echo "redis: redis-benchmark -n 100000 -c 8 -t set,get,lpush,lpop,sadd -d 100 over a unix"
echo "socket, wall time per request, median of $(((reps + 1) / 2)) runs."

# Deep stacks without frame pointers.
echo
echo "Deep stacks: build/tests/bench-nofp --depth 20 (built -O2 -fomit-frame-pointer), 1 thread,"
echo "ns/pair, median of $reps runs. Ratios: default to m+f; --exact (unwind tables) and"
echo "--exact --stacks fp to m+f+r."
echo
echo "| untraced | floor m+f | floor m+f+r | default | --exact | --exact --stacks fp |"
echo "|---|---|---|---|---|---|"
deep_modes="untraced floor_mf floor_mfr ap_default ap_exact ap_exact_fp"
saved_bench=$bench
bench=build/tests/bench-nofp
for rep in $(seq "$reps"); do
	for m in $deep_modes; do
		micro "$m" 1 --depth 20 >>"$tmp/$m.deep"
	done
done
bench=$saved_bench
vals=""
for m in $deep_modes; do vals="$vals $(median <"$tmp/$m.deep")"; done
# shellcheck disable=SC2086
awk -v v="$vals" 'BEGIN { split(v, a, " "); printf "| %.0f | %.0f | %.0f | %.0f (%.2fx) | %.0f (%.2fx) | %.0f (%.2fx) |\n",
	a[1], a[2], a[3], a[4], a[4] / a[2], a[5], a[5] / a[3], a[6], a[6] / a[3] }'

# The aggregator: 2 threads x 100k pairs/s for the capture plus 5 s.
echo
pairs=$(((capture + 5) * 100000))
"$bench" --threads 2 --rate 100000 --iters "$pairs" --wait >/dev/null 2>"$tmp/ready" &
pid=$!
until grep -qs waiting "$tmp/ready"; do sleep 0.01; done
python3 - "$pid" "$capture" "$tmp" <<'EOF' &
import resource, subprocess, sys, time
pid, secs, tmp = sys.argv[1:4]
with open(tmp + "/agg.log", "w") as log:
    p = subprocess.Popen(["./allocprof", "record", "-v", "-q", "-p", pid, "-d", secs + "s",
                          "-o", tmp + "/agg.pb.gz"], stderr=log)
    p.wait()
r = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = r.ru_utime + r.ru_stime
print("aggregator, %ss capture of ~200k malloc+free pairs/s (2 threads): CPU %.2f s "
      "(%.2f%% of one core), peak RSS %.1f MB, exit %d"
      % (secs, cpu, 100 * cpu / float(secs), r.ru_maxrss / 1024, p.returncode))
EOF
agg=$!
for _ in $(seq 200); do
	grep -qs "probes attached" "$tmp/agg.log" && break
	sleep 0.05
done
kill -USR1 "$pid"
wait "$agg"
wait "$pid"
