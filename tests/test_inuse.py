"""In-use tracking: inuse_objects/inuse_space against targets that know what they never freed."""

import math
import os
import re
import shutil
import signal
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import pprofraw  # noqa: E402
from harness import (ALLOCPROF, LIBDIR, Case, read_expect_all, record, target,  # noqa: E402
                     wait_for_log)
from harness import needs  # noqa: E402

LEAKS = target("leaks")
TYPES = ("alloc_objects", "alloc_space", "inuse_objects", "inuse_space")


def per_site(prof, sites):
    """{site: (alloc_objects, alloc_space, inuse_objects, inuse_space)} by leaf function."""
    flats = [prof.flat(t) for t in TYPES]
    return {s: tuple(f.get(s, 0) for f in flats) for s in sites}


def untracked(prof):
    """Comments that say an allocation is missing from inuse_* or alloc_*."""
    return [c for c in prof.comments
            if c.startswith("lost:") or c.startswith("allocations not tracked")]


@needs("root", "pprof")
class ExactLeaks(Case):
    """8 threads, --exact: inuse at exit is exactly what the program never freed, including
    blocks freed by another thread, realloc chains, a failed realloc and realloc(p, 0)."""

    def run_leaks(self, env=None, args=()):
        out, exp = self.path("p.pb.gz"), self.path("expect")
        proc = record(["--exact", "-q", "-o", out, *args, "--", LEAKS, "--expect", exp],
                      env=env)
        self.assertRecorded(proc)
        expect = read_expect_all(exp)
        prof = pprofraw.read(out)
        self.assertEqual(per_site(prof, expect), expect)
        self.assertEqual(untracked(prof), [])
        self.assertIn("lost allocations: 0", prof.comments)
        # The target leaks at most of its sites and frees the rest entirely.
        self.assertEqual(sorted(s for s, v in expect.items() if v[2]),
                         ["site_leak", "site_memalign", "site_realloc_chain",
                          "site_realloc_fails"])
        return prof, proc

    def test_glibc_uprobe_sessions(self):
        prof, _ = self.run_leaks()
        self.assertTrue(any("returns seen through uprobe sessions" in c for c in prof.comments),
                        prof.comments)
        # The 1-in-50 realloc that cannot succeed is not an allocation.
        self.assertTrue(any("failed (taken back out of alloc_*): 32" in c
                            for c in prof.comments), prof.comments)

    def test_classic_return_probes(self):
        """Kernels without uprobe sessions: a return probe on every call, same counts."""
        env = dict(os.environ, ALLOCPROF_NO_SESSIONS="1")
        prof, _ = self.run_leaks(env=env)
        self.assertTrue(any("returns seen through return probes" in c for c in prof.comments),
                        prof.comments)

    def test_other_allocators(self):
        for lib in ("libjemalloc.so.2", "libtcmalloc_minimal.so.4", "libmimalloc.so.2"):
            with self.subTest(lib=lib):
                prof, _ = self.run_leaks(env=dict(os.environ,
                                                  LD_PRELOAD=os.path.join(LIBDIR, lib)))
                self.assertIn("allocator: " + os.path.realpath(os.path.join(LIBDIR, lib)),
                              prof.comments)

    def test_standalone_pprof_sorts_by_inuse(self):
        prof, _ = self.run_leaks()
        top = subprocess.run(["pprof", "-top", "-sample_index=inuse_space",
                              self.path("p.pb.gz")], capture_output=True, text=True)
        self.assertEqual(top.returncode, 0, top.stderr)
        lines = [ln.split() for ln in top.stdout.splitlines()]
        leaves = [ln[-1] for ln in lines if len(ln) >= 6 and ln[0][0].isdigit()]
        # realloc chains keep the most bytes (their blocks are 25x the first size).
        self.assertEqual(leaves[0], "site_realloc_chain", top.stdout)
        self.assertNotIn("site_freed", leaves[:4])

    def test_allocprof_top_sorts_by_inuse(self):
        self.run_leaks()
        top = subprocess.run([ALLOCPROF, "top", "--sample-index", "inuse_space", "-n", "3",
                              self.path("p.pb.gz")], capture_output=True, text=True)
        self.assertEqual(top.returncode, 0, top.stderr)
        self.assertIn("by inuse_space", top.stdout)
        body = top.stdout.splitlines()[2:]
        self.assertIn("site_realloc_chain", body[0])

    def test_live_map_full_is_said(self):
        out = self.path("p.pb.gz")
        proc = record(["--exact", "-q", "--max-live", "16", "-o", out, "--", LEAKS])
        self.assertRecorded(proc)
        self.assertIn("live-block map full", proc.stderr)
        prof = pprofraw.read(out)
        full = [c for c in prof.comments if "live-block map full" in c]
        self.assertEqual(len(full), 1, prof.comments)
        self.assertGreater(int(full[0].rsplit(": ", 1)[1]), 100)
        # alloc_* is unaffected.
        self.assertIn("lost allocations: 0", prof.comments)


class AllocOnly(Case):
    @needs("root", "pprof")
    def test_two_types_and_no_free_probes(self):
        out, exp = self.path("p.pb.gz"), self.path("expect")
        proc = record(["--exact", "--alloc-only", "-q", "-o", out, "--", LEAKS,
                       "--expect", exp])
        self.assertRecorded(proc)
        prof = pprofraw.read(out)
        self.assertEqual(prof.types, ["alloc_objects/count", "alloc_space/bytes"])
        self.assertIn("in-use tracking: off (--alloc-only)", prof.comments)
        self.assertFalse(any(c.startswith("frees seen") for c in prof.comments))
        expect = read_expect_all(exp)
        objects, space = prof.flat("alloc_objects"), prof.flat("alloc_space")
        for site, v in expect.items():
            if site == "site_realloc_fails":
                # Without returns a failed realloc cannot be told from one that worked.
                self.assertEqual(objects[site], v[0] + 32)
                continue
            self.assertEqual((objects.get(site), space.get(site)), v[:2], site)

    def test_max_live_needs_in_use_tracking(self):
        proc = record(["--alloc-only", "--max-live", "100", "--", LEAKS])
        self.assertEqual(proc.returncode, 2)
        self.assertEqual(proc.stderr.splitlines(),
                         ["allocprof: --max-live has no effect with --alloc-only (see allocprof "
                          "record --help)"])


