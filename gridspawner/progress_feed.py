"""One start's progress events, for every spawn page that follows them.

`GridSpawner.start()` adds the messages of its launch (each turned into a step of the bar by
`progress_steps.StepTracker`) and ends the feed however it ends; JupyterHub's
``progress()`` replays what was added, then waits for more until the feed ends. Every
follower (each open spawn page) sees every event.
"""

from __future__ import annotations

import asyncio
from typing import AsyncIterator

from .progress_steps import StepTracker


class ProgressFeed:
    def __init__(self) -> None:
        self.steps = StepTracker()
        self._events: list[dict] = []
        self._done = False
        self._changed = asyncio.Event()

    def add(self, message: str) -> None:
        self._events.append(self.steps.event(message))
        self._changed.set()

    def end(self) -> None:
        self._done = True
        self._changed.set()

    async def follow(self) -> AsyncIterator[dict]:
        """The events so far, then each new one, until the feed ends."""
        seen = 0
        while True:
            while seen < len(self._events):
                seen += 1
                yield self._events[seen - 1]
            if self._done:
                return
            self._changed.clear()
            await self._changed.wait()
