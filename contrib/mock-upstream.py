#!/usr/bin/env python3
"""mock-upstream.py - an OpenAI/Mistral-compatible upstream that records what
it receives, for sovgate's demo and end-to-end tests. Python 3 stdlib only.

One process serves one backend or several (one listener each):

  mock-upstream.py --listen 127.0.0.1:8101 --name mistral-eu \\
      --expect-bearer demo-mistral-key --record /tmp/mock.jsonl
  mock-upstream.py --backend mistral-eu=8101,bearer=K1 \\
      --backend onprem-vllm=8105,fail_status=500 --ready-file ports.json

Port 0 picks a free port; --ready-file FILE receives {"NAME": PORT, ...}
(written atomically) once every listener is bound.

Behaviour, as global options (defaults for every backend) or per backend in
--backend NAME=PORT,key=value,... (keys in brackets):
  --expect-bearer KEY      [bearer]   401 unless "Authorization: Bearer KEY"
  --expect-api-key KEY     [api_key]  401 unless "api-key: KEY"
  --fail-status N          [fail_status]  answer N (500, 429, ...) always...
  --fail-count N           [fail_count]   ...or only to the first N requests
  --delay-first-byte S     [delay_first_byte]  wait S seconds before answering
  --reset-mid-stream       [reset_mid_stream=1] send part of the answer (some
                           SSE events) then reset the connection (RST)
  --stream-chunks N        [stream_chunks]  content events per stream (4)
  --chunk-delay S          [chunk_delay]    pause between SSE events (0.05)
  --chunk-bytes N          [chunk_bytes]    pad each content event's text to
                           N bytes (volume tests; 0 = no padding)
  --chunked                [chunked=1]  JSON answers with chunked encoding
                           instead of Content-Length (streams are always
                           chunked)
  --tls-cert F --tls-key F [tls_cert, tls_key]  serve HTTPS with this
                           certificate chain and key (PEM)

Endpoints: POST /v1/chat/completions (stream or not), POST /v1/embeddings,
POST /v1/fim/completions, GET /v1/models; a path prefix before /v1 (or an
endpoint without /v1) is accepted too. Answers echo the model received.

Control endpoints (never recorded):
  GET    /__requests    the requests this backend received, as a JSON list
  DELETE /__requests    forget them
  GET    /__behaviour   the current behaviour
  POST   /__behaviour   change it: a JSON object of the keys above

Each record: {"seq", "mock", "time", "method", "path", "headers": [[name,
value], ...], "body", "json" (parsed body or null), "status", and for
answers sent in pieces "chunks_sent_at" (times after each write),
"completed" (the whole answer was written) and "aborted" (the peer went
away or we reset)}. --record FILE appends one JSON line per request when
it is received.
"""

import argparse
import base64
import http.server
import json
import os
import signal
import socket
import ssl
import struct
import sys
import threading
import time

BEHAVIOUR_KEYS = {
    "bearer": str, "api_key": str, "fail_status": int, "fail_count": int,
    "delay_first_byte": float, "reset_mid_stream": lambda v: str(v).lower()
    in ("1", "true", "yes", "on"), "stream_chunks": int,
    "chunk_delay": float, "chunk_bytes": int,
    "chunked": lambda v: str(v).lower() in
    ("1", "true", "yes", "on"),
}
# listener settings, per backend only at start
LISTEN_KEYS = {"tls_cert": str, "tls_key": str}

WORDS = ["Bonjour", " depuis", " le", " mock", " amont", " de", " sovgate",
         ".", " Fin", " du", " message"]


class PeerGone(Exception):
    pass


class Recorder:
    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()

    def append(self, rec):
        if not self.path:
            return
        line = json.dumps(rec, sort_keys=True, ensure_ascii=False) + "\n"
        with self.lock:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line)


class MockServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr, name, behaviour, recorder, tls=None):
        self.name = name
        self.tls = None
        self.behaviour = dict(behaviour)
        self.recorder = recorder
        self.records = []
        self.lock = threading.Lock()
        self.seq = 0
        self.failed = 0
        super().__init__(addr, Handler)
        if tls and tls.get("tls_cert"):
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(tls["tls_cert"], tls.get("tls_key"))
            self.tls = ctx
            # the handshake runs in the connection's thread (Handler.setup)
            self.socket = ctx.wrap_socket(self.socket, server_side=True,
                                          do_handshake_on_connect=False)

    def handle_error(self, request, client_address):
        # failed TLS handshakes and peers that vanish are part of the tests
        if os.environ.get("MOCK_VERBOSE"):
            super().handle_error(request, client_address)

    def next_seq(self):
        with self.lock:
            self.seq += 1
            return self.seq

    def should_fail(self):
        b = self.behaviour
        st = b.get("fail_status") or 0
        if not st:
            return 0
        n = b.get("fail_count") or 0
        with self.lock:
            if n and self.failed >= n:
                return 0
            self.failed += 1
        return st


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sovgate-mock-upstream/1"
    disable_nagle_algorithm = True
    timeout = 120

    def setup(self):
        if self.server.tls is not None:
            self.request.settimeout(10)
            try:
                self.request.do_handshake()
            except (ssl.SSLError, OSError) as e:
                # a client that does not trust us: nothing to record
                with self.server.lock:
                    self.server.tls_failures = getattr(
                        self.server, "tls_failures", 0) + 1
                self.log_message("TLS handshake failed: %s", e)
                raise
        super().setup()

    def log_message(self, fmt, *args):
        if os.environ.get("MOCK_VERBOSE"):
            sys.stderr.write("[%s] %s\n" % (self.server.name, fmt % args))

    # ---- reading ----

    def read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            out = bytearray()
            while True:
                line = self.rfile.readline(1024)
                if not line:
                    break
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n",
                                                            b""):
                        pass
                    break
                out += self.rfile.read(size)
                self.rfile.readline(16)
            return bytes(out)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    # ---- writing ----

    def raw(self, data):
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError) as e:
            self.close_connection = True
            raise PeerGone(str(e))

    def head(self, status, ctype, length=None, extra=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if length is None:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(length))
        self.send_header("X-Mock-Name", self.server.name)
        for k, v in extra:
            self.send_header(k, v)
        try:
            self.end_headers()
        except (BrokenPipeError, ConnectionResetError, OSError) as e:
            self.close_connection = True
            raise PeerGone(str(e))

    def chunk(self, data):
        self.raw(b"%x\r\n%s\r\n" % (len(data), data))

    def send_json(self, status, obj, chunked=False, extra=()):
        data = json.dumps(obj).encode()
        if chunked:
            self.head(status, "application/json", None, extra)
            half = len(data) // 2
            self.chunk(data[:half])
            self.chunk(data[half:])
            self.raw(b"0\r\n\r\n")
        else:
            self.head(status, "application/json", len(data), extra)
            self.raw(data)

    def reset(self):
        """Abortive close: the peer sees a RST, not a clean FIN."""
        self.close_connection = True
        try:
            self.wfile.flush()
        except OSError:
            pass
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
        except OSError:
            pass
        try:
            self.connection.close()
        except OSError:
            pass

    # ---- records ----

    def make_record(self, body):
        try:
            doc = json.loads(body.decode("utf-8")) if body else None
        except (ValueError, UnicodeDecodeError):
            doc = None
        rec = {
            "seq": self.server.next_seq(),
            "mock": self.server.name,
            "time": time.time(),
            "method": self.command,
            "path": self.path,
            "headers": [[k, v] for k, v in self.headers.items()],
            "body": body.decode("utf-8", "replace"),
            "json": doc,
            "status": None,
            "completed": False,
            "aborted": False,
            "chunks_sent_at": None,
            "finished_at": None,
        }
        with self.server.lock:
            self.server.records.append(rec)
        self.server.recorder.append(rec)
        return rec

    # ---- dispatch ----

    def do_GET(self):
        self.dispatch(b"")

    def do_DELETE(self):
        self.dispatch(self.read_body())

    def do_POST(self):
        self.dispatch(self.read_body())

    def do_PUT(self):
        self.dispatch(self.read_body())

    def dispatch(self, body):
        path = self.path.split("?", 1)[0]
        if path.startswith("/__"):
            return self.control(path, body)
        rec = self.make_record(body)
        try:
            self.answer(rec, path)
        except PeerGone:
            rec["aborted"] = True
        rec["finished_at"] = time.time()

    def control(self, path, body):
        srv = self.server
        if path == "/__requests":
            if self.command == "DELETE":
                with srv.lock:
                    srv.records.clear()
                return self.send_json(200, {"cleared": True})
            with srv.lock:
                data = json.loads(json.dumps(srv.records))
            return self.send_json(200, data)
        if path == "/__behaviour":
            if self.command == "POST":
                try:
                    upd = json.loads(body.decode() or "{}")
                    for k, v in upd.items():
                        if k not in BEHAVIOUR_KEYS:
                            raise ValueError("unknown key %s" % k)
                        srv.behaviour[k] = (BEHAVIOUR_KEYS[k](v)
                                            if v is not None else None)
                    with srv.lock:
                        srv.failed = 0
                except (ValueError, TypeError) as e:
                    return self.send_json(400, {"error": str(e)})
            return self.send_json(200, srv.behaviour)
        if path == "/__health":
            return self.send_json(200, {"name": srv.name, "tls_failures":
                                        getattr(srv, "tls_failures", 0)})
        return self.send_json(404, {"error": "unknown control path"})

    def error_obj(self, status, message, typ, code):
        return {"error": {"message": message, "type": typ, "code": code},
                "object": "error", "message": message}

    def answer(self, rec, path):
        srv = self.server
        b = srv.behaviour
        # endpoint: accept an optional prefix before /v1 and a missing /v1
        ep = None
        for name in ("/chat/completions", "/embeddings", "/fim/completions",
                     "/models"):
            if path.endswith(name):
                ep = name
        # credentials
        if b.get("bearer"):
            if self.headers.get("Authorization") != "Bearer " + b["bearer"]:
                rec["status"] = 401
                return self.send_json(401, self.error_obj(
                    401, "mock %s: missing or wrong bearer key" % srv.name,
                    "invalid_request_error", "invalid_api_key"))
        if b.get("api_key"):
            if self.headers.get("api-key") != b["api_key"]:
                rec["status"] = 401
                return self.send_json(401, self.error_obj(
                    401, "mock %s: missing or wrong api-key" % srv.name,
                    "invalid_request_error", "invalid_api_key"))
        delay = b.get("delay_first_byte") or 0
        if delay > 0:
            time.sleep(delay)
        st = srv.should_fail()
        if st:
            rec["status"] = st
            extra = [("Retry-After", "1")] if st == 429 else []
            return self.send_json(st, self.error_obj(
                st, "mock %s: configured to fail with %d" % (srv.name, st),
                "server_error" if st >= 500 else "rate_limit_error",
                "mock_failure"), extra=extra)
        if ep is None:
            rec["status"] = 404
            return self.send_json(404, self.error_obj(
                404, "mock %s: no such path %s" % (srv.name, path),
                "invalid_request_error", "not_found"))
        if ep == "/models":
            rec["status"] = 200
            return self.send_json(200, {"object": "list", "data": [
                {"id": "mock-model", "object": "model",
                 "owned_by": srv.name}]}, chunked=b.get("chunked"))
        if self.command != "POST":
            rec["status"] = 405
            return self.send_json(405, self.error_obj(
                405, "use POST", "invalid_request_error", "method"))
        req = rec["json"]
        if not isinstance(req, dict):
            rec["status"] = 400
            return self.send_json(400, self.error_obj(
                400, "mock %s: body is not a JSON object" % srv.name,
                "invalid_request_error", "invalid_body"))
        model = req.get("model")
        if ep == "/embeddings":
            return self.embeddings(rec, req, model)
        if req.get("stream"):
            return self.stream(rec, req, model, ep)
        return self.completion(rec, req, model, ep)

    def usage(self, req):
        prompt = max(1, len(json.dumps(req)) // 4)
        return {"prompt_tokens": prompt, "completion_tokens": 7,
                "total_tokens": prompt + 7}

    def completion(self, rec, req, model, ep):
        srv = self.server
        text = "Hello from %s (model %s)" % (srv.name, model)
        doc = {"id": "cmpl-mock-%s-%d" % (srv.name, rec["seq"]),
               "object": "chat.completion", "created": int(time.time()),
               "model": model,
               "choices": [{"index": 0, "finish_reason": "stop",
                            "message": {"role": "assistant",
                                        "content": text}}],
               "usage": self.usage(req)}
        rec["status"] = 200
        if srv.behaviour.get("reset_mid_stream"):
            data = json.dumps(doc).encode()
            self.head(200, "application/json", len(data))
            self.raw(data[: len(data) // 2])
            rec["chunks_sent_at"] = [time.time()]
            rec["aborted"] = True
            return self.reset()
        self.send_json(200, doc, chunked=srv.behaviour.get("chunked"))
        rec["completed"] = True

    def embeddings(self, rec, req, model):
        inp = req.get("input")
        n = len(inp) if isinstance(inp, list) and inp and not isinstance(
            inp[0], int) else 1
        vecs = [[0.125 * ((i + j) % 8) for j in range(8)] for i in range(n)]
        if req.get("encoding_format") == "base64":
            # what OpenAI sends (and its SDKs ask for): little-endian float32
            vecs = [base64.b64encode(struct.pack("<%df" % len(v), *v))
                    .decode() for v in vecs]
        doc = {"object": "list", "model": model,
               "data": [{"object": "embedding", "index": i,
                         "embedding": vecs[i]} for i in range(n)],
               "usage": {"prompt_tokens": 3 * n, "total_tokens": 3 * n}}
        rec["status"] = 200
        self.send_json(200, doc, chunked=self.server.behaviour.get("chunked"))
        rec["completed"] = True

    def stream(self, rec, req, model, ep):
        srv = self.server
        b = srv.behaviour
        n = b.get("stream_chunks")
        n = 4 if n is None else max(0, int(n))
        delay = b.get("chunk_delay")
        delay = 0.05 if delay is None else delay
        cid = "cmpl-mock-%s-%d" % (srv.name, rec["seq"])
        created = int(time.time())
        rec["status"] = 200
        rec["chunks_sent_at"] = []
        self.head(200, "text/event-stream", None,
                  [("Cache-Control", "no-cache")])

        def event(delta, finish=None, usage=None):
            ev = {"id": cid, "object": "chat.completion.chunk",
                  "created": created, "model": model,
                  "choices": [{"index": 0, "delta": delta,
                               "finish_reason": finish}]}
            if usage is not None:
                ev["usage"] = usage
            self.chunk(b"data: " + json.dumps(ev).encode() + b"\n\n")
            rec["chunks_sent_at"].append(time.time())

        event({"role": "assistant", "content": ""})
        for i in range(n):
            if delay:
                time.sleep(delay)
            if b.get("reset_mid_stream") and i >= max(1, n // 2):
                rec["aborted"] = True
                return self.reset()
            text = (WORDS[i % len(WORDS)] if i else
                    "[%s] %s" % (srv.name, WORDS[0]))
            pad = b.get("chunk_bytes") or 0
            if pad > len(text):
                text += "." * (pad - len(text))
            event({"content": text})
        if b.get("reset_mid_stream"):
            rec["aborted"] = True
            return self.reset()
        time.sleep(delay)
        event({}, "stop", self.usage(req))
        self.chunk(b"data: [DONE]\n\n")
        rec["chunks_sent_at"].append(time.time())
        self.raw(b"0\r\n\r\n")
        rec["completed"] = True


def parse_addr(s, default_host="127.0.0.1"):
    if s.startswith("["):
        host, _, port = s[1:].partition("]:")
    elif ":" in s:
        host, _, port = s.rpartition(":")
    else:
        host, port = default_host, s
    return host or default_host, int(port)


def parse_backend(spec, defaults):
    """NAME=PORT[,key=value...] or NAME=HOST:PORT[,...]"""
    name, eq, rest = spec.partition("=")
    if not eq or not name:
        raise ValueError("--backend wants NAME=PORT[,key=value...]: %r"
                         % spec)
    parts = rest.split(",")
    host, port = parse_addr(parts[0])
    beh = dict(defaults)
    for p in parts[1:]:
        k, eq, v = p.partition("=")
        k = k.strip().replace("-", "_")
        if k in LISTEN_KEYS:
            beh[k] = v
            continue
        if k not in BEHAVIOUR_KEYS:
            raise ValueError("unknown backend option %r (known: %s)"
                             % (k, ", ".join(sorted(list(BEHAVIOUR_KEYS) +
                                                    list(LISTEN_KEYS)))))
        beh[k] = BEHAVIOUR_KEYS[k](v if eq else "1")
    return name, host, port, beh


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="OpenAI/Mistral-compatible recording mock upstream",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--listen", help="HOST:PORT of a single backend")
    ap.add_argument("--name", default="mock", help="name of that backend")
    ap.add_argument("--backend", action="append", default=[],
                    metavar="NAME=PORT[,k=v...]",
                    help="one more backend (repeatable)")
    ap.add_argument("--record", help="append one JSON line per request")
    ap.add_argument("--ready-file", help="write {name: port} once bound")
    ap.add_argument("--pid-file")
    ap.add_argument("--expect-bearer")
    ap.add_argument("--expect-api-key")
    ap.add_argument("--fail-status", type=int, default=0)
    ap.add_argument("--fail-count", type=int, default=0)
    ap.add_argument("--delay-first-byte", type=float, default=0.0)
    ap.add_argument("--reset-mid-stream", action="store_true")
    ap.add_argument("--stream-chunks", type=int, default=4)
    ap.add_argument("--chunk-delay", type=float, default=0.05)
    ap.add_argument("--chunk-bytes", type=int, default=0)
    ap.add_argument("--chunked", action="store_true")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    a = ap.parse_args(argv)

    defaults = {"bearer": a.expect_bearer, "api_key": a.expect_api_key,
                "fail_status": a.fail_status, "fail_count": a.fail_count,
                "delay_first_byte": a.delay_first_byte,
                "reset_mid_stream": a.reset_mid_stream,
                "stream_chunks": a.stream_chunks,
                "chunk_delay": a.chunk_delay, "chunk_bytes": a.chunk_bytes,
                "chunked": a.chunked,
                "tls_cert": a.tls_cert, "tls_key": a.tls_key}
    specs = []
    try:
        if a.listen:
            host, port = parse_addr(a.listen)
            specs.append((a.name, host, port, dict(defaults)))
        for s in a.backend:
            specs.append(parse_backend(s, defaults))
    except ValueError as e:
        ap.error(str(e))
    if not specs:
        ap.error("give --listen HOST:PORT (with --name) or --backend "
                 "NAME=PORT")
    names = [s[0] for s in specs]
    if len(set(names)) != len(names):
        ap.error("backend names must be distinct")

    rec = Recorder(a.record)
    servers = []
    for name, host, port, beh in specs:
        tls = {k: beh.pop(k, None) for k in LISTEN_KEYS}
        try:
            srv = MockServer((host, port), name, beh, rec, tls)
        except (OSError, ssl.SSLError) as e:
            sys.exit("mock-upstream: cannot listen on %s:%d for %s: %s"
                     % (host, port, name, e))
        servers.append(srv)
    ports = {s.name: s.server_address[1] for s in servers}
    if a.pid_file:
        with open(a.pid_file, "w") as f:
            f.write("%d\n" % os.getpid())
    if a.ready_file:
        tmp = a.ready_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump(ports, f)
        os.replace(tmp, a.ready_file)
    for s in servers:
        sys.stderr.write("mock-upstream: %s listening on %s:%d\n"
                         % (s.name, s.server_address[0],
                            s.server_address[1]))
    sys.stderr.flush()

    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    threads = []
    for s in servers:
        t = threading.Thread(target=s.serve_forever,
                             kwargs={"poll_interval": 0.1}, daemon=True)
        t.start()
        threads.append(t)
    while not stop.wait(0.5):
        pass
    for s in servers:
        s.shutdown()
        s.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
