"""Exit statuses (README "Exit status"): 0 written, 1 failed, 2 bad command line, 3 not
permitted here, 4 nothing to trace; each with its one line on stderr, and the same table in
every --help and the README."""

import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import pprofraw  # noqa: E402
from harness import ALLOCPROF, ROOT, Case, as_user, needs, record, target  # noqa: E402
from harness import throwaway_user  # noqa: E402


def help_statuses(*args):
    """The statuses a --help lists under "Exit status:" as {code: text}."""
    out = subprocess.run([ALLOCPROF, *args, "--help"], capture_output=True, text=True,
                         check=True).stdout
    section = out[out.index("Exit status:"):]
    return {int(m.group(1)): m.group(2)
            for m in re.finditer(r"^  (\d)  (.*)$", section, re.M)}


class Statuses(Case):
    def one_line(self, proc, status, *words):
        self.assertEqual(proc.returncode, status, proc.stderr)
        lines = proc.stderr.splitlines()
        self.assertEqual(len(lines), 1, proc.stderr)
        self.assertTrue(lines[0].startswith("allocprof: "), proc.stderr)
        for w in words:
            self.assertIn(w, lines[0])

    def test_bad_command_line(self):
        self.one_line(record(["--frobnicate", "--", "true"]), 2, "--frobnicate")
        self.one_line(subprocess.run([ALLOCPROF, "frob"], capture_output=True, text=True), 2,
                      "unknown command")
        self.one_line(subprocess.run([ALLOCPROF, "top", "--frob", "x"], capture_output=True,
                                     text=True), 2, "--frob")

    @needs("root")
    def test_not_permitted_as_another_user(self):
        """An unprivileged user: 3, named in one line, nothing written."""
        user = throwaway_user(self)
        os.chmod(self.tmp, 0o777)
        out = self.path("p.pb.gz")
        proc = as_user(user, [ALLOCPROF, "record", "-o", out, "--", "true"], check=False)
        self.one_line(proc, 3, "not permitted")
        self.assertFalse(os.path.exists(out))

    @needs("root")
    def test_kernel_locked_down(self):
        """lockdown=confidentiality withholds the helpers the programs need: 3, said."""
        fake = self.path("sys")
        for d in ("kernel/btf", "kernel/security", "bus/event_source/devices/uprobe"):
            os.makedirs(os.path.join(fake, d))
        open(os.path.join(fake, "kernel/btf/vmlinux"), "w").close()
        with open("/sys/bus/event_source/devices/uprobe/type") as src, \
                open(os.path.join(fake, "bus/event_source/devices/uprobe/type"), "w") as dst:
            dst.write(src.read())
        with open(os.path.join(fake, "kernel/security/lockdown"), "w") as f:
            f.write("none integrity [confidentiality]\n")
        out = self.path("p.pb.gz")
        env = dict(os.environ, ALLOCPROF_SYSFS=fake)
        self.one_line(record(["-o", out, "--", "true"], env=env), 3, "locked down")
        self.assertFalse(os.path.exists(out))
        # Integrity mode leaves what allocprof uses alone.
        with open(os.path.join(fake, "kernel/security/lockdown"), "w") as f:
            f.write("none [integrity] confidentiality\n")
        self.assertRecorded(record(["-q", "-o", out, "--", "true"], env=env))

    @needs("root")
    def test_pid_without_allocator(self):
        """-p of a static program without malloc: 4, and the program is left running."""
        tgt = subprocess.Popen([target("nomalloc"), "30"])
        try:
            self.one_line(record(["-p", str(tgt.pid), "-o", self.path("p.pb.gz")]), 4,
                          "no recognisable allocator")
            self.assertIsNone(tgt.poll())
        finally:
            tgt.kill()
            tgt.wait()

    @needs("root")
    def test_kernel_thread(self):
        self.one_line(record(["-p", "2", "-o", self.path("p.pb.gz")]), 4, "kernel thread")

    @needs("root")
    def test_command_without_allocator(self):
        self.one_line(record(["-o", self.path("p.pb.gz"), "--", target("nomalloc"), "0"]), 4,
                      "no recognisable allocator")

    @needs("root")
    def test_command_not_found_is_a_failure(self):
        """Not "nothing to trace": the command itself is missing."""
        self.one_line(record(["-o", self.path("p.pb.gz"), "--", "no-such-command-here"]), 1,
                      "command not found")

    @needs("root", "pprof")
    def test_lost_allocations_still_exit_0(self):
        """A written profile is 0 even when allocations were lost: stderr and the comments
        say how many."""
        out = self.path("p.pb.gz")
        proc = record(["--exact", "--max-stacks", "16", "-n", "0", "-o", out, "--",
                       sys.executable, "-c", "pass"])
        self.assertRecorded(proc)
        self.assertIn("allocprof: warning: lost: stack map full", proc.stderr)
        self.assertTrue(any(c.startswith("lost: stack map full") for c in
                            pprofraw.read(out).comments), pprofraw.read(out).comments)

    def test_help_and_readme_agree(self):
        """record --help, top --help and the README's table list the same statuses."""
        rec = help_statuses("record")
        self.assertEqual(sorted(rec), [0, 1, 2, 3, 4])
        self.assertEqual(sorted(help_statuses("top")), [0, 1, 2])
        with open(os.path.join(ROOT, "README.md")) as f:
            readme = f.read()
        section = readme[readme.index("## Exit status"):]
        section = section[:section.index("\n## ", 1)]
        rows = {int(m.group(1)) for m in re.finditer(r"^\| `?(\d)`? \|", section, re.M)}
        self.assertEqual(rows, set(rec))


