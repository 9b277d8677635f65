"""How many tokens a request may consume, estimated before it is sent (for token rate limits).

Two numbers: the input, the prompt's size (about four characters a token, `formats.base.text_chars`;
embeddings given as token ids count one each), and the output cap, the most the model may generate
(the request's own cap when it sets one, else a default). A token limit admits a request while the
input fits and reserves only an expectation of the output bounded by what is left (`ratelimit.store`);
both are settled with the real usage once the answer is known, so the estimate only has to be of
the right order, never exact.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sidegate import apis
from sidegate.formats.base import as_int, estimate_tokens, text_chars

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


# Per API format that consumes tokens: the most the model may generate. Formats absent here consume
# no tokens (count_tokens calls, the model list).
OUTPUT_CAPS: dict[str, Callable[[dict[str, Any]], int]] = {
    apis.OPENAI_CHAT: _chat_output,
    apis.OPENAI_RESPONSES: _responses_output,
    apis.OPENAI_EMBEDDINGS: _no_output,
    apis.ANTHROPIC_MESSAGES: _messages_output,
    apis.GEMINI_GENERATE: _gemini_output,
    apis.GEMINI_EMBED: _no_output,
    apis.GEMINI_BATCH_EMBED: _no_output,
}

# Per API format: input given otherwise than as text (token ids), in tokens.
INPUT_IDS: dict[str, Callable[[dict[str, Any]], int]] = {
    apis.OPENAI_EMBEDDINGS: _openai_embeddings,
}


def estimate_request_tokens(api: str, body: dict[str, Any], size: int | None = None) -> tuple[int, int]:
    """(input tokens, output cap) of a request of format `api` (an `apis` id) with this parsed body.
    With `size` (the body's length in bytes) the input is sized from that instead of walking every
    text of the body: a little higher (JSON punctuation and field names count too), and settled anyway."""
    output = OUTPUT_CAPS.get(api)
    if output is None:
        return 0, 0
    needed = estimate_tokens(text_chars(body) if size is None else size)
    ids = INPUT_IDS.get(api)
    if ids is not None:
        needed += ids(body)
    return needed, output(body)
