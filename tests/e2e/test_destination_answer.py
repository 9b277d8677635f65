"""Which destination answered, as callers see it through their official SDKs: every answer, whole
or streamed, carries `x-sidegate-destination: <provider>/<model>`, and the answer's own `model`
is the model that produced it, the destination's, the same for a passed-through answer (whose bytes
sidegate does not rewrite) and for every translated pair of caller format and provider kind."""

from __future__ import annotations

from typing import Any

import pytest
from tests.support.fakes import DEFAULT_TEXT
from tests.support.gateway import GatewayFactory
from tests.support.sdk_clients import claude, close_sdk_clients, gemini, oai  # noqa: F401  (fixture)

HI = [{"role": "user", "content": "hi"}]
CALLERS = ["openai-chat", "openai-responses", "anthropic", "gemini"]
KINDS = ["openai", "anthropic", "gemini"]


async def answer(caller: str, base: str, stream: bool) -> tuple[str, str, str]:
    """(text, model the SDK shows, x-sidegate-destination) of one call to model service `svc`."""
    if caller.startswith("openai-"):
        client = oai(base)
        if caller == "openai-chat":
            raw: Any = await client.chat.completions.with_raw_response.create(
                model="svc", messages=HI, stream=stream)  # type: ignore[arg-type]
            if not stream:
                done = raw.parse()
                return done.choices[0].message.content or "", done.model, raw.headers["x-sidegate-destination"]
            chunks = [chunk async for chunk in raw.parse()]
            assert len({chunk.model for chunk in chunks}) == 1, "every chunk names the same model"
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            return text, chunks[0].model, raw.headers["x-sidegate-destination"]
        raw = await client.responses.with_raw_response.create(model="svc", input="hi", stream=stream)
        if not stream:
            done = raw.parse()
            return done.output_text, done.model, raw.headers["x-sidegate-destination"]
        events = [event async for event in raw.parse()]
        final = events[-1].response
        assert events[0].response.model == final.model
        return final.output_text, final.model, raw.headers["x-sidegate-destination"]
    if caller == "anthropic":
        raw = await claude(base).messages.with_raw_response.create(
            model="svc", max_tokens=20, messages=HI, stream=stream)  # type: ignore[arg-type]
        if not stream:
            message = await raw.parse()
            return message.content[0].text, message.model, raw.headers["x-sidegate-destination"]
        events = [event async for event in await raw.parse()]
        text = "".join(e.delta.text for e in events if e.type == "content_block_delta" and e.delta.type == "text_delta")
        return text, events[0].message.model, raw.headers["x-sidegate-destination"]
    models = gemini(base).models
    if not stream:
        got = await models.generate_content(model="svc", contents="hi")
        assert got.sdk_http_response is not None and got.sdk_http_response.headers is not None
        return got.text or "", got.model_version or "", got.sdk_http_response.headers["x-sidegate-destination"]
    parts = [chunk async for chunk in await models.generate_content_stream(model="svc", contents="hi")]
    assert len({chunk.model_version for chunk in parts}) == 1
    headers = parts[0].sdk_http_response.headers if parts[0].sdk_http_response else None
    assert headers is not None
    return "".join(c.text or "" for c in parts), parts[0].model_version or "", headers["x-sidegate-destination"]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("caller", CALLERS)
async def test_the_answer_names_the_destination_and_its_model(
        gateway: GatewayFactory, fake_upstream: Any, caller: str, kind: str, stream: bool) -> None:
    fake = await fake_upstream(kind)
    gw = await gateway(f"""
        providers:
          up: {{kind: {kind}, base_url: '{fake.base_url}', api_key: k}}
        models:
          svc: {{destinations: [{{provider: up, model: dest-model-1}}]}}
    """)
    text, model, destination = await answer(caller, gw.base, stream)
    assert text == DEFAULT_TEXT
    assert destination == "up/dest-model-1"
    assert model == "dest-model-1", "the destination's model, not the model service's name"
    row = await gw.row()
    assert (row["destination_name"], row["destination_model"], row["model_service"]) == ("up", "dest-model-1", "svc")
    assert fake.last.json().get("model", "dest-model-1") == "dest-model-1"  # (Gemini names it in the URL)


async def test_a_passed_through_answer_keeps_the_model_the_destination_named(
        gateway: GatewayFactory, fake_upstream: Any) -> None:
    """Providers answer with a dated version of the model asked for: passed through as it is (the
    body is the destination's bytes), while the header names the model sidegate asked for."""
    fake = await fake_upstream("openai")
    gw = await gateway(f"""
        providers:
          oa: {{kind: openai, base_url: '{fake.base_url}', api_key: k}}
        models:
          svc: {{destinations: [{{provider: oa, model: gpt-5}}], fallbacks: [{{provider: oa, model: gpt-5-mini}}]}}
    """)
    fake.error(503)
    fake.reply(json={"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-5-mini-2025-08-07",
                     "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                                  "finish_reason": "stop"}]})
    raw = await oai(gw.base).chat.completions.with_raw_response.create(model="svc", messages=HI)  # type: ignore[arg-type]
    assert raw.headers["x-sidegate-destination"] == "oa/gpt-5-mini"  # the fallback answered
    assert raw.parse().model == "gpt-5-mini-2025-08-07"
