"""Rate limits through the real app (DESIGN §4), driven by the official SDKs and raw requests against
fake upstreams: refusals in each caller family's shape (429, Retry-After, x-ratelimit-*, the rule
named, the upstream not called, the usage row), the x-ratelimit-* headers of admitted JSON and
streamed answers, and every rule key kind once (service, user_default, user / service_principal
overrides, shared user_group buckets, request_tag with and without a value, `model:` scoping)."""

from __future__ import annotations

import inspect
from typing import Any

import anthropic
import openai
import pytest
from google.genai import errors as genai_errors
from tests.support.governance_env import (
    ANTHROPIC,
    FAMILIES,
    FAMILY_IDS,
    GEMINI,
    OPENAI,
    error_fields,
    sdk_call,
    start_env,
)

ONE_PER_MINUTE = """
rate_limits:
  - {key: user_default, requests_per_minute: 1}
"""


# ---------------------------------------------------------------- refusals in each family's shape


RATE_LIMIT_ERRORS: dict[str, type[Exception]] = {
    "openai": openai.RateLimitError, "anthropic": anthropic.RateLimitError, "gemini": genai_errors.ClientError}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("family", FAMILIES, ids=FAMILY_IDS)
async def test_refusal_is_a_429_the_sdk_raises(gateway, fakes, family, stream):
    env = await start_env(gateway, fakes, ONE_PER_MINUTE)
    assert await sdk_call(env, family, stream) is None
    assert env.upstream_calls() == 1
    err = await sdk_call(env, family, stream)
    assert isinstance(err, RATE_LIMIT_ERRORS[family.name]), repr(err)
    if family is GEMINI:
        assert (err.code, err.status) == (429, "RESOURCE_EXHAUSTED")
        response_headers, body = err.response.headers, {"error": err.details["error"]}
    else:
        assert err.status_code == 429
        response_headers, body = err.response.headers, err.response.json()
    code, message = error_fields(family.name, 429, body)
    assert code == "rate_limit_exceeded"
    assert "user_default: 1 requests per minute" in message
    assert 59 <= int(response_headers["retry-after"]) <= 60
    assert response_headers["x-ratelimit-limit-requests"] == "1"
    assert response_headers["x-ratelimit-remaining-requests"] == "0"
    assert env.upstream_calls() == 1, "a refused request must not reach the upstream"
    row = await env.row(response_headers["x-sidegate-request-id"])
    assert (row["status_code"], row["error_code"], row["requester"]) == (429, "rate_limit_exceeded", "alice")
    assert (row["model_service"], row["streaming"], row["total_tokens"]) == (family.model, stream, 0)
    assert row["destination_name"] is None and row["routing_information"] in ([], None)


async def test_refusal_names_a_named_rule_and_the_tag_value(gateway, fakes):
    env = await start_env(gateway, fakes, """
rate_limits:
  - {key: user_default, requests_per_minute: 1, name: "one per minute each"}
  - {key: request_tag, tag: team, requests_per_minute: 1}
""")
    assert (await env.chat("bob")).status == 200
    _, message = (await env.chat("bob")).error()
    assert "one per minute each: 1 requests per minute" in message
    assert (await env.chat("alice", tags={"team": "search"})).status == 200
    refused = await env.chat("carol", tags={"team": "search"})
    assert "request_tag team (team=search): 1 requests per minute" in refused.error()[1]


# ---------------------------------------------------------------- headers of admitted answers


TIGHTEST = """
rate_limits:
  - {key: user_default, requests_per_minute: 10, tokens_per_minute: 100000}
  - {key: service, model: gpt, requests_per_minute: 4}
  - {key: user_group, principal: ml-platform, tokens_per_minute: 50000}
"""


def limits(headers: Any) -> tuple[int, int, int, int]:
    return (int(headers["x-ratelimit-limit-requests"]), int(headers["x-ratelimit-remaining-requests"]),
            int(headers["x-ratelimit-limit-tokens"]), int(headers["x-ratelimit-remaining-tokens"]))


async def test_admitted_answers_carry_the_tightest_rule_of_each_unit(gateway, fakes):
    env = await start_env(gateway, fakes, TIGHTEST)
    first = await env.chat("bob")
    assert first.status == 200
    req_limit, req_left, tok_limit, tok_left = limits(first.headers)
    # requests: the service cap (4, 3 left) is tighter than bob's default (10, 9 left);
    # tokens: his group's 50000 is tighter than his default's 100000
    assert (req_limit, req_left, tok_limit) == (4, 3, 50000)
    assert 0 < 50000 - tok_left < 2000  # the estimate of a tiny prompt plus the default output allowance
    # another service: the service cap does not apply, so bob's default is the tightest requests rule
    other = await env.chat("bob", model="gpt-mini")
    assert limits(other.headers)[:3] == (10, 8, 50000)
    # alice is in ml-platform and research; research has no rule, so ml-platform's bucket is charged
    assert limits((await env.chat("alice")).headers)[:2] == (4, 2)


