"""Cloud adapters end to end (SPEC §4.2, §5; issue 4): the gateway between
clients and the cloud mocks of contrib/ (mock-bedrock.py, mock-vertex.py,
mock-azure.py), which VERIFY what they receive: Bedrock recomputes the
SigV4 signature from the raw request and rejects a wrong one; Vertex serves
the OAuth2 token endpoint, checks the JWT's RS256 signature against the
test key pair, then the bearer on rawPredict; Azure checks the api-key.
Every verdict is read from the mocks' --log files, never from the gateway.

Bad upstream answers (malformed JSON, a truncated body, a broken
event-stream CRC, an exception frame, an unexpected content type, a failing
token endpoint) must reach the client as a failover or a 502 before the
first byte, or as an SSE error event after it; the outcome is logged and
the gateway keeps serving. Missing credentials: `sovgate check` names the
variable, `serve` keeps the other backends.

The environment is harness.Env with three of its five backends made real
cloud kinds: azure-sweden (kind azure, Foundry shape), bedrock-paris (kind
bedrock) and vertex-netherlands (kind vertex), each on its own mock;
mistral-eu and onprem-vllm stay on contrib/mock-upstream.py and serve as
failover targets."""

import base64
import http.client
import json
import os
import socket
import subprocess
import threading
import time

import harness
from harness import (BACKEND_KEYS, CLAIMS_KEY, CLIENTS, PYTHON3, SRCDIR,
                     TEXT_PUBLIC, Skip, TestFailure, assert_error_shape,
                     check)

CONTRIB = os.path.join(SRCDIR, "contrib")
REPLY = "Bonjour, le monde"          # mock_common.REPLY_TEXT
CLOUD = ("azure-sweden", "bedrock-paris", "vertex-netherlands")

AWS_ACCESS = "AKIDE2ESOVGATE00001"
AWS_SECRET = "e2e/Secret+Key/sovgate0123456789abcdefXYZ"
AWS_REGION = "eu-west-3"
AWS_ENV = {"access": "E2E_AWS_ACCESS_KEY_ID",
           "secret": "E2E_AWS_SECRET_ACCESS_KEY",
           "session": "E2E_AWS_SESSION_TOKEN"}
GCP_PROJECT = "e2e-project"
GCP_REGION = "europe-west4"
GCP_EMAIL = "sovgate-e2e@e2e-project.iam.gserviceaccount.com"
AZURE_API_VERSION = "2024-05-01-preview"

# the models each cloud backend serves here (client name -> its id)
MODELS = {
    "azure-sweden": {"mistral-large-latest": "Mistral-Large-2411",
                     "mistral-small-latest": "mistral-small-2503-azure"},
    "bedrock-paris": {"mistral-large-latest":
                      "mistral.mistral-large-2407-v1:0",
                      "mistral-small-latest":
                      "mistral.mistral-small-2402-v1:0"},
    "vertex-netherlands": {"mistral-large-latest": "mistral-large-2411",
                           "mistral-small-latest": "mistral-small-2503@001"},
}


# ---------------------------------------------------------------------------
# the environment: harness.Env with real cloud kinds on the cloud mocks

class CloudEnv(harness.Env):
    """Options (keyword arguments of cloud_env):
    prefer      the public route's order (TEXT_PUBLIC is public)
    bedrock     extra mock-bedrock.py arguments (list)
    vertex      extra mock-vertex.py arguments
    azure       extra mock-azure.py arguments
    descriptor  {backend: {field: value}} added to a cloud descriptor
    gw_env      {VAR: value or None} overrides of the gateway's
                environment (None removes the variable)
    """

    def __init__(self, ctx, prefer=None, bedrock=(), vertex=(), azure=(),
                 descriptor=None, gw_env=None, start=True, **kw):
        self.cloud_args = {"bedrock-paris": list(bedrock),
                           "vertex-netherlands": list(vertex),
                           "azure-sweden": list(azure)}
        self.descriptor = descriptor or {}
        self.gw_env_over = dict(gw_env or {})
        self.cloud_logs = {}
        self.sa_path = None
        harness.Env.__init__(self, ctx, public_prefer=prefer, start=False,
                             **kw)
        # mock-upstream.py serves only the two OpenAI-format backends
        self.mock_opts = {n: o for n, o in self.mock_opts.items()
                          if n not in CLOUD}
        if start:
            self.start()

    # ---- processes ----

    def start_cloud_mock(self, name):
        script = {"azure-sweden": "mock-azure.py",
                  "bedrock-paris": "mock-bedrock.py",
                  "vertex-netherlands": "mock-vertex.py"}[name]
        short = name.split("-")[0]
        port_file = os.path.join(self.dir, "%s.port" % short)
        log = os.path.join(self.dir, "%s.jsonl" % short)
        open(log, "w").close()
        self.cloud_logs[name] = log
        args = [PYTHON3, os.path.join(CONTRIB, script), "--port", "0",
                "--port-file", port_file, "--log", log]
        if name == "bedrock-paris":
            args += ["--access-key", AWS_ACCESS, "--secret-key", AWS_SECRET,
                     "--region", AWS_REGION, "--models",
                     ",".join(MODELS[name].values())]
        elif name == "vertex-netherlands":
            self.sa_path = os.path.join(self.dir, "vertex-sa.json")
            args += ["--write-sa", self.sa_path, "--client-email", GCP_EMAIL,
                     "--project", GCP_PROJECT, "--region", GCP_REGION]
        else:
            args += ["--key", BACKEND_KEYS[name], "--api-version",
                     AZURE_API_VERSION, "--deployments",
                     ",".join(MODELS[name].values())]
        args += self.cloud_args[name]
        out = open(os.path.join(self.dir, "%s.out" % short), "ab")
        # the mock must not pick up AWS keys from the runner's environment
        menv = {k: v for k, v in os.environ.items()
                if not k.startswith(("AWS_", "MOCK_"))}
        p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out,
                             stderr=out, start_new_session=True, env=menv,
                             preexec_fn=harness._die_with_parent)
        out.close()
        self.procs.append(p)
        return p, port_file

    def start_mocks(self):
        harness.Env.start_mocks(self)
        pending = {n: self.start_cloud_mock(n) for n in CLOUD}
        deadline = time.time() + 20      # an RSA key pair for Vertex
        while pending and time.time() < deadline:
            for n, (p, pf) in list(pending.items()):
                if os.path.exists(pf):
                    with open(pf) as f:
                        self.mock_ports[n] = int(f.read().strip())
                    del pending[n]
                elif p.poll() is not None:
                    raise TestFailure("mock for %s exited: %s" % (
                        n, self.tail(os.path.join(
                            self.dir, n.split("-")[0] + ".out"))))
            time.sleep(0.02)
        check(not pending, "cloud mocks did not start: %s", sorted(pending))

    # ---- files ----

    def write_backends(self):
        harness.Env.write_backends(self)
        bdir = os.path.join(self.dir, "backends")
        for name in CLOUD:
            b = harness.BACKENDS[name]
            port = self.mock_ports[name]
            d = {"name": name, "operator": b["operator"],
                 "operator_country": b["operator_country"],
                 "parent_country": b["parent_country"],
                 "data_countries": b["data_countries"],
                 "hosting": b["hosting"], "key_custody": b["key_custody"],
                 "retention": b["retention"]}
            if name == "azure-sweden":
                d.update(kind="azure", endpoint="http://127.0.0.1:%d/models"
                         % port, api_version=AZURE_API_VERSION,
                         auth={"type": "api-key",
                               "key_env": harness.BACKEND_ENV[name]})
            elif name == "bedrock-paris":
                d.update(kind="bedrock", endpoint="http://127.0.0.1:%d" %
                         port, region=AWS_REGION,
                         auth={"type": "aws-sigv4",
                               "access_key_env": AWS_ENV["access"],
                               "secret_key_env": AWS_ENV["secret"],
                               "session_token_env": AWS_ENV["session"]})
            else:
                d.update(kind="vertex", endpoint="http://127.0.0.1:%d" %
                         port, project=GCP_PROJECT, region=GCP_REGION,
                         auth={"type": "google-service-account",
                               "credentials_file": self.sa_path})
            d.update(self.descriptor.get(name, {}))
            lines = ["%s: %s" % (k, harness.yq(v)) for k, v in d.items()
                     if v is not None]
            lines.append("models:")
            for m, mid in MODELS[name].items():
                lines.append("  %s: %s" % (harness.yq(m), harness.yq(mid)))
            with open(os.path.join(bdir, name + ".yaml"), "w") as f:
                f.write("\n".join(lines) + "\n")

    def gateway_env(self):
        env = harness.Env.gateway_env(self)
        for k in list(env):
            if k.startswith("AWS_") or k.startswith("GOOGLE_"):
                del env[k]
        env[AWS_ENV["access"]] = AWS_ACCESS
        env[AWS_ENV["secret"]] = AWS_SECRET
        env.pop(AWS_ENV["session"], None)
        for k, v in self.gw_env_over.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v
        return env

    # ---- what the cloud mocks received (their --log files) ----

    def mock_requests(self, name):
        if name not in self.cloud_logs:
            return harness.Env.mock_requests(self, name)
        out = []
        with open(self.cloud_logs[name], encoding="utf-8") as f:
            for ln in f:
                if ln.strip():
                    out.append(json.loads(ln))
        return out

    def calls(self, name, settle=0.0):
        """The model calls a cloud mock received (Vertex's /token apart)."""
        if settle:
            time.sleep(settle)
        return [r for r in self.mock_requests(name)
                if r["path"].split("?")[0] != "/token"]

    def tokens(self, name="vertex-netherlands"):
        return [r for r in self.mock_requests(name)
                if r["path"].split("?")[0] == "/token"]

    def wait_calls(self, name, n=1, timeout=5):
        """A mock logs a request after answering it: wait for the line."""
        deadline = time.time() + timeout
        while True:
            got = self.calls(name)
            if len(got) >= n or time.time() >= deadline:
                return got
            time.sleep(0.02)

    def set_mock(self, name, **behaviour):
        check(name not in CLOUD, "cloud mocks take X-Mock-Mode, not "
              "/__behaviour")
        harness.Env.set_mock(self, name, **behaviour)


