#!/usr/bin/env python3
"""Mock Google Vertex AI upstream (Mistral publisher models) and OAuth2
token endpoint, for sovgate's end-to-end tests.

  POST /token   grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer
                &assertion=JWT. The JWT must be RS256 and verify against
                the service account's public key (checked with
                `openssl dgst -sha256 -verify`, as Python's standard
                library has no RSA), with iss = the client_email, aud = this
                endpoint's URL, scope including cloud-platform, iat/exp
                current and at most an hour apart. Answers an access token
                (--token, default random) valid --expires-in seconds.
  POST /v1/projects/{p}/locations/{r}/publishers/mistralai/models/
       {model}:rawPredict | :streamRawPredict
                needs `Authorization: Bearer <a token this mock issued>`
                (401 otherwise); answers Mistral-format JSON or SSE.

Test key pair: with --write-sa FILE the mock generates an RSA key pair with
the openssl CLI (in a temporary directory next to FILE) and writes a
service-account JSON whose token_uri points at itself; or pass --pubkey PEM
to verify against an existing key. Token endpoint modes (--token-mode, or
the header X-Mock-Token-Mode): ok, status-NNN, malformed, slow-N.
"""

import base64
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mock_common as mc  # noqa: E402

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def rsa_verify(pubkey_pem_path, data, sig):
    with tempfile.NamedTemporaryFile(delete=False) as f:
        f.write(sig)
        sigpath = f.name
    try:
        r = subprocess.run(["openssl", "dgst", "-sha256", "-verify",
                            pubkey_pem_path, "-signature", sigpath],
                           input=data, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, check=False)
        return r.returncode == 0
    finally:
        os.unlink(sigpath)


def check_jwt(jwt, pubkey, email, aud):
    """Returns None if the assertion is good, else why not."""
    parts = jwt.split(".")
    if len(parts) != 3:
        return "assertion is not a JWT"
    try:
        hdr = json.loads(b64url_decode(parts[0]))
        cl = json.loads(b64url_decode(parts[1]))
        sig = b64url_decode(parts[2])
    except ValueError:
        return "assertion does not decode"
    if hdr.get("alg") != "RS256":
        return "alg is not RS256"
    if not rsa_verify(pubkey, (parts[0] + "." + parts[1]).encode(), sig):
        return "Invalid JWT Signature."
    if email and cl.get("iss") != email:
        return "iss is not the service account"
    if cl.get("aud") != aud:
        return "aud %r is not %r" % (cl.get("aud"), aud)
    if SCOPE not in (cl.get("scope") or "").split(" "):
        return "scope lacks cloud-platform"
    now = time.time()
    iat, exp = cl.get("iat"), cl.get("exp")
    if not isinstance(iat, int) or not isinstance(exp, int):
        return "iat/exp missing"
    if iat > now + 300 or exp < now or exp - iat > 3600:
        return "Invalid JWT: Token must be a short-lived token (60 minutes) "\
               "and in a reasonable timeframe."
    return None


