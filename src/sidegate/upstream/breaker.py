"""Circuit breakers: a destination that keeps failing is skipped for a cool-down.

One breaker per (provider, model) destination, kept across policy reloads. After `failures`
consecutive failed attempts (the model service's `circuit_breaker` settings) the breaker opens:
the destination is skipped, and the skip recorded, until `cooldown_s` has passed; then one
request is let through (half-open). Its success closes the breaker, its failure opens it for
another cool-down; a probe that never reports (its caller went away) frees the next probe one
cool-down later.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

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
