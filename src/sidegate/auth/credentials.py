"""Reading a caller's sidegate credential from a request (DESIGN §2, first match wins).

A request carries at most one value of each credential header (and of `?key=`): a header sent twice
is ambiguous, even with the same value twice, because a proxy or client that appends a header may
have meant either. Different credential headers may be sent together (a `credentials: passthrough`
caller names itself with `X-Sidegate-Token` and sends its provider credential in `Authorization`);
`authenticate` refuses them only when they name two different sidegate keys.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from multidict import MultiMapping

from sidegate.errors import GatewayError

# Headers that carry a credential of some kind. None of them is ever forwarded upstream as is:
# the provider's own credential replaces them, or, for `credentials: passthrough` providers, the
# caller's provider credential (the ones below that did not authenticate the caller to sidegate).
SIDEGATE_HEADERS = ("x-sidegate-token", "x-databricks-ai-gateway-token")
PROVIDER_CREDENTIAL_HEADERS = ("authorization", "x-api-key", "x-goog-api-key")
CREDENTIAL_HEADERS = frozenset(SIDEGATE_HEADERS + PROVIDER_CREDENTIAL_HEADERS)
QUERY_KEY = "key"
_PRECEDENCE = SIDEGATE_HEADERS + PROVIDER_CREDENTIAL_HEADERS  # first match wins


@dataclass(frozen=True, slots=True)
class Presented:
    token: str
    source: str  # lower-case header name, or "?key"


def ambiguous(message: str) -> GatewayError:
    return GatewayError(401, "ambiguous_credentials", message + "; send one sidegate credential")


def _from_authorization(value: str) -> str | None:
    scheme, _, rest = value.strip().partition(" ")
    scheme = scheme.lower()
    rest = rest.strip()
    if scheme == "bearer" and rest:
        return rest
    if scheme == "basic" and rest:
        try:
            decoded = base64.b64decode(rest, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        _user, sep, password = decoded.partition(":")
        return password if sep and password else None
    return None


def _repeated(where: str, values: list[str]) -> GatewayError:
    return ambiguous(f"{where} is sent {len(values)} times")


def presented_credentials(headers: MultiMapping[str], query: MultiMapping[str]) -> list[Presented]:
    """Every credential the request carries, in precedence order: the first is the one that counts.
    Raises GatewayError (401 `ambiguous_credentials`) when one header, or `?key=`, comes twice."""
    found: list[Presented] = []
    for name in _PRECEDENCE:  # on the hot path: kept to one lookup per name
        values = headers.getall(name, None)
        if values is None:
            continue
        if len(values) > 1:
            raise _repeated(f"the {name} header", values)
        token = _from_authorization(values[0]) if name == "authorization" else values[0].strip()
        if token:
            found.append(Presented(token, name))
    if query:
        keys = query.getall(QUERY_KEY, None)
        if keys is not None:
            if len(keys) > 1:
                raise _repeated("the ?key= parameter", keys)
            if keys[0]:
                found.append(Presented(keys[0], "?key"))
    return found


def hash_key(token: str) -> str:
    """The form in which policy files store a key."""
    return "sha256:" + hashlib.sha256(token.encode("utf-8")).hexdigest()


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()
