"""One server's usage record, as its spawner sees it: opened when the server has started,
closed when it stops (with who or what stopped it) or when poll finds it gone, kept across
hub restarts through the spawner's state (the record id).

The spawner calls `ServerRecorder` at start, stop, poll and re-attach; the usage watch
(`enforcer`) calls `plan_stop` for a server whose user runs out of GPU-hours (``quota``) or
that is idle (``idle``).
"""

from __future__ import annotations

import time
from typing import Any

from ..stops import UpcomingStop, cancelled_entry
from . import stop_requests
from .idle import IdleTracker
from .runtime import UsageRuntime

#: a quota stop moves (the user started or stopped another GPU server) by more than this
#: before the server is told again
ANNOUNCE_SLACK = 60.0


def record_values(spawner: Any, request: Any, launch: Any, prices: Any, now: float) -> dict:
    """The columns of a server's record at start (pure apart from reading its arguments)."""
    gpus = tuple(launch.gpus or ())
    models = sorted({g.name for g in gpus})
    catalog_backend = spawner.catalog.backends.get(request.backend)
    type_name = catalog_backend.gpu_types.get(request.gpu_type, "") if catalog_backend and request.gpu_type else ""
    if gpus:
        memory_gb = min(g.memory_gb for g in gpus)
    else:
        fixed = catalog_backend.gpu_type_memory.get(request.gpu_type) if catalog_backend and request.gpu_type else None
        memory_gb = fixed or request.gpu_memory
    state = launch.state or {}
    return {
        "kind": "server",
        "run_id": None,
        "username": spawner._user_name(),
        "server_name": spawner.name or "",
        "backend": request.backend,
        "backend_kind": request.backend_kind,
        "host": str(state.get("host") or state.get("node") or ""),
        "gpus": request.gpus,
        "gpu_model": " + ".join(models) if models else (type_name if request.gpus else ""),
        "gpu_memory_gb": int(memory_gb or 0) if request.gpus else 0,
        "cpu": request.cpu,
        "memory_gb": request.memory,
        "image": request.image,
        "profile": request.profile or "",
        "price_per_hour": prices.rate_of(gpus, request.gpus, request.gpu_memory, type_name, request.cpu, request.memory),
        "currency": prices.currency,
        "started_at": now,
        "last_seen_at": now,
    }


class ServerRecorder:
    """The usage record of one spawner's server (at most one open at a time)."""

    def __init__(self) -> None:
        self.record_id: int | None = None
        #: the hub's own reason for the stop it is making now (max_runtime, quota, idle)
        self.stop_reason: str | None = None
        #: this process saw the server running (a start, or a poll that found it alive)
        self.seen_alive = False
        #: the stops the hub plans for its own reasons (quota, idle), by reason
        self.planned: dict[str, UpcomingStop] = {}
        self._announced: dict[str, float] = {}  # by reason: the stop time the server was told
        self.idle = IdleTracker()

    # ------------------------------------------------------------------ lifecycle
    async def started(self, spawner: Any, runtime: UsageRuntime | None, request: Any, launch: Any) -> None:
        self.stop_reason, self.planned, self._announced, self.idle = None, {}, {}, IdleTracker()
        self.seen_alive = True
        spawner._stops_told = None  # a new server: its stops file starts empty
        if runtime is None:
            return
        values = record_values(spawner, request, launch, runtime.config.prices, time.time())
        self.record_id = await runtime.open_server(spawner, values, spawner._groups())

    def restored(self, spawner: Any, runtime: UsageRuntime | None) -> None:
        """The spawner re-attached to its server after a hub restart."""
        if runtime is not None and self.record_id is not None:
            runtime.attach(self.record_id, spawner)

    def alive(self) -> None:
        self.seen_alive = True

    async def gone(self, runtime: UsageRuntime | None, status: int, exit_status_known: bool) -> None:
        """Poll found the server gone: it ended by itself (or failed, where the backend can
        tell an error exit). Seen running by this process: ended now; else (the hub was down
        meanwhile) at the time the hub last saw it running."""
        reason = "failure" if exit_status_known and status not in (0, None) else "ended"
        await self._close(runtime, reason, None, time.time() if self.seen_alive else None)

    async def lost(self, runtime: UsageRuntime | None) -> None:
        """The hub could not re-attach to the server (its host or backend is gone)."""
        await self._close(runtime, "hub_lost", None, None)

    async def stopped(self, runtime: UsageRuntime | None) -> None:
        """``Spawner.stop()``: the hub's own reason, else who asked JupyterHub, else ``hub``."""
        if self.stop_reason is not None:
            reason, by = self.stop_reason, None
        else:
            who = stop_requests.requester()
            reason, by = (who.reason, who.name) if who is not None else ("hub", None)
        await self._close(runtime, reason, by, time.time())

    async def _close(self, runtime: UsageRuntime | None, reason: str, by: str | None, at: float | None) -> None:
        record_id, self.record_id = self.record_id, None
        self.seen_alive, self.planned, self._announced = False, {}, {}
        if runtime is not None and record_id is not None:
            await runtime.close_server(record_id, reason, by, at)

    # ------------------------------------------------------------------ the hub's own stops
    async def plan_stop(self, spawner: Any, reason: str, stop: UpcomingStop | None, now: float) -> bool:
        """The watch's verdict for this server and ``reason`` (quota, idle): tell the server
        about a new, moved or withdrawn stop, and return True when the stop is due now."""
        if stop is None:
            self.planned.pop(reason, None)
            if self._announced.pop(reason, None) is not None:
                await spawner._announce_stops([cancelled_entry(reason)])
            return False
        self.planned[reason] = stop
        told = self._announced.get(reason)
        if told is None or abs(told - stop.at) > ANNOUNCE_SLACK:
            self._announced[reason] = stop.at
            await spawner._announce_stops([stop.stops_entry()])
        return now >= stop.at

    # ------------------------------------------------------------------ state
    def state(self) -> dict:
        return {"usage_record": self.record_id} if self.record_id is not None else {}

    def load_state(self, state: dict) -> None:
        value = state.get("usage_record")
        self.record_id = value if isinstance(value, int) and not isinstance(value, bool) else None

    def clear(self) -> None:
        self.record_id, self.stop_reason, self.planned, self._announced = None, None, {}, {}
        self.idle = IdleTracker()
        self.seen_alive = False
