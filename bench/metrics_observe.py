"""Cost of Metrics.observe per request (the record stage calls it once per request), and of one
scrape's exposition. Not a test.

    python bench/metrics_observe.py [--calls 200000]

Cases: a plain 200 (label key cached), the same with opt-in labels (principal and a tag), a request
that fell back once (two extra counters), and keys seen for the first time (the label-cap path).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from aiohttp.test_utils import make_mocked_request

from sidegate.auth.principal import PrincipalInfo
from sidegate.context import RequestContext
from sidegate.ingress.registry import SURFACES
from sidegate.telemetry.metrics.app_metrics import Metrics
from sidegate.telemetry.usage.row import UsageRow

CHAT = next(s for s in SURFACES if s.name == "mlflow/chat/completions")


class _Service:
    name = "gpt-5"


def request(**row: Any) -> tuple[RequestContext, UsageRow]:
    ctx = RequestContext(request=make_mocked_request("POST", "/"), surface=CHAT, fmt=CHAT.fmt,
                         policy=None, request_id="r", event_time="t")  # type: ignore[arg-type]
    ctx.service = _Service()  # type: ignore[assignment]
    ctx.principal = PrincipalInfo("alice@example.com", "user", frozenset())
    ctx.upstream_s = 0.8
    fields: dict[str, Any] = dict(
        request_id="r", event_time="t", requester="alice@example.com", api_type=CHAT.name, model_service="gpt-5",
        destination_type="openai", destination_name="openai", destination_model="gpt-5", status_code=200,
        streaming=True, input_tokens=1200, output_tokens=300, total_tokens=1500, cache_read_input_tokens=1000,
        latency_ms=812.5, time_to_first_byte_ms=240.0, request_tags={"team": "search", "project": "x"},
        routing_information=[{"destination": "openai", "provider": "openai", "model": "gpt-5", "status": 200,
                              "reason": "ok", "duration_ms": 800.0}])
    fields.update(row)
    return ctx, UsageRow(**fields)


def per_call(metrics: Metrics, pairs: list[tuple[RequestContext, UsageRow]], calls: int) -> float:
    """Microseconds per observe."""
    observe = metrics.observe
    n = len(pairs)
    for i in range(min(calls, 1000)):
        observe(*pairs[i % n])
    started = time.perf_counter()
    for i in range(calls):
        observe(*pairs[i % n])
    return (time.perf_counter() - started) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200_000)
    calls = parser.parse_args().calls

    plain = [request()]
    print(f"{'200, key cached':<44} {per_call(Metrics(), plain, calls):6.2f} µs")
    print(f"{'200, key cached, principal + tag:team':<44} "
          f"{per_call(Metrics(['principal', 'tag:team']), plain, calls):6.2f} µs")
    fell_back = [request(routing_information=[
        {"destination": "openai", "provider": "openai", "model": "gpt-5", "status": 429,
         "reason": "retryable_status", "duration_ms": 5.0},
        {"destination": "anthropic", "provider": "anthropic", "model": "claude", "status": 200, "reason": "ok",
         "duration_ms": 800.0}])]
    print(f"{'200 after one fallback':<44} {per_call(Metrics(), fell_back, calls):6.2f} µs")
    fresh = [request(request_tags={"team": f"team-{n}"}) for n in range(calls // 10)]
    metrics = Metrics(["tag:team"])
    started = time.perf_counter()
    for pair in fresh:
        metrics.observe(*pair)
    print(f"{'new label key (cap applied)':<44} {(time.perf_counter() - started) / len(fresh) * 1e6:6.2f} µs")

    for series in (10, 1000):
        metrics = Metrics(["tag:team"])
        for n in range(series):
            metrics.observe(*request(request_tags={"team": f"team-{n}"}))
        started = time.perf_counter()
        body = metrics.render()
        print(f"exposition, {series:>5} label keys: {(time.perf_counter() - started) * 1e3:8.1f} ms, "
              f"{len(body) / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
