"""What the upstream HTTP/1.1 client raises, besides a `TimeoutError` for a deadline that passed."""

from __future__ import annotations


class UpstreamBroken(ConnectionError):
    """The connection failed or closed before the answer was complete, or the answer was not HTTP."""


class ConnectTimeout(TimeoutError):
    """No connection to the upstream within `connect_timeout_s`."""
