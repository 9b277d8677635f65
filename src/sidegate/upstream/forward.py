"""Forwarding a request to its destinations: for each target in order (the weighted choice, then the
fallbacks), translate the request when the provider does not speak the caller's format, build the
upstream request, send it, and move on to the next target on a retryable failure (429, 5xx,
timeout, connection error, an invalid answer: always before anything reached the caller). An answer
relayed whole is read and parsed here, so a body cut short, or one that is not a JSON object of the
destination's API (an HTML error page, truncated JSON, a wrong content type), falls back too; of a
stream, the first events are read and checked here. A destination whose circuit breaker is open is
skipped. Every attempt, skipped ones included, is noted for the usage row with its reason: ok,
error (a status that is not retried), retryable_status (429, 5xx; the last destination's answer is
relayed), connect_timeout, first_byte_timeout (for an answer read whole: the whole answer),
connection_error, invalid_response, stream_error (a stream whose first events hold the
destination's own error event; the last destination's is relayed), circuit_open, no_translation,
translation_error, estimated_locally; a failed attempt also says what happened in words
(`error`), and so does the caller's error when no destination is left. A stream that breaks after
the caller got its first bytes changes its attempt's reason afterwards (see `relay`).
"""

from __future__ import annotations

import socket
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

import orjson

from sidegate import apis
from sidegate.auth.credentials import CREDENTIAL_HEADERS, PROVIDER_CREDENTIAL_HEADERS, QUERY_KEY
from sidegate.context import RequestContext
from sidegate.errors import GatewayError
from sidegate.formats.registry import FORMATS
from sidegate.formats.stream import StreamReader
from sidegate.governance.tags import TAG_HEADERS, UPSTREAM_TAG_HEADER
from sidegate.policy.compiled import Service, Target
from sidegate.translate import Translation, UnreadableAnswer, plan
from sidegate.upstream import client
from sidegate.upstream.http1.errors import ConnectTimeout, UpstreamBroken
from sidegate.upstream.mock.model import MockReply, mock_reply
from sidegate.upstream.services import AttemptTracing, UpstreamServices

# Caller headers never forwarded: hop-by-hop ones, ones the client computes, credentials (replaced
# below) and sidegate's own tag headers (re-sent merged when the policy says so).
_DROP = frozenset({
    "host", "content-length", "transfer-encoding", "connection", "keep-alive", "te", "trailer", "upgrade",
    "proxy-authorization", "proxy-connection", "accept-encoding", "cookie", "expect",
    "content-encoding",  # aiohttp already decoded a compressed request body: what we forward is plain
}) | CREDENTIAL_HEADERS | frozenset(TAG_HEADERS)
# Caller headers that belong to the caller's API format: not sent to a provider of another format.
_FORMAT_HEADER_PREFIXES = ("anthropic-", "openai-", "x-goog-", "x-stainless-")

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504, 529})


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


def _headers(ctx: RequestContext, target: Target, api: str) -> dict[str, str]:
    """The caller's headers to send on (`api` is the format sent: another than the caller's when
    translating, and then the caller's format-specific headers stay behind)."""
    provider = target.provider
    headers: dict[str, str] = {}
    translated = api != ctx.fmt.name
    for name, value in ctx.request.headers.items():
        lower = name.lower()
        if lower not in _DROP and not (translated and lower.startswith(_FORMAT_HEADER_PREFIXES)):
            headers[lower] = value
    if translated or "content-type" not in headers:
        headers["content-type"] = "application/json"  # every body sent upstream is JSON
    for name, value in provider.adapter.default_headers(api).items():
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


def _url(ctx: RequestContext, target: Target, api: str, model: str, stream: bool) -> str:
    path = target.provider.adapter.path(api, model, stream)
    if api != ctx.fmt.name:  # the caller's query belongs to its own API
        return target.provider.base_url + path
    query = [(k, v) for k, v in ctx.request.query.items() if k != QUERY_KEY]
    if query:
        if "?" in path:  # the adapter set its own query (alt=sse): don't send it twice
            own = {k for k, _, _ in (p.partition("=") for p in path.split("?", 1)[1].split("&"))}
            query = [(k, v) for k, v in query if k not in own]
        if query:
            path += ("&" if "?" in path else "?") + urlencode(query)
    return target.provider.base_url + path


def _translation(ctx: RequestContext, target: Target, model: str) -> Translation | None:
    """How to reach a provider that does not speak the caller's format, or None when it does.
    Raises GatewayError (400) when no translation reaches it or the request cannot be expressed."""
    api, provider = ctx.fmt.name, target.provider
    if provider.speaks(api):
        return None
    dest = plan(api, provider.apis)
    if dest is None:
        raise GatewayError(
            400, "api_not_supported_by_destination",
            f"model service {ctx.service.name if ctx.service else ctx.model!r} routes to provider "
            f"{provider.name!r} ({provider.kind}), which has no API for {api} and none it can be translated to",
        )
    return Translation(api, dest, ctx.model or "", model, ctx.stream, stream_usage=provider.stream_usage)


