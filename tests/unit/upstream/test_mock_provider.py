"""The mock provider speaks every API format exactly: checked against the official SDKs' own types
(and end to end with the SDK clients over HTTP in tests/e2e/test_mock_provider_sdks.py)."""

from __future__ import annotations

import base64
import math
import struct
import time
from typing import Any

import orjson
import pytest
from anthropic.types import Message, MessageTokensCount, RawMessageStreamEvent
from anthropic.types.shared import ErrorResponse as AnthropicErrorResponse
from google.genai import types as gtypes
from openai.types import CreateEmbeddingResponse, ErrorObject
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from sidegate import apis
from sidegate.upstream.mock.model import DEFAULT_ANSWER, MockReply, mock_reply

RESPONSE_EVENT = TypeAdapter(ResponseStreamEvent)
ANTHROPIC_EVENT = TypeAdapter(RawMessageStreamEvent)
ANTHROPIC_ERROR = TypeAdapter(AnthropicErrorResponse)

PROMPT = "The quick  brown fox\njumps over the lazy dog."
WORDS = 9


def chat_body(text: Any = PROMPT, **extra: Any) -> dict[str, Any]:
    return {
        "model": "m",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}],
        **extra,
    }


def responses_body(text: str = PROMPT, **extra: Any) -> dict[str, Any]:
    return {"model": "m", "instructions": "Be brief.", "input": text, **extra}


def anthropic_body(text: Any = PROMPT, **extra: Any) -> dict[str, Any]:
    return {
        "model": "m",
        "max_tokens": 1024,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


def gemini_body(text: str = PROMPT, **extra: Any) -> dict[str, Any]:
    return {
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "contents": [{"role": "user", "parts": [{"text": text}]}],
        **extra,
    }


def sse_data(reply: MockReply) -> list[bytes]:
    """The data payloads of an SSE reply, checking every block's framing."""
    assert reply.status == 200 and reply.content_type == "text/event-stream" and reply.body is None
    assert reply.events
    out = []
    for block in reply.events:
        assert block.endswith(b"\n\n") and b"\n\n" not in block[:-2]
        data = [line[6:] for line in block[:-2].split(b"\n") if line.startswith(b"data: ")]
        assert len(data) == 1
        out.append(data[0])
    return out


def named_events(reply: MockReply) -> list[dict[str, Any]]:
    """Events of a stream with `event:` lines; the name must match the payload's type."""
    out = []
    for block, data in zip(reply.events or [], sse_data(reply), strict=True):
        assert block.startswith(b"event: ")
        event = orjson.loads(data)
        assert block.split(b"\n", 1)[0] == b"event: " + event["type"].encode()
        out.append(event)
    return out


def json_of(reply: MockReply, status: int = 200) -> Any:
    assert reply.status == status and reply.content_type == "application/json" and reply.events is None
    assert reply.body is not None
    return orjson.loads(reply.body)


# ---------------------------------------------------------------- OpenAI Chat Completions


def test_chat_json_validates_and_echoes_last_user_message():
    body = chat_body(text=[{"type": "text", "text": "first part"}, {"type": "text", "text": "second"}])
    body["messages"].append({"role": "assistant", "content": "ignored"})
    completion = ChatCompletion.model_validate(json_of(mock_reply(apis.OPENAI_CHAT, body, "gpt-x", False)))
    assert completion.model == "gpt-x"
    assert completion.id.startswith("chatcmpl-mock-") and len(completion.id) == len("chatcmpl-mock-") + 12
    assert completion.choices[0].message.content == "first part\nsecond"
    assert completion.choices[0].finish_reason == "stop"
    usage = completion.usage
    assert usage is not None and usage.completion_tokens == 3
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_chat_stream_chunks_validate_and_concatenate_to_the_json_answer():
    body = chat_body(stream=True, stream_options={"include_usage": True})
    full = ChatCompletion.model_validate(json_of(mock_reply(apis.OPENAI_CHAT, body, "gpt-x", False)))
    reply = mock_reply(apis.OPENAI_CHAT, body, "gpt-x", True)
    data = sse_data(reply)
    assert data[-1] == b"[DONE]"
    chunks = [ChatCompletionChunk.model_validate(orjson.loads(d)) for d in data[:-1]]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == PROMPT
    assert full.choices[0].message.content == PROMPT
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) == WORDS
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    *body_chunks, usage_chunk = chunks
    assert usage_chunk.choices == [] and usage_chunk.usage == full.usage
    assert all(c.usage is None for c in body_chunks)
    assert all(b'"usage":null' in d for d in data[:-2])
    assert {c.id for c in chunks} == {full.id}


