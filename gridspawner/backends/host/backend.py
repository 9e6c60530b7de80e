"""`HostBackend`: servers on hosts reached through a `Transport` (local machine or SSH).

It places GPUs (best fit, `gridspawner.gpu.place`), claims them in the on-host ledger (the
only source of truth, so a restarted hub or a second hub on the same host never hands out a
GPU twice), starts the server with a launch script, and forwards a local TCP port to the
server's unix socket. Subclasses say which hosts exist and how to reach them.
"""

from __future__ import annotations

import asyncio
import getpass
import socket
import time
from abc import abstractmethod
from typing import Any, Sequence

from ...gpu import GPU, GPUProbeError, describe, min_mib, place
from ...mounts.resolved import S3Secret
from ...server_env import PREFIX as FACTS_PREFIX, placement_env, stops_file_env
from ..base import AccessDenied, Backend, BackendError, Capacity, HostCapacity, Launch, LaunchContext, Unreachable
from . import ledger, scripts
from .inventory import Inventory, parse_probe
from .ledger import LedgerProblem
from .mount_reports import describe_mount, log_cleanup, markers, mount_failure, spec_of
from .reconcile import HostReconcileMixin
from .refusals import Refusals
from .scripts import LaunchSpec
from .settings import MAX_SLUG, HostImage, HostSettings
from .transport import Forward, HostUnreachable, LoginRefused, RunResult, Transport, TransportError

STATE_VERSION = 1
_STATE_KEYS = ("host", "session_dir", "socket", "pid", "relay_port")


