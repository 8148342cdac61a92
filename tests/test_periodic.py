"""Periodic capture (--interval, --output-dir, --keep): one complete file per interval, which
merged are exactly one capture; SIGUSR1 writes the current interval now; old files pruned;
exited processes are in the file of their interval, then released."""

import glob
import gzip
import os
import re
import signal
import socket
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import pprofraw  # noqa: E402
import pprofwrite  # noqa: E402
from harness import ALLOCPROF, Case, read_expect_all, record, target, wait_for_log  # noqa: E402
from harness import needs  # noqa: E402

BENCH = target("bench")
LEAKS = target("leaks")
HOST = socket.gethostname().split(".")[0]
NAME_RE = re.compile(r"^allocprof-%s-\d{8}T\d{6}Z(_\d+)?\.pb\.gz$" % re.escape(HOST))
WROTE_RE = re.compile(r"^allocprof: wrote (\S+): ", re.M)


def bench_totals(threads, iters):
    """What bench's workers allocate (every malloc is in worker(), leaf of its stack), from
    its own generator: (objects, bytes)."""
    total = 0
    for t in range(1, threads + 1):
        x = (t * 2654435761 + 1) & 0xFFFFFFFF
        for _ in range(iters):
            x ^= (x << 13) & 0xFFFFFFFF
            x ^= x >> 17
            x ^= (x << 5) & 0xFFFFFFFF
            pick, v = x % 100, x >> 8
            if pick < 70:
                total += 16 + v % 49
            elif pick < 90:
                total += 64 + v % 449
            elif pick < 99:
                total += 512 + v % 3585
            else:
                total += 4096 + v % 61441
    return threads * iters, total


def times(path):
    """time_nanos and duration_nanos (Profile fields 9 and 10) read from the file itself:
    pprof -raw prints the duration rounded."""
    with gzip.open(path) as f:
        out = {n: v for n, v in pprofwrite.read_fields(f.read()) if n in (9, 10)}
    return out.get(9, 0), out.get(10, 0)


def own_files(d):
    return sorted(n for n in os.listdir(d) if NAME_RE.match(n))


def merged(case, files):
    out = case.path("merged.pb.gz")
    with open(out, "wb") as f:
        subprocess.run([pprofraw.PPROF, "-proto", *files], stdout=f, stderr=subprocess.DEVNULL,
                       check=True)
    return pprofraw.read(out)


