#!/usr/bin/env python3
"""Mock Amazon Bedrock Runtime upstream for sovgate's end-to-end tests.

  POST /model/{modelId}/converse          Converse JSON answer
  POST /model/{modelId}/converse-stream   application/vnd.amazon.eventstream

Every request's SigV4 signature is recomputed here from the raw request
(method, the path exactly as received, each segment URI-encoded once more,
the signed headers, the SHA-256 of the body) with --access-key /
--secret-key (or $AWS_ACCESS_KEY_ID / $AWS_SECRET_ACCESS_KEY), --region and
service "bedrock"; a wrong one is rejected with 403
InvalidSignatureException, as is a missing or different session token when
--session-token is set, and a date more than 5 minutes off.

The Converse body is checked (messages alternate user/assistant from a
user turn; blocks are text, image, toolUse or toolResult; toolUse and
toolResult need toolConfig). With toolConfig and a last user turn that
holds no toolResult, the answer calls the first tool; a turn with results
gets a text that quotes them. Modes beyond mock_common's:
  bad-crc      the second event frame's message CRC is wrong
  exception    a throttlingException frame after the first text delta
  status-429   ThrottlingException, status-400 ValidationException, ...
"""

import datetime
import hashlib
import hmac
import json
import os
import struct
import sys
import urllib.parse
import zlib

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mock_common as mc  # noqa: E402

UNRESERVED = ("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
              "0123456789-._~")


def uri_encode(s, keep_slash=False):
    out = []
    for b in s.encode("utf-8"):
        c = chr(b)
        if c in UNRESERVED or (keep_slash and c == "/"):
            out.append(c)
        else:
            out.append("%%%02X" % b)
    return "".join(out)


def canonical_uri(raw_path):
    segs = []
    for s in raw_path.split("/"):
        if s in ("", "."):
            continue
        if s == "..":
            if segs:
                segs.pop()
            continue
        segs.append(uri_encode(s))
    uri = "/" + "/".join(segs)
    if raw_path.endswith("/") and segs:
        uri += "/"
    return uri


def canonical_query(q):
    if not q:
        return ""
    pairs = []
    for part in q.split("&"):
        if not part:
            continue
        k, _, v = part.partition("=")
        pairs.append((uri_encode(urllib.parse.unquote(k)),
                      uri_encode(urllib.parse.unquote(v))))
    return "&".join("%s=%s" % kv for kv in sorted(pairs))


