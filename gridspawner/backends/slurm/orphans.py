"""Crash recovery on a Slurm cluster: jobs a hub submitted that no server it knows uses.

A hub killed between ``sbatch`` and saving the server's state leaves a job that runs (and
holds its GPUs) until its time limit. Each job carries its hub and backend in its comment
(``--comment=gridspawner hub=ID backend=NAME``, `job_comment`); a look lists the pending and
running jobs of the cluster with one ``squeue`` (as the probe account) and cancels, as the
job's own account, those of this hub and backend that no known server state names and that
no launch of this process is still submitting — once they have been seen so for ``grace``
seconds (two looks apart: the cluster's clock is never compared with the hub's).
"""

from __future__ import annotations

import shlex
import time
from typing import Any, Callable, Iterable

from ..base import BackendError, Reconciled

#: every job Slurm still holds that may run: id, owner account, comment
ORPHAN_SQUEUE = shlex.join(["squeue", "-h", "-t", "PENDING,RUNNING,SUSPENDED", "-o", "%i|%u|%k"])


#: the comment's last word on a notebook run's job (servers' jobs carry none)
RUN_MARK = "kind=run"


def job_comment(hub_id: str, backend: str, run: bool = False) -> str:
    """``gridspawner hub=ID backend=NAME`` (+ `` kind=run`` for a notebook run's job: the
    runs service writes its own hub id, so a hub's look never takes a run for a server)."""
    return f"gridspawner hub={hub_id} backend={backend}" + (f" {RUN_MARK}" if run else "")


def ours(text: str, hub_id: str, backend: str) -> list[tuple[int, str]]:
    """(job id, account) of the jobs in ``ORPHAN_SQUEUE``'s output that carry our comment
    (a server's or a run's)."""
    want = (job_comment(hub_id, backend), job_comment(hub_id, backend, run=True))
    out = []
    for line in text.splitlines():
        job, _, rest = line.strip().partition("|")
        account, _, comment = rest.partition("|")
        if job.isdigit() and comment in want and account:
            out.append((int(job), account))
    return out


class OrphanJobs:
    """What one Slurm backend knows about jobs that may be orphans (see the module)."""

    def __init__(self) -> None:
        self.in_flight: set[int] = set()  # submitted by a launch still running in this process
        self._first_seen: dict[int, float] = {}  # orphan candidate -> time.monotonic() first seen

    async def reconcile(self, backend: Any, known: Callable[[], Iterable[dict]], grace: float) -> Reconciled:
        found = Reconciled(backend=backend.name)
        if not backend.hub_id:
            return found
        found.looked_at.append(f"jobs of {backend.name}")
        try:
            status, out, err = await backend.ssh.login_run(backend.account_for(None), ORPHAN_SQUEUE, "squeue")
        except BackendError as e:
            found.errors.append(f"{backend.name}: {e}")
            return found
        if status != 0:
            found.errors.append(f"{backend.name}: squeue failed: {err.strip()[:200]}")
            return found
        jobs = ours(out, backend.hub_id, backend.name)
        used = {int(s["job_id"]) for s in known() if isinstance(s, dict) and isinstance(s.get("job_id"), int)}
        now = time.monotonic()
        candidates = {j: a for j, a in jobs if j not in used and j not in self.in_flight}
        self._first_seen = {j: self._first_seen.get(j, now) for j in candidates}
        for job, account in candidates.items():
            age = now - self._first_seen[job]
            if age < grace:
                found.kept.append(f"job {job} of {account}: no server uses it (for {age:.0f} of {grace:g} s)")
                continue
            await backend.cancel_orphan(account, job)
            self._first_seen.pop(job, None)
            found.reclaimed.append(f"job {job} of {account}: cancelled, no server of this hub uses it")
        return found
