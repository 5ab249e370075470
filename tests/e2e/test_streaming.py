"""Streaming: SSE passes through chunk by chunk as it arrives; a broken
upstream ends the client's stream with an error event; a client that goes
away cancels its upstream request."""

import json
import socket
import time

from harness import CLAIMS_KEY, TEXT_IBAN, TEXT_PUBLIC, check


def sse_events(data):
    """[(event name or None, data string)] of an SSE byte stream."""
    out = []
    for block in data.decode("utf-8", "replace").replace("\r\n", "\n") \
            .split("\n\n"):
        ev, lines = None, []
        for ln in block.split("\n"):
            if ln.startswith("event:"):
                ev = ln[6:].strip()
            elif ln.startswith("data:"):
                lines.append(ln[5:].lstrip(" "))
        if lines:
            out.append((ev, "\n".join(lines)))
    return out


def stream_body(text, **kw):
    b = {"model": "mistral-large-latest", "stream": True,
         "messages": [{"role": "user", "content": text}]}
    b.update(kw)
    return b


def test_stream_arrives_before_upstream_finishes(t):
    env = t.env(mocks={"mistral-eu": {"stream_chunks": 6,
                                      "chunk_delay": 0.4}})
    t0 = time.time()
    r, reads = env.stream(stream_body(TEXT_PUBLIC))
    check(r.status == 200, "status %d: %r", r.status, r.body[:200])
    check((r.header("Content-Type") or "").startswith("text/event-stream"),
          "Content-Type %r", r.header("Content-Type"))
    check(r.header("X-Sovgate-Backend") == "mistral-eu" and
          r.header("X-Sovgate-Level") == "public" and
          r.header("X-Sovgate-Decision"), "decision headers on a stream: %r",
          r.headers)
    rec = env.mock_requests("mistral-eu")
    check(len(rec) == 1, "mistral-eu received %d", len(rec))
    sent = rec[0]["chunks_sent_at"]
    check(sent and len(sent) >= 8, "the mock sent %r", sent)
    last_sent = sent[-1]
    # when did the first content reach the client?
    first_content = None
    acc = b""
    for tm, data, _ in reads:
        acc += data
        if b"Bonjour" in acc:
            first_content = tm
            break
    check(first_content is not None, "no content in the stream: %r",
          r.body[:300])
    check(first_content < last_sent - 1.5,
          "first content reached the client %.2f s after start, the mock's "
          "last chunk was sent at %.2f s: the stream was buffered",
          first_content - t0, last_sent - t0)
    # several separate arrivals, spread over the upstream's pace
    times = [tm for tm, data, _ in reads if data]
    check(len(times) >= 4, "the answer arrived in %d reads", len(times))
    check(times[-1] - times[0] > 1.5, "reads spread over only %.2f s",
          times[-1] - times[0])
    evs = sse_events(r.body)
    check(evs and evs[-1][1] == "[DONE]", "stream does not end with [DONE]:"
          " %r", evs[-3:])
    text = ""
    for ev, d in evs[:-1]:
        doc = json.loads(d)
        check(doc.get("object") == "chat.completion.chunk",
              "not a chunk: %r", doc)
        check(doc.get("model") == "mistral-large-2411",
              "chunk model %r (what the backend said)", doc.get("model"))
        for c in doc["choices"]:
            text += (c.get("delta") or {}).get("content") or ""
    check(text.startswith("[mistral-eu] Bonjour depuis le mock"),
          "reassembled text %r", text)


def test_stream_usage_recorded(t):
    env = t.env()
    r, reads = env.stream(stream_body(TEXT_PUBLIC))
    check(r.status == 200, "status %d", r.status)
    usage = None
    for ev, d in sse_events(r.body):
        if d != "[DONE]":
            usage = json.loads(d).get("usage") or usage
    check(usage, "the mock's final chunk carried no usage: %r", r.body[-300:])
    out = env.outcome(r.header("X-Sovgate-Decision"))
    if out is None:
        t.note("no outcome table in the log: usage not checked")
        return
    check(out, "no outcome for %s", r.header("X-Sovgate-Decision"))
    if "total_tokens" in out:
        check(out["total_tokens"] == usage["total_tokens"],
              "outcome total_tokens %r, the stream said %r",
              out["total_tokens"], usage["total_tokens"])
    if "status" in out:
        check(out["status"] == 200, "outcome status %r", out["status"])


