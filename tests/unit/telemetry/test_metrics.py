"""Metrics from usage rows: values, labels, opt-in labels, the label cap, escaping, and the fast
text rendering against prometheus_client's own (promtool: tests/e2e/test_metrics_promtool.py)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp.test_utils import make_mocked_request
from prometheus_client.exposition import generate_latest
from tests.support.prom import label_sets, parse, total, value

from sidegate.context import RequestContext
from sidegate.ingress.registry import SURFACES
from sidegate.telemetry.metrics.app_metrics import Metrics
from sidegate.telemetry.metrics.labels import OTHER, opt_in_labels
from sidegate.telemetry.usage.row import UsageRow

CHAT = next(s for s in SURFACES if s.name == "mlflow/chat/completions")
COUNT = next(s for s in SURFACES if s.name == "anthropic/count_tokens")
OK = [{"destination": "openai", "provider": "openai", "model": "gpt-5", "status": 200, "reason": "ok",
       "duration_ms": 800.0}]
REQ = {"api": "mlflow/chat/completions", "model_service": "gpt-5", "provider": "openai", "status_code": "200"}
GENAI = {"gen_ai_operation_name": "chat", "gen_ai_provider_name": "openai", "gen_ai_request_model": "gpt-5"}


def request(service: str | None = "gpt-5", upstream_s: float = 0.8, surface: Any = CHAT,
            **fields: Any) -> tuple[RequestContext, UsageRow]:
    ctx = RequestContext(request=make_mocked_request("POST", "/"), surface=surface, fmt=surface.fmt,
                         policy=None, request_id="r", event_time="t")  # type: ignore[arg-type]
    ctx.service = SimpleNamespace(name=service) if service else None  # type: ignore[assignment]
    ctx.upstream_s = upstream_s
    row: dict[str, Any] = dict(
        request_id="r", event_time="t", requester="alice@example.com", api_type=surface.name,
        model_service=service, destination_type="openai", destination_name="openai", destination_model="gpt-5",
        status_code=200, streaming=True, input_tokens=1200, output_tokens=300, total_tokens=1500,
        cache_read_input_tokens=1000, latency_ms=812.5, time_to_first_byte_ms=240.0,
        request_tags={"team": "search"}, routing_information=OK)
    row.update(fields)
    return ctx, UsageRow(**row)


def scrape(metrics: Metrics) -> dict[Any, float]:
    return parse(metrics.render())


def test_a_request_is_counted_timed_and_its_tokens_added() -> None:
    metrics = Metrics(process_collectors=False)
    metrics.observe(*request())
    s = scrape(metrics)
    assert value(s, "sidegate_requests_total", **REQ) == 1
    assert value(s, "sidegate_request_duration_seconds_bucket", **REQ, le="0.5") == 0
    assert value(s, "sidegate_request_duration_seconds_bucket", **REQ, le="1.0") == 1
    assert value(s, "sidegate_request_duration_seconds_sum", **REQ) == pytest.approx(0.8125)
    # overhead: the duration less the time waiting on the upstream (0.8125 - 0.8 s)
    assert value(s, "sidegate_overhead_seconds_sum", **REQ) == pytest.approx(0.0125)
    assert value(s, "sidegate_overhead_seconds_bucket", **REQ, le="0.01") == 0
    assert value(s, "sidegate_overhead_seconds_bucket", **REQ, le="0.025") == 1
    assert value(s, "sidegate_time_to_first_byte_seconds_bucket", **REQ, le="0.1") == 0
    assert value(s, "sidegate_time_to_first_byte_seconds_bucket", **REQ, le="0.25") == 1
    tokens = {d["type"]: s[("sidegate_tokens_total", frozenset(d.items()))]
              for d in label_sets(s, "sidegate_tokens_total")}
    assert tokens == {"input": 1200, "output": 300, "cache_read": 1000}  # types never seen are left out
    assert value(s, "gen_ai_client_token_usage_count", **GENAI, gen_ai_token_type="input") == 1
    assert value(s, "gen_ai_client_token_usage_sum", **GENAI, gen_ai_token_type="input") == 1200
    assert value(s, "gen_ai_client_token_usage_bucket", **GENAI, gen_ai_token_type="input", le="1024.0") == 0
    assert value(s, "gen_ai_client_token_usage_bucket", **GENAI, gen_ai_token_type="input", le="4096.0") == 1
    assert value(s, "gen_ai_client_token_usage_sum", **GENAI, gen_ai_token_type="output") == 300
    assert value(s, "gen_ai_server_request_duration_seconds_count", **GENAI, error_type="") == 1
    assert value(s, "gen_ai_server_time_to_first_token_seconds_sum", **GENAI) == pytest.approx(0.24)
    assert total(s, "sidegate_rate_limited_total") == total(s, "sidegate_fallbacks_total") == 0
    assert total(s, "sidegate_upstream_errors_total") == total(s, "sidegate_guardrail_triggers_total") == 0


def test_overhead_is_never_negative() -> None:
    metrics = Metrics(process_collectors=False)
    metrics.observe(*request(upstream_s=5.0))
    assert value(scrape(metrics), "sidegate_overhead_seconds_bucket", **REQ, le="0.0001") == 1


def test_a_refused_request_has_no_provider_nor_genai_metrics() -> None:
    metrics = Metrics(process_collectors=False)
    metrics.observe(*request(service=None, status_code=401, error_code="invalid_api_key", destination_type=None,
                             destination_name=None, input_tokens=0, output_tokens=0, total_tokens=0,
                             cache_read_input_tokens=0, routing_information=[], time_to_first_byte_ms=None))
    s = scrape(metrics)
    labels = {"api": "mlflow/chat/completions", "model_service": "", "provider": "", "status_code": "401"}
    assert value(s, "sidegate_requests_total", **labels) == 1
    assert total(s, "sidegate_tokens_total") == 0
    assert total(s, "sidegate_time_to_first_byte_seconds_count") == 0
    assert not [k for k in s if k[0].startswith("gen_ai_")]


def test_count_tokens_calls_are_not_genai_operations() -> None:
    metrics = Metrics(process_collectors=False)
    metrics.observe(*request(surface=COUNT, streaming=False, output_tokens=0, total_tokens=1200))
    s = scrape(metrics)
    assert total(s, "sidegate_requests_total", api="anthropic/count_tokens") == 1
    assert not [k for k in s if k[0].startswith("gen_ai_")]


def test_genai_error_type_and_first_token_only_for_successful_streams() -> None:
    metrics = Metrics(process_collectors=False)
    metrics.observe(*request(streaming=False))
    metrics.observe(*request(status_code=502, error_code="upstream_error"))
    s = scrape(metrics)
    assert value(s, "gen_ai_server_request_duration_seconds_count", **GENAI, error_type="") == 1
    assert value(s, "gen_ai_server_request_duration_seconds_count", **GENAI, error_type="upstream_error") == 1
    assert total(s, "gen_ai_server_time_to_first_token_seconds_count") == 0


def test_rate_limit_refusals() -> None:
    metrics = Metrics(process_collectors=False)
    metrics.observe(*request(status_code=429, error_code="rate_limit_exceeded", destination_type=None,
                             destination_name=None, routing_information=[], total_tokens=0))
    metrics.observe(*request(status_code=429, error_code="upstream_rate_limited"))  # the provider's 429
    s = scrape(metrics)
    assert value(s, "sidegate_rate_limited_total", api="mlflow/chat/completions", model_service="gpt-5") == 1
    assert total(s, "sidegate_rate_limited_total") == 1


def test_guardrail_triggers_fallbacks_and_upstream_errors() -> None:
    metrics = Metrics(process_collectors=False)
    attempts = [
        {"destination": "a", "provider": "openai", "model": "m", "status": 429, "reason": "retryable_status"},
        {"destination": "b", "provider": "anthropic", "model": "m", "status": None, "reason": "timeout"},
        {"destination": "c", "provider": "gemini", "model": "m", "status": 200, "reason": "ok"},
    ]
    guardrails = [
        {"guardrail": "pii", "phase": "input", "action": "mask", "category": "email", "count": 3},
        {"guardrail": "pii", "phase": "output", "action": "mask", "category": "email", "count": 1},
    ]
    metrics.observe(*request(routing_information=attempts, guardrail_results=guardrails))
    s = scrape(metrics)
    base = {"api": "mlflow/chat/completions", "model_service": "gpt-5"}
    assert value(s, "sidegate_fallbacks_total", **base, from_provider="a", provider="b",
                 reason="retryable_status") == 1
    assert value(s, "sidegate_fallbacks_total", **base, from_provider="b", provider="c", reason="timeout") == 1
    assert total(s, "sidegate_fallbacks_total") == 2
    assert value(s, "sidegate_upstream_errors_total", **base, provider="a", reason="retryable_status",
                 status_code="429") == 1
    assert value(s, "sidegate_upstream_errors_total", **base, provider="b", reason="timeout", status_code="") == 1
    assert total(s, "sidegate_upstream_errors_total") == 2
    for phase in ("input", "output"):
        assert value(s, "sidegate_guardrail_triggers_total", **base, guardrail="pii", phase=phase, action="mask",
                     category="email") == 1


def test_opt_in_labels_on_every_request_metric() -> None:
    metrics = Metrics(["principal", "tag:team", "tag:cost-center"], process_collectors=False)
    metrics.observe(*request())
    s = scrape(metrics)
    opt = {"principal": "alice@example.com", "tag_team": "search", "tag_cost_center": ""}
    assert value(s, "sidegate_requests_total", **REQ, **opt) == 1
    assert value(s, "gen_ai_server_request_duration_seconds_count", **GENAI, error_type="", **opt) == 1
    for name in ("sidegate_tokens_total", "sidegate_overhead_seconds_count", "gen_ai_client_token_usage_count"):
        assert all(opt.items() <= labels.items() for labels in label_sets(s, name)), name


def test_opt_in_label_names() -> None:
    configured = ["tag:a-b", "tag:a.b", "principal", "principal", "tag:é", "tag:a-b"]
    names = [label.name for label in opt_in_labels(configured)]
    assert names == ["tag_a_b", "tag_a_b_2", "principal", "tag__"]
    assert [label.tag for label in opt_in_labels(["tag:a.b", "principal"])] == ["a.b", None]
    with pytest.raises(ValueError, match="expected"):
        opt_in_labels(["requester"])


def test_label_values_past_the_cap_fold_into_other_and_are_counted() -> None:
    metrics = Metrics(["tag:team"], process_collectors=False, cap=3)
    for team in ("t0", "t1", "t2", "t3", "t4", "t4", "t0"):
        metrics.observe(*request(request_tags={"team": team}))
    s = scrape(metrics)
    teams = {d["tag_team"]: s[("sidegate_requests_total", frozenset(d.items()))]
             for d in label_sets(s, "sidegate_requests_total")}
    assert teams == {"t0": 2, "t1": 1, "t2": 1, OTHER: 3}
    assert value(s, "sidegate_metric_label_overflow_total", metric="sidegate_requests_total", label="tag_team") == 3
    assert value(s, "sidegate_metric_label_overflow_total", metric="gen_ai_client_token_usage", label="tag_team") == 3
    assert total(s, "sidegate_metric_label_overflow_total", label="model_service") == 0
    assert total(s, "gen_ai_client_token_usage_count", tag_team=OTHER) == 6  # input and output, 3 requests


def test_the_cap_counts_per_label_and_metric() -> None:
    metrics = Metrics(process_collectors=False, cap=2)
    for service in ("s1", "s2", "s3"):
        metrics.observe(*request(service=service))
    s = scrape(metrics)
    assert sorted(d["model_service"] for d in label_sets(s, "sidegate_requests_total")) == [OTHER, "s1", "s2"]
    assert sorted(d["gen_ai_request_model"] for d in label_sets(s, "gen_ai_server_request_duration_seconds_count")) \
        == [OTHER, "s1", "s2"]
    assert total(s, "sidegate_metric_label_overflow_total", label="model_service") > 0
    assert total(s, "sidegate_metric_label_overflow_total", label="provider") == 0


def test_label_values_are_escaped_and_valid_utf8() -> None:
    metrics = Metrics(["tag:team", "tag:who"], process_collectors=False)
    odd = 'a "quoted" \\ back\nslash ü'
    metrics.observe(*request(request_tags={"team": odd, "who": "bad\udcffbyte"}))
    body = metrics.render()
    s = parse(body)
    (labels,) = label_sets(s, "sidegate_requests_total")
    assert labels["tag_team"] == odd
    assert labels["tag_who"] == "bad\ufffdbyte"


def test_fast_rendering_matches_prometheus_client() -> None:
    metrics = Metrics(["principal", "tag:team"], process_collectors=False, cap=2)
    attempts = [{"destination": "a", "status": 503, "reason": "retryable_status"}, *OK]
    for n in range(4):
        metrics.observe(*request(request_tags={"team": f't"{n}\\'}, routing_information=attempts))
        metrics.observe(*request(status_code=400, error_code="bad", streaming=False, time_to_first_byte_ms=None,
                                 guardrail_results=[{"guardrail": "g", "phase": "input", "action": "block",
                                                     "category": "secret"}]))
    ours, reference = metrics.render(), generate_latest(metrics.registry)
    assert parse(ours) == parse(reference)
    assert len(parse(ours)) > 200


def test_same_labels_keep_counts_new_labels_start_afresh() -> None:
    metrics = Metrics(["principal"], process_collectors=False)
    metrics.observe(*request())
    metrics.configure(["principal"])
    metrics.observe(*request())
    assert total(scrape(metrics), "sidegate_requests_total") == 2
    metrics.configure(["tag:team"])
    metrics.observe(*request())
    s = scrape(metrics)
    assert total(s, "sidegate_requests_total") == 1
    assert [d.get("tag_team") for d in label_sets(s, "sidegate_requests_total")] == ["search"]


def test_observe_never_raises() -> None:
    metrics = Metrics(process_collectors=False)
    metrics.observe(*request(routing_information=[OK[0], "not an attempt"]))
    assert metrics.observe_errors == 1
    metrics.observe(*request())
    assert total(scrape(metrics), "sidegate_requests_total") == 2


async def test_exposition_formats() -> None:
    metrics = Metrics(["principal"])
    metrics.observe(*request())
    body, content_type = await metrics.exposition("text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
    assert content_type.startswith("text/plain; version=0.0.4")
    assert value(parse(body), "sidegate_requests_total", **REQ, principal="alice@example.com") == 1
    assert b"process_cpu_seconds_total" in body
    body, content_type = await metrics.exposition("application/openmetrics-text;version=1.0.0,text/plain;q=0.5")
    assert content_type.startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n") and b'sidegate_requests_total{api="mlflow/chat/completions"' in body


class Limiter:
    def __init__(self, store_errors: int) -> None:
        self.store_errors = store_errors


class Gauges:
    """The process values' whole view of a process: no app state behind it."""

    def __init__(self) -> None:
        self.in_flight = 3
        self.usage_queue_depth = 12
        self.policy_reloads = {"success": 2, "failure": 1}
        self.policy_reload_failed = True
        self.limiter: Limiter | None = Limiter(4)
        self.dropped_spans = 7


