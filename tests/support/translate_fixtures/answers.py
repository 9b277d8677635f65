"""Destination answers (JSON and SSE streams) with what a caller must see in them after
translation: text, thinking, tool calls, finish and normalised usage (input includes cache reads
and writes, output includes reasoning)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tests.support.fakes import (
    DEFAULT_TEXT,
    DEFAULT_TOOL_ARGS,
    anthropic_wire,
    gemini_wire,
    openai_wire,
    sse_data,
    sse_event,
)

from sidegate import apis
from sidegate.formats.base import TokenUsage

TOOLS_REQ = {"tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]}


@dataclass
class Expect:
    text: str
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    thinking: str = ""
    finish: str = "stop"  # neutral
    usage: TokenUsage | None = None


@dataclass
class Answer:
    dest: str
    body: dict[str, Any] | None = None
    sse: list[bytes] | None = None
    expect: Expect = field(default_factory=lambda: Expect(""))


def _chat_usage(u: dict[str, int]) -> TokenUsage:
    return TokenUsage(u["input_tokens"], u["output_tokens"], u["cache_read_input_tokens"], 0, u["reasoning_tokens"])


CHAT_USAGE = _chat_usage(openai_wire.CHAT_USAGE)
ANTHROPIC_USAGE = TokenUsage(10 + 4 + 2, 6, 4, 2, 0)
GEMINI_USAGE = TokenUsage(9, 5 + 2, 1, 0, 2)

# ---------------------------------------------------------------- OpenAI chat

BIG_USAGE = {"prompt_tokens": 2400, "completion_tokens": 310, "total_tokens": 2710,
             "prompt_tokens_details": {"cached_tokens": 2048, "cache_write_tokens": 100},
             "completion_tokens_details": {"reasoning_tokens": 120}}
BIG_CHAT_USAGE = TokenUsage(2400, 310, 2048, 100, 120)
PARALLEL_CALLS = [("get_weather", {"city": "Paris"}), ("get_time", {"tz": "Asia/Tokyo"})]


def chat_parallel_json() -> dict[str, Any]:
    return {
        "id": "chatcmpl-par", "object": "chat.completion", "created": 1_760_000_000, "model": "qwen3-32b",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "logprobs": None, "message": {
            "role": "assistant", "content": "Let me check both.", "reasoning_content": "Two lookups needed.",
            "tool_calls": [
                {"id": "call_W", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
                {"id": "call_T", "type": "function",
                 "function": {"name": "get_time", "arguments": '{"tz":"Asia/Tokyo"}'}},
            ]}}],
        "usage": BIG_USAGE,
    }


def chat_parallel_sse() -> list[bytes]:
    base = {"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1_760_000_000, "model": "qwen3-32b"}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return sse_data({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"reasoning_content": piece}) for piece in ("Two ", "lookups ", "needed.")]
    events += [chunk({"content": piece}) for piece in ("Let me ", "check ", "both.")]
    events.append(chunk({"tool_calls": [{"index": 0, "id": "call_W", "type": "function",
                                         "function": {"name": "get_weather", "arguments": ""}}]}))
    events += [chunk({"tool_calls": [{"index": 0, "function": {"arguments": p}}]})
               for p in ('{"ci', 'ty":"Pa', 'ris"}')]
    events.append(chunk({"tool_calls": [{"index": 1, "id": "call_T", "type": "function",
                                         "function": {"name": "get_time", "arguments": '{"tz":'}}]}))
    events.append(chunk({"tool_calls": [{"index": 1, "function": {"arguments": '"Asia/Tokyo"}'}}]}))
    events.append(chunk({}, "tool_calls"))
    events.append(sse_data({**base, "choices": [], "usage": BIG_USAGE}))
    events.append(sse_data("[DONE]"))
    return events


# ---------------------------------------------------------------- Anthropic

ANTHROPIC_THINKING_TOOLS = {"thinking": {"type": "enabled", "budget_tokens": 2000},
                            "tools": [{"name": "lookup", "input_schema": {"type": "object"}}]}


def anthropic_parallel_json() -> dict[str, Any]:
    return {
        "id": "msg_01PAR", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [
            {"type": "thinking", "thinking": "Two lookups needed.", "signature": anthropic_wire.THINKING_SIGNATURE},
            {"type": "text", "text": "Let me check both."},
            {"type": "tool_use", "id": "toolu_W", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_T", "name": "get_time", "input": {"tz": "Asia/Tokyo"}},
        ],
        "stop_reason": "tool_use", "stop_sequence": None,
        "usage": {"input_tokens": 252, "cache_creation_input_tokens": 100, "cache_read_input_tokens": 2048,
                  "output_tokens": 310, "output_tokens_details": {"thinking_tokens": 120}},
    }


def anthropic_parallel_sse() -> list[bytes]:
    usage = {"input_tokens": 252, "cache_creation_input_tokens": 100, "cache_read_input_tokens": 2048,
             "output_tokens": 1}
    start = {"id": "msg_01S", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5", "content": [],
             "stop_reason": None, "stop_sequence": None, "usage": usage}
    ev: list[bytes] = [sse_event("message_start", {"type": "message_start", "message": start})]

    def add(kind: str, **fields: Any) -> None:
        ev.append(sse_event(kind, {"type": kind, **fields}))

    add("content_block_start", index=0, content_block={"type": "thinking", "thinking": "", "signature": ""})
    add("ping")
    for piece in ("Two ", "lookups ", "needed."):
        add("content_block_delta", index=0, delta={"type": "thinking_delta", "thinking": piece})
    add("content_block_delta", index=0, delta={"type": "signature_delta", "signature": "EqQBsig=="})
    add("content_block_stop", index=0)
    add("content_block_start", index=1, content_block={"type": "text", "text": ""})
    for piece in ("Let me ", "check ", "both."):
        add("content_block_delta", index=1, delta={"type": "text_delta", "text": piece})
    add("content_block_stop", index=1)
    calls = [("toolu_W", "get_weather", ('{"ci', 'ty": "Pa', 'ris"}')),
             ("toolu_T", "get_time", ('{"tz": "Asia/Tokyo"}',))]
    for index, (call_id, name, pieces) in enumerate(calls, start=2):
        add("content_block_start", index=index, content_block={"type": "tool_use", "id": call_id, "name": name,
                                                               "input": {}})
        add("content_block_delta", index=index, delta={"type": "input_json_delta", "partial_json": ""})
        for piece in pieces:
            add("content_block_delta", index=index, delta={"type": "input_json_delta", "partial_json": piece})
        add("content_block_stop", index=index)
    add("message_delta", delta={"stop_reason": "tool_use", "stop_sequence": None},
        usage={"output_tokens": 310, "output_tokens_details": {"thinking_tokens": 120}})
    add("message_stop")
    return ev


# ---------------------------------------------------------------- Gemini


def gemini_parallel_json() -> dict[str, Any]:
    return {
        "candidates": [{"index": 0, "finishReason": "STOP", "content": {"role": "model", "parts": [
            {"text": "Two lookups needed.", "thought": True},
            {"text": "Let me check both."},
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "c2lnLWdlbQ=="},
            {"functionCall": {"name": "get_time", "args": {"tz": "Asia/Tokyo"}}},
        ]}}],
        "usageMetadata": {"promptTokenCount": 2400, "candidatesTokenCount": 190, "thoughtsTokenCount": 120,
                          "cachedContentTokenCount": 2048, "totalTokenCount": 2710},
        "modelVersion": "gemini-2.5-pro", "responseId": "resp-gem-1",
    }


def gemini_parallel_sse() -> list[bytes]:
    base = {"modelVersion": "gemini-2.5-pro", "responseId": "resp-gem-s"}
    prompt_only = {"promptTokenCount": 2400, "totalTokenCount": 2400, "cachedContentTokenCount": 2048}

    def chunk(parts: list[dict[str, Any]], finish: str | None = None, usage: dict[str, Any] = prompt_only) -> bytes:
        cand: dict[str, Any] = {"index": 0, "content": {"role": "model", "parts": parts}}
        if finish:
            cand["finishReason"] = finish
        return b"data: " + json.dumps({"candidates": [cand], "usageMetadata": usage, **base}).encode() + b"\r\n\r\n"

    return [
        chunk([{"text": "Two lookups ", "thought": True}]),
        chunk([{"text": "needed.", "thought": True}]),
        chunk([{"text": "Let me "}]),
        chunk([{"text": "check both."}]),
        chunk([{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "c2lnLWdlbQ=="},
               {"functionCall": {"name": "get_time", "args": {"tz": "Asia/Tokyo"}}}], "STOP",
              {**prompt_only, "candidatesTokenCount": 190, "thoughtsTokenCount": 120, "totalTokenCount": 2710}),
    ]


BIG = TokenUsage(2400, 310, 2048, 0, 120)
PARALLEL = Expect("Let me check both.", PARALLEL_CALLS, "Two lookups needed.", "tool_calls")
DEFAULT_CALL = [("lookup", DEFAULT_TOOL_ARGS)]

JSON_ANSWERS: dict[str, Answer] = {
    "chat-text": Answer(apis.OPENAI_CHAT, openai_wire.chat_json({"model": "gpt-5"}), expect=Expect(
        DEFAULT_TEXT, usage=CHAT_USAGE)),
    "chat-tool": Answer(apis.OPENAI_CHAT, openai_wire.chat_json({"model": "gpt-5", **TOOLS_REQ}), expect=Expect(
        "", DEFAULT_CALL, finish="tool_calls", usage=CHAT_USAGE)),
    "chat-parallel": Answer(apis.OPENAI_CHAT, chat_parallel_json(), expect=Expect(
        PARALLEL.text, PARALLEL_CALLS, PARALLEL.thinking, "tool_calls", BIG_CHAT_USAGE)),
    "anthropic-thinking-tool": Answer(apis.ANTHROPIC_MESSAGES, anthropic_wire.message_json(
        {"model": "claude-sonnet-4-5", **ANTHROPIC_THINKING_TOOLS}), expect=Expect(
        DEFAULT_TEXT, DEFAULT_CALL, anthropic_wire.THINKING_TEXT, "tool_calls", ANTHROPIC_USAGE)),
    "anthropic-parallel": Answer(apis.ANTHROPIC_MESSAGES, anthropic_parallel_json(), expect=Expect(
        PARALLEL.text, PARALLEL_CALLS, PARALLEL.thinking, "tool_calls", TokenUsage(2400, 310, 2048, 100, 120))),
    "gemini-text": Answer(apis.GEMINI_GENERATE, gemini_wire.generate_json("gemini-2.5-flash", {}), expect=Expect(
        DEFAULT_TEXT, usage=GEMINI_USAGE)),
    "gemini-tool": Answer(apis.GEMINI_GENERATE, gemini_wire.generate_json("gemini-2.5-flash", {"tools": [
        {"functionDeclarations": [{"name": "lookup"}]}]}), expect=Expect(
        "", DEFAULT_CALL, finish="tool_calls", usage=GEMINI_USAGE)),
    "gemini-parallel": Answer(apis.GEMINI_GENERATE, gemini_parallel_json(), expect=Expect(
        PARALLEL.text, PARALLEL_CALLS, PARALLEL.thinking, "tool_calls", BIG)),
}

STREAM_ANSWERS: dict[str, Answer] = {
    "chat-text": Answer(apis.OPENAI_CHAT, sse=openai_wire.chat_sse(
        {"model": "gpt-5", "stream_options": {"include_usage": True}}), expect=Expect(DEFAULT_TEXT, usage=CHAT_USAGE)),
    "chat-tool": Answer(apis.OPENAI_CHAT, sse=openai_wire.chat_sse(
        {"model": "gpt-5", "stream_options": {"include_usage": True}, **TOOLS_REQ}), expect=Expect(
        "", DEFAULT_CALL, finish="tool_calls", usage=CHAT_USAGE)),
    "chat-parallel": Answer(apis.OPENAI_CHAT, sse=chat_parallel_sse(), expect=Expect(
        PARALLEL.text, PARALLEL_CALLS, PARALLEL.thinking, "tool_calls", BIG_CHAT_USAGE)),
    "anthropic-thinking-tool": Answer(apis.ANTHROPIC_MESSAGES, sse=anthropic_wire.message_sse(
        {"model": "claude-sonnet-4-5", **ANTHROPIC_THINKING_TOOLS}), expect=Expect(
        DEFAULT_TEXT, DEFAULT_CALL, anthropic_wire.THINKING_TEXT, "tool_calls", ANTHROPIC_USAGE)),
    "anthropic-parallel": Answer(apis.ANTHROPIC_MESSAGES, sse=anthropic_parallel_sse(), expect=Expect(
        PARALLEL.text, PARALLEL_CALLS, PARALLEL.thinking, "tool_calls", TokenUsage(2400, 310, 2048, 100, 120))),
    "gemini-text": Answer(apis.GEMINI_GENERATE, sse=gemini_wire.stream_sse("gemini-2.5-flash", {}), expect=Expect(
        DEFAULT_TEXT, usage=GEMINI_USAGE)),
    "gemini-tool": Answer(apis.GEMINI_GENERATE, sse=gemini_wire.stream_sse("gemini-2.5-flash", {"tools": [
        {"functionDeclarations": [{"name": "lookup"}]}]}), expect=Expect(
        "", DEFAULT_CALL, finish="tool_calls", usage=GEMINI_USAGE)),
    "gemini-parallel": Answer(apis.GEMINI_GENERATE, sse=gemini_parallel_sse(), expect=Expect(
        PARALLEL.text, PARALLEL_CALLS, PARALLEL.thinking, "tool_calls", BIG)),
}


def awkward_chunks(data: bytes, sizes: tuple[int, ...] = (1, 2, 3, 5, 8, 13, 21, 64)) -> list[bytes]:
    """The bytes cut at sizes that fall inside lines, inside UTF-8 sequences and inside `\\r\\n\\r\\n`."""
    out, i, k = [], 0, 0
    while i < len(data):
        size = sizes[k % len(sizes)]
        out.append(data[i:i + size])
        i += size
        k += 1
    return out
