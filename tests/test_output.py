"""Where the profile goes (-o, --mode): only a regular file is ever replaced; stdout, FIFOs and
character devices get the stream; other kinds are refused before anything runs; profiles are
private; another user of a shared directory can neither fail nor redirect the write; a failed
final write puts the profile somewhere else and says where."""

import os
import socket
import stat
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import pprofraw  # noqa: E402
from harness import ALLOCPROF, Case, as_user, record, target, throwaway_user  # noqa: E402
from harness import needs  # noqa: E402

SITES = target("sites")


# A /dev of its own in a private mount namespace: tests that name /dev/stdout, /dev/null...
# can never replace the host's, whatever allocprof does (an old one did).
PRIVATE_DEV = ('mount -t tmpfs tmpfs /dev && mknod -m 666 /dev/null c 1 3 && '
               'ln -s /proc/self/fd /dev/fd && ln -s /proc/self/fd/1 /dev/stdout && '
               'ln -s /proc/self/fd/2 /dev/stderr && exec "$@"')


def private_dev(argv):
    """argv, to be run with a private /dev (see PRIVATE_DEV)."""
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", PRIVATE_DEV, "sh", *argv]


def runs_command(case):
    """A command that leaves a mark when it runs: to show a refusal came before it."""
    return ["--", "sh", "-c", 'touch "$1"', "sh", case.path("ran")]


# What a capture says when the name it checked at the start has become something else.
PUT_THERE = "something else was put at that name during the capture, and is kept"


class Base(Case):
    def setUp(self):
        super().setUp()
        self.fb = self.path("fallback")
        os.mkdir(self.fb)
        self.env = dict(os.environ, TMPDIR=self.fb)

    def assertProfile(self, path):
        prof = pprofraw.read(path)
        self.assertIn("alloc_space/bytes", prof.types)
        return prof

    def assertRefused(self, proc, words, status=1):
        """One line, before the command ran."""
        self.assertEqual(proc.returncode, status, proc.stderr)
        lines = proc.stderr.splitlines()
        self.assertEqual(len(lines), 1, proc.stderr)
        self.assertTrue(lines[0].startswith("allocprof: "), proc.stderr)
        for w in words:
            self.assertIn(w, lines[0])
        self.assertFalse(os.path.exists(self.path("ran")), "the command ran before the refusal")

    def assertFellBack(self, proc, dest, reason):
        """Exit 1, one line saying why and where the profile went; that file is whole."""
        self.assertEqual(proc.returncode, 1, proc.stderr)
        lines = [l for l in proc.stderr.splitlines() if l.startswith("allocprof: ")]
        self.assertEqual(len(lines), 1, proc.stderr)
        prefix = "allocprof: cannot write %s: %s; the profile was written to " % (dest, reason)
        self.assertTrue(lines[0].startswith(prefix), proc.stderr)
        self.assertTrue(lines[0].endswith(" instead"), proc.stderr)
        where = lines[0][len(prefix):-len(" instead")]
        self.assertEqual(os.path.dirname(where), self.fb)
        self.assertRegex(os.path.basename(where), r"^allocprof-.+-\d{8}T\d{6}-\d+\.pb\.gz$")
        self.assertEqual(stat.S_IMODE(os.stat(where).st_mode), 0o600)
        self.assertProfile(where)
        return where

    def held_capture(self, out, extra=()):
        """Starts a capture into OUT whose command waits; returns go(), which lets the command
        finish and returns allocprof's CompletedProcess. What a test does between the two
        happens while allocprof records, after it opened the output."""
        started, go = self.path("started"), self.path("go")
        cmd = ["sh", "-c", 'touch "$1"; while [ ! -e "$2" ]; do sleep 0.05; done; '
               'exec "$3" --rounds 3', "sh", started, go, SITES]
        ap = subprocess.Popen([ALLOCPROF, "record", "-q", "-o", out, *extra, "--", *cmd],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              env=self.env)
        deadline = time.time() + 60
        while not os.path.exists(started):
            if ap.poll() is not None or time.time() > deadline:
                ap.kill()
                self.fail("the capture did not start:\n" + ap.communicate()[1])
            time.sleep(0.05)

        def finish():
            open(go, "w").close()
            _, err = ap.communicate(timeout=120)
            return subprocess.CompletedProcess(ap.args, ap.returncode, "", err)

        finish.pid = ap.pid
        return finish


