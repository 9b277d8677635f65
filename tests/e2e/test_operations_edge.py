"""The operations edge over real connections: JSON with a stable code for every path outside the
API (on the API port and the admin port), operations off the API port when `admin_listen` is set,
and the protocol-level refusals (431 for a header over `server.max_header_bytes`, 414, 400) in the
caller's shape without echoing what was sent."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from tests.support.gateway import KEY

from sidegate.app import build_admin_app, build_app
from sidegate.edge import EdgeRunner
from sidegate.policy.model import MAX_HEADER_BYTES
from sidegate.state import AppState

AUTH = {"Authorization": f"Bearer {KEY}"}
MODELS = "providers: {echo: {kind: mock}}\nmodels: {echo: {destinations: [{provider: echo}]}}\n"
SECRET = "sk-live-do-not-echo-" + "q" * 40

Served = Callable[[AppState, bool], Awaitable[str]]


@pytest_asyncio.fixture
async def serve() -> AsyncIterator[Served]:
    """`origin = await serve(state, admin)`: the API app (or the admin app) of `state` served as
    `sidegate serve` serves it, on a loopback port."""
    runners: list[web.AppRunner] = []

    async def start(state: AppState, admin: bool = False) -> str:
        app = build_admin_app(state) if admin else build_app(state)
        limit = state.policy.model.server.max_header_bytes
        runner = EdgeRunner(app, prefix=state.policy.prefix, max_header_bytes=limit, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        return f"http://127.0.0.1:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()


async def call(method: str, url: str, **kwargs) -> tuple[int, str, dict, dict[str, str]]:
    async with aiohttp.ClientSession() as http, http.request(method, url, **kwargs) as r:
        text = await r.text()
        body = json.loads(text) if text else {}
        return r.status, r.content_type, body, dict(r.headers)


async def raw(origin: str, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are; the answer's status, headers and body."""
    host, port = origin.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(data)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def openai_code(body: dict) -> str:
    return body["error"]["code"]


# ------------------------------------------------------------------ stray paths, API port


@pytest.mark.parametrize(("method", "path", "status", "code"), [
    ("GET", "/", 404, "not_found"),
    ("GET", "//double//slashes", 404, "not_found"),
    ("GET", "/favicon.ico", 404, "not_found"),
    ("POST", "/ai-gateway", 405, "method_not_allowed"),
    ("DELETE", "/ai-gateway/openai/v1", 405, "method_not_allowed"),
    ("POST", "/healthz", 405, "method_not_allowed"),
    ("DELETE", "/metrics", 405, "method_not_allowed"),
    ("PUT", "/readyz", 405, "method_not_allowed"),
    ("GET", "/ai-gateway/nothing/here", 404, "not_found"),
])
async def test_every_stray_path_answers_json_with_a_stable_code(gateway, serve, method, path, status, code):
    gw = await gateway(MODELS)
    origin = await serve(gw.state)
    got, content_type, body, headers = await call(method, origin + path, headers=AUTH)
    assert (got, content_type, openai_code(body)) == (status, "application/json", code)
    assert body["error"]["message"] and headers["x-sidegate-request-id"]
    if status == 405:
        assert headers["Allow"] == "GET, HEAD"


async def test_a_stray_path_gets_the_shape_of_the_api_it_looks_like(gateway, serve):
    gw = await gateway(MODELS)
    origin = await serve(gw.state)
    status, _, body, _ = await call("POST", origin + "/anthropic/v1/messages", json={})  # prefix forgotten
    assert status == 404 and body["type"] == "error" and body["error"]["type"] == "not_found_error"
    assert "API paths start with /ai-gateway/" in body["error"]["message"]
    status, _, body, _ = await call("POST", origin + "/gemini/v1beta/models/x:generateContent", json={})
    assert status == 404 and body["error"]["status"] == "NOT_FOUND" and body["error"]["code"] == 404


async def test_base_url_probes_answer_the_service_document(gateway, serve):
    gw = await gateway(MODELS)
    origin = await serve(gw.state)
    for path in ("/ai-gateway", "/ai-gateway/", "/ai-gateway/anthropic", "/ai-gateway/mlflow/v1/"):
        status, content_type, body, _ = await call("GET", origin + path)
        assert (status, content_type, body) == (200, "application/json", {"service": "sidegate"})
    async with aiohttp.ClientSession() as http, http.head(origin + "/ai-gateway/anthropic") as r:
        assert r.status == 200  # Claude Code's probe


