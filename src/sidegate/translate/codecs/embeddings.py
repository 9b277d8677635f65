"""Embeddings between formats: OpenAI `/embeddings` ↔ Gemini `embedContent` / `batchEmbedContents`.

An OpenAI request becomes one `batchEmbedContents` call (one request per input, in order); a
Gemini `embedContent` or `batchEmbedContents` call becomes one OpenAI request with a list input.
`dimensions` ↔ `outputDimensionality`; OpenAI's `encoding_format: base64` is honoured on the way
back (little-endian float32, as OpenAI encodes it). Gemini's `taskType` / `title` and OpenAI's
`user` are advisory. Token arrays (OpenAI inputs given as token ids) cannot be re-tokenized for
another provider: a 400. Gemini reports no token usage for embeddings; the count given to an
OpenAI caller is then estimated at four characters per token.
"""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass
from typing import Any

from sidegate.formats.base import TokenUsage
from sidegate.formats.gemini import embed_usage
from sidegate.formats.openai import embeddings_usage
from sidegate.translate.errors import invalid, unsupported
from sidegate.translate.fields import int_field, objects, out_of_range, str_field, want_list, want_num, want_str, wrong

CHARS_PER_TOKEN = 4


@dataclass(slots=True)
class EmbedRequest:
    inputs: list[str]
    dimensions: int | None = None
    base64: bool = False


@dataclass(slots=True)
class Embeddings:
    vectors: list[list[float]]
    usage: TokenUsage | None = None


def _estimate(req: EmbedRequest) -> TokenUsage:
    return TokenUsage(input=sum(-(-len(text) // CHARS_PER_TOKEN) for text in req.inputs))


# ---------------------------------------------------------------- OpenAI embeddings


def _token_ids(raw: list[Any]) -> bool:
    """A token-id input: an array of integers, or an array of such arrays."""
    return all(isinstance(x, int) and not isinstance(x, bool) for x in raw) or all(
        isinstance(x, list) and _token_ids(x) for x in raw)


def openai_decode_request(body: dict[str, Any], stream: bool) -> EmbedRequest:
    raw = body.get("input")
    if isinstance(raw, str):
        inputs = [raw]
    elif isinstance(raw, list) and raw and _token_ids(raw):
        raise unsupported("input", "the destination", "token-id inputs cannot be re-tokenized for another model")
    elif isinstance(raw, list) and raw:
        inputs = [want_str(item, f"input[{i}]") for i, item in enumerate(raw)]
    else:
        raise invalid("input", "must be a string or a non-empty list of strings")
    fmt = str_field(body, "encoding_format")
    if fmt not in (None, "float", "base64"):
        raise invalid("encoding_format", "must be float or base64")
    return EmbedRequest(inputs, int_field(body, "dimensions", low=1), fmt == "base64")


def openai_encode_request(req: EmbedRequest, model: str, stream: bool, stream_usage: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "input": req.inputs, "encoding_format": "float"}
    if req.dimensions is not None:
        body["dimensions"] = req.dimensions
    return body


def _vector(value: Any, field: str) -> list[float]:
    """An embedding: an array of numbers, or (OpenAI's base64 encoding) little-endian float32 bytes."""
    if isinstance(value, str):
        try:
            raw = base64.b64decode(value, validate=True)
        except ValueError:  # binascii.Error is one
            raise wrong(field, "an array of numbers or base64 text", value) from None
        if len(raw) % 4:
            raise out_of_range(field, "whole float32 values (a multiple of 4 bytes)")
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))
    return [float(want_num(x, f"{field}[{i}]")) for i, x in enumerate(want_list(value, field) if value else ())]


def openai_decode_response(obj: dict[str, Any]) -> Embeddings:
    items = [(int_field(d, "index", where) or 0, where, d) for where, d in objects(obj, "data")]
    items.sort(key=lambda item: item[0])
    tokens = embeddings_usage(obj.get("usage"))
    return Embeddings([_vector(d.get("embedding"), f"{where}.embedding") for _, where, d in items], tokens)


def openai_encode_response(answer: Embeddings, req: EmbedRequest, model: str) -> dict[str, Any]:
    def encoded(vector: list[float]) -> Any:
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode() if req.base64 else vector

    tokens = (answer.usage or _estimate(req)).input
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": encoded(v)} for i, v in enumerate(answer.vectors)],
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


# ---------------------------------------------------------------- Gemini embedContent / batchEmbedContents


def _content_text(content: Any, field: str) -> str:
    if not isinstance(content, dict):
        raise wrong(field, "a Content object", content)
    texts = []
    for where, part in objects(content, "parts", field):
        if "text" not in part:
            raise unsupported(where, "the destination", "only text parts are embedded")
        texts.append(want_str(part["text"], f"{where}.text"))
    return "\n".join(texts)


def gemini_decode_embed(body: dict[str, Any], stream: bool) -> EmbedRequest:
    return EmbedRequest([_content_text(body.get("content"), "content")],
                        int_field(body, "outputDimensionality", low=1))


def gemini_decode_batch(body: dict[str, Any], stream: bool) -> EmbedRequest:
    requests = body.get("requests")
    if not isinstance(requests, list) or not requests:
        raise invalid("requests", "must be a non-empty list")
    items = objects(body, "requests")
    dims = {int_field(r, "outputDimensionality", where, low=1) for where, r in items}
    if len(dims) > 1:
        raise unsupported("requests[].outputDimensionality", "the destination", "one dimension per call")
    inputs = [_content_text(r.get("content"), f"{where}.content") for where, r in items]
    return EmbedRequest(inputs, dims.pop() if dims else None)


def gemini_encode_batch(req: EmbedRequest, model: str, stream: bool, stream_usage: bool) -> dict[str, Any]:
    requests = []
    for text in req.inputs:
        item: dict[str, Any] = {"model": f"models/{model}", "content": {"parts": [{"text": text}]}}
        if req.dimensions is not None:
            item["outputDimensionality"] = req.dimensions
        requests.append(item)
    return {"requests": requests}


def gemini_decode_batch_response(obj: dict[str, Any]) -> Embeddings:
    vectors = [_vector(e.get("values"), f"{where}.values") for where, e in objects(obj, "embeddings")]
    return Embeddings(vectors, embed_usage(obj.get("usageMetadata")))


def gemini_encode_embed_response(answer: Embeddings, req: EmbedRequest, model: str) -> dict[str, Any]:
    return {"embedding": {"values": answer.vectors[0] if answer.vectors else []}}


def gemini_encode_batch_response(answer: Embeddings, req: EmbedRequest, model: str) -> dict[str, Any]:
    return {"embeddings": [{"values": v} for v in answer.vectors]}
