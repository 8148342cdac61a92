#!/bin/bash
# How start and end scale with the number of -p targets: N idle `sleep` processes, one
# `allocprof record -v -p PID,PID,... -d 3s` each, timed from its stderr lines.
#   scripts/scale.sh [N...]            (default: 1 10 100 1000)
#   ALLOCPROF_SCOPE=pid scripts/scale.sh 10 100   links per target, for comparison
# Columns: launch -> probes live; end of the duration -> profile written; -> exit (seconds).
set -euo pipefail
cd "$(dirname "$0")/.."
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(1 10 100 1000)
tmp=$(mktemp -d)
pids=()
cleanup() { [ ${#pids[@]} -eq 0 ] || kill "${pids[@]}" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
echo "| targets | scope | launch -> live, s | end -> written, s | end -> exit, s |"
echo "|---|---|---|---|---|"
for n in "${counts[@]}"; do
	pids=()
	for _ in $(seq "$n"); do
		sleep 600 &
		pids+=($!)
	done
	list=$(IFS=,; echo "${pids[*]}")
	python3 - "$list" "$tmp" <<'PY'
import subprocess, sys, time
pids, tmp = sys.argv[1], sys.argv[2]
t0 = time.monotonic()
p = subprocess.Popen(["./allocprof", "record", "-v", "-p", pids, "-d", "3s",
                      "-o", tmp + "/p.pb.gz"], stderr=subprocess.PIPE, text=True)
live = wrote = None
scope = "pid"
for line in p.stderr:
    t = time.monotonic() - t0
    if "probes shared by every process" in line:
        scope = "file"
    if live is None and "recording: probes live" in line:
        live = t
    if wrote is None and line.startswith("allocprof: wrote "):
        wrote = t
p.wait()
end = time.monotonic() - t0
if p.returncode or live is None or wrote is None:
    sys.exit("scale.sh: allocprof failed (exit %d)" % p.returncode)
dur_end = live + 3.0
print("| %d | %s | %.2f | %.2f | %.2f |" % (len(pids.split(",")), scope, live,
                                         wrote - dur_end, end - dur_end))
PY
	kill "${pids[@]}" 2>/dev/null || true
	wait 2>/dev/null || true
	pids=()
done
