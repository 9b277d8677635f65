"""Label names and values of sidegate's metrics.

Opt-in labels come from the policy's `telemetry.metrics.labels`: `principal` is the label
`principal`; `tag:<key>` is the label `tag_<key>`, with every character that a Prometheus label name
cannot hold (anything but ASCII letters, digits and `_`) replaced by `_`. Two tag keys that map to
the same name (`tag:cost-center` and `tag:cost.center`) get `_2`, `_3`, … on the later ones. A
request without the tag has the empty value.

Every label of every metric keeps at most `LABEL_VALUE_CAP` distinct values; later new values are
recorded as `__other__`, and `sidegate_metric_label_overflow_total{metric, label}` counts the
observations that were folded so.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sidegate.formats.registry import FORMATS
from sidegate.telemetry.genai import OPERATIONS, PROVIDERS

LABEL_VALUE_CAP = 1000
"""Distinct values one label of one metric may take before new ones fold into `OTHER`."""

OTHER = "__other__"

_NOT_IN_NAME = re.compile(r"[^a-zA-Z0-9_]")

# gen_ai.operation.name per API format, as on the spans, for the formats that call a model
# (token counting is not a GenAI operation for the metrics).
GENAI_OPERATIONS: dict[str, str] = {api: op for api, op in OPERATIONS.items() if not FORMATS[api].counts_tokens_only}

# gen_ai.provider.name per provider kind, as on the spans.
GENAI_PROVIDER_NAMES: dict[str, str] = PROVIDERS


@dataclass(frozen=True, slots=True)
class OptInLabel:
    """One configured opt-in label: its Prometheus name and where its value comes from."""

    name: str  # the Prometheus label name
    tag: str | None  # the request tag key, or None for the principal


def opt_in_labels(configured: Iterable[str]) -> tuple[OptInLabel, ...]:
    """The opt-in labels for the policy's `telemetry.metrics.labels`, in order, duplicates dropped."""
    labels: list[OptInLabel] = []
    names: set[str] = set()
    seen: set[str] = set()
    for entry in configured:
        if entry in seen:
            continue
        seen.add(entry)
        if entry == "principal":
            tag, base = None, "principal"
        elif entry.startswith("tag:"):
            tag = entry[4:]
            base = "tag_" + _NOT_IN_NAME.sub("_", tag)
        else:
            raise ValueError(f"metric label {entry!r}: expected 'principal' or 'tag:<key>'")
        name, n = base, 1
        while name in names:
            n += 1
            name = f"{base}_{n}"
        names.add(name)
        labels.append(OptInLabel(name, tag))
    return tuple(labels)


def clean_value(value: str) -> str:
    """A label value that encodes as UTF-8: text taken from headers may hold lone surrogates (bytes
    that were not UTF-8); those become U+FFFD."""
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        pass
    try:
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return value.encode("utf-8", "replace").decode("utf-8")


class LabelCap:
    """The distinct values seen per label of one metric, at most `cap` each."""

    __slots__ = ("cap", "names", "seen")

    def __init__(self, names: Sequence[str], cap: int = LABEL_VALUE_CAP) -> None:
        self.names = tuple(names)
        self.cap = cap
        self.seen: list[set[str]] = [set() for _ in names]

    def apply(self, values: Sequence[str]) -> tuple[tuple[str, ...], list[str]]:
        """The values to record (each new one past the cap becomes `OTHER`) and the names of
        the labels whose value was folded."""
        out: list[str] = []
        folded: list[str] = []
        for index, value in enumerate(values):
            value = clean_value(value)
            seen = self.seen[index]
            if value not in seen:
                if len(seen) >= self.cap:
                    folded.append(self.names[index])
                    value = OTHER
                else:
                    seen.add(value)
            out.append(value)
        return tuple(out), folded
