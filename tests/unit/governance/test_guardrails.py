"""Guardrails from a policy: which apply to a request, and input/output checks of every API format
(block, mask in place, flag; results), with the block rendered in each caller's error shape."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from sidegate import apis
from sidegate.auth.principal import PrincipalInfo
from sidegate.governance.guardrails.checks import Guardrails
from sidegate.governance.guardrails.compiled import GuardrailBlocked
from sidegate.governance.guardrails.texts import input_texts
from sidegate.ingress.registry import FAMILIES
from sidegate.policy.model import PolicyModel

ALICE = PrincipalInfo("alice@example.com", "user", frozenset({"ml-platform"}))
BOB = PrincipalInfo("bob@example.com", "user", frozenset({"contractors"}))
GHP = "ghp_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z5A"
EMAIL = "carol@example.com"
CARD = "4111 1111 1111 1111"


def guardrails(*specs: dict[str, Any]) -> Guardrails:
    g = Guardrails.from_policy(PolicyModel.model_validate({"guardrails": list(specs)}))
    assert g is not None
    return g


SECRETS_BLOCK = {"name": "no-secrets", "phase": "input", "detect": ["secrets"], "action": "block"}
PII_MASK = {"name": "pii", "phase": "both", "detect": {"pii": ["email", "credit_card"]}, "action": "mask"}


def test_no_guardrails_costs_nothing() -> None:
    assert Guardrails.from_policy(PolicyModel()) is None


def test_match_by_model_principal_group_and_tag() -> None:
    g = guardrails(
        {"name": "all", "detect": ["secrets"]},
        {"name": "gpt", "detect": ["secrets"], "match": {"models": ["gpt-*"]}},
        {"name": "contractors", "detect": ["secrets"], "match": {"groups": ["contractors"], "principals": ["ci-bot"]}},
        {"name": "chatbot", "detect": ["secrets"], "match": {"tags": {"project": "chatbot", "env": "*"}}},
    )

    def names(principal: PrincipalInfo, service: str, tags: dict[str, str]) -> list[str]:
        active = g.for_request(principal, service, tags)
        assert active is not None and active.plan.input is not None
        return [x.name for x in active.plan.input.guardrails]

    assert names(ALICE, "claude-sonnet", {}) == ["all"]
    assert names(ALICE, "gpt-5", {}) == ["all", "gpt"]
    assert names(BOB, "claude-sonnet", {}) == ["all", "contractors"]
    assert names(PrincipalInfo("ci-bot", "service_principal", frozenset()), "x", {}) == ["all", "contractors"]
    assert names(ALICE, "x", {"project": "chatbot"}) == ["all"]
    assert names(ALICE, "x", {"project": "chatbot", "env": "dev"}) == ["all", "chatbot"]
    assert names(ALICE, "x", {"project": "other", "env": "dev"}) == ["all"]


def test_requests_alike_share_one_compiled_plan() -> None:
    g = guardrails(SECRETS_BLOCK, {**PII_MASK, "match": {"tags": {"team": "a"}}})
    first = g.for_request(ALICE, "gpt-5", {"team": "a", "other": "1"})
    second = g.for_request(ALICE, "gpt-5", {"team": "a", "other": "2"})
    third = g.for_request(ALICE, "gpt-5", {"team": "b"})
    assert first is not None and second is not None and third is not None
    assert first.plan is second.plan and first.plan is not third.plan
    assert first is not second  # results are per request


def test_no_applicable_guardrail_is_none() -> None:
    g = guardrails({**SECRETS_BLOCK, "match": {"models": ["gpt-5"]}})
    assert g.for_request(ALICE, "claude", {}) is None


def active(g: Guardrails) -> Any:
    a = g.for_request(ALICE, "gpt-5", {})
    assert a is not None
    return a


# ---------------------------------------------------------------- inputs of every format

REQUESTS: dict[str, dict[str, Any]] = {
    apis.OPENAI_CHAT: {"model": "m", "messages": [
        {"role": "system", "content": f"system knows {EMAIL}"},
        {"role": "user", "content": [{"type": "text", "text": f"card {CARD}"},
                                     {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": f'{{"to": "{EMAIL}"}}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": f"sent to {EMAIL}"},
    ]},
    apis.OPENAI_RESPONSES: {"model": "m", "instructions": f"reply to {EMAIL}", "input": [
        {"role": "user", "content": [{"type": "input_text", "text": f"card {CARD}"}]},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": f'{{"to": "{EMAIL}"}}'},
        {"type": "function_call_output", "call_id": "c1", "output": f"sent to {EMAIL}"},
    ]},
    apis.ANTHROPIC_MESSAGES: {"model": "m", "max_tokens": 10, "system": [{"type": "text", "text": f"from {EMAIL}"}],
                              "messages": [
        {"role": "user", "content": f"card {CARD}"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": f"signed {EMAIL}", "signature": "sig"},
            {"type": "tool_use", "id": "t1", "name": "mail", "input": {"to": EMAIL, "n": 1}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                      "content": [{"type": "text", "text": f"sent to {EMAIL}"}]}]},
    ]},
    apis.GEMINI_GENERATE: {"systemInstruction": {"parts": [{"text": f"from {EMAIL}"}]}, "contents": [
        {"role": "user", "parts": [{"text": f"card {CARD}"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "mail", "args": {"to": EMAIL}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "mail", "response": {"result": f"sent to {EMAIL}"}}}]},
    ]},
    apis.OPENAI_EMBEDDINGS: {"model": "m", "input": [f"card {CARD}", f"mail {EMAIL}"]},
    apis.GEMINI_BATCH_EMBED: {"requests": [{"model": "models/m", "content": {"parts": [{"text": f"mail {EMAIL}"}]}}]},
}


@pytest.mark.parametrize("api", sorted(REQUESTS))
def test_input_masks_every_text_the_model_reads(api: str) -> None:
    body = copy.deepcopy(REQUESTS[api])
    a = active(guardrails(PII_MASK))
    assert a.check_input(api, body) is True
    dumped = orjson.dumps(body).decode()
    assert EMAIL not in dumped.replace(f'"signed {EMAIL}"', "")  # only the signed thinking block keeps it
    assert CARD not in dumped
    assert "<EMAIL_ADDRESS>" in dumped
    for container, key in input_texts(api, body):  # tool arguments stay valid JSON
        if container[key].startswith("{"):
            orjson.loads(container[key])
    assert {(r["category"], r["phase"], r["action"]) for r in a.results} <= {
        ("email", "input", "mask"), ("credit_card", "input", "mask")}


def test_unchanged_body_reports_no_change() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hello there"}]}
    a = active(guardrails(PII_MASK))
    assert a.check_input(apis.OPENAI_CHAT, body) is False
    assert a.results == []


def test_block_names_guardrail_and_category_but_never_the_text() -> None:
    a = active(guardrails(SECRETS_BLOCK, {**PII_MASK, "action": "flag"}))
    body = {"model": "m", "messages": [{"role": "user", "content": f"mail {EMAIL} with token {GHP}"}]}
    with pytest.raises(GuardrailBlocked) as caught:
        a.check_input(apis.OPENAI_CHAT, body)
    err = caught.value
    assert (err.status, err.code) == (400, "input_guardrail_triggered")
    assert "no-secrets" in err.message and "github_token" in err.message and GHP not in err.message
    assert sorted((r["guardrail"], r["category"], r["action"], r["count"]) for r in a.results) == [
        ("no-secrets", "github_token", "block", 1), ("pii", "email", "flag", 1)]
    for family in FAMILIES.values():
        rendered = family.render_error(err, "req-1")
        assert b"input_guardrail_triggered" in rendered and GHP.encode() not in rendered
        assert GHP.encode() not in family.stream_error(err, "req-1")


def test_flag_records_only() -> None:
    a = active(guardrails({**PII_MASK, "action": "flag"}))
    body = {"model": "m", "messages": [{"role": "user", "content": f"{EMAIL} and {EMAIL}"}]}
    assert a.check_input(apis.OPENAI_CHAT, body) is False
    assert body["messages"][0]["content"] == f"{EMAIL} and {EMAIL}"
    assert a.results == [{"guardrail": "pii", "phase": "input", "action": "flag", "category": "email", "count": 2}]


def test_mask_wins_over_flag_on_the_same_finding() -> None:
    a = active(guardrails({**PII_MASK, "name": "shadow", "action": "flag"}, PII_MASK))
    body = {"model": "m", "messages": [{"role": "user", "content": f"hi {EMAIL}"}]}
    assert a.check_input(apis.OPENAI_CHAT, body) is True
    assert body["messages"][0]["content"] == "hi <EMAIL_ADDRESS>"
    assert {r["guardrail"] for r in a.results} == {"shadow", "pii"}


def test_phases_are_kept_apart() -> None:
    a = active(guardrails(SECRETS_BLOCK, {**PII_MASK, "phase": "output"}))
    assert a.has_input and a.has_output
    body = {"model": "m", "messages": [{"role": "user", "content": f"hi {EMAIL}"}]}
    assert a.check_input(apis.OPENAI_CHAT, body) is False  # pii applies to output only
    answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": f"token {GHP}"}}]}
    assert a.check_output(apis.OPENAI_CHAT, answer) is False  # secrets apply to input only


# ---------------------------------------------------------------- JSON answers of every format

ANSWERS: dict[str, tuple[dict[str, Any], Any]] = {
    apis.OPENAI_CHAT: ({"choices": [{"index": 0, "message": {"role": "assistant", "content": f"write {EMAIL}"}}]},
                       lambda o: o["choices"][0]["message"]["content"]),
    apis.OPENAI_RESPONSES: ({"output": [
        {"type": "reasoning", "summary": []},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": f"write {EMAIL}"}]}]},
        lambda o: o["output"][1]["content"][0]["text"]),
    apis.ANTHROPIC_MESSAGES: ({"content": [{"type": "text", "text": f"write {EMAIL}"}]},
                              lambda o: o["content"][0]["text"]),
    apis.GEMINI_GENERATE: ({"candidates": [{"content": {"role": "model", "parts": [{"text": f"write {EMAIL}"}]}}]},
                           lambda o: o["candidates"][0]["content"]["parts"][0]["text"]),
}


@pytest.mark.parametrize("api", sorted(ANSWERS))
def test_output_mask_in_json_answers(api: str) -> None:
    obj, text_of = copy.deepcopy(ANSWERS[api][0]), ANSWERS[api][1]
    a = active(guardrails(PII_MASK))
    assert a.check_output(api, obj) is True
    assert text_of(obj) == "write <EMAIL_ADDRESS>"
    assert a.results == [{"guardrail": "pii", "phase": "output", "action": "mask", "category": "email", "count": 1}]


@pytest.mark.parametrize("api", sorted(ANSWERS))
def test_output_block_in_json_answers(api: str) -> None:
    obj = copy.deepcopy(ANSWERS[api][0])
    a = active(guardrails({**PII_MASK, "action": "block"}))
    with pytest.raises(GuardrailBlocked) as caught:
        a.check_output(api, obj)
    assert caught.value.code == "output_guardrail_triggered"
    assert EMAIL not in caught.value.message


def test_stream_guard_only_where_output_is_scanned() -> None:
    assert active(guardrails(SECRETS_BLOCK)).stream(apis.OPENAI_CHAT) is None
    assert active(guardrails(PII_MASK)).stream(apis.OPENAI_EMBEDDINGS) is None
    assert active(guardrails(PII_MASK)).stream(apis.ANTHROPIC_MESSAGES) is not None
