"""Background capacity cache: the form reads snapshots, never waits on a probe."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Mapping

from .backends.base import Backend, Capacity, empty_capacity

log = logging.getLogger("gridspawner.capacity")


class CapacityMonitor:
    """Probes every backend concurrently every ``interval`` seconds, and soon after a poke
    (a launch or stop changed what is free). ``snapshot()`` returns the last results."""

    def __init__(self, backends: Mapping[str, Backend], interval: float = 15.0, timeout: float = 20.0):
        self.backends = dict(backends)
        self.interval = interval
        self.timeout = timeout
        self._snapshot: dict[str, Capacity] = {name: empty_capacity(name) for name in self.backends}
        self._task: asyncio.Task | None = None
        self._wake: asyncio.Event | None = None

    def snapshot(self) -> dict[str, Capacity]:
        return dict(self._snapshot)

    def ensure_running(self) -> None:
        """Start the refresh loop on the running event loop (no-op if it runs already)."""
        if self._task is not None and not self._task.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._wake = asyncio.Event()
        self._task = loop.create_task(self._run(), name="gridspawner-capacity")

    def poke(self) -> None:
        """Refresh soon (after a launch or a stop)."""
        if self._wake is not None:
            self._wake.set()

    async def refresh(self) -> dict[str, Capacity]:
        results = await asyncio.gather(*(self._probe(name, b) for name, b in self.backends.items()))
        for cap in results:
            self._snapshot[cap.backend] = cap
        return self.snapshot()

    async def refresh_backend(self, name: str) -> Capacity | None:
        """Probe one backend now (at most ``timeout`` seconds) and keep the result: after a
        launch it refused for lack of capacity, the form must not show the old numbers."""
        backend = self.backends.get(name)
        if backend is None:
            return None
        cap = await self._probe(name, backend)
        self._snapshot[name] = cap
        return cap

    async def _probe(self, name: str, backend: Backend) -> Capacity:
        try:
            return await asyncio.wait_for(backend.probe_capacity(), self.timeout)
        except asyncio.TimeoutError:
            return Capacity(backend=name, updated=time.time(), error=f"no answer within {self.timeout:g} s")
        except Exception as e:  # a broken backend must not stop the others' refresh
            log.warning("capacity probe of backend %s failed: %s", name, e)
            return Capacity(backend=name, updated=time.time(), error=str(e) or type(e).__name__)

    async def _run(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:
                log.exception("capacity refresh failed")
            self._wake.clear()
            # Not asyncio.wait_for: before Python 3.12 it swallows a cancel that arrives as
            # the event is set (a stop pokes us during hub shutdown), and the hub then waits
            # forever for this task. asyncio.wait always lets the cancel through.
            waiter = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({waiter}, timeout=self.interval)
            finally:
                waiter.cancel()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
