"""Operating sovgate (issue 6): the admin plane seen from outside.

/metrics counters move as requests are answered, denied and failed over;
/readyz follows the decision log and the backends' health; SIGTERM lets a
stream finish and exits 0; a SIGHUP storm leaves the gateway serving and
consistent; the admin listener answers malformed requests with 400, is
bound to its own address only, and is not the data port.

Metrics are read in the Prometheus text format by a small parser below;
every check compares a scrape after the action with one taken before it,
so the tests hold whatever else the gateway counted earlier."""

import hashlib
import math
import os
import re
import signal
import socket
import sqlite3
import threading
import time

from harness import (TEXT_AWS, TEXT_IBAN, TEXT_PUBLIC, assert_error_shape,
                     check, parse_http)

# ---- the Prometheus text format ----

_SAMPLE_RE = re.compile(
    r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$')
_LABEL_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*'
                       r'(,|$)')


def _unescape(v):
    return re.sub(r'\\(.)', lambda m: "\n" if m.group(1) == "n"
                  else m.group(1), v)


def parse_labels(s):
    out = {}
    pos = 0
    s = s or ""
    while pos < len(s):
        m = _LABEL_RE.match(s, pos)
        if not m:
            raise ValueError("bad label set %r at %d" % (s, pos))
        out[m.group(1)] = _unescape(m.group(2))
        pos = m.end()
    return out


class Metrics:
    """One scrape: samples as {(name, frozenset(labels)): value}, families
    as {name: type}. Parsing is strict: a line that is neither a comment
    nor a valid sample fails the test."""

    def __init__(self, text):
        self.text = text
        self.samples = {}
        self.types = {}
        for ln in text.splitlines():
            if not ln.strip():
                continue
            if ln.startswith("#"):
                parts = ln.split(None, 3)
                if len(parts) >= 4 and parts[1] == "TYPE":
                    check(parts[2] not in self.types, "TYPE of %s given "
                          "twice in /metrics", parts[2])
                    self.types[parts[2]] = parts[3].strip()
                continue
            m = _SAMPLE_RE.match(ln)
            check(m is not None, "not a Prometheus sample line: %r", ln)
            try:
                labels = parse_labels(m.group(2))
                value = float(m.group(3))
            except ValueError as e:
                raise AssertionError("bad sample line %r: %s" % (ln, e))
            key = (m.group(1), frozenset(labels.items()))
            check(key not in self.samples, "sample given twice: %r", ln)
            self.samples[key] = value

    def get(self, name, **labels):
        """The sum of every series of name whose labels include these
        (0 when there is none)."""
        want = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items()
                   if n == name and want <= set(ls))

    def series(self, name):
        return [(dict(ls), v) for (n, ls), v in self.samples.items()
                if n == name]

    def has(self, name):
        return any(n == name for n, _ in self.samples)


def scrape(env):
    r = env.admin("/metrics")
    check(r.status == 200, "/metrics answered %d: %r", r.status, r.body[:200])
    ct = r.header("Content-Type") or ""
    check(ct.startswith("text/plain"), "/metrics Content-Type %r", ct)
    return Metrics(r.body.decode("utf-8"))


def wait_metric(env, pred, timeout=5.0):
    """Scrape until pred(metrics) holds; returns the last scrape."""
    deadline = time.time() + timeout
    while True:
        m = scrape(env)
        if pred(m) or time.time() >= deadline:
            return m
        time.sleep(0.05)


def delta(before, after, name, **labels):
    return after.get(name, **labels) - before.get(name, **labels)


# ---- the exposition itself ----

