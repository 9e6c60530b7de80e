"""Backends: where a validated LaunchRequest runs.

Each kind is a `Backend` subclass registered here by name. The catalog asks the kind's class
to validate its own settings, so adding a kind means adding one module and one line below.
"""

from __future__ import annotations

import importlib

from ..vocabulary import CatalogError

# kind -> "module:Class", in the order messages list them. Imported when a backend of the
# kind is configured, never before: a hub without Kubernetes never imports its client
# (kubernetes_asyncio), one without SSH hosts never asyncssh.
_KINDS = {
    "local": "gridspawner.backends.local:LocalBackend",
    "ssh": "gridspawner.backends.ssh:SSHBackend",
    "kubernetes": "gridspawner.backends.kubernetes:KubernetesBackend",
    "slurm": "gridspawner.backends.slurm:SlurmBackend",
}


def known_kinds() -> tuple[str, ...]:
    return tuple(_KINDS)


def backend_class(kind: str, key: str = "backend"):
    """The Backend class for ``kind``; raises CatalogError for a kind this version lacks."""
    target = _KINDS.get(kind)
    if target is None:
        raise CatalogError(key, f"backend kind {kind!r} is not available in this version of gridspawner")
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)
