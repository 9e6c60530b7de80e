"""`QueueCapacity`: a Slurm cluster's GPUs as the spawn form sees them.

The form shows what is free now (the summary: "3 of 8 GPUs free, up to 80 GB"), but on a
cluster a request for busy GPUs is not refused: the job waits in the queue (up to the
backend's ``queue_wait``). So what *fits* is judged against every GPU of the nodes that can
take jobs, free or not; only a request no node could ever hold (more GPUs, or larger ones,
than any usable node has) is greyed out — the same requests ``sbatch`` would refuse.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...gpu import min_mib
from ..base import Capacity


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
