#!/bin/bash
# A soak of periodic capture: `allocprof record -a --interval INTERVAL --output-dir DIR` for
# MINUTES while short processes come and go (CHURN a second, alternately build/tests/sites,
# which frees everything, and build/tests/leaks, which exits with blocks still allocated), and
# after every file written one row: the tracer's RSS (VmRSS, /proc/PID/status), its CPU time
# in the interval, its open descriptors, and the fill of the BPF maps, both as allocprof says
# it after releasing the exited processes (its -v "held:" line) and as bpftool counts them
# (counts, procs, live, vmas; at the moment of the row, so new entries included). Flat columns
# over the run are the point: memory bounded whatever the number of processes seen.
#   scripts/soak.sh [MINUTES] [INTERVAL] [CHURN]      (defaults 10, 10s, 5)
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-10}
interval=${2:-10s}
churn=${3:-5}
tmp=$(mktemp -d)
mkdir "$tmp/out"
churner=
tracer=
trap '[ -n "$churner" ] && kill "$churner" 2>/dev/null; [ -n "$tracer" ] && kill "$tracer" 2>/dev/null; rm -rf "$tmp"; true' EXIT

for t in build/tests/sites build/tests/leaks ./allocprof; do
	[ -x "$t" ] || { echo "soak: $t is missing: make allocprof build/tests/sites build/tests/leaks" >&2; exit 1; }
done

# The churn: CHURN short processes a second, each a few milliseconds of allocations.
(
	n=0
	pause=$(awk -v c="$churn" 'BEGIN { printf "%.3f", 1 / c }')
	while :; do
		if ((n % 2)); then
			build/tests/leaks --threads 1 --rounds 2 >/dev/null 2>&1 &
		else
			build/tests/sites --threads 1 --rounds 5 >/dev/null 2>&1 &
		fi
		n=$((n + 1))
		echo "$n" >"$tmp/started"
		sleep "$pause"
	done
) &
churner=$!

t0=$(date +%s.%N)
./allocprof record -a -v -q --interval "$interval" --output-dir "$tmp/out" --keep 3 \
	-d "${minutes}m" 2>"$tmp/log" &
tracer=$!
for _ in $(seq 1200); do
	grep -qs "all processes: allocators of" "$tmp/log" && break
	kill -0 "$tracer" 2>/dev/null || { cat "$tmp/log" >&2; exit 1; }
	sleep 0.05
done

# The ids of this tracer's maps, by name: the map ids of its descriptors (fdinfo), named by
# bpftool (this bpftool has no pid column).
map_id() {
	bpftool -j map show | python3 -c '
import glob, json, re, sys
mine = set()
for fi in glob.glob("/proc/%s/fdinfo/*" % sys.argv[2]):
    try:
        m = re.search(r"^map_id:\s*(\d+)", open(fi).read(), re.M)
    except OSError:
        continue
    if m:
        mine.add(int(m.group(1)))
for m in json.load(sys.stdin):
    if m.get("name") == sys.argv[1] and m["id"] in mine:
        print(m["id"]); break' "$1" "$tracer"
}
entries() {
	[ -n "$1" ] || { echo "?"; return; }
	bpftool -j map dump id "$1" 2>/dev/null | python3 -c 'import json, sys; print(len(json.load(sys.stdin)))' ||
		echo "?"
}
id_counts=$(map_id counts)
id_procs=$(map_id procs)
id_live=$(map_id live)
id_vmas=$(map_id vmas)

ticks=$(getconf CLK_TCK)
cpu() { awk '{ print $14 + $15 }' "/proc/$tracer/stat"; }
last_cpu=$(cpu)
last_t=$(date +%s.%N)
seen=0
printf "%5s %6s %7s %6s %5s %4s | %8s %7s %6s %6s %5s | %6s %5s | %7s %6s %6s %6s | %5s %6s\n" \
	file t_s rss_MiB cpu_% wr_ms fds counters stacks live vmas procs snaps files \
	bt_cnt bt_prc bt_live bt_vma procs released
released=0
while kill -0 "$tracer" 2>/dev/null; do
	n=$(grep -c "allocprof: held:" "$tmp/log" || true)
	if ((n <= seen)); then
		sleep 0.2
		continue
	fi
	seen=$n
	line=$(grep "allocprof: held:" "$tmp/log" | tail -1)
	released=$(grep -o "released [0-9]* exited" "$tmp/log" | awk '{ s += $2 } END { print s + 0 }')
	rss=$(awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$tracer/status" 2>/dev/null || echo "?")
	fds=$(ls "/proc/$tracer/fd" 2>/dev/null | wc -l)
	now_cpu=$(cpu 2>/dev/null || echo "$last_cpu")
	now_t=$(date +%s.%N)
	pct=$(awk -v a="$last_cpu" -v b="$now_cpu" -v t0="$last_t" -v t1="$now_t" -v hz="$ticks" \
		'BEGIN { printf "%.1f", 100 * (b - a) / hz / (t1 - t0) }')
	last_cpu=$now_cpu
	last_t=$now_t
	# "held: C counters, S stacks, L live blocks, V recorded mappings, P processes in the
	# kernel; M mapping snapshots, F open files; W ms to collect and write the file"
	read -r c s l v p m f w < <(echo "$line" | grep -o "[0-9]\+ [a-z]" | awk '{ printf "%s ", $1 } END { print "" }')
	printf "%5d %6s %7s %6s %5s %4d | %8s %7s %6s %6s %5s | %6s %5s | %7s %6s %6s %6s | %5s %6s\n" \
		"$n" "$(awk -v t="$now_t" -v s="$t0" 'BEGIN { printf "%d", t - s }')" \
		"$rss" "$pct" "$w" "$fds" "$c" "$s" "$l" "$v" "$p" "$m" "$f" \
		"$(entries "$id_counts")" "$(entries "$id_procs")" "$(entries "$id_live")" \
		"$(entries "$id_vmas")" "$(cat "$tmp/started")" "$released"
done
wait "$tracer" && status=0 || status=$?
tracer=
echo "allocprof exited $status; files kept in the directory (--keep 3): $(ls "$tmp/out" | wc -l)"
grep -E "error|warning" "$tmp/log" | sort | uniq -c | sort -rn | head -20 || true
