"""Routing: each request reaches only backends its level allows, in the
policy's order, with that backend's credentials and model id (SPEC §1, §4.3).
Every assertion about where a request went is made on what the mocks
received."""

import json

from harness import (ALL_BACKENDS, CLOUD_ACT, HR_KEY, TEXT_AWS, TEXT_EMAIL,
                     TEXT_HEALTH, TEXT_IBAN, TEXT_PUBLIC, IBAN, assert_error_shape,
                     assert_nothing_forwarded, assert_only, assert_routed,
                     chat, check)


def test_public_goes_to_first_preferred(t):
    env = t.env()
    r = env.chat(TEXT_PUBLIC)
    rec, got = assert_routed(env, r, "mistral-eu", level="public")
    assert_only(env, {"mistral-eu"})
    # the answer is the mock's, passed through
    doc = r.json()
    check(doc["choices"][0]["message"]["content"].startswith(
        "Hello from mistral-eu"), "answer not from the mock: %r", doc)
    # the messages arrived intact
    check(rec["json"]["messages"] == [{"role": "user",
                                       "content": TEXT_PUBLIC}],
          "messages changed on the way: %r", rec["json"]["messages"])


def test_iban_stays_with_eu_operated_backends(t):
    env = t.env()
    r = env.chat(TEXT_IBAN)
    assert_routed(env, r, "onprem-vllm", level="confidential")
    counts = assert_only(env, {"onprem-vllm", "mistral-eu"})
    for b in CLOUD_ACT:
        check(counts[b] == 0, "IBAN request reached cloud_act backend %s", b)


def test_health_term_stays_self_hosted(t):
    env = t.env()
    r = env.chat(TEXT_HEALTH)
    assert_routed(env, r, "onprem-vllm", level="restricted")
    assert_only(env, {"onprem-vllm"})


def test_email_internal_data_in_eea(t):
    env = t.env()
    r = env.chat(TEXT_EMAIL)
    assert_routed(env, r, "mistral-eu", level="internal")
    assert_only(env, {"mistral-eu"})


def test_credential_denied_nothing_forwarded(t):
    env = t.env()
    r = env.chat(TEXT_AWS)
    e = assert_error_shape(r, 403, etype="policy_denied")
    check("AKIAIOSFODNN7EXAMPLE" not in r.body.decode("utf-8", "replace"),
          "the secret is echoed in the error: %r", r.body)
    check(r.header("X-Sovgate-Backend") in (None, ""),
          "a denied request names a backend: %r",
          r.header("X-Sovgate-Backend"))
    assert_nothing_forwarded(env)
    row = env.decision(e["decision_id"])
    check(row is not None, "no decision row for the denial %s",
          e["decision_id"])
    check(row["action"] == "deny", "decision action %r, expected deny",
          row["action"])


def test_model_filter_picks_a_backend_that_serves_it(t):
    env = t.env()
    # only azure-sweden serves azure-only-model: public may go there
    r = env.chat(TEXT_PUBLIC, model="azure-only-model")
    assert_routed(env, r, "azure-sweden", level="public",
                  model="azure-only-model")
    assert_only(env, {"azure-sweden"})


def test_model_filter_never_crosses_the_policy(t):
    env = t.env()
    # confidential may not use azure-sweden, the only one serving the model
    r = env.chat(TEXT_IBAN, model="azure-only-model")
    assert_error_shape(r, 403, etype="policy_denied")
    check(r.json()["error"].get("level") == "confidential",
          "error.level %r", r.json()["error"].get("level"))
    assert_nothing_forwarded(env)


def test_unknown_model_is_403(t):
    env = t.env()
    r = env.chat(TEXT_PUBLIC, model="gpt-4o")
    e = assert_error_shape(r, 403, etype="policy_denied")
    check("gpt-4o" in e["message"], "message does not name the model: %r",
          e["message"])
    assert_nothing_forwarded(env)


