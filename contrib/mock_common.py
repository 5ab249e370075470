"""Shared pieces of the mock upstreams (mock-azure.py, mock-bedrock.py,
mock-vertex.py) used by the end-to-end tests. Python 3 standard library
only.

Every mock:
  --port N        listen on 127.0.0.1:N (0: any free port)
  --port-file F   write the chosen port to F once listening
  --tls-cert C --tls-key K
                  serve HTTPS (to test ca_file, server_name, verification)
  --log F         append one JSON line per request received
                  ({"method", "path", "headers", "body", "verdict"})
  --mode M        default behaviour; a request header X-Mock-Mode overrides
                  it per request ("MODE" for every mock, or
                  "bedrock=bad-crc,azure=status-429" by kind). Modes common
                  to all mocks:
                    ok            a normal answer
                    status-NNN    answer HTTP NNN with the cloud's error body
                    malformed     a 200 whose JSON body is cut
                    truncated     close the connection in the middle of a body
                    wrong-ctype   a 200 in text/html
                    slow-N        wait N ms before answering
A mock that rejects what it receives (a bad signature, a wrong key, a bad
JWT) answers the cloud's own error status and says why in the log line's
"verdict".
"""

import argparse
import http.server
import json
import os
import ssl
import sys
import threading
import time
import uuid

REPLY_TEXT = "Bonjour, le monde"


def base_args(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file")
    p.add_argument("--log")
    p.add_argument("--mode", default="ok")
    p.add_argument("--tls-cert", help="serve HTTPS with this certificate "
                   "(PEM, chain first) ...")
    p.add_argument("--tls-key", help="... and this key")
    return p


class Log:
    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()

    def write(self, rec):
        if not self.path:
            return
        with self.lock:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(rec, sort_keys=True) + "\n")


class Handler(http.server.BaseHTTPRequestHandler):
    """Base handler: reads the body, picks the mode, logs the request.
    Subclasses implement handle_post(body, mode) and set self.verdict."""

    protocol_version = "HTTP/1.1"
    server_version = "sovgate-mock/1"
    verdict = "ok"

    def log_message(self, fmt, *args):  # quiet: the log file says it all
        pass

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    kind = "mock"

    def mode(self):
        """X-Mock-Mode: MODE applies to every mock the request reaches
        (the gateway forwards it on failover too); "bedrock=bad-crc,
        vertex=ok" targets mocks by kind."""
        h = self.headers.get("X-Mock-Mode")
        if not h:
            return self.server.args.mode
        if "=" not in h:
            return h.strip()
        for part in h.split(","):
            k, _, v = part.strip().partition("=")
            if k == self.kind:
                return v
        return self.server.args.mode

    def do_POST(self):
        body = self.read_body()
        mode = self.mode()
        self.verdict = "ok"
        if mode.startswith("slow-"):
            time.sleep(int(mode[5:]) / 1000.0)
            mode = "ok"
        try:
            self.handle_post(body, mode)
        finally:
            self.server.log.write({
                "method": "POST", "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode("utf-8", "replace"),
                "verdict": self.verdict, "mode": mode})

    def do_GET(self):
        self.send_json(404, {"error": {"message": "not found"}})

    # ---- answering ----

    def send_json(self, status, obj, ctype="application/json", extra=None):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def send_raw(self, status, data, ctype):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def send_truncated(self, status, data, ctype):
        """Announce the whole body, send half, close."""
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        self.close_connection = True
        try:
            self.connection.shutdown(2)
        except OSError:
            pass

    def start_chunked(self, status, ctype, extra=None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Transfer-Encoding", "chunked")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()

    def chunk(self, data):
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

    def end_chunked(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def cut_chunked(self):
        """Break a chunked body: close without the last chunk."""
        self.wfile.flush()
        self.close_connection = True
        try:
            self.connection.shutdown(2)
        except OSError:
            pass

    # ---- OpenAI-format answers (Azure, Vertex/Mistral) ----

    def openai_answer(self, req, mode, model):
        """Answers an OpenAI/Mistral-format chat request by mode."""
        if mode == "malformed":
            return self.send_raw(200, b'{"id":"x","choices":[{"mess',
                                 "application/json")
        if mode == "wrong-ctype":
            return self.send_raw(200, b"<html>oops</html>", "text/html")
        cid = "chatcmpl-" + uuid.uuid4().hex
        created = int(time.time())
        usage = {"prompt_tokens": 12, "completion_tokens": 4,
                 "total_tokens": 16}
        if not req.get("stream"):
            doc = {"id": cid, "object": "chat.completion",
                   "created": created, "model": model,
                   "choices": [{"index": 0, "finish_reason": "stop",
                                "message": {"role": "assistant",
                                            "content": REPLY_TEXT}}],
                   "usage": usage}
            if mode == "truncated":
                return self.send_truncated(
                    200, json.dumps(doc).encode(), "application/json")
            return self.send_json(200, doc)
        self.start_chunked(200, "text/event-stream")
        pieces = ["Bonjour", ",", " le", " monde"]
        first = {"role": "assistant", "content": ""}
        events = [first] + [{"content": p} for p in pieces]
        for i, d in enumerate(events):
            ev = {"id": cid, "object": "chat.completion.chunk",
                  "created": created, "model": model,
                  "choices": [{"index": 0, "delta": d,
                               "finish_reason": None}]}
            self.chunk(b"data: " + json.dumps(ev).encode() + b"\n\n")
            if mode == "truncated" and i == 2:
                return self.cut_chunked()
        ev = {"id": cid, "object": "chat.completion.chunk",
              "created": created, "model": model,
              "choices": [{"index": 0, "delta": {},
                           "finish_reason": "stop"}], "usage": usage}
        self.chunk(b"data: " + json.dumps(ev).encode() + b"\n\n")
        self.chunk(b"data: [DONE]\n\n")
        self.end_chunked()


def serve(handler_cls, args, setup=None):
    """Binds, reports the port, calls setup(server) then serves forever."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", args.port),
                                          handler_cls)
    srv.daemon_threads = True
    srv.args = args
    srv.log = Log(args.log)
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.scheme = "https" if args.tls_cert else "http"
    port = srv.server_address[1]
    srv.port = port
    if setup:
        setup(srv)
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.rename(tmp, args.port_file)
    print("listening on 127.0.0.1:%d" % port, flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


def status_of(mode):
    if mode.startswith("status-"):
        try:
            return int(mode[7:])
        except ValueError:
            return 500
    return None


if __name__ == "__main__":
    sys.exit("this module is imported by the mock-*.py upstreams")
