"""Guardrails (DESIGN §4): the policy's `guardrails:` compiled once per policy load, the set that
applies to a request, and the checks of request bodies, JSON answers and (through `stream_guard`)
streamed answers.

What each action does and what `match:` selects is told in `compiled`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sidegate.auth.principal import PrincipalInfo
from sidegate.governance.guardrails.compiled import CompiledGuardrail, Decisions, GuardrailBlocked, PhasePlan, Plan
from sidegate.governance.guardrails.detectors import mask_text
from sidegate.governance.guardrails.stream_guard import FORMATS, StreamGuard
from sidegate.governance.guardrails.texts import Ref, input_texts, output_texts
from sidegate.policy.model import PolicyModel

_CACHE_LIMIT = 4096


class Guardrails:
    """The compiled `guardrails:` of a policy."""

    __slots__ = ("_by_subset", "_cache", "_tag_keys", "guardrails")

    def __init__(self, guardrails: Sequence[CompiledGuardrail]) -> None:
        self.guardrails = tuple(guardrails)
        self._tag_keys = tuple(dict.fromkeys(k for g in self.guardrails for k, _ in g.tags))
        self._cache: dict[tuple[Any, ...], Plan | None] = {}
        self._by_subset: dict[tuple[int, ...], Plan] = {}
        unconditional = tuple(i for i, g in enumerate(self.guardrails)
                              if not (g.models or g.principals or g.groups or g.tags))
        if unconditional:  # the set most requests get, compiled at load rather than on the first request
            self._by_subset[unconditional] = Plan([self.guardrails[i] for i in unconditional])

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
                    plan = self._by_subset[subset] = Plan([self.guardrails[i] for i in subset])
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[key] = plan
        return ActiveGuardrails(plan) if plan is not None else None


class ActiveGuardrails(Decisions):
    """The guardrails of one request, and what they found (`results`)."""

    __slots__ = ()

    def _check(self, phase: PhasePlan | None, name: str, refs: list[Ref]) -> bool:
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
        if self.plan.output is None or api not in FORMATS:
            return None
        return StreamGuard(self, self.plan.output, api, request_id)
