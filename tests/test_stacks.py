"""Whole stacks: `--stacks auto|cfi|fp`. Programs built without frame pointers unwound through
their CFI (.eh_frame) as far as their thread's first frame, function for function the stacks
the same source built with frame pointers gives under the frame-pointer walk; the walk's
failures on real programs (frames in .data, fake frame records, stale ones), made on purpose
in tests/targets/unwind/garbage.S; another tracer's pending return probe; Debian's own
python3.11 and redis-server.

The unwind tables are built by userspace shortly after a file is first seen: before the
measured work starts (targets wait for SIGUSR1) a test waits for `-v`'s line
"unwind table for NAME: N rows" of every file its stacks go through.

APTEST_STACKS_AS_TODAY=1 runs the auto and cfi tests without the --stacks option (today's
frame-pointer walk), to see that each of them fails on what it checks, not only on the option.
"""

import collections
import functools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import pprofraw  # noqa: E402
from harness import ALLOCPROF, Case, read_expect, target, wait_for_log  # noqa: E402
from harness import needs  # noqa: E402

LIBC = "/usr/lib/x86_64-linux-gnu/libc.so.6"
PYTHON = "/usr/bin/python3.11"  # Debian's, not a pyenv shim on PATH

# A thread's first frames: where a whole stack ends.
# (glibc 2.36: __libc_start_main is an alias of __libc_start_main_impl, the name its DWARF
# gives.)
MAIN_ROOTS = {"_start", "__libc_start_main", "__libc_start_main_impl", "__libc_start_call_main"}
THREAD_ROOTS = {"start_thread", "clone3", "clone", "__clone3", "__clone"}
ROOTS = MAIN_ROOTS | THREAD_ROOTS

DEEP_LEAVES = ("unw_lib_malloc", "unw_lib_calloc", "unw_lib_realloc")
DEPTH = 20  # UNW_DEPTH in tests/targets/unwind/deep.h

NOT_CODE = "stacks ended at a frame outside executable code"
FP_STEPS = "frames walked with frame pointers (no unwind table for their file)"
TRAMPOLINE = "return addresses restored from the uretprobe trampoline"


@functools.lru_cache(maxsize=None)
def have_stacks_option():
    out = subprocess.run([ALLOCPROF, "record", "--help"], capture_output=True, text=True)
    return "--stacks" in out.stdout + out.stderr


def as_today():
    return os.environ.get("APTEST_STACKS_AS_TODAY") == "1"


def stacks_args(case, mode):
    """The command line for --stacks MODE. Today's binary has no such option; its walk is
    what fp means, so fp runs without it; the others fail (or, with APTEST_STACKS_AS_TODAY,
    run today's walk to show what they check fails)."""
    if have_stacks_option():
        return ["--stacks", mode]
    if mode == "fp" or as_today():
        return []
    case.fail("allocprof has no --stacks option (needs the CFI unwinder)")


def walks_tables(mode):
    """Whether a capture in this mode builds unwind tables (and says so)."""
    return mode != "fp" and have_stacks_option()


@functools.lru_cache(maxsize=None)
def has_unwind_info(path):
    """Whether a file has any CFI (an FDE in .eh_frame or .debug_frame): a file with none may
    have no table to log."""
    out = subprocess.run(["readelf", "-wf", path], capture_output=True, text=True)
    return " FDE " in out.stdout


def table_line(path):
    name = os.path.basename(os.path.realpath(path))
    return re.compile(r"unwind table for %s: \d+ rows" % re.escape(name))


_SUFFIX = re.compile(r"\.(constprop|isra|part|cold|lto_priv)(\.\d+)?")


def fn_name(name):
    """A function's name without GCC's clone suffixes (work.constprop.0 is work)."""
    return _SUFFIX.sub("", name)


def stack(prof, sample):
    return [fn_name(f) for f in prof.stack(sample)]


def cut_at(st, names):
    """The stack from the leaf up to the first of `names` (included); None if none is in it."""
    for i, f in enumerate(st):
        if f in names:
            return tuple(st[:i + 1])
    return None