def cloud_env(t, **kw):
    """A CloudEnv registered with the runner's context so that it is
    cleaned up whatever happens (like ctx.env())."""
    e = CloudEnv.__new__(CloudEnv)
    t.envs.append(e)
    e.__init__(t, **kw)
    return e


# ---------------------------------------------------------------------------
# clients

def body(text=TEXT_PUBLIC, model="mistral-large-latest", stream=False, **kw):
    b = {"model": model, "messages": [{"role": "user", "content": text}]}
    if stream:
        b["stream"] = True
    b.update(kw)
    return b


def mode(spec):
    """Request headers asking the mocks for a behaviour (X-Mock-Mode)."""
    return {"X-Mock-Mode": spec}


class SDKError(Exception):
    def __init__(self, status, doc, where):
        Exception.__init__(self, "%s: %s %r" % (where, status, doc))
        self.status = status
        self.doc = doc


def sdk_stream(env, req, headers=None, timeout=20):
    """Consumes a streamed chat completion the way OpenAI's SDKs do
    (openai-python's SSEDecoder and Stream): refuses a non-2xx answer or a
    Content-Type other than text/event-stream; splits events on blank
    lines; stops at data: [DONE]; raises on an event named "error" or a
    JSON payload holding "error"; every other event's data must be a JSON
    chat.completion.chunk. Returns (response head, [chunks], done, error,
    raw bytes); the connection breaking is an error too."""
    h = {"Content-Type": "application/json",
         "Authorization": "Bearer " + CLAIMS_KEY,
         "Accept": "text/event-stream"}
    h.update(headers or {})
    conn = http.client.HTTPConnection("127.0.0.1", env.port, timeout=timeout)
    chunks, done, err, raw = [], False, None, b""
    try:
        conn.request("POST", "/v1/chat/completions",
                     body=json.dumps(req).encode(), headers=h)
        r = conn.getresponse()
        head = harness.Response(r.status, r.getheaders(), b"")
        ct = (r.getheader("Content-Type") or "").split(";")[0].strip()
        if r.status != 200 or ct != "text/event-stream":
            head.body = r.read()
            return head, chunks, done, err, head.body
        event, data = None, []
        buf = b""
        while not done:
            try:
                piece = r.read1(65536)
            except (http.client.IncompleteRead, ConnectionError,
                    socket.timeout) as e:
                err = err or ("connection broke: %r" % e)
                break
            if not piece:
                break
            raw += piece
            buf += piece
            while b"\n" in buf and not done:
                line, buf = buf.split(b"\n", 1)
                line = line.rstrip(b"\r").decode("utf-8")
                if line == "":
                    if data:
                        payload = "\n".join(data)
                        if payload.startswith("[DONE]"):
                            done = True
                        else:
                            doc = json.loads(payload)
                            if event == "error" or (
                                    isinstance(doc, dict) and
                                    doc.get("error")):
                                err = doc
                            else:
                                check(isinstance(doc, dict) and
                                      doc.get("object") ==
                                      "chat.completion.chunk" and
                                      isinstance(doc.get("choices"), list),
                                      "not a chat.completion.chunk: %r", doc)
                                chunks.append(doc)
                    event, data = None, []
                elif line.startswith(":"):
                    continue
                else:
                    field, _, value = line.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    if field == "event":
                        event = value
                    elif field == "data":
                        data.append(value)
            if err is not None and not isinstance(err, str):
                # the SDK raises here; read the rest to see what followed
                try:
                    rest = r.read()
                except Exception:
                    rest = b""
                raw += rest
                break
        return head, chunks, done, err, raw
    finally:
        conn.close()


