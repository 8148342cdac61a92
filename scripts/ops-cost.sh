#!/bin/bash
# What counting operations (record --ops) costs per operation, as ratios measured in one run:
# ns per request of build/tests/requests (6 allocations per request, 1 thread) untraced,
# under `record` (sampled, the default), and under `record --ops handle_request`. The
# difference of the last two is the entry probe's cost per counted call.
# Each cell is the median of REPS runs; modes alternate run by run.
#   scripts/ops-cost.sh [REQUESTS] [REPS]      (defaults 200000, 5)
set -euo pipefail
cd "$(dirname "$0")/.."
requests=${1:-200000}
reps=${2:-5}
target=build/tests/requests
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# ns per request under mode $1: none, record, ops.
run() {
	local args=("$target" --requests "$requests" --time)
	case $1 in
	none) "${args[@]}" 2>"$tmp/err" ;;
	record) ./allocprof record -q -n 0 -o "$tmp/p.pb.gz" -- "${args[@]}" 2>"$tmp/err" ;;
	ops) ./allocprof record -q -n 0 --ops handle_request -o "$tmp/p.pb.gz" -- \
		"${args[@]}" 2>"$tmp/err" ;;
	esac
	sed -n 's/.*: \([0-9.]*\) ns per request$/\1/p' "$tmp/err"
}

median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

declare -A res
for ((i = 0; i < reps; i++)); do
	for m in none record ops; do
		res[$m]+="$(run $m) "
	done
done
none=$(tr ' ' '\n' <<<"${res[none]}" | grep . | median)
rec=$(tr ' ' '\n' <<<"${res[record]}" | grep . | median)
ops=$(tr ' ' '\n' <<<"${res[ops]}" | grep . | median)
awk -v none="$none" -v rec="$rec" -v ops="$ops" 'BEGIN {
	printf "%-28s %10s %8s\n", "mode", "ns/request", "ratio"
	printf "%-28s %10.1f %8.2f\n", "untraced", none, 1
	printf "%-28s %10.1f %8.2f\n", "record (sampled)", rec, rec / none
	printf "%-28s %10.1f %8.2f\n", "record --ops handle_request", ops, ops / none
	printf "the entry probe per counted call: %.0f ns\n", ops - rec
}'
