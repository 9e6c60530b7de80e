"""Notebook runs on a Slurm cluster: `SlurmBatchMixin`, mixed into `SlurmBackend`.

A run is a batch job with a server's sbatch options (partition / QoS / account of the
profile, GPUs, CPUs, memory, ``--no-requeue``, the admin's extras) and the profile's maximum
run time as its time limit, so Slurm itself ends it. Its files travel in the same login-node
command that submits it, into a 0700 run directory on the shared filesystem
(`batch_jobs`); the start waits, like a server's, until Slurm runs the job (the pending
reason is the start's progress; ``queue_wait`` bounds it, then the job is cancelled and the
run waits in the runs queue); polls come from the cluster's board (one squeue per round for
every server and run); the outputs come back over the login node's SSH connection, then
the run directory is removed. Cancel = `SlurmBackend.stop` (scancel, wait past COMPLETING)
+ `finish_batch`, which keeps what the notebook wrote so far. See docs/admin/slurm-backend.md.
"""

from __future__ import annotations

import contextlib
import secrets
from typing import TYPE_CHECKING, Any

from ...gpu import GPUProbeError, describe, parse_nvidia_smi
from ..base import BATCH_LOG_TAIL, BackendError, BatchJob, BatchResult, Launch, LaunchContext
from ..host.batch_scripts import MAX_OUTPUT, collect_script, parse_collect
from ..host.settings import HostImage
from ..ssh.runtimes import combined_prefix
from . import batch_jobs, jobs
from .board import BoardError
from .jobs import RequestProblem
from .orphans import job_comment

if TYPE_CHECKING:
    from ...request import LaunchRequest

#: what a batch launch state holds (besides the outputs and GPUs)
_BATCH_KEYS = ("job_id", "account", "session_dir")


class SlurmBatchMixin:
    """``start_batch`` / ``poll_batch`` / ``finish_batch`` for `SlurmBackend`."""

    runs_batch = True

    async def start_batch(self, ctx: LaunchContext, request: LaunchRequest, job: BatchJob) -> Launch:
        s = self.settings
        slug = self._checked_slug(ctx, request)
        account = self.account_for(ctx.user)
        image: HostImage = getattr(request, "image_settings", None) or HostImage()
        rdir = batch_jobs.run_dir(s.run_dir, slug, secrets.token_hex(4))
        try:
            options = batch_jobs.batch_options(jobs.sbatch_options(s, request, slug), rdir)
        except RequestProblem as e:
            raise BackendError(str(e)) from None
        if self.hub_id:  # the runs executor's look for orphans finds it by it (orphans.py)
            options.append(f"--comment={job_comment(self.hub_id, self.name, run=True)}")
        try:
            script = batch_jobs.submit_batch_script(
                options, batch_jobs.job_script(s, rdir, job.argv, combined_prefix(image.prefix)), rdir, job.files,
                {**dict(s.env), **dict(image.env), **job.env})
        except ValueError as e:
            raise BackendError(f"cannot submit the run: {e}") from None
        # the notebook travels in this command: as long as bringing outputs back may take
        job_id = await self._submit(ctx, request, account, script, options, f"run {job.run_id}", 4 * s.command_timeout)
        async with self._starting(job_id, lambda: self._drop_batch(account, job_id, rdir)):
            info = await self._wait_running(ctx, job_id, batch=True)
            wait = 0 if info.ended else s.env_wait
            out = (await self.ssh.login_run(account, batch_jobs.gpus_script(rdir, wait), "reading the job's GPUs",
                                            wait + s.command_timeout))[1]
        csv = jobs.marker_text(out, "gpus")
        try:
            gpus = tuple(parse_nvidia_smi(csv)) if csv else ()
        except GPUProbeError:
            gpus = ()
        node = info.nodes
        state = {"v": 1, "batch": True, "job_id": job_id, "account": account, "node": node, "session_dir": rdir,
                 "outputs": list(job.outputs), "gpus": [g.to_dict() for g in gpus]}
        ctx.progress(f"job {job_id} running on {node} ({describe(gpus)})")
        self.log.info("%s: run %s runs in job %d on %s (%s)", ctx.user, job.run_id, job_id, node, describe(gpus))
        return Launch(url="", state=state, gpus=gpus, description=f"job {job_id} on {node}, {describe(gpus)}")

    async def _drop_batch(self, account: str, job_id: int, rdir: str) -> None:
        """A start that failed: cancel the job and remove its run directory."""
        await self._cancel(account, job_id, rdir, wait=True)
        with contextlib.suppress(BackendError):
            await self.ssh.login_run(account, batch_jobs.remove_script(rdir), "removing the run directory")

    def _batch_state(self, launch: Launch) -> dict:
        st = launch.state
        if not isinstance(st, dict) or any(k not in st for k in _BATCH_KEYS) or not isinstance(st["job_id"], int):
            raise BackendError("saved run state is incomplete (needs job_id, account, session_dir)")
        return st

    async def poll_batch(self, launch: Launch) -> int | None:
        """None while the job is pending, runs or is COMPLETING (from the board: one squeue
        per round for every server and run of the cluster), else its exit code as Slurm
        tells it (`batch_jobs.exit_code`); the job script's own record is read by
        `finish_batch`. A board that cannot ask Slurm now raises (the run keeps running)."""
        st = self._batch_state(launch)
        job_id = st["job_id"]
        try:
            info = await self.board.get(job_id, self.settings.poll_interval)
        except BoardError as e:
            raise BackendError(f"job {job_id}: {e}") from None
        if batch_jobs.still_running(info):
            return None
        st["slurm_state"] = info.state if info is not None else "UNKNOWN"
        st["ended"] = info.ended_text() if info is not None else "no longer known to Slurm"
        self.board.forget(job_id)
        return batch_jobs.exit_code(info)

    async def finish_batch(self, launch: Launch) -> BatchResult:
        """Bring back the outputs, the job's exit status and the log's tail from the run
        directory (over the login node's connection), then remove the directory. A job Slurm
        ended by itself adds its reason to the log; TIMEOUT marks the result timed out."""
        s, st = self.settings, self._batch_state(launch)
        account, rdir = st["account"], st["session_dir"]
        outputs = [o for o in st.get("outputs") or () if isinstance(o, str)]
        try:
            script = collect_script(rdir, outputs, BATCH_LOG_TAIL)
        except ValueError as e:
            raise BackendError(f"cannot collect the run's outputs: {e}") from None
        status, out, err = await self.ssh.login_run(account, script, "collecting the run's outputs", 4 * s.command_timeout)
        if status != 0:
            raise BackendError(f"collecting the outputs of job {st['job_id']} failed: {err.strip()[:300]}")
        code, files, log, too_big = parse_collect(out)
        for line in too_big:
            log += f"\n[gridspawner: output {line} bytes is larger than {MAX_OUTPUT} and was not brought back]"
        state = st.get("slurm_state") or ""
        if state not in ("", "COMPLETED", "CANCELLED") and st.get("ended"):
            log += batch_jobs.ended_note(st["job_id"], st["ended"])
        await self.ssh.login_run(account, batch_jobs.remove_script(rdir), "removing the run directory")
        return BatchResult(exit_code=code, files=files, log_tail=log[-BATCH_LOG_TAIL:], timed_out=state == "TIMEOUT")

    # provided by SlurmBackend
    settings: Any
    ssh: Any
    board: Any
    hub_id: str
    name: str
    log: Any


__all__ = ["SlurmBatchMixin"]
