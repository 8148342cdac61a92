"""Allocation budgets end to end, on real captures of a request-shaped program that knows its
allocations per request: `record --ops` then `top --per-op`, `check --budget`, `diff` over
repeated runs, and scripts/alloc-budget.sh, the README's CI recipe."""

import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
from harness import ALLOCPROF, ROOT, Case, read_expect_all, record, target  # noqa: E402
from harness import needs  # noqa: E402

REQUESTS = target("requests")
SCRIPT = os.path.join(ROOT, "scripts", "alloc-budget.sh")


def ap(*args):
    return subprocess.run([ALLOCPROF, *args], capture_output=True, text=True, timeout=120)


def per_op_rows(out):
    """{function: (flat allocs/op, cum allocs/op, flat bytes/op, cum bytes/op)} of
    `top --per-op` on an exact profile (values as printed)."""
    rows = {}
    for line in out.splitlines():
        m = re.match(r"^\s*(\S+)\s+(\S+)\s+(\S+ B)\s+(\S+ B)\s+(\S+)", line)
        if m:
            rows[m.group(5)] = m.groups()[:4]
    return rows


def diff_rows(out):
    """[(function, change)] of diff's table, in its order; change "~" when not significant."""
    rows = []
    for line in out.splitlines():
        m = re.match(r"^\s*\S+ ± \S+\s+\S+ ± \S+\s+(\S+)\s+\(.*\)\s+(\S+)$", line)
        if m:
            rows.append((m.group(2), m.group(1)))
    return rows


