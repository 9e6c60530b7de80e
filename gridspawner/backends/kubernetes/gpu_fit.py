"""PURE: a GPU request against what the cluster has — how to name a GPU type, which GPUs a
server got, whether a request could ever fit, and how to say what a pod waits for.

Nothing here talks to the cluster: the callers pass the node (from the node watch) or the
hosts (from `CapacityTracker`).
"""

from __future__ import annotations

from typing import Iterable, Mapping

from ...gpu import GPU, min_mib
from ..base import HostCapacity
from .gpu_scheduling import gpu_scheduling, mig_memory_gb
from .settings import GPUType, KubernetesSettings


def gpu_type_text(t: GPUType) -> str:
    """How the form names a GPU type: the admin's display_name, else the product label made
    readable ("NVIDIA-A100-SXM4-80GB" → "NVIDIA A100 SXM4 80GB"), else "MIG 1g.10gb"."""
    if t.mig or (t.display_name and t.display_name != t.product):
        return t.display_name  # a MIG type's default display_name is "MIG 1g.10gb"
    return (t.product or t.key).replace("-", " ").replace("_", " ")


def gpus_for(node: Mapping | None, count: int, settings: KubernetesSettings, gpu_type: GPUType | None) -> tuple[GPU, ...]:
    """What the server got, as far as the cluster says (device plugins pick the card)."""
    if not count or node is None:
        return ()
    meta = node.get("metadata") or {}
    labels = meta.get("labels") or {}
    product = labels.get(settings.gpu_product_label, "GPU")
    if gpu_type is not None and gpu_type.mig:
        mem = mig_memory_gb(gpu_type.mig) * 1024
        return tuple(GPU(i, f"{meta.get('name')}/mig-{gpu_type.mig}-{i}", f"{product} MIG {gpu_type.mig}", mem) for i in range(count))
    try:
        mem = int(labels.get(settings.gpu_memory_label, 0))
    except ValueError:
        mem = 0
    return tuple(GPU(i, f"{meta.get('name')}/gpu{i}", product, mem) for i in range(count))


def never_fits(hosts: Iterable[HostCapacity], request, gpu_type: GPUType | None, tolerance: float) -> bool:
    """True when none of ``hosts`` could run this GPU request even if it were empty."""
    need = min_mib(request.gpu_memory, tolerance) if not (gpu_type and gpu_type.mig) else 0
    for host in hosts:
        if not host.reachable:
            continue
        if gpu_type is not None and gpu_type.mig:
            cards = [g for g in host.gpus if g.name.endswith(f"MIG {gpu_type.mig}")]
        else:
            cards = [g for g in host.gpus if "/gpu" in g.uuid and g.memory_total_mib >= need]
            if gpu_type is not None and gpu_type.product:
                cards = [g for g in cards if g.name == gpu_type.product]
        if len(cards) >= request.gpus:
            return False
    return True


def need_text(settings: KubernetesSettings, request, gpu_type: GPUType | None, tolerance: float) -> str:
    """What a pending pod waits for, for the user: "1 free GPU with ≥ 40 GB and 4 free CPUs"."""
    parts = []
    if request.gpus:
        parts.append(gpu_scheduling(settings, request.gpus, request.gpu_memory, tolerance, gpu_type).description)
    cpu = request.cpu if request.cpu is not None else settings.default_cpu
    mem = request.memory if request.memory is not None else settings.default_memory
    if cpu:
        parts.append(f"{cpu:g} free CPU{'s' if cpu != 1 else ''}")
    if mem:
        parts.append(f"{mem} GB of free memory")
    return " and ".join(parts) if parts else "room for your server"