@needs("root", "pprof")
class Streams(Base):
    """Stdout, FIFOs and character devices get the gzip stream; none is ever replaced."""

    def sleeper(self):
        p = subprocess.Popen(["sleep", "30"])
        self.addCleanup(p.wait)
        self.addCleanup(p.kill)
        return p

    def test_stdout(self):
        for name in ("-", "/dev/stdout", "/dev/fd/1"):
            proc = subprocess.run(private_dev([ALLOCPROF, "record", "-p",
                                               str(self.sleeper().pid), "-d", "300ms", "-o",
                                               name]), capture_output=True, timeout=60)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            self.assertEqual(proc.stdout[:2], b"\x1f\x8b", name)  # the gzip stream, only it
            self.assertIn(b"allocprof: wrote %s: " % (b"stdout" if name == "-" else
                                                      name.encode()), proc.stderr)
            with open(self.path("s.pb.gz"), "wb") as f:
                f.write(proc.stdout)
            self.assertProfile(self.path("s.pb.gz"))

    def test_another_descriptor_with_a_command(self):
        out = self.path("fd3.pb.gz")
        with open(out, "wb") as f:
            proc = subprocess.run([ALLOCPROF, "record", "-q", "-o", "/dev/fd/%d" % f.fileno(),
                                   "--", SITES, "--rounds", "3"], capture_output=True,
                                  text=True, timeout=120, pass_fds=[f.fileno()])
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("site_large ", proc.stdout)  # the command's own output, untouched
        self.assertIn("site_large", self.assertProfile(out).flat("alloc_space"))

    def test_stdout_shared_with_the_command(self):
        proc = record(["-o", "-", *runs_command(self)])
        self.assertRefused(proc, ["stdout", "the command after --", "-o FILE"])
        with open(self.path("f"), "w") as f:
            proc = subprocess.run(private_dev([ALLOCPROF, "record", "-o", "/dev/stdout",
                                               *runs_command(self)]), stdout=f,
                                  stderr=subprocess.PIPE, text=True)
        self.assertRefused(proc, ["the command after --"])

    def test_stderr(self):
        proc = subprocess.run(private_dev([ALLOCPROF, "record", "-o", "/dev/stderr",
                                           *runs_command(self)]), capture_output=True,
                              text=True)
        self.assertRefused(proc, ["stderr"])

    def test_fifo(self):
        fifo = self.path("fifo")
        os.mkfifo(fifo)
        got = []
        # A daemon: if the FIFO were replaced, the reader would wait for a writer forever.
        reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()),
                                  daemon=True)
        reader.start()
        proc = record(["-q", "-o", fifo, "--", SITES, "--rounds", "3"], env=self.env)
        reader.join(30)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertTrue(stat.S_ISFIFO(os.lstat(fifo).st_mode))
        self.assertEqual(len(got), 1, "the reader got nothing")
        with open(self.path("f.pb.gz"), "wb") as f:
            f.write(got[0])
        self.assertProfile(self.path("f.pb.gz"))
        self.assertEqual(os.listdir(self.fb), [])

    def test_char_devices(self):
        null, full = self.path("null"), self.path("full")
        os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        os.mknod(full, 0o666 | stat.S_IFCHR, os.makedev(1, 7))
        os.chmod(null, 0o666)
        os.chmod(full, 0o666)
        before = sorted(os.listdir(self.tmp))
        proc = record(["-q", "-o", null, "--", SITES, "--rounds", "3"], env=self.env)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(proc.stderr, "")
        # /dev/full: the write fails, the profile goes elsewhere, the device stays.
        proc = record(["-q", "-o", full, "--", SITES, "--rounds", "3"], env=self.env)
        self.assertFellBack(proc, full, "No space left on device")
        for dev, minor in ((null, 3), (full, 7)):
            st = os.lstat(dev)
            self.assertTrue(stat.S_ISCHR(st.st_mode), dev)
            self.assertEqual(st.st_rdev, os.makedev(1, minor))
            self.assertEqual(stat.S_IMODE(st.st_mode), 0o666)
        self.assertEqual(sorted(os.listdir(self.tmp)), before)  # no temporary file left

    def test_dev_null_itself(self):
        """The real name, in a private /dev."""
        script = ('"$1" record -q -o /dev/null -- "$2" --rounds 3 >/dev/null; echo "rc=$?"; '
                  'stat -c "%F %t,%T %a" /dev/null; ls -A /dev')
        proc = subprocess.run(private_dev(["sh", "-c", script, "sh", ALLOCPROF, SITES]),
                              capture_output=True, text=True, timeout=120)
        self.assertEqual(proc.stdout.split("\n")[:3],
                         ["rc=0", "character special file 1,3 666", "fd"], proc.stderr)
        self.assertEqual(proc.stdout.split("\n")[3:-1], ["null", "stderr", "stdout"])

    def test_refused_kinds(self):
        sock = socket.socket(socket.AF_UNIX)
        self.addCleanup(sock.close)
        sock.bind(self.path("sock"))
        os.mknod(self.path("blk"), 0o600 | stat.S_IFBLK, os.makedev(7, 200))
        os.mkdir(self.path("dir"))
        with open(self.path("file"), "w") as f:
            f.write("keep")
        os.symlink("file", self.path("link"))
        for name, words in (("sock", ["socket"]), ("blk", ["block device"]),
                            ("dir", ["Is a directory"]), ("link", ["symbolic link", "file"])):
            before = sorted(os.listdir(self.tmp))
            self.assertRefused(record(["-o", self.path(name), *runs_command(self)]),
                               [self.path(name)] + words)
            self.assertEqual(sorted(os.listdir(self.tmp)), before)
        self.assertTrue(stat.S_ISSOCK(os.lstat(self.path("sock")).st_mode))
        self.assertTrue(stat.S_ISBLK(os.lstat(self.path("blk")).st_mode))
        self.assertTrue(os.path.islink(self.path("link")))
        with open(self.path("file")) as f:
            self.assertEqual(f.read(), "keep")

    def test_mode_with_a_stream(self):
        # A target preflight accepts (this process), so the refusal is the output's.
        self.assertRefused(record(["-o", "/dev/fd/1", "--mode", "0644", "-p",
                                   str(os.getpid())]), ["--mode"])


