"""The processes of a benchmark run: the nginx upstream stand-in and the targets measured.

Every gateway runs pinned to core 0; nginx (and the load generators) run on core 1. A `Target`
says where to send JSON and streamed calls (every target gets the same headers), so the measuring code
treats direct, the bare pass-through, sidegate and LiteLLM alike."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from fixtures import CHAT_MODEL, PACED_MODELS, STREAM_MODEL, UPSTREAM_PREFIX
from procs import BENCH, GATEWAY_CORE, LOAD_CORE, REPO, Proc, free_port, nginx_conf

BENCH_KEY = "sk-bench-sidegate-0001"  # sidegate's bench principal, and LiteLLM's master key
BENCH_TAGS = json.dumps({"project": "bench", "team": "perf"}, separators=(",", ":"))
# Every target gets the same request bytes: the gateways need the key and the tags, nginx ignores them.
HEADERS = {"Authorization": f"Bearer {BENCH_KEY}", "Databricks-Ai-Gateway-Request-Tags": BENCH_TAGS}
LITELLM_VENV = Path(os.environ.get("BENCH_LITELLM_VENV", BENCH / ".venv-litellm"))
CHAT_PATH = "/chat/completions"


@dataclass
class Target:
    name: str
    port: int
    json_path: str
    stream_path: str
    proc: Proc | None = None  # None for direct: nginx is measured as the upstream, not as a target

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def start_nginx(run_dir: Path, answers: dict[str, Path]) -> tuple[Proc, int]:
    """nginx on core 1 answering `UPSTREAM_PREFIX[model]/chat/completions` with the model's file."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    port = free_port()
    files = {UPSTREAM_PREFIX[model] + CHAT_PATH: path for model, path in answers.items() if model not in PACED_MODELS}
    conf = nginx_conf(run_dir, port, files)
    proc = Proc("nginx", [nginx, "-c", str(conf), "-p", str(run_dir)], LOAD_CORE, run_dir)
    proc.wait_ready(f"tcp://127.0.0.1:{port}", 10)
    return proc, port


def start_paced(run_dir: Path, python: str, answers: dict[str, Path], rate: float) -> tuple[Proc, int]:
    """The paced upstream (bench/paced_upstream.py) on core 1, serving the paced models' streams."""
    port = free_port()
    specs = [f"{UPSTREAM_PREFIX[m]}{CHAT_PATH}={answers[m]}" for m in PACED_MODELS]
    proc = Proc("paced-upstream", [python, str(BENCH / "paced_upstream.py"), str(port), str(rate), *specs],
                LOAD_CORE, run_dir)
    proc.wait_ready(f"tcp://127.0.0.1:{port}", 10)
    return proc, port


def direct(upstream_port: int) -> Target:
    return Target("direct to upstream (nginx)", upstream_port, UPSTREAM_PREFIX[CHAT_MODEL] + CHAT_PATH,
                  UPSTREAM_PREFIX[STREAM_MODEL] + CHAT_PATH)


def start_passthrough(run_dir: Path, python: str, upstream_port: int, name: str = "passthrough") -> Target:
    port = free_port()
    proc = Proc(name, [python, str(BENCH / "passthrough.py"), str(port), f"http://127.0.0.1:{upstream_port}"],
                GATEWAY_CORE, run_dir)
    proc.wait_ready(f"tcp://127.0.0.1:{port}", 20)
    return Target("bare aiohttp pass-through", port, UPSTREAM_PREFIX[CHAT_MODEL] + CHAT_PATH,
                  UPSTREAM_PREFIX[STREAM_MODEL] + CHAT_PATH, proc)


def start_sidegate(run_dir: Path, python: str, upstream_port: int, paced_port: int | None = None,
                   policies: Path = BENCH / "policies") -> Target:
    port = free_port()
    env = {"BENCH_UPSTREAM_PORT": str(upstream_port), "BENCH_USAGE_STORE": f"sqlite:///{run_dir}/usage.db"}
    if paced_port is not None:
        env["BENCH_PACED_PORT"] = str(paced_port)
    proc = Proc("sidegate", [python, "-m", "sidegate", "serve", "--policies", str(policies),
                             "--listen", f"127.0.0.1:{port}", "--log-level", "warning"],
                GATEWAY_CORE, run_dir, env=env, cwd=REPO)
    proc.wait_ready(f"http://127.0.0.1:{port}/healthz", 30)
    path = "/ai-gateway/openai/v1" + CHAT_PATH
    return Target("sidegate", port, path, path, proc)


def litellm_version() -> str:
    try:
        meta = next((LITELLM_VENV / "lib").glob("python3*/site-packages/litellm-*.dist-info"))
    except StopIteration:
        return "?"
    return meta.name.removeprefix("litellm-").removesuffix(".dist-info")


def start_litellm(run_dir: Path, upstream_port: int) -> Target:
    port = free_port()
    base = f"http://127.0.0.1:{upstream_port}"
    env = {
        "BENCH_UPSTREAM_JSON": base + UPSTREAM_PREFIX[CHAT_MODEL],
        "BENCH_UPSTREAM_STREAM": base + UPSTREAM_PREFIX[STREAM_MODEL],
        "BENCH_KEY": BENCH_KEY,
        # offline: use the cost map shipped in the package instead of fetching it at start
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",
        "NO_PROXY": "*",
    }
    proc = Proc("litellm", [str(LITELLM_VENV / "bin" / "litellm"), "--config", str(BENCH / "litellm.yaml"),
                            "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"],
                GATEWAY_CORE, run_dir, env=env, cwd=run_dir)
    proc.wait_ready(f"http://127.0.0.1:{port}/health/liveliness", 180)
    path = "/v1" + CHAT_PATH
    return Target(f"LiteLLM proxy {litellm_version()}", port, path, path, proc)
