"""A server's maximum run time: the timer that stops it at its deadline, and the expiry
logged and counted once per deadline (the timer and a poll may both see it first).

The deadline itself is `GridSpawner`'s (kept in its state across hub restarts); this is
what acts on it in one hub process.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable, Callable

from . import metrics


class MaxRunTime:
    def __init__(self, log: logging.Logger | logging.LoggerAdapter, name: str, stop: Callable[[], Awaitable[None]]):
        self.log = log
        self.name = name  # the server, for log lines
        self._stop = stop  # stops the server with the reason "max_runtime"
        self._handle: asyncio.TimerHandle | None = None
        self._noted: float | None = None

    def arm(self, deadline: float | None, backend: str | None) -> None:
        """Stop the server at ``deadline`` (seconds since the epoch; None: never)."""
        self.cancel()
        if deadline is None:
            return
        delay = max(0.0, deadline - time.time())
        loop = asyncio.get_running_loop()
        self._handle = loop.call_later(delay, lambda: asyncio.ensure_future(self._expire(deadline, backend)))

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def note_expired(self, deadline: float, backend: str | None) -> None:
        if self._noted == deadline:
            return
        self._noted = deadline
        self.log.warning("%s reached its maximum run time; stopping it", self.name)
        metrics.MAX_RUNTIME_STOPS.labels(backend or "").inc()

    async def _expire(self, deadline: float, backend: str | None) -> None:
        self._handle = None
        self.note_expired(deadline, backend)
        await self._stop()
