"""`sidegate usage` over every store kind: the same known rows give the same exact report (JSON),
grouped by model, principal, tag, client and day, filtered by --since; the table and CSV forms; and
the errors (exit status 2, one clear line)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from sidegate.cli import main
from sidegate.telemetry.stores.registry import open_store
from sidegate.telemetry.usage.report import parse_by, parse_since, percentile
from sidegate.telemetry.usage.row import USAGE, UsageRow

pytest_plugins = ["tests.support.pg_service"]  # the pg_url and pg_admin fixtures

COLUMNS = ("request_id", "event_time", "requester", "model_service", "client", "status_code", "input_tokens",
           "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens", "reasoning_tokens",
           "latency_ms", "request_tags")
KNOWN = [
    ("r01", "2025-02-27T08:00:00+00:00", "alice", "gpt", "codex", 200, 100, 10, 0, 0, 0, 100.0, {"project": "a"}),
    ("r02", "2025-02-28T10:00:00.500000+00:00", "alice", "gpt", "codex", 200, 10, 5, 2, 1, 0, 10.0,
     {"project": "a"}),
    ("r03", "2025-02-28T23:59:59+00:00", "alice", "gpt", "claude-code", 429, 0, 0, 0, 0, 0, 1.5, {"project": "b"}),
    ("r04", "2025-03-01T00:00:00+00:00", "bob", "claude", "claude-code", 200, 20, 8, 4, 2, 3, 30.0, {}),
    ("r05", "2025-03-01T06:30:00.250000+00:00", "bob", "claude", "claude-code", 500, 5, 0, 0, 0, 0, 50.0,
     {"project": "b"}),
    ("r06", "2025-03-01T12:00:00+00:00", None, None, None, 401, 0, 0, 0, 0, 0, 0.5, {}),
    ("r07", "2025-03-01T13:00:00+00:00", "ci-bot", "gpt", "openai-python", 200, 7, 3, 0, 0, 1, 20.0,
     {"project": "a", "team": "x"}),
]


def known_rows() -> list[UsageRow]:
    rows = []
    for values in KNOWN:
        data = dict(zip(COLUMNS, values, strict=True))
        data["total_tokens"] = data["input_tokens"] + data["output_tokens"]
        rows.append(UsageRow(**data))
    return rows


def totals(requests: int, errors: int, i: int, o: int, cr: int, cc: int, r: int, p50: float | None,
           p95: float | None) -> dict[str, Any]:
    return {"requests": requests, "errors": errors, "input_tokens": i, "output_tokens": o,
            "cache_read_input_tokens": cr, "cache_creation_input_tokens": cc, "reasoning_tokens": r,
            "total_tokens": i + o, "p50_latency_ms": p50, "p95_latency_ms": p95}


async def fill(url: str, rows: list[UsageRow]) -> str:
    store = open_store(url, USAGE)
    await store.open()
    await store.write(rows)
    # a replayed spool writes a row again (other values, same request_id): counted once everywhere
    await store.write([UsageRow(**{**rows[0].as_dict(), "status_code": 500, "input_tokens": 10**6})])
    await store.close()
    return url


@pytest.fixture(params=["sqlite", "jsonl", "postgresql"])
def store_of(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """`await store_of(rows)`: the URL of a store of this kind holding `rows`."""
    url = {"sqlite": f"sqlite:///{tmp_path}/usage.db", "jsonl": f"jsonl:///{tmp_path}/usage.jsonl"}.get(
        request.param) or request.getfixturevalue("pg_url")

    async def make(rows: list[UsageRow]) -> str:
        return await fill(url, rows)
    return make


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["usage", *args])
    out, err = capsys.readouterr()
    return code, out, err


def report(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> dict[str, Any]:
    code, out, err = run(capsys, "--store", url, "--format", "json", *args)
    assert code == 0, err
    data = orjson.loads(out)
    assert data.pop("store") == url
    return dict(data)


async def test_by_model_since_a_date(store_of: Any, capsys: pytest.CaptureFixture[str]) -> None:
    url = await store_of(known_rows())
    assert report(capsys, url, "--by", "model", "--since", "2025-02-28") == {
        "by": "model",
        "since": "2025-02-28T00:00:00+00:00",
        "groups": [
            {"group": "claude", **totals(2, 1, 25, 8, 4, 2, 3, 40.0, 49.0)},
            {"group": "gpt", **totals(3, 1, 17, 8, 2, 1, 1, 10.0, 19.0)},
            {"group": "(none)", **totals(1, 1, 0, 0, 0, 0, 0, 0.5, 0.5)},
        ],
        "total": totals(6, 3, 42, 16, 6, 3, 4, 15.0, 45.0),
    }


async def test_by_tag_rows_without_it_are_none(store_of: Any, capsys: pytest.CaptureFixture[str]) -> None:
    url = await store_of(known_rows())
    got = report(capsys, url, "--by", "tag:project", "--since", "2025-02-28T00:00:00Z")
    assert got["by"] == "tag:project"
    assert got["groups"] == [
        {"group": "(none)", **totals(2, 1, 20, 8, 4, 2, 3, 15.25, 28.525)},
        {"group": "a", **totals(2, 0, 17, 8, 2, 1, 1, 15.0, 19.5)},
        {"group": "b", **totals(2, 2, 5, 0, 0, 0, 0, 25.75, 47.575)},
    ]
    team = report(capsys, url, "--by", "tag:team", "--since", "all")
    assert [(g["group"], g["requests"]) for g in team["groups"]] == [("(none)", 6), ("x", 1)]  # by tokens


async def test_by_day_all_time_and_by_principal(store_of: Any, capsys: pytest.CaptureFixture[str]) -> None:
    url = await store_of(known_rows())
    got = report(capsys, url, "--by", "day", "--since", "all")
    assert got["since"] is None
    assert got["groups"] == [  # UTC days in order; 23:59:59 and 00:00:00 fall on either side
        {"group": "2025-02-27", **totals(1, 0, 100, 10, 0, 0, 0, 100.0, 100.0)},
        {"group": "2025-02-28", **totals(2, 1, 10, 5, 2, 1, 0, 5.75, 9.575)},
        {"group": "2025-03-01", **totals(4, 2, 32, 11, 4, 2, 4, 25.0, 47.0)},
    ]
    assert got["total"] == totals(7, 3, 142, 26, 6, 3, 4, 20.0, 85.0)
    by_principal = report(capsys, url, "--by", "principal", "--since", "all")
    assert [(g["group"], g["requests"], g["total_tokens"]) for g in by_principal["groups"]] == [
        ("alice", 3, 125), ("bob", 2, 33), ("ci-bot", 1, 10), ("(none)", 1, 0)]
    by_client = report(capsys, url, "--by", "client", "--since", "2025-03-01")
    assert [(g["group"], g["requests"]) for g in by_client["groups"]] == [
        ("claude-code", 2), ("openai-python", 1), ("(none)", 1)]


async def test_since_moments(store_of: Any, capsys: pytest.CaptureFixture[str]) -> None:
    now = datetime.now(UTC)
    rows = known_rows()
    rows.append(UsageRow(request_id="recent", event_time=(now - timedelta(hours=1)).isoformat(),
                         model_service="new", latency_ms=3.0))
    rows.append(UsageRow(request_id="yesterday", event_time=(now - timedelta(hours=25)).isoformat(),
                         model_service="new", latency_ms=5.0))
    url = await store_of(rows)

    def groups(since: str) -> list[tuple[str, int]]:
        return [(g["group"], g["requests"]) for g in report(capsys, url, "--since", since)["groups"]]

    assert groups("24h") == [("new", 1)]  # the default grouping is by model
    assert report(capsys, url)["groups"] == report(capsys, url, "--since", "24h")["groups"]  # 24h by default
    assert groups("2d") == [("new", 2)]
    # an ISO time counts whole seconds: r05 at 06:30:00.25 is in from 06:30:00.9, not from 06:30:01
    assert groups("2025-03-01T06:30:00.900000+00:00")[:3] == [("gpt", 1), ("claude", 1), ("new", 2)]
    assert groups("2025-03-01T06:30:01Z")[:2] == [("gpt", 1), ("new", 2)]
    assert groups("2025-03-01T08:30:00+02:00")[:2] == [("gpt", 1), ("claude", 1)]  # other offsets work
    assert groups("2030-01-01") == []


async def test_empty_report(store_of: Any, capsys: pytest.CaptureFixture[str]) -> None:
    url = await store_of(known_rows())
    got = report(capsys, url, "--since", "2030-01-01")
    assert got["groups"] == [] and got["total"] == totals(0, 0, 0, 0, 0, 0, 0, None, None)
    code, out, _ = run(capsys, "--store", url, "--since", "2030-01-01")
    assert code == 0 and "(total)" in out and out.rstrip().endswith("-       -")


async def test_every_store_gives_the_same_report(tmp_path: Path, pg_url: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Random rows (seeded), every grouping: SQLite's and PostgreSQL's SQL agree with the JSONL pass
    to the last digit, percentile positions included (groups of 1 to hundreds of rows)."""
    rnd = random.Random(11)
    rows = [UsageRow(
        request_id=f"q{i}", event_time=(datetime(2025, 1, 1, tzinfo=UTC) + timedelta(minutes=rnd.randint(0, 20000)))
        .isoformat(), requester=rnd.choice(["a", "b", "c", None]), model_service=f"m{int(rnd.paretovariate(1))}",
        client=rnd.choice(["x", "y"]), status_code=rnd.choice([200, 200, 200, 404, 429, 503]),
        input_tokens=rnd.randint(0, 5000), output_tokens=rnd.randint(0, 900), reasoning_tokens=rnd.randint(0, 9),
        latency_ms=round(rnd.uniform(0, 3000), 3), request_tags=rnd.choice([{}, {"p": "1"}, {"p": "2", "q": "z"}]),
    ) for i in range(1500)]
    urls = [await fill(f"sqlite:///{tmp_path}/u.db", rows), await fill(f"jsonl:///{tmp_path}/u.jsonl", rows),
            await fill(pg_url, rows)]
    for by in ("model", "principal", "client", "day", "tag:p", "tag:q"):
        for since in ("all", "2025-01-08T00:00:00Z"):
            first, *others = (report(capsys, url, "--by", by, "--since", since) for url in urls)
            assert len(first["groups"]) > 1
            assert all(other == first for other in others), (by, since)


