"""The caller of a request once authenticated: a principal of the policy (DESIGN §2)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PrincipalInfo:
    """A user or a service principal (`type`), by name, with the groups it belongs to."""

    name: str
    type: str
    groups: frozenset[str]
