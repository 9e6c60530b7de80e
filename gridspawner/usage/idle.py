"""The idle policy: a server is idle when Jupyter reports no activity AND its GPUs show no
use for its idle timeout; it is then stopped (stop reason ``idle``), after a warning.

- Jupyter activity: the server's ``last_activity`` as JupyterHub keeps it (the single-user
  server's activity reports — kernels, terminals, connections — and the proxy's traffic).
- GPU use: what the backend already observes (`Backend.gpu_busy`): on hosts the capacity
  probe's nvidia-smi readings, per process of the server; on Kubernetes the DCGM exporter's
  metrics through the admin's Prometheus (`prometheus`). A server whose GPUs are busy is
  kept, browser or not (up to its maximum run time). Where GPU use cannot be read, the
  server is kept (``idle_when_gpu_use_unknown = "keep"``, the default) or judged by Jupyter
  activity alone (``"activity"``). A server without GPUs follows Jupyter activity alone.

`IdlePolicy` (settings) and `idle_since` / `verdict` are pure; `IdleTracker` is one
server's memory (when its GPUs were last seen busy, what it was told).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from ..vocabulary import CatalogError, Problems, parse_duration

UNKNOWN_CHOICES = ("keep", "activity")


@dataclass(frozen=True)
class IdlePolicy:
    default: float | None = None
    per_backend: Mapping[str, float | None] = field(default_factory=lambda: MappingProxyType({}))
    per_profile: Mapping[str, float | None] = field(default_factory=lambda: MappingProxyType({}))
    gpu_threshold: int = 5
    when_unknown: str = "keep"
    #: how long before an idle stop the server is told (the stops file, the home page)
    warning: float = 600.0

    @property
    def configured(self) -> bool:
        return bool(self.default or any(self.per_backend.values()) or any(self.per_profile.values()))

    def timeout_for(self, backend: str | None, profile: str | None) -> float | None:
        """The server's idle timeout in seconds (None: never stopped for idleness): its
        profile's, else its backend's, else the default. An explicit 0 turns it off."""
        if profile and profile in self.per_profile:
            return self.per_profile[profile]
        if backend and backend in self.per_backend:
            return self.per_backend[backend]
        return self.default


def parse_idle(default: Any, per_backend: Any, per_profile: Any, threshold: Any, when_unknown: Any,
               problems: Problems) -> IdlePolicy:
    """Validate the idle traits (each bad key reported through ``problems``)."""
    out: dict[str, Any] = {}
    with problems.collect():
        out["default"] = parse_duration(default, "c.GridSpawner.idle_timeout")
    for name, raw in (("per_backend", per_backend), ("per_profile", per_profile)):
        key = f"c.GridSpawner.idle_timeout_per_{name.split('_')[1]}"
        parsed: dict[str, float | None] = {}
        with problems.collect():
            if not isinstance(raw or {}, Mapping):
                raise CatalogError(key, "must be a dict: name → duration such as '30m' (0: never)")
            for k, v in (raw or {}).items():
                with problems.collect():
                    parsed[str(k)] = parse_duration(v, f"{key}[{k!r}]")
        out[name] = MappingProxyType(parsed)
    with problems.collect():
        if isinstance(threshold, bool) or not isinstance(threshold, int) or not 0 <= threshold <= 100:
            raise CatalogError("c.GridSpawner.idle_gpu_threshold", f"must be a percentage from 0 to 100 (got {threshold!r})")
        out["gpu_threshold"] = threshold
    with problems.collect():
        if when_unknown not in UNKNOWN_CHOICES:
            raise CatalogError("c.GridSpawner.idle_when_gpu_use_unknown", f"must be one of {', '.join(UNKNOWN_CHOICES)}")
        out["when_unknown"] = when_unknown
    return IdlePolicy(**out)


def unknown_names(policy: IdlePolicy, backends: Any, profiles: Any) -> list[CatalogError]:
    """Idle timeouts given for backends or profiles the catalog does not have."""
    errors = []
    for k in policy.per_backend:
        if k not in backends:
            errors.append(CatalogError(f"c.GridSpawner.idle_timeout_per_backend[{k!r}]",
                                       f"no such backend (backends: {', '.join(backends) or 'none'})"))
    for k in policy.per_profile:
        if k not in profiles:
            errors.append(CatalogError(f"c.GridSpawner.idle_timeout_per_profile[{k!r}]",
                                       f"no such profile (profiles: {', '.join(profiles) or 'none'})"))
    return errors


def idle_since(started: float, last_activity: float | None, gpus_busy_at: float | None) -> float:
    """Since when the server has been idle: the latest of its start, its last Jupyter
    activity and the last time its GPUs were seen busy."""
    return max(x for x in (started, last_activity, gpus_busy_at) if x is not None)


@dataclass
class IdleTracker:
    """One server's idle bookkeeping in this hub process."""

    #: the last time its GPUs were seen busy (or their use could not be read, with "keep")
    gpus_busy_at: float | None = None
    #: the idle stop the server was told about (epoch s), None: none
    announced: float | None = None

    def observe(self, busy: bool | None, has_gpus: bool, when_unknown: str, now: float) -> None:
        if not has_gpus:
            return
        if busy or (busy is None and when_unknown == "keep"):
            self.gpus_busy_at = now


def verdict(timeout: float, since: float, now: float, warning: float) -> tuple[float | None, bool]:
    """(when the idle stop is planned, or None while it is further than ``warning`` away;
    whether it is due now)."""
    stop_at = since + timeout
    if now >= stop_at:
        return stop_at, True
    return (stop_at if stop_at - now <= warning else None), False
