"""Credentials and request tags that could mean two things are refused, not guessed (DESIGN §2, §4).

One credential header (or `?key=`) sent twice is a 401 `ambiguous_credentials`, whatever its values;
two credential headers naming two different sidegate keys likewise. A sidegate key beside a
credential that is no sidegate key (a passthrough caller's provider credential) stays accepted.
A tags header sent twice, or both tags headers with different tags, is a 400 naming the problem.
Duplicate headers need raw requests: aiohttp sends a list of header pairs as given (spelt alike: a pair
whose name differs from an earlier one only in case replaces it).
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import anthropic
import openai
import pytest
from tests.e2e.test_auth_and_tags import ALT_TAG_HEADER, FAMILIES, OPENAI, TAG_HEADER, Family, error_of, ids, providers
from tests.support.gateway import BOT_KEY, KEY
from tests.support.three_fakes import Answer, Env, providers_block

Headers = list[tuple[str, str]]


@pytest.fixture
async def env(gateway, fakes) -> Env:
    return Env(await gateway(providers(fakes)), fakes)


async def post(env: Env, family: Family, headers: Headers, params: dict[str, Any] | list[tuple[str, str]] | None = None,
               path: str | None = None) -> Answer:
    async with aiohttp.ClientSession() as session, session.post(
            env.url(path or family.path), json=family.body, headers=headers, params=params) as resp:
        return Answer(resp.status, resp.headers, await resp.read())


async def assert_refused(env: Env, family: Family, answer: Answer, code: str, status: int, *words: str) -> str:
    got_code, message = error_of(family.name, answer, status)
    assert got_code == code, message
    for word in words:
        assert word in message, (word, message)
    assert KEY not in message and BOT_KEY not in message, "a refusal never quotes a credential"
    assert env.upstream_calls() == 0
    row = await env.row(answer.request_id)
    assert (row["status_code"], row["error_code"]) == (status, code)
    return message


# ---------------------------------------------------------------- one credential header twice

REPEATED: dict[str, tuple[Headers, list[tuple[str, str]]]] = {
    "authorization-valid-then-wrong": ([("Authorization", f"Bearer {KEY}"), ("Authorization", "Bearer wrong")], []),
    "authorization-wrong-then-valid": ([("Authorization", "Bearer wrong"), ("Authorization", f"Bearer {KEY}")], []),
    "authorization-same-value": ([("Authorization", f"Bearer {KEY}"), ("Authorization", f"Bearer {KEY}")], []),
    "authorization-bearer-and-basic": ([("Authorization", f"Bearer {KEY}"), ("Authorization", "Basic Og==")], []),
    "x-api-key-two-keys": ([("x-api-key", KEY), ("x-api-key", BOT_KEY)], []),
    "x-api-key-same-value": ([("x-api-key", KEY), ("x-api-key", KEY)], []),
    "x-goog-api-key": ([("x-goog-api-key", KEY), ("x-goog-api-key", "wrong")], []),
    "x-sidegate-token": ([("X-Sidegate-Token", KEY), ("X-Sidegate-Token", KEY)], []),
    "x-databricks-token": ([("X-Databricks-AI-Gateway-Token", KEY), ("X-Databricks-AI-Gateway-Token", "x")], []),
    "?key-twice": ([], [("key", KEY), ("key", KEY)]),
    # the repeated header is refused even when an earlier credential would have decided
    "sidegate-token-then-repeated-bearer": (
        [("X-Sidegate-Token", KEY), ("Authorization", "Bearer a"), ("Authorization", "Bearer b")], []),
}


@pytest.mark.parametrize("family", FAMILIES, ids=ids)
@pytest.mark.parametrize("case", list(REPEATED))
async def test_a_credential_header_sent_twice_is_ambiguous(env, family, case):
    headers, query = REPEATED[case]
    answer = await post(env, family, headers, query)
    message = await assert_refused(env, family, answer, "ambiguous_credentials", 401, "2 times")
    where = "?key=" if case == "?key-twice" else (headers[-1][0].lower())
    assert where in message
    assert (await env.row(answer.request_id))["requester"] is None


# ---------------------------------------------------------------- two headers, two keys

TWO_KEYS: dict[str, tuple[Headers, list[tuple[str, str]]]] = {
    "sidegate-token-and-bearer": ([("X-Sidegate-Token", KEY), ("Authorization", f"Bearer {BOT_KEY}")], []),
    "sidegate-and-databricks": ([("X-Sidegate-Token", KEY), ("X-Databricks-AI-Gateway-Token", BOT_KEY)], []),
    "bearer-and-x-api-key": ([("Authorization", f"Bearer {BOT_KEY}"), ("x-api-key", KEY)], []),
    "basic-and-goog": ([("Authorization", "Basic " + "dG9rZW46c2stdGVzdC1ib3Q="), ("x-goog-api-key", KEY)], []),
    "header-and-?key": ([("x-goog-api-key", KEY)], [("key", BOT_KEY)]),
    "?key-and-header": ([("x-api-key", BOT_KEY)], [("key", KEY)]),
}


@pytest.mark.parametrize("family", FAMILIES, ids=ids)
@pytest.mark.parametrize("case", list(TWO_KEYS))
async def test_two_headers_naming_two_keys_are_ambiguous(env, family, case):
    headers, query = TWO_KEYS[case]
    answer = await post(env, family, headers, query)
    message = await assert_refused(env, family, answer, "ambiguous_credentials", 401, "two different sidegate keys")
    first = headers[0][0].lower()
    second = "?key" if query else headers[1][0].lower()
    assert first in message and second in message


async def test_the_same_key_in_two_headers_is_one_caller(env):
    headers = [("X-Sidegate-Token", KEY), ("Authorization", f"Bearer {KEY}"), ("x-api-key", KEY)]
    answer = await post(env, OPENAI, headers, [("key", KEY)])
    assert answer.status == 200, answer.text
    assert (await env.row(answer.request_id))["requester"] == "alice@example.com"


async def test_sdk_with_a_second_key_in_its_default_headers_is_refused(env):
    """What a user meets when an SDK's key and a header from the environment disagree."""
    async with openai.AsyncOpenAI(base_url=env.url("/mlflow/v1"), api_key=KEY, max_retries=0,
                                  default_headers={"x-api-key": BOT_KEY}) as client:
        with pytest.raises(openai.AuthenticationError) as caught:
            await client.chat.completions.create(model="gpt", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.code == "ambiguous_credentials"
    async with anthropic.AsyncAnthropic(base_url=env.url("/anthropic"), api_key=KEY, max_retries=0,
                                        default_headers={"X-Sidegate-Token": BOT_KEY}) as claude:
        with pytest.raises(anthropic.AuthenticationError) as refused:
            await claude.messages.create(model="claude", max_tokens=8, messages=[{"role": "user", "content": "hi"}])
    assert refused.value.body["error"]["code"] == "ambiguous_credentials"  # type: ignore[index]
    assert env.upstream_calls() == 0


async def test_passthrough_provider_credential_beside_the_sidegate_token_is_accepted(gateway, fakes):
    """Claude Code on a subscription: its own credential goes to the provider, sidegate's token names the caller."""
    policy = providers_block(fakes) + f"""
  max: {{kind: anthropic, base_url: "{fakes['anthropic'].base_url}", credentials: passthrough}}
models:
  claude: {{destinations: [{{provider: max}}]}}
"""
    env = Env(await gateway(policy), fakes)
    async with anthropic.AsyncAnthropic(base_url=env.url("/anthropic"), api_key="up-an", max_retries=0,
                                        default_headers={"X-Sidegate-Token": KEY}) as claude:
        message = await claude.messages.create(
            model="claude", max_tokens=8, messages=[{"role": "user", "content": "hi"}])
    assert message.content
    got = fakes["anthropic"].last
    credentials = [(k.lower(), v) for k, v in got.headers.items() if k.lower() in ("authorization", "x-api-key")]
    assert credentials in ([("authorization", "Bearer up-an")], [("x-api-key", "up-an")])  # as the SDK sent it
    assert "x-sidegate-token" not in got.headers
    rows = await env.gw.rows()
    assert rows[-1]["requester"] == "alice@example.com"
    # the same caller's provider credential sent twice is still refused before anything is forwarded
    fakes["anthropic"].clear()
    answer = await post(env, FAMILIES[1], [("X-Sidegate-Token", KEY), ("x-api-key", "up-an"), ("x-api-key", "up-an")])
    await assert_refused(env, FAMILIES[1], answer, "ambiguous_credentials", 401, "x-api-key")


async def test_auth_mode_none_reads_no_credential(gateway, fakes):
    env = Env(await gateway(providers(fakes) + "auth: {mode: none, default_principal: alice@example.com}\n"), fakes)
    answer = await post(env, OPENAI, [("Authorization", "Bearer a"), ("Authorization", "Bearer b")])
    assert answer.status == 200, answer.text


# ---------------------------------------------------------------- request tags


def tag_headers(*pairs: tuple[str, Any]) -> Headers:
    return [("Authorization", f"Bearer {KEY}")] + [
        (name, value if isinstance(value, str) else json.dumps(value)) for name, value in pairs]


@pytest.mark.parametrize("family", FAMILIES, ids=ids)
@pytest.mark.parametrize("header", [TAG_HEADER, ALT_TAG_HEADER])
@pytest.mark.parametrize("second", [{"project": "b"}, {"project": "a"}], ids=["different", "same"])
async def test_a_tags_header_sent_twice_is_refused(env, family, header, second):
    answer = await post(env, family, tag_headers((header, {"project": "a"}), (header, second)))
    message = await assert_refused(env, family, answer, "invalid_request_tags", 400, header.lower(), "2 times")
    assert (await env.row(answer.request_id))["request_tags"] == {}
    assert message


@pytest.mark.parametrize("family", FAMILIES, ids=ids)
async def test_both_tags_headers_with_different_tags_are_refused(env, family):
    answer = await post(env, family, tag_headers((ALT_TAG_HEADER, {"project": "b"}), (TAG_HEADER, {"project": "a"})))
    await assert_refused(env, family, answer, "invalid_request_tags", 400,
                         TAG_HEADER.lower(), ALT_TAG_HEADER.lower(), "different tags")


@pytest.mark.parametrize(("first", "second"), [
    ('{"project": "a", "team": "x"}', '{"project": "a", "team": "x"}'),
    ('{"project": "a", "team": "x"}', '{ "team":"x",  "project":"a" }'),
], ids=["same-bytes", "same-tags-other-spelling"])
async def test_both_tags_headers_with_the_same_tags_are_accepted(env, first, second):
    answer = await post(env, OPENAI, tag_headers((TAG_HEADER, first), (ALT_TAG_HEADER, second)))
    assert answer.status == 200, answer.text
    assert (await env.row(answer.request_id))["request_tags"] == {"project": "a", "team": "x"}


async def test_second_tags_header_invalid_is_named(env):
    answer = await post(env, OPENAI, tag_headers((TAG_HEADER, {"project": "a"}), (ALT_TAG_HEADER, "{nope")))
    await assert_refused(env, OPENAI, answer, "invalid_request_tags", 400, ALT_TAG_HEADER.lower(), "not valid JSON")