def test_tool_call_arguments_are_classified(t):
    env = t.env()
    body = {"model": "mistral-large-latest", "messages": [
        {"role": "user", "content": "Refund the customer."},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {
                "name": "refund",
                # the IBAN is inside a JSON string inside a JSON string,
                # with escapes the classifier must decode
                "arguments": json.dumps({"iban": IBAN.replace(" ", "\u00a0"),
                                         "amount": 12})}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "done"}],
        "tools": [{"type": "function", "function": {
            "name": "refund", "parameters": {"type": "object"}}}]}
    r = env.post("/v1/chat/completions", body)
    rec, _ = assert_routed(env, r, "onprem-vllm", level="confidential")
    assert_only(env, {"onprem-vllm"})
    check(rec["json"]["messages"][1]["tool_calls"][0]["function"]["name"]
          == "refund", "tool call lost on the way: %r", rec["json"])
    check(rec["json"].get("tools"), "tools lost on the way")


def test_content_parts_are_classified(t):
    env = t.env()
    body = {"model": "mistral-large-latest", "messages": [
        {"role": "user", "content": [
            {"type": "text", "text": "Here is the file."},
            {"type": "text", "text": TEXT_HEALTH}]}]}
    r = env.post("/v1/chat/completions", body)
    assert_routed(env, r, "onprem-vllm", level="restricted")


def test_embeddings_routed_and_rewritten(t):
    env = t.env()
    r = env.post("/v1/embeddings", {"model": "mistral-embed",
                                    "input": ["hello", "world"]})
    assert_routed(env, r, "mistral-eu", level="public", model="mistral-embed",
                  path_suffix="/embeddings")
    r = env.post("/v1/embeddings", {"model": "mistral-embed",
                                    "input": ["a", TEXT_IBAN]})
    check(r.status == 200 and r.header("X-Sovgate-Backend") == "onprem-vllm",
          "IBAN embeddings went to %r (%d)", r.header("X-Sovgate-Backend"),
          r.status)
    rec = env.mock_requests("onprem-vllm")
    check(len(rec) == 1 and rec[0]["path"].endswith("/embeddings") and
          rec[0]["json"]["model"] == "intfloat/multilingual-e5-large",
          "onprem-vllm received %r", rec)
    check(len(r.json()["data"]) == 2, "embeddings answer: %r", r.body[:200])
    assert_only(env, {"mistral-eu", "onprem-vllm"})


def test_fim_routed_and_suffix_classified(t):
    env = t.env()
    r = env.post("/v1/fim/completions", {
        "model": "codestral-latest", "prompt": "def add(a, b):",
        "suffix": "# patient diagnosed with chemotherapy side effects\n"})
    assert_routed(env, r, "onprem-vllm", level="restricted",
                  model="codestral-latest", path_suffix="/fim/completions")
    assert_only(env, {"onprem-vllm"})


def test_client_floor_raises_level(t):
    env = t.env()
    r = env.chat(TEXT_PUBLIC, key=HR_KEY)
    assert_routed(env, r, "onprem-vllm", level="confidential")
    assert_only(env, {"onprem-vllm"})


def test_declared_classification_raises(t):
    env = t.env()
    r = env.chat(TEXT_PUBLIC, headers={"X-Sovgate-Classification":
                                       "restricted"})
    assert_routed(env, r, "onprem-vllm", level="restricted")
    assert_only(env, {"onprem-vllm"})


def test_declared_classification_cannot_lower(t):
    env = t.env()
    r = env.chat(TEXT_IBAN, headers={"X-Sovgate-Classification": "public"})
    assert_routed(env, r, "onprem-vllm", level="confidential")
    r = env.chat(TEXT_HEALTH, key=HR_KEY,
                 headers={"X-Sovgate-Classification": "internal"})
    check(r.status == 200 and r.header("X-Sovgate-Level") == "restricted",
          "declared 'internal' lowered restricted to %r",
          r.header("X-Sovgate-Level"))
    assert_only(env, {"onprem-vllm"})


def test_declared_unknown_level_is_400(t):
    env = t.env()
    r = env.chat(TEXT_PUBLIC, headers={"X-Sovgate-Classification":
                                       "top-secret"})
    assert_error_shape(r, 400)
    assert_nothing_forwarded(env)


