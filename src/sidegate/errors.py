"""The one error type the request pipeline raises; each API surface renders it in its own shape.

The tree, who raises each error, and how it reaches the caller::

    GatewayError(status, code, message, error_type=, param=, headers=)
    │   raised by the edge (edge.py: 400 bad_request, 414, 431), the app (404 not_found,
    │   405 method_not_allowed), authentication (401 missing / invalid / ambiguous credentials),
    │   parsing (ingress/parse.py: 400 invalid_json, 413 request_too_large, 415; formats/base.py:
    │   400 missing_model, streaming_unsupported), tags (400 invalid_request_tags /
    │   missing_request_tags), model-service resolution (404 model_not_found), forwarding (502 upstream_unreachable /
    │   upstream_invalid_response, 503 destinations_unavailable, 504 upstream_timeout), the relay
    │   (502 upstream_stream_interrupted / upstream_idle_timeout), shutdown (503 shutting_down)
    ├── RateLimited (governance/ratelimit.py): 429 rate_limit_exceeded, Retry-After and the
    │   rate-limit headers of the bucket that refused
    ├── GuardrailBlocked (governance/guardrails.py): 400 input_guardrail_triggered /
    │   output_guardrail_triggered, naming the guardrail and category, never the matched text
    ├── TranslationError (translate/errors.py): 400 untranslatable_field / invalid_request_field,
    │   a caller field the destination cannot express or of the wrong JSON type; `param` names it
    └── UnreadableAnswer (translate/errors.py): 502 upstream_invalid_response, a destination's
        answer that is not its API's (a field of the wrong type, an event that is not JSON)

`pipeline.handle` catches every GatewayError (and turns any other exception into a 500
`internal_error`) and answers it in the caller's family (`ingress/registry.py` FAMILIES, rendered by
`ingress/errors.py`):

- openai: `{"error": {"message", "type": error_type, "param", "code"}}`; in a chat stream the same
  object as a `data:` event; a Responses stream ends with `error` and `response.failed` events.
- anthropic: `{"type": "error", "error": {"type", "message", "code"}, "request_id"}`, the type named
  after the status (`rate_limit_error`, `overloaded_error`, …); in a stream an `event: error`.
- gemini: `{"error": {"code": status, "message", "status": "INVALID_ARGUMENT"…, "details":
  [ErrorInfo with reason = code]}}`; in a stream the same object as a `data:` event.

An error the upstream itself answered is no GatewayError: it is relayed as is when the caller
speaks the destination's format, else read into a neutral `translate.errors.ApiError` (its
`category`: invalid_request, rate_limit, overloaded, …) and written in the caller's shape by the
caller's codec.
"""

from __future__ import annotations


class GatewayError(Exception):
    """A request that sidegate answers itself, with an HTTP status and a stable machine `code`.

    `error_type` is the OpenAI-style error type (invalid_request_error, authentication_error, …);
    the Anthropic and Gemini renderers derive their own type/status names from `status`.
    """

    __slots__ = ("code", "error_type", "headers", "message", "param", "status")

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        error_type: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.error_type = error_type or default_error_type(status)
        self.param = param
        self.headers = headers


_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
    501: "not_implemented_error",
}


def default_error_type(status: int) -> str:
    if status in _ERROR_TYPES:
        return _ERROR_TYPES[status]
    return "server_error" if status >= 500 else "invalid_request_error"
