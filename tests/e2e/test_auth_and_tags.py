"""Callers (DESIGN §2) and request tags (DESIGN §4).

Every credential form authenticates, the first one present wins, the caller's sidegate credential
never travels upstream (the provider's replaces it), refusals are 401s in the caller's API shape;
`auth.mode: none`; `sidegate hash-key`; the `client` column from the User-Agent. Tags: both header
names, validation with its limits and their boundaries, stamping, `require`, `forward_upstream`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import sys
from dataclasses import dataclass
from typing import Any

import aiohttp
import anthropic
import openai
import orjson
import pytest
from google import genai
from google.genai import types as gtypes
from tests.support.gateway import BOT_KEY, KEY, key_hash
from tests.support.three_fakes import Answer, Env, providers_block

from sidegate.auth.clients import client_of

MODELS = """
models:
  gpt: {destinations: [{provider: oa}]}
  claude: {destinations: [{provider: an}]}
  m: {destinations: [{provider: ge}]}
"""

# The provider credential each fake expects, as the header it arrives in.
UPSTREAM_CREDENTIAL = {"openai": ("authorization", "Bearer up-oa"), "anthropic": ("x-api-key", "up-an"),
                       "gemini": ("x-goog-api-key", "up-ge")}
SIDEGATE_CREDENTIAL_HEADERS = ("x-sidegate-token", "x-databricks-ai-gateway-token", "authorization", "x-api-key",
                               "x-goog-api-key")
TAG_HEADER = "Databricks-Ai-Gateway-Request-Tags"
ALT_TAG_HEADER = "X-Sidegate-Request-Tags"


@dataclass(frozen=True)
class Family:
    name: str
    path: str
    body: dict[str, Any]


OPENAI = Family("openai", "/mlflow/v1/chat/completions",
                {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]})
ANTHROPIC = Family("anthropic", "/anthropic/v1/messages",
                   {"model": "claude", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]})
GEMINI = Family("gemini", "/gemini/v1beta/models/m:generateContent",
                {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
FAMILIES = [OPENAI, ANTHROPIC, GEMINI]
ids = [f.name for f in FAMILIES]

def providers(fakes: dict[str, Any]) -> str:
    return providers_block(fakes) + MODELS


@pytest.fixture
async def env(gateway, fakes) -> Env:
    return Env(await gateway(providers(fakes)), fakes)


async def post(env: Env, family: Family, headers: dict[str, str] | None = None,
               params: dict[str, str] | None = None) -> Answer:
    async with aiohttp.ClientSession() as session, session.post(
            env.url(family.path), json=family.body, headers=headers or {}, params=params) as resp:
        return Answer(resp.status, resp.headers, await resp.read())


def error_of(family: str, answer: Answer, status: int) -> tuple[str, str]:
    """(machine code, message) from an error body, checking the family's shape."""
    assert answer.status == status, answer.text
    body = answer.json()
    if family == "openai":
        err = body["error"]
        assert set(err) == {"message", "type", "param", "code"}
        return err["code"], err["message"]
    if family == "anthropic":
        assert body["type"] == "error"
        err = body["error"]
        assert err["type"] == {400: "invalid_request_error", 401: "authentication_error"}[status]
        return err["code"], err["message"]
    err = body["error"]
    assert err["code"] == status
    assert err["status"] == {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED"}[status]
    return err["details"][0]["reason"], err["message"]


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# ---------------------------------------------------------------- credential forms

FORMS: dict[str, tuple[dict[str, str], dict[str, str]]] = {  # name: (headers, query)
    "x-sidegate-token": ({"X-Sidegate-Token": KEY}, {}),
    "x-databricks-ai-gateway-token": ({"X-Databricks-AI-Gateway-Token": KEY}, {}),
    "bearer": ({"Authorization": f"Bearer {KEY}"}, {}),
    "bearer-lowercase-scheme": ({"Authorization": f"bearer {KEY}"}, {}),
    "basic": ({"Authorization": basic("token", KEY)}, {}),
    "x-api-key": ({"x-api-key": KEY}, {}),
    "x-goog-api-key": ({"x-goog-api-key": KEY}, {}),
    "?key": ({}, {"key": KEY}),
}


@pytest.mark.parametrize("family", FAMILIES, ids=ids)
@pytest.mark.parametrize("form", list(FORMS))
async def test_every_credential_form_authenticates(env, family, form):
    headers, query = FORMS[form]
    answer = await post(env, family, headers, {**query, "trace": "1"})
    assert answer.status == 200, answer.text
    row = await env.row(answer.request_id)
    assert (row["requester"], row["requester_type"], row["status_code"]) == ("alice@example.com", "user", 200)
    # upstream: the provider's credential, never the caller's sidegate key, in any header or the query
    got = env.fakes[family.name].last
    name, value = UPSTREAM_CREDENTIAL[family.name]
    assert got.headers[name] == value
    for header in SIDEGATE_CREDENTIAL_HEADERS:
        if header != name:
            assert header not in got.headers, header
    assert KEY not in str(dict(got.headers)) and KEY not in got.query_string
    assert "key" not in got.query and got.query["trace"] == "1"


@pytest.mark.parametrize(("headers", "query", "who"), [
    # a valid X-Sidegate-Token wins over an invalid Bearer (passthrough callers send both)
    ({"X-Sidegate-Token": KEY, "Authorization": "Bearer sk-ant-oat-someone-elses"}, {}, "alice@example.com"),
    # beside it, the same key again or a credential that is no sidegate key (two keys: test_ambiguous_credentials)
    ({"X-Sidegate-Token": KEY, "Authorization": f"Bearer {KEY}"}, {}, "alice@example.com"),
    ({"X-Sidegate-Token": KEY, "X-Databricks-AI-Gateway-Token": "not-a-key"}, {}, "alice@example.com"),
    ({"Authorization": f"Bearer {BOT_KEY}", "x-api-key": "sk-provider-key"}, {}, "ci-bot"),
    ({"x-api-key": BOT_KEY, "x-goog-api-key": "AIza-provider-key"}, {"key": BOT_KEY}, "ci-bot"),
    ({"x-goog-api-key": KEY}, {"key": "wrong"}, "alice@example.com"),
    # an Authorization header that carries no token is not a credential: the next form is used
    ({"Authorization": basic("token", ""), "x-api-key": KEY}, {}, "alice@example.com"),
    ({"Authorization": "Basic !!!not-base64", "x-api-key": BOT_KEY}, {}, "ci-bot"),
], ids=["sidegate-over-bad-bearer", "same-key-twice", "sidegate-over-databricks", "bearer-over-x-api-key",
        "x-api-key-over-goog", "goog-over-query", "empty-basic-skipped", "bad-basic-skipped"])
async def test_first_credential_present_wins(env, headers, query, who):
    answer = await post(env, OPENAI, headers, query)
    assert answer.status == 200, answer.text
    row = await env.row(answer.request_id)
    assert row["requester"] == who
    assert env.fakes["openai"].last.headers["authorization"] == "Bearer up-oa"


@pytest.mark.parametrize(("headers", "query"), [
    ({"X-Sidegate-Token": "wrong", "Authorization": f"Bearer {KEY}"}, {}),
    ({"Authorization": "Bearer wrong", "x-api-key": KEY}, {}),
    ({"x-api-key": "wrong"}, {"key": KEY}),
], ids=["bad-sidegate-token-first", "bad-bearer-first", "bad-x-api-key-first"])
async def test_first_credential_present_decides_even_when_wrong(env, headers, query):
    answer = await post(env, OPENAI, headers, query)
    assert error_of("openai", answer, 401)[0] == "invalid_credentials"
    assert env.upstream_calls() == 0


@pytest.mark.parametrize("family", FAMILIES, ids=ids)
@pytest.mark.parametrize(("headers", "query", "code"), [
    ({"Authorization": "Bearer sk-wrong"}, {}, "invalid_credentials"),
    ({"x-api-key": KEY + "x"}, {}, "invalid_credentials"),
    ({"x-goog-api-key": KEY.upper()}, {}, "invalid_credentials"),
    ({}, {"key": "sk-wrong"}, "invalid_credentials"),
    ({"Authorization": basic("token", "sk-wrong")}, {}, "invalid_credentials"),
    ({"Authorization": "Bearer " + key_hash(KEY)}, {}, "invalid_credentials"),  # the stored hash is no key
    ({}, {}, "missing_credentials"),
    ({"Authorization": "Bearer "}, {}, "missing_credentials"),
    ({"Authorization": f"Token {KEY}"}, {}, "missing_credentials"),
], ids=["bearer", "x-api-key", "goog-case", "query", "basic", "hash", "none", "empty-bearer", "other-scheme"])
async def test_refused_credentials_answer_401_in_family_shape(env, family, headers, query, code):
    answer = await post(env, family, headers, query)
    got_code, message = error_of(family.name, answer, 401)
    assert got_code == code
    assert KEY not in message
    assert env.upstream_calls() == 0
    row = await env.row(answer.request_id)
    assert (row["status_code"], row["error_code"], row["requester"]) == (401, code, None)


async def test_service_principal_type_is_recorded(env):
    answer = await post(env, ANTHROPIC, {"x-api-key": BOT_KEY})
    assert answer.status == 200, answer.text
    row = await env.row(answer.request_id)
    assert (row["requester"], row["requester_type"]) == ("ci-bot", "service_principal")


async def test_auth_mode_none_uses_default_principal(gateway, fakes):
    policy = providers(fakes) + """
auth: {mode: none, default_principal: svc}
principals:
  svc: {type: service_principal, groups: [apps]}
"""
    env = Env(await gateway(policy, principals=False), fakes)
    for headers in ({}, {"Authorization": "Bearer anything-at-all"}, {"X-Sidegate-Token": KEY}):
        answer = await post(env, OPENAI, headers)
        assert answer.status == 200, answer.text
        row = await env.row(answer.request_id)
        assert (row["requester"], row["requester_type"]) == ("svc", "service_principal")
        assert env.fakes["openai"].last.headers["authorization"] == "Bearer up-oa"


# ---------------------------------------------------------------- sidegate hash-key


async def hash_key_cli(stdin: bytes) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sidegate", "hash-key",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(stdin), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_hash_key_cli_prints_sha256_and_the_hash_authenticates(gateway, fakes):
    key = "sk-fresh key/with+odd=chars"
    code, out, err = await hash_key_cli(key.encode() + b"\n")
    assert code == 0, err
    assert out == "sha256:" + hashlib.sha256(key.encode()).hexdigest() + "\n"
    policy = providers(fakes) + f"""
principals:
  carol@example.com: {{keys: ["{out.strip()}"]}}
"""
    env = Env(await gateway(policy, principals=False), fakes)
    answer = await post(env, OPENAI, {"Authorization": f"Bearer {key}"})
    assert answer.status == 200, answer.text
    assert (await env.row(answer.request_id))["requester"] == "carol@example.com"


async def test_hash_key_cli_refuses_empty_input():
    code, out, err = await hash_key_cli(b"\n")
    assert code == 1 and out == ""
    assert "no key" in err


# ---------------------------------------------------------------- client from User-Agent


@pytest.mark.parametrize(("user_agent", "client"), [
    ("claude-cli/2.0.14 (external, cli)", "claude-code"),
    ("claude-cli/1.0.110 (external, sdk-ts)", "claude-code"),
    ("codex_cli_rs/0.46.0 (Mac OS 15.6.1; arm64) iTerm.app/3.6.1", "codex"),
    ("codex_exec/0.46.0 (Ubuntu 24.4.0; x86_64) unknown", "codex"),
    ("GeminiCLI/0.9.0 (darwin; arm64)", "gemini-cli"),
    ("GeminiCLI/0.9.0 (linux; x64) google-genai-sdk/1.16.0 gl-node/v22.14.0", "gemini-cli"),
    ("Cursor/1.7.44 (darwin arm64)", "cursor"),
    ("OpenAI/Python 1.109.1", "openai-python"),
    ("AsyncOpenAI/Python 2.8.0", "openai-python"),
    ("OpenAI/JS 5.23.2", "openai-node"),
    ("Anthropic/Python 0.69.0", "anthropic-python"),
    ("AsyncAnthropic/Python 0.69.0", "anthropic-python"),
    ("google-genai-sdk/1.45.0 gl-python/3.11.9", "google-genai-python"),
    ("curl/8.7.1", "curl"),
    ("Python/3.11 aiohttp/3.14.5", "python-aiohttp"),
    ("Mozilla/5.0 (X11; Linux x86_64)", "browser"),
    ("SomethingElse/1.0", "other"),
    ("", "unknown"),
    (None, "unknown"),
])
def test_client_of_user_agent(user_agent, client):
    assert client_of(user_agent) == client


async def test_client_recorded_from_real_sdks_and_raw_user_agents(env):
    oa = openai.AsyncOpenAI(base_url=env.url("/mlflow/v1"), api_key=KEY, max_retries=0)
    chat = await oa.chat.completions.create(model="gpt", messages=[{"role": "user", "content": "hi"}])
    assert chat.choices[0].message.content
    an = anthropic.AsyncAnthropic(base_url=env.url("/anthropic"), api_key=KEY, max_retries=0)
    msg = await an.messages.create(model="claude", max_tokens=8, messages=[{"role": "user", "content": "hi"}])
    assert msg.content
    ge = genai.Client(api_key=KEY, http_options=gtypes.HttpOptions(base_url=env.url("/gemini"))).aio
    gen = await ge.models.generate_content(model="m", contents="hi")
    assert gen.text
    raw = [await post(env, OPENAI, {"Authorization": f"Bearer {KEY}", "User-Agent": ua})
           for ua in ("claude-cli/2.0.14 (external, cli)", "curl/8.7.1")]
    assert all(a.status == 200 for a in raw)
    rows = await env.gw.rows()
    assert [r["client"] for r in rows] == [
        "openai-python", "anthropic-python", "google-genai-python", "claude-code", "curl"]
    assert rows[0]["user_agent"] == oa.user_agent
    assert rows[3]["user_agent"] == "claude-cli/2.0.14 (external, cli)"
    # the caller's User-Agent is forwarded upstream as is
    assert env.fakes["openai"].last.headers["user-agent"] == "curl/8.7.1"


# ---------------------------------------------------------------- request tags

STAMPED = """
tags:
  stamp: {app: tests, env: ci}
  require: [project, app]
  forward_upstream: true
"""
PLAIN = """
tags: {forward_upstream: false}
"""


@pytest.fixture
async def stamped(gateway, fakes) -> Env:
    return Env(await gateway(providers(fakes) + STAMPED), fakes)


def tags_header(tags: Any, name: str = TAG_HEADER) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEY}", name: tags if isinstance(tags, str) else json.dumps(tags)}