class Log(Case):
    """Without a terminal, stderr is a log: one line per event, each allocprof's; on one, a
    progress line."""

    @needs("root")
    def test_every_line_is_allocprofs(self):
        proc = record(["-v", "-o", self.path("p.pb.gz"), "--", target("sites"), "--rounds",
                       "5"])
        self.assertRecorded(proc)
        lines = proc.stderr.splitlines()
        self.assertGreater(len(lines), 5)
        self.assertEqual([ln for ln in lines if not ln.startswith("allocprof: ")], [])
        self.assertIn("site_large", proc.stderr)  # the summary's table, prefixed too

    @needs("root")
    def test_progress_on_a_terminal(self):
        import pty
        import select
        import signal

        tgt = subprocess.Popen([target("sites"), "--wait"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
        master, slave = pty.openpty()
        ap = None
        try:
            self.assertIn("waiting", tgt.stderr.readline().decode())
            ap = subprocess.Popen([ALLOCPROF, "record", "-p", str(tgt.pid), "-o",
                                   self.path("p.pb.gz")], stdout=subprocess.DEVNULL,
                                  stderr=slave)
            os.close(slave)
            seen, line = b"", None
            # The first tick's line, however long loading takes (bounded for a broken run).
            while line is None:
                r, _, _ = select.select([master], [], [], 60)
                self.assertTrue(r, "no progress line:\n%r" % seen)
                try:
                    seen += os.read(master, 4096)
                except OSError:
                    self.fail("allocprof exited %s:\n%r" % (ap.poll(), seen))
                m = re.search(rb"\r\x1b\[Kallocprof: (\d+s, [^\r\n]*lost)", seen)
                line = m and m.group(1).decode()
            self.assertRegex(line, r"^\d+s, \d+ calls, \d+ sampled, \d+ stacks "
                             r"\(\d+% of --max-stacks\), \d+ lost$")
            ap.send_signal(signal.SIGINT)
            self.assertEqual(ap.wait(timeout=60), 0)
        finally:
            for p in (ap, tgt):
                if p and p.poll() is None:
                    p.kill()
                    p.wait()
            os.close(master)
