"""FakeUpstream: an aiohttp server on 127.0.0.1 that speaks one provider's API (openai, anthropic, gemini).

It records every request (`received`) and answers from a FIFO of scripted replies (`reply`, `error`), or,
when none is queued, with the realistic default response for the path (see fixtures/).
"""

from __future__ import annotations

import asyncio
import json as _json
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web
from multidict import CIMultiDict

from .connection import Dropped, drop, hang
from .fixtures import anthropic_wire, gemini_wire, openai_wire
from .fixtures.common import dumps, new_id

Kind = Literal["openai", "anthropic", "gemini"]
_WIRES = {"openai": openai_wire, "anthropic": anthropic_wire, "gemini": gemini_wire}


@dataclass
class Received:
    """One request the fake got."""

    method: str
    path: str
    query: dict[str, str]
    query_string: str
    headers: CIMultiDict[str]
    body: bytes
    at: float = field(default_factory=time.monotonic)

    def json(self) -> Any:
        return _json.loads(self.body) if self.body else None


@dataclass
class _Reply:
    status: int = 200
    json: Any = None
    sse: list[bytes] | None = None
    body: bytes | None = None
    headers: dict[str, str] | None = None
    delay_s: float = 0.0
    chunk_delay_s: float = 0.0
    cut_after: int | None = None
    disconnect: bool = False
    hang: bool = False
    hang_after: int | None = None
    reset: bool = False
    gate: asyncio.Event | None = None


@dataclass
class _Answer:
    """What to send: a JSON body, or pieces (SSE events, or Gemini JSON-array parts) written one by one."""

    status: int = 200
    json: Any = None
    pieces: list[bytes] | None = None
    raw: bytes | None = None
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    pretty: bool = False


# A default handler gets (request json, path params + "alt" query param) and returns an _Answer.
_Handler = Callable[[dict[str, Any], dict[str, str]], _Answer]
_GEMINI = r"^/(?:v1beta|v1|v1alpha)/models/(?P<model>[^/:]+):"


def _sse(pieces: list[bytes]) -> _Answer:
    return _Answer(pieces=pieces, content_type="text/event-stream")


def _openai_routes() -> list[tuple[str, str, _Handler]]:
    w = openai_wire

    def chat(req: dict[str, Any], _m: dict[str, str]) -> _Answer:
        return _sse(w.chat_sse(req)) if req.get("stream") else _Answer(json=w.chat_json(req), pretty=True)

    def responses(req: dict[str, Any], _m: dict[str, str]) -> _Answer:
        return (
            _sse(w.responses_sse(req))
            if req.get("stream")
            else _Answer(json=w.responses_json(req), pretty=True)
        )

    return [
        ("POST", r"^/v1/chat/completions$", chat),
        ("POST", r"^/v1/responses$", responses),
        ("POST", r"^/v1/embeddings$", lambda req, _m: _Answer(json=w.embeddings_json(req), pretty=True)),
        ("GET", r"^/v1/models$", lambda _req, _m: _Answer(json=w.models_json(), pretty=True)),
    ]


def _anthropic_routes() -> list[tuple[str, str, _Handler]]:
    w = anthropic_wire

    def messages(req: dict[str, Any], _m: dict[str, str]) -> _Answer:
        return _sse(w.message_sse(req)) if req.get("stream") else _Answer(json=w.message_json(req))

    return [
        ("POST", r"^/v1/messages$", messages),
        ("POST", r"^/v1/messages/count_tokens$", lambda req, _m: _Answer(json=w.count_tokens_json(req))),
    ]


def _gemini_routes() -> list[tuple[str, str, _Handler]]:
    w = gemini_wire

    def stream(req: dict[str, Any], m: dict[str, str]) -> _Answer:
        model = m["model"]
        if m["alt"] == "sse":
            return _sse(w.stream_sse(model, req))
        # Without alt=sse the API streams one JSON array, element by element.
        chunks = [dumps(c, pretty=True).encode() for c in w.stream_chunks(model, req)]
        pieces = [b"[" + chunks[0]] + [b",\r\n" + c for c in chunks[1:]] + [b"]"]
        return _Answer(pieces=pieces, content_type="application/json")

    def json_of(fn: Callable[[str, dict[str, Any]], dict[str, Any]]) -> _Handler:
        return lambda req, m: _Answer(json=fn(m["model"], req), pretty=True)

    return [
        ("POST", _GEMINI + r"generateContent$", json_of(w.generate_json)),
        ("POST", _GEMINI + r"streamGenerateContent$", stream),
        ("POST", _GEMINI + r"countTokens$", json_of(w.count_tokens_json)),
        ("POST", _GEMINI + r"embedContent$", json_of(w.embed_json)),
        ("POST", _GEMINI + r"batchEmbedContents$", json_of(w.batch_embed_json)),
        (
            "GET",
            r"^/(?:v1beta|v1|v1alpha)/models$",
            lambda _req, _m: _Answer(json=w.models_json(), pretty=True),
        ),
    ]


