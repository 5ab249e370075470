#!/usr/bin/env python3
"""Mock Azure AI Foundry upstream for sovgate's end-to-end tests.

Serves both URL shapes of kind `azure`:
  serverless  POST /v1/chat/completions        (optional ?api-version=)
  Foundry     POST /models/chat/completions?api-version=V
              (api-version required; "model" names the deployment)
and checks the credential: the `api-key` header (default) or
`Authorization: Bearer` (--auth bearer) must equal --key (or $MOCK_AZURE_KEY).
Rejections answer 401 like Azure does. Answers are OpenAI-format JSON or
SSE. See mock_common.py for --port/--port-file/--log/--mode.

  mock-azure.py --port 0 --port-file /tmp/p --key secret --log /tmp/req.jsonl
  mock-azure.py --deployments mistral-large-2411,codestral  # Foundry names
"""

import hmac
import json
import os
import sys
import urllib.parse

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mock_common as mc  # noqa: E402


class AzureHandler(mc.Handler):
    kind = "azure"

    def reject(self, status, code, message):
        self.verdict = "rejected: " + message
        self.send_json(status, {"error": {"code": code, "message": message}})

    def handle_post(self, body, mode):
        a = self.server.args
        url = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(url.query)
        if url.path == "/v1/chat/completions":
            shape = "serverless"
        elif url.path == "/models/chat/completions":
            shape = "foundry"
            if not q.get("api-version"):
                return self.reject(400, "MissingApiVersionParameter",
                                   "The api-version query parameter "
                                   "(?api-version=) is required")
        else:
            return self.reject(404, "NotFound", "no such route " + url.path)
        if a.api_version and q.get("api-version", [None])[0] != a.api_version:
            return self.reject(400, "UnsupportedApiVersion",
                               "expected api-version " + a.api_version)
        if a.auth == "api-key":
            got = self.headers.get("api-key") or ""
        else:
            h = self.headers.get("Authorization") or ""
            got = h[7:] if h.startswith("Bearer ") else ""
        if not a.key or not hmac.compare_digest(got.encode(), a.key.encode()):
            return self.reject(401, "401", "Access denied due to invalid "
                               "subscription key or wrong API endpoint.")
        if self.headers.get("Authorization") and a.auth == "api-key":
            # a client's own credential must never be forwarded
            return self.reject(400, "UnexpectedAuthorization",
                               "an Authorization header reached the backend")
        try:
            req = json.loads(body)
        except ValueError:
            return self.reject(400, "BadRequest", "body is not JSON")
        model = req.get("model")
        if not isinstance(req.get("messages"), list) or not model:
            return self.reject(422, "InvalidInput", "messages and model are "
                               "required")
        if shape == "foundry" and a.deployments and \
                model not in a.deployments.split(","):
            return self.reject(404, "DeploymentNotFound", "no deployment "
                               "named " + model)
        st = mc.status_of(mode)
        if st:
            self.verdict = "status %d by mode" % st
            return self.send_json(st, {"error": {"code": str(st),
                                                 "message": "mock error"}})
        self.verdict = "ok (%s)" % shape
        self.openai_answer(req, mode, model)


def main():
    p = mc.base_args("mock Azure AI Foundry upstream")
    p.add_argument("--key", default=os.environ.get("MOCK_AZURE_KEY"))
    p.add_argument("--auth", choices=["api-key", "bearer"], default="api-key")
    p.add_argument("--api-version")
    p.add_argument("--deployments")
    args = p.parse_args()
    return mc.serve(AzureHandler, args)


if __name__ == "__main__":
    sys.exit(main())