def test_metrics_exposition_is_valid(t):
    """Every family has a TYPE, counters are named *_total, histograms
    have cumulative buckets ending in +Inf == _count, and the metric
    names the README documents are all there once traffic has flowed."""
    env = t.env()
    check(env.chat(TEXT_PUBLIC).status == 200, "not serving")
    check(env.chat(TEXT_AWS).status == 403, "credential not denied")
    # a request is counted once its answer is written out, which may be
    # a moment after the client has read it
    m = wait_metric(env, lambda m: m.get(
        "sovgate_request_duration_seconds_count") >= 2)
    for (name, _), _v in m.samples.items():
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        check(name in m.types or base in m.types,
              "%s has no # TYPE line", name)
    for name, typ in m.types.items():
        check(typ in ("counter", "gauge", "histogram", "summary",
                      "untyped"), "%s has TYPE %r", name, typ)
        if typ == "counter":
            check(name.endswith("_total"), "counter %s is not named "
                  "*_total", name)
        if typ == "histogram":
            groups = {}
            for labels, v in m.series(name + "_bucket"):
                le = labels.pop("le")
                groups.setdefault(frozenset(labels.items()), []).append(
                    (math.inf if le == "+Inf" else float(le), v))
            check(groups, "histogram %s has no buckets", name)
            for ls, buckets in groups.items():
                buckets.sort()
                check(buckets[-1][0] == math.inf, "%s has no +Inf bucket",
                      name)
                counts = [v for _, v in buckets]
                check(counts == sorted(counts), "%s buckets are not "
                      "cumulative: %r", name, buckets)
                cnt = m.get(name + "_count", **dict(ls))
                check(counts[-1] == cnt, "%s: +Inf bucket %r != _count %r",
                      name, counts[-1], cnt)
    for name in ("sovgate_requests_total",
                 "sovgate_request_duration_seconds_count",
                 "sovgate_upstream_attempts_total",
                 "sovgate_findings_total", "sovgate_denials_total",
                 "sovgate_backend_up", "sovgate_log_queue_depth",
                 "sovgate_log_healthy", "sovgate_client_connections",
                 "sovgate_upstream_connections",
                 "sovgate_process_resident_memory_bytes",
                 "sovgate_process_open_fds"):
        check(m.has(name), "/metrics lacks %s", name)
    check(m.get("sovgate_log_healthy") == 1, "sovgate_log_healthy is %r",
          m.get("sovgate_log_healthy"))
    check(m.get("sovgate_process_resident_memory_bytes") > 1e6,
          "implausible RSS %r", m.get("sovgate_process_resident_memory_bytes"))
    check(m.get("sovgate_process_open_fds") > 3, "implausible fd count %r",
          m.get("sovgate_process_open_fds"))
    ups = dict((ls["backend"], v) for ls, v in m.series("sovgate_backend_up"))
    check(len(ups) == 5 and all(v == 1 for v in ups.values()),
          "sovgate_backend_up: %r", ups)


def test_policy_info_at_start(t):
    """The policy in force is visible from the first scrape, not only
    after a reload."""
    env = t.env()
    m = scrape(env)
    info = m.series("sovgate_policy_info")
    check(info, "no sovgate_policy_info before any reload")
    check(len(info) == 1, "several sovgate_policy_info series: %r", info)
    labels, v = info[0]
    check(v == 1, "sovgate_policy_info value %r", v)
    check(labels.get("name") == "hospital-default", "policy name %r",
          labels.get("name"))
    check(re.match(r"^[0-9a-f]{64}$", labels.get("sha256", "")),
          "policy sha256 %r", labels.get("sha256"))


# ---- counters move ----

