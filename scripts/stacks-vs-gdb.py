#!/usr/bin/env python3
"""An oracle for allocprof's stacks: gdb's backtraces at malloc, looked up in a profile.

  scripts/stacks-vs-gdb.py [options] -p PID
  scripts/stacks-vs-gdb.py [options] -- CMD [ARGS...]

First `allocprof record -v -p PID --exact -o FILE` records the process (with --stacks MODE if
given) for DURATION, counted from when its probes are attached (and every --wait-log line is
in its log); once it is done, Debian's gdb attaches (`gdb -p PID -batch`), stops
at malloc K times, takes each backtrace and detaches. Each gdb stack, from malloc's caller
outwards, is written as module+offset of each frame's pc (one per physical frame: gdb's
inlined and tail-call frames have no frame of their own on the stack; frames in no file
mapping, such as [vdso], are left out), and so is each profile stack (Location address, in
its Mapping); allocprof writes a return address minus 1 as a Location's address (into the
call instruction: user/collect.c, frame_location), gdb's caller frames show the return
address itself, so gdb's pc - 1 is what is compared. For each gdb hit it prints whether an
identical stack is in the profile, else the first frame where the closest one differs, and
ends with "K of N gdb stacks found in the profile".

The process must keep doing the same kinds of allocation through both phases (a server
under load, a program in a loop): a stack gdb sees that the recording did not see is
reported as missing. gdb stops the process at each breakpoint hit; if malloc is not hit
within --gdb-timeout seconds, the script interrupts it (SIGINT, which gdb keeps from the
process) and gdb detaches.

Options:
  -d, --duration D   the recording's length (500ms, 5s, 1m; default 5s)
  --wait-log REGEX   start the duration only once allocprof's -v log matches REGEX (as
                     many as needed; e.g. "unwind table for libc.so.6: ")
  -k, --hits K       gdb breakpoint hits to take (default 20)
  --stacks MODE      passed to allocprof record
  --allocprof PATH   the allocprof binary (default: ./allocprof of this repository)
  --keep FILE        keep the profile as FILE
  --upto F[,F...]    compare each gdb stack only up to its first frame in one of these
                     functions (e.g. main,start_thread), and the profile's at that depth
  --show             print each gdb stack's functions too
  --gdb-timeout S    seconds to wait for the K hits (default 60)
Exit status: 0 when every gdb stack was found, 1 when some were not, 2 on a usage or tool
error.
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
import pprofraw  # noqa: E402

# Run inside gdb: K stops at malloc, each backtrace as one JSON line, then detach.
GDB_SCRIPT = r'''
import json
import gdb

K = %(hits)d
gdb.execute("set pagination off")
gdb.execute("set confirm off")
gdb.execute("set print thread-events off")
gdb.execute("set backtrace limit 1000")
# Whole stacks: gdb stops at main unless told (the root is _start, or clone3 for threads).
gdb.execute("set backtrace past-main on")
gdb.execute("set backtrace past-entry on")
bp = gdb.Breakpoint("malloc")
print("STACKS-VS-GDB ATTACHED", flush=True)
for i in range(K):
    try:
        gdb.execute("continue", to_string=True)
    except gdb.error as e:
        print("STACKS-VS-GDB STOPPED " + json.dumps(str(e)), flush=True)
        break
    f = gdb.newest_frame()
    stop = gdb.selected_thread()
    # The breakpoint, or an interrupt (which stops anywhere): then the hits end.
    if "malloc" not in (f.name() or ""):
        print("STACKS-VS-GDB STOPPED " + json.dumps("stopped in " + str(f.name())), flush=True)
        break
    frames = []
    while f is not None:
        try:
            frames.append({"pc": f.pc(), "name": f.name() or "", "type": int(f.type()),
                           "inline": f.type() == gdb.INLINE_FRAME,
                           "tailcall": f.type() == gdb.TAILCALL_FRAME})
            f = f.older()
        except gdb.error:
            break
    print("STACKS-VS-GDB HIT " + json.dumps({"thread": stop.ptid[1], "frames": frames}),
          flush=True)
bp.delete()
print("STACKS-VS-GDB DETACHING", flush=True)
gdb.execute("detach")
'''


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-p", "--pid", type=int)
    ap.add_argument("-d", "--duration", default="5s")
    ap.add_argument("-k", "--hits", type=int, default=20)
    ap.add_argument("--stacks")
    ap.add_argument("--allocprof", default=os.path.join(ROOT, "allocprof"))
    ap.add_argument("--keep")
    ap.add_argument("--show", action="store_true")
    ap.add_argument("--gdb-timeout", type=float, default=60)
    ap.add_argument("--wait-log", action="append", default=[])
    ap.add_argument("--upto", default="")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    if a.cmd and a.cmd[0] == "--":
        a.cmd = a.cmd[1:]
    if (a.pid is None) == (not a.cmd):
        ap.error("give one of -p PID or -- CMD")
    return a


def read_maps(pid):
    """File mappings of the process: [(start, end, offset, path)]."""
    out = []
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            parts = line.split(None, 5)
            if len(parts) < 6 or not parts[5].startswith("/"):
                continue
            start, end = (int(x, 16) for x in parts[0].split("-"))
            out.append((start, end, int(parts[2], 16), parts[5].rstrip("\n")))
    return out


def module_offset(maps, addr):
    for start, end, off, path in maps:
        if start <= addr < end:
            return (path, addr - start + off)
    return None


def wait_until_linked(pid, timeout=30):
    """A started command is worth recording once its libraries are mapped (libc is)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if any("/libc.so" in m[3] or "libc-" in m[3] for m in read_maps(pid)):
                return
        except OSError:
            break
        time.sleep(0.05)
    sys.exit("stacks-vs-gdb: pid %d never mapped libc" % pid)


