"""The record stage, run for every request in the pipeline's `finally`: the usage row, the
rate-limit settlement with the real token count, and the request's metrics, span and log line."""

from __future__ import annotations

import time
from collections.abc import Coroutine
from typing import Any, Protocol

from sidegate.context import RequestContext
from sidegate.formats.base import TokenUsage, estimate_tokens, text_chars
from sidegate.telemetry.access_log import access_line
from sidegate.telemetry.inference.log import InferenceLog
from sidegate.telemetry.metrics.app_metrics import Metrics
from sidegate.telemetry.tracing.tracer import Tracing
from sidegate.telemetry.usage.row import UsageRow
from sidegate.telemetry.usage.writer import UsageWriter


class RecordServices(Protocol):
    """What the record stage uses, read at each call (a policy reload replaces some of them); the
    app state provides them."""

    @property
    def usage(self) -> UsageWriter: ...

    @property
    def inference_log(self) -> InferenceLog | None: ...

    @property
    def metrics(self) -> Metrics: ...

    @property
    def tracing(self) -> Tracing: ...

    def background(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run work off the request path (a rate-limit settlement with a remote store)."""


def record(services: RecordServices, ctx: RequestContext) -> UsageRow:
    """Never raises into the pipeline for a store problem: the writer spools what it cannot write."""
    row = usage_row(ctx, time.perf_counter())
    services.usage.submit(row)
    inference_log = services.inference_log
    if ctx.capture is not None and inference_log is not None:
        inference_log.submit(ctx, row)
    services.metrics.observe(ctx, row)
    limiter, reservation = ctx.limiter, ctx.reservation
    if limiter is not None and reservation is not None and not limiter.settle_now(reservation, row.total_tokens):
        services.background(limiter.settle(reservation, row.total_tokens))  # a remote store: off the request path
    services.tracing.end_request(ctx, row)
    access_line(row)
    return row


def _tokens(ctx: RequestContext) -> tuple[TokenUsage, bool]:
    """The request's token counts and whether any of them is an estimate."""
    usage = ctx.usage
    if not ctx.upstream_called or ctx.fmt.counts_tokens_only or ctx.target is None:
        return usage or TokenUsage(), False
    if usage is not None and ctx.usage_complete:
        return usage, False
    if ctx.status >= 400 and ctx.status != 499:
        return usage or TokenUsage(), False
    # No usage reported (or a stream cut short): estimate from the text seen, ≈ 4 characters a token.
    estimate = usage or TokenUsage()
    if not estimate.input:
        estimate.input = estimate_tokens(text_chars(ctx.body))
    estimate.output = max(estimate.output, estimate_tokens(ctx.output_chars))
    return estimate, True


def _utf8(text: str | None) -> str | None:
    """Text taken from headers or the URL holds lone surrogates where the bytes were not UTF-8
    (aiohttp decodes with surrogateescape); stores need valid UTF-8, so those bytes become U+FFFD."""
    if text is None or text.isascii():
        return text
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")


def usage_row(ctx: RequestContext, finished: float) -> UsageRow:
    tokens, estimated = _tokens(ctx)
    principal, target = ctx.principal, ctx.target
    return UsageRow(
        request_id=ctx.request_id,
        event_time=ctx.event_time,
        requester=principal.name if principal else None,
        requester_type=principal.type if principal else None,
        client=ctx.client,
        user_agent=_utf8(ctx.user_agent),
        api_type=ctx.surface.name,
        model_service=ctx.service.name if ctx.service else _utf8(ctx.model),
        destination_type=target.provider.kind if target else None,
        destination_name=target.provider.name if target else None,
        destination_model=_utf8(ctx.destination_model),
        status_code=ctx.status,
        error_code=ctx.error_code,
        streaming=ctx.stream,
        input_tokens=tokens.input,
        output_tokens=tokens.output,
        total_tokens=tokens.input + tokens.output,
        cache_read_input_tokens=tokens.cache_read,
        cache_creation_input_tokens=tokens.cache_creation,
        reasoning_tokens=tokens.reasoning,
        tokens_estimated=estimated,
        latency_ms=round(ctx.elapsed_ms(finished), 3),
        time_to_first_byte_ms=round(ctx.elapsed_ms(ctx.first_byte_at), 3) if ctx.first_byte_at else None,
        request_tags=ctx.tags,
        routing_information=ctx.attempts,
        guardrail_results=ctx.guardrail_results,
    )
