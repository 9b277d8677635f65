"""OpenAI Chat Completions answers ↔ neutral: the completion object, its usage, its error body."""

from __future__ import annotations

from typing import Any

from sidegate.errors import default_error_type
from sidegate.formats.base import TokenUsage
from sidegate.formats.openai import chat_usage
from sidegate.translate import neutral as n
from sidegate.translate.errors import BILLING, ApiError, upstream_error
from sidegate.translate.fields import checked_usage, int_field, obj_field, objects, str_field
from sidegate.translate.neutral import Part, Response, Text, Thinking, ToolCall
from sidegate.translate.wire import new_id, now, str_or

FINISH_IN = {"stop": n.STOP, "length": n.LENGTH, "tool_calls": n.TOOL_CALLS, "function_call": n.TOOL_CALLS,
             "content_filter": n.CONTENT_FILTER}
FINISH_OUT = {n.STOP: "stop", n.STOP_SEQUENCE: "stop", n.LENGTH: "length", n.TOOL_CALLS: "tool_calls",
              n.CONTENT_FILTER: "content_filter", n.ERROR: "stop"}
THINKING_KEYS = ("reasoning_content", "reasoning")  # non-standard, as vLLM / Ollama / DeepSeek send it


def usage_in(usage: Any) -> TokenUsage | None:
    """The format's one usage reader (`formats.openai`), range-checked."""
    return checked_usage(chat_usage(usage), "usage")


def usage_out(usage: TokenUsage | None) -> dict[str, Any]:
    u = usage or TokenUsage()
    prompt_details: dict[str, int] = {"cached_tokens": u.cache_read}
    if u.cache_creation:
        prompt_details["cache_write_tokens"] = u.cache_creation
    return {
        "prompt_tokens": u.input,
        "completion_tokens": u.output,
        "total_tokens": u.input + u.output,
        "prompt_tokens_details": prompt_details,
        "completion_tokens_details": {"reasoning_tokens": u.reasoning},
    }


def message_parts(message: dict[str, Any], field: str, parts: list[Part]) -> None:
    """Thinking, text and refusal of a chat message (or a stream delta), in that order."""
    for key in THINKING_KEYS:
        if thinking := str_field(message, key, field):
            parts.append(Thinking(thinking))
            break
    if content := str_field(message, "content", field):
        parts.append(Text(content))
    if refusal := str_field(message, "refusal", field):
        parts.append(Text(refusal))


def first_choice(obj: dict[str, Any]) -> dict[str, Any]:
    choices = objects(obj, "choices")
    return choices[0][1] if choices else {}


def decode_response(obj: dict[str, Any]) -> Response:
    choice = first_choice(obj)
    message = obj_field(choice, "message", "choices[0]") or {}
    parts: list[Part] = []
    message_parts(message, "choices[0].message", parts)
    for k, (where, call) in enumerate(objects(message, "tool_calls", "choices[0].message")):
        fn = obj_field(call, "function", where) or {}
        args = str_field(fn, "arguments", f"{where}.function")
        parts.append(ToolCall(str_field(call, "id", where) or new_id("call_"),
                              str_field(fn, "name", f"{where}.function") or f"tool_{k}", args or "{}"))
    reason = str_field(choice, "finish_reason", "choices[0]")
    finish = FINISH_IN.get(reason, n.STOP) if reason is not None else None
    if message.get("refusal") and finish == n.STOP:
        finish = n.CONTENT_FILTER
    return Response(
        id=str_field(obj, "id") or new_id("chatcmpl-", 29),
        model=str_field(obj, "model") or "",
        created=int_field(obj, "created") or now(),
        parts=parts,
        finish=finish,
        usage=usage_in(obj.get("usage")),
    )


def chat_id(source_id: str) -> str:
    return source_id if source_id.startswith("chatcmpl-") else "chatcmpl-" + source_id


def tool_call_out(call: ToolCall) -> dict[str, Any]:
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}


def encode_response(resp: Response, req: n.Request, model: str) -> dict[str, Any]:
    calls = [tool_call_out(p) for p in resp.parts if isinstance(p, ToolCall)]
    text = n.response_text(resp.parts)
    message: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else ""), "refusal": None}
    thinking = "".join(p.text for p in resp.parts if isinstance(p, Thinking) and not p.redacted)
    if thinking:
        message["reasoning_content"] = thinking
    if calls:
        message["tool_calls"] = calls
    return {
        "id": chat_id(resp.id),
        "object": "chat.completion",
        "created": resp.created,
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": FINISH_OUT.get(resp.finish or n.STOP, "stop")}],
        "usage": usage_out(resp.usage),
    }


def decode_error(status: int, obj: dict[str, Any]) -> ApiError:
    error = obj.get("error") if isinstance(obj.get("error"), dict) else {}
    assert isinstance(error, dict)
    code = error.get("code") or error.get("type")
    category = BILLING if code == "insufficient_quota" else None
    return upstream_error(status, str_or(error.get("message"), "") or None, category, str(code) if code else None)


_TYPES = {BILLING: "insufficient_quota"}


def error_object(err: ApiError) -> dict[str, Any]:
    status = err.status_for("openai")
    error_type = _TYPES.get(err.category) or default_error_type(status)
    return {"error": {"message": err.message, "type": error_type, "param": None,
                      "code": err.code or err.category}}


def encode_error(err: ApiError) -> tuple[int, dict[str, Any]]:
    return err.status_for("openai"), error_object(err)
