"""Guardrails (DESIGN §4): the policy's `guardrails:` compiled once per policy load, the set that
applies to a request, and the checks of request bodies, JSON answers and (through `stream_guard`)
streamed answers.

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
from typing import TYPE_CHECKING, Any

from sidegate.errors import GatewayError
from sidegate.governance.guardrails.detectors import Finding, Scanner, detectors_of, mask_text
from sidegate.governance.guardrails.patterns import Detector
from sidegate.governance.guardrails.texts import Ref, input_texts, output_texts
from sidegate.policy.model import Guardrail, PolicyModel

if TYPE_CHECKING:
    from sidegate.governance.guardrails.stream_guard import StreamGuard
    from sidegate.policy.compiled import PrincipalInfo

_CACHE_LIMIT = 4096
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


class _PhasePlan:
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


class _Plan:
    __slots__ = ("input", "output")

    def __init__(self, applicable: Sequence[CompiledGuardrail]) -> None:
        ins = [g for g in applicable if "input" in g.phases]
        outs = [g for g in applicable if "output" in g.phases]
        self.input = _PhasePlan(ins, streams=False) if ins else None
        self.output = _PhasePlan(outs, streams=True) if outs else None


class Guardrails:
    """The compiled `guardrails:` of a policy."""

    __slots__ = ("_by_subset", "_cache", "_tag_keys", "guardrails")

    def __init__(self, guardrails: Sequence[CompiledGuardrail]) -> None:
        self.guardrails = tuple(guardrails)
        self._tag_keys = tuple(dict.fromkeys(k for g in self.guardrails for k, _ in g.tags))
        self._cache: dict[tuple[Any, ...], _Plan | None] = {}
        self._by_subset: dict[tuple[int, ...], _Plan] = {}
        unconditional = tuple(i for i, g in enumerate(self.guardrails)
                              if not (g.models or g.principals or g.groups or g.tags))
        if unconditional:  # the set most requests get, compiled at load rather than on the first request
            self._by_subset[unconditional] = _Plan([self.guardrails[i] for i in unconditional])

    @classmethod
    def from_policy(cls, model: PolicyModel) -> Guardrails | None:
        """None when the policy has no guardrails: requests then pay nothing for them."""
        if not model.guardrails:
            return None
        return cls([CompiledGuardrail.build(g) for g in model.guardrails])

    def for_request(self, principal: PrincipalInfo, service: str,
                    tags: Mapping[str, str]) -> ActiveGuardrails | None:
        """The guardrails that apply to this request, or None when none does."""
        key = (principal.name, principal.groups, service, *(tags.get(k) for k in self._tag_keys))
        try:
            plan = self._cache[key]
        except KeyError:
            subset = tuple(i for i, g in enumerate(self.guardrails) if g.applies(principal, service, tags))
            plan = None
            if subset:
                plan = self._by_subset.get(subset)
                if plan is None:
                    plan = self._by_subset[subset] = _Plan([self.guardrails[i] for i in subset])
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[key] = plan
        return ActiveGuardrails(plan) if plan is not None else None


class ActiveGuardrails:
    """The guardrails of one request, and what they found (`results`)."""

    __slots__ = ("_index", "has_input", "has_output", "plan", "results")

    def __init__(self, plan: _Plan) -> None:
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

    def decide(self, phase: _PhasePlan, name: str, findings: Sequence[Finding]) -> tuple[list[Finding],
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

    def _check(self, phase: _PhasePlan | None, name: str, refs: list[Ref]) -> bool:
        if phase is None or not refs:
            return False
        texts = [container[key] for container, key in refs]
        changed = False
        blocked: GuardrailBlocked | None = None
        for (container, key), text, findings in zip(refs, texts, phase.scanner.scan_many(texts), strict=True):
            if not findings:
                continue
            masked, block = self.decide(phase, name, findings)
            blocked = blocked or block
            if masked:
                container[key] = mask_text(text, masked)
                changed = True
        if blocked is not None:
            raise blocked
        return changed

    def check_input(self, api: str, body: dict[str, Any]) -> bool:
        """Scan every text the model will read; mask in place. True when the body changed (the
        caller serialises it again). Raises GuardrailBlocked."""
        return self._check(self.plan.input, "input", input_texts(api, body)) if self.plan.input else False

    def check_output(self, api: str, obj: dict[str, Any]) -> bool:
        """The same for a JSON answer."""
        return self._check(self.plan.output, "output", output_texts(api, obj)) if self.plan.output else False

    def stream(self, api: str, request_id: str = "") -> StreamGuard | None:
        """A guard for a streamed answer of that API format, or None when nothing scans output."""
        from sidegate.governance.guardrails.stream_guard import FORMATS, StreamGuard

        if self.plan.output is None or api not in FORMATS:
            return None
        return StreamGuard(self, self.plan.output, api, request_id)