@needs("root", "pprof")
class Modes(Base):
    """Private by default; --mode exactly; a rerun keeps a stricter mode and the owner."""

    def capture(self, out, *extra, umask=0):
        proc = record(["-q", "-o", out, *extra, "--", SITES, "--rounds", "2"],
                      preexec_fn=lambda: os.umask(umask))
        self.assertRecorded(proc)
        self.assertProfile(out)
        return os.stat(out)

    def test_new_file_is_private(self):
        self.assertEqual(stat.S_IMODE(self.capture(self.path("p.pb.gz")).st_mode), 0o600)

    def test_rerun(self):
        out = self.path("p.pb.gz")
        for old, new in ((0o644, 0o600), (0o666, 0o600), (0o400, 0o400), (0o640, 0o600)):
            with open(out, "w") as f:
                f.write("old")
            os.chmod(out, old)
            self.assertEqual(stat.S_IMODE(self.capture(out).st_mode), new, oct(old))

    def test_explicit_mode(self):
        out = self.path("p.pb.gz")
        self.assertEqual(stat.S_IMODE(self.capture(out, "--mode", "0644", umask=0o077).st_mode),
                         0o644)
        self.assertEqual(stat.S_IMODE(self.capture(out, "--mode", "640").st_mode), 0o640)
        for bad in ("0800", "1777", "rw", "", "07777"):
            proc = record(["-o", out, "--mode", bad, *runs_command(self)])
            self.assertRefused(proc, ["--mode"], status=2)

    def test_owner(self):
        out = self.path("p.pb.gz")
        with open(out, "w") as f:
            f.write("old")
        os.chown(out, 12345, 23456)
        # A stranger's file is replaced by one of allocprof's user: they could have planted
        # it to be given the profile.
        st = self.capture(out)
        self.assertEqual((st.st_uid, st.st_gid), (os.geteuid(), os.getegid()))
        # The sudo user's file stays theirs.
        os.chown(out, 12345, 23456)
        proc = record(["-q", "-o", out, "--", SITES, "--rounds", "2"],
                      env=dict(os.environ, SUDO_UID="12345", SUDO_GID="23456"))
        self.assertRecorded(proc)
        st = os.stat(out)
        self.assertEqual((st.st_uid, st.st_gid), (12345, 23456))
        # Under sudo a new file is the sudo user's.
        new = self.path("n.pb.gz")
        proc = record(["-q", "-o", new, "--", SITES, "--rounds", "2"],
                      env=dict(os.environ, SUDO_UID="12346", SUDO_GID="23457"))
        self.assertRecorded(proc)
        st = os.stat(new)
        self.assertEqual((st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)), (12346, 23457, 0o600))


