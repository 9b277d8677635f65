"""Token counting across formats: Anthropic `count_tokens` ↔ Gemini `countTokens`, and an estimate
where the destination has no count endpoint (OpenAI-kind providers).

The request side reuses the generation codecs (a count request is a generation request without the
sampling controls). The estimate counts the characters of every text the model would read —
system prompt, messages, tool calls and results, thinking, tool definitions as JSON — at four per
token, plus `PER_MESSAGE` tokens of framing per message and `PER_MEDIA` tokens per image or
document (real costs depend on pixel size and page count, which the estimate does not read).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from sidegate.translate.codecs.anthropic_messages import request as anthropic_messages
from sidegate.translate.codecs.gemini_generate import request as gemini_generate
from sidegate.translate.fields import int_field, obj_field
from sidegate.translate.neutral import Media, Request, Text, Thinking, ToolCall, ToolResult

PER_MESSAGE = 3
PER_MEDIA = 1000
CHARS_PER_TOKEN = 4


@dataclass(slots=True)
class Count:
    tokens: int
    estimated: bool = False


def _chars(req: Request) -> tuple[int, int]:
    chars = sum(len(t.text) for t in req.system)
    media = 0
    for msg in req.messages:
        for part in msg.parts:
            if isinstance(part, Text | Thinking):
                chars += len(part.text)
            elif isinstance(part, ToolCall):
                chars += len(part.name) + len(part.arguments)
            elif isinstance(part, ToolResult):
                chars += sum(len(p.text) for p in part.content if isinstance(p, Text))
                media += sum(1 for p in part.content if isinstance(p, Media))
            elif isinstance(part, Media):
                media += 1
    for tool in req.tools:
        chars += len(tool.name) + len(tool.description or "") + len(orjson.dumps(tool.parameters))
    return chars, media


def estimate(req: Request) -> Count:
    chars, media = _chars(req)
    tokens = -(-chars // CHARS_PER_TOKEN) + PER_MESSAGE * (len(req.messages) + (1 if req.system else 0))
    return Count(tokens + PER_MEDIA * media, estimated=True)


# ---------------------------------------------------------------- Anthropic count_tokens

_ANTHROPIC_COUNT_FIELDS = frozenset({"model", "messages", "system", "tools", "tool_choice", "thinking",
                                     "output_config"})


def anthropic_encode(req: Request, model: str, stream: bool, stream_usage: bool) -> dict[str, Any]:
    body = anthropic_messages.encode_request(req, model, False)
    return {k: v for k, v in body.items() if k in _ANTHROPIC_COUNT_FIELDS}


def anthropic_decode_response(obj: dict[str, Any]) -> Count:
    return Count(int_field(obj, "input_tokens") or 0)


def anthropic_encode_response(count: Count, req: Request, model: str) -> dict[str, Any]:
    return {"input_tokens": count.tokens}


# ---------------------------------------------------------------- Gemini countTokens

_GEMINI_COUNT_FIELDS = frozenset({"contents", "systemInstruction", "tools", "toolConfig"})


def gemini_decode_request(body: dict[str, Any], stream: bool) -> Request:
    inner = obj_field(body, "generateContentRequest")
    return gemini_generate.decode_request(inner if inner is not None else body, False)


def gemini_encode(req: Request, model: str, stream: bool, stream_usage: bool) -> dict[str, Any]:
    body = gemini_generate.encode_request(req, model, False)
    inner = {k: v for k, v in body.items() if k in _GEMINI_COUNT_FIELDS}
    return {"generateContentRequest": {"model": f"models/{model}", **inner}}


def gemini_decode_response(obj: dict[str, Any]) -> Count:
    return Count(int_field(obj, "totalTokens") or 0)


def gemini_encode_response(count: Count, req: Request, model: str) -> dict[str, Any]:
    return {"totalTokens": count.tokens}
