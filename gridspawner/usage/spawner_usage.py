"""GridSpawner's usage side, as a mixin: the usage settings (`traits.UsageSettings`), the
process's usage runtime, this server's record (`recorder.ServerRecorder`), the quota check
at submit, stops the hub makes for its own reasons and the server's upcoming stops.

Kept apart so ``spawner.py`` stays about JupyterHub glue; it calls these at start, stop,
poll and re-attach. The methods use the spawner's own (``_ensure_attached``, ``_backend``,
``_deadline``, ``_launch``…).
"""

from __future__ import annotations

import time

from sqlalchemy.exc import SQLAlchemyError

from ..backends.base import BackendError
from ..vocabulary import CatalogError
from ..shared_backends import config_key
from ..stops import StopNote, UpcomingStop, soonest_first, stop_sentence
from .config import UsageConfig, build_usage_config
from .idle import unknown_names
from .names import SERVICE_NAME
from .form_panel import panel_view, render_panel
from .recorder import ServerRecorder
from .store import UsageDBError
from .runtime import UsageRuntime, running_hub, runtime_for, usage_url
from .traits import UsageSettings

_usage_configs: dict[str, UsageConfig] = {}


def usage_config_for(raw: dict) -> UsageConfig:
    """Validate (once per distinct config) the usage settings; raises CatalogError."""
    key = config_key(raw)
    if key not in _usage_configs:
        _usage_configs[key] = build_usage_config(**raw)
    return _usage_configs[key]


def usage_page_url(spawner) -> str:
    """The user's usage page, where the hub runs the gridspawner service ("" if not)."""
    app = running_hub()
    services = getattr(app, "services", None) or []
    if not any(isinstance(s, dict) and s.get("name") == SERVICE_NAME and s.get("command") for s in services):
        return ""
    base = getattr(app, "base_url", "/") or "/"
    return f"{base.rstrip('/')}/services/{SERVICE_NAME}/"


def check_usage_config(spawner, problems) -> None:
    """Validate the usage settings into ``problems`` (a `vocabulary.Problems`), including the
    backend and profile names of the idle timeouts against the catalog."""
    config = build_usage_config(**spawner.usage_settings(), problems=problems)
    try:
        catalog = spawner.catalog
    except CatalogError:
        return  # reported by the catalog's own check
    problems.errors.extend(unknown_names(config.idle, catalog.backends, catalog.profiles))


class SpawnerUsage(UsageSettings):
    """Usage records, quotas and the hub's own stops of one spawner."""

    @property
    def usage_config(self) -> UsageConfig:
        return usage_config_for(self.usage_settings())

    @property
    def usage(self) -> UsageRuntime | None:
        """The usage records' runtime (None: nothing is recorded, see `runtime_for`)."""
        return runtime_for(self.usage_config)

    def usage_url_for_messages(self) -> str:
        """The usage database's URL (for messages: pass it through `store.safe_url`)."""
        return usage_url(self.usage_config) or ""

    _usage_recorder: ServerRecorder | None = None

    @property
    def _usage(self) -> ServerRecorder:
        if self._usage_recorder is None:
            self._usage_recorder = ServerRecorder()
        return self._usage_recorder

    async def _quota_refusal(self, gpus: int) -> str | None:
        """Why ``gpus`` more GPUs would exceed this user's quota (None: they would not)."""
        usage = self.usage
        return await usage.refusal(self._user_name(), self._groups(), gpus) if usage is not None else None

    async def _usage_panel(self) -> str:
        """The spawn form's usage panel (`form_panel`): "" when nothing is recorded, or the
        database cannot be read (logged: the form still works)."""
        usage = self.usage
        if usage is None:
            return ""
        groups = self._groups()
        try:
            mine, theirs = await usage.standing(self._user_name(), groups, time.time())
        except (SQLAlchemyError, UsageDBError, OSError) as e:
            self.log.error("%s: cannot read the usage for the spawn form: %s", self._log_name, e)
            return ""
        limits, pools = usage.limits(self._user_name(), groups)
        catalog = self.catalog
        gpu_types = {name: b.gpu_types for name, b in catalog.backends.items()}
        view = panel_view(limits, mine, pools, theirs, usage.config.prices, catalog.gpu_memory_classes, gpu_types)
        return render_panel(view, usage_page_url(self))

    async def _stop_by_hub(self, reason: str) -> None:
        """Stop the server for one of the hub's own reasons (max_runtime, quota, idle), as
        JupyterHub does (its route and state go too), recording ``reason``. A stop already
        under way is left alone (the watch may find the server due again meanwhile)."""
        if self._usage.stop_reason is not None or getattr(self, "_stop_pending", False):
            return
        self._usage.stop_reason = reason
        if self.user is not None and hasattr(self.user, "stop"):
            await self.user.stop(self.name)
        else:
            await self.stop()

    def upcoming_stops(self) -> list[UpcomingStop]:
        """When the hub will stop this server and why, soonest first (empty: no stop is
        planned): its maximum run time, a GPU quota running out. For pages (the hub's home
        page); the reasons are those of `gridspawner.stops`."""
        stops = []
        if self._deadline is not None and (self._launch is not None or self._saved_launch_state):
            stops.append(UpcomingStop("max_runtime", self._deadline))
        stops.extend(self._usage.planned.values())
        return soonest_first(stops)

    def stop_notes(self) -> list[StopNote]:
        """The upcoming stops in words, for the hub's home page (`service/hub_templates`)."""
        if self._launch is None and not self._saved_launch_state:
            return []
        name = f"Your server {self.name!r}" if self.name else "Your server"
        return [StopNote(s.reason, stop_sentence(name, s, time.time())) for s in self.upcoming_stops()]

    #: the stops this process told the running server about, by reason (the stops file
    #: holds them all; a withdrawn one is left out)
    _stops_told: dict | None = None

    async def _announce_stops(self, entries: list[dict]) -> None:
        """Tell the running server about changed stops (the stops file, where its backend
        has one); a failure is logged: the hub still stops the server on time."""
        told = self._stops_told = dict(self._stops_told or {})
        for entry in entries:
            told[entry["reason"]] = entry
        current = [e for e in told.values() if e.get("at") is not None]
        self._stops_told = {e["reason"]: e for e in current}
        try:
            launch = await self._ensure_attached()
            if launch is not None and not await self._backend().announce_stops(launch, current):
                self.log.debug("%s: backend %s has no stops file; stops are shown on the hub's pages only",
                               self._log_name, self._backend_name)
        except BackendError as e:
            self.log.warning("%s: could not tell the server about its stops: %s", self._log_name, e)
