"""Property: every codec pair the registry can plan takes any JSON a caller or a destination may
send to a valid translation or a GatewayError, never another exception.

Requests: random bodies made of the format's own field names, and mutations of the realistic
fixtures (a value replaced by one of another JSON type, a key dropped, a value nested in a list
or an object). The outcome is either a body that serialises as JSON (what is sent upstream) or a
GatewayError with a 4xx status naming a field. Answers: random and mutated JSON answers and SSE
events of the destination; the outcome is a caller answer that serialises or a GatewayError (a
stream: the caller's events, or its error event ending the stream with the failure recorded).

Deterministic (`derandomize`) and bounded: the whole module runs in a few seconds.
"""

from __future__ import annotations

import os
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.support.fakes import anthropic_wire, gemini_wire, openai_wire
from tests.support.translate_fixtures import answers as ax
from tests.support.translate_fixtures import requests as fx
from tests.support.translate_fixtures.schema_check import (
    anthropic_count_problems,
    anthropic_messages_problems,
    gemini_batch_embed_problems,
    gemini_count_problems,
    gemini_generate_problems,
    openai_chat_problems,
    openai_embeddings_problems,
)

from sidegate import apis
from sidegate.errors import GatewayError
from sidegate.translate import ESTIMATE, Translation
from sidegate.translate.registry import CODECS, pairs

EXAMPLES = int(os.environ.get("SIDEGATE_FUZZ_EXAMPLES", "50"))  # raise it locally for a longer hunt
FUZZ = settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

EMBED = {"input": ["first", "second ✓"], "dimensions": 8, "encoding_format": "float"}
GEMINI_EMBED = {"content": {"parts": [{"text": "hello"}]}, "outputDimensionality": 8, "taskType": "RETRIEVAL_QUERY"}
GEMINI_BATCH = {"requests": [{"model": "models/e", "content": {"parts": [{"text": "a"}]}, "outputDimensionality": 8},
                             {"model": "models/e", "content": {"parts": [{"text": "b"}]}, "outputDimensionality": 8}]}
ANTHROPIC_COUNT = {k: v for k, v in fx.ANTHROPIC["claude_code_like"].items() if k not in ("max_tokens", "stream")}
GEMINI_COUNT = {"generateContentRequest": {"model": "models/g", **fx.GEMINI["cli_like"]}}

CALLER_BODIES: dict[str, list[dict[str, Any]]] = {
    apis.OPENAI_CHAT: list(fx.CHAT.values()),
    apis.OPENAI_RESPONSES: list(fx.RESPONSES.values()),
    apis.ANTHROPIC_MESSAGES: list(fx.ANTHROPIC.values()),
    apis.GEMINI_GENERATE: list(fx.GEMINI.values()),
    apis.OPENAI_EMBEDDINGS: [EMBED, {"input": "one"}],
    apis.GEMINI_EMBED: [GEMINI_EMBED],
    apis.GEMINI_BATCH_EMBED: [GEMINI_BATCH],
    apis.ANTHROPIC_COUNT_TOKENS: [ANTHROPIC_COUNT],
    apis.GEMINI_COUNT_TOKENS: [GEMINI_COUNT, fx.GEMINI["images"]],
}

DEST_ANSWERS: dict[str, list[dict[str, Any]]] = {
    apis.OPENAI_CHAT: [a.body for a in ax.JSON_ANSWERS.values() if a.dest == apis.OPENAI_CHAT and a.body],
    apis.ANTHROPIC_MESSAGES: [a.body for a in ax.JSON_ANSWERS.values() if a.dest == apis.ANTHROPIC_MESSAGES and a.body],
    apis.GEMINI_GENERATE: [a.body for a in ax.JSON_ANSWERS.values() if a.dest == apis.GEMINI_GENERATE and a.body],
    apis.OPENAI_EMBEDDINGS: [{"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.5, 1]},
                                                         {"object": "embedding", "index": 1, "embedding": "AAAAPw=="}],
                              "model": "e", "usage": {"prompt_tokens": 3, "total_tokens": 3}}],
    apis.GEMINI_BATCH_EMBED: [{"embeddings": [{"values": [0.25, 0.5]}, {"values": [1.0]}],
                               "usageMetadata": {"promptTokenCount": 4}}],
    apis.ANTHROPIC_COUNT_TOKENS: [{"input_tokens": 42}],
    apis.GEMINI_COUNT_TOKENS: [{"totalTokens": 42, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 42}]}],
}


