"""Wire shapes of the mock provider's replies: one renderer per API format (pure, no I/O).

Every renderer takes a :class:`Completion` (the answer already decided by :mod:`sidegate.upstream.mock.model`)
and returns the exact JSON bytes or SSE event blocks the real service would send.
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct
import time
from dataclasses import dataclass
from typing import Any

import orjson

_dumps = orjson.dumps


@dataclass(slots=True)
class Completion:
    """The decided answer to one generation request."""

    model: str
    digest: str  # hex digest of the request: the source of every id
    text: str
    chunks: list[str]  # one word each, spaces attached: "".join(chunks) == text
    truncated: bool  # stopped by the caller's output-token limit
    input_tokens: int
    body: dict[str, Any]  # the request, for parameters echoed back

    @property
    def output_tokens(self) -> int:
        return len(self.chunks)


def _sse(data: Any) -> bytes:
    return b"data: " + _dumps(data) + b"\n\n"


def _sse_event(name: str, data: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + _dumps(data) + b"\n\n"


# ---------------------------------------------------------------- OpenAI Chat Completions


def _chat_usage(c: Completion) -> dict[str, Any]:
    return {
        "prompt_tokens": c.input_tokens,
        "completion_tokens": c.output_tokens,
        "total_tokens": c.input_tokens + c.output_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def chat_json(c: Completion) -> bytes:
    return _dumps(
        {
            "id": f"chatcmpl-mock-{c.digest}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": c.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": c.text, "refusal": None, "annotations": []},
                    "logprobs": None,
                    "finish_reason": "length" if c.truncated else "stop",
                }
            ],
            "usage": _chat_usage(c),
            "service_tier": "default",
            "system_fingerprint": None,
        }
    )


def chat_events(c: Completion) -> list[bytes]:
    options = c.body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    base: dict[str, Any] = {
        "id": f"chatcmpl-mock-{c.digest}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": c.model,
        "service_tier": "default",
        "system_fingerprint": None,
    }
    if include_usage:
        base["usage"] = None

    def chunk(delta: dict[str, Any], finish: str | None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return _sse({**base, "choices": [choice]})

    events = [chunk({"role": "assistant", "content": "", "refusal": None}, None)]
    events.extend(chunk({"content": word}, None) for word in c.chunks)
    events.append(chunk({}, "length" if c.truncated else "stop"))
    if include_usage:
        events.append(_sse({**base, "choices": [], "usage": _chat_usage(c)}))
    events.append(b"data: [DONE]\n\n")
    return events


# ---------------------------------------------------------------- OpenAI Responses


def _responses_usage(c: Completion) -> dict[str, Any]:
    return {
        "input_tokens": c.input_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": c.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": c.input_tokens + c.output_tokens,
    }


def _response(c: Completion, now: int, status: str, output: list[Any], done: bool) -> dict[str, Any]:
    b = c.body
    incomplete = status == "incomplete"
    return {
        "id": f"resp_mock_{c.digest}",
        "object": "response",
        "created_at": now,
        "status": status,
        "background": False,
        "completed_at": now if status == "completed" else None,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "instructions": b.get("instructions"),
        "max_output_tokens": b.get("max_output_tokens"),
        "max_tool_calls": b.get("max_tool_calls"),
        "model": c.model,
        "output": output,
        "parallel_tool_calls": b.get("parallel_tool_calls", True),
        "previous_response_id": b.get("previous_response_id"),
        "reasoning": b.get("reasoning") or {"effort": None, "summary": None},
        "service_tier": "default",
        "store": b.get("store", True),
        "temperature": b.get("temperature", 1.0),
        "text": b.get("text") or {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": b.get("tool_choice", "auto"),
        "tools": b.get("tools") or [],
        "top_logprobs": b.get("top_logprobs", 0),
        "top_p": b.get("top_p", 1.0),
        "truncation": b.get("truncation", "disabled"),
        "usage": _responses_usage(c) if done else None,
        "user": b.get("user"),
        "metadata": b.get("metadata") or {},
    }


def _output_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _output_message(c: Completion, status: str, content: list[Any]) -> dict[str, Any]:
    return {
        "id": f"msg_mock_{c.digest}",
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": content,
    }


def responses_json(c: Completion) -> bytes:
    status = "incomplete" if c.truncated else "completed"
    output = [_output_message(c, status, [_output_part(c.text)])]
    return _dumps(_response(c, int(time.time()), status, output, True))


def responses_events(c: Completion) -> list[bytes]:
    now = int(time.time())
    status = "incomplete" if c.truncated else "completed"
    item_id = f"msg_mock_{c.digest}"
    at = {"item_id": item_id, "output_index": 0, "content_index": 0}
    steps: list[tuple[str, dict[str, Any]]] = [
        ("response.created", {"response": _response(c, now, "in_progress", [], False)}),
        ("response.in_progress", {"response": _response(c, now, "in_progress", [], False)}),
        ("response.output_item.added", {"output_index": 0, "item": _output_message(c, "in_progress", [])}),
        ("response.content_part.added", {**at, "part": _output_part("")}),
    ]
    steps.extend(("response.output_text.delta", {**at, "delta": w, "logprobs": []}) for w in c.chunks)
    message = _output_message(c, status, [_output_part(c.text)])
    steps += [
        ("response.output_text.done", {**at, "text": c.text, "logprobs": []}),
        ("response.content_part.done", {**at, "part": _output_part(c.text)}),
        ("response.output_item.done", {"output_index": 0, "item": message}),
        # the real service ends a truncated response with response.incomplete, not response.completed
        (f"response.{status}", {"response": _response(c, now, status, [message], True)}),
    ]
    return [
        _sse_event(name, {"type": name, **data, "sequence_number": seq})
        for seq, (name, data) in enumerate(steps)
    ]


# ---------------------------------------------------------------- Anthropic Messages


def _anthropic_usage(c: Completion, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": c.input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def _message(c: Completion, content: list[Any], stop: str | None, output_tokens: int) -> dict[str, Any]:
    return {
        "id": f"msg_mock_{c.digest}",
        "type": "message",
        "role": "assistant",
        "model": c.model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": _anthropic_usage(c, output_tokens),
    }


def anthropic_json(c: Completion) -> bytes:
    stop = "max_tokens" if c.truncated else "end_turn"
    return _dumps(_message(c, [{"type": "text", "text": c.text}], stop, c.output_tokens))


def anthropic_events(c: Completion) -> list[bytes]:
    stop = "max_tokens" if c.truncated else "end_turn"
    # like the real service, message_start reports 1 output token; message_delta carries the final count
    events = [
        _sse_event("message_start", {"type": "message_start", "message": _message(c, [], None, 1)}),
        _sse_event(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        _sse_event("ping", {"type": "ping"}),
    ]
    events.extend(
        _sse_event(
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}},
        )
        for w in c.chunks
    )
    usage = {
        "input_tokens": c.input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": c.output_tokens,
    }
    events += [
        _sse_event("content_block_stop", {"type": "content_block_stop", "index": 0}),
        _sse_event(
            "message_delta",
            {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None}, "usage": usage},
        ),
        _sse_event("message_stop", {"type": "message_stop"}),
    ]
    return events


def anthropic_count(input_tokens: int) -> bytes:
    return _dumps({"input_tokens": input_tokens})


# ---------------------------------------------------------------- Gemini


def _gemini_usage(c: Completion, output_tokens: int | None) -> dict[str, Any]:
    usage: dict[str, Any] = {"promptTokenCount": c.input_tokens}
    if output_tokens is not None:
        usage["candidatesTokenCount"] = output_tokens
    usage["totalTokenCount"] = c.input_tokens + (output_tokens or 0)
    usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": c.input_tokens}]
    return usage


def _gemini_response(
    c: Completion, text: str, finish: str | None, output_tokens: int | None
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}}
    if finish is not None:
        candidate["finishReason"] = finish
    candidate["index"] = 0
    return {
        "candidates": [candidate],
        "usageMetadata": _gemini_usage(c, output_tokens),
        "modelVersion": c.model.removeprefix("models/"),
        "responseId": f"mock_{c.digest}",
    }


def gemini_json(c: Completion) -> bytes:
    finish = "MAX_TOKENS" if c.truncated else "STOP"
    return _dumps(_gemini_response(c, c.text, finish, c.output_tokens))


def gemini_events(c: Completion) -> list[bytes]:
    finish = "MAX_TOKENS" if c.truncated else "STOP"
    chunks = c.chunks or [""]
    last = len(chunks) - 1
    return [
        _sse(_gemini_response(c, w, finish if i == last else None, c.output_tokens if i == last else None))
        for i, w in enumerate(chunks)
    ]


def gemini_count(input_tokens: int) -> bytes:
    return _dumps({"totalTokens": input_tokens})


# ---------------------------------------------------------------- embeddings


def unit_vector(key: bytes, dims: int) -> list[float]:
    """A deterministic unit-length vector derived from ``key``."""
    raw = struct.unpack(f"<{dims}H", hashlib.shake_256(key).digest(dims * 2))
    values = [v / 32767.5 - 1.0 for v in raw]
    norm = math.sqrt(math.fsum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def openai_embeddings(model: str, vectors: list[list[float]], tokens: int, as_base64: bool) -> bytes:
    data = [
        {
            "object": "embedding",
            "index": i,
            "embedding": base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode() if as_base64 else v,
        }
        for i, v in enumerate(vectors)
    ]
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return _dumps({"object": "list", "data": data, "model": model, "usage": usage})


def gemini_embedding(vector: list[float]) -> bytes:
    return _dumps({"embedding": {"values": vector}})


def gemini_batch_embedding(vectors: list[list[float]]) -> bytes:
    return _dumps({"embeddings": [{"values": v} for v in vectors]})


# ---------------------------------------------------------------- errors, in each API's own shape

_OPENAI_ERRORS = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}
# fmt: off
_ANTHROPIC_ERRORS = {
    400: "invalid_request_error", 401: "authentication_error", 402: "billing_error", 403: "permission_error",
    404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 500: "api_error",
    504: "timeout_error", 529: "overloaded_error",
}
_GEMINI_ERRORS = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
    409: "ABORTED", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 500: "INTERNAL", 501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED",
}
# fmt: on


def openai_error(status: int, message: str, param: str | None = None, code: str | None = None) -> bytes:
    kind, default_code = _OPENAI_ERRORS.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None)
    )
    return _dumps({"error": {"message": message, "type": kind, "param": param, "code": code or default_code}})


def anthropic_error(status: int, message: str) -> bytes:
    kind = _ANTHROPIC_ERRORS.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return _dumps({"type": "error", "error": {"type": kind, "message": message}})


def gemini_error(status: int, message: str) -> bytes:
    kind = _GEMINI_ERRORS.get(status, "UNKNOWN" if status >= 500 else "FAILED_PRECONDITION")
    return _dumps({"error": {"code": status, "message": message, "status": kind}})
