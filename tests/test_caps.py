"""The capabilities the README documents: they work, and one missing is named in one line."""

import os
import shutil
import subprocess
import sys
import time
import signal

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import test_counts  # noqa: E402
from harness import ALLOCPROF, Case, target  # noqa: E402

SITES = target("sites")
NOBODY = 65534


def with_caps(caps, argv, uid=None):
    """argv run with exactly `caps` (names without CAP_, e.g. "sys_admin"): effective,
    permitted, inheritable, ambient and bounding sets all cut to them, so they survive the
    exec of allocprof whether the uid is root's or, with `uid`, another one."""
    spec = ",".join(["-all"] + ["+" + c for c in caps])
    cmd = ["setpriv", "--inh-caps=" + spec, "--ambient-caps=" + spec, "--bounding-set=" + spec]
    if uid is not None:
        cmd += ["--reuid=%d" % uid, "--regid=%d" % uid, "--clear-groups"]
    return cmd + list(argv)


def effective_caps(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    return None


class Capabilities(Case):
    check_exact = test_counts.ExactCounts.check_exact

    def setUp(self):
        super().setUp()
        if not shutil.which("setpriv"):
            self.skipTest("setpriv (util-linux) is not installed")
        if os.geteuid() != 0:
            self.skipTest("needs root, to hand out a reduced capability set")
        # Can this machine drop capabilities and keep some across exec (ambient ones)?
        probe = subprocess.run(with_caps(["sys_admin"], ["cat", "/proc/self/status"], NOBODY),
                               capture_output=True, text=True)
        if probe.returncode or "CapEff:\t0000000000200000" not in probe.stdout:
            self.skipTest("cannot run a process with exactly CAP_SYS_ADMIN here: %s"
                          % (probe.stderr.strip() or "ambient capabilities not kept"))
        os.chmod(self.tmp, 0o777)  # written by a non-root allocprof and target

    def record_cmd(self, caps, uid=None):
        out, exp = self.path("p.pb.gz"), self.path("expect")
        # Another uid runs the command: from the scratch directory, which it can reach
        # whatever the checkout's directories allow (a clone under `mktemp -d` is 0700).
        sites = SITES
        if uid is not None:
            sites = self.path("sites")
            if not os.path.exists(sites):
                shutil.copy(SITES, sites)
        proc = subprocess.run(with_caps(caps, [ALLOCPROF, "record", "--exact", "-q", "-o", out,
                                               "--", sites, "--rounds", "5", "--expect", exp],
                                        uid), capture_output=True, text=True, timeout=120)
        return proc, out, exp

    def record_pid(self, caps, uid=None, target_uid=None):
        """Attaches with -p to a waiting sites run by root (or `target_uid`), then lets it
        allocate. Returns (returncode, stderr, profile, expect)."""
        out, exp = self.path("p.pb.gz"), self.path("expect")
        argv = [SITES, "--wait", "--rounds", "5", "--expect", exp]
        if target_uid is not None:
            argv = with_caps([], argv, target_uid)
        tgt = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            self.assertIn("waiting", tgt.stderr.readline().decode())
            log = self.path("record.log")
            with open(log, "w") as errf:
                ap = subprocess.Popen(with_caps(caps, [ALLOCPROF, "record", "-v", "--exact",
                                                       "-p", str(tgt.pid), "-o", out], uid),
                                      stdout=subprocess.DEVNULL, stderr=errf)
                deadline = time.time() + 30
                while time.time() < deadline and ap.poll() is None:
                    with open(log) as f:
                        if "probes attached" in f.read():
                            break
                    time.sleep(0.05)
                tgt.send_signal(signal.SIGUSR1)
                self.assertEqual(tgt.wait(timeout=60), 0, "target failed")
                rc = ap.wait(timeout=60)
            with open(log) as f:
                return rc, f.read(), out, exp
        finally:
            if tgt.poll() is None:
                tgt.kill()
                tgt.wait()

    def assertRefused(self, rc, stderr, out, missing):
        self.assertEqual(rc, 3, stderr)  # not permitted
        lines = [ln for ln in stderr.splitlines() if ln.startswith("allocprof:")]
        self.assertEqual(len(lines), 1, stderr)
        self.assertIn(missing, lines[0])
        self.assertIn("not permitted", lines[0])
        self.assertFalse(os.path.exists(out), "no profile when refused")

    def test_command_with_cap_sys_admin_only(self):
        """`-- CMD` with CAP_SYS_ADMIN alone, as root's uid and as another user's."""
        for uid in (None, NOBODY):
            with self.subTest(uid=uid):
                proc, out, exp = self.record_cmd(["sys_admin"], uid)
                self.assertRecorded(proc)
                self.check_exact(out, exp)
                os.remove(out)
                os.remove(exp)  # root's, in the first run

    def test_pid_of_another_user_with_the_documented_set(self):
        """-p of root's process from uid nobody: CAP_SYS_ADMIN, CAP_SYS_PTRACE and
        CAP_DAC_READ_SEARCH."""
        rc, err, out, exp = self.record_pid(["sys_admin", "sys_ptrace", "dac_read_search"],
                                            uid=NOBODY)
        self.assertEqual(rc, 0, err)
        self.check_exact(out, exp)

    def test_pid_without_cap_sys_ptrace(self):
        """Root's uid without CAP_SYS_PTRACE cannot read a process with more capabilities."""
        self.assertRefused(*self.record_pid(["sys_admin"])[:3], "CAP_SYS_PTRACE")

    def test_pid_of_another_user_without_cap_dac_read_search(self):
        rc, err, out, _ = self.record_pid(["sys_admin", "sys_ptrace"], uid=NOBODY)
        self.assertRefused(rc, err, out, "CAP_DAC_READ_SEARCH")

    def test_bpf_perfmon_ptrace_without_sys_admin(self):
        """The set documented before Linux 6.16: there it records; since (and in the stable
        kernels of July 2025) uprobes take CAP_SYS_ADMIN, and that is the line."""
        proc, out, exp = self.record_cmd(["bpf", "perfmon", "sys_ptrace"], NOBODY)
        if proc.returncode == 0:
            self.check_exact(out, exp)
        else:
            self.assertRefused(proc.returncode, proc.stderr, out, "CAP_SYS_ADMIN")