class HostBackend(HostReconcileMixin, Backend):
    """The host backend, generic over its transport. ``settings`` is a `HostSettings`."""

    settings: HostSettings
    #: how often a claim that lost a race (another hub took a GPU meanwhile) is re-placed
    claim_attempts = 4
    #: the STS credentials of a live S3 mount can be replaced (`renew_credentials`)
    renews_credentials = True

    def __init__(self, name: str, settings: Any, *, tolerance: float = 0.07):
        super().__init__(name, settings, tolerance=tolerance)
        self._locks: dict[str, asyncio.Lock] = {}
        self._forwards: dict[str, Forward] = {}  # session dir -> forward
        self._init_reconcile()

    # ------------------------------------------------------------------ what subclasses provide
    @abstractmethod
    def hosts(self) -> Sequence[str]:
        """The hosts to place on, in order of preference."""

    @abstractmethod
    async def transport(self, host: str) -> Transport:
        """The (pooled) transport to ``host``; raises BackendError when it is unreachable."""

    def owner(self) -> str:
        """Who holds a ledger entry (shown to admins reading the ledger)."""
        return f"{getpass.getuser()}@{socket.gethostname()} backend {self.name}"

    # ------------------------------------------------------------------ helpers
    def _lock(self, host: str) -> asyncio.Lock:
        return self._locks.setdefault(host, asyncio.Lock())

    async def _run(self, host: str, script: str, what: str, timeout: float | None = None) -> RunResult:
        """Run a script on ``host``. Never logs the script (the launch script holds a token)."""
        timeout = self.settings.command_timeout if timeout is None else timeout
        transport = await self.transport(host)
        try:
            return await transport.run(script, timeout)
        except asyncio.TimeoutError:
            raise BackendError(f"{what} on {host} did not finish within {timeout:g} s") from None
        except HostUnreachable as e:
            raise Unreachable(f"{what} on {host} failed: {e}") from None
        except LoginRefused as e:
            raise AccessDenied(f"{what} on {host} failed: {e}") from None
        except TransportError as e:
            raise BackendError(f"{what} on {host} failed: {e}") from None

    def ledger_shared(self, host: str) -> bool:
        """Whether several accounts of this backend write ``host``'s ledger (then only a
        directory root owns is safe: see `ledger`). The hub's own machine: one account."""
        return False

    async def _probe(self, host: str, nvidia_smi: Sequence[str] | None = None) -> Inventory:
        s = self.settings
        script = scripts.probe_script(nvidia_smi or s.nvidia_smi, s.ledger_dir, shared=self.ledger_shared(host),
                                      grace=s.ledger_grace, session_root=self._session_root(None, host))
        result = await self._run(host, script, "probing GPUs")
        try:
            inv = parse_probe(result.stdout)
        except GPUProbeError as e:
            raise BackendError(f"cannot read the GPUs of {host}: {e}") from None
        self._remember_probe(host, inv)  # what a look for orphans reads (`reconcile`)
        return inv

    def _ledger_error(self, host: str, problem: LedgerProblem) -> BackendError:
        return BackendError(ledger.problem_message(host, self.settings.ledger_dir, problem,
                                                   shared=self.ledger_shared(host)))

    def _host_capacity(self, host: str, inv: Inventory) -> HostCapacity:
        """What the form and the metrics show for ``host`` (an unsafe ledger: its error)."""
        name = host
        if inv.ledger_problem is not None:
            return HostCapacity(name=name, gpus=inv.gpus, error=str(self._ledger_error(host, inv.ledger_problem)))
        return HostCapacity(name=name, gpus=inv.gpus, free=frozenset(g.uuid for g in inv.free()))

    def _url(self, port: int) -> str:
        host = self.settings.relay_host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    # ------------------------------------------------------------------ placement
    def _shortage(self, host: str, request: Any, inv: Inventory) -> str:
        count, gb = request.gpus, request.gpu_memory
        if not inv.gpus:
            return f"{host} has no GPUs" + ("" if inv.has_nvidia_smi else " (no nvidia-smi found)")
        need = min_mib(gb, self.tolerance)
        free = sum(1 for g in inv.free() if g.memory_total_mib >= need)
        size = f" with ≥ {gb} GB" if gb else ""
        return f"{count} GPU{'s' if count != 1 else ''}{size} requested, {free} free on {host}"

    async def _host_order(self, ctx: LaunchContext, request: Any, reasons: Refusals) -> list[str]:
        """The hosts to try, best first (the ssh kind ranks them by best fit across hosts);
        a host left out gets its reason recorded in ``reasons``."""
        return list(self.hosts())

    async def _place_and_claim(self, ctx: LaunchContext, request: Any, entry: str
                               ) -> tuple[str, tuple[GPU, ...], tuple[str, ...]]:
        """(host, GPUs, the claim files made for them in the host's ledger)."""
        if not self.hosts():
            raise BackendError("this backend has no hosts configured")
        reasons = Refusals()
        hosts = await self._host_order(ctx, request, reasons)
        if request.gpus <= 0:
            if hosts:
                return hosts[0], (), ()
            raise reasons.error()
        for host in hosts:
            claimed = await self._claim_on(ctx, request, entry, host, reasons, self._probed(host))
            if claimed is not None:
                return host, *claimed
        raise reasons.error()

    def _probed(self, host: str) -> Inventory | None:
        """An inventory `_host_order` just probed for this launch (None: probe under the lock)."""
        return None

    async def _claim_on(
        self, ctx: LaunchContext, request: Any, entry: str, host: str, reasons: Refusals,
        inventory: Inventory | None = None,
    ) -> tuple[tuple[GPU, ...], tuple[str, ...]] | None:
        """Place on ``host`` and claim in its ledger: (GPUs, claim files); None (its reason
        recorded) when it cannot.
        ``inventory``: a probe just made, used for the first attempt (the claim itself is
        atomic on the host: a GPU taken since is a conflict, and the host is probed again)."""
        s = self.settings
        # one claim at a time per host from this hub: no needless ledger conflicts
        async with self._lock(host):
            for _ in range(self.claim_attempts):
                if inventory is not None:
                    inv, inventory = inventory, None
                else:
                    ctx.progress(f"probing GPUs on {host}")
                    try:
                        inv = await self._probe(host)
                    except BackendError as e:
                        reasons.failure(e)
                        return None
                if inv.ledger_problem is not None:
                    reasons.failure(self._ledger_error(host, inv.ledger_problem))
                    return None
                gpus = place(inv.gpus, request.gpus, request.gpu_memory, self.tolerance,
                             taken=inv.claimed_except(entry, self.hub_id))
                if gpus is None:
                    reasons.shortage(self._shortage(host, request, inv))
                    return None
                ctx.progress(f"placing: {host}, {describe(gpus)}")
                script = ledger.claim_script(
                    s.ledger_dir, entry, scripts.uuids_of(gpus), owner=self.owner(), user=ctx.user,
                    session_dir=self._session_root(ctx, host).rstrip("/") + "/" + ctx.slug,
                    grace=s.ledger_grace, shared=self.ledger_shared(host), hub=self.hub_id, backend=self.name,
                )
                result = await self._run(host, script, "claiming GPUs")
                files = ledger.claimed_files(result.stdout)
                if result.exit_status == 0 and files:
                    return gpus, files
                unsafe = scripts.parse_marker(result.stdout, "ledger-unsafe")
                if unsafe is not None:
                    reasons.failure(self._ledger_error(host, LedgerProblem.parse(unsafe)))
                    return None
                if result.exit_status != scripts.EXIT_CONFLICT:
                    raise BackendError(
                        f"could not claim GPUs on {host} (exit {result.exit_status}): {result.stderr.strip()[-300:]}"
                    )
                self.log.info("%s: GPU %s was claimed meanwhile on %s; placing again",
                              ctx.user, scripts.parse_marker(result.stdout, "conflict"), host)
        reasons.shortage(f"the GPUs on {host} kept being claimed by other sessions; try again")
        return None

    def _session_root(self, ctx: LaunchContext | None, host: str) -> str:
        """The session root on ``host`` for ``ctx.user`` (the ssh kind: per remote account;
        ``ctx`` None: the account running now)."""
        return self.settings.session_root

    def start_budget(self, request: Any) -> float:
        """Placement (a probe and a claim per attempt), the launch script (plus
        ``mount_timeout`` when there are data mounts), waiting ``start_wait`` for the socket,
        and a few more commands (leftover session, port forward), each bounded by
        ``command_timeout``."""
        s = self.settings
        commands = 2 * self.claim_attempts + 4
        return s.start_wait + commands * s.command_timeout + (s.mount_timeout if getattr(request, "mounts", ()) else 0)

    def _ledger_entry(self, slug: str) -> str:
        """Session ``slug``'s name in the ledger: from the configured root (for the ssh kind a
        template), which is the same string on every host, so it is named before placement."""
        return scripts.ledger_entry_name(self.settings.session_root.rstrip("/") + "/" + slug, slug)

    def limits_resources(self, host: str) -> bool:
        """Whether servers on ``host`` are held to the request's ``cpu`` / ``memory``: the
        backend's `resource_limits` answer (the ssh kind asks the host's runtime)."""
        return self.resource_limits(self.settings) == "all"

    async def _prepare(self, ctx: LaunchContext, host: str, request: Any, spec: LaunchSpec) -> tuple[LaunchSpec, dict]:
        """Adapt the launch to ``host`` (the ssh kind: runtime, hub API tunnel, certificates);
        returns the spec to run and extra JSON-able state to save. Default: as is."""
        return spec, {}

    # ------------------------------------------------------------------ lifecycle
    def _env(self, ctx: LaunchContext, image: HostImage, gpus: Sequence[GPU], host: str,
             session_dir: str) -> dict[str, str]:
        """The server's environment: the hub's, the backend's and the image's ``env``, then
        what no admin setting replaces: JupyterHub's variables, gridspawner's facts
        (`gridspawner.server_env`: the spawner's, then where this launch placed the server)
        and the GPUs in ``CUDA_VISIBLE_DEVICES``."""
        env: dict[str, str] = {}
        for k, v in ctx.env.items():
            if scripts.env_name_ok(k):
                env[k] = str(v)
            else:
                self.log.warning("%s: skipping environment variable with an invalid name %r", ctx.user, k)
        env.update(self.settings.env)
        env.update(image.env)
        env.update({k: str(v) for k, v in ctx.env.items()
                    if k.startswith(("JUPYTERHUB_", FACTS_PREFIX)) and scripts.env_name_ok(k)})
        env.update(placement_env(host, gpus))
        env.update(stops_file_env(session_dir))
        env["CUDA_VISIBLE_DEVICES"] = ",".join(scripts.uuids_of(gpus))
        return env

    async def launch(self, ctx: LaunchContext, request: Any) -> Launch:
        with self._launching(ctx.slug):  # in flight until it returns: never reclaimed as an orphan
            await self._wait_reclaim(ctx.slug)
            return await self._launch(ctx, request)

    async def _launch(self, ctx: LaunchContext, request: Any) -> Launch:
        s = self.settings
        image = getattr(request, "image_settings", None) or HostImage()
        try:
            slug = scripts.check_slug(ctx.slug)
        except ValueError as e:
            raise BackendError(str(e)) from None
        if len(slug) > MAX_SLUG:
            raise BackendError(f"session name {slug!r} is longer than {MAX_SLUG} characters")
        entry = self._ledger_entry(slug)
        host, gpus, claims = await self._place_and_claim(ctx, request, entry)
        session_root = self._session_root(ctx, host)
        session_dir = session_root.rstrip("/") + "/" + slug
        claimed = bool(claims)
        pid: int | None = None
        data_link: str | None = None
        extra_state: dict = {}
        mounts = tuple(ctx.mounts or ())
        data_name = getattr(ctx.storage, "data_dir", None) or "data"
        try:
            spec = LaunchSpec(
                session_root=session_root,
                slug=slug,
                notebook_dir=s.notebook_dir_for(ctx.user),
                env=self._env(ctx, image, gpus, host, session_dir),
                cmd=tuple(image.cmd or ctx.cmd) + tuple(ctx.args),
                prefix=image.prefix,
                ledger_dir=s.ledger_dir if claimed else None,
                ledger_entry=entry if claimed else None,
                ledger_claims=claims,
                mounts=mounts,
                mount_tool=getattr(ctx.storage, "tool", None) or "rclone",
                data_link=data_name if mounts else None,
                flush_wait=s.flush_timeout,
                hub=self.hub_id,
                backend=self.name,
            )
            spec, extra_state = await self._prepare(ctx, host, request, spec)
            limits = describe_limits(request)
            if limits and not self.limits_resources(host):  # say so rather than pretend
                ctx.progress(f"{limits}: not enforced on {host} (the server may use the whole machine)")
            described = [describe_mount(m, spec_of(request, m.index), data_name) for m in mounts]
            for m, text in zip(mounts, described):
                ctx.progress(f"{'copying' if m.mode == 'copy' else 'mounting'} data: {text}")
            ctx.progress("starting server")
            pid, data_link = await self._start(ctx, host, spec, described)
            ctx.progress(f"server process {pid} started")
            await self._wait_started(ctx, host, session_dir, pid)
            forward = await (await self.transport(host)).forward(spec.socket_path, s.relay_host)
        except BaseException as e:
            # leave nothing behind: the process, the data mounts, the session directory, the GPU claim
            cleanup = asyncio.ensure_future(self._cleanup(host, session_dir, pid, claims, data_link))
            try:
                await asyncio.shield(cleanup)
            except BaseException:
                pass
            if isinstance(e, (OSError, TransportError)):
                raise BackendError(f"could not forward a port to the server on {host}: {e}") from None
            raise
        await self._drop_forward(session_dir)  # a leftover of this session's previous server
        self._forwards[session_dir] = forward
        state = {
            "v": STATE_VERSION,
            "host": host,
            "session_dir": session_dir,
            "socket": spec.socket_path,
            "pid": pid,
            "relay_host": s.relay_host,
            "relay_port": forward.port,
            "gpus": [g.to_dict() for g in gpus],
            "ledger_dir": s.ledger_dir,
            "ledger_claims": list(claims),
            **extra_state,
        }
        if data_link:
            state["data_link"] = data_link
        self.log.info("%s: server %r started on %s as pid %d (%s)", ctx.user, ctx.server_name, host, pid, describe(gpus))
        return Launch(url=self._url(forward.port), state=state, gpus=tuple(gpus), description=f"{host}, {describe(gpus)}")

    async def _start(self, ctx: LaunchContext, host: str, spec: LaunchSpec, described: Sequence[str] = ()) -> tuple[int, str | None]:
        """Run the launch script (data mounts first, when there are any); returns the server's
        pid and the data link made in the notebook directory (None: none)."""
        try:
            script = scripts.launch_script(spec)
        except ValueError as e:  # a mount the host tools cannot express; never a secret in it
            raise BackendError(f"cannot mount data on {host}: {e}") from None
        s = self.settings
        # (a dead server's directory is cleaned up first: its mounts may still upload)
        timeout = s.command_timeout + s.flush_timeout + (s.mount_timeout if spec.mounts else 0)
        what = "mounting data and starting the server" if spec.mounts else "starting the server"
        for attempt in range(2):
            result = await self._run(host, script, what, timeout)
            if result.exit_status == scripts.EXIT_MOUNT:
                raise BackendError(mount_failure(result, spec.mounts, described, host))
            if result.exit_status == scripts.EXIT_CLAIM_LOST:
                raise BackendError(f"the GPU claim of this launch on {host} was removed before the server started "
                                   f"({scripts.parse_marker(result.stdout, 'claim-lost')}); try again")
            if result.exit_status == scripts.EXIT_MOUNTS_LEFT:
                left = (scripts.parse_marker(result.stdout, "mounts-left") or "").strip()
                raise BackendError(f"a data mount of this server's previous run on {host} cannot be unmounted "
                                   f"({left}); ask the hub admin to unmount it")
            if result.exit_status == scripts.EXIT_BUSY and attempt == 0:
                old = scripts.parse_marker(result.stdout, "busy")
                ctx.progress(f"stopping a leftover server of this session (process {old})")
                stop = scripts.stop_script(spec.session_dir, int(old) if (old or "").isdigit() else None, now=True,
                                           kill_timeout=s.kill_timeout, flush_wait=s.flush_timeout)
                result = await self._run(host, stop, "stopping a leftover server", s.kill_timeout + s.flush_timeout + s.command_timeout)
                self._report_mounts_left(host, spec.session_dir, result)
                continue
            pid = scripts.parse_marker(result.stdout, "pid")
            if result.exit_status != 0 or not (pid or "").isdigit():
                raise BackendError(f"could not start the server on {host}: {result.stderr.strip()[-500:] or f'exit {result.exit_status}'}")
            link = scripts.parse_marker(result.stdout, "data-link") or None
            if spec.mounts:
                if link:
                    ctx.progress(f"data ready in {link}")
                else:
                    where = scripts.parse_marker(result.stdout, "data-dir") or f"{spec.session_dir}/data"
                    ctx.progress(f"data ready in {where} ({spec.data_link!r} in the notebook directory is not ours to replace)")
                    self.log.warning("%s: %s/%s exists and is no link; data mounts are in %s only",
                                     ctx.user, spec.notebook_dir, spec.data_link, where)
            return int(pid), link
        raise BackendError(f"a previous server of this session on {host} could not be stopped")

    async def _wait_started(self, ctx: LaunchContext, host: str, session_dir: str, pid: int) -> None:
        wait = self.settings.start_wait
        result = await self._run(host, scripts.wait_script(session_dir, pid, wait), "waiting for the server", wait + self.settings.command_timeout)
        if scripts.parse_marker(result.stdout, "ready") is not None:
            ctx.progress("server is listening")
            return
        if scripts.parse_marker(result.stdout, "dead") is not None:
            tail = result.stdout.split("@@dead", 1)[1].strip()
            raise BackendError("the server exited during start-up" + (f"; the end of its log:\n{tail}" if tail else ""))
        ctx.progress("server is still starting")

    async def _cleanup(self, host: str, session_dir: str, pid: int | None, claims: Sequence[str] = (),
                       data_link: str | None = None) -> None:
        s = self.settings
        script = scripts.stop_script(session_dir, pid, ledger_dir=s.ledger_dir if claims else None, ledger_claims=claims,
                                     kill_timeout=s.kill_timeout, now=True, data_link=data_link, flush_wait=s.flush_timeout)
        try:
            result = await self._run(host, script, "cleaning up", s.kill_timeout + s.flush_timeout + s.command_timeout)
        except BackendError as e:
            self.log.error("cleanup of %s on %s failed: %s", session_dir, host, e)
            return
        self._report_mounts_left(host, session_dir, result)

    def _report_mounts_left(self, host: str, session_dir: str, result: RunResult) -> None:
        """Log mounts that could not be unmounted and writes kept because they were not uploaded."""
        log_cleanup(self.log, host, session_dir, result.stdout, self.settings.flush_timeout)

    def _check_state(self, state: Any) -> dict:
        if not isinstance(state, dict) or any(k not in state for k in _STATE_KEYS):
            raise BackendError(f"saved server state is incomplete (needs {', '.join(_STATE_KEYS)})")
        if state["host"] not in self.hosts():
            raise BackendError(f"host {state['host']!r} is no longer configured for backend {self.name!r}")
        return state

    async def restore(self, state: dict) -> Launch:
        state = self._check_state(state)
        forward = self._forwards.get(state["session_dir"])
        if forward is None or getattr(forward, "closed", False):
            transport = await self.transport(state["host"])
            try:
                forward = await transport.forward(state["socket"], self.settings.relay_host, int(state["relay_port"] or 0))
            except (OSError, TransportError) as e:
                raise BackendError(f"could not forward a port to the server on {state['host']}: {e}") from None
            self._forwards[state["session_dir"]] = forward
        state = dict(state, relay_port=forward.port, relay_host=self.settings.relay_host)
        gpus = tuple(GPU.from_dict(g) for g in state.get("gpus") or ())
        return Launch(url=self._url(forward.port), state=state, gpus=gpus, description=f"{state['host']}, {describe(gpus)}")

    async def _drop_forward(self, session_dir: str) -> None:
        forward = self._forwards.pop(session_dir, None)
        if forward is not None:
            await forward.close()

    async def poll(self, launch: Launch) -> int | None:
        st = launch.state
        s = self.settings
        script = scripts.poll_script(st["session_dir"], int(st["pid"]), ledger_dir=st.get("ledger_dir"),
                                     ledger_entry=st.get("ledger_entry"), data_link=st.get("data_link"),
                                     ledger_claims=claims_of(st), flush_wait=s.flush_timeout)
        try:
            # a server found gone is cleaned up at once, after its mounts' last uploads
            result = await self._run(st["host"], script, "checking the server", s.command_timeout + s.flush_timeout)
        except BackendError as e:
            # a host we cannot reach right now is not a dead server
            self.log.warning("poll of %s: %s", st["session_dir"], e)
            return None
        if scripts.parse_marker(result.stdout, "running") is not None:
            return None
        self._report_mounts_left(st["host"], st["session_dir"], result)
        await self._drop_forward(st["session_dir"])
        return 1

    async def stop(self, launch: Launch, now: bool = False) -> None:
        s, st = self.settings, launch.state
        script = scripts.stop_script(
            st["session_dir"], st.get("pid"), ledger_dir=st.get("ledger_dir"), ledger_entry=st.get("ledger_entry"),
            interrupt_timeout=s.interrupt_timeout, term_timeout=s.term_timeout, kill_timeout=s.kill_timeout, now=now,
            data_link=st.get("data_link"), ledger_claims=claims_of(st), flush_wait=s.flush_timeout,
        )
        budget = s.kill_timeout + (0 if now else s.interrupt_timeout + s.term_timeout) + s.flush_timeout + s.command_timeout
        try:
            result = await self._run(st["host"], script, "stopping the server", budget)
        finally:
            await self._drop_forward(st["session_dir"])
        self._report_mounts_left(st["host"], st["session_dir"], result)
        how = scripts.parse_marker(result.stdout, "stopped")
        if how is None:
            raise BackendError(f"server process {st.get('pid')} on {st['host']} survived SIGKILL")
        self.log.info("stopped %s on %s (%s)", st["session_dir"], st["host"], "already gone" if how == "none" else f"SIG{how}")

    async def renew_credentials(self, launch: Launch, secrets: dict[int, S3Secret]) -> list[int]:
        """Replace the STS credentials of the server's live S3 mounts (index → new
        credentials) in their credential files, which rclone reads again by itself.
        Returns the indexes renewed; raises BackendError when the host cannot be reached."""
        st = launch.state
        try:
            script = scripts.renew_script(st["session_dir"], secrets)
        except ValueError as e:
            raise BackendError(f"cannot renew mount credentials: {e}") from None
        result = await self._run(st["host"], script, "renewing data mount credentials")
        return [int(i) for i in markers(result.stdout, "renewed") if i.isdigit()]

    async def probe_capacity(self) -> Capacity:
        async def one(host: str) -> HostCapacity:
            try:
                inv = await self._probe(host)
            except BackendError as e:
                return HostCapacity(name=host, error=str(e))
            return self._host_capacity(host, inv)

        hosts = await asyncio.gather(*(one(h) for h in self.hosts()))
        return Capacity(backend=self.name, hosts=tuple(hosts), updated=time.time())

    async def close(self) -> None:
        for session_dir in list(self._forwards):
            await self._drop_forward(session_dir)


def claims_of(state: dict) -> tuple[str, ...]:
    """The claim files in a server's saved state (only plain names: state comes from the hub's
    database, and a name is put into a path on the host)."""
    claims = state.get("ledger_claims") or ()
    return tuple(c for c in claims if isinstance(c, str) and c and "/" not in c and c not in (".", ".."))


def describe_limits(request: Any) -> str:
    """The request's CPU / memory choices as words ("4 CPUs and 16 GB memory"; "" for none)."""
    parts = []
    cpu, memory = getattr(request, "cpu", None), getattr(request, "memory", None)
    if cpu:
        parts.append(f"{cpu:g} CPU{'s' if cpu != 1 else ''}")
    if memory:
        parts.append(f"{memory} GB memory")
    return " and ".join(parts)
