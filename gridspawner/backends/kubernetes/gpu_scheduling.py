"""PURE: how a GPU request maps onto a cluster — extended resources, node affinity for VRAM
and product, GPU taint tolerations — and how to say it to a user."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

from ...gpu import min_mib
from .names import BuildError
from .settings import GPUType, KubernetesSettings

_MIG_RE = re.compile(r"(\d+)g\.(\d+)gb")


@dataclass(frozen=True)
class GPUScheduling:
    """How a GPU request maps onto the cluster, and how to say it to a user."""

    resources: Mapping[str, str]
    match_expressions: tuple[Mapping, ...]
    tolerations: tuple[Mapping, ...]
    node_selector: Mapping[str, str]
    description: str  # "2 free GPUs with ≥ 40 GB"


def mig_memory_gb(profile: str) -> int:
    m = _MIG_RE.fullmatch(profile)
    return int(m.group(2)) if m else 0


def gpu_scheduling(
    settings: KubernetesSettings, gpus: int, gpu_memory: int, tolerance: float, gpu_type: GPUType | None = None
) -> GPUScheduling:
    """The GPU part of a pod: extended resources (limit = request), required node affinity
    for VRAM (``Gt``, MiB, with the same tolerance as the host backend) and product, and
    the GPU taint tolerations. ``gpus == 0`` → nothing (and no GPU toleration)."""
    if gpus <= 0:
        return GPUScheduling({}, (), (), {}, "no GPU")
    plural = "s" if gpus != 1 else ""
    exprs: list[Mapping] = []
    if gpu_type is not None and gpu_type.mig:
        have = mig_memory_gb(gpu_type.mig)
        if gpu_memory and have < gpu_memory:
            raise BuildError(f"the MIG profile {gpu_type.mig} has {have} GB, less than the {gpu_memory} GB asked for")
        resource = f"nvidia.com/mig-{gpu_type.mig}"
        description = f"{gpus} free MIG {gpu_type.mig} slice{plural}"
    else:
        resource = settings.gpu_resource
        description = f"{gpus} free GPU{plural}"
        if gpu_memory > 0:
            # "Gt" is strict: a card reporting exactly min_mib MiB must still match.
            exprs.append(
                {"key": settings.gpu_memory_label, "operator": "Gt", "values": [str(min_mib(gpu_memory, tolerance) - 1)]}
            )
            description += f" with ≥ {gpu_memory} GB"
        if gpu_type is not None and gpu_type.product:
            exprs.append({"key": settings.gpu_product_label, "operator": "In", "values": [gpu_type.product]})
            description += f" of type {gpu_type.display_name}"
    return GPUScheduling(
        resources={resource: str(gpus)},
        match_expressions=tuple(exprs),
        tolerations=tuple(settings.gpu_tolerations),
        node_selector=dict(settings.gpu_node_selector),
        description=description,
    )
