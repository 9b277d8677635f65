"""The pair matrix: every format codec, and for each caller format the destination formats to try,
in order of preference, when a provider does not speak the caller's own.

A pair exists when the caller's codec serves callers, the destination's codec reaches
destinations, and both are of one operation (generation, token counting, embeddings). `ESTIMATE` is the
destination of a token count on a provider that has no count endpoint: sidegate answers it itself.
"""

from __future__ import annotations

from sidegate import apis
from sidegate.translate.codec import Codec
from sidegate.translate.codecs import count_tokens, embeddings
from sidegate.translate.codecs.anthropic_messages import reply as anthropic_reply
from sidegate.translate.codecs.anthropic_messages import request as anthropic_messages
from sidegate.translate.codecs.anthropic_messages import stream as anthropic_stream
from sidegate.translate.codecs.gemini_generate import reply as gemini_reply
from sidegate.translate.codecs.gemini_generate import request as gemini_generate
from sidegate.translate.codecs.gemini_generate import stream as gemini_stream
from sidegate.translate.codecs.openai_chat import reply as openai_chat_reply
from sidegate.translate.codecs.openai_chat import request as openai_chat
from sidegate.translate.codecs.openai_chat import stream as openai_chat_stream
from sidegate.translate.codecs.openai_responses import reply as openai_responses_reply
from sidegate.translate.codecs.openai_responses import request as openai_responses
from sidegate.translate.codecs.openai_responses import stream as openai_responses_stream

ESTIMATE = "sidegate.estimate_tokens"

OPENAI_CHAT = Codec(
    api=apis.OPENAI_CHAT, family="openai", operation="generate",
    decode_error=openai_chat_reply.decode_error, encode_error=openai_chat_reply.encode_error,
    decode_request=lambda body, _stream: openai_chat.decode_request(body),
    encode_response=openai_chat_reply.encode_response,
    stream_encoder=openai_chat_stream.ChatStreamEncoder,
    encode_request=openai_chat.encode_request,
    decode_response=openai_chat_reply.decode_response,
    stream_decoder=openai_chat_stream.ChatStreamDecoder,
)
ANTHROPIC_MESSAGES = Codec(
    api=apis.ANTHROPIC_MESSAGES, family="anthropic", operation="generate",
    decode_error=anthropic_reply.decode_error, encode_error=anthropic_reply.encode_error,
    decode_request=lambda body, _stream: anthropic_messages.decode_request(body),
    encode_response=anthropic_reply.encode_response,
    stream_encoder=anthropic_stream.AnthropicStreamEncoder,
    encode_request=lambda req, model, stream, _usage: anthropic_messages.encode_request(req, model, stream),
    decode_response=anthropic_reply.decode_response,
    stream_decoder=anthropic_stream.AnthropicStreamDecoder,
)
GEMINI_GENERATE = Codec(
    api=apis.GEMINI_GENERATE, family="gemini", operation="generate",
    decode_error=gemini_reply.decode_error, encode_error=gemini_reply.encode_error,
    decode_request=gemini_generate.decode_request,
    encode_response=gemini_reply.encode_response,
    stream_encoder=gemini_stream.GeminiStreamEncoder,
    encode_request=lambda req, model, stream, _usage: gemini_generate.encode_request(req, model, stream),
    decode_response=gemini_reply.decode_response,
    stream_decoder=gemini_stream.GeminiStreamDecoder,
)

ANTHROPIC_COUNT_TOKENS = Codec(
    api=apis.ANTHROPIC_COUNT_TOKENS, family="anthropic", operation="count",
    decode_error=anthropic_reply.decode_error, encode_error=anthropic_reply.encode_error,
    decode_request=lambda body, _stream: anthropic_messages.decode_request(body),
    encode_response=count_tokens.anthropic_encode_response,
    encode_request=count_tokens.anthropic_encode,
    decode_response=count_tokens.anthropic_decode_response,
)
GEMINI_COUNT_TOKENS = Codec(
    api=apis.GEMINI_COUNT_TOKENS, family="gemini", operation="count",
    decode_error=gemini_reply.decode_error, encode_error=gemini_reply.encode_error,
    decode_request=count_tokens.gemini_decode_request,
    encode_response=count_tokens.gemini_encode_response,
    encode_request=count_tokens.gemini_encode,
    decode_response=count_tokens.gemini_decode_response,
)

