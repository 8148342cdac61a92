"""-a: every process on the host, including ones started after the capture began."""

import os
import shutil
import signal
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import pprofraw  # noqa: E402
from harness import (ALLOCPROF, Case, read_expect, read_expect_all, target,  # noqa: E402
                     wait_for_log)
from harness import needs  # noqa: E402


@needs("root", "pprof")
class AllProcesses(Case):
    def run_later(self, argv):
        """Starts `argv` (which takes --expect FILE) once -a --exact is attached; returns
        the profile of its process only and its own account."""
        out, exp, log = self.path("p.pb.gz"), self.path("expect"), self.path("log")
        with open(log, "w") as errf:
            ap = subprocess.Popen([ALLOCPROF, "record", "-a", "--exact", "-v", "-d", "30s",
                                   "-o", out], stdout=subprocess.DEVNULL, stderr=errf)
            # Every running process's allocator is probed only once it says so: the first
            # "probes attached" may be for another allocator than the target's.
            wait_for_log(log, "running processes probed", proc=ap)
            self.ap_pid = ap.pid
            # Started after the probes are in: traced because it uses a probed libc. It
            # stays alive a moment after its allocations, like most processes.
            tgt = subprocess.run(["sh", "-c", '"$0" --expect "$1"', argv[0], exp],
                                 timeout=60)
            self.assertEqual(tgt.returncode, 0)
            ap.send_signal(2)
            self.assertEqual(ap.wait(timeout=60), 0)
        with open(log) as f:
            text = f.read()
        prof = pprofraw.read(out, "-tagfocus=comm=" + os.path.basename(argv[0]))
        pids = {s.labels["pid"][0] for s in prof.samples}
        self.assertEqual(len(pids), 1, text)
        return prof, exp

    def test_process_started_later_is_counted_exactly(self):
        prof, exp = self.run_later([target("sites")])
        expect = read_expect(exp)
        objects, space = prof.flat("alloc_objects"), prof.flat("alloc_space")
        for site, (n, nbytes) in expect.items():
            self.assertEqual((objects.get(site, 0), space.get(site, 0)), (n, nbytes), site)
        # allocprof does not profile itself (other captures on the host are profiled).
        me = [s for s in pprofraw.read(self.path("p.pb.gz")).samples
              if s.labels.get("pid") == [str(self.ap_pid)]]
        self.assertEqual(me, [])

    def test_leaks_of_a_process_started_later(self):
        """Frees are probed host-wide too: what the process never freed, exactly."""
        prof, exp = self.run_later([target("leaks")])
        expect = read_expect_all(exp)
        flats = [prof.flat(t) for t in ("alloc_objects", "alloc_space", "inuse_objects",
                                        "inuse_space")]
        for site, values in expect.items():
            self.assertEqual(tuple(f.get(site, 0) for f in flats), values, site)

    def test_overlay_containers_sharing_a_layer(self):
        """Two overlay mounts over one lower directory, like two containers of one image:
        /proc shows two files, the kernel has one. Each process's counts stay exact."""
        lower = self.path("lower")
        os.mkdir(lower)
        shutil.copy(target("sites-static"), lower)
        mounts = []
        try:
            for name in ("m1", "m2"):
                for d in ("upper-" + name, "work-" + name, name):
                    os.mkdir(self.path(d))
                subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                                "lowerdir=%s,upperdir=%s,workdir=%s" % (
                                    lower, self.path("upper-" + name), self.path("work-" + name)),
                                self.path(name)], check=True)
                mounts.append(self.path(name))
            tgts = [subprocess.Popen([os.path.join(m, "sites-static"), "--wait", "--rounds",
                                      "20", "--expect", m + ".exp"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                    for m in mounts]
            for t in tgts:
                self.assertIn("waiting", t.stderr.readline().decode())
            out, log = self.path("p.pb.gz"), self.path("log")
            with open(log, "w") as errf:
                ap = subprocess.Popen([ALLOCPROF, "record", "-a", "--exact", "-v", "-d", "60s",
                                       "-o", out], stdout=subprocess.DEVNULL, stderr=errf)
                wait_for_log(log, "running processes probed", proc=ap)
                for t in tgts:
                    t.send_signal(signal.SIGUSR1)
                for t in tgts:
                    self.assertEqual(t.wait(timeout=60), 0)
                ap.send_signal(signal.SIGINT)
                self.assertEqual(ap.wait(timeout=60), 0)
            for m, t in zip(mounts, tgts):
                expect = read_expect(m + ".exp")
                prof = pprofraw.read(out, "-tagfocus=pid=%d" % t.pid)
                objects = prof.flat("alloc_objects")
                for site, (n, _) in expect.items():
                    self.assertEqual(objects.get(site, 0), n, "%s in %s" % (site, m))
        finally:
            for m in mounts:
                subprocess.run(["umount", m])
