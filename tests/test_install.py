"""What `make install` ships: the systemd units and the cron line of contrib/ (they verify, and
their command lines are ones allocprof accepts), the man page (made from the --help texts, it
renders without warnings and has every option), and install/uninstall of exactly those files."""

import os
import re
import shlex
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
from harness import ALLOCPROF, ROOT, Case, needs, target  # noqa: E402
from test_caps import with_caps  # noqa: E402

CONTRIB = os.path.join(ROOT, "contrib")
UNITS = ["allocprof.service", "allocprof.timer", "allocprof-periodic.service"]
MAN = os.path.join(ROOT, "build", "allocprof.1")
NOBODY = 65534
STATE_DIR = "/var/lib/allocprof"


def unit_settings(name):
    """{key: [values]} of a unit file's settings, comments left out."""
    out = {}
    with open(os.path.join(CONTRIB, name)) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith(("#", ";", "[")):
                key, _, value = line.partition("=")
                out.setdefault(key, []).append(value)
    return out


def cron_command():
    """The cron.d line's (schedule fields, user, command argv)."""
    with open(os.path.join(CONTRIB, "allocprof.cron")) as f:
        lines = [ln for ln in f.read().splitlines() if ln.strip() and not ln.startswith("#")]
    assert len(lines) == 1, lines
    fields = lines[0].split(None, 6)
    return fields[:5], fields[5], shlex.split(fields[6])


def command_lines():
    """Every allocprof command line shipped: the units' ExecStart and the cron line's."""
    out = []
    for unit in UNITS:
        for value in unit_settings(unit).get("ExecStart", []):
            out.append((unit, shlex.split(value)))
    out.append(("allocprof.cron", cron_command()[2]))
    return out


def help_text(*args):
    return subprocess.run([ALLOCPROF, *args, "--help"], capture_output=True, text=True,
                          check=True).stdout


def help_options(text):
    """Every option a --help names: -x and --long words."""
    return set(re.findall(r"(?:^|[\s,\[(])(--?[a-zA-Z][a-zA-Z0-9-]*)", text))


class Units(Case):
    def test_systemd_analyze_verify(self):
        """The units as installed (with this build's binary for ExecStart) verify cleanly."""
        if not shutil.which("systemd-analyze"):
            self.skipTest("systemd-analyze is not installed (package systemd): the units are "
                          "only parsed by the other tests")
        paths = []
        for unit in UNITS:
            with open(os.path.join(CONTRIB, unit)) as f:
                text = f.read().replace("/usr/local/bin/allocprof", ALLOCPROF)
            paths.append(self.path(unit))
            with open(paths[-1], "w") as f:
                f.write(text)
        proc = subprocess.run(["systemd-analyze", "verify", "--man=no", *paths],
                              capture_output=True, text=True)
        ours = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "allocprof" in ln]
        self.assertEqual((proc.returncode, ours), (0, []), proc.stderr)

    def test_what_the_units_say(self):
        svc, timer = unit_settings("allocprof.service"), unit_settings("allocprof.timer")
        periodic = unit_settings("allocprof-periodic.service")
        self.assertEqual(svc["Type"], ["oneshot"])
        self.assertEqual(timer["OnCalendar"], ["*:0/30"])
        for unit in (svc, periodic):
            self.assertEqual(unit["StateDirectory"], ["allocprof"])
            # -a needs these (README "Requirements"); the kernels before 6.16, CAP_BPF and
            # CAP_PERFMON.
            caps = set(unit["CapabilityBoundingSet"][0].split())
            self.assertLessEqual({"CAP_SYS_ADMIN", "CAP_BPF", "CAP_PERFMON", "CAP_SYS_PTRACE",
                                  "CAP_DAC_READ_SEARCH"}, caps)
            for off in ("PrivateUsers", "ProtectProc", "SystemCallFilter", "PrivateTmp"):
                self.assertNotIn(off, unit)
        argv = dict(command_lines())
        self.assertEqual(argv["allocprof.service"][1:], [
            "record", "-a", "-d", "30s", "--output-dir", STATE_DIR, "--keep", "48", "-q"])
        self.assertEqual(argv["allocprof-periodic.service"][1:], [
            "record", "-a", "--interval", "60s", "--output-dir", STATE_DIR, "--keep", "1440",
            "-q"])
        when, user, cron = cron_command()
        self.assertEqual((when, user), (["*/30", "*", "*", "*", "*"], "root"))
        self.assertEqual(cron, argv["allocprof.service"])
        for _, a in command_lines():
            self.assertEqual(a[0], "/usr/local/bin/allocprof")  # make install replaces it

    def test_command_lines_parse(self):
        """allocprof accepts each shipped command line: run without privileges it gets as
        far as the privilege check (exit 3), past the option parser (which would exit 2)."""
        have = help_options(help_text("record"))
        missing = sorted({w for _, a in command_lines() for w in a if w.startswith("-")} - have)
        if missing:
            self.skipTest("allocprof record has no %s yet (the periodic capture's options): "
                          "the command lines are checked once it does" % ", ".join(missing))
        os.chmod(self.tmp, 0o777)
        for name, argv in command_lines():
            with self.subTest(name):
                # Where the capture would write, one that exists here (systemd makes the
                # real one); as uid nobody, so nothing is recorded.
                argv = [ALLOCPROF] + [self.tmp if w == STATE_DIR else w for w in argv[1:]]
                if os.geteuid() == 0:
                    argv = ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY,
                            "--clear-groups"] + argv
                proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
                self.assertEqual(proc.returncode, 3, proc.stderr)
                self.assertIn("not permitted", proc.stderr)
                self.assertEqual(os.listdir(self.tmp), [])

    @needs("root")
    def test_the_units_capabilities_suffice(self):
        """A capture with only the units' bounding set and no new privileges, as systemd
        runs them (-- CMD here: quick, and -a needs nothing more than the set)."""
        if not shutil.which("setpriv"):
            self.skipTest("setpriv (util-linux) is not installed")
        caps = [c[len("CAP_"):].lower() for c in
                unit_settings("allocprof.service")["CapabilityBoundingSet"][0].split()]
        out = self.path("p.pb.gz")
        argv = with_caps(caps, [ALLOCPROF, "record", "-q", "-o", out, "--", target("sites"),
                                "--rounds", "5"])
        proc = subprocess.run([argv[0], "--no-new-privs"] + argv[1:], capture_output=True,
                              text=True, timeout=120)
        self.assertRecorded(proc)
        self.assertTrue(os.path.getsize(out) > 0)