def counter(prof, text):
    """The value of the comment "TEXT: N", 0 when there is none (zero counters are not
    written)."""
    for c in prof.comments:
        m = re.match(re.escape(text) + r": (\d+)$", c)
        if m:
            return int(m.group(1))
    return 0


def counted(prof, leaves):
    """The samples of the target's counted work: those whose leaf is one of `leaves`."""
    return [s for s in prof.samples if s.locations and stack(prof, s)[0] in leaves]


MAP_RE = re.compile(r"^\s*(\d+): 0x([0-9a-f]+)/0x([0-9a-f]+)/0x([0-9a-f]+) (\S+)")


def mappings(prof):
    out = {}
    for line in prof.mappings:
        m = MAP_RE.match(line)
        if m:
            out[int(m.group(1))] = (int(m.group(2), 16), int(m.group(3), 16),
                                    int(m.group(4), 16), m.group(5))
    return out


@functools.lru_cache(maxsize=None)
def load_segments(path):
    """[(file offset, file size, executable)] of a file's PT_LOAD segments."""
    out = subprocess.run(["readelf", "-lW", path], capture_output=True, text=True, check=True)
    segs = []
    for line in out.stdout.splitlines():
        f = line.split()
        if f and f[0] == "LOAD":
            # LOAD Offset VirtAddr PhysAddr FileSiz MemSiz Flg... Align
            flags = "".join(f[7:-1])
            segs.append((int(f[1], 16), int(f[4], 16), "E" in flags))
    return segs


@functools.lru_cache(maxsize=None)
def data_symbols(path):
    out = subprocess.run(["nm", "--defined-only", path], capture_output=True, text=True)
    return {f[2] for f in (ln.split() for ln in out.stdout.splitlines())
            if len(f) == 3 and f[1] in "dDbBrRgGsSvV"}


def not_code(prof, loc):
    """Why a Location is not a frame of executable code, or None: in no mapping, a data
    symbol's name, an address in a non-executable part of its file."""
    if not loc.mapping:
        return "0x%x is in no mapping" % loc.address
    start, limit, offset, path = mappings(prof)[loc.mapping]
    if not os.path.exists(path):
        return None
    for f in loc.functions:
        if fn_name(f) in data_symbols(path):
            return "%s is a data symbol of %s" % (f, path)
    foff = loc.address - start + offset
    for off, size, exe in load_segments(path):
        if off <= foff < off + size:
            return None if exe else "0x%x (%s+0x%x) is not executable" % (loc.address, path,
                                                                           foff)
    return "0x%x (%s+0x%x) is in no loaded segment" % (loc.address, path, foff)


def check_counts(case, prof, expect_path, leaves, via=True):
    """alloc_objects/alloc_space per leaf are the target's own, and (unless not `via`) so are
    those through each "via:FUNCTION" of its expect file."""
    expect = read_expect(expect_path)
    objects, space = collections.Counter(), collections.Counter()
    io, isp = prof.type_index("alloc_objects"), prof.type_index("alloc_space")
    for s in prof.samples:
        st = stack(prof, s) if s.locations else []
        if not st or st[0] not in leaves:
            continue
        for key in {st[0]} | {"via:" + f for f in st}:
            objects[key] += s.values[io]
            space[key] += s.values[isp]
    for site, (n, nbytes) in expect.items():
        if via or not site.startswith("via:"):
            case.assertEqual((objects[site], space[site]), (n, nbytes), site)
    case.assertIn("lost allocations: 0", prof.comments)


def describe(prof, samples):
    return "\n".join("%s: %s" % (s.values[:2], " < ".join(stack(prof, s))) for s in samples)


