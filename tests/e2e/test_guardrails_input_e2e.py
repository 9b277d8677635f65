"""Input guardrails through the real app (DESIGN §4), driven by the official SDKs and raw requests
against fake upstreams: a block is a 400 in each caller family's shape that names the guardrail and
the category but never the matched text (nor does the usage row), and the upstream is not called; a
mask forwards the body with only the matches replaced (everything else of a native body survives);
a flag only records; system prompts, tool calls and results, Responses input and instructions,
Gemini contents and system instructions are all read; `match:` narrows guardrails to models,
principals, groups and tags."""

from __future__ import annotations

import copy
import json
from typing import Any

import aiohttp
import anthropic
import openai
import orjson
import pytest
from google.genai import errors as genai_errors
from tests.support.governance_env import (
    ANTHROPIC,
    FAMILIES,
    FAMILY_IDS,
    GEMINI,
    OPENAI,
    Family,
    error_fields,
    sdk_call,
    start_env,
)

GHP = "ghp_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z5A"
AWS = "AKIA" + "Z3Q5T7V2X4B3D5F7"
SECRETS_BLOCK = """
guardrails:
  - {name: no-secrets, phase: input, detect: [secrets], action: block}
"""
PII_MASK = """
guardrails:
  - {name: pii, phase: input, detect: {pii: [email, credit_card]}, action: mask}
"""


# ---------------------------------------------------------------- block, through each SDK


BAD_REQUEST: dict[str, type[Exception]] = {
    "openai": openai.BadRequestError, "anthropic": anthropic.BadRequestError, "gemini": genai_errors.ClientError}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("family", FAMILIES, ids=FAMILY_IDS)
async def test_block_is_a_400_naming_guardrail_and_category_never_the_text(gateway, fakes, family, stream):
    env = await start_env(gateway, fakes, SECRETS_BLOCK)
    err = await sdk_call(env, family, stream, f"deploy with token {GHP} please")
    assert isinstance(err, BAD_REQUEST[family.name]), repr(err)
    if family is GEMINI:
        body, request_id = {"error": err.details["error"]}, err.response.headers["x-sidegate-request-id"]
    else:
        body, request_id = err.response.json(), err.response.headers["x-sidegate-request-id"]
    code, message = error_fields(family.name, 400, body)
    assert code == "input_guardrail_triggered"
    assert "no-secrets" in message and "github_token" in message
    assert GHP not in json.dumps(body) and GHP[4:] not in str(err)
    assert env.upstream_calls() == 0
    row = await env.row(request_id)
    assert (row["status_code"], row["error_code"]) == (400, "input_guardrail_triggered")
    assert row["guardrail_results"] == [{"guardrail": "no-secrets", "phase": "input", "action": "block",
                                         "category": "github_token", "count": 1}]
    assert GHP[4:] not in json.dumps(row)


async def test_clean_request_passes_unchanged_byte_for_byte(gateway, fakes):
    env = await start_env(gateway, fakes, SECRETS_BLOCK + PII_MASK.replace("guardrails:\n", ""))
    raw = b'{"model":"gpt","messages":[{"role":"user","content":"nothing to see"}],  "x_extra": {"a": [1, 2.50]}}'
    async with aiohttp.ClientSession() as http, http.post(
            env.url(OPENAI.path), data=raw, headers={"Authorization": "Bearer sk-e2e-alice",
                                                     "Content-Type": "application/json"}) as resp:
        assert resp.status == 200
    assert fakes["openai"].last.body == raw
    assert (await env.last_row())["guardrail_results"] == []


# ---------------------------------------------------------------- mask: only the matches change

NATIVE_BODIES: dict[str, tuple[Family, dict[str, Any], list[tuple[str, ...]]]] = {
    # family, body, the paths of the texts holding an e-mail address or a card number
    "openai": (OPENAI, {
        "model": "gpt", "temperature": 0.25, "metadata": {"owner": "alice@example.com"},
        "x_vendor_field": {"nested": [1, "two", None]}, "seed": 7,
        "messages": [
            {"role": "system", "content": "Forward questions to alice@example.com."},
            {"role": "user", "content": [{"type": "text", "text": "Card 4111 1111 1111 1111 expired"},
                                         {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]},
        ]}, [("messages", 0, "content"), ("messages", 1, "content", 0, "text")]),
    "anthropic": (ANTHROPIC, {
        "model": "claude", "max_tokens": 64, "metadata": {"user_id": "u-1"}, "x_vendor_field": True,
        "system": [{"type": "text", "text": "Escalate to ops@example.com.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": "My mail is bob@example.org"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "the user wrote bob@example.org", "signature": "c2lnbmVk"},
                {"type": "text", "text": "Noted."}]},
            {"role": "user", "content": [{"type": "text", "text": "thanks", "cache_control": {"type": "ephemeral"}}]},
        ]}, [("system", 0, "text"), ("messages", 0, "content")]),
    "gemini": (GEMINI, {
        "systemInstruction": {"parts": [{"text": "Reply to carol@example.com"}]},
        "contents": [{"role": "user", "parts": [{"text": "Pay with 4111-1111-1111-1111"},
                                                {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}]}],
        "generationConfig": {"temperature": 0.1, "maxOutputTokens": 50},
        "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
    }, [("systemInstruction", "parts", 0, "text"), ("contents", 0, "parts", 0, "text")]),
}
MASKS = {"Forward questions to alice@example.com.": "Forward questions to <EMAIL_ADDRESS>.",
         "Card 4111 1111 1111 1111 expired": "Card <CREDIT_CARD> expired",
         "Escalate to ops@example.com.": "Escalate to <EMAIL_ADDRESS>.",
         "My mail is bob@example.org": "My mail is <EMAIL_ADDRESS>",
         "Reply to carol@example.com": "Reply to <EMAIL_ADDRESS>",
         "Pay with 4111-1111-1111-1111": "Pay with <CREDIT_CARD>"}