class VertexHandler(mc.Handler):
    kind = "vertex"

    def google_error(self, status, msg, st="INVALID_ARGUMENT"):
        self.send_json(status, {"error": {"code": status, "message": msg,
                                          "status": st}})

    def handle_post(self, body, mode):
        if self.path.split("?")[0] == "/token":
            return self.token(body)
        return self.predict(body, mode)

    def token(self, body):
        srv = self.server
        mode = self.headers.get("X-Mock-Token-Mode") or srv.args.token_mode
        if mode.startswith("slow-"):
            time.sleep(int(mode[5:]) / 1000.0)
            mode = "ok"
        with srv.lock:
            srv.token_requests += 1
        form = urllib.parse.parse_qs(body.decode("ascii", "replace"))
        if self.headers.get("Content-Type", "").split(";")[0] != \
                "application/x-www-form-urlencoded":
            self.verdict = "rejected: not a form"
            return self.send_json(400, {"error": "invalid_request"})
        if form.get("grant_type", [""])[0] != JWT_BEARER:
            self.verdict = "rejected: grant_type"
            return self.send_json(400, {"error": "unsupported_grant_type"})
        aud = "%s://%s/token" % (srv.scheme, self.headers.get("Host"))
        why = check_jwt(form.get("assertion", [""])[0], srv.pubkey,
                        srv.args.client_email, aud)
        if why:
            self.verdict = "rejected: " + why
            return self.send_json(400, {"error": "invalid_grant",
                                        "error_description": why})
        st = mc.status_of(mode)
        if st:
            self.verdict = "token status %d by mode" % st
            return self.send_json(st, {"error": "internal_failure"})
        if mode == "malformed":
            self.verdict = "malformed token answer by mode"
            return self.send_raw(200, b'{"access_tok', "application/json")
        tok = srv.args.token or "ya29.mock-" + secrets.token_urlsafe(24)
        with srv.lock:
            srv.tokens[tok] = time.time() + srv.args.expires_in
        self.verdict = "token issued"
        self.send_json(200, {"access_token": tok,
                             "expires_in": srv.args.expires_in,
                             "token_type": "Bearer"})

    def predict(self, body, mode):
        srv = self.server
        a = srv.args
        path = self.path.split("?")[0]
        pre = "/v1/projects/"
        ok_path = False
        if path.startswith(pre) and ":" in path:
            route, _, verb = path.rpartition(":")
            p = route[len(pre):].split("/")
            # p = [project, locations, region, publishers, mistralai,
            #      models, model]
            ok_path = (len(p) == 7 and p[1] == "locations" and
                       p[3] == "publishers" and p[4] == "mistralai" and
                       p[5] == "models" and
                       verb in ("rawPredict", "streamRawPredict"))
        if not ok_path:
            self.verdict = "rejected: no such route"
            return self.google_error(404, "not found", "NOT_FOUND")
        if (a.project and p[0] != a.project) or \
                (a.region and p[2] != a.region):
            self.verdict = "rejected: project or region"
            return self.google_error(404, "project/location not found",
                                     "NOT_FOUND")
        h = self.headers.get("Authorization") or ""
        tok = h[7:] if h.startswith("Bearer ") else ""
        with srv.lock:
            exp = srv.tokens.get(tok)
        if not tok or exp is None or exp < time.time():
            self.verdict = "rejected: bearer token"
            return self.google_error(
                401, "Request had invalid authentication credentials.",
                "UNAUTHENTICATED")
        try:
            req = json.loads(body)
        except ValueError:
            self.verdict = "rejected: body is not JSON"
            return self.google_error(400, "body is not JSON")
        model = p[6].split("@")[0]
        if req.get("model") != model:
            self.verdict = "rejected: body model %r, URL model %r" % (
                req.get("model"), model)
            return self.google_error(400, "model mismatch")
        if "stream_options" in req:
            self.verdict = "rejected: stream_options"
            return self.google_error(422, "Extra inputs are not permitted")
        if bool(req.get("stream")) != (verb == "streamRawPredict"):
            self.verdict = "rejected: stream flag and verb disagree"
            return self.google_error(400, "use streamRawPredict to stream")
        st = mc.status_of(mode)
        if st:
            self.verdict = "status %d by mode" % st
            return self.google_error(st, "mock error by mode", "INTERNAL")
        self.verdict = "ok"
        self.openai_answer(req, mode, model)


def gen_keypair(directory):
    key = os.path.join(directory, "sa-key.pem")
    pub = os.path.join(directory, "sa-pub.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                    "rsa_keygen_bits:2048", "-out", key], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run(["openssl", "pkey", "-in", key, "-pubout", "-out", pub],
                   check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return key, pub


def main():
    p = mc.base_args("mock Vertex AI (Mistral) upstream and token endpoint")
    p.add_argument("--pubkey", help="PEM public key the JWT must verify with")
    p.add_argument("--write-sa", help="generate a key pair and write a "
                   "service-account JSON for it here")
    p.add_argument("--client-email",
                   default="sovgate-test@mock-project.iam.gserviceaccount.com")
    p.add_argument("--token", help="access token to issue (default random)")
    p.add_argument("--expires-in", type=int, default=3600)
    p.add_argument("--token-mode", default="ok")
    p.add_argument("--project")
    p.add_argument("--region")
    args = p.parse_args()
    if not args.pubkey and not args.write_sa:
        p.error("give --pubkey or --write-sa")

    def setup(srv):
        srv.lock = threading.Lock()
        srv.tokens = {}
        srv.token_requests = 0
        srv.pubkey = args.pubkey
        if args.write_sa:
            d = tempfile.mkdtemp(prefix="mock-vertex-",
                                 dir=os.path.dirname(
                                     os.path.abspath(args.write_sa)))
            key, pub = gen_keypair(d)
            srv.pubkey = pub
            with open(key) as f:
                pem = f.read()
            sa = {"type": "service_account", "project_id": "mock-project",
                  "private_key_id": secrets.token_hex(20),
                  "private_key": pem, "client_email": args.client_email,
                  "client_id": "1234567890",
                  "token_uri": "%s://127.0.0.1:%d/token" % (srv.scheme,
                                                             srv.port)}
            tmp = args.write_sa + ".tmp"
            with open(tmp, "w") as f:
                json.dump(sa, f, indent=2)
            os.chmod(tmp, 0o600)
            os.rename(tmp, args.write_sa)

    return mc.serve(VertexHandler, args, setup)


if __name__ == "__main__":
    sys.exit(main())