def test_chat_stream_without_include_usage_sends_no_usage():
    reply = mock_reply(apis.OPENAI_CHAT, chat_body(stream=True), "gpt-x", True)
    data = sse_data(reply)
    assert data[-1] == b"[DONE]"
    for d in data[:-1]:
        chunk = orjson.loads(d)
        assert "usage" not in chunk and len(chunk["choices"]) == 1


@pytest.mark.parametrize("limit_key", ["max_tokens", "max_completion_tokens"])
def test_chat_truncates_to_max_tokens_words(limit_key):
    body = chat_body(**{limit_key: 3})
    full = ChatCompletion.model_validate(json_of(mock_reply(apis.OPENAI_CHAT, body, "m", False)))
    assert full.choices[0].message.content == "The quick  brown"
    assert full.choices[0].finish_reason == "length"
    assert full.usage is not None and full.usage.completion_tokens == 3
    data = sse_data(mock_reply(apis.OPENAI_CHAT, body, "m", True))
    chunks = [ChatCompletionChunk.model_validate(orjson.loads(d)) for d in data[:-1]]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "The quick  brown"
    assert chunks[-1].choices[0].finish_reason == "length"


def test_chat_without_user_text_greets():
    body = {"model": "m", "messages": [{"role": "system", "content": "You are terse."}]}
    completion = ChatCompletion.model_validate(json_of(mock_reply(apis.OPENAI_CHAT, body, "m", False)))
    assert completion.choices[0].message.content == DEFAULT_ANSWER
    assert (
        completion.usage is not None
        and completion.usage.completion_tokens == len(DEFAULT_ANSWER.split()) == 5
    )
    assert completion.usage.prompt_tokens == math.ceil(len("You are terse.") / 4)


# ---------------------------------------------------------------- OpenAI Responses


def test_responses_json_validates():
    body = responses_body()
    body["input"] = [
        {"role": "user", "content": "earlier"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "reply"}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": PROMPT}]},
    ]
    response = Response.model_validate(json_of(mock_reply(apis.OPENAI_RESPONSES, body, "gpt-x", False)))
    assert response.id.startswith("resp_mock") and response.model == "gpt-x"
    assert response.status == "completed" and response.output_text == PROMPT
    assert response.instructions == "Be brief."
    usage = response.usage
    assert usage is not None and usage.output_tokens == WORDS
    assert usage.input_tokens_details.cached_tokens == 0 and usage.output_tokens_details.reasoning_tokens == 0
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens


@pytest.mark.parametrize("limit", [None, 4])
def test_responses_stream_event_sequence(limit):
    body = responses_body(stream=True, **({"max_output_tokens": limit} if limit else {}))
    full = Response.model_validate(json_of(mock_reply(apis.OPENAI_RESPONSES, body, "gpt-x", False)))
    events = [
        RESPONSE_EVENT.validate_python(e)
        for e in named_events(mock_reply(apis.OPENAI_RESPONSES, body, "gpt-x", True))
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    types = [e.type for e in events]
    final = "response.incomplete" if limit else "response.completed"
    n = limit or WORDS
    assert types == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * n,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        final,
    ]
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == full.output_text == events[-4].text
    last = events[-1].response
    assert last.usage == full.usage and last.output_text == text and last.id == full.id
    if limit:
        assert full.status == last.status == "incomplete"
        assert full.incomplete_details is not None and full.incomplete_details.reason == "max_output_tokens"
        assert full.usage is not None and full.usage.output_tokens == limit
    else:
        assert full.status == "completed" and full.incomplete_details is None


# ---------------------------------------------------------------- OpenAI Embeddings


