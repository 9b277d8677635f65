"""The aiohttp applications and the process lifecycle (start, reload on SIGHUP or file change,
graceful stop on SIGTERM).

The API app routes the surface registry's paths under the prefix; the operations endpoints
(/healthz, /readyz, /metrics) are on it too unless `server.admin_listen` puts them on an admin app
of their own. Whatever no route takes, on either app, answers JSON in the shape of the API family
its path looks like: under the prefix through the pipeline (recorded), elsewhere directly."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import structlog
from aiohttp import web
from aiohttp.web_urldispatcher import DynamicResource

from sidegate import pipeline
from sidegate.context import new_request_id
from sidegate.edge import EdgeRunner
from sidegate.errors import GatewayError
from sidegate.ingress.registry import (
    BASE_PATHS,
    FAMILIES,
    FORMATS,
    GEMINI_METHODS,
    GEMINI_PATH,
    SURFACES,
    Surface,
    family_for_path,
)
from sidegate.policy.reload import PolicyHolder
from sidegate.state import STATE, AppState, new_usage_writer

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
    # Gemini streams server-sent events only when asked (`alt=sse`), else one JSON array
    return await pipeline.handle(request, surface, url_model=model, url_stream=stream,
                                 refusal=_method_ok(request, surface),
                                 stream_array=stream and request.query.get("alt") != "sse")


async def unknown_handler(request: web.Request) -> web.StreamResponse:
    return await pipeline.handle(request, _UNKNOWN[_family(request)], refusal=GatewayError(
        404, "not_found", f"no sidegate API at {request.method} {request.path}"))


async def base_handler(request: web.Request) -> web.StreamResponse:
    """Clients probe their base URL (Claude Code sends HEAD) before the first call; other methods
    there are refused (and recorded) like any API path's."""
    if request.method in _READ_METHODS:
        return web.json_response({"service": "sidegate"})
    return await pipeline.handle(request, _UNKNOWN[_family(request)], refusal=_method_not_allowed(request))


_READ_METHODS = frozenset(("GET", "HEAD"))


def _family(request: web.Request) -> str:
    """The API family a path looks like (by its first segment under the prefix)."""
    prefix = request.app[STATE].policy.prefix
    path = request.path
    return family_for_path(path[len(prefix):] if prefix and path.startswith(prefix) else path)


def _method_not_allowed(request: web.Request) -> GatewayError:
    return GatewayError(405, "method_not_allowed", f"{request.method} is not allowed at {request.path}; use GET",
                        headers={"Allow": "GET, HEAD"})


def stray_response(request: web.Request, err: GatewayError) -> web.Response:
    """A JSON answer, in the shape of the API family the path looks like, for a path that is not
    an API call (not recorded: nothing was asked of a model service)."""
    request_id = new_request_id()
    body = FAMILIES[_family(request)].render_error(err, request_id)
    return web.Response(body=body, status=err.status, content_type="application/json",
                        headers={"x-sidegate-request-id": request_id, **(err.headers or {})})


def stray_handler(hint: str = "") -> Handler:
    """Every request target outside the API and the operations endpoints: a JSON 404, never
    aiohttp's text page. `hint` ends its message."""
    async def stray(request: web.Request) -> web.StreamResponse:
        return stray_response(request, GatewayError(
            404, "not_found", f"no sidegate endpoint at {request.method} {request.path}{hint}"))
    return stray


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


# Why the process cannot serve requests as configured: each check returns (code, message) or None.
def _shutting_down(state: AppState) -> tuple[str, str] | None:
    return ("shutting_down", "sidegate is shutting down") if state.shutting_down else None


def _refusing_rate_limited(state: AppState) -> tuple[str, str] | None:
    limiter = state.limiter
    if limiter is None or limiter.on_error != "deny" or not limiter.store.health.failing:
        return None
    return ("rate_limit_store_unavailable", "the rate limit store is unreachable and rate_limit_store.on_error "
            "is deny: requests that rate limits apply to are refused with 503")


NOT_READY: tuple[Callable[[AppState], tuple[str, str] | None], ...] = (_shutting_down, _refusing_rate_limited)


def store_health(state: AppState) -> dict[str, Any]:
    """Each store sidegate writes to or asks, ok or failing since when, with its last error."""
    off = {"status": "off"}
    limiter, inference, traces = state.limiter, state.inference_log, state.tracing.health
    return {
        "rate_limit": off if limiter is None else {**limiter.store.health.snapshot(), "on_error": limiter.on_error},
        "usage": {**state.usage.health.snapshot(), "queue_depth": state.usage.queue_depth},
        "inference_log": off if inference is None else {**inference.health.snapshot(),
                                                        "queue_depth": inference.queue_depth},
        "traces": off if traces is None else {**traces.snapshot(), "dropped_spans": state.tracing.dropped_spans},
    }


