"""Circuit breakers through the real app: a destination failing `circuit_breaker.failures` times in
a row is skipped (recorded as `circuit_open`, nothing sent to it) until `cooldown_s` has passed;
then exactly one request probes it (half-open) while the others keep skipping it; the probe's
success closes the breaker, its failure opens it for another cool-down.

The app's breakers get a clock the test moves, so cool-downs pass without sleeping. The breakers on
their own: tests/unit/upstream/test_breaker.py."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest
from tests.support.fakes import FakeUpstream
from tests.support.fakes.fixtures.openai_wire import chat_sse
from tests.support.gateway import GatewayFactory
from tests.support.sdk_clients import claude, close_sdk_clients, oai  # noqa: F401  (fixture)

from sidegate.upstream.breaker import Breakers

HI = [{"role": "user", "content": "hi"}]
COOLDOWN_S = 30


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def setup(gateway: GatewayFactory, fake_upstream: Any, fallback: bool = True
                ) -> tuple[Any, FakeUpstream, FakeUpstream, Clock]:
    a, b = await fake_upstream("openai"), await fake_upstream("openai")
    chain = "fallbacks: [{provider: b}]" if fallback else ""
    gw = await gateway(f"""
        providers:
          a: {{kind: openai, base_url: '{a.base_url}', api_key: up}}
          b: {{kind: openai, base_url: '{b.base_url}', api_key: up}}
        models:
          gpt:
            destinations: [{{provider: a}}]
            {chain}
            circuit_breaker: {{failures: 2, cooldown_s: {COOLDOWN_S}}}
    """)
    clock = Clock()
    gw.state.breakers = Breakers(clock=clock)
    return gw, a, b, clock


async def ask(base: str) -> None:
    await oai(base).chat.completions.create(model="gpt", messages=HI)  # type: ignore[arg-type]


def routes(rows: list[dict[str, Any]]) -> list[list[tuple[str, str]]]:
    return [[(a["destination"], a["reason"]) for a in row["routing_information"]] for row in rows]


FELL_BACK = [("a", "retryable_status"), ("b", "ok")]
SKIPPED = [("a", "circuit_open"), ("b", "ok")]
DIRECT = [("a", "ok")]


async def test_opens_after_consecutive_failures_then_probes_once(gateway: GatewayFactory, fake_upstream: Any) -> None:
    gw, a, b, clock = await setup(gateway, fake_upstream)
    a.error(500)
    a.error(503)
    for _ in range(4):
        await ask(gw.base)
    assert len(a.received) == 2 and len(b.received) == 4
    assert routes(await gw.rows()) == [FELL_BACK, FELL_BACK, SKIPPED, SKIPPED]

    clock.now += COOLDOWN_S - 1
    await ask(gw.base)
    assert len(a.received) == 2, "still cooling down"

    clock.now += 1
    gate = asyncio.Event()
    a.reply(gate=gate)  # the probe: held at the destination until released
    probe = asyncio.create_task(ask(gw.base))
    while len(a.received) < 3:
        await asyncio.sleep(0.01)
    await ask(gw.base)  # while the probe is out, others still skip
    assert len(a.received) == 3
    gate.set()
    await probe
    await ask(gw.base)  # the probe succeeded: closed again
    assert len(a.received) == 4
    assert routes(await gw.rows())[4:] == [SKIPPED, SKIPPED, DIRECT, DIRECT]


async def test_a_failed_probe_opens_it_for_another_cooldown(gateway: GatewayFactory, fake_upstream: Any) -> None:
    gw, a, _b, clock = await setup(gateway, fake_upstream)
    a.error(500)
    a.error(500)
    await ask(gw.base)
    await ask(gw.base)
    clock.now += COOLDOWN_S
    a.error(529)  # the probe fails
    await ask(gw.base)
    await ask(gw.base)
    clock.now += COOLDOWN_S - 1
    await ask(gw.base)
    clock.now += 1
    await ask(gw.base)  # the next probe, answered
    assert len(a.received) == 4
    assert routes(await gw.rows()) == [FELL_BACK, FELL_BACK, FELL_BACK, SKIPPED, SKIPPED, DIRECT]


async def test_failures_must_be_consecutive(gateway: GatewayFactory, fake_upstream: Any) -> None:
    gw, a, b, _clock = await setup(gateway, fake_upstream)
    a.error(500)
    a.reply()  # a success in between resets the count
    a.error(500)
    a.reply()
    for _ in range(4):
        await ask(gw.base)
    assert len(a.received) == 4 and len(b.received) == 2
    assert routes(await gw.rows()) == [FELL_BACK, DIRECT, FELL_BACK, DIRECT]


async def test_timeouts_and_resets_count_as_failures(gateway: GatewayFactory, fake_upstream: Any) -> None:
    gw, a, _b, _clock = await setup(gateway, fake_upstream)
    a.reply(disconnect=True, reset=True)
    a.reply(disconnect=True)
    for _ in range(3):
        await ask(gw.base)
    assert len(a.received) == 2
    assert routes(await gw.rows())[2] == SKIPPED


async def test_with_every_destination_open_the_caller_gets_a_503(gateway: GatewayFactory, fake_upstream: Any) -> None:
    gw, a, _b, _clock = await setup(gateway, fake_upstream, fallback=False)
    a.error(500)
    a.error(500)
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            await ask(gw.base)
    with pytest.raises(openai.APIStatusError) as caught:
        await ask(gw.base)
    assert caught.value.status_code == 503 and "retry later" in caught.value.message
    assert len(a.received) == 2
    row = await gw.row()
    assert (row["status_code"], row["error_code"]) == (503, "destinations_unavailable")
    assert routes([row]) == [[("a", "circuit_open")]]


async def test_a_token_count_answered_locally_leaves_the_breaker_alone(
        gateway: GatewayFactory, fake_upstream: Any) -> None:
    """An Anthropic count_tokens on an OpenAI provider is estimated by sidegate: it is answered while
    the breaker is open, and it neither takes the half-open probe nor closes the breaker."""
    gw, a, _b, clock = await setup(gateway, fake_upstream)
    a.error(500)
    a.error(500)
    await ask(gw.base)
    await ask(gw.base)
    count = await claude(gw.base).messages.count_tokens(model="gpt", messages=HI)  # type: ignore[arg-type]
    assert count.input_tokens > 0
    clock.now += COOLDOWN_S
    await claude(gw.base).messages.count_tokens(model="gpt", messages=HI)  # type: ignore[arg-type]
    a.error(500)  # the real probe, which fails
    await ask(gw.base)
    await ask(gw.base)
    assert len(a.received) == 3
    rows = await gw.rows()
    assert routes(rows) == [FELL_BACK, FELL_BACK, [("a", "estimated_locally")], [("a", "estimated_locally")],
                            FELL_BACK, SKIPPED]
    assert [r["destination_type"] for r in rows[2:4]] == [None, None]  # sidegate answered, nothing was sent


async def test_streams_cut_by_the_destination_count_as_failures(gateway: GatewayFactory, fake_upstream: Any) -> None:
    """A destination that answers, then breaks its streams off, opens its breaker like one that fails
    outright: after `failures` cut streams the next request goes straight to the fallback."""
    gw, a, b, _ = await setup(gateway, fake_upstream)
    for _ in range(2):
        a.reply(sse=chat_sse({"model": "gpt"}), cut_after=3)
        with pytest.raises(openai.APIError):
            async for _chunk in await oai(gw.base).chat.completions.create(model="gpt", messages=HI, stream=True):
                pass
    await ask(gw.base)
    assert len(a.received) == 2 and len(b.received) == 1
    rows = await gw.rows()
    assert [r["error_code"] for r in rows] == ["upstream_stream_interrupted"] * 2 + [None]
    assert routes(rows) == [[("a", "stream_interrupted")]] * 2 + [SKIPPED]