def stream_text(chunks):
    text, finish, usage, tools = "", None, None, {}
    for c in chunks:
        usage = c.get("usage") or usage
        for ch in c["choices"]:
            d = ch.get("delta") or {}
            text += d.get("content") or ""
            for tc in d.get("tool_calls") or []:
                t = tools.setdefault(tc.get("index", 0), {
                    "id": None, "name": "", "arguments": ""})
                t["id"] = tc.get("id") or t["id"]
                fn = tc.get("function") or {}
                t["name"] += fn.get("name") or ""
                t["arguments"] += fn.get("arguments") or ""
            finish = ch.get("finish_reason") or finish
    return text, finish, usage, [tools[k] for k in sorted(tools)]


def assert_good_stream(env, backend, head, chunks, done, err, raw,
                       want=REPLY):
    check(head.status == 200, "stream via %s: status %d: %r", backend,
          head.status, raw[:300])
    check(head.header("X-Sovgate-Backend") == backend,
          "stream answered by %r, expected %s",
          head.header("X-Sovgate-Backend"), backend)
    check(err is None, "the stream via %s carried an error: %r", backend,
          err)
    check(done, "the stream via %s did not end with data: [DONE]: %r",
          backend, raw[-300:])
    check(chunks, "no chunks via %s", backend)
    ids = {c.get("id") for c in chunks}
    check(len(ids) == 1 and None not in ids, "chunk ids %r", ids)
    for c in chunks:
        check(isinstance(c.get("created"), int) and
              isinstance(c.get("model"), str), "chunk lacks created/model:"
              " %r", c)
    text, finish, usage, tools = stream_text(chunks)
    if want is not None:
        check(text == want, "text through %s: %r, expected %r", backend,
              text, want)
    return text, finish, usage, tools


# ---------------------------------------------------------------------------
# assertions

def decision_of(r):
    did = r.header("X-Sovgate-Decision")
    check(did and harness.UUID_RE.match(did), "no decision id: %r", did)
    return did


def assert_logged(env, r, want_error=None, backend=None):
    """The decision's outcome row exists; returns it ({} if the log has
    no outcome table)."""
    out = env.outcome(decision_of(r), wait=5)
    if out is None:
        return {}
    check(out, "no outcome logged for %s", decision_of(r))
    if want_error is True:
        check(out.get("error"), "the outcome records no error: %r", out)
    if backend and "attempts_json" in out:
        check(backend in (out.get("attempts_json") or ""),
              "the outcome's attempts do not name %s: %r", backend, out)
    return out


def assert_no_secret(rec, allowed):
    s = json.dumps(rec)
    for n, k in BACKEND_KEYS.items():
        if n != allowed:
            check(k not in s, "%s's key reached another mock: %r", n,
                  rec["path"])
    for k in CLIENTS.values():
        check(k not in s, "a client key reached %s", allowed)
    if allowed != "bedrock-paris":
        check(AWS_SECRET not in s and AWS_ACCESS not in s,
              "AWS credentials reached %s", allowed)


def keeps_serving(env, backend, headers=None):
    """The gateway and the backend still answer a normal request."""
    check(env.gateway_alive(), "the gateway died")
    n = len(env.calls(backend))
    r = env.post("/v1/chat/completions", body(), headers=headers)
    check(r.status == 200 and r.header("X-Sovgate-Backend") == backend,
          "after the bad answer: %d via %r: %r", r.status,
          r.header("X-Sovgate-Backend"), r.body[:200])
    env.wait_calls(backend, n + 1)     # its log line is written after
    return r


def jwt_claims(assertion):
    parts = assertion.split(".")
    check(len(parts) == 3, "assertion is not a JWT")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    return (json.loads(base64.urlsafe_b64decode(pad(parts[0]))),
            json.loads(base64.urlsafe_b64decode(pad(parts[1]))))


# ---------------------------------------------------------------------------
# Bedrock: SigV4 verified by the mock, Converse both ways, event streams

def test_bedrock_sigv4_verified_and_converse_translated(t):
    env = cloud_env(t, prefer=["bedrock-paris", "onprem-vllm"])
    req = {"model": "mistral-large-latest",
           "messages": [{"role": "system", "content": "Answer briefly."},
                        {"role": "user", "content": TEXT_PUBLIC}],
           "max_tokens": 64, "temperature": 0.2, "top_p": 0.9,
           "stop": ["\n\n"]}
    r = env.post("/v1/chat/completions", req)
    check(r.status == 200, "status %d: %r", r.status, r.body[:300])
    check(r.header("X-Sovgate-Backend") == "bedrock-paris", "answered by %r",
          r.header("X-Sovgate-Backend"))
    recs = env.wait_calls("bedrock-paris")
    check(len(recs) == 1, "bedrock mock received %d requests", len(recs))
    rec = recs[0]
    check(rec["verdict"] == "ok", "the Bedrock mock rejected the request: "
          "%s", rec["verdict"])
    # the wire path: the model id's ':' percent-encoded once (the
    # canonical request encodes it again; the mock recomputed that)
    check(rec["path"] == "/model/mistral.mistral-large-2407-v1%3A0/converse",
          "path %r", rec["path"])
    auth = rec["headers"].get("authorization", "")
    check(auth.startswith("AWS4-HMAC-SHA256 Credential=%s/" % AWS_ACCESS) and
          "/%s/bedrock/aws4_request" % AWS_REGION in auth,
          "Authorization %r", auth)
    check("x-amz-security-token" not in rec["headers"],
          "a session token was sent without one configured")
    assert_no_secret(rec, "bedrock-paris")
    check(AWS_SECRET not in json.dumps(rec), "the secret key was sent")
    sent = json.loads(rec["body"])
    check(sent.get("system") == [{"text": "Answer briefly."}],
          "system %r", sent.get("system"))
    check(sent.get("messages") == [{"role": "user", "content": [
        {"text": TEXT_PUBLIC}]}], "messages %r", sent.get("messages"))
    ic = sent.get("inferenceConfig") or {}
    check(ic.get("maxTokens") == 64 and ic.get("temperature") == 0.2 and
          ic.get("topP") == 0.9 and ic.get("stopSequences") == ["\n\n"],
          "inferenceConfig %r", ic)
    check("model" not in sent and "stop" not in sent,
          "OpenAI fields left in the Converse body: %r", sorted(sent))
    # and back: an OpenAI chat.completion
    doc = r.json()
    check(doc.get("object") == "chat.completion", "object %r",
          doc.get("object"))
    ch = doc["choices"][0]
    check(ch["message"]["role"] == "assistant" and
          ch["message"]["content"] == REPLY and
          ch["finish_reason"] == "stop", "choice %r", ch)
    check(doc.get("usage") == {"prompt_tokens": 12, "completion_tokens": 4,
                               "total_tokens": 16}, "usage %r",
          doc.get("usage"))
    out = assert_logged(env, r)
    if "total_tokens" in out:
        check(out["total_tokens"] == 16, "logged usage %r", out)
    c = env.counts()
    check(c["onprem-vllm"] == 0 and c["mistral-eu"] == 0, "counts %s", c)