def test_metrics_count_requests(t):
    env = t.env()
    before = scrape(env)
    for _ in range(3):
        check(env.chat(TEXT_PUBLIC).status == 200, "public not served")
    check(env.chat(TEXT_IBAN).status == 200, "IBAN not served")
    r = env.chat(TEXT_PUBLIC, key="not-a-client-key")
    check(r.status == 401, "unknown key got %d", r.status)
    after = wait_metric(env, lambda m: delta(
        before, m, "sovgate_request_duration_seconds_count") >= 5)
    d = delta(before, after, "sovgate_requests_total", client="claims-app",
              level="public", backend="mistral-eu", action="allow",
              status="200")
    check(d == 3, "sovgate_requests_total{public, mistral-eu, 200} moved by "
          "%r for 3 requests", d)
    d = delta(before, after, "sovgate_requests_total", client="claims-app",
              level="confidential", backend="onprem-vllm", action="allow",
              status="200")
    check(d == 1, "sovgate_requests_total{confidential, onprem-vllm, 200} "
          "moved by %r for 1 request", d)
    d = delta(before, after, "sovgate_requests_total", status="401")
    check(d == 1, "sovgate_requests_total{status=401} moved by %r", d)
    d = delta(before, after, "sovgate_request_duration_seconds_count")
    check(d == 5, "sovgate_request_duration_seconds_count moved by %r for 5 "
          "answers", d)
    d = delta(before, after, "sovgate_upstream_attempts_total",
              backend="mistral-eu", result="ok")
    check(d == 3, "attempts{mistral-eu, ok} moved by %r", d)
    d = delta(before, after, "sovgate_upstream_attempts_total",
              backend="onprem-vllm", result="ok")
    check(d == 1, "attempts{onprem-vllm, ok} moved by %r", d)
    d = delta(before, after, "sovgate_findings_total", type="iban")
    check(d == 1, "sovgate_findings_total{type=iban} moved by %r", d)
    check(delta(before, after, "sovgate_failovers_total") == 0,
          "failovers counted without a failure")
    check(delta(before, after, "sovgate_denials_total") == 0,
          "denials counted without a denial")
    # the mocks agree: what the counters say was forwarded, was
    c = env.counts()
    check(c["mistral-eu"] == 3 and c["onprem-vllm"] == 1 and
          sum(c.values()) == 4, "mock counts %s", c)


def test_metrics_count_denials_by_cause(t):
    env = t.env()
    before = scrape(env)
    r = env.chat(TEXT_AWS)
    assert_error_shape(r, 403, "policy_denied")
    r = env.chat(TEXT_IBAN, model="gpt-4o")
    assert_error_shape(r, 403, "policy_denied", "no_allowed_backend")
    # Denials are counted when the decision is made, requests when the
    # answer has been written out: the client can read its 403 before
    # the second count moves (seen under ASan in CI). Wait for both.
    after = wait_metric(env, lambda m: delta(
        before, m, "sovgate_denials_total") >= 2 and delta(
        before, m, "sovgate_requests_total", action="deny") >= 2)
    d = delta(before, after, "sovgate_denials_total", cause="policy")
    check(d == 2, "sovgate_denials_total{cause=policy} moved by %r for 2 "
          "denials", d)
    check(delta(before, after, "sovgate_denials_total", cause="fault") == 0,
          "a policy denial was counted as a fault")
    d = delta(before, after, "sovgate_denials_total",
              reason="no_allowed_backend", cause="policy")
    check(d == 1, "denials{no_allowed_backend} moved by %r", d)
    d = delta(before, after, "sovgate_requests_total", action="deny",
              status="403")
    check(d == 2, "sovgate_requests_total{action=deny, 403} moved by %r", d)
    d = delta(before, after, "sovgate_findings_total",
              type="credential.aws_access_key")
    d2 = delta(before, after, "sovgate_findings_total")
    check(d2 >= 2, "findings of denied requests not counted (moved by %r)",
          d2)
    check(d == 1 or any(ls["type"].startswith("credential")
                        for ls, _ in after.series("sovgate_findings_total")),
          "no credential finding counted: %r",
          after.series("sovgate_findings_total"))
    check(sum(env.counts().values()) == 0, "a denied request was forwarded")


