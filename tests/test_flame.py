"""`allocprof flame`: flame graphs as one SVG file, the difference picture, folded stacks, and
the pictures `record --svg` and `diff --svg` write. Profiles written by hand (known stacks and
values) check the arithmetic; recordings of tests/targets/requests.c, whose allocations per
request are known, check it on real captures. The browser's side is test_flame_browser.py."""

import gzip
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
from harness import ALLOCPROF, Case, go_heap_profile, needs, record, target  # noqa: E402
import pprofwrite  # noqa: E402

SVG = "{http://www.w3.org/2000/svg}"
REQUESTS = target("requests")


def flame(*args, **kw):
    return subprocess.run([ALLOCPROF, "flame", *args], capture_output=True, text=True, **kw)


def frames(path):
    """The picture's frames in document order: dicts of value (data-v), base (data-b or None),
    title, fill, x, y, width, and depth (from y: the root at the bottom)."""
    root = ET.parse(path).getroot()
    out = []
    for g in root.iter(SVG + "g"):
        if "f" not in g.get("class", "").split():
            continue
        rect, title = g.find(SVG + "rect"), g.find(SVG + "title")
        out.append({
            "value": float(g.get("data-v")),
            "base": float(g.get("data-b")) if g.get("data-b") is not None else None,
            "title": title.text if title is not None else "",
            "fill": rect.get("fill"),
            "x": float(rect.get("x")), "y": float(rect.get("y")),
            "width": float(rect.get("width")), "height": float(rect.get("height")),
        })
    if out:
        y0, h = out[0]["y"], out[0]["height"]
        for f in out:
            f["depth"] = round((y0 - f["y"]) / h)
    return out


def children_sums_hold(test, fr, rel=1e-9):
    """Every frame holds at least the sum of its children (its own value is the rest), and
    the children of the root sum to its value when no sample has an empty stack."""
    stack = []  # (frame, children's sum)
    sums = {}
    for i, f in enumerate(fr):
        while stack and fr[stack[-1]]["depth"] >= f["depth"]:
            stack.pop()
        if stack:
            sums[stack[-1]] = sums.get(stack[-1], 0) + f["value"]
        stack.append(i)
    for i, s in sums.items():
        test.assertLessEqual(s, fr[i]["value"] * (1 + rel) + 1e-9, fr[i]["title"])
    return sums


def named(fr, name):
    """The frames whose title starts with the function `name`."""
    return [f for f in fr if re.match(re.escape(name) + r"(\s|:|$|\()", f["title"] or "")]


def rgb(fill):
    m = re.match(r"rgb\((\d+),\s*(\d+),\s*(\d+)\)", fill or "")
    if m:
        return tuple(int(v) for v in m.groups())
    m = re.match(r"#([0-9a-fA-F]{2})([0-9a-fA-F]{2})([0-9a-fA-F]{2})$", fill or "")
    if m:
        return tuple(int(v, 16) for v in m.groups())
    raise AssertionError("not a colour: %r" % fill)


def reddish(fill):
    r, g, b = rgb(fill)
    return r > g + 20 and r > b + 20


def neutral(fill):
    r, g, b = rgb(fill)
    return min(r, g, b) >= 235 and max(r, g, b) - min(r, g, b) <= 10


def crafted(stacks, ops=None, exact=True):
    """A profile of `stacks`: [(frames root first, objects, bytes[, exe])]; functions named by
    the frames, each in /src/NAME.c; exe, when given, the samples' exe and comm labels."""
    p = pprofwrite.Profile()
    locs = {}
    if ops:
        p.ops(*ops)
    if exact:
        p.exact()
    for frames_, objects, nbytes, *exe in stacks:
        ids = []
        for name in frames_:
            if name not in locs:
                locs[name] = p.function(name, "/src/%s.c" % name.split("::")[0])
            ids.append(locs[name])
        labels = {"exe": exe[0], "comm": os.path.basename(exe[0])} if exe else None
        p.sample(list(reversed(ids)), [objects, nbytes], labels)  # leaf first
    return gzip.compress(p.encode())


