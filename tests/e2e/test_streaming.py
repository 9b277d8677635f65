"""Streaming: SSE reaches the caller event by event as the upstream sends it, a caller that hangs up
is recorded as 499 with the tokens seen so far, an upstream that breaks off mid-stream ends the
caller's stream with an error event in its API's shape, a stream without usage is estimated; and
the incremental SSE splitter (`sidegate.formats.sse`) on every kind of chunking.
"""

from __future__ import annotations

import contextlib
import random
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from tests.support.fakes import sse_data, sse_event
from tests.support.gateway import KEY
from tests.support.three_fakes import Env, providers_block, start_fakes

from sidegate.app import build_app
from sidegate.formats.sse import Event, SSESplitter

PROMPT = "Count the words in this sentence, please!"  # 41 characters: 11 estimated input tokens
PROMPT_TOKENS = 11
DELTAS = ("The ", "quick ", "brown ", "fox ", "jumps.")  # one per content event
GAP_S = 0.3

MODELS = """
models:
  gpt: {destinations: [{provider: oa}]}
  claude: {destinations: [{provider: an}]}
  m: {destinations: [{provider: ge}]}
"""


def estimate(chars: int) -> int:
    return -(-chars // 4)


# ---------------------------------------------------------------- scripted streams, per family


def openai_events(deltas: tuple[str, ...] = DELTAS, usage: bool = False) -> list[bytes]:
    """One chunk per delta (the last with finish_reason), optionally the usage chunk, then [DONE]."""
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt"}
    events = []
    for i, text in enumerate(deltas):
        delta = {"role": "assistant", "content": text} if i == 0 else {"content": text}
        finish = "stop" if i == len(deltas) - 1 else None
        events.append(sse_data({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}))
    if usage:
        events.append(sse_data({**base, "choices": [], "usage": {
            "prompt_tokens": 21, "completion_tokens": 13, "total_tokens": 34,
            "prompt_tokens_details": {"cached_tokens": 4}, "completion_tokens_details": {"reasoning_tokens": 2}}}))
    events.append(sse_data("[DONE]"))
    return events


def anthropic_events(deltas: tuple[str, ...] = DELTAS, usage: bool = True) -> list[bytes]:
    """Without usage: what some Anthropic-compatible servers send, no `usage` objects at all."""
    start_usage = {"usage": {"input_tokens": 17, "output_tokens": 1, "cache_read_input_tokens": 5,
                             "cache_creation_input_tokens": 0}} if usage else {}
    events = [sse_event("message_start", {"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude", "content": [],
        "stop_reason": None, **start_usage}})]
    for i, text in enumerate(deltas):
        if i == 0:
            events.append(sse_event("content_block_start", {
                "type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}))
        events.append(sse_event("content_block_delta", {
            "type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}))
    events.append(sse_event("content_block_stop", {"type": "content_block_stop", "index": 0}))
    events.append(sse_event("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                                              **({"usage": {"output_tokens": 12}} if usage else {})}))
    events.append(sse_event("message_stop", {"type": "message_stop"}))
    return events


def gemini_events(deltas: tuple[str, ...] = DELTAS, usage: bool = False) -> list[bytes]:
    """What streamGenerateContent?alt=sse sends: `data:` lines ended by CRLF CRLF, no [DONE]."""
    events = []
    for i, text in enumerate(deltas):
        last = i == len(deltas) - 1
        chunk: dict[str, Any] = {"candidates": [{"content": {"role": "model", "parts": [{"text": text}]},
                                                 "index": 0, **({"finishReason": "STOP"} if last else {})}],
                                 "modelVersion": "m"}
        if usage:
            chunk["usageMetadata"] = {"promptTokenCount": 19, "candidatesTokenCount": 3 * (i + 1),
                                      "thoughtsTokenCount": 4, "totalTokenCount": 23 + 3 * (i + 1)}
        events.append(b"data: " + orjson.dumps(chunk) + b"\r\n\r\n")
    return events


@dataclass(frozen=True)
class Family:
    name: str
    path: str
    api_type: str
    events: Any  # (deltas, usage) -> list of raw events
    text_events: tuple[int, ...]  # indexes of the events that carry DELTAS[0], DELTAS[1], ...

    def body(self) -> dict[str, Any]:
        if self.name == "openai":
            return {"model": "gpt", "stream": True, "messages": [{"role": "user", "content": PROMPT}]}
        if self.name == "anthropic":
            return {"model": "claude", "stream": True, "max_tokens": 64,
                    "messages": [{"role": "user", "content": PROMPT}]}
        return {"contents": [{"role": "user", "parts": [{"text": PROMPT}]}]}


OPENAI = Family("openai", "/mlflow/v1/chat/completions", "mlflow/chat/completions", openai_events,
                (0, 1, 2, 3, 4))
ANTHROPIC = Family("anthropic", "/anthropic/v1/messages", "anthropic/messages", anthropic_events,
                   (2, 3, 4, 5, 6))
GEMINI = Family("gemini", "/gemini/v1beta/models/m:streamGenerateContent?alt=sse", "gemini/streamGenerateContent",
                gemini_events, (0, 1, 2, 3, 4))
FAMILIES = [OPENAI, ANTHROPIC, GEMINI]
ids = [f.name for f in FAMILIES]


def text_before(family: Family, n_events: int) -> int:
    """Characters of generated text in the first n events of the family's scripted stream."""
    return sum(len(DELTAS[i]) for i, index in enumerate(family.text_events) if index < n_events)


# ---------------------------------------------------------------- harness


@pytest.fixture
async def env(gateway, fake_upstream) -> Env:
    fakes = await start_fakes(fake_upstream)
    return Env(await gateway(providers_block(fakes) + MODELS), fakes)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {KEY}"}) as s:
        yield s


_BOUNDARY = re.compile(rb"\r\n\r\n|\n\n")


async def read_events(resp: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """The caller's view: raw event blocks as they arrive (a trailing partial block last)."""
    buf = b""
    async for chunk in resp.content.iter_any():
        buf += chunk
        while (m := _BOUNDARY.search(buf)) is not None:
            yield buf[:m.end()]
            buf = buf[m.end():]
    if buf:
        yield buf


class Progress:
    """How many stream pieces a fake upstream has taken up to send (it then waits, then writes)."""

    def __init__(self) -> None:
        self.taken = 0


class _CountingPieces(list):  # type: ignore[type-arg]
    def __init__(self, items: list[bytes], progress: Progress) -> None:
        super().__init__(items)
        self.progress = progress

    def __iter__(self):  # type: ignore[no-untyped-def]
        for item in super().__iter__():
            self.progress.taken += 1
            yield item


def track(fake: Any) -> Progress:
    """Count, in the fake, the pieces of each streamed answer as it takes them up to write."""
    progress = Progress()
    original = fake._answer

    def answer(*args: Any) -> Any:
        ans = original(*args)
        if ans.pieces is not None:
            ans.pieces = _CountingPieces(ans.pieces, progress)
        return ans

    fake._answer = answer
    return progress


# ---------------------------------------------------------------- chunk by chunk


@pytest.mark.parametrize("family", FAMILIES, ids=ids)
async def test_events_reach_caller_before_upstream_finishes(env, session, family):
    events = {"openai": openai_events(DELTAS[:4]), "anthropic": [*anthropic_events()[:4], anthropic_events()[-1]],
              "gemini": gemini_events()}[family.name]
    assert len(events) == 5
    fake = env.fakes[family.name]
    progress = track(fake)
    fake.reply(sse=events, headers={"Content-Type": "text/event-stream"}, chunk_delay_s=GAP_S)
    got: list[bytes] = []
    async with session.post(env.url(family.path), json=family.body()) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        async for event in read_events(resp):
            if not got:
                taken_at_first = progress.taken
            got.append(event)
        request_id = resp.headers["x-sidegate-request-id"]
    # When the caller had event 1 the fake had not yet taken up its last event: nothing was buffered.
    assert 1 <= taken_at_first < len(events)
    assert progress.taken == len(events)
    assert got == events, "every event relayed unchanged, in order"
    row = await env.row(request_id)
    assert (row["status_code"], row["error_code"], row["streaming"], row["api_type"]) == (
        200, None, True, family.api_type)
    assert row["time_to_first_byte_ms"] is not None and row["time_to_first_byte_ms"] <= row["latency_ms"]


# ---------------------------------------------------------------- the caller hangs up


@asynccontextmanager
async def served_like_sidegate_serve(gw: Any) -> AsyncIterator[str]:
    """The same app on a runner set up as `sidegate serve` does it: aiohttp's test server cancels a
    handler when its client goes away, `serve` does not (sidegate then notices on its next write)."""
    runner = web.AppRunner(build_app(gw.state), handle_signals=False, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}{gw.prefix}"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("runner", ["test-server", "serve-runner"])
@pytest.mark.parametrize("family", FAMILIES, ids=ids)
async def test_client_disconnect_mid_stream_records_499_with_tokens_seen(env, family, runner):
    events = family.events(DELTAS)
    env.fakes[family.name].reply(sse=events, headers={"Content-Type": "text/event-stream"}, chunk_delay_s=0.2)
    upto = max(family.text_events[:2]) + 1  # read until the caller has two text events
    async with contextlib.AsyncExitStack() as stack:
        base = env.gw.base
        if runner == "serve-runner":
            base = await stack.enter_async_context(served_like_sidegate_serve(env.gw))
        session = await stack.enter_async_context(aiohttp.ClientSession(headers={"Authorization": f"Bearer {KEY}"}))
        resp = await session.post(base + family.path, json=family.body())
        assert resp.status == 200
        request_id = resp.headers["x-sidegate-request-id"]
        got = []
        async for event in read_events(resp):
            got.append(event)
            if len(got) == upto:
                break
        resp.close()  # drop the connection mid-stream
        row = await env.row(request_id)
    assert got == events[:upto]
    assert row["status_code"] == 499
    assert row["error_code"] == "client_disconnected"
    assert row["streaming"] is True
    assert row["tokens_estimated"] is True
    seen_low, seen_high = text_before(family, upto), text_before(family, len(events))
    assert estimate(seen_low) <= row["output_tokens"] <= estimate(seen_high)
    assert row["output_tokens"] > 0
    expected_input = 17 + 5 if family is ANTHROPIC else PROMPT_TOKENS  # Anthropic reported it up front
    assert row["input_tokens"] == expected_input
    assert row["total_tokens"] == row["input_tokens"] + row["output_tokens"]
    assert row["destination_name"] == {"openai": "oa", "anthropic": "an", "gemini": "ge"}[family.name]


# ---------------------------------------------------------------- the upstream breaks off


def error_event_of(family: Family, raw: bytes) -> dict[str, Any]:
    """The error event in the family's own stream shape; returns the JSON payload."""
    if family is ANTHROPIC:
        assert raw.startswith(b"event: error\ndata: "), raw
        payload = orjson.loads(raw.split(b"data: ", 1)[1])
        assert payload["type"] == "error"
        assert payload["error"]["type"] == "api_error"
        assert payload["error"]["code"] == "upstream_stream_interrupted"
    else:
        assert raw.startswith(b"data: {"), raw
        payload = orjson.loads(raw[len(b"data: "):])
        err = payload["error"]
        if family is OPENAI:
            assert set(err) == {"message", "type", "param", "code"}
            assert err["code"] == "upstream_stream_interrupted"
        else:
            assert (err["code"], err["status"]) == (502, "UNAVAILABLE")
            assert err["details"][0]["reason"] == "upstream_stream_interrupted"
    assert raw.endswith(b"\n\n")
    return payload


@pytest.mark.parametrize("family", FAMILIES, ids=ids)
async def test_upstream_cut_mid_stream_ends_with_error_event(env, session, family):
    events = family.events(DELTAS)
    env.fakes[family.name].reply(sse=events, headers={"Content-Type": "text/event-stream"}, cut_after=3)
    async with session.post(env.url(family.path), json=family.body()) as resp:
        assert resp.status == 200
        got = [event async for event in read_events(resp)]
        request_id = resp.headers["x-sidegate-request-id"]
    assert got[:3] == events[:3]
    assert len(got) == 4, got
    error_event_of(family, got[3])
    row = await env.row(request_id)
    assert row["error_code"] == "upstream_stream_interrupted"
    assert row["status_code"] == 200  # what the caller got: the stream had begun
    assert row["streaming"] is True and row["tokens_estimated"] is True
    floor = 1 if family is ANTHROPIC else 0  # message_start's output_tokens
    assert row["output_tokens"] == max(floor, estimate(text_before(family, 3)))


@pytest.mark.parametrize("family", FAMILIES, ids=ids)
async def test_upstream_cut_inside_an_event_sends_no_partial_event(env, session, family):
    """The fake drops the connection halfway through an event: the caller must get the whole
    events before it and then the error event, never the torn half-event."""
    events = family.events(DELTAS)
    torn = events[2][: len(events[2]) // 2]
    env.fakes[family.name].reply(sse=[*events[:2], torn], headers={"Content-Type": "text/event-stream"},
                                 cut_after=3)
    async with session.post(env.url(family.path), json=family.body()) as resp:
        body = await resp.read()
        request_id = resp.headers["x-sidegate-request-id"]
    assert body.startswith(events[0] + events[1])
    rest = body[len(events[0] + events[1]):]
    assert torn not in rest
    error_event_of(family, rest)
    row = await env.row(request_id)
    assert row["error_code"] == "upstream_stream_interrupted"


# ---------------------------------------------------------------- usage in streams


@pytest.mark.parametrize("family", [OPENAI, GEMINI], ids=["openai", "gemini"])
async def test_stream_without_usage_is_estimated(env, session, family):
    events = family.events(DELTAS, usage=False)
    env.fakes[family.name].reply(sse=events, headers={"Content-Type": "text/event-stream"})
    async with session.post(env.url(family.path), json=family.body()) as resp:
        got = await resp.read()
        request_id = resp.headers["x-sidegate-request-id"]
    assert got == b"".join(events)
    row = await env.row(request_id)
    assert (row["status_code"], row["error_code"], row["tokens_estimated"]) == (200, None, True)
    assert row["input_tokens"] == PROMPT_TOKENS
    assert row["output_tokens"] == estimate(len("".join(DELTAS)))
    assert row["total_tokens"] == PROMPT_TOKENS + estimate(len("".join(DELTAS)))
    assert row["cache_read_input_tokens"] == row["reasoning_tokens"] == 0


async def test_anthropic_stream_without_usage_fields_is_estimated(env, session):
    events = anthropic_events(DELTAS, usage=False)
    env.fakes["anthropic"].reply(sse=events, headers={"Content-Type": "text/event-stream"})
    async with session.post(env.url(ANTHROPIC.path), json=ANTHROPIC.body()) as resp:
        assert await resp.read() == b"".join(events)
        request_id = resp.headers["x-sidegate-request-id"]
    row = await env.row(request_id)
    assert row["tokens_estimated"] is True
    assert (row["input_tokens"], row["output_tokens"]) == (PROMPT_TOKENS, estimate(len("".join(DELTAS))))


@pytest.mark.parametrize("family", FAMILIES, ids=ids)
async def test_stream_usage_is_read_not_estimated(env, session, family):
    """Control for the estimates: a stream that reports usage is recorded with the real numbers, and
    the OpenAI usage chunk sidegate asked for on its own does not reach a caller who did not ask."""
    events = family.events(DELTAS, usage=True)
    fake = env.fakes[family.name]
    fake.reply(sse=events, headers={"Content-Type": "text/event-stream"})
    async with session.post(env.url(family.path), json=family.body()) as resp:
        got = await resp.read()
        request_id = resp.headers["x-sidegate-request-id"]
    if family is OPENAI:
        assert fake.last.json()["stream_options"] == {"include_usage": True}
        assert got == b"".join(e for e in events if b'"usage"' not in e)
    else:
        assert got == b"".join(events)
    row = await env.row(request_id)
    assert row["tokens_estimated"] is False
    expected = {  # input (cache included), output (reasoning included), cache read, reasoning
        "openai": (21, 13, 4, 2),
        "anthropic": (22, 12, 5, 0),
        "gemini": (19, 15 + 4, 0, 4),
    }[family.name]
    assert (row["input_tokens"], row["output_tokens"], row["cache_read_input_tokens"],
            row["reasoning_tokens"]) == expected


async def test_openai_caller_asking_for_usage_gets_the_usage_chunk(env, session):
    events = openai_events(DELTAS, usage=True)
    env.fakes["openai"].reply(sse=events, headers={"Content-Type": "text/event-stream"})
    body = OPENAI.body() | {"stream_options": {"include_usage": True}}
    async with session.post(env.url(OPENAI.path), json=body) as resp:
        assert await resp.read() == b"".join(events)
    assert env.fakes["openai"].last.json() == body


# ---------------------------------------------------------------- SSESplitter


STREAM = (
    b": keep-alive comment\n\n"
    b"event: message_start\ndata: {\"a\": 1}\n\n"
    b"data: line one\ndata: line two\n\n"
    b"data: {\"crlf\": true}\r\n\r\n"
    b"event: ping\r\ndata:no-space\r\n\r\n"
    b"id: 7\nretry: 100\ndata: x\n\n"
    b"data: [DONE]\n\n"
)
EXPECTED = [
    (b": keep-alive comment\n\n", None, b""),
    (b"event: message_start\ndata: {\"a\": 1}\n\n", "message_start", b"{\"a\": 1}"),
    (b"data: line one\ndata: line two\n\n", None, b"line one\nline two"),
    (b"data: {\"crlf\": true}\r\n\r\n", None, b"{\"crlf\": true}"),
    (b"event: ping\r\ndata:no-space\r\n\r\n", "ping", b"no-space"),
    (b"id: 7\nretry: 100\ndata: x\n\n", None, b"x"),
    (b"data: [DONE]\n\n", None, b"[DONE]"),
]


def split(chunks: list[bytes]) -> tuple[list[tuple[bytes, str | None, bytes]], bytes]:
    splitter = SSESplitter()
    out: list[Event] = []
    for chunk in chunks:
        out += splitter.feed(chunk)
    return [(e.raw, e.event, e.data) for e in out], splitter.rest()


def test_splitter_whole_stream():
    assert split([STREAM]) == (EXPECTED, b"")


def test_splitter_one_byte_at_a_time():
    assert split([STREAM[i:i + 1] for i in range(len(STREAM))]) == (EXPECTED, b"")


def test_splitter_every_two_way_split():
    for cut in range(len(STREAM) + 1):
        assert split([STREAM[:cut], STREAM[cut:]]) == (EXPECTED, b""), cut


def test_splitter_every_three_way_split_around_boundaries():
    """Both cuts anywhere within 4 bytes of every terminator: each way a `\\n\\n` or `\\r\\n\\r\\n`
    can straddle two or three chunks."""
    ends = [m.end() for m in _BOUNDARY.finditer(STREAM)]
    near = sorted({p for end in ends for p in range(end - 4, end + 1) if 0 <= p <= len(STREAM)})
    for a in near:
        for b in near:
            if a <= b:
                assert split([STREAM[:a], STREAM[a:b], STREAM[b:]]) == (EXPECTED, b""), (a, b)


def test_splitter_random_splits():
    rng = random.Random(20260101)
    for _ in range(300):
        cuts = sorted(rng.sample(range(1, len(STREAM)), rng.randint(1, 12)))
        chunks = [STREAM[a:b] for a, b in zip([0, *cuts], [*cuts, len(STREAM)], strict=True)]
        assert split(chunks) == (EXPECTED, b""), cuts


def test_splitter_crlf_terminator_straddling_chunks():
    for left, right in [(b"data: a\r", b"\n\r\ndata: b\r\n\r\n"), (b"data: a\r\n", b"\r\ndata: b\r\n\r\n"),
                        (b"data: a\r\n\r", b"\ndata: b\r\n\r\n")]:
        events, rest = split([left, right])
        assert [(raw, data) for raw, _, data in events] == [(b"data: a\r\n\r\n", b"a"), (b"data: b\r\n\r\n", b"b")]
        assert rest == b""
    events, _ = split([b"data: a\n", b"\ndata: b\n", b"\n"])
    assert [raw for raw, _, _ in events] == [b"data: a\n\n", b"data: b\n\n"]


def test_splitter_rest_returns_trailing_bytes():
    splitter = SSESplitter()
    assert [e.raw for e in splitter.feed(b"data: 1\n\ndata: 2\n")] == [b"data: 1\n\n"]
    assert splitter.feed(b"data: 2b") == []
    assert splitter.rest() == b"data: 2\ndata: 2b"
    assert splitter.rest() == b""
    # after rest() the splitter starts afresh
    assert [(e.raw, e.data) for e in splitter.feed(b"data: 3\n\n")] == [(b"data: 3\n\n", b"3")]
    assert splitter.rest() == b""


def test_splitter_rest_keeps_a_lone_carriage_return():
    splitter = SSESplitter()
    assert [e.raw for e in splitter.feed(b"data: 1\r\n\r\ndata: 2\r\n\r")] == [b"data: 1\r\n\r\n"]
    assert splitter.rest() == b"data: 2\r\n\r"


def many_events(n: int, terminators: str = "mixed") -> tuple[bytes, list[bytes]]:
    def end(i: int) -> bytes:
        if terminators == "mixed":
            return b"\r\n\r\n" if i % 3 == 0 else b"\n\n"
        return b"\n\n" if terminators == "lf" else b"\r\n\r\n"

    events = [b"event: e\ndata: {\"i\": %d, \"text\": \"hello\"}" % i + end(i) for i in range(n)]
    return b"".join(events), events


def test_splitter_many_events_in_small_chunks():
    stream, events = many_events(2000)
    splitter = SSESplitter()
    out: list[bytes] = []
    for i in range(0, len(stream), 7):
        out += [e.raw for e in splitter.feed(stream[i:i + 7])]
    assert out == events
    assert splitter.rest() == b""


class _CountingBuffer(bytearray):
    """A bytearray that counts the bytes its `find` calls look at."""

    scanned = 0

    def find(self, sub: Any, start: Any = None, end: Any = None) -> int:  # type: ignore[override]
        start = 0 if start is None else start
        found = super().find(sub, start, len(self) if end is None else end)
        stop = (len(self) if end is None else min(end, len(self))) if found < 0 else found + len(sub)
        _CountingBuffer.scanned += max(0, stop - start)
        return found


@pytest.mark.parametrize("terminators", ["lf", "crlf", "mixed"])
@pytest.mark.parametrize("chunk", [7, 4096, 1 << 30], ids=["7-bytes", "4-KiB", "one-chunk"])
def test_splitter_scans_each_byte_a_bounded_number_of_times(chunk, terminators):
    """Linear in the bytes: no matter how the stream is chunked, the boundary search looks at each
    byte a small, constant number of times (a search from the start of the buffer for every event
    of a large chunk would make this grow with the square of the chunk)."""
    stream, events = many_events(3000, terminators)
    splitter = SSESplitter()
    splitter._buf = _CountingBuffer()
    _CountingBuffer.scanned = 0
    out = 0
    for i in range(0, len(stream), chunk):
        out += len(splitter.feed(stream[i:i + chunk]))
    assert out == len(events)
    assert _CountingBuffer.scanned <= 4 * len(stream), _CountingBuffer.scanned / len(stream)
