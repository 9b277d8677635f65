"""What the mock model refuses before answering: a request its API could not accept.

Each check looks for what the real provider requires (the field that holds the conversation, its
items' shape, Anthropic's `max_tokens`) and words the 400 as that provider does, in its own error
shape and naming the field, so that a first test of a client's validation behaves as it would
against the provider. Only the shape is checked, not every parameter: a request the provider would
take is never refused here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from sidegate import apis
from sidegate.upstream.mock import render as fmt

Check = Callable[[dict[str, Any]], bytes | None]  # the 400 body, or None when the request is valid

_CHAT_ROLES = ("system", "assistant", "user", "function", "tool", "developer")
_ANTHROPIC_ROLES = ("user", "assistant")
_GEMINI_ROLES = ("", "user", "model", "function")


def _json_type(value: Any) -> str:
    """A JSON value's type, with its article, as OpenAI's messages name it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# ---------------------------------------------------------------- OpenAI (message, param, code)


def _openai(message: str, param: str, code: str) -> bytes:
    return fmt.openai_error(400, message, param=param, code=code)


def _missing(param: str) -> bytes:
    return _openai(f"Missing required parameter: '{param}'.", param, "missing_required_parameter")


def _wrong_type(param: str, expected: str, value: Any) -> bytes:
    return _openai(f"Invalid type for '{param}': expected {expected}, but got {_json_type(value)} instead.",
                   param, "invalid_type")


def _openai_items(items: list[Any], name: str) -> bytes | None:
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            return _wrong_type(f"{name}[{index}]", "an object", item)
    return None


def openai_chat(body: dict[str, Any]) -> bytes | None:
    if "messages" not in body:
        return _missing("messages")
    messages = body["messages"]
    if not isinstance(messages, list):
        return _wrong_type("messages", "an array of objects", messages)
    if not messages:
        return _openai("Invalid 'messages': empty array. Expected an array with minimum length 1, but got an "
                       "empty array instead.", "messages", "empty_array")
    if (bad := _openai_items(messages, "messages")) is not None:
        return bad
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if "role" not in message:
            return _missing(f"{where}.role")
        role = message["role"]
        if role not in _CHAT_ROLES:
            supported = ", ".join(f"'{r}'" for r in _CHAT_ROLES[:-1]) + f", and '{_CHAT_ROLES[-1]}'"
            return _openai(f"Invalid value: {orjson.dumps(role).decode()[:64]}. Supported values are: {supported}.",
                           f"{where}.role", "invalid_value")
        if role != "assistant" and "content" not in message:
            return _missing(f"{where}.content")
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            return _wrong_type(f"{where}.content", "one of a string or array of objects", content)
    return None


def openai_responses(body: dict[str, Any]) -> bytes | None:
    if "input" not in body:
        # a conversation may also come from an earlier response or a stored prompt
        continued = any(key in body for key in ("previous_response_id", "prompt", "conversation"))
        return None if continued else _missing("input")
    value = body["input"]
    if isinstance(value, str):
        return None
    if not isinstance(value, list):
        return _wrong_type("input", "one of a string or array of input items", value)
    return _openai_items(value, "input")


def openai_embeddings(body: dict[str, Any]) -> bytes | None:
    return _missing("input") if "input" not in body else None  # its shape: mock._embedding_inputs


# ---------------------------------------------------------------- Anthropic ("field.path: message")


def _anthropic(message: str) -> bytes:
    return fmt.anthropic_error(400, message)


def _anthropic_messages(body: dict[str, Any]) -> bytes | None:
    if "messages" not in body:
        return _anthropic("messages: Field required")
    messages = body["messages"]
    if not isinstance(messages, list):
        return _anthropic("messages: Input should be a valid list")
    if not messages:
        return _anthropic("messages: at least one message is required")
    for index, message in enumerate(messages):
        where = f"messages.{index}"
        if not isinstance(message, dict):
            return _anthropic(f"{where}: Input should be a valid dictionary or object to extract fields from")
        if "role" not in message:
            return _anthropic(f"{where}.role: Field required")
        role = message["role"]
        if role == "system":
            return _anthropic('messages: Unexpected role "system". The Messages API accepts a top-level `system` '
                              'parameter, not "system" as an input message role.')
        if role not in _ANTHROPIC_ROLES:
            return _anthropic(f"{where}.role: Input should be 'user' or 'assistant'")
        if "content" not in message:
            return _anthropic(f"{where}.content: Field required")
        if not isinstance(message["content"], str | list):
            return _anthropic(f"{where}.content: Input should be a valid string or a list of content blocks")
    return None


