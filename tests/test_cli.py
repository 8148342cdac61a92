"""The command line: every bad input gets one clear line and a non-zero exit, loses nothing;
captures end cleanly on signals, durations and target exit, and write their file atomically."""

import glob
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import pprofraw  # noqa: E402
from harness import ALLOCPROF, ROOT, Case, read_expect, record, target, wait_for_log  # noqa: E402
from harness import needs  # noqa: E402

SITES = target("sites")


def free_pid():
    """A pid no process has."""
    with open("/proc/sys/kernel/pid_max") as f:
        pid_max = int(f.read())
    for pid in range(pid_max - 1, 1, -1):
        if not os.path.exists("/proc/%d" % pid):
            return pid
    raise RuntimeError("no free pid")


class BadInput(Case):
    """One line on stderr naming the problem, the right exit status, and no file touched."""

    def setUp(self):
        super().setUp()
        self.out = self.path("out.pb.gz")
        with open(self.out, "w") as f:
            f.write("previous profile")

    def expect_error(self, args, status, words, env=None):
        before = sorted(os.listdir(self.tmp))
        proc = record(list(args) + (["-o", self.out] if "-o" not in args else []), env=env,
                      cwd=self.tmp)
        self.assertEqual(proc.returncode, status, proc.stderr)
        first = proc.stderr.splitlines()[0] if proc.stderr else ""
        self.assertTrue(first.startswith("allocprof: "), proc.stderr)
        for w in words:
            self.assertIn(w, first)
        # Loses nothing: the old file is intact and no temporary file is left behind.
        with open(self.out) as f:
            self.assertEqual(f.read(), "previous profile")
        self.assertEqual(sorted(os.listdir(self.tmp)), before)
        return proc

    @needs("root")
    def test_no_such_pid(self):
        pid = free_pid()
        self.expect_error(["-p", str(pid)], 4, ["pid %d" % pid, "no such process"])

    @needs("root")
    def test_kernel_thread(self):
        # pid 2 is kthreadd on Linux: alive, and nothing in user space to trace.
        with open("/proc/2/comm") as f:
            comm = f.read().strip()
        proc = self.expect_error(["-p", "2", "-d", "1s"], 4,
                                 ["pid 2 (%s) is a kernel thread" % comm])
        self.assertNotIn("exited", proc.stderr)

    def test_pid_not_a_number(self):
        self.expect_error(["-p", "12ab"], 2, ["'12ab'", "not a number"])
        self.expect_error(["-p", "1,,2"], 2, ["pid"])
        self.expect_error(["-p", "0"], 2, ["'0'"])

    @needs("root")
    def test_thread_id(self):
        tgt = subprocess.Popen([sys.executable, "-c", "import threading, time; "
                                "threading.Thread(target=time.sleep, args=(30,)).start()"])
        try:
            deadline = time.time() + 10
            tids = []
            while time.time() < deadline and not tids:
                tids = [int(t) for t in os.listdir("/proc/%d/task" % tgt.pid)
                        if int(t) != tgt.pid]
                time.sleep(0.05)
            self.assertTrue(tids)
            self.expect_error(["-p", str(tids[0])], 4,
                              ["pid %d" % tids[0], "thread of process %d" % tgt.pid])
        finally:
            tgt.kill()
            tgt.wait()

    @needs("root")
    def test_nested_pid_namespace(self):
        proc = subprocess.run(["unshare", "-pf", "--mount-proc", ALLOCPROF, "record", "-o",
                               self.out, "--", "true"], capture_output=True, text=True)
        self.assertEqual(proc.returncode, 3, proc.stderr)
        self.assertIn("nested pid namespace", proc.stderr)
        with open(self.out) as f:
            self.assertEqual(f.read(), "previous profile")

    @needs("root")
    def test_process_without_allocator(self):
        tgt = subprocess.Popen([target("nomalloc"), "5"])
        try:
            self.expect_error(["-p", str(tgt.pid)], 4,
                              ["pid %d" % tgt.pid, "no recognisable allocator"])
            self.assertIsNone(tgt.poll(), "the target must be left running")
        finally:
            tgt.kill()
            tgt.wait()

    @needs("root")
    def test_command_without_allocator(self):
        self.expect_error(["--", target("nomalloc"), "0"], 4, ["no recognisable allocator"])

    @needs("root")
    def test_output_directory_missing(self):
        self.expect_error(["-o", os.path.join(self.tmp, "nodir", "x.pb.gz"), "--", SITES],
                          1, ["nodir", "no such directory"])

    @needs("root")
    def test_output_directory_not_writable(self):
        ro = self.path("ro")
        os.mkdir(ro)
        subprocess.run(["mount", "--bind", "-o", "ro", ro, ro], check=True)
        try:
            self.expect_error(["-o", os.path.join(ro, "x.pb.gz"), "--", SITES], 1,
                              ["x.pb.gz", "Read-only file system"])
        finally:
            subprocess.run(["umount", ro], check=True)
            os.rmdir(ro)

    @needs("root")
    def test_output_is_a_directory(self):
        os.mkdir(self.path("d"))
        try:
            self.expect_error(["-o", self.path("d"), "--", SITES], 1, ["Is a directory"])
        finally:
            os.rmdir(self.path("d"))

    def test_bad_duration(self):
        for bad in ("5x", "-1s", "0", "", "1e30h"):
            self.expect_error(["-d", bad, "--", SITES], 2, ["duration"])

    def test_bad_sample_bytes(self):
        for bad in ("0", "abc", "2G", "1.5"):
            self.expect_error(["--sample-bytes", bad, "--", SITES], 2, ["--sample-bytes"])
        self.expect_error(["--exact", "--sample-bytes", "1k", "--", SITES], 2, ["--exact"])

    def test_bad_max_live(self):
        for bad in ("0", "15", "abc", "100000000"):
            self.expect_error(["--max-live", bad, "--", SITES], 2, ["--max-live"])

    def test_no_target(self):
        self.expect_error([], 2, ["no target"])
        self.expect_error(["-p", "1", "--", SITES], 2, ["one target"])

    def test_unknown_option(self):
        self.expect_error(["--frobnicate", "--", SITES], 2, ["unknown option", "--frobnicate"])
        self.expect_error([SITES], 2, ["unexpected argument", "--"])

    @needs("root")
    def test_command_not_found(self):
        self.expect_error(["--", "no-such-command-here"], 1,
                          ["no-such-command-here", "command not found"])
        self.expect_error(["--", self.out], 1, ["out.pb.gz"])

    @needs("root")
    def test_not_root(self):
        proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                               ALLOCPROF, "record", "-p", "1", "-o", "/tmp/never.pb.gz"],
                              capture_output=True, text=True)
        self.assertEqual(proc.returncode, 3, proc.stderr)
        self.assertEqual(len(proc.stderr.splitlines()), 1, proc.stderr)
        self.assertIn("needs root", proc.stderr)
        self.assertFalse(os.path.exists("/tmp/never.pb.gz"))

    @needs("root")
    def test_kernel_without_btf_or_uprobes(self):
        fake = self.path("sys")
        os.makedirs(os.path.join(fake, "kernel", "btf"))
        env = dict(os.environ, ALLOCPROF_SYSFS=fake)
        os.remove(self.out)
        proc = record(["-o", self.out, "--", SITES], env=env)
        self.assertEqual(proc.returncode, 3)
        self.assertIn("no BTF", proc.stderr)
        open(os.path.join(fake, "kernel", "btf", "vmlinux"), "w").close()
        proc = record(["-o", self.out, "--", SITES], env=env)
        self.assertEqual(proc.returncode, 3)
        self.assertIn("no uprobes", proc.stderr)
        self.assertFalse(os.path.exists(self.out))
        with open(self.out, "w") as f:
            f.write("previous profile")


