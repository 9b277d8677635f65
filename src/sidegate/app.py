"""The aiohttp application: routes from the surface registry, operations endpoints, and the
process lifecycle (start, reload on SIGHUP or file change, graceful stop on SIGTERM)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson
import structlog
from aiohttp import web

from sidegate import pipeline
from sidegate.errors import GatewayError
from sidegate.ingress.registry import (
    BASE_PATHS,
    FORMATS,
    GEMINI_METHODS,
    GEMINI_PATH,
    SURFACES,
    Surface,
    family_for_path,
)
from sidegate.policy.reload import PolicyHolder
from sidegate.state import STATE, AppState, new_usage_writer
from sidegate.telemetry.metrics_endpoint import metrics_handler
from sidegate.telemetry.store_url import redact_url
from sidegate.upstream.client import new_session

log = structlog.get_logger("sidegate.app")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Requests that match no surface are recorded under a pseudo-surface in the caller's error shape.
_UNKNOWN = {
    family: Surface("unknown", "*", "", next(f.name for f in FORMATS.values() if f.family == family))
    for family in ("openai", "anthropic", "gemini")
}


def _method_ok(request: web.Request, surface: Surface) -> GatewayError | None:
    if request.method == surface.method or (request.method == "HEAD" and surface.method == "GET"):
        return None
    return GatewayError(405, "method_not_allowed", f"{request.method} is not allowed here; use {surface.method}",
                        headers={"Allow": surface.method})


def surface_handler(surface: Surface) -> Handler:
    method = surface.method

    async def handler(request: web.Request) -> web.StreamResponse:
        refusal = None if request.method == method else _method_ok(request, surface)
        return await pipeline.handle(request, surface, refusal=refusal)
    return handler


async def gemini_handler(request: web.Request) -> web.StreamResponse:
    model, _, method = request.match_info["target"].rpartition(":")
    entry = GEMINI_METHODS.get(method)
    if entry is None or not model:
        return await unknown_handler(request)
    surface, stream = entry
    return await pipeline.handle(request, surface, url_model=model, url_stream=stream,
                                 refusal=_method_ok(request, surface))


async def unknown_handler(request: web.Request) -> web.StreamResponse:
    prefix = request.app[STATE].policy.prefix
    tail = request.path[len(prefix):] if request.path.startswith(prefix) else request.path
    surface = _UNKNOWN[family_for_path(tail)]
    return await pipeline.handle(request, surface, refusal=GatewayError(
        404, "not_found", f"no sidegate API at {request.method} {request.path}"))


async def base_handler(request: web.Request) -> web.Response:
    """Clients probe their base URL (Claude Code sends HEAD) before the first call."""
    return web.json_response({"service": "sidegate"})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready while a valid policy is in force. A rejected reload is shown here but does not make
    the process unready: it keeps serving the previous policy."""
    state = request.app[STATE]
    if state.shutting_down:  # a load balancer stops routing here; /healthz stays 200
        return web.Response(body=b'{"status":"shutting_down"}', status=503, content_type="application/json")
    body = {"status": "ready", "policy": state.holder.status(), "in_flight": state.in_flight,
            "usage": {"store": redact_url(state.usage_url), "queue_depth": state.usage.queue_depth}}
    return web.Response(body=orjson.dumps(body), content_type="application/json")


def add_operations(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_handler)


def build_app(state: AppState) -> web.Application:
    app = web.Application(client_max_size=1 << 62)  # sidegate enforces its own limit, per policy
    app[STATE] = state
    prefix = state.policy.prefix
    add_operations(app)
    for path in BASE_PATHS:
        for base in dict.fromkeys((prefix + path, prefix + path + "/")):  # base URLs set with a trailing /
            if base:
                app.router.add_route("HEAD", base, base_handler)
                app.router.add_get(base, base_handler, allow_head=False)
    for surface in SURFACES:
        app.router.add_route("*", prefix + surface.path, surface_handler(surface))
    app.router.add_route("*", prefix + GEMINI_PATH, gemini_handler)
    app.router.add_route("*", prefix + "/{tail:.*}", unknown_handler)
    return app


def build_admin_app(state: AppState) -> web.Application:
    app = web.Application()
    app[STATE] = state
    add_operations(app)
    return app


async def start_state(policies: str | Path) -> AppState:
    holder = PolicyHolder(policies)
    url = holder.current.model.usage.store
    writer = new_usage_writer(url)
    await writer.start()
    state = AppState(holder, writer, url)
    if state.inference_log is not None:
        await state.inference_log.start()
    state.session = new_session()
    holder.listeners.append(state.on_policy_swap)
    return state


async def close_state(state: AppState) -> None:
    await state.close()


# After the grace period: how long ended requests get to write their last bytes, then how long
# (twice, at most) a connection still busy gets at cleanup, and its request to record its row after
# being cancelled. Together well under a second.
_ENDING_S = 0.3
_CLEANUP_S = 0.1


def _split(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


async def serve(policies: str | Path, listen: str | None = None, watch_interval_s: float = 1.0) -> None:
    state = await start_state(policies)
    server = state.policy.model.server
    runners: list[web.AppRunner] = []
    sites: list[web.TCPSite] = []
    apps = [(build_app(state), listen or server.listen)]
    if server.admin_listen:
        apps.append((build_admin_app(state), server.admin_listen))
    for app, address in apps:
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=_CLEANUP_S)
        await runner.setup()
        host, port = _split(address)
        site = web.TCPSite(runner, host, port, reuse_address=True, backlog=1024)
        await site.start()
        runners.append(runner)
        sites.append(site)
        log.info("listening", address=f"http://{address}", prefix=state.policy.prefix or "/")

    # What start-up built (modules, the compiled policy) lives until exit: keep it out of the
    # garbage collector's full passes, which otherwise walk it all and stall requests for ms.
    gc.collect()
    gc.freeze()
    # Background threads (the usage writer encoding a batch, log and span exporters) hold the GIL
    # for up to the switch interval at a time; the default 5 ms of it lands on requests' latency.
    sys.setswitchinterval(0.0005)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(state.holder.reload("SIGHUP")))
    watcher = loop.create_task(state.holder.watch(watch_interval_s) if watch_interval_s > 0 else stop.wait())
    await stop.wait()

    watcher.cancel()
    await shut_down(state, sites[0], runners, server.shutdown_grace_s)
    with contextlib.suppress(asyncio.CancelledError):
        await watcher
    await close_state(state)
    log.info("stopped")


async def shut_down(state: AppState, api_site: web.TCPSite, runners: list[web.AppRunner], grace_s: float) -> None:
    """The stop on SIGTERM: unready at once (the admin port keeps answering probes), no new connections
    on the API port, `grace_s` for the requests in flight to finish; then each one still running is
    ended properly (`LiveRequests.end_all`: streams get their format's error event) and the
    connections close. The caller then flushes the usage rows."""
    began = time.monotonic()
    state.shutting_down = True
    log.info("stopping: no new connections; waiting for requests in flight", in_flight=state.in_flight,
             grace_s=grace_s)
    await api_site.stop()
    deadline = began + grace_s
    while state.in_flight and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    if state.in_flight:
        ended = state.live.end_all()
        log.warning("grace period over: ending the requests in flight", ended=ended)
        deadline += _ENDING_S
        while state.in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
    for runner in runners:
        await runner.cleanup()  # closes idle keep-alive connections; cancels what still runs
    deadline = time.monotonic() + _CLEANUP_S
    while state.in_flight and time.monotonic() < deadline:  # the cancelled ones record their usage rows
        await asyncio.sleep(0.01)
