"""Bad input on every API family: each refusal is a clear 4xx in that family's own error shape, the
upstream is never called, a usage row records the status and error code, and nothing is ever a 500.

Families: OpenAI (unified `/mlflow/v1/chat/completions`), Anthropic (`/anthropic/v1/messages`) and
Gemini (`/gemini/v1beta/models/{model}:generateContent`).
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import pytest
from multidict import CIMultiDict
from tests.support import three_fakes
from tests.support.gateway import BOT_KEY, KEY
from tests.support.three_fakes import Answer, providers_block, start_fakes

LIMIT = 2048  # server.max_request_bytes in these tests

POLICY = """
server: {max_request_bytes: %(limit)d}
models:
  gpt: {destinations: [{provider: oa}]}
  claude: {destinations: [{provider: an}]}
  m: {destinations: [{provider: ge}]}
  bot-only: {destinations: [{provider: oa}], permissions: {principals: [ci-bot]}}
  "team-*": {destinations: [{provider: oa}], permissions: {groups: [ml-platform]}}
"""


@dataclass(frozen=True)
class Family:
    name: str
    path: str  # under the prefix
    api_type: str
    model: str

    def body(self, text: str = "hi", **extra: Any) -> dict[str, Any]:
        if self.name == "openai":
            return {"model": self.model, "messages": [{"role": "user", "content": text}], **extra}
        if self.name == "anthropic":
            return {"model": self.model, "max_tokens": 16, "messages": [{"role": "user", "content": text}],
                    **extra}
        return {"contents": [{"role": "user", "parts": [{"text": text}]}], **extra}

    def path_for(self, model: str) -> str:
        if self.name == "gemini":
            return f"/gemini/v1beta/models/{model}:generateContent"
        return self.path


OPENAI = Family("openai", "/mlflow/v1/chat/completions", "mlflow/chat/completions", "gpt")
ANTHROPIC = Family("anthropic", "/anthropic/v1/messages", "anthropic/messages", "claude")
GEMINI = Family("gemini", "/gemini/v1beta/models/m:generateContent", "gemini/generateContent", "m")
FAMILIES = [OPENAI, ANTHROPIC, GEMINI]
BODY_MODEL_FAMILIES = [OPENAI, ANTHROPIC]
ids = [f.name for f in FAMILIES]

# Anthropic `error.type` and Gemini `error.status` per HTTP status, as sidegate renders them.
ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
                   405: "invalid_request_error", 413: "request_too_large", 415: "invalid_request_error"}
GEMINI_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 404: "NOT_FOUND", 405: "INVALID_ARGUMENT",
                 413: "INVALID_ARGUMENT", 415: "INVALID_ARGUMENT"}
OPENAI_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
                405: "invalid_request_error", 413: "invalid_request_error", 415: "invalid_request_error"}


@dataclass
class Env(three_fakes.Env):
    session: aiohttp.ClientSession


@pytest.fixture
async def env(gateway, fake_upstream) -> AsyncIterator[Env]:
    fakes = await start_fakes(fake_upstream)
    gw = await gateway(providers_block(fakes) + POLICY % {"limit": LIMIT})
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {KEY}"}) as session:
        yield Env(gw, fakes, session)


async def call(env: Env, method: str, path: str, **kwargs: Any) -> Answer:
    async with env.session.request(method, env.url(path), **kwargs) as resp:
        return Answer(resp.status, resp.headers, await resp.read())


def assert_error(family: str, answer: Answer, status: int, code: str) -> dict[str, Any]:
    """The exact error shape of the family; returns the inner error object."""
    assert answer.status == status, answer.text
    assert "Traceback" not in answer.text
    assert answer.headers["Content-Type"].startswith("application/json")
    body = answer.json()
    if family == "openai":
        assert set(body) == {"error"}, body
        err = body["error"]
        assert set(err) == {"message", "type", "param", "code"}, err
        assert err["code"] == code
        assert err["type"] == OPENAI_TYPES[status]
    elif family == "anthropic":
        assert body["type"] == "error", body
        err = body["error"]
        assert {"type", "message"} <= set(err), err
        assert err["type"] == ANTHROPIC_TYPES[status]
        assert err["code"] == code
        assert body["request_id"] == answer.headers["x-sidegate-request-id"]
    else:
        assert set(body) == {"error"}, body
        err = body["error"]
        assert {"code", "message", "status"} <= set(err), err
        assert err["code"] == status
        assert err["status"] == GEMINI_STATUS[status]
        assert err["details"][0]["reason"] == code
        assert err["details"][0]["metadata"]["request_id"] == answer.headers["x-sidegate-request-id"]
    assert isinstance(err["message"], str) and err["message"]
    return err


async def assert_refused(env: Env, family: Family, answer: Answer, status: int, code: str,
                         requester: str | None = "alice@example.com",
                         api_type: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    err = assert_error(family.name, answer, status, code)
    row = await env.row(answer.request_id)
    assert row["status_code"] == status
    assert row["error_code"] == code
    assert row["api_type"] == (api_type or family.api_type)
    assert row["requester"] == requester
    assert row["destination_name"] is None and row["routing_information"] == []
    assert row["input_tokens"] == row["output_tokens"] == 0 and row["tokens_estimated"] is False
    assert env.upstream_calls() == 0, "a refused request must not reach the upstream"
    return err, row


# ---------------------------------------------------------------- controls


@pytest.mark.parametrize("family", FAMILIES, ids=ids)
async def test_valid_request_is_forwarded(env, family):
    """Control for every refusal below: the same setup forwards a good request."""
    body = orjson.dumps(family.body())
    answer = await call(env, "POST", family.path, data=body, headers={"Content-Type": "application/json"})
    assert answer.status == 200, answer.text
    assert env.fakes[family.name].last.body == body
    row = await env.row(answer.request_id)
    assert (row["status_code"], row["error_code"], row["api_type"]) == (200, None, family.api_type)


# ---------------------------------------------------------------- bodies that are not JSON objects


@pytest.mark.parametrize("family", FAMILIES, ids=ids)
@pytest.mark.parametrize("raw", [b'{"model": "gpt", "messages": [', b"{'model': 'gpt'}", b"", b"   \n",
                                 b'{"model": "gpt"} trailing', b"\xef\xbb\xbf{}"],
                         ids=["truncated", "single-quotes", "empty", "blank", "trailing", "bom"])
async def test_malformed_json(env, family, raw):
    answer = await call(env, "POST", family.path, data=raw, headers={"Content-Type": "application/json"})
    await assert_refused(env, family, answer, 400, "invalid_json")


@pytest.mark.parametrize("family", FAMILIES, ids=ids)
@pytest.mark.parametrize("raw", [b"[]", b'[{"model": "gpt"}]', b'"gpt"', b"42", b"null", b"true"])
async def test_json_that_is_not_an_object(env, family, raw):
    answer = await call(env, "POST", family.path, data=raw, headers={"Content-Type": "application/json"})
    err, _ = await assert_refused(env, family, answer, 400, "invalid_json")
    assert "object" in err["message"]


@pytest.mark.parametrize("family", FAMILIES, ids=ids)
async def test_malformed_utf8_body(env, family):
    good = orjson.dumps(family.body(text="caf\u00e9"))
    raw = good.replace("\u00e9".encode(), b"\xff\xfe")
    assert raw != good
    answer = await call(env, "POST", family.path, data=raw, headers={"Content-Type": "application/json"})
    err, _ = await assert_refused(env, family, answer, 400, "invalid_json")
    assert "UTF-8" in err["message"] or "utf-8" in err["message"]


# ---------------------------------------------------------------- content type


@pytest.mark.parametrize("family", FAMILIES, ids=ids)
@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; b=x",
                                   "application/xml"])
async def test_wrong_content_type(env, family, ctype):
    answer = await call(env, "POST", family.path, data=orjson.dumps(family.body()),
                        headers={"Content-Type": ctype})
    err, _ = await assert_refused(env, family, answer, 415, "unsupported_media_type")
    assert "application/json" in err["message"]


@pytest.mark.parametrize("family", FAMILIES, ids=ids)
@pytest.mark.parametrize("ctype", ["application/json; charset=utf-8", "Application/JSON", None])
async def test_json_content_types_accepted(env, family, ctype):
    headers = {"Content-Type": ctype} if ctype else {}
    body = orjson.dumps(family.body())
    # aiohttp adds application/octet-stream to bytes bodies unless told to skip it
    async with (aiohttp.ClientSession(headers={"Authorization": f"Bearer {KEY}"},
                                      skip_auto_headers=["Content-Type"]) as session,
                session.post(env.url(family.path), data=body, headers=headers) as resp):
        assert resp.status == 200, await resp.text()
    assert env.fakes[family.name].last.body == body


# ---------------------------------------------------------------- model


@pytest.mark.parametrize("family", BODY_MODEL_FAMILIES, ids=[f.name for f in BODY_MODEL_FAMILIES])
@pytest.mark.parametrize("model", ["<missing>", "", None, 5, ["gpt"], {"name": "gpt"}, True])
async def test_missing_or_bad_model(env, family, model):
    body = family.body()
    if model == "<missing>":
        del body["model"]
    else:
        body["model"] = model
    answer = await call(env, "POST", family.path, json=body)
    err, row = await assert_refused(env, family, answer, 400, "missing_model")
    assert "model" in err["message"]
    if family is OPENAI:
        assert err["param"] == "model"
    assert row["model_service"] is None


@pytest.mark.parametrize("family", FAMILIES, ids=ids)
async def test_unknown_model_lists_only_visible_services(env, family):
    answer = await call(env, "POST", family.path_for("nope"), json=family.body() | (
        {} if family is GEMINI else {"model": "nope"}))
    err, row = await assert_refused(env, family, answer, 404, "model_not_found")
    assert "'nope'" in err["message"]
    for visible in ("gpt", "claude", "m", "team-*"):
        assert visible in err["message"]
    assert "bot-only" not in err["message"]
    assert row["model_service"] == "nope"


@pytest.mark.parametrize("family", FAMILIES, ids=ids)
async def test_service_the_caller_may_not_use_looks_unknown(env, family):
    """alice may not use `bot-only`: the refusal is word for word that of a missing service."""
    def ask(model: str) -> Any:
        body = family.body() if family is GEMINI else family.body() | {"model": model}
        return call(env, "POST", family.path_for(model), json=body)

    hidden, missing = await ask("bot-only"), await ask("zzz-no")
    err, _ = await assert_refused(env, family, hidden, 404, "model_not_found")
    other = assert_error(family.name, missing, 404, "model_not_found")
    assert err["message"].replace("bot-only", "X") == other["message"].replace("zzz-no", "X")
    assert "team-*" in err["message"]


async def test_unknown_model_listing_follows_the_caller(env):
    """ci-bot (not in ml-platform) sees bot-only and not team-*; it may use bot-only."""
    bot = {"Authorization": f"Bearer {BOT_KEY}"}
    answer = await call(env, "POST", OPENAI.path, json=OPENAI.body() | {"model": "nope"}, headers=bot)
    err = assert_error("openai", answer, 404, "model_not_found")
    assert "bot-only" in err["message"] and "team-*" not in err["message"]
    ok = await call(env, "POST", OPENAI.path, json=OPENAI.body() | {"model": "bot-only"}, headers=bot)
    assert ok.status == 200, ok.text
    assert env.fakes["openai"].last.json()["model"] == "bot-only"


# ---------------------------------------------------------------- size limit


def body_of_size(family: Family, size: int) -> bytes:
    base = orjson.dumps(family.body(text=""))
    raw = orjson.dumps(family.body(text="a" * (size - len(base))))
    assert len(raw) == size
    return raw


async def chunked(data: bytes, piece: int = 700) -> AsyncIterator[bytes]:
    for i in range(0, len(data), piece):
        yield data[i:i + piece]
        await asyncio.sleep(0)


@pytest.mark.parametrize("family", FAMILIES, ids=ids)
@pytest.mark.parametrize("transfer", ["content-length", "chunked"])
async def test_body_over_limit(env, family, transfer):
    raw = body_of_size(family, LIMIT + 1)
    data: Any = raw if transfer == "content-length" else chunked(raw)
    async with env.session.post(env.url(family.path), data=data,
                                headers={"Content-Type": "application/json"}) as resp:
        if transfer == "chunked":
            assert resp.request_info.headers.get("Transfer-Encoding") == "chunked"
            assert "Content-Length" not in resp.request_info.headers
        answer = Answer(resp.status, resp.headers, await resp.read())
    err, _ = await assert_refused(env, family, answer, 413, "request_too_large")
    assert str(LIMIT) in err["message"]


@pytest.mark.parametrize("family", FAMILIES, ids=ids)
@pytest.mark.parametrize("transfer", ["content-length", "chunked"])
async def test_body_at_limit_is_forwarded_unchanged(env, family, transfer):
    raw = body_of_size(family, LIMIT)
    data: Any = raw if transfer == "content-length" else chunked(raw)
    answer = await call(env, "POST", family.path, data=data, headers={"Content-Type": "application/json"})
    assert answer.status == 200, answer.text
    assert env.fakes[family.name].last.body == raw


async def test_gzip_request_body_is_forwarded_decoded(env):
    """aiohttp decodes a gzip request body; what goes upstream is the decoded body, so the
    Content-Encoding header must not go with it (the upstream would try to gunzip plain JSON)."""
    raw = orjson.dumps(OPENAI.body(text="compressed"))
    answer = await call(env, "POST", OPENAI.path, data=gzip.compress(raw),
                        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert answer.status == 200, answer.text
    got = env.fakes["openai"].last
    assert got.body == raw
    assert "content-encoding" not in got.headers


# ---------------------------------------------------------------- tags, paths, methods


@pytest.mark.parametrize("family", FAMILIES, ids=ids)
@pytest.mark.parametrize("header", ["{not json", '["a"]', '{"team": 1}'])
async def test_invalid_tags_header(env, family, header):
    answer = await call(env, "POST", family.path, json=family.body(),
                        headers={"Databricks-Ai-Gateway-Request-Tags": header})
    err, row = await assert_refused(env, family, answer, 400, "invalid_request_tags")
    assert "tag" in err["message"]
    assert row["request_tags"] == {}


@pytest.mark.parametrize(("family", "path"), [
    (OPENAI, "/mlflow/v1/chat/completion"),
    (OPENAI, "/mlflow/v2/chat/completions"),
    (OPENAI, "/openai/v1/files"),
    (OPENAI, "/nothing/here"),
    (ANTHROPIC, "/anthropic/v1/complete"),
    (ANTHROPIC, "/anthropic/v1/messages/batches"),
    (GEMINI, "/gemini/v1beta/models/m:frobnicate"),
    (GEMINI, "/gemini/v1beta/models/:generateContent"),
    (GEMINI, "/gemini/v1beta/cachedContents"),
], ids=lambda v: v if isinstance(v, str) else v.name)
async def test_unknown_path(env, family, path):
    answer = await call(env, "POST", path, json=family.body())
    err, _ = await assert_refused(env, family, answer, 404, "not_found", requester=None, api_type="unknown")
    assert path in err["message"]


@pytest.mark.parametrize(("family", "method"), [(OPENAI, "GET"), (OPENAI, "PUT"), (ANTHROPIC, "GET"),
                                                (ANTHROPIC, "DELETE"), (GEMINI, "GET"), (GEMINI, "PATCH")],
                         ids=lambda v: v if isinstance(v, str) else v.name)
async def test_wrong_method(env, family, method):
    answer = await call(env, method, family.path)
    err, _ = await assert_refused(env, family, answer, 405, "method_not_allowed", requester=None)
    assert answer.headers["Allow"] == "POST"
    assert method in err["message"]


async def test_wrong_method_on_model_list(env):
    answer = await call(env, "POST", "/mlflow/v1/models", json={})
    assert_error("openai", answer, 405, "method_not_allowed")
    row = await env.row(answer.request_id)
    assert (row["status_code"], row["error_code"], row["api_type"]) == (405, "method_not_allowed", "mlflow/models")
    assert "GET" in answer.headers["Allow"]
    ok = await call(env, "GET", "/mlflow/v1/models")
    assert ok.status == 200
    assert {m["id"] for m in ok.json()["data"]} == {"gpt", "claude", "m", "team-*"}


# ---------------------------------------------------------------- bytes no client library would send


async def raw_http(env: Env, request: bytes) -> Answer:
    """Send exact bytes (aiohttp's client refuses invalid header bytes) and read the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", env.gw.server.port)
    try:
        writer.write(request)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip()] = value.strip()
    return Answer(int(lines[0].split()[1]), CIMultiDict(headers), body)


