"""The one health tracker every store reports through: ok / failing since / last error, and the
log lines of a failure's start, its reminders (rate-limited) and its end."""

from __future__ import annotations

import threading

import pytest
from structlog.testing import capture_logs

from sidegate import health
from sidegate.health import Health


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def events(logs: list[dict]) -> list[tuple[str, str]]:
    return [(e["log_level"], e["event"]) for e in logs]


def test_start_reminders_at_most_once_a_period_and_end(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health, "REPORT_EVERY_S", 60.0)
    clock = Clock()
    h = Health("usage store", "postgresql://app:***@db/usage", clock=clock)
    assert h.snapshot() == {"store": "postgresql://app:***@db/usage", "status": "ok"}
    with capture_logs() as logs:
        h.failed(ConnectionRefusedError("connection refused"), queue_depth=3)
        for _ in range(10):  # within the period: no line
            clock.now += 5
            h.failed(OSError("still refused"))
        clock.now += 10  # 60 s after the start
        h.failed(OSError("schema missing"))
        clock.now += 59
        h.failed(OSError("schema missing"))  # 59 s after the reminder: none
        clock.now += 1
        h.ok()
        h.ok()  # nothing to end twice
    assert events(logs) == [("warning", "usage store unavailable"), ("warning", "usage store still unavailable"),
                            ("info", "usage store recovered")]
    start, reminder, end = logs
    assert start["error"] == "connection refused" and start["queue_depth"] == 3
    assert start["store"] == "postgresql://app:***@db/usage"
    assert reminder["failing_s"] == 60.0 and reminder["failures"] == 12 and reminder["error"] == "schema missing"
    assert reminder["since"] == "2027-01-15T08:00:00Z"
    assert end["outage_s"] == 120.0 and end["failures"] == 13 and end["last_error"] == "schema missing"
    assert h.snapshot() == {"store": "postgresql://app:***@db/usage", "status": "ok", "last_error": "schema missing"}


def test_snapshot_while_failing_and_a_new_outage_counts_afresh() -> None:
    clock = Clock()
    h = Health("rate limit store", "redis://127.0.0.1:1/0", clock=clock)
    with capture_logs() as logs:
        h.failed(TimeoutError())
        h.failed(TimeoutError())
        assert h.snapshot() == {"store": "redis://127.0.0.1:1/0", "status": "failing",
                                "since": "2027-01-15T08:00:00Z", "failures": 2, "last_error": "TimeoutError"}
        h.ok()
        clock.now += 1
        h.failed("refused")
    assert h.failing and h.failures == 1
    assert events(logs)[-1] == ("warning", "rate limit store unavailable")  # a new outage logs its start again


def test_errors_are_redacted_flattened_and_bounded() -> None:
    h = Health("usage store", "x")
    with capture_logs() as logs:
        h.failed("could not reach postgresql://app:s3cret@db/usage\n  key sha256:0123456789abcdef ?key=AIzaXYZ")
        assert h.last_error is not None and "s3cret" not in h.last_error and "0123456789abcdef" not in h.last_error
        assert "AIzaXYZ" not in h.last_error and "\n" not in h.last_error
        assert "s3cret" not in logs[0]["error"]
        h.failed("x" * 5000)
    assert len(h.last_error) <= 501


def test_reports_from_threads_start_one_outage() -> None:
    h = Health("trace collector", "http://collector:4318/v1/traces")
    with capture_logs() as logs:
        threads = [threading.Thread(target=lambda: [h.failed("down") for _ in range(200)]) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert h.failures == 800
    assert events(logs) == [("warning", "trace collector unavailable")]
