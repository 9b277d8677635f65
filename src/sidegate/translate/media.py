"""Images and documents between formats: data URLs (OpenAI) ↔ base64 + media type (Anthropic,
Gemini), and a media type for a bare URL when the destination wants one."""

from __future__ import annotations

import mimetypes
from urllib.parse import urlparse

from sidegate.translate.neutral import Media

_DEFAULT_IMAGE = "image/jpeg"


def from_url(url: str, detail: str | None = None) -> Media:
    """An OpenAI `image_url`: a `data:` URL becomes inline data, anything else stays a URL."""
    if url.startswith("data:"):
        header, _, data = url[5:].partition(",")
        media_type, _, encoding = header.partition(";")
        if encoding == "base64":
            return Media(media_type or _DEFAULT_IMAGE, data=data, detail=detail)
    return Media(guess_type(url), url=url, detail=detail)


def data_url(media: Media) -> str:
    return f"data:{media.media_type or _DEFAULT_IMAGE};base64,{media.data}"


def guess_type(url: str, default: str | None = None) -> str | None:
    guessed, _ = mimetypes.guess_type(urlparse(url).path)
    return guessed or default


def media_type_or_default(media: Media) -> str:
    return media.media_type or _DEFAULT_IMAGE
