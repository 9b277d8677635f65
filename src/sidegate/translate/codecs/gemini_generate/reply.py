"""Gemini generateContent answers ↔ neutral: the GenerateContentResponse, usageMetadata, errors.

Gemini reports `STOP` also when the turn ends in function calls; the neutral finish is then
`tool_calls`. A prompt blocked before generation (`promptFeedback.blockReason`, no candidates) is a
content-filter finish with no parts.
"""

from __future__ import annotations

from typing import Any

from sidegate.formats.base import TokenUsage
from sidegate.formats.gemini import gemini_usage
from sidegate.translate import carry
from sidegate.translate import errors as e
from sidegate.translate import neutral as n
from sidegate.translate.fields import bool_field, checked_usage, obj_field, objects, str_field, want_str
from sidegate.translate.neutral import Part, Response, Text, Thinking, ToolCall
from sidegate.translate.wire import args_text, new_id, now, str_or, tool_input

FAMILY = "gemini"
_FILTERED = ("SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY",
             "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION", "IMAGE_OTHER", "LANGUAGE")
FINISH_IN = {"STOP": n.STOP, "MAX_TOKENS": n.LENGTH, "MALFORMED_FUNCTION_CALL": n.ERROR, "OTHER": n.STOP,
             "UNEXPECTED_TOOL_CALL": n.ERROR, **{name: n.CONTENT_FILTER for name in _FILTERED}}
FINISH_OUT = {n.STOP: "STOP", n.STOP_SEQUENCE: "STOP", n.TOOL_CALLS: "STOP", n.LENGTH: "MAX_TOKENS",
              n.CONTENT_FILTER: "SAFETY", n.ERROR: "OTHER"}
ERROR_CATEGORIES = {"INVALID_ARGUMENT": e.INVALID_REQUEST, "FAILED_PRECONDITION": e.INVALID_REQUEST,
               "OUT_OF_RANGE": e.INVALID_REQUEST, "UNAUTHENTICATED": e.AUTHENTICATION,
               "PERMISSION_DENIED": e.PERMISSION, "NOT_FOUND": e.NOT_FOUND, "RESOURCE_EXHAUSTED": e.RATE_LIMIT,
               "UNAVAILABLE": e.OVERLOADED, "DEADLINE_EXCEEDED": e.TIMEOUT, "INTERNAL": e.SERVER}
STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 402: "FAILED_PRECONDITION", 403: "PERMISSION_DENIED",
                404: "NOT_FOUND", 408: "DEADLINE_EXCEEDED", 409: "ABORTED", 413: "INVALID_ARGUMENT",
                429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 500: "INTERNAL", 501: "UNIMPLEMENTED",
                502: "UNAVAILABLE", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


def usage_in(meta: Any) -> TokenUsage | None:
    return checked_usage(gemini_usage(meta), "usageMetadata")


def usage_out(usage: TokenUsage | None) -> dict[str, Any]:
    u = usage or TokenUsage()
    out: dict[str, Any] = {"promptTokenCount": u.input, "candidatesTokenCount": max(u.output - u.reasoning, 0),
                           "totalTokenCount": u.input + u.output}
    if u.cache_read:
        out["cachedContentTokenCount"] = u.cache_read
    if u.reasoning:
        out["thoughtsTokenCount"] = u.reasoning
    return out


def signature_in(part: dict[str, Any], field: str) -> tuple[str | None, str | None]:
    """(origin, token) of a part's thoughtSignature."""
    value = str_field(part, "thoughtSignature", field)
    if not value:
        return None, None
    carried = carry.uncarry_b64(value)
    return (carried[0], carried[1]) if carried else (FAMILY, value)


def signature_out(origin: str | None, token: str | None) -> str | None:
    if not token:
        return None
    return token if origin == FAMILY else carry.carry_b64(origin or "unknown", token)


def decode_part(part: dict[str, Any], field: str, next_id: Any) -> Part | None:
    if "text" in part:
        text = want_str(part["text"], f"{field}.text")
        if bool_field(part, "thought", field):
            origin, token = signature_in(part, field)
            return Thinking(text, token, origin)
        return Text(text)
    call = obj_field(part, "functionCall", field)
    if call is not None:
        where = f"{field}.functionCall"
        origin, token = signature_in(part, field)
        return ToolCall(str_field(call, "id", where) or next_id(), str_field(call, "name", where) or "",
                        args_text(obj_field(call, "args", where)), signature=token, origin=origin)
    return None


def first_candidate(obj: dict[str, Any]) -> tuple[bool, dict[str, Any], list[tuple[str, dict[str, Any]]]]:
    """(whether there are candidates, the first one, the (path, part) of its parts)."""
    candidates = objects(obj, "candidates")
    if not candidates:
        return False, {}, []
    where, cand = candidates[0]
    content = obj_field(cand, "content", where)
    return True, cand, objects(content, "parts", f"{where}.content") if content is not None else []


def blocked(obj: dict[str, Any]) -> bool:
    """A prompt refused before generation (no candidates, promptFeedback.blockReason)."""
    feedback = obj_field(obj, "promptFeedback")
    return feedback is not None and bool(str_field(feedback, "blockReason", "promptFeedback"))


def finish_in(reason: Any, has_calls: bool) -> str | None:
    if not isinstance(reason, str):
        return None
    finish = FINISH_IN.get(reason, n.STOP)
    return n.TOOL_CALLS if finish == n.STOP and has_calls else finish


def decode_response(obj: dict[str, Any]) -> Response:
    any_candidate, cand, raw_parts = first_candidate(obj)
    parts = [p for where, raw in raw_parts if (p := decode_part(raw, where, lambda: new_id("call_"))) is not None]
    finish = finish_in(str_field(cand, "finishReason", "candidates[0]"), any(isinstance(p, ToolCall) for p in parts))
    if not any_candidate and blocked(obj):
        finish = n.CONTENT_FILTER
    return Response(
        id=str_field(obj, "responseId") or new_id(""),
        model=str_field(obj, "modelVersion") or "",
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
    message = str_or(error.get("message"), "") or None
    return e.upstream_error(status, message, ERROR_CATEGORIES.get(str(name)), str(name) if name else None)


def error_object(err: e.ApiError) -> dict[str, Any]:
    status = err.status_for(FAMILY)
    name = STATUS_NAMES.get(status) or ("INTERNAL" if status >= 500 else "FAILED_PRECONDITION")
    return {"error": {"code": status, "message": err.message, "status": name}}


def encode_error(err: e.ApiError) -> tuple[int, dict[str, Any]]:
    return err.status_for(FAMILY), error_object(err)
