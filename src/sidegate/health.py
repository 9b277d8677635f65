"""Health of one thing sidegate depends on (the rate-limit store, the usage store, the inference
log's store, the trace collector): ok, or failing since a moment with the last error.

Every store reports through one `Health`: `failed(error)` on each failed call, `ok()` on each
successful one. The first failure of an outage is logged as a warning, a reminder follows at most
every `REPORT_EVERY_S` while it lasts (on the next failure after that interval), and the end is
logged as info with how long it lasted. `snapshot()` is what `/readyz` shows. Error texts pass
through the log redaction (passwords in URLs, key hashes, `?key=`) before they are kept, and the
target is given already redacted, so neither /readyz nor a log line carries a credential.

`failed` and `ok` are cheap when nothing changes (a flag test) and safe to call from any thread
(the trace exporter reports from its worker thread).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog

from sidegate.telemetry.logs import redact

__all__ = ["REPORT_EVERY_S", "Health"]

REPORT_EVERY_S = 60.0  # while a failure lasts, at most one reminder line per this many seconds
_MAX_ERROR_CHARS = 500

log = structlog.get_logger("sidegate.health")


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def error_text(error: BaseException | str) -> str:
    """A failure as one short, redacted line (the exception type when it has no message)."""
    text = (str(error) or type(error).__name__) if isinstance(error, BaseException) else error
    text = " ".join(text.split())
    if len(text) > _MAX_ERROR_CHARS:
        text = text[:_MAX_ERROR_CHARS] + "…"
    return redact(text)


class Health:
    """`label` names the thing in log lines ("usage store"); `target` is its redacted URL."""

    __slots__ = ("_clock", "_lock", "_reported_at", "failures", "label", "last_error", "last_ok", "since",
                 "target")

    def __init__(self, label: str, target: str, *, clock: Callable[[], float] = time.time) -> None:
        self.label = label
        self.target = target
        self._clock = clock
        self._lock = threading.Lock()
        self.since: float | None = None  # when the current failure started; None: ok
        self.last_error: str | None = None
        self.failures = 0  # failed calls in the current outage
        self.last_ok: float | None = None
        self._reported_at = 0.0

    @property
    def failing(self) -> bool:
        return self.since is not None

    def failed(self, error: BaseException | str, **context: Any) -> None:
        """A call failed. `context` adds fields to the log lines (a queue depth, a mode)."""
        text = error_text(error)
        now = self._clock()
        with self._lock:
            self.last_error = text
            self.failures += 1
            if self.since is None:
                self.since = self._reported_at = now
                event, extra = f"{self.label} unavailable", {}
            elif now - self._reported_at >= REPORT_EVERY_S:
                self._reported_at = now
                event = f"{self.label} still unavailable"
                extra = {"since": _iso(self.since), "failing_s": round(now - self.since, 3),
                         "failures": self.failures}
            else:
                return
        log.warning(event, store=self.target, error=text, **extra, **context)

    def ok(self, **context: Any) -> None:
        """A call succeeded: ends a failure (logged) if there was one."""
        now = self._clock()
        self.last_ok = now
        if self.since is None:
            return
        with self._lock:
            since, failures = self.since, self.failures
            if since is None:
                return
            self.since = None
            self.failures = 0
        log.info(f"{self.label} recovered", store=self.target, outage_s=round(now - since, 3),
                 failures=failures, last_error=self.last_error, **context)

    def snapshot(self) -> dict[str, Any]:
        """For /readyz: `{"store", "status": "ok"|"failing"}`, with `since`, `failures` and
        `last_error` while failing (and the last error of an earlier failure once ok)."""
        with self._lock:
            body: dict[str, Any] = {"store": self.target, "status": "failing" if self.since is not None else "ok"}
            if self.since is not None:
                body["since"] = _iso(self.since)
                body["failures"] = self.failures
            if self.last_error is not None:
                body["last_error"] = self.last_error
        return body