def _events(blocks: list[bytes]) -> list[tuple[str | None, bytes]]:
    out = []
    for block in blocks:
        event, data = None, []
        for line in block.decode().splitlines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        if data:
            out.append((event, "\n".join(data).encode()))
    return out


DEST_STREAMS: dict[str, list[list[tuple[str | None, bytes]]]] = {
    dest: [_events(a.sse) for a in ax.STREAM_ANSWERS.values() if a.dest == dest and a.sse]
    for dest in (apis.OPENAI_CHAT, apis.ANTHROPIC_MESSAGES, apis.GEMINI_GENERATE)
}
DEST_STREAMS[apis.OPENAI_CHAT].append(_events(openai_wire.chat_sse({"model": "m", **ax.TOOLS_REQ})))
DEST_STREAMS[apis.ANTHROPIC_MESSAGES].append(_events(anthropic_wire.message_sse({"model": "m"})))
DEST_STREAMS[apis.GEMINI_GENERATE].append(_events(gemini_wire.stream_sse("g", {})))

# JSON as orjson reads it: integers within 64 bits (larger ones arrive as floats), finite floats.
SCALARS = (st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1)
           | st.floats(allow_nan=False, allow_infinity=False)
           | st.sampled_from([0, 1, -1, 10.5, 10.0, 1e20, 2**63, "", "x", "hot", "10", "model", "user", "text"])
           | st.text(max_size=8))
# What a mutation puts in place of a value: mostly a scalar or a shallow container of another type.
WRONG = SCALARS | st.lists(SCALARS, max_size=2) | st.dictionaries(st.sampled_from(["text", "type", "x"]), SCALARS,
                                                                 max_size=2)
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                                          max_size=4), max_leaves=12)


def _keys(value: Any, out: set[str]) -> set[str]:
    if isinstance(value, dict):
        for key, inner in value.items():
            out.add(key)
            _keys(inner, out)
    elif isinstance(value, list):
        for inner in value:
            _keys(inner, out)
    return out


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, inner in value.items():
            out += _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            out += _paths(inner, (*prefix, i))
    return out


def _mutated(body: Any, path: tuple[Any, ...], how: str, value: Any) -> Any:
    copy = orjson.loads(orjson.dumps(body))
    parent = copy
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if how == "drop":
        del parent[last]
    elif how == "wrap_list":
        parent[last] = [parent[last]]
    elif how == "wrap_object":
        parent[last] = {"value": parent[last]}
    else:
        parent[last] = value
    return copy


@st.composite
def mutations(draw: st.DrawFn, bodies: list[dict[str, Any]]) -> Any:
    """A real body with one to three of its values replaced, dropped or nested wrongly."""
    body: Any = draw(st.sampled_from(bodies))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(body)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        body = _mutated(body, path, draw(st.sampled_from(["replace", "replace", "drop", "wrap_list", "wrap_object"])),
                        draw(WRONG))
    return body


def random_bodies(bodies: list[dict[str, Any]]) -> st.SearchStrategy[Any]:
    """Objects (what ingress hands on) made of the format's own field names with random values."""
    names = sorted(_keys(bodies, set()))
    return st.dictionaries(st.sampled_from(names) | st.text(max_size=6), JSON, max_size=8)


def bodies_for(sample: list[dict[str, Any]]) -> st.SearchStrategy[Any]:
    return mutations(sample) | random_bodies(sample)


# What the destination's documented schema says of a translated body (what sidegate sends).
SCHEMAS = {apis.OPENAI_CHAT: openai_chat_problems, apis.ANTHROPIC_MESSAGES: anthropic_messages_problems,
           apis.GEMINI_GENERATE: gemini_generate_problems, apis.OPENAI_EMBEDDINGS: openai_embeddings_problems,
           apis.GEMINI_BATCH_EMBED: gemini_batch_embed_problems, apis.ANTHROPIC_COUNT_TOKENS: anthropic_count_problems,
           apis.GEMINI_COUNT_TOKENS: gemini_count_problems}
