#!/bin/sh
# The flame graph of a large profile: the file's size and frames, the time and memory
# `allocprof flame` takes, and a browser's time to draw it, against the same browser drawing a
# picture of one frame (so its start-up is measured too, in the same run).
# A crafted profile (tests/lib/pprofwrite.py, seed 1): STACKS stacks of 4 to 12 frames over
# 2,000 functions, as BENCHMARKS.md's readers' profile.
# Usage: scripts/flame-bench.sh [STACKS] [RUNS]     (default 100000 stacks, 5 runs)
set -eu
cd "$(dirname "$0")/.."
stacks=${1:-100000}
runs=${2:-5}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
[ -x ./allocprof ] || { echo "flame-bench: build ./allocprof first (make)" >&2; exit 1; }

python3 - "$stacks" "$tmp/big.pb.gz" "$tmp/one.pb.gz" <<'EOF'
import gzip, random, sys
sys.path.insert(0, "tests/lib")
import pprofwrite
n, out, one = int(sys.argv[1]), sys.argv[2], sys.argv[3]
random.seed(1)
p = pprofwrite.Profile()
p.exact()
locs = [p.function("fn_%04d" % i, "src/file_%02d.c" % (i % 50)) for i in range(2000)]
main = p.function("main", "src/main.c")
for _ in range(n):
    depth = random.randint(4, 12)
    v = random.randint(1, 1000)
    p.sample([random.choice(locs) for _ in range(depth - 1)] + [main],
             [v, v * random.choice((16, 32, 64, 256, 4096))])
open(out, "wb").write(gzip.compress(p.encode()))
q = pprofwrite.Profile()
q.exact()
q.sample([q.function("main", "src/main.c")], [1, 64])
open(one, "wb").write(gzip.compress(q.encode()))
EOF

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

echo "profile: $stacks stacks, $(stat -c %s "$tmp/big.pb.gz") bytes gzipped"
for mode in svg folded; do
	: >"$tmp/times"
	for _ in $(seq "$runs"); do
		if [ $mode = svg ]; then
			/usr/bin/time -f "%e %M" -o "$tmp/t" ./allocprof flame "$tmp/big.pb.gz" -o "$tmp/big.svg"
		else
			/usr/bin/time -f "%e %M" -o "$tmp/t" ./allocprof flame --folded "$tmp/big.pb.gz" \
				-o "$tmp/big.folded"
		fi
		cat "$tmp/t" >>"$tmp/times"
	done
	t=$(cut -d' ' -f1 "$tmp/times" | median)
	m=$(cut -d' ' -f2 "$tmp/times" | median)
	echo "allocprof flame ($mode): median of $runs runs ${t} s, peak RSS $((m / 1024)) MB"
done
frames=$(grep -o 'class="f"' "$tmp/big.svg" | wc -l)
echo "svg: $(stat -c %s "$tmp/big.svg") bytes, $frames frames" \
	"($(($(stat -c %s "$tmp/big.svg") / frames)) bytes a frame); folded:" \
	"$(wc -l <"$tmp/big.folded") lines, $(stat -c %s "$tmp/big.folded") bytes"

browser=$(command -v chromium || true)
if [ -z "$browser" ]; then
	echo "browser: chromium not installed (scripts/install-deps.sh --test), not measured"
	exit 0
fi
./allocprof flame "$tmp/one.pb.gz" -o "$tmp/one.svg"
for pic in one big; do
	: >"$tmp/times"
	for _ in $(seq "$runs"); do
		/usr/bin/time -f "%e" -o "$tmp/t" "$browser" --headless --no-sandbox --disable-gpu \
			--user-data-dir="$tmp/profile" --window-size=1200,900 \
			--screenshot="$tmp/$pic.png" "file://$tmp/$pic.svg" >/dev/null 2>&1
		cat "$tmp/t" >>"$tmp/times"
	done
	eval "t_$pic=$(median <"$tmp/times")"
done
# shellcheck disable=SC2154
echo "chromium --headless --screenshot: one frame ${t_one} s, $frames frames ${t_big} s" \
	"(median of $runs; the difference is the drawing: $(echo "$t_big $t_one" |
		awk '{ printf "%.2f", $1 - $2 }') s)"
