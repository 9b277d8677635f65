"""The HTTP protocol edge: requests refused before any route or handler runs.

aiohttp answers a request it cannot parse (a garbled request line, a header over the field size
limit, too many headers) with a plain-text 400 whose message quotes the offending bytes, which may
be a token. sidegate's connections answer them instead as JSON in the caller's shape (judged by the
path of the request line, as for an unknown path), with a stable code and nothing quoted:

| condition | status | code |
|---|---|---|
| a header field over `server.max_header_bytes`, or too many headers | 431 | `request_header_too_large` |
| a request line (URL) over `server.max_header_bytes` | 414 | `request_uri_too_long` |
| any other unparsable request | 400 | `bad_request` |
| an error outside the pipeline (an operations handler failing) | 500 | `internal_error` |

To know the caller's shape the connection keeps the first bytes of each read that starts a request
(a prefix test per read, a 512-byte slice per request), where its request line is; a request of
another method, or one whose request line was split over reads, gets the OpenAI shape.
`EdgeRunner` is the `web.AppRunner` that serves with these connections and the limits.
"""

from __future__ import annotations

from typing import Any

import structlog
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMethod, HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from sidegate.context import new_request_id
from sidegate.errors import GatewayError
from sidegate.ingress.registry import FAMILIES, family_for_path

__all__ = ["EdgeRunner", "edge_error"]

log = structlog.get_logger("sidegate.edge")

_HEAD_BYTES = 512  # enough of a read for the method and the path's first segments
_REQUEST_STARTS = tuple(f"{method} /".encode() for method in ("POST", "GET", "HEAD", "PUT", "DELETE", "PATCH",
                                                               "OPTIONS"))


def edge_error(status: int, exc: BaseException | None, request_line: bytes, limit: int) -> GatewayError:
    """The error for a request the protocol layer refused. Never quotes the request's bytes."""
    if isinstance(exc, LineTooLong):
        line = bytes(exc.args[0]) if exc.args and isinstance(exc.args[0], (bytes, bytearray)) else b""
        target = request_line.partition(b" ")[2]
        if line.endswith(b"...") and line[:-3] and target.startswith(line[:-3]):
            return GatewayError(414, "request_uri_too_long",
                                f"The request URL is longer than {limit} bytes (server.max_header_bytes).")
        return GatewayError(431, "request_header_too_large",
                            f"A request header is longer than {limit} bytes (server.max_header_bytes); "
                            "send less in it (request tags: at most 20, keys of 64 and values of 256 characters).")
    if isinstance(exc, HttpProcessingError) and "too many headers" in (exc.message or "").lower():
        return GatewayError(431, "request_header_too_large", "The request has too many headers.")
    if status >= 500:
        return GatewayError(500, "internal_error", "sidegate could not handle this request.")
    return GatewayError(400, "bad_request", "The request is not valid HTTP/1.1 (request line or headers).")


class EdgeRequestHandler(RequestHandler):
    """A connection whose protocol-level errors are JSON in the caller's shape (see module doc)."""

    __slots__ = ("_head", "prefix")

    def __init__(self, *args: Any, prefix: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.prefix = prefix
        self._head = b""

    def data_received(self, data: bytes) -> None:
        if data.startswith(_REQUEST_STARTS):  # a read that starts a request (keep-alive: each one's first)
            self._head = data[:_HEAD_BYTES]
        _data_received(self, data)  # not super(): this runs for every read

    def _request_line(self) -> bytes:
        return self._head.partition(b"\r\n")[0]

    def handle_error(self, request: BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if request.writer.output_size > 0:  # part of an answer went out: nothing else can be sent
            return super().handle_error(request, status, exc, message)
        line = self._request_line()
        err = edge_error(status, exc, line, self.max_field_size)
        if err.status >= 500:
            self.log_exception("Error handling request", exc_info=exc)
        elif not (self._request_count == 1 and isinstance(exc, BadHttpMethod)):  # not HTTP at all: no line
            log.info("request refused before parsing", status=err.status, code=err.code, remote=request.remote,
                     cause=type(exc).__name__ if exc is not None else None)
        path = line.partition(b" ")[2].partition(b" ")[0].decode("latin-1")
        if self.prefix and path.startswith(self.prefix):
            path = path[len(self.prefix):]
        request_id = new_request_id()
        body = FAMILIES[family_for_path(path.partition("?")[0])].render_error(err, request_id)
        response = web.Response(status=err.status, body=body, content_type="application/json",
                                headers={"x-sidegate-request-id": request_id})
        response.force_close()
        return response


_data_received = RequestHandler.data_received


class _EdgeServer(web.Server):
    prefix = ""

    def __call__(self) -> RequestHandler:
        return EdgeRequestHandler(self, loop=self._loop, prefix=self.prefix, **self._kwargs)


class EdgeRunner(web.AppRunner):
    """Serves `app` with `EdgeRequestHandler` connections; `max_header_bytes` bounds each header
    field and the request line."""

    def __init__(self, app: web.Application, *, prefix: str = "", max_header_bytes: int = 8190,
                 **kwargs: Any) -> None:
        super().__init__(app, max_field_size=max_header_bytes, max_line_size=max_header_bytes, **kwargs)
        self._prefix = prefix

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _EdgeServer  # the same server; only the connections it makes differ
        assert isinstance(server, _EdgeServer)
        server.prefix = self._prefix
        return server
