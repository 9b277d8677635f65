"""The authenticate stage: who is calling (DESIGN §2)."""

from __future__ import annotations

from sidegate.auth.credentials import presented_credential
from sidegate.context import RequestContext
from sidegate.errors import GatewayError


def authenticate(ctx: RequestContext) -> None:
    request = ctx.request
    policy = ctx.policy
    if policy.auth_none:
        ctx.principal = policy.default_principal
        return
    presented = presented_credential(request.headers, request.query)
    if presented is None:
        raise GatewayError(
            401, "missing_credentials",
            "no credential: send a sidegate key as 'Authorization: Bearer <key>', 'x-api-key', "
            "'x-goog-api-key' or 'X-Sidegate-Token'",
        )
    principal = policy.principal_for_key(presented.token)
    if principal is None:
        raise GatewayError(401, "invalid_credentials", "the credential presented is not a valid sidegate key")
    ctx.principal = principal
    ctx.credential_source = presented.source
