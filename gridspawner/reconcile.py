"""Crash recovery: what a hub killed at any moment (SIGKILL, OOM kill, node reboot, a rolled
hub pod) left running is found and reclaimed when the hub is back.

A hub that dies mid-launch leaves a server process (or pod) and its GPU claim that no server
of the hub's database points to; one that dies mid-stop leaves half of a server. JupyterHub
itself only forgets such servers ("appears to have stopped while the Hub was down"). So, when
the hub starts and then every ``c.GridSpawner.reconcile_interval`` seconds, each backend
compares what runs under its management for this hub (`gridspawner.hub_identity`) with the
servers JupyterHub knows, read through the running hub:

- every spawner state in JupyterHub's database (`orm.Spawner.state`: what a server's
  ``get_state`` saved; a server whose stop was cut short keeps its state and counts as known);
- the spawners of this process whose launch has returned but whose state JupyterHub may not
  have saved yet;
- launches still in flight in this process (the backends track those themselves).

What the hub knows is kept. What carries this hub's name, belongs to none of those, and has
not changed for ``c.GridSpawner.orphan_grace`` seconds is stopped, its session directory or
pod removed and its GPUs freed, with the reason in the hub log (`Backend.reconcile`: the
host backends in `backends.host.reconcile`, Kubernetes in
`backends.kubernetes.pod_reconcile`).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections import defaultdict
from typing import Any

from . import metrics
from .backends.base import Reconciled

log = logging.getLogger("gridspawner.reconcile")


@functools.lru_cache(maxsize=None)
def _states_query() -> Any:
    """``SELECT state FROM spawners`` with the column typed as plain Text. JupyterHub's
    ``orm.Spawner.state`` column is its ``JSONDict`` TypeDecorator, which sets no
    ``cache_ok``: SQLAlchemy then will not cache the statement and warns (SAWarning) on every
    query through it. That type is not ours to change (setting ``cache_ok`` on JupyterHub's
    class would alter the hub's process), so this query reads the JSON text and decodes it
    here: a constant statement, cached once. (JSONDict's only extra is a wrapper for bytes,
    which a launch state never holds.)"""
    from jupyterhub import orm
    from sqlalchemy import Text, column, select, table

    return select(column("state", Text)).select_from(table(orm.Spawner.__table__.name))


def _json_or_none(text: Any) -> Any:
    try:
        return json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None


def _add(out: dict[str, list[dict]], state: Any) -> None:
    if isinstance(state, dict) and isinstance(state.get("launch"), dict) and isinstance(state.get("backend"), str):
        out[state["backend"]].append(state["launch"])


def known_launch_states(app: Any) -> dict[str, list[dict]]:
    """backend name → the launch states of every server the hub ``app`` knows there: saved
    in its database, or returned by a launch of this process and not saved yet. Reads the
    hub's own database session (no await: one consistent moment for the caller)."""
    out: dict[str, list[dict]] = defaultdict(list)
    db = getattr(app, "db", None)
    if db is not None:
        for (text,) in db.execute(_states_query()):
            _add(out, _json_or_none(text))
    for user in list(getattr(app, "users", {}).values()):
        for spawner in list(getattr(user, "spawners", {}).values()):
            launch = getattr(spawner, "_launch", None)
            if launch is not None and getattr(spawner, "_backend_name", None):
                out[spawner._backend_name].append(launch.state)
    return out


class Reconciler:
    """The crash-recovery loop of one hub process: a look at every backend when the hub
    starts, then every ``interval`` seconds (0: the first look only)."""

    def __init__(self, app: Any, shared: Any, *, grace: float, interval: float, probe_max_age: float = 0.0):
        self.app = app
        self.shared = shared  # the process's SharedBackends
        self.grace = grace
        self.interval = interval
        self.probe_max_age = probe_max_age
        self.rounds = 0
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        """Start the loop on the running event loop (no loop: nothing to start)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run(), name="gridspawner-reconcile")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def known(self, backend: str) -> list[dict]:
        return known_launch_states(self.app).get(backend, [])

    async def run_round(self) -> list[Reconciled]:
        """One look at every backend; returns what each found and did."""

        async def one(name: str, backend: Any) -> Reconciled:
            try:
                return await backend.reconcile(lambda: self.known(name), self.grace, probe_max_age=self.probe_max_age)
            except Exception as e:  # one backend's failure must not keep the others from their look
                log.exception("looking for orphans on backend %s failed", name)
                return Reconciled(backend=name, errors=[str(e) or type(e).__name__])

        reports = await asyncio.gather(*(one(n, b) for n, b in self.shared.backends.items()))
        self.rounds += 1
        for r in reports:
            if r.reclaimed:
                metrics.ORPHANS_RECLAIMED.labels(r.backend).inc(len(r.reclaimed))
        reclaimed = sum(len(r.reclaimed) for r in reports)
        if reclaimed:
            self.shared.capacity.poke()  # freed GPUs show in the form at once
            log.info("crash recovery: reclaimed %d orphaned server%s (%s)", reclaimed, "s" if reclaimed != 1 else "",
                     ", ".join(f"{r.backend}: {len(r.reclaimed)}" for r in reports if r.reclaimed))
        return list(reports)

    async def _run(self) -> None:
        # the first look once JupyterHub has opened its database (the hub is still starting)
        while getattr(self.app, "db", None) is None:
            await asyncio.sleep(0.2)
        while True:
            try:
                await self.run_round()
            except Exception:  # never let the loop die: the next round tries again
                log.exception("crash recovery round failed")
            if self.interval <= 0:
                return
            await asyncio.sleep(self.interval)


def start_reconciler(app: Any, spawner: Any) -> Reconciler:
    """Start the crash-recovery loop for the hub ``app`` with ``spawner``'s settings (once per
    process's shared backends: `gridspawner.shared_backends.SharedBackends`)."""
    shared = spawner.shared
    if shared.reconciler is None:
        shared.reconciler = Reconciler(
            app, shared, grace=spawner.orphan_grace, interval=spawner.reconcile_interval,
            # the capacity probes list every claim: a look reuses the last one when it is this fresh
            probe_max_age=2 * spawner.capacity_refresh_interval,
        )
        shared.reconciler.start()
    return shared.reconciler
