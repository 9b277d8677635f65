"""The metrics exposition is `promtool check metrics` clean with every kind of sample in it (opt-in
labels, the label cap, fallbacks, guardrail triggers, refusals); promtool runs as a process, so this
lives beside the end-to-end tests (the values themselves: tests/unit/telemetry/test_metrics.py)."""

from __future__ import annotations

from tests.support.prom import promtool_check
from tests.unit.telemetry.test_metrics import OK, request

from sidegate.telemetry.metrics.app_metrics import Metrics


def test_an_exposition_with_every_kind_of_sample_is_promtool_clean() -> None:
    metrics = Metrics(["principal", "tag:team"], cap=2)
    attempts = [{"destination": "a", "status": 503, "reason": "retryable_status"}, *OK]
    for n in range(3):
        metrics.observe(*request(request_tags={"team": f"t{n}"}, routing_information=attempts,
                                 guardrail_results=[{"guardrail": "g", "phase": "input", "action": "flag",
                                                     "category": "email"}]))
    metrics.observe(*request(status_code=429, error_code="rate_limit_exceeded"))
    code, said = promtool_check(metrics.render())
    assert (code, said) == (0, "")
