"""`allocprof top --per-op` and `allocprof check`: allocations per operation of `record --ops`,
on synthetic profiles whose numbers are known, and every way their input can be wrong."""

import gzip
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
from harness import ALLOCPROF, Case  # noqa: E402
import pprofwrite  # noqa: E402


def run(*args):
    return subprocess.run([ALLOCPROF, *args], capture_output=True, text=True)


def bench_profile(ops=(("handle", 800),), sampling="exact", scale=1):
    """handle -> beta -> alpha, and handle -> beta: 4000 allocations, 400000 bytes (times
    `scale`) in 800 calls of handle: 5 allocs/op and 500 B/op in beta's cum."""
    p = pprofwrite.Profile()
    a, b, h = (p.function("alpha", "/src/a.c"), p.function("beta", "/src/b.c"),
               p.function("handle", "/src/h.c"))
    p.sample([a, b, h], [3000 * scale, 300000 * scale])
    p.sample([b, h], [1000 * scale, 100000 * scale])
    for name, count in ops:
        p.ops(name, count, " calls of /srv/app")
    if sampling == "exact":
        p.exact()
    elif sampling is not None:
        p.sampled(sampling)
    return p


class Profiles(Case):
    def write(self, p, name="p.pb.gz"):
        path = self.path(name)
        with open(path, "wb") as f:
            f.write(gzip.compress(p.encode()))
        return path

    def budget(self, text, name="budget.txt"):
        path = self.path(name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def expect_error(self, proc, status, words):
        self.assertEqual(proc.returncode, status, proc.stdout + proc.stderr)
        self.assertEqual(proc.stdout, "")
        self.assertEqual(len(proc.stderr.splitlines()), 1, proc.stderr)
        self.assertTrue(proc.stderr.startswith("allocprof: "), proc.stderr)
        for w in words:
            self.assertIn(w, proc.stderr)


class TopPerOp(Profiles):
    WANT = ("per operation: 800 calls of handle\n"
            "Top 3 of 3 functions by cum allocs/op, total 5 allocs/op, 500 B/op\n"
            " flat allocs/op   cum allocs/op   flat bytes/op    cum bytes/op  function\n"
            "           1.25               5           125 B           500 B  beta (b.c:7)\n"
            "              0               5             0 B           500 B  handle (h.c)\n"
            "           3.75            3.75           375 B           375 B  alpha (a.c:7)\n")

    def test_numbers(self):
        path = self.write(bench_profile())
        proc = run("top", path, "--per-op")
        self.assertEqual((proc.returncode, proc.stderr), (0, ""))
        self.assertEqual(proc.stdout, self.WANT)
        proc = run("top", path, "--per-op", "-n", "1")
        self.assertEqual(proc.stdout.splitlines()[1],
                         "Top 1 of 3 functions by cum allocs/op, total 5 allocs/op, 500 B/op")
        self.assertEqual(len(proc.stdout.splitlines()), 4)

    def test_spellings(self):
        """--per-op, --per-op=FUNC, --per-op FUNC before or after FILE, FILE after --per-op."""
        path = self.write(bench_profile())
        for args in (["--per-op", path], [path, "--per-op"], ["--per-op=handle", path],
                     [path, "--per-op=handle"], ["--per-op", "handle", path],
                     [path, "--per-op", "handle"], ["-per-op", path], ["-per_op=handle", path],
                     ["--per-op", path, "-n", "10"], ["--per-op", "-n", "10", path]):
            proc = run("top", *args)
            self.assertEqual((proc.returncode, proc.stdout, proc.stderr),
                             (0, self.WANT, ""), args)
        self.expect_error(run("top", "--per-op", "nope", path), 2, ["no operation 'nope'"])
        self.expect_error(run("top", "--per-op", "handle", path, "x"), 2, ["one profile"])

    def test_sort_by_bytes(self):
        p = pprofwrite.Profile()
        many, big = p.function("many_small"), p.function("few_big")
        p.sample([many], [100, 800])
        p.sample([big], [1, 8000])
        p.ops("run", 4)
        p.exact()
        path = self.write(p)
        names = [line.split()[-1] for line in run("top", path, "--per-op").stdout.splitlines()[3:]]
        self.assertEqual(names, ["many_small", "few_big"])
        proc = run("top", path, "--per-op", "--sample-index", "alloc_space")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("by cum bytes/op", proc.stdout.splitlines()[1])
        self.assertEqual([line.split()[-1] for line in proc.stdout.splitlines()[3:]],
                         ["few_big", "many_small"])
        self.assertIn("   25              25           200 B           200 B  many_small",
                      proc.stdout)
        self.assertIn("           0.25            0.25          2000 B          2000 B  few_big",
                      proc.stdout)

    def test_divisor_choice(self):
        path = self.write(bench_profile(ops=[("handle", 800), ("parse", 400)]))
        self.expect_error(run("top", path, "--per-op"), 2,
                          [path, "handle, parse", "--per-op FUNC"])
        proc = run("top", path, "--per-op", "parse")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(proc.stdout.splitlines()[0], "per operation: 400 calls of parse")
        self.assertIn("            2.5              10           250 B          1000 B  beta",
                      proc.stdout)
        # a repeated name sums
        path = self.write(bench_profile(ops=[("handle", 300), ("handle", 500)]))
        self.assertEqual(run("top", path, "--per-op").stdout, self.WANT)
        # record --ops N
        path = self.write(bench_profile(ops=[("operations", 800)]))
        proc = run("top", path, "--per-op")
        self.assertEqual(proc.stdout.splitlines()[0],
                         "per operation: 800 operations, given by --ops")
        self.assertEqual(proc.stdout.splitlines()[1:], self.WANT.splitlines()[1:])

    def test_no_operations(self):
        path = self.write(bench_profile(ops=[]))
        self.expect_error(run("top", path, "--per-op"), 2,
                          [path, "record with --ops FUNC or --ops N"])
        path = self.write(bench_profile(ops=[("handle", 0)]))
        self.expect_error(run("top", path, "--per-op"), 2, ["counted 0 times"])
        # without the per-op view, the same profile is fine
        self.assertEqual(run("top", path).returncode, 0)

    def test_types_needed(self):
        p = pprofwrite.Profile(types=[("samples", "count"), ("cpu", "nanoseconds")])
        f = p.function("f")
        p.sample([f], [1, 10])
        p.ops("f", 1)
        path = self.write(p)
        self.expect_error(run("top", path, "--per-op"), 2,
                          ["--per-op needs the sample types alloc_objects and alloc_space"])

    def test_sampled(self):
        path = self.write(bench_profile(sampling=524288))
        proc = run("top", path, "--per-op")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        lines = proc.stdout.splitlines()
        self.assertIn(" ±", lines[1])
        beta = [line for line in lines if line.endswith("beta (b.c:7)")][0]
        self.assertEqual(beta.count("±"), 2, beta)
        self.assertTrue(lines[-1].startswith("Note: sampled (one allocation per 512.00 KiB on "
                                             "average): ± is a 99% interval; the totals' "
                                             "are ±"), lines[-1])

    def test_unknown_sampling(self):
        path = self.write(bench_profile(sampling=None))
        proc = run("top", path, "--per-op")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(proc.stdout, self.WANT + "Note: the profile does not say how it was "
                         "sampled: its values are taken as exact.\n")

    def test_help(self):
        text = run("top", "--help").stdout
        self.assertIn("--per-op[=FUNC]", text)
        self.assertIn("only argument left for FILE", text)


class Check(Profiles):
    def check(self, budget, *profiles, extra=()):
        return run("check", "--budget", self.budget(budget), *extra, *profiles)

    def table(self, out):
        """{function: (budget, measured, status)} from check's table."""
        lines = out.splitlines()
        head = lines[1]
        cols = [head.index(w) for w in ("budget", "measured", "status")]
        rows = {}
        for line in lines[2:]:
            if line.startswith(("Note:", "all ")) or " budgets exceeded" in line:
                continue
            # ± is one column but the slicing is by characters, which Python counts as one
            rows[line[:cols[0]].strip()] = (line[cols[0]:cols[1]].strip(),
                                            line[cols[1]:cols[2]].strip(), line[cols[2]:])
        return rows

    def test_profile_given_twice_counts_once(self):
        path = self.write(bench_profile())
        os.mkdir(self.path("d"))
        os.link(path, self.path("d/same.pb.gz"))
        proc = self.check("beta 5 allocs/op\n", path, path, self.path("d"))
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertIn("per operation: 800 calls of handle", proc.stdout)
        self.assertEqual(proc.stderr.count("given twice"), 1, proc.stderr)

    def test_cxx_overloads(self):
        # Profiles name C++ functions with their parameters; a budget may leave them out
        # when one function has that name, and must give them for overloads.
        p = pprofwrite.Profile()
        one, two, h = (p.function("Server::handle(int)"), p.function("Server::handle(char)"),
                       p.function("Server::run(Request const&)"))
        p.sample([one, h], [300, 3000])
        p.sample([two, h], [100, 1000])
        p.ops("handle", 100, " calls")
        p.exact()
        path = self.write(p)
        proc = self.check("Server::run 4 allocs/op\nServer::handle(char) 1 allocs/op\n", path)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertNotIn("not seen", proc.stdout)
        self.expect_error(self.check("# x\nServer::handle 1 allocs/op\n", path), 2,
                          ["budget.txt:2:", "Server::handle", "2 functions", "parameters"])

    def test_at_budget_passes(self):
        path = self.write(bench_profile())
        proc = self.check("beta 5 allocs/op\nalpha 3.75 allocs/op\nbeta 500 bytes/op\n", path)
        self.assertEqual((proc.returncode, proc.stderr), (0, ""), proc.stdout)
        self.assertEqual(proc.stdout,
                         "per operation: 800 calls of handle\n"
                         "function  budget          measured        status\n"
                         "beta      5 allocs/op     5 allocs/op     ok\n"
                         "alpha     3.75 allocs/op  3.75 allocs/op  ok\n"
                         "beta      500 B/op        500 B/op        ok\n"
                         "all 3 budgets hold\n")

    def test_one_below_fails(self):
        path = self.write(bench_profile())
        proc = self.check("beta 4 allocs/op\nalpha 3.75 allocs/op\n", path)
        self.assertEqual(proc.returncode, 1, proc.stdout + proc.stderr)
        self.assertEqual(proc.stderr, "")
        rows = self.table(proc.stdout)
        self.assertEqual(rows["beta"], ("4 allocs/op", "5 allocs/op",
                                        "over by 1 allocs/op (25.0%)"))
        self.assertEqual(rows["alpha"][2], "ok")
        self.assertEqual(proc.stdout.splitlines()[-1], "1 of 2 budgets exceeded")
        proc = self.check("beta 499 bytes/op\n", path)
        self.assertEqual(proc.returncode, 1)
        self.assertEqual(self.table(proc.stdout)["beta"],
                         ("499 B/op", "500 B/op", "over by 1 B/op (0.2%)"))
        proc = self.check("handle 0 allocs/op\n", path)
        self.assertEqual(self.table(proc.stdout)["handle"][2], "over by 5 allocs/op")

    def test_bytes_suffixes(self):
        path = self.write(bench_profile(scale=8192))  # beta: 500 x 8 KiB = 3.91 MiB per op
        for budget, status in (("4000k", 0), ("4000KiB", 0), ("3.90625M", 0),
                               ("3.90625mib", 0), ("4096000", 0), ("4095999b", 1),
                               ("3.9M", 1), ("1G", 0), ("0.003GB", 1)):
            proc = self.check("beta %s bytes/op\n" % budget, path)
            self.assertEqual(proc.returncode, status, "%s: %s%s" % (budget, proc.stdout,
                                                                    proc.stderr))
        proc = self.check("beta 4000k bytes/op\n", path)
        self.assertEqual(self.table(proc.stdout)["beta"], ("3.91 MiB/op", "3.91 MiB/op", "ok"))

    def test_malformed_budget_lines(self):
        path = self.write(bench_profile())
        for line, words in (
                ("beta 5", ["expected 'FUNCTION N allocs/op' or 'FUNCTION SIZE bytes/op'"]),
                ("beta five allocs/op", ["'five' is not a number of allocations"]),
                ("beta 5 allocs", ["unknown unit 'allocs'"]),
                ("beta 5q bytes/op", ["'5q' is not a size"]),
                ("beta 5 allocs/op trailing", ["expected 'FUNCTION N allocs/op'"]),
                ("beta 2 allocs/op", ["a second allocs/op budget for 'beta' (the first is on "
                                      "line 2)"])):
            budget = self.budget("# budgets\nbeta 5 allocs/op   # ok\n\n%s\n" % line)
            proc = run("check", "--budget", budget, path)
            self.expect_error(proc, 2, ["%s:4: " % budget] + words)

    def test_budget_file_errors(self):
        path = self.write(bench_profile())
        self.expect_error(run("check", "--budget", self.path("none.txt"), path), 2,
                          ["cannot read", "none.txt", "No such file"])
        self.expect_error(run("check", "--budget", self.tmp, path), 2, ["Is a directory"])
        self.expect_error(self.check("# nothing\n", path), 2, ["no budgets in it"])

    def test_profile_errors(self):
        path = self.write(bench_profile())
        self.expect_error(self.check("beta 5 allocs/op\n", self.path("nope.pb.gz")), 2,
                          ["nope.pb.gz", "No such file"])
        self.expect_error(self.check("beta 5 allocs/op\n", path, self.path("nope.pb.gz")), 2,
                          ["nope.pb.gz"])
        junk = self.path("junk.pb.gz")
        with open(junk, "w") as f:
            f.write("not a profile\n")
        self.expect_error(self.check("beta 5 allocs/op\n", junk), 2, ["junk.pb.gz",
                                                                      "not a pprof profile"])
        noops = self.write(bench_profile(ops=[]), "noops.pb.gz")
        self.expect_error(self.check("beta 5 allocs/op\n", noops), 2,
                          ["noops.pb.gz", "record with --ops FUNC or --ops N"])
        self.expect_error(self.check("beta 5 allocs/op\n", path, noops), 2, ["noops.pb.gz"])

    def test_usage(self):
        path = self.write(bench_profile())
        self.expect_error(run("check", path), 2, ["no budget file"])
        self.expect_error(run("check", "--budget", self.budget("f 1 allocs/op\n")), 2,
                          ["no profile"])
        self.expect_error(run("check", "--bogus", path), 2, ["unknown option '--bogus'"])
        self.expect_error(run("check", path, "--budget"), 2, ["needs a value"])
        text = run("check", "--help").stdout
        self.assertTrue(text.startswith("usage: allocprof check --budget FILE"), text)
        for w in ("Exit status:", "  1  a budget is exceeded", "--strict", "--per-op FUNC"):
            self.assertIn(w, text)
        self.assertIn("check --budget FILE PROFILE...", run("--help").stdout)

    def test_not_seen(self):
        path = self.write(bench_profile())
        proc = self.check("beta 5 allocs/op\nbetta 1 allocs/op\n", path)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertEqual(self.table(proc.stdout)["betta"],
                         ("1 allocs/op", "0 allocs/op", "ok, not seen"))
        proc = self.check("beta 5 allocs/op\nbetta 1 allocs/op\n", path, extra=["--strict"])
        self.assertEqual(proc.returncode, 1, proc.stdout + proc.stderr)
        self.assertEqual(self.table(proc.stdout)["betta"][2], "not seen")
        self.assertEqual(proc.stdout.splitlines()[-1], "1 of 2 budgets exceeded or not seen")

    def test_directory_sums(self):
        os.mkdir(self.path("runs"))
        self.write(bench_profile(ops=[("handle", 300)]), "runs/a.pb.gz")
        self.write(bench_profile(ops=[("handle", 500)], scale=3), "runs/b.pb")
        self.write(bench_profile(ops=[("handle", 800)]), "runs/c.pprof")
        with open(self.path("runs/notes.txt"), "w") as f:
            f.write("not a profile, not read\n")
        # beta: 4000 + 12000 + 4000 allocations in 1600 calls = 12.5 allocs/op
        proc = self.check("beta 12.5 allocs/op\n", self.path("runs"))
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertEqual(proc.stdout.splitlines()[0],
                         "per operation: 1600 calls of handle, in 3 profiles")
        self.assertEqual(self.table(proc.stdout)["beta"][1], "12.5 allocs/op")
        proc = self.check("beta 12.4 allocs/op\n", self.path("runs"))
        self.assertEqual(proc.returncode, 1)
        # a directory and a file together
        other = self.write(bench_profile(ops=[("handle", 400)]), "d.pb.gz")
        proc = self.check("beta 12 allocs/op\n", self.path("runs"), other)
        self.assertEqual(self.table(proc.stdout)["beta"][1], "12 allocs/op")  # 24000/2000
        os.mkdir(self.path("empty"))
        self.expect_error(self.check("beta 1 allocs/op\n", self.path("empty")), 2,
                          ["empty", "no profiles in"])

    def test_divisor_choice(self):
        path = self.write(bench_profile(ops=[("handle", 800), ("parse", 400)]))
        self.expect_error(self.check("beta 5 allocs/op\n", path), 2,
                          ["handle, parse", "--per-op FUNC"])
        proc = self.check("beta 10 allocs/op\n", path, extra=["--per-op", "parse"])
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        proc = self.check("beta 10 allocs/op\n", path, extra=["--per-op=parse"])
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.expect_error(self.check("beta 5 allocs/op\n", path, extra=["--per-op", "x"]), 2,
                          ["no operation 'x'"])
        # each profile must count the divisor
        only = self.write(bench_profile(ops=[("handle", 800)]), "only.pb.gz")
        self.expect_error(self.check("beta 5 allocs/op\n", path, only,
                                     extra=["--per-op", "parse"]), 2,
                          ["only.pb.gz", "no operation 'parse'"])

    def test_sampled_within_uncertainty(self):
        """beta: 10 allocations of 1 KiB each, sampled one per 512 KiB: the estimate's
        standard deviation is sqrt(10 (1-p)/p) = 71.5 allocations, p = 1 - exp(-1/512)."""
        p = pprofwrite.Profile()
        b = p.function("beta")
        p.sample([b], [10, 10240])
        p.ops("handle", 10)
        p.sampled(524288)
        path = self.write(p)
        proc = self.check("beta 0.5 allocs/op\n", path)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertEqual(self.table(proc.stdout)["beta"],
                         ("0.5 allocs/op", "1 ±18.42 allocs/op", "over, within uncertainty"))
        self.assertIn("Note: sampled values: ± is a 99% interval", proc.stdout)

    def test_sampled_far_over(self):
        """Allocations of 10 times the mean distance are nearly all sampled: a tight interval,
        2.576 sqrt(1000 e^-10 / (1 - e^-10)) / 1000 = 0.0005489 allocs/op."""
        p = pprofwrite.Profile()
        b = p.function("beta")
        p.sample([b], [1000, 1000 * 5242880])
        p.ops("handle", 1000)
        p.sampled(524288)
        path = self.write(p)
        proc = self.check("beta 0.5 allocs/op\nbeta 6MiB bytes/op\n", path)
        self.assertEqual(proc.returncode, 1, proc.stdout + proc.stderr)
        rows = proc.stdout.splitlines()
        self.assertIn("over by 0.5 allocs/op (100.0%)", rows[2])
        self.assertIn("1 ±0.0005489 allocs/op", rows[2])
        self.assertTrue(rows[3].endswith("ok"), rows[3])

    def test_unknown_sampling(self):
        path = self.write(bench_profile(sampling=None))
        proc = self.check("beta 5 allocs/op\n", path)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertIn("Note: a profile does not say how it was sampled: its values are taken "
                      "as exact.\n", proc.stdout)

    def test_names_escaped(self):
        p = bench_profile()
        f = p.function("evil\x1b[2Jname")
        p.sample([f], [800, 8000])
        path = self.write(p)
        proc = run("check", "--budget", self.budget("evil\x1b[2Jname 2 allocs/op\n"), path)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertIn("evil\\x1b[2Jname  2 allocs/op", proc.stdout)
        self.assertNotIn("\x1b", proc.stdout)
