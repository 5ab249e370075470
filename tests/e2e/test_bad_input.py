"""Bad input: each gets a clear error and is never forwarded (issue "Bad
input", SPEC §1 step 2, §3)."""

import json
import time

from harness import (CLAIMS_KEY, TEXT_PUBLIC, assert_error_shape,
                     assert_nothing_forwarded, chat, check, parse_http)

AUTH = b"Authorization: Bearer " + CLAIMS_KEY.encode() + b"\r\n"


def head(extra=b"", path=b"/v1/chat/completions"):
    return (b"POST " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + AUTH +
            b"Content-Type: application/json\r\n" + extra)


def expect_400_logged(env, r, what):
    e = assert_error_shape(r, 400)
    row = env.decision(e["decision_id"], wait=1.0)
    check(row is not None, "%s: no decision row for %s", what,
          e["decision_id"])
    check(row["action"] == "error", "%s: decision action %r, expected "
          "error", what, row["action"])
    return e


def test_malformed_json(t):
    env = t.env()
    for body in (b"{not json", b'{"model": "mistral-large-latest", '
                 b'"messages": [', b"", b"null", b"[]", b'"a string"',
                 b'{"model": "mistral-large-latest"} trailing'):
        r = env.post("/v1/chat/completions", body)
        check(r.status == 400, "body %r: %d %r", body, r.status, r.body[:200])
        assert_error_shape(r, 400)
    expect_400_logged(env, env.post("/v1/chat/completions", b"{not json"),
                      "malformed JSON")
    assert_nothing_forwarded(env)


def test_invalid_utf8(t):
    env = t.env()
    for bad in (b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80",  # lone surrogate
                b"\xf8\x88\x80\x80\x80", b"\xc0\xaf"):      # overlong
        body = (b'{"model": "mistral-large-latest", "messages": [{"role": '
                b'"user", "content": "abc' + bad + b'def"}]}')
        r = env.post("/v1/chat/completions", body)
        check(r.status == 400, "invalid UTF-8 %r: %d %r", bad, r.status,
              r.body[:200])
    # an escaped lone surrogate is not valid text either
    r = env.post("/v1/chat/completions",
                 b'{"model": "mistral-large-latest", "messages": [{"role": '
                 b'"user", "content": "a\\ud800b"}]}')
    check(r.status == 400, "escaped lone surrogate: %d %r", r.status,
          r.body[:200])
    assert_nothing_forwarded(env)


def test_missing_or_non_string_model(t):
    env = t.env()
    for body in ({"messages": [{"role": "user", "content": "hi"}]},
                 {"model": 42, "messages": [{"role": "user", "content": "hi"}]},
                 {"model": None, "messages": []},
                 {"model": ["mistral-large-latest"], "messages": []},
                 {"model": "", "messages": []}):
        r = env.post("/v1/chat/completions", body)
        assert_error_shape(r, 400)
    expect_400_logged(env, env.post("/v1/chat/completions",
                                    {"messages": []}), "missing model")
    assert_nothing_forwarded(env)


def test_nesting_too_deep(t):
    env = t.env()
    deep = '{"a":' * 200 + '1' + '}' * 200
    body = ('{"model": "mistral-large-latest", "messages": [{"role": "user",'
            ' "content": "hi"}], "metadata": %s}' % deep)
    assert_error_shape(env.post("/v1/chat/completions", body), 400)
    deep = '[' * 5000 + ']' * 5000
    assert_error_shape(env.post("/v1/chat/completions",
                                '{"model": "m", "x": %s}' % deep), 400)
    # moderate nesting is fine
    ok = '{"a":' * 10 + '1' + '}' * 10
    r = env.post("/v1/chat/completions",
                 '{"model": "mistral-large-latest", "messages": [{"role": '
                 '"user", "content": "hi"}], "metadata": %s}' % ok)
    check(r.status == 200, "10 levels of nesting refused: %d %r", r.status,
          r.body[:200])
    c = env.counts()
    check(sum(c.values()) == 1, "forwarded: %s", c)


def test_oversized_body_413(t):
    env = t.env()   # limits.max_body: 64KiB
    # announced by Content-Length: refused before the body is read
    raw, _, _ = env.raw(head(b"Content-Length: 70000\r\n\r\n"))
    r = parse_http(raw)
    check(r is not None, "no answer to Content-Length 70000: %r", raw[:200])
    assert_error_shape(r, 413)
    # sent in full
    body = b'{"model": "mistral-large-latest", "messages": [{"role": ' \
           b'"user", "content": "' + b"a" * 70000 + b'"}]}'
    raw, _, _ = env.raw(head(b"Content-Length: %d\r\n\r\n" % len(body)) +
                        body)
    r = parse_http(raw)
    check(r is not None and r.status == 413, "70 kB body: %r", raw[:200])
    # chunked, no length announced
    chunks = [head(b"Transfer-Encoding: chunked\r\n\r\n")]
    for _ in range(20):
        chunks.append(b"1000\r\n" + b"a" * 4096 + b"\r\n")
    chunks.append(b"0\r\n\r\n")
    raw, _, _ = env.raw(None, drip=(chunks, 0))
    r = parse_http(raw)
    check(r is not None and r.status == 413, "80 kB chunked body: %r",
          raw[:200])
    # just under the limit is accepted
    body = chat("b" * 60000)
    r = env.post("/v1/chat/completions", body)
    check(r.status == 200, "60 kB body refused: %d %r", r.status,
          r.body[:200])
    c = env.counts()
    check(sum(c.values()) == 1, "oversized bodies forwarded: %s", c)


