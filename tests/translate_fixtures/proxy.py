"""A minimal translating gateway for end-to-end tests: caller surfaces in every format, each call
translated with `sidegate.translate` to one destination provider (a fake upstream) and back, JSON
and SSE. It is how the request path uses the package: `plan`, `Translation.request`, send,
`Translation.response` or `Translation.stream()` fed event by event, `finish()` at a clean end."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from aiohttp.test_utils import TestServer

from sidegate import apis
from sidegate.errors import GatewayError
from sidegate.ingress.registry import FAMILIES, FORMATS
from sidegate.translate import Translation, plan
from sidegate.upstream.providers import ADAPTERS
from sidegate.upstream.sse import SSESplitter

ROUTES = {
    "/openai/v1/chat/completions": apis.OPENAI_CHAT,
    "/openai/v1/responses": apis.OPENAI_RESPONSES,
    "/openai/v1/embeddings": apis.OPENAI_EMBEDDINGS,
    "/anthropic/v1/messages": apis.ANTHROPIC_MESSAGES,
    "/anthropic/v1/messages/count_tokens": apis.ANTHROPIC_COUNT_TOKENS,
}
GEMINI_METHODS = {"generateContent": (apis.GEMINI_GENERATE, False),
                  "streamGenerateContent": (apis.GEMINI_GENERATE, True),
                  "countTokens": (apis.GEMINI_COUNT_TOKENS, False),
                  "embedContent": (apis.GEMINI_EMBED, False),
                  "batchEmbedContents": (apis.GEMINI_BATCH_EMBED, False)}


@dataclass
class Destination:
    kind: str  # openai | anthropic | gemini
    base_url: str  # the fake's origin (+ /v1 for openai)
    model: str
    apis: frozenset[str] | None = None  # what the provider speaks (default: its adapter's set)
    seen: list[str] = field(default_factory=list)  # destination APIs called


DEST = web.AppKey("dest", Destination)
SESSION = web.AppKey("session", aiohttp.ClientSession)


def _caller(request: web.Request, body: dict[str, Any]) -> tuple[str, str, bool]:
    path = request.path
    if path.startswith("/gemini/"):
        model, _, method = request.match_info["target"].partition(":")
        api, stream = GEMINI_METHODS[method]
        return api, model, stream
    api = ROUTES[path]
    return api, str(body.get("model") or ""), body.get("stream") is True


async def _handle(request: web.Request) -> web.StreamResponse:
    dest = request.app[DEST]
    raw_body = await request.read()
    body = orjson.loads(raw_body) if raw_body else {}
    caller_api, asked, stream = _caller(request, body)
    family = FAMILIES[FORMATS[caller_api].family]
    dest_api = plan(caller_api, dest.apis or ADAPTERS[dest.kind].apis)
    assert dest_api is not None, f"no translation from {caller_api} to {dest.kind}"
    dest.seen.append(dest_api)
    t = Translation(caller_api, dest_api, asked, dest.model, stream)
    try:
        out = t.request(body)
    except GatewayError as err:
        return web.Response(status=err.status, body=family.render_error(err, "req"),
                            content_type="application/json")
    if t.local:
        status, obj = t.answer_locally()
        return web.json_response(obj, status=status)
    adapter = ADAPTERS[dest.kind]
    url = dest.base_url + adapter.path(dest_api, dest.model, t.dest_stream)
    headers = {"content-type": "application/json", **adapter.default_headers(dest_api), **adapter.auth_headers("k")}
    session = request.app[SESSION]
    async with session.post(url, data=orjson.dumps(out), headers=headers) as reply:
        if t.dest_stream and reply.status < 400 and reply.content_type == "text/event-stream":
            response = web.StreamResponse(headers={"content-type": "text/event-stream"})
            await response.prepare(request)
            translator, splitter = t.stream(), SSESplitter()
            async for chunk in reply.content.iter_any():
                for ev in splitter.feed(chunk):
                    for block in translator.feed(ev.event, ev.data):
                        await response.write(block)
            for block in translator.finish():
                await response.write(block)
            await response.write_eof()
            return response
        raw = await reply.read()
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            obj = None
        status, translated = t.response(reply.status, obj)
        return web.json_response(translated, status=status)


@asynccontextmanager
async def translating_gateway(dest: Destination) -> AsyncIterator[str]:
    """Serve the caller surfaces on 127.0.0.1; yields the base URL (surfaces under it)."""
    async with aiohttp.ClientSession() as session:
        app = web.Application()
        app[DEST] = dest
        app[SESSION] = session
        for path in ROUTES:
            app.router.add_post(path, _handle)
        app.router.add_post("/gemini/{version}/models/{target}", _handle)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        try:
            yield f"http://127.0.0.1:{server.port}"
        finally:
            await server.close()
