"""The usage side of one hub process: the store, the servers the hub is recording now, the
GPU-hours counter, the quota checks at submit and the periodic quota watch.

One `UsageRuntime` per usage database and process (`runtime_for`), shared by every spawner,
like `gridspawner.runtime.Runtime` for backends. Recording never stops a server from
starting: when the database fails, the failure is logged and the server runs unrecorded.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Mapping

from sqlalchemy.exc import SQLAlchemyError

from .. import metrics
from . import periods
from .config import UsageConfig
from .enforcer import watch
from .quotas import Limits, QuotaStop, Standing, quota_out, refusal
from .store import UsageDBError, UsageStore, default_url, safe_url

log = logging.getLogger("gridspawner.usage")

_runtimes: dict[str, "UsageRuntime"] = {}


def running_hub() -> Any:
    """The JupyterHub app of this process, when there is one (None in tools and tests)."""
    jh_app = sys.modules.get("jupyterhub.app")
    if jh_app is None or not jh_app.JupyterHub.initialized():
        return None
    return jh_app.JupyterHub.instance()


def usage_url(config: UsageConfig, hub_config: Any = None) -> str | None:
    """The usage database's URL: the admin's, else beside the hub's database. None when
    nothing is recorded: ``record_usage`` off, or no hub runs in this process and the admin
    named no URL (a tool, a test that makes spawners without a hub)."""
    if not config.record:
        return None
    if config.db_url:
        return config.db_url
    app = running_hub()
    if app is None:
        return None
    return default_url(app.db_url)


def runtime_for(config: UsageConfig) -> "UsageRuntime | None":
    """The process's runtime for this config's database (made on first use), or None."""
    url = usage_url(config)
    if url is None:
        return None
    runtime = _runtimes.get(url)
    if runtime is None:
        runtime = _runtimes[url] = UsageRuntime(config, url)
    runtime.config = config
    return runtime


@dataclass
class _Accrual:
    """What the GPU-hours counter has counted of one running record so far."""

    since: float
    gpus: int
    backend: str
    gpu_model: str


class UsageRuntime:
    def __init__(self, config: UsageConfig, url: str):
        self.config = config
        self.url = url
        self.store = UsageStore(url)
        #: record id → the spawner of a server this process records now
        self.servers: dict[int, Any] = {}
        self._accrued: dict[int, _Accrual] = {}
        self._upgraded = False
        self._upgrading: asyncio.Future | None = None
        self._watch: asyncio.Task | None = None
        self.process_started = time.time()

    # ------------------------------------------------------------------ schema
    def upgrade_now(self) -> None:
        """Upgrade the schema synchronously (hub start-up); raises UsageDBError."""
        if not self._upgraded:
            revision = self.store.upgrade()
            self._upgraded = True
            log.info("gridspawner: usage records in %s (schema %s)", safe_url(self.url), revision)

    async def ready(self) -> None:
        """The schema is upgraded (in the store's threads when start-up did not do it)."""
        if self._upgraded:
            return
        if self._upgrading is None:
            loop = asyncio.get_running_loop()
            self._upgrading = loop.run_in_executor(None, self.upgrade_now)
        await asyncio.shield(self._upgrading)

    def start_watching(self) -> None:
        """Start the periodic quota watch (idempotent; needs the running loop)."""
        if self._watch is None or self._watch.done():
            self._watch = asyncio.ensure_future(watch(self))

    # ------------------------------------------------------------------ records
    async def open_server(self, spawner: Any, values: dict, groups: Iterable[str]) -> int | None:
        """Insert the open record of a server that just started; its id (None: failed, logged)."""
        try:
            await self.ready()
            record_id = await self.store.open(values, list(groups))
        except (SQLAlchemyError, UsageDBError, OSError) as e:
            log.error("gridspawner: could not record the start of %s: %s", spawner._log_name, e)
            return None
        self.attach(record_id, spawner, values["started_at"], values["gpus"], values["backend"], values["gpu_model"])
        self.start_watching()
        return record_id

    def attach(self, record_id: int, spawner: Any, since: float | None = None, gpus: int = 0,
               backend: str = "", gpu_model: str = "") -> None:
        """``spawner`` records ``record_id`` in this process (a start or a re-attach)."""
        self.servers[record_id] = spawner
        if record_id not in self._accrued:
            self._accrued[record_id] = _Accrual(since or time.time(), gpus, backend, gpu_model)
        self.start_watching()

    def accrue(self, now: float, record_ids: Iterable[int] | None = None) -> None:
        """Add the GPU-hours of running records since they were last counted to the counter."""
        for record_id in list(self._accrued if record_ids is None else record_ids):
            a = self._accrued.get(record_id)
            if a is None or not a.gpus:
                continue
            if now > a.since:
                metrics.count_gpu_hours(a.backend, a.gpu_model, a.gpus * (now - a.since) / 3600.0)
                a.since = now

    async def close_server(self, record_id: int, reason: str, stopped_by: str | None = None,
                           at: float | None = None) -> None:
        """Close a server's record with ``reason`` at ``at`` (None: when it was last seen)."""
        now = time.time()
        self.accrue(now if at is None else at, [record_id])
        self._accrued.pop(record_id, None)
        self.servers.pop(record_id, None)
        try:
            await self.ready()
            if at is None:
                await self.store.close_at_last_seen(record_id, reason, stopped_by)
            else:
                await self.store.close_record(record_id, at, reason, stopped_by)
        except (SQLAlchemyError, UsageDBError, OSError) as e:
            log.error("gridspawner: could not record the stop (%s) of usage record %s: %s", reason, record_id, e)

    def adopt(self, record: Mapping) -> None:
        """Count a record attached after a hub restart from now on (its earlier hours were
        counted by the hub process that ran then)."""
        a = self._accrued.get(record["id"])
        if a is not None:
            a.gpus, a.backend, a.gpu_model = record["gpus"], record["backend"], record["gpu_model"]

    # ------------------------------------------------------------------ quotas
    def limits(self, user: str, groups: Iterable[str]) -> tuple[Limits, dict[str, Limits]]:
        quotas = self.config.quotas
        return quotas.limits_for(user, groups), quotas.pools_for(groups)

    def spans(self, now: float) -> dict[str, periods.Span]:
        return {p: periods.current(now, p, self.config.timezone) for p in periods.PERIODS}

    async def standing(self, user: str, groups: Iterable[str], now: float) -> tuple[Standing, dict[str, Standing]]:
        """What the user and each of their limited groups have used (all periods)."""
        await self.ready()
        spans = self.spans(now)
        _, pools = self.limits(user, groups)
        hours = {p: (await self.store.gpu_hours_by_user([user], s, now)).get(user, 0.0) for p, s in spans.items()}
        running = (await self.store.running_gpus_by_user([user])).get(user, 0)
        group_standing = {}
        if pools:
            names = list(pools)
            by_period = {p: await self.store.gpu_hours_by_group(names, s, now) for p, s in spans.items()}
            group_running = await self.store.running_gpus_by_group(names)
            for g in names:
                group_standing[g] = Standing({p: by_period[p].get(g, 0.0) for p in spans}, group_running.get(g, 0), group=g)
        return Standing(hours, running), group_standing

    def resets(self, now: float) -> dict[str, str]:
        """When each period starts again, in words ("on 2025-07-01")."""
        out = {}
        for p, span in self.spans(now).items():
            when = datetime.fromtimestamp(span.end, self.config.timezone)
            out[p] = "tomorrow" if p == "day" else f"on {when:%Y-%m-%d}"
        return out

    async def refusal(self, user: str, groups: Iterable[str], gpus: int) -> str | None:
        """Why a new server with ``gpus`` GPUs would exceed a quota (None: it would not).
        A database failure is logged and lets the server start."""
        if gpus <= 0 or not self.config.quotas.configured:
            return None
        groups = list(groups)
        now = time.time()
        limits, pools = self.limits(user, groups)
        try:
            mine, theirs = await self.standing(user, groups, now)
        except (SQLAlchemyError, UsageDBError, OSError) as e:
            log.error("gridspawner: cannot check the quota of %s (the server may start): %s", user, e)
            return None
        resets = self.resets(now)
        why = refusal(limits, mine, gpus, resets)
        for g, pool in pools.items():
            why = why or refusal(pool, theirs[g], gpus, resets)
        return why

    async def quota_stop(self, user: str, groups: Iterable[str], now: float) -> QuotaStop | None:
        """When the user's GPU servers must stop for a quota (before the grace period), if they must."""
        groups = list(groups)
        limits, pools = self.limits(user, groups)
        mine, theirs = await self.standing(user, groups, now)
        ends = {p: s.end for p, s in self.spans(now).items()}
        found = [quota_out(limits, mine, ends, now)] + [quota_out(pool, theirs[g], ends, now) for g, pool in pools.items()]
        found = [f for f in found if f is not None]
        return min(found, key=lambda f: f.out_at) if found else None