@pytest.mark.parametrize("header", [TAG_HEADER, ALT_TAG_HEADER, TAG_HEADER.lower()])
@pytest.mark.parametrize("family", FAMILIES, ids=ids)
async def test_tags_recorded_from_either_header(env, family, header):
    tags = {"project": "chatbot", "team": "ml-platform", "cost-center": "4711"}
    answer = await post(env, family, tags_header(tags, header))
    assert answer.status == 200, answer.text
    assert (await env.row(answer.request_id))["request_tags"] == tags


async def test_no_tags_header_records_empty_tags(env):
    answer = await post(env, OPENAI, {"Authorization": f"Bearer {KEY}"})
    assert (await env.row(answer.request_id))["request_tags"] == {}


@pytest.mark.parametrize("header", [TAG_HEADER, ALT_TAG_HEADER])
@pytest.mark.parametrize("family", FAMILIES, ids=ids)
async def test_stamped_tags_win_and_merged_tags_go_upstream(stamped, family, header):
    caller = {"project": "chatbot", "app": "spoofed", "env": "prod", "team": "a"}
    answer = await post(stamped, family, tags_header(caller, header))
    assert answer.status == 200, answer.text
    merged = {"project": "chatbot", "app": "tests", "env": "ci", "team": "a"}
    assert (await stamped.row(answer.request_id))["request_tags"] == merged
    got = stamped.fakes[family.name].last
    assert orjson.loads(got.headers[TAG_HEADER]) == merged
    assert len(got.headers.getall(TAG_HEADER)) == 1
    assert ALT_TAG_HEADER not in got.headers


