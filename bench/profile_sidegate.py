"""Profile sidegate under load with py-spy, and summarise where its time goes as text.

    bench/.venv/bin/python bench/profile_sidegate.py [--seconds 20] [--connections 32] [--stream] [--svg]

Starts nginx and sidegate (bench/policies) as bench/run.py does, drives wrk at c=32 (JSON calls,
or streamed ones with --stream) and samples sidegate with `py-spy record --nonblocking` (the
process is not paused; py-spy runs on the load core). Prints, from py-spy's collapsed stacks:

- self time by function (where the CPU is actually spent, sidegate's own and the libraries'),
- inclusive time of sidegate's own functions (what each stage costs with everything it calls),
- self time grouped by package (sidegate, aiohttp, asyncio/uvloop, structlog, sqlite, …).

The summary goes to bench/results/profile-<date>.txt; with --svg also a flame graph (gitignored).
py-spy is installed into the running venv when missing.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path

from fixtures import CHAT_MODEL, STREAM_MODEL, write_fixtures
from measure import wrk
from procs import BENCH, LOAD_CORE
from servers import start_nginx, start_passthrough, start_sidegate


def py_spy() -> str:
    found = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if found:
        return found
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "py-spy"], check=True)
    return str(Path(sys.executable).parent / "py-spy")


def _frame_key(frame: str) -> tuple[str, str]:
    """'func (pkg/mod.py:123)' -> ('func (pkg/mod.py)', package): sidegate by module, others by
    top-level package (py-spy names files relative to their sys.path entry)."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    if path.startswith("sidegate/"):
        package = path.removesuffix(".py").replace("/", ".")
    elif "/" in path:
        package = path.split("/", 1)[0]
    else:
        package = path.removesuffix(".py") or "?"
    return f"{name} ({path})", package


def _stage(frames: list[str]) -> str:
    """Which pipeline stage a sample is in: the frame right under pipeline.handle, or where the
    sample is when it is not inside handle (aiohttp's server around it, the usage writer, …)."""
    for index, frame in enumerate(frames):
        if frame.startswith("handle (sidegate/pipeline.py"):
            if index + 1 == len(frames):
                return "pipeline.handle itself"
            child = _frame_key(frames[index + 1])[0]
            return "stage " + child.split(" (")[0]
    for frame in reversed(frames):
        if _frame_key(frame)[1].startswith("sidegate.telemetry"):
            return "usage writer (thread and task)"
    leaf = frames[-1]
    return "outside the pipeline: " + _frame_key(leaf)[1]


def summarise(collapsed: Path, top: int, us_per_request: float) -> str:
    self_time: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    packages: collections.Counter[str] = collections.Counter()
    stages: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += count
        leaf, package = _frame_key(frames[-1])
        self_time[leaf] += count
        packages[package] += count
        stages[_stage(frames)] += count
        seen = set()
        for frame in frames:
            key, pkg = _frame_key(frame)
            if pkg.startswith("sidegate") and key not in seen:
                seen.add(key)
                inclusive[key] += count

    def table(title: str, counter: collections.Counter[str]) -> list[str]:
        rows = [title, ""]
        rows += [f"{100 * n / total:6.1f}% {us_per_request * n / total:7.1f} µs  {key}"
                 for key, n in counter.most_common(top)]
        return [*rows, ""]

    out = [f"{total} samples; share of samples and µs per request (share times 1/throughput)", ""]
    out += table("By pipeline stage (inclusive):", stages)
    out += table("Self time by function (top):", self_time)
    out += table("Inclusive time of sidegate's functions:", inclusive)
    out += table("Self time by package (sidegate by module):", packages)
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--stream", action="store_true", help="streamed calls instead of JSON ones")
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--svg", action="store_true", help="also write a flame graph")
    parser.add_argument("--nonblocking", action="store_true",
                        help="do not pause sidegate while sampling (less overhead, torn stacks)")
    parser.add_argument("--all-threads", action="store_true",
                        help="sample every running thread, not only the one holding the GIL")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--policies", type=Path, default=BENCH / "policies",
                        help="sidegate's policy directory (default: the benchmark's, full governance)")
    parser.add_argument("--raw", type=Path, help="also keep py-spy's collapsed stacks in this file")
    parser.add_argument("--passthrough", action="store_true",
                        help="profile the bare aiohttp pass-through instead: the floor to compare with")
    args = parser.parse_args()
    spy = py_spy()
    run_dir = Path(tempfile.mkdtemp(prefix="sidegate-profile-"))
    answers = write_fixtures(run_dir, 100, 100, 100)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    kind = ("passthrough-" if args.passthrough else "") + ("stream" if args.stream else "json")
    results = BENCH / "results"
    procs = []
    try:
        nginx, port = start_nginx(run_dir, answers)
        procs.append(nginx)
        target = (start_passthrough(run_dir, sys.executable, port) if args.passthrough
                  else start_sidegate(run_dir, sys.executable, port, policies=args.policies))
        assert target.proc is not None
        procs.append(target.proc)
        model = STREAM_MODEL if args.stream else CHAT_MODEL
        wrk(target, run_dir, args.connections, 3, model=model)  # warm up
        outcome: list[object] = []
        load = threading.Thread(target=lambda: outcome.append(
            wrk(target, run_dir, args.connections, args.seconds + 2, model=model)))
        load.start()
        collapsed = run_dir / "profile.txt"
        record = ["taskset", "-c", LOAD_CORE, spy, "record", "--rate", str(args.rate),
                  "--duration", str(args.seconds), "--pid", str(target.proc.pid)]
        record += ["--nonblocking"] if args.nonblocking else []
        record += [] if args.all_threads else ["--gil"]
        subprocess.run([*record, "--format", "raw", "--output", str(collapsed)], check=True,
                       capture_output=True)
        load.join()
        if args.svg:
            load = threading.Thread(target=lambda: wrk(target, run_dir, args.connections, args.seconds + 2,
                                                       model=model))
            load.start()
            subprocess.run([*record, "--output", str(results / f"profile-{stamp}-{kind}.svg")], check=True,
                           capture_output=True)
            load.join()
    finally:
        for proc in reversed(procs):
            proc.stop()
    rps = getattr(outcome[0], "rps", 0.0) if outcome else 0.0
    summary = summarise(collapsed, args.top, 1e6 / rps if rps else 0.0)
    if args.raw:
        shutil.copyfile(collapsed, args.raw)
    shutil.rmtree(run_dir, ignore_errors=True)
    text = (f"py-spy profile of {target.name} under wrk c={args.connections}, {kind} calls, {args.seconds}s at "
            f"{args.rate} Hz ({rps:,.0f} req/s while sampled, with py-spy sharing the load core)\n\n"
            + summary)
    results.mkdir(exist_ok=True)
    out = results / f"profile-{stamp}-{kind}.txt"
    out.write_text(text)
    print(text)
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