async def test_a_refused_method_on_a_base_url_is_recorded(gateway, serve):
    gw = await gateway(MODELS)
    origin = await serve(gw.state)
    status, _, body, _ = await call("POST", origin + "/ai-gateway/anthropic", headers=AUTH, json={})
    assert status == 405 and body["error"]["code"] == "method_not_allowed" and body["type"] == "error"
    row = await gw.row()
    assert (row["status_code"], row["error_code"]) == (405, "method_not_allowed")


async def test_with_an_empty_prefix_operations_keep_their_405(gateway, serve):
    gw = await gateway(MODELS + "server: {path_prefix: ''}\n")
    origin = await serve(gw.state)
    assert (await call("GET", origin + "/"))[2] == {"service": "sidegate"}
    status, _, body, _ = await call("POST", origin + "/healthz")
    assert (status, openai_code(body)) == (405, "method_not_allowed")
    status, _, body, _ = await call("GET", origin + "/nothing")
    assert (status, openai_code(body)) == (404, "not_found")


# ------------------------------------------------------------------ the admin port


async def test_admin_listen_keeps_operations_off_the_api_port(gateway, serve):
    gw = await gateway(MODELS + 'server: {admin_listen: "127.0.0.1:9464"}\n'
                       + "telemetry: {metrics: {labels: [principal]}}\n")
    api, admin = await serve(gw.state), await serve(gw.state, True)
    assert (await call("POST", api + "/ai-gateway/mlflow/v1/chat/completions", headers=AUTH,
                       json={"model": "echo", "messages": [{"role": "user", "content": "hi"}]}))[0] == 200
    for path in ("/metrics", "/readyz", "/healthz"):
        status, content_type, body, _ = await call("GET", api + path)
        assert (status, content_type, openai_code(body)) == (404, "application/json", "not_found"), path
    async with aiohttp.ClientSession() as http:
        async with http.get(admin + "/metrics") as r:
            assert r.status == 200 and 'principal="alice@example.com"' in await r.text()
        for path in ("/healthz", "/readyz"):
            async with http.get(admin + path) as r:
                assert r.status == 200, path


async def test_healthz_can_stay_on_the_api_port_for_load_balancers(gateway, serve):
    gw = await gateway(MODELS + 'server: {admin_listen: "127.0.0.1:9464", healthz_on_listen: true}\n')
    api = await serve(gw.state)
    assert (await call("GET", api + "/healthz"))[:3] == (200, "application/json", {"status": "ok"})
    assert (await call("GET", api + "/readyz"))[0] == 404
    assert (await call("GET", api + "/metrics"))[0] == 404


@pytest.mark.parametrize(("method", "path", "status", "code"), [
    ("GET", "/", 404, "not_found"),
    ("GET", "//double//slashes", 404, "not_found"),
    ("GET", "/ai-gateway/mlflow/v1/models", 404, "not_found"),
    ("POST", "/healthz", 405, "method_not_allowed"),
    ("DELETE", "/metrics", 405, "method_not_allowed"),
])
async def test_admin_port_answers_json_for_the_rest(gateway, serve, method, path, status, code):
    gw = await gateway(MODELS + 'server: {admin_listen: "127.0.0.1:9464"}\n')
    admin = await serve(gw.state, True)
    got, content_type, body, _ = await call(method, admin + path)
    assert (got, content_type, openai_code(body)) == (status, "application/json", code)


# ------------------------------------------------------------------ refused before parsing

FAMILY_PATHS = {
    "openai": "/ai-gateway/mlflow/v1/chat/completions",
    "anthropic": "/ai-gateway/anthropic/v1/messages",
    "gemini": "/ai-gateway/gemini/v1beta/models/echo:generateContent",
}


def code_of(family: str, body: dict) -> str:
    return body["error"]["details"][0]["reason"] if family == "gemini" else body["error"]["code"]