class ManPage(Case):
    def setUp(self):
        super().setUp()
        if not os.path.exists(MAN):
            self.fail("%s is missing: run make" % MAN)

    def render(self):
        if not shutil.which("man"):
            self.skipTest("man is not installed (package man-db)")
        return subprocess.run(["man", "--warnings", "-l", MAN], capture_output=True,
                              text=True, env=dict(os.environ, MANWIDTH="80"))

    def test_up_to_date(self):
        """build/allocprof.1 is what the --help texts make now."""
        fresh = subprocess.run([os.path.join(ROOT, "scripts", "gen-man.py"), ALLOCPROF],
                               capture_output=True, text=True, check=True).stdout
        with open(MAN) as f:
            self.assertEqual(f.read(), fresh, "run make")

    def test_renders_without_warnings(self):
        proc = self.render()
        self.assertEqual((proc.returncode, proc.stderr), (0, ""))
        for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "ALLOCPROF RECORD", "ALLOCPROF TOP",
                        "ALLOCPROF DIFF", "ALLOCPROF FLAME", "EXIT STATUS", "FILES", "SEE ALSO"):
            self.assertRegex(proc.stdout, r"(?m)^%s$" % section)

    def test_every_option_of_every_help(self):
        page = self.render().stdout
        for args in ([], ["record"], ["top"], ["diff"], ["check"], ["flame"]):
            text = help_text(*args)
            with self.subTest(help=args):
                options = help_options(text)
                self.assertGreater(len(options), 1)
                self.assertEqual(sorted(o for o in options if o not in page), [])

    def test_exit_statuses(self):
        """Every status of record --help is in EXIT STATUS, with its words."""
        page = self.render().stdout
        section = page[page.index("\nEXIT STATUS"):page.index("\nFILES")]
        text = help_text("record")
        for m in re.finditer(r"^  (\d)  (\S+ \S+)", text, re.M):
            self.assertRegex(section, r"(?m)^ +%s +%s" % (m.group(1), re.escape(m.group(2))))


class Install(Case):
    def make(self, *args):
        proc = subprocess.run(["make", "-s", "-C", ROOT, *args], capture_output=True,
                              text=True, timeout=600)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)

    def files(self, dest):
        out = {}
        for d, _, names in os.walk(dest):
            for n in names:
                p = os.path.join(d, n)
                out[os.path.relpath(p, dest)] = os.stat(p).st_mode & 0o7777
        return out

    def test_install_then_uninstall(self):
        dest = self.path("dest")
        self.make("install", "DESTDIR=" + dest, "PREFIX=/usr")
        self.assertEqual(self.files(dest), {
            "usr/bin/allocprof": 0o755,
            "usr/share/man/man1/allocprof.1": 0o644,
            "usr/lib/systemd/system/allocprof.service": 0o644,
            "usr/lib/systemd/system/allocprof.timer": 0o644,
            "usr/lib/systemd/system/allocprof-periodic.service": 0o644,
            "usr/share/doc/allocprof/allocprof.cron": 0o644,
        })
        # The installed binary's path in the units and the cron line, PREFIX's in FILES.
        for f in ("usr/lib/systemd/system/allocprof.service",
                  "usr/lib/systemd/system/allocprof-periodic.service",
                  "usr/share/doc/allocprof/allocprof.cron"):
            with open(os.path.join(dest, f)) as fh:
                text = fh.read()
            self.assertIn("/usr/bin/allocprof record", text)
            self.assertNotIn("/usr/local", text)
        with open(os.path.join(dest, "usr/share/man/man1/allocprof.1")) as fh:
            man = fh.read()
        self.assertIn("/usr/lib/systemd/system/allocprof.service", man.replace("\\-", "-"))
        self.assertNotIn("/usr/local", man)

        # Something of someone else's in the same directories stays.
        other = os.path.join(dest, "usr/bin/other")
        open(other, "w").close()
        os.chmod(other, 0o644)
        self.make("uninstall", "DESTDIR=" + dest, "PREFIX=/usr")
        self.assertEqual(self.files(dest), {"usr/bin/other": 0o644})
        self.assertFalse(os.path.exists(os.path.join(dest, "usr/share/doc/allocprof")))
        # Uninstalling what is not there is not an error.
        self.make("uninstall", "DESTDIR=" + dest, "PREFIX=/usr")
