"""Shared harness of the end-to-end governance tests (rate limits and guardrails through the real
app): the three fake provider upstreams behind one sidegate (`three_fakes`), principals in several groups, the
official SDK clients of each caller family, raw requests, the usage row of a request, and the text
the fakes answer with."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import anthropic
import openai
import pytest
from google import genai
from google.genai import types as gtypes
from tests.support import three_fakes
from tests.support.fakes import anthropic_wire, gemini_wire, openai_wire

KEYS = {"alice": "sk-e2e-alice", "bob": "sk-e2e-bob", "carol": "sk-e2e-carol", "bot": "sk-e2e-bot"}


def _hash(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


# alice is in two groups, bob and carol in one each; ci-bot in none.
PRINCIPALS = f"""
principals:
  alice: {{type: user, groups: [ml-platform, research], keys: ["{_hash(KEYS['alice'])}"]}}
  bob: {{type: user, groups: [ml-platform], keys: ["{_hash(KEYS['bob'])}"]}}
  carol: {{type: user, groups: [research], keys: ["{_hash(KEYS['carol'])}"]}}
  ci-bot: {{type: service_principal, keys: ["{_hash(KEYS['bot'])}"]}}
"""

# One model service per fake, plus services whose destination speaks another format (translation).
MODELS = """
models:
  gpt: {destinations: [{provider: oa}]}
  gpt-mini: {destinations: [{provider: oa}]}
  claude: {destinations: [{provider: an}]}
  gem: {destinations: [{provider: ge}]}
  claude-on-oa: {destinations: [{provider: oa, model: gpt-real}]}
  gem-on-an: {destinations: [{provider: an, model: claude-real}]}
  gpt-on-ge: {destinations: [{provider: ge, model: gemini-real}]}
"""

TAG_HEADER = "Databricks-Ai-Gateway-Request-Tags"


@dataclass(frozen=True)
class Family:
    """A caller family: its chat surface, a minimal body, and which fake serves its model."""

    name: str
    path: str
    model: str
    body: dict[str, Any]


OPENAI = Family("openai", "/openai/v1/chat/completions", "gpt",
                {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]})
ANTHROPIC = Family("anthropic", "/anthropic/v1/messages", "claude",
                   {"model": "claude", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]})
GEMINI = Family("gemini", "/gemini/v1beta/models/gem:generateContent", "gem",
                {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
FAMILIES = (OPENAI, ANTHROPIC, GEMINI)
FAMILY_IDS = [f.name for f in FAMILIES]


class Answer(three_fakes.Answer):
    def error(self, family: str = "openai", status: int = 429) -> tuple[str, str]:
        """(machine code, message) of this error answer, checking its status and the family's shape."""
        assert self.status == status, (self.status, self.body)
        return error_fields(family, status, self.json())


class Env(three_fakes.Env):
    """The app with the fakes of `three_fakes` and the principals of `KEYS`, driven raw or by the SDKs."""

    # ------------------------------------------------------------ raw requests

    async def post(self, family: Family, who: str = "alice", *, body: dict[str, Any] | None = None,
                   tags: dict[str, str] | None = None, path: str | None = None) -> Answer:
        headers = {"Authorization": f"Bearer {KEYS[who]}"}
        if tags is not None:
            headers[TAG_HEADER] = json.dumps(tags)
        async with aiohttp.ClientSession() as http, http.post(
                self.url(path or family.path), json=body or family.body, headers=headers) as resp:
            return Answer(resp.status, resp.headers, await resp.read())

    async def chat(self, who: str = "alice", model: str = "gpt", tags: dict[str, str] | None = None) -> Answer:
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
        return await self.post(OPENAI, who, body=body, tags=tags)

    async def statuses(self, n: int, who: str = "alice", model: str = "gpt",
                       tags: dict[str, str] | None = None) -> list[int]:
        """The statuses of n requests one after the other."""
        return [(await self.chat(who, model, tags)).status for _ in range(n)]

    # ------------------------------------------------------------ SDK clients (no retries)

    def openai(self, who: str = "alice", root: str = "openai") -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.url(f"/{root}/v1"), api_key=KEYS[who], max_retries=0)

    def anthropic(self, who: str = "alice") -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(base_url=self.url("/anthropic"), api_key=KEYS[who], max_retries=0)

    def genai(self, who: str = "alice") -> Any:
        options = gtypes.HttpOptions(base_url=self.url("/gemini"), retry_options=gtypes.HttpRetryOptions(attempts=1))
        return genai.Client(api_key=KEYS[who], http_options=options).aio

    # ------------------------------------------------------------ records

    async def last_row(self) -> dict[str, Any]:
        rows = await self.gw.rows()
        assert rows, "no usage row was written"
        return dict(rows[-1])

    async def settled(self) -> None:
        """Wait until every rate-limit settlement running in the background is done."""
        while self.gw.state._background:
            await asyncio.gather(*list(self.gw.state._background))


