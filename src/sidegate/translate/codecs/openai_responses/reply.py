"""Neutral answers → OpenAI Responses objects: output items (reasoning, message, function_call,
custom_tool_call), status and incomplete details, usage, and the request fields a Response repeats.

A call to a tool the caller declared as `custom` comes back as a `custom_tool_call` whose `input`
is the one string argument the destination was given to fill. Thinking becomes a `reasoning` item:
its text as the summary, its signature (when the destination minted one) carried in
`encrypted_content`, so that Codex, which sends reasoning items back, keeps Anthropic's thinking
valid across a tool loop.
"""

from __future__ import annotations

from typing import Any

import orjson

from sidegate.formats.base import TokenUsage
from sidegate.translate import carry
from sidegate.translate import errors as e
from sidegate.translate import neutral as n
from sidegate.translate.codecs.openai_chat.reply import error_object as chat_error_object
from sidegate.translate.schema import CUSTOM_INPUT, NAMESPACE_SEP
from sidegate.translate.wire import new_id

INCOMPLETE = {n.LENGTH: "max_output_tokens", n.CONTENT_FILTER: "content_filter"}
ERROR_CODES = {e.RATE_LIMIT: "rate_limit_exceeded", e.INVALID_REQUEST: "invalid_prompt"}


def usage_out(usage: TokenUsage | None) -> dict[str, Any]:
    u = usage or TokenUsage()
    return {
        "input_tokens": u.input,
        "input_tokens_details": {"cached_tokens": u.cache_read, "cache_write_tokens": u.cache_creation},
        "output_tokens": u.output,
        "output_tokens_details": {"reasoning_tokens": u.reasoning},
        "total_tokens": u.input + u.output,
    }


def response_id(source_id: str) -> str:
    return source_id if source_id.startswith("resp_") else "resp_" + source_id.replace("-", "")


def status_of(finish: str | None) -> tuple[str, dict[str, Any] | None]:
    reason = INCOMPLETE.get(finish or "")
    return ("incomplete", {"reason": reason}) if reason else ("completed", None)


def skeleton(req: n.Request, resp_id: str, created: int, model: str) -> dict[str, Any]:
    """A Response object with the request's echoed fields, no output yet (status in_progress)."""
    echo = req.echo
    return {
        "id": resp_id, "object": "response", "created_at": created, "status": "in_progress", "error": None,
        "incomplete_details": None, "instructions": echo.get("instructions"),
        "max_output_tokens": echo.get("max_output_tokens"), "model": model, "output": [],
        "parallel_tool_calls": echo.get("parallel_tool_calls", True), "previous_response_id": None,
        "reasoning": echo.get("reasoning") or {"effort": None, "summary": None},
        "store": echo.get("store", False), "temperature": echo.get("temperature"),
        "text": echo.get("text") or {"format": {"type": "text"}}, "tool_choice": echo.get("tool_choice", "auto"),
        "tools": echo.get("tools", []), "top_p": echo.get("top_p"), "truncation": echo.get("truncation", "disabled"),
        "usage": None, "user": echo.get("user"), "metadata": echo.get("metadata") or {},
    }


def custom_names(req: n.Request) -> frozenset[str]:
    return frozenset(tool.name for tool in req.tools if tool.custom)


def namespaces(req: n.Request) -> dict[str, tuple[str, str]]:
    """Flat tool name → (namespace, name), for the namespaced tools the caller offered."""
    out: dict[str, tuple[str, str]] = {}
    tools = req.echo.get("tools")
    for tool in tools if isinstance(tools, list) else ():
        if isinstance(tool, dict) and tool.get("type") == "namespace":
            space = str(tool.get("name"))
            for inner in tool.get("tools") or ():
                if isinstance(inner, dict):
                    out[f"{space}{NAMESPACE_SEP}{inner.get('name')}"] = (space, str(inner.get("name")))
    return out


def custom_input(arguments: str) -> str:
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return arguments
    return str(value.get(CUSTOM_INPUT, "")) if isinstance(value, dict) else arguments


def reasoning_item(item_id: str, text: str, origin: str | None, signature: str | None,
                   status: str = "completed") -> dict[str, Any]:
    item: dict[str, Any] = {"id": item_id, "type": "reasoning", "status": status,
                            "summary": [{"type": "summary_text", "text": text}] if text else []}
    if signature:
        item["encrypted_content"] = carry.carry(origin or "unknown", signature)
    return item


def message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    done = status == "completed"
    content = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}] if done else []
    return {"id": item_id, "type": "message", "status": status, "role": "assistant", "content": content}


def call_item(item_id: str, call_id: str, name: str, arguments: str, custom: bool, status: str = "completed",
              namespace: tuple[str, str] | None = None) -> dict[str, Any]:
    if custom:
        item = {"id": item_id, "type": "custom_tool_call", "call_id": call_id, "name": name,
                "input": custom_input(arguments) if status == "completed" else ""}
    else:
        item = {"id": item_id, "type": "function_call", "status": status, "call_id": call_id, "name": name,
                "arguments": arguments if status == "completed" else ""}
    if namespace is not None:
        item["namespace"], item["name"] = namespace
    return item


def output_items(parts: list[n.Part], customs: frozenset[str],
                 spaces: dict[str, tuple[str, str]]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    text: list[str] = []

    def flush() -> None:
        if text:
            items.append(message_item(new_id("msg_"), "".join(text)))
            text.clear()

    for part in parts:
        if isinstance(part, n.Text):
            text.append(part.text)
            continue
        flush()
        if isinstance(part, n.Thinking):
            items.append(reasoning_item(new_id("rs_"), part.text, part.origin, part.signature))
        elif isinstance(part, n.ToolCall):
            items.append(call_item(new_id("fc_"), part.id, part.name, part.arguments, part.name in customs,
                                   namespace=spaces.get(part.name)))
    flush()
    return items


def encode_response(resp: n.Response, req: n.Request, model: str) -> dict[str, Any]:
    obj = skeleton(req, response_id(resp.id), resp.created, model)
    status, details = status_of(resp.finish)
    output = output_items(resp.parts, custom_names(req), namespaces(req))
    obj.update(status=status, incomplete_details=details, output=output, usage=usage_out(resp.usage))
    return obj


def encode_error(err: e.ApiError) -> tuple[int, dict[str, Any]]:
    return err.status_for("openai"), chat_error_object(err)


def failure(err: e.ApiError) -> dict[str, Any]:
    """The `error` of a failed Response (its codes are a fixed set)."""
    return {"code": ERROR_CODES.get(err.category, "server_error"), "message": err.message}