def test_process_values_read_the_gauges_at_scrape_time() -> None:
    gauges = Gauges()
    metrics = Metrics(gauges=gauges, process_collectors=False)
    s = scrape(metrics)
    assert value(s, "sidegate_in_flight_requests") == 3
    assert value(s, "sidegate_usage_queue_depth") == 12
    assert value(s, "sidegate_policy_reloads_total", result="success") == 2
    assert value(s, "sidegate_policy_reloads_total", result="failure") == 1
    assert value(s, "sidegate_policy_last_reload_failed") == 1
    assert value(s, "sidegate_rate_limit_store_errors_total") == 4
    assert value(s, "sidegate_trace_spans_dropped_total") == 7
    gauges.in_flight, gauges.policy_reload_failed, gauges.limiter = 0, False, None
    s = scrape(metrics)
    assert value(s, "sidegate_in_flight_requests") == 0
    assert value(s, "sidegate_policy_last_reload_failed") == 0
    assert value(s, "sidegate_rate_limit_store_errors_total") == 4  # the replaced limiter's errors still count


def test_store_errors_of_replaced_limiters_add_up() -> None:
    gauges = Gauges()
    metrics = Metrics(gauges=gauges, process_collectors=False)
    gauges.limiter.store_errors += 1  # type: ignore[union-attr]
    metrics.policy_swapped(())  # a reload is about to replace the limiter
    gauges.limiter = Limiter(2)
    assert value(scrape(metrics), "sidegate_rate_limit_store_errors_total") == 5 + 2
    gauges.limiter.store_errors = 3
    assert value(scrape(metrics), "sidegate_rate_limit_store_errors_total") == 5 + 3
