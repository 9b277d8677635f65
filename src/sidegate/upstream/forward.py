"""Forwarding a request to its destinations: build the upstream request for a target, send it,
and move on to the next target on a retryable failure (only before anything reached the caller).
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson

from sidegate import apis
from sidegate.auth.credentials import CREDENTIAL_HEADERS, PROVIDER_CREDENTIAL_HEADERS, QUERY_KEY
from sidegate.context import RequestContext
from sidegate.errors import GatewayError
from sidegate.governance.tags import TAG_HEADERS, UPSTREAM_TAG_HEADER
from sidegate.policy.compiled import Target
from sidegate.state import STATE
from sidegate.upstream import client
from sidegate.upstream.mock import mock_reply

# Caller headers never forwarded: hop-by-hop ones, ones aiohttp computes, credentials (replaced
# below) and sidegate's own tag headers (re-sent merged when the policy says so).
_DROP = frozenset({
    "host", "content-length", "transfer-encoding", "connection", "keep-alive", "te", "trailer", "upgrade",
    "proxy-authorization", "proxy-connection", "accept-encoding", "cookie", "expect",
    "content-encoding",  # aiohttp already decoded a compressed request body: what we forward is plain
}) | CREDENTIAL_HEADERS | frozenset(TAG_HEADERS)

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504, 529})
CONNECT_TIMEOUT_S = 10.0


def _body_for(ctx: RequestContext, target: Target, model: str) -> tuple[dict[str, Any] | None, bytes, bool]:
    """The body to send and whether the injected stream usage chunk must be hidden from the caller."""
    body = ctx.body
    if body is None:
        return None, ctx.body_bytes, False
    changes: dict[str, Any] = {}
    if model != ctx.model:
        changes.update(ctx.fmt.model_changes(body, model))
    strip_usage = False
    if ctx.stream and ctx.fmt.name == apis.OPENAI_CHAT and target.provider.stream_usage:
        options = body.get("stream_options")
        if not (isinstance(options, dict) and options.get("include_usage") is True):
            changes["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
            strip_usage = True
    if not changes:
        return body, ctx.body_bytes, False
    new_body = {**body, **changes}
    return new_body, orjson.dumps(new_body), strip_usage


def _headers(ctx: RequestContext, target: Target) -> dict[str, str]:
    provider = target.provider
    headers: dict[str, str] = {}
    for name, value in ctx.request.headers.items():
        lower = name.lower()
        if lower not in _DROP:
            headers[lower] = value
    for name, value in provider.adapter.default_headers(ctx.fmt.name).items():
        headers.setdefault(name, value)
    if provider.passthrough:
        for name in PROVIDER_CREDENTIAL_HEADERS:
            credential = ctx.request.headers.get(name)
            if credential and name != ctx.credential_source:
                headers[name] = credential
        key = ctx.request.query.get(QUERY_KEY)
        if key and ctx.credential_source != "?key":
            headers["x-goog-api-key"] = key
    else:
        headers.update(provider.auth_headers)
    headers.update(provider.extra_headers)
    if ctx.policy.tags_forward and ctx.tags:
        headers[UPSTREAM_TAG_HEADER] = orjson.dumps(ctx.tags).decode()
    headers["x-request-id"] = ctx.request_id
    return headers


def _url(ctx: RequestContext, target: Target, model: str) -> str:
    path = target.provider.adapter.path(ctx.fmt.name, model, ctx.stream)
    query = [(k, v) for k, v in ctx.request.query.items() if k != QUERY_KEY]
    if query:
        if "?" in path:  # the adapter set its own query (alt=sse): don't send it twice
            own = {k for k, _, _ in (p.partition("=") for p in path.split("?", 1)[1].split("&"))}
            query = [(k, v) for k, v in query if k not in own]
        if query:
            path += ("&" if "?" in path else "?") + urlencode(query)
    return target.provider.base_url + path


async def _attempt(ctx: RequestContext, target: Target) -> tuple[client.Reply, bool]:
    model = target.model_for(ctx.model or "")
    body, body_bytes, strip_usage = _body_for(ctx, target, model)
    ctx.target, ctx.destination_model = target, model
    provider = target.provider
    if provider.adapter.in_process:
        return client.InProcessReply(mock_reply(ctx.fmt.name, body or {}, model, ctx.stream)), strip_usage
    service = ctx.service
    timeout_s = service.timeout_s if service else 300.0
    session = ctx.request.app[STATE].session
    assert session is not None, "the upstream session is opened before serving"
    reply = await client.send(
        session,
        _url(ctx, target, model),
        _headers(ctx, target),
        body_bytes if ctx.fmt.has_body else None,
        method=ctx.request.method,
        connect_timeout_s=min(CONNECT_TIMEOUT_S, timeout_s),
        read_timeout_s=timeout_s,
    )
    return reply, strip_usage


def _note(ctx: RequestContext, target: Target, began: float, status: int | None, reason: str) -> None:
    ctx.attempts.append({
        "destination": target.provider.name,
        "provider": target.provider.kind,
        "model": target.model_for(ctx.model or ""),
        "status": status,
        "reason": reason,
        "duration_ms": round((time.perf_counter() - began) * 1000.0, 3),
    })


async def forward(ctx: RequestContext) -> tuple[client.Reply, bool]:
    """Send to the chosen destination, then to the fallbacks in order, until one answers without a
    retryable failure. Returns the reply to relay and whether to strip the injected usage chunk."""
    service = ctx.service
    assert service is not None
    plan = (service.choose(), *service.fallbacks)
    api = ctx.fmt.name
    failure: GatewayError | None = None
    for index, target in enumerate(plan):
        last = index == len(plan) - 1
        began = time.perf_counter()
        if not target.provider.speaks(api):
            _note(ctx, target, began, None, "no_translation")
            failure = GatewayError(
                501, "translation_unavailable",
                f"model service {service.name!r} routes to provider {target.provider.name!r} of kind "
                f"{target.provider.kind}, which does not speak {api}; translation between API formats "
                "is not available in this sidegate build",
            )
            continue
        ctx.upstream_called = True
        try:
            reply, strip_usage = await _attempt(ctx, target)
        except TimeoutError:
            _note(ctx, target, began, None, "timeout")
            failure = GatewayError(504, "upstream_timeout", f"provider {target.provider.name!r} timed out")
            continue
        except (aiohttp.ClientError, OSError) as exc:
            _note(ctx, target, began, None, "connection_error")
            failure = GatewayError(502, "upstream_unreachable",
                                   f"provider {target.provider.name!r} is unreachable: {type(exc).__name__}")
            continue
        if reply.status in RETRYABLE_STATUS and not last:
            _note(ctx, target, began, reply.status, "retryable_status")
            reply.close()
            continue
        _note(ctx, target, began, reply.status, "ok" if reply.status < 400 else "error")
        return reply, strip_usage
    assert failure is not None
    raise failure
