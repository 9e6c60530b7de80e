"""`QueueCapacity` and `node_capacity` (PURE): a Slurm cluster's GPUs as the spawn form sees them.

The form shows what is free now (the summary: "3 of 8 GPUs free, up to 80 GB"), but on a
cluster a request for busy GPUs is not refused: the job waits in the queue (up to the
backend's ``queue_wait``). So what *fits* is judged against every GPU of the nodes that can
take jobs, free or not; only a request no node could ever hold (more GPUs, or larger ones,
than any usable node has) is greyed out — the same requests ``sbatch`` would refuse.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from ...gpu import GPU, min_mib
from ..base import Capacity, HostCapacity
from .jobs import NodeGPUs
from .settings import GPUType


@dataclass(frozen=True)
class QueueCapacity(Capacity):
    def largest_free_count(self, gb: int, tolerance: float) -> int:
        """The most GPUs of at least ``gb`` GB one usable node has (busy ones included: a job
        for them queues)."""
        need = min_mib(gb, tolerance)
        return max((sum(1 for g in h.gpus if g.memory_total_mib >= need) for h in self.hosts if h.reachable), default=0)

    def fits(self, count: int, gb: int, tolerance: float) -> tuple[bool, str]:
        if not self.known or count == 0:
            return True, ""
        best = self.largest_free_count(gb, tolerance)
        if best >= count:
            return True, ""
        if self.total_gpus == 0:
            return False, "no node of this cluster that takes jobs now has GPUs"
        size = f" with ≥ {gb} GB" if gb else ""
        return False, f"no node has {count} GPU{'s' if count != 1 else ''}{size} (at most {best} on one node)"


def node_capacity(node: NodeGPUs, gpu_types: Iterable[GPUType]) -> HostCapacity:
    """One node as the form shows it: "gpu1 [gpu, debug]", a GPU per card of each gres
    type (named and sized by ``gpu_types``), the free ones first."""
    by_gres: dict[str, GPUType] = {t.gres: t for t in gpu_types}
    gpus, free = [], set()
    for gres_type, total in node.total.items():
        t = by_gres.get(gres_type)
        name = t.display_name if t else (gres_type or "GPU")
        mib = t.memory * 1024 if t and t.memory else 0
        n_free = node.free(gres_type)
        for i in range(total):
            g = GPU(index=len(gpus), uuid=f"{node.node}/{gres_type}/{i}", name=name, memory_total_mib=mib)
            gpus.append(g)
            if i < n_free:
                free.add(g.uuid)
    label = f"{node.node} [{', '.join(node.partitions)}]"
    error = None if node.usable else f"{node.node} is {node.state}"
    return HostCapacity(name=label, gpus=tuple(gpus), free=frozenset(free), error=error)