async def test_table_and_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    big = UsageRow(request_id="big", event_time="2025-03-01T14:00:00+00:00", model_service="gpt",
                   input_tokens=1_234_567, total_tokens=1_234_567, latency_ms=1000.0)
    url = await fill(f"sqlite:///{tmp_path}/usage.db", [*known_rows(), big])
    code, out, err = run(capsys, "--store", url, "--since", "2025-02-28", "--format", "table")
    assert code == 0 and err == ""
    assert out.splitlines() == [
        f"usage by model, since 2025-02-28T00:00:00+00:00 ({url})",
        "model    requests  errors      input  output  cache_read  cache_"
        "creation  reasoning      total  p50_ms  p95_ms",
        "-------  --------  ------  ---------  ------  ----------  ------"
        "--------  ---------  ---------  ------  ------",
        "gpt             4       1  1,234,584       8           2        "
        "       1          1  1,234,592    15.0   853.0",
        "claude          2       1         25       8           4        "
        "       2          3         33    40.0    49.0",
        "(none)          1       1          0       0           0        "
        "       0          0          0     0.5     0.5",
        "-------  --------  ------  ---------  ------  ----------  ------"
        "--------  ---------  ---------  ------  ------",
        "(total)         7       3  1,234,609      16           6        "
        "       3          4  1,234,625    20.0   715.0",
    ]
    code, out, _ = run(capsys, "--store", url, "--since", "2025-02-28", "--by", "tag:project", "--format", "csv")
    assert code == 0
    assert out.splitlines() == [
        "tag:project,requests,errors,input_tokens,output_tokens,cache_read_input_tokens,"
        "cache_creation_input_tokens,reasoning_tokens,total_tokens,p50_latency_ms,p95_latency_ms",
        "(none),3,1,1234587,8,4,2,3,1234595,30.0,903.0",
        "a,2,0,17,8,2,1,1,25,15.0,19.5",
        "b,2,2,5,0,0,0,0,5,25.75,47.575",
    ]


