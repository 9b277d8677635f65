"""Relaying an upstream reply to the caller: whole JSON bodies, or SSE streams event by event as
they arrive, reading token usage on the way."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from sidegate.context import RequestContext
from sidegate.errors import GatewayError
from sidegate.ingress.registry import FAMILIES
from sidegate.upstream.client import Reply
from sidegate.upstream.sse import SSESplitter

_UPSTREAM_READ_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, TimeoutError, OSError)


class ClientGone(Exception):
    """The caller closed its connection while we were writing to it."""


def response_headers(ctx: RequestContext, reply: Reply) -> dict[str, str]:
    headers = dict(reply.headers)
    headers["x-sidegate-request-id"] = ctx.request_id
    return headers


async def relay(ctx: RequestContext, reply: Reply, strip_usage: bool) -> web.StreamResponse:
    if ctx.stream and reply.is_sse and reply.status < 400:
        return await _relay_stream(ctx, reply, strip_usage)
    return await _relay_whole(ctx, reply)


async def _relay_whole(ctx: RequestContext, reply: Reply) -> web.Response:
    try:
        data = await reply.read()
    except _UPSTREAM_READ_ERRORS as exc:
        raise GatewayError(502, "upstream_read_failed",
                           f"the upstream answer could not be read: {type(exc).__name__}") from None
    ctx.status = reply.status
    obj: Any = None
    if data[:1] in (b"{", b"["):
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            obj = None
    if isinstance(obj, dict):
        if reply.status < 400:
            ctx.usage = ctx.fmt.usage_from_json(obj)
            ctx.output_chars = ctx.fmt.response_text_chars(obj)
        else:
            ctx.error_code = FAMILIES[ctx.fmt.family].error_code(obj) or f"upstream_{reply.status}"
    elif reply.status >= 400:
        ctx.error_code = f"upstream_{reply.status}"
    ctx.first_byte_at = time.perf_counter()
    return web.Response(body=data, status=reply.status, headers=response_headers(ctx, reply))


async def _write(response: web.StreamResponse, data: bytes) -> None:
    try:
        await response.write(data)
    except (ConnectionResetError, aiohttp.ClientConnectionResetError) as exc:
        raise ClientGone from exc


async def _relay_stream(ctx: RequestContext, reply: Reply, strip_usage: bool) -> web.StreamResponse:
    response = web.StreamResponse(status=reply.status, headers=response_headers(ctx, reply))
    ctx.status = reply.status
    observer = ctx.fmt.observer(strip_usage)
    splitter = SSESplitter()
    family = FAMILIES[ctx.fmt.family]
    try:
        await response.prepare(ctx.request)
        chunks = reply.chunks().__aiter__()
        while True:
            try:
                chunk = await chunks.__anext__()
            except StopAsyncIteration:
                break
            except _UPSTREAM_READ_ERRORS as exc:
                ctx.usage_complete = False
                ctx.error_code = "upstream_stream_interrupted"
                err = GatewayError(502, ctx.error_code,
                                   f"the upstream stream ended early: {type(exc).__name__}")
                splitter.rest()  # drop a torn event: nothing may follow the error event
                await _write(response, family.stream_error(err, ctx.request_id))
                break
            out = [ev.raw for ev in splitter.feed(chunk) if not observer.on_event(ev.event, ev.data)]
            if out:
                await _write(response, out[0] if len(out) == 1 else b"".join(out))
                if ctx.first_byte_at is None:
                    ctx.first_byte_at = time.perf_counter()
        rest = splitter.rest()
        if rest:
            await _write(response, rest)
        await response.write_eof()
    except (ClientGone, ConnectionResetError):
        ctx.status = 499
        ctx.error_code = "client_disconnected"
        ctx.usage_complete = False
    finally:
        reply.close()
        ctx.usage = observer.usage
        ctx.output_chars = observer.text_chars
    return response
