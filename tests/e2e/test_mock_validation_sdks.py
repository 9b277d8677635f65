"""The mock model's refusals end to end: through sidegate with the official SDKs and raw bodies, each
caller sees a 400 in its provider's words and error shape, and the usage row records the refusal
(every case on the mock directly: tests/unit/upstream/test_mock_validation.py)."""

from __future__ import annotations

import aiohttp
import anthropic
import openai
import pytest
from google.genai import errors as genai_errors
from tests.support.gateway import KEY
from tests.support.sdk_clients import claude, close_sdk_clients, gemini, oai  # noqa: F401
from tests.unit.upstream.test_mock_validation import USER

POLICY = """
providers: {echo: {kind: mock}}
models: {"*": {destinations: [{provider: echo}]}}
"""


@pytest.fixture
async def gw(gateway):
    return await gateway(POLICY)


async def test_openai_sdk_sees_openai_validation(gw):
    client = oai(gw.base)
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(model="gpt", messages="hi")  # type: ignore[arg-type]
    assert (caught.value.param, caught.value.code) == ("messages", "invalid_type")
    with pytest.raises(openai.BadRequestError) as streamed:
        await client.chat.completions.create(model="gpt", messages=[{"role": "robot", "content": "x"}],  # type: ignore[misc,list-item]
                                             stream=True)
    assert (streamed.value.param, streamed.value.code) == ("messages[0].role", "invalid_value")
    row = await gw.row()
    assert (row["status_code"], row["error_code"], row["model_service"]) == (400, "invalid_value", "*")


async def test_anthropic_sdk_sees_anthropic_validation(gw):
    client = claude(gw.base)
    with pytest.raises(anthropic.BadRequestError) as caught:
        await client.messages.create(model="c", max_tokens=8,
                                     messages=[{"role": "system", "content": "x"}, USER])  # type: ignore[list-item]
    assert 'Unexpected role "system"' in caught.value.message
    assert caught.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    count = await client.messages.count_tokens(model="c", messages=[USER])  # type: ignore[list-item]
    assert count.input_tokens >= 1


async def test_genai_sdk_sees_gemini_validation(gw):
    client = gemini(gw.base)
    with pytest.raises(genai_errors.ClientError) as caught:
        await client.models.generate_content(model="g", contents=[{"role": "assistant", "parts": [{"text": "x"}]}])
    assert caught.value.code == 400 and caught.value.status == "INVALID_ARGUMENT"
    assert caught.value.message == "Please use a valid role: user, model."


@pytest.mark.parametrize(("path", "body", "status", "words"), [
    ("/mlflow/v1/chat/completions", {"model": "gpt", "prompt": "hi"}, 400, "Missing required parameter: 'messages'."),
    ("/mlflow/v1/responses", {"model": "gpt"}, 400, "Missing required parameter: 'input'."),
    ("/anthropic/v1/messages", {"model": "c", "messages": [USER]}, 400, "max_tokens: Field required"),
    ("/gemini/v1beta/models/g:generateContent", {"messages": [USER]}, 400, "contents is not specified"),
    ("/gemini/v1beta/models/g:streamGenerateContent?alt=sse", {"contents": "hi"}, 400, "Invalid value at 'contents'"),
], ids=["chat", "responses", "anthropic", "gemini", "gemini-stream"])
async def test_raw_bodies_that_are_not_requests_get_the_providers_400(gw, path, body, status, words):
    async with aiohttp.ClientSession() as http, http.post(
            gw.base + path, json=body, headers={"Authorization": f"Bearer {KEY}"}) as r:
        answer = await r.read()
        assert (r.status, r.content_type) == (status, "application/json"), answer
    assert words in answer.decode()
    row = await gw.row()
    assert row["status_code"] == status and row["error_code"]
