"""Exact and sampled counts against a target that counts its own allocations."""

import math
import os
import re
import shutil
import signal
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import pprofraw  # noqa: E402
from harness import (ALLOCPROF, LIBDIR, Case, read_expect, read_expect_all, record,  # noqa: E402
                     target, wait_for_log)
from harness import needs  # noqa: E402

SITES = target("sites")


def lost(profile):
    """The 'lost' comment lines, and the stack-walk failures, from a profile."""
    bad = [c for c in profile.comments if c.startswith("lost:") or c.startswith("stack walk")]
    return bad


@needs("root", "pprof")
class ExactCounts(Case):
    def check_exact(self, profile_path, expect_path):
        expect = read_expect(expect_path)
        prof = pprofraw.read(profile_path)
        objects = prof.flat("alloc_objects")
        space = prof.flat("alloc_space")
        for site, (n, nbytes) in expect.items():
            self.assertEqual(objects.get(site, 0), n, "alloc_objects of %s" % site)
            self.assertEqual(space.get(site, 0), nbytes, "alloc_space of %s" % site)
        self.assertIn("lost allocations: 0", prof.comments)
        self.assertEqual(lost(prof), [])
        return prof

    def test_command_exact(self):
        out, exp = self.path("p.pb.gz"), self.path("expect")
        proc = record(["--exact", "-q", "-o", out, "--", SITES, "--expect", exp])
        self.assertRecorded(proc)
        self.check_exact(out, exp)

    def test_pid_exact_attached_before_allocating(self):
        out, exp = self.path("p.pb.gz"), self.path("expect")
        proc = self.attach_then_run([SITES, "--wait", "--expect", exp], ["--exact"], out)
        self.assertRecorded(proc)
        prof = self.check_exact(out, exp)
        self.assertTrue(any(c.startswith("target: pid ") for c in prof.comments))

    def test_same_pid_twice_counts_once(self):
        out, exp = self.path("p.pb.gz"), self.path("expect")
        proc = self.attach_then_run([SITES, "--wait", "--expect", exp], ["--exact"], out,
                                    pids="{pid},{pid}")
        self.assertRecorded(proc)
        self.check_exact(out, exp)

    def test_library_deleted_since_it_was_loaded(self):
        """A package upgraded under a running process: its allocator's file is gone from
        the directory, but still mapped, and still the one to probe."""
        out, exp = self.path("p.pb.gz"), self.path("expect")
        lib = self.path("libjemalloc.so.2")
        shutil.copy(os.path.join(LIBDIR, "libjemalloc.so.2"), lib)
        proc = self.attach_then_run([SITES, "--wait", "--expect", exp], ["--exact"], out,
                                    env=dict(os.environ, LD_PRELOAD=lib),
                                    before_attach=lambda: os.remove(lib))
        self.assertRecorded(proc)
        prof = self.check_exact(out, exp)
        self.assertIn("allocator: " + lib, prof.comments)

    def test_secure_execution_ignores_preload(self):
        """A setgid program ignores LD_PRELOAD; so must its plan, made before it runs."""
        out, exp, prog = self.path("p.pb.gz"), self.path("expect"), self.path("sgid-sites")
        shutil.copy(SITES, prog)
        os.chown(prog, 0, 60)  # group games
        os.chmod(prog, 0o2755)
        proc = record(["--exact", "-q", "-o", out, "--", prog, "--expect", exp],
                      env=preloaded("libjemalloc.so.2"))
        self.assertRecorded(proc)
        prof = self.check_exact(out, exp)
        self.assertIn("allocator: /usr/lib/x86_64-linux-gnu/libc.so.6", prof.comments)
        self.assertFalse(any("after it started" in c for c in prof.comments), prof.comments)

    def test_static_executable(self):
        out, exp = self.path("p.pb.gz"), self.path("expect")
        proc = record(["--exact", "-q", "-o", out, "--", target("sites-static"),
                       "--expect", exp])
        self.assertRecorded(proc)
        prof = self.check_exact(out, exp)
        self.assertIn("allocator: " + target("sites-static"), prof.comments)

    def test_probe_sites_and_probe_at_entry(self):
        """-v names each site: glibc's free past its single-stepped test, at its je. With
        --probe-at-entry every probe is at an entry, and the counts are the same."""
        for extra, free_site in (([], "probe at +3 je (emulated), after test"),
                                 (["--probe-at-entry"], "probe at entry (--probe-at-entry)")):
            with self.subTest(extra=extra):
                out, exp = self.path("p.pb.gz"), self.path("expect")
                proc = record(["--exact", "-v", "-q", "-o", out, *extra, "--", SITES,
                               "--expect", exp])
                self.assertRecorded(proc)
                lines = proc.stderr.splitlines()
                free = [i for i, ln in enumerate(lines) if re.search(r"  free +/.*libc", ln)]
                self.assertTrue(free, proc.stderr)
                self.assertIn(free_site, lines[free[0] + 1])
                self.check_exact(out, exp)

    def test_exit_status_passes_through(self):
        out = self.path("p.pb.gz")
        proc = record(["-q", "-o", out, "--", SITES, "--threads", "0"])
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertTrue(os.path.exists(out), "profile written even when the command fails")


