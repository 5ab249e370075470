"""Failover (SPEC §1 step 6): only among the decision's candidates, in the
policy's order, only before the first byte reached the client; every
attempt recorded."""

import json
import time

from harness import (ALL_BACKENDS, BACKEND_KEYS, CLOUD_ACT, TEXT_IBAN,
                     TEXT_PUBLIC, assert_credentials, assert_error_shape,
                     assert_only, check, free_port, header_map)


def test_500_goes_to_next_allowed_candidate(t):
    env = t.env(mocks={"onprem-vllm": {"fail_status": 500}})
    r = env.chat(TEXT_IBAN)
    check(r.status == 200, "status %d: %r", r.status, r.body[:300])
    check(r.header("X-Sovgate-Backend") == "mistral-eu",
          "answered by %r, expected mistral-eu",
          r.header("X-Sovgate-Backend"))
    got = env.received()
    check(len(got["onprem-vllm"]) == 1, "onprem-vllm got %d",
          len(got["onprem-vllm"]))
    check(len(got["mistral-eu"]) == 1, "mistral-eu got %d",
          len(got["mistral-eu"]))
    assert_only(env, {"onprem-vllm", "mistral-eu"})
    # each attempt with its own backend's credentials and model id
    assert_credentials(got["onprem-vllm"][0], "onprem-vllm")
    assert_credentials(got["mistral-eu"][0], "mistral-eu")
    check(got["mistral-eu"][0]["json"]["model"] == "mistral-large-2411",
          "model at mistral-eu: %r", got["mistral-eu"][0]["json"]["model"])
    check(got["onprem-vllm"][0]["time"] < got["mistral-eu"][0]["time"],
          "attempts out of the policy's order")
    # the same body went to both, apart from the model
    a = dict(got["onprem-vllm"][0]["json"])
    b = dict(got["mistral-eu"][0]["json"])
    a.pop("model")
    b.pop("model")
    check(a == b, "failover changed the request: %r vs %r", a, b)
    out = env.outcome(r.header("X-Sovgate-Decision"))
    if out is not None:
        check(out, "no outcome recorded for %s",
              r.header("X-Sovgate-Decision"))
        text = repr(out)
        check("onprem-vllm" in text and "mistral-eu" in text,
              "the outcome does not record both attempts: %r", out)
        if "attempts" in out:
            check(out["attempts"] == 2, "outcome attempts %r",
                  out["attempts"])
        if out.get("attempts_json"):
            att = json.loads(out["attempts_json"])
            check([a.get("backend") for a in att] ==
                  ["onprem-vllm", "mistral-eu"], "attempts_json %r", att)
            check(att[0].get("status") == 500 and att[1].get("result") ==
                  "ok" and att[1].get("status") == 200 and
                  all(isinstance(a.get("ms"), int) for a in att),
                  "attempts_json %r", att)


def test_all_allowed_fail_is_502_and_never_crosses_policy(t):
    env = t.env(mocks={"onprem-vllm": {"fail_status": 500},
                       "mistral-eu": {"fail_status": 503}})
    r = env.chat(TEXT_IBAN)
    assert_error_shape(r, 502)
    check(r.header("X-Sovgate-Level") == "confidential", "level %r",
          r.header("X-Sovgate-Level"))
    c = env.counts()
    check(c["onprem-vllm"] == 1 and c["mistral-eu"] == 1,
          "allowed backends tried: %s", c)
    for b in CLOUD_ACT:
        check(c[b] == 0, "failover crossed the policy: %s got %d", b, c[b])


def test_429_fails_over(t):
    env = t.env(mocks={"mistral-eu": {"fail_status": 429}})
    r = env.chat(TEXT_PUBLIC)
    check(r.status == 200 and r.header("X-Sovgate-Backend") ==
          "azure-sweden", "429 then %d via %r", r.status,
          r.header("X-Sovgate-Backend"))
    c = env.counts()
    check(c["mistral-eu"] == 1 and c["azure-sweden"] == 1 and
          sum(c.values()) == 2, "counts %s", c)


