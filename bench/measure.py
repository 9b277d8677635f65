"""One measurement of one target: wrk runs for JSON calls, the socket client for streams.

wrk runs on core 1 with one thread (the gateway has one core, so one load thread saturates it),
`--latency` percentiles come from wrk's own histogram through the Lua `done` hook."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from fixtures import CHAT_MODEL, STREAM_CHUNKS, STREAM_MODEL, content_events
from procs import BENCH, LOAD_CORE
from servers import BENCH_KEY, BENCH_TAGS, HEADERS, Target
from stream_client import Sequential, StreamError

POST_LUA = BENCH / "wrk" / "post.lua"
MIXED_LUA = BENCH / "wrk" / "mixed.lua"


class BenchError(RuntimeError):
    pass


@dataclass
class WrkResult:
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def body_file(run_dir: Path, model: str) -> Path:
    return run_dir / f"body-{model}.json"


def wrk(target: Target, run_dir: Path, connections: int, duration_s: float, *, model: str = CHAT_MODEL,
        script: Path = POST_LUA, allow_errors: bool = False) -> WrkResult:
    path = target.stream_path if model == STREAM_MODEL else target.json_path
    env = {**os.environ, "BENCH_BODY": str(body_file(run_dir, model)), "BENCH_KEY": BENCH_KEY,
           "BENCH_TAGS": BENCH_TAGS, "BENCH_STREAM_BODY": str(body_file(run_dir, STREAM_MODEL))}
    seconds = max(1, round(duration_s))
    argv = ["taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
            "-s", str(script), target.url(path)]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=seconds + 60)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH_RESULT ")), None)
    if done.returncode != 0 or line is None:
        raise BenchError(f"wrk failed on {target.name}: {done.stdout}\n{done.stderr}")
    raw = json.loads(line.removeprefix("BENCH_RESULT "))
    errors = sum(raw[k] for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts"))
    if errors and not allow_errors:
        raise BenchError(f"{target.name}: {errors} failed requests in wrk run {raw}\n{done.stdout}")
    return WrkResult(raw["requests"], raw["duration_us"] / 1e6, errors, raw["p50_us"] / 1000,
                     raw["p90_us"] / 1000, raw["p99_us"] / 1000, raw["max_us"] / 1000)


@dataclass
class StreamResult:
    count: int
    ttfb_p50_ms: float
    ttfb_p99_ms: float
    total_p50_ms: float
    total_p99_ms: float


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def streams(target: Target, run_dir: Path, count: int, max_seconds: float) -> StreamResult:
    client = Sequential("127.0.0.1", target.port, target.stream_path, HEADERS,
                        body_file(run_dir, STREAM_MODEL).read_bytes(), content_events(STREAM_CHUNKS))
    try:
        timings = client.run(count, max_seconds)
    except (StreamError, OSError) as exc:
        raise BenchError(f"{target.name}: stream failed: {exc}") from exc
    ttfb = [t.ttfb_ns / 1e6 for t in timings]
    total = [t.total_ns / 1e6 for t in timings]
    return StreamResult(len(timings), statistics.median(ttfb), _pct(ttfb, 0.99), statistics.median(total),
                        _pct(total, 0.99))


def check_json(target: Target, run_dir: Path) -> None:
    """One call, checked, before anything is timed: a target that answers errors fast must not win."""
    request = urllib.request.Request(target.url(target.json_path), data=body_file(run_dir, CHAT_MODEL).read_bytes(),
                                     headers={**HEADERS, "Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            body = json.loads(response.read())
    except OSError as exc:
        raise BenchError(f"{target.name}: JSON call failed: {exc}") from exc
    if not body.get("choices") or not body["choices"][0]["message"]["content"]:
        raise BenchError(f"{target.name}: unexpected JSON answer {body}")
