"""The runs table (``gridspawner_runs`` in the usage database), which is also the queue:
async methods over SQLAlchemy run in a small thread pool of their own, as the usage store's.

Every change of state is a compare-and-set (`move`): ``UPDATE … WHERE id = ? AND status IN
(…)``, so a cancel and the executor's start (or two service instances) never both win.
"""

from __future__ import annotations

import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, Callable, Iterable, Sequence

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Engine

from ..usage.models import RUNS
from .view import ACTIVE

#: the most runs one list answers
MAX_LIST = 5000


class LimitReached(Exception):
    """A submit over a runs limit: ``field`` (``runs``) and the message."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


class RunStore:
    """Async access to the runs in ``engine``'s database."""

    def __init__(self, engine: Engine, threads: int = 2):
        self.engine = engine
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="gridspawner-runs")
        #: submits of this process one at a time: a limit's count and the insert are atomic
        self._submit_lock = asyncio.Lock()

    async def _call(self, fn: Callable, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, partial(fn, *args))

    def close(self) -> None:
        self._pool.shutdown(wait=False)

    # ------------------------------------------------------------------ writes
    def _insert_checked(self, values: dict, limits: Sequence[tuple[str, str, str, int]]) -> None:
        with self.engine.begin() as conn:
            for what, kind, value, most in limits:
                if kind == "group":  # the run's groups (a JSON list) name it
                    pattern = json.dumps(value).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                    match = RUNS.c.groups.like(f"%{pattern}%", escape="\\")
                else:
                    match = RUNS.c.username == value
                count = conn.execute(select(func.count()).select_from(RUNS).where(
                    RUNS.c.status.in_(ACTIVE), match)).scalar_one()
                if count >= most:
                    raise LimitReached(f"{what} may have at most {most} runs queued or running at once "
                                       f"({count} now); wait for one to end or cancel one")
            conn.execute(insert(RUNS).values(**values))

    async def submit(self, values: dict, limits: Sequence[tuple[str, str, str, int]] = ()) -> None:
        """Insert a new run (``values``: columns), unless one of ``limits`` — (what, ``user``
        or ``group``, its name, the most active runs) — is reached: LimitReached. Count and insert happen
        under one lock and in one transaction, so concurrent submits cannot both pass."""
        async with self._submit_lock:
            await self._call(self._insert_checked, values, list(limits))

    def _update(self, run_id: str, statuses: Sequence[str] | None, values: dict) -> bool:
        stmt = update(RUNS).where(RUNS.c.id == run_id)
        if statuses is not None:
            stmt = stmt.where(RUNS.c.status.in_(list(statuses)))
        with self.engine.begin() as conn:
            return conn.execute(stmt.values(**values, updated_at=time.time())).rowcount > 0

    async def move(self, run_id: str, statuses: Sequence[str] | None, **values: Any) -> bool:
        """Set ``values`` on the run when its status is one of ``statuses`` (None: any);
        True when it was."""
        return await self._call(self._update, run_id, statuses, values)

    def _delete(self, run_id: str) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(delete(RUNS).where(RUNS.c.id == run_id, RUNS.c.status.not_in(ACTIVE))).rowcount > 0

    async def delete(self, run_id: str) -> bool:
        """Remove a run that is over (False: it is active, or gone)."""
        return await self._call(self._delete, run_id)

    # ------------------------------------------------------------------ reads
    def _rows(self, stmt: Any) -> list[dict]:
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(stmt)]

    async def get(self, run_id: str) -> dict | None:
        rows = await self._call(self._rows, select(RUNS).where(RUNS.c.id == run_id))
        return rows[0] if rows else None

    async def list(self, user: str | None = None, since: float | None = None, limit: int = MAX_LIST) -> list[dict]:
        """Runs newest first: of ``user`` (None: everyone's), changed after ``since``."""
        stmt = select(RUNS)
        if user is not None:
            stmt = stmt.where(RUNS.c.username == user)
        if since is not None:
            stmt = stmt.where(RUNS.c.updated_at > since)
        return await self._call(self._rows, stmt.order_by(RUNS.c.submitted_at.desc(), RUNS.c.id.desc()).limit(limit))

    async def queued(self, backend: str | None = None) -> list[dict]:
        """The queue: queued runs oldest first (of ``backend``; None: all), few columns."""
        stmt = select(RUNS.c.id, RUNS.c.backend, RUNS.c.username, RUNS.c.submitted_at).where(RUNS.c.status == "queued")
        if backend is not None:
            stmt = stmt.where(RUNS.c.backend == backend)
        return await self._call(self._rows, stmt.order_by(RUNS.c.submitted_at, RUNS.c.id))

    async def heads(self, skip_users: Iterable[str] = ()) -> list[dict]:
        """The oldest queued run of each backend (full rows), passing over the runs of
        ``skip_users`` (users whose runs wait for their GPU quota)."""
        skip = sorted(set(skip_users))
        queued = RUNS.c.status == "queued"
        if skip:
            queued = queued & RUNS.c.username.not_in(skip)
        first = (select(RUNS.c.backend, func.min(RUNS.c.submitted_at).label("first"))
                 .where(queued).group_by(RUNS.c.backend).subquery())
        stmt = (select(RUNS).join(first, (RUNS.c.backend == first.c.backend) & (RUNS.c.submitted_at == first.c.first))
                .where(queued).order_by(RUNS.c.submitted_at, RUNS.c.id))
        rows = await self._call(self._rows, stmt)
        seen: set[str] = set()
        return [r for r in rows if not (r["backend"] in seen or seen.add(r["backend"]))]

    async def in_states(self, statuses: Iterable[str]) -> list[dict]:
        return await self._call(self._rows, select(RUNS).where(RUNS.c.status.in_(list(statuses))))
