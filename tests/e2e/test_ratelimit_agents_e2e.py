"""Coding-agent traffic under a token limit through the real app (issue 11), driven by the Anthropic
SDK as Claude Code drives it: `max_tokens: 32000`, a prompt of about a thousand tokens, small real
answers. Under 20k tokens a minute it gets the calls 20k allows, on the memory:// and the redis://
store, and each answer and the 429 carry rate-limit headers that agree with each other."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest
from tests.e2e.test_ratelimit_admission import rfc3339_in, seconds_of
from tests.support.fakes.fixtures.anthropic_wire import message_json, usage_wire
from tests.support.governance_env import start_env

pytest_plugins = ["tests.support.redis_service"]  # redis_url: a key prefix of the test's own on the real Redis

REAL = {"input_tokens": 1000, "output_tokens": 300, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0,
        "reasoning_tokens": 0}
SYSTEM = "You are a coding agent. " * 165  # ~4,000 characters: about a thousand tokens


@pytest.fixture(params=["memory", "redis"])
def store_url(request: pytest.FixtureRequest) -> str:
    return "memory://" if request.param == "memory" else str(request.getfixturevalue("redis_url"))


def answer(request: dict[str, Any]) -> dict[str, Any]:
    return {**message_json(request), "usage": usage_wire(REAL)}


async def test_claude_code_gets_the_calls_a_20k_token_limit_allows(gateway, fakes, store_url):
    env = await start_env(gateway, fakes, f"""
rate_limit_store: {{url: "{store_url}"}}
rate_limits:
  - {{key: user_default, requests_per_minute: 30, tokens_per_minute: 20000}}
""")
    request = {"model": "claude", "max_tokens": 32000, "system": SYSTEM,
               "messages": [{"role": "user", "content": "Fix the failing test in tests/test_app.py"}]}
    for _ in range(20):  # the upstream's own rate-limit headers, which sidegate's replace
        fakes["anthropic"].reply(json=answer(request), headers={"Anthropic-Ratelimit-Tokens-Limit": "4000000"})
    client = env.anthropic()
    admitted = 0
    with pytest.raises(anthropic.RateLimitError) as info:
        for _ in range(20):
            raw = await client.messages.with_raw_response.create(**request, timeout=30)
            admitted += 1
            headers = raw.headers
            assert headers.get_list("anthropic-ratelimit-tokens-limit") == ["20000"]
            assert headers["anthropic-ratelimit-requests-remaining"] == str(30 - admitted)
            assert 58 <= rfc3339_in(headers["anthropic-ratelimit-tokens-reset"]) <= 61
            assert headers["x-ratelimit-reset-requests"] == "1m0s"
            await env.row(headers["x-sidegate-request-id"])
            await env.settled()
    need = (len(fakes["anthropic"].received[0].body) + 3) // 4  # sidegate's input estimate of that body
    assert 950 <= need <= 1100
    assert admitted == (20000 - need) // 1300 + 1 == 15  # what 20k allows at 1300 a call, not 1
    assert [r.json()["max_tokens"] for r in fakes["anthropic"].received] == [32000] * admitted  # unchanged
    refused = info.value.response
    left = 20000 - admitted * 1300
    assert refused.headers["anthropic-ratelimit-tokens-remaining"] == str(left)
    assert refused.headers["anthropic-ratelimit-input-tokens-remaining"] == str(left)
    assert refused.headers["x-ratelimit-remaining-tokens"] == str(left)
    assert left < need
    retry_after = int(refused.headers["retry-after"])
    assert 59 <= retry_after <= 60  # the first call's 1300 leave the window a minute after it
    assert retry_after - 1 <= seconds_of(refused.headers["x-ratelimit-reset-tokens"]) <= 60
    error = info.value.body["error"]  # type: ignore[index]
    assert error["type"] == "rate_limit_error"
    assert f"user_default: 20000 tokens per minute ({left} left, this request's input needs about {need})" \
        in error["message"]
    rows = await env.gw.rows()
    assert [row["status_code"] for row in rows] == [200] * admitted + [429]
    assert rows[-1]["error_code"] == "rate_limit_exceeded"
