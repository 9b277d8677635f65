"""Prompt and completion text for spans, used only with `telemetry.traces.capture_content: true`.

The prompt is the request body as it was forwarded, so text the input guardrails masked stays
masked; a request that was never forwarded (refused by authentication, a rate limit or a blocking
guardrail) has none. The completion is the generated text of a whole answer as the caller got it
(after output guardrails); for a stream, the bytes sent to the caller when the inference log
captured them. Each is cut at `CONTENT_LIMIT` bytes.
"""

from __future__ import annotations

from sidegate.context import RequestContext
from sidegate.governance.guardrails.texts import output_texts

CONTENT_LIMIT = 16 * 1024
TRUNCATED = " …[truncated]"


def bounded(data: bytes) -> str:
    if len(data) <= CONTENT_LIMIT:
        return data.decode("utf-8", "replace")
    return data[:CONTENT_LIMIT].decode("utf-8", "ignore") + TRUNCATED


def request_content(ctx: RequestContext) -> str | None:
    if not ctx.upstream_called or not ctx.body_bytes:
        return None
    return bounded(ctx.body_bytes)


def response_content(ctx: RequestContext) -> str | None:
    if ctx.answer is not None:
        texts = [container[key] for container, key in output_texts(ctx.fmt.name, ctx.answer)]
        return bounded("\n".join(texts).encode()) if texts else None
    if ctx.capture:
        head: list[bytes] = []
        size = 0
        for chunk in ctx.capture:
            head.append(chunk)
            size += len(chunk)
            if size > CONTENT_LIMIT:
                break
        return bounded(b"".join(head))
    return None
