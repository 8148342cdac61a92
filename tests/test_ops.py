"""`record --ops`: the calls of named functions counted per process, exactly, in sampled and
exact captures, under -- CMD, -p and -a, and split exactly over periodic files; a function
found nowhere is a bad command line said before anything runs."""

import glob
import os
import re
import signal
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import pprofraw  # noqa: E402
from harness import ALLOCPROF, Case, read_expect_all, record, target, wait_for_log  # noqa: E402
from harness import needs  # noqa: E402

REQUESTS = target("requests")
OPS_RE = re.compile(r"^ops: (\S+) (\d+)")


def ops_of(prof):
    """{name: count} from the profile's "ops: NAME COUNT" comments."""
    out = {}
    for c in prof.comments:
        m = OPS_RE.match(c)
        if m:
            out[m.group(1)] = out.get(m.group(1), 0) + int(m.group(2))
    return out


def cum(prof, func, type_name):
    """The sum of `type_name` over samples whose stack has `func`."""
    i = prof.type_index(type_name)
    return sum(s.values[i] for s in prof.samples if func in prof.stack(s))


@needs("root", "pprof")
class Ops(Case):
    def run_requests(self, ops, *args, requests=500, threads=3, extra_record=()):
        out, exp = self.path("r.pb.gz"), self.path("r.exp")
        proc = record(["-q", "--ops", ops, "-o", out, *extra_record, "--", REQUESTS,
                       "--requests", str(requests), "--threads", str(threads),
                       "--expect", exp, *args])
        self.assertRecorded(proc)
        return pprofraw.read(out), read_expect_all(exp)

    def test_exact_counts_and_allocations_per_call(self):
        prof, exp = self.run_requests("handle_request", extra_record=["--exact"])
        n = exp["requests"][0]
        self.assertEqual(n, 1500)
        self.assertEqual(ops_of(prof), {"handle_request": n})
        self.assertEqual(cum(prof, "handle_request", "alloc_objects"),
                         n * exp["per_request_objects"][0])
        self.assertEqual(cum(prof, "handle_request", "alloc_space"),
                         n * exp["per_request_bytes"][0])
        # Who made the calls, for people: one process, all of them.
        self.assertTrue(any(re.match(r"calls of handle_request by process: pid \d+: 1500$", c)
                            for c in prof.comments), prof.comments)

    def test_several_functions(self):
        prof, exp = self.run_requests("handle_request,log_line", "--extra", "2",
                                      extra_record=["--exact", "--ops", "parse_headers"])
        n = exp["requests"][0]
        self.assertEqual(ops_of(prof), {"handle_request": n, "log_line": n,
                                        "parse_headers": n})
        self.assertEqual(cum(prof, "build_response", "alloc_objects"), n * 4)

    def test_sampled_capture_counts_every_call(self):
        # Allocations are sampled; operations never are: the divisor is exact.
        prof, exp = self.run_requests("handle_request", requests=2000, threads=2)
        self.assertTrue(any(c.startswith("sampling: one per ") for c in prof.comments))
        self.assertEqual(ops_of(prof), {"handle_request": 4000})

    def test_classic_probes_and_links_per_target(self):
        # A kernel without uprobe_multi links (as ALLOCPROF_NO_SESSIONS plays one): a link
        # per site; --no-follow: links for the command's pid alone; --alloc-only too.
        for env, args in (({"ALLOCPROF_NO_SESSIONS": "1"}, []), ({}, ["--no-follow"]),
                          ({}, ["--alloc-only"])):
            out = self.path("c.pb.gz")
            proc = record(["-q", "--exact", "--ops", "handle_request", "-o", out, *args, "--",
                           REQUESTS, "--requests", "321"], env={**os.environ, **env})
            self.assertRecorded(proc, str((env, args)))
            self.assertEqual(ops_of(pprofraw.read(out)), {"handle_request": 321},
                             str((env, args)))

    def test_given_number(self):
        prof, _ = self.run_requests("1234", extra_record=["--exact"])
        self.assertEqual(ops_of(prof), {"operations": 1234})

    def test_cxx_function_by_its_demangled_name(self):
        # site_new(int) is _Z8site_newi: found by the name a person reads, without its
        # parameters; one call, one new.
        out, exp = self.path("c.pb.gz"), self.path("c.exp")
        proc = record(["-q", "--exact", "--ops", "site_new", "-o", out, "--",
                       target("cxxsites"), "--expect", exp])
        self.assertRecorded(proc)
        calls = read_expect_all(exp)["site_new"][0]
        prof = pprofraw.read(out)
        self.assertEqual(ops_of(prof), {"site_new": calls})
        self.assertEqual(cum(prof, "site_new(int)", "alloc_objects"), calls)

    def test_summary_says_allocations_per_call(self):
        out = self.path("s.pb.gz")
        proc = record(["--exact", "-n", "0", "--ops", "handle_request", "-o", out, "--",
                       REQUESTS, "--requests", "100"])
        self.assertRecorded(proc)
        # All of the process's allocations over the calls: the handler's 6 and a few more.
        m = re.search(r"^allocprof: ([\d.]+) allocations, .* per call of handle_request "
                      r"\(100 calls", proc.stderr, re.M)
        self.assertTrue(m, proc.stderr)
        self.assertGreaterEqual(float(m.group(1)), 6.0)

    def test_pid(self):
        out = self.path("p.pb.gz")
        exp = self.path("p.exp")
        proc = self.attach_then_run([REQUESTS, "--wait", "--requests", "700", "--expect", exp],
                                    ["--exact", "--ops", "handle_request"], out)
        self.assertRecorded(proc)
        prof = pprofraw.read(out)
        self.assertEqual(ops_of(prof), {"handle_request": 700})
        self.assertEqual(cum(prof, "handle_request", "alloc_objects"), 700 * 6)

    def test_all_processes(self):
        # -a looks for the function in the processes running at its start: one is.
        out, log = self.path("a.pb.gz"), self.path("a.log")
        tgt = subprocess.Popen([REQUESTS, "--wait", "--requests", "300"],
                               stderr=subprocess.PIPE)
        self.assertIn("waiting", tgt.stderr.readline().decode())
        with open(log, "w") as errf:
            ap = subprocess.Popen([ALLOCPROF, "record", "-a", "--exact", "-n", "0",
                                   "--ops", "handle_request", "-o", out], stderr=errf)
            try:
                wait_for_log(log, "recording all processes", proc=ap)
                tgt.send_signal(signal.SIGUSR1)
                self.assertEqual(tgt.wait(timeout=120), 0)
                # A process started after the scan is counted too, under its own pid.
                late = subprocess.Popen([REQUESTS, "--requests", "200"])
                self.assertEqual(late.wait(timeout=120), 0)
            finally:
                tgt.kill()
                ap.send_signal(signal.SIGINT)
                ap.wait(timeout=120)
        self.assertEqual(ap.returncode, 0, open(log).read())
        prof = pprofraw.read(out)
        self.assertEqual(ops_of(prof), {"handle_request": 500})
        byproc = [c for c in prof.comments if c.startswith("calls of handle_request by")][0]
        self.assertIn("pid %d: 300" % tgt.pid, byproc)
        self.assertIn("pid %d: 200" % late.pid, byproc)

    def test_periodic_files_split_the_calls_exactly(self):
        d = self.path("d")
        os.mkdir(d)
        proc = record(["-q", "--exact", "--ops", "handle_request", "--interval", "1s",
                       "--output-dir", d, "--", REQUESTS, "--requests", "60000",
                       "--threads", "2"])
        self.assertRecorded(proc)
        files = sorted(glob.glob(os.path.join(d, "*.pb.gz")))
        self.assertTrue(files)
        total = objects = 0
        for f in files:
            prof = pprofraw.read(f)
            total += ops_of(prof).get("handle_request", 0)
            objects += cum(prof, "handle_request", "alloc_objects")
        self.assertEqual(total, 120000)
        self.assertEqual(objects, 120000 * 6)


