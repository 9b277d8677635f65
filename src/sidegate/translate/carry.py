"""Carrying a provider's opaque reasoning token through a format that has no slot for it.

Anthropic signs each thinking block and Gemini signs thoughts and function calls; the provider
must see the token again in the next turn. When the caller speaks another format, the token rides
in the caller's nearest opaque field (a Responses reasoning item's `encrypted_content`, a Gemini
`thoughtSignature`, an Anthropic `signature`) tagged with the family that minted it, so that it is
given back only to that family and dropped elsewhere.
"""

from __future__ import annotations

import base64
import binascii

_TAG = "sg1:"


def carry(origin: str, token: str, redacted: bool = False) -> str:
    return f"{_TAG}{origin}{'!' if redacted else ''}:{token}"


def uncarry(value: str) -> tuple[str, str, bool] | None:
    """(origin, token, redacted) for a carried token, None for a provider's own token."""
    if not value.startswith(_TAG):
        return None
    origin, sep, token = value[len(_TAG):].partition(":")
    if not sep:
        return None
    redacted = origin.endswith("!")
    return origin.rstrip("!"), token, redacted


def carry_b64(origin: str, token: str, redacted: bool = False) -> str:
    """The same, for slots typed as base64 bytes (Gemini's thoughtSignature)."""
    return base64.b64encode(carry(origin, token, redacted).encode()).decode()


def uncarry_b64(value: str) -> tuple[str, str, bool] | None:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    if not raw.startswith(_TAG.encode()):
        return None
    try:
        return uncarry(raw.decode())
    except UnicodeDecodeError:
        return None


def own_token(origin: str | None, token: str | None, family: str) -> str | None:
    """The token to send to a `family` destination: only one it minted itself."""
    return token if token and origin == family else None


def outgoing(origin: str | None, token: str | None, family: str) -> str | None:
    """The token to show a `family` caller: its own as is, another family's carried."""
    if not token:
        return None
    return token if origin in (family, None) else carry(origin or "unknown", token)
