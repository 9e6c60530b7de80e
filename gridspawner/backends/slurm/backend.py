"""`SlurmBackend`: Jupyter servers as Slurm batch jobs, submitted and reached through a login node.

What a careful user of a cluster does by hand, done by the hub (docs/admin/slurm-backend.md):

1. SSH to the login node as the user's account (pooled asyncssh, host keys verified,
   optional jump host: the SSH backend's `SSHPool`/`SSHTransport`) and ``sbatch`` a batch
   script sent on stdin, every value quoted; the script holds no secret.
2. Wait in the queue, telling the user Slurm's pending reason and estimated start (from the
   cluster's `JobBoard`: one squeue per round for all jobs); a reason that means the job can
   never run fails the launch at once, and so does waiting longer than ``queue_wait``
   (the job is cancelled).
3. Once the job runs: SSH to its node through the login node, deliver the server's
   environment (API token included) into a 0600 file in the job's 0700 session directory,
   wait for the server's unix socket, and relay a port on the hub to it (a
   direct-streamlocal channel per connection: the ``ssh -L`` through the gate, healed on
   reconnects). The hub API reaches the server back through a reverse forward on the node's
   loopback (or ``hub_api_url``).

Poll = the board's view of the job; stop = ``scancel``; the saved state (job id, node,
socket, relay port) lets a restarted hub re-attach. Notebook runs: `batch.SlurmBatchMixin`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit

from ...gpu import GPU, GPUProbeError, describe, parse_nvidia_smi
from ...server_env import PREFIX as FACTS_PREFIX, placement_env
from ..base import Backend, BackendError, Capacity, Launch, LaunchContext, NoCapacity, Reconciled
from ..host.forwards import SessionForwards
from ..host.scripts import SOCKET_NAME, check_slug, env_name_ok
from ..host.settings import MAX_SLUG, HostImage, parse_host_image, user_dir_name
from ..host.ssh_transport import SSHTransport
from ..host.transport import TransportError
from ..ssh.runtimes import combined_prefix
from ..ssh.settings import ACCOUNT
from . import jobs
from .batch import SlurmBatchMixin
from .board import BOARDS, BoardError
from .capacity import QueueCapacity, node_capacity
from .connections import ClusterSSH
from .jobs import NEVER_RUNS, JobInfo, RequestProblem
from .orphans import OrphanJobs, job_comment
from .settings import SESSION_ROOT_ROOM, SlurmSettings, parse_slurm_settings

STATE_VERSION = 1
_STATE_KEYS = ("job_id", "account", "node", "node_address", "session_dir", "socket", "relay_port")
#: URLs on the hub's API a server calls; pointed at the reverse forward (or ``hub_api_url``)
_HUB_URL_ENV = ("JUPYTERHUB_API_URL", "JUPYTERHUB_ACTIVITY_URL")


class SlurmBackend(SlurmBatchMixin, Backend):
    """Servers as Slurm jobs reached through a login node (docs/admin/slurm-backend.md)."""

    kind = "slurm"
    settings: SlurmSettings

    def __init__(self, name: str, settings: Any, *, tolerance: float = 0.07):
        super().__init__(name, settings, tolerance=tolerance)
        self.ssh = ClusterSSH(settings)
        # one board per cluster and squeue account, shared with other backends of the cluster
        self._board_key = (tuple((h.address, h.port, h.jump) for h in settings.login_hosts),
                           self.ssh.account_for(None))
        self.board = BOARDS.join(self._board_key, self._board_run)
        self._forwards = SessionForwards()
        self._addresses: dict[str, str] = {}  # node name -> NodeAddr
        self._retries: set[asyncio.Task] = set()  # cancels that a login node did not take yet
        self._orphans = OrphanJobs()

    # ------------------------------------------------------------------ config
    @classmethod
    def parse_settings(cls, name: str, raw: dict, key: str) -> SlurmSettings:
        return parse_slurm_settings(raw, key)

    @classmethod
    def parse_image(cls, image: str, raw: dict, key: str) -> HostImage:
        """As on hosts: ``cmd``, ``prefix`` (e.g. ``module load cuda``, a conda activation,
        run in the job before the server), ``env``. (Container images: not yet.)"""
        return parse_host_image(image, raw, key)

    @classmethod
    def gpu_type_choices(cls, settings: SlurmSettings) -> dict[str, str]:
        return {t.key: t.display_name for t in settings.gpu_types}

    @classmethod
    def gpu_type_memory(cls, settings: SlurmSettings) -> dict[str, int]:
        return {t.key: t.memory for t in settings.gpu_types if t.memory}

    @classmethod
    def mounts_problem(cls, settings: SlurmSettings) -> str | None:
        return "data mounts are not available on Slurm backends yet; remove the mounts"

    @classmethod
    def resource_limits(cls, settings: SlurmSettings) -> str:
        """Slurm allocates the CPUs and memory asked for (enforced where the cluster's
        cgroup plugin constrains them, as production clusters do)."""
        return "all"

    # ------------------------------------------------------------------ accounts and connections
    @property
    def pool(self):
        return self.ssh.pool

    @property
    def commands(self) -> dict[str, int]:
        """Commands run on the cluster, by what they were for (tests and benches count them)."""
        return self.ssh.commands

    @property
    def handshakes(self) -> int:
        return self.ssh.pool.handshakes

    def account_for(self, user: str | None) -> str:
        return self.ssh.account_for(user)

    async def _board_run(self, command: str) -> tuple[int, str, str]:
        try:
            return await self.ssh.login_run(self.account_for(None), command, "squeue" if command.startswith("squeue") else "sacct")
        except BackendError as e:
            raise BoardError(str(e)) from None

    # ------------------------------------------------------------------ launch
    def start_budget(self, request: Any) -> float:
        """Connecting, submitting, ``queue_wait`` in the queue, ``env_wait`` for the job's
        directory, ``start_wait`` for the socket, and a few commands."""
        s = self.settings
        return 2 * s.connect_timeout + s.queue_wait + s.env_wait + s.start_wait + 4 * s.command_timeout

    def _checked_slug(self, ctx: LaunchContext, request: Any) -> str:
        """The session name of a server or run, checked; a request with mounts refused."""
        try:
            slug = check_slug(ctx.slug)
        except ValueError as e:
            raise BackendError(str(e)) from None
        if len(slug) > MAX_SLUG:
            raise BackendError(f"session name {slug!r} is longer than {MAX_SLUG} characters")
        if getattr(request, "mounts", ()):
            raise BackendError(self.mounts_problem(self.settings) or "")
        return slug

    async def launch(self, ctx: LaunchContext, request: Any) -> Launch:
        s = self.settings
        slug = self._checked_slug(ctx, request)
        account = self.account_for(ctx.user)
        image: HostImage = getattr(request, "image_settings", None) or HostImage()
        try:
            options = jobs.sbatch_options(s, request, slug)
        except RequestProblem as e:
            raise BackendError(str(e)) from None
        if self.hub_id:  # crash recovery finds the jobs of this hub by it (orphans.py)
            options.append(f"--comment={job_comment(self.hub_id, self.name)}")
        root = s.session_root.replace("{account}", account)
        if len(root.encode()) > SESSION_ROOT_ROOM:
            raise BackendError(f"the session root {root} is too long for a unix socket path; ask the admin for a "
                               "shorter session_root")
        notebook_dir = s.notebook_dir.format(username=user_dir_name(ctx.user))
        script = jobs.job_script(s, session_root=root, slug=slug, cmd=tuple(image.cmd or ctx.cmd) + tuple(ctx.args),
                                 prefix=combined_prefix(image.prefix), notebook_dir=notebook_dir)
        job_id = await self._submit(ctx, request, account, jobs.submit_script(options, script, s.job_output),
                                    options, f"server {ctx.server_name!r}")
        sdir = jobs.session_dir(root, slug, job_id)
        async with self._starting(job_id, lambda: self._cancel(account, job_id, sdir)):
            info = await self._wait_running(ctx, job_id)
            return await self._attach_new(ctx, request, account, job_id, info, sdir, image)

    async def _submit(self, ctx: LaunchContext, request: Any, account: str, script: str, options: list[str],
                      what: str, timeout: float | None = None) -> int:
        """sbatch ``script`` on a login node: the job id, in flight (the look for orphans
        leaves it alone) until the caller discards it; Slurm's refusal as a BackendError."""
        s = self.settings
        place = s.placement_for(getattr(request, "profile", None))
        ctx.progress(f"submitting a job to Slurm through {s.login_hosts[0].name}"
                     + (f" (partition {place.partition})" if place.partition else ""))
        status, out, err = await self.ssh.login_run(account, script, "sbatch", timeout)
        if status != 0:
            message = (err.strip() or out.strip() or f"exit status {status}").replace("sbatch: error: ", "")
            raise BackendError(f"Slurm refused the job: {message}")
        try:
            job_id = jobs.parse_job_id(out)
        except ValueError as e:
            raise BackendError(str(e)) from None
        self._orphans.in_flight.add(job_id)
        self.log.info("%s: %s submitted as job %d (%s)", ctx.user, what, job_id, " ".join(options))
        ctx.progress(f"job {job_id} submitted")
        return job_id

    @contextlib.asynccontextmanager
    async def _starting(self, job_id: int, clean_up: Callable[[], Awaitable[None]]) -> AsyncIterator[None]:
        """While a submitted job starts: it stays in flight (the look for orphans leaves it
        alone); on any failure or cancel ``clean_up()`` runs to its end (shielded) first."""
        try:
            yield
        except BaseException:
            cancel = asyncio.ensure_future(clean_up())
            with contextlib.suppress(BaseException):
                await asyncio.shield(cancel)
            raise
        finally:
            self._orphans.in_flight.discard(job_id)

    async def _wait_running(self, ctx: LaunchContext, job_id: int, batch: bool = False) -> JobInfo:
        """Until the job runs (or, for a ``batch`` job, ran: a short one may end between two
        looks): progress with Slurm's pending reason and estimated start when they change;
        fail at once for a reason that never clears, after ``queue_wait``."""
        s = self.settings
        deadline = time.monotonic() + s.queue_wait
        said = ""
        # on an idle cluster a job starts within a second: look again soon, then less often
        # (up to pending_interval), so a long queue costs few rounds
        interval = min(0.1, s.pending_interval)
        while True:
            try:
                info = await self.board.get(job_id, interval)
            except BoardError as e:
                info = None
                self.log.warning("%s: job %d: %s", ctx.user, job_id, e)
            if info is not None and info.running:
                return info
            if info is not None and info.pending:
                text = f"job {job_id} {info.pending_text()}"
                if text != said:
                    ctx.progress(text)
                    said = text
                if info.reason in NEVER_RUNS:
                    raise BackendError(f"Slurm cannot run job {job_id} as asked: {info.reason}")
            elif info is not None and info.ended and batch:
                return info
            elif info is not None and info.ended:
                raise BackendError(f"job {job_id} {info.ended_text()} before the server started"
                                   f"{await self._output_tail(self.account_for(ctx.user), job_id)}")
            if time.monotonic() >= deadline:
                raise NoCapacity(f"job {job_id} waited {s.queue_wait:g} s in the queue"
                                 + (f" ({info.pending_text()})" if info is not None and info.pending else "")
                                 + "; it was cancelled. Try fewer GPUs, another partition, or later")
            await asyncio.sleep(min(interval, max(0.05, deadline - time.monotonic())))
            interval = min(s.pending_interval, interval * 2)

    async def _output_tail(self, account: str, job_id: int, lines: int = 20) -> str:
        """"; the end of its output (FILE):\n…" — the job's output file on the login node
        (the user's own file), for a launch that failed; "" when it cannot be read."""
        path = self.settings.job_output.replace("%j", str(job_id))
        if "%" in path:
            return ""
        try:
            status, out, _ = await self.ssh.login_run(account, jobs.tail_command(path, lines), "reading the job output")
        except BackendError:
            return ""
        return f"; the end of its output ({path}):\n{out.rstrip()}" if status == 0 and out.strip() else f"; see {path}"

    async def _node_address(self, account: str, node: str) -> str:
        address = self._addresses.get(node)
        if address:
            return address
        status, out, err = await self.ssh.login_run(account, jobs.node_address_command(node), "sinfo")
        address = jobs.parse_node_address(out, node) if status == 0 else None
        if not address:
            raise BackendError(f"cannot tell the address of node {node!r}: {err.strip() or 'sinfo did not say'}")
        self._addresses[node] = address
        return address

    async def _attach_new(self, ctx: LaunchContext, request: Any, account: str, job_id: int, info: JobInfo,
                          sdir: str, image: HostImage) -> Launch:
        s = self.settings
        node = info.nodes
        if not node or "[" in node or "," in node:
            raise BackendError(f"job {job_id} runs on {info.nodes!r}: a server job must run on one node")
        ctx.progress(f"job {job_id} running on {node}")
        address = await self._node_address(account, node)
        transport = self.ssh.node_transport(account, node, address)
        out = await self.ssh.node_run(transport, jobs.wait_dir_script(sdir, s.env_wait), "waiting for the job's directory",
                                      s.env_wait + s.command_timeout)
        csv = jobs.marker_text(out, "gpus")
        if csv is None:
            raise BackendError(f"job {job_id} did not make its session directory on {node}"
                               f"{await self._output_tail(account, job_id)}")
        try:
            gpus = tuple(parse_nvidia_smi(csv))
        except GPUProbeError:
            gpus = ()
        env, extra = await self._server_env(ctx, image, transport, node, gpus, sdir)
        out = await self.ssh.node_run(transport, jobs.deliver_env_script(sdir, env), "delivering the environment",
                                      s.command_timeout)
        if "@@delivered" not in out:
            raise BackendError(f"could not deliver the server's environment to job {job_id} on {node}")
        ctx.progress(f"starting the server on {node} ({describe(gpus)})")
        out = await self.ssh.node_run(transport, jobs.wait_ready_script(sdir, s.start_wait), "waiting for the server",
                                      s.start_wait + s.command_timeout)
        if "@@gone" in out:
            raise BackendError(f"the server exited during start-up{await self._output_tail(account, job_id)}")
        if "@@ready" not in out:
            raise BackendError(f"the server did not listen within {s.start_wait:g} s (start_wait)")
        socket = f"{sdir}/{SOCKET_NAME}"
        try:
            forward = await transport.forward(socket, s.relay_host)
        except (OSError, TransportError) as e:
            raise BackendError(f"could not forward a port to the server on {node}: {e}") from None
        await self._forwards.keep(sdir, forward)
        state = {
            "v": STATE_VERSION, "job_id": job_id, "account": account, "node": node, "node_address": address,
            "session_dir": sdir, "socket": socket, "relay_host": s.relay_host, "relay_port": forward.port,
            "gpus": [g.to_dict() for g in gpus], **extra,
        }
        ctx.progress("server is listening")
        self.log.info("%s: server %r runs in job %d on %s (%s)", ctx.user, ctx.server_name, job_id, node, describe(gpus))
        return Launch(url=self._url(forward.port), state=state, gpus=gpus, description=f"job {job_id} on {node}, {describe(gpus)}")

    async def _server_env(self, ctx: LaunchContext, image: HostImage, transport: SSHTransport, node: str,
                          gpus: tuple[GPU, ...], sdir: str) -> tuple[dict[str, str], dict]:
        """The server's environment (the hub's, the admin's, the image's, then JupyterHub's
        and gridspawner's own; never CUDA_VISIBLE_DEVICES: Slurm sets it) and the hub API
        pointed at a reverse forward on the node's loopback (or ``hub_api_url``)."""
        env: dict[str, str] = {k: str(v) for k, v in ctx.env.items() if env_name_ok(k)}
        env.update(self.settings.env)
        env.update(image.env)
        env.update({k: str(v) for k, v in ctx.env.items() if k.startswith(("JUPYTERHUB_", FACTS_PREFIX)) and env_name_ok(k)})
        env.update(placement_env(node, gpus))
        for name in ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES"):
            env.pop(name, None)
        extra: dict[str, Any] = {}
        api = env.get("JUPYTERHUB_API_URL")
        if not api:
            return env, extra
        old = urlsplit(api)
        if self.settings.hub_api_url:
            base = self.settings.hub_api_url
            old_api = api.rstrip("/")
            for name in _HUB_URL_ENV:
                if name in env and env[name].startswith(old_api):
                    env[name] = base + env[name][len(old_api):]
            return env, extra
        if not old.hostname:
            raise BackendError(f"cannot tell the hub's address from JUPYTERHUB_API_URL {api!r}")
        dest = (old.hostname, old.port or (443 if old.scheme == "https" else 80))
        try:
            port = await transport.reverse_forward(*dest, holder=sdir)
        except TransportError as e:
            raise BackendError(str(e)) from None
        extra.update(api_port=port, api_dest=list(dest))
        for name in _HUB_URL_ENV:
            u = urlsplit(env.get(name, ""))
            if name in env and (u.scheme, u.netloc) == (old.scheme, old.netloc):
                env[name] = u._replace(netloc=f"127.0.0.1:{port}").geturl()
        ctx.progress(f"hub API reachable on {node} through the SSH tunnel (port {port})")
        return env, extra

    def _url(self, port: int) -> str:
        host = self.settings.relay_host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    # ------------------------------------------------------------------ running servers
    def _check_state(self, state: Any) -> dict:
        if not isinstance(state, dict) or any(k not in state for k in _STATE_KEYS):
            raise BackendError(f"saved server state is incomplete (needs {', '.join(_STATE_KEYS)})")
        if isinstance(state["job_id"], bool) or not isinstance(state["job_id"], int):
            raise BackendError("saved server state has no valid job id")
        if not isinstance(state["account"], str) or not ACCOUNT.fullmatch(state["account"]):
            raise BackendError("saved server state has no valid account")
        # from the hub's database: an address becomes an SSH destination, paths a channel's target
        if jobs.parse_node_address(f"{state['node']}|{state['node_address']}", str(state["node"])) is None:
            raise BackendError("saved server state has no valid node address")
        if not all(isinstance(state[k], str) and state[k].startswith("/") for k in ("session_dir", "socket")):
            raise BackendError("saved server state has no valid session directory")
        return state

    async def restore(self, state: dict) -> Launch:
        """Re-attach after a hub restart: the relay on the saved port (made even while the
        node cannot be reached: it works once it can), the hub API forward on the saved port."""
        st = self._check_state(state)
        self.board.track(st["job_id"])
        transport = self.ssh.node_transport(st["account"], st["node"], st["node_address"])
        forward = await self._forwards.reopen(transport, st["session_dir"], st["socket"], self.settings.relay_host,
                                              int(st["relay_port"] or 0), f"of job {st['job_id']}")
        if st.get("api_port") and st.get("api_dest"):
            await transport.keep_reverse(int(st["api_port"]), str(st["api_dest"][0]), int(st["api_dest"][1]),
                                         holder=st["session_dir"])
        st = dict(st, relay_port=forward.port, relay_host=self.settings.relay_host)
        gpus = tuple(GPU.from_dict(g) for g in st.get("gpus") or ())
        return Launch(url=self._url(forward.port), state=st, gpus=gpus,
                      description=f"job {st['job_id']} on {st['node']}, {describe(gpus)}")

    async def poll(self, launch: Launch) -> int | None:
        """None while the job runs (from the board: one squeue per round for all servers).
        A job Slurm ended is logged with its reason (time limit, preemption, node failure…);
        a board that cannot ask Slurm right now says nothing ends."""
        st = launch.state
        job_id = int(st["job_id"])
        try:
            info = await self.board.get(job_id, self.settings.poll_interval)
        except BoardError as e:
            self.log.warning("poll of job %d: %s", job_id, e)
            return None
        if info is not None and info.running:
            return None
        why = info.ended_text() if info is not None and info.ended else (
            "requeued by Slurm (its server is gone)" if info is not None else "no longer known to Slurm")
        self.log.warning("job %d of %s (%s) ended: %s", job_id, st["account"], st["node"], why)
        st["ended"] = why
        if info is not None and info.pending:
            await self._cancel(st["account"], job_id, st["session_dir"])
        else:
            self.board.forget(job_id)
            await self._forwards.drop(st["session_dir"])
            self._release(st["session_dir"])
        return 1

    async def stop(self, launch: Launch, now: bool = False) -> None:
        """``scancel`` (Slurm sends TERM, which the job forwards to the server), then wait up
        to ``command_timeout`` for the job to end (past COMPLETING: its GPUs are free again)."""
        st = launch.state
        await self._cancel(st["account"], int(st["job_id"]), st["session_dir"], wait=True)

    async def _cancel(self, account: str, job_id: int, session_dir: str, wait: bool = False) -> None:
        try:
            try:
                status, _, err = await self.ssh.login_run(account, jobs.scancel_command(job_id), "scancel")
            except BackendError as e:
                # the job would keep its node (and GPUs) until its time limit: try again later
                self.log.error("could not cancel job %d of %s now (%s); trying again every %g s", job_id, account, e,
                               self.settings.poll_interval)
                self._retry_cancel(account, job_id)
                return
            if status != 0 and "already completing or completed" not in err and "Invalid job id" not in err:
                self.log.error("scancel %d failed: %s", job_id, err.strip())
            if wait:
                deadline = time.monotonic() + self.settings.command_timeout
                while time.monotonic() < deadline:
                    info = await self.board.get(job_id, 0.2)
                    if info is None or (info.ended and info.state not in jobs.ACTIVE):  # COMPLETING: not yet
                        break
                    await asyncio.sleep(0.2)
        finally:
            self.board.forget(job_id)
            await self._forwards.drop(session_dir)
            self._release(session_dir)

    def _retry_cancel(self, account: str, job_id: int) -> None:
        """Cancel ``job_id`` in the background, every ``poll_interval`` for up to an hour,
        until a login node takes the scancel."""
        async def retry() -> None:
            deadline = time.monotonic() + 3600
            while time.monotonic() < deadline:
                await asyncio.sleep(self.settings.poll_interval)
                try:
                    await self.ssh.login_run(account, jobs.scancel_command(job_id), "scancel")
                except BackendError:
                    continue
                self.log.info("job %d of %s cancelled (on a later try)", job_id, account)
                return
            self.log.error("gave up cancelling job %d of %s: cancel it by hand (scancel %d)", job_id, account, job_id)

        task = asyncio.ensure_future(retry())
        self._retries.add(task)
        task.add_done_callback(self._retries.discard)

    async def reconcile(self, known, grace: float, *, probe_max_age: float = 0.0) -> Reconciled:
        """Cancel this hub's jobs that no server uses (a hub killed mid-launch): see orphans.py."""
        return await self._orphans.reconcile(self, known, grace)

    async def cancel_orphan(self, account: str, job_id: int) -> None:
        self.log.warning("cancelling job %d of %s: no server of this hub uses it", job_id, account)
        await self._cancel(account, job_id, "")

    def _release(self, session_dir: str) -> None:
        self.ssh.release(session_dir)

    # ------------------------------------------------------------------ capacity
    async def probe_capacity(self) -> Capacity:
        """Free GPUs per node, type and partition from one ``sinfo`` (as the probe account);
        what fits is judged against all GPUs of usable nodes (`QueueCapacity`: jobs queue)."""
        try:
            status, out, err = await self.ssh.login_run(self.account_for(None), jobs.SINFO_CAPACITY, "sinfo")
        except BackendError as e:
            return Capacity(backend=self.name, error=str(e), updated=time.time())
        if status != 0:
            return Capacity(backend=self.name, error=f"sinfo failed: {err.strip()[:200]}", updated=time.time())
        return QueueCapacity(backend=self.name, hosts=tuple(node_capacity(n, self.settings.gpu_types)
                                                                   for n in jobs.parse_sinfo_capacity(out)),
                             updated=time.time())

    async def close(self) -> None:
        BOARDS.leave(self._board_key, self._board_run)
        for task in list(self._retries):
            task.cancel()
        await self._forwards.close()
        await self.ssh.close()


__all__ = ["SlurmBackend"]
