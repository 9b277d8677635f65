"""Translated answers: each destination's JSON answer and SSE stream, brought back to each caller
format paired with it, parses with the caller's official SDK types (streams also through the SDK's
accumulator) and shows the same text, thinking, tool calls, finish and usage. Streams are fed cut
at awkward byte boundaries."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

import pytest
from tests.support.translate_fixtures import answers as fx
from tests.support.translate_fixtures import sdk_view

from sidegate import apis
from sidegate.formats.sse import SSESplitter
from sidegate.translate import Translation

REQUESTS: dict[str, dict[str, Any]] = {
    apis.OPENAI_CHAT: {"model": "asked-model", "messages": [{"role": "user", "content": "hi"}],
                       "stream_options": {"include_usage": True}},
    apis.ANTHROPIC_MESSAGES: {"model": "asked-model", "max_tokens": 100,
                              "messages": [{"role": "user", "content": "hi"}]},
    apis.GEMINI_GENERATE: {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
    apis.OPENAI_RESPONSES: {"model": "asked-model", "input": "hi"},
}
JSON_VIEWS: dict[str, Callable[[dict[str, Any]], sdk_view.Seen]] = {
    apis.OPENAI_CHAT: sdk_view.chat_json, apis.ANTHROPIC_MESSAGES: sdk_view.anthropic_json,
    apis.GEMINI_GENERATE: sdk_view.gemini_json, apis.OPENAI_RESPONSES: sdk_view.responses_json}
STREAM_VIEWS: dict[str, Callable[[bytes], sdk_view.Seen]] = {
    apis.OPENAI_CHAT: sdk_view.chat_stream, apis.ANTHROPIC_MESSAGES: sdk_view.anthropic_stream,
    apis.GEMINI_GENERATE: sdk_view.gemini_stream, apis.OPENAI_RESPONSES: sdk_view.responses_stream}
CALLERS = tuple(REQUESTS)


def _cases(answers: dict[str, fx.Answer]) -> list[tuple[str, str]]:
    return [(name, caller) for name, answer in answers.items() for caller in CALLERS if caller != answer.dest]


def expected_usage(caller: str, expect: fx.Expect) -> Any:
    assert expect.usage is not None
    if caller == apis.GEMINI_GENERATE:  # Gemini has no field for cache writes (they stay in the prompt count)
        return dataclasses.replace(expect.usage, cache_creation=0)
    return expect.usage


def reported_model(answer: fx.Answer) -> str:
    """The model the destination's answer names: what a translated answer shows the caller too."""
    if answer.body is not None:
        return str(answer.body.get("model") or answer.body["modelVersion"])
    found = re.search(rb'"(?:model|modelVersion)": ?"([^"]+)"', b"".join(answer.sse or []))
    assert found is not None
    return found.group(1).decode()


def check(seen: sdk_view.Seen, caller: str, expect: fx.Expect, model: str) -> None:
    assert seen.text == expect.text
    assert seen.calls == expect.calls
    assert seen.thinking == expect.thinking
    assert seen.finish == expect.finish
    assert seen.usage == expected_usage(caller, expect)
    assert seen.model == model, "the destination's model, as a passed-through answer shows it"
    assert len(set(seen.ids)) == len(seen.ids) and all(seen.ids)


def translation(caller: str, dest: str, stream: bool) -> Translation:
    t = Translation(caller, dest, "asked-model", "dest-model", stream)
    t.request({**REQUESTS[caller], "stream": True} if stream and caller != apis.GEMINI_GENERATE else REQUESTS[caller])
    return t


@pytest.mark.parametrize(("name", "caller"), _cases(fx.JSON_ANSWERS))
def test_json_answer_parses_with_caller_sdk(name: str, caller: str) -> None:
    answer = fx.JSON_ANSWERS[name]
    t = translation(caller, answer.dest, False)
    assert answer.body is not None
    status, body = t.response(200, answer.body)
    assert status == 200
    check(JSON_VIEWS[caller](body), caller, answer.expect, reported_model(answer))
    assert t.usage == answer.expect.usage  # the destination's usage, neutral, for the record


def run_stream(t: Translation, sse: list[bytes], cut: bool = True) -> bytes:
    stream = t.stream()
    splitter = SSESplitter()
    raw = b"".join(sse)
    out: list[bytes] = []
    for piece in fx.awkward_chunks(raw) if cut else [raw]:
        for ev in splitter.feed(piece):
            blocks = stream.feed(ev.event, ev.data)
            assert all(b.endswith(b"\n\n") for b in blocks)
            out.extend(blocks)
    assert splitter.rest() == b""
    out.extend(stream.finish())
    assert stream.finish() == [], "finish is idempotent"
    return b"".join(out)


@pytest.mark.parametrize(("name", "caller"), _cases(fx.STREAM_ANSWERS))
def test_stream_parses_with_caller_sdk_and_accumulator(name: str, caller: str) -> None:
    answer = fx.STREAM_ANSWERS[name]
    assert answer.sse is not None
    t = translation(caller, answer.dest, True)
    raw = run_stream(t, answer.sse)
    check(STREAM_VIEWS[caller](raw), caller, answer.expect, reported_model(answer))
    assert run_stream(translation(caller, answer.dest, True), answer.sse, cut=False).count(b"\n\n") == raw.count(
        b"\n\n"), "the byte boundaries of the destination stream do not change the translation"


def test_chat_caller_without_include_usage_gets_no_usage_chunk() -> None:
    t = Translation(apis.OPENAI_CHAT, apis.ANTHROPIC_MESSAGES, "asked-model", "claude", True)
    t.request({"model": "asked-model", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
    raw = run_stream(t, fx.STREAM_ANSWERS["anthropic-parallel"].sse or [])
    seen = sdk_view.chat_stream(raw)
    assert seen.usage is None and seen.calls == fx.PARALLEL_CALLS


def test_stream_missing_its_end_is_completed_by_finish() -> None:
    """An Anthropic destination whose stream lost message_stop, and a chat one without [DONE]: the
    caller still gets the ending its SDK waits for."""
    sse = fx.STREAM_ANSWERS["anthropic-parallel"].sse or []
    t = translation(apis.OPENAI_CHAT, apis.ANTHROPIC_MESSAGES, True)
    raw = run_stream(t, sse[:-1])
    assert raw.endswith(b"data: [DONE]\n\n") and sdk_view.chat_stream(raw).calls == fx.PARALLEL_CALLS
    sse = fx.STREAM_ANSWERS["chat-parallel"].sse or []
    t = translation(apis.ANTHROPIC_MESSAGES, apis.OPENAI_CHAT, True)
    seen = sdk_view.anthropic_stream(run_stream(t, sse[:-1]))
    assert seen.finish == "tool_calls" and seen.usage == fx.BIG_CHAT_USAGE
