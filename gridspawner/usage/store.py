"""The usage database: where it is, its schema upgrade, and the async API the hub uses.

SQLAlchemy runs synchronously here, in a small thread pool of its own: every method the hub
awaits runs its statements there, so the hub's event loop never waits on the database. This
is deliberate, rather than SQLAlchemy's asyncio engine: it needs no new database drivers
(the hub image already has the drivers JupyterHub's own ``db_url`` uses: sqlite3,
psycopg2, pymysql), Alembic is synchronous anyway, and the pool bounds how many statements
run at once. Schema upgrades run once, synchronously, at hub start-up, as JupyterHub's own
database initialisation does.
"""

from __future__ import annotations

import asyncio
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from sqlalchemy import create_engine, event, inspect
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import StaticPool

from . import queries as q
from .buckets import Bucket, merged_buckets
from .models import VERSION_TABLE
from .periods import Span

log = logging.getLogger("gridspawner.usage")

#: the file the default SQLite database gets, beside the hub's own
DEFAULT_FILE = "gridspawner-usage.sqlite"
#: seconds a statement waits for SQLite's lock (another thread is writing)
SQLITE_BUSY_TIMEOUT = 15
MIGRATIONS = Path(__file__).parent / "migrations"


class UsageDBError(RuntimeError):
    """The usage database cannot be used (unreachable, or its schema cannot be upgraded)."""


def default_url(hub_db_url: str | None, cwd: str | os.PathLike | None = None) -> str:
    """Where the usage records go when the admin names no ``usage_db_url``: a SQLite file
    ``gridspawner-usage.sqlite`` beside the hub's SQLite database (in the hub's working
    directory for a relative path or an in-memory hub database); with any other hub database
    (PostgreSQL, MySQL) the same database, in gridspawner's own tables."""
    cwd = Path(cwd or os.getcwd())
    url = make_url(hub_db_url or "sqlite:///jupyterhub.sqlite")
    if url.get_backend_name() != "sqlite":
        return url.render_as_string(hide_password=False)
    db = url.database
    if not db or db == ":memory:" or db.startswith("file:"):
        folder = cwd
    else:
        path = Path(db)
        folder = (path if path.is_absolute() else cwd / path).parent
    return f"sqlite:///{folder / DEFAULT_FILE}"


def safe_url(url: str) -> str:
    """The URL for logs and messages: the password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a URL SQLAlchemy cannot parse has nothing to hide yet
        return "<unparsable URL>"


def make_engine(url: str) -> Engine:
    """An engine for ``url``. SQLite: a file made private (0600) before first use, a busy
    timeout, foreign keys on; ``sqlite://`` (in memory, for tests) one shared connection."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, pool_size=4, max_overflow=2)
    kwargs: dict[str, Any] = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT, "check_same_thread": False}}
    db = parsed.database
    if not db or db == ":memory:":
        kwargs["poolclass"] = StaticPool
    else:
        path = Path(db)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    engine = create_engine(url, **kwargs)

    in_memory = not db or db == ":memory:"

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record):  # noqa: ANN001 - SQLAlchemy's signature
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        if not in_memory:
            # a write-ahead log: readers (the pages) never wait for the writer, and a commit
            # is one append without fsync (NORMAL) — a record's start or stop costs well
            # under a millisecond instead of several fsyncs on the spawn's path. A crash
            # of the hub loses nothing; only a power loss can lose the last commits.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


def upgrade(engine: Engine) -> str:
    """Bring the schema to the newest revision (made from nothing on a new database);
    returns the revision. Raises UsageDBError naming what failed."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        return current_revision(engine)
    except SQLAlchemyError as e:
        raise UsageDBError(f"cannot upgrade the usage database {safe_url(str(engine.url))}: {e}") from e


def current_revision(engine: Engine) -> str | None:
    """The schema revision the database is at (None: no schema yet)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE}).get_current_revision()


def table_names(engine: Engine) -> list[str]:
    return sorted(inspect(engine).get_table_names())


