"""Token rate limits through the real app: each request reserves its estimate before the upstream
call and is settled with the real usage after it (JSON answers and streams of every family, a
stream the caller abandons half way), as the x-ratelimit-*-tokens headers of the next request show."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from tests.support.fakes import DEFAULT_USAGE, default_sse, sse_data
from tests.support.governance_env import (
    ANTHROPIC,
    FAMILIES,
    FAMILY_IDS,
    KEYS,
    OPENAI,
    answer_text,
    settled_call,
    start_env,
    tokens_left,
)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("family", FAMILIES, ids=FAMILY_IDS)
async def test_reservation_is_settled_with_the_real_usage(gateway, fakes, family, stream):
    env = await start_env(gateway, fakes, """
rate_limits:
  - {key: user_default, tokens_per_minute: 100000}
""")
    first = await settled_call(env, family, stream)
    estimate = 100000 - tokens_left(first)
    assert estimate >= 64 if family is ANTHROPIC else estimate >= 1024  # the output allowance is reserved
    row = await env.row(first.request_id)
    assert row["tokens_estimated"] is False and row["total_tokens"] > 0
    if family is OPENAI:
        assert row["total_tokens"] == DEFAULT_USAGE["openai.chat"]["total_tokens"]
    second = await settled_call(env, family, stream)
    # the same body reserves the same estimate; what the first request left behind is its real usage
    assert tokens_left(first) - tokens_left(second) == row["total_tokens"]


def input_need(body: dict[str, Any]) -> int:
    """The input estimate sidegate makes of this body as the test client sends it (JSON, a token per 4 bytes)."""
    return (len(json.dumps(body).encode()) + 3) // 4


async def test_the_expectation_is_held_while_the_call_runs_and_given_back_after(gateway, fakes):
    env = await start_env(gateway, fakes, """
rate_limits:
  - {key: user_default, tokens_per_minute: 1500}
""")
    fakes["openai"].reply(sse=[sse_data({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt",
                                         "choices": [{"index": 0, "delta": {"content": f"w{i} "},
                                                      "finish_reason": None}]}) for i in range(20)]
                          + [b"data: [DONE]\n\n"], chunk_delay_s=0.05)
    body = {**OPENAI.body, "stream": True}
    need = input_need(body)
    async with aiohttp.ClientSession() as http, http.post(
            env.url(OPENAI.path), json=body, headers={"Authorization": f"Bearer {KEYS['alice']}"}) as streaming:
        assert streaming.status == 200
        # no max_tokens: the default output cap, bounded by half of what was left after the input
        held = 1500 - tokens_left(streaming)
        assert held == need + min(1024, (1500 - need) // 2)
        await streaming.content.readline()
        # while the stream runs its expectation is held: a prompt larger than what is left is refused...
        big = {**OPENAI.body, "messages": [{"role": "user", "content": "x" * 4 * tokens_left(streaming)}]}
        refused = await env.post(OPENAI, "alice", body=big)
        code, message = refused.error()
        assert (code, "user_default: 1500 tokens per minute" in message) == ("rate_limit_exceeded", True)
        assert f"{tokens_left(streaming)} left, this request's input needs about {input_need(big)}" in message
        assert int(refused.headers["x-ratelimit-remaining-tokens"]) == tokens_left(streaming) < input_need(big)
        assert 59 <= int(refused.headers["retry-after"]) <= 60  # the stream's entry leaves the window then
        # ...but a small call runs alongside it
        beside = await env.post(OPENAI, "alice")
        assert beside.status == 200 and tokens_left(beside) < tokens_left(streaming)
        await streaming.read()
    row = await env.row(streaming.headers["x-sidegate-request-id"])
    await env.row(beside.request_id)
    await env.settled()
    assert row["status_code"] == 200
    # settled with the real count: the next request (the same body) reserves what it did, less what the two used
    after = await env.post(OPENAI, "alice", body=body)
    assert after.status == 200
    left = 1500 - row["total_tokens"] - (await env.row(beside.request_id))["total_tokens"]
    assert tokens_left(after) == left - need - min(1024, (left - need) // 2)


async def test_an_output_cap_above_the_whole_limit_is_admitted(gateway, fakes):
    env = await start_env(gateway, fakes, """
rate_limits:
  - {key: user_default, tokens_per_minute: 1500}
""")
    body = {**OPENAI.body, "max_completion_tokens": 32000}
    answers = []
    for _ in range(3):  # never refused for its max_tokens: each is settled with its small real usage
        answers.append(await env.post(OPENAI, body=body))
        assert answers[-1].status == 200, answers[-1].body
        await env.row(answers[-1].request_id)
        await env.settled()
    assert [r.json()["max_completion_tokens"] for r in fakes["openai"].received] == [32000] * 3  # sent unchanged
    used = [(await env.row(a.request_id))["total_tokens"] for a in answers]
    # the third found the first two's real usage and reserved its input plus half of the room after it
    room = 1500 - used[0] - used[1] - input_need(body)
    assert tokens_left(answers[2]) == room - room // 2


async def test_a_stream_the_caller_abandons_is_settled_with_what_was_streamed(gateway, fakes):
    env = await start_env(gateway, fakes, """
