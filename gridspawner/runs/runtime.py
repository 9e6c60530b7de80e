"""Notebook runs in the service process: the settings the hub handed over (`RunsConfig`),
the catalog and backends built from them, the store, the run store and the executor.

The service builds its own backend instances from the hub's catalog, with the hub id
`runs_hub_id` (the hub's id + ``+runs``) written into the sessions and GPU claims of runs:
the hub's look for orphans reclaims only what carries its own id, so it never takes a
running run for an orphaned server; the executor looks for its own orphans (`Executor.reconcile`).
GPU claims of runs still count as taken for the hub's placement, and the other way round.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from ..backends import backend_class
from ..catalog import build_catalog
from .executor import Executor, Recorder
from ..mounts.specs import pin_typed_choices, strip_secrets
from .files import INPUT
from .quota import usage_quota
from .s3files import open_store
from .store import LimitReached, RunStore

log = logging.getLogger("gridspawner.runs")


def new_run_id() -> str:
    """A run's id: 16 random hex digits (a path and a session name: `files.RUN_ID`)."""
    return secrets.token_hex(8)


def runs_hub_id(hub_id: str) -> str:
    """The id the service's backends write into what runs leave on hosts and clusters."""
    return f"{hub_id}+runs" if hub_id else ""


@dataclass(frozen=True)
class RunsConfig:
    """The runs settings (`gridspawner.runs.traits.RunsSettings`), as the service gets them."""

    runs_dir: str = ""
    runs_store_url: str = ""
    runs_store_endpoint_url: str = ""
    runs_store_region: str = ""
    runs_store_access_key_env: str = ""
    runs_store_secret_key_env: str = ""
    runs_store_session_token_env: str = ""
    runs_store_timeout: float = 10.0
    runs_store_attempts: int = 3
    runs_per_user: int = 10
    runs_per_group: dict = field(default_factory=dict)
    runs_queue_retry: float = 2.0
    runs_queue_retry_max: float = 30.0
    runs_poll_interval: float = 5.0
    runs_max_notebook_mb: int = 16
    runs_kernel: str = ""

    @property
    def max_bytes(self) -> int:
        return self.runs_max_notebook_mb * 1024 * 1024

    def limits_for(self, user: str, groups: list[str]) -> list[tuple[str, str, str, int]]:
        """The limits a submit by ``user`` in ``groups`` counts against: (what, ``user`` or
        ``group``, name, most active runs)."""
        limits = [("you", "user", user, int(self.runs_per_user))]
        for g in groups:
            if g in self.runs_per_group:
                limits.append((f"the group {g!r}", "group", g, int(self.runs_per_group[g])))
        return limits


def usage_recorder(usage: Any) -> Recorder:
    """Usage records of runs in ``usage`` (a `UsageRuntime`; None: none kept): kind ``run``."""
    if usage is None:
        return Recorder()
    prices = usage.config.prices

    async def open_record(row: dict, launch: Any) -> int:
        gpus = tuple(launch.gpus or ())
        now = row.get("started_at") or time.time()
        values = {
            "kind": "run", "run_id": row["id"], "username": row["username"], "server_name": row.get("name") or "",
            "backend": row["backend"], "backend_kind": row.get("backend_kind") or "", "host": row.get("host") or "",
            "gpus": int(row.get("gpus") or 0), "gpu_model": row.get("gpu_model") or "",
            "gpu_memory_gb": int(row.get("gpu_memory_gb") or 0), "cpu": None, "memory_gb": None,
            "image": row.get("image") or "", "profile": row.get("profile") or "",
            "price_per_hour": prices.rate_of(gpus, int(row.get("gpus") or 0), int(row.get("gpu_memory_gb") or 0),
                                             "", None, None),
            "currency": prices.currency, "started_at": now, "last_seen_at": now,
        }
        groups = json.loads(row.get("groups") or "[]")
        return await usage.store.open(values, groups)

    async def close_record(record_id: int, at: float, reason: str, by: str | None) -> None:
        await usage.store.close_record(record_id, at, reason, by)

    return Recorder(open_record, close_record)


class RunsRuntime:
    """Everything notebook runs need in the service (started by `start`)."""

    def __init__(self, settings: dict, engine: Any, db_url: str, usage: Any = None):
        raw = dict(settings)
        catalog_raw, hub_id = raw.pop("catalog"), raw.pop("hub_id", "")
        self.config = RunsConfig(**{k: v for k, v in raw.items() if k in RunsConfig.__dataclass_fields__})
        self.catalog = build_catalog(**catalog_raw)
        self.hub_id = runs_hub_id(hub_id)
        self.backends = {}
        for name, b in self.catalog.backends.items():
            backend = backend_class(b.kind)(name, b.settings, tolerance=self.catalog.gpu_memory_tolerance)
            backend.hub_id = self.hub_id
            self.backends[name] = backend
        self.store = RunStore(engine)
        self.files = open_store(raw, db_url)
        self.executor = Executor(self.store, self.files, self.catalog, self.backends,
                                 queue_retry=self.config.runs_queue_retry,
                                 queue_retry_max=self.config.runs_queue_retry_max,
                                 poll_interval=self.config.runs_poll_interval,
                                 kernel=self.config.runs_kernel, recorder=usage_recorder(usage),
                                 quota=usage_quota(usage))

    async def submit(self, draft: Any, user: str, groups: list[str]) -> str:
        """Queue a checked run (`submit.Draft`) for ``user``; its id. LimitReached when a
        runs limit is reached, RunStoreError when the run store cannot take the notebook
        (nothing is kept then)."""
        run_id, now, req = new_run_id(), time.time(), draft.request
        # the stored options name each mount's credentials choice: after a restart the
        # executor knows which typed secrets it lost (`Executor.keep`)
        clean = pin_typed_choices(strip_secrets(draft.options)[0], req.mounts)
        values = {
            "id": run_id, "username": user, "name": draft.name, "status": "queued", "backend": req.backend,
            "backend_kind": req.backend_kind, "profile": req.profile or "", "image": req.image,
            "options": json.dumps(clean, default=str), "parameters": json.dumps(draft.parameters),
            "bindings": json.dumps(draft.bindings), "warnings": json.dumps(list(draft.warnings)),
            "groups": json.dumps(sorted(groups)), "gpus": req.gpus, "gpu_memory_gb": req.gpu_memory,
            "gpu_model": "", "host": "", "max_runtime": req.max_runtime, "submitted_at": now, "updated_at": now,
            "cancel_requested": 0, "log_tail": "",
        }
        await self.files.write(run_id, INPUT, draft.notebook)  # RunStoreError: nothing is kept
        # the typed secrets are in memory before the row is in the queue: a start can never
        # find the row without them (and take them for lost)
        self.executor.keep(run_id, draft.options)
        try:
            await self.store.submit(values, self.config.limits_for(user, groups))
        except LimitReached:
            self.executor.secrets.pop(run_id, None)
            await self.files.remove(run_id)
            raise
        except BaseException:
            self.executor.secrets.pop(run_id, None)
            raise
        self.executor.wake()
        return run_id

    async def start(self) -> None:
        await self.files.ensure()
        await self.executor.start()
        log.info("notebook runs: run store %s, executor started", self.files.location)

    async def close(self) -> None:
        await self.executor.close()
        for backend in self.backends.values():
            try:
                await backend.close()
            except Exception:  # noqa: BLE001 - shutting down
                pass
        self.store.close()
        self.files.close()
