"""Where the texts are in each API format's bodies: what the model reads in a request (system
prompt, messages, tool calls and results, Responses `input`/`instructions`, Anthropic `system` and
content blocks, Gemini `contents` and `systemInstruction`, embedding inputs) and what it generated in
a JSON answer. A registry keyed by `sidegate.apis` ids.

Each collector returns references `(container, key)` with `container[key]` a non-empty string, so a
caller reads the texts, and writes a masked text back in place with `container[key] = masked`.
Left out on purpose: tool definitions (schemas written by the developer), images and files, and
Anthropic thinking blocks (signed by the provider: a changed one is rejected). Tool-call arguments
and tool inputs are read string by string, so a mask never breaks their JSON.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sidegate import apis

Ref = tuple[Any, Any]  # (dict or list, key or index) holding a str
Collector = Callable[[dict[str, Any], list[Ref]], None]
_MAX_DEPTH = 24


def _text(container: Any, key: Any, out: list[Ref]) -> None:
    if isinstance(container, dict):
        value = container.get(key)
        if isinstance(value, str) and value:
            out.append((container, key))


def _strings(container: Any, key: Any, out: list[Ref], depth: int = 0) -> None:
    """Every string value under container[key] (JSON objects the model wrote or reads)."""
    value = container[key]
    if isinstance(value, str):
        if value:
            out.append((container, key))
    elif depth < _MAX_DEPTH and isinstance(value, dict):
        for k in value:
            _strings(value, k, out, depth + 1)
    elif depth < _MAX_DEPTH and isinstance(value, list):
        for i in range(len(value)):
            _strings(value, i, out, depth + 1)


def _string_or_parts(container: Any, key: str, out: list[Ref], part_key: str = "text") -> None:
    """A field that is a string or a list of parts with text (the shape every format uses)."""
    if not isinstance(container, dict):
        return
    value = container.get(key)
    if isinstance(value, str):
        if value:
            out.append((container, key))
    elif isinstance(value, list):
        for part in value:
            _text(part, part_key, out)


def _items(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


# ---------------------------------------------------------------- OpenAI


def _chat_request(body: dict[str, Any], out: list[Ref]) -> None:
    for message in _items(body.get("messages")):
        _string_or_parts(message, "content", out)
        for call in _items(message.get("tool_calls")):
            _text(call.get("function"), "arguments", out)
        _text(message.get("function_call"), "arguments", out)


_RESPONSES_ITEM_TEXT = ("arguments", "input")  # function_call, custom_tool_call


def _responses_request(body: dict[str, Any], out: list[Ref]) -> None:
    _text(body, "instructions", out)
    if isinstance(body.get("input"), str):
        _text(body, "input", out)
        return
    for item in _items(body.get("input")):
        _string_or_parts(item, "content", out)
        _string_or_parts(item, "output", out)  # function_call_output, custom_tool_call_output
        for key in _RESPONSES_ITEM_TEXT:
            _text(item, key, out)


def _embeddings_request(body: dict[str, Any], out: list[Ref]) -> None:
    value = body.get("input")
    if isinstance(value, str):
        _text(body, "input", out)
    elif isinstance(value, list):
        out.extend((value, i) for i, v in enumerate(value) if isinstance(v, str) and v)


def _chat_answer(obj: dict[str, Any], out: list[Ref]) -> None:
    for choice in _items(obj.get("choices")):
        _text(choice.get("message"), "content", out)


def _responses_answer(obj: dict[str, Any], out: list[Ref]) -> None:
    for item in _items(obj.get("output")):
        if item.get("type") == "message":
            for part in _items(item.get("content")):
                if part.get("type") == "output_text":
                    _text(part, "text", out)


# ---------------------------------------------------------------- Anthropic


def _anthropic_blocks(blocks: Any, out: list[Ref]) -> None:
    for block in _items(blocks):
        kind = block.get("type")
        if kind == "text":
            _text(block, "text", out)
        elif kind == "tool_result":
            _string_or_parts(block, "content", out)
        elif kind == "tool_use" and isinstance(block.get("input"), dict):
            _strings(block, "input", out)
        elif kind == "document":
            source = block.get("source")
            if isinstance(source, dict) and source.get("type") == "text":
                _text(source, "data", out)


def _anthropic_request(body: dict[str, Any], out: list[Ref]) -> None:
    _string_or_parts(body, "system", out)
    for message in _items(body.get("messages")):
        if isinstance(message.get("content"), str):
            _text(message, "content", out)
        else:
            _anthropic_blocks(message.get("content"), out)


def _anthropic_answer(obj: dict[str, Any], out: list[Ref]) -> None:
    for block in _items(obj.get("content")):
        if block.get("type") == "text":
            _text(block, "text", out)


# ---------------------------------------------------------------- Gemini


def _gemini_parts(content: Any, out: list[Ref]) -> None:
    if not isinstance(content, dict):
        return
    for part in _items(content.get("parts")):
        _text(part, "text", out)
        for key, inner in (("functionCall", "args"), ("function_call", "args"),
                           ("functionResponse", "response"), ("function_response", "response")):
            holder = part.get(key)
            if isinstance(holder, dict) and isinstance(holder.get(inner), dict):
                _strings(holder, inner, out)


def _gemini_request(body: dict[str, Any], out: list[Ref]) -> None:
    for key in ("systemInstruction", "system_instruction"):
        _gemini_parts(body.get(key), out)
    for content in _items(body.get("contents")):
        _gemini_parts(content, out)


def _gemini_count_request(body: dict[str, Any], out: list[Ref]) -> None:
    _gemini_request(body, out)
    inner = body.get("generateContentRequest") or body.get("generate_content_request")
    if isinstance(inner, dict):
        _gemini_request(inner, out)


def _gemini_embed_request(body: dict[str, Any], out: list[Ref]) -> None:
    _gemini_parts(body.get("content"), out)


def _gemini_batch_embed_request(body: dict[str, Any], out: list[Ref]) -> None:
    for request in _items(body.get("requests")):
        _gemini_parts(request.get("content"), out)


def _gemini_answer(obj: dict[str, Any], out: list[Ref]) -> None:
    for candidate in _items(obj.get("candidates")):
        content = candidate.get("content")
        if isinstance(content, dict):
            for part in _items(content.get("parts")):
                _text(part, "text", out)


INPUT: dict[str, Collector] = {
    apis.OPENAI_CHAT: _chat_request,
    apis.OPENAI_RESPONSES: _responses_request,
    apis.OPENAI_EMBEDDINGS: _embeddings_request,
    apis.ANTHROPIC_MESSAGES: _anthropic_request,
    apis.ANTHROPIC_COUNT_TOKENS: _anthropic_request,
    apis.GEMINI_GENERATE: _gemini_request,
    apis.GEMINI_COUNT_TOKENS: _gemini_count_request,
    apis.GEMINI_EMBED: _gemini_embed_request,
    apis.GEMINI_BATCH_EMBED: _gemini_batch_embed_request,
}

OUTPUT: dict[str, Collector] = {
    apis.OPENAI_CHAT: _chat_answer,
    apis.OPENAI_RESPONSES: _responses_answer,
    apis.ANTHROPIC_MESSAGES: _anthropic_answer,
    apis.GEMINI_GENERATE: _gemini_answer,
}


def input_texts(api: str, body: dict[str, Any]) -> list[Ref]:
    """References to every text the model will read in a request body of that API format."""
    out: list[Ref] = []
    collect = INPUT.get(api)
    if collect is not None:
        collect(body, out)
    return out


def output_texts(api: str, obj: dict[str, Any]) -> list[Ref]:
    """References to the generated text in a JSON answer of that API format."""
    out: list[Ref] = []
    collect = OUTPUT.get(api)
    if collect is not None:
        collect(obj, out)
    return out