def test_reset_mid_stream_ends_with_error_event(t):
    env = t.env(mocks={"onprem-vllm": {"reset_mid_stream": True,
                                       "stream_chunks": 6,
                                       "chunk_delay": 0.1}})
    r, reads = env.stream(stream_body(TEXT_IBAN))
    check(r.status == 200, "status %d: %r", r.status, r.body[:200])
    evs = sse_events(r.body)
    check(any(b"Bonjour" in d.encode() for _, d in evs),
          "no content before the reset: %r", r.body[:300])
    check(evs and evs[-1][1] != "[DONE]", "a broken stream ended with "
          "[DONE]")
    errs = [(ev, d) for ev, d in evs if ev == "error" or '"error"' in d]
    check(errs, "the stream ended without an error event: %r", evs[-2:])
    doc = json.loads(errs[-1][1])
    check(isinstance(doc.get("error"), dict) and
          doc["error"].get("decision_id") == r.header("X-Sovgate-Decision"),
          "error event %r lacks the decision id", doc)
    c = env.counts()
    check(c["onprem-vllm"] == 1 and sum(c.values()) == 1,
          "after the first byte the request went elsewhere: %s", c)
    out = env.outcome(r.header("X-Sovgate-Decision"))
    if out is not None:
        check(out, "no outcome for the broken stream")
        if "error" in out:
            check(out["error"], "the outcome of a broken stream records no "
                  "error: %r", out)


def test_reset_mid_answer_non_stream(t):
    """A plain JSON answer cut in the middle must not look complete: the
    gateway holds a JSON answer until it is whole, so the cut one is a
    failed attempt and the next allowed backend answers."""
    env = t.env(mocks={"mistral-eu": {"reset_mid_stream": True}})
    r = None
    try:
        r = env.chat(TEXT_PUBLIC)
    except Exception:
        return   # the connection was cut: the client knows it is broken
    if r.status == 200:
        try:
            json.loads(r.body)
        except ValueError:
            return
        check(r.header("X-Sovgate-Backend") != "mistral-eu",
              "a cut answer was delivered as complete: %r", r.body[:200])
        check(len(env.mock_requests("mistral-eu")) == 1,
              "the cut backend was tried %d times",
              len(env.mock_requests("mistral-eu")))


def test_client_gone_cancels_upstream(t):
    env = t.env(mocks={"mistral-eu": {"stream_chunks": 40,
                                      "chunk_delay": 0.15}})
    r, reads = env.stream(stream_body(TEXT_PUBLIC), stop_after=2)
    check(r.status == 200, "status %d", r.status)
    deadline = time.time() + 5
    rec = None
    while time.time() < deadline:
        rec = env.mock_requests("mistral-eu")[0]
        if rec["aborted"] or rec["completed"]:
            break
        time.sleep(0.1)
    check(rec["aborted"] and not rec["completed"],
          "the upstream stream went on after the client left "
          "(aborted=%r, completed=%r, %d chunks sent)", rec["aborted"],
          rec["completed"], len(rec["chunks_sent_at"] or []))
    check(len(rec["chunks_sent_at"]) < 30, "upstream sent %d of 42 chunks "
          "to a client that had gone", len(rec["chunks_sent_at"]))
    # and the gateway still serves
    r2 = env.chat(TEXT_PUBLIC)
    check(r2.status == 200, "after a client left: %d", r2.status)