def test_embeddings_are_deterministic_unit_vectors():
    body = {"model": "e", "input": ["alpha", "beta", "alpha"], "encoding_format": "float"}
    result = CreateEmbeddingResponse.model_validate(
        json_of(mock_reply(apis.OPENAI_EMBEDDINGS, body, "e", False))
    )
    vectors = [d.embedding for d in result.data]
    assert [d.index for d in result.data] == [0, 1, 2]
    assert all(len(v) == 256 for v in vectors)
    assert all(abs(math.fsum(x * x for x in v) - 1.0) < 1e-9 for v in vectors)
    assert vectors[0] == vectors[2] != vectors[1]
    assert result.usage.prompt_tokens == result.usage.total_tokens == 2 + 1 + 2 and result.model == "e"


def test_embeddings_dimensions_tokens_and_base64():
    body = {"model": "e", "input": [[1, 2, 3], [4, 5]], "dimensions": 8, "encoding_format": "base64"}
    data = json_of(mock_reply(apis.OPENAI_EMBEDDINGS, body, "e", False))
    floats = json_of(mock_reply(apis.OPENAI_EMBEDDINGS, {**body, "encoding_format": "float"}, "e", False))
    assert data["usage"] == {"prompt_tokens": 5, "total_tokens": 5}
    for packed, plain in zip(data["data"], floats["data"], strict=True):
        decoded = struct.unpack("<8f", base64.b64decode(packed["embedding"]))
        assert decoded == pytest.approx(plain["embedding"], abs=1e-6)
    single = json_of(mock_reply(apis.OPENAI_EMBEDDINGS, {"input": [7, 8, 9]}, "e", False))
    assert len(single["data"]) == 1 and single["usage"]["prompt_tokens"] == 3
    bad = json_of(mock_reply(apis.OPENAI_EMBEDDINGS, {"input": []}, "e", False), 400)
    assert ErrorObject.model_validate(bad["error"]).type == "invalid_request_error"


# ---------------------------------------------------------------- Anthropic Messages


def test_anthropic_json_validates():
    body = anthropic_body(text=[{"type": "text", "text": PROMPT, "cache_control": {"type": "ephemeral"}}])
    raw = json_of(mock_reply(apis.ANTHROPIC_MESSAGES, body, "claude-x", False))
    message = Message.model_validate(raw)
    assert message.id.startswith("msg_mock") and message.model == "claude-x"
    assert message.content[0].type == "text" and message.content[0].text == PROMPT
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert message.usage.output_tokens == WORDS
    assert raw["usage"]["cache_read_input_tokens"] == raw["usage"]["cache_creation_input_tokens"] == 0


@pytest.mark.parametrize("limit", [1024, 2])
def test_anthropic_stream_event_sequence(limit):
    body = anthropic_body(stream=True, max_tokens=limit)
    full = Message.model_validate(json_of(mock_reply(apis.ANTHROPIC_MESSAGES, body, "claude-x", False)))
    raw = named_events(mock_reply(apis.ANTHROPIC_MESSAGES, body, "claude-x", True))
    assert raw[2] == {"type": "ping"}
    events = [ANTHROPIC_EVENT.validate_python(e) for e in raw if e["type"] != "ping"]
    n = min(limit, WORDS)
    assert [e.type for e in events] == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * n,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    text = "".join(e.delta.text for e in events if e.type == "content_block_delta")
    assert text == full.content[0].text
    start, delta = events[0].message, events[-2]
    assert start.id == full.id and start.usage.input_tokens == full.usage.input_tokens
    assert delta.usage.output_tokens == full.usage.output_tokens == n
    assert delta.delta.stop_reason == full.stop_reason == ("max_tokens" if limit == 2 else "end_turn")


def test_anthropic_count_tokens_matches_message_usage():
    body = anthropic_body()
    count = MessageTokensCount.model_validate(
        json_of(mock_reply(apis.ANTHROPIC_COUNT_TOKENS, body, "c", False))
    )
    message = Message.model_validate(json_of(mock_reply(apis.ANTHROPIC_MESSAGES, body, "c", False)))
    assert count.input_tokens == message.usage.input_tokens == math.ceil(len("Be brief." + PROMPT) / 4)