def test_bedrock_wrong_signature_rejected_by_the_mock(t):
    """A wrong secret key makes a wrong signature: the mock recomputes it,
    answers 403 InvalidSignatureException, and the gateway returns that
    403 as it is (never failed over) with its decision id."""
    env = cloud_env(t, prefer=["bedrock-paris", "onprem-vllm"],
                    gw_env={AWS_ENV["secret"]: AWS_SECRET[:-1] + "Q"})
    r = env.post("/v1/chat/completions", body())
    recs = env.wait_calls("bedrock-paris")
    check(len(recs) == 1, "bedrock mock received %d", len(recs))
    check(recs[0]["verdict"] == "rejected: signature mismatch",
          "the mock's verdict on a wrong signature: %r", recs[0]["verdict"])
    check(r.status == 403, "a 403 from Bedrock became %d: %r", r.status,
          r.body[:300])
    decision_of(r)
    time.sleep(0.2)
    c = env.counts()
    check(c["onprem-vllm"] == 0 and c["mistral-eu"] == 0,
          "a 403 was failed over: %s", c)
    assert_logged(env, r)


def test_bedrock_session_token_signed(t):
    """Temporary credentials: the session token is sent as
    X-Amz-Security-Token and covered by the signature (the mock requires
    both)."""
    token = "FwoGZXIvYXdzEE2ESESSION//token+value="
    env = cloud_env(t, prefer=["bedrock-paris"],
                    bedrock=["--session-token", token],
                    gw_env={AWS_ENV["session"]: token})
    r = env.post("/v1/chat/completions", body(model="mistral-small-latest"))
    check(r.status == 200, "status %d: %r", r.status, r.body[:300])
    rec = env.wait_calls("bedrock-paris")[0]
    check(rec["verdict"] == "ok", "mock verdict %r", rec["verdict"])
    check(rec["headers"].get("x-amz-security-token") == token,
          "session token header %r", rec["headers"].get(
              "x-amz-security-token"))
    check("x-amz-security-token" in rec["headers"]["authorization"],
          "the session token is not signed: %r",
          rec["headers"]["authorization"])
    check(rec["path"] == "/model/mistral.mistral-small-2402-v1%3A0/converse",
          "path %r", rec["path"])


def test_bedrock_stream_event_stream_to_sse(t):
    env = cloud_env(t, prefer=["bedrock-paris", "onprem-vllm"])
    head, chunks, done, err, raw = sdk_stream(env, body(stream=True))
    text, finish, usage, tools = assert_good_stream(
        env, "bedrock-paris", head, chunks, done, err, raw)
    check(finish == "stop", "finish_reason %r", finish)
    check(chunks[0]["choices"][0]["delta"].get("role") == "assistant",
          "first delta %r", chunks[0]["choices"][0]["delta"])
    check(head.header("Content-Type").startswith("text/event-stream"),
          "Content-Type %r", head.header("Content-Type"))
    rec = env.wait_calls("bedrock-paris")[0]
    check(rec["verdict"] == "ok" and rec["path"] ==
          "/model/mistral.mistral-large-2407-v1%3A0/converse-stream",
          "mock got %s with verdict %r", rec["path"], rec["verdict"])
    check("eventstream" in rec["headers"].get("accept", ""),
          "Accept %r", rec["headers"].get("accept"))
    out = assert_logged(env, head)
    if "total_tokens" in out:
        check(out["total_tokens"] == 16, "logged usage %r", out)
    if "status" in out:
        check(out["status"] == 200 and not out.get("error"),
              "outcome %r", out)


TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {
        "q": {"type": "string"}}, "required": ["q"]}}}]


def test_bedrock_tool_call_round_trip(t):
    """tools -> toolConfig, toolUse -> tool_calls (streamed), then the
    assistant's tool_calls and the tool result -> toolUse/toolResult
    blocks, checked by the mock (it refuses misplaced or unconfigured
    tool blocks)."""
    env = cloud_env(t, prefer=["bedrock-paris"])
    req = body(text="What is the weather in Paris?", stream=True,
               tools=TOOLS, tool_choice="auto")
    head, chunks, done, err, raw = sdk_stream(env, req)
    text, finish, usage, tools = assert_good_stream(
        env, "bedrock-paris", head, chunks, done, err, raw, want=None)
    check(finish == "tool_calls", "finish_reason %r", finish)
    check(len(tools) == 1 and tools[0]["name"] == "get_weather" and
          tools[0]["id"] == "tooluse_mock1" and
          json.loads(tools[0]["arguments"]) == {"q": "mock"},
          "tool calls %r", tools)
    rec = env.wait_calls("bedrock-paris")[0]
    check(rec["verdict"] == "ok", "verdict %r", rec["verdict"])
    sent = json.loads(rec["body"])
    spec = sent["toolConfig"]["tools"][0]["toolSpec"]
    check(spec["name"] == "get_weather" and spec["inputSchema"]["json"] ==
          TOOLS[0]["function"]["parameters"], "toolSpec %r", spec)
    # second turn: the tool's result
    req2 = {"model": "mistral-large-latest", "tools": TOOLS, "messages": [
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": tools[0]["id"], "type": "function", "function": {
                "name": "get_weather", "arguments": tools[0]["arguments"]}}]},
        {"role": "tool", "tool_call_id": tools[0]["id"],
         "content": "sunny, 21 C"}]}
    r = env.post("/v1/chat/completions", req2)
    check(r.status == 200, "status %d: %r", r.status, r.body[:300])
    recs = env.wait_calls("bedrock-paris", 2)
    rec = recs[1]
    check(rec["verdict"] == "ok", "the mock refused the tool turn: %r",
          rec["verdict"])
    msgs = json.loads(rec["body"])["messages"]
    check([m["role"] for m in msgs] == ["user", "assistant", "user"],
          "roles %r", [m["role"] for m in msgs])
    tu = [b["toolUse"] for b in msgs[1]["content"] if "toolUse" in b]
    check(tu and tu[0]["toolUseId"] == "tooluse_mock1" and
          tu[0]["name"] == "get_weather" and tu[0]["input"] == {"q": "mock"},
          "toolUse %r", msgs[1]["content"])
    tr = [b["toolResult"] for b in msgs[2]["content"] if "toolResult" in b]
    check(tr and tr[0]["toolUseId"] == "tooluse_mock1",
          "toolResult %r", msgs[2]["content"])
    doc = r.json()
    check(doc["choices"][0]["message"]["content"] ==
          "Tool said: sunny, 21 C" and
          doc["choices"][0]["finish_reason"] == "stop",
          "answer %r", doc["choices"][0])