STREAM_PATHS = {"openai": OPENAI.path, "anthropic": ANTHROPIC.path,
                "gemini": "/gemini/v1beta/models/gem:streamGenerateContent?alt=sse"}


def stream_body(family: Family) -> dict[str, Any]:
    return family.body if family is GEMINI else {**family.body, "stream": True}


async def settled_call(env: Env, family: Family, stream: bool, who: str = "alice") -> Answer:
    """One admitted request; returns once its usage row is written and its rate-limit settlement done."""
    if stream:
        answer = await env.post(family, who, body=stream_body(family), path=STREAM_PATHS[family.name])
    else:
        answer = await env.post(family, who)
    assert answer.status == 200, answer.body
    await env.row(answer.request_id)
    await env.settled()
    return answer


async def sdk_call(env: Env, family: Family, stream: bool, text: str = "hi") -> Exception | None:
    """One call of the family's SDK with this user text (a stream read to its end); returns the raised
    error, if any."""
    messages = [{"role": "user", "content": text}]
    try:
        if family is OPENAI:
            client = env.openai()
            if stream:
                async for _ in await client.chat.completions.create(model="gpt", messages=messages, stream=True):
                    pass
            else:
                await client.chat.completions.create(model="gpt", messages=messages)
        elif family is ANTHROPIC:
            an = env.anthropic()
            if stream:
                async with an.messages.stream(model="claude", max_tokens=64, messages=messages) as s:
                    await s.get_final_message()
            else:
                await an.messages.create(model="claude", max_tokens=64, messages=messages)
        else:
            ge = env.genai()
            if stream:
                async for _ in await ge.models.generate_content_stream(model="gem", contents=text):
                    pass
            else:
                await ge.models.generate_content(model="gem", contents=text)
    except Exception as exc:
        return exc
    return None


def tokens_left(answer: Any) -> int:
    return int(answer.headers["x-ratelimit-remaining-tokens"])


def providers(fakes: dict[str, Any]) -> str:
    return three_fakes.providers_block(fakes) + MODELS


async def start_env(gateway: Any, fakes: dict[str, Any], policy: str) -> Env:
    return Env(await gateway(providers(fakes) + PRINCIPALS + policy, principals=False), fakes)


def answer_text(pieces: Sequence[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every fake answer (JSON and streams, each format) with this text, streamed in these pieces."""
    for wire in (openai_wire, anthropic_wire, gemini_wire):
        monkeypatch.setattr(wire, "DEFAULT_DELTAS", tuple(pieces))
        monkeypatch.setattr(wire, "DEFAULT_TEXT", "".join(pieces))


def error_fields(family: str, status: int, body: Any) -> tuple[str, str]:
    """(machine code, message) of an error body, checking the family's own shape for that status."""
    if family == "openai":
        err = body["error"]
        assert set(err) == {"message", "type", "param", "code"}, err
        return err["code"], err["message"]
    if family == "anthropic":
        assert body["type"] == "error" and body["request_id"], body
        err = body["error"]
        expected = {400: "invalid_request_error", 429: "rate_limit_error", 503: "api_error"}[status]
        assert err["type"] == expected, err
        return err["code"], err["message"]
    err = body["error"]
    assert err["code"] == status, err
    assert err["status"] == {400: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE"}[status]
    return err["details"][0]["reason"], err["message"]