@needs("root")
class Budgets(Case):
    def runs(self, name, n, *args, exact=True):
        """`n` runs of requests (1 thread, 300 requests) under --ops handle_request into a
        directory of their own; its path."""
        d = self.path(name)
        os.mkdir(d)
        for i in range(n):
            proc = record(["-q", "-n", "0", *(["--exact"] if exact else []),
                           "--ops", "handle_request", "-o", os.path.join(d, "%d.pb.gz" % i),
                           "--", REQUESTS, "--requests", "300", *args])
            self.assertRecorded(proc)
        return d

    def budget(self, text):
        path = self.path("budget.txt")
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_per_op_exact(self):
        out, exp = self.path("r.pb.gz"), self.path("r.exp")
        self.assertRecorded(record(["-q", "--exact", "--ops", "handle_request", "-o", out,
                                    "--", REQUESTS, "--requests", "1000", "--threads", "2",
                                    "--expect", exp]))
        want = read_expect_all(exp)
        proc = ap("top", "--per-op", out, "-n", "20")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("per operation: 2000 calls of handle_request", proc.stdout)
        rows = per_op_rows(proc.stdout)
        self.assertEqual(rows["handle_request"],
                         ("0", str(want["per_request_objects"][0]), "0 B",
                          "%d B" % want["per_request_bytes"][0]))
        self.assertEqual(rows["parse_headers"], ("3", "3", "192 B", "192 B"))
        self.assertEqual(rows["build_response"], ("2", "2", "1512 B", "1512 B"))

    def test_check_at_and_below_the_budget(self):
        d = self.runs("one", 1)
        proc = ap("check", "--budget",
                  self.budget("# the handler\nhandle_request 6 allocs/op\n"
                              "handle_request 1804 bytes/op\nlog_line 1 allocs/op  # one line\n"
                              "build_response 2k bytes/op\n"), d)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertIn("all 4 budgets hold", proc.stdout)
        for text in ("handle_request 5 allocs/op\n", "handle_request 1803 bytes/op\n"):
            proc = ap("check", "--budget", self.budget(text), d)
            self.assertEqual(proc.returncode, 1, proc.stdout + proc.stderr)
            over = [l for l in proc.stdout.splitlines() if "over by" in l]
            self.assertEqual(len(over), 1, proc.stdout)
            self.assertTrue(over[0].startswith("handle_request"), over[0])
            self.assertIn("over by 1 ", over[0])

    def test_check_cxx_names(self):
        # The profile says site_new(int); the budget may say site_new, as --ops does.
        out = self.path("c.pb.gz")
        self.assertRecorded(record(["-q", "--exact", "--ops", "site_new", "-o", out, "--",
                                    target("cxxsites")]))
        for text, status in (("site_new 1 allocs/op\n", 0), ("site_new(int) 40 bytes/op\n", 0),
                             ("site_new 0.5 allocs/op\n", 1)):
            proc = ap("check", "--budget", self.budget(text), out)
            self.assertEqual(proc.returncode, status, text + proc.stdout + proc.stderr)
            self.assertNotIn("not seen", proc.stdout)

    def test_check_bad_input(self):
        d = self.runs("one", 1)
        for text, where in (("handle_request six allocs/op\n", ":1:"),
                            ("\n# ok\nhandle_request 6 allocs\n", ":3:"),
                            ("handle_request 6 allocs/op extra\n", ":1:")):
            proc = ap("check", "--budget", self.budget(text), d)
            self.assertEqual(proc.returncode, 2, proc.stdout + proc.stderr)
            lines = proc.stderr.splitlines()
            self.assertEqual(len(lines), 1, proc.stderr)
            self.assertIn("budget.txt" + where, lines[0])
        proc = ap("check", "--budget", self.budget("f 1 allocs/op\n"), self.path("missing"))
        self.assertEqual(proc.returncode, 2)
        self.assertEqual(len(proc.stderr.splitlines()), 1, proc.stderr)
        # A profile recorded without --ops cannot say per operation.
        plain = self.path("plain.pb.gz")
        self.assertRecorded(record(["-q", "--exact", "-o", plain, "--", REQUESTS]))
        proc = ap("check", "--budget", self.budget("f 1 allocs/op\n"), plain)
        self.assertEqual(proc.returncode, 2, proc.stdout + proc.stderr)
        self.assertIn("--ops", proc.stderr)

    def test_diff_one_more_allocation_per_request(self):
        base = self.runs("base", 5)
        new = self.runs("new", 5, "--extra", "1")
        proc = ap("diff", base, new)
        self.assertEqual(proc.returncode, 1, proc.stdout + proc.stderr)
        rows = diff_rows(proc.stdout)
        changed = [f for f, c in rows if c != "~" and f != "[total]"]
        self.assertEqual(changed[0], "build_response", proc.stdout)
        self.assertIn(("build_response", "+50.00%"), rows)
        self.assertIn(("parse_headers", "~"), rows)
        # The same runs on both sides: nothing changed.
        proc = ap("diff", base, self.runs("base2", 5))
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertTrue(all(c == "~" for _, c in diff_rows(proc.stdout)), proc.stdout)

    def test_diff_sampled_noise_is_not_a_change(self):
        # Sampled estimates differ run by run; the same program is not flagged.
        base = self.runs("sbase", 5, "--requests", "20000", exact=False)
        new = self.runs("snew", 5, "--requests", "20000", exact=False)
        proc = ap("diff", base, new)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertIn("sampled", proc.stdout)

    def test_the_ci_script(self):
        budget = self.budget("handle_request 6 allocs/op\nhandle_request 1804 bytes/op\n")
        baseline, out = self.path("baseline"), self.path("out")
        cmd = [SCRIPT, "--ops", "handle_request", "--out", out, "--budget", budget]
        # The main branch's job: budgets hold, no baseline yet, the runs saved as one.
        proc = subprocess.run([*cmd, "--baseline", baseline, "--save-baseline", baseline,
                               "--", REQUESTS, "--requests", "200"],
                              capture_output=True, text=True, timeout=600)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertIn("no baseline profiles", proc.stdout)
        self.assertEqual(len(os.listdir(baseline)), 5)
        self.assertIn("flame graph is %s/flame.svg" % out, proc.stdout)
        with open(os.path.join(out, "flame.svg")) as f:
            self.assertIn("per call of handle_request", f.read())
        # A change that allocates once more per request: over budget and a significant rise.
        proc = subprocess.run([*cmd, "--baseline", baseline, "--", REQUESTS,
                               "--requests", "200", "--extra", "1"],
                              capture_output=True, text=True, timeout=600)
        self.assertEqual(proc.returncode, 1, proc.stdout + proc.stderr)
        self.assertIn("budgets exceeded", proc.stdout)
        self.assertIn("rose by more than", proc.stdout)
        with open(os.path.join(out, "diff.svg")) as f:  # the picture of what grew
            self.assertIn("build_response", f.read())
        # A bad command line is 2.
        proc = subprocess.run([SCRIPT, "--", "true"], capture_output=True, text=True)
        self.assertEqual(proc.returncode, 2)
        self.assertIn("--ops", proc.stderr)
