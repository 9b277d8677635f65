"""Faults of a destination's stream after it began, for every caller format, native and
translated: a cut (FIN or reset), a hang, a line that is not SSE, an event whose data is not
JSON, a stream that ends without its terminal event, and one without usage. Every broken stream
ends with the caller format's own error event, nothing after it and never the broken bytes; the
official SDK raises (or, for Responses, hands over the error event) instead of hanging; the
fallback is not tried once the caller has the answer's head; one usage row per request id and
the process healthy after."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import anthropic
import openai
import orjson
import pytest
from google.genai import errors as genai_errors
from tests.support.fakes import DEFAULT_TEXT, anthropic_wire, sse_data, sse_event
from tests.support.fakes.fault_env import (  # noqa: F401  (fixture)
    ANTHROPIC,
    AUTH,
    CHAT,
    PAIR_IDS,
    PAIRS,
    RESPONSES,
    Caller,
    FaultEnv,
    ends_cleanly,
    ends_with_error_event,
    fault_env,
    reasons,
)
from tests.support.fakes.faulty import CLOSE, HANG, RESET, Part, Request, sse
from tests.support.sdk_clients import claude, close_sdk_clients, gemini, oai  # noqa: F401  (fixture)

pytestmark = pytest.mark.timeout(30)
END = b"0\r\n\r\n"  # the last chunk of a chunked body: the stream ended in good order
NOT_SSE = b"<html><body><h1>502 Bad Gateway</h1></body></html>\n\n"
BAD_JSON = b'data: {"id": "x", "choices": [{"delta": {"content": "lost\n\n'


def keep(req: Request) -> int:
    """How many of the destination's events carry the stream up to its first text ("Hello")."""
    return {"chat": 2, "responses": 5, "messages": 4, "generate": 1}[req.api]


def _strip_usage(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _strip_usage(v) for k, v in obj.items() if k not in ("usage", "usageMetadata")}
    return [_strip_usage(v) for v in obj] if isinstance(obj, list) else obj


def without_usage(events: list[bytes]) -> list[bytes]:
    """The stream with every usage report taken out (an OpenAI-compatible server ignoring
    `stream_options.include_usage`; a Gemini proxy dropping `usageMetadata`)."""
    out = []
    for block in events:
        head, sep, data = block.rpartition(b"data: ")
        payload = data.rstrip(b"\n")
        if payload == b"[DONE]":
            out.append(block)
            continue
        obj = orjson.loads(payload)
        if obj.get("object") == "chat.completion.chunk" and not obj.get("choices"):
            continue  # the usage-only chunk
        out.append(head + sep + orjson.dumps(_strip_usage(obj)) + b"\n\n")
    return out


def provider_error_event(req: Request) -> bytes:
    """The destination's own mid-stream error event (Anthropic's `event: error` overloaded, the
    Responses `error` and `response.failed`, an error object on a chat or Gemini stream): relayed
    or translated, the caller's stream ends with its error event and the row records a failure."""
    if req.kind == "anthropic":
        return anthropic_wire.error_event(529)
    body = orjson.loads(req.error_body(503))
    if req.api == "responses":  # the `error` event, then the response failed
        message = body["error"]["message"]
        failed = {"id": "resp_x", "object": "response", "status": "failed", "output": [],
                  "error": {"code": "server_error", "message": message}}
        return (sse_event("error", {"type": "error", "code": "server_error", "message": message, "param": None,
                                    "sequence_number": 98})
                + sse_event("response.failed", {"type": "response.failed", "sequence_number": 99, "response": failed}))
    return sse_data(body)


def without_terminal(req: Request) -> list[bytes]:
    """The stream with all its text but not the event that says it ended: a chat stream stops
    before its finish_reason (a chat answer is whole at its finish_reason even without [DONE]), a
    Gemini stream's last chunk loses its finishReason, other formats lose their last event."""
    events = req.events()
    if req.api == "chat":
        return events[:next(i for i, e in enumerate(events) if b'"finish_reason":"' in e)]
    if req.api == "generate":
        last = orjson.loads(events[-1][len(b"data: "):])
        del last["candidates"][0]["finishReason"]
        return [*events[:-1], sse_data(last)]
    return events[:-1]


#: The code the usage row takes from each destination's own error event above (Responses:
#: the `error` event's code; chat: the error's type when its code is null).
PROVIDER_ERROR_CODES = {"chat": "server_error", "responses": "server_error", "messages": "overloaded_error",
                        "generate": "UNAVAILABLE"}


@dataclass(frozen=True)
class StreamFault:
    name: str
    script: Callable[[Request], list[Part]]
    code: str | None  # the usage row's error_code; None: any code (the stream's own failure)
    reason: str  # the attempt's routing reason once the stream broke
    broken: bytes | None = None  # bytes that must never reach the caller