def test_public_chain_each_with_its_own_credentials(t):
    """Public may use all five: with the first four failing, each is tried
    once in the policy's order, each with its own credentials."""
    env = t.env(mocks={b: {"fail_status": 502} for b in
                       ("mistral-eu", "azure-sweden", "bedrock-paris",
                        "vertex-netherlands")})
    r = env.chat(TEXT_PUBLIC)
    check(r.status == 200 and r.header("X-Sovgate-Backend") ==
          "onprem-vllm", "got %d via %r: %r", r.status,
          r.header("X-Sovgate-Backend"), r.body[:200])
    got = env.received()
    order = sorted((recs[0]["time"], n) for n, recs in got.items() if recs)
    check([n for _, n in order] == ["mistral-eu", "azure-sweden",
                                    "bedrock-paris", "vertex-netherlands",
                                    "onprem-vllm"],
          "attempt order %s", [n for _, n in order])
    for n in ALL_BACKENDS:
        check(len(got[n]) == 1, "%s received %d", n, len(got[n]))
        assert_credentials(got[n][0], n)
    h = header_map(got["azure-sweden"][0])
    check(h.get("api-key") == [BACKEND_KEYS["azure-sweden"]],
          "azure-sweden api-key %r", h.get("api-key"))


def test_4xx_is_returned_not_failed_over(t):
    env = t.env(mocks={"mistral-eu": {"fail_status": 400}})
    r = env.chat(TEXT_PUBLIC)
    check(r.status == 400, "upstream 400 became %d", r.status)
    check(r.header("X-Sovgate-Decision"), "no decision header on a "
          "passed-through 400")
    c = env.counts()
    check(c["mistral-eu"] == 1 and sum(c.values()) == 1,
          "a 400 was failed over: %s", c)


def test_connect_error_fails_over(t):
    dead = free_port()   # nothing listens there
    env = t.env(backend_extra={"onprem-vllm": {"port": dead}})
    r = env.chat(TEXT_IBAN)
    check(r.status == 200 and r.header("X-Sovgate-Backend") == "mistral-eu",
          "connect error then %d via %r: %r", r.status,
          r.header("X-Sovgate-Backend"), r.body[:200])
    assert_only(env, {"mistral-eu"})


def test_first_byte_timeout_fails_over_then_504(t):
    env = t.env(mocks={"onprem-vllm": {"delay_first_byte": 4}},
                backend_extra={"onprem-vllm": {"first_byte_timeout": "1s"}})
    t0 = time.time()
    r = env.chat(TEXT_IBAN)
    dt = time.time() - t0
    check(r.status == 200 and r.header("X-Sovgate-Backend") == "mistral-eu",
          "timeout then %d via %r", r.status, r.header("X-Sovgate-Backend"))
    check(dt < 3.5, "failover after a 1 s first-byte timeout took %.1f s",
          dt)
    assert_only(env, {"onprem-vllm", "mistral-eu"})
    # both time out: 504
    env.set_mock("mistral-eu", delay_first_byte=8)
    t0 = time.time()
    r = env.chat(TEXT_IBAN)
    dt = time.time() - t0
    # mistral-eu has the config's 5 s first-byte timeout
    assert_error_shape(r, 504)
    check(dt < 8.5, "504 after %.1f s", dt)
    assert_only(env, {"onprem-vllm", "mistral-eu"})
test_first_byte_timeout_fails_over_then_504.timeout = 40


def test_no_failover_after_first_byte(t):
    """A stream that breaks after bytes reached the client is not retried
    elsewhere (the client would see two answers)."""
    env = t.env(mocks={"onprem-vllm": {"reset_mid_stream": True,
                                       "stream_chunks": 6,
                                       "chunk_delay": 0.05}})
    body = {"model": "mistral-large-latest", "stream": True,
            "messages": [{"role": "user", "content": TEXT_IBAN}]}
    r, reads = env.stream(body)
    check(r.status == 200, "status %d", r.status)
    time.sleep(0.3)
    c = env.counts()
    check(c["onprem-vllm"] == 1 and sum(c.values()) == 1,
          "a broken stream was retried: %s", c)
