"""What a Kubernetes backend has going on that its parts must respect: the launches in
flight (by pod name: their Secrets and pod are theirs to create and clean up, so no watch,
sweep or look for orphans touches them) and its background tasks (closed with it)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
from typing import Coroutine, Iterator, Mapping


class LaunchesInFlight(Mapping[str, int]):
    """Pod name → how many launches of it run in this process now (0 for any other name)."""

    def __init__(self) -> None:
        self._count: collections.Counter[str] = collections.Counter()

    def __getitem__(self, pod: str) -> int:
        return self._count[pod]

    def __iter__(self) -> Iterator[str]:
        return iter(self._count)

    def __len__(self) -> int:
        return len(self._count)

    def add(self, pod: str) -> None:
        self._count[pod] += 1

    def done(self, pod: str) -> None:
        self._count[pod] -= 1
        if self._count[pod] <= 0:
            del self._count[pod]

    @contextlib.contextmanager
    def launching(self, pod: str) -> Iterator[None]:
        """A launch of ``pod`` is in flight inside this block."""
        self.add(pod)
        try:
            yield
        finally:
            self.done(pod)


class BackgroundTasks:
    """Tasks started for later (deletes of what ended); cancelled when the backend closes."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task] = set()

    def start(self, coro: Coroutine) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
