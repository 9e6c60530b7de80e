"""`JobBoard`: what Slurm says about every job of one cluster, from one squeue per round.

Every launch waiting in the queue and every poll of a running server asks the board, not
Slurm. The board answers from its last snapshot when that is recent enough for the caller
(``max_age``), else makes one new round for *all* the jobs it tracks: one ``squeue -j
ID,ID,…`` (plus, only for jobs squeue no longer knows — purged after Slurm's MinJobAge —
one ``sacct`` for those). Callers that ask while a round is under way wait for it instead
of starting another. So N servers polled by JupyterHub cost one squeue per round, not N.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable, Callable

from . import jobs
from .jobs import JobInfo

log = logging.getLogger("gridspawner.slurm")

#: runs one command (shell text) on the cluster's login node: (exit status, stdout, stderr)
Runner = Callable[[str], Awaitable[tuple[int, str, str]]]


class BoardError(Exception):
    """squeue could not be run (the login node did not answer, or squeue failed)."""


class JobBoard:
    def __init__(self, run: Runner):
        self._run = run
        self._tracked: set[int] = set()
        self._jobs: dict[int, JobInfo] = {}
        self._taken_at = 0.0  # monotonic time the snapshot's round started
        self._round: asyncio.Future | None = None
        #: rounds made (squeue calls), and sacct calls: tests and benches count them
        self.rounds = 0
        self.sacct_calls = 0

    def track(self, job_id: int) -> None:
        self._tracked.add(int(job_id))

    def forget(self, job_id: int) -> None:
        self._tracked.discard(int(job_id))
        self._jobs.pop(int(job_id), None)

    @property
    def tracked(self) -> frozenset[int]:
        return frozenset(self._tracked)

    async def get(self, job_id: int, max_age: float) -> JobInfo | None:
        """The job's record no older than ``max_age`` seconds (a new round when needed); None
        when neither squeue nor sacct knows it. Raises BoardError when squeue cannot run."""
        job_id = int(job_id)
        self.track(job_id)
        fresh = time.monotonic() - self._taken_at <= max_age
        if not fresh or job_id not in self._jobs:
            await self.refresh()
        return self._jobs.get(job_id)

    async def refresh(self) -> None:
        """One round for every tracked job; joins the round under way, if any."""
        if self._round is None:
            self._round = asyncio.ensure_future(self._refresh())
            self._round.add_done_callback(self._round_done)
        await asyncio.shield(self._round)

    def _round_done(self, fut: asyncio.Future) -> None:
        self._round = None
        if not fut.cancelled():
            fut.exception()  # retrieved: the callers that awaited it got it

    async def _refresh(self) -> None:
        ids = sorted(self._tracked)
        if not ids:
            return
        started = time.monotonic()
        self.rounds += 1
        status, out, err = await self._run(jobs.squeue_command(ids))
        if status != 0 and "Invalid job id" not in err:
            raise BoardError(f"squeue failed: {err.strip() or out.strip() or f'exit status {status}'}")
        found = jobs.parse_squeue(out) if status == 0 else {}
        missing = [j for j in ids if j not in found]
        if missing:
            self.sacct_calls += 1
            status, out, err = await self._run(jobs.sacct_command(missing))
            if status == 0:
                found.update({j: info for j, info in jobs.parse_sacct(out).items() if j in missing})
            else:
                log.info("sacct is not available (%s); jobs %s are gone from squeue", err.strip()[:200], missing)
        self._jobs = {j: found[j] for j in ids if j in found}
        self._taken_at = started


class SharedBoards:
    """One `JobBoard` per cluster for every backend of a hub process that asks it the same way
    (same login nodes, same squeue account): an admin may offer one cluster as several
    backends (partitions, GPU types, profiles), and a poll round still costs one squeue.

    Each backend joins with its own runner; the board uses the runner of a backend that is
    still open (a closed backend's connections are gone)."""

    def __init__(self) -> None:
        self._boards: dict[tuple, JobBoard] = {}
        self._runners: dict[tuple, list[Runner]] = {}

    def join(self, key: tuple, run: Runner) -> JobBoard:
        runners = self._runners.setdefault(key, [])
        runners.append(run)
        board = self._boards.get(key)
        if board is None:
            board = self._boards[key] = JobBoard(lambda command: runners[0](command))
        return board

    def leave(self, key: tuple, run: Runner) -> None:
        runners = self._runners.get(key, [])
        if run in runners:
            runners.remove(run)
        if not runners:
            self._runners.pop(key, None)
            self._boards.pop(key, None)


#: the boards of this process (backends are shared by all spawners of a hub)
BOARDS = SharedBoards()
