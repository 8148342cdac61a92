#!/bin/bash
# How long a capture takes to start, median (and range) of REPS runs each:
#   -p:     from allocprof's exec to its "probes live" line (`record -v -p PID` of a sleeping
#           process): the probes are in place when that line is written;
#   -- CMD: from allocprof's exec to the command's own first lines (`record -v -- date +%s.%N`:
#           date prints the wall clock as it starts);
# and, from the -v lines of the same runs, each BPF program's verified instructions and the
# verifier's time. --busy runs two `yes >/dev/null` meanwhile (both CPUs of the build VM busy).
#   [ALLOCPROF=path/to/allocprof] scripts/startup.sh [REPS] [--busy]     (default 7)
set -euo pipefail
cd "$(dirname "$0")/.."
reps=7
busy=
for a in "$@"; do
	case $a in
	--busy) busy=1 ;;
	*) reps=$a ;;
	esac
done
tmp=$(mktemp -d)
hogs=()
cleanup() {
	for h in "${hogs[@]}"; do kill "$h" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT
if [ -n "$busy" ]; then
	for _ in 1 2; do
		yes >/dev/null &
		hogs+=($!)
	done
fi
echo "machine: $(nproc) CPUs, $(uname -r), $(date -u '+%Y-%m-%d %H:%M')," \
	"load $(cut -d' ' -f1 /proc/loadavg)${busy:+, two yes running}"
echo "command: ${ALLOCPROF:+ALLOCPROF=$ALLOCPROF }scripts/startup.sh $*"
python3 - "$reps" "$tmp" <<'EOF'
import os, re, statistics, subprocess, sys, time

reps, tmp = int(sys.argv[1]), sys.argv[2]
allocprof = os.environ.get("ALLOCPROF", "./allocprof")
prog_re = re.compile(r"program (\S+): (\d+) instructions verified in ([0-9.]+) ms")

def run(args, until):
    """Starts allocprof; the times (s after its exec) of the first stderr line matching
    `until`, and its stdout, and the -v lines about programs."""
    t0 = time.time()
    p = subprocess.Popen([allocprof, "record", "-v", "-o", tmp + "/p.pb.gz"] + args,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    live, own, progs, err = None, None, {}, []
    for line in p.stderr:
        err.append(line)
        m = prog_re.search(line)
        if m:
            progs[m.group(1)] = (int(m.group(2)), float(m.group(3)))
        if live is None and until in line:
            live = time.time() - t0
            m = re.search(r"([0-9.]+) ms after start", line)
            own = float(m.group(1)) / 1000 if m else None
    out = p.stdout.read()
    if p.wait() != 0 or live is None:
        sys.exit("startup.sh: allocprof %s failed:\n%s" % (" ".join(args), "".join(err)))
    return t0, live, own, out, progs

def fmt(xs):
    xs = [x * 1000 for x in xs]
    return "%.0f ms (%.0f-%.0f)" % (statistics.median(xs), min(xs), max(xs))

pid_live, pid_own, cmd_exec, cmd_own = [], [], [], []
progs = {}
for _ in range(reps):
    target = subprocess.Popen(["sleep", "1000"])
    time.sleep(0.05)
    _, live, own, _, pr = run(["-p", str(target.pid), "-d", "200ms"], "probes live")
    target.kill()
    target.wait()
    pid_live.append(live)
    pid_own.append(own)
    for k, v in pr.items():
        progs.setdefault(k, []).append(v)
    t0, _, own, out, _ = run(["--", "date", "+%s.%N"], "probes live")
    cmd_exec.append(float(out.split()[0]) - t0)
    cmd_own.append(own)

print()
print("| what | median of %d (min-max) |" % reps)
print("|---|---|")
print("| -p: exec to \"probes live\" | %s |" % fmt(pid_live))
print("| -p: allocprof's own figure (from cmd_record) | %s |" % fmt(pid_own))
print("| -- CMD: exec to the command's first line | %s |" % fmt(cmd_exec))
print("| -- CMD: allocprof's own figure (command released) | %s |" % fmt(cmd_own))
if progs:
    print()
    print("| program (-p, default options) | verified instructions |"
          " load (verifier, JIT), ms (median) |")
    print("|---|---|---|")
    for k in sorted(progs, key=lambda k: -statistics.median(v[1] for v in progs[k])):
        print("| %s | %d | %.1f |" % (k, progs[k][0][0], statistics.median(v[1] for v in progs[k])))
EOF
