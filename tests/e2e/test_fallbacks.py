"""Fallbacks through the real app, driven by the official SDKs (no client retries): on 429 / 5xx /
a dropped or reset connection the next destination in strict order answers, every attempt is in
`routing_information`, the last destination's failure reaches the caller in its own shape, a
fallback to a provider of another kind is translated, traffic splits follow their weights, and the
policy loader accepts at most five fallbacks."""

from __future__ import annotations

import asyncio
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import openai
import pytest
from tests.support.fakes import DEFAULT_TEXT, FakeUpstream
from tests.support.gateway import KEY, GatewayFactory
from tests.support.sdk_clients import claude, close_sdk_clients, oai  # noqa: F401  (fixture)
from tests.support.served import free_port

from sidegate.policy.loader import PolicyError, load_policy_dir

HI = [{"role": "user", "content": "hi"}]


def providers(fakes: dict[str, FakeUpstream]) -> str:
    lines = [f"  {name}: {{kind: {fake.kind}, base_url: '{fake.base_url}', api_key: up-{name}}}"
             for name, fake in fakes.items()]
    return "providers:\n" + "\n".join(lines) + "\n"


def service(name: str, first: str, fallbacks: list[str], extra: str = "") -> str:
    """A model service: destination `first`, then `fallbacks` in order; each asks for model `m-<provider>`."""
    chain = ", ".join(f"{{provider: {p}, model: m-{p}}}" for p in fallbacks)
    return (f"models:\n  {name}:\n    destinations: [{{provider: {first}, model: m-{first}}}]\n"
            f"    fallbacks: [{chain}]\n" + textwrap.indent(textwrap.dedent(extra), "    "))


def route(row: dict[str, Any]) -> list[tuple[str, int | None, str]]:
    """(destination, status, reason) of every attempt, in order; each attempt also has a duration."""
    for attempt in row["routing_information"]:
        assert isinstance(attempt["duration_ms"], float) and attempt["duration_ms"] >= 0, attempt
    return [(a["destination"], a["status"], a["reason"]) for a in row["routing_information"]]


async def test_next_destination_in_strict_order_answers(gateway: GatewayFactory, fake_upstream: Any) -> None:
    fakes = {name: await fake_upstream("openai") for name in ("a", "b", "c", "d", "e")}
    gw = await gateway(providers(fakes) + service("gpt", "a", ["b", "c", "d", "e"]))
    fakes["a"].error(429)
    fakes["b"].error(500)
    fakes["c"].reply(disconnect=True)  # the connection closes before any answer
    fakes["d"].error(503)
    done = await oai(gw.base).chat.completions.create(model="gpt", messages=HI)  # type: ignore[arg-type]
    assert done.choices[0].message.content == DEFAULT_TEXT
    assert [len(f.received) for f in fakes.values()] == [1, 1, 1, 1, 1]
    assert [f.last.json()["model"] for f in fakes.values()] == ["m-a", "m-b", "m-c", "m-d", "m-e"]
    row = await gw.row()
    assert route(row) == [("a", 429, "retryable_status"), ("b", 500, "retryable_status"),
                          ("c", None, "connection_error"), ("d", 503, "retryable_status"), ("e", 200, "ok")]
    assert (row["status_code"], row["destination_name"], row["destination_model"]) == (200, "e", "m-e")
    assert row["input_tokens"] == 11 and row["tokens_estimated"] is False


async def test_a_reset_connection_falls_back(gateway: GatewayFactory, fake_upstream: Any) -> None:
    fakes = {name: await fake_upstream("openai") for name in ("a", "b")}
    gw = await gateway(providers(fakes) + service("gpt", "a", ["b"]))
    fakes["a"].reply(disconnect=True, reset=True)  # TCP RST instead of an answer
    stream = await oai(gw.base).chat.completions.create(model="gpt", messages=HI, stream=True)  # type: ignore[arg-type]
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == DEFAULT_TEXT
    assert route(await gw.row()) == [("a", None, "connection_error"), ("b", 200, "ok")]


async def test_a_client_error_is_not_retried(gateway: GatewayFactory, fake_upstream: Any) -> None:
    fakes = {name: await fake_upstream("openai") for name in ("a", "b")}
    gw = await gateway(providers(fakes) + service("gpt", "a", ["b"]))
    fakes["a"].error(400, "bad temperature")
    with pytest.raises(openai.BadRequestError) as caught:
        await oai(gw.base).chat.completions.create(model="gpt", messages=HI)  # type: ignore[arg-type]
    assert "bad temperature" in str(caught.value) and fakes["b"].received == []
    assert route(await gw.row()) == [("a", 400, "error")]


