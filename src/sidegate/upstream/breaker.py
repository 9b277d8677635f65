"""Circuit breakers: a destination that keeps failing is skipped for a cool-down.

One breaker per (provider, model) destination, kept across policy reloads. After `failures`
consecutive failed attempts (the model service's `circuit_breaker` settings) the breaker opens:
the destination is skipped, and the skip recorded, until `cooldown_s` has passed; then one
request is let through (half-open). Its success closes the breaker, its failure opens it for
another cool-down; a probe that never reports (its caller went away) frees the next probe one
cool-down later.

The attempt being made (`ctx.target`, `ctx.destination_model`) reports to its breaker through
`destination_failed` and `destination_succeeded`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sidegate.context import RequestContext

Clock = Callable[[], float]


@dataclass(slots=True)
class _State:
    failures: int = 0
    open: bool = False
    open_until: float = 0.0
    cooldown_s: float = 0.0


class Breakers:
    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._states: dict[tuple[str, str], _State] = {}

    def allow(self, key: tuple[str, str]) -> bool:
        """Whether an attempt may go to this destination now."""
        state = self._states.get(key)
        if state is None or not state.open:
            return True
        now = self._clock()
        if now < state.open_until:
            return False
        state.open_until = now + state.cooldown_s  # half-open: this one attempt decides
        return True

    def success(self, key: tuple[str, str]) -> None:
        if key in self._states:
            del self._states[key]

    def failure(self, key: tuple[str, str], threshold: int, cooldown_s: float) -> None:
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = _State()
        state.failures += 1
        if state.failures >= threshold:
            state.open = True
            state.cooldown_s = cooldown_s
            state.open_until = self._clock() + cooldown_s

    def is_open(self, key: tuple[str, str]) -> bool:
        state = self._states.get(key)
        return state is not None and state.open and self._clock() < state.open_until

    def destination_failed(self, ctx: RequestContext) -> None:
        """Count a failed attempt at the current destination (or a stream it broke off) against its breaker."""
        service, target, model = ctx.service, ctx.target, ctx.destination_model
        if service is not None and target is not None and model is not None:
            self.failure((target.provider.name, model), service.breaker_failures, service.breaker_cooldown_s)

    def destination_succeeded(self, ctx: RequestContext) -> None:
        """The current destination answered well: its breaker closes."""
        if ctx.target is not None and ctx.destination_model is not None:
            self.success((ctx.target.provider.name, ctx.destination_model))