STREAM_FAULTS = [
    StreamFault("cut", lambda r: [*sse(r.events()[:keep(r)]), CLOSE], "upstream_stream_interrupted",
                "stream_interrupted"),
    StreamFault("reset", lambda r: [*sse(r.events()[:keep(r)]), RESET], "upstream_stream_interrupted",
                "stream_interrupted"),
    StreamFault("hang", lambda r: [*sse(r.events()[:keep(r)]), HANG], "upstream_idle_timeout", "idle_timeout"),
    StreamFault("not-sse", lambda r: [*sse([*r.events()[:keep(r)], NOT_SSE, *r.events()[keep(r):]]), END],
                "upstream_invalid_response", "invalid_response", b"Bad Gateway"),
    StreamFault("bad-json", lambda r: [*sse([*r.events()[:keep(r)], BAD_JSON, *r.events()[keep(r):]]), END],
                "upstream_invalid_response", "invalid_response", b"lost"),
    StreamFault("provider-error-event",
                lambda r: [*sse([*r.events()[:keep(r)], provider_error_event(r)]), END], None, "stream_error"),
    StreamFault("no-terminal", lambda r: [*sse(without_terminal(r)), END], "upstream_invalid_response",
                "invalid_response"),
]
FAULT_IDS = [f.name for f in STREAM_FAULTS]


@pytest.mark.parametrize("fault", STREAM_FAULTS, ids=FAULT_IDS)
@pytest.mark.parametrize(("caller", "translated"), PAIRS, ids=PAIR_IDS)
async def test_a_broken_stream_ends_with_the_callers_error_event(
        fault_env, caller: Caller, translated: bool, fault: StreamFault) -> None:  # noqa: F811
    env: FaultEnv = await fault_env(caller, translated)
    env.bad.script(fault.script)
    answer = await env.call("mf", True)
    assert answer.status == 200 and answer.headers["Content-Type"].startswith("text/event-stream")
    err = ends_with_error_event(caller, answer.body)
    assert err.get("code") or err.get("type"), err
    if fault.broken is not None:
        assert fault.broken not in answer.body, answer.body
    if fault.name != "no-terminal":
        assert b"Hello" in answer.body, "the text before the failure reached the caller"
    assert env.good.received == [], "no fallback once the caller had the answer's head"
    row = await env.row(answer)
    assert (row["status_code"], row["streaming"], row["destination_name"]) == (200, True, "bad")
    assert row["error_code"] == fault.code if fault.code else row["error_code"], (
        "the row records the stream's failure", row["error_code"], row["status_code"])
    if fault.name == "provider-error-event":
        assert row["error_code"] == PROVIDER_ERROR_CODES[env.bad.received[0].api], row["error_code"]
        assert row["tokens_estimated"], "the usage the failed stream reported is partial"
    assert reasons(row) == [("bad", fault.reason)]
    assert row["routing_information"][0]["error"], row["routing_information"]
    assert env.gw.state.breakers.is_open(("bad", "bad-mf")), "the broken stream counted against the breaker"
    await env.healthy(True)


@pytest.mark.parametrize(("caller", "translated"), PAIRS, ids=PAIR_IDS)
async def test_an_error_event_before_anything_reached_the_caller_falls_back(
        fault_env, caller: Caller, translated: bool) -> None:  # noqa: F811
    """A 200 stream whose first event is the destination's own error event (an overload reported
    once the stream began): the caller has nothing yet, so the fallback answers; with none left
    the caller's stream is that error in its format, and the row records it."""
    env: FaultEnv = await fault_env(caller, translated)
    first_error: Callable[[Request], list[Part]] = lambda r: [*sse([provider_error_event(r)]), END]  # noqa: E731
    env.bad.script(first_error, first_error)
    alone, helped = await asyncio.gather(env.call("m", True), env.call("mf", True))
    code = PROVIDER_ERROR_CODES[env.bad.received[0].api]
    assert alone.status == 200
    ends_with_error_event(caller, alone.body)
    row = await env.row(alone)
    assert (row["error_code"], reasons(row)) == (code, [("bad", "stream_error")]), row
    assert helped.status == 200
    ends_cleanly(caller, helped.body)
    assert b"Hello" in helped.body
    row = await env.row(helped)
    assert (row["error_code"], row["destination_name"]) == (None, "good"), row
    assert reasons(row) == [("bad", "stream_error"), ("good", "ok")]
    assert code in row["routing_information"][0]["error"], row["routing_information"]
    breakers = env.gw.state.breakers
    assert breakers.is_open(("bad", "bad-m")) and breakers.is_open(("bad", "bad-mf")), "both counted as failures"
    await env.healthy(True)


CHAT_DESTINATIONS = [(CHAT, False), (RESPONSES, True), (ANTHROPIC, True)]  # the destination speaks chat


@pytest.mark.parametrize(("caller", "translated"), CHAT_DESTINATIONS, ids=["chat-native", "responses-translated",
                                                                          "anthropic-translated"])
