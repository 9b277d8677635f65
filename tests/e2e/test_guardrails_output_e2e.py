"""Output guardrails through the real app (DESIGN §4): JSON answers and streams of every caller
format read by the official SDKs (openai chat and Responses, anthropic messages, google-genai
generate and stream), with the fakes answering text whose e-mail address, phone number or token is
split across stream chunks. A mask reaches the SDK masked (deltas and the final aggregated answer),
a block is a 400 for a JSON answer and an error event the SDK raises on for a stream, a flag only
records; the usage row holds the results, never the matched text; `match:` is honoured; and with
translation the guard scans the caller's format."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import openai
import pytest
from google.genai import errors as genai_errors
from tests.support.governance_env import ANTHROPIC, GEMINI, Env, answer_text, start_env

SPLIT = ["Write to ", "ali", "ce@exa", "mple.com", " or call +1 415", " 555 0100", " today."]
MASKED = "Write to <EMAIL_ADDRESS> or call <PHONE_NUMBER> today."
GHP = "ghp_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z5A"
SECRET_SPLIT = ["Your token: ", GHP[:10], GHP[10:], " and more text", " after it."]
PII = "{name: pii, phase: output, detect: {pii: [email, phone]}, action: %s}"
SECRETS = "{name: no-secrets, phase: output, detect: [secrets], action: block}"
MASK_RESULTS = [{"guardrail": "pii", "phase": "output", "action": "mask", "category": "email", "count": 1},
                {"guardrail": "pii", "phase": "output", "action": "mask", "category": "phone", "count": 1}]
BLOCK_RESULTS = [{"guardrail": "no-secrets", "phase": "output", "action": "block", "category": "github_token",
                  "count": 1}]
SURFACES = ["openai-chat", "openai-responses", "anthropic-messages", "gemini-generate"]
HI: Any = [{"role": "user", "content": "hi"}]


def guardrails(*specs: str) -> str:
    return "guardrails:\n" + "".join(f"  - {spec}\n" for spec in specs)


async def whole(env: Env, surface: str, model: str | None = None) -> str:
    """A JSON answer through the surface's SDK: its text."""
    if surface == "openai-chat":
        chat = await env.openai().chat.completions.create(model=model or "gpt", messages=HI)
        return chat.choices[0].message.content or ""
    if surface == "openai-responses":
        return (await env.openai().responses.create(model=model or "gpt", input="hi")).output_text
    if surface == "anthropic-messages":
        msg = await env.anthropic().messages.create(model=model or "claude", max_tokens=64, messages=HI)
        return "".join(b.text for b in msg.content if b.type == "text")
    return (await env.genai().models.generate_content(model=model or "gem", contents="hi")).text or ""


async def streamed(env: Env, surface: str, seen: list[str], model: str | None = None) -> str:
    """A stream through the surface's SDK stream reader: the deltas go to `seen` as they arrive;
    returns the final aggregated text where the SDK builds one (else the joined deltas)."""
    if surface == "openai-chat":
        stream = await env.openai().chat.completions.create(model=model or "gpt", messages=HI, stream=True)
        async for chunk in stream:
            seen += [c.delta.content or "" for c in chunk.choices]
        return "".join(seen)
    if surface == "openai-responses":
        async with env.openai().responses.stream(model=model or "gpt", input="hi") as rs:
            async for event in rs:
                if event.type == "response.output_text.delta":
                    seen.append(event.delta)
                elif event.type == "error":  # a Responses stream reports failures as events, not HTTP errors
                    raise StreamFailed(str(event.code), event.message)
            return (await rs.get_final_response()).output_text
    if surface == "anthropic-messages":
        async with env.anthropic().messages.stream(model=model or "claude", max_tokens=64, messages=HI) as ms:
            async for text in ms.text_stream:
                seen.append(text)
            final = await ms.get_final_message()
        return "".join(b.text for b in final.content if b.type == "text")
    async for chunk in await env.genai().models.generate_content_stream(model=model or "gem", contents="hi"):
        seen.append(chunk.text or "")
    return "".join(seen)