@needs("root", "pprof")
class RunningProcess(Case):
    """-p on a process that keeps a live set: inuse is what it holds when the capture ends."""

    def test_pid_holding_memory_at_the_end(self):
        out, exp = self.path("p.pb.gz"), self.path("expect")
        tgt = subprocess.Popen([LEAKS, "--live-mb", "20", "--churn", "2", "--wait",
                                "--expect", exp], stderr=subprocess.PIPE, text=True)
        try:
            self.assertIn("waiting", tgt.stderr.readline())
            log = self.path("log")
            with open(log, "w") as errf:
                ap = subprocess.Popen([ALLOCPROF, "record", "--exact", "-v", "-p",
                                       str(tgt.pid), "-o", out], stderr=errf)
                wait_for_log(log, "probes attached", proc=ap)
                tgt.send_signal(signal.SIGUSR1)
                for line in tgt.stderr:
                    if "leaks: holding\n" == line:
                        break
                ap.send_signal(signal.SIGINT)
                self.assertEqual(ap.wait(timeout=60), 0, open(log).read())
        finally:
            tgt.kill()
            tgt.wait()
        expect = read_expect_all(exp)
        prof = pprofraw.read(out)
        self.assertEqual(per_site(prof, expect), expect)
        self.assertEqual(expect["site_churn"][2], 0)
        self.assertGreater(expect["site_hold"][3], 20 << 20)


@needs("root", "pprof")
class SampledLiveSet(Case):
    """--sample-bytes 32k on a process that exits holding ~100 MB in mixed sizes (64 B to
    256 KiB) after allocating and freeing ~4x that: inuse_space within 10% of the truth.

    Each block of size s is sampled with p = 1 - exp(-s/R) and stands for s/p bytes; its
    variance s^2 (1-p)/p is at most s R, so the estimate's sd is at most sqrt(R * total):
    1.8% here, and the 10% bound is more than 5 of them wide."""

    RATE = 32768

    def test_inuse_space_within_ten_percent(self):
        out, exp = self.path("p.pb.gz"), self.path("expect")
        proc = record(["--sample-bytes", "32k", "-q", "-o", out, "--", LEAKS, "--live-mb",
                       "100", "--churn", "4", "--exit", "--expect", exp], timeout=300)
        self.assertRecorded(proc)
        expect = read_expect_all(exp)
        true = expect["site_hold"][3]
        self.assertGreater(true, 100 << 20)
        sd_bound = math.sqrt(self.RATE * true)
        self.assertGreater(0.10 * true, 5 * sd_bound)
        prof = pprofraw.read(out)
        got = per_site(prof, expect)
        self.assertLess(abs(got["site_hold"][3] - true), 0.10 * true,
                        "inuse_space %d vs %d" % (got["site_hold"][3], true))
        # Freed memory leaves nothing in use, sampled or not.
        self.assertEqual(got["site_churn"][2:], (0, 0))
        self.assertGreater(got["site_churn"][1], 3 * true)
        self.assertEqual(untracked(prof), [])


def comment_number(prof, pattern):
    """The number a comment gives after `pattern`."""
    for c in prof.comments:
        m = re.search(pattern + r"(\d+)", c)
        if m:
            return int(m.group(1))
    raise AssertionError("no comment matches %r: %s" % (pattern, prof.comments))


class ReturnPaths(Case):
    @needs("root", "pprof")
    def test_classic_return_probes_keep_tail_calls_nested(self):
        """A classic return probe takes over every allocation's return address, so a
        wrapper's tail call (reallocarray -> realloc) finds the kernel's trampoline where the
        wrapper's return address was. It is still one allocation: as many nested calls as
        with uprobe sessions, and no frame in the trampoline's page."""
        nested = {}
        for sessions in (True, False):
            env = dict(os.environ)
            if not sessions:
                env["ALLOCPROF_NO_SESSIONS"] = "1"
            out = self.path("p.pb.gz")
            proc = record(["--sample-bytes", "64k", "-q", "-o", out, "--", target("sites")],
                          env=env)
            self.assertRecorded(proc)
            prof = pprofraw.read(out)
            nested[sessions] = comment_number(prof, "nested calls inside the allocator: ")
            self.assertEqual(comment_number(prof, "outside any known mapping: "), 0,
                             prof.comments)
            self.assertEqual(untracked(prof), [])
        self.assertEqual(nested[True], nested[False])
        self.assertGreaterEqual(nested[True], 1600)  # site_reallocarray's, at least

    @needs("root")
    def test_stripped_binary_uses_sessions(self):
        """Packaged binaries are stripped: the session check must not need symbols."""
        ap = self.path("allocprof")
        shutil.copy(ALLOCPROF, ap)
        subprocess.run(["strip", ap], check=True)
        proc = subprocess.run([ap, "record", "-v", "-q", "-o", self.path("p.pb.gz"), "--",
                               target("sites"), "--rounds", "5"], capture_output=True,
                              text=True)
        self.assertRecorded(proc)
        self.assertIn("in-use tracking: returns through uprobe sessions", proc.stderr)