def test_anthropic_tool_result_turn_greets():
    body = anthropic_body(text=[{"type": "tool_result", "tool_use_id": "t1", "content": "42"}])
    message = Message.model_validate(json_of(mock_reply(apis.ANTHROPIC_MESSAGES, body, "c", False)))
    assert message.content[0].text == DEFAULT_ANSWER


# ---------------------------------------------------------------- Gemini


def test_gemini_json_validates():
    body = gemini_body()
    body["contents"].insert(0, {"parts": [{"text": "older"}]})
    body["contents"].append({"role": "model", "parts": [{"text": "ignored"}]})
    raw = json_of(mock_reply(apis.GEMINI_GENERATE, body, "models/gemini-x", False))
    response = gtypes.GenerateContentResponse.model_validate(raw)
    assert response.text == PROMPT and response.model_version == "gemini-x"
    candidate = response.candidates[0]
    assert candidate.finish_reason == gtypes.FinishReason.STOP and candidate.content.role == "model"
    usage = response.usage_metadata
    assert usage.candidates_token_count == WORDS
    assert usage.total_token_count == usage.prompt_token_count + WORDS
    assert response.response_id.startswith("mock")


@pytest.mark.parametrize("limit", [None, 5])
def test_gemini_stream_chunks(limit):
    body = gemini_body(**({"generationConfig": {"maxOutputTokens": limit}} if limit else {}))
    full = gtypes.GenerateContentResponse.model_validate(
        json_of(mock_reply(apis.GEMINI_GENERATE, body, "gemini-x", False))
    )
    reply = mock_reply(apis.GEMINI_GENERATE, body, "gemini-x", True)
    assert all(not e.startswith(b"event:") for e in reply.events or [])
    chunks = [gtypes.GenerateContentResponse.model_validate(orjson.loads(d)) for d in sse_data(reply)]
    assert len(chunks) == (limit or WORDS)
    assert "".join(c.text or "" for c in chunks) == full.text
    assert [c.candidates[0].finish_reason for c in chunks[:-1]] == [None] * (len(chunks) - 1)
    expected = gtypes.FinishReason.MAX_TOKENS if limit else gtypes.FinishReason.STOP
    assert chunks[-1].candidates[0].finish_reason == full.candidates[0].finish_reason == expected
    assert chunks[-1].usage_metadata == full.usage_metadata
    assert full.usage_metadata.candidates_token_count == (limit or WORDS)


def test_gemini_count_tokens_and_embed():
    body = gemini_body()
    count = gtypes.CountTokensResponse.model_validate(
        json_of(mock_reply(apis.GEMINI_COUNT_TOKENS, body, "gemini-x", False))
    )
    generated = orjson.loads(mock_reply(apis.GEMINI_GENERATE, body, "gemini-x", False).body or b"")
    assert count.total_tokens == generated["usageMetadata"]["promptTokenCount"]
    wrapped = {"generateContentRequest": {"model": "models/gemini-x", **body}}
    assert json_of(mock_reply(apis.GEMINI_COUNT_TOKENS, wrapped, "gemini-x", False)) == {
        "totalTokens": count.total_tokens
    }

    embed = {"content": {"parts": [{"text": "hello"}]}, "outputDimensionality": 32}
    raw = json_of(mock_reply(apis.GEMINI_EMBED, embed, "text-embedding-x", False))
    assert list(raw) == ["embedding"]
    embedding = gtypes.ContentEmbedding.model_validate(raw["embedding"])
    assert len(embedding.values) == 32 and abs(math.fsum(v * v for v in embedding.values) - 1) < 1e-9
    gtypes.EmbedContentResponse.model_validate({"embeddings": [raw["embedding"]]})
    default = json_of(mock_reply(apis.GEMINI_EMBED, {"content": {"parts": [{"text": "hello"}]}}, "t", False))
    assert len(default["embedding"]["values"]) == 256
    assert default["embedding"]["values"][:32] != embedding.values  # dimensions change the vector family


# ---------------------------------------------------------------- errors, determinism, dispatch

ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
GEMINI_ERROR_STATUSES = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


