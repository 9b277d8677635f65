"""Gemini generateContent answers ↔ neutral: the GenerateContentResponse, usageMetadata, errors.

Gemini reports `STOP` also when the turn ends in function calls; the neutral finish is then
`tool_calls`. A prompt blocked before generation (`promptFeedback.blockReason`, no candidates) is a
content-filter finish with no parts.
"""

from __future__ import annotations

from typing import Any

from sidegate.ingress.base import TokenUsage
from sidegate.ingress.gemini import gemini_usage
from sidegate.translate import carry
from sidegate.translate import errors as e
from sidegate.translate import neutral as n
from sidegate.translate.neutral import Part, Response, Text, Thinking, ToolCall
from sidegate.translate.wire import args_text, new_id, now, str_or, tool_input

FAMILY = "gemini"
_FILTERED = ("SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY",
             "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION", "IMAGE_OTHER", "LANGUAGE")
FINISH_IN = {"STOP": n.STOP, "MAX_TOKENS": n.LENGTH, "MALFORMED_FUNCTION_CALL": n.ERROR, "OTHER": n.STOP,
             "UNEXPECTED_TOOL_CALL": n.ERROR, **{name: n.CONTENT_FILTER for name in _FILTERED}}
FINISH_OUT = {n.STOP: "STOP", n.STOP_SEQUENCE: "STOP", n.TOOL_CALLS: "STOP", n.LENGTH: "MAX_TOKENS",
              n.CONTENT_FILTER: "SAFETY", n.ERROR: "OTHER"}
ERROR_KINDS = {"INVALID_ARGUMENT": e.INVALID_REQUEST, "FAILED_PRECONDITION": e.INVALID_REQUEST,
               "OUT_OF_RANGE": e.INVALID_REQUEST, "UNAUTHENTICATED": e.AUTHENTICATION,
               "PERMISSION_DENIED": e.PERMISSION, "NOT_FOUND": e.NOT_FOUND, "RESOURCE_EXHAUSTED": e.RATE_LIMIT,
               "UNAVAILABLE": e.OVERLOADED, "DEADLINE_EXCEEDED": e.TIMEOUT, "INTERNAL": e.SERVER}
STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 402: "FAILED_PRECONDITION", 403: "PERMISSION_DENIED",
                404: "NOT_FOUND", 408: "DEADLINE_EXCEEDED", 409: "ABORTED", 413: "INVALID_ARGUMENT",
                429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 500: "INTERNAL", 501: "UNIMPLEMENTED",
                502: "UNAVAILABLE", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


def usage_in(meta: Any) -> TokenUsage | None:
    return gemini_usage(meta)


def usage_out(usage: TokenUsage | None) -> dict[str, Any]:
    u = usage or TokenUsage()
    out: dict[str, Any] = {"promptTokenCount": u.input, "candidatesTokenCount": max(u.output - u.reasoning, 0),
                           "totalTokenCount": u.input + u.output}
    if u.cache_read:
        out["cachedContentTokenCount"] = u.cache_read
    if u.reasoning:
        out["thoughtsTokenCount"] = u.reasoning
    return out


def signature_in(value: Any) -> tuple[str | None, str | None]:
    if not isinstance(value, str) or not value:
        return None, None
    carried = carry.uncarry_b64(value)
    return (carried[0], carried[1]) if carried else (FAMILY, value)


def signature_out(origin: str | None, token: str | None) -> str | None:
    if not token:
        return None
    return token if origin == FAMILY else carry.carry_b64(origin or "unknown", token)


def decode_part(part: dict[str, Any], next_id: Any) -> Part | None:
    if "text" in part:
        if part.get("thought") is True:
            origin, token = signature_in(part.get("thoughtSignature"))
            return Thinking(str(part["text"]), token, origin)
        return Text(str(part["text"]))
    call = part.get("functionCall")
    if isinstance(call, dict):
        origin, token = signature_in(part.get("thoughtSignature"))
        return ToolCall(str_or(call.get("id"), "") or next_id(), str(call.get("name") or ""),
                        args_text(call.get("args")), signature=token, origin=origin)
    return None


def finish_in(reason: Any, has_calls: bool) -> str | None:
    if not isinstance(reason, str):
        return None
    finish = FINISH_IN.get(reason, n.STOP)
    return n.TOOL_CALLS if finish == n.STOP and has_calls else finish


def decode_response(obj: dict[str, Any]) -> Response:
    candidates = obj.get("candidates") or []
    candidate = candidates[0] if candidates and isinstance(candidates[0], dict) else {}
    parts = [p for raw in (candidate.get("content") or {}).get("parts") or ()
             if isinstance(raw, dict) and (p := decode_part(raw, lambda: new_id("call_"))) is not None]
    finish = finish_in(candidate.get("finishReason"), any(isinstance(p, ToolCall) for p in parts))
    if not candidates and (obj.get("promptFeedback") or {}).get("blockReason"):
        finish = n.CONTENT_FILTER
    return Response(
        id=str(obj.get("responseId") or new_id("")),
        model=str(obj.get("modelVersion") or ""),
        created=now(),
        parts=parts,
        finish=finish,
        usage=usage_in(obj.get("usageMetadata")),
    )


def part_out(part: Part) -> dict[str, Any] | None:
    if isinstance(part, Text):
        return {"text": part.text}
    if isinstance(part, ToolCall):
        out: dict[str, Any] = {"functionCall": {"id": part.id, "name": part.name, "args": tool_input(part.arguments)}}
        token = signature_out(part.origin, part.signature)
        if token:
            out["thoughtSignature"] = token
        return out
    if isinstance(part, Thinking) and not part.redacted:
        thought: dict[str, Any] = {"text": part.text, "thought": True}
        token = signature_out(part.origin, part.signature)
        if token:
            thought["thoughtSignature"] = token
        return thought
    return None


def candidate(parts: list[dict[str, Any]], finish: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish is not None:
        out["finishReason"] = FINISH_OUT.get(finish, "STOP")
    return out


def encode_response(resp: Response, req: n.Request, model: str) -> dict[str, Any]:
    parts = [p for part in resp.parts if (p := part_out(part)) is not None]
    return {
        "candidates": [candidate(parts, resp.finish or n.STOP)],
        "usageMetadata": usage_out(resp.usage),
        "modelVersion": model,
        "responseId": resp.id,
    }


def decode_error(status: int, obj: dict[str, Any]) -> e.ApiError:
    error = obj.get("error") if isinstance(obj.get("error"), dict) else {}
    assert isinstance(error, dict)
    name = error.get("status")
    return e.upstream_error(status, error.get("message"), ERROR_KINDS.get(str(name)), str(name) if name else None)


def error_object(err: e.ApiError) -> dict[str, Any]:
    status = err.status_for(FAMILY)
    name = STATUS_NAMES.get(status) or ("INTERNAL" if status >= 500 else "FAILED_PRECONDITION")
    return {"error": {"code": status, "message": err.message, "status": name}}


def encode_error(err: e.ApiError) -> tuple[int, dict[str, Any]]:
    return err.status_for(FAMILY), error_object(err)
