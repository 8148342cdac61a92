"""`allocprof diff BASE NEW`: repeated runs compared function by function, on profiles written
by hand (tests/lib/pprofwrite.py) whose differences are known: a real change is found and
named first, identical programs and pure sampling noise are not taken for one."""

import gzip
import math
import os
import random
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
from harness import ALLOCPROF, Case  # noqa: E402
import pprofwrite  # noqa: E402

RATE = 512 * 1024  # the mean sampling distance of sampled profiles, in bytes


def diff(*args):
    return subprocess.run([ALLOCPROF, "diff", *args], capture_output=True, text=True)


def make_profile(per_op, ops, size=64, extra=0, sampled=False, rng=None, op="run"):
    """A profile of `ops` operations in which each function of `per_op` ({name: allocations
    per operation}) allocated that many blocks of `size` bytes per operation (plus `extra` in
    all, a benchmark's set-up), each called from main. Sampled: each allocation kept with
    probability 1 - exp(-size/RATE) and weighted back up, as the recorder does."""
    p = pprofwrite.Profile()
    main = p.function("main", "/src/main.c")
    if ops:
        p.ops(op, ops)
    if sampled:
        p.sampled(RATE)
    else:
        p.exact()
    prob = 1 - math.exp(-size / RATE)
    for name, n in per_op.items():
        count = n * max(ops, 1) + extra
        if sampled:
            kept = binomial(rng, count, prob)
            if not kept:
                continue
            objects = round(kept / prob)
        else:
            objects = count
        if objects:
            p.sample([p.function(name, "/src/%s.c" % name), main], [objects, objects * size])
    return gzip.compress(p.encode())


def binomial(rng, n, prob):
    """A binomial draw (the normal approximation: n p is in the hundreds here)."""
    mean, sd = n * prob, math.sqrt(n * prob * (1 - prob))
    return max(0, round(rng.gauss(mean, sd)))


def rows(out):
    """{function: (base, new, change, p)} from the table, "[total]" included."""
    result = {}
    for line in out.splitlines():
        m = re.match(r"^\s*(\S+(?: \S+)?) ±\s*(\S+)\s+(\S+(?: \S+)?) ±\s*(\S+)\s+(\S+)\s+"
                     r"\((?:p=(\S+) )?n=\d+\+\d+\)\s+(\S+)$", line)
        if m:
            result[m.group(7)] = (m.group(1), m.group(3), m.group(5),
                                  float(m.group(6)) if m.group(6) else None)
    return result


def change(row):
    return float(row[2].rstrip("%"))


def names(out):
    return [n for n in rows(out) if n != "[total]"]


class DiffCase(Case):
    def write_runs(self, side, profiles):
        d = self.path(side)
        os.makedirs(d, exist_ok=True)
        for i, data in enumerate(profiles):
            with open(os.path.join(d, "run%02d.pb.gz" % i), "wb") as f:
                f.write(data)
        return d

    def exact_runs(self, side, per_op, n=5, seed=1):
        """n exact runs of a varying number of operations, with a varying set-up."""
        rng = random.Random(seed)
        return self.write_runs(side, [make_profile(per_op, 1000 + 37 * i,
                                                   extra=rng.randrange(0, 5))
                                      for i in range(n)])


