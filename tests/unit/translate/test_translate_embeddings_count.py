"""Embeddings (OpenAI ↔ Gemini) and token counts (Anthropic ↔ Gemini, estimated for providers
without a count endpoint), plus the pair matrix `plan` answers from."""

from __future__ import annotations

import base64
import struct

import pytest
from tests.support.fakes import anthropic_wire, gemini_wire, openai_wire
from tests.support.translate_fixtures import requests as fx
from tests.support.translate_fixtures.schema_check import (
    anthropic_count_problems,
    gemini_batch_embed_problems,
    gemini_count_problems,
    openai_embeddings_problems,
)

from sidegate import apis
from sidegate.translate import ESTIMATE, Translation, TranslationError, plan
from sidegate.upstream.providers import ADAPTERS

KINDS = {kind: adapter.apis for kind, adapter in ADAPTERS.items()}
OPENAI = KINDS["openai"]
ANTHROPIC = KINDS["anthropic"]
GEMINI = KINDS["gemini"]


@pytest.mark.parametrize(("caller", "provider", "dest"), [
    (apis.OPENAI_CHAT, ANTHROPIC, apis.ANTHROPIC_MESSAGES),
    (apis.OPENAI_CHAT, GEMINI, apis.GEMINI_GENERATE),
    (apis.OPENAI_CHAT, OPENAI, None),
    (apis.OPENAI_RESPONSES, OPENAI - {apis.OPENAI_RESPONSES}, apis.OPENAI_CHAT),
    (apis.OPENAI_RESPONSES, ANTHROPIC, apis.ANTHROPIC_MESSAGES),
    (apis.OPENAI_RESPONSES, GEMINI, apis.GEMINI_GENERATE),
    (apis.OPENAI_RESPONSES, OPENAI, None),
    (apis.OPENAI_EMBEDDINGS, GEMINI, apis.GEMINI_BATCH_EMBED),
    (apis.OPENAI_EMBEDDINGS, ANTHROPIC, None),
    (apis.ANTHROPIC_MESSAGES, OPENAI, apis.OPENAI_CHAT),
    (apis.ANTHROPIC_MESSAGES, GEMINI, apis.GEMINI_GENERATE),
    (apis.ANTHROPIC_COUNT_TOKENS, GEMINI, apis.GEMINI_COUNT_TOKENS),
    (apis.ANTHROPIC_COUNT_TOKENS, OPENAI, ESTIMATE),
    (apis.GEMINI_GENERATE, OPENAI, apis.OPENAI_CHAT),
    (apis.GEMINI_GENERATE, ANTHROPIC, apis.ANTHROPIC_MESSAGES),
    (apis.GEMINI_COUNT_TOKENS, ANTHROPIC, apis.ANTHROPIC_COUNT_TOKENS),
    (apis.GEMINI_COUNT_TOKENS, OPENAI, ESTIMATE),
    (apis.GEMINI_EMBED, OPENAI, apis.OPENAI_EMBEDDINGS),
    (apis.GEMINI_BATCH_EMBED, OPENAI, apis.OPENAI_EMBEDDINGS),
    (apis.OPENAI_MODELS, ANTHROPIC, None),
])
def test_plan(caller: str, provider: frozenset[str], dest: str | None) -> None:
    assert plan(caller, provider) == dest


def test_every_planned_pair_constructs() -> None:
    from sidegate.translate.registry import pairs

    for caller, dest in pairs():
        Translation(caller, dest, "a", "b", False)
    with pytest.raises(ValueError, match="no translation"):
        Translation(apis.OPENAI_CHAT, apis.OPENAI_EMBEDDINGS, "a", "b", False)


# ---------------------------------------------------------------- embeddings


def test_openai_embeddings_to_gemini_batch() -> None:
    from openai.types import CreateEmbeddingResponse

    t = Translation(apis.OPENAI_EMBEDDINGS, apis.GEMINI_BATCH_EMBED, "text-embedding-3-small", "gemini-embedding-001",
                    False)
    body = t.request({"model": "text-embedding-3-small", "input": ["first text", "second ✓"], "dimensions": 8})
    assert gemini_batch_embed_problems(body) == []
    assert body["requests"][1] == {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "second ✓"}]},
                                   "outputDimensionality": 8}
    upstream = gemini_wire.batch_embed_json("gemini-embedding-001", body)
    status, answer = t.response(200, upstream)
    parsed = CreateEmbeddingResponse.model_validate(answer)
    assert status == 200 and parsed.model == "gemini-embedding-001"  # the destination's model
    assert [d.embedding for d in parsed.data] == [e["values"] for e in upstream["embeddings"]]
    assert parsed.usage.prompt_tokens == 3 + 2  # estimated: Gemini reports no usage for embeddings


