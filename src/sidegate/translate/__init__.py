"""Translation between API formats: a caller's request in one provider's format, sent to a provider
that speaks another, and the answer (JSON, error or SSE stream) brought back.

Architecture: a codec per format through one neutral representation (`neutral`). Each format has
one codec that decodes its requests into the neutral request and encodes neutral answers and
stream events back (the caller side), and/or encodes neutral requests and decodes its answers and
stream events (the destination side). N formats need N codecs instead of N² pairwise translators:
Responses → Chat, Anthropic → Gemini, Gemini → Anthropic and every other pair fall out of
composing two codecs, a fix in one codec fixes every pair through it, and a new format is one new
codec. The cost is that the neutral form must hold the union of what matters (thinking with its
signatures, tool-call fragments with their indexes, cache usage); what it cannot hold does not
translate, and the decoders say so with a 400 naming the field (`errors.TranslationError`).

Decoders read every caller field through the typed readers of `fields`: a field of the wrong JSON
type (a string where a number goes, `true` as a token limit, `10.5` or `1e20` as an integer) is a
400 `invalid_request_field` naming it by its JSON path. The same readers read destination answers;
there a wrong type means the upstream's answer is unreadable: `errors.UnreadableAnswer`, a 502
`upstream_invalid_response`, raised by `Translation.response`; in a stream `StreamTranslator.feed`
ends the caller's stream with its error event and keeps the failure in `failure`. Codecs raise
nothing but `GatewayError`s (a property test feeds them random and mutated JSON).

Everything here is pure: functions of dicts and bytes, no I/O. Per-request state lives in a
`Translation`, per-stream state in its `StreamTranslator`. `registry` holds the pair matrix and
`plan` picks the destination format for a provider.

Layout: what every pair shares sits at the top (`neutral`, `codec`, `registry`, `translation`,
`errors`, the field readers of `fields`, and the helpers `wire`, `carry`, `media`, `schema`). The
codecs sit in `codecs/`: a folder per generation format (`openai_chat`, `openai_responses`,
`anthropic_messages`, `gemini_generate`), each with `request.py` (requests ↔ neutral), `reply.py`
(whole answers, usage, error bodies) and `stream.py` (stream decoder and encoder), the three parts
that change together when a format does; token counting and embeddings are one module each.
Usage is read with the one reader of each format in `sidegate.formats`, so a translated answer
tells the caller the counts its usage row records.

Fields that are accepted but have no effect on a destination that lacks them ("advisory"; each
codec lists its own in `ADVISORY`): storage, caching and billing hints (store, metadata,
service_tier, prompt_cache_key, cache_control, safetySettings …), `top_k` / `seed` / penalties
where the destination has no such sampling control (and all of them towards Anthropic, whose
current API has none), `parallel_tool_calls` on Gemini, tool-result `is_error` on chat
destinations, fields a format does not document (beta fields clients send ahead of the API).
Hosted tools a caller offers (OpenAI web search, Anthropic server tools, Google search…) exist only
at their provider: they are left out and listed in `Translation.dropped`; forcing one is a 400.
Thinking crosses only where both sides have it: its text reaches every caller (`reasoning_content`
for chat callers), its signature only the provider that minted it (see `carry`). Gemini's
function-call signatures do not ride through Anthropic, chat or Responses callers; calls sent back
to Gemini carry Google's documented placeholder instead.
"""

from sidegate.translate.errors import TranslationError, UnreadableAnswer
from sidegate.translate.registry import ESTIMATE, plan
from sidegate.translate.translation import StreamTranslator, Translation

__all__ = ["ESTIMATE", "StreamTranslator", "Translation", "TranslationError", "UnreadableAnswer", "plan"]
