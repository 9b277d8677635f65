"""Every wire format's descriptor by name (`FORMATS`, keyed by `sidegate.apis`), and streamed
answers stored as the one message the caller's format would have answered whole.

`aggregate(api, sse_bytes)` reads a complete (or cut short) SSE stream of one API format, as sent
to the caller, and returns that format's answer object: a `chat.completion`, a Responses `response`,
an Anthropic `message`, a Gemini `GenerateContentResponse`. Each format's fold is its descriptor's
`aggregator` (`AGGREGATORS` lists the formats that have one). Pure functions of bytes: no I/O.
Aggregators own the parsed events they are given and build the answer from them in place.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any

from sidegate.formats import anthropic, gemini, openai
from sidegate.formats.base import Aggregator, ApiFormat
from sidegate.formats.sse import json_event, sse_events

FORMATS: dict[str, ApiFormat] = {
    fmt.name: fmt
    for fmt in (
        openai.Chat(), openai.Responses(), openai.Embeddings(), openai.Models(),
        anthropic.Messages(), anthropic.CountTokens(),
        gemini.Generate(), gemini.CountTokens(), gemini.Embed(), gemini.BatchEmbed(),
    )
}

AGGREGATORS: dict[str, Callable[[], Aggregator]] = {
    name: fmt.aggregator for name, fmt in FORMATS.items() if fmt.aggregator is not None
}


def _aggregator(api: str) -> Aggregator:
    factory = AGGREGATORS.get(api)
    if factory is None:
        raise ValueError(f"{api} answers do not stream")
    return factory()


def aggregate(api: str, sse_bytes: bytes) -> dict[str, Any]:
    """The answer object of `api`'s format that the stream amounts to. Events that are not JSON
    objects (`[DONE]`, comments, keep-alives) carry nothing and are skipped."""
    aggregator = _aggregator(api)
    for event, data in sse_events(sse_bytes):
        if not data or data[:1] not in (b"{", b" ", b"\t"):
            continue
        obj, _ = json_event(data)
        if obj is not None:
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
