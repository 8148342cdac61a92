"""What the integration tests share: where things are, running allocprof and the targets,
and reading a target's own account of what it allocated."""

import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

import pprofraw

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ALLOCPROF = os.path.join(ROOT, "allocprof")
TARGETS = os.path.join(ROOT, "build", "tests")
LIBDIR = "/usr/lib/x86_64-linux-gnu"


def target(name):
    return os.path.join(TARGETS, name)


def read_expect(path):
    """A target's "site objects bytes [inuse_objects inuse_bytes]" lines as
    {site: (objects, bytes)}."""
    return {site: v[:2] for site, v in read_expect_all(path).items()}


def read_expect_all(path):
    """Every number of a target's "site N N ..." lines: {site: (N, N, ...)}."""
    out = {}
    with open(path) as f:
        for line in f:
            name, *values = line.split()
            out[name] = tuple(int(v) for v in values)
    return out


def record(args, timeout=120, env=None, **kw):
    """Runs `allocprof record ARGS`; returns the CompletedProcess (text, both streams)."""
    return subprocess.run([ALLOCPROF, "record", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, **kw)


def wait_for_log(path, *texts, proc=None, timeout=60):
    """Waits until the file at `path` contains every one of `texts` (strings, or compiled
    regular expressions that must match); returns its contents.
    Raises AssertionError with what it holds if `proc` (a Popen) exits first or `timeout`
    seconds pass: a bound for a broken run, not a guess of how long anything takes."""
    deadline = time.time() + timeout
    while True:
        with open(path, errors="replace") as f:
            text = f.read()
        if all(t.search(text) if hasattr(t, "search") else t in text for t in texts):
            return text
        if proc is not None and proc.poll() is not None:
            raise AssertionError("exited %s before logging %r:\n%s" % (proc.returncode, texts,
                                                                        text))
        if time.time() > deadline:
            raise AssertionError("no %r after %ds:\n%s" % (texts, timeout, text))
        time.sleep(0.05)


# What a test may need that not every machine running the tests has, and the reason shown when
# it is missing. The C unit tests need neither.
_NEEDS = {
    # allocprof record loads BPF programs and places uprobes.
    "root": (lambda: os.geteuid() == 0, "needs root"),
    # pprofraw reads profiles through the standalone pprof.
    "pprof": (lambda: shutil.which(pprofraw.PPROF) is not None,
              "needs pprof: run scripts/install-pprof.sh"),
    # tests/test_flame_browser.py runs the flame graphs' script in Debian's headless chromium.
    "chromium": (lambda: shutil.which("chromium") is not None,
                 "needs chromium: run scripts/install-deps.sh --test"),
}


def needs(*what):
    """A decorator for a test class or method: skipped with the reason unless this machine has
    everything in `what` ("root", "pprof"); the first missing one is the reason. On a class it
    skips its setUpClass too."""
    for w in what:
        have, reason = _NEEDS[w]
        if not have():
            return unittest.skip(reason)
    return lambda obj: obj


class Case(unittest.TestCase):
    """A test with a scratch directory of its own."""

    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="allocprof-test-")
        self.tmp = self._tmp.name

    def tearDown(self):
        self._tmp.cleanup()

    def path(self, name):
        return os.path.join(self.tmp, name)

    def assertRecorded(self, proc, msg=""):
        self.assertEqual(proc.returncode, 0,
                         "%s\nexit %d\nstderr:\n%s" % (msg, proc.returncode, proc.stderr))

    def attach_then_run(self, argv, record_args, profile, timeout=120, env=None,
                        before_attach=None, pids="{pid}"):
        """Starts argv (a target taking --wait), attaches with -p, then lets it allocate.
        before_attach() runs once the target waits; `pids` is the -p value, {pid} the
        target's. Returns allocprof's CompletedProcess-like (returncode, stderr)."""
        tgt = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        self.assertIn("waiting", tgt.stderr.readline().decode())
        if before_attach:
            before_attach()
        log = self.path("record.log")
        with open(log, "w") as errf:
            ap = subprocess.Popen([ALLOCPROF, "record", "-v", "-p", pids.format(pid=tgt.pid),
                                   "-o", profile, *record_args],
                                  stdout=subprocess.DEVNULL, stderr=errf)
            try:
                wait_for_log(log, "probes attached", proc=ap)
            except AssertionError as e:
                tgt.kill()
                ap.kill()
                tgt.wait()
                ap.wait()
                self.fail("allocprof did not attach: %s" % e)
            tgt.send_signal(signal.SIGUSR1)
            self.assertEqual(tgt.wait(timeout=timeout), 0, "target failed")
            rc = ap.wait(timeout=timeout)
        with open(log) as f:
            return subprocess.CompletedProcess(ap.args, rc, "", f.read())


def throwaway_user(case):
    """A user of the test's own, to play another user of the machine (useradd -M), removed
    when the test ends. Skips the test, saying why, when none can be made. (name, uid, gid)."""
    import pwd
    import secrets

    name = "aptest" + secrets.token_hex(3)
    try:
        proc = subprocess.run(["useradd", "-M", "-N", "-s", "/usr/sbin/nologin", name],
                              capture_output=True, text=True)
    except OSError as e:
        case.skipTest("cannot create a second user: %s" % e)
    if proc.returncode != 0:
        case.skipTest("cannot create a second user: useradd: %s" % proc.stderr.strip())
    case.addCleanup(subprocess.run, ["userdel", name], capture_output=True)
    pw = pwd.getpwnam(name)
    return name, pw.pw_uid, pw.pw_gid


def as_user(user, argv, check=True):
    """Runs argv as a throwaway_user() (no supplementary groups); its CompletedProcess."""
    _, uid, gid = user
    return subprocess.run(["setpriv", "--reuid=%d" % uid, "--regid=%d" % gid, "--clear-groups",
                           *argv], capture_output=True, text=True, check=check)


def go_heap_profile(case):
    """Builds tests/targets/go/goheap.go in the case's scratch directory and runs it: the path
    of the heap profile Go's runtime/pprof wrote. Fails the test when go is missing
    (scripts/install-deps.sh --test installs it)."""
    if not shutil.which("go"):
        case.fail("go is not installed (scripts/install-deps.sh --test installs it)")
    exe, prof = case.path("goheap"), case.path("heap.pb.gz")
    env = dict(os.environ, GO111MODULE="off", GOCACHE=case.path("cache"), GOFLAGS="")
    subprocess.run(["go", "build", "-o", exe, os.path.join(ROOT, "tests", "targets", "go",
                                                          "goheap.go")],
                   check=True, env=env, capture_output=True)
    subprocess.run([exe, prof], check=True)
    return prof