# ---------------------------------------------------------------------------
# bad upstream answers

def plain_request(env, req, headers=None, timeout=15):
    """POST; returns (Response, broken): broken says the connection ended
    before the announced body did (the client can tell it is cut)."""
    h = {"Content-Type": "application/json",
         "Authorization": "Bearer " + CLAIMS_KEY}
    h.update(headers or {})
    conn = http.client.HTTPConnection("127.0.0.1", env.port, timeout=timeout)
    try:
        conn.request("POST", "/v1/chat/completions",
                     body=json.dumps(req).encode(), headers=h)
        r = conn.getresponse()
        broken = False
        try:
            data = r.read()
        except http.client.IncompleteRead as e:
            data, broken = e.partial, True
        except (ConnectionError, socket.timeout):
            data, broken = b"", True
        return harness.Response(r.status, r.getheaders(), data), broken
    finally:
        conn.close()


def bad_answer(env, backend, spec, stream, fallback=None):
    """One request whose answer from `backend` is bad (X-Mock-Mode spec).
    Checks what the client got and that it was logged; returns how it
    ended: "failover", "502", "sse_error" or "cut"."""
    name = backend.split("-")[0]
    before = len(env.calls(backend))
    fb_before = len(env.mock_requests(fallback)) if fallback else 0
    hdr = mode("%s=%s" % (name, spec))
    if stream:
        head, chunks, done, err, raw = sdk_stream(env, body(stream=True),
                                                  headers=hdr)
        r = head
        r.body = raw
    else:
        r, broken = plain_request(env, body(), headers=hdr)
    recs = env.wait_calls(backend, before + 1)
    check(len(recs) == before + 1, "%s received %d requests, expected %d",
          backend, len(recs), before + 1)
    check(recs[-1]["mode"] == spec, "the mock answered in mode %r, not %r",
          recs[-1]["mode"], spec)
    what = "%s %s%s" % (backend, spec, " (stream)" if stream else "")
    did = decision_of(r)
    via = r.header("X-Sovgate-Backend")
    if r.status == 200 and fallback and via == fallback:
        fb = len(env.mock_requests(fallback)) - fb_before
        check(fb == 1, "%s: failed over but %s received %d", what,
              fallback, fb)
        if stream:
            check(done and err is None, "%s: the fallback's stream: %r",
                  what, raw[-200:])
        else:
            check(not broken and r.json()["choices"], "%s: fallback answer "
                  "%r", what, r.body[:200])
        assert_logged(env, r, backend=backend)
        return "failover"
    if fallback:
        time.sleep(0.1)
        fb = len(env.mock_requests(fallback)) - fb_before
        check(fb == 0, "%s: answered by %r yet %s received %d", what, via,
              fallback, fb)
    if r.status == 502:
        check(not fallback, "%s: 502 although %s was allowed to answer",
              what, fallback)
        assert_error_shape(r, 502)
        assert_logged(env, r, want_error=True, backend=backend)
        return "502"
    check(r.status == 200 and via == backend, "%s: the client got %d via "
          "%r: %r", what, r.status, via, r.body[:300])
    ct = (r.header("Content-Type") or "")
    if stream:
        check(ct.startswith("text/event-stream"), "%s: a 200 in %r "
              "reached the streaming client: %r", what, ct, r.body[:200])
        check(not done, "%s: the broken stream ended with [DONE] as if "
              "complete: %r", what, r.body[-300:])
        check(isinstance(err, dict) and isinstance(err.get("error"), dict),
              "%s: the broken stream ended without an SSE error event "
              "(%r): %r", what, err, r.body[-300:])
        check(err["error"].get("decision_id") == did, "%s: error event %r "
              "lacks the decision id", what, err)
        assert_logged(env, r, want_error=True)
        return "sse_error"
    if broken:
        # The head went out before the body broke: the client sees a cut
        # body (Content-Length not reached), never a complete answer.
        assert_logged(env, r, want_error=True)
        return "cut"
    raise TestFailure("%s: a bad answer reached the client as a complete "
                      "%d %r: %r" % (what, r.status, ct, r.body[:200]))


BAD_MODES = [("malformed", False), ("truncated", False),
             ("wrong-ctype", False), ("malformed", True),
             ("truncated", True), ("wrong-ctype", True)]


def run_bad_modes(t, backend, modes, fallback):
    env = cloud_env(t, prefer=[backend] + ([fallback] if fallback else []))
    results, failures = {}, []
    for spec, stream in modes:
        try:
            results["%s%s" % (spec, "/stream" if stream else "")] = \
                bad_answer(env, backend, spec, stream, fallback)
        except TestFailure as e:
            failures.append(str(e))
        # a good answer in between keeps the backend from being marked
        # down (three failures in a row) and proves the gateway serves on
        keeps_serving(env, backend)
    check(not failures, "%d bad answer(s) mishandled: %s (handled: %s)",
          len(failures), " | ".join(failures), results)
    return env, results


def test_bedrock_bad_answers(t):
    """Malformed JSON, a cut body, text/html, a broken event-stream CRC
    and an exception frame: a failover to onprem-vllm before the first
    byte, an SSE error event after it; each logged; the gateway serves
    on."""
    env, res = run_bad_modes(t, "bedrock-paris", BAD_MODES + [
        ("bad-crc", True), ("exception", True)], "onprem-vllm")
    # these break only after text went out: an error event, no failover
    for k in ("bad-crc/stream", "exception/stream"):
        check(res[k] == "sse_error", "%s ended as %s", k, res[k])
    # a JSON answer is checked whole before anything reaches the client
    for k in ("malformed", "truncated", "wrong-ctype", "wrong-ctype/stream"):
        check(res[k] == "failover", "%s ended as %s", k, res[k])


def test_bedrock_bad_answer_without_fallback_is_502(t):
    env = cloud_env(t, prefer=["bedrock-paris"])
    for spec in ("malformed", "wrong-ctype", "status-503"):
        got = bad_answer(env, "bedrock-paris", spec, False)
        check(got == "502", "%s without a fallback ended as %s", spec, got)
        keeps_serving(env, "bedrock-paris")
    # an exception frame before any text: nothing reached the client yet
    r, _ = plain_request(env, body(stream=True),
                         headers=mode("bedrock=exception"))
    check(r.status in (200, 502), "exception frame: %d", r.status)
    if r.status == 502:
        assert_error_shape(r, 502)
    keeps_serving(env, "bedrock-paris")


# ---------------------------------------------------------------------------
# Azure AI Foundry: api-key checked by the mock

