"""`sidegate usage` over SQLite and PostgreSQL: the aggregation runs in the database.

PostgreSQL: one statement, `GROUP BY GROUPING SETS ((group), ())` for the groups and the overall
total, `percentile_cont(ARRAY[0.5, 0.95])` for the latency percentiles.

SQLite has no percentile function. The sums and each group's count come from one `GROUP BY`; then
one query returns the (group, latency) pairs in ascending latency, and Python keeps, per group and
overall, only the values at the positions the percentiles read: memory stays a few values per
group, the sorting is SQLite's (which spills to temporary files rather than growing memory), and
one sorted pass serves the groups and the total. Both statements read one snapshot. SQLite rows
hold `event_time` as the UTC ISO-8601 text sidegate writes, so the time filter and `day` compare
text.
"""

from __future__ import annotations

import sqlite3
import urllib.request
from datetime import UTC, datetime
from typing import Any

from sidegate.telemetry.stores.url import StoreURL, redact_url
from sidegate.telemetry.usage.report import (
    NONE_GROUP,
    SUM_COLUMNS,
    Grouping,
    Report,
    ReportError,
    Totals,
    interpolate,
    percentile_positions,
    round_ms,
)

__all__ = ["postgres_report", "sqlite_report"]

TABLE = "usage"


def _name(value: Any) -> str:
    return NONE_GROUP if value is None else str(value)


# SQLite

def _sqlite_key(by: Grouping) -> tuple[str, list[Any]]:
    if by.kind == "day":
        return "substr(event_time, 1, 10)", []
    if by.kind == "tag":  # json_each compares the key exactly, whatever characters it holds
        return "(SELECT value FROM json_each(request_tags) WHERE key = ?)", [by.tag]
    return str(by.column), []


class _Picker:
    """Keeps, of one group's latencies arriving in ascending order, only those its percentiles read."""

    __slots__ = ("count", "seen", "values", "wanted")

    def __init__(self, count: int) -> None:
        self.count = count
        self.wanted = percentile_positions(count)
        self.values: dict[int, float] = {}
        self.seen = 0

    def add(self, value: float) -> None:
        if self.seen in self.wanted:
            self.values[self.seen] = value
        self.seen += 1

    def result(self) -> list[float | None]:
        if not self.count or not self.wanted <= set(self.values):
            return [None, None]
        return [round_ms(interpolate(self.values, self.count, p)) for p in (0.5, 0.95)]


def _sqlite_percentiles(conn: sqlite3.Connection, sql: str, params: list[Any],
                        counts: dict[Any, int]) -> tuple[dict[Any, list[float | None]], list[float | None]]:
    """[p50, p95] per group and overall from one pass over the latencies in ascending order."""
    pickers = {group: _Picker(n) for group, n in counts.items()}
    overall = _Picker(sum(counts.values()))
    for group, value in conn.execute(sql, params):
        picker = pickers.get(group)
        if picker is not None:
            picker.add(value)
        overall.add(value)
    return {group: picker.result() for group, picker in pickers.items()}, overall.result()


