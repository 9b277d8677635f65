"""The fixed bytes of the benchmark: request bodies the load generator sends, and the OpenAI chat
completion (JSON and SSE) the upstream stand-in answers with. Written into the run directory at
start, so nothing large lives in the repository."""

from __future__ import annotations

import json
from pathlib import Path

CHAT_MODEL = "bench-chat"
STREAM_MODEL = "bench-stream"
# Streams of the scale test (bench/stream_scale.py). From nginx, as fast as the socket takes them:
# one long stream, and the stream of each of many concurrent ones. From the paced upstream, one
# event per write at a fixed rate: a long and a short stream, to follow CPU per chunk along them.
LONG_MODEL = "bench-long"
CONC_MODEL = "bench-conc"
PACED_LONG_MODEL = "bench-paced-long"
PACED_SHORT_MODEL = "bench-paced-short"
PACED_MODELS = (PACED_LONG_MODEL, PACED_SHORT_MODEL)

# Path prefix on the upstream stand-in for each model: the gateways route a model to its prefix.
UPSTREAM_PREFIX = {
    CHAT_MODEL: "/json/v1",
    STREAM_MODEL: "/stream/v1",
    LONG_MODEL: "/long/v1",
    CONC_MODEL: "/conc/v1",
    PACED_LONG_MODEL: "/paced-long/v1",
    PACED_SHORT_MODEL: "/paced-short/v1",
}
STREAM_CHUNKS = 32  # content chunks (tokens) in the stream of the main table

SYSTEM = (
    "You are a careful coding assistant. Answer briefly, show code when it helps, and say so when "
    "you are not sure. Prefer the standard library."
)
USER = (
    "Here is a Python function that reads a CSV file of orders and sums the amount column per "
    "customer. It is slow on large files and uses too much memory. Rewrite it so that it streams the "
    "file, keeps only the running totals, and returns them sorted by total, largest first. Keep the "
    "function signature and explain the change in two sentences."
)
WORDS = ("The", " function", " now", " reads", " one", " row", " at", " a", " time", " and", " keeps",
         " a", " dictionary", " of", " running", " totals", ",", " so", " memory", " stays", " flat", ".")


def _dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def request_body(model: str, stream: bool) -> bytes:
    body: dict[str, object] = {
        "model": model,
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}],
        "max_tokens": 256,
        "temperature": 0.2,
    }
    if stream:
        # Asking for the usage chunk ourselves lets every gateway forward the body unchanged.
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return _dumps(body)


def _usage(completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": 96, "completion_tokens": completion_tokens, "total_tokens": 96 + completion_tokens}


def chat_completion(model: str = CHAT_MODEL) -> bytes:
    text = "".join(WORDS[i % len(WORDS)] for i in range(64))
    return _dumps({
        "id": "chatcmpl-bench0001", "object": "chat.completion", "created": 1760000000, "model": model,
        "system_fingerprint": "fp_bench",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": None},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": _usage(64),
    })


def sse_stream(model: str, chunks: int) -> bytes:
    """An OpenAI chat completion stream: a role chunk, `chunks` content chunks (one token each), a
    finish chunk, the usage chunk, then [DONE]."""
    head = {"id": "chatcmpl-bench0002", "object": "chat.completion.chunk", "created": 1760000000,
            "model": model, "system_fingerprint": "fp_bench"}

    def event(choices: list[object], **extra: object) -> bytes:
        return b"data: " + _dumps({**head, "choices": choices, **extra}) + b"\n\n"

    out = [event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                   "finish_reason": None}])]
    for i in range(chunks):
        out.append(event([{"index": 0, "delta": {"content": WORDS[i % len(WORDS)]}, "logprobs": None,
                           "finish_reason": None}]))
    out.append(event([{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]))
    out.append(event([], usage=_usage(chunks)))
    out.append(b"data: [DONE]\n\n")
    return b"".join(out)


def content_events(chunks: int) -> int:
    """Events a client receives for a stream of `chunks` tokens (role, content, finish, usage, DONE)."""
    return chunks + 4


def write_fixtures(run_dir: Path, long_chunks: int, conc_chunks: int, short_chunks: int) -> dict[str, Path]:
    """Write every upstream answer and request body; return the upstream file of each model."""
    run_dir.chmod(0o755)  # nginx workers run as an unprivileged user when nginx is started as root
    answers = {
        CHAT_MODEL: chat_completion(),
        STREAM_MODEL: sse_stream(STREAM_MODEL, STREAM_CHUNKS),
        LONG_MODEL: sse_stream(LONG_MODEL, long_chunks),
        CONC_MODEL: sse_stream(CONC_MODEL, conc_chunks),
        PACED_LONG_MODEL: sse_stream(PACED_LONG_MODEL, long_chunks),
        PACED_SHORT_MODEL: sse_stream(PACED_SHORT_MODEL, short_chunks),
    }
    files: dict[str, Path] = {}
    for model, data in answers.items():
        path = run_dir / f"{model}.{'json' if model == CHAT_MODEL else 'sse'}"
        path.write_bytes(data)
        files[model] = path
        (run_dir / f"body-{model}.json").write_bytes(request_body(model, stream=model != CHAT_MODEL))
    return files
