"""Relaying an upstream reply to the caller: whole JSON bodies, or SSE streams event by event as
they arrive, reading token usage on the way.

Each event (or whole body) passes, in order: the usage observer of the format the destination
spoke (which also hides the usage chunk sidegate asked for on the caller's behalf), the translation
back to the caller's format when the destination spoke another, and the output guardrails, which
scan the caller's format. Unchanged events leave as the bytes that arrived.

The attempt (`forward`) has already read and checked a whole body, or a stream's first events
(`StreamReader`): what arrives here was readable as the destination's API. A stream that breaks
later (a read error, an event that is not SSE or not JSON, an end without the format's terminal
event) ends with the caller format's error event; nothing of it after the break is relayed.
"""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from sidegate.context import RequestContext
from sidegate.errors import GatewayError
from sidegate.formats.sse import Event, SSESplitter
from sidegate.formats.stream import JsonArrayFraming
from sidegate.governance.guardrails.stream_guard import StreamGuard
from sidegate.ingress.registry import FAMILIES, FORMATS, stream_error
from sidegate.translate import StreamTranslator
from sidegate.upstream.breaker import Breakers
from sidegate.upstream.client import Reply
from sidegate.upstream.forward import failure_words, relayed_as_stream
from sidegate.upstream.live import SHUTTING_DOWN, ShuttingDown, shutting_down_error
from sidegate.upstream.services import UpstreamServices

_UPSTREAM_READ_ERRORS = (TimeoutError, OSError)  # idle timeout; connection broken (UpstreamBroken)
_STREAM_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
# Upstream headers that mean the same in every API format: kept on a translated answer (the SDKs
# of each format wait as told before retrying). The upstream's rate-limit headers are its own format's.
_CARRIED = frozenset({"retry-after", "retry-after-ms"})


class ClientGone(Exception):
    """The caller closed its connection while we were writing to it."""


def _translated_headers(reply: Reply) -> dict[str, str]:
    """A translated whole answer's headers: JSON, and what `_CARRIED` keeps of the upstream's."""
    headers = {"Content-Type": "application/json"}
    for name, value in reply.headers:
        if name.lower() in _CARRIED:
            headers[name] = value
    return headers


def response_headers(ctx: RequestContext, reply: Reply, translated: dict[str, str] | None = None) -> dict[str, str]:
    """The upstream's own headers when it spoke the caller's format, else `translated`; then sidegate's."""
    headers = dict(reply.headers) if translated is None else dict(translated)
    headers["x-sidegate-request-id"] = ctx.request_id
    if ctx.target is not None:  # which destination answered: provider and model
        headers["x-sidegate-destination"] = f"{ctx.target.provider.name}/{ctx.destination_model}"
    if ctx.reservation is not None and (limits := ctx.reservation.headers()):
        # sidegate's x-ratelimit-* (and anthropic-ratelimit-*) replace the upstream's of the same
        # name, whatever their case
        for name in [k for k in headers if k.lower() in limits]:
            del headers[name]
        headers.update(limits)
    return headers


async def relay(ctx: RequestContext, reply: Reply, services: UpstreamServices) -> web.StreamResponse:
    if relayed_as_stream(ctx, reply):
        return await _relay_stream(ctx, reply, services)
    return await _relay_whole(ctx, reply)


