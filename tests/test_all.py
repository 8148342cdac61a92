"""-a: every process on the host, including ones started after the capture began."""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import pprofraw  # noqa: E402
from harness import ALLOCPROF, Case, read_expect, target  # noqa: E402


class AllProcesses(Case):
    def test_process_started_later_is_counted_exactly(self):
        out, exp, log = self.path("p.pb.gz"), self.path("expect"), self.path("log")
        with open(log, "w") as errf:
            ap = subprocess.Popen([ALLOCPROF, "record", "-a", "--exact", "-v", "-d", "30s",
                                   "-o", out], stdout=subprocess.DEVNULL, stderr=errf)
            deadline = time.time() + 30
            while time.time() < deadline:
                with open(log) as f:
                    if "all processes:" in f.read() and "probes attached" in open(log).read():
                        break
                time.sleep(0.1)
            # Started after the probes are in: traced because it uses a probed libc. It
            # stays alive a moment after its allocations, like most processes.
            tgt = subprocess.run(["sh", "-c", '"$0" --expect "$1"',
                                  target("sites"), exp], timeout=60)
            self.assertEqual(tgt.returncode, 0)
            ap.send_signal(2)
            self.assertEqual(ap.wait(timeout=60), 0)
        with open(log) as f:
            text = f.read()
        expect = read_expect(exp)
        prof = pprofraw.read(out, "-tagfocus=comm=sites")
        pids = {s.labels["pid"][0] for s in prof.samples}
        self.assertEqual(len(pids), 1, text)
        objects, space = prof.flat("alloc_objects"), prof.flat("alloc_space")
        for site, (n, nbytes) in expect.items():
            self.assertEqual((objects.get(site, 0), space.get(site, 0)), (n, nbytes), site)
        # allocprof does not profile itself.
        me = [s for s in pprofraw.read(out).samples if s.labels.get("comm") == ["allocprof"]]
        self.assertEqual(me, [])
