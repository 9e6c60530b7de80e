"""Live GPU capacity from the node watch and the pod watch — an in-memory computation.

free GPUs of a node = its allocatable GPU resource − the GPU requests of the pods bound to
it that have not finished. Nodes carry GPU Feature Discovery labels for the product and the
VRAM (MiB) of their cards; MIG slices are counted per profile (``nvidia.com/mig-1g.10gb``).
Each node is recomputed only when it or one of its pods changes, so a snapshot of 500
nodes costs a tuple of cached values.
"""

from __future__ import annotations

import re
import time
from typing import Mapping

from ...gpu import GPU
from ..base import Capacity, HostCapacity
from .settings import KubernetesSettings

_MIG_RESOURCE_RE = re.compile(r"nvidia\.com/mig-(\d+g\.(\d+)gb)")
_FINISHED = ("Succeeded", "Failed")


def _count(value) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return 0


def pod_gpu_requests(pod: Mapping, resource: str) -> dict[str, int]:
    """GPU-like extended resources a pod holds: {resource or MIG resource: count}."""
    out: dict[str, int] = {}
    for c in (pod.get("spec") or {}).get("containers") or []:
        res = c.get("resources") or {}
        wanted = dict(res.get("requests") or {})
        wanted.update(res.get("limits") or {})  # extended resources: the limit is the request
        for name, value in wanted.items():
            if name == resource or name.startswith("nvidia.com/mig-"):
                out[name] = out.get(name, 0) + _count(value)
    return out


def node_problem(node: Mapping) -> str | None:
    if (node.get("spec") or {}).get("unschedulable"):
        return "cordoned"
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready" and cond.get("status") != "True":
            return "not ready"
    return None


def node_capacity(node: Mapping, used: Mapping[str, int], settings: KubernetesSettings) -> HostCapacity:
    """One node's HostCapacity: a synthetic GPU per allocatable card (uuid ``node/gpuN``,
    name = product label, memory = VRAM label) and per MIG slice; the first unused are free."""
    meta = node.get("metadata") or {}
    name = meta.get("name", "?")
    labels = meta.get("labels") or {}
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    product = labels.get(settings.gpu_product_label, "GPU")
    memory = _count(labels.get(settings.gpu_memory_label, 0))
    gpus: list[GPU] = []
    free: list[str] = []
    n = _count(allocatable.get(settings.gpu_resource, 0))
    left = n - used.get(settings.gpu_resource, 0)
    for i in range(n):
        uuid = f"{name}/gpu{i}"
        gpus.append(GPU(i, uuid, product, memory))
        if i < left:
            free.append(uuid)
    for res in sorted(allocatable):
        m = _MIG_RESOURCE_RE.fullmatch(res)
        if not m:
            continue
        profile, gb = m.group(1), int(m.group(2))
        count = _count(allocatable[res])
        left = count - used.get(res, 0)
        for j in range(count):
            uuid = f"{name}/mig-{profile}-{j}"
            gpus.append(GPU(len(gpus), uuid, f"{product} MIG {profile}", gb * 1024))
            if j < left:
                free.append(uuid)
    problem = node_problem(node)
    return HostCapacity(name=name, gpus=tuple(gpus), free=frozenset(free), error=problem)


class CapacityTracker:
    """Fed by the node watch and pod watch(es) listeners; `snapshot()` is cheap."""

    def __init__(self, backend: str, settings: KubernetesSettings):
        self.backend = backend
        self.settings = settings
        self._nodes: dict[str, dict] = {}
        self._pods: dict[str, tuple[str, dict[str, int]]] = {}  # pod key -> (node, requests)
        self._used: dict[str, dict[str, int]] = {}  # node -> resource -> count
        self._hosts: dict[str, HostCapacity] = {}  # cache; a missing entry is dirty
        self._snapshot: tuple[HostCapacity, ...] | None = None

    def on_node(self, kind: str, node: dict) -> None:
        name = (node.get("metadata") or {}).get("name")
        if kind == "DELETED":
            self._nodes.pop(name, None)
        else:
            self._nodes[name] = node
        self._dirty(name)

    def on_pod(self, kind: str, pod: dict) -> None:
        meta = pod.get("metadata") or {}
        key = f"{meta.get('namespace')}/{meta.get('name')}"
        node = (pod.get("spec") or {}).get("nodeName")
        phase = (pod.get("status") or {}).get("phase")
        holding = kind != "DELETED" and node and phase not in _FINISHED
        new = (node, pod_gpu_requests(pod, self.settings.gpu_resource)) if holding else None
        old = self._pods.get(key)
        if old == new:
            return
        if old is not None:
            self._add(old[0], old[1], -1)
            del self._pods[key]
        if new is not None and new[1]:
            self._add(new[0], new[1], 1)
            self._pods[key] = new

    def _add(self, node: str, requests: Mapping[str, int], sign: int) -> None:
        used = self._used.setdefault(node, {})
        for res, n in requests.items():
            used[res] = used.get(res, 0) + sign * n
        self._dirty(node)

    def _dirty(self, node: str) -> None:
        self._hosts.pop(node, None)
        self._snapshot = None

    def gpu_node_vram(self) -> tuple[int, ...]:
        """The VRAM label (MiB per card) of every known node with whole GPUs, for the
        smallest-card preference of GPU pods; empty while the node watch has not listed."""
        out = set()
        for node in self._nodes.values():
            allocatable = (node.get("status") or {}).get("allocatable") or {}
            if _count(allocatable.get(self.settings.gpu_resource, 0)) <= 0:
                continue
            mib = _count(((node.get("metadata") or {}).get("labels") or {}).get(self.settings.gpu_memory_label, 0))
            if mib > 0:
                out.add(mib)
        return tuple(sorted(out))

    def hosts(self) -> tuple[HostCapacity, ...]:
        if self._snapshot is None:
            for name, node in self._nodes.items():
                if name not in self._hosts:
                    self._hosts[name] = node_capacity(node, self._used.get(name, {}), self.settings)
            self._snapshot = tuple(self._hosts[n] for n in sorted(self._nodes))
        return self._snapshot

    def snapshot(self, error: str | None = None) -> Capacity:
        return Capacity(backend=self.backend, hosts=self.hosts(), updated=time.time(), error=error)
