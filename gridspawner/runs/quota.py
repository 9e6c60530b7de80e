"""The GPU quota for notebook runs, through the usage side's own checks (one place for the
rule: `gridspawner.usage.quotas`, asked through `UsageRuntime.refusal` / ``quota_stop``):

- **at start** (`check_start`, from the executor's ``_launch`` through
  `gridspawner.preparation.prepare`, as at submit): GPU-hours used up → the run fails with
  the form's field error; "GPUs at once" reached, where waiting can lift it → `QuotaWait`:
  the run stays queued with the reason as its message, and only its user's queued runs wait
  (the other users' runs on that backend go on, `RunStore.heads` skips the waiting users);
- **while running** (`watch_round`, every ``quota_check_interval`` seconds): a user whose
  GPU-hours run out at the current rate gets the coming stop in each GPU run's message,
  and the run is stopped ``quota_grace`` after they ran out — status ``failed``, the error
  naming the quota, its usage record closed with the reason ``quota`` — as a server is.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

log = logging.getLogger("gridspawner.runs")


class QuotaWait(Exception):
    """A run's start waits for its user's (or group's) GPUs at once; ``str()``: why."""


@dataclass
class RunQuota:
    """The quota checks the executor makes (`usage_quota`; the defaults check nothing):
    ``refusal(user, groups, gpus)`` → a `QuotaRefusal` or None; ``stop(user, groups, now)``
    → a `QuotaStop` or None; ``grace`` and ``interval`` in seconds."""

    refusal: Callable[..., Awaitable[Any]] | None = None
    stop: Callable[..., Awaitable[Any]] | None = None
    grace: float = 0.0
    interval: float = 60.0


def usage_quota(usage: Any) -> RunQuota:
    """The quota of ``usage`` (a `UsageRuntime`; None: none)."""
    if usage is None or not usage.config.quotas.configured:
        return RunQuota()
    return RunQuota(usage.refusal, usage.quota_stop, usage.config.grace, usage.config.check_interval)


def check_start(quota: RunQuota, user: str, groups: list[str]) -> Callable[[int], Awaitable[str | None]] | None:
    """``prepare``'s quota callback for a run's start: the refusal that fails it, or QuotaWait."""
    if quota.refusal is None:
        return None

    async def check(gpus: int) -> str | None:
        why = await quota.refusal(user, groups, gpus)
        if why is not None and getattr(why, "waits", False):
            raise QuotaWait(why.wait_text or str(why))
        return why

    return check


def stop_message(text: str) -> str:
    """The error of a run stopped for the quota."""
    return f"stopped by the GPU quota: {text}"


async def watch_round(quota: RunQuota, running: list[dict], now: float,
                      note: Callable[[str, str], Awaitable[None]]) -> list[tuple[str, str]]:
    """(run id, why) of the ``running`` runs (rows with ``id``, ``username``, ``groups`` as
    JSON text, ``gpus``) to stop for the quota now; ``note(run id, message)`` tells the
    others of a coming quota stop (or clears it: "")."""
    if quota.stop is None:
        return []
    by_user: dict[str, list[dict]] = defaultdict(list)
    for row in running:
        if int(row.get("gpus") or 0) > 0:
            by_user[row["username"]].append(row)
    due = []
    for user, rows in by_user.items():
        try:
            found = await quota.stop(user, json.loads(rows[0].get("groups") or "[]"), now)
        except Exception as e:  # noqa: BLE001 - a database hiccup: tried again next round
            log.warning("runs: cannot check the GPU quota of %s: %s", user, e)
            continue
        for row in rows:
            if found is None:
                if row.get("message"):
                    await note(row["id"], "")
                continue
            at = found.out_at + quota.grace
            if now >= at:
                due.append((row["id"], found.message))
                continue
            text = f"will be stopped at {time.strftime('%H:%M UTC', time.gmtime(at))}: {found.message}"
            if row.get("message") != text:
                await note(row["id"], text)
    return due
