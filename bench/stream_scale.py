"""Streaming scale: how many tokens per second a gateway relays, and whether the CPU it spends per
chunk stays flat along a long stream.

    python bench/stream_scale.py [--quick] [--long-chunks 20000] [--streams 200] [--conc-chunks 1000]

Run alone it starts its own upstreams, sidegate and pass-through (bench/run.py calls `measure` with
the servers it already runs). Every stream is an OpenAI chat stream, one token per chunk.

- Relay rate: nginx sends the stream as fast as the socket takes it, so the gateway is the
  bottleneck: one long stream (20,000 chunks), then 200 concurrent streams (CPU per chunk there is
  the gateway's CPU time over the whole batch, divided by the chunks).
- CPU along a stream: the paced upstream (bench/paced_upstream.py) sends one event per write at a
  fixed rate, as a model does. The gateway sleeps between events, so its CPU time read from
  /proc/<pid>/task/*/schedstat as the client passes each tenth of the stream is exact; work that
  grows with the stream's length shows up as later tenths costing more per chunk than the first,
  and as a long stream costing more per chunk than a short one (2,000 chunks).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import sys
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from fixtures import (
    CONC_MODEL,
    LONG_MODEL,
    PACED_LONG_MODEL,
    PACED_SHORT_MODEL,
    UPSTREAM_PREFIX,
    content_events,
    request_body,
)
from servers import CHAT_PATH, HEADERS, Target
from stream_client import concurrent

T = TypeVar("T")

try:
    import uvloop

    HAVE_UVLOOP = True
except ImportError:  # the orchestrator's venv has it; the stdlib loop works too, only slower
    HAVE_UVLOOP = False


def _path(target: Target, model: str) -> str:
    # the direct target and the pass-through use the upstream's own path for each model
    return UPSTREAM_PREFIX[model] + CHAT_PATH if target.json_path.startswith("/json/") else target.stream_path


def _run(coro: Coroutine[Any, Any, T]) -> T:
    if HAVE_UVLOOP:
        return uvloop.run(coro)
    return asyncio.run(coro)


@dataclass
class LongResult:
    chunks: int
    seconds: float
    cpu_ns_per_chunk: list[float] = field(default_factory=list)  # per tenth of the stream (roughly)
    cpu_ns_per_chunk_total: float = 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.chunks / self.seconds


def one_stream(target: Target, model: str, chunks: int) -> LongResult:
    events = content_events(chunks)
    marks = [events * k // 10 for k in range(1, 11)]
    proc = target.proc
    samples: list[tuple[int, int]] = []

    def on_events(n: int) -> None:
        # One read may carry several tenths: one sample then, the windows measured by their real sizes.
        if marks and n >= marks[0]:
            samples.append((n, proc.cpu_ns() if proc else 0))
            while marks and n >= marks[0]:
                marks.pop(0)

    samples.append((0, proc.cpu_ns() if proc else 0))
    began = time.perf_counter()
    _run(concurrent("127.0.0.1", target.port, _path(target, model), HEADERS, request_body(model, True), 1, events,
                    on_events))
    seconds = time.perf_counter() - began
    result = LongResult(chunks, seconds)
    if proc is not None:
        result.cpu_ns_per_chunk = [(c1 - c0) / (n1 - n0) for (n0, c0), (n1, c1) in itertools.pairwise(samples)]
        result.cpu_ns_per_chunk_total = (samples[-1][1] - samples[0][1]) / events
    return result


def median_long(runs: list[LongResult]) -> LongResult:
    out = LongResult(runs[0].chunks, statistics.median(r.seconds for r in runs))
    if runs[0].cpu_ns_per_chunk:
        out.cpu_ns_per_chunk = [statistics.median(r.cpu_ns_per_chunk[i] for r in runs)
                                for i in range(min(len(r.cpu_ns_per_chunk) for r in runs))]
        out.cpu_ns_per_chunk_total = statistics.median(r.cpu_ns_per_chunk_total for r in runs)
    return out


@dataclass
class ConcResult:
    streams: int
    chunks: int
    seconds: float
    cpu_ns_per_chunk: float
    ttfb_p50_ms: float
    ttfb_max_ms: float

    @property
    def tokens_per_s(self) -> float:
        return self.streams * self.chunks / self.seconds


def many_streams(target: Target, streams: int, chunks: int) -> ConcResult:
    proc = target.proc
    cpu0 = proc.cpu_ns() if proc else 0
    began = time.perf_counter()
    timings = _run(concurrent("127.0.0.1", target.port, _path(target, CONC_MODEL), HEADERS,
                              request_body(CONC_MODEL, True), streams, content_events(chunks)))
    seconds = time.perf_counter() - began
    cpu = (proc.cpu_ns() - cpu0) if proc else 0
    ttfb = [t.ttfb_ns / 1e6 for t in timings]
    return ConcResult(streams, chunks, seconds, cpu / (streams * content_events(chunks)),
                      statistics.median(ttfb), max(ttfb))


@dataclass
class ScaleResult:
    target: str
    burst: LongResult | None = None
    conc: ConcResult | None = None
    paced_long: LongResult | None = None
    paced_short: LongResult | None = None


def measure(targets: list[Target], paced_targets: list[Target], long_chunks: int, short_chunks: int, streams: int,
            conc_chunks: int, repeats: int) -> list[ScaleResult]:
    """Relay rate on `targets` (behind nginx), CPU along paced streams on `paced_targets` (behind
    the paced upstream); results merged by target name."""
    results: dict[str, ScaleResult] = {}
    for target in targets:
        one_stream(target, CONC_MODEL, conc_chunks)  # warm the path
        row = results.setdefault(target.name, ScaleResult(target.name))
        row.burst = median_long([one_stream(target, LONG_MODEL, long_chunks) for _ in range(repeats)])
        row.conc = many_streams(target, streams, conc_chunks)
    for target in paced_targets:
        one_stream(target, PACED_SHORT_MODEL, short_chunks)
        row = results.setdefault(target.name, ScaleResult(target.name))
        row.paced_long = median_long([one_stream(target, PACED_LONG_MODEL, long_chunks) for _ in range(repeats)])
        row.paced_short = median_long([one_stream(target, PACED_SHORT_MODEL, short_chunks) for _ in range(repeats)])
    return list(results.values())


def _us(ns: float) -> str:
    return f"{ns / 1000:.1f}"


def report(results: list[ScaleResult], paced_rate: float) -> str:
    burst = next((r.burst for r in results if r.burst), None)
    conc = next((r.conc for r in results if r.conc), None)
    paced = next((r for r in results if r.paced_long and r.paced_short), None)
    lines = []
    if burst and conc:
        lines += [
            f"Relay rate (nginx sends as fast as the socket takes it): one stream of {burst.chunks:,} chunks, and "
            f"{conc.streams} concurrent streams of {conc.chunks:,} chunks.", "",
            "| target | one stream: tokens/s | concurrent: tokens/s | concurrent: CPU µs/chunk "
            "| concurrent: TTFB p50 / max ms |",
            "|---|---:|---:|---:|---:|",
        ]
        for r in results:
            if r.burst and r.conc:
                cpu = _us(r.conc.cpu_ns_per_chunk) if r.conc.cpu_ns_per_chunk else "\N{EN DASH}"
                lines.append(f"| {r.target} | {r.burst.tokens_per_s:,.0f} | {r.conc.tokens_per_s:,.0f} | {cpu} "
                             f"| {r.conc.ttfb_p50_ms:.1f} / {r.conc.ttfb_max_ms:.1f} |")
    if paced and paced.paced_long and paced.paced_short:
        long, short = paced.paced_long, paced.paced_short
        lines += [
            "", f"CPU per chunk along a stream (paced upstream, one event per write, {paced_rate:,.0f} events/s):", "",
            f"| target | first tenth of {long.chunks:,} chunks: CPU µs/chunk | last tenth | whole stream "
            f"| whole {short.chunks:,}-chunk stream | stream took s |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for r in results:
            if r.paced_long and r.paced_short and r.paced_long.cpu_ns_per_chunk:
                per = r.paced_long.cpu_ns_per_chunk
                lines.append(f"| {r.target} | {_us(per[0])} | {_us(per[-1])} "
                             f"| {_us(r.paced_long.cpu_ns_per_chunk_total)} "
                             f"| {_us(r.paced_short.cpu_ns_per_chunk_total)} | {r.paced_long.seconds:.2f} |")
        lines += ["", "CPU µs per chunk in each tenth of the long paced stream (median of runs):", ""]
        for r in results:
            if r.paced_long and r.paced_long.cpu_ns_per_chunk:
                lines.append(f"- {r.target}: " + ", ".join(_us(v) for v in r.paced_long.cpu_ns_per_chunk))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import tempfile

    from fixtures import write_fixtures
    from servers import direct, start_nginx, start_paced, start_passthrough, start_sidegate

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, a few seconds")
    parser.add_argument("--long-chunks", type=int, default=20000)
    parser.add_argument("--short-chunks", type=int, default=2000)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--conc-chunks", type=int, default=1000)
    parser.add_argument("--paced-rate", type=float, default=5000, help="events per second of the paced upstream")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.quick:
        args.long_chunks, args.conc_chunks, args.paced_rate, args.repeats = 10000, 200, 10000, 1
    run_dir = Path(tempfile.mkdtemp(prefix="sidegate-scale-"))
    answers = write_fixtures(run_dir, args.long_chunks, args.conc_chunks, args.short_chunks)
    procs = []
    try:
        nginx, port = start_nginx(run_dir, answers)
        paced, paced_port = start_paced(run_dir, sys.executable, answers, args.paced_rate)
        procs += [nginx, paced]
        sidegate = start_sidegate(run_dir, sys.executable, port, paced_port)
        passthrough = start_passthrough(run_dir, sys.executable, port)
        paced_passthrough = start_passthrough(run_dir, sys.executable, paced_port, "passthrough-paced")
        procs += [t.proc for t in (sidegate, passthrough, paced_passthrough) if t.proc]
        results = measure([direct(port), passthrough, sidegate], [paced_passthrough, sidegate], args.long_chunks,
                          args.short_chunks, args.streams, args.conc_chunks, args.repeats)
    finally:
        for proc in reversed(procs):
            proc.stop()
    print(report(results, args.paced_rate))
    return 0


if __name__ == "__main__":
    sys.exit(main())
