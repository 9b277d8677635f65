"""Errors of translation: a request field the destination cannot express (TranslationError, a 400
naming the field), and an upstream error body re-expressed in neutral terms (ApiError) so that the
caller's codec can render it in the caller's own shape with a status the caller's SDK understands."""

from __future__ import annotations

from dataclasses import dataclass

from sidegate.errors import GatewayError


class TranslationError(GatewayError):
    """400: the caller's request uses `field`, which has no equivalent on the destination's API."""

    def __init__(self, field: str, message: str, *, status: int = 400, code: str = "untranslatable_field") -> None:
        super().__init__(status, code, f"{field}: {message}", param=field)


class UnreadableAnswer(GatewayError):
    """502: the destination answered with something that is not its API's answer (a field of the
    wrong JSON type, an event that is not JSON). The upstream's failure, not the caller's."""

    def __init__(self, api: str, detail: str) -> None:
        super().__init__(502, UNREADABLE, f"the upstream answer is not a readable {api} answer: {detail}")


UNREADABLE = "upstream_invalid_response"


def unsupported(field: str, dest: str, why: str = "") -> TranslationError:
    detail = f" ({why})" if why else ""
    return TranslationError(field, f"cannot be expressed in {dest}{detail}; remove it or route to a provider "
                                   "that speaks the caller's API")


INVALID_FIELD = "invalid_request_field"  # a caller field of the wrong JSON type, or a value out of range


def invalid(field: str, message: str) -> TranslationError:
    return TranslationError(field, message, code=INVALID_FIELD)


# Neutral error categories. Each codec maps its provider's error types onto these and back.
INVALID_REQUEST = "invalid_request"
AUTHENTICATION = "authentication"
PERMISSION = "permission"
NOT_FOUND = "not_found"
TOO_LARGE = "too_large"
RATE_LIMIT = "rate_limit"
OVERLOADED = "overloaded"
TIMEOUT = "timeout"
SERVER = "server"
BILLING = "billing"

_BY_STATUS = {
    400: INVALID_REQUEST,
    401: AUTHENTICATION,
    402: BILLING,
    403: PERMISSION,
    404: NOT_FOUND,
    408: TIMEOUT,
    413: TOO_LARGE,
    422: INVALID_REQUEST,
    429: RATE_LIMIT,
    503: OVERLOADED,
    504: TIMEOUT,
    529: OVERLOADED,
}


def category_for_status(status: int) -> str:
    return _BY_STATUS.get(status) or (SERVER if status >= 500 else INVALID_REQUEST)


@dataclass(slots=True)
class ApiError:
    """An error answer of the destination: its HTTP status, neutral category and message."""

    status: int
    category: str
    message: str
    code: str | None = None  # the destination's own error type/code, for the record

    def status_for(self, family: str) -> int:
        """The status to give a caller of `family`: Anthropic's 529 (overloaded) exists only there;
        other callers get 503 for it, and an Anthropic caller gets 529 for any overload."""
        if self.category == OVERLOADED:
            return 529 if family == "anthropic" else 503
        if self.status == 529:
            return 503
        return self.status if 400 <= self.status <= 599 else 502


def upstream_error(status: int, message: str | None, category: str | None = None, code: str | None = None) -> ApiError:
    message = message or f"upstream answered HTTP {status}"
    return ApiError(status, category or category_for_status(status), message, code)