def preloaded(lib):
    """allocprof's own environment with LD_PRELOAD=lib: the command inherits it, and its
    dynamic linker resolves it before the command starts."""
    return dict(os.environ, LD_PRELOAD=os.path.join(LIBDIR, lib))


@needs("root", "pprof")
class Programs(Case):
    def test_inlined_frames(self):
        """Every inlined frame, innermost first, then the real function, then its caller;
        the program is gone long before anything reads its mappings."""
        out = self.path("p.pb.gz")
        proc = record(["--exact", "-q", "-o", out, "--", target("inlined")])
        self.assertRecorded(proc)
        prof = pprofraw.read(out)
        stacks = [prof.stack(s) for s in prof.samples if prof.stack(s)[0] == "l3"]
        self.assertEqual(len(stacks), 1, [prof.stack(s) for s in prof.samples])
        self.assertEqual(stacks[0][:5], ["l3", "l2", "l1", "outer_fn", "main"])
        self.assertEqual(prof.flat("alloc_objects")["l3"], 100)
        self.assertEqual(prof.flat("alloc_space")["l3"], 50 * 32 + 50 * 33)

    def test_exec_into_static_program(self):
        """env execs a static program: no dynamic linker reports it, the exec does; its
        probes come late and the profile says so."""
        out, exp = self.path("p.pb.gz"), self.path("expect")
        # Long enough (about a second under --exact) to be still running when it is attached.
        proc = record(["--exact", "-q", "-o", out, "--", "env", target("sites-static"),
                       "--rounds", "4000", "--expect", exp])
        self.assertRecorded(proc)
        expect = read_expect(exp)
        prof = pprofraw.read(out)
        self.assertIn("allocator: " + target("sites-static"), prof.comments)
        self.assertTrue(any("probes attached after it started running" in c
                            for c in prof.comments), prof.comments)
        objects = prof.flat("alloc_objects")
        for site, (n, _) in expect.items():
            self.assertLessEqual(objects.get(site, 0), n, site)


@needs("root", "pprof")
class OtherAllocators(Case):
    """Preloaded allocators are traced through themselves, and counts stay exact: calls the
    allocator makes to its own entry points are not counted again."""

    def run_with(self, lib):
        out, exp = self.path("p.pb.gz"), self.path("expect")
        proc = record(["--exact", "-q", "-o", out, "--", SITES, "--expect", exp],
                      env=preloaded(lib))
        self.assertRecorded(proc)
        expect = read_expect(exp)
        prof = pprofraw.read(out)
        objects, space = prof.flat("alloc_objects"), prof.flat("alloc_space")
        for site, (n, nbytes) in expect.items():
            self.assertEqual((objects.get(site, 0), space.get(site, 0)), (n, nbytes), site)
        allocators = [c for c in prof.comments if c.startswith("allocator: ")]
        self.assertEqual(len(allocators), 1, allocators)
        self.assertIn(lib.split(".so")[0], allocators[0])
        self.assertIn("lost allocations: 0", prof.comments)

    def test_jemalloc(self):
        self.run_with("libjemalloc.so.2")

    def test_tcmalloc(self):
        self.run_with("libtcmalloc_minimal.so.4")

    def test_mimalloc(self):
        self.run_with("libmimalloc.so.2")

    def test_preload_through_exec(self):
        """`-- env LD_PRELOAD=... CMD`: env runs first and execs CMD, whose preloaded allocator
        is attached when its dynamic linker reports it, just after CMD starts. The profile
        says so; what it has is never more than the truth, and each program is labelled
        with its own name."""
        out, exp, log = self.path("p.pb.gz"), self.path("expect"), self.path("log")
        # CMD waits until its allocator is attached (-v says so), then allocates.
        with open(log, "w") as errf:
            ap = subprocess.Popen([ALLOCPROF, "record", "--exact", "-v", "-o", out, "--", "env",
                                   "LD_PRELOAD=" + os.path.join(LIBDIR, "libjemalloc.so.2"),
                                   SITES, "--wait", "--rounds", "20", "--expect", exp],
                                  stdout=subprocess.DEVNULL, stderr=errf)
            try:
                attached = re.compile(r"pid (\d+) \(sites\): \d+ probes attached")
                text = wait_for_log(log, "sites: waiting for SIGUSR1", attached, proc=ap)
                pid = int(attached.search(text)[1])
                os.kill(pid, signal.SIGUSR1)
                self.assertEqual(ap.wait(timeout=120), 0, open(log).read())
            finally:
                ap.kill()
                ap.wait()
        expect = read_expect(exp)
        prof = pprofraw.read(out)
        self.assertTrue(any("probes attached after it started running" in c
                            for c in prof.comments), prof.comments)
        self.assertIn("allocator: /usr/lib/x86_64-linux-gnu/libjemalloc.so.2", prof.comments)
        objects = prof.flat("alloc_objects")
        for site, (n, _) in expect.items():
            self.assertLessEqual(objects.get(site, 0), n, site)
        for s in prof.samples:
            leaf = prof.stack(s)[0]
            if leaf in expect:
                self.assertEqual(s.labels["comm"], ["sites"], leaf)