@pytest.mark.parametrize("family", FAMILIES, ids=ids)
@pytest.mark.parametrize("tags", [None, {"team": "a"}, {"Project": "x"}], ids=["no-header", "other", "case"])
async def test_required_tag_missing(stamped, family, tags):
    headers = {"Authorization": f"Bearer {KEY}"} if tags is None else tags_header(tags)
    answer = await post(stamped, family, headers)
    code, message = error_of(family.name, answer, 400)
    assert code == "missing_request_tags"
    assert "'project'" in message and "'app'" not in message  # app is stamped, so present
    assert stamped.upstream_calls() == 0
    row = await stamped.row(answer.request_id)
    assert (row["status_code"], row["error_code"], row["requester"]) == (400, "missing_request_tags",
                                                                          "alice@example.com")


@pytest.mark.parametrize("header", [TAG_HEADER, ALT_TAG_HEADER])
async def test_tags_not_forwarded_when_forward_upstream_false(gateway, fakes, header):
    env = Env(await gateway(providers(fakes) + PLAIN.replace("{forward_upstream: false}",
                                                             "{forward_upstream: false, stamp: {app: t}}")), fakes)
    for family in FAMILIES:
        answer = await post(env, family, tags_header({"project": "p"}, header))
        assert answer.status == 200, answer.text
        assert (await env.row(answer.request_id))["request_tags"] == {"project": "p", "app": "t"}
        got = env.fakes[family.name].last
        assert TAG_HEADER not in got.headers and ALT_TAG_HEADER not in got.headers
        assert not any("tags" in name.lower() for name in got.headers)


