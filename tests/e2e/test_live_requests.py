"""The registry of live requests that shutdown ends (`sidegate.upstream.live`): only its own
cancellation is taken back, so a request it ends can still answer; and a request that arrives
after the grace period, on a connection still open, is refused in its caller's shape and recorded."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from tests.support.gateway import KEY, GatewayFactory

from sidegate.upstream.live import LiveRequests


async def test_only_the_cancellation_of_end_all_is_taken_back() -> None:
    live = LiveRequests()
    outcomes: dict[str, str] = {}

    async def request(name: str) -> None:
        task = live.enter()
        try:
            await asyncio.Event().wait()  # waiting on an upstream that does not answer
        except asyncio.CancelledError:
            if not live.ended():
                outcomes[name] = "cut"
                raise
            await asyncio.sleep(0.01)  # the request goes on (writing its answer): nothing cancels it now
            outcomes[name] = "answered"
        finally:
            live.leave(task)

    ended, cut = asyncio.create_task(request("ended")), asyncio.create_task(request("cut"))
    await asyncio.sleep(0)
    assert len(live) == 2 and not live.ending
    cut.cancel()  # not shutdown's doing: e.g. the server cancelling a handler
    await asyncio.sleep(0)
    assert live.end_all() == 1 and live.ending
    await asyncio.wait([ended, cut])
    assert outcomes == {"cut": "cut", "ended": "answered"}
    assert cut.cancelled() and not ended.cancelled() and ended.result() is None
    assert ended.cancelling() == 0
    assert len(live) == 0
    assert live.end_all() == 0


async def test_a_request_after_the_grace_period_is_refused_in_its_callers_shape(
        gateway: GatewayFactory, fake_upstream: Any) -> None:
    anthropic, gemini = await fake_upstream("anthropic"), await fake_upstream("gemini")
    gw = await gateway(f"""
        providers:
          an: {{kind: anthropic, base_url: '{anthropic.base_url}', api_key: k}}
          ge: {{kind: gemini, base_url: '{gemini.base_url}', api_key: k}}
        models:
          claude: {{destinations: [{{provider: an}}]}}
          gem: {{destinations: [{{provider: ge}}]}}
    """)
    assert gw.state.live.end_all() == 0  # the grace period is over; this connection is still open
    headers = {"Authorization": f"Bearer {KEY}"}
    async with aiohttp.ClientSession() as http:
        body = {"model": "claude", "max_tokens": 5, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        async with http.post(gw.base + "/anthropic/v1/messages", json=body, headers=headers) as r:
            assert (r.status, r.headers["Retry-After"]) == (503, "1")
            claude_error = await r.json()
        async with http.post(gw.base + "/gemini/v1beta/models/gem:generateContent", headers=headers,
                             json={"contents": [{"parts": [{"text": "hi"}]}]}) as r:
            assert r.status == 503
            gemini_error = await r.json()
    assert claude_error["type"] == "error" and claude_error["error"]["code"] == "server_shutting_down"
    assert claude_error["error"]["message"] == "sidegate is shutting down; retry the request"
    assert gemini_error["error"]["status"] == "UNAVAILABLE"
    assert gemini_error["error"]["details"][0]["reason"] == "server_shutting_down"
    assert not anthropic.received and not gemini.received  # no upstream is called any more
    rows = await gw.rows()
    assert [(row["status_code"], row["error_code"], row["api_type"]) for row in rows] == [
        (503, "server_shutting_down", "anthropic/messages"),
        (503, "server_shutting_down", "gemini/generateContent")]
