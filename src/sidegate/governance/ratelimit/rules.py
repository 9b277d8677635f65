"""Rate-limit rules compiled from the policy: which buckets a request of a principal to a model
service must fit (DESIGN §4).

    service            one bucket per model service, shared by every caller (rule.model required)
    user_default       one bucket per principal
    user, service_principal
                       the named principal's own bucket; for that principal it replaces the
                       user_default and user_group limits of the same unit (requests or tokens)
    user_group         one bucket shared by the group's members; a member of several limited groups
                       is refused only when none of its groups has room (the first with room pays)
    request_tag        any caller whose request carries the tag (and the value, if the rule names
                       one); without a value, one bucket per distinct value
    model: NAME|GLOB   the rule applies to matching model services only, with a bucket per service;
                       without it the rule spans every service with one bucket

A rule with both requests_per_minute and tokens_per_minute is two buckets; every bucket that
applies must have room (the stricter wins). Rules with the same selector are merged, keeping the
stricter limit of each unit. Bucket keys are derived from the selector only (not the limits or
the rule's position), so they are the same in every replica and survive a policy reload.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sidegate.auth.principal import PrincipalInfo
from sidegate.policy.model import RateLimit

REQUESTS, TOKENS = "requests", "tokens"


def escape(part: str) -> str:
    """A key component that cannot contain the separator."""
    return part.replace("%", "%25").replace("|", "%7C")


@dataclass(frozen=True, slots=True)
class Limit:
    """One bucket of a rule, for one unit. For a per-value tag bucket `key` is the prefix its
    (escaped) tag value completes and `tag` names the tag; otherwise `tag` is None."""

    key: str
    limit: int
    tokens: bool
    label: str
    tag: str | None = None
    # derived once: the unit, and the x-ratelimit-* response header names and limit this bucket gives
    unit: str = field(init=False, compare=False)
    limit_header: str = field(init=False, compare=False, repr=False)
    remaining_header: str = field(init=False, compare=False, repr=False)
    reset_header: str = field(init=False, compare=False, repr=False)
    limit_text: str = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        unit = TOKENS if self.tokens else REQUESTS
        object.__setattr__(self, "unit", unit)
        object.__setattr__(self, "limit_header", f"x-ratelimit-limit-{unit}")
        object.__setattr__(self, "remaining_header", f"x-ratelimit-remaining-{unit}")
        object.__setattr__(self, "reset_header", f"x-ratelimit-reset-{unit}")
        object.__setattr__(self, "limit_text", str(self.limit))

    def describe(self) -> str:
        return f"{self.label}: {self.limit} {self.unit} per minute"


@dataclass(frozen=True, slots=True)
class TagLimit:
    """A request_tag bucket: applies when the request's `tag` is present (and equals `value`)."""

    tag: str
    value: str | None
    limit: Limit


@dataclass(frozen=True, slots=True)
class Rule:
    kind: str
    model: str | None
    principal: str | None
    tag: str | None
    value: str | None
    limits: tuple[tuple[str, int, str], ...]  # (unit, limit, label), stricter kept on merge

    def applies_to(self, service: str, asked: str | None) -> bool:
        if self.model is None:
            return True
        return fnmatch.fnmatchcase(service, self.model) or (
            asked is not None and fnmatch.fnmatchcase(asked, self.model))


def _everyone(rule: Rule, principal: PrincipalInfo) -> str | None:
    return ""


def _each_principal(rule: Rule, principal: PrincipalInfo) -> str | None:
    return principal.name


def _named_principal(rule: Rule, principal: PrincipalInfo) -> str | None:
    return principal.name if rule.principal == principal.name else None


def _member_group(rule: Rule, principal: PrincipalInfo) -> str | None:
    return rule.principal if rule.principal in principal.groups else None


@dataclass(frozen=True, slots=True)
class Kind:
    """What a rule key means. `role`: "always" (must fit), "default" and "group" (replaced, unit by
    unit, by the principal's "own" rule), "own", "tag". `subject`: what the bucket is about for a
    principal (None: the rule is not about this principal). `named`: the policy field that names
    the rule's subject in messages."""

    role: str
    subject: Callable[[Rule, PrincipalInfo], str | None]
    named: Callable[[RateLimit], str]


