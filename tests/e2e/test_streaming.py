"""Streaming: SSE passes through chunk by chunk as it arrives; a broken
upstream ends the client's stream with an error event; a client that goes
away cancels its upstream request."""

import json
import time

from harness import TEXT_IBAN, TEXT_PUBLIC, check


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
    """A plain JSON answer cut in the middle must not look complete."""
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
        check(False, "a cut answer was delivered as complete: %r",
              r.body[:200])


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
