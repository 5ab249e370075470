#!/usr/bin/env python3
"""Runs sovgate's end-to-end tests: every function test_* in the modules
test_*.py beside this file, in file order, each bounded in time, each with
its own gateway and mocks (killed at the end whatever happens).

  run.py [-k SUBSTRING] [-x] [--keep] [--list] [-v]

Prints one line per test and last a line "N passed, N failed"; exits 1 if
any test failed, 77 (automake's SKIP) when the gateway binary is missing.

A test that shows a known, reported gateway bug carries the attribute
`known_bug = "what"`: while it fails it prints "xfail" and does not fail
the run (E2E_STRICT=1 counts it as a failure); once it passes it prints a
reminder to remove the marker.
"""

import argparse
import importlib.util
import os
import signal
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402

DEFAULT_TIMEOUT = 30


class TestTimeout(Exception):
    pass


class Context:
    """Handed to each test: makes environments and cleans them up."""

    def __init__(self, keep):
        self.envs = []
        self.keep = keep
        self.notes = []

    def env(self, **kw):
        e = harness.Env.__new__(harness.Env)
        self.envs.append(e)
        e.__init__(self, **kw)
        return e

    def note(self, msg):
        self.notes.append(msg)

    def close(self, failed):
        for e in self.envs:
            try:
                if hasattr(e, "procs"):
                    e.close(keep=self.keep and failed)
            except Exception as ex:  # cleanup must go on
                sys.stderr.write("cleanup: %r\n" % ex)


def load_tests(pattern):
    tests = []
    for fn in sorted(os.listdir(HERE)):
        if not (fn.startswith("test_") and fn.endswith(".py")):
            continue
        spec = importlib.util.spec_from_file_location(fn[:-3],
                                                      os.path.join(HERE, fn))
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        funcs = [(getattr(mod, n).__code__.co_firstlineno, n, getattr(mod, n))
                 for n in dir(mod) if n.startswith("test_") and
                 callable(getattr(mod, n))]
        for _, name, f in sorted(funcs):
            full = "%s.%s" % (fn[5:-3], name[5:])
            if pattern and not any(p in full for p in pattern):
                continue
            tests.append((full, f))
    return tests


def on_alarm(signum, frame):
    raise TestTimeout("test exceeded its time limit")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-k", action="append", default=[],
                    help="run tests whose name contains this (repeatable)")
    ap.add_argument("-x", action="store_true", help="stop at first failure")
    ap.add_argument("--keep", action="store_true",
                    help="keep a failed test's temporary directory")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("-v", action="store_true", help="show logs on failure")
    a = ap.parse_args()

    tests = load_tests(a.k)
    if a.list:
        for name, _ in tests:
            print(name)
        return 0
    if not (os.path.isfile(harness.SOVGATE_BIN) and
            os.access(harness.SOVGATE_BIN, os.X_OK)):
        print("SKIP: no gateway binary at %s" % harness.SOVGATE_BIN)
        return 77
    signal.signal(signal.SIGALRM, on_alarm)
    # a SIGTERM from make or CI: clean up like a failure
    signal.signal(signal.SIGTERM, lambda s, f: (_ for _ in ()).throw(
        KeyboardInterrupt()))
    passed = failed = skipped = xfailed = 0
    strict = os.environ.get("E2E_STRICT") == "1"
    failures = []
    t_all = time.time()
    for name, f in tests:
        ctx = Context(a.keep)
        t0 = time.time()
        err = None
        skip = None
        limit = getattr(f, "timeout", DEFAULT_TIMEOUT)
        signal.alarm(limit)
        try:
            f(ctx)
        except KeyboardInterrupt:
            signal.alarm(0)
            ctx.close(True)
            print("interrupted during %s" % name)
            print("%d passed, %d failed" % (passed, failed + 1))
            return 1
        except harness.Skip as e:
            skip = str(e)
        except harness.TestFailure as e:
            err = str(e)
        except TestTimeout:
            err = "timed out after %d s" % limit
        except Exception:
            err = traceback.format_exc().rstrip()
        finally:
            signal.alarm(0)
        dt = time.time() - t0
        known = getattr(f, "known_bug", None)
        if skip is None and err is not None and known and not strict:
            xfailed += 1
            print("xfail %-50s %5.2fs  known gateway bug: %s\n      %s" % (
                name, dt, known, err.splitlines()[0][:300]), flush=True)
            ctx.close(False)
            continue
        if skip is not None:
            skipped += 1
            print("skip  %-50s %5.2fs  (%s)" % (name, dt, skip), flush=True)
        elif err is None:
            passed += 1
            if known:
                ctx.note("fixed? remove its known_bug marker")
            print("ok    %-50s %5.2fs%s" % (name, dt, "".join(
                "  (%s)" % n for n in ctx.notes)), flush=True)
        else:
            failed += 1
            failures.append(name)
            print("FAIL  %-50s %5.2fs\n      %s" % (
                name, dt, err.replace("\n", "\n      ")), flush=True)
            if a.v or os.environ.get("E2E_VERBOSE"):
                for e in ctx.envs:
                    if hasattr(e, "gw_log"):
                        print("      " + e.logs().replace("\n", "\n      "))
            elif ctx.envs and hasattr(ctx.envs[-1], "gw_log"):
                tail = ctx.envs[-1].tail(ctx.envs[-1].gw_log, 6)
                print("      gateway log, last lines:\n        " +
                      tail.replace("\n", "\n        "))
        ctx.close(err is not None)
        if err is not None and a.x:
            break
    if failures:
        print("failed: " + " ".join(failures))
    print("(%.1f s%s%s)" % (time.time() - t_all, ", %d skipped" % skipped
                            if skipped else "", ", %d known gateway bug(s)"
                            % xfailed if xfailed else ""))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