# What tests/targets/cxxthrow.cc asks for: nearly all of a 47-bit address space.
TOO_MUCH = (1 << 47) - (1 << 20)


@needs("root", "pprof")
class CxxNew(Case):
    """operator new is probed only where the allocator itself provides it; delete where the
    allocator provides it, else through free. What was never deleted is in use at exit.

    A new that may throw gets no return probe (the C++ unwinder cannot pass the kernel's
    trampoline): libstdc++'s gives its block through the malloc it calls; an allocator's own
    (jemalloc, tcmalloc, mimalloc) calls nothing probed, so its blocks are not in inuse_*,
    and the comments and a warning say how many. The nothrow variant has its return probe."""

    THROWING = ("site_new", "site_new_array", "site_new_aligned")

    def run_cxx(self, preload):
        out, exp = self.path("p.pb.gz"), self.path("expect")
        proc = record(["--exact", "-q", "-o", out, "--", target("cxxsites"), "--expect", exp],
                      env=preloaded(preload) if preload else None)
        self.assertRecorded(proc)
        expect = read_expect_all(exp)
        prof = pprofraw.read(out)
        types = ("alloc_objects", "alloc_space", "inuse_objects", "inuse_space")
        flats = [prof.flat(t) for t in types]
        untracked = 0
        for site, values in expect.items():
            self.assertGreater(values[2], 0, "the target keeps some of " + site)
            # C++ names are demangled: "site_new(int)".
            got = [tuple(fl[f] for fl in flats) for f in flats[0] if f.startswith(site + "(")]
            # An allocator's throwing new is tracked only if it calls a probed function
            # (jemalloc's aligned new does): then exactly, else not at all.
            if preload and site in self.THROWING and got == [values[:2] + (0, 0)]:
                untracked += values[0]
                continue
            self.assertEqual(got, [values], site)
        self.assertEqual(lost(prof), [])
        said = [c for c in prof.comments if c.startswith("sampled throwing operator new")]
        if preload:
            # The target's own, and a few of the C++ runtime's (std::thread's state).
            self.assertEqual(len(said), 1, prof.comments)
            n = int(said[0].rsplit(": ", 1)[1])
            self.assertTrue(untracked <= n <= untracked + 20, said)
            self.assertIn("break C++ exceptions): %d" % n, proc.stderr)
        else:
            self.assertTrue(said and said[0].endswith("exceptions): 0"), prof.comments)
        return prof

    def test_glibc_counts_new_at_malloc(self):
        prof = self.run_cxx(None)
        self.assertIn("allocator: /usr/lib/x86_64-linux-gnu/libc.so.6", prof.comments)

    def test_jemalloc_new_probed_in_jemalloc(self):
        self.run_cxx("libjemalloc.so.2")

    def test_tcmalloc_new(self):
        self.run_cxx("libtcmalloc_minimal.so.4")

    def test_mimalloc_new(self):
        self.run_cxx("libmimalloc.so.2")

    def test_bad_alloc_is_caught_under_tracing(self):
        """A failing new throws std::bad_alloc, and the program catches it, traced or not:
        default and --exact, uprobe sessions and classic return probes, four allocators.
        The failed allocations are not in alloc_* (but see below)."""
        # (mimalloc aborts on such a request by itself, traced or not.)
        for preload in (None, "libjemalloc.so.2", "libtcmalloc_minimal.so.4"):
            for mode in ([], ["--exact"]):
                for sessions in (True, False):
                    with self.subTest(preload=preload, mode=mode, sessions=sessions):
                        env = preloaded(preload) if preload else dict(os.environ)
                        if not sessions:
                            env["ALLOCPROF_NO_SESSIONS"] = "1"
                        out = self.path("p.pb.gz")
                        proc = record(["-q", "-o", out, *mode, "--", target("cxxthrow")],
                                      env=env)
                        self.assertRecorded(proc)
                        self.assertIn("caught 3, null 3", proc.stdout)
                        space = pprofraw.read(out).flat("alloc_space")
                        self.assertNotIn("site_nothrow(unsigned long)", space)
                        # An allocator's own throwing new calls nothing probed, so nothing
                        # tells that it failed: its requests stay in alloc_*.
                        failed = space.pop("site_throwing(unsigned long)", 0)
                        self.assertEqual(failed, 3 * TOO_MUCH if preload else 0)
                        self.assertLess(sum(space.values()), 1 << 30, space)

