"""The markdown results of a benchmark run: the side-by-side table, the issue's targets checked for
sidegate, the streaming scale table, and what was measured how."""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

import stream_scale
from procs import REPO
from servers import Target

# The speed targets of the benchmark issue, for sidegate with full governance.
TARGET_RPS = 1500
TARGET_SHARE = 0.70
TARGET_P50_MS = 0.8
TARGET_P99_MS = 2.0
TARGET_TTFB_MS = 0.6
TARGET_RSS_MB = 80
NONE = "\N{EN DASH}"  # an empty table cell


def _cmd(*argv: str) -> str:
    if not shutil.which(argv[0]):
        return "?"
    done = subprocess.run(argv, capture_output=True, text=True)
    return (done.stdout + done.stderr).strip().splitlines()[0] if (done.stdout + done.stderr).strip() else "?"


def machine() -> str:
    cpu = "?"
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        cpuinfo = []
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), cpu)
    commit = _cmd("git", "-C", str(REPO), "rev-parse", "--short", "HEAD")
    dirty = _cmd("git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no", "src")
    try:
        import aiohttp
        aiohttp_version = aiohttp.__version__
    except ImportError:
        aiohttp_version = "?"
    return (f"{cpu}, {_nproc()} cores, Linux {platform.release()}; Python {platform.python_version()}, "
            f"aiohttp {aiohttp_version}; {_cmd('nginx', '-v').removeprefix('nginx version: ')}; "
            f"wrk {' '.join(_cmd('wrk', '-v').split()[1:2])}; sidegate at {commit}"
            f"{' (with uncommitted changes in src/)' if dirty not in ('', '?') else ''}")


def _nproc() -> int:
    import os
    return len(os.sched_getaffinity(0))


def _med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _row(name: str, r: dict[str, list[Any]], base: dict[str, float], pass_rps: float | None,
         idle_kb: int | None, peak_kb: int | None) -> tuple[str, dict[str, float]]:
    m = {
        "p50": _med([x.p50_ms for x in r["c1"]]), "p99": _med([x.p99_ms for x in r["c1"]]),
        "rps": _med([x.rps for x in r["c32"]]), "p99_32": _med([x.p99_ms for x in r["c32"]]),
        "ttfb": _med([x.ttfb_p50_ms for x in r["stream"]]), "total": _med([x.total_p50_ms for x in r["stream"]]),
        "ttfb99": _med([x.ttfb_p99_ms for x in r["stream"]]),
    }
    is_direct = not base

    def over(key: str) -> str:
        return "0" if is_direct else f"{m[key] - base[key]:+.3f}"

    share = f"{m['rps'] / pass_rps:.0%}" if pass_rps and not is_direct else NONE
    rss = f"{idle_kb / 1024:.0f} → {peak_kb / 1024:.0f}" if idle_kb and peak_kb else NONE
    line = (f"| {name} | {m['p50']:.3f} | {m['p99']:.3f} | {over('p50')} / {over('p99')} | {m['rps']:,.0f} | {share} "
            f"| {m['p99_32']:.2f} | {m['ttfb']:.3f} ({over('ttfb')}) | {m['total']:.3f} ({over('total')}) | {rss} |")
    m["rss_mb"] = (peak_kb or 0) / 1024
    return line, m