def many(n: int) -> dict[str, str]:
    return {f"k{i:02d}": "v" for i in range(n)}


@pytest.mark.parametrize(("raw", "words"), [
    ("{not json", ["not valid JSON"]),
    ("", ["not valid JSON"]),
    ('["project", "x"]', ["JSON object"]),
    ('"project=x"', ["JSON object"]),
    ('{"team": 1}', ["'team'", "string value", "int"]),
    ('{"team": null}', ["'team'", "string value"]),
    ('{"team": ["a"]}', ["'team'", "string value", "list"]),
    ('{"team": {"a": "b"}}', ["'team'", "string value"]),
    (json.dumps(many(21)), ["too many", "21", "20"]),
    (json.dumps({"k" * 65: "v"}), ["key", "longer than 64"]),
    (json.dumps({"\u00e9" * 65: "v"}), ["key", "longer than 64"]),
    (json.dumps({"team": "v" * 257}), ["'team'", "longer than 256"]),
    (json.dumps({"team": "\u00e9" * 257}), ["'team'", "longer than 256"]),
    ('{"": "v"}', ["empty"]),
], ids=["json", "empty", "array", "string", "int", "null", "list", "object", "21-tags", "key-65", "key-65-unicode",
        "value-257", "value-257-unicode", "empty-key"])
