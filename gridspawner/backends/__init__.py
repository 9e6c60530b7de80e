"""Backends: where a validated LaunchRequest runs.

Each kind is a `Backend` subclass registered here by name. The catalog asks the kind's class
to validate its own settings, so adding a kind means adding one module and one line below.
"""

from __future__ import annotations

import importlib

# kind -> "module:Class"; imported lazily so a hub without Kubernetes never imports its client.
_KINDS = {
    "local": "gridspawner.backends.local:LocalBackend",
    "ssh": "gridspawner.backends.ssh:SSHBackend",
    "kubernetes": "gridspawner.backends.kubernetes:KubernetesBackend",
    "slurm": "gridspawner.backends.slurm:SlurmBackend",
}

#: every kind of the design, in the order messages list them (one may not be available yet)
_ALL_KINDS = ("local", "ssh", "kubernetes", "slurm")


def known_kinds() -> tuple[str, ...]:
    return _ALL_KINDS


def backend_class(kind: str, key: str = "backend"):
    """The Backend class for ``kind``; raises CatalogError for a kind this version lacks."""
    from ..catalog import CatalogError

    target = _KINDS.get(kind)
    if target is None:
        raise CatalogError(key, f"backend kind {kind!r} is not available in this version of gridspawner")
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)
