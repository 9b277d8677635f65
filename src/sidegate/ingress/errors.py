"""sidegate's own errors (`GatewayError`) rendered in each family's shape, as a whole body and as the
event that ends a stream, and the error code read from an upstream's error body for the usage row.
`registry.FAMILIES` names them per family."""

from __future__ import annotations

import orjson

from sidegate.errors import GatewayError

# ------------------------------------------------------------------ OpenAI


def openai_render(err: GatewayError, request_id: str) -> bytes:
    return orjson.dumps(
        {"error": {"message": err.message, "type": err.error_type, "param": err.param, "code": err.code}}
    )


def openai_stream_error(err: GatewayError, request_id: str) -> bytes:
    return b"data: " + openai_render(err, request_id) + b"\n\n"


def responses_stream_error(err: GatewayError, request_id: str) -> bytes:
    """The Responses API's own ending of a failed stream (it has no `data: {"error": …}`): an `error`
    event, then `response.failed` with the error in the response object, which is what clients such
    as Codex read to report the failure."""
    event = {"type": "error", "code": err.code, "message": err.message, "param": err.param}
    failed = {"type": "response.failed", "response": {
        "id": f"resp_{request_id}", "object": "response", "status": "failed", "output": [],
        "error": {"code": err.code, "message": err.message}}}
    return (b"event: error\ndata: " + orjson.dumps(event) + b"\n\n"
            b"event: response.failed\ndata: " + orjson.dumps(failed) + b"\n\n")


# ------------------------------------------------------------------ Anthropic

_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def anthropic_render(err: GatewayError, request_id: str) -> bytes:
    error_type = _ANTHROPIC_TYPES.get(err.status) or ("api_error" if err.status >= 500 else "invalid_request_error")
    return orjson.dumps({"type": "error", "error": {"type": error_type, "message": err.message, "code": err.code},
                         "request_id": request_id})


def anthropic_stream_error(err: GatewayError, request_id: str) -> bytes:
    return b"event: error\ndata: " + anthropic_render(err, request_id) + b"\n\n"


# ------------------------------------------------------------------ Gemini (Google API errors)

_GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "INVALID_ARGUMENT",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    415: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def gemini_render(err: GatewayError, request_id: str) -> bytes:
    status = _GOOGLE_STATUS.get(err.status) or ("INTERNAL" if err.status >= 500 else "FAILED_PRECONDITION")
    return orjson.dumps({"error": {
        "code": err.status,
        "message": err.message,
        "status": status,
        "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": err.code,
                     "domain": "sidegate", "metadata": {"request_id": request_id}}],
    }})


def gemini_stream_error(err: GatewayError, request_id: str) -> bytes:
    return b"data: " + gemini_render(err, request_id) + b"\n\n"

