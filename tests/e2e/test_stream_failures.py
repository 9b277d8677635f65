"""A destination failing after the caller's stream has begun, through the real app and each
caller's official SDK: the stream ends with an error event in the caller's own format (the SDK
raises it or hands it over as an error event), nothing is retried elsewhere, and the usage row
says what happened. Every caller format, against a destination of its own kind (the events pass
through) and of another kind (the events are translated)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anthropic
import openai
import pytest
from google.genai import errors as genai_errors
from tests.support.fakes import FakeUpstream
from tests.support.gateway import GatewayFactory
from tests.support.sdk_clients import claude, close_sdk_clients, gemini, oai  # noqa: F401  (fixture)

from sidegate import apis
from sidegate.upstream.providers import ADAPTERS

CHAT_ONLY = sorted(ADAPTERS["openai"].apis - {apis.OPENAI_RESPONSES, apis.OPENAI_MODELS})
HI = [{"role": "user", "content": "hi"}]


async def read_chat(base: str, model: str = "m") -> tuple[str, Exception | None]:
    text = ""
    try:
        stream = await oai(base).chat.completions.create(model=model, messages=HI, stream=True)  # type: ignore[arg-type]
        async for chunk in stream:
            text += chunk.choices[0].delta.content or "" if chunk.choices else ""
    except openai.APIError as err:
        return text, err
    return text, None


async def read_responses(base: str, model: str = "m") -> tuple[str, Exception | None]:
    """A Responses stream ends with the Responses `error` event (then, when sidegate knows the
    response, `response.failed`); the SDK hands it over as an event rather than raising."""
    text, error, after = "", None, []
    stream = await oai(base).responses.create(model=model, input="hi", stream=True)
    async for event in stream:
        if error is not None:
            after.append(event.type)
        elif event.type == "response.output_text.delta":
            text += event.delta
        elif event.type == "error":
            error = RuntimeError(f"{event.code}: {event.message}")
    assert after in ([], ["response.failed"]), after
    return text, error


async def read_anthropic(base: str, model: str = "m") -> tuple[str, Exception | None]:
    text = ""
    try:
        async with claude(base).messages.stream(model=model, max_tokens=20, messages=HI) as stream:  # type: ignore[arg-type]
            async for piece in stream.text_stream:
                text += piece
    except anthropic.APIError as err:
        return text, err
    return text, None


async def read_gemini(base: str, model: str = "m") -> tuple[str, Exception | None]:
    text = ""
    try:
        async for chunk in await gemini(base).models.generate_content_stream(model=model, contents="hi"):
            text += chunk.text or ""
    except genai_errors.APIError as err:
        return text, err
    return text, None


@dataclass(frozen=True)
class Caller:
    name: str
    read: Callable[..., Awaitable[tuple[str, Exception | None]]]  # (base, model="m")
    native: str  # the destination kind that speaks this format
    other: str  # a destination kind the format is translated to
    other_apis: list[str] | None = None


CALLERS = [
    Caller("openai-chat", read_chat, "openai", "anthropic"),
    Caller("openai-responses", read_responses, "openai", "openai", CHAT_ONLY),
    Caller("anthropic", read_anthropic, "anthropic", "openai"),
    Caller("gemini", read_gemini, "gemini", "anthropic"),
]
# Stream pieces the fakes' default streams take to carry the first text delta ("Hello").
FIRST_TEXT_AT = {"openai": 2, "anthropic": 4, "gemini": 1, "responses": 5}


async def start(gateway: GatewayFactory, fake_upstream: Any, kind: str, apis_: list[str] | None,
                more_policy: str = "") -> tuple[Any, FakeUpstream, FakeUpstream]:
    dest, spare = await fake_upstream(kind), await fake_upstream(kind)
    narrowed = f", apis: [{', '.join(apis_)}]" if apis_ else ""
    gw = await gateway(f"""
        providers:
          dest: {{kind: {kind}, base_url: '{dest.base_url}', api_key: up{narrowed}}}
          spare: {{kind: {kind}, base_url: '{spare.base_url}', api_key: up{narrowed}}}
        models:
          m: {{destinations: [{{provider: dest}}], fallbacks: [{{provider: spare}}], idle_timeout_s: 0.2}}
    """ + more_policy)
    return gw, dest, spare


@pytest.mark.parametrize("translated", [False, True], ids=["native", "translated"])
@pytest.mark.parametrize("how", ["cut", "reset", "idle"])
@pytest.mark.parametrize("caller", CALLERS, ids=[c.name for c in CALLERS])
async def test_failure_after_the_first_byte_ends_the_callers_stream(
        gateway: GatewayFactory, fake_upstream: Any, caller: Caller, how: str, translated: bool) -> None:
    kind = caller.other if translated else caller.native
    gw, dest, spare = await start(gateway, fake_upstream, kind, caller.other_apis if translated else None)
    keep = FIRST_TEXT_AT["responses" if caller.name == "openai-responses" and not translated else kind]
    if how == "idle":
        dest.reply(hang_after=keep)
    else:
        dest.reply(cut_after=keep, reset=how == "reset")
    text, error = await caller.read(gw.base)
    assert error is not None, f"{caller.name} saw a clean end"
    assert text == "Hello", "the text before the failure reached the caller"
    assert spare.received == [], "no fallback once the caller had bytes"
    row = await gw.row()
    expected = "upstream_idle_timeout" if how == "idle" else "upstream_stream_interrupted"
    assert (row["status_code"], row["error_code"], row["streaming"]) == (200, expected, True)
    assert [a["reason"] for a in row["routing_information"]] == ["idle_timeout" if how == "idle" else
                                                                  "stream_interrupted"]
    assert row["destination_type"] == kind