rate_limits:
  - {key: user_default, tokens_per_minute: 100000}
""")
    words = [sse_data({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt",
                       "choices": [{"index": 0, "delta": {"content": "word " * 20}, "finish_reason": None}]})
             for _ in range(40)]
    fakes["openai"].reply(sse=[*words, b"data: [DONE]\n\n"], chunk_delay_s=0.05)
    body = {**OPENAI.body, "stream": True}
    async with aiohttp.ClientSession() as http:
        streaming = await http.post(env.url(OPENAI.path), json=body,
                                    headers={"Authorization": f"Bearer {KEYS['alice']}"})
        assert streaming.status == 200
        for _ in range(4):
            assert (await streaming.content.readline()).startswith(b"data: ")
            await streaming.content.readline()
        request_id = streaming.headers["x-sidegate-request-id"]
        reserved_left = tokens_left(streaming)
        streaming.close()  # the caller goes away mid-stream
    row = await env.row(request_id)
    await env.settled()
    assert (row["status_code"], row["error_code"], row["tokens_estimated"]) == (499, "client_disconnected", True)
    assert row["output_tokens"] > 0 and row["total_tokens"] > row["output_tokens"]
    assert len(fakes["openai"].received) == 1
    after = await env.post(OPENAI, "alice", body=body)
    assert after.status == 200
    assert reserved_left - tokens_left(after) == row["total_tokens"]


async def test_requests_and_tokens_limits_together_the_stricter_wins(gateway, fakes):
    env = await start_env(gateway, fakes, """
rate_limits:
  - {key: user_default, requests_per_minute: 3, tokens_per_minute: 1500}
""")
    await settled_call(env, OPENAI, False, "bob")
    big = await env.post(OPENAI, "bob", body={**OPENAI.body, "messages": [{"role": "user", "content": "x" * 6000}]})
    assert "user_default: 1500 tokens per minute" in big.error()[1]  # its input needs more than is left
    assert big.headers["x-ratelimit-limit-tokens"] == "1500"
    for _ in range(2):  # a refusal takes nothing: the other two requests still fit
        await settled_call(env, OPENAI, False, "bob")
    refused = await env.post(OPENAI, "bob")
    assert "user_default: 3 requests per minute" in refused.error()[1]
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert len(fakes["openai"].received) == 3


GUARDED = """
rate_limits:
  - {key: user_default, tokens_per_minute: 100000}
guardrails:
  - {name: no-secrets, phase: both, detect: [secrets], action: block}
"""
GHP = "ghp_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z5A"


async def test_a_request_blocked_before_the_upstream_gives_its_tokens_back(gateway, fakes):
    env = await start_env(gateway, fakes, GUARDED)
    blocked = await env.post(OPENAI, body={"model": "gpt", "messages": [{"role": "user", "content": f"use {GHP}"}]})
    assert blocked.error("openai", 400)[0] == "input_guardrail_triggered"
    assert blocked.headers["x-ratelimit-limit-tokens"] == "100000"  # the refusal carries the headers too
    estimate = 100000 - tokens_left(blocked)
    await env.row(blocked.request_id)
    await env.settled()
    again = await env.post(OPENAI, body={"model": "gpt", "messages": [{"role": "user", "content": f"use {GHP}"}]})
    assert 100000 - tokens_left(again) == estimate  # the first one's estimate was given back in full
    assert env.upstream_calls() == 0


async def test_a_stream_cut_by_an_output_block_is_charged_an_estimate(gateway, fakes, monkeypatch):
    answer_text(["Your token is ", GHP[:10], GHP[10:], " and more text", " after it."], monkeypatch)
    env = await start_env(gateway, fakes, GUARDED)
    # one event at a time, so the block stops the relay before the final usage arrives
    fakes["anthropic"].reply(sse=default_sse("anthropic", "messages", {"model": "claude"}), chunk_delay_s=0.02)
    body = {**ANTHROPIC.body, "stream": True}
    blocked = await env.post(ANTHROPIC, body=body)
    assert blocked.status == 200 and b"output_guardrail_triggered" in blocked.body
    row = await env.row(blocked.request_id)
    await env.settled()
    assert (row["error_code"], row["tokens_estimated"]) == ("output_guardrail_triggered", True)
    assert row["output_tokens"] > 1  # more than message_start's placeholder count: what was generated
    after = await env.post(ANTHROPIC, body=body)
    assert tokens_left(blocked) - tokens_left(after) == row["total_tokens"]
