"""The harness of the fault suite (tests/e2e/test_faults_*.py): the caller formats and their wire
checks, a sidegate in process whose destinations are `FaultyUpstream`s, and the checks every
fault case ends with (one usage row per request id, the process still healthy).

Model services of the policy (`env.policy`):
  m   destination `bad` only: the caller sees the fault's outcome;
  mf  destination `bad`, fallback `good`: a failure before the first byte is answered by `good`;
  ok  destination `good`: the normal request that shows the process healthy afterwards;
  big destination `bad` with long timeouts: for answers that take long to send in one loop.
`bad` is the faulty upstream (or, for `refused`, a port nothing listens on); `good` answers well.
Both are of the caller's own kind (native) or another (translated). Short timeouts keep it fast.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import pytest_asyncio
from tests.support.gateway import KEY
from tests.support.served import free_port
from tests.support.three_fakes import Answer

from .faulty import FaultyUpstream

AUTH = {"Authorization": f"Bearer {KEY}"}
TIMEOUT_S = 0.3  # first byte (whole answer) and stream idle timeouts of every service
HI = [{"role": "user", "content": "hi"}]


@dataclass(frozen=True)
class Caller:
    """A caller format: its surface, a minimal body, the kind that speaks it natively and the
    kind it is translated to in the translated cases (`apis` narrows that provider's APIs)."""

    name: str
    family: str
    native: str
    other: str
    other_apis: tuple[str, ...] = ()

    def path(self, model: str, stream: bool) -> str:
        if self.family == "gemini":
            method = "streamGenerateContent?alt=sse" if stream else "generateContent"
            return f"/gemini/v1beta/models/{model}:{method}"
        return {"chat": "/openai/v1/chat/completions", "responses": "/openai/v1/responses",
                "anthropic": "/anthropic/v1/messages"}[self.name]

    def body(self, model: str, stream: bool) -> dict[str, Any]:
        if self.family == "gemini":
            return {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
        extra: dict[str, Any] = {"stream": True} if stream else {}
        if self.name == "responses":
            return {"model": model, "input": "hi", **extra}
        if self.name == "anthropic":
            return {"model": model, "max_tokens": 64, "messages": HI, **extra}
        return {"model": model, "messages": HI, **extra}


CHAT = Caller("chat", "openai", "openai", "anthropic")
RESPONSES = Caller("responses", "openai", "openai", "openai", ("openai.chat", "openai.embeddings"))
ANTHROPIC = Caller("anthropic", "anthropic", "anthropic", "openai")
GEMINI = Caller("gemini", "gemini", "gemini", "anthropic")
CALLERS = (CHAT, RESPONSES, ANTHROPIC, GEMINI)
CALLER_IDS = [c.name for c in CALLERS]
#: (caller, translated): every caller natively, and each translated to another kind.
PAIRS = [(c, t) for c in CALLERS for t in (False, True)]
PAIR_IDS = [f"{c.name}-{'translated' if t else 'native'}" for c, t in PAIRS]


def error_code(caller: Caller, answer: Answer) -> str:
    """The machine code of a sidegate error answer, checking the caller family's shape for its status."""
    body = answer.json()
    err = body["error"]
    if caller.family == "openai":
        assert set(err) == {"message", "type", "param", "code"}, body
        return str(err["code"])
    if caller.family == "anthropic":
        assert body["type"] == "error" and body["request_id"] and err["type"] and err["message"], body
        return str(err["code"])
    assert err["code"] == answer.status and err["status"] and err["message"] and err.get("details"), body
    return str(err["details"][0]["reason"])


def assert_error_shape(caller: Caller, answer: Answer) -> None:
    """A provider's error (relayed or translated) in the caller family's own shape."""
    body = answer.json()
    err = body["error"]
    assert isinstance(err, dict) and isinstance(err.get("message"), str), body
    if caller.family == "anthropic":
        assert body["type"] == "error" and isinstance(err.get("type"), str), body
    elif caller.family == "gemini":
        assert err["code"] == answer.status and isinstance(err.get("status"), str), body
    else:
        assert "type" in err and "code" in err, body


def events(data: bytes) -> list[tuple[str | None, bytes]]:
    """The (event name, data) of each SSE event of a whole stream."""
    out = []
    for block in data.replace(b"\r\n", b"\n").split(b"\n\n"):
        if not block.strip():
            continue
        name, lines = None, []
        for line in block.split(b"\n"):
            field_, _, value = line.partition(b":")
            value = value[1:] if value[:1] == b" " else value
            if field_ == b"event":
                name = value.decode()
            elif field_ == b"data":
                lines.append(value)
        out.append((name, b"\n".join(lines)))
    return out


def ends_with_error_event(caller: Caller, data: bytes) -> dict[str, Any]:
    """Check that a stream ends with the caller format's error event (and nothing after it);
    returns the error object."""
    evs = events(data)
    assert evs, data
    if caller.name == "responses":
        (n1, d1), (n2, d2) = evs[-2:] if len(evs) > 1 else (evs[-1], (None, b""))
        assert (n1, n2) == ("error", "response.failed"), evs[-2:]
        failed = orjson.loads(d2)
        assert failed["response"]["status"] == "failed", failed
        return dict(orjson.loads(d1))
    name, payload = evs[-1]
    assert payload[:1] == b"{", f"the stream's last event is not an error object: {evs[-1]!r}"
    obj = orjson.loads(payload)
    if caller.family == "anthropic":
        assert name == "error" and obj.get("type") == "error", evs[-1]
    assert isinstance(obj.get("error"), dict) and obj["error"]["message"], f"not an error event: {evs[-1]!r}"
    return dict(obj["error"])


def ends_cleanly(caller: Caller, data: bytes) -> None:
    """A stream that ends with its format's own last event and carries no error event."""
    evs = events(data)
    assert not any(n == "error" or b'"error"' in d[:20] for n, d in evs), evs
    last = {"chat": (None, b"[DONE]"), "responses": ("response.completed", None),
            "anthropic": ("message_stop", None), "gemini": (None, None)}[caller.name]
    name, payload = evs[-1]
    assert last[0] is None or name == last[0], evs[-1]
    assert last[1] is None or payload == last[1], evs[-1]


def free_url() -> str:
    """An http:// URL on loopback where nothing listens (connection refused)."""
    return f"http://127.0.0.1:{free_port()}"


@dataclass
class FaultEnv:
    """The app, its faulty and good upstreams, and the request ids it was asked."""

    gw: Any
    caller: Caller
    bad: FaultyUpstream
    good: FaultyUpstream
    translated: bool
    refused: bool = False
    asked: list[str] = field(default_factory=list)
    _rows: list[dict[str, Any]] = field(default_factory=list)

    async def call(self, model: str, stream: bool = False, *, body: dict[str, Any] | None = None,
                   path: str | None = None) -> Answer:
        url = self.gw.base + (path or self.caller.path(model, stream))
        async with aiohttp.ClientSession() as http, http.post(
                url, json=body or self.caller.body(model, stream), headers=AUTH) as resp:
            answer = Answer(resp.status, resp.headers, await resp.read())
        self.asked.append(answer.request_id)
        return answer

    async def _read_rows(self) -> list[dict[str, Any]]:
        self._rows = await self.gw.rows()
        return self._rows

    async def row(self, answer: Answer) -> dict[str, Any]:
        """The usage row of that request (read again only when the last read did not hold it)."""
        rows = [r for r in self._rows if r["request_id"] == answer.request_id]
        if not rows:
            rows = [r for r in await self._read_rows() if r["request_id"] == answer.request_id]
        assert len(rows) == 1, rows
        return dict(rows[0])

    async def healthy(self, stream: bool) -> None:
        """The process serves on: /healthz, nothing left in flight, a normal request answered in
        full (streamed or whole) by the good destination and by the faulty one (no broken pooled
        connection handed out again); and every request so far has exactly one usage row."""
        async with aiohttp.ClientSession() as http:
            async with http.get(self.gw.origin + "/healthz") as resp:
                assert resp.status == 200
            async with http.get(self.gw.origin + "/readyz") as resp:
                assert (await resp.json())["in_flight"] == 0
        for model in ("ok",) if self.refused else ("ok", "big"):  # big: the faulty destination, now well
            answer = await self.call(model, stream)
            assert answer.status == 200, (model, answer.body)
            if stream:
                ends_cleanly(self.caller, answer.body)
        ids = [r["request_id"] for r in await self._read_rows()]
        assert sorted(ids) == sorted(self.asked), (ids, self.asked)


def reasons(row: dict[str, Any]) -> list[tuple[str, str]]:
    return [(a["destination"], a["reason"]) for a in row["routing_information"]]


def policy(caller: Caller, translated: bool, bad_url: str, good: FaultyUpstream) -> str:
    kind = caller.other if translated else caller.native
    narrowed = f", apis: [{', '.join(caller.other_apis)}]" if translated and caller.other_apis else ""
    bad_base = bad_url + "/v1" if kind == "openai" else bad_url
    timeouts = f"timeout_s: {TIMEOUT_S}, idle_timeout_s: {TIMEOUT_S}, connect_timeout_s: 2"
    breaker = "circuit_breaker: {failures: 1, cooldown_s: 60}"
    return f"""
        providers:
          bad: {{kind: {kind}, base_url: '{bad_base}', api_key: up{narrowed}}}
          good: {{kind: {kind}, base_url: '{good.base_url}', api_key: up{narrowed}}}
        models:
          m: {{destinations: [{{provider: bad, model: bad-m}}], {timeouts}, {breaker}}}
          mf: {{destinations: [{{provider: bad, model: bad-mf}}], fallbacks: [{{provider: good, model: good-mf}}],
                {timeouts}, {breaker}}}
          ok: {{destinations: [{{provider: good, model: good-ok}}], {timeouts}}}
          big: {{destinations: [{{provider: bad, model: bad-big}}], timeout_s: 30, idle_timeout_s: 30}}
    """


async def start(gateway: Any, caller: Caller, translated: bool, *, refused: bool = False) -> FaultEnv:
    kind = caller.other if translated else caller.native
    bad, good = await FaultyUpstream(kind).start(), await FaultyUpstream(kind).start()
    gw = await gateway(policy(caller, translated, free_url() if refused else bad.origin, good))
    return FaultEnv(gw, caller, bad, good, translated, refused)


@pytest_asyncio.fixture
async def fault_env(gateway: Any) -> AsyncIterator[Callable[..., Awaitable[FaultEnv]]]:
    """`env = await fault_env(caller, translated, refused=False)`; its upstreams closed at teardown."""
    made: list[FaultEnv] = []

    async def make(caller: Caller, translated: bool, *, refused: bool = False) -> FaultEnv:
        env = await start(gateway, caller, translated, refused=refused)
        made.append(env)
        return env

    yield make
    for env in made:
        await env.bad.close()
        await env.good.close()
