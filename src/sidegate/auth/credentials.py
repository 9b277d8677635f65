"""Reading a caller's sidegate credential from a request (DESIGN §2, first match wins)."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

# Headers that carry a credential of some kind. None of them is ever forwarded upstream as is:
# the provider's own credential replaces them, or, for `credentials: passthrough` providers, the
# caller's provider credential (the ones below that did not authenticate the caller to sidegate).
SIDEGATE_HEADERS = ("x-sidegate-token", "x-databricks-ai-gateway-token")
PROVIDER_CREDENTIAL_HEADERS = ("authorization", "x-api-key", "x-goog-api-key")
CREDENTIAL_HEADERS = frozenset(SIDEGATE_HEADERS + PROVIDER_CREDENTIAL_HEADERS)
QUERY_KEY = "key"


@dataclass(frozen=True, slots=True)
class Presented:
    token: str
    source: str  # lower-case header name, or "?key"


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


def presented_credential(headers: Mapping[str, str], query: Mapping[str, str]) -> Presented | None:
    for name in SIDEGATE_HEADERS:
        value = headers.get(name)
        if value:
            return Presented(value.strip(), name)
    auth = headers.get("authorization")
    if auth:
        token = _from_authorization(auth)
        if token:
            return Presented(token, "authorization")
    for name in ("x-api-key", "x-goog-api-key"):
        value = headers.get(name)
        if value:
            return Presented(value.strip(), name)
    key = query.get(QUERY_KEY)
    if key:
        return Presented(key, "?key")
    return None


def hash_key(token: str) -> str:
    """The form in which policy files store a key."""
    return "sha256:" + hashlib.sha256(token.encode("utf-8")).hexdigest()


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()