@needs("root")
class ProbeSafety(Case):
    """The kernel takes `xchg %eax,%r8d` (41 90) for a nop by its opcode byte: a probe on it
    would skip it. libmishandled.so's malloc starts with one; the program checks it ran."""

    def test_mishandled_first_instruction_is_never_probed(self):
        env = dict(os.environ, LD_PRELOAD=target("libmishandled.so"))
        for extra, site in ((["--alloc-only"], "probe at +2 push (emulated), after xchg"),
                            ([], "probe at +2 push (emulated), after xchg"),
                            (["--alloc-only", "--probe-at-entry"], None),
                            (["--probe-at-entry"], None)):
            with self.subTest(extra=extra):
                proc = record(["-v", "-q", "-o", self.path("p.pb.gz"), *extra, "--",
                               target("mishandled")], env=env)
                self.assertRecorded(proc, proc.stdout)
                self.assertIn("seen_r8=7", proc.stdout)
                if site:
                    lines = proc.stderr.splitlines()
                    at = [i for i, ln in enumerate(lines)
                          if re.search(r"  malloc +.*libmishandled", ln)]
                    self.assertTrue(at, proc.stderr)
                    self.assertIn(site, lines[at[0] + 1])
                else:
                    self.assertIn("malloc in %s: not probed: the kernel mishandles its first "
                                  "instruction 'xchg'" % target("libmishandled.so"),
                                  proc.stderr)


