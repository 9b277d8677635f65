"""OpenAI Chat Completions answers ↔ neutral: the completion object, its usage, its error body."""

from __future__ import annotations

from typing import Any

from sidegate.errors import default_kind
from sidegate.ingress.base import TokenUsage, as_int
from sidegate.translate import neutral as n
from sidegate.translate.errors import BILLING, ApiError, upstream_error
from sidegate.translate.neutral import Part, Response, Text, Thinking, ToolCall
from sidegate.translate.wire import new_id, now

FINISH_IN = {"stop": n.STOP, "length": n.LENGTH, "tool_calls": n.TOOL_CALLS, "function_call": n.TOOL_CALLS,
             "content_filter": n.CONTENT_FILTER}
FINISH_OUT = {n.STOP: "stop", n.STOP_SEQUENCE: "stop", n.LENGTH: "length", n.TOOL_CALLS: "tool_calls",
              n.CONTENT_FILTER: "content_filter", n.ERROR: "stop"}
THINKING_KEYS = ("reasoning_content", "reasoning")  # non-standard, as vLLM / Ollama / DeepSeek send it


def _details(usage: dict[str, Any], key: str, field: str) -> int:
    details = usage.get(key)
    return as_int(details.get(field)) if isinstance(details, dict) else 0


def usage_in(usage: Any) -> TokenUsage | None:
    if not isinstance(usage, dict):
        return None
    return TokenUsage(
        input=as_int(usage.get("prompt_tokens")),
        output=as_int(usage.get("completion_tokens")),
        cache_read=_details(usage, "prompt_tokens_details", "cached_tokens"),
        cache_creation=_details(usage, "prompt_tokens_details", "cache_write_tokens"),
        reasoning=_details(usage, "completion_tokens_details", "reasoning_tokens"),
    )


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


def decode_response(obj: dict[str, Any]) -> Response:
    choices = obj.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    parts: list[Part] = []
    for key in THINKING_KEYS:
        if isinstance(message.get(key), str) and message[key]:
            parts.append(Thinking(message[key]))
            break
    if isinstance(message.get("content"), str) and message["content"]:
        parts.append(Text(message["content"]))
    if isinstance(message.get("refusal"), str) and message["refusal"]:
        parts.append(Text(message["refusal"]))
    for k, call in enumerate(message.get("tool_calls") or ()):
        fn = call.get("function") or {}
        args = fn.get("arguments")
        parts.append(ToolCall(str(call.get("id") or new_id("call_")), str(fn.get("name") or f"tool_{k}"),
                              args if isinstance(args, str) else "{}"))
    reason = choice.get("finish_reason")
    finish = FINISH_IN.get(reason, n.STOP) if isinstance(reason, str) else None
    if message.get("refusal") and finish == n.STOP:
        finish = n.CONTENT_FILTER
    return Response(
        id=str(obj.get("id") or new_id("chatcmpl-", 29)),
        model=str(obj.get("model") or ""),
        created=as_int(obj.get("created")) or now(),
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
    kind = BILLING if code == "insufficient_quota" else None
    return upstream_error(status, error.get("message"), kind, str(code) if code else None)


_TYPES = {BILLING: "insufficient_quota"}


def error_object(err: ApiError) -> dict[str, Any]:
    status = err.status_for("openai")
    return {"error": {"message": err.message, "type": _TYPES.get(err.kind) or default_kind(status), "param": None,
                      "code": err.code or err.kind}}


def encode_error(err: ApiError) -> tuple[int, dict[str, Any]]:
    return err.status_for("openai"), error_object(err)