class StreamFailed(Exception):
    """A Responses stream's `error` event, seen through the SDK's stream."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def code_and_message(err: Any) -> tuple[str, str]:
    """The machine code and message of an SDK's error, wherever that SDK keeps them."""
    if isinstance(err, StreamFailed):
        return err.code, err.message
    if isinstance(err, openai.APIError):
        return str(err.code), err.message
    if isinstance(err, anthropic.APIError):
        body: Any = err.body
        return body["error"]["code"], body["error"]["message"]
    assert isinstance(err, genai_errors.APIError)
    return err.details["error"]["details"][0]["reason"], str(err.message)


def fake_of(surface: str) -> str:
    return surface.split("-")[0]


# ---------------------------------------------------------------- JSON answers


@pytest.mark.parametrize("surface", SURFACES)
async def test_json_answer_masked(gateway, fakes, surface, monkeypatch):
    answer_text(SPLIT, monkeypatch)
    env = await start_env(gateway, fakes, guardrails(PII % "mask"))
    assert await whole(env, surface) == MASKED
    row = await env.last_row()
    assert (row["status_code"], row["guardrail_results"]) == (200, MASK_RESULTS)
    assert "alice@" not in json.dumps(row)


@pytest.mark.parametrize("surface", SURFACES)
async def test_json_answer_blocked(gateway, fakes, surface, monkeypatch):
    answer_text(SECRET_SPLIT, monkeypatch)
    env = await start_env(gateway, fakes, guardrails(SECRETS))
    with pytest.raises((openai.BadRequestError, anthropic.BadRequestError, genai_errors.ClientError)) as info:
        await whole(env, surface)
    err: Any = info.value
    code, message = code_and_message(err)
    assert code == "output_guardrail_triggered" and "no-secrets" in message and "github_token" in message
    assert GHP[:10] not in str(err)
    headers = err.response.headers
    assert "x-sidegate-request-id" in headers
    assert len(fakes[fake_of(surface)].received) == 1  # the upstream answered; the answer was withheld
    row = await env.row(headers["x-sidegate-request-id"])
    assert (row["status_code"], row["error_code"]) == (400, "output_guardrail_triggered")
    assert row["guardrail_results"] == BLOCK_RESULTS
    assert GHP[:10] not in json.dumps(row)


@pytest.mark.parametrize("surface", SURFACES)
async def test_json_answer_flagged_passes_unchanged(gateway, fakes, surface, monkeypatch):
    answer_text(SPLIT, monkeypatch)
    env = await start_env(gateway, fakes, guardrails(PII % "flag"))
    assert await whole(env, surface) == "".join(SPLIT)
    row = await env.last_row()
    assert [r["action"] for r in row["guardrail_results"]] == ["flag", "flag"]


# ---------------------------------------------------------------- streams, through each SDK's reader


@pytest.mark.parametrize("surface", SURFACES)
async def test_stream_masked_across_chunks(gateway, fakes, surface, monkeypatch):
    answer_text(SPLIT, monkeypatch)
    env = await start_env(gateway, fakes, guardrails(PII % "mask"))
    seen: list[str] = []
    final = await streamed(env, surface, seen)
    assert "".join(seen) == final == MASKED
    assert not [piece for piece in seen if "ali" in piece or "555" in piece]
    row = await env.last_row()
    assert (row["status_code"], row["streaming"], row["error_code"]) == (200, True, None)
    assert row["guardrail_results"] == MASK_RESULTS