async def test_the_last_failure_reaches_the_caller_in_its_shape(gateway: GatewayFactory, fake_upstream: Any) -> None:
    fakes = {name: await fake_upstream("openai") for name in ("a", "b")}
    gw = await gateway(providers(fakes) + service("gpt", "a", ["b"]))
    fakes["a"].error(500)
    fakes["b"].error(429, "slow down, b")
    with pytest.raises(openai.RateLimitError) as caught:
        await oai(gw.base).chat.completions.create(model="gpt", messages=HI)  # type: ignore[arg-type]
    assert caught.value.status_code == 429 and "slow down, b" in caught.value.message
    assert caught.value.response.headers["x-ratelimit-remaining-requests"] == "0"  # the destination's header
    row = await gw.row()
    assert route(row) == [("a", 500, "retryable_status"), ("b", 429, "retryable_status")]
    assert (row["status_code"], row["error_code"], row["destination_name"]) == (429, "rate_limit_exceeded", "b")

    fakes["a"].error(503)
    fakes["b"].reply(disconnect=True, reset=True)  # the last one is unreachable: sidegate's own 502
    with pytest.raises(openai.APIStatusError) as unreachable:
        await oai(gw.base).chat.completions.create(model="gpt", messages=HI)  # type: ignore[arg-type]
    assert unreachable.value.status_code == 502
    assert unreachable.value.message.endswith("all 2 destinations failed: a (HTTP 503), b (connection reset)")
    assert (await gw.row())["error_code"] == "upstream_unreachable"


async def test_anthropic_caller_sees_the_last_overload_as_its_own_error(
        gateway: GatewayFactory, fake_upstream: Any) -> None:
    fakes = {name: await fake_upstream("anthropic") for name in ("a", "b")}
    gw = await gateway(providers(fakes) + service("claude", "a", ["b"]))
    fakes["a"].error(529)
    fakes["b"].error(529, "b is overloaded")
    with pytest.raises(anthropic.InternalServerError) as caught:
        await claude(gw.base).messages.create(model="claude", max_tokens=10, messages=HI)  # type: ignore[arg-type]
    assert caught.value.status_code == 529 and "b is overloaded" in caught.value.message
    assert route(await gw.row()) == [("a", 529, "retryable_status"), ("b", 529, "retryable_status")]


async def test_same_kind_fallback_forwards_the_callers_body(gateway: GatewayFactory, fake_upstream: Any) -> None:
    fakes = {name: await fake_upstream("anthropic") for name in ("a", "b")}
    gw = await gateway(providers(fakes) + service("claude", "a", ["b"]))
    fakes["a"].error(529)
    async with claude(gw.base).messages.stream(
            model="claude", max_tokens=10, messages=HI,  # type: ignore[arg-type]
            extra_headers={"anthropic-beta": "some-beta-2099"}, extra_body={"future_field": {"x": 1}}) as stream:
        message = await stream.get_final_message()
    assert message.content[0].text == DEFAULT_TEXT  # type: ignore[union-attr]
    for fake in fakes.values():  # both got the caller's request, model renamed, the rest as sent
        sent = fake.last.json()
        assert (sent["model"], sent["future_field"]) == (f"m-{'a' if fake is fakes['a'] else 'b'}", {"x": 1})
        assert fake.last.headers["anthropic-beta"] == "some-beta-2099"
    assert fakes["b"].last.headers["x-api-key"] == "up-b"
    row = await gw.row()
    assert route(row) == [("a", 529, "retryable_status"), ("b", 200, "ok")]
    assert (row["destination_type"], row["input_tokens"] > 0, row["tokens_estimated"]) == ("anthropic", True, False)


async def test_cross_provider_fallback_is_translated(gateway: GatewayFactory, fake_upstream: Any) -> None:
    fakes = {"an": await fake_upstream("anthropic"), "oa": await fake_upstream("openai")}
    gw = await gateway(providers(fakes) + service("claude", "an", ["oa"]))
    fakes["an"].error(529)
    message = await claude(gw.base).messages.create(model="claude", max_tokens=10, messages=HI)  # type: ignore[arg-type]
    assert message.content[0].text == DEFAULT_TEXT and message.model == "m-oa"  # type: ignore[union-attr]
    sent = fakes["oa"].last
    assert sent.path == "/v1/chat/completions" and sent.json()["model"] == "m-oa"
    assert sent.headers["authorization"] == "Bearer up-oa" and "anthropic-version" not in sent.headers
    row = await gw.row()
    assert route(row) == [("an", 529, "retryable_status"), ("oa", 200, "ok")]
    assert (row["destination_type"], row["input_tokens"], row["output_tokens"]) == ("openai", 11, 7)

    fakes["an"].error(529)  # streamed: the chat stream comes back as Anthropic events
    async with claude(gw.base).messages.stream(model="claude", max_tokens=10, messages=HI) as stream:  # type: ignore[arg-type]
        text = "".join([t async for t in stream.text_stream])
        final = await stream.get_final_message()
    assert text == DEFAULT_TEXT and final.stop_reason == "end_turn"
    assert fakes["oa"].last.json()["stream"] is True
    assert route(await gw.row()) == [("an", 529, "retryable_status"), ("oa", 200, "ok")]


