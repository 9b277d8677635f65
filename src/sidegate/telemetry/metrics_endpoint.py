"""`GET /metrics`: the Prometheus exposition of the app's metrics, on the main app and on the
admin app (`server.admin_listen`)."""

from __future__ import annotations

from aiohttp import web

from sidegate.state import STATE


async def metrics_handler(request: web.Request) -> web.Response:
    body, content_type = await request.app[STATE].metrics.exposition(request.headers.get("Accept"))
    return web.Response(body=body, headers={"Content-Type": content_type})
