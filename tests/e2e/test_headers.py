"""What goes upstream and what comes back: the client's credentials and
X-Sovgate-* headers never leave, hop-by-hop headers are stripped, every
answer carries the decision headers, errors have the OpenAI shape with the
decision id (SPEC §3)."""

import http.client
import json
import re
import socket
import time

from harness import (CLAIMS_KEY, TEXT_IBAN, TEXT_PUBLIC, UUID_RE,
                     assert_credentials, assert_error_shape,
                     assert_nothing_forwarded, chat, check, header_map,
                     parse_http, response_complete)


def test_client_secrets_and_sovgate_headers_never_go_upstream(t):
    env = t.env()
    r = env.chat(TEXT_PUBLIC, headers={
        "X-Sovgate-Classification": "internal",
        "X-Sovgate-Debug": "please",
        "x-sovgate-backend": "bedrock-paris",
        "Connection": "keep-alive, X-Hop-Secret",
        "X-Hop-Secret": "hop-value",
        "Keep-Alive": "timeout=5",
        "Proxy-Authorization": "Basic cHJveHk6c2VjcmV0",
        "Cookie": "session=abc",
        "X-Request-Id": "req-123",
    })
    check(r.status == 200, "status %d: %r", r.status, r.body[:200])
    check(r.header("X-Sovgate-Level") == "internal", "level %r",
          r.header("X-Sovgate-Level"))
    b = r.header("X-Sovgate-Backend")
    check(b == "mistral-eu", "a client header chose the backend: %r", b)
    rec = env.mock_requests(b)[0]
    h = header_map(rec)
    leaked = [k for k in h if k.startswith("x-sovgate")]
    check(not leaked, "X-Sovgate-* headers reached upstream: %s", leaked)
    for k in ("x-hop-secret", "keep-alive", "proxy-authorization", "cookie"):
        check(k not in h, "%s reached upstream: %r", k, h.get(k))
    check(len(h.get("authorization", [])) == 1,
          "upstream got %d Authorization headers",
          len(h.get("authorization", [])))
    assert_credentials(rec, b)
    raw = json.dumps(rec)
    check(CLAIMS_KEY not in raw, "the client key reached upstream")
    check("hop-value" not in raw, "a Connection-named header reached "
          "upstream")


def test_decision_headers_on_every_answer(t):
    env = t.env()
    seen = set()
    answers = [env.chat(TEXT_PUBLIC), env.chat(TEXT_IBAN),
               env.chat(TEXT_PUBLIC, key="wrong-key"),
               env.chat(TEXT_PUBLIC, model="gpt-4o"),
               env.post("/v1/chat/completions", b"{not json")]
    for r in answers:
        d = r.header("X-Sovgate-Decision")
        check(d and UUID_RE.match(d), "answer %d without a UUID "
              "X-Sovgate-Decision: %r", r.status, d)
        check(d not in seen, "decision id %s reused", d)
        seen.add(d)
        check(r.header("X-Sovgate-Level"), "answer %d without "
              "X-Sovgate-Level", r.status)
    check(answers[0].header("X-Sovgate-Backend") == "mistral-eu" and
          answers[1].header("X-Sovgate-Backend") == "onprem-vllm",
          "X-Sovgate-Backend missing on forwarded answers")


def test_401_unknown_and_missing_key(t):
    env = t.env()
    for key in ("not-a-client-key", None, ""):
        r = env.chat(TEXT_PUBLIC, key=key)
        assert_error_shape(r, 401)
    # a scheme other than Bearer
    r = env.chat(TEXT_PUBLIC, key=None,
                 headers={"Authorization": "Basic " + CLAIMS_KEY})
    assert_error_shape(r, 401)
    # the right key's prefix is not the key
    r = env.chat(TEXT_PUBLIC, key=CLAIMS_KEY[:-1])
    assert_error_shape(r, 401)
    assert_nothing_forwarded(env)


def test_error_shapes_403_400_413(t):
    env = t.env()
    e = assert_error_shape(env.chat(TEXT_PUBLIC, model="gpt-4o"), 403,
                           etype="policy_denied")
    check(e.get("level") == "public", "403 error.level %r", e.get("level"))
    assert_error_shape(env.post("/v1/chat/completions", b"[1, 2"), 400)
    raw, _, _ = env.raw(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: Bearer " + CLAIMS_KEY.encode() + b"\r\n"
        b"Content-Type: application/json\r\nContent-Length: 70000\r\n\r\n")
    r = parse_http(raw)
    check(r is not None, "no answer to an oversized body: %r", raw[:200])
    assert_error_shape(r, 413)
    assert_nothing_forwarded(env)