@pytest.mark.parametrize("family", list(FAMILY_PATHS))
async def test_a_header_over_the_limit_gets_431_in_the_callers_shape_without_echo(gateway, serve, family):
    gw = await gateway(MODELS)
    origin = await serve(gw.state)
    tags = json.dumps({"team": SECRET * (MAX_HEADER_BYTES // len(SECRET) + 1)})
    status, content_type, body, headers = await call(
        "POST", origin + FAMILY_PATHS[family], headers={**AUTH, "Databricks-Ai-Gateway-Request-Tags": tags},
        json={"model": "echo"})
    assert (status, content_type) == (431, "application/json")
    assert SECRET not in json.dumps(body) and "qqqq" not in json.dumps(body)
    assert code_of(family, body) == "request_header_too_large" and headers["x-sidegate-request-id"]
    if family == "anthropic":
        assert body["type"] == "error"
    if family == "gemini":
        assert body["error"]["code"] == 431


async def test_the_limit_is_a_setting(gateway, serve):
    gw = await gateway(MODELS + "server: {max_header_bytes: 2048}\n")
    origin = await serve(gw.state)
    status, _, body, _ = await call("GET", origin + "/ai-gateway/mlflow/v1/models",
                                    headers={**AUTH, "X-Long": "a" * 2100})
    assert (status, openai_code(body)) == (431, "request_header_too_large")
    assert "2048" in body["error"]["message"]
    assert (await call("GET", origin + "/ai-gateway/mlflow/v1/models", headers={**AUTH, "X-Long": "a" * 1900}))[0] \
        == 200


async def test_a_full_twenty_tag_header_fits_the_default_limit(gateway, serve):
    """20 tags, keys of 64 and values of 256 characters outside the BMP: the worst JSON escaping."""
    gw = await gateway(MODELS)
    origin = await serve(gw.state)
    tags = {f"{i:02d}" + "\U0001f600" * 62: "\U0001f680" * 256 for i in range(20)}
    header = json.dumps(tags)  # ensure_ascii: each of those characters is a 12-byte surrogate pair
    assert len("Databricks-Ai-Gateway-Request-Tags") + len(header) > 75_000
    status, _, body, _ = await call(
        "POST", origin + FAMILY_PATHS["openai"], headers={**AUTH, "Databricks-Ai-Gateway-Request-Tags": header},
        json={"model": "echo", "messages": [{"role": "user", "content": "hi"}]})
    assert status == 200, body
    assert (await gw.row())["request_tags"] == tags


async def test_a_url_over_the_limit_gets_414(gateway, serve):
    gw = await gateway(MODELS + "server: {max_header_bytes: 4096}\n")
    origin = await serve(gw.state)
    status, headers, body = await raw(origin, b"GET /ai-gateway/anthropic/v1/" + b"x" * 5000 + b"?key="
                                      + SECRET.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = json.loads(body)
    assert (status, headers["content-type"]) == (414, "application/json")
    assert answer["type"] == "error" and answer["error"]["code"] == "request_uri_too_long"
    assert b"xxxx" not in body and SECRET.encode() not in body


@pytest.mark.parametrize("data", [
    b"GARBAGE\r\n\r\n",
    b"GET /ai-gateway/mlflow/v1/models HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
    b"POST /ai-gateway/mlflow/v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
])
async def test_an_unparsable_request_gets_a_json_400(gateway, serve, data):
    gw = await gateway(MODELS)
    origin = await serve(gw.state)
    status, headers, body = await raw(origin, data)
    assert (status, headers["content-type"]) == (400, "application/json")
    assert json.loads(body)["error"]["code"] == "bad_request"
    assert b"abc" not in body and b"Bad Header" not in body


async def test_too_many_headers_is_431(gateway, serve):
    gw = await gateway(MODELS)
    origin = await serve(gw.state)
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(200))
    status, _, body = await raw(origin, b"GET /ai-gateway/gemini/v1beta/models HTTP/1.1\r\nHost: x\r\n" + many
                                + b"\r\n")
    answer = json.loads(body)["error"]
    assert (status, answer["code"], answer["details"][0]["reason"]) == (431, 431, "request_header_too_large")


async def test_an_operations_handler_failing_answers_a_json_500(gateway, serve, monkeypatch):
    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("secret internals")

    monkeypatch.setattr("sidegate.app.healthz", broken)
    gw = await gateway(MODELS)
    origin = await serve(gw.state)
    status, content_type, body, _ = await call("GET", origin + "/healthz")
    assert (status, content_type, openai_code(body)) == (500, "application/json", "internal_error")
    assert "secret internals" not in json.dumps(body) and "Traceback" not in json.dumps(body)


@pytest.mark.parametrize(("admin", "policy"), [(False, ""), (False, "server: {path_prefix: ''}\n"), (True, "")])
async def test_a_target_no_path_pattern_matches_answers_json(gateway, serve, admin, policy):
    gw = await gateway(MODELS + policy)
    origin = await serve(gw.state, admin)
    status, headers, body = await raw(origin, b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert (status, headers["content-type"], json.loads(body)["error"]["code"]) == (404, "application/json",
                                                                                   "not_found")
