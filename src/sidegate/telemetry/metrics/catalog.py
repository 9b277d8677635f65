"""Every per-request metric sidegate exposes: name, help text, label names and histogram buckets.

Label names (opt-in labels, from the policy, are appended to each of them):

- requests, durations, first byte, overhead: `api` (the usage row's `api_type`), `model_service`
  (empty when no model service was resolved), `provider` (the policy's provider name that answered,
  empty when none was called), `status_code`; tokens add `type`.
- rate-limit refusals: `api`, `model_service`.
- guardrail triggers: `api`, `model_service`, `guardrail`, `phase`, `action`, `category`.
- fallbacks: `api`, `model_service`, `from_provider`, `provider` (fallen back to), `reason` (why the
  previous attempt was given up).
- upstream errors: `api`, `model_service`, `provider`, `reason`, `status_code` (of the attempt;
  empty without a response).
- GenAI histograms (OpenTelemetry semantic conventions, with the names the OTel-to-Prometheus
  conversion gives them): `gen_ai_operation_name`, `gen_ai_provider_name`, `gen_ai_request_model`
  (the model service), plus `gen_ai_token_type` on token usage and `error_type` on duration.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from sidegate.telemetry.metrics.families import CounterFamily, Family, HistogramFamily, Overflow
from sidegate.telemetry.metrics.labels import LABEL_VALUE_CAP

# From milliseconds of a refused request to the minutes of a long generation.
DURATION_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)
FIRST_BYTE_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
# Time in sidegate itself: tenths of a millisecond upwards.
OVERHEAD_S = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# The GenAI conventions' advised boundaries; durations and first tokens go on past them for long generations.
GENAI_TOKENS = tuple(float(4**i) for i in range(14))  # 1 … 67,108,864
GENAI_DURATION_S = tuple(0.01 * 2**i for i in range(16))  # 0.01 … 327.68
GENAI_FIRST_TOKEN_S = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
                       15.0, 30.0, 60.0)

TOKEN_TYPES = ("input", "output", "cache_read", "cache_creation", "reasoning")

REQUEST_LABELS = ("api", "model_service", "provider", "status_code")
GENAI_LABELS = ("gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model")


class RequestFamilies:
    """The per-request metric families for one set of opt-in label names."""

    def __init__(self, opt_in: Sequence[str], overflow: Overflow, cap: int = LABEL_VALUE_CAP) -> None:
        extra = tuple(opt_in)

        def counter(name: str, doc: str, labels: tuple[str, ...]) -> CounterFamily:
            return CounterFamily(name, doc, labels + extra, overflow, cap)

        def histogram(name: str, doc: str, labels: tuple[str, ...], bounds: Sequence[float]) -> HistogramFamily:
            return HistogramFamily(name, doc, labels + extra, overflow, bounds, cap)

        self.opt_in = extra
        self.requests = counter("sidegate_requests_total", "Requests handled, refusals and failures included.",
                                REQUEST_LABELS)
        self.duration = histogram("sidegate_request_duration_seconds",
                                  "Time from a request's arrival to the end of its answer.", REQUEST_LABELS, DURATION_S)
        self.first_byte = histogram("sidegate_time_to_first_byte_seconds",
                                    "Time from a request's arrival to the first byte of its answer.", REQUEST_LABELS,
                                    FIRST_BYTE_S)
        self.overhead = histogram("sidegate_overhead_seconds",
                                  "Time spent in sidegate itself: the request's duration less the time waiting on "
                                  "upstreams.", REQUEST_LABELS, OVERHEAD_S)
        self.tokens = counter("sidegate_tokens_total",
                              "Tokens by type, as recorded in the usage table (input includes cached input, "
                              "output includes reasoning).", (*REQUEST_LABELS, "type"))
        self.rate_limited = counter("sidegate_rate_limited_total", "Requests refused by a rate limit.",
                                    ("api", "model_service"))
        self.guardrail_triggers = counter(
            "sidegate_guardrail_triggers_total",
            "Guardrail triggers: one per request, guardrail, phase and category that matched.",
            ("api", "model_service", "guardrail", "phase", "action", "category"))
        self.fallbacks = counter("sidegate_fallbacks_total",
                                 "Upstream attempts made after the first one of a request failed.",
                                 ("api", "model_service", "from_provider", "provider", "reason"))
        self.upstream_errors = counter("sidegate_upstream_errors_total",
                                       "Upstream attempts that did not succeed, by reason.",
                                       ("api", "model_service", "provider", "reason", "status_code"))
        self.genai_tokens = histogram("gen_ai_client_token_usage", "Tokens used per GenAI operation (OpenTelemetry "
                                      "gen_ai.client.token.usage).", (*GENAI_LABELS, "gen_ai_token_type"),
                                      GENAI_TOKENS)
        self.genai_duration = histogram("gen_ai_server_request_duration_seconds",
                                        "Duration of GenAI operations (OpenTelemetry gen_ai.server.request.duration).",
                                        (*GENAI_LABELS, "error_type"), GENAI_DURATION_S)
        self.genai_first_token = histogram("gen_ai_server_time_to_first_token_seconds",
                                           "Time to the first token of successful streamed GenAI operations "
                                           "(OpenTelemetry gen_ai.server.time_to_first_token).", GENAI_LABELS,
                                           GENAI_FIRST_TOKEN_S)

    def __iter__(self) -> Iterator[Family]:
        return iter((self.requests, self.duration, self.first_byte, self.overhead, self.tokens, self.rate_limited,
                     self.guardrail_triggers, self.fallbacks, self.upstream_errors, self.genai_tokens,
                     self.genai_duration, self.genai_first_token))
