"""Prometheus metrics of one sidegate process (names and labels: `catalog`; label cap and
opt-in labels: `labels`; process values: `process_values`).

`Metrics.observe(ctx, row)` runs once per request in the record stage. It builds one key from the
request's label values, finds the bundle of metric children cached for that key (one dict lookup)
and updates them in place; only a key seen for the first time goes through the label cap and the
families' dicts. Its cost per call is measured by bench/metrics_observe.py (about 3 µs).

Each app state owns a `CollectorRegistry`, so several apps in one process do not share metrics.
The exposition (`exposition()`) is rendered in a worker thread, so a large scrape does not hold up
requests. A change of the policy's opt-in labels (`configure`) starts the per-request metrics
afresh (Prometheus sees counters reset); the process values are unaffected.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, choose_encoder, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from sidegate.telemetry.metrics.catalog import TOKEN_TYPES, RequestFamilies
from sidegate.telemetry.metrics.families import Child, Family, Overflow, OverflowKey
from sidegate.telemetry.metrics.labels import GENAI_OPERATIONS, GENAI_PROVIDER_NAMES, LABEL_VALUE_CAP, opt_in_labels
from sidegate.telemetry.metrics.process_values import Gauges, ProcessValues
from sidegate.telemetry.metrics.text import render_text

if TYPE_CHECKING:
    from sidegate.context import RequestContext
    from sidegate.telemetry.usage.row import UsageRow

log = structlog.get_logger("sidegate.metrics")

BUNDLE_CACHE_MAX = 10_000
"""Label-value keys whose children are cached; past this the cache starts again (children stay)."""

RATE_LIMITED = "rate_limit_exceeded"


class _Bundle:
    """The children one request key updates."""

    __slots__ = ("duration", "first_byte", "folded", "genai_duration", "genai_first_token", "genai_input",
                 "genai_output", "overhead", "rate_limited", "requests", "tokens")
    requests: Child
    duration: Child
    first_byte: Child
    overhead: Child
    tokens: list[Child]  # in TOKEN_TYPES order
    rate_limited: Child

    def __init__(self) -> None:
        self.genai_duration: Child | None = None
        self.genai_first_token: Child | None = None
        self.genai_input: Child | None = None
        self.genai_output: Child | None = None
        self.folded: list[OverflowKey] = []


class _RequestCollector:
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        for family in self._metrics.families:
            yield family.collect()

    describe = collect


class Metrics:
    def __init__(self, labels: Sequence[str] = (), gauges: Gauges | None = None, *,
                 process_collectors: bool = True, cap: int = LABEL_VALUE_CAP) -> None:
        """`labels`: the policy's `telemetry.metrics.labels`. `gauges`: the process values exposed
        (in flight, usage queue, reloads, rate-limit store errors; the app state provides them). `cap`:
        distinct values per label of each metric before new ones fold into `__other__`."""
        self.registry = CollectorRegistry()  # every metric, as prometheus_client collectors
        self._rest = CollectorRegistry()  # all but the per-request families (see `exposition`)
        self.overflow = Overflow()
        self.cap = cap
        self.labels: tuple[str, ...] = ()
        self.families: RequestFamilies  # set by configure, with the label-value caches below
        self._tags: tuple[str | None, ...] = ()
        self._bundles: dict[tuple[Any, ...], _Bundle] = {}
        self.observe_errors = 0
        self.configure(labels, force=True)
        self.registry.register(_RequestCollector(self))
        self.process = ProcessValues(gauges) if gauges is not None else None
        others: list[Collector] = [self.overflow]
        if self.process is not None:
            others.append(self.process)
        for collector in others:
            self.registry.register(collector)
        if process_collectors:  # these register themselves
            others += [ProcessCollector(registry=self.registry), PlatformCollector(registry=self.registry),
                       GCCollector(registry=self.registry)]
        for collector in others:
            self._rest.register(collector)

    def configure(self, labels: Sequence[str], force: bool = False) -> None:
        """Use these opt-in labels; a change starts the per-request metrics afresh."""
        if tuple(labels) == self.labels and not force:
            return
        opt = opt_in_labels(labels)
        self.families = RequestFamilies([label.name for label in opt], self.overflow, self.cap)
        self._tags = tuple(label.tag for label in opt)
        self._bundles = {}
        self.labels = tuple(labels)

    def policy_swapped(self, labels: Sequence[str]) -> None:
        """Follow a reloaded policy; call before the state replaces its rate limiter."""
        if self.process is not None:
            self.process.note_limiter()
        self.configure(labels)

    # --- per request ------------------------------------------------------------------------

    def observe(self, ctx: RequestContext, row: UsageRow) -> None:
        """Record one finished request. Never raises."""
        try:
            self._observe(ctx, row)
        except Exception:
            self.observe_errors += 1
            if self.observe_errors == 1 or self.observe_errors % 10_000 == 0:
                log.exception("metrics observation failed", errors=self.observe_errors)

    def _observe(self, ctx: RequestContext, row: UsageRow) -> None:
        service = ctx.service.name if ctx.service is not None else ""
        key: tuple[Any, ...] = (row.api_type or "", service, row.destination_name or "", row.status_code,
                                row.destination_type or "", row.error_code or "",
                                GENAI_OPERATIONS.get(ctx.surface.api, ""))
        if self._tags:
            key += self._opt_values(row)
        bundle = self._bundles.get(key)
        if bundle is None:
            bundle = self._bundle(key)
        elif bundle.folded:
            self.overflow.add(bundle.folded)
        families = self.families

        bundle.requests[0] += 1
        seconds = row.latency_ms / 1000.0
        child = bundle.duration
        child[bisect_left(families.duration.bounds, seconds)] += 1
        child[-1] += seconds
        overhead = max(0.0, seconds - ctx.upstream_s)
        child = bundle.overhead
        child[bisect_left(families.overhead.bounds, overhead)] += 1
        child[-1] += overhead
        first_byte = row.time_to_first_byte_ms / 1000.0 if row.time_to_first_byte_ms is not None else None
        if first_byte is not None:
            child = bundle.first_byte
            child[bisect_left(families.first_byte.bounds, first_byte)] += 1
            child[-1] += first_byte
        if row.total_tokens:
            tokens = bundle.tokens
            tokens[0][0] += row.input_tokens
            tokens[1][0] += row.output_tokens
            tokens[2][0] += row.cache_read_input_tokens
            tokens[3][0] += row.cache_creation_input_tokens
            tokens[4][0] += row.reasoning_tokens
        if row.error_code == RATE_LIMITED:
            bundle.rate_limited[0] += 1
        if bundle.genai_duration is not None:
            self._observe_genai(bundle, families, row, seconds, first_byte)
        if row.guardrail_results:
            self._guardrails(families, key, row.guardrail_results)
        attempts = row.routing_information
        if attempts and (len(attempts) > 1 or attempts[0].get("reason") != "ok"):
            self._attempts(families, key, attempts)

    def _opt_values(self, row: UsageRow) -> tuple[str, ...]:
        principal, tags = row.requester or "", row.request_tags
        return tuple(principal if tag is None else tags.get(tag, "") for tag in self._tags)

    @staticmethod
    def _observe_genai(bundle: _Bundle, families: RequestFamilies, row: UsageRow, seconds: float,
                       first_byte: float | None) -> None:
        child = bundle.genai_duration
        assert child is not None
        child[bisect_left(families.genai_duration.bounds, seconds)] += 1
        child[-1] += seconds
        bounds = families.genai_tokens.bounds
        for child, count in ((bundle.genai_input, row.input_tokens), (bundle.genai_output, row.output_tokens)):
            if count and child is not None:
                child[bisect_left(bounds, count)] += 1
                child[-1] += count
        child = bundle.genai_first_token
        if first_byte is not None and row.streaming and row.status_code < 400 and child is not None:
            child[bisect_left(families.genai_first_token.bounds, first_byte)] += 1
            child[-1] += first_byte

    def _bundle(self, key: tuple[Any, ...]) -> _Bundle:
        """The children for a key seen for the first time (label caps applied here)."""
        families = self.families
        api, service, provider, status, kind, error, operation = key[:7]
        opt = key[7:]
        bundle = _Bundle()
        folded = bundle.folded

        def child(family: Family, values: tuple[str, ...]) -> Child:
            found, newly_folded = family.lookup(values)
            folded.extend(newly_folded)
            return found

        labels = (api, service, provider, str(status))
        bundle.requests = child(families.requests, (*labels, *opt))
        bundle.duration = child(families.duration, (*labels, *opt))
        bundle.first_byte = child(families.first_byte, (*labels, *opt))
        bundle.overhead = child(families.overhead, (*labels, *opt))
        bundle.tokens = [child(families.tokens, (*labels, token_type, *opt)) for token_type in TOKEN_TYPES]
        bundle.rate_limited = child(families.rate_limited, (api, service, *opt))
        if operation and kind:
            genai = (operation, GENAI_PROVIDER_NAMES.get(kind, kind), service)
            bundle.genai_duration = child(families.genai_duration, (*genai, error, *opt))
            bundle.genai_first_token = child(families.genai_first_token, (*genai, *opt))
            bundle.genai_input = child(families.genai_tokens, (*genai, "input", *opt))
            bundle.genai_output = child(families.genai_tokens, (*genai, "output", *opt))
        if folded:
            bundle.folded = list(dict.fromkeys(folded))  # once per metric and label
            self.overflow.add(bundle.folded)
        if len(self._bundles) >= BUNDLE_CACHE_MAX:
            self._bundles.clear()
        self._bundles[key] = bundle
        return bundle

    @staticmethod
    def _guardrails(families: RequestFamilies, key: tuple[Any, ...], results: list[dict[str, Any]]) -> None:
        api, service, opt = key[0], key[1], key[7:]
        for result in results:
            values = (api, service, *(str(result.get(name) or "") for name in ("guardrail", "phase", "action",
                                                                                  "category")), *opt)
            families.guardrail_triggers.child(values)[0] += 1

    @staticmethod
    def _attempts(families: RequestFamilies, key: tuple[Any, ...], attempts: list[dict[str, Any]]) -> None:
        """Every attempt after the first is a fallback; every attempt not "ok" an upstream error."""
        api, service, opt = key[0], key[1], key[7:]
        previous: tuple[str, str] | None = None
        for attempt in attempts:
            provider = str(attempt.get("destination") or "")
            reason = str(attempt.get("reason") or "")
            if previous is not None:
                families.fallbacks.child((api, service, previous[0], provider, previous[1], *opt))[0] += 1
            if reason != "ok":
                status = attempt.get("status")
                values = (api, service, provider, reason, "" if status is None else str(status), *opt)
                families.upstream_errors.child(values)[0] += 1
            previous = (provider, reason)

    # --- exposition -------------------------------------------------------------------------

    def render(self) -> bytes:
        """The Prometheus text exposition (format 0.0.4), rendered here and now: the per-request
        families by `text`, the rest by prometheus_client."""
        return render_text(self.families) + generate_latest(self._rest)

    async def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """The exposition for a scrape, rendered in a worker thread, and its content type: OpenMetrics
        when the scraper asks for it (`Accept`), else the Prometheus text format."""
        if accept and "application/openmetrics-text" in accept:
            encoder, content_type = choose_encoder(accept)
            return await asyncio.to_thread(encoder, self.registry), content_type
        return await asyncio.to_thread(self.render), CONTENT_TYPE_PLAIN_0_0_4