def anthropic_messages(body: dict[str, Any]) -> bytes | None:
    if "max_tokens" not in body:
        return _anthropic("max_tokens: Field required")
    if not _is_int(body["max_tokens"]):
        return _anthropic("max_tokens: Input should be a valid integer")
    return _anthropic_messages(body)


def anthropic_count_tokens(body: dict[str, Any]) -> bytes | None:
    return _anthropic_messages(body)  # the same conversation, without max_tokens


# ---------------------------------------------------------------- Gemini ("* Request.field: problem")


def _gemini(message: str) -> bytes:
    return fmt.gemini_error(400, message)


def _not_specified(request: str, field: str) -> bytes:
    return _gemini(f"* {request}.{field}: {field.rsplit('.', 1)[-1]} is not specified\n")


def _invalid_value(field: str, message_type: str, value: Any) -> bytes:
    shown = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    shown = shown if len(shown) <= 64 else shown[:64] + "…"
    return _gemini(f"Invalid value at '{field}' (type.googleapis.com/google.ai.generativelanguage.v1beta."
                   f"{message_type}), {shown}")


def _gemini_parts(parts: Any, request: str, field: str) -> bytes | None:
    if not parts:
        return _gemini(f"* {request}.{field}: contents.parts must not be empty.\n")
    if not isinstance(parts, list):
        return _invalid_value(field, "Part", parts)
    for index, part in enumerate(parts):
        if not isinstance(part, dict):
            return _invalid_value(f"{field}[{index}]", "Part", part)
    return None


def _gemini_contents(body: dict[str, Any], request: str) -> bytes | None:
    contents = body.get("contents")
    if isinstance(contents, dict):  # the JSON mapping of a repeated field takes a single value too
        contents = [contents]
    if not contents:
        return _not_specified(request, "contents")
    if not isinstance(contents, list):
        return _invalid_value("contents", "Content", contents)
    for index, content in enumerate(contents):
        where = f"contents[{index}]"
        if not isinstance(content, dict):
            return _invalid_value(where, "Content", content)
        if content.get("role", "") not in _GEMINI_ROLES:
            return _gemini("Please use a valid role: user, model.")
        if (bad := _gemini_parts(content.get("parts"), request, f"{where}.parts")) is not None:
            return bad
    return None


def gemini_generate(body: dict[str, Any]) -> bytes | None:
    return _gemini_contents(body, "GenerateContentRequest")


def gemini_count_tokens(body: dict[str, Any]) -> bytes | None:
    inner = body.get("generateContentRequest", body.get("generate_content_request"))
    if inner is None:
        return _gemini_contents(body, "CountTokensRequest")
    if not isinstance(inner, dict):
        return _invalid_value("generate_content_request", "GenerateContentRequest", inner)
    return _gemini_contents(inner, "CountTokensRequest.generate_content_request")


def _gemini_embed(body: dict[str, Any], request: str, field: str = "content") -> bytes | None:
    content = body.get("content")
    if content is None:
        return _not_specified(request, field)
    if not isinstance(content, dict):
        return _invalid_value(field, "Content", content)
    return _gemini_parts(content.get("parts"), request, f"{field}.parts")


def gemini_embed(body: dict[str, Any]) -> bytes | None:
    return _gemini_embed(body, "EmbedContentRequest")


def gemini_batch_embed(body: dict[str, Any]) -> bytes | None:
    requests = body.get("requests")
    if not requests:
        return _not_specified("BatchEmbedContentsRequest", "requests")
    if not isinstance(requests, list):
        return _invalid_value("requests", "EmbedContentRequest", requests)
    for index, item in enumerate(requests):
        if not isinstance(item, dict):
            return _invalid_value(f"requests[{index}]", "EmbedContentRequest", item)
        if (bad := _gemini_embed(item, "BatchEmbedContentsRequest", f"requests[{index}].content")) is not None:
            return bad
    return None


CHECKS: dict[str, Check] = {
    apis.OPENAI_CHAT: openai_chat,
    apis.OPENAI_RESPONSES: openai_responses,
    apis.OPENAI_EMBEDDINGS: openai_embeddings,
    apis.ANTHROPIC_MESSAGES: anthropic_messages,
    apis.ANTHROPIC_COUNT_TOKENS: anthropic_count_tokens,
    apis.GEMINI_GENERATE: gemini_generate,
    apis.GEMINI_COUNT_TOKENS: gemini_count_tokens,
    apis.GEMINI_EMBED: gemini_embed,
    apis.GEMINI_BATCH_EMBED: gemini_batch_embed,
}
