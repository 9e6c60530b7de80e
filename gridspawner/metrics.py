"""Prometheus metrics for hub admins: spawn outcomes and times per backend, free GPUs per
backend and memory size, probe health, refused requests by field, servers stopped at their
maximum run time or for a GPU quota, GPU-hours used per backend and GPU model, orphans
reclaimed after a hub crash.

They live in prometheus_client's default registry, which JupyterHub already serves at
``/hub/metrics`` (next to its own ``jupyterhub_*`` metrics, with the same access rule: the
``read:metrics`` scope unless ``c.JupyterHub.authenticate_prometheus = False``). So there is
nothing to configure, and no second port to open. They join that registry only when the hub
uses GridSpawner (`register`, called by `gridspawner.activation`): a hub that merely has the
package installed serves no ``gridspawner_*`` metric.

Label values are admin-chosen names (backends), GPU model names as the drivers report them
and fixed words only — never a user name or a value a user typed — so the number of series
stays bounded whatever users send.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Iterable, Mapping

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

from .fields import OPTION_NAMES

if TYPE_CHECKING:
    from .capacity import CapacityMonitor

#: the words ``outcome`` takes
OUTCOMES = ("success", "no_capacity", "unreachable", "access_denied", "failure", "bad_request", "cancelled")

SPAWN_DURATION = Histogram(
    "gridspawner_spawn_duration_seconds",
    "Time GridSpawner.start() took, per backend and outcome: success (the server is up and "
    "its URL known), no_capacity (the hosts answered and no free GPU fits), unreachable (no "
    "host answered), access_denied (a host refused the login, or the user name cannot be an "
    "account there), failure (any other), bad_request (a data mount failed its live check) "
    "or cancelled.",
    ["backend", "outcome"],
    # GPU servers start in seconds on hosts, in minutes when a pod pulls a large image
    buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, float("inf")),
    registry=None,
)

REJECTED_OPTIONS = Counter(
    "gridspawner_rejected_options_total",
    "Spawn requests (form or REST) refused because a field was invalid, per field. A request "
    "with several bad fields counts once for each.",
    ["field"],
    registry=None,
)

ORPHANS_RECLAIMED = Counter(
    "gridspawner_orphans_reclaimed_total",
    "Orphans reclaimed after a hub crash, per backend: servers, session directories, GPU "
    "claims or pods of this hub that no server it knew used (see the admin guide's crash "
    "recovery).",
    ["backend"],
    registry=None,
)

MAX_RUNTIME_STOPS = Counter(
    "gridspawner_max_runtime_stops_total",
    "Servers stopped by GridSpawner because they reached their maximum run time, per backend.",
    ["backend"],
    registry=None,
)


GPU_HOURS = Counter(
    "gridspawner_gpu_hours_total",
    "GPU-hours (GPUs × hours) used by servers this hub recorded, per backend and GPU model "
    "(as nvidia-smi names it; \"unknown\" where the backend cannot tell). Counted as they "
    "run (every quota_check_interval) and when they stop; a restarted hub counts from its start.",
    ["backend", "gpu_model"],
    registry=None,
)

QUOTA_STOPS = Counter(
    "gridspawner_quota_stops_total",
    "Servers stopped by GridSpawner because their user's (or group's) GPU-hours ran out, per backend.",
    ["backend"],
    registry=None,
)

IDLE_STOPS = Counter(
    "gridspawner_idle_stops_total",
    "Servers stopped by GridSpawner's idle policy (no Jupyter activity and no GPU use for their idle timeout), per backend.",
    ["backend"],
    registry=None,
)


def count_gpu_hours(backend: str, gpu_model: str, hours: float) -> None:
    if hours > 0:
        GPU_HOURS.labels(backend, gpu_model or "unknown").inc(hours)


def field_label(key: str) -> str:
    """The top-level option a field error is about (``mounts[2].bucket`` → ``mounts``); a
    name the user made up (an unknown option) is ``other``, so it never becomes a label."""
    head = re.split(r"[.\[]", key, maxsplit=1)[0]
    return head if head in OPTION_NAMES else "other"


def count_rejected(errors: Mapping[str, str]) -> None:
    for field in {field_label(k) for k in errors}:
        REJECTED_OPTIONS.labels(field).inc()


def observe_spawn(backend: str, outcome: str, seconds: float) -> None:
    SPAWN_DURATION.labels(backend, outcome).observe(seconds)


class CapacityCollector:
    """Reads the capacity cache at scrape time (so numbers are never older than the cache and
    a removed backend disappears): GPUs per backend, state (free/used) and memory size,
    hosts reachable or not, and how old each backend's last probe is."""

    def __init__(self) -> None:
        self.monitor: CapacityMonitor | None = None

    def collect(self) -> Iterable[GaugeMetricFamily]:
        monitor = self.monitor
        gpus = GaugeMetricFamily(
            "gridspawner_gpus",
            "GPUs on reachable hosts/nodes of each backend, by state (free, used) and nominal "
            "memory in GB (a 23028 MiB card counts as 24), from the background capacity probe.",
            labels=["backend", "state", "memory_gb"],
        )
        hosts = GaugeMetricFamily(
            "gridspawner_hosts",
            "Hosts (ssh, local) or GPU nodes (kubernetes) of each backend, by state (reachable, "
            "unreachable), from the background capacity probe.",
            labels=["backend", "state"],
        )
        probe_ok = GaugeMetricFamily(
            "gridspawner_capacity_probe_ok",
            "1 when the backend's last capacity probe answered, 0 when it failed or never ran.",
            labels=["backend"],
        )
        age = GaugeMetricFamily(
            "gridspawner_capacity_age_seconds",
            "Seconds since the backend's capacity was last probed (absent before the first probe).",
            labels=["backend"],
        )
        if monitor is not None:
            now = time.time()
            for name, cap in sorted(monitor.snapshot().items()):
                probe_ok.add_metric([name], 1.0 if cap.known else 0.0)
                if cap.updated:
                    age.add_metric([name], max(0.0, now - cap.updated))
                counts: dict[tuple[str, str], int] = {}
                for host in cap.hosts:
                    if not host.reachable:
                        continue
                    for g in host.gpus:
                        key = ("free" if g.uuid in host.free else "used", str(g.memory_gb))
                        counts[key] = counts.get(key, 0) + 1
                for (state, gb), n in sorted(counts.items()):
                    gpus.add_metric([name, state, gb], n)
                reachable = sum(1 for h in cap.hosts if h.reachable)
                hosts.add_metric([name, "reachable"], reachable)
                hosts.add_metric([name, "unreachable"], len(cap.hosts) - reachable)
        return [gpus, hosts, probe_ok, age]


CAPACITY = CapacityCollector()

_registered = False


def register() -> None:
    """Put gridspawner's metrics into the registry JupyterHub serves (once per process)."""
    global _registered
    if _registered:
        return
    _registered = True
    for collector in (
        SPAWN_DURATION, REJECTED_OPTIONS, MAX_RUNTIME_STOPS, ORPHANS_RECLAIMED, GPU_HOURS, QUOTA_STOPS, IDLE_STOPS,
        CAPACITY,
    ):
        REGISTRY.register(collector)


def watch_capacity(monitor: CapacityMonitor) -> None:
    """Report ``monitor``'s cache from now on (the hub's current configuration's)."""
    CAPACITY.monitor = monitor
