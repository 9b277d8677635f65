"""Anthropic Messages answers ↔ neutral: the message object, its usage, its error body."""

from __future__ import annotations

from typing import Any

import orjson

from sidegate.formats.anthropic import messages_usage
from sidegate.formats.base import TokenUsage
from sidegate.translate import carry
from sidegate.translate import errors as e
from sidegate.translate import neutral as n
from sidegate.translate.fields import checked_usage, obj_field, objects, str_field
from sidegate.translate.neutral import Part, Response, Text, Thinking, ToolCall
from sidegate.translate.wire import new_id, now, safe_tool_id, str_or, tool_input

FAMILY = "anthropic"
FINISH_IN = {"end_turn": n.STOP, "stop_sequence": n.STOP_SEQUENCE, "max_tokens": n.LENGTH, "tool_use": n.TOOL_CALLS,
             "refusal": n.CONTENT_FILTER, "pause_turn": n.STOP, "model_context_window_exceeded": n.LENGTH}
FINISH_OUT = {n.STOP: "end_turn", n.STOP_SEQUENCE: "stop_sequence", n.LENGTH: "max_tokens",
              n.TOOL_CALLS: "tool_use", n.CONTENT_FILTER: "refusal", n.ERROR: "end_turn"}
ERROR_CATEGORIES = {"invalid_request_error": e.INVALID_REQUEST, "authentication_error": e.AUTHENTICATION,
               "billing_error": e.BILLING, "permission_error": e.PERMISSION, "not_found_error": e.NOT_FOUND,
               "request_too_large": e.TOO_LARGE, "rate_limit_error": e.RATE_LIMIT, "api_error": e.SERVER,
               "overloaded_error": e.OVERLOADED, "timeout_error": e.TIMEOUT}
ERROR_TYPES = {type_name: name for name, type_name in ERROR_CATEGORIES.items()}


def usage_in(usage: Any, into: TokenUsage | None = None) -> TokenUsage | None:
    """The format's one usage reader (`formats.anthropic`), range-checked."""
    return checked_usage(messages_usage(usage, into), "usage")


def usage_out(usage: TokenUsage | None) -> dict[str, Any]:
    u = usage or TokenUsage()
    out: dict[str, Any] = {
        "input_tokens": max(u.input - u.cache_read - u.cache_creation, 0),
        "cache_creation_input_tokens": u.cache_creation,
        "cache_read_input_tokens": u.cache_read,
        "output_tokens": u.output,
    }
    if u.reasoning:
        out["output_tokens_details"] = {"thinking_tokens": u.reasoning}
    return out


def decode_block(block: dict[str, Any], field: str) -> Part | None:
    type_name = str_field(block, "type", field)
    if type_name == "text":
        return Text(str_field(block, "text", field) or "")
    if type_name == "thinking":
        return Thinking(str_field(block, "thinking", field) or "", str_field(block, "signature", field) or None,
                        FAMILY)
    if type_name == "redacted_thinking":
        return Thinking("", str_field(block, "data", field) or None, FAMILY, redacted=True)
    if type_name == "tool_use":
        return ToolCall(str_field(block, "id", field) or new_id("toolu_"), str_field(block, "name", field) or "",
                        orjson.dumps(obj_field(block, "input", field) or {}).decode())
    return None  # server-tool blocks: sidegate never offers server tools across formats


def decode_response(obj: dict[str, Any]) -> Response:
    parts = [part for where, block in objects(obj, "content") if (part := decode_block(block, where))]
    reason = str_field(obj, "stop_reason")
    return Response(
        id=str_field(obj, "id") or new_id("msg_"),
        model=str_field(obj, "model") or "",
        created=now(),
        parts=parts,
        finish=FINISH_IN.get(reason, n.STOP) if reason is not None else None,
        usage=usage_in(obj.get("usage")),
        stop_sequence=str_field(obj, "stop_sequence"),
    )


def message_id(source_id: str) -> str:
    return source_id if source_id.startswith("msg_") else "msg_" + safe_tool_id(source_id)


def thinking_block(part: Thinking) -> dict[str, Any]:
    if part.redacted and part.origin == FAMILY:
        return {"type": "redacted_thinking", "data": part.signature or ""}
    return {"type": "thinking", "thinking": part.text,
            "signature": carry.outgoing(part.origin, part.signature, FAMILY) or ""}


def block_out(part: Part) -> dict[str, Any] | None:
    if isinstance(part, Text):
        return {"type": "text", "text": part.text}
    if isinstance(part, ToolCall):
        return {"type": "tool_use", "id": safe_tool_id(part.id), "name": part.name, "input": tool_input(part.arguments)}
    if isinstance(part, Thinking):
        return thinking_block(part)
    return None


def stop_fields(finish: str | None, stop_sequence: str | None) -> tuple[str | None, str | None]:
    if finish is None:
        return None, None
    if finish == n.STOP_SEQUENCE and stop_sequence is None:
        return "end_turn", None
    return FINISH_OUT.get(finish, "end_turn"), stop_sequence if finish == n.STOP_SEQUENCE else None


def encode_response(resp: Response, req: n.Request, model: str) -> dict[str, Any]:
    reason, sequence = stop_fields(resp.finish or n.STOP, resp.stop_sequence)
    return {
        "id": message_id(resp.id),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [b for p in resp.parts if (b := block_out(p)) is not None],
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": usage_out(resp.usage),
    }


def decode_error(status: int, obj: dict[str, Any]) -> e.ApiError:
    error = obj.get("error") if isinstance(obj.get("error"), dict) else {}
    assert isinstance(error, dict)
    type_name = error.get("type")
    message = str_or(error.get("message"), "") or None
    code = str(type_name) if type_name else None
    return e.upstream_error(status, message, ERROR_CATEGORIES.get(str(type_name)), code)


def error_object(err: e.ApiError) -> dict[str, Any]:
    return {"type": "error", "error": {"type": ERROR_TYPES.get(err.category, "api_error"), "message": err.message}}


def encode_error(err: e.ApiError) -> tuple[int, dict[str, Any]]:
    return err.status_for(FAMILY), error_object(err)
