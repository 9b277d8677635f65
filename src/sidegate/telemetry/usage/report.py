"""`sidegate usage`: totals of the usage table per principal, model service, tag value, client or day.

A report is requests, errors (status >= 400), the token columns summed, and the median and 95th
percentile of `latency_ms` (continuous percentiles, as PostgreSQL's `percentile_cont`), per group
and over everything, for the rows since a moment. Rows whose grouping value is missing (a request
refused before authentication has no principal, a request without the tag has no tag value) form
the group `(none)`.

SQLite and PostgreSQL aggregate in SQL (`report_sql`); a JSONL file is read once, streaming,
here: memory grows with the number of rows only by one float per row (the latencies the
percentiles need) and the set of request ids seen (a replayed spool can append a row twice; the
first one counts, as in `stores.registry.read_rows`).
"""

from __future__ import annotations

import math
import re
from array import array
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sidegate.telemetry.stores.files import jsonl_rows
from sidegate.telemetry.stores.url import StoreURL, redact_url

__all__ = [
    "GROUPINGS", "NONE_GROUP", "SUM_COLUMNS", "Grouping", "Report", "ReportError", "Totals", "jsonl_report",
    "parse_by", "parse_since", "percentile",
]

NONE_GROUP = "(none)"
GROUPINGS = ("principal", "model", "tag:KEY", "client", "day")
SUM_COLUMNS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens",
               "reasoning_tokens", "total_tokens")
PERCENTILES = (0.5, 0.95)
_COLUMN_OF = {"principal": "requester", "model": "model_service", "client": "client"}
_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class ReportError(Exception):
    """The report cannot be made (unknown or unreachable store, missing table): a usage error."""


@dataclass(frozen=True, slots=True)
class Grouping:
    """What rows are grouped by: `kind` principal|model|client|day|tag, `tag` the key for tag."""

    kind: str
    tag: str | None = None

    @property
    def label(self) -> str:
        return f"tag:{self.tag}" if self.kind == "tag" else self.kind

    @property
    def column(self) -> str | None:
        """The usage column holding the group value (None for day and tag)."""
        return _COLUMN_OF.get(self.kind)


@dataclass(slots=True)
class Totals:
    requests: int = 0
    errors: int = 0
    sums: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SUM_COLUMNS, 0))
    p50_latency_ms: float | None = None
    p95_latency_ms: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "errors": self.errors, **self.sums,
                "p50_latency_ms": self.p50_latency_ms, "p95_latency_ms": self.p95_latency_ms}


@dataclass(slots=True)
class Report:
    store: str  # the URL, password redacted
    by: Grouping
    since: datetime | None
    groups: dict[str, Totals]
    total: Totals

    def ordered(self) -> list[tuple[str, Totals]]:
        """Days in order; other groups by total tokens, then requests, largest first."""
        if self.by.kind == "day":
            return sorted(self.groups.items())
        return sorted(self.groups.items(), key=lambda kv: (-kv[1].sums["total_tokens"], -kv[1].requests, kv[0]))

    def as_dict(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "by": self.by.label,
            "since": self.since.isoformat() if self.since else None,
            "groups": [{"group": name, **totals.as_dict()} for name, totals in self.ordered()],
            "total": self.total.as_dict(),
        }


def parse_by(text: str) -> Grouping:
    if text.startswith("tag:"):
        key = text[4:]
        if not key:
            raise ValueError("tag:KEY needs a tag key, e.g. tag:project")
        return Grouping("tag", key)
    if text in ("principal", "model", "client", "day"):
        return Grouping(text)
    raise ValueError(f"cannot group by {text!r}: use one of {', '.join(GROUPINGS)}")


def parse_since(text: str, now: datetime | None = None) -> datetime | None:
    """`24h`, `30m`, `7d`, `2w` before now; an ISO date or time (UTC unless it says otherwise);
    `all` for no lower bound. Whole seconds (the fraction is dropped), in UTC."""
    value = text.strip()
    if value.lower() == "all":
        return None
    match = _RELATIVE.match(value.lower())
    if match:
        moment = (now or datetime.now(UTC)) - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    else:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{text!r} is not a time: expected e.g. 24h, 7d, 2025-01-31, "
                             "2025-01-31T12:00:00Z or all") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(microsecond=0)


def percentile(ordered: list[float], p: float) -> float | None:
    """Continuous percentile of sorted values (linear interpolation, as `percentile_cont`)."""
    if not ordered:
        return None
    pos = p * (len(ordered) - 1)
    low = math.floor(pos)
    if low + 1 >= len(ordered):
        return ordered[low]
    return ordered[low] + (ordered[low + 1] - ordered[low]) * (pos - low)


def interpolate(values: dict[int, float], count: int, p: float) -> float | None:
    """`percentile` from only the values at the two positions it reads (SQL returns just those)."""
    if count <= 0:
        return None
    pos = p * (count - 1)
    low = math.floor(pos)
    if low + 1 >= count:
        return values[low]
    return values[low] + (values[low + 1] - values[low]) * (pos - low)


def percentile_positions(count: int) -> set[int]:
    """The 0-based positions of a sorted group that its percentiles read."""
    out: set[int] = set()
    for p in PERCENTILES:
        low = math.floor(p * (count - 1))
        out.update(i for i in (low, low + 1) if 0 <= i < count)
    return out


def round_ms(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)


# JSONL: one streaming pass

class _Group:
    __slots__ = ("errors", "latencies", "requests", "sums")

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.sums = [0] * len(SUM_COLUMNS)
        self.latencies = array("d")

    def add(self, row: dict[str, Any]) -> None:
        self.requests += 1
        if _int(row.get("status_code")) >= 400:
            self.errors += 1
        sums = self.sums
        for i, column in enumerate(SUM_COLUMNS):
            sums[i] += _int(row.get(column))
        latency = row.get("latency_ms")
        if isinstance(latency, int | float):
            self.latencies.append(float(latency))

    def totals(self) -> Totals:
        ordered = sorted(self.latencies)
        return Totals(self.requests, self.errors, dict(zip(SUM_COLUMNS, self.sums, strict=True)),
                      round_ms(percentile(ordered, 0.5)), round_ms(percentile(ordered, 0.95)))


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def _row_time(row: dict[str, Any]) -> datetime | None:
    try:
        moment = datetime.fromisoformat(row["event_time"])
    except (KeyError, TypeError, ValueError):
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _group_of(row: dict[str, Any], by: Grouping, moment: datetime | None) -> str:
    if by.kind == "day":
        return moment.astimezone(UTC).date().isoformat() if moment else NONE_GROUP
    if by.kind == "tag":
        tags = row.get("request_tags")
        value = tags.get(by.tag) if isinstance(tags, dict) else None
    else:
        value = row.get(_COLUMN_OF[by.kind])
    return NONE_GROUP if value is None else str(value)


def jsonl_report(url: StoreURL, by: Grouping, since: datetime | None) -> Report:
    assert url.path is not None
    groups: dict[str, _Group] = {}
    total = _Group()
    try:
        fh = open(url.path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise ReportError(f"no usage file at {url.path} ({exc.strerror})") from None
    with fh:
        for row in jsonl_rows(fh):
            moment = _row_time(row)
            if since is not None and (moment is None or moment < since):
                continue
            name = _group_of(row, by, moment)
            group = groups.get(name)
            if group is None:
                group = groups[name] = _Group()
            group.add(row)
            total.add(row)
    return Report(redact_url(url.raw), by, since, {k: g.totals() for k, g in groups.items()}, total.totals())
