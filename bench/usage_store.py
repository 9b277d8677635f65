"""Usage store throughput and `sidegate usage` report time. Not a test: numbers, no assertions.

    python bench/usage_store.py [--postgres postgresql://postgres@127.0.0.1:5432/test] [--rows 1000000]

1. Rows per second through the `UsageWriter` into PostgreSQL (default batches of 500), with the
   longest stall of the serving event loop while the writer drains (a 1 ms ticker).
2. The same table and a SQLite file filled with `--rows` rows spread over 30 days (40 model
   services, 500 principals, a `project` tag on 80% of rows), then `sidegate usage` run as a
   command (process start included) by model, by tag and by principal, over all rows and the last
   24 hours.

Everything lands in a schema and a directory of its own, removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from sidegate.telemetry.stores.registry import open_store
from sidegate.telemetry.usage.row import USAGE, UsageRow
from sidegate.telemetry.usage.writer import UsageWriter

NOW = datetime.now(UTC)


def rows(count: int, seed: int = 7) -> list[UsageRow]:
    rnd = random.Random(seed)
    out = []
    for i in range(count):
        tokens_in, tokens_out = rnd.randint(10, 20000), rnd.randint(1, 2000)
        tags = {"env": "prod"}
        if rnd.random() < 0.8:
            tags["project"] = f"project-{rnd.randint(0, 49)}"
        out.append(UsageRow(
            request_id=f"{secrets.token_hex(4)}-{i}",
            event_time=(NOW - timedelta(seconds=30 * 86400 * (count - i) / count)).isoformat(),
            requester=f"user{rnd.randint(0, 499)}@example.com", requester_type="user",
            client=rnd.choice(["claude-code", "codex", "gemini-cli", "openai-python", "cursor"]),
            user_agent="bench/1.0", api_type="openai.chat_completions",
            model_service=f"model-{rnd.randint(0, 39)}", destination_type="openai", destination_name="primary",
            destination_model="gpt-4o", status_code=rnd.choice([200] * 18 + [429, 500]), streaming=rnd.random() < 0.5,
            input_tokens=tokens_in, output_tokens=tokens_out, total_tokens=tokens_in + tokens_out,
            cache_read_input_tokens=tokens_in // 3, reasoning_tokens=tokens_out // 4,
            latency_ms=round(rnd.lognormvariate(6.5, 0.8), 3), time_to_first_byte_ms=round(rnd.uniform(50, 900), 3),
            request_tags=tags, routing_information=[{"destination": "primary", "status": 200, "duration_ms": 812.4}],
        ))
    return out


async def writer_rate(url: str, data: list[UsageRow]) -> None:
    writer = UsageWriter(open_store(url, USAGE), flush_interval_s=0.05)
    await writer.start()
    stall = 0.0
    stop = False

    async def ticker() -> None:
        nonlocal stall
        while not stop:
            t = time.perf_counter()
            await asyncio.sleep(0.001)
            stall = max(stall, time.perf_counter() - t - 0.001)

    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0.05)
    started = time.perf_counter()
    for row in data:
        writer.submit(row)
    await asyncio.sleep(0)
    stall = 0.0  # the submit loop above is this benchmark's, not the writer's
    await writer.flush()
    took = time.perf_counter() - started
    stop = True
    await tick
    await writer.close()
    print(f"writer -> postgresql: {len(data):,} rows in {took:.2f} s = {len(data) / took:,.0f} rows/s "
          f"(batches of 500); longest event-loop stall {stall * 1000:.1f} ms")


async def fill(url: str, data: list[UsageRow], batch: int = 5000) -> float:
    store = open_store(url, USAGE)
    await store.open()
    started = time.perf_counter()
    for i in range(0, len(data), batch):
        await store.write(data[i:i + batch])
    await store.close()
    return time.perf_counter() - started


def report_time(url: str, *args: str) -> tuple[float, int]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "sidegate.cli", "usage", "--store", url, "--format", "csv",
                           *args], capture_output=True, text=True, check=True)
    return time.perf_counter() - started, len(done.stdout.splitlines()) - 1


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--writer-rows", type=int, default=200_000)
    args = parser.parse_args()
    admin = await asyncpg.connect(args.postgres)
    schema = f"sidegate_bench_{secrets.token_hex(4)}"
    await admin.execute(f"CREATE SCHEMA {schema}")
    pg = f"{args.postgres}{'&' if '?' in args.postgres else '?'}search_path={schema}"
    try:
        with tempfile.TemporaryDirectory(prefix="sidegate-bench-") as tmp:
            await writer_rate(pg, rows(args.writer_rows, seed=1))
            await admin.execute(f"DROP TABLE {schema}.usage")
            data = rows(args.rows)
            sqlite = f"sqlite:///{Path(tmp) / 'usage.db'}"
            for name, url in (("postgresql", pg), ("sqlite", sqlite)):
                took = await fill(url, data)
                print(f"{name}: {len(data):,} rows loaded in {took:.1f} s ({len(data) / took:,.0f} rows/s, "
                      "batches of 5000)")
            await admin.execute(f"ANALYZE {schema}.usage")
            size = await admin.fetchval(f"SELECT pg_size_pretty(pg_total_relation_size('{schema}.usage'))")
            print(f"postgresql table with indexes: {size}; sqlite file: "
                  f"{(Path(tmp) / 'usage.db').stat().st_size / 2**20:,.0f} MiB")
            for name, url in (("postgresql", pg), ("sqlite", sqlite)):
                for by, since in (("model", "all"), ("model", "24h"), ("tag:project", "all"),
                                  ("principal", "all"), ("day", "7d")):
                    took, groups = report_time(url, "--by", by, "--since", since)
                    print(f"{name}: sidegate usage --by {by} --since {since}: {took:.2f} s ({groups} groups)")
    finally:
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