def test_metrics_count_failovers_and_backend_down(t):
    """A 500 from the first candidate: one failover, one failed attempt
    and one good one; three failures in a row mark the backend down
    (sovgate_backend_up 0) while /readyz stays 200 (others are up)."""
    env = t.env(mocks={"onprem-vllm": {"fail_status": 500}})
    before = scrape(env)
    r = env.chat(TEXT_IBAN)
    check(r.status == 200 and r.header("X-Sovgate-Backend") == "mistral-eu",
          "failover answer %d via %r", r.status,
          r.header("X-Sovgate-Backend"))
    after = wait_metric(env, lambda m: delta(
        before, m, "sovgate_requests_total") >= 1)
    d = delta(before, after, "sovgate_failovers_total")
    check(d == 1, "sovgate_failovers_total moved by %r for one failover", d)
    d = delta(before, after, "sovgate_upstream_attempts_total",
              backend="onprem-vllm")
    ok = delta(before, after, "sovgate_upstream_attempts_total",
               backend="onprem-vllm", result="ok")
    check(d == 1 and ok == 0, "attempts{onprem-vllm}: %r (ok %r)", d, ok)
    d = delta(before, after, "sovgate_upstream_attempts_total",
              backend="onprem-vllm", result="status")
    check(d == 1, "a 500 is not counted as result=\"status\" (see the "
          "README): %r", [x for x in after.series(
              "sovgate_upstream_attempts_total")
              if x[0]["backend"] == "onprem-vllm"])
    d = delta(before, after, "sovgate_upstream_attempts_total",
              backend="mistral-eu", result="ok")
    check(d == 1, "attempts{mistral-eu, ok} moved by %r", d)
    d = delta(before, after, "sovgate_requests_total", backend="mistral-eu",
              level="confidential", status="200")
    check(d == 1, "the failed-over request counted %r times under its "
          "answering backend", d)
    # two more failures in a row: onprem-vllm is marked down
    for _ in range(2):
        check(env.chat(TEXT_IBAN).status == 200, "failover failed")
    m = wait_metric(env, lambda m: m.get("sovgate_backend_up",
                                         backend="onprem-vllm") == 0)
    check(m.get("sovgate_backend_up", backend="onprem-vllm") == 0,
          "onprem-vllm failed 3 times in a row but sovgate_backend_up is %r",
          m.get("sovgate_backend_up", backend="onprem-vllm"))
    check(m.get("sovgate_backend_up", backend="mistral-eu") == 1,
          "mistral-eu is not up")
    check(delta(before, m, "sovgate_failovers_total") == 3,
          "sovgate_failovers_total moved by %r for three failovers",
          delta(before, m, "sovgate_failovers_total"))
    r = env.admin("/readyz")
    check(r.status == 200, "/readyz %d with four backends up: %r", r.status,
          r.body[:200])
    # all allowed candidates failing: 502, counted as such
    env.set_mock("mistral-eu", fail_status=503)
    b2 = scrape(env)
    r = env.chat(TEXT_IBAN)
    assert_error_shape(r, 502)
    m = wait_metric(env, lambda m: delta(b2, m, "sovgate_requests_total",
                                         status="502") >= 1)
    check(delta(b2, m, "sovgate_requests_total", status="502") == 1,
          "a 502 was not counted in sovgate_requests_total{status=502}")


def test_readyz_503_when_every_backend_is_down(t):
    env = t.env(mocks={b: {"fail_status": 500} for b in
                       ("mistral-eu", "azure-sweden", "bedrock-paris",
                        "vertex-netherlands", "onprem-vllm")})
    check(env.admin("/readyz").status == 200, "not ready at start")
    # a public request may try all five: three of them mark all down
    for _ in range(3):
        r = env.chat(TEXT_PUBLIC)
        check(r.status in (502, 403), "all failing: %d", r.status)
    r = env.admin("/readyz")
    check(r.status == 503, "/readyz %d with every backend down: %r",
          r.status, r.body[:200])
    check(b"backend" in r.body, "/readyz 503 does not say why: %r", r.body)
    m = scrape(env)
    ups = dict((ls["backend"], v) for ls, v in m.series("sovgate_backend_up"))
    check(ups and all(v == 0 for v in ups.values()), "backend_up %r", ups)
    check(env.admin("/healthz").status == 200, "/healthz must stay 200: the "
          "process is alive")