def sampled_mix_sizes(threads, rounds):
    """The sizes `sites --profile sampled` allocates, per site (mirrors worker() there)."""
    sizes = {"site_malloc": [], "site_medium": [], "site_mixed": [], "site_large": []}
    small = (16, 24, 100, 1000, 4096)
    for i in range(rounds):
        sizes["site_malloc"] += [small[(i * 20 + k) % 5] for k in range(20)]
        sizes["site_medium"].append(32768 + 64 * (i % 16))
        sizes["site_mixed"] += [64, 262144]
        if i % 16 == 0:
            sizes["site_large"].append((1 + (i // 16) % 4) << 20)
    return {site: v * threads for site, v in sizes.items()}


def estimate_sd(sizes, rate):
    """Standard deviation of the unbiased estimates of bytes and of objects: an allocation of
    size s is kept with p = 1 - exp(-s/R) and then counts 1/p (s/p bytes), so it adds
    s^2 (1-p)/p to the variance of bytes and (1-p)/p to that of objects."""
    vb = vo = 0.0
    for s in sizes:
        p = -math.expm1(-s / rate)
        vb += s * s * (1 - p) / p
        vo += (1 - p) / p
    return math.sqrt(vb), math.sqrt(vo)


@needs("root", "pprof")
class Sampled(Case):
    """Sampling with --sample-bytes 64KiB on a size mix whose truth the target reports.

    The bounds (5% of the total, 10% per large site) are checked against the estimator's own
    standard deviation, computed from the sizes the target allocates: each bound must be at
    least 5 standard deviations wide, so a correct sampler fails with odds below 1 in 10^6.
    """

    RATE = 65536
    THREADS, ROUNDS = 8, 2000

    def test_sampled_estimates(self):
        out, exp = self.path("p.pb.gz"), self.path("expect")
        proc = record(["--sample-bytes", "64k", "-q", "-o", out, "--", SITES, "--profile",
                       "sampled", "--threads", str(self.THREADS), "--rounds",
                       str(self.ROUNDS), "--expect", exp], timeout=300)
        self.assertRecorded(proc)
        expect = read_expect(exp)
        sizes = sampled_mix_sizes(self.THREADS, self.ROUNDS)
        for site, v in sizes.items():
            self.assertEqual((len(v), sum(v)), expect[site], "the test's model of " + site)
        prof = pprofraw.read(out)
        self.assertEqual(prof.period, self.RATE)
        space, objs = prof.flat("alloc_space"), prof.flat("alloc_objects")

        true_total = sum(b for _, b in expect.values())
        sd_total = estimate_sd([s for v in sizes.values() for s in v], self.RATE)[0]
        self.assertGreater(0.05 * true_total, 5 * sd_total)
        got_total = sum(space.get(s, 0) for s in expect)
        self.assertLess(abs(got_total - true_total), 0.05 * true_total,
                        "total %d vs %d" % (got_total, true_total))

        for site in ("site_medium", "site_mixed", "site_large"):
            true = expect[site][1]
            sd = estimate_sd(sizes[site], self.RATE)[0]
            self.assertGreater(0.10 * true, 5 * sd, site)
            self.assertLess(abs(space.get(site, 0) - true), 0.10 * true,
                            "%s: %d vs %d" % (site, space.get(site, 0), true))
        # Objects of the medium site (sampled with p = 0.39): also within 10%, 5 sd wide.
        true = expect["site_medium"][0]
        self.assertGreater(0.10 * true, 5 * estimate_sd(sizes["site_medium"], self.RATE)[1])
        self.assertLess(abs(objs.get("site_medium", 0) - true), 0.10 * true)
        self.assertIn("lost allocations: 0", prof.comments)


@needs("root", "pprof")
class ProfileShape(Case):
    """What the standalone pprof sees: types, period, names, deep stacks, labels."""

    @classmethod
    def setUpClass(cls):
        import tempfile
        cls._dir = tempfile.TemporaryDirectory(prefix="allocprof-shape-")
        cls.out = os.path.join(cls._dir.name, "p.pb.gz")
        cls.proc = record(["--exact", "-q", "-o", cls.out, "--", SITES, "--rounds", "50"])
        cls.pid = int(re.search(r"target: command .* \(pid (\d+)\)",
                                pprofraw.read(cls.out).raw).group(1)) \
            if cls.proc.returncode == 0 else 0

    @classmethod
    def tearDownClass(cls):
        cls._dir.cleanup()

    def test_types_and_period(self):
        self.assertRecorded(self.proc)
        prof = pprofraw.read(self.out)
        self.assertEqual(prof.types[:2], ["alloc_objects/count", "alloc_space/bytes"])
        self.assertEqual(prof.default_type, "alloc_space")
        self.assertEqual(prof.period_type, "space bytes")
        self.assertEqual(prof.period, 1)

    def test_function_names_and_deep_stack(self):
        prof = pprofraw.read(self.out)
        deep = [prof.stack(s) for s in prof.samples if prof.stack(s)[0] == "site_deep"]
        self.assertEqual(len(deep), 1)
        stack = deep[0]
        self.assertGreaterEqual(len(stack), 12)
        self.assertEqual(stack[:3], ["site_deep", "chain", "chain"])
        self.assertEqual(stack.count("chain"), 21)
        self.assertIn("worker", stack)

    def test_immediate_caller_is_the_leaf(self):
        prof = pprofraw.read(self.out)
        leaves = set(prof.flat("alloc_objects"))
        for site in ("site_malloc", "site_calloc", "site_realloc", "site_posix_memalign"):
            self.assertIn(site, leaves)
        self.assertNotIn("malloc", leaves)

    def test_labels_select_the_process(self):
        prof = pprofraw.read(self.out, "-tagfocus=pid=%d" % self.pid)
        self.assertGreater(len(prof.samples), 0)
        for s in prof.samples:
            self.assertEqual(s.labels["pid"], [str(self.pid)])
            self.assertEqual(s.labels["comm"], ["sites"])
        prof = pprofraw.read(self.out, "-tagfocus=comm=sites")
        self.assertGreater(len(prof.samples), 0)
        none = pprofraw.read(self.out, "-tagfocus=pid=%d" % (self.pid + 100000))
        self.assertEqual(none.samples, [])

    def test_mappings_carry_build_ids(self):
        prof = pprofraw.read(self.out)
        exe = [m for m in prof.mappings if m.split()[2] == target("sites")]
        self.assertEqual(len(exe), 1, prof.mappings)
        self.assertRegex(exe[0], r" [0-9a-f]{40} ")
        # The executable is the profile's main binary (pprof's "File:").
        self.assertIn(" " + target("sites") + " ", prof.mappings[0] + " ")