async def _relay_whole(ctx: RequestContext, reply: Reply) -> web.Response:
    data = await reply.read()  # already read by the attempt (forward), where a failure could still fall back
    obj: Any = ctx.upstream_json  # parsed there too; a successful answer is a JSON object (else it fell back)
    translation = ctx.translation
    seen = FORMATS[translation.dest_api] if translation is not None else ctx.fmt
    status = reply.status
    if status < 400:
        ctx.usage = seen.usage_from_json(obj)
        ctx.output_chars = seen.response_text_chars(obj)
    else:
        ctx.error_code = (FAMILIES[seen.family].error_code(obj) if isinstance(obj, dict) else None) \
            or f"upstream_{status}"
    headers = None
    changed = False
    if translation is not None:
        status, obj = ctx.translated_answer or translation.response(status, obj)
        changed = True
        headers = _translated_headers(reply)
    guardrails = ctx.guardrails
    if guardrails is not None and guardrails.has_output and status < 400 and isinstance(obj, dict):
        changed = guardrails.check_output(ctx.fmt.name, obj) or changed  # a block raises: answered as an error
    if changed:
        data = orjson.dumps(obj)
    ctx.status = status
    ctx.answer = obj if isinstance(obj, dict) else None
    ctx.first_byte_at = time.perf_counter()
    if ctx.capture is not None:
        ctx.capture.append(data)
    return web.Response(body=data, status=status, headers=response_headers(ctx, reply, headers))


async def _write(response: web.StreamResponse, data: bytes) -> None:
    try:
        await response.write(data)
    except (ConnectionResetError, aiohttp.ClientConnectionResetError) as exc:
        raise ClientGone from exc


class _Outbound:
    """What becomes of each destination event on its way to the caller: translated, then guarded."""

    __slots__ = ("guard", "resplit", "translator")

    def __init__(self, translator: StreamTranslator | None, guard: StreamGuard | None) -> None:
        self.translator = translator
        self.guard = guard
        self.resplit = SSESplitter() if translator is not None and guard is not None else None

    def _guarded(self, blocks: list[bytes]) -> list[bytes]:
        if self.guard is None or not blocks:
            return blocks
        assert self.resplit is not None
        guard = self.guard
        return [out for ev in self.resplit.feed(b"".join(blocks)) for out in guard.feed(ev)]

    def event(self, ev: Event, obj: dict[str, Any] | None) -> list[bytes]:
        """`obj`: the event's JSON object as the usage observer parsed it (`StreamObserver.parsed`)."""
        if self.translator is not None:
            return self._guarded(self.translator.feed(ev.event, ev.data))
        return self.guard.feed_json(ev, obj) if self.guard is not None else [ev.raw]

    def finish(self) -> list[bytes]:
        """The caller's closing events after a clean end of the destination's stream."""
        out = self._guarded(self.translator.finish()) if self.translator is not None else []
        if self.guard is not None:
            out += self.guard.finish()
        return out

    def fail(self, error: list[bytes]) -> list[bytes]:
        """The caller's closing events after the destination's stream ended badly: the text the guard
        holds, scanned as final and sent (masked), then the `error` events (in the caller's format);
        the guard's own error instead when that text is blocked."""
        if self.guard is None:
            return error
        out = self.guard.finish()
        if self.guard.blocked:
            return out
        return out + (self._guarded(error) if self.translator is not None else error)

    @property
    def blocked(self) -> bool:
        return self.guard is not None and self.guard.blocked


def _stream_failed(ctx: RequestContext, breakers: Breakers, code: str, reason: str, message: str) -> GatewayError:
    """A stream the destination broke after the caller got its first bytes: recorded, counted
    against the destination's breaker, and the error to end the caller's stream with."""
    ctx.usage_complete = False
    ctx.error_code = code
    breakers.destination_failed(ctx)
    if ctx.attempts:
        ctx.attempts[-1]["reason"] = reason
        ctx.attempts[-1]["error"] = message
    name = ctx.target.provider.name if ctx.target is not None else "the destination"
    return GatewayError(502, code, f"the stream from {name!r} broke off: {message}")