class FlameCase(Case):
    def write(self, name, data):
        path = self.path(name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def assertValidSvg(self, path):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        if shutil.which("xmllint"):
            x = subprocess.run(["xmllint", "--noout", path], capture_output=True, text=True)
            self.assertEqual(x.returncode, 0, x.stderr)
        else:
            ET.parse(path)
        # self-contained: nothing it would fetch (the namespaces are names, not fetched)
        without_ns = re.sub(r'xmlns(:\w+)?="[^"]*"', "", text)
        self.assertNotRegex(without_ns, r"(?i)https?://|\bhref\s*=|url\(|@import|<script[^>]*src=")
        return text


class Crafted(FlameCase):
    STACKS = [
        (["main", "serve", "handle", "parse"], 10, 640),
        (["main", "serve", "handle", "respond"], 20, 20480),
        (["main", "serve", "handle", "respond"], 5, 5120),  # the same stack again: summed
        (["main", "start_up"], 1, 4096),
        (["main", "serve", "log"], 3, 300),
    ]

    def test_values_are_the_profiles(self):
        prof = self.write("a.pb.gz", crafted(self.STACKS))
        out = self.path("a.svg")
        r = flame(prof, "-o", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertValidSvg(out)
        fr = frames(out)
        total = sum(b for _, _, b in self.STACKS)
        self.assertEqual(fr[0]["value"], total)
        sums = children_sums_hold(self, fr)
        self.assertEqual(sums[0], total)
        self.assertEqual([f["value"] for f in named(fr, "respond")], [25600])
        self.assertEqual([f["value"] for f in named(fr, "handle")], [26240])
        self.assertEqual([f["value"] for f in named(fr, "serve")], [26540])
        # the root spans the width; a child's width is its share
        self.assertAlmostEqual(named(fr, "respond")[0]["width"] / fr[0]["width"],
                               25600 / total, places=3)

    def test_sample_index_and_per_op(self):
        prof = self.write("a.pb.gz", crafted(self.STACKS, ops=("handle", 10)))
        out = self.path("a.svg")
        r = flame(prof, "-o", out, "--sample-index", "alloc_objects", "--per-op")
        self.assertEqual(r.returncode, 0, r.stderr)
        fr = frames(out)
        self.assertAlmostEqual(fr[0]["value"], 39 / 10)
        self.assertAlmostEqual(named(fr, "respond")[0]["value"], 2.5)
        self.assertIn("alloc_objects", self.assertValidSvg(out))
        # "--per-op FUNC" as two words, the profile after it
        r = flame("--per-op", "handle", prof, "-o", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertAlmostEqual(frames(out)[0]["value"], sum(b for *_, b in self.STACKS) / 10)

    def test_several_profiles_are_summed(self):
        a = self.write("a.pb.gz", crafted(self.STACKS))
        os.mkdir(self.path("more"))
        self.write("more/b.pb.gz", crafted(self.STACKS[:1]))
        out = self.path("s.svg")
        r = flame(a, self.path("more"), "-o", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(frames(out)[0]["value"], sum(b for *_, b in self.STACKS) + 640)
        self.assertEqual(named(frames(out), "parse")[0]["value"], 1280)

    def test_narrow_frames_are_merged_and_totals_stay(self):
        rng = random.Random(7)
        stacks = [(["main", "big"], 1, 1000000)]
        small = 0
        for i in range(300):
            v = rng.randint(1, 50)
            small += v
            stacks.append((["main", "tiny_%03d" % i, "leaf_%03d" % i], 1, v))
        prof = self.write("n.pb.gz", crafted(stacks))
        out = self.path("n.svg")
        r = flame(prof, "-o", out, "--max-frames", "20")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertValidSvg(out)
        fr = frames(out)
        self.assertLessEqual(len(fr), 20)
        self.assertEqual(fr[0]["value"], 1000000 + small)
        sums = children_sums_hold(self, fr)
        self.assertEqual(sums[0], 1000000 + small)  # main: nothing lost
        self.assertEqual(named(fr, "main")[0]["value"], 1000000 + small)
        merged = [f for f in fr if f["title"].startswith("\u2026")]
        self.assertTrue(merged, [f["title"] for f in fr])
        # what was merged is exactly what the drawn tiny frames do not hold
        drawn_tiny = sum(f["value"] for f in fr if f["title"].startswith("tiny_"))
        self.assertEqual(sum(f["value"] for f in merged if f["depth"] == 2), small - drawn_tiny)
        self.assertIn("merged", self.assertValidSvg(out))

    def test_frames_of_equal_width_are_cut_by_rank(self):
        """A chain of frames of one width (a stack that calls through many functions) is cut
        where the bound says, not all merged: the widest and shallowest frames are kept."""
        chain = ["f%02d" % i for i in range(10)]
        prof = self.write("c.pb.gz", crafted([(chain, 1, 100), (["g"], 1, 10)]))
        out = self.path("c.svg")
        r = flame(prof, "-o", out, "--max-frames", "5")
        self.assertEqual(r.returncode, 0, r.stderr)
        fr = frames(out)
        # all, f00, f01, a "…" for f02 to f09 above f01, a "…" for g beside f00
        self.assertEqual(len(fr), 5, [f["title"] for f in fr])
        self.assertEqual([re.split(r"[ :]", f["title"])[0] for f in fr],
                         ["all", "f00", "f01", "\u2026", "\u2026"])
        self.assertEqual((fr[3]["value"], fr[3]["depth"]), (100, 3))
        self.assertIn("8 frames", fr[3]["title"])  # the chain above f01, counted whole
        self.assertEqual((fr[4]["value"], fr[4]["depth"]), (10, 1))
        self.assertEqual(children_sums_hold(self, fr)[0], 110)
        # 100 stacks of 200 frames of one width: the bound is used, not one "…"
        rng = random.Random(3)
        stacks = [(["r%03d" % i] + ["x%d" % rng.randrange(1000) for _ in range(199)], 1, 50)
                  for i in range(100)]
        prof = self.write("t.pb.gz", crafted(stacks))
        r = flame(prof, "-o", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        fr = frames(out)
        self.assertGreater(len(fr), 9000)
        self.assertLessEqual(len(fr), 10000)
        self.assertEqual(children_sums_hold(self, fr)[0], 5000)
        self.assertIn("frames merged", self.assertValidSvg(out))

    def test_builds_of_two_checkouts_match(self):
        """The same functions at other source paths (two checkouts' builds) are the same
        frames: no change, nothing only in BASE."""
        def prof(root):
            p = pprofwrite.Profile()
            p.exact()
            main, work = p.function("main", root + "/main.c"), p.function("work", root + "/w.c")
            p.sample([work, main], [10, 1000])
            return gzip.compress(p.encode())
        b, n = self.write("b.pb.gz", prof("/ci/base")), self.write("n.pb.gz", prof("/ci/new"))
        out = self.path("d.svg")
        self.assertEqual(flame("--base", b, n, "-o", out).returncode, 0)
        fr = frames(out)
        self.assertEqual([(f["value"], f["base"]) for f in fr], [(1000, 1000)] * 3)
        self.assertTrue(all(neutral(f["fill"]) for f in fr), [f["fill"] for f in fr])
        self.assertNotIn("only in BASE", self.assertValidSvg(out))
        r = flame("--folded", "--base", b, n)
        self.assertEqual(r.stdout, "main;work 1000 1000\n")

    def test_programs_frames_only_where_they_tell_programs_apart(self):
        """A frame per program at the root only for a profile (or, summed, profiles) of
        several programs; a difference matches a renamed program, and a profile with no
        programs named (another producer's)."""
        one = self.write("one.pb.gz", crafted([(["main", "work"], 1, 100, "/srv/server")]))
        two = self.write("two.pb.gz", crafted([(["main", "work"], 1, 100, "/srv/server"),
                                               (["main", "cli"], 1, 5, "/usr/bin/client")]))
        old = self.write("old.pb.gz", crafted([(["main", "work"], 1, 90, "/srv/server-old")]))
        bare = self.write("bare.pb.gz", crafted([(["main", "work"], 1, 80)]))
        self.assertEqual(flame("--folded", one).stdout, "main;work 100\n")
        self.assertEqual(flame("--folded", two).stdout,
                         "client;main;cli 5\nserver;main;work 100\n")
        self.assertEqual(flame("--folded", one, old).stdout,  # two programs in all
                         "server;main;work 100\nserver-old;main;work 90\n")
        self.assertEqual(flame("--folded", "--base", old, one).stdout, "main;work 90 100\n")
        self.assertEqual(flame("--folded", "--base", bare, one).stdout, "main;work 80 100\n")
        self.assertEqual(flame("--folded", "--base", one, two).stdout,
                         "client;main;cli 0 5\nserver;main;work 100 100\n")

    def test_folded_per_op_has_no_rounding_stacks(self):
        prof = self.write("p.pb.gz", crafted([(["main", "a"], 1, 1), (["main", "b"], 1, 2)],
                                             ops=("main", 3)))
        r = flame("--folded", "--per-op", prof)
        self.assertEqual(r.stdout, "main;a 0.3333333333\nmain;b 0.6666666667\n")
        # and from standard input to standard output
        with open(prof, "rb") as f:
            r = subprocess.run([ALLOCPROF, "flame", "-", "-o", "-"], stdin=f,
                               capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("<svg", r.stdout)

    def test_a_large_profile_is_bounded(self):
        """20,000 random stacks over 500 functions: at most --max-frames frames (10,000 by
        default), the totals true (BENCHMARKS.md has 100,000 stacks' size and time)."""
        rng = random.Random(1)
        stacks, total = [], 0
        for _ in range(20000):
            depth = rng.randint(4, 12)
            v = rng.randint(1, 1000)
            total += v * 64
            stacks.append((["main"] + ["fn_%03d" % rng.randrange(500)
                                       for _ in range(depth - 1)], v, v * 64))
        prof = self.write("big.pb.gz", crafted(stacks))
        out = self.path("big.svg")
        r = flame(prof, "-o", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertValidSvg(out)
        fr = frames(out)
        self.assertLessEqual(len(fr), 10000)
        self.assertGreater(len(fr), 5000)
        self.assertEqual(fr[0]["value"], total)
        self.assertEqual(children_sums_hold(self, fr)[0], total)
        self.assertLess(os.path.getsize(out), 10000 * 600)

    def test_same_function_same_colour(self):
        a = self.write("a.pb.gz", crafted(self.STACKS))
        b = self.write("b.pb.gz", crafted([(["main", "other", "respond"], 1, 99),
                                           (["main", "zzz"], 1, 5)]))
        fa, fb = self.path("a.svg"), self.path("b.svg")
        self.assertEqual(flame(a, "-o", fa).returncode, 0)
        self.assertEqual(flame(b, "-o", fb).returncode, 0)
        ca = {f["fill"] for f in named(frames(fa), "respond")}
        cb = {f["fill"] for f in named(frames(fb), "respond")}
        self.assertEqual(len(ca), 1)
        self.assertEqual(ca, cb)
        # and names differ in shade, not all one colour
        self.assertGreater(len({f["fill"] for f in frames(fa)[1:]}), 2)

    def test_colours_say_what_a_frame_is(self):
        """The allocator's wrappers green, the program's frames red to orange (a profile
        without mappings is all program), the root neutral."""
        prof = self.write("k.pb.gz", crafted([(["main", "serve", "zmalloc"], 1, 100),
                                              (["main", "operator new(unsigned long)"], 1, 50),
                                              (["main", "_PyObject_Malloc"], 1, 50)]))
        out = self.path("k.svg")
        self.assertEqual(flame(prof, "-o", out).returncode, 0)
        fr = frames(out)
        for name in ("zmalloc", "operator new", "_PyObject_Malloc"):
            r_, g_, b_ = rgb(named(fr, name)[0]["fill"])
            self.assertGreater(g_, max(r_, b_) + 40, name)
        for name in ("main", "serve"):
            r_, g_, b_ = rgb(named(fr, name)[0]["fill"])
            self.assertGreater(r_, max(g_, b_) + 40, name)

    def test_folded(self):
        stacks = self.STACKS + [(["main", "a;b"], 1, 7)]
        prof = self.write("a.pb.gz", crafted(stacks))
        r = flame("--folded", prof)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = dict(line.rsplit(" ", 1) for line in r.stdout.splitlines())
        self.assertEqual(lines, {
            "main;serve;handle;parse": "640",
            "main;serve;handle;respond": "25600",
            "main;start_up": "4096",
            "main;serve;log": "300",
            "main;a:b": "7",  # ';' separates frames
        })
        # a small value of its own under a large child is a line too
        small = self.write("s.pb.gz", crafted([(["main", "big"], 1, 3000000000),
                                               (["main"], 1, 2)]))
        self.assertEqual(flame("--folded", small).stdout, "main 2\nmain;big 3000000000\n")
        out = self.path("a.folded")
        r = flame("--folded", prof, "-o", out, "--sample-index", "alloc_objects")
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(out) as f:
            self.assertIn("main;serve;handle;respond 25\n", f.read())

    def test_folded_difference(self):
        base = self.write("base.pb.gz", crafted(self.STACKS))
        new = self.write("new.pb.gz", crafted(self.STACKS[:3] + [(["main", "fresh"], 1, 11)]))
        r = flame("--folded", "--base", base, new)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = {line.rsplit(" ", 2)[0]: line.rsplit(" ", 2)[1:] for line in r.stdout.splitlines()}
        self.assertEqual(lines["main;serve;handle;respond"], ["25600", "25600"])
        self.assertEqual(lines["main;start_up"], ["4096", "0"])  # gone in NEW
        self.assertEqual(lines["main;fresh"], ["0", "11"])

    def test_difference_colours(self):
        base = crafted([(["main", "a", "grows"], 1, 1000), (["main", "a", "same"], 1, 1000),
                        (["main", "b", "shrinks"], 1, 1000), (["main", "gone"], 1, 500)])
        new = crafted([(["main", "a", "grows"], 1, 2000), (["main", "a", "same"], 1, 1000),
                       (["main", "b", "shrinks"], 1, 250)])
        b, n = self.write("b.pb.gz", base), self.write("n.pb.gz", new)
        out = self.path("d.svg")
        r = flame("--base", b, n, "-o", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        text = self.assertValidSvg(out)
        fr = frames(out)
        by = {name: named(fr, name)[0] for name in ("grows", "same", "shrinks", "a", "b")}
        self.assertEqual((by["grows"]["value"], by["grows"]["base"]), (2000, 1000))
        self.assertTrue(reddish(by["grows"]["fill"]), by["grows"]["fill"])
        self.assertTrue(neutral(by["same"]["fill"]), by["same"]["fill"])
        r_, g_, b_ = rgb(by["shrinks"]["fill"])
        self.assertGreater(b_, r_ + 20, by["shrinks"]["fill"])
        # the stronger change is the stronger colour: a's +50% is paler than grows' +100%
        self.assertGreater(rgb(by["a"]["fill"])[1], rgb(by["grows"]["fill"])[1])
        self.assertFalse(named(fr, "gone"))  # widths are NEW's: it has none
        self.assertIn("only in BASE", text)
        # hover says both values and the change
        self.assertRegex(by["grows"]["title"], r"NEW 1\.95 KiB .*BASE 1000 B.*\+100\.0%")

    def test_bad_command_lines(self):
        prof = self.write("a.pb.gz", crafted(self.STACKS))
        junk = self.write("junk.pb.gz", b"not a profile")
        cases = [
            ([], "no profile"),
            (["--bogus", prof], "bogus"),
            ([self.path("missing.pb.gz")], "missing.pb.gz"),
            ([junk, "-o", self.path("x.svg")], "junk.pb.gz"),
            ([prof, "--max-frames", "1"], "--max-frames"),
            ([prof, "--folded", "--title", "x"], "--title"),
            ([prof, "--sample-index", "nope", "-o", self.path("x.svg")], "nope"),
            ([prof, "--per-op", "-o", self.path("x.svg")], "operations"),
            (["--base", self.path("nobase"), prof, "-o", self.path("x.svg")], "nobase"),
            ([prof, "-o", prof], "one of the profiles"),  # never over its own input
        ]
        # the picture cannot be written: 1, said, and nothing saved elsewhere
        cases += [(args, word, 1) for args, word in (
            ([prof, "-o", self.tmp], "directory"),
            ([prof, "-o", self.path("no/such/x.svg")], "no such directory"),
            ([prof, "-o", "/dev/full"], "picture is not written"))]
        before = set(os.listdir(tempfile.gettempdir()))
        for case in cases:
            args, word, code = case if len(case) == 3 else (*case, 2)
            r = flame(*args)
            self.assertEqual(r.returncode, code, (args, r.stderr))
            self.assertEqual(len(r.stderr.strip().splitlines()), 1, (args, r.stderr))
            self.assertIn(word, r.stderr, args)
        self.assertFalse(os.path.exists(self.path("x.svg")))
        # no fallback file (a profile's would be allocprof-HOST-...)
        self.assertEqual({n for n in set(os.listdir(tempfile.gettempdir())) - before
                          if n.startswith("allocprof-")}, set())
        with open(prof, "rb") as f:
            self.assertEqual(f.read(2), b"\x1f\x8b")  # still the profile
        r = subprocess.run([ALLOCPROF, "diff", "--svg", "-", prof, prof], capture_output=True,
                           text=True)
        self.assertEqual((r.returncode, r.stdout), (2, ""))
        self.assertIn("standard output", r.stderr)
        with open(prof, "rb") as f:
            r = subprocess.run([ALLOCPROF, "diff", "--svg", self.path("x.svg"), prof, "-"],
                               stdin=f, capture_output=True, text=True)
        self.assertEqual((r.returncode, r.stdout), (2, ""))
        self.assertIn("standard input", r.stderr)
        # an SVG is not for a terminal: said, not written there (script(1) gives a tty)
        if shutil.which("script"):
            r = subprocess.run(["script", "-qec", "%s flame %s" % (ALLOCPROF, prof), "/dev/null"],
                               capture_output=True, text=True)
            self.assertNotEqual(r.returncode, 0)
            self.assertNotIn("<svg", r.stdout)
            self.assertIn("picture to the terminal", r.stdout)
            # folded text is for a terminal too, with -o - as without it
            r = subprocess.run(["script", "-qec", "%s flame --folded -o - %s" % (ALLOCPROF, prof),
                                "/dev/null"], capture_output=True, text=True)
            self.assertIn("main;serve;handle;respond 25600", r.stdout)

    def test_empty_profile(self):
        prof = self.write("e.pb.gz", crafted([]))
        out = self.path("e.svg")
        r = flame(prof, "-o", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("empty", r.stderr)  # said, on one line
        self.assertEqual(len(r.stderr.splitlines()), 1)
        self.assertValidSvg(out)
        self.assertEqual(frames(out), [])  # nothing of any width to draw
        r = flame("--folded", "-", input="")
        self.assertEqual(r.returncode, 2)  # standard input that is not a profile

    def test_go_heap_profile(self):
        """A heap profile of Go's runtime/pprof: no allocprof comments, Go's own names."""
        prof = go_heap_profile(self)
        out = self.path("go.svg")
        r = flame(prof, "-o", out, "--sample-index", "alloc_objects")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertValidSvg(out)
        fr = frames(out)
        self.assertGreaterEqual(named(fr, "main.allocate")[0]["value"], 1000)
        self.assertEqual(children_sums_hold(self, fr)[0], fr[0]["value"])
        with open(prof, "rb") as f:
            r = flame("--folded", "-", stdin=f)  # from a pipe
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("main.main;main.allocate ", r.stdout)

    def test_help(self):
        r = flame("--help")
        self.assertEqual(r.returncode, 0)
        for opt in ("--output", "--sample-index", "--per-op", "--base", "--folded",
                    "--max-frames", "--title", "--width"):
            self.assertIn(opt, r.stdout)


@needs("root")
class Recorded(FlameCase):
    def rec(self, name, *args, requests=2000):
        out = self.path(name)
        r = record(["-q", "--exact", "--ops", "handle_request", "-o", out, "--",
                    REQUESTS, "--requests", str(requests), *args])
        self.assertRecorded(r)
        return out

    def test_record_svg(self):
        prof, svg = self.path("r.pb.gz"), self.path("r.svg")
        r = record(["--exact", "-o", prof, "--svg", svg, "--", REQUESTS, "--requests", "1000"])
        self.assertRecorded(r)
        self.assertIn("wrote %s" % svg, r.stderr)
        text = self.assertValidSvg(svg)
        self.assertIn("requests", text)  # the title names the target
        fr = frames(svg)
        # the same picture as flame draws of the profile
        again = self.path("again.svg")
        self.assertEqual(flame(prof, "-o", again).returncode, 0)
        self.assertEqual([f["value"] for f in frames(again)], [f["value"] for f in fr])
        hr = named(fr, "handle_request")
        self.assertEqual(len(hr), 1)
        self.assertEqual(hr[0]["value"], 1000 * 1804)
        # kinds: the program's frames and libc's differ in colour family
        libc = named(fr, "__libc_start_call_main")
        self.assertTrue(libc)
        self.assertNotEqual(rgb(libc[0]["fill"]), rgb(hr[0]["fill"]))

    def test_record_svg_bad(self):
        prof = self.path("r.pb.gz")
        # (a destination that cannot be written is exit 1, as it is for -o)
        for args, word, code in (
                (["--svg", prof, "-o", prof], "same file", 2),
                (["--svg", os.path.join(self.tmp, ".", "r.pb.gz"), "-o", prof], "same file", 2),
                (["--svg", self.tmp, "-o", prof], "directory", 1),
                (["--svg", self.path("x.svg"), "--output-dir", self.tmp, "--interval", "1s"],
                 "--interval", 2)):
            r = record([*args, "--", REQUESTS, "--requests", "10"])
            self.assertEqual(r.returncode, code, (args, r.stderr))
            self.assertIn(word, r.stderr)
            self.assertFalse(os.path.exists(prof), args)  # refused before anything ran

    def test_difference_of_a_path_that_allocates_twice(self):
        """log_line() asks for 200 bytes instead of 100 (--bigger 100): its frame and the
        frames it is called from are red, every other frame white; per request, exactly."""
        for side, args in (("base", ()), ("new", ("--bigger", "100"))):
            os.mkdir(self.path(side))
            for i in range(2):
                self.rec("%s/%d.pb.gz" % (side, i), *args)
        out = self.path("d.svg")
        # per operation without --per-op: every run counted handle_request
        r = flame("--base", self.path("base"), self.path("new"), "--sample-index",
                  "alloc_space", "-o", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertValidSvg(out)
        fr = frames(out)
        log = named(fr, "log_line")
        self.assertEqual(len(log), 1)
        self.assertEqual((log[0]["value"], log[0]["base"]), (200, 100))
        self.assertTrue(reddish(log[0]["fill"]), log[0]["fill"])
        path = {"requests", "log_line", "handle_request", "serve", "main",
                "__libc_start_call_main", "__libc_start_main", "_start", "all"}
        for f in fr:
            name = re.split(r"[\s:(@]", f["title"], 1)[0]
            if name in path or f["depth"] == 0:
                continue
            self.assertTrue(neutral(f["fill"]), (f["title"], f["fill"]))
        self.assertTrue(reddish(named(fr, "handle_request")[0]["fill"]))
        # diff --svg draws the same picture beside its table
        d2 = self.path("d2.svg")
        r = subprocess.run([ALLOCPROF, "diff", "--sample-index", "alloc_space", "--svg", d2,
                            self.path("base"), self.path("new")], capture_output=True, text=True)
        self.assertIn(r.returncode, (0, 1), r.stderr)
        self.assertIn("log_line", r.stdout)
        f2 = frames(d2)
        self.assertEqual([(f["value"], f["base"], f["fill"]) for f in f2],
                         [(f["value"], f["base"], f["fill"]) for f in fr])

    def test_several_programs_each_under_its_own_frame(self):
        """A command that runs two programs: each program's stacks under a frame of its
        name at the root, not merged into one main; unsymbolized frames named by file and
        offset, which ASLR does not change."""
        prof = self.path("two.pb.gz")
        r = record(["-q", "--exact", "-o", prof, "--", "sh", "-c",
                    "%s --requests 100 && %s --rounds 1" % (REQUESTS, target("leaks"))])
        self.assertRecorded(r)
        r = flame("--folded", prof)
        self.assertEqual(r.returncode, 0, r.stderr)
        roots = {line.split(";", 1)[0] for line in r.stdout.splitlines()}
        self.assertTrue({"requests", "leaks"} <= roots, roots)
        for line in r.stdout.splitlines():
            stack = line.rsplit(" ", 1)[0]
            self.assertNotRegex(stack, r"(^|;)0x[0-9a-f]{8,}(;|$)", line)  # file+0xoffset
        # requests' own, exactly: 100 requests of 1804 bytes, 10 x 4096 and 8192 outside them
        # (by the root frame alone: a process this short may exit before its symbols are
        # read on a busy machine, and its frames are then file+0xoffset)
        self.assertEqual(sum(int(line.rsplit(" ", 1)[1]) for line in r.stdout.splitlines()
                             if line.startswith("requests;")),
                         100 * 1804 + 10 * 4096 + 8192)
        # frames without a symbol (Debian's sh is stripped) are grey, libc's yellow
        svg = self.path("two.svg")
        self.assertEqual(flame(prof, "-o", svg).returncode, 0)
        fr = frames(svg)
        unsym = [f for f in fr if re.match(r"\S+\+0x[0-9a-f]+", f["title"])]
        self.assertTrue(unsym)  # Debian's dash has no symbol table
        r_, g_, b_ = rgb(unsym[0]["fill"])
        self.assertLessEqual(max(r_, g_, b_) - min(r_, g_, b_), 10, unsym[0]["title"])
        r_, g_, b_ = rgb(named(fr, "__libc_start_call_main")[0]["fill"])
        self.assertGreater(min(r_, g_), b_ + 60)