def render(*, started: datetime, seconds: float, args: argparse.Namespace, targets: list[Target],
           results: dict[str, dict[str, list[Any]]], rss_idle: dict[str, int], rss_peak: dict[str, int],
           scale: list[stream_scale.ScaleResult], usage_rows: int | None, stream_chunks: int) -> str:
    out = [f"# Benchmark {started:%Y-%m-%d %H:%M} UTC{' (quick)' if args.quick else ''}", "",
           f"Machine: {machine()}.", "",
           f"Each gateway pinned to core 0, nginx and the load generators to core 1. {args.rounds} round(s), "
           f"targets alternating; per round: wrk c=1 for {args.c1_seconds:g}s, wrk c=32 for {args.c32_seconds:g}s, "
           f"up to {args.streams} sequential streams ({stream_chunks} tokens each) in at most "
           f"{args.stream_seconds:g}s. Each number is the median over rounds. Whole run: {seconds:.0f}s.", "",
           "| target | c=1 p50 ms | c=1 p99 ms | overhead p50 / p99 ms | c=32 req/s | share of pass-through "
           "| c=32 p99 ms | stream TTFB p50 ms (overhead) | stream total p50 ms (overhead) | RSS idle → peak MB |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    base: dict[str, float] = {}
    pass_rps = None
    metrics: dict[str, dict[str, float]] = {}
    for target in targets:
        r = results[target.name]
        line, m = _row(target.name, r, base, pass_rps, rss_idle.get(target.name), rss_peak.get(target.name))
        metrics[target.name] = m
        out.append(line)
        if target.name.startswith("direct"):
            base = m
        if target.name.startswith("bare"):
            pass_rps = m["rps"]
    out += ["", "Overheads are the target's number minus direct's, in ms."]
    side = metrics.get("sidegate")
    if side and base:
        out += ["", "## sidegate against the targets of the benchmark issue", "", "| target | measured | met |",
                "|---|---:|:---:|"]
        checks = [
            (f"c=32 req/s ≥ {TARGET_RPS:,}", f"{side['rps']:,.0f}", side["rps"] >= TARGET_RPS),
            (f"p50 overhead at c=1 ≤ {TARGET_P50_MS} ms", f"{side['p50'] - base['p50']:.3f} ms",
             side["p50"] - base["p50"] <= TARGET_P50_MS),
            (f"p99 overhead at c=1 ≤ {TARGET_P99_MS} ms", f"{side['p99'] - base['p99']:.3f} ms",
             side["p99"] - base["p99"] <= TARGET_P99_MS),
            (f"stream TTFB overhead ≤ {TARGET_TTFB_MS} ms", f"{side['ttfb'] - base['ttfb']:.3f} ms",
             side["ttfb"] - base["ttfb"] <= TARGET_TTFB_MS),
            (f"peak RSS ≤ {TARGET_RSS_MB} MB", f"{side['rss_mb']:.0f} MB", side["rss_mb"] <= TARGET_RSS_MB),
        ]
        if pass_rps:
            checks.insert(1, (f"c=32 req/s ≥ {TARGET_SHARE:.0%} of the pass-through", f"{side['rps'] / pass_rps:.0%}",
                              side["rps"] >= TARGET_SHARE * pass_rps))
        out += [f"| {name} | {value} | {'yes' if ok else '**no**'} |" for name, value, ok in checks]
    if scale:
        out += ["", "## Streaming scale", "", stream_scale.report(scale, args.paced_rate)]
    out += ["", "## How", "", NOTES.format(usage_rows="not written" if usage_rows is None else f"{usage_rows:,}")]
    return "\n".join(out) + "\n"


NOTES = """\
- Upstream: nginx (one worker, core 1) answers every POST with a stored OpenAI chat completion
  (JSON) or chat stream (SSE, sent as fast as the socket takes it), so it is never the bottleneck.
- Load: wrk, one thread on core 1, POSTing the same JSON body with the same headers to every
  target (a sidegate key and request tags; nginx and the pass-through ignore them). c=1 latency is
  wrk's p50/p99; c=32 is requests per second and p99.
- Streams: wrk cannot see when the first event of a response arrives, so a small client
  (bench/stream_client.py) times them over a raw keep-alive socket: TTFB is from just before the
  request is written to the recv() that brings the first `data:` bytes (not the status line,
  which a gateway may send before any event exists); total is to the last byte of the body. One
  stream at a time, so the client adds the same small constant to every target and the overhead
  (target minus direct) cancels it.
- RSS: VmRSS after start-up and VmHWM (peak resident set) at the end of the rounds, from
  /proc/<pid>/status of the gateway process (and its children, if it forks).
- sidegate's policy is bench/policies/bench.yaml: key auth over 8 principals, model-service
  permissions by group, one destination plus a fallback, tags stamped, required and forwarded
  upstream, usage rows to SQLite (rows written in this run: {usage_rows}), two rate limits
  (requests and tokens, memory store), the secrets (block) and PII (mask) guardrails on input and
  output, Prometheus metrics recorded for every request.
- LiteLLM proxy runs with its defaults (one uvicorn worker), a master key, no database.
"""