async def _attempt(ctx: RequestContext, services: UpstreamServices, target: Target, model: str,
                   translation: Translation | None) -> client.Reply:
    if translation is None:
        api, stream = ctx.fmt.name, ctx.stream
        body, body_bytes, ctx.strip_usage = _body_for(ctx, target, model)
        ctx.target, ctx.destination_model = target, model
    else:
        api, stream, ctx.strip_usage = translation.dest_api, translation.dest_stream, False
        body = translation.request(ctx.body or {})
        if translation.local:  # answered by sidegate itself (a token count estimated): no destination
            status, answer = translation.answer_locally()
            return client.InProcessReply(MockReply(status, "application/json", orjson.dumps(answer), None))
        body_bytes = orjson.dumps(body)
        ctx.target, ctx.destination_model = target, model
    provider = target.provider
    tracing = services.tracing
    if provider.adapter.in_process:
        tracing.start_attempt(ctx, target, model, api, None)
        return client.InProcessReply(mock_reply(api, body or {}, model, stream))
    service = ctx.service
    assert service is not None
    headers = _headers(ctx, target, api)
    tracing.start_attempt(ctx, target, model, api, headers)  # sends the attempt span's traceparent
    reply = await client.send(
        services.client,
        _url(ctx, target, api, model, stream),
        headers,
        body_bytes if ctx.fmt.has_body else None,
        method=ctx.request.method,
        connect_timeout_s=service.connect_timeout_s,
        timeout_s=service.timeout_s,
        stream=stream,
        idle_timeout_s=service.idle_timeout_s,
    )
    return reply


def relayed_as_stream(ctx: RequestContext, reply: client.Reply) -> bool:
    """Whether the relay passes this reply on event by event (else it is read and relayed whole)."""
    return ctx.stream and reply.is_sse and reply.status < 400


class InvalidAnswer(Exception):
    """An answer that is not the destination's API: `str(exc)` says how, in words."""


def _json_problem(reply: client.Reply, asked_stream: bool, obj: Any) -> str | None:
    """What makes a whole successful answer unreadable as its API (every such answer is a JSON
    object), or None."""
    media = reply.media_type
    if asked_stream:
        return f"{media or 'an answer without a content type'} where an event stream was asked for"
    if media and media != "application/json" and not media.endswith("+json"):
        return f"{media} where JSON was expected"
    if obj is None:
        return "a body that is not valid JSON"
    if not isinstance(obj, dict):
        return "JSON that is not an object"
    return None


async def _open(ctx: RequestContext, reply: client.Reply, translation: Translation | None) -> None:
    """Read what must be read before the caller gets anything, and check it: a whole answer (read
    and parsed once, for the relay too), or a stream's first events. Raises InvalidAnswer."""
    if relayed_as_stream(ctx, reply):
        fmt = FORMATS[translation.dest_api] if translation is not None else ctx.fmt
        reader = ctx.stream_reader = StreamReader(reply.chunks().__aiter__(), fmt.observer(ctx.strip_usage))
        await reader.start()
        if reader.problem is not None:
            raise InvalidAnswer(reader.problem)
        return
    await reply.load()  # relayed whole: read it now, while a body cut short can still fall back
    data = await reply.read()
    try:
        obj = orjson.loads(data) if data else None
    except orjson.JSONDecodeError:
        obj = None
    ctx.upstream_json = obj
    asked_stream = ctx.stream if translation is None else translation.dest_stream
    if reply.status < 400 and (problem := _json_problem(reply, asked_stream, obj)) is not None:
        raise InvalidAnswer(problem)
    if translation is not None and reply.status < 400:
        try:  # translated here, where an answer the codec cannot read can still fall back
            ctx.translated_answer = translation.response(reply.status, obj)
        except UnreadableAnswer as err:
            raise InvalidAnswer(err.message) from None


def failure_words(exc: OSError, target: Target, service: Service, streaming: bool = False) -> str:
    """A failure to reach a destination or to read its answer (`streaming`: a stream's events,
    each silence bounded by the idle timeout), in words."""
    if isinstance(exc, ConnectTimeout):
        return f"no connection within {service.connect_timeout_s:g} s"
    if isinstance(exc, TimeoutError):
        return f"no data for {service.idle_timeout_s:g} s" if streaming and service.idle_timeout_s \
            else f"no answer within {service.timeout_s:g} s"
    if isinstance(exc, socket.gaierror):
        return f"DNS lookup failed for {urlsplit(target.provider.base_url).hostname}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError) or isinstance(exc.__cause__, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, UpstreamBroken):
        return str(exc).removeprefix("the upstream ")
    return exc.strerror or str(exc) or type(exc).__name__


def _note(tracing: AttemptTracing, ctx: RequestContext, target: Target, model: str, began: float,
          status: int | None, reason: str, words: str | None = None, relayed: bool = False) -> None:
    """Record one attempt. `relayed`: a last destination's retryable status, whose answer the caller
    gets (its span stays open until the relay ends, as tracing does for answers it calls ok/error)."""
    attempt: dict[str, Any] = {
        "destination": target.provider.name,
        "provider": target.provider.kind,
        "model": model,
        "status": status,
        "reason": reason,
        "duration_ms": round((time.perf_counter() - began) * 1000.0, 3),
    }
    if words is not None:
        attempt["error"] = words
    ctx.attempts.append(attempt)
    tracing.end_attempt(ctx, status, "error" if relayed else reason)