class DiffExact(DiffCase):
    BASE = {"parse": 3, "encode": 5, "lookup": 1, "reply": 2}

    def test_one_more_allocation_per_op(self):
        base = self.exact_runs("base", self.BASE)
        new = self.exact_runs("new", dict(self.BASE, lookup=2), seed=2)
        proc = diff(base, new)
        self.assertEqual(proc.returncode, 1, proc.stdout + proc.stderr)
        self.assertEqual(proc.stderr, "")
        self.assertEqual(names(proc.stdout)[0], "lookup", proc.stdout)
        r = rows(proc.stdout)
        # (the set-up's few allocations are spread over the operations: 1.001 per op)
        self.assertAlmostEqual(change(r["lookup"]), 100, delta=0.5)
        self.assertLess(r["lookup"][3], 0.01)
        self.assertEqual(r["lookup"][:2], ("1.001", "2"))
        for other in ("parse", "encode", "reply"):
            self.assertEqual(r[other][2], "~", proc.stdout)
        # main's cum is every allocation: 11 per op, then 12
        self.assertEqual(r["main"][:2], ("11", "12"))
        self.assertAlmostEqual(change(r["main"]), 100 / 11, delta=0.1)
        self.assertIn("alloc_objects, cum per operation (ops: run)", proc.stdout)
        self.assertIn("2 significant changes; 2 rose by more than --threshold 0%: exit 1\n",
                      proc.stdout)

    def test_same_program(self):
        base = self.exact_runs("base", self.BASE)
        new = self.exact_runs("new", self.BASE, seed=7)
        proc = diff(base, new)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        r = rows(proc.stdout)
        self.assertEqual(set(names(proc.stdout)), {"main", *self.BASE})
        for name, row in r.items():
            self.assertEqual(row[2], "~", proc.stdout)

    def test_threshold(self):
        base = self.exact_runs("base", self.BASE)
        new = self.exact_runs("new", dict(self.BASE, encode=6), seed=2)  # +20%
        self.assertEqual(diff(base, new).returncode, 1)
        self.assertEqual(diff("--threshold", "10", base, new).returncode, 1)
        proc = diff("--threshold", "25", base, new)
        self.assertEqual(proc.returncode, 0, proc.stdout)
        self.assertIn("none rose by more than --threshold 25%\n", proc.stdout)
        self.assertAlmostEqual(change(rows(proc.stdout)["encode"]), 20, delta=0.1)  # shown
        self.assertEqual(names(proc.stdout)[0], "encode")

    def test_decrease_is_no_failure(self):
        base = self.exact_runs("base", self.BASE)
        new = self.exact_runs("new", dict(self.BASE, encode=4), seed=2)
        proc = diff(base, new)
        self.assertEqual(proc.returncode, 0, proc.stdout)
        self.assertAlmostEqual(change(rows(proc.stdout)["encode"]), -20, delta=0.1)

    def test_new_and_gone(self):
        base = self.exact_runs("base", dict(self.BASE, old=1))
        new = self.exact_runs("new", dict(self.BASE, fresh=4), seed=2)
        proc = diff(base, new)
        self.assertEqual(proc.returncode, 1, proc.stdout)
        r = rows(proc.stdout)
        self.assertEqual(r["fresh"][2], "new")
        self.assertEqual(r["old"][2], "gone")
        self.assertEqual(names(proc.stdout)[0], "fresh")

    def test_bytes_per_op(self):
        base = self.exact_runs("base", self.BASE)
        new = self.exact_runs("new", dict(self.BASE, lookup=2), seed=2)
        proc = diff("--sample-index", "alloc_space", base, new)
        self.assertEqual(proc.returncode, 1, proc.stdout + proc.stderr)
        r = rows(proc.stdout)
        self.assertEqual(r["lookup"][:2], ("64.06 B", "128 B"))
        self.assertAlmostEqual(change(r["lookup"]), 100, delta=0.5)
        self.assertIn("alloc_space, cum per operation", proc.stdout)
        proc = diff("-sample_index=alloc_space", base, new)
        self.assertEqual(rows(proc.stdout)["lookup"][:2], ("64.06 B", "128 B"))

    def test_too_few_runs(self):
        base = self.exact_runs("base", self.BASE, n=3)
        new = self.exact_runs("new", dict(self.BASE, lookup=2), n=3, seed=2)
        proc = diff(base, new)
        self.assertEqual(proc.returncode, 0, proc.stdout)
        self.assertIn("needs 5 runs per side", proc.stdout)
        self.assertEqual(rows(proc.stdout)["lookup"][2], "~")
        # at 0.1, 3 runs a side can tell
        proc = diff("--alpha", "0.1", base, new)
        self.assertEqual(proc.returncode, 1, proc.stdout)
        self.assertEqual(names(proc.stdout)[0], "lookup")