@needs("root", "pprof")
class Intervals(Case):
    def setUp(self):
        super().setUp()
        self.dir = self.path("out")
        os.mkdir(self.dir)

    def test_exact_files_add_up_to_the_whole_run(self):
        # Paced to 1000 pairs a second per thread: at least 4.5 s however fast the machine.
        threads, iters = 4, 4500
        proc = record(["--exact", "--interval", "1s", "--output-dir", self.dir, "--", BENCH,
                       "--threads", str(threads), "--iters", str(iters), "--rate", "1000"])
        self.assertRecorded(proc)
        names = own_files(self.dir)
        self.assertEqual(sorted(os.listdir(self.dir)), names, "only its own files, no temporary")
        self.assertGreaterEqual(len(names), 3, proc.stderr)
        files = [os.path.join(self.dir, n) for n in names]
        # One "wrote" line per file, in the order the names sort.
        self.assertEqual(WROTE_RE.findall(proc.stderr), files, proc.stderr)
        total_objects = 0
        for path in files:
            prof = pprofraw.read(path)
            self.assertIn("lost allocations: 0", prof.comments, path)
            self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
            total_objects += prof.flat("alloc_objects").get("worker", 0)
        objects, nbytes = bench_totals(threads, iters)
        self.assertEqual(total_objects, objects, "the raw files summed")
        whole = merged(self, files)
        self.assertEqual(whole.flat("alloc_objects").get("worker"), objects)
        self.assertEqual(whole.flat("alloc_space").get("worker"), nbytes)
        # Each file's time and duration end where the next begins.
        spans = [times(p) for p in files]
        for (t0, d0), (t1, _) in zip(spans, spans[1:]):
            self.assertGreater(d0, 0)
            self.assertEqual(t0 + d0, t1)
        self.assertTrue(all(d > 0 for _, d in spans))

    def test_keep_prunes_only_its_own_oldest(self):
        others = ["allocprof-otherhost-20200101T000000Z.pb.gz", "notes.txt",
                  "allocprof-%s-20200101T000000Z.pb.gz.bak" % HOST]
        for n in others:
            with open(os.path.join(self.dir, n), "w") as f:
                f.write("not ours\n")
        # Named as ours, older than anything written now: the first to go.
        old = os.path.join(self.dir, "allocprof-%s-20200101T000000Z.pb.gz" % HOST)
        with open(old, "w") as f:
            f.write("an old profile\n")
        proc = record(["--exact", "-q", "-v", "--interval", "1s", "--keep", "2",
                       "--output-dir", self.dir, "--", BENCH, "--threads", "2", "--iters",
                       "3500", "--rate", "1000"])
        self.assertRecorded(proc)
        self.assertNotIn("allocprof: wrote", proc.stderr, "-q: no per-file lines")
        self.assertIn("--keep 2:", proc.stderr)
        self.assertFalse(os.path.exists(old))
        kept = own_files(self.dir)
        self.assertEqual(len(kept), 2, os.listdir(self.dir))
        self.assertEqual(sorted(os.listdir(self.dir)), sorted(kept + others))
        for n in others:
            with open(os.path.join(self.dir, n)) as f:
                self.assertEqual(f.read(), "not ours\n")
        # The newest two: the last one ends the capture, and they adjoin.
        (t0, d0), (t1, _) = [times(os.path.join(self.dir, n)) for n in kept]
        self.assertEqual(t0 + d0, t1)

    def start_bench(self):
        """A steady allocator that runs until killed (at most ~17 minutes)."""
        tgt = subprocess.Popen([BENCH, "--iters", "1000000", "--rate", "1000"],
                               stdout=subprocess.DEVNULL)
        self.addCleanup(tgt.wait)
        self.addCleanup(tgt.kill)
        return tgt

    def start_capture(self, args):
        log = self.path("log")
        errf = open(log, "w")
        self.addCleanup(errf.close)
        ap = subprocess.Popen([ALLOCPROF, "record", "-v", *args], stdout=subprocess.DEVNULL,
                              stderr=errf)
        self.addCleanup(ap.wait)
        self.addCleanup(lambda: ap.poll() is None and ap.kill())
        return ap, log

    def test_sigusr1_writes_now_and_goes_on(self):
        tgt = self.start_bench()
        # An hour: only the signals can end an interval within the test.
        ap, log = self.start_capture(["--exact", "--interval", "1h", "--output-dir", self.dir,
                                      "-p", str(tgt.pid)])
        wait_for_log(log, "probes attached", proc=ap)
        ap.send_signal(signal.SIGUSR1)
        text = wait_for_log(log, WROTE_RE, proc=ap)
        first = WROTE_RE.findall(text)
        self.assertEqual(len(first), 1)
        self.assertEqual(own_files(self.dir), [os.path.basename(first[0])])
        self.assertIsNone(ap.poll(), "the capture goes on")
        # Let it record something in the second interval: a new counter's notice.
        ap.send_signal(signal.SIGINT)
        self.assertEqual(ap.wait(timeout=60), 0)
        with open(log) as f:
            text = f.read()
        files = WROTE_RE.findall(text)
        self.assertEqual(len(files), 2, text)
        self.assertEqual([os.path.join(self.dir, n) for n in own_files(self.dir)], files)
        self.assertIsNone(tgt.poll(), "the target must survive the capture")
        spans = [times(p) for p in files]
        self.assertEqual(spans[0][0] + spans[0][1], spans[1][0])
        for p in files:
            pprofraw.read(p)

    def test_sigusr1_without_interval_writes_nothing(self):
        tgt = self.start_bench()
        ap, log = self.start_capture(["--exact", "--output-dir", self.dir, "-p", str(tgt.pid)])
        wait_for_log(log, "probes attached", proc=ap)
        ap.send_signal(signal.SIGUSR1)
        wait_for_log(log, "SIGUSR1 ignored: without --interval nothing is written", proc=ap)
        self.assertEqual(os.listdir(self.dir), [])
        ap.send_signal(signal.SIGTERM)
        self.assertEqual(ap.wait(timeout=60), 0)
        names = own_files(self.dir)
        self.assertEqual(sorted(os.listdir(self.dir)), names)
        self.assertEqual(len(names), 1)
        self.assertIn("worker", pprofraw.read(os.path.join(self.dir, names[0]))
                      .flat("alloc_objects"))

    def test_exited_process_is_in_its_interval_then_released(self):
        """Two processes; the first exits, the file of its interval has all it allocated and
        what it leaked, then it is released: the next file has nothing of it."""
        tgts, expects = [], []
        for i in range(2):
            exp = self.path("expect%d" % i)
            t = subprocess.Popen([LEAKS, "--threads", "2", "--rounds", "50", "--wait",
                                  "--expect", exp], stderr=subprocess.PIPE, text=True)
            self.addCleanup(t.wait)
            self.addCleanup(lambda t=t: t.poll() is None and t.kill())
            self.assertIn("waiting", t.stderr.readline())
            tgts.append(t)
            expects.append(exp)
        ap, log = self.start_capture(["--exact", "--interval", "1h", "--output-dir", self.dir,
                                      "-p", "%d,%d" % (tgts[0].pid, tgts[1].pid)])
        wait_for_log(log, "pid %d: " % tgts[1].pid, "probes attached", proc=ap)
        tgts[0].send_signal(signal.SIGUSR1)
        self.assertEqual(tgts[0].wait(timeout=120), 0)
        wait_for_log(log, "pid %d (" % tgts[0].pid, "exited;", proc=ap)
        ap.send_signal(signal.SIGUSR1)
        wait_for_log(log, WROTE_RE, "released 1 exited process", proc=ap)
        tgts[1].send_signal(signal.SIGUSR1)
        self.assertEqual(tgts[1].wait(timeout=120), 0)
        # The last target's exit ends the capture.
        self.assertEqual(ap.wait(timeout=120), 0)
        with open(log) as f:
            files = WROTE_RE.findall(f.read())
        self.assertEqual(len(files), 2)
        for i, path in enumerate(files):
            prof = pprofraw.read(path)
            pid = str(tgts[i].pid)
            pids = {s.labels.get("pid", ["?"])[0] for s in prof.samples}
            self.assertEqual(pids, {pid}, "file %d: only pid %s's samples" % (i, pid))
            flat = {t: prof.flat(t) for t in ("alloc_objects", "alloc_space", "inuse_objects",
                                               "inuse_space")}
            for site, (n, nbytes, live, live_bytes) in read_expect_all(expects[i]).items():
                self.assertEqual(flat["alloc_objects"].get(site, 0), n, site)
                self.assertEqual(flat["alloc_space"].get(site, 0), nbytes, site)
                self.assertEqual(flat["inuse_objects"].get(site, 0), live, site)
                self.assertEqual(flat["inuse_space"].get(site, 0), live_bytes, site)