@pytest.mark.parametrize("header", [TAG_HEADER, ALT_TAG_HEADER])
async def test_invalid_tags_refused_naming_the_problem(env, raw, words, header):
    answer = await post(env, OPENAI, tags_header(raw, header))
    code, message = error_of("openai", answer, 400)
    assert code == "invalid_request_tags"
    assert answer.json()["error"]["param"] == "request_tags"
    for word in words:
        assert word in message, (word, message)
    assert "v" * 100 not in message, "the refusal must not echo a long value"
    assert env.upstream_calls() == 0
    row = await env.row(answer.request_id)
    assert (row["status_code"], row["error_code"], row["request_tags"]) == (400, "invalid_request_tags", {})


@pytest.mark.parametrize("family", [ANTHROPIC, GEMINI], ids=["anthropic", "gemini"])
async def test_invalid_tags_in_family_shape(env, family):
    answer = await post(env, family, tags_header(many(21)))
    code, message = error_of(family.name, answer, 400)
    assert code == "invalid_request_tags" and "20" in message


@pytest.mark.parametrize("tags", [
    many(20),
    {"k" * 64: "v"},
    {"\u00e9" * 64: "v"},
    {"team": "v" * 256},
    {"team": "\u00e9\u4e2d" * 128},
    {"team": ""},
    {},
], ids=["20-tags", "key-64", "key-64-unicode", "value-256", "value-256-unicode", "empty-value", "empty-object"])
async def test_tags_at_the_limits_are_accepted(gateway, fakes, tags):
    env = Env(await gateway(providers(fakes) + "tags: {forward_upstream: true}\n"), fakes)
    answer = await post(env, OPENAI, tags_header(tags))
    assert answer.status == 200, answer.text
    assert (await env.row(answer.request_id))["request_tags"] == tags
    got = env.fakes["openai"].last.headers.get(TAG_HEADER)
    if tags:
        assert orjson.loads(got) == tags
    else:
        assert got is None