KINDS: dict[str, Kind] = {
    "service": Kind("always", _everyone, lambda r: f" {r.model}"),
    "user_default": Kind("default", _each_principal, lambda r: ""),
    "user": Kind("own", _named_principal, lambda r: f" {r.principal}"),
    "service_principal": Kind("own", _named_principal, lambda r: f" {r.principal}"),
    "user_group": Kind("group", _member_group, lambda r: f" {r.principal}"),
    "request_tag": Kind("tag", _everyone, lambda r: f" {r.tag}" + (f"={r.value}" if r.value is not None else "")),
}


def _describe(rule: RateLimit) -> str:
    """The rule's name, else e.g. "user_group ml-platform (model gpt-5)"."""
    if rule.name:
        return rule.name
    scope = f" (model {rule.model})" if rule.model and rule.key != "service" else ""
    return f"{rule.key}{KINDS[rule.key].named(rule)}{scope}"


def compile_rules(rules: Iterable[RateLimit]) -> tuple[Rule, ...]:
    """Policy rules merged by selector (stricter limit per unit wins), in first-written order."""
    merged: dict[tuple[str | None, ...], dict[str, tuple[int, str]]] = {}
    for rule in rules:
        units = merged.setdefault((rule.key, rule.model, rule.principal, rule.tag, rule.value), {})
        for unit, limit in ((REQUESTS, rule.requests_per_minute), (TOKENS, rule.tokens_per_minute)):
            if limit is not None and (unit not in units or limit < units[unit][0]):
                units[unit] = (limit, _describe(rule))
    compiled = []
    for (kind, model, principal, tag, value), units in merged.items():
        limits = tuple((unit, limit, label) for unit, (limit, label) in sorted(units.items()))
        assert kind is not None
        compiled.append(Rule(kind, model, principal, tag, value, limits))
    return tuple(compiled)


@dataclass(frozen=True, slots=True)
class Plan:
    """The buckets a (principal, service) pair's requests must fit, before tags are known."""

    mandatory: tuple[Limit, ...]
    tags: tuple[TagLimit, ...]
    groups: tuple[tuple[Limit, ...], ...]
    empty: bool = field(init=False)
    # only mandatory buckets (no tag rule, no group): the store call's keys, bounds and units, ready made
    fixed: bool = field(init=False)
    keys: tuple[str, ...] = field(init=False, repr=False)
    bounds: tuple[int, ...] = field(init=False, repr=False)
    units: tuple[bool, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "empty", not (self.mandatory or self.tags or self.groups))
        object.__setattr__(self, "fixed", not (self.tags or self.groups))
        object.__setattr__(self, "keys", tuple(limit.key for limit in self.mandatory))
        object.__setattr__(self, "bounds", tuple(limit.limit for limit in self.mandatory))
        object.__setattr__(self, "units", tuple(limit.tokens for limit in self.mandatory))


def _key(prefix: str, rule: Rule, service: str, unit: str, subject: str) -> str:
    scope = f"{escape(rule.model)}|{escape(service)}" if rule.model is not None else "*|*"
    return f"{prefix}{rule.kind}|{unit[0]}|{scope}|{subject}"


def plan_for(rules: tuple[Rule, ...], prefix: str, principal: PrincipalInfo, service: str,
             asked: str | None) -> Plan:
    applicable = [r for r in rules if r.applies_to(service, asked)]
    replaced = {unit for r in applicable if KINDS[r.kind].role == "own" and KINDS[r.kind].subject(r, principal)
                for unit, _, _ in r.limits}
    mandatory: list[Limit] = []
    tags: list[TagLimit] = []
    groups: dict[str, list[Limit]] = {}
    for rule in applicable:
        role = KINDS[rule.kind].role
        subject = KINDS[rule.kind].subject(rule, principal)
        if subject is None:
            continue
        for unit, limit, label in rule.limits:
            if role in ("default", "group") and unit in replaced:
                continue
            tokens = unit == TOKENS
            if role == "tag":
                assert rule.tag is not None
                mark = "=" if rule.value is not None else "~"
                key = _key(prefix, rule, service, unit, f"{escape(rule.tag)}|{mark}")
                if rule.value is not None:
                    tags.append(TagLimit(rule.tag, rule.value, Limit(key + escape(rule.value), limit, tokens, label)))
                else:
                    tags.append(TagLimit(rule.tag, None, Limit(key, limit, tokens, label, tag=rule.tag)))
                continue
            bucket = Limit(_key(prefix, rule, service, unit, escape(subject)), limit, tokens, label)
            if role == "group":
                groups.setdefault(subject, []).append(bucket)
            else:
                mandatory.append(bucket)
    return Plan(tuple(mandatory), tuple(tags), tuple(tuple(g) for g in groups.values()))
