"""Upstream TLS (SPEC §4.2, §5): the chain and the host name are always
verified; a per-backend ca_file trusts a private CA; server_name names the
host to verify. A backend that fails verification gets nothing and the
request fails over. Certificates are made here with the openssl command."""

import os
import shutil
import subprocess

from harness import (TEXT_IBAN, Skip, assert_credentials, assert_only,
                     check)


def make_pki(d):
    """A private CA and three server certificates it signs: for 127.0.0.1
    (IP SAN), for the name other.example only, and one self-signed."""
    openssl = shutil.which("openssl")
    if not openssl:
        raise Skip("no openssl command to make test certificates")

    def run(*args):
        p = subprocess.run([openssl] + list(args), cwd=d,
                           capture_output=True, timeout=60,
                           stdin=subprocess.DEVNULL)
        if p.returncode != 0:
            raise Skip("openssl %s failed: %s" % (args[0], p.stderr[-300:]))

    run("req", "-x509", "-newkey", "ec", "-pkeyopt",
        "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "ca.key",
        "-out", "ca.pem", "-days", "2", "-subj", "/CN=sovgate e2e test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    for name, san in (("ip", "IP:127.0.0.1"),
                      ("other", "DNS:other.example")):
        run("req", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
            name + ".key", "-out", name + ".csr", "-subj", "/CN=" + name)
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write("subjectAltName=%s\nextendedKeyUsage=serverAuth\n"
                    "basicConstraints=CA:FALSE\n" % san)
        run("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem",
            "-CAkey", "ca.key", "-CAcreateserial", "-out", name + ".pem",
            "-days", "2", "-extfile", name + ".ext")
    run("req", "-x509", "-newkey", "ec", "-pkeyopt",
        "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "self.key",
        "-out", "self.pem", "-days", "2", "-subj", "/CN=127.0.0.1",
        "-addext", "subjectAltName=IP:127.0.0.1")
    return {n: (os.path.join(d, n + ".pem"), os.path.join(d, n + ".key"))
            for n in ("ip", "other", "self")}, os.path.join(d, "ca.pem")


def tls_env(t, cert, tls=None):
    """onprem-vllm served over HTTPS with `cert`; its descriptor gets
    tls: `tls` (or none)."""
    env = t.env(start=False)
    certs, ca = make_pki(env.dir)
    crt, key = certs[cert]
    env.mock_opts["onprem-vllm"].update(tls_cert=crt, tls_key=key)
    extra = {"scheme": "https"}
    if tls:
        extra["tls"] = {k: (ca if v == "CA" else v) for k, v in tls.items()}
    env.backend_extra["onprem-vllm"] = extra
    env.start()
    return env


def test_https_backend_with_private_ca(t):
    env = tls_env(t, "ip", {"ca_file": "CA"})
    r = env.chat(TEXT_IBAN)
    check(r.status == 200 and r.header("X-Sovgate-Backend") == "onprem-vllm",
          "HTTPS backend with its CA: %d via %r %r", r.status,
          r.header("X-Sovgate-Backend"), r.body[:200])
    got = env.mock_requests("onprem-vllm")
    check(len(got) == 1, "onprem-vllm received %d", len(got))
    assert_credentials(got[0], "onprem-vllm")
    assert_only(env, {"onprem-vllm"})


def test_https_backend_untrusted_chain_gets_nothing(t):
    env = tls_env(t, "self", {"ca_file": "CA"})
    r = env.chat(TEXT_IBAN)
    check(r.status == 200 and r.header("X-Sovgate-Backend") == "mistral-eu",
          "an untrusted backend: %d via %r", r.status,
          r.header("X-Sovgate-Backend"))
    check(env.mock_requests("onprem-vllm") == [],
          "a request went to a backend whose certificate is not trusted")
    assert_only(env, {"mistral-eu"})


def test_https_backend_without_ca_file_uses_system_roots(t):
    env = tls_env(t, "ip")
    r = env.chat(TEXT_IBAN)
    check(r.header("X-Sovgate-Backend") == "mistral-eu",
          "a private-CA certificate was trusted without ca_file: via %r",
          r.header("X-Sovgate-Backend"))
    check(env.mock_requests("onprem-vllm") == [],
          "a request went to an unverified backend")


def test_https_backend_wrong_host_name_gets_nothing(t):
    env = tls_env(t, "other", {"ca_file": "CA"})
    r = env.chat(TEXT_IBAN)
    check(r.status == 200 and r.header("X-Sovgate-Backend") == "mistral-eu",
          "a certificate for another host: %d via %r", r.status,
          r.header("X-Sovgate-Backend"))
    check(env.mock_requests("onprem-vllm") == [],
          "a request went to a backend whose certificate names another "
          "host")


def test_https_backend_server_name(t):
    """tls.server_name: the name the certificate must carry when the
    endpoint is an address."""
    env = tls_env(t, "other", {"ca_file": "CA",
                               "server_name": "other.example"})
    r = env.chat(TEXT_IBAN)
    check(r.status == 200 and r.header("X-Sovgate-Backend") == "onprem-vllm",
          "server_name other.example: %d via %r %r", r.status,
          r.header("X-Sovgate-Backend"), r.body[:200])
    check(len(env.mock_requests("onprem-vllm")) == 1, "not received")