@needs("root", "pprof")
class StacksCase(Case):
    def run_waiting(self, argv, mode, files, extra=("--exact",), timeout=120, args=None):
        """Starts argv (it says "waiting" on stderr, then waits for SIGUSR1), attaches
        `allocprof record -v -p PID --stacks MODE`, waits for its probes and, when the mode
        walks CFI, for the unwind table of every file in `files`; then lets the target run
        to its end. `args` replaces the --stacks option. Returns (profile, log text)."""
        out, log = self.path("p.pb.gz"), self.path("record.log")
        if args is None:
            args = stacks_args(self, mode)
        tgt = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.addCleanup(lambda: tgt.poll() is None and (tgt.kill(), tgt.wait()))
        self.addCleanup(tgt.stderr.close)
        self.assertIn("waiting", tgt.stderr.readline().decode())
        with open(log, "w") as errf:
            ap = subprocess.Popen([ALLOCPROF, "record", "-v", "-p", str(tgt.pid), "-o", out,
                                   *args, *extra], stdout=subprocess.DEVNULL, stderr=errf)
            self.addCleanup(lambda: ap.poll() is None and (ap.kill(), ap.wait()))
            waits = ["probes attached"]
            if walks_tables(mode):
                waits += [table_line(f) for f in files if has_unwind_info(f)]
            wait_for_log(log, *waits, proc=ap)
            tgt.send_signal(signal.SIGUSR1)
            self.assertEqual(tgt.wait(timeout=timeout), 0, "target failed")
            rc = ap.wait(timeout=timeout)
        text = open(log).read()
        self.assertEqual(rc, 0, text)
        return pprofraw.read(out), text

    def assertRooted(self, prof, samples, roots_of):
        """Each sample's outermost frame is its thread's first: roots_of(stack) gives the
        set it must be in."""
        bad = [s for s in samples if stack(prof, s)[-1] not in roots_of(stack(prof, s))]
        self.assertEqual(bad, [], "stacks that do not reach their thread's root:\n" +
                         describe(prof, bad))

    def assertAllCode(self, prof, samples):
        bad = []
        for s in samples:
            for lid in s.locations:
                why = not_code(prof, prof.locations[lid])
                if why:
                    bad.append("%s\n    %s" % (" < ".join(stack(prof, s)), why))
                    break
        self.assertEqual(bad, [], "frames outside executable code:\n" + "\n".join(bad))


def deep_roots(st):
    return THREAD_ROOTS if "unw_thread_main" in st else MAIN_ROOTS


def deep_expected(leaf, thread):
    """What every counted stack of unwind-deep is, from the leaf to main/unw_thread_main."""
    top = ["unw_thread_main"] if thread else ["unw_main_work", "main"]
    return tuple([leaf, "unw_lib_entry"] + ["unw_recurse"] * (DEPTH + 1) + ["work"] + top)


class DeepBase(StacksCase):
    """unwind-deep-*: a recursion 21 frames deep into a library, in main and in two threads."""

    def run_deep(self, variant, mode, via=True):
        exe, exp = target("unwind-deep-" + variant), self.path("expect")
        files = [exe, target("libunwdeep-%s.so" % variant), LIBC]
        prof, log = self.run_waiting([exe, "--wait", "--threads", "2", "--rounds", "30",
                                      "--expect", exp], mode, files)
        check_counts(self, prof, exp, DEEP_LEAVES, via)
        return prof, log, counted(prof, DEEP_LEAVES)

    def cut_stacks(self, prof, samples):
        """{stack from the leaf up to main or the thread function: alloc_objects}"""
        io = prof.type_index("alloc_objects")
        out = collections.Counter()
        for s in samples:
            out[cut_at(stack(prof, s), {"main", "unw_thread_main"})] += s.values[io]
        return out