async def readyz(request: web.Request) -> web.Response:
    """200 while requests can be served as configured, else 503 with the reasons; either way each
    store's health. The rate-limit store is asked (one ping) so that its state is current even
    without traffic. A rejected reload is shown but is no reason: the previous policy serves."""
    state = request.app[STATE]
    if state.limiter is not None:
        await state.limiter.probe()
    reasons = [{"code": found[0], "message": found[1]} for check in NOT_READY if (found := check(state))]
    status = "shutting_down" if state.shutting_down else "not_ready" if reasons else "ready"
    body = {"status": status, "reasons": reasons, "policy": state.holder.status(),
            "in_flight": state.in_flight, "stores": store_health(state)}
    return web.Response(body=orjson.dumps(body), status=503 if reasons else 200, content_type="application/json")


async def metrics_handler(request: web.Request) -> web.Response:
    """The Prometheus exposition of the app's metrics, in the format the scraper's Accept asks for."""
    body, content_type = await request.app[STATE].metrics.exposition(request.headers.get("Accept"))
    return web.Response(body=body, headers={"Content-Type": content_type})


def operation(handler: Handler) -> Handler:
    """An operations endpoint: GET and HEAD, JSON 405 for anything else."""
    async def checked(request: web.Request) -> web.StreamResponse:
        if request.method not in _READ_METHODS:
            return stray_response(request, _method_not_allowed(request))
        return await handler(request)
    return checked


def add_operations(app: web.Application, paths: frozenset[str]) -> None:
    for path, handler in (("/healthz", healthz), ("/readyz", readyz), ("/metrics", metrics_handler)):
        if path in paths:
            app.router.add_route("*", path, operation(handler))


_ALL_OPERATIONS = frozenset(("/healthz", "/readyz", "/metrics"))


class _AnyPath(DynamicResource):
    """Every request target, also those no path pattern matches (`OPTIONS *`)."""

    def _match(self, path: str) -> dict[str, str] | None:
        return {"tail": path}


def add_fallback(app: web.Application, handler: Handler) -> None:
    """`handler` answers what no other route takes. The router tries it last (it is indexed under
    "/"), so it costs the requests that another route takes nothing."""
    resource = _AnyPath("/{tail:.*}")
    app.router.register_resource(resource)
    resource.add_route("*", handler)


def build_app(state: AppState) -> web.Application:
    app = web.Application(client_max_size=1 << 62)  # sidegate enforces its own limit, per policy
    app[STATE] = state
    prefix = state.policy.prefix
    server = state.policy.model.server
    if server.admin_listen is None:
        add_operations(app, _ALL_OPERATIONS)
    else:  # operations on the admin port only: /metrics and /readyz name principals, tags and stores
        add_operations(app, frozenset(("/healthz",)) if server.healthz_on_listen else frozenset())
    for path in BASE_PATHS:
        for base in dict.fromkeys((prefix + path, prefix + path + "/")):  # base URLs set with a trailing /
            if base:
                app.router.add_route("*", base, base_handler)
    for surface in SURFACES:
        app.router.add_route("*", prefix + surface.path, surface_handler(surface))
    app.router.add_route("*", prefix + GEMINI_PATH, gemini_handler)
    app.router.add_route("*", prefix + "/{tail:.*}", unknown_handler)
    add_fallback(app, stray_handler(f"; API paths start with {prefix}/" if prefix else ""))
    return app


def build_admin_app(state: AppState) -> web.Application:
    app = web.Application()
    app[STATE] = state
    add_operations(app, _ALL_OPERATIONS)
    add_fallback(app, stray_handler(" (this port serves /healthz, /readyz and /metrics)"))
    return app


async def start_state(policies: str | Path) -> AppState:
    holder = PolicyHolder(policies)
    url = holder.current.model.usage.store
    writer = new_usage_writer(url)
    await writer.start()
    state = AppState(holder, writer, url)
    if state.inference_log is not None:
        await state.inference_log.start()
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


def origin(listen: str) -> str:
    """The URL a client on this machine reaches HOST:PORT at (a wildcard host is the loopback)."""
    host, port = _split(listen)
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def base_urls(state: AppState, listen: str) -> dict[str, str]:
    """The base URL to give each SDK and agent, by the first segment of its base path
    (`mlflow`, `openai`, `anthropic`, ...)."""
    root = origin(listen) + state.policy.prefix
    return {path.strip("/").split("/")[0]: root + path for path in BASE_PATHS if path}


async def serve(policies: str | Path, listen: str | None = None, watch_interval_s: float = 1.0) -> None:
    state = await start_state(policies)
    server = state.policy.model.server
    runners: list[web.AppRunner] = []
    sites: list[web.TCPSite] = []
    address = listen or server.listen
    apps = [(build_app(state), address)]
    if server.admin_listen:
        apps.append((build_admin_app(state), server.admin_listen))
    for app, where in apps:
        edge = EdgeRunner(app, prefix=state.policy.prefix, max_header_bytes=server.max_header_bytes,
                          handle_signals=False, access_log=None, shutdown_timeout=_CLEANUP_S)
        await edge.setup()
        host, port = _split(where)
        site = web.TCPSite(edge, host, port, reuse_address=True, backlog=1024)
        await site.start()
        runners.append(edge)
        sites.append(site)
    log.info("listening", address=origin(address), prefix=state.policy.prefix or "/", **base_urls(state, address))
    if server.admin_listen:
        log.info("listening for operations", address=origin(server.admin_listen),
                 endpoints="/healthz /readyz /metrics")

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