def raw_request(env: Env, family: Family, extra_headers: bytes = b"", body: bytes | None = None) -> bytes:
    body = orjson.dumps(family.body()) if body is None else body
    return (b"POST " + (env.gw.prefix + family.path).encode() + b" HTTP/1.1\r\nHost: x\r\n"
            + f"Authorization: Bearer {KEY}\r\nContent-Type: application/json\r\n".encode()
            + extra_headers
            + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)


@pytest.mark.parametrize("family", FAMILIES, ids=ids)
async def test_malformed_utf8_in_user_agent_is_recorded(env, family):
    """A User-Agent that is not UTF-8 must neither fail the request nor poison the usage store."""
    answer = await raw_http(env, raw_request(env, family, b"User-Agent: curl/8.0 \xff\xfe\r\n"))
    assert answer.status == 200, answer.text
    row = await env.row(answer.request_id)
    assert row["status_code"] == 200
    assert row["client"] == "curl"
    assert row["user_agent"] == "curl/8.0 \ufffd\ufffd"
    # the store keeps working for the next request
    ok = await call(env, "POST", family.path, json=family.body())
    assert (await env.row(ok.request_id))["status_code"] == 200


@pytest.mark.parametrize("family", FAMILIES, ids=ids)
async def test_malformed_utf8_in_tags_header(env, family):
    answer = await raw_http(env, raw_request(
        env, family, b'Databricks-Ai-Gateway-Request-Tags: {"team": "caf\xff"}\r\n'))
    await assert_refused(env, family, answer, 400, "invalid_request_tags")


@pytest.mark.parametrize("family", FAMILIES, ids=ids)
async def test_malformed_utf8_in_forwarded_header(env, family):
    """A header sidegate forwards as is, with bytes that are not UTF-8: no 500."""
    answer = await raw_http(env, raw_request(env, family, b"X-Trace-Note: caf\xe9 \xff\r\n"))
    assert answer.status == 200, answer.text
    assert "x-trace-note" in env.fakes[family.name].last.headers
    assert (await env.row(answer.request_id))["status_code"] == 200


async def test_malformed_utf8_model_in_gemini_url(env):
    path = (env.gw.prefix + "/gemini/v1beta/models/%FF%FE:generateContent").encode()
    body = orjson.dumps(GEMINI.body())
    answer = await raw_http(env, b"POST " + path + b" HTTP/1.1\r\nHost: x\r\n"
                            + f"x-goog-api-key: {KEY}\r\nContent-Type: application/json\r\n"
                              f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
    await assert_refused(env, GEMINI, answer, 404, "model_not_found")