async def _relay_stream(ctx: RequestContext, reply: Reply, services: UpstreamServices) -> web.StreamResponse:
    reader = ctx.stream_reader
    assert reader is not None, "the attempt opened the stream (forward)"
    translation = ctx.translation
    translator = translation.stream() if translation is not None else None
    guardrails = ctx.guardrails
    guard = guardrails.stream(ctx.fmt.name, ctx.request_id) if guardrails is not None else None
    outbound = _Outbound(translator, guard)
    observer = reader.observer
    headers = response_headers(ctx, reply, _STREAM_HEADERS if translation is not None else None)
    array = JsonArrayFraming() if ctx.stream_array else None  # the caller's events, as one JSON array
    if array is not None:
        headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        headers["Content-Type"] = "application/json"
    response = web.StreamResponse(status=reply.status, headers=headers)
    ctx.status = reply.status
    capture = ctx.capture

    async def send(blocks: list[bytes]) -> None:
        if blocks:
            data = blocks[0] if len(blocks) == 1 else b"".join(blocks)
            out = data if array is None else array.frame(data)
            if out:
                await _write(response, out)
            if capture is not None:
                capture.append(data)  # as events, which the inference log folds
            if out and ctx.first_byte_at is None:
                ctx.first_byte_at = time.perf_counter()

    breakers = services.breakers
    services.live.streaming(reply)  # from here on, shutdown ends it with an error event
    try:
        await response.prepare(ctx.request)
        events = reader.first
        # The first chunk may hold many events (or the whole stream): the caller's first byte does
        # not wait for the rest of it.
        while events and ctx.first_byte_at is None and not outbound.blocked:
            ev, parsed = events.pop(0)
            await send(outbound.event(ev, parsed))
        events += reader.rest()
        failure: GatewayError | None = None
        failure_category = "api_error"  # the error's category for a translated stream (rendered by the translation)
        chunks = reader.chunks
        while not outbound.blocked:
            await send([out for ev, parsed in events for out in outbound.event(ev, parsed)])
            if reader.done or outbound.blocked or (translator is not None and translator.failure is not None):
                break
            waited = time.perf_counter()
            try:
                events = reader.feed(await chunks.__anext__())
            except StopAsyncIteration:
                events = reader.end()
            except ShuttingDown:  # shutdown's grace period is over (`live.LiveRequests.end_all`)
                ctx.usage_complete = False
                ctx.error_code = SHUTTING_DOWN
                failure, failure_category = shutting_down_error(), SHUTTING_DOWN
                break
            except _UPSTREAM_READ_ERRORS as exc:
                idle = isinstance(exc, TimeoutError)
                assert ctx.target is not None and ctx.service is not None
                words = failure_words(exc, ctx.target, ctx.service, streaming=True)
                failure = _stream_failed(ctx, breakers,
                                         "upstream_idle_timeout" if idle else "upstream_stream_interrupted",
                                         "idle_timeout" if idle else "stream_interrupted", words)
                break
            finally:
                ctx.upstream_s += time.perf_counter() - waited
        if outbound.blocked:
            ctx.error_code = "output_guardrail_triggered"
            ctx.usage_complete = False  # reading stopped at the block: the usage seen so far is partial
        elif failure is None and translator is not None and translator.failure is not None:
            # an event the translation could not read: the caller's stream already got its error event
            _stream_failed(ctx, breakers, translator.failure.code, "invalid_response", translator.failure.message)
        elif failure is None and reader.problem is not None:
            failure = _stream_failed(ctx, breakers, "upstream_invalid_response", "invalid_response", reader.problem)
        elif failure is None and observer.failed is not None:  # its own error event, which the caller got
            _stream_failed(ctx, breakers, observer.failed, "stream_error", f"its own error event ({observer.failed})")
            await send(outbound.finish())
        elif failure is None:
            breakers.destination_succeeded(ctx)
            await send(outbound.finish())
        if failure is not None:  # nothing may follow the error event
            # the text the output guard holds goes first, scanned as final (masked, or the block instead)
            ending = (translator.error(failure.status, failure_category, failure.message) if translator is not None
                      else [stream_error(ctx.fmt.name, failure, ctx.request_id)])
            await send(outbound.fail(ending))
        if array is not None:
            await _write(response, array.close())
        await response.write_eof()
    except (ClientGone, ConnectionResetError):
        ctx.status = 499
        ctx.error_code = "client_disconnected"
        ctx.usage_complete = False
    finally:
        reply.close()
        ctx.usage = observer.usage
        ctx.output_chars = observer.text_chars
        ctx.finish_reason = observer.finish_reason
    return response