@needs("root", "pprof")
class SharedDirectory(Base):
    """Another user of a sticky, world-writable directory (like /tmp) cannot fail the
    capture, redirect the write, or have their file replaced."""

    def setUp(self):
        super().setUp()
        self.user = throwaway_user(self)
        os.chmod(self.tmp, 0o755)
        self.pub = self.path("pub")
        os.mkdir(self.pub)
        os.chmod(self.pub, 0o1777)

    def test_taken_temporary_names(self):
        out = os.path.join(self.pub, "p.pb.gz")
        go = self.held_capture(out)
        # Every name the old scheme could use, and a directory where a guess might land.
        names = [os.path.join(self.pub, ".p.pb.gz.%d.%d" % (go.pid, i)) for i in range(100)]
        as_user(self.user, ["touch", *names])
        proc = go()
        self.assertRecorded(proc)
        self.assertProfile(out)
        self.assertEqual(sorted(os.listdir(self.pub)),
                         sorted(["p.pb.gz"] + [os.path.basename(n) for n in names]))

    def test_directory_created_at_the_destination(self):
        out = os.path.join(self.pub, "p.pb.gz")
        go = self.held_capture(out)
        as_user(self.user, ["mkdir", out])
        proc = go()
        # Only what was checked at the start is replaced: here, nothing.
        self.assertFellBack(proc, out, PUT_THERE)
        self.assertEqual(os.listdir(out), [])
        self.assertEqual(os.listdir(self.pub), ["p.pb.gz"])

    def test_other_users_file(self):
        out = os.path.join(self.pub, "p.pb.gz")
        as_user(self.user, ["sh", "-c", 'echo theirs > "$1"', "sh", out])
        proc = record(["-o", out, *runs_command(self)])
        self.assertRefused(proc, [out, "another user", "shared directory"])
        with open(out) as f:
            self.assertEqual(f.read(), "theirs\n")
        # A link of theirs is not followed either.
        victim = self.path("victim")
        with open(victim, "w") as f:
            f.write("root's")
        link = os.path.join(self.pub, "l.pb.gz")
        as_user(self.user, ["ln", "-s", victim, link])
        self.assertRefused(record(["-o", link, *runs_command(self)]), [link, "another user"])
        with open(victim) as f:
            self.assertEqual(f.read(), "root's")

    def test_their_fifo_or_link_to_a_device(self):
        # Their FIFO would hand them the profile; their link could point at any device, even
        # in a directory of their own.
        fifo = os.path.join(self.pub, "f.pb.gz")
        as_user(self.user, ["mkfifo", fifo])
        self.assertRefused(record(["-o", fifo, *runs_command(self)]), [fifo, "another user"])
        own = os.path.join(self.pub, "theirs")
        as_user(self.user, ["mkdir", own])
        os.mkfifo(self.path("rootfifo"))
        link = os.path.join(own, "l.pb.gz")
        as_user(self.user, ["ln", "-s", self.path("rootfifo"), link])
        self.assertRefused(record(["-o", link, *runs_command(self)]), [link, "symbolic link"])

    def test_file_created_at_the_destination_is_kept(self):
        out = os.path.join(self.pub, "p.pb.gz")
        go = self.held_capture(out)
        as_user(self.user, ["sh", "-c", 'echo theirs > "$1"', "sh", out])
        proc = go()
        self.assertFellBack(proc, out, PUT_THERE)
        with open(out) as f:
            self.assertEqual(f.read(), "theirs\n")

    def test_directory_swapped_for_a_symlink(self):
        """The directory of the path becomes a symlink to elsewhere while recording: the
        profile lands in the original directory, never in the symlink's target."""
        d = os.path.join(self.pub, "d")
        as_user(self.user, ["mkdir", d])
        victim = self.path("victim")
        os.mkdir(victim)
        out = os.path.join(d, "p.pb.gz")
        go = self.held_capture(out)
        as_user(self.user, ["sh", "-c", 'mv "$1" "$1.old" && ln -s "$2" "$1"', "sh", d, victim])
        proc = go()
        self.assertEqual(os.listdir(victim), [])
        self.assertEqual(proc.returncode, 1, proc.stderr)
        self.assertEqual(proc.stderr.splitlines(),
                         ["allocprof: cannot write %s: its directory was moved or replaced "
                          "during the capture; the profile was written to %s instead" %
                          (out, os.path.join(d + ".old", "p.pb.gz"))])
        self.assertProfile(os.path.join(d + ".old", "p.pb.gz"))
        self.assertEqual(os.listdir(d + ".old"), ["p.pb.gz"])