class DiffSampled(DiffCase):
    """Sampled profiles: values carry the noise sampling gives."""

    FUNCS = {"f%02d" % i: 20 + i for i in range(30)}
    SIZE = 4096  # 1 in ~128 sampled: ~150 to 400 samples per function and run

    def sampled_runs(self, side, per_op, seed):
        rng = random.Random(seed)
        return [make_profile(per_op, 1000, size=self.SIZE, sampled=True, rng=rng)
                for _ in range(5)]

    def separated(self, base, new):
        """Functions whose five runs on one side are all above the other's (U test p 0.008)."""
        def values(profiles):
            out = {}
            for data in profiles:
                p = pprofwrite_values(data)
                for name in self.FUNCS:
                    out.setdefault(name, []).append(p.get(name, 0))
            return out
        b, n = values(base), values(new)
        return [f for f in self.FUNCS if min(b[f]) > max(n[f]) or max(b[f]) < min(n[f])]

    def test_noise_is_no_change(self):
        # Seeds for which some function's runs separate by chance, so that the U test alone
        # would flag it: only the sampling criterion keeps such a diff clean.
        for seed in range(1, 200):
            base = self.sampled_runs("base", self.FUNCS, seed)
            new = self.sampled_runs("new", self.FUNCS, seed + 1000)
            if self.separated(base, new):
                break
        else:
            self.fail("no seed separates a function by chance")
        proc = diff("-n", "0", self.write_runs("base", base), self.write_runs("new", new))
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertIn("; sampled\n", proc.stdout)
        r = rows(proc.stdout)
        self.assertEqual(len(r), 32)  # 30, main and the total
        flagged = [n for n, row in r.items() if row[2] != "~"]
        self.assertEqual(flagged, [], proc.stdout)
        self.assertTrue(all(r[n][3] < 0.01 for n in self.separated(base, new)), proc.stdout)

    def test_real_change_is_found(self):
        base = self.sampled_runs("base", self.FUNCS, 1)
        new = self.sampled_runs("new", dict(self.FUNCS, f05=2 * self.FUNCS["f05"]), 2)
        proc = diff("-n", "0", self.write_runs("base", base), self.write_runs("new", new))
        self.assertEqual(proc.returncode, 1, proc.stdout + proc.stderr)
        self.assertEqual(names(proc.stdout)[0], "f05", proc.stdout)
        self.assertEqual(len(names(proc.stdout)), 31)  # and main


def pprofwrite_values(data):
    """{function: alloc_objects} of a profile make_profile wrote (leaf functions only)."""
    raw = gzip.decompress(data)
    return dict(_leaf_values(raw))


def _leaf_values(raw):
    # Just enough protobuf to read back what make_profile wrote: strings, functions,
    # locations (one function each) and samples.
    fields = list(pprofwrite.read_fields(raw))
    strings = [v.decode() for n, v in fields if n == 6]
    fname = {}
    for n, v in fields:
        if n == 5:
            f = dict(pprofwrite.read_fields(v))
            fname[f[1]] = strings[f[2]]
    loc_fn = {}
    for n, v in fields:
        if n == 4:
            f = list(pprofwrite.read_fields(v))
            lid = dict(f)[1]
            line = dict(pprofwrite.read_fields([x for k, x in f if k == 4][0]))
            loc_fn[lid] = fname[line[1]]
    for n, v in fields:
        if n == 2:
            f = dict(pprofwrite.read_fields(v))
            locs, vals = list(pprofwrite.read_packed(f[1])), list(pprofwrite.read_packed(f[2]))
            yield loc_fn[locs[0]], vals[0]


class DiffOneEach(DiffCase):
    def test_one_profile_per_side(self):
        a, b = self.path("a.pb.gz"), self.path("b.pb.gz")
        with open(a, "wb") as f:
            f.write(make_profile({"big": 50, "x": 2, "y": 1}, 100))
        with open(b, "wb") as f:
            f.write(make_profile({"big": 50, "x": 3, "y": 1, "fresh": 5}, 100))
        proc = diff(a, b)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertIn("One profile per side", proc.stdout)
        r = rows(proc.stdout)
        self.assertEqual(r["x"], ("2", "3", "+50.00%", None))
        self.assertEqual(r["y"][2], "+0.00%")
        self.assertNotIn("p=", proc.stdout)
        # by the size of the change (main +6, fresh +5, x +1): what appeared comes before
        # what stayed the same, however large
        self.assertEqual(names(proc.stdout), ["main", "fresh", "x", "big", "y"])
        self.assertEqual(r["fresh"][2], "new")

    def test_ops_on_one_side_only(self):
        a, b = self.path("a.pb.gz"), self.path("b.pb.gz")
        with open(a, "wb") as f:
            f.write(make_profile({"x": 2}, 100))
        with open(b, "wb") as f:
            f.write(make_profile({"x": 200}, 0))
        proc = diff(a, b)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertIn("alloc_objects, cum of the whole run (operations counted in 1 of "
                      "the 2 profiles only)", proc.stdout)
        self.assertEqual(rows(proc.stdout)["x"][:2], ("200", "200"))

    def test_several_operations(self):
        base = self.write_runs("base", [make_profile({"x": 1}, 10, op="a")])
        new = self.write_runs("new", [make_profile({"x": 1}, 10, op="b")])
        proc = diff(base, new)
        self.assertEqual(proc.returncode, 2)
        self.assertRegex(proc.stderr, r"^allocprof: .*--per-op")
        # profiles that count two operations: --per-op chooses the divisor
        for side, data in (("both-base", 2), ("both-new", 3)):
            p = pprofwrite.Profile()
            main = p.function("main")
            p.sample([p.function("x"), main], [data * 100, data * 6400])
            p.ops("a", 100)
            p.ops("b", 50)
            p.exact()
            with open(self.path(side + ".pb.gz"), "wb") as f:
                f.write(gzip.compress(p.encode()))
        two = (self.path("both-base.pb.gz"), self.path("both-new.pb.gz"))
        self.assertEqual(diff(*two).returncode, 2)
        proc = diff("--per-op", "b", *two)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("cum per operation (ops: b)", proc.stdout)
        self.assertEqual(rows(proc.stdout)["x"][:3], ("4", "6", "+50.00%"))
        proc = diff("--per-op", "a", base, new)
        self.assertEqual(proc.returncode, 2)
        self.assertRegex(proc.stderr, r"^allocprof: .*new/run00.pb.gz: no operation 'a' "
                                      r"\(it has: b\)")


