"""The resolve stage: which model service a request names, and whether its caller may use it."""

from __future__ import annotations

from sidegate.context import RequestContext
from sidegate.errors import GatewayError


def resolve(ctx: RequestContext) -> None:
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