# Caller side only: every OpenAI-kind server with Responses also has Chat Completions.
OPENAI_RESPONSES = Codec(
    api=apis.OPENAI_RESPONSES, family="openai", operation="generate",
    decode_error=openai_chat_reply.decode_error, encode_error=openai_responses_reply.encode_error,
    decode_request=openai_responses.decode_request,
    encode_response=openai_responses_reply.encode_response,
    stream_encoder=openai_responses_stream.ResponsesStreamEncoder,
)

OPENAI_EMBEDDINGS = Codec(
    api=apis.OPENAI_EMBEDDINGS, family="openai", operation="embed",
    decode_error=openai_chat_reply.decode_error, encode_error=openai_chat_reply.encode_error,
    decode_request=embeddings.openai_decode_request,
    encode_response=embeddings.openai_encode_response,
    encode_request=embeddings.openai_encode_request,
    decode_response=embeddings.openai_decode_response,
)
GEMINI_EMBED = Codec(
    api=apis.GEMINI_EMBED, family="gemini", operation="embed",
    decode_error=gemini_reply.decode_error, encode_error=gemini_reply.encode_error,
    decode_request=embeddings.gemini_decode_embed,
    encode_response=embeddings.gemini_encode_embed_response,
)
GEMINI_BATCH_EMBED = Codec(
    api=apis.GEMINI_BATCH_EMBED, family="gemini", operation="embed",
    decode_error=gemini_reply.decode_error, encode_error=gemini_reply.encode_error,
    decode_request=embeddings.gemini_decode_batch,
    encode_response=embeddings.gemini_encode_batch_response,
    encode_request=embeddings.gemini_encode_batch,
    decode_response=embeddings.gemini_decode_batch_response,
)

CODECS: dict[str, Codec] = {codec.api: codec for codec in (
    OPENAI_CHAT, OPENAI_RESPONSES, OPENAI_EMBEDDINGS, ANTHROPIC_MESSAGES, ANTHROPIC_COUNT_TOKENS,
    GEMINI_GENERATE, GEMINI_COUNT_TOKENS, GEMINI_EMBED, GEMINI_BATCH_EMBED)}

# Caller format → destination formats, best first. The caller's own format is never listed: a
# provider that speaks it gets the body unchanged.
PREFERENCES: dict[str, tuple[str, ...]] = {
    apis.OPENAI_CHAT: (apis.ANTHROPIC_MESSAGES, apis.GEMINI_GENERATE),
    apis.OPENAI_RESPONSES: (apis.OPENAI_CHAT, apis.ANTHROPIC_MESSAGES, apis.GEMINI_GENERATE),
    apis.ANTHROPIC_MESSAGES: (apis.OPENAI_CHAT, apis.GEMINI_GENERATE),
    apis.GEMINI_GENERATE: (apis.OPENAI_CHAT, apis.ANTHROPIC_MESSAGES),
    apis.OPENAI_EMBEDDINGS: (apis.GEMINI_BATCH_EMBED,),
    apis.GEMINI_EMBED: (apis.OPENAI_EMBEDDINGS,),
    apis.GEMINI_BATCH_EMBED: (apis.OPENAI_EMBEDDINGS,),
    apis.ANTHROPIC_COUNT_TOKENS: (apis.GEMINI_COUNT_TOKENS, ESTIMATE),
    apis.GEMINI_COUNT_TOKENS: (apis.ANTHROPIC_COUNT_TOKENS, ESTIMATE),
}


def plan(caller_api: str, provider_apis: frozenset[str]) -> str | None:
    """The format to translate `caller_api` into for a provider speaking `provider_apis`, or None
    when no translation applies (the provider speaks the caller's format, or no pair exists)."""
    if caller_api in provider_apis:
        return None
    for dest in PREFERENCES.get(caller_api, ()):
        if dest == ESTIMATE or dest in provider_apis:
            return dest
    return None


def pairs() -> list[tuple[str, str]]:
    """Every (caller, destination) pair the registry can translate."""
    return [(caller, dest) for caller, dests in PREFERENCES.items() for dest in dests]