class Deep(DeepBase):
    """unwind-deep-nofp and -fp: the same source without and with frame pointers."""

    def test_auto_without_frame_pointers_equals_frame_pointer_build(self):
        """The nofp build under auto: the same stacks, function for function, as the fp build
        under fp, each reaching its thread's first frame; the counts are the target's."""
        fp_prof, _, fp_samples = self.run_deep("fp", "fp")
        want = self.cut_stacks(fp_prof, fp_samples)
        # The reference itself is what the source says (else the comparison proves nothing).
        self.assertEqual(set(want), {deep_expected(leaf, t) for leaf in DEEP_LEAVES
                                     for t in (False, True)}, describe(fp_prof, fp_samples))
        prof, _, samples = self.run_deep("nofp", "auto")
        self.assertEqual(self.cut_stacks(prof, samples), want, describe(prof, samples))
        self.assertRooted(prof, samples, deep_roots)
        self.assertAllCode(prof, samples)

    def test_default_is_auto(self):
        """No --stacks at all is auto."""
        exe, exp = target("unwind-deep-nofp"), self.path("expect")
        # (Waits for the tables, as auto does.)
        files = [exe, target("libunwdeep-nofp.so"), LIBC]
        prof, _ = self.run_waiting([exe, "--wait", "--threads", "1", "--rounds", "5",
                                    "--expect", exp], "auto", files, args=[])
        check_counts(self, prof, exp, DEEP_LEAVES)
        samples = counted(prof, DEEP_LEAVES)
        self.assertEqual({cut_at(stack(prof, s), {"main", "unw_thread_main"})
                          for s in samples},
                         {deep_expected(leaf, t) for leaf in DEEP_LEAVES for t in (False, True)},
                         describe(prof, samples))
        self.assertRooted(prof, samples, deep_roots)

    def test_cfi_only_without_frame_pointers(self):
        """--stacks cfi: every file here has a table, so the stacks are whole too, and no
        frame was walked by frame pointer."""
        prof, _, samples = self.run_deep("nofp", "cfi")
        self.assertEqual(set(self.cut_stacks(prof, samples)),
                         {deep_expected(leaf, t) for leaf in DEEP_LEAVES for t in (False, True)},
                         describe(prof, samples))
        self.assertRooted(prof, samples, deep_roots)
        self.assertEqual(counter(prof, FP_STEPS), 0, prof.comments)

    def test_fp_without_frame_pointers_stops_early(self):
        """Today's walk, and what --stacks fp must stay: through code without frame pointers
        it never gets from the library to main or the thread function. (If fp mode silently
        did CFI, this would fail.) The counts per leaf are still exact."""
        prof, _, samples = self.run_deep("nofp", "fp", via=False)
        self.assertTrue(samples)
        whole = [s for s in samples
                 if cut_at(stack(prof, s), {"main", "unw_thread_main"}) is not None
                 or stack(prof, s).count("unw_recurse") > DEPTH]
        self.assertEqual(whole, [], describe(prof, whole))
        self.assertEqual(counter(prof, TRAMPOLINE), 0)


class NoUnwindInfo(DeepBase):
    """unwind-deep-nocfi: frame pointers and no CFI at all in the library and the program's
    own functions (only the C runtime's _start has some)."""

    def test_auto_steps_by_frame_pointer(self):
        prof, _, samples = self.run_deep("nocfi", "auto")
        self.assertEqual(set(self.cut_stacks(prof, samples)),
                         {deep_expected(leaf, t) for leaf in DEEP_LEAVES for t in (False, True)},
                         describe(prof, samples))
        self.assertRooted(prof, samples, deep_roots)
        self.assertGreater(counter(prof, FP_STEPS), 0, prof.comments)

    def test_cfi_only_ends_where_there_is_none(self):
        prof, _, samples = self.run_deep("nocfi", "cfi", via=False)
        self.assertTrue(samples)
        far = [s for s in samples if "unw_recurse" in stack(prof, s)]
        self.assertEqual(far, [], describe(prof, far))
        self.assertGreater(counter(prof, "stacks ended in code without unwind information") +
                           counter(prof, "stacks ended in a file without an unwind table "
                                   "(not built yet, or it could not be)"), 0, prof.comments)
        self.assertEqual(counter(prof, FP_STEPS), 0, prof.comments)