class BadCommandLine(Case):
    """Exit status 2 and one line saying what is wrong; nothing written."""

    def expect_bad(self, args, words):
        proc = record(list(args) + ["--", "true"], cwd=self.tmp)
        self.assertEqual(proc.returncode, 2, proc.stderr)
        lines = proc.stderr.splitlines()
        self.assertTrue(lines and lines[0].startswith("allocprof: "), proc.stderr)
        self.assertEqual(len(lines), 1, proc.stderr)
        self.assertIn("allocprof record --help", lines[0])
        for w in words:
            self.assertIn(w, lines[0])
        self.assertEqual(os.listdir(self.tmp), [])

    def test_bad_combinations(self):
        d = self.tmp
        self.expect_bad(["--interval", "1s", "-o", "x.pb.gz", "--output-dir", d],
                        ["-o", "--interval"])
        self.expect_bad(["--interval", "1s", "-o", "x.pb.gz"], ["-o", "--interval"])
        self.expect_bad(["--output-dir", d, "-o", "x.pb.gz"], ["-o", "--output-dir"])
        self.expect_bad(["--interval", "10s"], ["--interval", "--output-dir"])
        self.expect_bad(["--keep", "3"], ["--keep", "--output-dir"])

    def test_bad_values(self):
        d = self.tmp
        for v in ("500ms", "0", "0.5s", "abc", ""):
            self.expect_bad(["--interval", v, "--output-dir", d], ["--interval"])
        for v in ("0", "-1", "x"):
            self.expect_bad(["--keep", v, "--output-dir", d], ["--keep"])
        self.expect_bad(["--output-dir", ""], ["--output-dir"])

    @needs("root")
    def test_directory_checked_before_attaching(self):
        missing = self.path("nodir")
        proc = record(["--interval", "1s", "--output-dir", missing, "--", "true"])
        self.assertEqual(proc.returncode, 1, proc.stderr)
        self.assertEqual(len(proc.stderr.splitlines()), 1, proc.stderr)
        self.assertIn("nodir: no such directory", proc.stderr)
        with open(self.path("file"), "w"):
            pass
        proc = record(["--interval", "1s", "--output-dir", self.path("file"), "--", "true"])
        self.assertEqual(proc.returncode, 1, proc.stderr)
        self.assertEqual(len(proc.stderr.splitlines()), 1, proc.stderr)
        self.assertIn("not a directory", proc.stderr)