@needs("root", "pprof")
class Validation(Base):
    """What can be known before the capture is told before it; what fails after it does not
    lose the profile."""

    def test_name_too_long(self):
        out = self.path("a" * 256)
        self.assertRefused(record(["-o", out, *runs_command(self)]), ["File name too long"])

    def test_names_a_directory(self):
        for out in (self.tmp + "/", self.path("x") + "/.", self.path("..")):
            self.assertRefused(record(["-o", out, *runs_command(self)]),
                               ["names a directory"], status=2)

    def in_small_tmpfs(self, size, command):
        """allocprof -o MNT/p.pb.gz -- sh -c COMMAND, MNT a tmpfs of SIZE in a private mount
        namespace; (CompletedProcess, MNT's listing at the end)."""
        mnt = self.path("mnt")
        os.mkdir(mnt)
        script = ('mount -t tmpfs -o size=%s tmpfs "$1" || exit 99; '
                  '"$2" record -q -o "$1/p.pb.gz" -- sh -c "$3" 2>&1 >/dev/null; '
                  'echo "rc=$?"; ls -A "$1"' % size)
        proc = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script,
                               "sh", mnt, ALLOCPROF, command.replace("MNT", mnt)],
                              capture_output=True, text=True, timeout=120, env=self.env,
                              cwd=self.tmp)
        self.assertNotEqual(proc.returncode, 99, proc.stderr)
        lines = proc.stdout.splitlines()
        rc = [i for i, l in enumerate(lines) if l.startswith("rc=")][0]
        return (subprocess.CompletedProcess(proc.args, int(lines[rc][3:]), "",
                                            "\n".join(lines[:rc]) + "\n"), lines[rc + 1:])

    def test_no_space_at_the_start(self):
        proc, listing = self.in_small_tmpfs("32k", 'touch "%s"' % self.path("ran"))
        self.assertRefused(proc, ["p.pb.gz", "KiB free", "free some space"])
        self.assertEqual(listing, [])

    def test_disk_full_at_the_end(self):
        proc, listing = self.in_small_tmpfs(
            "1m", "%s --rounds 3; dd if=/dev/zero of=MNT/fill bs=64k 2>/dev/null; true" % SITES)
        self.assertFellBack(proc, os.path.join(self.path("mnt"), "p.pb.gz"),
                            "No space left on device")
        self.assertEqual(listing, ["fill"])  # nothing half-written left behind
