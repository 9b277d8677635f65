"""Which client sent a request, from its User-Agent. First matching row wins."""

from __future__ import annotations

import re
from functools import lru_cache

CLIENTS: tuple[tuple[str, str], ...] = (
    (r"^claude-cli/|claude-code", "claude-code"),
    (r"^codex_|codex[-_ ]cli|^codex/", "codex"),
    (r"GeminiCLI|gemini-cli", "gemini-cli"),
    (r"cursor", "cursor"),
    (r"opencode", "opencode"),
    (r"^aider|aider/", "aider"),
    (r"^(Async)?OpenAI/Python", "openai-python"),
    (r"^OpenAI/JS", "openai-node"),
    (r"^(Async)?Anthropic/Python", "anthropic-python"),
    (r"^Anthropic/JS", "anthropic-node"),
    (r"google-genai-sdk/.*gl-python|gl-python", "google-genai-python"),
    (r"google-genai-sdk|gl-node", "google-genai-node"),
    (r"^python-httpx/", "python-httpx"),
    (r"^python-requests/", "python-requests"),
    (r"^Python/.*aiohttp/", "python-aiohttp"),
    (r"^curl/", "curl"),
    (r"Mozilla/", "browser"),
)

_COMPILED = tuple((re.compile(pattern, re.IGNORECASE), name) for pattern, name in CLIENTS)


@lru_cache(maxsize=1024)
def client_of(user_agent: str | None) -> str:
    if not user_agent:
        return "unknown"
    for pattern, name in _COMPILED:
        if pattern.search(user_agent):
            return name
    return "other"