@needs("root")
class OpsErrors(Case):
    def assertUsage(self, proc, *texts):
        self.assertEqual(proc.returncode, 2, proc.stderr)
        lines = proc.stderr.splitlines()
        self.assertEqual(len(lines), 1, proc.stderr)
        self.assertTrue(lines[0].startswith("allocprof: "), lines[0])
        for t in texts:
            self.assertIn(t, lines[0])

    def test_not_found_under_a_command(self):
        out = self.path("x.pb.gz")
        proc = record(["--ops", "handle_requset", "-o", out, "--", REQUESTS, "--expect",
                       self.path("ran")])
        self.assertUsage(proc, "--ops handle_requset", "no function of that name")
        # Before the command ran, and no profile written.
        self.assertFalse(os.path.exists(self.path("ran")))
        self.assertFalse(os.path.exists(out))

    def test_not_found_under_pid(self):
        tgt = subprocess.Popen([REQUESTS, "--wait"], stderr=subprocess.PIPE)
        try:
            self.assertIn("waiting", tgt.stderr.readline().decode())
            proc = record(["--ops", "handle_request,nosuch_fn", "-p", str(tgt.pid), "-o",
                           self.path("x.pb.gz")])
            self.assertUsage(proc, "--ops nosuch_fn", "pid %d" % tgt.pid)
        finally:
            tgt.kill()
            tgt.wait()

    def test_bad_values(self):
        for args, text in ((["--ops", "malloc"], "allocator function"),
                           (["--ops", ""], "--ops"),
                           (["--ops", "0"], "bad --ops '0'"),
                           (["--ops", "f(int)"], "without parameters"),
                           (["--ops", "a,a"], "given twice"),
                           (["--ops", ",".join("f%d" % i for i in range(17))], "16"),
                           (["--ops", "5", "--interval", "1s", "--output-dir", self.tmp],
                            "--ops N")):
            proc = record([*args, "--", "true"])
            self.assertUsage(proc, text)