class Capture(Case):
    """How a capture ends, and what it leaves behind."""

    @needs("root")
    def test_attached_target_without_allocations_is_counted(self):
        # A process that is attached and allocates nothing: "from 0 processes" says so.
        idle = subprocess.Popen(["sleep", "60"])
        self.addCleanup(lambda: (idle.kill(), idle.wait()))
        out = self.path("idle.pb.gz")
        proc = record(["-p", str(idle.pid), "-d", "300ms", "-o", out])
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("from 0 processes (1 attached, 1 with no allocation recorded)",
                      proc.stderr)

    def start_sleeper(self):
        """A long-running process that keeps allocating."""
        return subprocess.Popen([SITES, "--threads", "1", "--rounds", "2000000000"],
                                stdout=subprocess.DEVNULL)

    def running_capture(self, args, out):
        """allocprof record -v ARGS, once its probes are attached: (Popen, its log file)."""
        log = open(self.path("log"), "w")
        ap = subprocess.Popen([ALLOCPROF, "record", "-v", "-o", out, *args],
                              stdout=subprocess.DEVNULL, stderr=log)
        try:
            wait_for_log(self.path("log"), "probes attached", proc=ap)
        except AssertionError:
            ap.kill()
            ap.wait()
            log.close()
            raise
        return ap, log

    def holder_recorded(self, out, args=()):
        """A process that allocated while a capture (-v --exact ARGS) watched it and now holds
        its memory: (the process, allocprof's Popen, its log file)."""
        holder = subprocess.Popen([target("leaks"), "--live-mb", "1", "--churn", "1", "--wait"],
                                  stderr=subprocess.PIPE, text=True)
        self.assertIn("waiting", holder.stderr.readline())
        ap, log = self.running_capture(["--exact", "-p", str(holder.pid), *args], out)
        holder.send_signal(signal.SIGUSR1)
        for line in holder.stderr:
            if line == "leaks: holding\n":
                break
        return holder, ap, log

    @needs("root", "pprof")
    def test_ending_signals_write_the_profile(self):
        # SIGQUIT and SIGPIPE end a capture as SIGTERM does: with its profile.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
                    signal.SIGPIPE):
            out = self.path("p%d.pb.gz" % sig)
            holder, ap, log = self.holder_recorded(out)
            try:
                ap.send_signal(sig)
                self.assertEqual(ap.wait(timeout=60), 0, "after %s" % sig.name)
                log.close()
                self.assertIsNone(holder.poll(), "the target must survive the capture")
                prof = pprofraw.read(out)
                self.assertIn("site_hold", prof.flat("alloc_space"), sig.name)
            finally:
                holder.kill()
                holder.wait()

    @needs("root", "pprof")
    def test_sigusr1_is_ignored(self):
        # Without --interval SIGUSR1 writes nothing: it must not end (or kill) a capture meanwhile.
        out = self.path("p.pb.gz")
        holder, ap, log = self.holder_recorded(out)
        try:
            ap.send_signal(signal.SIGUSR1)
            wait_for_log(self.path("log"), "SIGUSR1 ignored", proc=ap)
            self.assertIsNone(ap.poll())
            ap.send_signal(signal.SIGINT)
            self.assertEqual(ap.wait(timeout=60), 0)
            log.close()
            self.assertIn("site_hold", pprofraw.read(out).flat("alloc_space"))
        finally:
            holder.kill()
            holder.wait()

    @needs("root", "pprof")
    def test_sigusr1_is_not_passed_to_the_command(self):
        out = self.path("p.pb.gz")
        log = open(self.path("log"), "w")
        # The command waits for SIGUSR1 itself: it must not get allocprof's.
        ap = subprocess.Popen([ALLOCPROF, "record", "-v", "-o", out, "--", SITES, "--wait",
                               "--rounds", "2"], stdout=subprocess.DEVNULL, stderr=log)
        try:
            wait_for_log(self.path("log"), "sites: waiting for SIGUSR1", proc=ap)
            ap.send_signal(signal.SIGUSR1)
            wait_for_log(self.path("log"), "SIGUSR1 ignored", proc=ap)
            ap.send_signal(signal.SIGTERM)
            self.assertEqual(ap.wait(timeout=60), 128 + signal.SIGTERM)
            pprofraw.read(out)
        finally:
            ap.kill()
            ap.wait()
            log.close()

    @needs("root", "pprof")
    def test_interrupt_with_a_live_target(self):
        out = self.path("p.pb.gz")
        with open(out, "w") as f:
            f.write("previous profile")
        sleeper = self.start_sleeper()
        try:
            ap, log = self.running_capture(["-p", str(sleeper.pid)], out)
            # Until the capture ends the old file stays whole: the new one is written aside.
            with open(out) as f:
                self.assertEqual(f.read(), "previous profile")
            ap.send_signal(signal.SIGINT)
            self.assertEqual(ap.wait(timeout=30), 0)
            log.close()
            self.assertIsNone(sleeper.poll(), "the target must survive the capture")
            pprofraw.read(out)
            self.assertEqual([n for n in os.listdir(self.tmp) if n.startswith(".")], [])
        finally:
            sleeper.kill()
            sleeper.wait()

    @needs("root", "pprof")
    def test_duration_ends_the_capture(self):
        out = self.path("p.pb.gz")
        sleeper = self.start_sleeper()
        try:
            t0 = time.time()
            proc = record(["-p", str(sleeper.pid), "-d", "1500ms", "-q", "-o", out])
            elapsed = time.time() - t0
            self.assertRecorded(proc)
            self.assertGreaterEqual(elapsed, 1.4)
            self.assertLess(elapsed, 20)
            self.assertIsNone(sleeper.poll())
            prof = pprofraw.read(out)
            self.assertTrue(any(c.startswith("duration: 1.") for c in prof.comments),
                            prof.comments)
        finally:
            sleeper.kill()
            sleeper.wait()

    def waiting_sites(self, n):
        """N `sites --wait` processes, each with its own expect file, once they wait."""
        tgts = []
        for i in range(n):
            exp = self.path("expect%d" % i)
            t = subprocess.Popen([SITES, "--wait", "--threads", "2", "--rounds", "5",
                                  "--expect", exp], stderr=subprocess.PIPE, text=True)
            self.assertIn("waiting", t.stderr.readline())
            tgts.append((t, exp))
        return tgts

    @needs("root", "pprof")
    def test_target_exit_ends_the_capture(self):
        # Ordered by states, not times: A exits (allocprof says so), then B allocates and
        # exits. A capture that ended with A would miss B's allocations and B's exit.
        out, log = self.path("p.pb.gz"), self.path("log")
        (a, _), (b, b_exp) = self.waiting_sites(2)
        with open(log, "w") as errf:
            ap = subprocess.Popen([ALLOCPROF, "record", "-v", "--exact", "-p",
                                   "%d,%d" % (a.pid, b.pid), "-o", out],
                                  stdout=subprocess.DEVNULL, stderr=errf)
            try:
                wait_for_log(log, "pid %d: " % a.pid, "pid %d: " % b.pid, "probes attached",
                             proc=ap)
                a.send_signal(signal.SIGUSR1)
                self.assertEqual(a.wait(timeout=60), 0)
                wait_for_log(log, "pid %d (sites) exited; 1 of 2 targets" % a.pid, proc=ap)
                b.send_signal(signal.SIGUSR1)
                self.assertEqual(b.wait(timeout=60), 0)
                # Nothing else ends it: no duration, no signal.
                self.assertEqual(ap.wait(timeout=60), 0, open(log).read())
            finally:
                for p in (a, b, ap):
                    p.kill()
                    p.wait()
        text = open(log).read()
        self.assertIn("pid %d (sites) exited; 0 of 2 targets" % b.pid, text)
        prof = pprofraw.read(out)
        self.assertEqual(len([c for c in prof.comments if c.startswith("target: pid")]), 2)
        objects = pprofraw.read(out, "-tagfocus=pid=%d" % b.pid).flat("alloc_objects")
        for site, (n, _) in read_expect(b_exp).items():
            self.assertEqual(objects.get(site, 0), n, site)

    @needs("root", "pprof")
    def test_a_listed_pid_already_gone_is_a_warning(self):
        # One exited and reaped, one exited and not reaped (a zombie): both gone before
        # the attach; the capture goes on with the live one.
        out = self.path("p.pb.gz")
        dead = subprocess.Popen(["true"])
        dead.wait()
        zombie = subprocess.Popen(["true"])
        while True:  # exited, not reaped: /proc says Z
            with open("/proc/%d/stat" % zombie.pid) as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    break
            time.sleep(0.01)
        [(live, exp)] = self.waiting_sites(1)
        try:
            ap = subprocess.Popen([ALLOCPROF, "record", "--exact", "-p",
                                   "%d,%d,%d" % (dead.pid, zombie.pid, live.pid), "-o", out],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            # The warnings come once the live one is attached: then it may run.
            lines = []
            for line in ap.stderr:
                lines.append(line)
                if "pid %d is not running" % zombie.pid in line:
                    break
            live.send_signal(signal.SIGUSR1)
            self.assertEqual(live.wait(timeout=60), 0)
            rest = ap.stderr.read()
            self.assertEqual(ap.wait(timeout=60), 0, "".join(lines) + rest)
        finally:
            for p in (live, zombie):
                p.kill()
                p.wait()
        text = "".join(lines) + rest
        for pid in (dead.pid, zombie.pid):
            self.assertIn("allocprof: warning: pid %d is not running (it exited?): recording "
                          "the others\n" % pid, text)
        self.assertNotIn("libbpf", text)
        prof = pprofraw.read(out)
        self.assertIn("target: pid %d exited before it was attached" % zombie.pid,
                      prof.comments)
        objects = prof.flat("alloc_objects")
        for site, (n, _) in read_expect(exp).items():
            self.assertEqual(objects.get(site, 0), n, site)

    @needs("root")
    def test_every_listed_pid_gone_is_an_error(self):
        out = self.path("p.pb.gz")
        dead = [subprocess.Popen(["true"]) for _ in range(2)]
        for d in dead:
            d.wait()
        proc = record(["-p", "%d,%d" % (dead[0].pid, dead[1].pid), "-o", out])
        self.assertEqual(proc.returncode, 4, proc.stderr)
        self.assertEqual(proc.stderr.count("\n"), 1, proc.stderr)
        self.assertIn("none is running", proc.stderr)
        self.assertFalse(os.path.exists(out))

    @needs("root")
    def test_default_output_name(self):
        proc = record(["-q", "--", SITES, "--rounds", "5"], cwd=self.tmp)
        self.assertRecorded(proc)
        names = glob.glob(os.path.join(self.tmp, "allocprof-*-*.pb.gz"))
        self.assertEqual(len(names), 1, os.listdir(self.tmp))
        self.assertRegex(os.path.basename(names[0]), r"^allocprof-.+-\d{8}T\d{6}\.pb\.gz$")

    @needs("root")
    def test_quiet_and_summary(self):
        out = self.path("p.pb.gz")
        proc = record(["-q", "-o", out, "--", SITES, "--rounds", "5"])
        self.assertRecorded(proc)
        self.assertEqual(proc.stderr, "")
        proc = record(["-o", out, "--", SITES, "--rounds", "5"])
        self.assertRecorded(proc)
        self.assertIn("allocprof: wrote " + out, proc.stderr)
        self.assertIn("site_large", proc.stderr)  # the top functions, on stderr

    @needs("root")
    def test_command_output_untouched(self):
        out = self.path("p.pb.gz")
        proc = record(["-o", out, "--", "sh", "-c", "echo to-stdout; echo to-stderr >&2"])
        self.assertRecorded(proc)
        self.assertEqual(proc.stdout, "to-stdout\n")
        self.assertTrue(proc.stderr.startswith("to-stderr\n"), proc.stderr)

    @needs("root")
    def test_command_killed_by_signal(self):
        out = self.path("p.pb.gz")
        proc = record(["-q", "-o", out, "--", "sh", "-c", "kill -SEGV $$"])
        self.assertEqual(proc.returncode, 128 + signal.SIGSEGV)
        self.assertTrue(os.path.exists(out))

    def test_help(self):
        for args in (["record", "--help"], ["--help"], ["top", "--help"]):
            proc = subprocess.run([ALLOCPROF, *args], capture_output=True, text=True)
            self.assertEqual(proc.returncode, 0)
            self.assertIn("usage: allocprof", proc.stdout)
        with open(os.path.join(ROOT, "README.md")) as f:
            readme = f.read()
        # Every option --help lists is in the README.
        proc = subprocess.run([ALLOCPROF, "record", "--help"], capture_output=True, text=True)
        options = {w.rstrip(",") for w in proc.stdout.split() if w.startswith("--") and len(w) > 2}
        self.assertGreater(len(options), 5)
        self.assertEqual(sorted(o for o in options if o not in readme), [])