async def test_a_chat_stream_without_done_is_whole_at_its_finish_reason(
        fault_env, caller: Caller, translated: bool) -> None:  # noqa: F811
    """Some OpenAI-compatible servers leave out `data: [DONE]`: the answer is whole at its
    finish_reason (and usage chunk), so it is no failure (unlike `no-terminal` above)."""
    env: FaultEnv = await fault_env(caller, translated)
    env.bad.script(lambda r: [*sse(r.events()[:-1]), END])
    answer = await env.call("m", True)
    assert answer.status == 200 and env.bad.received[0].api == "chat"
    if translated:
        ends_cleanly(caller, answer.body)
    else:  # passed through as the destination sent it
        assert b"[DONE]" not in answer.body and b'"error"' not in answer.body, answer.body
    assert b"the fake" in answer.body
    row = await env.row(answer)
    assert (row["error_code"], row["tokens_estimated"], reasons(row)) == (None, False, [("bad", "ok")]), row
    assert not env.gw.state.breakers.is_open(("bad", "bad-m"))
    await env.healthy(True)


@pytest.mark.parametrize(("caller", "translated"), PAIRS, ids=PAIR_IDS)
async def test_a_stream_without_usage_ends_well_with_estimated_tokens(
        fault_env, caller: Caller, translated: bool) -> None:  # noqa: F811
    env: FaultEnv = await fault_env(caller, translated)
    env.bad.script(lambda r: [*sse(without_usage(r.events())), END])
    answer = await env.call("m", True)
    assert answer.status == 200
    ends_cleanly(caller, answer.body)
    assert b"Hello" in answer.body and b"the fake" in answer.body
    row = await env.row(answer)
    assert (row["status_code"], row["error_code"], row["tokens_estimated"]) == (200, None, True), row
    assert row["input_tokens"] > 0 and row["output_tokens"] > 0, row
    assert not env.gw.state.breakers.is_open(("bad", "bad-m"))
    await env.healthy(True)


# ------------------------------------------------------------------ the official SDKs

async def sdk_stream(caller: Caller, base: str) -> tuple[str, Exception | None]:
    """Read the caller's stream with its SDK: (text seen, the error raised or reported)."""
    text = ""
    try:
        if caller.name == "chat":
            async for chunk in await oai(base).chat.completions.create(
                    model="mf", messages=[{"role": "user", "content": "hi"}], stream=True):
                text += (chunk.choices[0].delta.content or "") if chunk.choices else ""
        elif caller.name == "responses":
            async for event in await oai(base).responses.create(model="mf", input="hi", stream=True):
                if event.type == "response.output_text.delta":
                    text += event.delta
                elif event.type == "error":
                    return text, RuntimeError(f"{event.code}: {event.message}")
        elif caller.name == "anthropic":
            async with claude(base).messages.stream(
                    model="mf", max_tokens=20, messages=[{"role": "user", "content": "hi"}]) as stream:
                async for piece in stream.text_stream:
                    text += piece
        else:
            async for chunk in await gemini(base).models.generate_content_stream(model="mf", contents="hi"):
                text += chunk.text or ""
    except (openai.APIError, anthropic.APIError, genai_errors.APIError) as err:
        return text, err
    return text, None


SDK_FAULTS = [f for f in STREAM_FAULTS if f.name in ("cut", "hang", "bad-json", "no-terminal")]


@pytest.mark.parametrize("fault", SDK_FAULTS, ids=[f.name for f in SDK_FAULTS])
@pytest.mark.parametrize(("caller", "translated"), PAIRS, ids=PAIR_IDS)
async def test_the_sdk_raises_on_a_broken_stream(
        fault_env, caller: Caller, translated: bool, fault: StreamFault) -> None:  # noqa: F811
    env: FaultEnv = await fault_env(caller, translated)
    env.bad.script(fault.script)
    async with asyncio.timeout(10):  # the SDK must not hang on it
        text, error = await sdk_stream(caller, env.gw.base)
    assert error is not None, f"{caller.name} saw a clean end (text {text!r})"
    assert text == (DEFAULT_TEXT if fault.name == "no-terminal" else "Hello"), "the text before the failure"
    rows = await env.gw.rows()
    assert len(rows) == 1 and rows[0]["error_code"], rows


@pytest.mark.parametrize(("caller", "translated"), [(CHAT, False), (ANTHROPIC, True)], ids=["chat-native",
                                                                                       "anthropic-translated"])
async def test_a_caller_leaving_a_silent_stream_frees_the_destination(
        fault_env, caller: Caller, translated: bool) -> None:  # noqa: F811
    """The caller goes away while the destination is silent (a long pause before the next
    token): sidegate closes the destination's connection at once, so it stops generating for no
    one, rather than when the idle timeout (30 s here) would have fired; the row says 499."""
    env: FaultEnv = await fault_env(caller, translated)
    env.bad.script(lambda r: [*sse(r.events()[:keep(r)]), HANG])
    async with aiohttp.ClientSession() as http, http.post(
            env.gw.base + caller.path("big", True), json=caller.body("big", True), headers=AUTH) as resp:
        assert resp.status == 200
        await resp.content.readany()  # the stream has begun; then the caller leaves
        env.asked.append(resp.headers["x-sidegate-request-id"])
    for _ in range(60):
        if env.bad.open_connections == 0:
            break
        await asyncio.sleep(0.05)
    assert env.bad.open_connections == 0, "the destination's connection is still open after the caller left"
    rows = await env.gw.rows()
    assert [(r["status_code"], r["error_code"]) for r in rows] == [(499, "client_disconnected")], rows
    await env.healthy(True)
