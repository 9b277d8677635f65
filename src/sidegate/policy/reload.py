"""The policy in force and its reloads: on a file change (polled) or SIGHUP, a valid policy set is
swapped in whole; an invalid one is rejected, the old policy keeps serving, and the failure is
kept for /readyz."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from sidegate.policy.compiled import CompiledPolicy
from sidegate.policy.loader import PolicyError, directory_fingerprint, load_policy_dir

log = structlog.get_logger("sidegate.policy")

Listener = Callable[[CompiledPolicy], Awaitable[None]]


def load_compiled(directory: Path) -> CompiledPolicy:
    loaded = load_policy_dir(directory)
    for warning in loaded.warnings:
        log.warning("policy warning", warning=warning)
    return CompiledPolicy(loaded.model, loaded.digest)


class PolicyHolder:
    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.current = load_compiled(self.directory)  # raises PolicyError: nothing to serve yet
        self._fingerprint = directory_fingerprint(self.directory)
        self.loaded_at = datetime.now(UTC).isoformat()
        self.last_error: str | None = None
        self.last_error_at: str | None = None
        self.reloads = {"success": 0, "failure": 0}
        self.listeners: list[Listener] = []
        self._lock = asyncio.Lock()

    async def reload(self, reason: str) -> bool:
        """Load the directory again; True when a new policy was swapped in."""
        async with self._lock:
            self._fingerprint = directory_fingerprint(self.directory)
            try:
                policy = await asyncio.to_thread(load_compiled, self.directory)
            except PolicyError as exc:
                self.reloads["failure"] += 1
                self.last_error = str(exc)
                self.last_error_at = datetime.now(UTC).isoformat()
                log.error("policy reload rejected; the previous policy stays in force",
                          reason=reason, problems=exc.problems)
                return False
            if self.last_error is not None:
                log.info("policy reload accepted after an earlier rejected one", reason=reason,
                         rejected_at=self.last_error_at, digest=policy.digest[:12])
            self.last_error = self.last_error_at = None
            if policy.digest == self.current.digest:
                return False
            old = self.current
            if policy.model.server != old.model.server:
                log.warning("server settings changed; they take effect at the next restart")
            self.current = policy
            self.loaded_at = datetime.now(UTC).isoformat()
            self.reloads["success"] += 1
            log.info("policy reloaded", reason=reason, digest=policy.digest[:12])
            for listener in self.listeners:
                await listener(policy)
            return True

    async def watch(self, interval_s: float = 1.0) -> None:
        """Poll the directory; reload when a policy file appears, disappears or changes."""
        while True:
            await asyncio.sleep(interval_s)
            if directory_fingerprint(self.directory) != self._fingerprint:
                await self.reload("file change")

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "directory": str(self.directory),
            "digest": self.current.digest,
            "loaded_at": self.loaded_at,
            "reloads": dict(self.reloads),
        }
        if self.last_error:
            status["last_reload"] = "failed"
            status["last_error"] = self.last_error
            status["last_error_at"] = self.last_error_at
        else:
            status["last_reload"] = "ok"
        return status

