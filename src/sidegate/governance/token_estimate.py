"""How many tokens a request may consume, estimated before it is sent (for token rate limits).

The estimate is the prompt's size (about four characters a token, `ingress.base.text_chars`) plus the
most the model may generate: the request's own output cap when it sets one, else a default. The
rate limiter reserves this estimate and settles it with the real usage once the answer is known,
so the estimate only has to be of the right order, never exact.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sidegate import apis
from sidegate.ingress.base import as_int, estimate_tokens, text_chars

DEFAULT_OUTPUT_TOKENS = 1024  # reserved for output when a request sets no cap of its own


def _first_cap(body: dict[str, Any], *fields: str) -> int:
    for name in fields:
        value = as_int(body.get(name))
        if value > 0:
            return value
    return DEFAULT_OUTPUT_TOKENS


def _chat_output(body: dict[str, Any]) -> int:
    return _first_cap(body, "max_completion_tokens", "max_tokens")


def _responses_output(body: dict[str, Any]) -> int:
    return _first_cap(body, "max_output_tokens")


def _messages_output(body: dict[str, Any]) -> int:
    return _first_cap(body, "max_tokens")


def _gemini_output(body: dict[str, Any]) -> int:
    config = body.get("generationConfig") or body.get("generation_config")
    if not isinstance(config, dict):
        return DEFAULT_OUTPUT_TOKENS
    return _first_cap(config, "maxOutputTokens", "max_output_tokens")


def _no_output(body: dict[str, Any]) -> int:
    return 0


def _token_ids(value: Any) -> int:
    if not isinstance(value, list):
        return 0
    return sum(1 if isinstance(v, int) else _token_ids(v) if isinstance(v, list) else 0 for v in value)


def _openai_embeddings(body: dict[str, Any]) -> int:
    """Embeddings input may be token ids (a list of ints, or a list of such lists): no text to
    count, one token each."""
    return _token_ids(body.get("input"))


# Per API format: the tokens a request may consume beyond its prompt text (what the model may
# generate, or input given as token ids). Formats absent here consume no tokens (count_tokens
# calls, the model list).
EXTRA_TOKENS: dict[str, Callable[[dict[str, Any]], int]] = {
    apis.OPENAI_CHAT: _chat_output,
    apis.OPENAI_RESPONSES: _responses_output,
    apis.OPENAI_EMBEDDINGS: _openai_embeddings,
    apis.ANTHROPIC_MESSAGES: _messages_output,
    apis.GEMINI_GENERATE: _gemini_output,
    apis.GEMINI_EMBED: _no_output,
    apis.GEMINI_BATCH_EMBED: _no_output,
}


def estimate_request_tokens(api: str, body: dict[str, Any], size: int | None = None) -> int:
    """Tokens to reserve for a request of format `api` (an `apis` id) with this parsed body. With
    `size` (the body's length in bytes) the prompt is sized from that instead of walking every text
    of the body: a little higher (JSON punctuation and field names count too), and settled anyway."""
    extra = EXTRA_TOKENS.get(api)
    if extra is None:
        return 0
    return estimate_tokens(text_chars(body) if size is None else size) + extra(body)
