"""A validated policy turned into the lookup structures the request path uses.

Everything that can be computed once per policy load is computed here, so that a request does
dictionary lookups only. A reload builds a new CompiledPolicy and swaps it in whole.
"""

from __future__ import annotations

import bisect
import fnmatch
import random
import re
from dataclasses import dataclass
from itertools import accumulate

from sidegate.auth.credentials import digest
from sidegate.auth.principal import PrincipalInfo
from sidegate.governance.guardrails.checks import Guardrails
from sidegate.policy.model import Destination, ModelService, PolicyModel
from sidegate.upstream.providers import ProviderRuntime

_PATTERN_CHARS = re.compile(r"[*?\[]")
_CACHE_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class Target:
    """A destination of a model service: a provider and the model to ask it for."""

    provider: ProviderRuntime
    model: str | None  # None: the name the caller asked for

    def model_for(self, asked: str) -> str:
        return self.model or asked


@dataclass(frozen=True, slots=True)
class Service:
    name: str
    targets: tuple[Target, ...]
    cumulative_weights: tuple[float, ...]
    fallbacks: tuple[Target, ...]
    timeout_s: float  # first byte; a whole non-streamed answer
    idle_timeout_s: float  # between two chunks of a stream
    connect_timeout_s: float  # opening a connection to a destination
    breaker_failures: int
    breaker_cooldown_s: float
    allowed_principals: frozenset[str] | None
    allowed_groups: frozenset[str]

    def choose(self, rng: random.Random = random._inst) -> Target:
        """A destination at random, by weight (the traffic split)."""
        if len(self.targets) == 1:
            return self.targets[0]
        point = rng.random() * self.cumulative_weights[-1]
        return self.targets[bisect.bisect_right(self.cumulative_weights, point)]

    def allows(self, principal: PrincipalInfo) -> bool:
        if self.allowed_principals is None:
            return True
        return principal.name in self.allowed_principals or not self.allowed_groups.isdisjoint(principal.groups)


def _target(dest: Destination, providers: dict[str, ProviderRuntime]) -> Target:
    return Target(providers[dest.provider], dest.model)


def _service(name: str, spec: ModelService, providers: dict[str, ProviderRuntime]) -> Service:
    live = [d for d in spec.destinations if d.weight > 0]
    perms = spec.permissions
    return Service(
        name=name,
        targets=tuple(_target(d, providers) for d in live),
        cumulative_weights=tuple(accumulate(d.weight for d in live)),
        fallbacks=tuple(_target(d, providers) for d in spec.fallbacks),
        timeout_s=spec.timeout_s,
        idle_timeout_s=spec.idle_timeout_s,
        connect_timeout_s=spec.connect_timeout_s,
        breaker_failures=spec.circuit_breaker.failures,
        breaker_cooldown_s=spec.circuit_breaker.cooldown_s,
        allowed_principals=None if perms is None else frozenset(perms.principals),
        allowed_groups=frozenset() if perms is None else frozenset(perms.groups),
    )


def _specificity(pattern: str) -> int:
    return len(_PATTERN_CHARS.sub("", pattern))


_KNOWN_KEYS = 4096


class CompiledPolicy:
    def __init__(self, model: PolicyModel, digest_: str = "") -> None:
        self.model = model
        self.digest = digest_
        self.prefix = model.server.path_prefix
        self.max_request_bytes = model.server.max_request_bytes
        self.principals = {
            name: PrincipalInfo(name, p.type, frozenset(p.groups)) for name, p in model.principals.items()
        }
        self.keys: dict[bytes, str] = {
            bytes.fromhex(key.removeprefix("sha256:")): name
            for name, p in model.principals.items()
            for key in p.keys
        }
        self._known: dict[str, PrincipalInfo] = {}  # valid keys seen, so each is hashed once per policy
        self.auth_none = model.auth.mode == "none"
        self.default_principal = (
            self.principals.get(model.auth.default_principal or "")
            or PrincipalInfo(model.auth.default_principal or "anonymous", "user", frozenset())
        )
        self.providers = {name: ProviderRuntime.build(name, p) for name, p in model.providers.items()}
        self.exact: dict[str, Service] = {}
        patterns: list[tuple[int, int, str, Service]] = []
        for order, (name, spec) in enumerate(model.models.items()):
            service = _service(name, spec, self.providers)
            if _PATTERN_CHARS.search(name):
                patterns.append((-_specificity(name), order, name, service))
            else:
                self.exact[name] = service
        # The most specific pattern (most literal characters) wins; ties go to the first written.
        self.patterns = [(name, service) for _, _, name, service in sorted(patterns)]
        self._resolved: dict[str, Service | None] = {}
        self.tags_stamp = dict(model.tags.stamp)
        self.tags_require = tuple(model.tags.require)
        self.tags_forward = model.tags.forward_upstream
        self.guardrails = Guardrails.from_policy(model)

    def resolve(self, asked: str) -> Service | None:
        """The model service for a requested model name: an exact name, else the best pattern."""
        service = self.exact.get(asked)
        if service is not None:
            return service
        try:
            return self._resolved[asked]
        except KeyError:
            pass
        found = next((s for name, s in self.patterns if fnmatch.fnmatchcase(asked, name)), None)
        if len(self._resolved) >= _CACHE_LIMIT:
            self._resolved.clear()
        self._resolved[asked] = found
        return found

    def principal_for_key(self, token: str) -> PrincipalInfo | None:
        principal = self._known.get(token)
        if principal is not None:
            return principal
        name = self.keys.get(digest(token))
        principal = self.principals.get(name) if name else None
        if principal is not None and len(self._known) < _KNOWN_KEYS:  # bounded: only valid keys are kept
            self._known[token] = principal
        return principal

    def is_key(self, token: str) -> bool:
        """Whether `token` is any principal's sidegate key."""
        return token in self._known or digest(token) in self.keys

    def visible_models(self, principal: PrincipalInfo) -> list[str]:
        """Names of the model services this principal may use (patterns included as written)."""
        names = [n for n, s in self.exact.items() if s.allows(principal)]
        names += [n for n, s in self.patterns if s.allows(principal)]
        return names
