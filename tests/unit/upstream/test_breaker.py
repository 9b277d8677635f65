"""The circuit breakers on their own (`sidegate.upstream.breaker`), on an injected clock: consecutive
failures open a destination's breaker, one half-open probe after the cool-down, success closes it.
The same breakers inside the real app (skipped destinations, fallbacks, streams cut, 503 when all are
open): tests/e2e/test_breaker_e2e.py."""

from sidegate.upstream.breaker import Breakers

KEY = ("openai", "gpt-5")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_consecutive_failures_and_probes_after_cooldown():
    clock = Clock()
    breakers = Breakers(clock=clock)
    for _ in range(2):
        breakers.failure(KEY, 3, 10)
        assert breakers.allow(KEY)
    breakers.failure(KEY, 3, 10)
    assert not breakers.allow(KEY) and breakers.is_open(KEY)
    clock.now += 9.9
    assert not breakers.allow(KEY)
    clock.now += 0.2
    assert breakers.allow(KEY)  # the half-open probe
    assert not breakers.allow(KEY)  # only one probe at a time
    breakers.failure(KEY, 3, 10)  # probe failed: another cool-down
    assert not breakers.allow(KEY)
    clock.now += 10.1
    assert breakers.allow(KEY)
    breakers.success(KEY)
    assert breakers.allow(KEY) and breakers.allow(KEY) and not breakers.is_open(KEY)


def test_success_resets_the_count():
    breakers = Breakers(clock=Clock())
    breakers.failure(KEY, 3, 10)
    breakers.success(KEY)
    breakers.failure(KEY, 3, 10)
    assert breakers.allow(KEY)
    assert breakers.allow(("other", "m"))
