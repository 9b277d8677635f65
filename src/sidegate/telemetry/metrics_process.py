"""Process-wide values read when Prometheus scrapes: requests in flight, usage rows not yet stored,
policy reloads and rate-limit store errors."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

if TYPE_CHECKING:
    from sidegate.governance.ratelimit.limiter import RateLimiter
    from sidegate.state import AppState


class ProcessValues:
    """A collector reading the app state at scrape time (from the exposition's worker thread: only
    plain reads of ints, a deque's length and a small dict)."""

    def __init__(self, state: AppState) -> None:
        self._state = state
        # A reload replaces the rate limiter and its error count; counts of replaced ones add up here.
        self._limiter: RateLimiter | None = None
        self._earlier_store_errors = 0
        self._lock = threading.Lock()  # a reload (event loop) and a scrape (worker thread) may meet here

    def note_limiter(self) -> None:
        """Take in the limiter in force; call before a reload replaces it and at each scrape."""
        with self._lock:
            limiter = self._state.limiter
            if limiter is not self._limiter:
                if self._limiter is not None:
                    self._earlier_store_errors += self._limiter.store_errors
                self._limiter = limiter

    def store_errors(self) -> int:
        self.note_limiter()
        with self._lock:
            current = self._limiter.store_errors if self._limiter is not None else 0
            return self._earlier_store_errors + current

    def describe(self) -> Iterator[Metric]:
        return self._families(scrape=False)

    def collect(self) -> Iterator[Metric]:
        return self._families(scrape=True)

    def _families(self, scrape: bool) -> Iterator[Metric]:
        state = self._state
        yield GaugeMetricFamily("sidegate_in_flight_requests", "Requests being handled now.",
                                value=state.in_flight if scrape else None)
        yield GaugeMetricFamily("sidegate_usage_queue_depth",
                                "Usage rows accepted but not yet in the usage store (in memory and spooled).",
                                value=state.usage.queue_depth if scrape else None)
        reloads = CounterMetricFamily("sidegate_policy_reloads_total",
                                      "Policy reloads: success (a new policy in force) or failure (rejected; the "
                                      "previous policy keeps serving).", labels=("result",))
        if scrape:
            counts = dict(state.holder.reloads)
            for result in ("success", "failure"):
                reloads.add_metric((result,), counts.get(result, 0))
        yield reloads
        yield GaugeMetricFamily("sidegate_policy_last_reload_failed",
                                "1 while the latest policy reload was rejected (the previous policy is serving).",
                                value=(1 if state.holder.last_error else 0) if scrape else None)
        yield CounterMetricFamily("sidegate_rate_limit_store_errors_total",
                                  "Rate-limit calls that could not use the store (outages; on_error decided).",
                                  value=self.store_errors() if scrape else None)
        yield CounterMetricFamily("sidegate_trace_spans_dropped_total",
                                  "Spans that never reached the trace collector (it was down, refused them, or "
                                  "the export queue was full); starts again when a reload moves the collector.",
                                  value=state.tracing.dropped_spans if scrape else None)