def test_stream_backend_failover_before_first_byte(t):
    env = t.env(mocks={"mistral-eu": {"fail_status": 500}})
    r, reads = env.stream(stream_body(TEXT_PUBLIC))
    check(r.status == 200 and r.header("X-Sovgate-Backend") ==
          "azure-sweden", "stream failover: %d via %r", r.status,
          r.header("X-Sovgate-Backend"))
    evs = sse_events(r.body)
    check(evs and evs[-1][1] == "[DONE]", "stream incomplete: %r", evs[-2:])
    check("mistral-eu" not in r.body.decode("utf-8", "replace"),
          "the failed attempt's body leaked into the stream")


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_backpressure_slow_client_bounds_memory(t):
    """~100 MB streamed to a client that stops reading: the gateway stops
    reading the upstream (the mock cannot finish) and its memory stays
    bounded; once the client reads again, everything arrives."""
    n, size = 3000, 32768
    env = t.env(mocks={"mistral-eu": {"stream_chunks": n, "chunk_delay": 0,
                                      "chunk_bytes": size}})
    base = rss_kb(env.gw.pid)
    body = json.dumps(stream_body(TEXT_PUBLIC)).encode()
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.settimeout(20)
    s.connect(("127.0.0.1", env.port))
    try:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                  b"Authorization: Bearer " + CLAIMS_KEY.encode() + b"\r\n"
                  b"Content-Type: application/json\r\nContent-Length: %d\r\n"
                  b"\r\n" % len(body) + body)
        got = s.recv(4096)
        check(got.startswith(b"HTTP/1.1 200"), "answer: %r", got[:200])
        time.sleep(2.5)   # the client does not read
        rec = env.mock_requests("mistral-eu")[0]
        sent = len(rec["chunks_sent_at"] or [])
        grown = rss_kb(env.gw.pid) - base
        t.note("upstream sent %d of %d chunks, gateway +%d MB" % (
            sent, n, grown >> 10))
        check(not rec["completed"] and sent < n,
              "the upstream sent all %d chunks (%d MB) to a client that "
              "reads nothing: no backpressure", sent, n * size >> 20)
        check(grown < 48 * 1024, "the gateway grew by %d MB holding a slow "
              "client's stream", grown >> 10)
        # now read everything
        total = len(got)
        tail = got[-64:]
        deadline = time.time() + 60
        s.settimeout(10)
        while time.time() < deadline:
            try:
                b = s.recv(1 << 20)
            except socket.timeout:
                rec = env.mock_requests("mistral-eu")[0]
                check(False, "the stream stalled after the client resumed "
                      "reading: %d bytes received; the upstream has sent "
                      "%d of %d chunks (completed=%r, aborted=%r); nothing "
                      "more for 10 s", total, len(rec["chunks_sent_at"]),
                      n, rec["completed"], rec["aborted"])
            if not b:
                break
            total += len(b)
            tail = (tail + b)[-64:]
            if tail.endswith(b"0\r\n\r\n") and b"[DONE]" in tail:
                break
        check(b"[DONE]" in tail, "the stream did not complete after the "
              "client resumed (%d bytes, tail %r)", total, tail)
        check(total > n * size, "only %d bytes arrived", total)
    finally:
        s.close()
test_backpressure_slow_client_bounds_memory.timeout = 90


def test_stream_idle_timeout_ends_with_error_event(t):
    env = t.env(mocks={"mistral-eu": {"stream_chunks": 3,
                                      "chunk_delay": 4.0}},
                backend_extra={"mistral-eu": {"stream_idle_timeout": "1s"}})
    t0 = time.time()
    r, reads = env.stream(stream_body(TEXT_PUBLIC))
    dt = time.time() - t0
    check(r.status == 200, "status %d", r.status)
    check(dt < 3.5, "a stalled upstream held the client %.1f s (idle "
          "timeout 1 s)", dt)
    evs = sse_events(r.body)
    check(evs and evs[-1][1] != "[DONE]", "a stalled stream ended with "
          "[DONE]")
    check(any(ev == "error" or '"error"' in d for ev, d in evs),
          "no error event after the idle timeout: %r", evs[-2:])


def test_max_connections(t):
    env = t.env(limits={"max_connections": 4, "header_timeout": "5s"})
    held = [socket.create_connection(("127.0.0.1", env.port), timeout=3)
            for _ in range(4)]
    try:
        time.sleep(0.3)
        extra = socket.create_connection(("127.0.0.1", env.port), timeout=3)
        extra.settimeout(2.5)
        try:
            data = extra.recv(4096)
            refused = data == b"" or b" 503 " in data[:20]
        except socket.timeout:
            refused = False
        except ConnectionError:
            refused = True
        finally:
            extra.close()
        check(refused, "a fifth connection was kept open with "
              "max_connections 4")
    finally:
        for h in held:
            h.close()
    time.sleep(0.3)
    r = env.chat(TEXT_PUBLIC)
    check(r.status == 200, "after the held connections closed: %d",
          r.status)