class Oracle(StacksCase):
    """scripts/stacks-vs-gdb.py on the program without frame pointers: every stack gdb sees at
    malloc is in the profile, frame for frame (module+offset), as far as _start or clone3."""

    def test_gdb_stacks_are_in_the_profile(self):
        if not shutil.which("gdb"):
            self.skipTest("needs gdb")
        mode = stacks_args(self, "auto")
        exe = target("unwind-deep-nofp")
        waits = []
        if walks_tables("auto"):
            for f in (exe, target("libunwdeep-nofp.so"), LIBC):
                waits += ["--wait-log", table_line(f).pattern]
        # (The recording's second starts once the tables are in: the stacks of one round
        # take microseconds, so it sees each of them many times.)
        proc = subprocess.run(
            [sys.executable, os.path.join(os.path.dirname(ALLOCPROF), "scripts",
                                          "stacks-vs-gdb.py"), "-d", "1s", "-k", "8", *mode,
             *waits, "--", exe, "--threads", "1", "--rounds", "1000000000"],
            capture_output=True, text=True, timeout=300)
        self.assertIn("8 of 8 gdb stacks found in the profile", proc.stdout,
                      proc.stdout + proc.stderr)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)


GARBAGE = {"gb_data_rbp": "gb_run_data_rbp", "gb_fake_chain": "gb_run_fake_chain",
           "gb_stale_record": "gb_run_stale_record"}


class Garbage(StacksCase):
    """unwind-garbage: %rbp into .data, a chain of fake frame records in .data, a stale frame
    record whose return address is real code that is no caller (gb_decoy)."""

    def run_garbage(self, mode):
        exe, exp = target("unwind-garbage"), self.path("expect")
        prof, log = self.run_waiting([exe, "--wait", "--rounds", "10", "--expect", exp], mode,
                                     [exe, LIBC])
        check_counts(self, prof, exp, GARBAGE)
        samples = counted(prof, GARBAGE)
        self.assertEqual({stack(prof, s)[0] for s in samples}, set(GARBAGE))
        return prof, samples

    def test_fp_walk_never_shows_data_as_frames(self):
        """The frame-pointer walk ends where a return address is not in executable code."""
        prof, samples = self.run_garbage("fp")
        self.assertAllCode(prof, samples)

    def test_fp_walk_counts_stacks_ended_outside_code(self):
        prof, samples = self.run_garbage("fp")
        # gb_data_rbp and gb_fake_chain, 10 rounds each, end at a .data "return address".
        self.assertGreaterEqual(counter(prof, NOT_CODE), 2, prof.comments)

    def test_auto_finds_the_real_callers(self):
        """Under auto the CFI of each function is followed: its C caller, main, the root;
        neither .data nor gb_decoy appears."""
        prof, samples = self.run_garbage("auto")
        got = {cut_at(stack(prof, s), {"main"}) for s in samples}
        self.assertEqual(got, {(leaf, caller, "main") for leaf, caller in GARBAGE.items()},
                         describe(prof, samples))
        self.assertFalse([s for s in samples if "gb_decoy" in stack(prof, s)])
        self.assertRooted(prof, samples, lambda st: MAIN_ROOTS)
        self.assertAllCode(prof, samples)


def tracefs(case):
    """Where tracefs is; mounted at /sys/kernel/tracing for the test (and unmounted after it)
    when it is nowhere yet."""
    for d in ("/sys/kernel/tracing", "/sys/kernel/debug/tracing"):
        if os.path.exists(os.path.join(d, "uprobe_events")):
            return d
    d = "/sys/kernel/tracing"
    proc = subprocess.run(["mount", "-t", "tracefs", "nodev", d], capture_output=True,
                          text=True)
    if proc.returncode != 0 or not os.path.exists(os.path.join(d, "uprobe_events")):
        case.skipTest("no tracefs with uprobe_events: %s" % proc.stderr.strip())
    case.addCleanup(subprocess.run, ["umount", d], capture_output=True)
    return d


