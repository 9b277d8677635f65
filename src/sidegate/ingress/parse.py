"""The parse stage: read the body (within the size limit), check its type, decode it once."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from sidegate.context import RequestContext
from sidegate.errors import GatewayError

_JSON_TYPES = ("application/json",)


def _too_large(limit: int) -> GatewayError:
    return GatewayError(413, "request_too_large", f"request body is larger than the limit of {limit} bytes")


async def read_body(request: web.Request, limit: int) -> bytes:
    length = request.content_length
    if length is not None and length > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.readany()
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
        if size == length:  # all of it: no further read to learn that the body ended
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _check_content_type(request: web.Request) -> None:
    ctype = request.content_type  # "application/octet-stream" when the header is absent
    if "content-type" not in request.headers:
        return  # tolerated: some clients send JSON without saying so
    if ctype in _JSON_TYPES or ctype.endswith("+json"):
        return
    raise GatewayError(415, "unsupported_media_type",
                       f"Content-Type must be application/json, not {ctype!r}")


async def parse(ctx: RequestContext) -> None:
    if not ctx.fmt.has_body:
        return
    _check_content_type(ctx.request)
    raw = await read_body(ctx.request, ctx.policy.max_request_bytes)
    ctx.body_bytes = raw
    if not raw.strip():
        raise GatewayError(400, "invalid_json", "request body is empty; expected a JSON object")
    try:
        body: Any = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise GatewayError(400, "invalid_json", f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise GatewayError(400, "invalid_json", "request body must be a JSON object")
    ctx.body = body
    ctx.model, ctx.stream = ctx.fmt.parse(body, ctx.url_model, ctx.url_stream)