def test_models_lists_what_backends_serve(t):
    env = t.env()
    r = env.request("GET", "/v1/models")
    check(r.status == 200, "GET /v1/models: %d %r", r.status, r.body[:200])
    doc = r.json()
    ids = {m.get("id") for m in doc.get("data", [])}
    for m in ("mistral-large-latest", "mistral-small-latest",
              "codestral-latest", "mistral-embed", "azure-only-model"):
        check(m in ids, "/v1/models lacks %s: %s", m, sorted(ids))
    check("gpt-4o" not in ids and "mistral-large-2411" not in ids,
          "/v1/models lists backend ids or unknown models: %s", sorted(ids))
    check(doc.get("object") == "list", "object is %r", doc.get("object"))
    r = env.request("GET", "/v1/models", key=None)
    check(r.status == 401, "GET /v1/models without a key: %d", r.status)
    assert_nothing_forwarded(env, settle=0)


def test_other_levels_never_reach_disallowed_backends(t):
    """A mix of requests: every one reaches only backends its level
    allows."""
    env = t.env()
    allowed = {"public": set(ALL_BACKENDS),
               "internal": set(ALL_BACKENDS),
               "confidential": {"onprem-vllm", "mistral-eu"},
               "restricted": {"onprem-vllm"}}
    cases = [(TEXT_PUBLIC, "public"), (TEXT_EMAIL, "internal"),
             (TEXT_IBAN, "confidential"), (TEXT_HEALTH, "restricted"),
             ("Card 4111 1111 1111 1111 exp 12/29", "confidential"),
             ("Project Nightingale kickoff notes", "confidential"),
             ("ssh to build-01.corp.example please", "internal")]
    for text, level in cases:
        before = env.counts()
        r = env.chat(text)
        check(r.status == 200, "%r: %d %r", text, r.status, r.body[:200])
        check(r.header("X-Sovgate-Level") == level,
              "%r classified %r, expected %r", text,
              r.header("X-Sovgate-Level"), level)
        after = env.counts()
        moved = {n for n in after if after[n] != before[n]}
        check(moved == {r.header("X-Sovgate-Backend")},
              "%r: backends that received it %s, header says %s", text,
              moved, r.header("X-Sovgate-Backend"))
        check(moved <= allowed[level], "%r (%s) reached %s", text, level,
              moved)


def test_duplicate_keys_forward_what_was_classified(t):
    """A body with unique keys goes to an openai-kind backend as the client
    wrote it, only the model replaced; a body that repeats a key is written
    out from the tree that was classified (the last value wins, as in every
    mainstream parser). Proven on the raw bytes the mock received."""
    env = t.env()
    benign = [{"role": "user", "content": TEXT_PUBLIC}]
    secret = [{"role": "user", "content": TEXT_IBAN}]
    text = ('{ "messages" : %s ,\n  "model":"mistral-large-latest",'
            '"temperature":0.50 }' % json.dumps(secret))
    r = env.post("/v1/chat/completions", text.encode())
    rec, _ = assert_routed(env, r, "onprem-vllm", level="confidential")
    want = text.replace('"mistral-large-latest"', json.dumps(
        rec["json"]["model"]))
    check(rec["body"] == want, "body changed beyond the model:\n%r\n%r",
          rec["body"], want)
    body = ('{"model": "mistral-large-latest", "messages": %s, '
            '"messages": %s}' % (json.dumps(benign), json.dumps(secret)))
    r = env.post("/v1/chat/completions", body.encode())
    check(r.status == 200 and r.header("X-Sovgate-Level") == "confidential"
          and r.header("X-Sovgate-Backend") == "onprem-vllm",
          "duplicate messages: %d %s %s", r.status,
          r.header("X-Sovgate-Level"), r.header("X-Sovgate-Backend"))
    assert_only(env, {"onprem-vllm"})
    raw = env.received()["onprem-vllm"][1]["body"]
    check(raw.count('"messages"') == 1, "duplicate key forwarded: %r", raw)
    check(IBAN in raw and TEXT_PUBLIC not in raw, "upstream got other "
          "messages than the classified ones: %r", raw)