REQUEST_PAIRS = pairs()
ANSWER_PAIRS = [(c, d) for c, d in REQUEST_PAIRS if d != ESTIMATE]
STREAM_PAIRS = [(c, d) for c, d in ANSWER_PAIRS
                if CODECS[c].stream_encoder is not None and CODECS[d].stream_decoder is not None]


def _translation(caller: str, dest: str, stream: bool = False) -> Translation:
    return Translation(caller, dest, "asked-model", "dest-model", stream)


def _request(caller: str, dest: str, body: Any, stream: bool = False) -> Translation | None:
    """Translate `body`; None when it was refused with a 4xx GatewayError naming a field."""
    translation = _translation(caller, dest, stream)
    try:
        out = translation.request(body)
    except GatewayError as err:
        assert 400 <= err.status < 500, (err.status, err.code, err.message)
        assert err.param, f"{err.code}: {err.message} names no field"
        return None
    orjson.dumps(out)  # what forward sends: must serialise
    if dest in SCHEMAS:  # inline media bytes are the destination's to judge: sidegate does not decode them
        assert [p for p in SCHEMAS[dest](out) if "valid base64" not in p] == [], body
    if translation.local:
        orjson.dumps(translation.answer_locally()[1])
    return translation


@pytest.mark.parametrize(("caller", "dest"), REQUEST_PAIRS, ids=[f"{c}->{d}" for c, d in REQUEST_PAIRS])
def test_requests_translate_or_get_a_4xx(caller: str, dest: str) -> None:
    @FUZZ
    @given(body=bodies_for(CALLER_BODIES[caller]), stream=st.booleans())
    def check(body: Any, stream: bool) -> None:
        _request(caller, dest, body, stream)

    check()


def _ready(caller: str, dest: str, stream: bool = False) -> Translation:
    translation = _request(caller, dest, CALLER_BODIES[caller][0], stream)
    assert translation is not None, "the fixture itself translates"
    return translation


@pytest.mark.parametrize(("caller", "dest"), ANSWER_PAIRS, ids=[f"{c}->{d}" for c, d in ANSWER_PAIRS])
def test_answers_translate_or_raise_a_gateway_error(caller: str, dest: str) -> None:
    translation = _ready(caller, dest)

    @FUZZ
    @given(answer=bodies_for(DEST_ANSWERS[dest]), status=st.sampled_from([200, 200, 200, 400, 429, 500, 529]))
    def check(answer: Any, status: int) -> None:
        try:
            code, out = translation.response(status, answer)
        except GatewayError as err:
            assert err.status == 502 and err.code == "upstream_invalid_response", (err.status, err.code)
            return
        assert 200 <= code <= 599
        orjson.dumps(out)

    check()


@st.composite
def streams(draw: st.DrawFn, dest: str) -> list[tuple[str | None, bytes]]:
    events = list(draw(st.sampled_from(DEST_STREAMS[dest])))
    for _ in range(draw(st.integers(1, 3))):
        if not events:
            break
        i = draw(st.integers(0, len(events) - 1))
        name, data = events[i]
        how = draw(st.sampled_from(["mutate", "mutate", "random", "raw", "drop"]))
        if how == "drop":
            del events[i]
            continue
        if how == "raw":
            events[i] = (name, draw(st.binary(min_size=1, max_size=12)))
            continue
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            obj = None
        new = draw(mutations([obj])) if how == "mutate" and isinstance(obj, dict) else draw(JSON)
        events[i] = (name, orjson.dumps(new))
    return events


@pytest.mark.parametrize(("caller", "dest"), STREAM_PAIRS, ids=[f"{c}->{d}" for c, d in STREAM_PAIRS])
def test_stream_events_translate_or_end_with_the_callers_error_event(caller: str, dest: str) -> None:
    @FUZZ
    @given(events=streams(dest))
    def check(events: list[tuple[str | None, bytes]]) -> None:
        stream = _ready(caller, dest, stream=True).stream()
        for name, data in events:
            for block in stream.feed(name, data):
                assert isinstance(block, bytes) and block.endswith(b"\n\n")
            if stream.failure is not None:  # the caller's stream got its error event and ended
                assert (stream.failure.status, stream.failure.code) == (502, "upstream_invalid_response")
                assert stream.feed(name, data) == [] and stream.finish() == []
                return
        for block in stream.finish():
            assert block.endswith(b"\n\n")

    check()