def test_openai_base64_embeddings_from_gemini() -> None:
    t = Translation(apis.OPENAI_EMBEDDINGS, apis.GEMINI_BATCH_EMBED, "e", "g", False)
    t.request({"model": "e", "input": "one", "encoding_format": "base64"})
    _, answer = t.response(200, {"embeddings": [{"values": [0.5, -0.25, 1.0]}]})
    raw = base64.b64decode(answer["data"][0]["embedding"])
    assert list(struct.unpack("<3f", raw)) == [0.5, -0.25, 1.0]


def test_token_id_inputs_cannot_cross() -> None:
    t = Translation(apis.OPENAI_EMBEDDINGS, apis.GEMINI_BATCH_EMBED, "e", "g", False)
    with pytest.raises(TranslationError) as caught:
        t.request({"model": "e", "input": [[101, 2023]]})
    assert caught.value.param == "input"


@pytest.mark.parametrize("encoding", ["float", "base64"])
def test_gemini_embed_calls_to_openai(encoding: str) -> None:
    from google.genai import types

    t = Translation(apis.GEMINI_EMBED, apis.OPENAI_EMBEDDINGS, "gemini-embedding-001", "text-embedding-3-small", False)
    body = t.request({"content": {"parts": [{"text": "hello"}]}, "outputDimensionality": 4,
                      "taskType": "RETRIEVAL_QUERY"})
    assert openai_embeddings_problems(body) == [] and body["input"] == ["hello"] and body["dimensions"] == 4
    upstream = openai_wire.embeddings_json({**body, "encoding_format": encoding})
    _, answer = t.response(200, upstream)
    values = types.ContentEmbedding.model_validate(answer["embedding"]).values
    assert values == pytest.approx(openai_wire.fake_vector("hello", 4), abs=1e-6)

    t = Translation(apis.GEMINI_BATCH_EMBED, apis.OPENAI_EMBEDDINGS, "g", "e", False)
    body = t.request({"requests": [{"model": "models/g", "content": {"parts": [{"text": s}]}} for s in ("a", "b")]})
    assert body["input"] == ["a", "b"]
    _, answer = t.response(200, openai_wire.embeddings_json(body))
    assert [len(e["values"]) for e in answer["embeddings"]] == [8, 8]


# ---------------------------------------------------------------- token counts


def test_anthropic_count_tokens_on_gemini() -> None:
    from anthropic.types import MessageTokensCount

    t = Translation(apis.ANTHROPIC_COUNT_TOKENS, apis.GEMINI_COUNT_TOKENS, "claude-sonnet-4-5", "gemini-2.5-pro",
                    False)
    count_body = {k: v for k, v in fx.ANTHROPIC["claude_code_like"].items() if k not in ("max_tokens", "stream")}
    body = t.request(count_body)
    assert gemini_count_problems(body) == []
    assert body["generateContentRequest"]["systemInstruction"]["parts"][0] == {"text": "You are Claude Code."}
    status, answer = t.response(200, gemini_wire.count_tokens_json())
    assert status == 200 and MessageTokensCount.model_validate(answer).input_tokens == 9


def test_gemini_count_tokens_on_anthropic() -> None:
    from google.genai import types

    t = Translation(apis.GEMINI_COUNT_TOKENS, apis.ANTHROPIC_COUNT_TOKENS, "gemini-2.5-pro", "claude-sonnet-4-5",
                    False)
    body = t.request({"contents": fx.GEMINI["cli_like"]["contents"]})
    assert anthropic_count_problems(body) == [] and body["model"] == "claude-sonnet-4-5"
    _, answer = t.response(200, anthropic_wire.count_tokens_json())
    assert types.CountTokensResponse.model_validate(answer).total_tokens == 16
    wrapped = t.request({"generateContentRequest": {"model": "models/gemini-2.5-pro", **fx.GEMINI["cli_like"]}})
    assert wrapped["system"] == "You are Gemini CLI." and len(wrapped["tools"]) == 2


def test_count_estimated_where_the_provider_cannot_count() -> None:
    text = "word " * 400  # 2000 characters
    t = Translation(apis.ANTHROPIC_COUNT_TOKENS, ESTIMATE, "claude-sonnet-4-5", "gpt-5", False)
    assert t.local
    t.request({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": text}]})
    status, answer = t.answer_locally()
    assert status == 200 and answer == {"input_tokens": 500 + 3}
    t = Translation(apis.GEMINI_COUNT_TOKENS, ESTIMATE, "gemini-2.5-pro", "gpt-5", False)
    t.request({"contents": [{"parts": [{"text": text}, {"inlineData": {"mimeType": "image/png", "data": fx.PNG}}]}]})
    assert t.answer_locally() == (200, {"totalTokens": 500 + 3 + 1000})
