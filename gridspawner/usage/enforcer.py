"""The periodic usage watch of a hub process (every ``quota_check_interval`` seconds):

1. marks every server this process records as seen (``last_seen_at``), and adds their
   GPU-hours to the Prometheus counter;
2. closes, as ``hub_lost``, open server records that no spawner of this hub holds and that
   were not seen for `LOST_AFTER` seconds (the hub's database lost them, or a server's
   spawner vanished), at the time they were last seen;
3. for each user with running GPU servers under a GPU-hours quota: when the quota runs out
   at the current rate, each of those servers is told (the stops file on hosts; the hub's
   home page) that it will be stopped ``quota_grace`` after that, and stopped then with the
   reason ``quota``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict

from sqlalchemy.exc import SQLAlchemyError

from .. import metrics
from ..stops import UpcomingStop
from .runtime import LOST_AFTER, UsageRuntime
from .store import UsageDBError

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


async def enforce_quotas(runtime: UsageRuntime, live: dict, records: dict, now: float) -> None:
    by_user: dict[str, list] = defaultdict(list)
    for record_id, spawner in live.items():
        if record_id in records and records[record_id]["gpus"] > 0:
            by_user[spawner._user_name()].append(spawner)
    for user, spawners in by_user.items():
        found = await runtime.quota_stop(user, spawners[0]._groups(), now)
        stop = UpcomingStop("quota", found.out_at + runtime.config.grace, found.message) if found else None
        for spawner in spawners:
            due = await spawner._usage.on_quota(spawner, stop, now)
            if due:
                log.warning("%s: %s; stopping it (GPU quota, after a grace period of %g s)",
                            spawner._log_name, stop.message, runtime.config.grace)
                metrics.QUOTA_STOPS.labels(spawner._backend_name or "").inc()
                asyncio.ensure_future(spawner._stop_by_hub("quota"))
