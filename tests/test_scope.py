"""Which processes a capture traces: a command's children (followed, or not), many -p
targets sharing probes, the filters, and -a over processes that start after it, with
allocators at paths and in mount namespaces nobody had at the start. Every count is checked
against a target that counts its own allocations, under its own pid label."""

import os
import re
import shutil
import signal
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import pprofraw  # noqa: E402
from harness import (ALLOCPROF, Case, needs, read_expect, record, target,  # noqa: E402
                     wait_for_log)

SITES = target("sites")
SITES_STATIC = target("sites-static")


# A name no other process on the host has, for the -a tests' copies of the counting program.
UNIQUE = "st%d" % os.getpid()


def flat_of_pid(prof, pid, type_name="alloc_objects"):
    """Per leaf function, the values of one process (its pid label)."""
    i = prof.type_index(type_name)
    sums = {}
    for s in prof.samples:
        if s.labels.get("pid") != [str(pid)]:
            continue
        leaf = prof.stack(s)[0] if s.locations else "<no stack>"
        sums[leaf] = sums.get(leaf, 0) + s.values[i]
    return sums


def pids_of(prof):
    return {s.labels["pid"][0] for s in prof.samples if "pid" in s.labels}


class Exact:
    def assertExactFor(self, prof, pid, expect_path):
        expect = read_expect(expect_path)
        objects = flat_of_pid(prof, pid)
        space = flat_of_pid(prof, pid, "alloc_space")
        for site, (n, nbytes) in expect.items():
            self.assertEqual(objects.get(site, 0), n, "pid %s: alloc_objects of %s" % (pid, site))
            self.assertEqual(space.get(site, 0), nbytes, "pid %s: alloc_space of %s" % (pid, site))
        self.assertIn("lost allocations: 0", prof.comments)


def read_pid(path):
    with open(path) as f:
        return int(f.read().split()[0])


@needs("root", "pprof")
class Follow(Case, Exact):
    def spawn_two(self):
        """A shell that starts two counting programs (fork, then exec) and waits for both."""
        e1, e2, p1, p2 = (self.path(n) for n in ("e1", "e2", "p1", "p2"))
        # The second one a grandchild: a shell of its own that execs it.
        script = ("{s} --threads 2 --expect {e1} & echo $! > {p1}; "
                  "sh -c 'echo $$ > {p2}; exec {s} --threads 3 --rounds 50 --expect {e2}'; "
                  "wait").format(s=SITES, e1=e1, e2=e2, p1=p1, p2=p2)
        return ["sh", "-c", script], (e1, p1), (e2, p2)

    def test_children_are_followed_through_fork_and_exec(self):
        out = self.path("p.pb.gz")
        cmd, (e1, p1), (e2, p2) = self.spawn_two()
        proc = record(["--exact", "-o", out, "--", *cmd])
        self.assertRecorded(proc)
        prof = pprofraw.read(out)
        self.assertExactFor(prof, read_pid(p1), e1)
        self.assertExactFor(prof, read_pid(p2), e2)
        self.assertTrue(any(c.startswith("processes followed: ") for c in prof.comments),
                        prof.comments)

    def test_no_follow_says_what_it_left_out(self):
        out = self.path("p.pb.gz")
        cmd, (e1, p1), _ = self.spawn_two()
        proc = record(["--exact", "--no-follow", "-o", out, "--", *cmd])
        self.assertRecorded(proc)
        prof = pprofraw.read(out)
        self.assertNotIn(str(read_pid(p1)), pids_of(prof))
        self.assertIn("child processes of the targets not followed: 2", prof.comments)
        self.assertIn("child processes of the targets not followed: 2", proc.stderr)

    def test_compiler_driver_records_its_compiler(self):
        if not shutil.which("g++"):
            self.skipTest("needs g++")
        src = self.path("t.cpp")
        with open(src, "w") as f:
            f.write("#include <map>\n#include <string>\n"
                    "std::map<std::string, int> m;\nint f() { return m.size(); }\n")
        out = self.path("g.pb.gz")
        proc = record(["-o", out, "--", "g++", "-O0", "-c", src, "-o", self.path("t.o")])
        self.assertRecorded(proc)
        prof = pprofraw.read(out)
        comms = {s.labels["comm"][0] for s in prof.samples if "comm" in s.labels}
        self.assertIn("cc1plus", comms, proc.stderr)

    def test_no_follow_only_with_a_command(self):
        proc = record(["--no-follow", "-p", "1", "-o", self.path("x.pb.gz")])
        self.assertEqual(proc.returncode, 2)
        self.assertIn("--no-follow", proc.stderr)