# ---- /readyz and the decision log ----

def test_readyz_follows_the_decision_log(t):
    """The log becomes unwritable, then writable again.

    The gateway holds its database open, so chmod on the file or its
    directory (and, as root, any permission) changes nothing for it, and
    renaming or replacing the file leaves it writing to the old inode.
    What does make its writes fail is another process holding the
    database's write lock past the writer's busy timeout: that is what this
    test does (a real disk-full or I/O error takes the same path in
    src/dlog.c: a failed commit marks the log unhealthy, a probe write
    every 500 ms marks it healthy again)."""
    env = t.env(limits={"log_timeout": "5s"})
    check(env.chat(TEXT_PUBLIC).status == 200, "not serving")
    r = env.admin("/readyz")
    check(r.status == 200, "/readyz %d at start: %r", r.status, r.body)
    before = scrape(env)
    lock = sqlite3.connect(env.db_path, timeout=5, isolation_level=None)
    try:
        lock.execute("BEGIN IMMEDIATE")
        # a request makes the writer try, and fail
        r = env.chat(TEXT_PUBLIC, timeout=20)
        assert_error_shape(r, 503)
        r = env.admin("/readyz")
        check(r.status == 503, "/readyz %d while the log cannot write: %r",
              r.status, r.body[:200])
        check(b"log" in r.body, "/readyz 503 does not name the decision "
              "log: %r", r.body)
        check(env.admin("/healthz").status == 200, "/healthz must stay 200")
        m = scrape(env)
        check(m.get("sovgate_log_healthy") == 0, "sovgate_log_healthy %r "
              "while the log cannot write", m.get("sovgate_log_healthy"))
        # while unhealthy, requests are refused at once (fail closed)
        t0 = time.time()
        r = env.chat(TEXT_PUBLIC, timeout=20)
        assert_error_shape(r, 503)
        check(time.time() - t0 < 1.5, "an unhealthy log took %.1f s to "
              "refuse", time.time() - t0)
        m = scrape(env)
        d = delta(before, m, "sovgate_denials_total", cause="fault")
        check(d >= 1, "refusals because of the log are not counted as "
              "denials{cause=fault} (moved by %r): %r", d,
              m.series("sovgate_denials_total"))
        check(delta(before, m, "sovgate_denials_total", cause="policy") == 0,
              "a log fault was counted as a policy denial")
        check(sum(env.counts().values()) == 1, "forwarded while the log "
              "could not record: %s", env.counts())
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    deadline = time.time() + 10
    while time.time() < deadline:
        r = env.admin("/readyz")
        if r.status == 200:
            break
        time.sleep(0.1)
    check(r.status == 200, "/readyz still %d after the log recovered: %r",
          r.status, r.body[:200])
    check(scrape(env).get("sovgate_log_healthy") == 1,
          "sovgate_log_healthy not back to 1")
    r = env.chat(TEXT_PUBLIC)
    check(r.status == 200, "not serving after the log recovered: %d",
          r.status)
test_readyz_follows_the_decision_log.timeout = 45


# ---- signals ----

