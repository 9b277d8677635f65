"""The side-by-side benchmark: direct, a bare aiohttp pass-through, sidegate and LiteLLM proxy, in
one run, the targets alternating. Run it through `bash bench/run.sh` (which installs what it
needs); the options are the same.

Per round, for each measurement in turn, every target is measured once, the order of the targets
rotating between rounds; each number reported is the median over the rounds. Then the streaming
scale test runs on the same servers (bench/stream_scale.py), and the table is written to
bench/results/<date>.md and printed.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import report
import stream_scale
from fixtures import STREAM_CHUNKS, STREAM_MODEL, write_fixtures
from measure import check_json, streams, wrk
from procs import BENCH, Proc
from servers import Target, direct, start_litellm, start_nginx, start_paced, start_passthrough, start_sidegate

ALL_TARGETS = ("direct", "passthrough", "sidegate", "litellm")


def options(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="one short round and a small scale test (under a minute)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--c1-seconds", type=float, default=6, help="wrk run at 1 connection")
    p.add_argument("--c32-seconds", type=float, default=6, help="wrk run at 32 connections")
    p.add_argument("--streams", type=int, default=400, help="sequential streams per target and round")
    p.add_argument("--stream-seconds", type=float, default=4, help="at most this long per target and round")
    p.add_argument("--warmup-seconds", type=float, default=2)
    p.add_argument("--targets", default=",".join(ALL_TARGETS), help=f"comma list of {', '.join(ALL_TARGETS)}")
    p.add_argument("--no-scale", action="store_true", help="skip the streaming scale test")
    p.add_argument("--long-chunks", type=int, default=20000)
    p.add_argument("--short-chunks", type=int, default=2000)
    p.add_argument("--scale-streams", type=int, default=200)
    p.add_argument("--conc-chunks", type=int, default=1000)
    p.add_argument("--scale-repeats", type=int, default=3)
    p.add_argument("--paced-rate", type=float, default=5000, help="events/s of the paced upstream")
    p.add_argument("--soak", type=float, metavar="SECONDS", help="instead: a soak of sidegate under mixed traffic")
    p.add_argument("--soak-connections", type=int, default=16)
    p.add_argument("--out", type=Path, default=BENCH / "results", help="where the results file goes")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.c1_seconds, args.c32_seconds, args.warmup_seconds = 1, 2, 2, 1
        args.streams, args.stream_seconds = 200, 2
        args.conc_chunks, args.scale_repeats, args.long_chunks, args.paced_rate = 200, 1, 10000, 10000
    unknown = set(args.targets.split(",")) - set(ALL_TARGETS)
    if unknown:
        p.error(f"unknown targets: {', '.join(sorted(unknown))}")
    return args


def start_targets(names: list[str], run_dir: Path, upstream_port: int, paced_port: int) -> list[Target]:
    started: list[Target] = []
    for name in names:
        if name == "direct":
            started.append(direct(upstream_port))
        elif name == "passthrough":
            started.append(start_passthrough(run_dir, sys.executable, upstream_port))
        elif name == "sidegate":
            started.append(start_sidegate(run_dir, sys.executable, upstream_port, paced_port))
        else:
            began = time.monotonic()
            started.append(start_litellm(run_dir, upstream_port))
            print(f"  LiteLLM proxy ready after {time.monotonic() - began:.1f}s", flush=True)
    return started


def usage_rows(run_dir: Path) -> int | None:
    db = run_dir / "usage.db"
    if not db.exists():
        return None
    with sqlite3.connect(db) as conn:
        return int(conn.execute("select count(*) from usage").fetchone()[0])


def measure_rounds(targets: list[Target], run_dir: Path, args: argparse.Namespace) -> dict[str, dict[str, list]]:
    results: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for target in targets:
        check_json(target, run_dir)
        streams(target, run_dir, 3, 10)
        wrk(target, run_dir, 32, args.warmup_seconds)
        wrk(target, run_dir, 8, args.warmup_seconds, model=STREAM_MODEL)
    for index in range(args.rounds):
        order = targets[index % len(targets):] + targets[:index % len(targets)]
        print(f"round {index + 1}/{args.rounds}", flush=True)
        for target in order:
            results[target.name]["c1"].append(wrk(target, run_dir, 1, args.c1_seconds))
        for target in order:
            results[target.name]["c32"].append(wrk(target, run_dir, 32, args.c32_seconds))
        for target in order:
            results[target.name]["stream"].append(streams(target, run_dir, args.streams, args.stream_seconds))
        for target in order:
            r = results[target.name]
            print(f"  {target.name}: c=1 p50 {r['c1'][-1].p50_ms:.3f} ms, c=32 {r['c32'][-1].rps:,.0f} req/s, "
                  f"stream TTFB p50 {r['stream'][-1].ttfb_p50_ms:.3f} ms", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    args = options(argv)
    if args.soak:
        import soak

        return soak.main(args)
    names = [n for n in ALL_TARGETS if n in args.targets.split(",")]
    run_dir = Path(tempfile.mkdtemp(prefix="sidegate-bench-"))
    answers = write_fixtures(run_dir, args.long_chunks, args.conc_chunks, args.short_chunks)
    started = datetime.now(UTC)
    began = time.monotonic()
    procs: list[Proc] = []
    try:
        nginx, port = start_nginx(run_dir, answers)
        procs.append(nginx)
        paced, paced_port = start_paced(run_dir, sys.executable, answers, args.paced_rate)
        procs.append(paced)
        print(f"run directory {run_dir}; nginx upstream on 127.0.0.1:{port}", flush=True)
        targets = start_targets(names, run_dir, port, paced_port)
        procs.extend(t.proc for t in targets if t.proc is not None)
        rss_idle = {t.name: t.proc.status_kb("VmRSS") for t in targets if t.proc}
        results = measure_rounds(targets, run_dir, args)
        rss_peak = {t.name: t.proc.status_kb("VmHWM") for t in targets if t.proc}
        scale = []
        if not args.no_scale:
            print("streaming scale test", flush=True)
            scale_targets = [t for t in targets if t.name.startswith(("direct", "bare", "sidegate"))]
            paced_targets = [t for t in targets if t.name == "sidegate"]
            if "passthrough" in names:
                paced_passthrough = start_passthrough(run_dir, sys.executable, paced_port, "passthrough-paced")
                assert paced_passthrough.proc is not None
                procs.append(paced_passthrough.proc)
                paced_targets.insert(0, paced_passthrough)
            scale = stream_scale.measure(scale_targets, paced_targets, args.long_chunks, args.short_chunks,
                                         args.scale_streams, args.conc_chunks, args.scale_repeats)
        for proc in reversed(procs):  # SIGTERM: sidegate flushes its usage rows before it exits
            proc.stop()
        procs.clear()
        rows = usage_rows(run_dir)
    finally:
        for proc in reversed(procs):
            proc.stop()
    text = report.render(
        started=started, seconds=time.monotonic() - began, args=args, targets=targets, results=results,
        rss_idle=rss_idle, rss_peak=rss_peak, scale=scale, usage_rows=rows, stream_chunks=STREAM_CHUNKS)
    args.out.mkdir(parents=True, exist_ok=True)
    name = started.strftime("%Y-%m-%d") + ("-quick" if args.quick else "") + ".md"
    (args.out / name).write_text(text)
    print()
    print(text)
    print(f"written to {args.out / name}")
    shutil.rmtree(run_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
