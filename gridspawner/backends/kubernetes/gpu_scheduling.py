"""PURE: how a GPU request maps onto a cluster — extended resources, node affinity for VRAM
and product, a preference for the smallest cards that fit, GPU taint tolerations — and how
to say it to a user.

Best fit on a real scheduler. A required ``gpu.memory Gt X`` only filters: kube-scheduler
then scores the fitting nodes by its default plugins (NodeResourcesFit LeastAllocated and
NodeResourcesBalancedAllocation over cpu and memory, weight 1 each, TaintToleration 3,
NodeAffinity 2 …), which know nothing of GPU sizes, so an A10 node and an A100 node tie and
a 24 GB request lands on an 80 GB card about half the time (or always, when the A100 node
has more CPU and memory). So the pod also carries *preferred* node affinities, one per VRAM
class of the cluster's GPU nodes that fits the request, smallest first, with steeply falling
weights (`PREFERENCE_WEIGHTS`); the largest class gets none. NodeAffinity normalizes those
weights to 0..100 over the nodes that fit and counts them twice, so the smallest class with
room scores 200 and the next one at most 2 × 35 = 70: a gap of ≥ 130 points, more than the
two resource plugins can make up together (their sum is 200 − 100 × the node's highest
requested cpu/memory fraction, so two nodes differ by at most 100 while pods state their
requests). The classes come from the node watch (`CapacityTracker.gpu_node_vram`); without
it no preference is added.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Mapping

from ...gpu import min_mib, nominal_gb

if TYPE_CHECKING:
    from .settings import GPUType, KubernetesSettings

_MIG_RE = re.compile(r"(\d+)g\.(\d+)gb")

#: preferred-affinity weights of the fitting VRAM classes, smallest class first; further
#: classes (but the largest, which gets none) share the last weight. Each step is ≤ 0.35 of
#: the one before, so the smallest class with room outranks the next by ≥ 130 points.
PREFERENCE_WEIGHTS = (100, 35, 12, 4, 1)


@dataclass(frozen=True)
class GPUScheduling:
    """How a GPU request maps onto the cluster, and how to say it to a user."""

    resources: Mapping[str, str]
    match_expressions: tuple[Mapping, ...]
    tolerations: tuple[Mapping, ...]
    node_selector: Mapping[str, str]
    description: str  # "2 free GPUs with ≥ 40 GB"
    #: preferredDuringSchedulingIgnoredDuringExecution terms: the smallest cards that fit first
    preferred: tuple[Mapping, ...] = ()


def mig_memory_gb(profile: str) -> int:
    m = _MIG_RE.fullmatch(profile)
    return int(m.group(2)) if m else 0


def vram_classes(node_vram_mib: Iterable[int]) -> list[tuple[int, int]]:
    """The cluster's GPU sizes as classes, smallest first: (lowest, highest) MiB value of
    the nodes whose cards share a nominal size (81559 and 81920 MiB are both "80 GB")."""
    by_size: dict[int, list[int]] = {}
    for mib in node_vram_mib:
        if mib > 0:
            by_size.setdefault(nominal_gb(mib), []).append(mib)
    return [(min(v), max(v)) for _, v in sorted(by_size.items())]


def vram_preferences(settings: KubernetesSettings, need_mib: int, node_vram_mib: Iterable[int]) -> tuple[dict, ...]:
    """Preferred node affinity terms that rank the fitting VRAM classes smallest first.

    Term i covers class i and every label value between class i−1's highest and class i's
    highest, so a node of a size not seen yet still ranks with the next bigger class."""
    fitting = [c for c in vram_classes(node_vram_mib) if c[1] >= need_mib]
    terms = []
    below = None  # highest MiB of the previous fitting class
    for i, (_, highest) in enumerate(fitting[:-1]):  # the largest class: no preference
        exprs = [{"key": settings.gpu_memory_label, "operator": "Lt", "values": [str(highest + 1)]}]
        if below is not None:
            exprs.insert(0, {"key": settings.gpu_memory_label, "operator": "Gt", "values": [str(below)]})
        weight = PREFERENCE_WEIGHTS[min(i, len(PREFERENCE_WEIGHTS) - 1)]
        terms.append({"weight": weight, "preference": {"matchExpressions": exprs}})
        below = highest
    return tuple(terms)


def gpu_scheduling(
    settings: KubernetesSettings,
    gpus: int,
    gpu_memory: int,
    tolerance: float,
    gpu_type: GPUType | None = None,
    node_vram_mib: Iterable[int] = (),
) -> GPUScheduling:
    """The GPU part of a pod: extended resources (limit = request), required node affinity
    for VRAM (``Gt``, MiB, with the same tolerance as the host backend) and product,
    preferred affinities for the smallest VRAM class that fits (``node_vram_mib``: the
    ``gpu.memory`` label values of the cluster's GPU nodes; none known → no preference), and
    the GPU taint tolerations. ``gpus == 0`` → nothing (and no GPU toleration).

    A MIG type's memory is fixed by its profile; a request for more VRAM than that is refused
    when the request is validated (`gridspawner.catalog.gpu_type_memory_problem`)."""
    if gpus <= 0:
        return GPUScheduling({}, (), (), {}, "no GPU")
    plural = "s" if gpus != 1 else ""
    exprs: list[Mapping] = []
    preferred: tuple[Mapping, ...] = ()
    if gpu_type is not None and gpu_type.mig:
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
        else:  # a product fixes the card; otherwise the smallest that fits
            preferred = vram_preferences(settings, min_mib(gpu_memory, tolerance), node_vram_mib)
    return GPUScheduling(
        resources={resource: str(gpus)},
        match_expressions=tuple(exprs),
        tolerations=tuple(settings.gpu_tolerations),
        node_selector=dict(settings.gpu_node_selector),
        description=description,
        preferred=preferred,
    )