class UsageStore:
    """Async access to the usage database at ``url`` (statements run in a thread pool)."""

    def __init__(self, url: str, threads: int = 4):
        self.url = url
        self.engine = make_engine(url)
        # SQLite allows one writer at a time: more threads would only wait for its lock
        if self.engine.dialect.name == "sqlite":
            threads = min(threads, 2)
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="gridspawner-usage")

    def upgrade(self) -> str:
        """Synchronous, at start-up: see `upgrade`."""
        return upgrade(self.engine)

    async def _run(self, fn: Callable, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, partial(fn, *args))

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        self.engine.dispose()

    # ------------------------------------------------------------------ writes
    def _open(self, values: dict, groups: Sequence[str]) -> int:
        with self.engine.begin() as conn:
            record_id = conn.execute(q.insert_record(values)).inserted_primary_key[0]
            stmt = q.insert_groups(record_id, groups)
            if stmt is not None:
                conn.execute(stmt)
        return int(record_id)

    async def open(self, values: dict, groups: Sequence[str] = ()) -> int:
        """Insert an open record (``values``: the columns of `models.UsageRecord`); its id."""
        return await self._run(self._open, values, tuple(groups))

    def _execute(self, stmt: Any) -> int:
        with self.engine.begin() as conn:
            return conn.execute(stmt).rowcount

    async def close_record(self, record_id: int, stopped_at: float, reason: str, stopped_by: str | None = None) -> bool:
        """Close an open record; False when it was closed already (the first reason stays)."""
        return await self._run(self._execute, q.close_record(record_id, stopped_at, reason, stopped_by)) > 0

    async def close_at_last_seen(self, record_id: int, reason: str, stopped_by: str | None = None) -> bool:
        """Close an open record at the time it was last seen running."""
        return await self._run(self._execute, q.close_at_last_seen(record_id, reason, stopped_by)) > 0

    async def lost_records(self, seen_before: float, exclude: Iterable[int]) -> list[int]:
        rows = await self._run(self._rows, q.lost_records(seen_before, list(exclude)))
        return [r["id"] for r in rows]

    async def touch(self, record_ids: Iterable[int], now: float) -> None:
        ids = list(record_ids)
        if ids:
            await self._run(self._execute, q.touch(ids, now))

    # ------------------------------------------------------------------ reads
    def _rows(self, stmt: Any) -> list[dict]:
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(stmt)]

    def _pairs(self, stmt: Any) -> dict:
        with self.engine.connect() as conn:
            return {k: v for k, v in conn.execute(stmt)}

    async def record(self, record_id: int) -> dict | None:
        rows = await self._run(self._rows, q.record_by_id(record_id))
        return rows[0] if rows else None

    async def open_records(self, kind: str | None = None) -> list[dict]:
        return await self._run(self._rows, q.open_records(kind))

    async def gpu_hours_by_user(self, users: Iterable[str], span: Span, now: float) -> dict[str, float]:
        return await self._run(self._pairs, q.gpu_hours_by_user(list(users), span.start, span.end, now))

    async def gpu_hours_by_group(self, groups: Iterable[str], span: Span, now: float) -> dict[str, float]:
        return await self._run(self._pairs, q.gpu_hours_by_group(list(groups), span.start, span.end, now))

    async def running_gpus_by_user(self, users: Iterable[str] | None = None) -> dict[str, int]:
        pairs = await self._run(self._pairs, q.running_gpus_by_user(None if users is None else list(users)))
        return {k: int(v) for k, v in pairs.items()}

    async def running_gpus_by_group(self, groups: Iterable[str]) -> dict[str, int]:
        pairs = await self._run(self._pairs, q.running_gpus_by_group(list(groups)))
        return {k: int(v) for k, v in pairs.items()}

    async def summary(self, dimension: str, span: Span, now: float, filters: q.Filters = q.Filters()) -> list[dict]:
        """Rows of key, records, hours, gpu_hours, cost per value of ``dimension``; the time
        dimensions (day, week, month) take ``spans`` from the caller: see `series`."""
        return await self._run(self._rows, q.summary(dimension, span.start, span.end, now, filters))

    async def totals(self, span: Span, now: float, filters: q.Filters = q.Filters()) -> dict:
        return (await self._run(self._rows, q.totals(span.start, span.end, now, filters)))[0]

    def _series(self, spans: Sequence[Span], now: float, filters: q.Filters) -> list[Bucket]:
        ends, start = [s.end for s in spans], spans[0].start
        with self.engine.connect() as conn:
            sums = conn.execute(q.period_sums(ends, start, now, filters)).all()
            overflow = conn.execute(q.period_overflow(ends, start, now, filters)).all()
        return merged_buckets(spans, now, sums, overflow)

    async def series(self, spans: Sequence[Span], now: float, filters: q.Filters = q.Filters()) -> list[Bucket]:
        """Hours, GPU-hours and cost per span (adjacent periods, oldest first)."""
        if not spans:
            return []
        return await self._run(self._series, list(spans), now, filters)

    def _history(self, filters: q.Filters, span: Span | None, limit: int, offset: int) -> list[dict]:
        start, end = (span.start, span.end) if span else (None, None)
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(q.history(filters, start, end, limit, offset))]
            groups: dict[int, list[str]] = {}
            if rows:
                for record_id, name in conn.execute(q.groups_of([r["id"] for r in rows])):
                    groups.setdefault(record_id, []).append(name)
        for r in rows:
            r["groups"] = sorted(groups.get(r["id"], []))
        return rows

    async def history(self, filters: q.Filters, span: Span | None = None, limit: int = 50, offset: int = 0) -> list[dict]:
        """Records newest first, each with its ``groups``."""
        return await self._run(self._history, filters, span, limit, offset)

    async def count(self, filters: q.Filters, span: Span | None = None) -> int:
        start, end = (span.start, span.end) if span else (None, None)
        with_rows = await self._run(self._rows, q.count(filters, start, end))
        return int(next(iter(with_rows[0].values())))

    async def first_start(self, filters: q.Filters) -> float | None:
        """When the first record that ``filters`` match started (None: there is none)."""
        rows = await self._run(self._rows, q.first_start(filters))
        return next(iter(rows[0].values())) if rows else None

    def _choices(self) -> dict[str, list[str]]:
        with self.engine.connect() as conn:
            return {
                "backend": [v for (v,) in conn.execute(q.distinct_values("backend"))],
                "gpu_model": [v for (v,) in conn.execute(q.distinct_values("gpu_model"))],
                "group": [v for (v,) in conn.execute(q.distinct_groups())],
            }

    async def choices(self) -> dict[str, list[str]]:
        """The backends, GPU models and groups that occur in the records (filter menus)."""
        return await self._run(self._choices)
