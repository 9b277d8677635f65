"""The official SDKs pointed at a sidegate (or any base URL), without client-side retries, closed
after each test. Import `close_sdk_clients` into a test module (an autouse fixture) to use them:

    from tests.support.sdk_clients import close_sdk_clients, oai  # noqa: F401
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anthropic
import openai
import pytest_asyncio
from google import genai
from google.genai import types as gt
from tests.support.gateway import KEY

_OPEN: list[Any] = []


def oai(base: str, key: str = KEY) -> openai.AsyncOpenAI:
    """OpenAI SDK on `{base}/openai/v1` (Chat, Responses, Embeddings)."""
    client = openai.AsyncOpenAI(base_url=f"{base}/openai/v1", api_key=key, max_retries=0)
    _OPEN.append(client)
    return client


def claude(base: str, key: str = KEY) -> anthropic.AsyncAnthropic:
    """Anthropic SDK on `{base}/anthropic` (Claude Code's base URL)."""
    client = anthropic.AsyncAnthropic(base_url=f"{base}/anthropic", api_key=key, max_retries=0)
    _OPEN.append(client)
    return client


def gemini(base: str, key: str = KEY) -> genai.client.AsyncClient:
    """google-genai's async client on `{base}/gemini` (Gemini CLI's base URL)."""
    options = gt.HttpOptions(base_url=f"{base}/gemini", retry_options=gt.HttpRetryOptions(attempts=1))
    client = genai.Client(api_key=key, http_options=options).aio
    _OPEN.append(client)
    return client


@pytest_asyncio.fixture(autouse=True)
async def close_sdk_clients() -> AsyncIterator[None]:
    yield
    while _OPEN:
        client = _OPEN.pop()
        await (client.aclose() if isinstance(client, genai.client.AsyncClient) else client.close())
