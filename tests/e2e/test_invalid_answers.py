"""Answers a destination sends that are not its API, through the real app and each caller's
official SDK: an HTML page on a 200, JSON cut short inside valid framing, JSON that is not an
object, a wrong content type, a stream line that is not SSE, an event whose data is not JSON, a
stream that ends without its terminal event.

Before the caller got a byte this is a failure of the destination like a 5xx: the fallback answers,
the breaker counts it, the usage row says `invalid_response`; with no fallback left the caller gets
a 502 `upstream_invalid_response` in its own shape, naming what was wrong. After the first byte the
caller's stream ends with its format's error event (the SDK raises), never with the broken bytes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import aiohttp
import anthropic
import openai
import orjson
import pytest
from google.genai import errors as genai_errors
from tests.e2e.test_stream_failures import CALLERS, FIRST_TEXT_AT, HI, Caller
from tests.support.fakes import DEFAULT_TEXT, FakeUpstream, default_sse
from tests.support.gateway import KEY, GatewayFactory
from tests.support.sdk_clients import claude, close_sdk_clients, gemini, oai  # noqa: F401  (fixture)

from sidegate.formats.sse import SSESplitter

SDK_ERRORS = (openai.APIError, anthropic.APIError, genai_errors.APIError)
JSON = {"Content-Type": "application/json"}
HTML = {"Content-Type": "text/html; charset=utf-8"}
PAGE = b"<html><body><h1>502 Bad Gateway</h1><p>nginx</p></body></html>"


@dataclass(frozen=True)
class Break:
    name: str
    words: str  # what the attempt's `error` and the caller's 502 say about it
    reply: dict[str, Any] = field(default_factory=dict)  # FakeUpstream.reply arguments


WHOLE = [
    Break("html-page", "text/html where JSON was expected", {"body": PAGE, "headers": HTML}),
    Break("truncated-json", "a body that is not valid JSON",
          {"body": b'{"id": "chatcmpl-1", "object": "chat.completion", "choices": [{"index": 0, "mess',
           "headers": JSON}),
    Break("not-an-object", "JSON that is not an object", {"body": b'["not", "an", "object"]', "headers": JSON}),
]
STREAM_START = [
    Break("html-page", "text/html where an event stream was asked for", {"body": PAGE, "headers": HTML}),
    Break("json", "application/json where an event stream was asked for", {"body": b'{"id": "x"}', "headers": JSON}),
    Break("not-sse", "a line that is not server-sent events", {"sse": [b"<html>\n<body>busy</body>\n</html>\n\n"]}),
    Break("data-not-json", "an event whose data is not JSON", {"sse": [b'data: {"id": "chatcmpl-1", "cho\n\n']}),
    Break("data-not-an-object", "an event whose data is not a JSON object", {"sse": [b"data: 42\n\n"]}),
    Break("empty", "the stream ended without", {"sse": []}),
]
NOT_SSE = b"<html><body>upstream busy</body></html>\n\n"
NOT_JSON = b'data: {"type": "content_block_delta", "delta": {"te\n\n'
MID_STREAM = [
    Break("not-sse", "a line that is not server-sent events"),
    Break("data-not-json", "an event whose data is not JSON"),
    Break("no-terminal-event", "the stream ended without"),
]


async def start(gateway: GatewayFactory, fake_upstream: Any, kind: str, apis_: list[str] | None = None
                ) -> tuple[Any, FakeUpstream, FakeUpstream]:
    """`m` goes to dest, then spare (one failure opens dest's breaker); `solo` has dest alone."""
    dest, spare = await fake_upstream(kind), await fake_upstream(kind)
    narrowed = f", apis: [{', '.join(apis_)}]" if apis_ else ""
    gw = await gateway(f"""
        providers:
          dest: {{kind: {kind}, base_url: '{dest.base_url}', api_key: up{narrowed}}}
          spare: {{kind: {kind}, base_url: '{spare.base_url}', api_key: up{narrowed}}}
        models:
          m:
            destinations: [{{provider: dest, model: m-dest}}]
            fallbacks: [{{provider: spare, model: m-spare}}]
            circuit_breaker: {{failures: 1, cooldown_s: 600}}
          solo: {{destinations: [{{provider: dest, model: m-solo}}]}}
    """)
    return gw, dest, spare


async def ask_whole(caller: Caller, base: str, model: str) -> str:
    if caller.name == "openai-chat":
        done = await oai(base).chat.completions.create(model=model, messages=HI)  # type: ignore[arg-type]
        return done.choices[0].message.content or ""
    if caller.name == "openai-responses":
        return (await oai(base).responses.create(model=model, input="hi")).output_text
    if caller.name == "anthropic":
        message = await claude(base).messages.create(model=model, max_tokens=20, messages=HI)  # type: ignore[arg-type]
        return "".join(getattr(block, "text", "") for block in message.content)
    return (await gemini(base).models.generate_content(model=model, contents="hi")).text or ""


async def ask_stream(caller: Caller, base: str, model: str) -> tuple[str, Exception | None]:
    try:
        return await caller.read(base, model)
    except SDK_ERRORS as err:  # raised before the first event (a Responses stream's creation)
        return "", err


def status_of(err: Exception) -> int | None:
    return err.code if isinstance(err, genai_errors.APIError) else getattr(err, "status_code", None)


def route(row: dict[str, Any]) -> list[tuple[str, int | None, str]]:
    return [(a["destination"], a["status"], a["reason"]) for a in row["routing_information"]]


async def check_breaker_counted(caller: Caller, gw: Any, dest: FakeUpstream) -> None:
    """One failure opens dest's breaker here: the next request skips it."""
    sent = len(dest.received)
    assert await ask_whole(caller, gw.base, "m") == DEFAULT_TEXT
    assert len(dest.received) == sent
    assert route(await gw.row()) == [("dest", None, "circuit_open"), ("spare", 200, "ok")]


def ids(items: list[Any]) -> list[str]:
    return [item.name for item in items]


# ---------------------------------------------------------------- whole answers


@pytest.mark.parametrize("brk", WHOLE, ids=ids(WHOLE))
@pytest.mark.parametrize("caller", CALLERS, ids=ids(CALLERS))
async def test_an_invalid_whole_answer_falls_back(
        gateway: GatewayFactory, fake_upstream: Any, caller: Caller, brk: Break) -> None:
    gw, dest, spare = await start(gateway, fake_upstream, caller.native)
    dest.reply(**brk.reply)
    assert await ask_whole(caller, gw.base, "m") == DEFAULT_TEXT
    row = await gw.row()
    assert route(row) == [("dest", 200, "invalid_response"), ("spare", 200, "ok")]
    assert row["routing_information"][0]["error"] == f"invalid answer: {brk.words}"
    assert (row["status_code"], row["error_code"], row["destination_model"]) == (200, None, "m-spare")
    assert spare.last.json().get("model", "m-spare") == "m-spare"
    await check_breaker_counted(caller, gw, dest)


@pytest.mark.parametrize("brk", WHOLE, ids=ids(WHOLE))
@pytest.mark.parametrize("caller", CALLERS, ids=ids(CALLERS))
async def test_an_invalid_whole_answer_from_the_last_destination_is_a_502(
        gateway: GatewayFactory, fake_upstream: Any, caller: Caller, brk: Break) -> None:
    gw, dest, _ = await start(gateway, fake_upstream, caller.native)
    dest.reply(**brk.reply)
    with pytest.raises(SDK_ERRORS) as caught:
        await ask_whole(caller, gw.base, "solo")
    assert status_of(caught.value) == 502
    assert f"destination dest (invalid answer: {brk.words}) failed" in str(caught.value)
    assert b"nginx" not in orjson.dumps(str(caught.value))  # the page itself is not relayed
    row = await gw.row()
    assert (row["status_code"], row["error_code"]) == (502, "upstream_invalid_response")
    assert route(row) == [("dest", 200, "invalid_response")]


# ---------------------------------------------------------------- streams broken before the first byte


@pytest.mark.parametrize("brk", STREAM_START, ids=ids(STREAM_START))
@pytest.mark.parametrize("caller", CALLERS, ids=ids(CALLERS))
async def test_a_stream_broken_before_its_first_byte_falls_back(
        gateway: GatewayFactory, fake_upstream: Any, caller: Caller, brk: Break) -> None:
    gw, dest, spare = await start(gateway, fake_upstream, caller.native)
    dest.reply(**brk.reply)
    text, error = await ask_stream(caller, gw.base, "m")
    assert (text, error, len(spare.received)) == (DEFAULT_TEXT, None, 1)
    row = await gw.row()
    assert route(row) == [("dest", 200, "invalid_response"), ("spare", 200, "ok")]
    assert row["routing_information"][0]["error"].startswith(f"invalid answer: {brk.words}")
    assert (row["status_code"], row["error_code"], row["streaming"]) == (200, None, True)
    await check_breaker_counted(caller, gw, dest)


@pytest.mark.parametrize("brk", STREAM_START, ids=ids(STREAM_START))
@pytest.mark.parametrize("caller", CALLERS, ids=ids(CALLERS))
async def test_a_stream_broken_before_its_first_byte_on_the_last_destination_is_a_502(
        gateway: GatewayFactory, fake_upstream: Any, caller: Caller, brk: Break) -> None:
    gw, dest, _ = await start(gateway, fake_upstream, caller.native)
    dest.reply(**brk.reply)
    text, error = await ask_stream(caller, gw.base, "solo")
    assert text == "" and error is not None and status_of(error) == 502, error
    assert f"destination dest (invalid answer: {brk.words}" in str(error)
    row = await gw.row()
    assert (row["status_code"], row["error_code"]) == (502, "upstream_invalid_response")
    assert route(row) == [("dest", 200, "invalid_response")]


# ---------------------------------------------------------------- streams broken after the first byte


def broken_stream(caller: Caller, kind: str, translated: bool, brk: Break) -> list[bytes]:
    """The destination's default stream, broken after the event that carries the first text."""
    native_responses = caller.name == "openai-responses" and not translated
    api = "responses" if native_responses else {"openai": "chat", "anthropic": "messages", "gemini": "generate"}[kind]
    events = default_sse(kind, api, model="m-dest")  # type: ignore[arg-type]
    keep = FIRST_TEXT_AT["responses" if native_responses else kind]
    if brk.name == "not-sse":
        return [*events[:keep], NOT_SSE, *events[keep:]]
    if brk.name == "data-not-json":
        return [*events[:keep], NOT_JSON, *events[keep:]]
    return events[:-2] if api == "chat" else events[:-1]  # chat: the finish chunk and [DONE]


@pytest.mark.parametrize("translated", [False, True], ids=["native", "translated"])
@pytest.mark.parametrize("brk", MID_STREAM, ids=ids(MID_STREAM))
@pytest.mark.parametrize("caller", CALLERS, ids=ids(CALLERS))
async def test_a_stream_broken_after_its_first_byte_ends_with_the_callers_error_event(
        gateway: GatewayFactory, fake_upstream: Any, caller: Caller, brk: Break, translated: bool) -> None:
    kind = caller.other if translated else caller.native
    gw, dest, spare = await start(gateway, fake_upstream, kind, caller.other_apis if translated else None)
    dest.reply(sse=broken_stream(caller, kind, translated, brk), chunk_delay_s=0.05)
    text, error = await ask_stream(caller, gw.base, "m")
    assert error is not None, f"{caller.name} saw a clean end"
    assert text.startswith("Hello") and "upstream" not in text
    assert spare.received == [], "no fallback once the caller had bytes"
    row = await gw.row()
    assert (row["status_code"], row["error_code"], row["streaming"]) == (200, "upstream_invalid_response", True)
    assert route(row) == [("dest", 200, "invalid_response")]
    assert row["routing_information"][0]["error"].startswith(brk.words)
    assert row["tokens_estimated"] is True, "the usage seen before the break is partial"
    await check_breaker_counted(caller, gw, dest)


RAW: dict[str, tuple[str, dict[str, Any]]] = {
    "openai-chat": ("/openai/v1/chat/completions", {"model": "solo", "messages": HI, "stream": True}),
    "openai-responses": ("/openai/v1/responses", {"model": "solo", "input": "hi", "stream": True}),
    "anthropic": ("/anthropic/v1/messages", {"model": "solo", "max_tokens": 20, "messages": HI, "stream": True}),
    "gemini": ("/gemini/v1beta/models/solo:streamGenerateContent?alt=sse",
               {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}),
}
# The error event that ends each caller format's stream (its `event:` name, or None for data only).
ENDING: dict[str, list[str | None]] = {
    "openai-chat": [None], "openai-responses": ["error", "response.failed"], "anthropic": ["error"], "gemini": [None]}


@pytest.mark.parametrize("brk", MID_STREAM[:2], ids=ids(MID_STREAM[:2]))
@pytest.mark.parametrize("caller", CALLERS, ids=ids(CALLERS))
async def test_the_broken_bytes_never_reach_the_caller(
        gateway: GatewayFactory, fake_upstream: Any, caller: Caller, brk: Break) -> None:
    gw, dest, _ = await start(gateway, fake_upstream, caller.native)
    events = broken_stream(caller, caller.native, False, brk)
    dest.reply(sse=events, chunk_delay_s=0.05)
    path, body = RAW[caller.name]
    async with aiohttp.ClientSession() as http, http.post(
            gw.base + path, json=body, headers={"Authorization": f"Bearer {KEY}"}) as resp:
        assert resp.status == 200 and resp.headers["x-sidegate-destination"] == "dest/m-solo"
        raw = await resp.read()
    bad = NOT_SSE if brk.name == "not-sse" else NOT_JSON
    keep = events.index(bad)
    assert raw.startswith(b"".join(events[:keep])), "what came before the break passed unchanged"
    ending = SSESplitter().feed(raw[len(b"".join(events[:keep])):])
    assert [ev.event for ev in ending] == ENDING[caller.name], "the error event(s) and nothing else"
    assert b"upstream_invalid_response" in ending[0].data and bad.strip() not in raw
