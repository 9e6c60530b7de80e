"""What one hub process shares among all its spawners: the validated catalog, and for it
the backend instances and their capacity monitor (`SharedBackends`).

Spawner instances are per user and short-lived; connections, ledgers and caches are not,
so they live here, keyed by the configuration that made them.
"""

from __future__ import annotations

import json
from typing import Any

from . import metrics
from .backends import backend_class
from .backends.base import Backend
from .capacity import CapacityMonitor
from .catalog import Catalog, build_catalog
from .logs import follow_hub_log

_catalogs: dict[str, Catalog] = {}
_shared: dict[str, "SharedBackends"] = {}


def config_key(raw: dict[str, Any]) -> str:
    return json.dumps(raw, sort_keys=True, default=repr)


def catalog_for(raw: dict[str, Any]) -> Catalog:
    """Build (once per distinct config) and return the catalog; raises CatalogError."""
    key = config_key(raw)
    if key not in _catalogs:
        _catalogs[key] = build_catalog(**raw)
    return _catalogs[key]


class SharedBackends:
    """The backend instances of one catalog (``backends``: name → `Backend`) and their
    background capacity monitor (``capacity``), made once per process (`for_catalog`)."""

    def __init__(self, catalog: Catalog, refresh_interval: float, hub_id: str = ""):
        follow_hub_log()  # before the backends log anything: their lines in the hub's log
        self.catalog = catalog
        self.hub_id = hub_id
        self.backends: dict[str, Backend] = {
            name: backend_class(b.kind)(name, b.settings, tolerance=catalog.gpu_memory_tolerance)
            for name, b in catalog.backends.items()
        }
        for backend in self.backends.values():
            backend.hub_id = hub_id  # written into what they leave on hosts: see gridspawner.reconcile
        #: the crash-recovery loop (`gridspawner.reconcile.Reconciler`), once the hub started it
        self.reconciler = None
        self.capacity = CapacityMonitor(self.backends, interval=refresh_interval)
        metrics.watch_capacity(self.capacity)

    @classmethod
    def for_catalog(cls, catalog: Catalog, refresh_interval: float = 15.0, hub_id: str = "") -> "SharedBackends":
        key = f"{id(catalog)}:{refresh_interval}:{hub_id}"
        if key not in _shared:
            _shared[key] = cls(catalog, refresh_interval, hub_id)
        return _shared[key]