def _all_failed(ctx: RequestContext, failure: GatewayError) -> GatewayError:
    """The caller's error once no destination answered: every attempt's failure in words."""
    if failure.code not in _UPSTREAM_FAILURES:
        return failure  # the request itself cannot be sent (no translation): its own message says why
    failed = [f"{a['destination']} ({a['error']})" for a in ctx.attempts if "error" in a]
    if len(failed) == 1:
        message = f"destination {failed[0]} failed"
    else:
        message = f"all {len(failed)} destinations failed: " + ", ".join(failed)
    if failure.code == "destinations_unavailable":
        message += "; retry later"
    return GatewayError(failure.status, failure.code, message)


_UPSTREAM_FAILURES = frozenset({"upstream_timeout", "upstream_unreachable", "upstream_invalid_response",
                                "upstream_stream_error", "destinations_unavailable"})


async def forward(ctx: RequestContext, services: UpstreamServices) -> client.Reply:
    """Send to the chosen destination, then to the fallbacks in order, until one answers without a
    retryable failure. Returns the reply to relay; `ctx.translation` says how to bring it back."""
    service = ctx.service
    assert service is not None
    breakers, tracing = services.breakers, services.tracing
    targets = (service.choose(), *service.fallbacks)
    failure: GatewayError | None = None
    for index, target in enumerate(targets):
        last = index == len(targets) - 1
        began = time.perf_counter()
        model = target.model_for(ctx.model or "")
        try:
            translation = _translation(ctx, target, model)
        except GatewayError as err:
            _note(tracing, ctx, target, model, began, None, "no_translation", f"cannot take {ctx.fmt.name}")
            failure = err
            continue
        local = translation is not None and translation.local  # answered by sidegate: no upstream, no breaker
        if not local and not breakers.allow((target.provider.name, model)):
            _note(tracing, ctx, target, model, began, None, "circuit_open", "circuit open after repeated failures")
            failure = failure or GatewayError(503, "destinations_unavailable", "")
            continue
        ctx.upstream_called = ctx.upstream_called or not local
        reply: client.Reply | None = None
        try:
            reply = await _attempt(ctx, services, target, model, translation)
            await _open(ctx, reply, None if local else translation)
        except GatewayError as err:  # the request cannot be expressed for this destination
            _note(tracing, ctx, target, model, began, None, "translation_error", err.message)
            failure = err
            continue
        except InvalidAnswer as exc:
            assert reply is not None
            reply.close()
            breakers.destination_failed(ctx)
            _note(tracing, ctx, target, model, began, reply.status, "invalid_response", f"invalid answer: {exc}")
            failure = GatewayError(502, "upstream_invalid_response", "")
            continue
        except TimeoutError as exc:
            streaming = reply is not None and relayed_as_stream(ctx, reply)  # silent before its first event
            if reply is not None:
                reply.close()
            breakers.destination_failed(ctx)
            connecting = isinstance(exc, ConnectTimeout)  # else no first byte (or whole answer) in time
            _note(tracing, ctx, target, model, began, None, "connect_timeout" if connecting else "first_byte_timeout",
                  failure_words(exc, target, service, streaming))
            failure = GatewayError(504, "upstream_timeout", "")
            continue
        except OSError as exc:  # refused, reset, DNS, closed early, malformed answer (UpstreamBroken)
            if reply is not None:
                reply.close()
            breakers.destination_failed(ctx)
            _note(tracing, ctx, target, model, began, None, "connection_error", failure_words(exc, target, service))
            failure = GatewayError(502, "upstream_unreachable", "")
            continue
        finally:
            ctx.upstream_s += time.perf_counter() - began
        reader = ctx.stream_reader if relayed_as_stream(ctx, reply) else None
        if not last and reader is not None and (code := reader.observer.failed) is not None:
            reply.close()  # its own error event came first, before anything reached the caller: fall back
            breakers.destination_failed(ctx)
            _note(tracing, ctx, target, model, began, reply.status, "stream_error", f"its own error event ({code})")
            failure = GatewayError(502, "upstream_stream_error", "")
            continue
        if reply.status in RETRYABLE_STATUS:
            breakers.destination_failed(ctx)
            if not last:
                _note(tracing, ctx, target, model, began, reply.status, "retryable_status", f"HTTP {reply.status}")
                reply.close()
                continue
            _note(tracing, ctx, target, model, began, reply.status, "retryable_status", relayed=True)
        else:
            if not local and reader is None:  # a stream succeeds when it ends well (relay)
                breakers.destination_succeeded(ctx)
            _note(tracing, ctx, target, model, began, reply.status,
                  "estimated_locally" if local else "ok" if reply.status < 400 else "error")
        ctx.translation = None if translation is None or translation.local else translation
        return reply
    assert failure is not None
    raise _all_failed(ctx, failure)