def test_sigterm_during_stream_finishes_flushes_and_exits_0(t):
    env = t.env(mocks={"mistral-eu": {"stream_chunks": 8,
                                      "chunk_delay": 0.15}})
    res = {}

    def go():
        res["r"] = env.stream({"model": "mistral-large-latest",
                               "stream": True, "messages": [
                                   {"role": "user", "content": "hi"}]})
    th = threading.Thread(target=go, daemon=True)
    th.start()
    env.wait_received("mistral-eu", 1)
    time.sleep(0.2)
    env.signal(signal.SIGTERM)
    # while draining, no new request is taken: refused or 503
    time.sleep(0.2)
    if env.gateway_alive():
        try:
            r = env.chat(TEXT_PUBLIC, timeout=5)
            check(r.status == 503, "a new request during the drain got %d",
                  r.status)
        except (ConnectionError, OSError):
            pass            # the listener is closed: as good
    th.join(15)
    check("r" in res, "the stream did not end")
    r, reads = res["r"]
    check(r.status == 200, "stream status %d", r.status)
    body = r.body.decode("utf-8", "replace")
    check(body.rstrip().endswith("data: [DONE]"),
          "a stream in flight was cut by SIGTERM: %r", body[-200:])
    events = [ln for ln in body.splitlines() if ln.startswith("data: {")]
    check(len(events) >= 8, "only %d events of the stream arrived",
          len(events))
    try:
        rc = env.gw.wait(10)
    except Exception:
        rc = None
    check(rc == 0, "exit status %r after SIGTERM: %s", rc,
          env.tail(env.gw_log, 8))
    # the decision log was flushed: the stream's decision and outcome
    did = r.header("X-Sovgate-Decision")
    check(env.decision(did) is not None, "no decision row for the stream")
    out = env.outcome(did, wait=0.5)
    if out is not None:
        check(out, "the stream's outcome was not flushed before exit")
    rc, out, err = env.run_cli("log", "verify")
    check(rc == 0, "log verify after a drain: exit %d: %s %s", rc,
          out[-300:], err[-300:])
test_sigterm_during_stream_finishes_flushes_and_exits_0.timeout = 45


