"""The request pipeline: the one place that orders the stages every API call goes through.

    authenticate → parse → resolve model service → tags → rate-limit reserve → input guardrails
    → forward (translate, send, fall back) → relay (translate back, output guardrails)
    → record (always, in `finally`: usage row, rate-limit settlement)

Authentication comes before the body is read so that an unauthenticated caller cannot make
sidegate buffer a large body. Output guardrails run inside the relay, event by event.
Each stage is a small function of the request context that raises `GatewayError` to answer early.
"""

from __future__ import annotations

import asyncio

import orjson
import structlog
from aiohttp import web

from sidegate.auth.authenticate import authenticate
from sidegate.auth.clients import client_of
from sidegate.context import RequestContext, new_request_id, utc_now_iso
from sidegate.errors import GatewayError
from sidegate.governance.ratelimit.limiter import RateLimiter
from sidegate.governance.tags import merge_tags, parse_tags
from sidegate.governance.token_estimate import estimate_request_tokens
from sidegate.ingress.parse import parse
from sidegate.ingress.registry import FAMILIES, Surface
from sidegate.state import STATE, AppState
from sidegate.telemetry.record import record
from sidegate.upstream.forward import forward
from sidegate.upstream.live import shutting_down_error
from sidegate.upstream.relay import relay

log = structlog.get_logger("sidegate.pipeline")


def resolve(ctx: RequestContext) -> None:
    """Which model service the request names, and whether its caller may use it (404 otherwise)."""
    policy, principal, asked = ctx.policy, ctx.principal, ctx.model or ""
    assert principal is not None
    service = policy.resolve(asked)
    if service is None or not service.allows(principal):
        visible = policy.visible_models(principal)
        listing = ", ".join(visible[:50]) + (" …" if len(visible) > 50 else "") if visible else "none"
        # A service the caller may not use is reported exactly like one that does not exist.
        raise GatewayError(404, "model_not_found",
                           f"model service {asked!r} does not exist; model services you may use: {listing}",
                           param="model")
    ctx.service = service


def apply_tags(ctx: RequestContext) -> None:
    caller, ctx.tags_header = parse_tags(ctx.request.headers)
    ctx.tags = merge_tags(caller, ctx.policy.tags_stamp, ctx.policy.tags_require)


async def reserve_rate_limit(ctx: RequestContext, limiter: RateLimiter | None) -> None:
    """Take one request, the input estimate and an expectation of the output from every bucket that
    applies (429 when the input or the request does not fit)."""
    if limiter is None:
        return
    assert ctx.principal is not None and ctx.service is not None
    ctx.limiter = limiter
    needed, cap = estimate_request_tokens(ctx.fmt.name, ctx.body or {}, len(ctx.body_bytes))
    ctx.reservation = await limiter.reserve(ctx.principal, ctx.service.name, ctx.tags, needed, model=ctx.model,
                                            output_cap=cap, family=ctx.fmt.family)


def guard_input(ctx: RequestContext) -> None:
    """Find the guardrails of this request; scan (and mask, or refuse) what the model will read."""
    guardrails = ctx.policy.guardrails
    if guardrails is None:
        return
    assert ctx.principal is not None and ctx.service is not None
    active = guardrails.for_request(ctx.principal, ctx.service.name, ctx.tags)
    if active is None:
        return
    ctx.guardrails, ctx.guardrail_results = active, active.results
    if active.has_input and ctx.body is not None and active.check_input(ctx.fmt.name, ctx.body):
        ctx.body_bytes = orjson.dumps(ctx.body)  # masked: what goes upstream is the masked text


def model_list(ctx: RequestContext) -> web.Response:
    assert ctx.principal is not None
    names = ctx.policy.visible_models(ctx.principal)
    data = [{"id": name, "object": "model", "created": 0, "owned_by": "sidegate"} for name in names]
    ctx.status = 200
    return web.Response(body=orjson.dumps({"object": "list", "data": data}), content_type="application/json",
                        headers={"x-sidegate-request-id": ctx.request_id})


def error_response(ctx: RequestContext, err: GatewayError) -> web.Response:
    ctx.status, ctx.error_code = err.status, err.code
    headers = {"x-sidegate-request-id": ctx.request_id}
    if ctx.reservation is not None:
        headers.update(ctx.reservation.headers())
    headers.update(err.headers or {})
    body = FAMILIES[ctx.fmt.family].render_error(err, ctx.request_id)
    if ctx.capture is not None:  # sampled for the inference log, then refused: log the refusal
        ctx.capture.append(body)
    return web.Response(body=body, status=err.status, content_type="application/json", headers=headers)


async def handle(
    request: web.Request, surface: Surface, url_model: str | None = None, url_stream: bool = False,
    refusal: GatewayError | None = None, stream_array: bool = False,
) -> web.StreamResponse:
    """Run one API call through the pipeline. `refusal` answers a request that routing already
    knows it cannot serve (unknown path, wrong method) while still recording it; `stream_array`:
    a stream the URL asks for as one JSON array rather than server-sent events."""
    state: AppState = request.app[STATE]
    ctx = RequestContext(
        request=request, surface=surface, fmt=surface.fmt, policy=state.policy,
        request_id=new_request_id(), event_time=utc_now_iso(),
        url_model=url_model, url_stream=url_stream, stream_array=stream_array,
    )
    ctx.user_agent = request.headers.get("user-agent")
    ctx.client = client_of(ctx.user_agent)
    state.tracing.start_request(ctx)
    state.in_flight += 1
    services = state.upstream  # the stages' services, as they were when this request began
    live = services.live
    task = live.enter()
    try:
        if refusal is not None:
            raise refusal
        if live.ending:
            raise shutting_down_error()
        authenticate(ctx)
        await parse(ctx)
        if not ctx.fmt.has_body:
            return model_list(ctx)
        resolve(ctx)
        apply_tags(ctx)
        await reserve_rate_limit(ctx, state.limiter)
        guard_input(ctx)
        if state.inference_log is not None and state.inference_log.sampled():
            ctx.capture = []  # the relay keeps what it sends back, for the inference log
        reply = await forward(ctx, services)
        return await relay(ctx, reply, services)
    except GatewayError as err:
        return error_response(ctx, err)
    except asyncio.CancelledError:
        if live.ended():  # shutdown's grace period is over and this answer has not begun
            return error_response(ctx, shutting_down_error())
        ctx.status, ctx.error_code = 499, "client_disconnected"
        ctx.usage_complete = False  # a stream cut short: usage seen so far is partial
        raise
    except Exception:
        log.exception("request failed", request_id=ctx.request_id, api=surface.name)
        return error_response(ctx, GatewayError(
            500, "internal_error", f"sidegate could not handle this request (request id {ctx.request_id})"))
    finally:
        state.in_flight -= 1
        live.leave(task)
        record(state, ctx)
