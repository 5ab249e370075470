"""Optional: OpenAI's official Node SDK against the gateway, with only the
base URL and key changed. Skipped unless `node` is installed and a
node_modules holding `openai` is found: $SOVGATE_E2E_NODE_MODULES, else
<srcdir>/build/e2e-sdk/node_modules (contrib/test.sh installs it there from
tests/e2e/sdk/package-lock.json when npm is available)."""

import json
import os
import shutil
import subprocess

from harness import (CLAIMS_KEY, CLOUD_ACT, SRCDIR, Skip, assert_only,
                     check)

HERE = os.path.dirname(os.path.abspath(__file__))


def node_modules():
    for d in (os.environ.get("SOVGATE_E2E_NODE_MODULES"),
              os.path.join(SRCDIR, "build", "e2e-sdk", "node_modules")):
        if d and os.path.isfile(os.path.join(d, "openai", "package.json")):
            return d
    return None


def test_openai_node_sdk(t):
    node = shutil.which("node")
    nm = node_modules()
    if not node or not nm:
        raise Skip("no node or no node_modules with openai (contrib/test.sh "
                   "installs it into build/e2e-sdk)")
    env = t.env()
    e = dict(os.environ, NODE_PATH=nm,
             SOVGATE_BASE_URL="http://127.0.0.1:%d/v1" % env.port,
             SOVGATE_KEY=CLAIMS_KEY)
    p = subprocess.run([node, os.path.join(HERE, "sdk", "openai_sdk.cjs")],
                       capture_output=True, timeout=60, env=e,
                       stdin=subprocess.DEVNULL)
    lines = p.stdout.decode("utf-8", "replace").strip().splitlines()
    check(lines, "the SDK script printed nothing (exit %d): %s",
          p.returncode, p.stderr.decode()[-800:])
    out = json.loads(lines[-1])
    check("fatal" not in out, "the SDK failed: %s", out.get("fatal"))
    c = out["chat"]
    check(c["backend"] == "mistral-eu" and c["level"] == "public" and
          c["decision"], "chat headers through the SDK: %r", c)
    check(c["content"].startswith("Hello from mistral-eu"), "chat: %r", c)
    s = out["stream"]
    check(s["chunks"] >= 3 and "onprem-vllm" in s["text"],
          "stream through the SDK: %r", s)
    check(out["embeddings"] == {"n": 2, "dim": 8}, "embeddings: %r",
          out["embeddings"])
    d = out["deny"]
    check(d["thrown"] and d["status"] == 403 and d["type"] ==
          "policy_denied" and d["decision_id"], "denial through the SDK: %r",
          d)
    check(out["badkey"]["thrown"] and out["badkey"]["status"] == 401,
          "wrong key through the SDK: %r", out["badkey"])
    check("mistral-large-latest" in out["models"], "models: %r",
          out["models"])
    # what the upstreams received
    got = env.received()
    check(len(got["mistral-eu"]) == 2 and len(got["onprem-vllm"]) == 1,
          "received: %s", {k: len(v) for k, v in got.items()})
    for b in CLOUD_ACT:
        check(not got[b], "%s received a request", b)
    streamed = got["onprem-vllm"][0]["json"]
    check(streamed.get("stream") is True, "the stream flag was lost: %r",
          streamed)
    assert_only(env, {"mistral-eu", "onprem-vllm"})