def at(obj: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        obj = obj[key]
    return obj


@pytest.mark.parametrize("name", list(NATIVE_BODIES))
async def test_mask_forwards_the_native_body_with_only_the_matches_replaced(gateway, fakes, name):
    env = await start_env(gateway, fakes, PII_MASK)
    family, body, paths = NATIVE_BODIES[name]
    answer = await env.post(family, body=body)
    assert answer.status == 200, answer.body
    expected = copy.deepcopy(body)
    for path in paths:
        parent, key = at(expected, path[:-1]), path[-1]
        parent[key] = MASKS[parent[key]]
    received = fakes[family.name].last.json()
    assert received == expected  # unknown fields, cache_control, thinking blocks, images: all as sent
    row = await env.row(answer.request_id)
    assert sum(r["count"] for r in row["guardrail_results"]) == len(paths)
    assert {r["action"] for r in row["guardrail_results"]} == {"mask"}
    assert "@example" not in json.dumps(row) and "1111" not in json.dumps(row)


async def test_mask_through_the_sdks(gateway, fakes):
    env = await start_env(gateway, fakes, PII_MASK)
    text = "write to dana@example.net today"
    await env.openai(root="mlflow").responses.create(model="gpt", input=text, instructions="cc eve@example.net")
    sent = fakes["openai"].last.json()
    assert (sent["input"], sent["instructions"]) == ("write to <EMAIL_ADDRESS> today", "cc <EMAIL_ADDRESS>")
    await env.anthropic().messages.create(model="claude", max_tokens=8, messages=[{"role": "user", "content": text}])
    assert fakes["anthropic"].last.json()["messages"][0]["content"] == "write to <EMAIL_ADDRESS> today"
    await env.genai().models.generate_content(model="gem", contents=text)
    assert fakes["gemini"].last.json()["contents"][0]["parts"][0]["text"] == "write to <EMAIL_ADDRESS> today"


async def test_mask_survives_translation_to_another_provider(gateway, fakes):
    env = await start_env(gateway, fakes, PII_MASK)
    await env.anthropic().messages.create(model="claude-on-oa", max_tokens=8, system="cc ops@example.com",
                                          messages=[{"role": "user", "content": "mail bob@example.org"}])
    sent = fakes["openai"].last.json()  # the chat body the anthropic request was translated to
    assert sent["model"] == "gpt-real"
    assert "@example" not in json.dumps(sent)
    assert [m["content"] for m in sent["messages"]][-1] in ("mail <EMAIL_ADDRESS>",
                                                           [{"type": "text", "text": "mail <EMAIL_ADDRESS>"}])


async def test_flag_records_and_forwards_unchanged(gateway, fakes):
    env = await start_env(gateway, fakes, """
guardrails:
  - {name: shadow-pii, phase: input, detect: {pii: [email]}, action: flag}
  - {name: shadow-words, phase: input, detect: {keywords: [project-x]}, action: flag}
""")
    body = {"model": "gpt", "messages": [{"role": "user", "content": "a@example.com b@example.com on Project-X"}]}
    answer = await env.post(OPENAI, body=body)
    assert answer.status == 200
    assert fakes["openai"].last.json() == body
    row = await env.row(answer.request_id)
    assert row["guardrail_results"] == [
        {"guardrail": "shadow-pii", "phase": "input", "action": "flag", "category": "email", "count": 2},
        {"guardrail": "shadow-words", "phase": "input", "action": "flag", "category": "keyword", "count": 1}]
    assert (row["status_code"], row["error_code"]) == (200, None)


# ---------------------------------------------------------------- every place a model reads

TOOL_CALL = {"id": "call_1", "type": "function", "function": {"name": "deploy", "arguments": "{}"}}
WHERE: dict[str, tuple[Family, str | None, dict[str, Any]]] = {
    "chat-system": (OPENAI, None, {"model": "gpt", "messages": [
        {"role": "system", "content": f"token {GHP}"}, {"role": "user", "content": "hi"}]}),
    "chat-tool-result": (OPENAI, None, {"model": "gpt", "messages": [
        {"role": "user", "content": "deploy"}, {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": f"export KEY={AWS}"}]}),
    "chat-tool-arguments": (OPENAI, None, {"model": "gpt", "messages": [
        {"role": "user", "content": "deploy"}, {"role": "assistant", "content": None, "tool_calls": [
            {**TOOL_CALL, "function": {"name": "deploy", "arguments": json.dumps({"token": GHP})}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "ok"}]}),
    "responses-input": (OPENAI, "/openai/v1/responses", {"model": "gpt", "input": f"use {GHP}"}),
    "responses-instructions": (OPENAI, "/openai/v1/responses",
                               {"model": "gpt", "instructions": f"key {AWS}", "input": "hi"}),
    "responses-tool-output": (OPENAI, "/openai/v1/responses", {"model": "gpt", "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "deploy"}]},
        {"type": "function_call", "call_id": "c1", "name": "deploy", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": f"token={GHP}"}]}),
    "anthropic-system": (ANTHROPIC, None, {"model": "claude", "max_tokens": 8, "system": f"key {AWS}",
                                           "messages": [{"role": "user", "content": "hi"}]}),
    "anthropic-tool-result": (ANTHROPIC, None, {"model": "claude", "max_tokens": 8, "messages": [
        {"role": "user", "content": "deploy"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "deploy", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                      "content": [{"type": "text", "text": f"token {GHP}"}]}]}]}),
    "gemini-contents": (GEMINI, None, {"contents": [
        {"role": "user", "parts": [{"text": "hi"}]}, {"role": "model", "parts": [{"text": "ok"}]},
        {"role": "user", "parts": [{"text": f"and {GHP}"}]}]}),
    "gemini-system": (GEMINI, None, {"systemInstruction": {"parts": [{"text": f"key {AWS}"}]},
                                     "contents": [{"role": "user", "parts": [{"text": "hi"}]}]}),
    "gemini-function-response": (GEMINI, None, {"contents": [
        {"role": "user", "parts": [{"text": "deploy"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "deploy", "args": {}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "deploy", "response": {"out": GHP}}}]}]}),
}


@pytest.mark.parametrize("where", list(WHERE))
async def test_every_text_the_model_reads_is_scanned(gateway, fakes, where):
    env = await start_env(gateway, fakes, SECRETS_BLOCK)
    family, path, body = WHERE[where]
    answer = await env.post(family, body=body, path=path)
    code, message = answer.error(family.name, 400)
    assert code == "input_guardrail_triggered" and "no-secrets" in message
    assert GHP.encode() not in answer.body and AWS.encode() not in answer.body
    assert env.upstream_calls() == 0


# ---------------------------------------------------------------- match


async def test_match_by_model_principal_group_and_tag(gateway, fakes):
    env = await start_env(gateway, fakes, """
guardrails:
  - {name: gpt-words, detect: {keywords: [project-x]}, action: block, match: {models: ["gpt"]}}
  - {name: bot-words, detect: {keywords: [bot-only]}, action: block, match: {principals: [ci-bot]}}
  - {name: research-words, detect: {keywords: [lab-only]}, action: block, match: {groups: [research]}}
  - {name: chatbot-words, detect: {regex: ["(?i)internal only"]}, action: block,
     match: {tags: {project: chatbot}}}
""")

    async def status(text: str, who: str = "alice", model: str = "gpt", tags: dict[str, str] | None = None) -> int:
        body = {"model": model, "messages": [{"role": "user", "content": text}]}
        answer = await env.post(OPENAI, who, body=body, tags=tags)
        return answer.status

    assert [await status("about project-x", model=m) for m in ("gpt", "gpt-mini", "claude-on-oa")] == [400, 200, 200]
    assert [await status("bot-only stuff", who) for who in ("bot", "alice")] == [400, 200]
    assert [await status("lab-only notes", who) for who in ("carol", "alice", "bob", "bot")] == [400, 400, 200, 200]
    assert [await status("INTERNAL ONLY", tags=t) for t in ({"project": "chatbot"}, {"project": "x"}, None)] == [
        400, 200, 200]
    rows = await env.gw.rows()
    assert [r["guardrail_results"][0]["guardrail"] for r in rows if r["status_code"] == 400] == [
        "gpt-words", "bot-words", "research-words", "research-words", "chatbot-words"]
    assert all(r["guardrail_results"] == [] for r in rows if r["status_code"] == 200)


async def test_block_wins_over_mask_and_both_are_recorded(gateway, fakes):
    env = await start_env(gateway, fakes, SECRETS_BLOCK + PII_MASK.replace("guardrails:\n", ""))
    answer = await env.post(OPENAI, body={"model": "gpt", "messages": [
        {"role": "user", "content": f"mail a@example.com the key {GHP}"}]})
    assert answer.error("openai", 400)[0] == "input_guardrail_triggered"
    assert b"a@example.com" not in answer.body
    row = await env.row(answer.request_id)
    assert sorted((r["guardrail"], r["action"], r["category"]) for r in row["guardrail_results"]) == [
        ("no-secrets", "block", "github_token"), ("pii", "mask", "email")]
    assert orjson.dumps(row).find(b"a@example.com") < 0