def test_duplicate_content_length(t):
    env = t.env()
    body = b'{"model":"mistral-large-latest","messages":[]}'
    for cl in ((len(body), len(body)), (len(body), 5)):
        raw, closed, _ = env.raw(head(
            b"Content-Length: %d\r\nContent-Length: %d\r\n\r\n" % cl) + body)
        r = parse_http(raw)
        check(r is not None and r.status == 400,
              "duplicate Content-Length %s: %r", cl, raw[:200])
    # one header with a list
    raw, _, _ = env.raw(head(b"Content-Length: %d, %d\r\n\r\n" % (
        len(body), len(body))) + body)
    r = parse_http(raw)
    check(r is not None and r.status == 400,
          "Content-Length: N, N: %r", raw[:200])
    assert_nothing_forwarded(env, settle=0.3)


def chunked_body(body):
    b = json.dumps(body).encode()
    return b, b"%x\r\n%s\r\n0\r\n\r\n" % (len(b), b)


def test_content_length_with_transfer_encoding(t):
    env = t.env()
    b, chunked = chunked_body(chat(TEXT_PUBLIC))
    for extra in (b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n"
                  % len(chunked),
                  b"Transfer-Encoding: chunked\r\nContent-Length: %d\r\n\r\n"
                  % len(b),
                  b"Transfer-Encoding: chunked\r\nTransfer-Encoding: "
                  b"identity\r\n\r\n"):
        raw, _, _ = env.raw(head(extra) + chunked, one=True)
        r = parse_http(raw)
        check(r is not None and r.status == 400,
              "framing %r: %r", extra, raw[:200])
    assert_nothing_forwarded(env, settle=0.3)
    # a clean chunked request still works
    raw, _, _ = env.raw(head(b"Transfer-Encoding: chunked\r\n\r\n") +
                        chunked, timeout=10, one=True)
    r = parse_http(raw)
    check(r is not None and r.status == 200, "chunked request: %r",
          raw[:300])


def test_unsupported_transfer_coding_rejected(t):
    """A transfer coding the gateway does not decode (gzip before chunked)
    must be refused (RFC 9112 6.1: 501), not forwarded as if it were
    plain chunked."""
    env = t.env()
    b, chunked = chunked_body(chat(TEXT_PUBLIC))
    for te in (b"gzip, chunked", b"deflate,chunked", b"x-custom, chunked"):
        raw, _, _ = env.raw(head(b"Transfer-Encoding: " + te + b"\r\n\r\n")
                            + chunked, one=True)
        r = parse_http(raw)
        check(r is not None and r.status in (400, 501),
              "Transfer-Encoding: %s answered %r", te.decode(),
              raw[:120])
    assert_nothing_forwarded(env, settle=0.3)


def test_headers_too_large(t):
    env = t.env()
    raw, _, _ = env.raw(head(b"X-Big: " + b"a" * 20000 + b"\r\n"
                             b"Content-Length: 2\r\n\r\n{}"))
    r = parse_http(raw)
    check(r is not None and r.status == 431, "20 kB header: %r", raw[:200])
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(150))
    raw, _, _ = env.raw(head(many + b"Content-Length: 2\r\n\r\n{}"))
    r = parse_http(raw)
    check(r is not None and r.status == 431, "150 headers: %r", raw[:200])
    assert_nothing_forwarded(env)


def test_slowloris_cut_off_by_header_timeout(t):
    env = t.env()   # limits.header_timeout: 1s
    req = head(b"Content-Length: 2\r\n\r\n{}")
    # one byte every 0.2 s: the head would take ~40 s
    chunks = [req[i:i + 1] for i in range(len(req))]
    raw, closed, elapsed = env.raw(None, timeout=6, drip=(chunks, 0.2))
    check(closed, "connection still open after %.1f s of slowloris",
          elapsed)
    check(elapsed < 4.5, "slowloris cut off only after %.1f s", elapsed)
    r = parse_http(raw)
    check(r is None or r.status == 408, "slowloris answer: %r", raw[:200])
    assert_nothing_forwarded(env)


def test_silent_new_connection_cut_off(t):
    """A connection that never sends a byte is a slowloris too: it must not
    hold a slot longer than header_timeout (1s here; keepalive_timeout is
    left at its 75 s default)."""
    env = t.env()
    raw, closed, elapsed = env.raw(b"", timeout=6)
    check(closed and elapsed < 4.5, "a silent new connection stayed open "
          "%.1f s%s", elapsed, "" if closed else " (still open)")


def test_slow_body_cut_off_by_body_timeout(t):
    env = t.env()   # limits.body_timeout: 1s
    req = head(b"Content-Length: 100\r\n\r\n") + b'{"model": '
    raw, closed, elapsed = env.raw(req, timeout=6)
    check(closed and elapsed < 4.5, "a body that never completes kept the "
          "connection %.1f s", elapsed)
    r = parse_http(raw)
    check(r is None or r.status == 408, "slow body answer: %r", raw[:200])
    assert_nothing_forwarded(env)


def test_garbage_request_line(t):
    env = t.env()
    for junk in (b"HELLO\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc",
                 b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                 b"Bad Header\r\n\r\n"):
        raw, closed, _ = env.raw(junk, timeout=3)
        r = parse_http(raw)
        check(closed, "connection open after %r", junk)
        check(r is None or 400 <= r.status < 500, "answer to %r: %r", junk,
              raw[:200])
    # still serving
    r = env.chat(TEXT_PUBLIC)
    check(r.status == 200, "gateway broken after garbage: %d", r.status)
    time.sleep(0.1)
    check(env.gateway_alive(), "gateway died")
