"""End-to-end harness: a temporary gateway config, recording mock upstreams
(contrib/mock-upstream.py) and a real `sovgate serve`, all on 127.0.0.1 with
ports picked at run time. Python 3 standard library only.

Tests prove things from what the mocks RECEIVED (GET /__requests), never
from what the gateway says about itself.
"""

import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import threading
import time

SRCDIR = os.environ.get("SOVGATE_SRCDIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
SOVGATE_BIN = os.environ.get("SOVGATE_BIN") or os.path.join(SRCDIR, "sovgate")
PYTHON3 = os.environ.get("PYTHON3") or sys.executable
MOCK = os.path.join(SRCDIR, "contrib", "mock-upstream.py")

UUID_RE = re.compile(
    r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)

# ---- clients ----
CLAIMS_KEY = "e2e-key-claims"
HR_KEY = "e2e-key-hr"
CLIENTS = {"claims-app": CLAIMS_KEY, "hr-portal": HR_KEY}

# ---- the backends: real jurisdiction facts, endpoints on the mock ----
# Each backend's credential, as the gateway reads it from its environment
# and as its mock expects it.
BACKEND_KEYS = {
    "mistral-eu": "k-mistral-eu-1f3a",
    "azure-sweden": "k-azure-sweden-77c2",
    "bedrock-paris": "k-bedrock-paris-9d0e",
    "vertex-netherlands": "k-vertex-nl-5b61",
    "onprem-vllm": "k-onprem-vllm-0a4c",
}
BACKEND_ENV = {
    "mistral-eu": "E2E_MISTRAL_KEY",
    "azure-sweden": "E2E_AZURE_KEY",
    "bedrock-paris": "E2E_BEDROCK_KEY",
    "vertex-netherlands": "E2E_VERTEX_KEY",
    "onprem-vllm": "E2E_ONPREM_KEY",
}

BACKENDS = {
    "mistral-eu": {
        "kind": "mistral", "operator": "Mistral AI SAS",
        "operator_country": "FR", "parent_country": "FR",
        "data_countries": ["FR"], "hosting": "vendor",
        "key_custody": "provider", "retention": "30d", "auth": "bearer",
        "models": {"mistral-large-latest": "mistral-large-2411",
                   "mistral-small-latest": "mistral-small-2503",
                   "codestral-latest": "codestral-2501",
                   "mistral-embed": "mistral-embed"}},
    "azure-sweden": {
        "kind": "openai", "operator": "Microsoft Ireland Operations Limited",
        "operator_country": "IE", "parent_country": "US",
        "data_countries": ["SE"], "hosting": "vendor",
        "key_custody": "provider", "retention": "30d", "auth": "api-key",
        "models": {"mistral-large-latest": "Mistral-Large-2411",
                   "mistral-small-latest": "mistral-small-2503-azure",
                   "azure-only-model": "azure-only-deployment"}},
    "bedrock-paris": {
        "kind": "openai", "operator": "Amazon Web Services EMEA SARL",
        "operator_country": "LU", "parent_country": "US",
        "data_countries": ["FR"], "hosting": "vendor",
        "key_custody": "provider", "retention": "none", "auth": "bearer",
        "models": {"mistral-large-latest": "mistral.mistral-large-2407-v1:0",
                   "mistral-small-latest": "mistral.mistral-small-2402-v1:0"}},
    "vertex-netherlands": {
        "kind": "openai", "operator": "Google Cloud EMEA Limited",
        "operator_country": "IE", "parent_country": "US",
        "data_countries": ["NL"], "hosting": "vendor",
        "key_custody": "provider", "retention": "none", "auth": "bearer",
        "models": {"mistral-large-latest": "mistral-large-2411@vertex",
                   "codestral-latest": "codestral-2501@vertex"}},
    "onprem-vllm": {
        "kind": "openai", "operator": "Example University Hospital",
        "operator_country": "FR", "data_countries": ["FR"],
        "hosting": "self", "key_custody": "customer", "retention": "none",
        "auth": "bearer",
        "models": {"mistral-large-latest":
                   "mistralai/Mistral-Large-Instruct-2411",
                   "mistral-small-latest":
                   "mistralai/Mistral-Small-3.1-24B-Instruct-2503",
                   "codestral-latest": "mistralai/Codestral-22B-v0.1",
                   "mistral-embed": "intfloat/multilingual-e5-large"}},
}
CLOUD_ACT = {"azure-sweden", "bedrock-paris", "vertex-netherlands"}
ALL_BACKENDS = list(BACKENDS)

POLICY = r"""# the hospital policy of SPEC 4.3
name: hospital-default
levels: [public, internal, confidential, restricted]
classify:
  findings:
    email: internal
    phone: internal
    ip_address: internal
    iban: confidential
    payment_card: confidential
    national_id: confidential
    date_of_birth: confidential
    health: restricted
    marking: restricted
    credential: deny
  bulk:
    - {type: email, at_least: 20, level: confidential}
  custom:
    - {name: project.nightingale, words: [Nightingale, NGL-2025], level: confidential}
    - {name: corp.hostname, regex: '\b[a-z0-9-]+\.corp\.example\b', level: internal}
clients:
  hr-portal: {floor: confidential}
routes:
  restricted:
    require: {hosting: self}
    prefer: [onprem-vllm]
  confidential:
    require: {operator_in: [EU], data_in: [EU], cloud_act: false}
    prefer: [onprem-vllm, mistral-eu]
  internal:
    require: {data_in: [EEA]}
    prefer: [mistral-eu, onprem-vllm, azure-sweden, bedrock-paris, vertex-netherlands]
  public:
    prefer: [%(public)s]
tests:
  - name: an IBAN stays with EU-operated backends
    text: "Refund IBAN FR76 3000 6000 0112 3456 7890 189"
    expect: {level: confidential, backend: onprem-vllm}
  - name: secrets never leave
    text: "export KEY=AKIAIOSFODNN7EXAMPLE"
    expect: {action: deny}
"""
PUBLIC_PREFER = ["mistral-eu", "azure-sweden", "bedrock-paris",
                 "vertex-netherlands", "onprem-vllm"]

# ---- sample texts ----
IBAN = "FR76 3000 6000 0112 3456 7890 189"
IBAN_DIGITS = "FR7630006000011234567890189"
TEXT_PUBLIC = "What is the capital of France?"
TEXT_IBAN = "Please refund IBAN %s to the customer." % IBAN
TEXT_HEALTH = ("Summarise: the patient was diagnosed with type 2 diabetes "
               "and started on metformin.")
TEXT_AWS = "why does export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE fail?"
TEXT_EMAIL = "Draft a short reply to jean.dupont@example.fr about lunch."


def chat(text, model="mistral-large-latest", **kw):
    body = {"model": model, "messages": [{"role": "user", "content": text}]}
    body.update(kw)
    return body


class TestFailure(AssertionError):
    pass


class Skip(Exception):
    """Raised by a test that cannot run here (an optional tool is
    missing); counted neither as passed nor as failed."""


def check(cond, msg, *args):
    if not cond:
        raise TestFailure(msg % args if args else msg)


def _die_with_parent():
    """preexec_fn: the child gets SIGKILL if the test runner dies (even by
    SIGKILL), so nothing outlives a killed test run."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)
    except Exception:
        pass


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def yq(v):
    """A scalar or a flow sequence in YAML (double-quoted strings)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(yq(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join("%s: %s" % (k, yq(x)) for k, x in
                               v.items()) + "}"
    return json.dumps(str(v))


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers          # list of (name, value)
        self.body = body

    def header(self, name):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def json(self):
        try:
            return json.loads(self.body.decode("utf-8"))
        except ValueError:
            raise TestFailure("answer is not JSON (status %d): %r"
                              % (self.status, self.body[:300]))

    def __repr__(self):
        return "<HTTP %d %s>" % (self.status, self.body[:200])


class Env:
    """One gateway with its mocks. Created through ctx.env(...) so that the
    runner kills everything whatever happens."""

    def __init__(self, ctx, mocks=None, limits=None, backend_extra=None,
                 public_prefer=None, durability="strict", policy=None,
                 start=True, admin=True):
        self.ctx = ctx
        self.dir = tempfile.mkdtemp(prefix="sovgate-e2e-")
        self.procs = []
        self.gw = None
        self.gw_log = os.path.join(self.dir, "gateway.log")
        self.mock_log = os.path.join(self.dir, "mock.log")
        self.db_path = os.path.join(self.dir, "decisions.db")
        self.conf = os.path.join(self.dir, "sovgate.yaml")
        self.policy_path = os.path.join(self.dir, "policy.yaml")
        self.port = None
        self.admin_port = free_port() if admin else None
        self.mock_ports = {}
        self.limits = {"max_body": "64KiB", "header_timeout": "1s",
                       "body_timeout": "1s", "upstream_connect_timeout": "1s",
                       "upstream_first_byte_timeout": "5s",
                       "stream_idle_timeout": "5s", "drain_timeout": "3s",
                       "log_timeout": "5s"}
        self.limits.update(limits or {})
        self.backend_extra = backend_extra or {}
        self.durability = durability
        self.workers = "1"
        self.cpu_affinity = None    # the gateway's default
        self.public_prefer = public_prefer or PUBLIC_PREFER
        self.policy_text = policy
        self.mock_opts = {n: {"bearer": BACKEND_KEYS[n]} for n in BACKENDS}
        self.mock_opts["azure-sweden"] = {
            "api_key": BACKEND_KEYS["azure-sweden"]}
        for n, o in (mocks or {}).items():
            self.mock_opts[n].update(o)
        if start:
            self.start()

    # ---- files ----

    def write_backends(self):
        bdir = os.path.join(self.dir, "backends")
        os.makedirs(bdir, exist_ok=True)
        for name, b in BACKENDS.items():
            extra = dict(self.backend_extra.get(name, {}))
            port = extra.pop("port", None) or self.mock_ports[name]
            scheme = extra.pop("scheme", "http")
            host = extra.pop("host", "127.0.0.1")
            ep = "%s://%s:%d" % (scheme, host, port)
            if b["kind"] == "openai":
                ep += "/v1"
            lines = ["name: %s" % yq(name), "kind: %s" % b["kind"],
                     "endpoint: %s" % yq(ep),
                     "operator: %s" % yq(b["operator"]),
                     "operator_country: %s" % b["operator_country"]]
            if "parent_country" in b:
                lines.append("parent_country: %s" % b["parent_country"])
            lines += ["data_countries: %s" % yq(b["data_countries"]),
                      "hosting: %s" % b["hosting"],
                      "key_custody: %s" % b["key_custody"],
                      "retention: %s" % b["retention"],
                      "auth: {type: %s, key_env: %s}" % (
                          b["auth"], BACKEND_ENV[name])]
            for k, v in extra.items():
                lines.append("%s: %s" % (k, yq(v)))
            lines.append("models:")
            for m, mid in b["models"].items():
                lines.append("  %s: %s" % (yq(m), yq(mid)))
            with open(os.path.join(bdir, name + ".yaml"), "w") as f:
                f.write("\n".join(lines) + "\n")

    def policy_yaml(self, public_prefer=None):
        return POLICY % {"public": ", ".join(
            public_prefer or self.public_prefer)}

    def write_policy(self, text=None):
        text = text if text is not None else (
            self.policy_text or self.policy_yaml())
        tmp = self.policy_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.policy_path)

    def write_config(self):
        lines = [
            "listen: \"127.0.0.1:%d\"" % self.port,
            # CI runs as root; the gateway refuses that unless told
            "user: root",
            ("admin_listen: \"127.0.0.1:%d\"" % self.admin_port)
            if self.admin_port else "admin_listen: off",
            "workers: %s" % self.workers,
            "policy: policy.yaml",
            "backends: backends/",
        ] + (["cpu_affinity: %s" % self.cpu_affinity]
             if self.cpu_affinity else []) + [
            "log:",
            "  database: decisions.db",
            "  durability: %s" % self.durability,
            "  fingerprint_key_file: fingerprint.key",
            "clients:",
        ]
        for name, key in list(CLIENTS.items()) + list(
                getattr(self, "extra_clients", {}).items()):
            lines.append("  - {name: %s, key_sha256: \"%s\"}" % (
                name, hashlib.sha256(key.encode()).hexdigest()))
        lines.append("limits:")
        for k, v in self.limits.items():
            lines.append("  %s: %s" % (k, v))
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    # ---- processes ----

    def start_mocks(self):
        ready = os.path.join(self.dir, "mock-ports.json")
        args = [PYTHON3, MOCK, "--ready-file", ready,
                "--record", os.path.join(self.dir, "upstream.jsonl"),
                "--chunk-delay", "0.02"]
        for name, opts in self.mock_opts.items():
            spec = "%s=0" % name
            for k, v in opts.items():
                if v is None or v is False:
                    continue
                spec += ",%s=%s" % (k, "1" if v is True else v)
            args += ["--backend", spec]
        log = open(self.mock_log, "ab")
        p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log,
                             stderr=log, start_new_session=True,
                             preexec_fn=_die_with_parent)
        log.close()
        self.procs.append(p)
        deadline = time.time() + 10
        while time.time() < deadline:
            if os.path.exists(ready):
                with open(ready) as f:
                    self.mock_ports = json.load(f)
                return
            if p.poll() is not None:
                break
            time.sleep(0.02)
        raise TestFailure("mock upstream did not start: %s" % self.tail(
            self.mock_log))

    def gateway_env(self):
        env = dict(os.environ)
        for name, var in BACKEND_ENV.items():
            env[var] = BACKEND_KEYS[name]
        return env

    def start_gateway(self):
        for attempt in range(3):
            self.port = free_port()
            if self.admin_port:
                self.admin_port = free_port()
            self.write_config()
            log = open(self.gw_log, "ab")
            start_at = log.tell()   # a restart appends to the same log
            self.gw = subprocess.Popen(
                [SOVGATE_BIN, "-c", self.conf, "serve"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                env=self.gateway_env(), cwd=self.dir,
                start_new_session=True, preexec_fn=_die_with_parent)
            log.close()
            self.procs.append(self.gw)
            # Ready when it says so: the data port completes handshakes
            # from listen() on, before the rest (workers, admin) is up.
            deadline = time.time() + 15
            while time.time() < deadline:
                if self.gw.poll() is not None:
                    break
                if self.logged_since(start_at, b"sovgate: ready on"):
                    return
                time.sleep(0.03)
            if self.gw.poll() is None:
                break
            if "in use" not in self.tail(self.gw_log).lower():
                break
        raise TestFailure("gateway did not start listening (exit %s): %s" % (
            self.gw.poll(), self.tail(self.gw_log)))

    def start(self):
        self.start_mocks()
        self.write_backends()
        self.write_policy()
        self.start_gateway()

    def logged_since(self, offset, what):
        """Whether the gateway log has `what` past byte offset."""
        try:
            with open(self.gw_log, "rb") as f:
                f.seek(offset)
                return what in f.read()
        except OSError:
            return False

    def tail(self, path, n=25):
        try:
            with open(path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-n:])

    def gateway_alive(self):
        return self.gw is not None and self.gw.poll() is None

    def signal(self, sig):
        self.gw.send_signal(sig)

    def stop_gateway(self, timeout=8):
        """SIGTERM, then SIGKILL; returns the exit status."""
        if self.gw is None:
            return None
        if self.gw.poll() is None:
            try:
                self.gw.send_signal(signal.SIGTERM)
                self.gw.wait(timeout)
            except subprocess.TimeoutExpired:
                self.gw.kill()
                self.gw.wait(5)
        return self.gw.returncode

    def close(self, keep=False):
        for p in reversed(self.procs):
            if p.poll() is None:
                try:
                    p.send_signal(signal.SIGTERM)
                    p.wait(3)
                except (subprocess.TimeoutExpired, OSError):
                    pass
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except OSError:
                    p.kill()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    pass
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    def logs(self):
        return ("--- gateway log (%s) ---\n%s\n--- mock log ---\n%s" % (
            self.gw_log, self.tail(self.gw_log, 40), self.tail(self.mock_log,
                                                               10)))

    # ---- talking to the gateway ----

    def request(self, method, path, body=None, key=CLAIMS_KEY, headers=None,
                timeout=15, port=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        h = {}
        if body is not None:
            h["Content-Type"] = "application/json"
        if key is not None:
            h["Authorization"] = "Bearer " + key
        h.update(headers or {})
        conn = http.client.HTTPConnection("127.0.0.1", port or self.port,
                                          timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            data = r.read()
            return Response(r.status, r.getheaders(), data)
        finally:
            conn.close()

    def post(self, path, body, **kw):
        return self.request("POST", path, body, **kw)

    def chat(self, text, **kw):
        model = kw.pop("model", "mistral-large-latest")
        return self.post("/v1/chat/completions", chat(text, model), **kw)

    def stream(self, body, key=CLAIMS_KEY, headers=None, timeout=20,
               stop_after=None):
        """POST a streaming request; returns (response, [(time, bytes)])
        with the time each read returned. stop_after=N closes the
        connection after N non-empty reads."""
        h = {"Content-Type": "application/json",
             "Authorization": "Bearer " + key}
        h.update(headers or {})
        conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                          timeout=timeout)
        reads = []
        try:
            conn.request("POST", "/v1/chat/completions",
                         body=json.dumps(body).encode(), headers=h)
            r = conn.getresponse()
            while True:
                try:
                    data = r.read1(65536)
                except (http.client.IncompleteRead, ConnectionError,
                        socket.timeout) as e:
                    reads.append((time.time(), b"", repr(e)))
                    break
                if not data:
                    break
                reads.append((time.time(), data, None))
                if stop_after and len(reads) >= stop_after:
                    break
            return Response(r.status, r.getheaders(), b"".join(
                x[1] for x in reads)), reads
        finally:
            conn.close()

    def raw(self, data, timeout=5, port=None, drip=None, one=False):
        """Send raw bytes (or, with drip=(chunks, pause), send them slowly)
        from a thread while reading, until the peer closes or timeout, so
        that an early answer is read before any reset. Returns (bytes,
        closed, elapsed). one=True returns as soon as one whole response
        has arrived."""
        t0 = time.time()
        s = socket.create_connection(("127.0.0.1", port or self.port),
                                     timeout=timeout)
        out = b""
        closed = False
        chunks, pause = drip if drip else ([data], 0)

        def send():
            for c in chunks:
                try:
                    s.sendall(c)
                except OSError:
                    return
                if pause:
                    time.sleep(pause)

        th = threading.Thread(target=send, daemon=True)
        th.start()
        try:
            while True:
                s.settimeout(max(0.05, timeout - (time.time() - t0)))
                try:
                    b = s.recv(65536)
                except socket.timeout:
                    break
                except OSError:
                    closed = True
                    break
                if not b:
                    closed = True
                    break
                out += b
                if one and response_complete(out):
                    break
        finally:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
            th.join(2)
        return out, closed, time.time() - t0

    def admin(self, path):
        return self.request("GET", path, key=None, port=self.admin_port)

    # ---- what the mocks received ----

    def mock_conn(self, name):
        """A connection to a mock's control endpoints (HTTPS when that mock
        serves TLS; the test trusts it blindly)."""
        if self.mock_opts.get(name, {}).get("tls_cert"):
            return http.client.HTTPSConnection(
                "127.0.0.1", self.mock_ports[name], timeout=5,
                context=ssl._create_unverified_context())
        return http.client.HTTPConnection("127.0.0.1", self.mock_ports[name],
                                          timeout=5)

    def mock_requests(self, name):
        conn = self.mock_conn(name)
        try:
            conn.request("GET", "/__requests")
            return json.loads(conn.getresponse().read())
        finally:
            conn.close()

    def received(self):
        """{backend: [records]} for every mock."""
        return {n: self.mock_requests(n) for n in self.mock_ports}

    def counts(self):
        return {n: len(v) for n, v in self.received().items()}

    def set_mock(self, name, **behaviour):
        conn = self.mock_conn(name)
        try:
            conn.request("POST", "/__behaviour",
                         body=json.dumps(behaviour).encode())
            r = conn.getresponse()
            r.read()
            check(r.status == 200, "mock %s refused behaviour %r", name,
                  behaviour)
        finally:
            conn.close()

    def wait_received(self, name, n=1, timeout=5):
        deadline = time.time() + timeout
        while time.time() < deadline:
            got = self.mock_requests(name)
            if len(got) >= n:
                return got
            time.sleep(0.02)
        return self.mock_requests(name)

    # ---- the decision log ----

    def db(self):
        check(os.path.exists(self.db_path), "no decision log at %s",
              self.db_path)
        c = sqlite3.connect("file:%s?mode=ro" % self.db_path, uri=True,
                            timeout=5)
        c.row_factory = sqlite3.Row
        return c

    def tables(self):
        with self.db() as c:
            return {r[0]: [x[1] for x in c.execute(
                "PRAGMA table_info(%s)" % r[0])] for r in c.execute(
                "SELECT name FROM sqlite_master WHERE type='table'")}

    def _table(self, word, need):
        tabs = self.tables()
        cands = [t for t in tabs if word in t.lower()
                 and need(set(tabs[t]))]
        cands.sort(key=lambda t: (t.lower() != word + "s", len(t)))
        check(cands, "no %s table in the decision log (tables: %s)", word,
              ", ".join(sorted(tabs)))
        return cands[0], tabs[cands[0]]

    def decision_table(self):
        t, cols = self._table(
            "decision", lambda c: "action" in c and ("id" in c or
                                                      "decision_id" in c))
        idcol = "decision_id" if "decision_id" in cols else "id"
        return t, cols, idcol

    def decisions(self):
        t, cols, idcol = self.decision_table()
        with self.db() as c:
            return [dict(r) for r in c.execute("SELECT * FROM %s" % t)]

    def decision(self, did, wait=0.0):
        t, cols, idcol = self.decision_table()
        deadline = time.time() + wait
        while True:
            with self.db() as c:
                r = c.execute("SELECT * FROM %s WHERE %s = ?" % (t, idcol),
                              (did,)).fetchone()
            if r is not None or time.time() >= deadline:
                return dict(r) if r is not None else None
            time.sleep(0.05)

    def outcome(self, did, wait=3.0):
        """The outcome row(s) of a decision: a dict (the last one), or None
        when the log has no outcome table."""
        tabs = self.tables()
        cands = [t for t in tabs if "outcome" in t.lower() and
                 "decision_id" in tabs[t]]
        if not cands:
            return None
        t = sorted(cands, key=len)[0]
        deadline = time.time() + wait
        while True:
            with self.db() as c:
                rows = [dict(r) for r in c.execute(
                    "SELECT * FROM %s WHERE decision_id = ?" % t, (did,))]
            if rows or time.time() >= deadline:
                return rows[-1] if rows else {}
            time.sleep(0.05)

    def run_cli(self, *args, timeout=20):
        p = subprocess.run([SOVGATE_BIN, "-c", self.conf] + list(args),
                           stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=timeout, env=self.gateway_env())
        return p.returncode, p.stdout.decode("utf-8", "replace"), \
            p.stderr.decode("utf-8", "replace")


# ---- assertions shared by tests ----

def response_complete(raw):
    """raw holds at least one whole HTTP response (by Content-Length or a
    last chunk)."""
    head, sep, rest = raw.partition(b"\r\n\r\n")
    if not sep:
        return False
    m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    if m:
        return len(rest) >= int(m.group(1))
    if re.search(rb"(?im)^transfer-encoding:.*chunked", head):
        return rest.endswith(b"0\r\n\r\n")
    return False


def parse_http(raw):
    """The first HTTP response in raw bytes, as a Response (the body by
    Content-Length or chunked, else the rest); None if there is none."""
    if not raw.startswith(b"HTTP/1."):
        return None
    head, sep, rest = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = [tuple(x.strip() for x in ln.split(":", 1)) for ln in
               lines[1:] if ":" in ln]
    r = Response(status, headers, b"")
    cl = r.header("Content-Length")
    if cl is not None:
        r.body = rest[:int(cl)]
    elif "chunked" in (r.header("Transfer-Encoding") or "").lower():
        body = b""
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            try:
                n = int(size_line.split(b";")[0], 16)
            except ValueError:
                break
            if n == 0:
                break
            body += rest[:n]
            rest = rest[n + 2:]
        r.body = body
    else:
        r.body = rest
    return r


def header_map(rec):
    """Lower-cased header name -> list of values, of one mock record."""
    out = {}
    for k, v in rec["headers"]:
        out.setdefault(k.lower(), []).append(v)
    return out


def assert_only(env, allowed, counts=None):
    """No mock outside `allowed` received anything."""
    counts = counts or env.counts()
    bad = {n: c for n, c in counts.items() if c and n not in allowed}
    check(not bad, "backends outside %s received requests: %s", sorted(
        allowed), bad)
    return counts


def assert_nothing_forwarded(env, settle=0.2):
    time.sleep(settle)
    counts = env.counts()
    check(not any(counts.values()), "requests were forwarded: %s", counts)


def assert_error_shape(r, status, etype=None, code=None):
    check(r.status == status, "expected HTTP %d, got %d: %r", status,
          r.status, r.body[:300])
    doc = r.json()
    check(isinstance(doc, dict) and isinstance(doc.get("error"), dict),
          "error body is not {\"error\": {...}}: %r", r.body[:300])
    e = doc["error"]
    for k in ("type", "code", "message", "decision_id"):
        check(isinstance(e.get(k), str) and e[k], "error.%s missing: %r",
              k, e)
    check(UUID_RE.match(e["decision_id"]), "decision_id is not a UUID: %r",
          e["decision_id"])
    hd = r.header("X-Sovgate-Decision")
    check(hd == e["decision_id"], "X-Sovgate-Decision %r differs from "
          "error.decision_id %r", hd, e["decision_id"])
    check(r.header("X-Sovgate-Level"), "no X-Sovgate-Level on a %d", status)
    if etype:
        check(e["type"] == etype, "error.type %r, expected %r", e["type"],
              etype)
    if code:
        check(e["code"] == code, "error.code %r, expected %r", e["code"],
              code)
    return e


def assert_routed(env, r, backend, level=None, model="mistral-large-latest",
                  path_suffix="/chat/completions"):
    """r was answered by `backend`, which received exactly one request with
    its own credentials and the model rewritten to its id."""
    check(r.status == 200, "expected 200, got %d: %r", r.status,
          r.body[:300])
    check(r.header("X-Sovgate-Backend") == backend,
          "X-Sovgate-Backend %r, expected %s", r.header("X-Sovgate-Backend"),
          backend)
    if level:
        check(r.header("X-Sovgate-Level") == level,
              "X-Sovgate-Level %r, expected %s", r.header("X-Sovgate-Level"),
              level)
    check(UUID_RE.match(r.header("X-Sovgate-Decision") or ""),
          "X-Sovgate-Decision is not a UUID: %r",
          r.header("X-Sovgate-Decision"))
    got = env.received()
    check(len(got[backend]) == 1, "%s received %d requests, expected 1",
          backend, len(got[backend]))
    rec = got[backend][0]
    check(rec["path"].endswith(path_suffix), "%s received path %s",
          backend, rec["path"])
    want = BACKENDS[backend]["models"][model]
    check((rec["json"] or {}).get("model") == want,
          "%s received model %r, expected its id %r", backend,
          (rec["json"] or {}).get("model"), want)
    assert_credentials(rec, backend)
    return rec, got


def assert_credentials(rec, backend):
    h = header_map(rec)
    if BACKENDS[backend]["auth"] == "api-key":
        check(h.get("api-key") == [BACKEND_KEYS[backend]],
              "%s got api-key %r", backend, h.get("api-key"))
        check("authorization" not in h, "%s (api-key auth) also got "
              "Authorization %r", backend, h.get("authorization"))
    else:
        check(h.get("authorization") == ["Bearer " + BACKEND_KEYS[backend]],
              "%s got Authorization %r, expected its own bearer key",
              backend, h.get("authorization"))
    for other, key in BACKEND_KEYS.items():
        if other != backend:
            check(key not in json.dumps(rec), "%s received %s's key",
                  backend, other)
    for ck in CLIENTS.values():
        check(ck not in json.dumps(rec), "%s received a client key",
              backend)