def sqlite_report(url: StoreURL, by: Grouping, since: datetime | None) -> Report:
    assert url.path is not None
    if not url.path.is_file():
        raise ReportError(f"no usage database at {url.path}")
    try:
        conn = sqlite3.connect(f"file:{urllib.request.pathname2url(str(url.path))}?mode=ro", uri=True,
                               isolation_level=None)
    except sqlite3.Error as exc:
        raise ReportError(f"cannot open {url.path}: {exc}") from None
    try:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (TABLE,)).fetchone() is None:
            raise ReportError(f"{url.path} holds no {TABLE} table")
        key, key_params = _sqlite_key(by)
        where, where_params = ("WHERE event_time >= ?", [since.astimezone(UTC).isoformat()]) if since else ("", [])
        params = key_params + where_params
        sums = ", ".join(f"coalesce(sum({c}), 0)" for c in SUM_COLUMNS)
        sql = (f"SELECT g, count(*), coalesce(sum(status_code >= 400), 0), count(latency_ms), {sums} FROM "
               f"(SELECT {key} AS g, status_code, latency_ms, {', '.join(SUM_COLUMNS)} FROM {TABLE} {where}) "
               "GROUP BY g")
        latency_where = f"{where} AND latency_ms IS NOT NULL" if where else "WHERE latency_ms IS NOT NULL"
        latencies = f"SELECT {key}, latency_ms FROM {TABLE} {latency_where} ORDER BY latency_ms"
        conn.execute("BEGIN")  # both statements read the same snapshot, whatever is written meanwhile
        rows = conn.execute(sql, params).fetchall()
        percentiles, overall = _sqlite_percentiles(conn, latencies, params, {r[0]: r[3] for r in rows})
    except sqlite3.Error as exc:
        raise ReportError(f"cannot read usage from {url.path}: {exc}") from None
    finally:
        conn.close()
    groups: dict[str, Totals] = {}
    total = Totals()
    for group, requests, errors, _, *sums in rows:
        p50, p95 = percentiles[group]
        groups[_name(group)] = Totals(requests, errors, dict(zip(SUM_COLUMNS, sums, strict=True)), p50, p95)
        total.requests += requests
        total.errors += errors
        for column, value in zip(SUM_COLUMNS, sums, strict=True):
            total.sums[column] += value
    total.p50_latency_ms, total.p95_latency_ms = overall
    return Report(redact_url(url.raw), by, since, groups, total)


# PostgreSQL

def _postgres_sql(by: Grouping, since: datetime | None) -> tuple[str, list[Any]]:
    params: list[Any] = []
    if by.kind == "day":
        key = "to_char(event_time AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
    elif by.kind == "tag":
        params.append(by.tag)
        key = f"request_tags ->> ${len(params)}"
    else:
        key = str(by.column)
    where = ""
    if since is not None:
        params.append(since)
        where = f"WHERE event_time >= ${len(params)}"
    sums = ", ".join(f"coalesce(sum({c}), 0)" for c in SUM_COLUMNS)  # numeric: never overflows
    sql = (f"SELECT GROUPING(g) AS is_total, g, count(*), count(*) FILTER (WHERE status_code >= 400), {sums}, "
           "percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY latency_ms) "
           f"FROM (SELECT {key} AS g, status_code, latency_ms, {', '.join(SUM_COLUMNS)} FROM {TABLE} {where}) r "
           "GROUP BY GROUPING SETS ((g), ())")
    return sql, params


async def _postgres_rows(url: str, sql: str, params: list[Any]) -> list[Any]:
    from sidegate.telemetry.stores.postgres import connect

    conn = await connect(url, command_timeout_s=None)
    try:
        if await conn.fetchval("SELECT to_regclass($1)", TABLE) is None:
            raise ReportError(f"the database at {redact_url(url)} holds no {TABLE} table")
        async with conn.transaction(readonly=True):
            return list(await conn.fetch(sql, *params))
    finally:
        await conn.close(timeout=5)


def postgres_report(url: StoreURL, by: Grouping, since: datetime | None) -> Report:
    import asyncpg

    from sidegate.telemetry.stores.loop_thread import run_blocking

    sql, params = _postgres_sql(by, since)
    try:
        records = run_blocking(_postgres_rows(url.raw, sql, params))
    except (OSError, TimeoutError, ValueError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise ReportError(f"cannot read usage from {redact_url(url.raw)}: {exc}") from None
    groups: dict[str, Totals] = {}
    total = Totals()
    for is_total, group, requests, errors, *rest in records:
        *sums, latency = rest
        p50, p95 = (round_ms(v) for v in latency) if latency else (None, None)
        totals = Totals(requests, errors, {c: int(v) for c, v in zip(SUM_COLUMNS, sums, strict=True)}, p50, p95)
        if is_total:
            total = totals
        else:
            groups[_name(group)] = totals
    return Report(redact_url(url.raw), by, since, groups, total)