def test_azure_foundry_api_key_and_deployment(t):
    env = cloud_env(t, prefer=["azure-sweden", "onprem-vllm"])
    r = env.post("/v1/chat/completions", body())
    check(r.status == 200 and r.header("X-Sovgate-Backend") ==
          "azure-sweden", "status %d via %r: %r", r.status,
          r.header("X-Sovgate-Backend"), r.body[:300])
    rec = env.wait_calls("azure-sweden")[0]
    check(rec["verdict"] == "ok (foundry)", "the Azure mock's verdict: %r",
          rec["verdict"])
    check(rec["path"] == "/models/chat/completions?api-version=" +
          AZURE_API_VERSION, "path %r", rec["path"])
    check(rec["headers"].get("api-key") == BACKEND_KEYS["azure-sweden"],
          "api-key %r", rec["headers"].get("api-key"))
    check("authorization" not in rec["headers"], "Authorization sent to "
          "an api-key backend")
    assert_no_secret(rec, "azure-sweden")
    check(json.loads(rec["body"])["model"] == "Mistral-Large-2411",
          "deployment %r", json.loads(rec["body"])["model"])
    doc = r.json()
    check(doc["choices"][0]["message"]["content"] == REPLY, "answer %r",
          doc)
    assert_logged(env, r)


def test_azure_wrong_key_is_401_not_failed_over(t):
    env = cloud_env(t, prefer=["azure-sweden", "onprem-vllm"],
                    gw_env={harness.BACKEND_ENV["azure-sweden"]:
                            "k-azure-wrong"})
    r = env.post("/v1/chat/completions", body())
    rec = env.wait_calls("azure-sweden")[0]
    check(rec["verdict"].startswith("rejected: Access denied"),
          "the mock accepted a wrong key: %r", rec["verdict"])
    check(r.status == 401, "Azure's 401 became %d: %r", r.status,
          r.body[:200])
    decision_of(r)
    time.sleep(0.2)
    check(env.counts()["onprem-vllm"] == 0, "a 401 was failed over")


def test_azure_serverless_bearer(t):
    """The serverless shape (endpoint without /models) with auth bearer:
    /v1/chat/completions and Authorization: Bearer, no api-key."""
    env = cloud_env(t, prefer=["azure-sweden"], azure=["--auth", "bearer"],
                    descriptor={"azure-sweden": {
                        "endpoint": None, "auth": {
                            "type": "bearer",
                            "key_env": harness.BACKEND_ENV["azure-sweden"]}}},
                    start=False)
    env.start_mocks()
    env.descriptor["azure-sweden"]["endpoint"] = \
        "http://127.0.0.1:%d" % env.mock_ports["azure-sweden"]
    env.write_backends()
    env.write_policy()
    env.start_gateway()
    r = env.post("/v1/chat/completions", body())
    check(r.status == 200, "status %d: %r", r.status, r.body[:300])
    rec = env.wait_calls("azure-sweden")[0]
    check(rec["verdict"] == "ok (serverless)", "verdict %r", rec["verdict"])
    check(rec["path"].split("?")[0] == "/v1/chat/completions", "path %r",
          rec["path"])
    check(rec["headers"].get("authorization") ==
          "Bearer " + BACKEND_KEYS["azure-sweden"] and
          "api-key" not in rec["headers"], "credentials %r",
          {k: v for k, v in rec["headers"].items()
           if k in ("authorization", "api-key")})


def test_azure_stream_reaches_sdk_client(t):
    env = cloud_env(t, prefer=["azure-sweden", "onprem-vllm"])
    head, chunks, done, err, raw = sdk_stream(env, body(stream=True))
    text, finish, usage, tools = assert_good_stream(
        env, "azure-sweden", head, chunks, done, err, raw)
    check(finish == "stop" and usage and usage.get("total_tokens") == 16,
          "finish %r usage %r", finish, usage)
    rec = env.wait_calls("azure-sweden")[0]
    check(rec["verdict"] == "ok (foundry)" and
          json.loads(rec["body"]).get("stream") is True,
          "mock got %r", rec)


def test_azure_truncated_answers(t):
    env, res = run_bad_modes(t, "azure-sweden", [
        ("truncated", False), ("truncated", True), ("status-503", False)],
        "onprem-vllm")
    check(res["status-503"] == "failover", "503 ended as %s",
          res["status-503"])


def test_azure_malformed_or_wrong_content_type(t):
    run_bad_modes(t, "azure-sweden", [
        ("malformed", False), ("wrong-ctype", False), ("malformed", True),
        ("wrong-ctype", True)], "onprem-vllm")




# ---------------------------------------------------------------------------
# Vertex AI: a service-account JWT checked by the mock's token endpoint,
# then the bearer checked on rawPredict

VERTEX_TOKEN = "ya29.e2e-sovgate-token-0001"


