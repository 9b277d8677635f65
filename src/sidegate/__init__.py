"""sidegate: a governance sidecar for LLM traffic."""

__version__ = "0.1.0"