@pytest.mark.parametrize("surface", SURFACES)
async def test_stream_blocked_ends_with_an_error_the_sdk_raises(gateway, fakes, surface, monkeypatch):
    answer_text(SECRET_SPLIT, monkeypatch)
    env = await start_env(gateway, fakes, guardrails(SECRETS, PII % "mask"))
    seen: list[str] = []
    with pytest.raises((openai.APIError, anthropic.APIError, genai_errors.APIError, StreamFailed)) as info:
        await streamed(env, surface, seen)
    code, message = code_and_message(info.value)
    assert code == "output_guardrail_triggered" and "no-secrets" in message and "github_token" in message
    text = "".join(seen)
    assert GHP[:10] not in text and "after it" not in text  # nothing of the token, nothing after the block
    row = await env.last_row()
    assert (row["streaming"], row["error_code"]) == (True, "output_guardrail_triggered")
    assert row["guardrail_results"] == BLOCK_RESULTS
    assert GHP[:10] not in json.dumps(row)


async def test_stream_flag_only_records(gateway, fakes, monkeypatch):
    answer_text(SPLIT, monkeypatch)
    env = await start_env(gateway, fakes, guardrails(PII % "flag"))
    seen: list[str] = []
    assert await streamed(env, "anthropic-messages", seen) == "".join(SPLIT)
    row = await env.last_row()
    assert [(r["category"], r["action"]) for r in row["guardrail_results"]] == [("email", "flag"), ("phone", "flag")]


# ---------------------------------------------------------------- with translation: the caller's format is scanned

TRANSLATED = [  # caller surface, model service whose destination speaks another format
    ("anthropic-messages", "claude-on-oa"),
    ("gemini-generate", "gem-on-an"),
    ("openai-chat", "gpt-on-ge"),
]


@pytest.mark.parametrize(("surface", "model"), TRANSLATED, ids=[m for _, m in TRANSLATED])
async def test_translated_stream_masked(gateway, fakes, surface, model, monkeypatch):
    answer_text(SPLIT, monkeypatch)
    env = await start_env(gateway, fakes, guardrails(PII % "mask"))
    seen: list[str] = []
    assert await streamed(env, surface, seen, model=model) == MASKED
    assert "".join(seen) == MASKED
    row = await env.last_row()
    assert row["destination_type"] != fake_of(surface)
    assert row["guardrail_results"] == MASK_RESULTS


@pytest.mark.parametrize(("surface", "model"), TRANSLATED, ids=[m for _, m in TRANSLATED])
async def test_translated_json_masked_and_stream_blocked(gateway, fakes, surface, model, monkeypatch):
    answer_text(SPLIT, monkeypatch)
    env = await start_env(gateway, fakes, guardrails(PII % "mask", SECRETS))
    assert await whole(env, surface, model=model) == MASKED
    answer_text(SECRET_SPLIT, monkeypatch)
    with pytest.raises((openai.APIError, anthropic.APIError, genai_errors.APIError, StreamFailed)) as info:
        await streamed(env, surface, [], model=model)
    assert code_and_message(info.value)[0] == "output_guardrail_triggered"


# ---------------------------------------------------------------- match


async def test_output_guardrails_follow_match(gateway, fakes, monkeypatch):
    answer_text(SPLIT, monkeypatch)
    env = await start_env(gateway, fakes, guardrails(
        "{name: pii, phase: output, detect: {pii: [email, phone]}, action: mask, "
        "match: {models: [claude, gem], groups: [research]}}",
        "{name: tagged, phase: both, detect: {pii: [email]}, action: block, match: {tags: {env: prod}}}"))
    assert await whole(env, "anthropic-messages") == MASKED  # alice is in research
    assert await whole(env, "openai-chat") == "".join(SPLIT)  # gpt is not matched
    bob = await env.post(ANTHROPIC, "bob")
    assert bob.status == 200 and "alice@example.com" in bob.json()["content"][0]["text"]  # bob is not in research
    prod = await env.post(GEMINI, "bob", tags={"env": "prod"})
    assert prod.error("gemini", 400)[0] == "output_guardrail_triggered"
    assert b"alice@" not in prod.body
