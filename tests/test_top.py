"""`allocprof top`: reads ours and Go's profiles; refuses what is not a profile."""

import gzip
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
from harness import ALLOCPROF, ROOT, Case, record, target  # noqa: E402
from harness import needs  # noqa: E402


def top(*args):
    return subprocess.run([ALLOCPROF, "top", *args], capture_output=True, text=True)


def rows(out):
    """{function: (flat, cum)} from top's table (values as printed)."""
    result = {}
    for line in out.splitlines()[2:]:
        parts = line.split()
        # flat may be "80.00 MiB" (two words) or "1600" (one)
        if parts[1].endswith("%"):
            flat, cum, name = parts[0], parts[3], parts[5]
        else:
            flat, cum, name = " ".join(parts[:2]), " ".join(parts[4:6]), parts[7]
        result[name] = (flat, cum)
    return result


@needs("root")
class TopOurs(Case):
    @classmethod
    def setUpClass(cls):
        import tempfile
        cls._dir = tempfile.TemporaryDirectory(prefix="allocprof-top-")
        cls.out = os.path.join(cls._dir.name, "p.pb.gz")
        proc = record(["--exact", "-q", "-o", cls.out, "--", target("sites")])
        assert proc.returncode == 0, proc.stderr

    @classmethod
    def tearDownClass(cls):
        cls._dir.cleanup()

    def test_default_is_alloc_space(self):
        proc = top(self.out)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        first = proc.stdout.splitlines()[0]
        self.assertTrue(first.startswith("Top 10 of "), first)
        self.assertIn("by alloc_space", first)
        r = rows(proc.stdout)
        # sites: 32 large blocks of 1-4 MiB, 8 threads x 4 of each size: 80 MiB exactly.
        self.assertEqual(r["site_large"][0], "80.00 MiB")
        self.assertEqual(list(r)[0], "site_large")

    def test_objects_and_count(self):
        proc = top(self.out, "--sample-index", "alloc_objects", "-n", "3")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        r = rows(proc.stdout)
        self.assertEqual(len(r), 3)
        self.assertEqual(r["site_realloc"], ("8000", "8000"))
        proc = top(self.out, "--sample-index", "0", "-n", "1")
        self.assertEqual(rows(proc.stdout), {"site_realloc": ("8000", "8000")})

    def test_cumulative(self):
        r = rows(top(self.out, "-n", "100").stdout)
        self.assertEqual(r["chain"][0], "0 B")
        self.assertEqual(r["chain"][1], "75.00 KiB")  # site_deep: 1600 x 48 bytes

    def test_uncompressed_profile(self):
        raw = self.path("raw.pb")
        with gzip.open(self.out) as f, open(raw, "wb") as g:
            g.write(f.read())
        self.assertEqual(top(raw).stdout, top(self.out).stdout)


class TopGo(Case):
    """A heap profile written by Go's runtime/pprof."""

    def test_go_heap_profile(self):
        if not shutil.which("go"):
            self.fail("go is not installed (scripts/install-deps.sh --test installs it)")
        exe, prof = self.path("goheap"), self.path("heap.pb.gz")
        env = dict(os.environ, GO111MODULE="off", GOCACHE=self.path("cache"), GOFLAGS="")
        subprocess.run(["go", "build", "-o", exe,
                        os.path.join(ROOT, "tests", "targets", "go", "goheap.go")],
                       check=True, env=env, capture_output=True)
        subprocess.run([exe, prof], check=True)
        proc = top(prof, "-n", "3")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        # No default type in Go's heap profiles: the last one, as pprof does.
        self.assertIn("by inuse_space", proc.stdout.splitlines()[0])
        self.assertEqual(list(rows(proc.stdout))[0], "main.allocate")
        proc = top(prof, "--sample-index", "alloc_objects")
        self.assertEqual(proc.returncode, 0)
        flat = int(rows(proc.stdout)["main.allocate"][0])
        self.assertGreaterEqual(flat, 1000)  # 1000 blocks, plus the slice's growth


class TopBadInput(Case):
    def expect_error(self, args, status, words):
        proc = top(*args)
        self.assertEqual(proc.returncode, status, proc.stderr)
        self.assertEqual(proc.stdout, "")
        first = proc.stderr.splitlines()[0]
        self.assertTrue(first.startswith("allocprof: "), proc.stderr)
        for w in words:
            self.assertIn(w, first)

    def test_not_a_profile(self):
        text = self.path("notes.txt")
        with open(text, "w") as f:
            f.write("this is not a profile\n")
        self.expect_error([text], 1, ["notes.txt", "not a pprof profile"])
        empty = self.path("empty")
        open(empty, "w").close()
        self.expect_error([empty], 1, ["empty file"])
        junk = self.path("junk.pb.gz")
        with open(junk, "wb") as f:
            f.write(os.urandom(4096))
        self.expect_error([junk], 1, ["junk.pb.gz"])

    @needs("root")
    def test_truncated_gzip(self):
        out = self.path("p.pb.gz")
        self.assertEqual(record(["-q", "-o", out, "--", target("sites"), "--rounds",
                                 "20"]).returncode, 0)
        with open(out, "rb") as f:
            data = f.read()
        cut = self.path("cut.pb.gz")
        with open(cut, "wb") as f:
            f.write(data[: len(data) // 2])
        self.expect_error([cut], 1, ["corrupt or truncated"])

    def test_missing_and_directory(self):
        self.expect_error([self.path("nope.pb.gz")], 1, ["nope.pb.gz", "No such file"])
        self.expect_error([self.tmp], 1, ["Is a directory"])

    def test_usage(self):
        self.expect_error([], 2, ["no profile"])
        self.expect_error(["a", "b"], 2, ["one profile"])
        self.expect_error(["-n", "x", "a"], 2, ["-n"])

    @needs("root")
    def test_unknown_sample_type(self):
        out = self.path("p.pb.gz")
        self.assertEqual(record(["-q", "-o", out, "--", target("sites"), "--rounds",
                                 "20"]).returncode, 0)
        self.expect_error([out, "--sample-index", "cpu"], 2,
                          ["no sample type 'cpu'", "alloc_objects, alloc_space"])
