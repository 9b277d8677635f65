"""What guardrails are made of: one guardrail compiled from the policy, the guardrails of one phase
with their scanners, and what one request's guardrails found and decided (`Decisions`, which the
checks of whole bodies in `checks` and of streams in `stream_guard` both record into).

Actions: `block` refuses with HTTP 400 (`input_guardrail_triggered` / `output_guardrail_triggered`)
naming the guardrail and the category, never the matched text; `mask` replaces each finding with its
token (`<EMAIL_ADDRESS>`, `<SECRET>`, … see `detectors`) and lets the text through; `flag` only
records. Every trigger is recorded in `results` as {"guardrail", "phase", "action", "category",
"count"}, one entry per guardrail, phase and category.

`match:` narrows a guardrail to some requests; every key given must match: `models` (service names
or fnmatch patterns), `principals` or `groups` (the caller is one of the principals or in one of
the groups; when both are given, either suffices), `tags` (each key with that value; "*" for any
value).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sidegate.auth.principal import PrincipalInfo
from sidegate.errors import GatewayError
from sidegate.governance.guardrails.detectors import Finding, Scanner, detectors_of
from sidegate.governance.guardrails.patterns import Detector
from sidegate.policy.model import Guardrail

PHASES = ("input", "output")


class GuardrailBlocked(GatewayError):
    """A guardrail with action block found something. The message never contains the matched text."""

    __slots__ = ("category", "guardrail", "phase")

    def __init__(self, phase: str, guardrail: str, category: str) -> None:
        what = "request" if phase == "input" else "response"
        super().__init__(400, f"{phase}_guardrail_triggered",
                         f"the {what} was blocked by guardrail {guardrail!r}: {category} detected")
        self.phase = phase
        self.guardrail = guardrail
        self.category = category


@dataclass(frozen=True, slots=True)
class CompiledGuardrail:
    name: str
    phases: frozenset[str]
    action: str
    detectors: tuple[Detector, ...]
    models: tuple[str, ...]
    principals: frozenset[str]
    groups: frozenset[str]
    tags: tuple[tuple[str, str], ...]

    @classmethod
    def build(cls, spec: Guardrail) -> CompiledGuardrail:
        phases = frozenset(PHASES) if spec.phase == "both" else frozenset({spec.phase})
        m = spec.match
        return cls(
            name=spec.name, phases=phases, action=spec.action,
            detectors=tuple(detectors_of(spec.detect)),
            models=tuple(m.models) if m else (), principals=frozenset(m.principals) if m else frozenset(),
            groups=frozenset(m.groups) if m else frozenset(), tags=tuple(m.tags.items()) if m else (),
        )

    def applies(self, principal: PrincipalInfo, service: str, tags: Mapping[str, str]) -> bool:
        if self.models and not any(service == p or fnmatch.fnmatchcase(service, p) for p in self.models):
            return False
        if (self.principals or self.groups) and not (
                principal.name in self.principals or not self.groups.isdisjoint(principal.groups)):
            return False
        return all(k in tags and (v == "*" or tags[k] == v) for k, v in self.tags)


class PhasePlan:
    """The guardrails of one phase that apply to a kind of request, and their scanners."""

    __slots__ = ("_stream_scanner", "guardrails", "scanner")

    def __init__(self, guardrails: Sequence[CompiledGuardrail], streams: bool) -> None:
        self.guardrails = tuple(guardrails)
        owned = [(i, g.detectors) for i, g in enumerate(self.guardrails)]
        self.scanner = Scanner(owned)
        self._stream_scanner = Scanner(owned, stream=True) if streams else None

    @property
    def stream_scanner(self) -> Scanner:
        assert self._stream_scanner is not None, "only output guardrails scan streams"
        return self._stream_scanner


class Plan:
    """The guardrails that apply to a kind of request, by phase (None: none in that phase)."""

    __slots__ = ("input", "output")

    def __init__(self, applicable: Sequence[CompiledGuardrail]) -> None:
        ins = [g for g in applicable if "input" in g.phases]
        outs = [g for g in applicable if "output" in g.phases]
        self.input = PhasePlan(ins, streams=False) if ins else None
        self.output = PhasePlan(outs, streams=True) if outs else None


class Decisions:
    """The guardrails of one request (`plan`), what they found (`results`) and what to do about each
    finding; `checks.ActiveGuardrails` adds the checks of bodies and opens stream guards."""

    __slots__ = ("_index", "has_input", "has_output", "plan", "results")

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.has_input = plan.input is not None
        self.has_output = plan.output is not None
        self.results: list[dict[str, Any]] = []
        self._index: dict[tuple[str, str, str], dict[str, Any]] = {}

    def record(self, guardrail: CompiledGuardrail, phase: str, category: str, count: int = 1) -> None:
        key = (guardrail.name, phase, category)
        entry = self._index.get(key)
        if entry is None:
            entry = self._index[key] = {"guardrail": guardrail.name, "phase": phase, "action": guardrail.action,
                                        "category": category, "count": 0}
            self.results.append(entry)
        entry["count"] += count

    def decide(self, phase: PhasePlan, name: str, findings: Sequence[Finding]) -> tuple[list[Finding],
                                                                                        GuardrailBlocked | None]:
        """Record findings; the ones to mask and the first block, if any."""
        masked: list[Finding] = []
        blocked: GuardrailBlocked | None = None
        for f in findings:
            mask = False
            for owner in f.alt.owners:
                g = phase.guardrails[owner]
                self.record(g, name, f.alt.category)
                if g.action == "block":
                    blocked = blocked or GuardrailBlocked(name, g.name, f.alt.category)
                elif g.action == "mask":
                    mask = True
            if mask:
                masked.append(f)
        return masked, blocked
