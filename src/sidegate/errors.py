"""The one error type the request pipeline raises; each API surface renders it in its own shape."""

from __future__ import annotations


class GatewayError(Exception):
    """A request that sidegate answers itself, with an HTTP status and a stable machine `code`.

    `kind` is the OpenAI-style error type (invalid_request_error, authentication_error, …); the
    Anthropic and Gemini renderers derive their own type/status names from `status`.
    """

    __slots__ = ("code", "headers", "kind", "message", "param", "status")

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        kind: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.kind = kind or default_kind(status)
        self.param = param
        self.headers = headers


_KINDS = {
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


def default_kind(status: int) -> str:
    if status in _KINDS:
        return _KINDS[status]
    return "server_error" if status >= 500 else "invalid_request_error"