def start_waiting(case, n, extra=()):
    """n counting programs waiting for SIGUSR1: [(Popen, expect path)]."""
    out = []
    for i in range(n):
        exp = case.path("e%d" % i)
        p = subprocess.Popen([SITES, "--wait", "--threads", "1", "--rounds", "20",
                              "--expect", exp, *extra],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        case.addCleanup(lambda p=p: (p.poll() is None and p.kill(), p.wait()))
        out.append((p, exp))
    for p, _ in out:
        case.assertIn("waiting", p.stderr.readline().decode())
    return out


def capture_running(case, args, log):
    """allocprof record ARGS, -v, once its probes are live (its Popen)."""
    errf = open(log, "w")
    case.addCleanup(errf.close)
    ap = subprocess.Popen([ALLOCPROF, "record", "-v", *args], stdout=subprocess.DEVNULL,
                          stderr=errf)
    case.addCleanup(lambda: ap.poll() is None and ap.kill())
    wait_for_log(log, "recording: probes live", proc=ap)
    return ap


@needs("root", "pprof")
class ManyTargets(Case, Exact):
    def test_twelve_pids_share_one_link_per_file_and_stay_exact(self):
        *targets, (other, _) = start_waiting(self, 13)
        out, log = self.path("p.pb.gz"), self.path("log")
        pids = ",".join(str(p.pid) for p, _ in targets)
        ap = capture_running(self, ["--exact", "-p", pids, "-o", out], log)
        # The same program, not a target: its calls trap into the shared probes, and are not
        # counted.
        for p in [p for p, _ in targets] + [other]:
            p.send_signal(signal.SIGUSR1)
        for p in [p for p, _ in targets] + [other]:
            self.assertEqual(p.wait(timeout=120), 0)
        self.assertEqual(ap.wait(timeout=120), 0)
        with open(log) as f:
            text = f.read()
        self.assertIn("probes shared by every process that maps their file", text)
        prof = pprofraw.read(out)
        for p, exp in targets:
            self.assertExactFor(prof, p.pid, exp)
        self.assertNotIn(str(other.pid), pids_of(prof))
        self.assertTrue(any(c.startswith("allocator calls of processes not traced")
                            for c in prof.comments), prof.comments)


@needs("root", "pprof")
class Filters(Case, Exact):
    def run_all(self, extra, n=3, before_end=None):
        """-a with filters over n counting programs started after it (the i-th named
        UNIQUE-<i> by a copy of the program); before_end() runs before it is stopped."""
        out, log = self.path("p.pb.gz"), self.path("log")
        ap = capture_running(self, ["-a", "--exact", "-o", out, *extra], log)
        if before_end:
            before_end()
        procs = []
        for i in range(n):
            exe = self.path("%s-%d" % (UNIQUE, i))
            shutil.copy(SITES, exe)
            exp = self.path("e%d" % i)
            p = subprocess.run([exe, "--threads", "1", "--rounds", "20", "--expect", exp])
            self.assertEqual(p.returncode, 0)
            procs.append(exp)
        ap.send_signal(signal.SIGINT)
        self.assertEqual(ap.wait(timeout=120), 0)
        return pprofraw.read(out), procs

    def test_comm(self):
        prof, _ = self.run_all(["--comm", UNIQUE + "-1"])
        comms = {s.labels["comm"][0] for s in prof.samples if "comm" in s.labels}
        self.assertEqual(comms, {UNIQUE + "-1"})

    def test_exclude_pid(self):
        (victim, _), = start_waiting(self, 1)
        prof, _ = self.run_all(["--exclude-pid", str(victim.pid), "--comm", "sites",
                                "--comm", UNIQUE + "-0"], n=1, before_end=lambda: (
                                    victim.send_signal(signal.SIGUSR1), victim.wait()))
        self.assertNotIn(str(victim.pid), pids_of(prof))
        comms = {s.labels["comm"][0] for s in prof.samples if "comm" in s.labels}
        self.assertIn(UNIQUE + "-0", comms)

    def test_cgroup(self):
        mnt = self.cgroup2_mount()
        group = os.path.join(mnt, "allocprof-test-%d" % os.getpid())
        os.mkdir(group)
        self.addCleanup(os.rmdir, group)
        (inside, exp_in), (outside, _) = start_waiting(self, 2)
        with open(os.path.join(group, "cgroup.procs"), "w") as f:
            f.write(str(inside.pid))
        # Back to the root before the group is removed.
        self.addCleanup(lambda: inside.poll() is None and open(
            os.path.join(mnt, "cgroup.procs"), "w").write(str(inside.pid)))

        def run_both():
            for p in (inside, outside):
                p.send_signal(signal.SIGUSR1)
                self.assertEqual(p.wait(timeout=120), 0)
        prof, _ = self.run_all(["--cgroup", group], n=0, before_end=run_both)
        self.assertEqual(pids_of(prof), {str(inside.pid)})
        self.assertExactFor(prof, inside.pid, exp_in)

    def cgroup2_mount(self):
        with open("/proc/self/mounts") as f:
            for line in f:
                _, d, t, *_ = line.split()
                if t == "cgroup2":
                    return d
        mnt = self.path("cg2")
        os.mkdir(mnt)
        if subprocess.run(["mount", "-t", "cgroup2", "none", mnt]).returncode != 0:
            self.skipTest("cannot mount a cgroup2 hierarchy")
        self.addCleanup(subprocess.run, ["umount", mnt])
        return mnt

    def test_bad_cgroup(self):
        proc = record(["-a", "--cgroup", "/no/such/group", "-o", self.path("x.pb.gz")])
        self.assertEqual(proc.returncode, 2)
        self.assertIn("--cgroup", proc.stderr.splitlines()[0])


@needs("root", "pprof")
class SystemWide(Case, Exact):
    """-a, and processes that start after it, with allocators nobody had at the start."""

    def libc_copy(self, name):
        """A directory with a copy of libc: another inode, so a file no process maps."""
        libdir = self.path(name)
        os.mkdir(libdir)
        shutil.copy("/lib/x86_64-linux-gnu/libc.so.6", os.path.join(libdir, "libc.so.6"))
        return libdir

    def test_late_processes_with_new_allocator_files(self):
        out, log = self.path("p.pb.gz"), self.path("log")
        libdir, bound = self.libc_copy("lib"), self.libc_copy("bound")
        ap = capture_running(self, ["-a", "--exact", "-o", out], log)
        runs = []
        # The host's libc, a copy through LD_LIBRARY_PATH, a static malloc, and a libc
        # bind-mounted in a mount namespace of its own (another path's inode at the
        # usual path).
        env = dict(os.environ, LD_LIBRARY_PATH=libdir)
        variants = [
            ([SITES], None),
            ([SITES], env),
            ([SITES_STATIC], None),
            (["unshare", "-m", "sh", "-c",
              "mount --bind {l}/libc.so.6 /lib/x86_64-linux-gnu/libc.so.6 && exec {s} \"$@\""
              .format(l=bound, s=SITES), "sh"], None),
        ]
        for i, (argv, e) in enumerate(variants):
            exp = self.path("e%d" % i)
            p = subprocess.Popen([*argv, "--wait", "--threads", "2", "--rounds", "30",
                                  "--expect", exp], env=e, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE)
            self.assertIn("waiting", p.stderr.readline().decode())
            runs.append((p, exp))
        # A new file is probed when its process's dynamic linker is done (or, static, at
        # its exec), while --wait holds the program; the log says when.
        for p, _ in runs[1:]:
            wait_for_log(log, re.compile(r"pid %d \(sites[-a-z]*\): \d+ probes attached"
                                         % p.pid), proc=ap)
        for p, _ in runs:
            p.send_signal(signal.SIGUSR1)
            self.assertEqual(p.wait(timeout=120), 0)
        ap.send_signal(signal.SIGINT)
        self.assertEqual(ap.wait(timeout=120), 0)
        prof = pprofraw.read(out)
        for p, exp in runs:
            self.assertExactFor(prof, p.pid, exp)
        # Labels: the executable of each, and a container only for the one in a mount
        # namespace of its own (pprof -tagfocus=container=... finds it).
        for (p, _), exe in zip(runs, [SITES, SITES, SITES_STATIC, SITES]):
            # (The unshare variant's pid ran unshare and sh first: their samples are theirs.)
            mine = [s for s in prof.samples if s.labels.get("pid") == [str(p.pid)]
                    and s.labels.get("comm", [""])[0].startswith("sites")]
            self.assertTrue(mine)
            self.assertEqual({tuple(s.labels.get("exe", [])) for s in mine},
                             {(os.path.realpath(exe),)})
            self.assertEqual(any("container" in s.labels for s in mine), p is runs[3][0])

    def test_short_lived_processes_are_exact_and_named(self):
        out, log = self.path("p.pb.gz"), self.path("log")
        ap = capture_running(self, ["-a", "--exact", "-o", out], log)
        runs = []
        exe = self.path(UNIQUE)
        shutil.copy(SITES, exe)
        for i in range(3):
            # ~100 ms each, as the short-lived processes of a build or a cron job.
            exp = self.path("e%d" % i)
            p = subprocess.Popen([exe, "--threads", "1", "--rounds", "10", "--expect", exp,
                                  "--linger", "100"])
            self.assertEqual(p.wait(), 0)
            runs.append((p.pid, exp))
        ap.send_signal(signal.SIGINT)
        self.assertEqual(ap.wait(timeout=120), 0)
        prof = pprofraw.read(out)
        for pid, exp in runs:
            self.assertExactFor(prof, pid, exp)
            names = {s.labels["comm"][0] for s in prof.samples
                     if s.labels.get("pid") == [str(pid)]}
            self.assertEqual(names, {UNIQUE})
