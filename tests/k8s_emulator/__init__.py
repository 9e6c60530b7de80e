"""A Kubernetes API emulator for tests: real core/v1 REST paths and JSON, watch semantics
(resourceVersion, 410 Expired, bookmarks), OpenAPI validation, a scheduler with GPU Feature
Discovery labels, kubelet-style status and events, and optional local processes for pods
(with their downwardAPI volumes as files, refreshed when a PATCH changes the fields they
project: downward.py).

See emulator.py for how to start it and the control API; README-style notes in each module.
"""

from .emulator import Controls, Emulator, EmulatorProcess, write_kubeconfig
from .scheduler import node_object

__all__ = ["Controls", "Emulator", "EmulatorProcess", "node_object", "write_kubeconfig"]