async def test_a_destination_that_cannot_take_the_format_is_passed_over(
        gateway: GatewayFactory, fake_upstream: Any) -> None:
    fakes = {"an": await fake_upstream("anthropic"), "oa": await fake_upstream("openai")}
    gw = await gateway(providers(fakes) + service("emb", "an", ["oa"]))
    done = await oai(gw.base).embeddings.create(model="emb", input="hi")
    assert len(done.data) == 1 and fakes["an"].received == []
    assert route(await gw.row()) == [("an", None, "no_translation"), ("oa", 200, "ok")]


# ---------------------------------------------------------------- traffic splits


async def test_traffic_split_follows_the_weights(gateway: GatewayFactory) -> None:
    gw = await gateway("""
        providers:
          heavy: {kind: mock}
          light: {kind: mock}
          unused: {kind: mock}
        models:
          split:
            destinations:
              - {provider: heavy, weight: 75}
              - {provider: light, weight: 25}
              - {provider: unused, weight: 0}
    """)
    body = {"model": "split", "messages": HI}
    headers = {"Authorization": f"Bearer {KEY}"}
    async with aiohttp.ClientSession() as session:
        async def one() -> None:
            async with session.post(f"{gw.base}/openai/v1/chat/completions", json=body, headers=headers) as r:
                assert r.status == 200

        for _ in range(8):
            await asyncio.gather(*(one() for _ in range(50)))
    counts = Counter(r["destination_name"] for r in await gw.rows())
    # 400 draws at p = 0.75: mean 300, standard deviation ~8.7; these bounds are over 5 deviations wide
    assert sum(counts.values()) == 400 and counts["unused"] == 0
    assert 250 <= counts["heavy"] <= 350 and counts["heavy"] + counts["light"] == 400


# ---------------------------------------------------------------- the policy's limit


def test_at_most_five_fallbacks(tmp_path: Path) -> None:
    def write(count: int) -> Path:
        directory = tmp_path / str(count)
        directory.mkdir()
        chain = ", ".join("{provider: echo}" for _ in range(count))
        (directory / "p.yaml").write_text(
            f"providers: {{echo: {{kind: mock}}}}\nmodels:\n  m:\n    destinations: [{{provider: echo}}]\n"
            f"    fallbacks: [{chain}]\n")
        return directory

    assert len(load_policy_dir(write(5), env={}).model.models["m"].fallbacks) == 5
    with pytest.raises(PolicyError) as caught:
        load_policy_dir(write(6), env={})
    assert caught.value.problems == [
        f"{tmp_path / '6' / 'p.yaml'}:5: models.m.fallbacks: List should have at most 5 items after validation,"
        " not 6"]


async def test_a_whole_answer_cut_off_before_it_reached_the_caller_falls_back(
        gateway: GatewayFactory, fake_upstream: Any) -> None:
    """A non-streamed answer is read whole before anything is sent to the caller: a connection that
    breaks half way through the body is a failure before the first byte, so the next destination answers."""
    fakes = {name: await fake_upstream("openai") for name in ("a", "b")}
    gw = await gateway(providers(fakes) + service("gpt", "a", ["b"]))
    fakes["a"].reply(sse=[b'{"id": "chatcmpl-1", "object": ', b'"chat.completion", "choices": []}'],
                     headers={"Content-Type": "application/json"}, cut_after=1)
    done = await oai(gw.base).chat.completions.create(model="gpt", messages=HI)  # type: ignore[arg-type]
    assert done.choices[0].message.content == DEFAULT_TEXT
    assert route(await gw.row()) == [("a", None, "connection_error"), ("b", 200, "ok")]


async def test_the_callers_error_says_what_happened_at_each_destination(gateway: GatewayFactory) -> None:
    """No exception names: each attempt's failure in words, in the caller's error and in the row."""
    gw = await gateway(f"""
        providers:
          deadp: {{kind: openai, base_url: 'http://127.0.0.1:{free_port()}/v1', api_key: k}}
          baddns: {{kind: openai, base_url: 'http://no-such-host.invalid/v1', api_key: k}}
        models:
          gpt: {{destinations: [{{provider: deadp}}], fallbacks: [{{provider: baddns}}]}}
          one: {{destinations: [{{provider: deadp}}]}}
    """)
    with pytest.raises(openai.APIStatusError) as caught:
        await oai(gw.base).chat.completions.create(model="gpt", messages=HI)  # type: ignore[arg-type]
    assert caught.value.status_code == 502 and caught.value.code == "upstream_unreachable"
    assert caught.value.message.endswith(
        "all 2 destinations failed: deadp (connection refused), baddns (DNS lookup failed for no-such-host.invalid)")
    row = await gw.row()
    assert [(a["reason"], a["error"]) for a in row["routing_information"]] == [
        ("connection_error", "connection refused"), ("connection_error", "DNS lookup failed for no-such-host.invalid")]
    with pytest.raises(anthropic.APIStatusError) as alone:
        await claude(gw.base).messages.create(model="one", max_tokens=5, messages=HI)  # type: ignore[arg-type]
    assert alone.value.status_code == 502
    assert alone.value.body["error"]["message"] == "destination deadp (connection refused) failed"  # type: ignore[index]
