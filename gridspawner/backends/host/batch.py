"""Batch jobs (notebook runs) on hosts: `HostBatchMixin`, mixed into `HostBackend`.

A job gets what a server gets — the same placement and GPU ledger claim (`_place_and_claim`),
session directory, image / prefix / runtime (`_prepare`), data mounts, stop ladder and
clean-up — through the same code; only the script that starts it differs
(`batch_scripts`). Its outputs and the log's tail come back over the backend's own
transport, as the stdout of one more script (`batch_scripts.collect_script`, base64): the
same SSH connection (or local shell) every other step uses, so nothing else (SFTP, a shared
file system, a port) has to be open, and it is bounded by ``command_timeout`` like every step.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import TYPE_CHECKING

from ...gpu import describe
from ..base import BATCH_LOG_TAIL, BackendError, BatchJob, BatchResult, Launch, LaunchContext
from . import batch_scripts, scripts
from .mount_reports import describe_mount, spec_of
from .launch_env import data_dir_name, launch_spec, server_environment
from .saved_state import claims_of
from .settings import HostImage
from .start_answers import started
from .transport import RunResult

if TYPE_CHECKING:
    from ...request import LaunchRequest


class HostBatchMixin:
    """``start_batch`` / ``poll_batch`` / ``finish_batch`` for `HostBackend`."""

    runs_batch = True

    async def start_batch(self, ctx: LaunchContext, request: LaunchRequest, job: BatchJob) -> Launch:
        with self._launching(ctx.slug):  # in flight: never reclaimed as an orphan meanwhile
            await self._wait_reclaim(ctx.slug)
            return await self._start_batch(ctx, request, job)

    async def _start_batch(self, ctx: LaunchContext, request: LaunchRequest, job: BatchJob) -> Launch:
        s = self.settings
        image = request.image_settings or HostImage()
        slug, entry, placement, session_root = await self._place_session(ctx, request)
        login, claims = placement.login, placement.claims
        session_dir = session_root.rstrip("/") + "/" + slug
        try:
            env, _ = server_environment(ctx.env, s.env, image.env, placement, session_dir)
            spec = launch_spec(s, ctx, image, placement, session_root=session_root, slug=slug, entry=entry,
                               env=env, hub=self.hub_id, backend=self.name)
            # the job's argv is the command (an image's cmd is for servers), run from the work
            # directory also inside a container; the kind wraps it in its runtime as a server's
            spec = dataclasses.replace(spec, cmd=batch_scripts.in_work_dir(session_dir, job.argv))
            spec, extra_state = await self._prepare(ctx, placement, request, spec)
            described = [describe_mount(m, spec_of(request, m.index), data_dir_name(ctx)) for m in spec.mounts]
            for m, text in zip(spec.mounts, described):
                ctx.progress(f"{'copying' if m.mode == 'copy' else 'mounting'} data: {text}")
            try:
                script = batch_scripts.batch_script(spec, job.files, job.env, data_dir_name(ctx))
            except ValueError as e:
                raise BackendError(f"cannot start the job on {login.host}: {e}") from None
            timeout = s.command_timeout + s.flush_timeout + (s.mount_timeout if spec.mounts else 0)
            result = await self._run(login, script, "starting the job", timeout)
            pid = started(result, spec, described, login.host).pid
        except BaseException:
            cleanup = asyncio.ensure_future(self._cleanup(login, session_dir, None, claims))
            try:
                await asyncio.shield(cleanup)
            except BaseException:
                pass
            raise
        state = {
            "v": 1, "batch": True, "host": login.host, "account": login.account, "session_dir": session_dir,
            "socket": "", "pid": pid, "relay_port": 0, "relay_host": "",
            "gpus": [g.to_dict() for g in placement.gpus], "ledger_dir": s.ledger_dir,
            "ledger_claims": list(claims), "outputs": list(job.outputs), **extra_state,
        }
        self.log.info("%s: job %s started on %s as pid %d (%s)", ctx.user, job.run_id, login.host, pid,
                      describe(placement.gpus))
        return Launch(url="", state=state, gpus=tuple(placement.gpus), description=f"{login.host}, {describe(placement.gpus)}")

    async def _end_batch_tree(self, state: dict) -> None:
        """Before a stop of a batch job: its process tree goes (nothing for a server)."""
        if state.get("batch") and isinstance(state.get("pid"), int):
            await self._run(self.login_of(state), batch_scripts.kill_tree_script(state["session_dir"], state["pid"]),
                            "stopping the job's processes")

    async def poll_batch(self, launch: Launch) -> int | None:
        st = launch.state
        result: RunResult = await self._run(self.login_of(st), batch_scripts.batch_poll_script(st["session_dir"], int(st["pid"])),
                                            "checking the job")
        if scripts.parse_marker(result.stdout, "running") is not None:
            return None
        value = scripts.parse_marker(result.stdout, "ended") or ""
        return int(value) if value.isdigit() else -1

    async def finish_batch(self, launch: Launch) -> BatchResult:
        s, st = self.settings, launch.state
        login = self.login_of(st)
        outputs = [o for o in st.get("outputs") or () if isinstance(o, str)]
        try:
            script = batch_scripts.collect_script(st["session_dir"], outputs, BATCH_LOG_TAIL)
        except ValueError as e:
            raise BackendError(f"cannot collect the job's outputs: {e}") from None
        # bringing a large notebook back may take longer than one command
        result = await self._run(login, script, "collecting the job's outputs", 4 * s.command_timeout)
        exit_code, files, log, too_big = batch_scripts.parse_collect(result.stdout)
        for line in too_big:
            log += f"\n[gridspawner: output {line} bytes is larger than {batch_scripts.MAX_OUTPUT} and was not brought back]"
        # then what a stop does: the process group (if any is left), data mounts, session, GPU claims
        stop = scripts.stop_script(st["session_dir"], st.get("pid"), ledger_dir=st.get("ledger_dir"),
                                   ledger_claims=claims_of(st), kill_timeout=s.kill_timeout, now=True,
                                   flush_wait=s.flush_timeout)
        done = await self._run(login, stop, "cleaning up the job", s.kill_timeout + s.flush_timeout + s.command_timeout)
        self._report_mounts_left(st["host"], st["session_dir"], done)
        await self._server_gone(st["session_dir"])
        return BatchResult(exit_code=exit_code, files=files, log_tail=log[-BATCH_LOG_TAIL:])
