"""`allocprof top`: reads ours and Go's profiles; refuses what is not a profile."""

import ctypes
import gzip
import os
import resource
import signal
import subprocess
import sys
import threading
import time
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
from harness import ALLOCPROF, Case, record, target  # noqa: E402
from harness import go_heap_profile, needs  # noqa: E402
import pprofwrite  # noqa: E402


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

    def test_pprof_spellings(self):
        # What people used to pprof type, after the file as pprof takes it.
        want = rows(top(self.out, "--sample-index", "alloc_objects", "-n", "3").stdout)
        for args in (["-sample_index=alloc_objects", "-nodecount=3"],
                     ["-sample_index", "alloc_objects", "-nodecount", "3"],
                     ["--sample_index=alloc_objects", "-n3"]):
            proc = top(self.out, *args)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            self.assertEqual(rows(proc.stdout), want, args)
        proc = top(self.out, "-sample_index=cpu")
        self.assertEqual(proc.returncode, 2)
        self.assertIn("no sample type 'cpu'", proc.stderr)

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
        prof = go_heap_profile(self)
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


def small_profile():
    """Raw protobuf of a profile with two functions, by hand."""
    p = pprofwrite.Profile()
    a, b = p.function("alpha", "/src/a.c"), p.function("beta", "/src/b.c")
    p.sample([a, b], [3, 300])
    p.sample([b], [1, 100])
    return p.encode()


class TopInputs(Case):
    """Where top reads from: files, stdin, pipes, zlib'd data, files whose size says 0."""

    def setUp(self):
        super().setUp()
        self.raw = small_profile()
        self.file = self.path("p.pb.gz")
        with open(self.file, "wb") as f:
            f.write(gzip.compress(self.raw))
        self.want = top(self.file)
        self.assertEqual(self.want.returncode, 0, self.want.stderr)
        self.assertEqual(rows(self.want.stdout), {"alpha": ("300 B", "300 B"),
                                                  "beta": ("100 B", "400 B")})

    def test_stdin(self):
        for data in (gzip.compress(self.raw), self.raw):
            proc = subprocess.run([ALLOCPROF, "top", "-"], input=data, capture_output=True)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            self.assertEqual(proc.stdout.decode(), self.want.stdout)
        proc = subprocess.run([ALLOCPROF, "top", "-"], input=b"", capture_output=True)
        self.assertEqual(proc.returncode, 1)
        self.assertEqual(proc.stderr.decode(), "allocprof: standard input: empty file\n")

    def test_named_pipe(self):
        fifo = self.path("fifo")
        os.mkfifo(fifo)
        data = gzip.compress(self.raw)

        def write():
            with open(fifo, "wb") as f:  # in small pieces, as a slow producer would
                for i in range(0, len(data), 7):
                    f.write(data[i:i + 7])
                    f.flush()

        writer = threading.Thread(target=write)
        writer.start()
        proc = top(fifo)
        writer.join()
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(proc.stdout, self.want.stdout)

    def test_zlib(self):
        z = self.path("p.pb.z")
        with open(z, "wb") as f:
            f.write(zlib.compress(self.raw))
        proc = top(z)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(proc.stdout, self.want.stdout)
        # A plain profile whose first two bytes pass for a zlib header (time_nanos 13).
        plain = self.path("p.pb")
        with open(plain, "wb") as f:
            f.write(pprofwrite.field_varint(9, 13) + self.raw)
        self.assertEqual((0x48 << 8 | 13) % 31, 0)
        self.assertEqual(top(plain).stdout, self.want.stdout)
        with open(z, "wb") as f:
            f.write(zlib.compress(self.raw)[:-6])
        proc = top(z)
        self.assertEqual((proc.returncode, proc.stderr),
                         (1, "allocprof: %s: corrupt or truncated zlib data\n" % z))

    def test_file_whose_size_is_zero(self):
        """A /proc file says st_size 0: a process's environment made of the profile's bytes,
        read back from /proc/PID/environ (the kernel adds a NUL after each string)."""
        raw = self.raw + pprofwrite.field_varint(14, 0)  # ends in a 0 byte: the last NUL
        strings = raw[:-1].split(b"\0")
        envp = (ctypes.c_char_p * (len(strings) + 1))(*strings, None)
        argv = (ctypes.c_char_p * 3)(b"sleep", b"30", None)
        libc = ctypes.CDLL(None, use_errno=True)
        pid = os.fork()
        if pid == 0:
            libc.execve(b"/bin/sleep", argv, envp)
            os._exit(127)
        try:
            environ = "/proc/%d/environ" % pid
            for _ in range(100):  # until the exec is done
                with open(environ, "rb") as f:
                    if f.read() == raw:
                        break
                time.sleep(0.02)
            self.assertEqual(os.stat(environ).st_size, 0)
            proc = top(environ)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            self.assertEqual(proc.stdout, self.want.stdout)
        finally:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def limit_memory():
    """In the child: 256 MiB of address space, so a reader that trusts its input fails."""
    resource.setrlimit(resource.RLIMIT_AS, (256 << 20, 256 << 20))


