"""Soak: sidegate under mixed traffic for a long while, its memory sampled all along.

    bash bench/run.sh --soak 600 [--soak-connections 16]

wrk sends a fixed rotation (bench/wrk/mixed.lua): JSON completions, streams, and refusals (wrong
key, unknown model, missing tag), as fast as sidegate answers on its one core. VmRSS is sampled
every few seconds. "Start" is the RSS once the first tenth of the soak has passed (caches and pools
are warm by then), "end" the last sample; the slope is fitted over the second half, where a leak
would show and warm-up would not.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import report
from fixtures import write_fixtures
from measure import MIXED_LUA, WrkResult, check_json, wrk
from procs import Proc
from servers import start_nginx, start_sidegate

SAMPLE_EVERY_S = 5.0


def _slope_mb_per_min(samples: list[tuple[float, int]]) -> float:
    if len(samples) < 2:
        return 0.0
    xs = [t for t, _ in samples]
    ys = [kb / 1024 for _, kb in samples]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return 60 * sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0


def main(args: argparse.Namespace) -> int:
    import sys

    import run

    run_dir = Path(tempfile.mkdtemp(prefix="sidegate-soak-"))
    answers = write_fixtures(run_dir, 100, 100, 100)
    started = datetime.now(UTC)
    procs: list[Proc] = []
    samples: list[tuple[float, int]] = []
    outcome: list[WrkResult] = []
    try:
        nginx, port = start_nginx(run_dir, answers)
        procs.append(nginx)
        target = start_sidegate(run_dir, sys.executable, port)
        assert target.proc is not None
        procs.append(target.proc)
        check_json(target, run_dir)
        rss_idle = target.proc.status_kb("VmRSS")
        load = threading.Thread(target=lambda: outcome.append(
            wrk(target, run_dir, args.soak_connections, args.soak, script=MIXED_LUA, allow_errors=True)))
        began = time.monotonic()
        load.start()
        print(f"soak: {args.soak:g}s of mixed traffic at c={args.soak_connections} on sidegate", flush=True)
        while load.is_alive():
            samples.append((time.monotonic() - began, target.proc.status_kb("VmRSS")))
            if len(samples) % 12 == 0:
                print(f"  {samples[-1][0]:.0f}s: RSS {samples[-1][1] / 1024:.1f} MB", flush=True)
            load.join(SAMPLE_EVERY_S)
        peak = target.proc.status_kb("VmHWM")
        for proc in reversed(procs):
            proc.stop()
        procs.clear()
        rows = run.usage_rows(run_dir)
    finally:
        for proc in reversed(procs):
            proc.stop()
    shutil.rmtree(run_dir, ignore_errors=True)  # the usage database of a long soak is large
    if not outcome:
        print("soak: the load generator failed (see above)")
        return 1
    load_result = outcome[0]
    warm = [s for s in samples if s[0] >= args.soak / 10] or samples
    second_half = [s for s in samples if s[0] >= args.soak / 2]
    text = "\n".join([
        f"# Soak {started:%Y-%m-%d %H:%M} UTC", "", f"Machine: {report.machine()}.", "",
        f"sidegate on core 0 with bench/policies, {args.soak:g}s of mixed traffic from wrk at "
        f"c={args.soak_connections} (bench/wrk/mixed.lua: per 12 requests 6 JSON, 3 streams, one each of a "
        "wrong key, an unknown model and a missing tag).", "",
        "| requests | req/s | refused (expected 3 in 12) | RSS idle MB | RSS at 10% MB | RSS at end MB "
        "| peak (VmHWM) MB | slope over the second half MB/min | usage rows |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {load_result.requests:,} | {load_result.rps:,.0f} | {load_result.errors:,} | {rss_idle / 1024:.1f} "
        f"| {warm[0][1] / 1024:.1f} | {samples[-1][1] / 1024:.1f} | {peak / 1024:.1f} "
        f"| {_slope_mb_per_min(second_half):+.3f} | {rows if rows is not None else report.NONE} |",
        "", "RSS samples (s: MB): " + ", ".join(
            f"{t:.0f}: {kb / 1024:.1f}" for t, kb in samples[:: max(1, len(samples) // 20)]),
    ]) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{started:%Y-%m-%d}-soak.md"
    path.write_text(text)
    print(text)
    print(f"written to {path}")
    return 0