@pytest.mark.parametrize("status", sorted(ANTHROPIC_ERROR_TYPES))
@pytest.mark.parametrize("stream", [False, True])
def test_error_directive_in_every_format(status, stream):
    prompt = f"mock:error:{status} please"
    chat = json_of(mock_reply(apis.OPENAI_CHAT, chat_body(prompt), "m", stream), status)
    assert set(chat["error"]) == {"message", "type", "param", "code"}
    error = ErrorObject.model_validate(chat["error"])
    assert error.type == (
        "server_error" if status >= 500 else "requests" if status == 429 else "invalid_request_error"
    )
    assert json_of(mock_reply(apis.OPENAI_RESPONSES, responses_body(prompt), "m", stream), status) == chat
    assert json_of(mock_reply(apis.OPENAI_EMBEDDINGS, {"input": prompt}, "m", False), status) == chat

    claude = json_of(mock_reply(apis.ANTHROPIC_MESSAGES, anthropic_body(prompt), "c", stream), status)
    assert ANTHROPIC_ERROR.validate_python(claude).error.type == ANTHROPIC_ERROR_TYPES[status]
    assert (
        json_of(mock_reply(apis.ANTHROPIC_COUNT_TOKENS, anthropic_body(prompt), "c", False), status) == claude
    )

    gemini = json_of(mock_reply(apis.GEMINI_GENERATE, gemini_body(prompt), "g", stream), status)
    assert gemini["error"]["code"] == status and set(gemini["error"]) == {"code", "message", "status"}
    if status in GEMINI_ERROR_STATUSES:
        assert gemini["error"]["status"] == GEMINI_ERROR_STATUSES[status]


def test_error_directive_edge_cases():
    assert mock_reply(apis.OPENAI_CHAT, chat_body("mock:error:200"), "m", False).status == 200
    assert mock_reply(apis.OPENAI_CHAT, chat_body("mock:error:4290"), "m", False).status == 200
    assert mock_reply(apis.OPENAI_CHAT, chat_body("context\nmock:error:503"), "m", False).status == 503
    assert mock_reply(apis.OPENAI_CHAT, chat_body("say mock:error:503"), "m", False).status == 200
    claude_code_turn = [
        {"type": "text", "text": "<system-reminder>x</system-reminder>"},
        {"type": "text", "text": "mock:error:529"},
    ]
    assert mock_reply(apis.ANTHROPIC_MESSAGES, anthropic_body(claude_code_turn), "c", False).status == 529
    bad_limit = mock_reply(apis.ANTHROPIC_MESSAGES, anthropic_body(max_tokens=0), "c", False)
    assert ANTHROPIC_ERROR.validate_python(json_of(bad_limit, 400)).error.type == "invalid_request_error"


GENERATION_CASES = [
    (apis.OPENAI_CHAT, chat_body()),
    (apis.OPENAI_RESPONSES, responses_body()),
    (apis.ANTHROPIC_MESSAGES, anthropic_body()),
    (apis.GEMINI_GENERATE, gemini_body()),
]


@pytest.mark.parametrize(("api", "body"), GENERATION_CASES)
@pytest.mark.parametrize("stream", [False, True])
def test_replies_are_deterministic(api, body, stream, monkeypatch):
    first = mock_reply(api, body, "m", stream)
    monkeypatch.setattr(time, "time", lambda: 1_700_000_000.0)
    second, third = mock_reply(api, dict(body), "m", stream), mock_reply(api, dict(body), "m", stream)
    assert second == third
    strip = ("created", "created_at", "completed_at")

    def without_time(reply: MockReply) -> list[Any]:
        payloads = [reply.body] if reply.body else sse_data(reply)
        out = []
        for p in payloads:
            obj = orjson.loads(p) if p != b"[DONE]" else p
            if isinstance(obj, dict):
                for holder in (obj, obj.get("response") or {}):
                    for key in strip:
                        holder.pop(key, None)
            out.append(obj)
        return out

    assert without_time(first) == without_time(second)
    other = mock_reply(api, {**body, "temperature": 0.5}, "m", stream)
    assert without_time(other) != without_time(second)  # another body, other ids


def test_unknown_api_is_refused():
    with pytest.raises(ValueError):
        mock_reply("openai.models", {}, "m", False)
    with pytest.raises(ValueError):
        mock_reply("nope", {}, "m", False)