def seconds(text):
    for suffix, mult in (("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)):
        if text.endswith(suffix) and text[:-len(suffix)].replace(".", "", 1).isdigit():
            return float(text[:-len(suffix)]) * mult
    sys.exit("stacks-vs-gdb: bad duration %r" % text)


def record(a, pid, out):
    """allocprof record -v -p PID --exact, stopped (SIGINT) DURATION after its probes are
    attached and the --wait-log lines are in its log."""
    cmd = [a.allocprof, "record", "-v", "-p", str(pid), "--exact", "-o", out]
    if a.stacks:
        cmd += ["--stacks", a.stacks]
    waits = [re.compile("probes attached")] + [re.compile(w) for w in a.wait_log]
    duration = seconds(a.duration)
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, text=True)
        deadline = time.time() + 120
        while True:
            log.seek(0)
            text = log.read()
            if all(w.search(text) for w in waits):
                break
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                proc.wait()
                sys.stderr.write(text)
                sys.exit("stacks-vs-gdb: allocprof record never logged %s" %
                         " and ".join(w.pattern for w in waits if not w.search(text)))
            time.sleep(0.05)
        time.sleep(duration)
        proc.send_signal(signal.SIGINT)
        rc = proc.wait()
        if rc != 0:
            log.seek(0)
            sys.stderr.write(log.read())
            sys.exit("stacks-vs-gdb: allocprof record exited %d" % rc)


def gdb_hits(a, pid):
    """gdb's stacks at K malloc hits: [{"thread": tid, "frames": [...]}]."""
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(GDB_SCRIPT.replace("%(hits)d", str(a.hits)))
        script = f.name
    cmd = ["gdb", "-nx", "-batch", "-iex", "set debuginfod enabled off",
           "-iex", "set auto-load python-scripts off", "-p", str(pid), "-ex", "source " + script]
    gdb = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    hits, state = [], {"attached": False, "done": False}
    lock = threading.Lock()

    def watchdog():
        deadline = time.time() + a.gdb_timeout
        while time.time() < deadline:
            if gdb.poll() is not None:
                return
            time.sleep(0.1)
        with lock:
            # Only while gdb holds the process: gdb keeps the SIGINT from it.
            if state["attached"] and not state["done"] and gdb.poll() is None:
                sys.stderr.write("stacks-vs-gdb: no more malloc hits after %gs; "
                                 "interrupting\n" % a.gdb_timeout)
                os.kill(pid, signal.SIGINT)

    threading.Thread(target=watchdog, daemon=True).start()
    for line in gdb.stdout:
        with lock:
            if line.startswith("STACKS-VS-GDB ATTACHED"):
                state["attached"] = True
            elif line.startswith("STACKS-VS-GDB HIT "):
                hits.append(json.loads(line[len("STACKS-VS-GDB HIT "):]))
            elif line.startswith("STACKS-VS-GDB DETACHING"):
                state["done"] = True
            elif line.startswith("STACKS-VS-GDB STOPPED"):
                sys.stderr.write("stacks-vs-gdb: gdb " + line[len("STACKS-VS-GDB "):])
    err = gdb.stderr.read()
    gdb.wait()
    os.unlink(script)
    if not state["attached"]:
        sys.stderr.write(err)
        sys.exit("stacks-vs-gdb: gdb did not attach to pid %d" % pid)
    return hits


def gdb_stack(hit, maps):
    """(module, offset) per physical frame from malloc's caller out, as allocprof writes a
    Location's address (return address - 1), and the functions, for messages."""
    frames = hit["frames"]
    phys = []
    for i, fr in enumerate(frames):
        if fr["inline"] or fr["tailcall"]:
            continue
        phys.append(fr)
    # phys[0] is malloc (or the frame the breakpoint is in): the stack starts at its caller.
    out, names = [], []
    for fr in phys[1:]:
        mo = module_offset(maps, fr["pc"] - 1)
        if mo is None:
            continue
        out.append(mo)
        names.append(fr["name"] or "??")
    return out, names


def profile_stacks(prof):
    """{(module, offset), ...: functions} for every sample's stack; frames in no mapping out."""
    maps = {}
    for line in prof.mappings:
        parts = line.split()
        mid = int(parts[0].rstrip(":"))
        start, limit, off = (int(x, 16) for x in parts[1].split("/"))
        maps[mid] = (start, off, parts[2])
    stacks = {}
    for s in prof.samples:
        key, names = [], []
        for lid in s.locations:
            loc = prof.locations[lid]
            if loc.mapping not in maps:
                continue
            start, off, path = maps[loc.mapping]
            key.append((path, loc.address - start + off))
            names.append("/".join(loc.functions) or "0x%x" % loc.address)
        stacks[tuple(key)] = names
    return stacks


def fmt(mo):
    return "%s+0x%x" % (os.path.basename(mo[0]), mo[1])


def compare(gstack, gnames, pstacks, max_frames=127, upto=False):
    """None if an identical stack is in the profile (with `upto`: one that starts with the
    same frames), else the first difference with the closest (longest common prefix)
    profile stack."""
    g = tuple(gstack[:max_frames])
    if g in pstacks or (upto and any(p[:len(g)] == g for p in pstacks)):
        return None
    best, best_n = None, -1
    for p in pstacks:
        n = 0
        while n < len(p) and n < len(g) and p[n] == g[n]:
            n += 1
        if n > best_n or (n == best_n and best is not None and len(p) > len(best)):
            best, best_n = p, n
    if best is None:
        return "the profile has no stacks"
    if best_n < len(g):
        gd = "%s %s" % (gnames[best_n], fmt(g[best_n]))
    else:
        gd = "nothing (gdb's stack ends)"
    if best_n < len(best):
        pd = "%s %s" % (pstacks[best][best_n], fmt(best[best_n]))
    else:
        pd = "nothing (the profile's stack ends)"
    return "frame %d: gdb has %s, the closest profile stack has %s" % (best_n, gd, pd)


def main():
    a = parse_args()
    started = None
    if a.cmd:
        started = subprocess.Popen(a.cmd)
        pid = started.pid
        wait_until_linked(pid)
    else:
        pid = a.pid
    try:
        out = a.keep or tempfile.mktemp(prefix="stacks-vs-gdb-", suffix=".pb.gz")
        record(a, pid, out)
        maps = read_maps(pid)
        hits = gdb_hits(a, pid)
        prof = pprofraw.read(out)
        if not a.keep:
            os.unlink(out)
    finally:
        if started is not None:
            started.terminate()
            started.wait()
    pstacks = profile_stacks(prof)
    found = 0
    depths = []
    for i, hit in enumerate(hits):
        gstack, gnames = gdb_stack(hit, maps)
        upto = [i for i, n in enumerate(gnames) if n in a.upto.split(",")]
        if upto:
            gstack, gnames = gstack[:upto[0] + 1], gnames[:upto[0] + 1]
        depths.append(len(gstack))
        diff = compare(gstack, gnames, pstacks, upto=bool(upto))
        outer = gnames[-1] if gnames else "-"
        if diff is None:
            found += 1
            print("hit %d (thread %d, %d frames, outermost %s): found" % (i + 1, hit["thread"],
                                                                       len(gstack), outer))
        else:
            print("hit %d (thread %d, %d frames, outermost %s): NOT found: %s" %
                  (i + 1, hit["thread"], len(gstack), outer, diff))
        if a.show:
            for n, mo in zip(gnames, gstack):
                print("    %-40s %s" % (n, fmt(mo)))
    if depths:
        print("gdb stack depth: min %d, median %d, max %d; profile: %d stacks" %
              (min(depths), sorted(depths)[len(depths) // 2], max(depths), len(pstacks)))
    print("%d of %d gdb stacks found in the profile" % (found, len(hits)))
    return 0 if hits and found == len(hits) else 1


if __name__ == "__main__":
    sys.exit(main())
