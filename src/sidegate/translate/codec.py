"""What a format codec is: the functions that take one wire format to the neutral representation
and back. A codec that can decode requests and encode answers serves callers of its format; one
that can encode requests and decode answers reaches destinations of its format. Most do both."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sidegate.translate import neutral as n
from sidegate.translate.errors import ApiError

Body = dict[str, Any]


class StreamDecoder(Protocol):
    """Per-request state reading a destination's SSE events into neutral events."""

    def feed(self, event: str | None, data: bytes) -> list[n.Event]: ...


class StreamEncoder(Protocol):
    """Per-request state writing neutral events as the caller's SSE event blocks."""

    def encode(self, ev: n.Event) -> list[bytes]: ...

    def finish(self) -> list[bytes]: ...


@dataclass(frozen=True, slots=True)
class Codec:
    api: str
    family: str  # error shape and who mints which reasoning signatures: openai | anthropic | gemini
    operation: str  # what its neutral objects are: generate | count | embed; only codecs of one operation pair
    decode_error: Callable[[int, Body], ApiError]
    encode_error: Callable[[ApiError], tuple[int, Body]]
    # Caller side. decode_request(body, stream_asked_in_url) → neutral request.
    decode_request: Callable[[Body, bool], Any] | None = None
    # encode_response(neutral answer, neutral request, model the caller asked for) → body.
    encode_response: Callable[[Any, Any, str], Body] | None = None
    stream_encoder: Callable[[Any, str], StreamEncoder] | None = None
    # Destination side. encode_request(neutral request, destination model, stream, stream_usage) → body.
    encode_request: Callable[[Any, str, bool, bool], Body] | None = None
    decode_response: Callable[[Body], Any] | None = None
    stream_decoder: Callable[[], StreamDecoder] | None = None

    @property
    def serves_callers(self) -> bool:
        return self.decode_request is not None and self.encode_response is not None

    @property
    def reaches_destinations(self) -> bool:
        return self.encode_request is not None and self.decode_response is not None
