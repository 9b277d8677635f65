"""What a caller's official SDK sees in a translated answer: each body or stream event is parsed
with the SDK's own types (and streams are run through the SDK's accumulator where it has one),
then reduced to text, thinking, tool calls, finish and normalised usage for comparison."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sidegate.formats.base import TokenUsage
from sidegate.formats.sse import SSESplitter


@dataclass
class Seen:
    text: str
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    thinking: str = ""
    finish: str | None = None  # neutral name
    usage: TokenUsage | None = None
    model: str = ""
    ids: list[str] = field(default_factory=list)  # tool-call ids


def events(raw: bytes) -> list[tuple[str | None, bytes]]:
    splitter = SSESplitter()
    out = [(ev.event, ev.data) for ev in splitter.feed(raw)]
    assert splitter.rest() == b"", "the translated stream must end on an event boundary"
    return out


# ---------------------------------------------------------------- OpenAI chat

CHAT_FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool_calls", "content_filter": "content_filter"}


def _chat_usage(usage: Any) -> TokenUsage | None:
    if usage is None:
        return None
    prompt = usage.prompt_tokens_details
    completion = usage.completion_tokens_details
    return TokenUsage(usage.prompt_tokens, usage.completion_tokens, prompt.cached_tokens or 0 if prompt else 0,
                      prompt.cache_write_tokens or 0 if prompt else 0,
                      completion.reasoning_tokens or 0 if completion else 0)


def chat_json(obj: dict[str, Any]) -> Seen:
    from openai.types.chat import ChatCompletion

    completion = ChatCompletion.model_validate(obj)
    message = completion.choices[0].message
    calls = [(c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls or []]  # type: ignore[union-attr]
    assert completion.usage is None or completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens)
    return Seen(message.content or "", calls, (message.model_extra or {}).get("reasoning_content", ""),
                CHAT_FINISH[completion.choices[0].finish_reason], _chat_usage(completion.usage), completion.model,
                [c.id for c in message.tool_calls or []])


def chat_stream(raw: bytes) -> Seen:
    from openai.lib.streaming.chat import ChatCompletionStreamState
    from openai.types.chat import ChatCompletionChunk

    evs = events(raw)
    assert evs[-1] == (None, b"[DONE]"), "an OpenAI chat stream ends with data: [DONE]"
    state = ChatCompletionStreamState()
    thinking, usage = "", None
    for _, data in evs[:-1]:
        chunk = ChatCompletionChunk.model_validate_json(data)
        assert chunk.object == "chat.completion.chunk"
        if chunk.choices:
            thinking += (chunk.choices[0].delta.model_extra or {}).get("reasoning_content", "")
        if chunk.usage is not None:
            assert not chunk.choices, "usage comes in its own chunk"
            usage = _chat_usage(chunk.usage)
        state.handle_chunk(chunk)
    final = state.get_final_completion()
    message = final.choices[0].message
    calls = [(c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls or []]
    return Seen(message.content or "", calls, thinking, CHAT_FINISH[final.choices[0].finish_reason], usage,
                final.model, [c.id for c in message.tool_calls or []])


# ---------------------------------------------------------------- Anthropic

ANTHROPIC_FINISH = {"end_turn": "stop", "tool_use": "tool_calls", "max_tokens": "length", "refusal": "content_filter",
                    "stop_sequence": "stop_sequence"}


def _message_view(message: Any) -> Seen:
    text = "".join(b.text for b in message.content if b.type == "text")
    thinking = "".join(b.thinking for b in message.content if b.type == "thinking")
    calls = [(b.name, b.input) for b in message.content if b.type == "tool_use"]
    u = message.usage
    details = u.output_tokens_details
    usage = TokenUsage(u.input_tokens + (u.cache_read_input_tokens or 0) + (u.cache_creation_input_tokens or 0),
                       u.output_tokens, u.cache_read_input_tokens or 0, u.cache_creation_input_tokens or 0,
                       details.thinking_tokens if details else 0)
    return Seen(text, calls, thinking, ANTHROPIC_FINISH.get(message.stop_reason or ""), usage, message.model,
                [b.id for b in message.content if b.type == "tool_use"])


def anthropic_json(obj: dict[str, Any]) -> Seen:
    from anthropic.types import Message

    return _message_view(Message.model_validate(obj))


def anthropic_stream(raw: bytes) -> Seen:
    from anthropic.lib.streaming._messages import accumulate_event
    from anthropic.types import RawMessageStreamEvent
    from pydantic import TypeAdapter

    adapter: TypeAdapter[Any] = TypeAdapter(RawMessageStreamEvent)
    evs = events(raw)
    assert evs[0][0] == "message_start" and evs[-1][0] == "message_stop"
    snapshot, bufs = None, {}
    for name, data in evs:
        event = adapter.validate_json(data)
        assert event.type == name, "the SSE event name matches the payload type"
        snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=bufs)
    assert snapshot is not None
    return _message_view(snapshot)


# ---------------------------------------------------------------- Gemini


def _gemini_view(chunks: list[Any]) -> Seen:
    text = thinking = ""
    calls: list[tuple[str, dict[str, Any]]] = []
    ids: list[str] = []
    finish = None
    for chunk in chunks:
        candidate = chunk.candidates[0]
        for part in candidate.content.parts or []:
            if part.function_call is not None:
                calls.append((part.function_call.name, part.function_call.args or {}))
                ids.append(part.function_call.id or "")
            elif part.thought:
                thinking += part.text or ""
            elif part.text:
                text += part.text
        if candidate.finish_reason is not None:
            finish = candidate.finish_reason.value
    meta = chunks[-1].usage_metadata
    thoughts = meta.thoughts_token_count or 0
    usage = TokenUsage(meta.prompt_token_count or 0, (meta.candidates_token_count or 0) + thoughts,
                       meta.cached_content_token_count or 0, 0, thoughts)
    assert meta.total_token_count == usage.input + usage.output
    neutral = {"STOP": "tool_calls" if calls else "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter"}
    return Seen(text, calls, thinking, neutral.get(finish or ""), usage, chunks[-1].model_version, ids)


def gemini_json(obj: dict[str, Any]) -> Seen:
    from google.genai import types

    return _gemini_view([types.GenerateContentResponse.model_validate(obj)])


def gemini_stream(raw: bytes) -> Seen:
    from google.genai import types

    chunks = [types.GenerateContentResponse.model_validate_json(data) for _, data in events(raw)]
    assert all(c.candidates[0].finish_reason is None for c in chunks[:-1]), "only the last chunk finishes"
    return _gemini_view(chunks)


# ---------------------------------------------------------------- OpenAI Responses


def _response_view(response: Any) -> Seen:
    calls: list[tuple[str, dict[str, Any]]] = []
    ids: list[str] = []
    thinking = ""
    for item in response.output:
        if item.type == "function_call":
            calls.append((item.name, json.loads(item.arguments)))
            ids.append(item.call_id)
        elif item.type == "custom_tool_call":
            calls.append((item.name, {"input": item.input}))
            ids.append(item.call_id)
        elif item.type == "reasoning":
            thinking += "".join(s.text for s in item.summary)
    u = response.usage
    usage = TokenUsage(u.input_tokens, u.output_tokens, u.input_tokens_details.cached_tokens,
                       getattr(u.input_tokens_details, "cache_write_tokens", 0) or 0,
                       u.output_tokens_details.reasoning_tokens)
    assert u.total_tokens == u.input_tokens + u.output_tokens
    if response.status == "incomplete":
        finish = {"max_output_tokens": "length", "content_filter": "content_filter"}[
            response.incomplete_details.reason]
    else:
        assert response.status == "completed"
        finish = "tool_calls" if calls else "stop"
    return Seen(response.output_text, calls, thinking, finish, usage, response.model, ids)


def responses_json(obj: dict[str, Any]) -> Seen:
    from openai.types.responses import Response

    return _response_view(Response.model_validate(obj))


def responses_stream(raw: bytes) -> Seen:
    from openai.lib.streaming.responses._responses import ResponseStreamState
    from openai.types.responses import ResponseStreamEvent
    from pydantic import TypeAdapter

    adapter: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
    evs = events(raw)
    parsed = [adapter.validate_json(data) for _, data in evs]
    assert [name for name, _ in evs] == [e.type for e in parsed], "the SSE event name matches the payload type"
    assert [e.sequence_number for e in parsed] == list(range(len(parsed)))
    assert parsed[0].type == "response.created" and parsed[-1].type in ("response.completed", "response.incomplete")
    from openai import omit

    state: Any = ResponseStreamState(input_tools=[], text_format=omit)
    for event in parsed:
        state.handle_event(event)
    final = parsed[-1].response
    seen = _response_view(final)
    done_items = [e.item for e in parsed if e.type == "response.output_item.done"]
    assert [i.model_dump() for i in done_items] == [i.model_dump() for i in final.output]
    deltas = "".join(e.delta for e in parsed if e.type == "response.output_text.delta")
    assert deltas == seen.text
    return seen