async def parsed(raw: Any) -> Any:
    """What an SDK's raw response parses to (a coroutine in some SDK versions, the stream in others)."""
    result = raw.parse()
    return await result if inspect.isawaitable(result) else result


@pytest.mark.parametrize("family", FAMILIES, ids=FAMILY_IDS)
async def test_streamed_answers_carry_the_headers_too(gateway, fakes, family):
    env = await start_env(gateway, fakes, TIGHTEST.replace("model: gpt,", f"model: {family.model},"))
    if family is OPENAI:
        raw = await env.openai("bob").chat.completions.with_raw_response.create(
            model="gpt", messages=[{"role": "user", "content": "hi"}], stream=True)
        chunks = [c async for c in await parsed(raw)]
        assert chunks
    elif family is ANTHROPIC:
        raw = await env.anthropic("bob").messages.with_raw_response.create(
            model="claude", max_tokens=64, messages=[{"role": "user", "content": "hi"}], stream=True)
        events = [e async for e in await parsed(raw)]
        assert events[-1].type == "message_stop"
    else:
        raw = await env.post(family, "bob", path="/gemini/v1beta/models/gem:streamGenerateContent?alt=sse")
        assert raw.status == 200 and raw.headers["content-type"].startswith("text/event-stream")
    assert limits(raw.headers)[:3] == (4, 3, 50000)
    row = await env.last_row()
    assert (row["status_code"], row["streaming"]) == (200, True)


async def test_no_headers_when_no_rule_applies(gateway, fakes):
    env = await start_env(gateway, fakes, """
rate_limits:
  - {key: user, principal: ci-bot, requests_per_minute: 5}
""")
    answer = await env.chat("alice")
    assert answer.status == 200
    assert not [h for h in answer.headers if h.lower().startswith("x-ratelimit-")]
    bot = (await env.chat("bot")).headers
    assert (bot["x-ratelimit-limit-requests"], bot["x-ratelimit-remaining-requests"]) == ("5", "4")
    assert "x-ratelimit-limit-tokens" not in bot  # no rule limits tokens


async def test_sidegate_headers_replace_the_upstream_ones_of_the_same_name(gateway, fakes):
    env = await start_env(gateway, fakes, ONE_PER_MINUTE.replace("}", ", tokens_per_minute: 90000}"))
    fakes["openai"].reply(headers={"X-RateLimit-Limit-Requests": "10000", "x-ratelimit-remaining-requests": "9999",
                                   "X-Ratelimit-Limit-Tokens": "2000000", "x-ratelimit-reset-requests": "6ms"})
    answer = await env.chat("alice")
    assert answer.status == 200
    for name, value in (("x-ratelimit-limit-requests", "1"), ("x-ratelimit-remaining-requests", "0"),
                        ("x-ratelimit-limit-tokens", "90000")):
        assert answer.headers.getall(name) == [value], name


# ---------------------------------------------------------------- every key kind through the app


async def test_service_cap_blocks_everyone_on_that_service_only(gateway, fakes):
    env = await start_env(gateway, fakes, """
rate_limits:
  - {key: service, model: gpt, requests_per_minute: 3}
  - {key: user_default, requests_per_minute: 100}
""")
    assert [(await env.chat(who)).status for who in ("alice", "bob", "bot", "carol")] == [200, 200, 200, 429]
    refused = await env.chat("alice")
    assert "service gpt: 3 requests per minute" in refused.error()[1]
    assert await env.statuses(3, "carol", model="gpt-mini") == [200] * 3
    assert (await env.post(ANTHROPIC, "carol")).status == 200


async def test_user_default_gives_each_principal_a_bucket(gateway, fakes):
    env = await start_env(gateway, fakes, """
rate_limits:
  - {key: user_default, requests_per_minute: 2}
""")
    assert await env.statuses(3, "alice") == [200, 200, 429]
    assert await env.statuses(3, "bob") == [200, 200, 429]
    # one bucket across services: the rule has no model
    assert (await env.post(ANTHROPIC, "alice")).status == 429
    assert (await env.post(GEMINI, "carol")).status == 200


async def test_own_rule_replaces_default_and_group_limits(gateway, fakes):
    env = await start_env(gateway, fakes, """
rate_limits:
  - {key: user_default, requests_per_minute: 1}
  - {key: user_group, principal: ml-platform, requests_per_minute: 1}
  - {key: user_group, principal: research, requests_per_minute: 1}
  - {key: user, principal: alice, requests_per_minute: 4}
  - {key: service_principal, principal: ci-bot, requests_per_minute: 3}
""")
    assert await env.statuses(5, "alice") == [200] * 4 + [429]
    refused = await env.chat("alice")
    assert "user alice: 4 requests per minute" in refused.error()[1]
    assert await env.statuses(4, "bot") == [200] * 3 + [429]
    # alice's own rule took nothing from the group buckets: bob (ml-platform) still has his one request
    assert await env.statuses(2, "bob") == [200, 429]


