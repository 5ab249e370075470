"""The decision log seen from outside: fail closed when it cannot record
(SPEC §1 "Fail closed", §3 503), batched durability, the hash chain
(`log verify`) and fingerprints (`log find-value`)."""

import sqlite3
import time

from harness import (IBAN, TEXT_EMAIL, TEXT_IBAN, TEXT_PUBLIC,
                     assert_error_shape, check)


def test_log_locked_fails_closed_with_503(t):
    env = t.env(limits={"log_timeout": "1s"})
    check(env.chat(TEXT_PUBLIC).status == 200, "not serving")
    before = env.counts()
    # Another process holds the database's write lock past log_timeout.
    lock = sqlite3.connect(env.db_path, timeout=5, isolation_level=None)
    try:
        lock.execute("BEGIN IMMEDIATE")
        t0 = time.time()
        r = env.chat(TEXT_IBAN, timeout=20)
        dt = time.time() - t0
        assert_error_shape(r, 503)
        check(dt < 10, "the 503 took %.1f s (log_timeout is 1 s)", dt)
        after = env.counts()
        check(after == before, "forwarded while the log could not record: "
              "%s -> %s", before, after)
        if env.admin_port:
            rz = env.admin("/readyz")
            if rz.status == 200:
                t.note("/readyz stayed 200 while the log was locked")
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    # once the log can record again, so does the gateway
    deadline = time.time() + 15
    r = None
    while time.time() < deadline:
        r = env.chat(TEXT_PUBLIC, timeout=20)
        if r.status == 200:
            break
        time.sleep(0.3)
    check(r is not None and r.status == 200, "still refusing after the lock "
          "was released: %r", r)
test_log_locked_fails_closed_with_503.timeout = 60


def test_batched_durability_records_every_decision(t):
    env = t.env(durability="batched")
    ids = []
    for text in (TEXT_PUBLIC, TEXT_IBAN, TEXT_EMAIL):
        r = env.chat(text)
        check(r.status == 200, "batched: %d", r.status)
        ids.append(r.header("X-Sovgate-Decision"))
    for did in ids:
        check(env.decision(did, wait=3.0) is not None,
              "batched mode lost decision %s", did)


def test_log_verify_and_tamper_detection(t):
    env = t.env()
    ids = [env.chat(x).header("X-Sovgate-Decision") for x in
           (TEXT_PUBLIC, TEXT_IBAN, TEXT_EMAIL, TEXT_PUBLIC)]
    env.stop_gateway()
    rc, out, err = env.run_cli("log", "verify")
    check(rc == 0, "log verify on an intact log: exit %d: %s %s", rc,
          out[-300:], err[-300:])
    # an insider downgrades the IBAN request's level
    db = sqlite3.connect(env.db_path, isolation_level=None)
    try:
        for (name,) in db.execute("SELECT name FROM sqlite_master WHERE "
                                  "type='trigger'").fetchall():
            db.execute('DROP TRIGGER "%s"' % name)
        n = db.execute("UPDATE decisions SET level='public' WHERE id=?",
                       (ids[1],)).rowcount
    finally:
        db.close()
    check(n == 1, "could not edit the row")
    rc, out, err = env.run_cli("log", "verify")
    check(rc == 1, "log verify after tampering: exit %d (want 1): %s %s",
          rc, out[-300:], err[-300:])
    check(ids[1] in out + err or "seq" in (out + err).lower() or
          "row" in (out + err).lower(), "verify does not name the bad row: "
          "%s %s", out[-300:], err[-300:])


def test_log_find_value(t):
    env = t.env()
    r1 = env.chat(TEXT_IBAN)
    r2 = env.chat("Second refund to %s" % IBAN.replace(" ", ""))
    r3 = env.chat(TEXT_PUBLIC)
    check(r1.status == r2.status == r3.status == 200, "not served")
    rc, out, err = env.run_cli("log", "find-value", IBAN)
    check(rc == 0, "find-value exit %d: %s", rc, err[-300:])
    for r in (r1, r2):
        check(r.header("X-Sovgate-Decision") in out,
              "find-value did not find %s: %s",
              r.header("X-Sovgate-Decision"), out[-500:])
    check(r3.header("X-Sovgate-Decision") not in out,
          "find-value found an unrelated decision")
    rc, out, err = env.run_cli("log", "find-value",
                               "FR76 3000 6000 0112 3456 7890 190")
    check(r1.header("X-Sovgate-Decision") not in out,
          "find-value matched another IBAN")