def test_sighup_storm(t):
    """100 SIGHUPs within a second while requests flow and the policy file
    flips between two valid versions: every request is answered by a
    backend one of the two allows, the gateway ends on the last file, its
    fds do not leak and the log still verifies."""
    env = t.env()
    pol_a = env.policy_yaml(["mistral-eu", "onprem-vllm"])
    pol_b = env.policy_yaml(["onprem-vllm", "mistral-eu"])
    check(env.chat(TEXT_PUBLIC).status == 200, "not serving")
    before = scrape(env)
    stop = threading.Event()
    results = []
    lock = threading.Lock()

    def client():
        while not stop.is_set():
            try:
                r = env.chat(TEXT_PUBLIC, timeout=10)
                out = (r.status, r.header("X-Sovgate-Backend"))
            except Exception as e:
                out = (repr(e), None)
            with lock:
                results.append(out)
    ths = [threading.Thread(target=client, daemon=True) for _ in range(3)]
    for th in ths:
        th.start()
    t0 = time.time()
    for i in range(100):
        if i % 10 == 0:
            env.write_policy(pol_b if (i // 10) % 2 == 0 else pol_a)
        env.signal(signal.SIGHUP)
        time.sleep(0.008)
    storm = time.time() - t0
    env.write_policy(pol_b)
    env.signal(signal.SIGHUP)
    time.sleep(1.0)
    stop.set()
    for th in ths:
        th.join(15)
    check(env.gateway_alive(), "the gateway died in a SIGHUP storm: %s",
          env.tail(env.gw_log, 8))
    check(storm < 2.5, "sending 100 SIGHUPs took %.1f s", storm)
    check(results, "no request was answered during the storm")
    bad = [x for x in results if x[0] != 200 or x[1] not in
           ("mistral-eu", "onprem-vllm")]
    check(not bad, "%d of %d requests during the storm failed or went "
          "astray: %r", len(bad), len(results), bad[:5])
    # settled on the last file
    deadline = time.time() + 5
    while True:
        r = env.chat(TEXT_PUBLIC)
        if r.header("X-Sovgate-Backend") == "onprem-vllm" or \
                time.time() > deadline:
            break
        time.sleep(0.1)
    check(r.status == 200 and r.header("X-Sovgate-Backend") == "onprem-vllm",
          "after the storm public went %d via %r, expected the last "
          "policy's onprem-vllm", r.status, r.header("X-Sovgate-Backend"))
    check(env.admin("/readyz").status == 200, "not ready after the storm")
    sha = hashlib.sha256(pol_b.encode()).hexdigest()
    m = scrape(env)
    info = m.series("sovgate_policy_info")
    check(info and info[0][0].get("sha256") == sha, "sovgate_policy_info "
          "%r is not the last policy file's sha256 %s", info, sha)
    row = env.decision(r.header("X-Sovgate-Decision"), wait=2)
    check(row is not None, "no decision row after the storm")
    cols = [k for k in row if "sha" in k.lower() and "policy" in k.lower()]
    check(cols and row[cols[0]] == sha, "the decision after the storm "
          "records policy %r, not the last file's %s",
          cols and row[cols[0]], sha)
    acc = delta(before, m, "sovgate_reloads_total", result="accepted")
    rej = delta(before, m, "sovgate_reloads_total", result="rejected")
    check(rej == 0, "%r reloads of valid files were rejected", rej)
    check(1 <= acc <= 101, "sovgate_reloads_total{accepted} moved by %r "
          "for 101 SIGHUPs", acc)
    fds0 = before.get("sovgate_process_open_fds")
    fds1 = m.get("sovgate_process_open_fds")
    check(fds1 <= fds0 + 16, "open fds grew from %r to %r over the storm",
          fds0, fds1)
    rc, out, err = env.run_cli("log", "verify")
    check(rc == 0, "log verify after the storm: exit %d: %s %s", rc,
          out[-300:], err[-300:])
test_sighup_storm.timeout = 60


# ---- the admin listener ----

def admin_raw(env, data, timeout=5):
    out, closed, _ = env.raw(data, timeout=timeout, port=env.admin_port,
                             one=True)
    return parse_http(out), out


def test_admin_malformed_requests_get_400(t):
    env = t.env()
    cases = [
        ("garbage request line", b"HELLO THERE\r\n\r\n"),
        ("binary junk", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" +
         b"\x00" * 40 + b"\r\n\r\n"),
        ("header without a colon",
         b"GET /metrics HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n"),
        ("bad Content-Length",
         b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"),
        ("duplicate Content-Length", b"GET /metrics HTTP/1.1\r\nHost: x\r\n"
         b"Content-Length: 1\r\nContent-Length: 2\r\n\r\nx"),
        ("bad HTTP version", b"GET /metrics HTTP/9.9\r\nHost: x\r\n\r\n"),
        ("space in the target", b"GET /met rics HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("control byte in a header",
         b"GET /metrics HTTP/1.1\r\nHost: x\x01y\r\n\r\n"),
    ]
    for what, data in cases:
        r, raw = admin_raw(env, data)
        check(r is not None, "%s: the admin port answered no HTTP: %r",
              what, raw[:200])
        check(r.status == 400, "%s: the admin port answered %d, expected "
              "400: %r", what, r.status, raw[:200])
    # too large a head: 400 or 431, never a hang or a crash
    r, raw = admin_raw(env, b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: " +
                       b"a" * 20000 + b"\r\n\r\n")
    check(r is not None and r.status in (400, 431), "oversized head to the "
          "admin port: %r", raw[:200])
    # wrong method and unknown path: 405 and 404
    r, raw = admin_raw(env, b"POST /metrics HTTP/1.1\r\nHost: x\r\n"
                       b"Content-Length: 0\r\n\r\n")
    check(r is not None and r.status == 405, "POST /metrics: %r", raw[:200])
    r, raw = admin_raw(env, b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
    check(r is not None and r.status == 404, "GET /nope: %r", raw[:200])
    # still serving on both ports
    check(env.admin("/healthz").status == 200, "admin down after bad input")
    check(env.chat(TEXT_PUBLIC).status == 200, "data plane down after bad "
          "admin input")
    check(env.gateway_alive(), "gateway died")


def test_admin_port_is_not_the_data_port(t):
    env = t.env()
    check(env.admin_port != env.port, "admin and data ports are the same")
    # the data port does not expose the admin endpoints...
    for path in ("/metrics", "/healthz", "/readyz"):
        for key in (None, "e2e-key-claims"):
            r = env.request("GET", path, key=key)
            check(r.status in (401, 404), "GET %s on the data port (key %s) "
                  "answered %d", path, key, r.status)
            check(b"sovgate_" not in r.body, "the data port leaked metrics "
                  "on %s", path)
    # ...and the admin port serves no data plane
    r = env.request("POST", "/v1/chat/completions",
                    body={"model": "mistral-large-latest",
                          "messages": [{"role": "user", "content": "hi"}]},
                    port=env.admin_port)
    check(r.status in (404, 405), "POST /v1/chat/completions on the admin "
          "port answered %d", r.status)
    r = env.request("GET", "/v1/models", port=env.admin_port)
    check(r.status == 404, "GET /v1/models on the admin port answered %d",
          r.status)
    check(sum(env.counts().values()) == 0, "the admin port forwarded a "
          "request")


def test_admin_bound_to_its_address_only(t):
    """admin_listen 127.0.0.1:PORT accepts on that address only: not on
    another loopback address, as it would if bound to every interface
    (the default admin_listen is 127.0.0.1:9464 for this reason)."""
    env = t.env()
    check(env.admin("/healthz").status == 200, "admin not answering")
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        try:
            s.connect(("127.0.0.2", env.admin_port))
            reached = True
        except OSError:
            reached = False
    finally:
        s.close()
    check(not reached, "the admin port (admin_listen 127.0.0.1:%d) accepts "
          "connections on 127.0.0.2: it is bound to every address",
          env.admin_port)


def _worker_cpus(pid):
    """{worker thread name: the CPUs it may run on}, read from /proc."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                name = f.read().strip()
            if name.startswith("sovgate-w"):
                out[name] = os.sched_getaffinity(int(tid))
        except OSError:
            continue    # a thread that just ended
    return out


def test_workers_auto_one_pinned_to_each_cpu(t):
    """workers: auto starts one worker per CPU the gateway may use, and
    (cpu_affinity: auto, the default) pins each to a CPU of its own;
    cpu_affinity: off leaves every worker free to run anywhere. Seen from
    /proc, not from the gateway's log."""
    allowed = os.sched_getaffinity(0)     # the gateway inherits this mask
    env = t.env(start=False)
    env.workers = "auto"
    env.start()
    w = _worker_cpus(env.gw.pid)
    check(len(w) == len(allowed), "workers: auto with %d CPUs allowed "
          "started %d workers: %r", len(allowed), len(w), w)
    if len(allowed) > 1:
        check(all(len(c) == 1 for c in w.values()), "a worker is not "
              "pinned to one CPU: %r", w)
        check(set().union(*w.values()) == allowed, "the workers are not "
              "spread over the allowed CPUs %r: %r", sorted(allowed), w)
        check(env.logged_since(0, b"one pinned to each CPU"), "the start "
              "line does not say the workers are pinned")
    for _ in range(2 * len(allowed)):   # any worker may take it
        check(env.chat(TEXT_PUBLIC).status == 200, "pinned workers do "
              "not serve")

    env.stop_gateway()
    env.cpu_affinity = "off"
    env.start_gateway()
    w = _worker_cpus(env.gw.pid)
    check(len(w) == len(allowed) and all(c == allowed for c in w.values()),
          "cpu_affinity: off still narrowed a worker's CPUs: %r (allowed "
          "%r)", w, sorted(allowed))
    check(env.chat(TEXT_PUBLIC).status == 200, "unpinned workers do not "
          "serve")