async def test_store_from_the_policy(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    await fill("sqlite:///data/usage.db", known_rows())  # relative: to the working directory, as for serve
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "p.yaml").write_text('usage: {store: "${STORE:-sqlite:///data/usage.db}"}\n')
    code, out, _ = run(capsys, "--policies", "policies", "--since", "all", "--format", "json")
    assert code == 0 and orjson.loads(out)["total"]["requests"] == 7
    monkeypatch.setenv("SIDEGATE_POLICIES", "ignored: --policies given")
    code, _, err = run(capsys, "--policies", "missing", "--since", "all")
    assert code == 2 and "cannot read the usage store from the policy in missing (or pass --store URL)" in err


@pytest.mark.parametrize(("store", "message"), [
    ("mongodb://db/x", "cannot report on usage store 'mongodb://db/x': known schemes are jsonl, postgres, "
                       "postgresql, sqlite"),
    ("usage.db", "invalid usage store URL 'usage.db'"),
    ("none", "the usage store is `none`"),
    ("sqlite:///{tmp}/missing.db", "no usage database at {tmp}/missing.db"),
    ("sqlite:///{tmp}/other.db", "{tmp}/other.db holds no usage table"),
    ("jsonl:///{tmp}/missing.jsonl", "no usage file at {tmp}/missing.jsonl"),
    ("postgresql://u:secret@127.0.0.1:{port}/test", "cannot read usage from postgresql://u:***@127.0.0.1:{port}/test:"),
])
def test_bad_stores_exit_2(store: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import sqlite3

    from tests.support.tcp_proxy import free_port

    sqlite3.connect(tmp_path / "other.db").execute("CREATE TABLE t (x)").connection.close()
    port = free_port()
    code, out, err = run(capsys, "--store", store.format(tmp=tmp_path, port=port))
    assert code == 2 and out == ""
    assert err.startswith("sidegate usage: " + message.format(tmp=tmp_path, port=port))
    assert "secret" not in err and len(err.splitlines()) == 1


async def test_postgres_without_table_and_bad_arguments(pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--store", pg_url)
    assert code == 2 and err == f"sidegate usage: the database at {pg_url} holds no usage table\n"
    for args, message in ((["--since", "yesterday"], "argument --since: 'yesterday' is not a time"),
                          (["--by", "team"], "argument --by: cannot group by 'team'"),
                          (["--by", "tag:"], "argument --by: tag:KEY needs a tag key"),
                          (["--format", "xml"], "argument --format: invalid choice: 'xml'"),
                          (["--store", pg_url, "--policies", "p"], "not allowed with argument")):
        with pytest.raises(SystemExit) as exited:
            main(["usage", *args])
        assert exited.value.code == 2 and message in capsys.readouterr().err


def test_parsers_and_percentile() -> None:
    now = datetime(2025, 3, 1, 12, 0, 0, 750000, tzinfo=UTC)
    assert parse_since("24h", now) == datetime(2025, 2, 28, 12, 0, tzinfo=UTC)
    assert parse_since("30m", now) == datetime(2025, 3, 1, 11, 30, tzinfo=UTC)
    assert parse_since("7d", now) == parse_since("1w", now) == datetime(2025, 2, 22, 12, 0, tzinfo=UTC)
    assert parse_since("2025-01-31") == datetime(2025, 1, 31, tzinfo=UTC)
    assert parse_since("2025-01-31T12:00:00-05:00") == datetime(2025, 1, 31, 17, tzinfo=UTC)
    assert parse_since("ALL") is None
    for bad in ("yesterday", "24", "h", "-1d", ""):
        with pytest.raises(ValueError):
            parse_since(bad)
    assert parse_by("tag:a:b").tag == "a:b" and parse_by("day").label == "day"
    assert percentile([], 0.5) is None
    assert percentile([4.0], 0.95) == 4.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile([float(v) for v in range(101)], 0.95) == 95.0
