"""One translated call: the caller's request to the destination's, the destination's answer (JSON,
error or stream) back to the caller's format. Create one per request and attempt; it keeps the
neutral request between the two directions (the answer's encoders need it: the caller's tools,
whether a chat caller asked for the usage chunk, what a Responses object echoes back)."""

from __future__ import annotations

from typing import Any

from sidegate.formats.base import TokenUsage
from sidegate.translate import neutral as n
from sidegate.translate.codec import Codec, StreamDecoder, StreamEncoder
from sidegate.translate.codecs.count_tokens import estimate
from sidegate.translate.errors import INVALID_FIELD, SERVER, TranslationError, UnreadableAnswer, unsupported
from sidegate.translate.registry import CODECS, ESTIMATE


class StreamTranslator:
    """Per-stream state: destination SSE events in, the caller's SSE event blocks out."""

    __slots__ = ("_api", "_decoder", "_encoder", "failure", "usage")

    def __init__(self, decoder: StreamDecoder, encoder: StreamEncoder, dest_api: str = "") -> None:
        self._api = dest_api
        self._decoder = decoder
        self._encoder = encoder
        self.usage: TokenUsage | None = None  # the destination's usage as far as seen, neutral form
        # Set when a destination event could not be read (not JSON, a field of the wrong type): the
        # caller's stream then got its error event and ended; nothing more is translated.
        self.failure: UnreadableAnswer | None = None

    def feed(self, event: str | None, data: bytes) -> list[bytes]:
        """One destination event (its `event:` name and joined `data:` payload) → zero or more
        complete caller event blocks, each ending with its blank line. An event that is not the
        destination's ends the caller's stream with its error event and sets `failure` (a 502
        `upstream_invalid_response`; before the caller's first byte a relay may fall back instead)."""
        if not data or self.failure is not None:
            return []
        out: list[bytes] = []
        try:
            events = self._decoder.feed(event, data)
        except TranslationError as err:
            self.failure = UnreadableAnswer(self._api, err.message)
            return self.error(self.failure.status, SERVER, self.failure.message)
        for ev in events:
            if isinstance(ev, n.UsageUpdate) or (isinstance(ev, n.Start) and ev.usage is not None):
                self.usage = ev.usage
            out.extend(self._encoder.encode(ev))
        return out

    def finish(self) -> list[bytes]:
        """Call when the destination's body ended cleanly: the terminal events the caller's SDK
        expects (`[DONE]`, `message_delta` + `message_stop`, `response.completed`, Gemini's last
        chunk) if the destination's stream did not already lead to them. Not for a stream that was
        cut off: render the error event for that instead."""
        return self._encoder.finish()

    def error(self, status: int, category: str, message: str) -> list[bytes]:
        """An error event in the caller's stream shape (e.g. for an upstream read failure)."""
        return self._encoder.encode(n.StreamError(status, category, message))


