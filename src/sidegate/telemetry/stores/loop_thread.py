"""Event loops on threads of their own, for async database clients kept off the serving loop.

`LoopThread` runs one loop on a daemon thread for a store's lifetime: the store's connection lives
on that loop, so encoding and decoding a batch never stalls the loop that serves requests.
`run_blocking` runs one coroutine to completion from synchronous code, even code that is itself
called from inside a running loop (tests, the CLI).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["LoopThread", "run_blocking"]

T = TypeVar("T")


class LoopThread:
    """A daemon thread running an event loop until `stop`. `run` awaits a coroutine scheduled on it;
    cancelling the caller cancels the coroutine on the thread too."""

    def __init__(self, name: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop.is_closed() or not self._thread.is_alive():
            coro.close()
            raise RuntimeError(f"{self._thread.name} is stopped")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return await asyncio.wrap_future(future)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the loop (tasks still on it are abandoned) and wait for the thread to end."""
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            if threading.current_thread() is not self._thread:
                self._thread.join(timeout_s)


def run_blocking(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` on a fresh loop in a worker thread and return its result (or raise its error)."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sidegate-blocking") as pool:
        return pool.submit(asyncio.run, coro).result()
