"""A rate-limit refusal over HTTP: the limiter's 429 rendered in each caller family's error shape,
with `Retry-After` and the `x-ratelimit-*` headers, read back by an HTTP client (the limiter itself:
tests/unit/governance/test_ratelimit.py)."""

from __future__ import annotations

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from tests.unit.governance.test_ratelimit import ALICE, make

from sidegate.errors import GatewayError
from sidegate.governance.ratelimit.limiter import Reservation
from sidegate.ingress.registry import FAMILIES


@pytest.mark.parametrize("family", sorted(FAMILIES))
async def test_refusal_renders_as_429_in_the_callers_shape(family: str):
    limiter = make({"key": "user_default", "requests_per_minute": 1, "name": "per-user"})

    async def handler(request: web.Request) -> web.Response:
        try:
            reservation: Reservation = await limiter.reserve(ALICE, "gpt-5", {}, 0)
        except GatewayError as err:
            return web.Response(body=FAMILIES[family].render_error(err, "req-1"), status=err.status,
                                headers=err.headers, content_type="application/json")
        return web.json_response({"ok": True}, headers=reservation.headers())

    app = web.Application()
    app.router.add_post("/call", handler)
    async with TestClient(TestServer(app)) as client:
        ok = await client.post("/call")
        assert ok.status == 200 and ok.headers["x-ratelimit-remaining-requests"] == "0"
        refused = await client.post("/call")
        body = orjson.loads(await refused.read())
    assert refused.status == 429
    assert refused.headers["Retry-After"] == "60"
    assert refused.headers["x-ratelimit-limit-requests"] == "1"
    assert "per-user: 1 requests per minute" in orjson.dumps(body).decode()
