"""Streamed answers stored as the one message the caller's format would have answered whole.

`aggregate(api, sse_bytes)` reads a complete (or cut short) SSE stream of one API format, as sent
to the caller, and returns that format's answer object: a `chat.completion`, a Responses `response`,
an Anthropic `message`, a Gemini `GenerateContentResponse`. The folding of each format lives in its
aggregator (`aggregate_openai`, `aggregate_anthropic`, `aggregate_gemini`), found through
`AGGREGATORS`, keyed by the format names of `sidegate.apis`. Pure functions of bytes: no I/O.
Aggregators own the parsed events they are given and build the answer from them in place.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

import orjson

from sidegate import apis
from sidegate.telemetry.aggregate_anthropic import AnthropicAggregator
from sidegate.telemetry.aggregate_gemini import GeminiAggregator
from sidegate.telemetry.aggregate_openai import ChatAggregator, ResponsesAggregator
from sidegate.upstream.sse import SSESplitter, parse_block


class Aggregator(Protocol):
    def add(self, event: str | None, obj: dict[str, Any]) -> None: ...

    def result(self) -> dict[str, Any]: ...


AGGREGATORS: dict[str, Callable[[], Aggregator]] = {
    apis.OPENAI_CHAT: ChatAggregator,
    apis.OPENAI_RESPONSES: ResponsesAggregator,
    apis.ANTHROPIC_MESSAGES: AnthropicAggregator,
    apis.GEMINI_GENERATE: GeminiAggregator,
}


def _aggregator(api: str) -> Aggregator:
    factory = AGGREGATORS.get(api)
    if factory is None:
        raise ValueError(f"{api} answers do not stream")
    return factory()


def sse_events(sse_bytes: bytes, piece: int = 1 << 16) -> Iterator[tuple[str | None, bytes]]:
    """(event name, data) of every event, a last one without its blank line included; read a
    piece at a time so that a long stream never has all its events alive at once."""
    splitter = SSESplitter()
    for start in range(0, len(sse_bytes), piece):
        for ev in splitter.feed(sse_bytes[start:start + piece]):
            yield ev.event, ev.data
    rest = splitter.rest()
    if rest.strip():
        yield parse_block(rest)


def aggregate(api: str, sse_bytes: bytes) -> dict[str, Any]:
    """The answer object of `api`'s format that the stream amounts to. Events that are not JSON
    objects (`[DONE]`, comments, keep-alives) carry nothing and are skipped."""
    aggregator = _aggregator(api)
    for event, data in sse_events(sse_bytes):
        if not data or data[:1] not in (b"{", b" ", b"\t"):
            continue
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            aggregator.add(event, obj)
    return aggregator.result()


def aggregate_chunks(api: str, chunks: Iterable[Any]) -> dict[str, Any]:
    """The same from already parsed chunks: a Gemini stream asked for without `alt=sse` arrives
    as one JSON array of GenerateContentResponse objects."""
    aggregator = _aggregator(api)
    for chunk in copy.deepcopy(list(chunks)):  # the aggregator builds its answer from them in place
        if isinstance(chunk, dict):
            aggregator.add(None, chunk)
    return aggregator.result()