def test_keepalive_several_requests_one_connection(t):
    env = t.env()
    conn = http.client.HTTPConnection("127.0.0.1", env.port, timeout=10)
    try:
        for text, backend in ((TEXT_PUBLIC, "mistral-eu"),
                              (TEXT_IBAN, "onprem-vllm"),
                              (TEXT_PUBLIC, "mistral-eu")):
            conn.request("POST", "/v1/chat/completions",
                         body=json.dumps(chat(text)),
                         headers={"Authorization": "Bearer " + CLAIMS_KEY,
                                  "Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            check(r.status == 200 and r.getheader("X-Sovgate-Backend") ==
                  backend, "keep-alive request: %d via %r", r.status,
                  r.getheader("X-Sovgate-Backend"))
    finally:
        conn.close()
    c = env.counts()
    check(c["mistral-eu"] == 2 and c["onprem-vllm"] == 1, "counts %s", c)


def test_unknown_endpoint_and_method(t):
    env = t.env()
    r = env.post("/v1/completions", chat(TEXT_PUBLIC))
    check(r.status == 404, "POST /v1/completions: %d", r.status)
    r = env.request("GET", "/v1/chat/completions")
    check(r.status == 405, "GET /v1/chat/completions: %d", r.status)
    r = env.request("DELETE", "/v1/models")
    check(r.status == 405, "DELETE /v1/models: %d", r.status)
    assert_nothing_forwarded(env)


def test_mistral_kind_translation(t):
    """Kind mistral gets Mistral's field names; kind openai gets the body
    as sent (only the model rewritten)."""
    env = t.env()
    body = chat(TEXT_PUBLIC)
    body.update(seed=42, stream_options={"include_usage": True},
                temperature=0.2, max_tokens=50)
    r = env.post("/v1/chat/completions", body)
    check(r.status == 200 and r.header("X-Sovgate-Backend") == "mistral-eu",
          "%d via %r", r.status, r.header("X-Sovgate-Backend"))
    got = env.mock_requests("mistral-eu")[0]["json"]
    check("stream_options" not in got, "mistral got stream_options")
    check(got.get("random_seed") == 42 and "seed" not in got,
          "mistral got seed %r / random_seed %r", got.get("seed"),
          got.get("random_seed"))
    check(got.get("temperature") == 0.2 and got.get("max_tokens") == 50,
          "other fields lost: %r", got)
    r = env.post("/v1/chat/completions", dict(body, messages=[
        {"role": "user", "content": TEXT_IBAN}]))
    got = env.mock_requests("onprem-vllm")[0]["json"]
    check(got.get("seed") == 42 and got.get("stream_options") ==
          {"include_usage": True} and "random_seed" not in got,
          "openai kind got %r", got)


def test_chunked_upstream_answer_reframed(t):
    env = t.env(mocks={"mistral-eu": {"chunked": True}})
    r = env.chat(TEXT_PUBLIC)
    check(r.status == 200, "status %d", r.status)
    doc = r.json()
    check(doc["choices"][0]["message"]["content"].startswith(
        "Hello from mistral-eu"), "body %r", doc)
    out = env.outcome(r.header("X-Sovgate-Decision"))
    if out and "total_tokens" in out:
        check(out["total_tokens"] == doc["usage"]["total_tokens"],
              "usage of a chunked answer: %r vs %r", out["total_tokens"],
              doc["usage"])
    check(not (r.header("Content-Length") and
               r.header("Transfer-Encoding")),
          "both Content-Length and Transfer-Encoding on the answer")


def test_expect_100_continue(t):
    env = t.env()
    body = json.dumps(chat(TEXT_PUBLIC)).encode()
    s = socket.create_connection(("127.0.0.1", env.port), timeout=5)
    try:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                  b"Authorization: Bearer " + CLAIMS_KEY.encode() + b"\r\n"
                  b"Content-Type: application/json\r\nExpect: 100-continue\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body))
        first = s.recv(4096)
        check(first.startswith(b"HTTP/1.1 100"), "no 100 Continue: %r",
              first[:100])
        s.sendall(body)
        out = first.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in first else b""
        while not response_complete(out):
            b = s.recv(65536)
            if not b:
                break
            out += b
        r = parse_http(out)
        check(r is not None and r.status == 200, "after 100: %r", out[:200])
    finally:
        s.close()
    h = header_map(env.mock_requests("mistral-eu")[0])
    check("expect" not in h, "Expect went upstream")


def test_pipelined_requests_answered_in_order(t):
    env = t.env()
    reqs = b""
    for text in (TEXT_IBAN, TEXT_PUBLIC, TEXT_IBAN):
        body = json.dumps(chat(text)).encode()
        reqs += (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                 b"Authorization: Bearer " + CLAIMS_KEY.encode() + b"\r\n"
                 b"Content-Type: application/json\r\nContent-Length: %d\r\n"
                 b"\r\n" % len(body) + body)
    s = socket.create_connection(("127.0.0.1", env.port), timeout=10)
    out = b""
    try:
        s.sendall(reqs)
        deadline = time.time() + 10
        while out.count(b"HTTP/1.1 ") < 3 or not response_complete(
                out[out.rfind(b"HTTP/1.1 "):]):
            if time.time() > deadline:
                break
            b = s.recv(65536)
            if not b:
                break
            out += b
    finally:
        s.close()
    backends = re.findall(rb"(?i)x-sovgate-backend: ([a-z-]+)", out)
    check(backends == [b"onprem-vllm", b"mistral-eu", b"onprem-vllm"],
          "pipelined answers: %r", backends)
