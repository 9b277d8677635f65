"""The usage row and the translated answer report the same token counts, for every pair of formats
`translate.registry` can plan, whole and streamed.

A scripted destination (`FaultyUpstream`) answers in its own wire format with every count it can
express: cache reads and writes and reasoning tokens beside input and output. The real sidegate
translates the answer for the caller and writes the usage row. The counts the caller is told are
read from the caller's answer by this module's own readers, written from each format's public API
reference (not with sidegate's readers, which are what is under test); they must equal the row's,
and the row's must be the destination's. Counts a caller's format has no field for (Gemini has no
cache-write count) are left out of the comparison; they are still inside its input count.

Left out: token-count pairs (the row of a count call records no tokens, by design: nothing was
generated or billed) and Gemini embedding callers (an embedContent / batchEmbedContents answer has
no usage field to compare).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import orjson
import pytest
import pytest_asyncio
from tests.support.fakes.fault_env import events
from tests.support.fakes.faulty import FaultyUpstream, Part, Request, sse, whole
from tests.support.gateway import KEY, Gateway, GatewayFactory

from sidegate import apis
from sidegate.translate.registry import ESTIMATE, pairs, plan
from sidegate.upstream.providers import ADAPTERS

pytestmark = pytest.mark.timeout(30)
AUTH = {"Authorization": f"Bearer {KEY}"}
FIELDS = ("input", "output", "cache_read", "cache_creation", "reasoning")
ROW_COLUMNS = {"input": "input_tokens", "output": "output_tokens", "cache_read": "cache_read_input_tokens",
               "cache_creation": "cache_creation_input_tokens", "reasoning": "reasoning_tokens"}

# What each destination reports, in its own words, and what the usage row must make of it.
CHAT_USAGE = {"prompt_tokens": 1000, "completion_tokens": 120, "total_tokens": 1120,
              "prompt_tokens_details": {"cached_tokens": 300, "cache_write_tokens": 200},
              "completion_tokens_details": {"reasoning_tokens": 40}}
ANTHROPIC_USAGE = {"input_tokens": 500, "cache_read_input_tokens": 300, "cache_creation_input_tokens": 200,
                   "output_tokens": 120, "output_tokens_details": {"thinking_tokens": 40}}
GEMINI_USAGE = {"promptTokenCount": 1000, "cachedContentTokenCount": 300, "candidatesTokenCount": 80,
                "thoughtsTokenCount": 40, "totalTokenCount": 1120}
EMBED_USAGE = 12
EXPECTED_ROW = {
    apis.OPENAI_CHAT: {"input": 1000, "output": 120, "cache_read": 300, "cache_creation": 200, "reasoning": 40},
    apis.ANTHROPIC_MESSAGES: {"input": 1000, "output": 120, "cache_read": 300, "cache_creation": 200, "reasoning": 40},
    apis.GEMINI_GENERATE: {"input": 1000, "output": 120, "cache_read": 300, "cache_creation": 0, "reasoning": 40},
    apis.GEMINI_BATCH_EMBED: {"input": EMBED_USAGE, "output": 0, "cache_read": 0, "cache_creation": 0,
                              "reasoning": 0},
}
STREAMING = {apis.OPENAI_CHAT, apis.OPENAI_RESPONSES, apis.ANTHROPIC_MESSAGES, apis.GEMINI_GENERATE}
COUNT_APIS = {apis.ANTHROPIC_COUNT_TOKENS, apis.GEMINI_COUNT_TOKENS}
NO_USAGE_FIELD = {apis.GEMINI_EMBED, apis.GEMINI_BATCH_EMBED}  # as callers: their answers carry no usage
KIND_OF = {apis.OPENAI_CHAT: "openai", apis.ANTHROPIC_MESSAGES: "anthropic",
           apis.GEMINI_GENERATE: "gemini", apis.GEMINI_BATCH_EMBED: "gemini"}


# ------------------------------------------------------------------ the destination's answers


def _rich_usage(dest: str, obj: dict[str, Any]) -> None:
    """Put the full usage into a destination answer or stream event where its format carries usage."""
    if dest == apis.OPENAI_CHAT and obj.get("usage") is not None:
        obj["usage"] = CHAT_USAGE
    elif dest == apis.GEMINI_BATCH_EMBED:
        obj["usageMetadata"] = {"promptTokenCount": EMBED_USAGE}
    elif dest == apis.GEMINI_GENERATE and "usageMetadata" in obj:
        obj["usageMetadata"] = GEMINI_USAGE
    elif dest == apis.ANTHROPIC_MESSAGES:
        if obj.get("type") == "message_start":
            obj["message"]["usage"] = {**ANTHROPIC_USAGE, "output_tokens": 1}
            del obj["message"]["usage"]["output_tokens_details"]
        elif obj.get("type") in ("message", "message_delta"):
            obj["usage"] = ANTHROPIC_USAGE


def _answer(dest: str) -> Callable[[Request], list[Part]]:
    def reply(req: Request) -> list[Part]:
        if not req.stream:
            body = req.answer()
            _rich_usage(dest, body)
            return whole(200, orjson.dumps(body))
        blocks = []
        for name, data in events(b"".join(req.events())):
            if data[:1] != b"{":
                blocks.append(b"data: " + data + b"\n\n")
                continue
            obj = orjson.loads(data)
            _rich_usage(dest, obj)
            blocks.append((f"event: {name}\n".encode() if name else b"") + b"data: " + orjson.dumps(obj) + b"\n\n")
        return [*sse(blocks), b"0\r\n\r\n"]
    return reply


# ------------------------------------------------------------------ what each caller is told


def _details(usage: dict[str, Any], key: str, field: str) -> int:
    return int((usage.get(key) or {}).get(field) or 0)


def _chat(usage: dict[str, Any]) -> dict[str, int | None]:
    return {"input": usage["prompt_tokens"], "output": usage["completion_tokens"],
            "cache_read": _details(usage, "prompt_tokens_details", "cached_tokens"),
            "cache_creation": _details(usage, "prompt_tokens_details", "cache_write_tokens"),
            "reasoning": _details(usage, "completion_tokens_details", "reasoning_tokens")}


def _responses(usage: dict[str, Any]) -> dict[str, int | None]:
    return {"input": usage["input_tokens"], "output": usage["output_tokens"],
            "cache_read": _details(usage, "input_tokens_details", "cached_tokens"),
            "cache_creation": _details(usage, "input_tokens_details", "cache_write_tokens"),
            "reasoning": _details(usage, "output_tokens_details", "reasoning_tokens")}


def _anthropic(usage: dict[str, Any]) -> dict[str, int | None]:
    read, written = usage.get("cache_read_input_tokens") or 0, usage.get("cache_creation_input_tokens") or 0
    return {"input": usage["input_tokens"] + read + written, "output": usage["output_tokens"],
            "cache_read": read, "cache_creation": written,
            "reasoning": _details(usage, "output_tokens_details", "thinking_tokens")}


def _gemini(meta: dict[str, Any]) -> dict[str, int | None]:
    thoughts = meta.get("thoughtsTokenCount") or 0
    return {"input": meta["promptTokenCount"] + (meta.get("toolUsePromptTokenCount") or 0),
            "output": (meta.get("candidatesTokenCount") or 0) + thoughts,
            "cache_read": meta.get("cachedContentTokenCount") or 0, "cache_creation": None, "reasoning": thoughts}


def _embeddings(usage: dict[str, Any]) -> dict[str, int | None]:
    return {"input": usage["prompt_tokens"], "output": 0, "cache_read": 0, "cache_creation": 0, "reasoning": 0}


def told_whole(caller: str, obj: dict[str, Any]) -> dict[str, int | None]:
    if caller == apis.OPENAI_CHAT:
        return _chat(obj["usage"])
    if caller == apis.OPENAI_RESPONSES:
        return _responses(obj["usage"])
    if caller == apis.ANTHROPIC_MESSAGES:
        return _anthropic(obj["usage"])
    if caller == apis.GEMINI_GENERATE:
        return _gemini(obj["usageMetadata"])
    assert caller == apis.OPENAI_EMBEDDINGS
    return _embeddings(obj["usage"])


def told_stream(caller: str, data: bytes) -> dict[str, int | None]:
    objs = [orjson.loads(d) for _, d in events(data) if d[:1] == b"{"]
    assert objs, data
    if caller == apis.OPENAI_CHAT:
        return _chat([o for o in objs if o.get("usage")][-1]["usage"])
    if caller == apis.OPENAI_RESPONSES:
        [done] = [o for o in objs if o.get("type") == "response.completed"]
        return _responses(done["response"]["usage"])
    if caller == apis.ANTHROPIC_MESSAGES:
        usage = dict(next(o for o in objs if o.get("type") == "message_start")["message"]["usage"])
        for delta in (o for o in objs if o.get("type") == "message_delta"):
            usage.update({k: v for k, v in delta["usage"].items() if v is not None})
        return _anthropic(usage)
    assert caller == apis.GEMINI_GENERATE
    return _gemini([o for o in objs if o.get("usageMetadata")][-1]["usageMetadata"])


# ------------------------------------------------------------------ the calls


def _request(caller: str, stream: bool) -> tuple[str, dict[str, Any]]:
    hi = [{"role": "user", "content": "hi"}]
    flag: dict[str, Any] = {"stream": True} if stream else {}
    if caller == apis.OPENAI_CHAT:
        usage_asked = {"stream_options": {"include_usage": True}} if stream else {}
        return "/openai/v1/chat/completions", {"model": "m", "messages": hi, **flag, **usage_asked}
    if caller == apis.OPENAI_RESPONSES:
        return "/openai/v1/responses", {"model": "m", "input": "hi", **flag}
    if caller == apis.ANTHROPIC_MESSAGES:
        return "/anthropic/v1/messages", {"model": "m", "max_tokens": 64, "messages": hi, **flag}
    if caller == apis.GEMINI_GENERATE:
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return f"/gemini/v1beta/models/m:{method}", {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    assert caller == apis.OPENAI_EMBEDDINGS
    return "/openai/v1/embeddings", {"model": "m", "input": ["first text", "second"]}


CASES = [(caller, dest, stream) for caller, dest in pairs()
         if dest != ESTIMATE and caller not in COUNT_APIS | NO_USAGE_FIELD
         for stream in ((False, True) if caller in STREAMING else (False,))]
CASE_IDS = [f"{c}->{d}-{'stream' if s else 'whole'}" for c, d, s in CASES]


def test_the_cases_cover_every_plannable_pair_that_reports_usage() -> None:
    covered = {(c, d) for c, d, _ in CASES}
    left_out = {(c, d) for c, d in pairs() if (c, d) not in covered}
    assert all(d == ESTIMATE or c in COUNT_APIS | NO_USAGE_FIELD for c, d in left_out), left_out
    assert {d for _, d in covered} == set(EXPECTED_ROW)
    assert len(CASES) == 2 * 9 + 1  # nine generation pairs whole and streamed, one embeddings pair


@pytest_asyncio.fixture
async def destination() -> AsyncIterator[Callable[[str], Any]]:
    made: list[FaultyUpstream] = []

    async def start(kind: str) -> FaultyUpstream:
        up = await FaultyUpstream(kind).start()
        made.append(up)
        return up

    yield start
    for up in made:
        await up.close()


async def _serve(gateway: GatewayFactory, up: FaultyUpstream, caller: str, dest: str) -> Gateway:
    narrowed = sorted(ADAPTERS[up.kind].apis - {caller})  # the caller's own format is not spoken: translate
    gw = await gateway(f"""
        providers:
          up: {{kind: {up.kind}, base_url: '{up.base_url}', api_key: k, apis: [{', '.join(narrowed)}]}}
        models:
          "*": {{destinations: [{{provider: up, model: dm}}]}}
    """)
    assert plan(caller, frozenset(narrowed)) == dest
    return gw


@pytest.mark.parametrize(("caller", "dest", "stream"), CASES, ids=CASE_IDS)
async def test_usage_row_and_translated_answer_report_the_same_counts(
    gateway: GatewayFactory, destination: Callable[[str], Any], caller: str, dest: str, stream: bool,
) -> None:
    up = await destination(KIND_OF[dest])
    up.named["rich"] = _answer(dest)
    gw = await _serve(gateway, up, caller, dest)
    path, body = _request(caller, stream)
    async with aiohttp.ClientSession() as session, session.post(
            gw.base + path, json=body, headers={**AUTH, "x-fault": "rich"}) as resp:
        data = await resp.read()
        assert resp.status == 200, data
    told = told_stream(caller, data) if stream else told_whole(caller, orjson.loads(data))
    row = await gw.row()
    assert (row["status_code"], row["streaming"], row["tokens_estimated"]) == (200, stream, False)
    recorded = {name: row[column] for name, column in ROW_COLUMNS.items()}
    assert recorded == EXPECTED_ROW[dest]  # the destination's own counts, none lost on the way to the row
    shown = {name: told[name] for name in FIELDS if told[name] is not None}
    assert shown == {name: recorded[name] for name in shown}
    assert row["total_tokens"] == recorded["input"] + recorded["output"]
