"""The mock model refuses what its provider would refuse: a 400 in that provider's words and error
shape, naming the field, for each API it answers; valid requests are never refused. Checked on the
mock directly (every case, against the SDKs' error types); end to end through sidegate with the
official SDKs and raw bodies in tests/e2e/test_mock_validation_sdks.py."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from anthropic.types.shared import ErrorResponse as AnthropicErrorResponse
from openai.types import ErrorObject
from pydantic import TypeAdapter

from sidegate import apis
from sidegate.upstream.mock.model import SUPPORTED_APIS, mock_reply
from sidegate.upstream.mock.validate import CHECKS

ANTHROPIC_ERROR = TypeAdapter(AnthropicErrorResponse)
USER = {"role": "user", "content": "hi"}
PARTS = {"role": "user", "parts": [{"text": "hi"}]}


def refusal(api: str, body: dict[str, Any]) -> dict[str, Any]:
    reply = mock_reply(api, body, "m", False)
    assert (reply.status, reply.content_type, reply.events) == (400, "application/json", None), reply.body
    return orjson.loads(reply.body or b"")


# ---------------------------------------------------------------- OpenAI

OPENAI_CASES = [
    (apis.OPENAI_CHAT, {"model": "m"}, "messages", "missing_required_parameter",
     "Missing required parameter: 'messages'."),
    (apis.OPENAI_CHAT, {"model": "m", "messages": "hi"}, "messages", "invalid_type",
     "Invalid type for 'messages': expected an array of objects, but got a string instead."),
    (apis.OPENAI_CHAT, {"model": "m", "messages": []}, "messages", "empty_array", "empty array"),
    (apis.OPENAI_CHAT, {"model": "m", "messages": [USER, "hi"]}, "messages[1]", "invalid_type",
     "Invalid type for 'messages[1]': expected an object, but got a string instead."),
    (apis.OPENAI_CHAT, {"model": "m", "messages": [{"content": "hi"}]}, "messages[0].role",
     "missing_required_parameter", "Missing required parameter: 'messages[0].role'."),
    (apis.OPENAI_CHAT, {"model": "m", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role",
     "invalid_value", "Invalid value: \"robot\". Supported values are: 'system', 'assistant', 'user', 'function', "
     "'tool', and 'developer'."),
    (apis.OPENAI_CHAT, {"model": "m", "messages": [{"role": "user"}]}, "messages[0].content",
     "missing_required_parameter", "Missing required parameter: 'messages[0].content'."),
    (apis.OPENAI_CHAT, {"model": "m", "messages": [{"role": "user", "content": 5}]}, "messages[0].content",
     "invalid_type", "expected one of a string or array of objects, but got an integer instead."),
    (apis.OPENAI_RESPONSES, {"model": "m"}, "input", "missing_required_parameter",
     "Missing required parameter: 'input'."),
    (apis.OPENAI_RESPONSES, {"model": "m", "input": 5}, "input", "invalid_type",
     "Invalid type for 'input': expected one of a string or array of input items, but got an integer instead."),
    (apis.OPENAI_RESPONSES, {"model": "m", "input": [None]}, "input[0]", "invalid_type", "but got null instead"),
    (apis.OPENAI_EMBEDDINGS, {"model": "m"}, "input", "missing_required_parameter",
     "Missing required parameter: 'input'."),
    (apis.OPENAI_EMBEDDINGS, {"model": "m", "input": []}, "input", "invalid_type", "'$.input' is invalid"),
    (apis.OPENAI_EMBEDDINGS, {"model": "m", "input": [1, "a"]}, "input", "invalid_type", "'$.input' is invalid"),
]


@pytest.mark.parametrize(("api", "body", "param", "code", "message"), OPENAI_CASES)
def test_openai_formats_refuse_like_openai(api, body, param, code, message):
    error = refusal(api, body)["error"]
    ErrorObject.model_validate(error)
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", param, code)
    assert message in error["message"]


# ---------------------------------------------------------------- Anthropic

MAX = {"model": "m", "max_tokens": 8}
ANTHROPIC_CASES = [
    (apis.ANTHROPIC_MESSAGES, {"model": "m", "messages": [USER]}, "max_tokens: Field required"),
    (apis.ANTHROPIC_MESSAGES, {**MAX, "max_tokens": "8", "messages": [USER]},
     "max_tokens: Input should be a valid integer"),
    (apis.ANTHROPIC_MESSAGES, MAX, "messages: Field required"),
    (apis.ANTHROPIC_MESSAGES, {**MAX, "messages": "hi"}, "messages: Input should be a valid list"),
    (apis.ANTHROPIC_MESSAGES, {**MAX, "messages": []}, "messages: at least one message is required"),
    (apis.ANTHROPIC_MESSAGES, {**MAX, "messages": [USER, 3]},
     "messages.1: Input should be a valid dictionary or object to extract fields from"),
    (apis.ANTHROPIC_MESSAGES, {**MAX, "messages": [{"content": "x"}]}, "messages.0.role: Field required"),
    (apis.ANTHROPIC_MESSAGES, {**MAX, "messages": [{"role": "bot", "content": "x"}]},
     "messages.0.role: Input should be 'user' or 'assistant'"),
    (apis.ANTHROPIC_MESSAGES, {**MAX, "messages": [{"role": "system", "content": "x"}, USER]},
     'messages: Unexpected role "system". The Messages API accepts a top-level `system` parameter'),
    (apis.ANTHROPIC_MESSAGES, {**MAX, "messages": [{"role": "user"}]}, "messages.0.content: Field required"),
    (apis.ANTHROPIC_MESSAGES, {**MAX, "messages": [{"role": "user", "content": {"text": "x"}}]},
     "messages.0.content: Input should be a valid string or a list of content blocks"),
    (apis.ANTHROPIC_COUNT_TOKENS, {"model": "m"}, "messages: Field required"),
    (apis.ANTHROPIC_COUNT_TOKENS, {"model": "m", "messages": "hi"}, "messages: Input should be a valid list"),
]


@pytest.mark.parametrize(("api", "body", "message"), ANTHROPIC_CASES)
def test_anthropic_formats_refuse_like_anthropic(api, body, message):
    answer = refusal(api, body)
    ANTHROPIC_ERROR.validate_python(answer)
    assert answer["type"] == "error" and answer["error"]["type"] == "invalid_request_error"
    assert answer["error"]["message"].startswith(message)


# ---------------------------------------------------------------- Gemini

GEMINI_CASES = [
    (apis.GEMINI_GENERATE, {}, "* GenerateContentRequest.contents: contents is not specified\n"),
    (apis.GEMINI_GENERATE, {"messages": [USER]}, "* GenerateContentRequest.contents: contents is not specified\n"),
    (apis.GEMINI_GENERATE, {"contents": []}, "* GenerateContentRequest.contents: contents is not specified\n"),
    (apis.GEMINI_GENERATE, {"contents": "hi"}, "Invalid value at 'contents' "
     "(type.googleapis.com/google.ai.generativelanguage.v1beta.Content), \"hi\""),
    (apis.GEMINI_GENERATE, {"contents": [PARTS, {"role": "user", "parts": []}]},
     "* GenerateContentRequest.contents[1].parts: contents.parts must not be empty.\n"),
    (apis.GEMINI_GENERATE, {"contents": [{"role": "user"}]},
     "* GenerateContentRequest.contents[0].parts: contents.parts must not be empty.\n"),
    (apis.GEMINI_GENERATE, {"contents": [{"role": "user", "parts": ["hi"]}]},
     "Invalid value at 'contents[0].parts[0]'"),
    (apis.GEMINI_GENERATE, {"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]},
     "Please use a valid role: user, model."),
    (apis.GEMINI_GENERATE, {"contents": ["x" * 500]}, "Invalid value at 'contents[0]'"),
    (apis.GEMINI_COUNT_TOKENS, {}, "* CountTokensRequest.contents: contents is not specified\n"),
    (apis.GEMINI_COUNT_TOKENS, {"generateContentRequest": {"model": "models/m"}},
     "* CountTokensRequest.generate_content_request.contents: contents is not specified\n"),
    (apis.GEMINI_COUNT_TOKENS, {"generateContentRequest": "x"}, "Invalid value at 'generate_content_request'"),
    (apis.GEMINI_EMBED, {}, "* EmbedContentRequest.content: content is not specified\n"),
    (apis.GEMINI_EMBED, {"content": "hi"}, "Invalid value at 'content'"),
    (apis.GEMINI_EMBED, {"content": {"parts": []}}, "* EmbedContentRequest.content.parts: contents.parts must not be"),
    (apis.GEMINI_BATCH_EMBED, {}, "* BatchEmbedContentsRequest.requests: requests is not specified\n"),
    (apis.GEMINI_BATCH_EMBED, {"requests": "x"}, "Invalid value at 'requests'"),
    (apis.GEMINI_BATCH_EMBED, {"requests": [{"content": {"parts": [{"text": "a"}]}}, {}]},
     "* BatchEmbedContentsRequest.requests[1].content: content is not specified\n"),
]


@pytest.mark.parametrize(("api", "body", "message"), GEMINI_CASES)
def test_gemini_formats_refuse_like_gemini(api, body, message):
    error = refusal(api, body)["error"]
    assert set(error) == {"code", "message", "status"}
    assert (error["code"], error["status"]) == (400, "INVALID_ARGUMENT")
    assert error["message"].startswith(message)
    assert len(error["message"]) < 250, "a long value is not echoed whole"


def test_every_api_the_mock_answers_is_checked():
    assert frozenset(CHECKS) == SUPPORTED_APIS
    refused = {case[0] for case in OPENAI_CASES + ANTHROPIC_CASES + GEMINI_CASES}
    assert refused == SUPPORTED_APIS


VALID = [
    (apis.OPENAI_CHAT, {"model": "m", "messages": [{"role": "system", "content": "terse"}]}),
    (apis.OPENAI_CHAT, {"model": "m", "messages": [USER, {"role": "assistant", "tool_calls": []},
                                                   {"role": "tool", "tool_call_id": "t", "content": "4"}]}),
    (apis.OPENAI_CHAT, {"model": "m", "messages": [{"role": "developer", "content": [{"type": "text", "text": "x"}]},
                                                   {"role": "user", "content": None}]}),
    (apis.OPENAI_RESPONSES, {"model": "m", "input": "hi"}),
    (apis.OPENAI_RESPONSES, {"model": "m", "input": []}),
    (apis.OPENAI_RESPONSES, {"model": "m", "previous_response_id": "resp_1"}),
    (apis.OPENAI_EMBEDDINGS, {"model": "m", "input": ["a", "b"]}),
    (apis.ANTHROPIC_MESSAGES, {**MAX, "system": "terse", "messages": [USER, {"role": "assistant", "content": []}]}),
    (apis.ANTHROPIC_COUNT_TOKENS, {"model": "m", "messages": [USER]}),
    (apis.GEMINI_GENERATE, {"contents": [PARTS, {"role": "model", "parts": [{"text": "x"}]}]}),
    (apis.GEMINI_GENERATE, {"contents": {"parts": [{"text": "a single Content"}]}}),
    (apis.GEMINI_COUNT_TOKENS, {"contents": [PARTS]}),
    (apis.GEMINI_COUNT_TOKENS, {"generate_content_request": {"model": "models/m", "contents": [PARTS]}}),
    (apis.GEMINI_EMBED, {"content": {"parts": [{"text": "a"}]}}),
    (apis.GEMINI_BATCH_EMBED, {"requests": [{"content": {"parts": [{"text": "a"}]}}]}),
]


@pytest.mark.parametrize(("api", "body"), VALID)
def test_valid_requests_are_answered(api, body):
    reply = mock_reply(api, body, "m", False)
    assert reply.status == 200, reply.body


def test_a_single_gemini_content_is_echoed_like_a_list_of_one():
    body = {"contents": {"role": "user", "parts": [{"text": "echo me"}]}}
    answer = orjson.loads(mock_reply(apis.GEMINI_GENERATE, body, "m", False).body or b"")
    assert answer["candidates"][0]["content"]["parts"] == [{"text": "echo me"}]