def tracefs_write(path, text):
    """One write(2) (Python's append mode seeks, which tracefs files refuse)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def file_offset(path, symbol):
    """A symbol's file offset (what uprobe_events takes), from its address and the PT_LOAD
    that holds it."""
    syms = subprocess.run(["nm", "--defined-only", path], capture_output=True, text=True,
                          check=True).stdout
    addr = next(int(f[0], 16) for f in (ln.split() for ln in syms.splitlines())
                if len(f) == 3 and f[2] == symbol)
    out = subprocess.run(["readelf", "-lW", path], capture_output=True, text=True, check=True)
    for f in (ln.split() for ln in out.stdout.splitlines()):
        if f and f[0] == "LOAD":
            off, vaddr, size = int(f[1], 16), int(f[2], 16), int(f[5], 16)
            if vaddr <= addr < vaddr + size:
                return addr - vaddr + off
    raise AssertionError("%s not in a PT_LOAD of %s" % (symbol, path))


class Trampoline(StacksCase):
    """Another tracer's return probe on tr_outer (tracefs) is pending while tr_middle mallocs:
    tr_outer's return address on the stack is the kernel's trampoline ([uprobes])."""

    def uretprobe(self, path, symbol):
        """r:GROUP/EVENT PATH:OFFSET, enabled; removed when the test ends, pass or fail.
        Returns the event's name (it shows in the trace when it fires)."""
        self.tracefs = tracefs(self)
        group, event = "apstk%d" % os.getpid(), "outer%d" % os.getpid()
        events = os.path.join(self.tracefs, "uprobe_events")
        tracefs_write(events, "r:%s/%s %s:0x%x\n" % (group, event, path,
                                                     file_offset(path, symbol)))

        def remove():
            enable = os.path.join(self.tracefs, "events", group, event, "enable")
            if os.path.exists(enable):
                tracefs_write(enable, "0\n")
            tracefs_write(events, "-:%s/%s\n" % (group, event))
        self.addCleanup(remove)
        tracefs_write(os.path.join(self.tracefs, "events", group, event, "enable"), "1\n")
        return event

    def run_tramp(self, variant, mode):
        exe, exp = target("unwind-tramp-" + variant), self.path("expect")
        event = self.uretprobe(exe, "tr_outer")
        prof, log = self.run_waiting([exe, "--wait", "--rounds", "20", "--expect", exp], mode,
                                     [exe, LIBC])
        # The other tracer's probe was really there: its event fired at tr_outer's return.
        with open(os.path.join(self.tracefs, "trace")) as f:
            self.assertIn(event + ":", f.read(), "the return probe on tr_outer never fired")
        check_counts(self, prof, exp, {"tr_middle"})
        samples = counted(prof, {"tr_middle"})
        self.assertEqual({cut_at(stack(prof, s), {"main"}) for s in samples},
                         {("tr_middle", "tr_outer", "main")}, describe(prof, samples))
        unnamed = [s for s in samples
                   if any(not prof.locations[lid].functions or not prof.locations[lid].mapping
                          for lid in s.locations)]
        self.assertEqual(unnamed, [], describe(prof, unnamed))
        self.assertAllCode(prof, samples)
        return prof, samples

    def test_fp_walk_through_trampoline(self):
        self.run_tramp("fp", "fp")

    def test_auto_walk_through_trampoline(self):
        prof, samples = self.run_tramp("nofp", "auto")
        self.assertRooted(prof, samples, lambda st: MAIN_ROOTS)
        self.assertGreater(counter(prof, TRAMPOLINE), 0, prof.comments)


@needs("root")
class BadMode(Case):
    def test_bogus_stacks_mode(self):
        """Exit 2, one line naming the option, the value and the choices; nothing written."""
        out = self.path("p.pb.gz")
        proc = subprocess.run([ALLOCPROF, "record", "--stacks", "bogus", "-o", out, "--",
                               "true"], capture_output=True, text=True, timeout=60)
        self.assertEqual(proc.returncode, 2, proc.stderr)
        lines = proc.stderr.splitlines()
        self.assertEqual(len(lines), 1, proc.stderr)
        for word in ("--stacks", "bogus", "auto", "cfi", "fp"):
            self.assertIn(word, lines[0])
        self.assertFalse(os.path.exists(out))