def test_vertex_token_then_raw_predict(t):
    env = cloud_env(t, prefer=["vertex-netherlands", "onprem-vllm"],
                    vertex=["--token", VERTEX_TOKEN])
    r = env.post("/v1/chat/completions", body(seed=7))
    check(r.status == 200 and r.header("X-Sovgate-Backend") ==
          "vertex-netherlands", "status %d via %r: %r", r.status,
          r.header("X-Sovgate-Backend"), r.body[:300])
    toks = env.tokens()
    check(len(toks) == 1 and toks[0]["verdict"] == "token issued",
          "token requests %r", [x["verdict"] for x in toks])
    tk = toks[0]
    check(tk["headers"].get("content-type", "").startswith(
        "application/x-www-form-urlencoded"), "token request type %r",
        tk["headers"].get("content-type"))
    form = dict(x.split("=", 1) for x in tk["body"].split("&"))
    check(form.get("grant_type") in (
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"),
        "grant_type %r", form.get("grant_type"))
    hdr, cl = jwt_claims(form["assertion"])
    check(hdr.get("alg") == "RS256", "JWT header %r", hdr)
    check(cl.get("iss") == GCP_EMAIL and "cloud-platform" in cl.get(
        "scope", "") and cl.get("aud") == "http://127.0.0.1:%d/token" %
        env.mock_ports["vertex-netherlands"], "JWT claims %r", cl)
    recs = env.wait_calls("vertex-netherlands")
    check(len(recs) == 1, "rawPredict calls %d", len(recs))
    rec = recs[0]
    check(rec["verdict"] == "ok", "the Vertex mock's verdict: %r",
          rec["verdict"])
    check(rec["path"] == "/v1/projects/%s/locations/%s/publishers/mistralai/"
          "models/mistral-large-2411:rawPredict" % (GCP_PROJECT, GCP_REGION),
          "path %r", rec["path"])
    check(rec["headers"].get("authorization") == "Bearer " + VERTEX_TOKEN,
          "bearer %r", rec["headers"].get("authorization"))
    sent = json.loads(rec["body"])
    check(sent.get("random_seed") == 7 and "seed" not in sent,
          "seed not mapped to random_seed: %r", sent)
    assert_no_secret(rec, "vertex-netherlands")
    check("PRIVATE KEY" not in json.dumps(env.mock_requests(
        "vertex-netherlands")), "the private key was sent")
    check(r.json()["choices"][0]["message"]["content"] == REPLY,
          "answer %r", r.body[:200])
    # the token is cached: a second request fetches none
    r = env.post("/v1/chat/completions", body(model="mistral-small-latest"))
    check(r.status == 200, "second request: %d %r", r.status, r.body[:200])
    rec = env.wait_calls("vertex-netherlands", 2)[-1]
    check(rec["verdict"] == "ok" and rec["path"].endswith(
        "/models/mistral-small-2503@001:rawPredict") and
        json.loads(rec["body"])["model"] == "mistral-small-2503",
        "versioned model: %s %r", rec["path"], rec["verdict"])
    check(len(env.tokens()) == 1, "the token was fetched again: %d",
          len(env.tokens()))


def test_vertex_stream_reaches_sdk_client(t):
    """streamRawPredict; stream_options (which Mistral rejects with 422,
    as the mock does) is dropped on the way."""
    env = cloud_env(t, prefer=["vertex-netherlands", "onprem-vllm"])
    head, chunks, done, err, raw = sdk_stream(env, body(
        stream=True, stream_options={"include_usage": True}))
    text, finish, usage, tools = assert_good_stream(
        env, "vertex-netherlands", head, chunks, done, err, raw)
    check(finish == "stop" and usage and usage.get("total_tokens") == 16,
          "finish %r usage %r", finish, usage)
    rec = env.wait_calls("vertex-netherlands")[0]
    check(rec["verdict"] == "ok" and rec["path"].endswith(
        ":streamRawPredict"), "mock got %s: %r", rec["path"],
        rec["verdict"])
    out = assert_logged(env, head)
    if "total_tokens" in out:
        check(out["total_tokens"] == 16, "logged usage %r", out)


def test_vertex_jwt_signed_with_another_key_is_refused(t):
    """The service-account file holds a key that is not the one the mock
    knows: the mock's RSA check refuses the JWT, no model call is made,
    and the request fails over (or is a 502 without a fallback)."""
    env = cloud_env(t, prefer=["vertex-netherlands", "onprem-vllm"],
                    start=False)
    env.start_mocks()
    other = os.path.join(env.dir, "other-key.pem")
    p = subprocess.run(["openssl", "genpkey", "-algorithm", "RSA",
                        "-pkeyopt", "rsa_keygen_bits:2048", "-out", other],
                       capture_output=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        raise Skip("openssl genpkey failed: %r" % p.stderr[-200:])
    with open(env.sa_path) as f:
        sa = json.load(f)
    with open(other) as f:
        sa["private_key"] = f.read()
    with open(env.sa_path, "w") as f:
        json.dump(sa, f)
    env.write_backends()
    env.write_policy()
    env.start_gateway()
    r = env.post("/v1/chat/completions", body())
    toks = env.tokens()
    check(toks and all(x["verdict"] == "rejected: Invalid JWT Signature."
                       for x in toks), "token verdicts %r",
          [x["verdict"] for x in toks])
    check(not env.calls("vertex-netherlands", settle=0.1),
          "a model call was made without a token")
    check(r.status == 200 and r.header("X-Sovgate-Backend") ==
          "onprem-vllm", "refused token: %d via %r: %r", r.status,
          r.header("X-Sovgate-Backend"), r.body[:200])
    assert_logged(env, r, backend="vertex-netherlands")


def test_vertex_token_endpoint_failures(t):
    """A token endpoint that answers 500 or cut JSON: the request fails
    over when another backend is allowed, else it is a 502; logged; the
    gateway serves on."""
    for tmode in ("status-500", "malformed"):
        env = cloud_env(t, prefer=["vertex-netherlands", "onprem-vllm"],
                        vertex=["--token-mode", tmode])
        r = env.post("/v1/chat/completions", body())
        check(r.status == 200 and r.header("X-Sovgate-Backend") ==
              "onprem-vllm", "token %s: %d via %r: %r", tmode, r.status,
              r.header("X-Sovgate-Backend"), r.body[:200])
        check(env.tokens(), "no token request was made")
        check(not env.calls("vertex-netherlands", settle=0.1),
              "token %s: a model call was made", tmode)
        out = assert_logged(env, r, backend="vertex-netherlands")
        if "attempts_json" in out:
            check("credentials" in out["attempts_json"] or "token" in
                  out["attempts_json"], "the attempt's failure is not "
                  "recorded as a credential one: %r", out["attempts_json"])
        # a stream as well
        head, chunks, done, err, raw = sdk_stream(env, body(stream=True))
        check(head.status == 200 and head.header("X-Sovgate-Backend") ==
              "onprem-vllm" and done and err is None,
              "token %s, stream: %d via %r", tmode, head.status,
              head.header("X-Sovgate-Backend"))
        check(env.gateway_alive(), "the gateway died")
    env = cloud_env(t, prefer=["vertex-netherlands"],
                    vertex=["--token-mode", "status-503"])
    r = env.post("/v1/chat/completions", body())
    assert_error_shape(r, 502)
    assert_logged(env, r, want_error=True, backend="vertex-netherlands")
    check(env.gateway_alive(), "the gateway died")


test_vertex_token_endpoint_failures.timeout = 60


def test_vertex_one_token_fetch_for_concurrent_requests(t):
    """Six requests arrive while no token is cached and the token endpoint
    is slow: one exchange serves them all."""
    env = cloud_env(t, prefer=["vertex-netherlands"],
                    vertex=["--token-mode", "slow-800"])
    results = [None] * 6

    def one(i):
        try:
            results[i] = plain_request(env, body())[0].status
        except Exception as e:
            results[i] = repr(e)

    ths = [threading.Thread(target=one, args=(i,)) for i in range(6)]
    for th in ths:
        th.start()
    for th in ths:
        th.join(20)
    check(results == [200] * 6, "concurrent results %r", results)
    check(len(env.tokens()) == 1, "%d token exchanges for concurrent "
          "requests", len(env.tokens()))
    recs = env.wait_calls("vertex-netherlands", 6)
    check(len(recs) == 6 and all(x["verdict"] == "ok" for x in recs),
          "model calls %r", [x["verdict"] for x in recs])


def test_vertex_token_refreshed_when_it_expires(t):
    env = cloud_env(t, prefer=["vertex-netherlands"],
                    vertex=["--expires-in", "2"])
    r = env.post("/v1/chat/completions", body())
    check(r.status == 200, "first: %d %r", r.status, r.body[:200])
    time.sleep(2.3)     # the mock no longer accepts the first token
    r = env.post("/v1/chat/completions", body())
    check(r.status == 200, "after expiry: %d %r", r.status, r.body[:200])
    toks = env.tokens()
    check(len(toks) == 2 and all(x["verdict"] == "token issued"
                                 for x in toks), "token exchanges %r",
          [x["verdict"] for x in toks])
    recs = env.wait_calls("vertex-netherlands", 2)
    check([x["verdict"] for x in recs] == ["ok", "ok"],
          "the mock refused a bearer: %r", [x["verdict"] for x in recs])
    a = recs[0]["headers"]["authorization"]
    b = recs[1]["headers"]["authorization"]
    check(a != b, "the expired token was sent again")


def test_vertex_truncated_answers(t):
    env, res = run_bad_modes(t, "vertex-netherlands", [
        ("truncated", False), ("truncated", True), ("status-503", False)],
        "onprem-vllm")
    check(res["status-503"] == "failover", "503 ended as %s",
          res["status-503"])


def test_vertex_malformed_or_wrong_content_type(t):
    run_bad_modes(t, "vertex-netherlands", [
        ("malformed", False), ("wrong-ctype", False), ("malformed", True),
        ("wrong-ctype", True)], "onprem-vllm")




# ---------------------------------------------------------------------------
# credentials missing from the environment

def missing_credentials(t, backend, drop, name_in_log):
    env = cloud_env(t, prefer=[backend, "azure-sweden", "onprem-vllm"]
                    if backend != "azure-sweden" else
                    [backend, "bedrock-paris", "onprem-vllm"],
                    gw_env={v: None for v in drop}, start=False)
    env.start_mocks()
    env.write_backends()
    env.write_policy()
    if backend == "vertex-netherlands":
        os.unlink(env.sa_path)
    env.start_gateway()
    rc, out, err = env.run_cli("check")
    text = out + err
    check(name_in_log in text and backend in text,
          "`sovgate check` (exit %d) does not name %s for %s: %s", rc,
          name_in_log, backend, text[-800:])
    other = "bedrock-paris" if backend == "azure-sweden" else "azure-sweden"
    r = env.post("/v1/chat/completions", body())
    check(r.status == 200 and r.header("X-Sovgate-Backend") == other,
          "with %s's credentials missing: %d via %r: %r", backend, r.status,
          r.header("X-Sovgate-Backend"), r.body[:200])
    check(not env.calls(backend, settle=0.1), "%s was tried without "
          "credentials", backend)
    rec = env.wait_calls(other)[0]
    check(rec["verdict"].startswith("ok"), "%s's mock: %r", other,
          rec["verdict"])
    log = env.tail(env.gw_log, 200)
    lines = [ln for ln in log.splitlines()
             if backend in ln and name_in_log in ln]
    check(lines, "no log line names %s and %s: %s", backend, name_in_log,
          log[-800:])
    check(env.gateway_alive(), "serve refused to run")
    # no secret in the log
    for k in list(BACKEND_KEYS.values()) + [AWS_SECRET]:
        check(k not in log, "a secret is in the gateway log")


def test_missing_aws_secret_key(t):
    missing_credentials(t, "bedrock-paris", [AWS_ENV["secret"]],
                        AWS_ENV["secret"])


def test_missing_azure_key(t):
    missing_credentials(t, "azure-sweden",
                        [harness.BACKEND_ENV["azure-sweden"]],
                        harness.BACKEND_ENV["azure-sweden"])


def test_missing_vertex_service_account_file(t):
    missing_credentials(t, "vertex-netherlands", [], "vertex-sa.json")


# ---------------------------------------------------------------------------
# OpenAI's official Node SDK, when installed (see test_sdk.py)

SDK_JS = r"""
'use strict';
const OpenAI = require('openai');
const client = new OpenAI({baseURL: process.env.SOVGATE_BASE_URL,
  apiKey: process.env.SOVGATE_KEY, maxRetries: 0, timeout: 15000});
async function one(mockMode) {
  const out = {text: '', chunks: 0, finish: null, usage: null};
  try {
    const stream = await client.chat.completions.create({
      model: 'mistral-large-latest', stream: true,
      stream_options: {include_usage: true},
      messages: [{role: 'user', content: 'What is the capital of France?'}],
    }, {headers: {'X-Mock-Mode': mockMode}});
    for await (const chunk of stream) {
      out.chunks++;
      for (const c of chunk.choices || []) {
        out.text += (c.delta && c.delta.content) || '';
        if (c.finish_reason) out.finish = c.finish_reason;
      }
      if (chunk.usage) out.usage = chunk.usage;
    }
  } catch (e) {
    out.thrown = String(e && e.message || e);
  }
  return out;
}
(async () => {
  const res = {};
  for (const m of JSON.parse(process.env.MODES)) res[m] = await one(m);
  console.log(JSON.stringify(res));
})().catch(e => { console.log(JSON.stringify({fatal: String(e)})); });
"""


def test_official_node_sdk_streams_through_each_adapter(t):
    import shutil
    from test_sdk import node_modules
    node = shutil.which("node")
    nm = node_modules()
    if not node or not nm:
        raise Skip("no node or no node_modules with openai (contrib/test.sh "
                   "installs it into build/e2e-sdk)")
    results = {}
    for backend in CLOUD:
        env = cloud_env(t, prefer=[backend])
        kind = backend.split("-")[0]
        modes = ["ok"] + (["%s=bad-crc" % kind] if kind == "bedrock" else [])
        e = dict(os.environ, NODE_PATH=nm, MODES=json.dumps(modes),
                 SOVGATE_BASE_URL="http://127.0.0.1:%d/v1" % env.port,
                 SOVGATE_KEY=CLAIMS_KEY)
        p = subprocess.run([node, "-e", SDK_JS], capture_output=True,
                           timeout=40, env=e, stdin=subprocess.DEVNULL)
        lines = p.stdout.decode("utf-8", "replace").strip().splitlines()
        check(lines, "the SDK printed nothing (exit %d): %s", p.returncode,
              p.stderr.decode()[-600:])
        out = json.loads(lines[-1])
        check("fatal" not in out, "the SDK failed: %r", out)
        results[backend] = out
        ok = out["ok"]
        check("thrown" not in ok and ok["text"] == REPLY and
              ok["finish"] == "stop" and ok["chunks"] >= 3,
              "stream via %s through the SDK: %r", backend, ok)
        check(all(x["verdict"].startswith("ok") for x in
                  env.wait_calls(backend)),
              "the %s mock refused: %r", backend,
              [x["verdict"] for x in env.calls(backend)])
        if kind == "bedrock":
            bad = out["bedrock=bad-crc"]
            check(bad.get("thrown"), "a stream broken by a bad CRC ended "
                  "normally in the SDK: %r", bad)


test_official_node_sdk_streams_through_each_adapter.timeout = 120
