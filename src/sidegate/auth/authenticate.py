"""The authenticate stage: who is calling (DESIGN §2)."""

from __future__ import annotations

from sidegate.auth.credentials import ambiguous, presented_credentials
from sidegate.context import RequestContext
from sidegate.errors import GatewayError


def authenticate(ctx: RequestContext) -> None:
    request = ctx.request
    policy = ctx.policy
    if policy.auth_none:
        ctx.principal = policy.default_principal
        return
    presented = presented_credentials(request.headers, request.query)
    if not presented:
        raise GatewayError(
            401, "missing_credentials",
            "no credential: send a sidegate key as 'Authorization: Bearer <key>', 'x-api-key', "
            "'x-goog-api-key' or 'X-Sidegate-Token'",
        )
    first = presented[0]
    principal = policy.principal_for_key(first.token)
    if principal is None:
        raise GatewayError(401, "invalid_credentials", "the credential presented is not a valid sidegate key")
    for other in presented[1:]:  # a provider credential beside it is fine; a second sidegate key is not
        if other.token != first.token and policy.is_key(other.token):
            raise ambiguous(f"{first.source} and {other.source} carry two different sidegate keys")
    ctx.principal = principal
    ctx.credential_source = first.source
