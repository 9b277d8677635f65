"""A bare aiohttp pass-through: the floor any aiohttp gateway starts from (no governance at all).

    python bench/passthrough.py LISTEN_PORT UPSTREAM_BASE_URL

Forwards every POST path to the upstream with the caller's body bytes and relays the answer:
whole for JSON, chunk by chunk as it arrives for SSE. One pooled client session, uvloop."""

from __future__ import annotations

import sys

import aiohttp
import uvloop
from aiohttp import web

UPSTREAM = web.AppKey("upstream", str)
SESSION = web.AppKey("session", aiohttp.ClientSession)


async def forward(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    session = request.app[SESSION]
    headers = {"Content-Type": request.headers.get("Content-Type", "application/json")}
    async with session.post(request.app[UPSTREAM] + request.path, data=body, headers=headers) as upstream:
        if upstream.content_type != "text/event-stream":
            return web.Response(body=await upstream.read(), status=upstream.status,
                                content_type=upstream.content_type)
        response = web.StreamResponse(status=upstream.status, headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
        await response.write_eof()
        return response


async def app(upstream: str) -> web.Application:
    application = web.Application()
    application[UPSTREAM] = upstream.rstrip("/")
    application[SESSION] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    application.router.add_post("/{tail:.*}", forward)

    async def close(a: web.Application) -> None:
        await a[SESSION].close()
    application.on_cleanup.append(close)
    return application


if __name__ == "__main__":
    uvloop.install()
    web.run_app(app(sys.argv[2]), host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None,
                backlog=1024)
