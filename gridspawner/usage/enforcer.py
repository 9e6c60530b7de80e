"""The periodic usage watch of a hub process (every ``quota_check_interval`` seconds):

1. marks every server this process records as seen (``last_seen_at``), and adds their
   GPU-hours to the Prometheus counter;
2. closes, as ``hub_lost``, open server records that no spawner of this hub holds and that
   were not seen for `LOST_AFTER` seconds (the hub's database lost them, or a server's
   spawner vanished), at the time they were last seen;
3. for each user with running GPU servers under a GPU-hours quota: when the quota runs out
   at the current rate, each of those servers is told (the stops file; the hub's
   home page) that it will be stopped ``quota_grace`` after that, and stopped then with the
   reason ``quota``;
4. the idle policy (`idle`): a server with no Jupyter activity and no GPU use for its idle
   timeout is told, then stopped with the reason ``idle``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from datetime import timezone
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from .. import metrics
from ..backends.base import BackendError
from ..stops import UpcomingStop
from .idle import idle_since, verdict
from .prometheus import pod_busy, pod_gpu_utilization
from .store import UsageDBError

if TYPE_CHECKING:
    from .runtime import UsageRuntime

#: an open server record the hub has not seen running for this long, and that no spawner of
#: this process holds, is closed as ``hub_lost`` at the time it was last seen
LOST_AFTER = 600.0

log = logging.getLogger("gridspawner.usage")


async def watch(runtime: UsageRuntime) -> None:
    while True:
        await asyncio.sleep(runtime.config.check_interval)
        try:
            await tick(runtime, time.time())
        except (SQLAlchemyError, UsageDBError, OSError) as e:
            log.error("gridspawner: usage watch failed (tried again in %g s): %s", runtime.config.check_interval, e)
        except Exception:  # noqa: BLE001 - the watch must outlive any one bad round
            log.exception("gridspawner: usage watch failed")


async def tick(runtime: UsageRuntime, now: float) -> None:
    live = dict(runtime.servers)
    await runtime.ready()
    await runtime.store.touch(live, now)
    records = {r["id"]: r for r in await runtime.store.open_records("server")}
    for record_id in live:
        if record_id in records:
            runtime.adopt(records[record_id])
    runtime.accrue(now)
    if now - runtime.process_started >= LOST_AFTER:
        for record_id in await runtime.store.lost_records(now - LOST_AFTER, live):
            log.warning("gridspawner: usage record %s: no spawner of this hub holds its server any more; "
                        "closed as hub_lost at the time it was last seen", record_id)
            await runtime.close_server(record_id, "hub_lost")
    if runtime.config.quotas.configured:
        await enforce_quotas(runtime, live, records, now)
    if runtime.config.idle.configured:
        await cull_idle(runtime, live, records, now)


def last_activity(spawner) -> float | None:
    """JupyterHub's ``last_activity`` of the server (epoch s), None when it has none."""
    orm = getattr(spawner, "orm_spawner", None)
    when = getattr(orm, "last_activity", None)
    if when is None:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()


async def cull_idle(runtime: UsageRuntime, live: dict, records: dict, now: float) -> None:
    policy = runtime.config.idle
    timeouts = {rid: policy.timeout_for(records[rid]["backend"], records[rid]["profile"] or None)
                for rid in live if rid in records}
    utilization = None
    if runtime.config.prometheus_url and any(
        timeouts.get(rid) and records[rid]["gpus"] and records[rid]["backend_kind"] == "kubernetes" for rid in live
    ):
        utilization = await pod_gpu_utilization(runtime.config.prometheus_url, runtime.config.prometheus_timeout)
    for rid, spawner in live.items():
        record, timeout, launch = records.get(rid), timeouts.get(rid), spawner._launch
        if record is None or launch is None:
            continue
        if not timeout:
            await spawner._usage.plan_stop(spawner, "idle", None, now)
            continue
        tracker, has_gpus = spawner._usage.idle, record["gpus"] > 0
        busy = None
        if has_gpus:
            try:
                if record["backend_kind"] == "kubernetes":
                    busy = pod_busy(utilization, launch.state, policy.gpu_threshold)
                else:
                    max_age = max(60.0, 3 * getattr(spawner, "capacity_refresh_interval", 15.0))
                    busy = spawner._backend().gpu_busy(launch, policy.gpu_threshold, max_age)
            except BackendError:
                busy = None
        tracker.observe(busy, has_gpus, policy.when_unknown, now)
        since = idle_since(record["started_at"], last_activity(spawner), tracker.gpus_busy_at)
        stop_at, due = verdict(timeout, since, now, policy.warning)
        stop = UpcomingStop("idle", stop_at, f"it has been idle (no Jupyter activity{' and no GPU use' if has_gpus else ''}) "
                            f"for {round(timeout / 60)} min") if stop_at is not None else None
        if await spawner._usage.plan_stop(spawner, "idle", stop, now):
            log.warning("%s: no Jupyter activity%s since %s; stopping it (idle timeout %g s)", spawner._log_name,
                        " and no GPU use" if has_gpus else "", time.strftime("%H:%M:%S", time.gmtime(since)), timeout)
            metrics.IDLE_STOPS.labels(spawner._backend_name or "").inc()
            asyncio.ensure_future(spawner._stop_by_hub("idle"))


async def enforce_quotas(runtime: UsageRuntime, live: dict, records: dict, now: float) -> None:
    by_user: dict[str, list] = defaultdict(list)
    for record_id, spawner in live.items():
        if record_id in records and records[record_id]["gpus"] > 0:
            by_user[spawner._user_name()].append(spawner)
    for user, spawners in by_user.items():
        found = await runtime.quota_stop(user, spawners[0]._groups(), now)
        stop = UpcomingStop("quota", found.out_at + runtime.config.grace, found.message) if found else None
        for spawner in spawners:
            due = await spawner._usage.plan_stop(spawner, "quota", stop, now)
            if due:
                log.warning("%s: %s; stopping it (GPU quota, after a grace period of %g s)",
                            spawner._log_name, stop.message, runtime.config.grace)
                metrics.QUOTA_STOPS.labels(spawner._backend_name or "").inc()
                asyncio.ensure_future(spawner._stop_by_hub("quota"))
