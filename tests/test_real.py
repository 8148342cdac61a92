"""Real programs from Debian: redis-server, which allocates through jemalloc, under load."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import pprofraw  # noqa: E402
from harness import ALLOCPROF, Case, wait_for_log  # noqa: E402
from harness import needs  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@needs("root", "pprof")
class Redis(Case):
    def setUp(self):
        super().setUp()
        for tool in ("redis-server", "redis-benchmark"):
            if not shutil.which(tool):
                self.fail(tool + " is not installed (scripts/install-deps.sh --test does)")
        self.port = free_port()
        self.server = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.tmp], stdout=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        self.fail("redis-server did not start")

    def tearDown(self):
        self.server.kill()
        self.server.wait()
        super().tearDown()

    def capture_under_load(self, record_args, requests, commands):
        """Records the server with `record_args` while redis-benchmark sends `requests` of
        `commands` (its -t); the load runs once the probes are in, and the capture ends once
        it is done. The profile, read by pprof."""
        out, log = self.path("redis.pb.gz"), self.path("log")
        with open(log, "w") as errf:
            ap = subprocess.Popen([ALLOCPROF, "record", "-v", *record_args, "-p",
                                   str(self.server.pid), "-o", out],
                                  stdout=subprocess.DEVNULL, stderr=errf)
            try:
                wait_for_log(log, "probes attached", proc=ap)
                subprocess.run(["redis-benchmark", "-p", str(self.port), "-q", "-n",
                                str(requests), "-t", commands, "-d", "300"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               timeout=300, check=True)
                ap.send_signal(signal.SIGINT)
                self.assertEqual(ap.wait(timeout=120), 0, open(log).read())
            finally:
                ap.kill()
                ap.wait()
        self.assertIsNone(self.server.poll(), "redis-server must survive the capture")
        self.profile_path = out
        return pprofraw.read(out)

    def test_live_redis_through_jemalloc(self):
        prof = self.capture_under_load([], 20000, "set,lpush")
        self.assertIn("allocator: /usr/lib/x86_64-linux-gnu/libjemalloc.so.2", prof.comments)
        self.assertIn("lost allocations: 0", prof.comments)
        # 20000 SETs of 300-byte values and as many LPUSHes: far more than 512 KiB
        # allocated, so sampled sites are there, and they are redis's allocation wrappers.
        leaves = prof.flat("alloc_space")
        self.assertTrue(any(f.startswith("z") and "alloc" in f for f in leaves), leaves)
        self.assertGreater(prof.total("alloc_space"), 6_000_000)
        for s in prof.samples:
            self.assertEqual(s.labels["comm"], ["redis-server"])

    def test_redis_commands_as_operations(self):
        # Redis's command dispatcher, exported by Debian's stripped binary, as the operation:
        # each SET redis-benchmark sends is one call (and a CONFIG GET or two at its start).
        prof = self.capture_under_load(["--exact", "--ops", "processCommand"], 5000, "set")
        out = self.profile_path
        ops = [c for c in prof.comments if c.startswith("ops: processCommand ")]
        self.assertEqual(len(ops), 1, prof.comments)
        calls = int(ops[0].split()[2])
        self.assertGreaterEqual(calls, 5000)
        self.assertLess(calls, 5100)
        top = subprocess.run([ALLOCPROF, "top", "--per-op", out], capture_output=True,
                             text=True)
        self.assertEqual(top.returncode, 0, top.stderr)
        self.assertIn("per operation: %d calls of processCommand" % calls, top.stdout)
        # A SET of a 300-byte value takes a few allocations (jemalloc's zmalloc wrappers).
        m = re.search(r"total ([\d.]+) allocs/op", top.stdout)
        self.assertTrue(m, top.stdout)
        self.assertGreater(float(m.group(1)), 1)
        self.assertLess(float(m.group(1)), 50)

