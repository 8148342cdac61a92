#!/usr/bin/env python3
"""Runs every test: the C unit tests (build/tests/unit-*) and the integration tests
(tests/test_*.py, Python's unittest), and ends with one line: "N passed, N failed", followed
by ", N skipped" when tests were skipped (each has a "SKIP <id>: <reason>" line: needs root,
needs pprof).

  tests/run.py [-v] [PATTERN...]   PATTERN selects tests whose id contains it
"""

import glob
import os
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "lib"))


class Result(unittest.TextTestResult):
    def startTest(self, test):
        self._t0 = time.time()
        super().startTest(test)

    def addSuccess(self, test):
        super().addSuccess(test)
        self.stream.write("PASS %s (%.1fs)\n" % (test.id(), time.time() - self._t0))
        self.stream.flush()

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self.stream.write("FAIL %s\n%s\n" % (test.id(), self._exc_info_to_string(err, test)))
        self.stream.flush()

    def addError(self, test, err):
        super().addError(test, err)
        self.stream.write("FAIL %s (error)\n%s\n" % (test.id(),
                                                    self._exc_info_to_string(err, test)))
        self.stream.flush()

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self.stream.write("SKIP %s: %s\n" % (test.id(), reason))
        self.stream.flush()


def selected(test_id, patterns):
    return not patterns or any(p in test_id for p in patterns)


def iter_tests(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from iter_tests(t)
        else:
            yield t


def run_unit_binaries(patterns):
    """Each binary prints PASS/FAIL lines of its own; they are counted here."""
    passed = failed = 0
    binaries = [b for b in glob.glob(os.path.join(ROOT, "build", "tests", "unit-*"))
                if os.access(b, os.X_OK) and not b.endswith(".d")]
    for binary in sorted(binaries):
        name = "unit." + os.path.basename(binary)[len("unit-"):]
        if not selected(name, patterns):
            continue
        proc = subprocess.run([binary], capture_output=True, text=True, timeout=300)
        sys.stdout.write(proc.stdout)
        if proc.stderr:
            sys.stdout.write(proc.stderr)
        p = proc.stdout.count("\nPASS ") + proc.stdout.startswith("PASS ")
        f = proc.stdout.count("\nFAIL ") + proc.stdout.startswith("FAIL ")
        if proc.returncode != 0 and f == 0:
            sys.stdout.write("FAIL %s: exited %d\n" % (name, proc.returncode))
            f = 1
        passed += p
        failed += f
    return passed, failed


def main():
    args = [a for a in sys.argv[1:] if a != "-v"]
    passed, failed = run_unit_binaries(args)
    loader = unittest.TestLoader()
    suite = unittest.TestSuite()
    for t in iter_tests(loader.discover(HERE, pattern="test_*.py", top_level_dir=HERE)):
        if selected(t.id(), args):
            suite.addTest(t)
    runner = unittest.TextTestRunner(stream=sys.stdout, resultclass=Result, verbosity=0)
    result = runner.run(suite)
    bad = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    passed += result.testsRun - bad - len(result.skipped)
    failed += bad
    skipped = len(result.skipped)
    print("%d passed, %d failed%s" % (passed, failed,
                                      ", %d skipped" % skipped if skipped else ""))
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