_ROUTES: dict[str, Callable[[], list[tuple[str, str, _Handler]]]] = {
    "openai": _openai_routes,
    "anthropic": _anthropic_routes,
    "gemini": _gemini_routes,
}


class FakeUpstream:
    """An aiohttp server on 127.0.0.1:<free port> speaking one provider's API.

    `api_key`: when set, requests without that credential (openai: Authorization Bearer; anthropic:
    x-api-key or Authorization Bearer; gemini: x-goog-api-key or ?key=) get the provider's 401.
    """

    def __init__(self, kind: Kind, *, api_key: str | None = None) -> None:
        if kind not in _ROUTES:
            raise ValueError(f"unknown fake kind {kind!r}")
        self.kind: Kind = kind
        self.api_key = api_key
        self.received: list[Received] = []
        self._queue: deque[_Reply] = deque()
        self._routes = [(method, re.compile(rx), fn) for method, rx, fn in _ROUTES[kind]()]
        self._runner: web.AppRunner | None = None
        self._released = asyncio.Event()  # set on close: ends every hanging reply
        self.port = 0

    # ------------------------------------------------------------ lifecycle

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """What a sidegate provider `base_url` (or an SDK's base_url) should be."""
        return self.origin + "/v1" if self.kind == "openai" else self.origin

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def close(self) -> None:
        self._released.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeUpstream:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------ scripting

    def reply(
        self,
        status: int = 200,
        json: Any = None,
        sse: list[bytes] | None = None,
        headers: dict[str, str] | None = None,
        delay_s: float = 0.0,
        chunk_delay_s: float = 0.0,
        cut_after: int | None = None,
        *,
        body: bytes | None = None,
        disconnect: bool = False,
        hang: bool = False,
        hang_after: int | None = None,
        reset: bool = False,
        gate: asyncio.Event | None = None,
    ) -> None:
        """Queue a reply for the next request (FIFO).

        Give `json` (a body), `sse` (raw event blocks, each ending with a blank line) or `body` (raw bytes,
        content-type from `headers`); with none of them the default response for the path is used (or,
        for status >= 400, the provider's error body). `delay_s` waits before the status line;
        `chunk_delay_s` waits between stream pieces; `cut_after=N` sends N pieces then drops the
        connection mid-body; `disconnect=True` drops it before sending anything. `hang=True` never
        sends the status line; `hang_after=N` sends the headers and N pieces, then goes silent with
        the connection open (both until the client gives up or the fake closes). `reset=True` makes
        a drop (`disconnect`, `cut_after`) a TCP reset instead of an orderly close. `gate`: wait
        until the test sets that event before answering (the request is in `received` meanwhile).
        """
        self._queue.append(
            _Reply(status, json, sse, body, headers, delay_s, chunk_delay_s, cut_after, disconnect,
                   hang, hang_after, reset, gate)
        )

    def error(
        self,
        status: int,
        message: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        delay_s: float = 0.0,
    ) -> None:
        """Queue an error in this provider's own shape (openai 429 rate_limit_exceeded, anthropic 529
        overloaded_error, gemini 429 RESOURCE_EXHAUSTED, ...)."""
        wire = _WIRES[self.kind]
        hdrs = {**wire.error_headers(status), **(headers or {})}
        self.reply(status, json=wire.error_body(status, message), headers=hdrs, delay_s=delay_s)

    @property
    def pending(self) -> int:
        """Scripted replies not yet consumed."""
        return len(self._queue)

    @property
    def last(self) -> Received:
        return self.received[-1]

    def clear(self) -> None:
        self.received.clear()
        self._queue.clear()

    # ------------------------------------------------------------ serving

    def _base_headers(self) -> dict[str, str]:
        if self.kind == "openai":
            return {
                "x-request-id": new_id("req_", 32),
                "openai-processing-ms": "12",
                "openai-version": "2020-10-01",
            }
        if self.kind == "anthropic":
            return {"request-id": new_id("req_011", 21), "anthropic-organization-id": "00000000-fake"}
        return {"server": "scaffolding on HTTPServer2", "vary": "Origin, X-Origin, Referer"}

    def _authorized(self, request: web.Request) -> bool:
        if self.api_key is None:
            return True
        bearer = request.headers.get("Authorization", "")
        ok = {f"Bearer {self.api_key}"}
        if self.kind == "openai":
            return bearer in ok
        if self.kind == "anthropic":
            return request.headers.get("x-api-key") == self.api_key or bearer in ok
        return self.api_key in (request.headers.get("x-goog-api-key"), request.query.get("key"))

    def _error_answer(self, status: int, message: str | None = None) -> _Answer:
        wire = _WIRES[self.kind]
        return _Answer(
            status=status, json=wire.error_body(status, message), headers=wire.error_headers(status)
        )

    def _default(self, request: web.Request, body: bytes) -> _Answer:
        if not self._authorized(request):
            return self._error_answer(401)
        req: Any = {}
        if body:
            try:
                req = _json.loads(body)
            except ValueError:
                return self._error_answer(400, "We could not parse the JSON body of your request.")
        if not isinstance(req, dict):
            return self._error_answer(400, "Request body must be a JSON object.")
        for method, rx, fn in self._routes:
            m = rx.match(request.path)
            if m is None:
                continue
            if request.method != method:
                return self._error_answer(405, f"Method {request.method} not allowed.")
            return fn(req, {**m.groupdict(), "alt": request.query.get("alt", "")})
        return self._error_answer(404, f"Unknown path {request.method} {request.path}")

    def _answer(self, scripted: _Reply | None, request: web.Request, body: bytes) -> _Answer:
        if scripted is None:
            return self._default(request, body)
        if scripted.sse is not None:
            ans = _sse(list(scripted.sse))
        elif scripted.json is not None:
            ans = _Answer(json=scripted.json)
        elif scripted.body is not None:
            ans = _Answer(raw=scripted.body, content_type="application/octet-stream")
        elif scripted.status >= 400:
            ans = self._error_answer(scripted.status)
        else:
            ans = self._default(request, body)
        ans.status = scripted.status
        ans.headers.update(scripted.headers or {})
        return ans

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.received.append(
            Received(
                request.method,
                request.path,
                dict(request.query),
                request.query_string,
                CIMultiDict(request.headers),
                body,
            )
        )
        scripted = self._queue.popleft() if self._queue else None
        if scripted and scripted.gate is not None:
            await scripted.gate.wait()
        if scripted and scripted.delay_s:
            await asyncio.sleep(scripted.delay_s)
        if scripted and scripted.hang:
            await hang(request, self._released)
        if scripted and scripted.disconnect:
            drop(request, scripted.reset)
            raise Dropped()
        ans = self._answer(scripted, request, body)
        headers = {**self._base_headers(), **ans.headers}
        ctype = next((v for k, v in headers.items() if k.lower() == "content-type"), ans.content_type)
        headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        headers["Content-Type"] = ctype
        if ans.pieces is None:
            data = ans.raw if ans.raw is not None else dumps(ans.json, pretty=ans.pretty).encode()
            return web.Response(status=ans.status, body=data, headers=headers)
        if ctype.startswith("text/event-stream"):
            headers.setdefault("Cache-Control", "no-cache")
        resp = web.StreamResponse(status=ans.status, headers=headers)
        await resp.prepare(request)
        cut_after = scripted.cut_after if scripted else None
        hang_after = scripted.hang_after if scripted else None
        reset = scripted.reset if scripted else False
        gap = scripted.chunk_delay_s if scripted else 0.0
        for i, piece in enumerate(ans.pieces):
            if cut_after is not None and i >= cut_after:
                drop(request, reset)
                raise Dropped()
            if hang_after is not None and i >= hang_after:
                await hang(request, self._released)
            if gap and i:
                await asyncio.sleep(gap)
            await resp.write(piece)
        if cut_after is not None and cut_after >= len(ans.pieces):
            drop(request, reset)
            raise Dropped()
        if hang_after is not None and hang_after >= len(ans.pieces):
            await hang(request, self._released)
        await resp.write_eof()
        return resp

