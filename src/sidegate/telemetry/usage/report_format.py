"""How `sidegate usage` prints a report: an aligned table for people, JSON or CSV for programs.

JSON holds everything (store, grouping, since, the groups in order and the overall total); CSV has
one line per group and no total line, so that summing a column in a spreadsheet counts each request
once; the table ends with a `(total)` line.
"""

from __future__ import annotations

import csv
import io

import orjson

from sidegate.telemetry.usage.report import SUM_COLUMNS, Report, Totals

__all__ = ["FORMATS", "render"]

FORMATS = ("table", "json", "csv")
_HEADERS = ("requests", "errors", "input", "output", "cache_read", "cache_creation", "reasoning", "total",
            "p50_ms", "p95_ms")


def _csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([report.by.label, "requests", "errors", *SUM_COLUMNS, "p50_latency_ms", "p95_latency_ms"])
    for name, totals in report.ordered():
        row = totals.as_dict()
        writer.writerow([name, *("" if v is None else v for v in row.values())])
    return out.getvalue()


def _cells(totals: Totals) -> list[str]:
    ms = ["-" if v is None else f"{v:,.1f}" for v in (totals.p50_latency_ms, totals.p95_latency_ms)]
    return [f"{totals.requests:,}", f"{totals.errors:,}", *(f"{totals.sums[c]:,}" for c in SUM_COLUMNS), *ms]


def _table(report: Report) -> str:
    since = f"since {report.since.isoformat()}" if report.since else "all time"
    lines = [[report.by.label, *_HEADERS]]
    lines += [[name, *_cells(totals)] for name, totals in report.ordered()]
    lines.append(["(total)", *_cells(report.total)])
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]

    def fmt(line: list[str]) -> str:
        return "  ".join([line[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(line[1:], widths[1:], strict=True)])

    rule = "  ".join("-" * w for w in widths)
    body = [fmt(line) for line in lines]
    return "\n".join([f"usage by {report.by.label}, {since} ({report.store})", body[0], rule,
                      *body[1:-1], rule, body[-1]]) + "\n"


def render(report: Report, fmt: str) -> str:
    if fmt == "json":
        return orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE).decode()
    if fmt == "csv":
        return _csv(report)
    if fmt == "table":
        return _table(report)
    raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