async def test_group_bucket_is_shared_and_two_groups_refuse_only_when_both_are_empty(gateway, fakes):
    env = await start_env(gateway, fakes, """
rate_limits:
  - {key: user_group, principal: ml-platform, requests_per_minute: 2}
  - {key: user_group, principal: research, requests_per_minute: 1}
""")
    # alice (both groups) uses ml-platform's two requests, then research's one, then is refused
    assert await env.statuses(4, "alice") == [200, 200, 200, 429]
    # both buckets are shared: bob (ml-platform) and carol (research) find them empty
    assert (await env.chat("bob")).status == 429
    refused = await env.chat("carol")
    assert "user_group research: 1 requests per minute" in refused.error()[1]
    # ci-bot is in no limited group: unlimited
    assert await env.statuses(3, "bot") == [200] * 3


async def test_group_members_fill_the_shared_bucket_together(gateway, fakes):
    env = await start_env(gateway, fakes, """
rate_limits:
  - {key: user_group, principal: research, requests_per_minute: 3}
""")
    assert [(await env.chat(who)).status for who in ("carol", "alice", "carol", "alice")] == [200, 200, 200, 429]


async def test_request_tag_with_a_value(gateway, fakes):
    env = await start_env(gateway, fakes, """
rate_limits:
  - {key: request_tag, tag: project, value: chatbot, requests_per_minute: 2}
""")
    chatbot = {"project": "chatbot"}
    assert [(await env.chat(who, tags=chatbot)).status for who in ("alice", "bob", "carol")] == [200, 200, 429]
    assert await env.statuses(3, "carol", tags={"project": "other"}) == [200] * 3
    assert await env.statuses(3, "carol") == [200] * 3  # no tag: the rule does not apply
    refused = await env.chat("bot", tags=chatbot)
    assert "request_tag project=chatbot: 2 requests per minute" in refused.error()[1]


async def test_request_tag_without_a_value_has_a_bucket_per_value(gateway, fakes):
    env = await start_env(gateway, fakes, """
rate_limits:
  - {key: request_tag, tag: team, requests_per_minute: 1}
tags: {stamp: {env: ci}}
""")
    assert [(await env.chat(who, tags={"team": "a"})).status for who in ("alice", "bob")] == [200, 429]
    assert (await env.chat("bob", tags={"team": "b"})).status == 200
    assert (await env.chat("bob", tags={"project": "a"})).status == 200
    row = await env.last_row()
    assert row["request_tags"] == {"project": "a", "env": "ci"}


async def test_stamped_tags_count_for_tag_rules(gateway, fakes):
    env = await start_env(gateway, fakes, """
rate_limits:
  - {key: request_tag, tag: app, value: my-app, requests_per_minute: 2}
tags: {stamp: {app: my-app}}
""")
    # callers cannot escape a stamped tag's bucket by sending another value
    assert [(await env.chat(who, tags={"app": "spoofed"})).status for who in ("alice", "bob", "carol")] == [
        200, 200, 429]


async def test_model_scoped_rules_apply_to_matching_services_with_a_bucket_each(gateway, fakes):
    env = await start_env(gateway, fakes, """
rate_limits:
  - {key: user_default, model: "gpt*", requests_per_minute: 1}
  - {key: user_default, model: claude, requests_per_minute: 2}
""")
    assert await env.statuses(2, "alice", model="gpt") == [200, 429]
    assert await env.statuses(2, "alice", model="gpt-mini") == [200, 429]  # a bucket per matching service
    refused = await env.chat("alice", model="gpt-mini")
    assert "user_default (model gpt*): 1 requests per minute" in refused.error()[1]
    assert [(await env.post(ANTHROPIC, "alice")).status for _ in range(3)] == [200, 200, 429]
    assert [(await env.post(GEMINI, "alice")).status for _ in range(3)] == [200] * 3  # no rule for gem
    assert await env.statuses(1, "bob", model="gpt") == [200]


async def test_unified_and_native_surfaces_share_the_buckets(gateway, fakes):
    env = await start_env(gateway, fakes, ONE_PER_MINUTE)
    first = await env.post(OPENAI, path="/mlflow/v1/chat/completions")
    assert first.status == 200
    for path in ("/openai/v1/chat/completions", "/codex/v1/chat/completions", "/mlflow/v1/responses"):
        body = {"model": "gpt", "input": "hi"} if path.endswith("responses") else None
        assert (await env.post(OPENAI, body=body, path=path)).status == 429, path
