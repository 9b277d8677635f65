"""The requests a sidegate process is serving, so that shutdown can end each one properly when its
grace period is over instead of cutting connections.

The pipeline enters every request (its task) and leaves it when done; the relay marks a request as
a stream once the caller's answer has begun, with the upstream reply it is relaying. `end_all` then
ends each one the way its caller can still understand:

- a stream: its upstream reply is aborted with `ShuttingDown`; the relay reads that as the end of
  the destination's stream and closes the caller's stream with its format's error event
  (`server_shutting_down`), then a properly terminated body;
- a request whose answer has not begun: its task is cancelled; the pipeline takes the cancellation
  back (`ended`) and answers 503 `server_shutting_down` in the caller's error shape.

Either way the request's usage row is written as usual.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from sidegate.errors import GatewayError

if TYPE_CHECKING:
    from sidegate.upstream.client import Reply

SHUTTING_DOWN = "server_shutting_down"


class ShuttingDown(ConnectionError):
    """Raised to the relay by an upstream reply that shutdown aborted."""


def shutting_down_error() -> GatewayError:
    return GatewayError(503, SHUTTING_DOWN, "sidegate is shutting down; retry the request",
                        headers={"Retry-After": "1"})


class LiveRequests:
    """Requests in flight by the task serving them: None until the caller's stream began, then the
    upstream reply being relayed."""

    __slots__ = ("_ended", "_live", "ending")

    def __init__(self) -> None:
        self._live: dict[asyncio.Task[Any], Reply | None] = {}
        self._ended: set[asyncio.Task[Any]] = set()  # cancelled by `end_all`, not yet taken back
        self.ending = False  # set by `end_all`: requests still arriving are refused

    def __len__(self) -> int:
        return len(self._live)

    def enter(self) -> asyncio.Task[Any] | None:
        task = asyncio.current_task()
        if task is not None:
            self._live[task] = None
        return task

    def leave(self, task: asyncio.Task[Any] | None) -> None:
        if task is not None:
            self._live.pop(task, None)
            if self._ended:
                self._ended.discard(task)

    def streaming(self, reply: Reply) -> None:
        """The current request now relays `reply` as a stream: shutdown ends it through the reply."""
        task = asyncio.current_task()
        if task is not None and task in self._live:
            self._live[task] = reply

    def end_all(self) -> int:
        """End every request in flight (see the module's docstring); returns how many there were."""
        self.ending = True
        for task, reply in self._live.items():
            if reply is not None:
                reply.abort(ShuttingDown("sidegate is shutting down"))
            elif not task.done() and task not in self._ended:
                self._ended.add(task)
                task.cancel()
        return len(self._live)

    def ended(self) -> bool:
        """Whether the cancellation the current task is handling came from `end_all`; if so it is
        taken back, so that the request can still answer."""
        task = asyncio.current_task()
        if task is None or task not in self._ended:
            return False
        self._ended.discard(task)
        task.uncancel()
        return True