class DiffRows(DiffCase):
    def test_limits(self):
        funcs = {"g%02d" % i: 1 + i for i in range(40)}
        funcs["tiny"] = 0
        base = self.write_runs("base", [make_profile(funcs, 1000, extra=1)
                                        for _ in range(5)])
        new = self.write_runs("new", [make_profile(dict(funcs, g00=3), 1000, extra=1)
                                      for _ in range(5)])
        proc = diff(base, new)
        self.assertEqual(proc.returncode, 1, proc.stdout)
        shown = names(proc.stdout)
        self.assertEqual(shown[0], "g00")
        # the significant rows (g00, +200%; main, +2 of ~820 allocations per op), then 20
        self.assertEqual(len(shown), 2 + 20)
        self.assertEqual(shown[:4], ["g00", "main", "g39", "g38"])
        self.assertNotIn("tiny", shown)
        self.assertRegex(proc.stdout, r"19 more without a significant change; 1 under 0.1% "
                                      r"of the total")
        proc = diff("-n", "0", "--min-share", "0", base, new)
        self.assertEqual(len(names(proc.stdout)), 42)
        proc = diff("-n", "3", base, new)
        self.assertEqual(len(names(proc.stdout)), 5)


class DiffBadInput(DiffCase):
    def expect_error(self, args, words=()):
        proc = diff(*args)
        self.assertEqual(proc.returncode, 2, proc.stdout + proc.stderr)
        lines = proc.stderr.splitlines()
        self.assertEqual(len(lines), 1, proc.stderr)
        self.assertTrue(lines[0].startswith("allocprof:"), proc.stderr)
        for w in words:
            self.assertIn(w, lines[0])

    def test_bad_inputs(self):
        good = self.path("good.pb.gz")
        with open(good, "wb") as f:
            f.write(make_profile({"x": 1}, 10))
        junk = self.path("junk.pb.gz")
        with open(junk, "wb") as f:
            f.write(b"not a profile at all")
        empty = self.path("empty")
        os.makedirs(empty)
        with open(os.path.join(empty, "notes.txt"), "w") as f:
            f.write("no profile here\n")
        self.expect_error([good], ["BASE and NEW"])
        self.expect_error([good, good, good], ["BASE and NEW"])
        self.expect_error([], ["BASE and NEW"])
        self.expect_error([good, self.path("missing.pb.gz")], ["missing.pb.gz"])
        self.expect_error([junk, good], ["junk.pb.gz"])
        self.expect_error([good, empty], ["no profiles in", "empty"])
        self.expect_error(["--sample-index", "cpu", good, good], ["no sample type 'cpu'"])
        self.expect_error(["--alpha", "2", good, good], ["--alpha"])
        self.expect_error(["--threshold", "x", good, good], ["--threshold"])
        self.expect_error(["-n", "-1", good, good], ["-n"])
        self.expect_error(["--bogus", good, good], ["--bogus"])

    def test_help(self):
        proc = diff("--help")
        self.assertEqual(proc.returncode, 0)
        self.assertTrue(proc.stdout.startswith("usage: allocprof diff"))
        for opt in ("--sample-index", "--per-op", "--alpha", "--threshold", "-n",
                    "--min-share"):
            self.assertIn(opt, proc.stdout)
        top = subprocess.run([ALLOCPROF, "--help"], capture_output=True, text=True).stdout
        self.assertIn("  diff ", top)
