#!/bin/bash
# Allocation budgets in CI, for any command (README "Allocation budgets in CI"): runs CMD RUNS
# times under `allocprof record --exact --ops OPS`, one profile a run in OUT, then checks them
# against a budget file (`allocprof check`) and compares them with a baseline's runs
# (`allocprof diff`). Needs root (allocprof record does). Leaves pictures beside the runs, for
# the job's artifacts: OUT/flame.svg (the runs' flame graph) and, with a baseline,
# OUT/diff.svg (what changed: red grew, blue shrank).
#
#   scripts/alloc-budget.sh --ops FUNC|N [-n RUNS] [--out DIR] [--budget FILE]
#                           [--baseline DIR] [--save-baseline DIR] [--sampled]
#                           [--diff-args "ARGS"] -- CMD [ARGS...]
#
#   --ops FUNC|N         what an operation is: a function whose calls are counted, or the
#                        number of operations CMD does (allocprof record --ops)
#   -n RUNS              runs (default 5: the fewest with which diff's test can reach
#                        p < 0.01)
#   --out DIR            where the runs' profiles go (default: alloc-runs; emptied first)
#   --budget FILE        fail when a function's allocations per operation exceed its budget
#   --baseline DIR       fail when a function's allocations per operation rose
#                        significantly against the profiles in DIR (an earlier run's --out,
#                        kept as a CI artifact); skipped, and said, when DIR has none
#   --save-baseline DIR  afterwards, make DIR a copy of this run's profiles (the main
#                        branch's job keeps it as the baseline artifact)
#   --sampled            record sampled instead of --exact (lower overhead; budgets then
#                        allow for the estimate's uncertainty)
#   --diff-args "ARGS"   more options for allocprof diff (e.g. "--threshold 5")
#
# Exit status: 0 every check passed; 1 a budget was exceeded or a function rose (the table
# says which); 2 bad command line, or a run or a profile failed.
set -uo pipefail

ALLOCPROF=${ALLOCPROF:-}
if [ -z "$ALLOCPROF" ]; then
	here=$(cd "$(dirname "$0")/.." && pwd)
	if [ -x "$here/allocprof" ]; then ALLOCPROF=$here/allocprof; else ALLOCPROF=allocprof; fi
fi

usage() {
	sed -n '2,/^set -uo/p' "$0" | sed -e '/^set -uo/d' -e 's/^# \{0,1\}//'
}
die() {
	echo "alloc-budget: $*" >&2
	exit 2
}

runs=5 out=alloc-runs budget="" baseline="" save="" ops="" exact=--exact diff_args=""
while [ $# -gt 0 ]; do
	case $1 in
	--ops) ops=${2:?}; shift 2 ;;
	-n) runs=${2:?}; shift 2 ;;
	--out) out=${2:?}; shift 2 ;;
	--budget) budget=${2:?}; shift 2 ;;
	--baseline) baseline=${2:?}; shift 2 ;;
	--save-baseline) save=${2:?}; shift 2 ;;
	--sampled) exact=""; shift ;;
	--diff-args) diff_args=${2:?}; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	--) shift; break ;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
done
[ $# -gt 0 ] || die "no command: put it after -- (see --help)"
[ -n "$ops" ] || die "--ops FUNC|N is needed: what one operation is"
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "bad -n '$runs': expected a number of runs"
[ -z "$budget" ] || [ -r "$budget" ] || die "cannot read the budget file $budget"

rm -rf "$out" && mkdir -p "$out" || die "cannot make $out"
for ((i = 1; i <= runs; i++)); do
	f=$(printf '%s/run-%02d.pb.gz' "$out" "$i")
	# The command's own output goes where this script's does; allocprof's summary is kept.
	if ! "$ALLOCPROF" record -q -n 0 $exact --ops "$ops" -o "$f" -- "$@" 2>"$out/record.log"; then
		cat "$out/record.log" >&2
		die "run $i of $* failed (allocprof's messages above)"
	fi
done
rm -f "$out/record.log"
echo "alloc-budget: $runs runs of $* recorded in $out"
"$ALLOCPROF" flame --per-op "$out" -o "$out/flame.svg" 2>/dev/null ||
	"$ALLOCPROF" flame "$out" -o "$out/flame.svg" || die "cannot draw the runs' flame graph"
echo "alloc-budget: their flame graph is $out/flame.svg"

status=0
if [ -n "$budget" ]; then
	"$ALLOCPROF" check --budget "$budget" "$out"
	rc=$?
	[ $rc -le 1 ] || exit 2
	[ $rc -eq 0 ] || status=1
fi
if [ -n "$baseline" ]; then
	if compgen -G "$baseline/*.pb.gz" >/dev/null; then
		# shellcheck disable=SC2086 # --diff-args is a list of words
		"$ALLOCPROF" diff $diff_args --svg "$out/diff.svg" "$baseline" "$out"
		rc=$?
		[ $rc -le 1 ] || exit 2
		echo "alloc-budget: what changed since the baseline is drawn in $out/diff.svg"
		[ $rc -eq 0 ] || status=1
	else
		echo "alloc-budget: no baseline profiles in $baseline: nothing to compare with yet"
	fi
fi
if [ -n "$save" ]; then
	rm -rf "$save" && mkdir -p "$save" && cp "$out"/*.pb.gz "$save"/ ||
		die "cannot save the baseline in $save"
	echo "alloc-budget: baseline saved in $save"
fi
exit $status
