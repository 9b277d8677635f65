"""Per-phase upstream timeouts through the real app: connecting (`connect_timeout_s`), waiting for
the answer's first byte (`timeout_s`) and the silence between two stream chunks (`idle_timeout_s`)
each fire on their own setting, with the other two set far out of reach. The first two happen
before anything reached the caller, so the next destination answers; an idle stream has already
started, so the caller's stream ends with an error event and the row says why.

No durations are asserted: each call runs under a watchdog far shorter than the settings that must
not fire, so a timeout taken from the wrong setting fails the test instead of passing slowly."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest
from tests.support.fakes import DEFAULT_TEXT, FakeUpstream, blackhole
from tests.support.gateway import GatewayFactory
from tests.support.sdk_clients import close_sdk_clients, oai  # noqa: F401  (fixture)

HI = [{"role": "user", "content": "hi"}]
FAR = 60  # a setting that must not be the one that fires
WATCHDOG_S = 15


def policy(first_url: str, fallback: FakeUpstream, *, connect: float = FAR, first_byte: float = FAR,
           idle: float = FAR) -> str:
    return f"""
        providers:
          first: {{kind: openai, base_url: '{first_url}', api_key: up}}
          second: {{kind: openai, base_url: '{fallback.base_url}', api_key: up}}
        models:
          gpt:
            destinations: [{{provider: first}}]
            fallbacks: [{{provider: second}}]
            connect_timeout_s: {connect}
            timeout_s: {first_byte}
            idle_timeout_s: {idle}
    """


async def chat(base: str, stream: bool) -> str:
    async with asyncio.timeout(WATCHDOG_S):
        client = oai(base)
        if not stream:
            done = await client.chat.completions.create(model="gpt", messages=HI)  # type: ignore[arg-type]
            return done.choices[0].message.content or ""
        chunks = await client.chat.completions.create(model="gpt", messages=HI, stream=True)  # type: ignore[arg-type]
        return "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])


def reasons(row: dict[str, Any]) -> list[tuple[str, int | None, str]]:
    return [(a["destination"], a["status"], a["reason"]) for a in row["routing_information"]]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_connect_timeout_falls_back(gateway: GatewayFactory, fake_upstream: Any, stream: bool) -> None:
    fallback = await fake_upstream("openai")
    with blackhole() as url:
        gw = await gateway(policy(url + "/v1", fallback, connect=0.2))
        assert await chat(gw.base, stream) == DEFAULT_TEXT
    row = await gw.row()
    assert reasons(row) == [("first", None, "connect_timeout"), ("second", 200, "ok")]
    assert (row["status_code"], row["destination_name"], row["error_code"]) == (200, "second", None)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_first_byte_timeout_falls_back(gateway: GatewayFactory, fake_upstream: Any, stream: bool) -> None:
    first, fallback = await fake_upstream("openai"), await fake_upstream("openai")
    gw = await gateway(policy(first.base_url, fallback, first_byte=0.2))
    first.reply(hang=True)  # connected, request read, no status line ever
    assert await chat(gw.base, stream) == DEFAULT_TEXT
    assert len(first.received) == 1
    assert reasons(await gw.row()) == [("first", None, "first_byte_timeout"), ("second", 200, "ok")]


async def test_a_whole_answer_stalling_mid_body_falls_back(gateway: GatewayFactory, fake_upstream: Any) -> None:
    """For an answer read whole, `timeout_s` bounds all of it: headers and half a body, then
    silence, is a timeout before anything reached the caller."""
    first, fallback = await fake_upstream("openai"), await fake_upstream("openai")
    gw = await gateway(policy(first.base_url, fallback, first_byte=0.3))
    first.reply(sse=[b'{"id": "chatcmpl-1", ', b'"choices": []}'], headers={"Content-Type": "application/json"},
                hang_after=1)
    assert await chat(gw.base, stream=False) == DEFAULT_TEXT
    assert reasons(await gw.row()) == [("first", None, "first_byte_timeout"), ("second", 200, "ok")]


async def test_first_byte_timeout_on_the_last_destination_is_a_504(
        gateway: GatewayFactory, fake_upstream: Any) -> None:
    first, fallback = await fake_upstream("openai"), await fake_upstream("openai")
    gw = await gateway(policy(first.base_url, fallback, first_byte=0.2))
    first.error(503)
    fallback.reply(hang=True)
    with pytest.raises(openai.APIStatusError) as caught:
        await chat(gw.base, stream=True)
    assert caught.value.status_code == 504 and caught.value.message.endswith(
        "all 2 destinations failed: first (HTTP 503), second (no answer within 0.2 s)")
    row = await gw.row()
    assert reasons(row) == [("first", 503, "retryable_status"), ("second", None, "first_byte_timeout")]
    assert (row["status_code"], row["error_code"]) == (504, "upstream_timeout")


async def test_idle_timeout_ends_a_started_stream_with_an_error(gateway: GatewayFactory, fake_upstream: Any) -> None:
    first, fallback = await fake_upstream("openai"), await fake_upstream("openai")
    gw = await gateway(policy(first.base_url, fallback, idle=0.2))
    first.reply(hang_after=2)  # the role chunk and the first text delta, then silence
    seen: list[str] = []
    with pytest.raises(openai.APIError) as caught:
        async with asyncio.timeout(WATCHDOG_S):
            chunks = await oai(gw.base).chat.completions.create(model="gpt", messages=HI, stream=True)  # type: ignore[arg-type]
            async for chunk in chunks:
                seen.append(chunk.choices[0].delta.content or "" if chunk.choices else "")
    assert "".join(seen) == "Hello" and caught.value.message == "the stream from 'first' broke off: no data for 0.2 s"
    assert fallback.received == []  # the caller already had bytes: no fallback
    row = await gw.row()
    assert reasons(row) == [("first", 200, "idle_timeout")]
    assert (row["status_code"], row["error_code"], row["tokens_estimated"]) == (200, "upstream_idle_timeout", True)


async def test_idle_timeout_right_after_the_headers(gateway: GatewayFactory, fake_upstream: Any) -> None:
    """The silence starts with the first piece read along with the headers: the idle setting
    applies from there, not the first-byte one."""
    first, fallback = await fake_upstream("openai"), await fake_upstream("openai")
    gw = await gateway(policy(first.base_url, fallback, idle=0.2))
    first.reply(hang_after=1)
    with pytest.raises(openai.APIError):
        await chat(gw.base, stream=True)
    assert (await gw.row())["error_code"] == "upstream_idle_timeout"


async def test_a_slow_but_steady_stream_is_not_idle(gateway: GatewayFactory, fake_upstream: Any) -> None:
    first, fallback = await fake_upstream("openai"), await fake_upstream("openai")
    gw = await gateway(policy(first.base_url, fallback, first_byte=1.0, idle=1.0))
    first.reply(chunk_delay_s=0.1)  # every gap well inside idle_timeout_s, the whole stream too
    assert await chat(gw.base, stream=True) == DEFAULT_TEXT
    row = await gw.row()
    assert (row["error_code"], reasons(row)) == (None, [("first", 200, "ok")])


async def test_a_stream_silent_after_its_headers_falls_back(gateway: GatewayFactory, fake_upstream: Any) -> None:
    """The headers, then no event within idle_timeout_s: nothing has reached the caller yet (the
    attempt reads the first event), so the fallback answers."""
    first, fallback = await fake_upstream("openai"), await fake_upstream("openai")
    gw = await gateway(policy(first.base_url, fallback, idle=0.2))
    first.reply(hang_after=0)
    assert await chat(gw.base, stream=True) == DEFAULT_TEXT
    row = await gw.row()
    assert reasons(row) == [("first", None, "first_byte_timeout"), ("second", 200, "ok")]
    assert row["routing_information"][0]["error"] == "no data for 0.2 s"