def rooted_share(prof):
    """The share of alloc_space in stacks whose outermost frame is a thread's first."""
    i = prof.type_index("alloc_space")
    total = rooted = 0
    for s in prof.samples:
        total += s.values[i]
        if s.locations and stack(prof, s)[-1] in ROOTS:
            rooted += s.values[i]
    return rooted / total if total else 0.0


def outermost(prof, n=10):
    """The outermost functions by alloc_space, for a failure's message."""
    i = prof.type_index("alloc_space")
    c = collections.Counter()
    for s in prof.samples:
        c[stack(prof, s)[-1] if s.locations else "<none>"] += s.values[i]
    return c.most_common(n)


PY_WORK = textwrap.dedent("""\
    import signal, sys
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    sys.stderr.write("python: waiting for SIGUSR1\\n")
    sys.stderr.flush()
    signal.sigwait({signal.SIGUSR1})
    keep = []
    for r in range(40):
        d = {}
        for i in range(3000):
            d["k%d" % i] = ["x" * (100 + i % 900)] * (i % 50)
        keep.append(bytearray(b"y" * (r * 10000)))
        keep.append(sorted(d, key=len))
        if len(keep) > 10:
            keep = keep[5:]
    """)


class RealPrograms(StacksCase):
    """Debian's own binaries, built without frame pointers: under auto nearly all of the
    allocated bytes are in stacks that reach their thread's first frame."""

    def test_python3_11(self):
        if not os.access(PYTHON, os.X_OK):
            self.skipTest("%s is not installed (apt-get install python3.11)" % PYTHON)
        script = self.path("work.py")
        with open(script, "w") as f:
            f.write(PY_WORK)
        prof, _ = self.run_waiting([PYTHON, "-S", script], "auto", [PYTHON, LIBC],
                                   extra=("--sample-bytes", "64k"), timeout=300)
        # (Tens of MB: sampled stacks by the hundred; the script allocates about 400 MB.)
        self.assertGreater(prof.total("alloc_space"), 50_000_000)
        share = rooted_share(prof)
        self.assertGreaterEqual(share, 0.95, "%.1f%% rooted; outermost: %s" %
                                (100 * share, outermost(prof)))

    def test_redis_server_under_benchmark(self):
        for tool in ("redis-server", "redis-benchmark"):
            if not shutil.which(tool):
                self.skipTest(tool + " is not installed (apt-get install redis-server "
                              "redis-tools)")
        server_path = shutil.which("redis-server")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.tmp, "--loglevel", "verbose"],
            stdout=subprocess.PIPE, text=True)
        self.addCleanup(lambda: (server.kill(), server.wait()))
        for line in server.stdout:  # its log says when it accepts connections
            if "Ready to accept connections" in line:
                break
        else:
            self.fail("redis-server did not start")
        threading_drain(server.stdout)
        out, log = self.path("redis.pb.gz"), self.path("log")
        args = stacks_args(self, "auto")
        with open(log, "w") as errf:
            ap = subprocess.Popen([ALLOCPROF, "record", "-v", "-p", str(server.pid), "-o", out,
                                   "--sample-bytes", "64k", *args],
                                  stdout=subprocess.DEVNULL, stderr=errf)
            self.addCleanup(lambda: ap.poll() is None and (ap.kill(), ap.wait()))
            waits = ["probes attached"]
            if walks_tables("auto"):
                waits += [table_line(server_path), table_line(LIBC)]
            wait_for_log(log, *waits, proc=ap)
            subprocess.run(["redis-benchmark", "-p", str(port), "-q", "-n", "20000",
                            "-t", "set,lpush,get", "-d", "300"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=300, check=True)
            ap.send_signal(signal.SIGINT)
            self.assertEqual(ap.wait(timeout=120), 0, open(log).read())
        self.assertIsNone(server.poll(), "redis-server must survive the capture")
        prof = pprofraw.read(out)
        # 20000 each of SET, LPUSH and GET with 300-byte values: well over 6 MB.
        self.assertGreater(prof.total("alloc_space"), 6_000_000)
        share = rooted_share(prof)
        self.assertGreaterEqual(share, 0.95, "%.1f%% rooted; outermost: %s" %
                                (100 * share, outermost(prof)))


def threading_drain(stream):
    """Reads a child's pipe to its end in the background, so it never blocks on a full pipe."""
    threading.Thread(target=lambda: [None for _ in stream], daemon=True).start()


@needs("root", "pprof")
class ShallowNote(Case):
    """When most of the weight is in stacks of one or two frames that end early, the summary
    and `allocprof top` say so and why; when the stacks are whole, neither says anything."""

    SCRIPT = "x = [str(i) * 50 for i in range(200000)]\n"

    def capture(self, mode):
        if not os.access(PYTHON, os.X_OK):
            self.skipTest("%s is not installed (apt-get install python3.11)" % PYTHON)
        out = self.path("%s.pb.gz" % mode)
        proc = subprocess.run([ALLOCPROF, "record", "--stacks", mode, "-o", out, "--",
                               PYTHON, "-S", "-c", self.SCRIPT],
                              capture_output=True, text=True, timeout=300)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        top = subprocess.run([ALLOCPROF, "top", out], capture_output=True, text=True)
        self.assertEqual(top.returncode, 0, top.stderr)
        return proc.stderr, top.stdout, pprofraw.read(out)

    def test_frame_pointers_through_debian_python(self):
        err, top, prof = self.capture("fp")
        self.assertRegex(err, r"allocprof: note: \d+% of the weight is in stacks of one or two "
                         r"frames that end before a thread's first frame, mostly at .*--stacks "
                         r"auto")
        self.assertIn("Note: ", top)
        self.assertIn("stack ends by weight:", top)
        self.assertRegex(prof.raw, r"weight in stacks of one or two frames that end early: "
                         r"(5\d|[6-9]\d|100)\.\d%")

    def test_no_note_when_stacks_are_whole(self):
        err, top, prof = self.capture("auto")
        self.assertNotIn("note:", err)
        self.assertNotIn("Note: ", top)
        self.assertIn("stack ends by weight: reached a thread's first frame", prof.raw)


@needs("root", "pprof")
class Exec(StacksCase):
    """A thread that execs keeps its task: what its walks kept of the first program's mappings
    must not be used for the next one, mapped at the same addresses (ASLR off)."""

    def test_next_program_gets_its_own_rules(self):
        if not shutil.which("setarch"):
            self.skipTest("needs setarch (util-linux)")
        out, log = self.path("p.pb.gz"), self.path("record.log")
        a, b = target("unwind-exec-a"), target("unwind-exec-b")
        with open(log, "w") as errf:
            ap = subprocess.Popen([ALLOCPROF, "record", "-v", "--exact", "-n", "0", "-o", out,
                                   "--", "setarch", "-R", a, b],
                                  stdout=subprocess.DEVNULL, stderr=errf)
            self.addCleanup(lambda: ap.poll() is None and (ap.kill(), ap.wait()))
            wait_for_log(log, re.compile(r"exec-b \(pid \d+\): waiting for SIGUSR1"),
                         table_line(b), proc=ap)
            child = int(re.search(r"exec-b \(pid (\d+)\): waiting", open(log).read()).group(1))
            os.kill(child, signal.SIGUSR1)
            self.assertEqual(ap.wait(timeout=120), 0, open(log).read())
        prof = pprofraw.read(out)
        mine = [s for s in prof.samples if s.locations and stack(prof, s)[0] == "b_leaf"]
        self.assertEqual(sum(s.values[prof.type_index("alloc_objects")] for s in mine), 300)
        for s in mine:
            self.assertEqual(stack(prof, s)[:5], ["b_leaf", "b_f1", "b_f2", "b_f3", "main"],
                             describe(prof, mine))
        self.assertRooted(prof, mine, lambda st: MAIN_ROOTS)