class TopHostile(Case):
    """Profiles made to hurt the reader: it refuses them in one line, in bounded memory."""

    def top_limited(self, data, name="p.pb.gz"):
        path = self.path(name)
        with open(path, "wb") as f:
            f.write(data)
        proc = subprocess.run([ALLOCPROF, "top", path], capture_output=True, text=True,
                              preexec_fn=limit_memory, timeout=60)
        return path, proc

    def expect_refused(self, data, words):
        path, proc = self.top_limited(data)
        self.assertEqual(proc.returncode, 1, proc.stderr)
        self.assertEqual(proc.stdout, "")
        self.assertEqual(len(proc.stderr.splitlines()), 1, proc.stderr)
        self.assertTrue(proc.stderr.startswith("allocprof: %s: " % path), proc.stderr)
        for w in words:
            self.assertIn(w, proc.stderr)

    def test_gzip_bomb(self):
        # 256 MiB of zeros in 1.1 MiB, gzip'd then zlib'd: twice the 128 MiB limit.
        chunk = bytes(1 << 20)
        for wbits in (31, 15):
            c = zlib.compressobj(1, zlib.DEFLATED, wbits)
            bomb = b"".join(c.compress(chunk) for _ in range(256)) + c.flush()
            self.assertLess(len(bomb), 2 << 20)
            self.expect_refused(bomb, ["too large (more than 128 MiB uncompressed)"])

    def test_crafted_repeated_fields(self):
        """Each tiny field decodes to an allocation of its own: 2-byte empty samples (a Sample
        struct each), 2-byte empty strings, 3-byte unknown fields. A 49 KiB file of 24 Mi
        empty samples took 3 GB before it was refused."""
        base = small_profile()
        for filler in (b"\x12\x00", b"\x32\x00", b"\xa0\x06\x00"):
            crafted = base + filler * (8 << 20)
            self.expect_refused(gzip.compress(crafted, 6), ["too large to decode"])

    def test_too_many_location_lines(self):
        """Small in memory, endless in work: one location of 40,000 lines in 2,000 samples
        (80 M rows to visit, a 17 KB file at 1 M x 1 M took hours). Refused, not run."""
        p = pprofwrite.Profile()
        f = p.function("fn", "file.c")
        p.locations[0] = (1, 0x1000, [1] * 40000)
        for _ in range(2000):
            p.sample([f], [1, 100])
        self.expect_refused(gzip.compress(p.encode()), ["too complex to summarize"])

    def test_huge_declared_lengths(self):
        base = small_profile()
        for tail in (
                pprofwrite.varint(2 << 3 | 2) + pprofwrite.varint(1 << 40),  # a sample
                pprofwrite.varint(6 << 3 | 2) + pprofwrite.varint((1 << 63) + 5),  # a string
                # a sample whose packed values claim more than the sample holds
                pprofwrite.field_bytes(2, pprofwrite.varint(2 << 3 | 2) +
                                       pprofwrite.varint(1 << 30) + b"\x01")):
            self.expect_refused(gzip.compress(base + tail), ["not a pprof profile"])

    def test_values_near_int64_max(self):
        """Sums saturate rather than overflow."""
        p = pprofwrite.Profile(types=[("alloc_objects", "count")])
        a, b = p.function("alpha"), p.function("beta")
        big = (1 << 63) - 1
        p.sample([a], [big])
        p.sample([a, b], [big])
        p.sample([b], [-big])
        path, proc = self.top_limited(gzip.compress(p.encode()))
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(rows(proc.stdout), {"alpha": (str(big), str(big)),
                                             "beta": (str(-big), "0")})

    def test_no_samples(self):
        p = pprofwrite.Profile()
        p.function("alpha")
        path, proc = self.top_limited(gzip.compress(p.encode()))
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertTrue(proc.stdout.startswith("Top 0 of 0 functions by alloc_space"),
                        proc.stdout)

    def test_control_characters_are_escaped(self):
        """Names come from the target: a terminal escape in one must not reach the terminal."""
        p = pprofwrite.Profile(types=[("alloc_objects", "count"), ("alloc\x07space", "bytes")])
        a = p.function("evil\x1b[31m\nname\x7f", "/src/\x1b]0;title\x07.c")
        b = p.function("caf\u00e9_\u00fcber \x9b")  # UTF-8 stays, a C1 control does not
        p.sample([a], [1, 64])
        p.sample([b], [1, 32])
        path, proc = self.top_limited(p.encode())
        self.assertEqual(proc.returncode, 0, proc.stderr)
        out = proc.stdout
        self.assertIn("by alloc\\x07space,", out.splitlines()[0])
        self.assertIn("  evil\\x1b[31m\\x0aname\\x7f (\\x1b]0;title\\x07.c:7)\n", out)
        self.assertIn("  caf\u00e9_\u00fcber \\xc2\\x9b\n", out)
        self.assertEqual([c for c in out if ord(c) < 0x20 and c != "\n"], [])
        self.assertEqual(len(out.splitlines()), 4)
        proc = top(path, "--sample-index", "cpu")
        self.assertEqual(len(proc.stderr.splitlines()), 1, proc.stderr)
        self.assertIn("(it has: alloc_objects, alloc\\x07space)", proc.stderr)

    def test_messages_are_escaped(self):
        """Diagnostics too: they name files, processes and symbols a target chose."""
        path = self.path("evil\x1b[2J.pb.gz")
        with open(path, "w") as f:
            f.write("not a profile\n")
        proc = top(path)
        self.assertEqual(proc.returncode, 1)
        self.assertEqual(proc.stderr, "allocprof: %s: not a pprof profile (protobuf decoding "
                         "failed)\n" % path.replace("\x1b", "\\x1b"))