def hmac256(key, msg):
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def verify_sigv4(method, raw_target, headers, body, access, secret, region,
                 service, session_token):
    """Returns None if the request is signed right, else the reason."""
    auth = headers.get("Authorization") or ""
    prefix = "AWS4-HMAC-SHA256 "
    if not auth.startswith(prefix):
        return "no AWS4-HMAC-SHA256 Authorization header"
    fields = {}
    for part in auth[len(prefix):].split(","):
        k, _, v = part.strip().partition("=")
        fields[k] = v
    try:
        cred, signed, sig = (fields["Credential"], fields["SignedHeaders"],
                             fields["Signature"])
    except KeyError:
        return "malformed Authorization header"
    c = cred.split("/")
    if len(c) != 5 or c[4] != "aws4_request":
        return "malformed credential scope"
    if c[0] != access:
        return "unknown access key"
    if c[2] != region or c[3] != service:
        return "scope %s/%s is not %s/%s" % (c[2], c[3], region, service)
    amz_date = headers.get("X-Amz-Date") or ""
    try:
        t = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(
            tzinfo=datetime.timezone.utc)
    except ValueError:
        return "bad X-Amz-Date"
    now = datetime.datetime.now(datetime.timezone.utc)
    if abs((now - t).total_seconds()) > 300:
        return "X-Amz-Date too far from now"
    if c[1] != amz_date[:8]:
        return "scope date differs from X-Amz-Date"
    names = signed.split(";")
    for must in ("host", "x-amz-date"):
        if must not in names:
            return "%s is not signed" % must
    if session_token is not None:
        if headers.get("X-Amz-Security-Token") != session_token:
            return "missing or wrong session token"
        if "x-amz-security-token" not in names:
            return "session token not signed"
    canon_h = ""
    for n in names:
        vals = headers.get_all(n) or []
        if not vals:
            return "signed header %s is absent" % n
        vals = [" ".join(v.split()) for v in vals]
        canon_h += "%s:%s\n" % (n, ",".join(vals))
    path, _, query = raw_target.partition("?")
    creq = "\n".join([method, canonical_uri(path), canonical_query(query),
                      canon_h, signed, hashlib.sha256(body).hexdigest()])
    scope = "/".join(c[1:])
    sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                     hashlib.sha256(creq.encode("utf-8")).hexdigest()])
    k = hmac256(("AWS4" + secret).encode("utf-8"), c[1])
    k = hmac256(k, region)
    k = hmac256(k, service)
    k = hmac256(k, "aws4_request")
    want = hmac.new(k, sts.encode("utf-8"), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(want, sig):
        return "signature mismatch"
    return None


def es_frame(headers, payload, break_crc=False):
    """One application/vnd.amazon.eventstream frame (string headers)."""
    hb = b""
    for name, value in headers:
        n, v = name.encode(), value.encode()
        hb += struct.pack(">B", len(n)) + n + b"\x07" + \
            struct.pack(">H", len(v)) + v
    total = 16 + len(hb) + len(payload)
    prelude = struct.pack(">II", total, len(hb))
    prelude += struct.pack(">I", zlib.crc32(prelude) & 0xffffffff)
    msg = prelude + hb + payload
    crc = zlib.crc32(msg) & 0xffffffff
    if break_crc:
        crc ^= 0x5a5a5a5a
    return msg + struct.pack(">I", crc)


def event(etype, obj, break_crc=False):
    return es_frame([(":event-type", etype),
                     (":content-type", "application/json"),
                     (":message-type", "event")],
                    json.dumps(obj).encode(), break_crc)


def exception(etype, message):
    return es_frame([(":exception-type", etype),
                     (":content-type", "application/json"),
                     (":message-type", "exception")],
                    json.dumps({"message": message}).encode())


ERRORS = {400: "ValidationException", 403: "AccessDeniedException",
          404: "ResourceNotFoundException", 408: "ModelTimeoutException",
          424: "ModelErrorException", 429: "ThrottlingException",
          500: "InternalServerException",
          503: "ServiceUnavailableException"}


def check_converse(req):
    """Returns None if the Converse body is well-formed, else why not."""
    msgs = req.get("messages")
    if not isinstance(msgs, list) or not msgs:
        return "messages must be a non-empty array"
    want = "user"
    tool_blocks = False
    for i, m in enumerate(msgs):
        if m.get("role") != want:
            return "message %d should have role %s" % (i, want)
        want = "assistant" if want == "user" else "user"
        content = m.get("content")
        if not isinstance(content, list) or not content:
            return "message %d has no content blocks" % i
        for b in content:
            if not isinstance(b, dict) or len(b) != 1:
                return "message %d has a malformed block" % i
            kind = next(iter(b))
            if kind == "text":
                if not isinstance(b["text"], str) or not b["text"].strip():
                    return "message %d has a blank text block" % i
            elif kind in ("toolUse", "toolResult"):
                tool_blocks = True
                if kind == "toolUse" and (m["role"] != "assistant" or not
                                          b[kind].get("toolUseId")):
                    return "misplaced toolUse in message %d" % i
                if kind == "toolResult" and (m["role"] != "user" or not
                                             b[kind].get("toolUseId")):
                    return "misplaced toolResult in message %d" % i
            elif kind != "image":
                return "message %d has an unknown block %s" % (i, kind)
    if tool_blocks and "toolConfig" not in req:
        return ("The toolConfig field must be defined when using toolUse "
                "and toolResult content blocks.")
    for s in req.get("system", []):
        if not isinstance(s.get("text"), str):
            return "malformed system block"
    for k in req:
        if k not in ("messages", "system", "inferenceConfig", "toolConfig",
                     "additionalModelRequestFields"):
            return "unexpected field %s" % k
    return None


def plan_answer(req):
    """(text, tool_use or None, stop_reason) for a Converse request."""
    last = req["messages"][-1]
    results = [b["toolResult"] for b in last["content"] if "toolResult" in b]
    if results:
        quoted = []
        for r in results:
            for c in r.get("content", []):
                if "text" in c:
                    quoted.append(c["text"])
                elif "json" in c:
                    quoted.append(json.dumps(c["json"]))
        return "Tool said: " + "; ".join(quoted), None, "end_turn"
    tools = req.get("toolConfig", {}).get("tools", [])
    if tools:
        name = tools[0]["toolSpec"]["name"]
        return "Calling a tool.", {"toolUseId": "tooluse_mock1",
                                   "name": name,
                                   "input": {"q": "mock"}}, "tool_use"
    return mc.REPLY_TEXT, None, "end_turn"


class BedrockHandler(mc.Handler):
    kind = "bedrock"

    def error(self, status, message):
        et = ERRORS.get(status, "InternalServerException")
        self.send_json(status, {"message": message}, extra={
            "x-amzn-ErrorType": "%s:http://internal.amazon.com/coral/"
                                "com.amazon.bedrock/" % et})

    def handle_post(self, body, mode):
        a = self.server.args
        why = verify_sigv4("POST", self.path, self.headers, body,
                           a.access_key, a.secret_key, a.region, "bedrock",
                           a.session_token)
        if why:
            self.verdict = "rejected: " + why
            return self.send_json(403, {
                "message": "The request signature we calculated does not "
                           "match the signature you provided."},
                extra={"x-amzn-ErrorType": "InvalidSignatureException"})
        parts = self.path.split("?")[0].split("/")
        if len(parts) != 4 or parts[1] != "model" or \
                parts[3] not in ("converse", "converse-stream"):
            self.verdict = "rejected: no such route"
            return self.error(404, "no such route")
        model = urllib.parse.unquote(parts[2])
        if a.models and model not in a.models.split(","):
            self.verdict = "rejected: unknown model " + model
            return self.error(404, "The provided model identifier is "
                              "invalid.")
        try:
            req = json.loads(body)
        except ValueError:
            self.verdict = "rejected: body is not JSON"
            return self.error(400, "Malformed input request")
        bad = check_converse(req)
        if bad:
            self.verdict = "rejected: " + bad
            return self.error(400, bad)
        st = mc.status_of(mode)
        if st:
            self.verdict = "status %d by mode" % st
            return self.error(st, "mock error by mode")
        self.verdict = "ok"
        text, tool, stop = plan_answer(req)
        usage = {"inputTokens": 12, "outputTokens": 4, "totalTokens": 16}
        if parts[3] == "converse":
            return self.converse(mode, text, tool, stop, usage)
        return self.converse_stream(mode, text, tool, stop, usage)

    def converse(self, mode, text, tool, stop, usage):
        if mode == "malformed":
            return self.send_raw(200, b'{"output":{"message":{"con',
                                 "application/json")
        if mode == "wrong-ctype":
            return self.send_raw(200, b"<html>oops</html>", "text/html")
        content = [{"text": text}]
        if tool:
            content.append({"toolUse": tool})
        doc = {"output": {"message": {"role": "assistant",
                                      "content": content}},
               "stopReason": stop, "usage": usage,
               "metrics": {"latencyMs": 42}}
        if mode == "truncated":
            return self.send_truncated(200, json.dumps(doc).encode(),
                                       "application/json")
        self.send_json(200, doc, extra={
            "x-amzn-RequestId": "0f0c5a38-7a4b-4a8e-9e2b-5b1a4b1e2a11"})

    def converse_stream(self, mode, text, tool, stop, usage):
        if mode == "wrong-ctype":
            return self.send_raw(200, b"<html>oops</html>", "text/html")
        words = []
        for i, w in enumerate(text.split(" ")):
            words.append(w if i == 0 else " " + w)
        frames = [event("messageStart", {"role": "assistant"})]
        for w in words:
            frames.append(event("contentBlockDelta", {
                "contentBlockIndex": 0, "delta": {"text": w}}))
        frames.append(event("contentBlockStop", {"contentBlockIndex": 0}))
        if tool:
            frames.append(event("contentBlockStart", {
                "contentBlockIndex": 1, "start": {"toolUse": {
                    "toolUseId": tool["toolUseId"], "name": tool["name"]}}}))
            frames.append(event("contentBlockDelta", {
                "contentBlockIndex": 1,
                "delta": {"toolUse": {"input": json.dumps(tool["input"])}}}))
            frames.append(event("contentBlockStop", {"contentBlockIndex": 1}))
        frames.append(event("messageStop", {"stopReason": stop}))
        frames.append(event("metadata", {"usage": usage,
                                         "metrics": {"latencyMs": 42}}))
        if mode == "bad-crc":
            frames[2] = event("contentBlockDelta", {
                "contentBlockIndex": 0, "delta": {"text": words[1]
                                                  if len(words) > 1 else "x"}},
                break_crc=True)
        if mode == "exception":
            frames = frames[:2] + [exception(
                "throttlingException",
                "Too many requests, please wait before trying again.")]
        if mode == "malformed":
            frames[1] = es_frame([(":event-type", "contentBlockDelta"),
                                  (":content-type", "application/json"),
                                  (":message-type", "event")], b'{"delta":')
        self.start_chunked(200, "application/vnd.amazon.eventstream", {
            "x-amzn-RequestId": "0f0c5a38-7a4b-4a8e-9e2b-5b1a4b1e2a12"})
        for i, f in enumerate(frames):
            if mode == "truncated" and i == 3:
                self.chunk(f[: len(f) // 2])
                return self.cut_chunked()
            self.chunk(f)
        self.end_chunked()


def main():
    p = mc.base_args("mock Amazon Bedrock Runtime upstream")
    p.add_argument("--access-key",
                   default=os.environ.get("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"))
    p.add_argument("--secret-key", default=os.environ.get(
        "AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"))
    p.add_argument("--session-token",
                   default=os.environ.get("MOCK_AWS_SESSION_TOKEN"))
    p.add_argument("--region", default="eu-west-3")
    p.add_argument("--models", help="comma-separated model ids served")
    args = p.parse_args()
    return mc.serve(BedrockHandler, args)


if __name__ == "__main__":
    sys.exit(main())