class Translation:
    """Translate one call from `caller_api` to `dest_api` (see `registry.plan`)."""

    __slots__ = ("asked_model", "caller", "dest", "dest_api", "dest_model", "neutral", "stream_usage", "streaming",
                 "usage")

    def __init__(self, caller_api: str, dest_api: str, asked_model: str, dest_model: str, stream: bool, *,
                 stream_usage: bool = True) -> None:
        caller = CODECS.get(caller_api)
        if caller is None or not caller.serves_callers:
            raise ValueError(f"no codec serves callers of {caller_api}")
        dest = CODECS.get(dest_api) if dest_api != ESTIMATE else None
        pairs_up = dest is not None and dest.reaches_destinations and dest.operation == caller.operation
        if dest_api != ESTIMATE and not pairs_up:
            raise ValueError(f"no translation from {caller_api} to {dest_api}")
        self.caller: Codec = caller
        self.dest: Codec | None = dest
        self.dest_api = dest_api
        self.asked_model = asked_model
        self.dest_model = dest_model
        self.streaming = stream
        self.stream_usage = stream_usage  # a chat destination is asked for its usage chunk
        self.neutral: Any = None
        self.usage: TokenUsage | None = None

    @property
    def dropped(self) -> list[str]:
        """What of the caller's request was accepted but not sent on (advisory; hosted tools the
        destination does not have), by field path: for the record, e.g. a log line or a header."""
        return list(getattr(self.neutral, "dropped", None) or ())

    @property
    def local(self) -> bool:
        """True when sidegate answers itself (a token count estimated): call `answer_locally`."""
        return self.dest is None

    @property
    def dest_stream(self) -> bool:
        """Whether the destination is asked to stream (for Gemini: `:streamGenerateContent?alt=sse`)."""
        return self.streaming and self.dest is not None and self.dest.stream_decoder is not None

    def request(self, body: dict[str, Any]) -> dict[str, Any]:
        """The caller's body as the destination's body (the model set to `dest_model`; for Gemini
        destinations the model and the streaming choice go in the URL, see `dest_stream`).
        Raises TranslationError (400, naming the field) for what the destination cannot express
        and for caller fields of the wrong JSON type."""
        if not isinstance(body, dict):
            raise TranslationError("body", "must be a JSON object", code=INVALID_FIELD)
        self.neutral = self.caller.decode_request(body, self.streaming)  # type: ignore[misc]
        choice = getattr(self.neutral, "tool_choice", None)
        if choice is not None and choice.mode == "tool" and choice.name not in {t.name for t in self.neutral.tools}:
            raise unsupported("tool_choice", self.dest_api, f"it forces {choice.name!r}, a tool that is not offered "
                                                            "there (hosted tools stay with their provider)")
        if self.dest is None:
            return {}
        assert self.dest.encode_request is not None
        return self.dest.encode_request(self.neutral, self.dest_model, self.dest_stream, self.stream_usage)

    def response(self, status: int, obj: Any) -> tuple[int, dict[str, Any]]:
        """The destination's JSON answer (or its error body, status >= 400) in the caller's format.
        Raises UnreadableAnswer (502 upstream_invalid_response) for a 2xx answer it cannot read."""
        assert self.dest is not None and self.dest.decode_response is not None, "call answer_locally"
        if status >= 400 or not isinstance(obj, dict):
            err = self.dest.decode_error(status if status >= 400 else 502, obj if isinstance(obj, dict) else {})
            return self.caller.encode_error(err)
        if self.neutral is None:
            raise RuntimeError("request() must be called before response()")
        try:
            answer = self.dest.decode_response(obj)
        except TranslationError as err:  # a field of the destination's answer has the wrong type
            raise UnreadableAnswer(self.dest_api, err.message) from None
        self.usage = getattr(answer, "usage", None)
        assert self.caller.encode_response is not None
        # the model the destination says answered, as a caller of the destination's own API sees it
        return 200, self.caller.encode_response(answer, self.neutral, getattr(answer, "model", "") or self.dest_model)

    def answer_locally(self) -> tuple[int, dict[str, Any]]:
        """The caller's answer computed without a destination (token counts by estimate)."""
        if self.neutral is None:
            raise RuntimeError("request() must be called before answer_locally()")
        assert self.caller.encode_response is not None
        return 200, self.caller.encode_response(estimate(self.neutral), self.neutral, self.dest_model)

    def stream(self) -> StreamTranslator:
        """Per-stream state for relaying the destination's SSE stream to the caller."""
        if self.dest is None or self.dest.stream_decoder is None or self.caller.stream_encoder is None:
            raise TranslationError("stream", f"{self.caller.api} → {self.dest_api} does not stream")
        if self.neutral is None:
            raise RuntimeError("request() must be called before stream()")
        return StreamTranslator(self.dest.stream_decoder(), self.caller.stream_encoder(self.neutral, self.dest_model),
                                self.dest_api)

