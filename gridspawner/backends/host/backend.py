"""`HostBackend`: servers on hosts reached through a `Transport` (local machine or SSH).

It places GPUs (best fit, `gridspawner.gpu.place`), claims them in the on-host ledger (the
only source of truth, so a restarted hub or a second hub on the same host never hands out a
GPU twice), starts the server with a launch script, and forwards a local TCP port to the
server's unix socket. Subclasses say which hosts exist and how to reach them.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import math
import socket
import time
from abc import abstractmethod
from typing import TYPE_CHECKING, Any, Sequence

from ...gpu import GPUProbeError, describe, place
from ...mounts.resolved import S3Secret
from ..base import Backend, BackendError, Capacity, HostCapacity, Launch, LaunchContext
from . import ledger, scripts
from .batch import HostBatchMixin
from .down_hosts import DownHosts
from .forwards import SessionForwards
from .gpu_use import GpuUse, parse_use, use_lines
from .inventory import Inventory, parse_probe
from .launch_env import data_dir_name, launch_spec, server_environment
from .ledger import LedgerProblem
from .mount_reports import describe_mount, log_cleanup, markers, spec_of
from .placement import Candidate, HostLogin, Placement, describe_limits, shortage
from .reconcile import HostReconcileMixin
from .refusals import Refusals
from .saved_state import check_state, claims_of, launch_of, relay_url, saved_state
from .scripts import LaunchSpec
from .settings import MAX_SLUG, HostImage, HostSettings
from .start_answers import leftover_pid, listening, started
from .stops_file import WRITTEN, stops_script
from .transport import RunResult, Transport, TransportError, run_script

if TYPE_CHECKING:
    from ...request import LaunchRequest


class HostBackend(HostReconcileMixin, HostBatchMixin, Backend):
    """The host backend, generic over its transport (``settings``: a `HostSettings`). Each step
    gets where it runs as a value: a `HostLogin` (host, account) for a script, a `Placement`
    for a launch; a running server's login is read back from its saved state (`login_of`)."""

    settings: HostSettings
    #: how often a claim that lost a race (another hub took a GPU meanwhile) is re-placed
    claim_attempts = 4
    #: the STS credentials of a live S3 mount can be replaced (`renew_credentials`)
    renews_credentials = True

    def __init__(self, name: str, settings: Any, *, tolerance: float = 0.07):
        super().__init__(name, settings, tolerance=tolerance)
        self._locks: dict[str, asyncio.Lock] = {}
        self._forwards = SessionForwards()
        self._down = DownHosts()
        self._init_reconcile()
        self._gpu_use: dict[str, GpuUse] = {}  # host -> GPU use its last probe saw

    # ------------------------------------------------------------------ what subclasses provide
    @abstractmethod
    def hosts(self) -> Sequence[str]:
        """The hosts to place on, in order of preference."""

    @abstractmethod
    async def transport(self, login: HostLogin) -> Transport:
        """The (pooled) transport to ``login``; raises BackendError when it is unreachable."""

    def account_for(self, host: str, user: str | None) -> str:
        """The account ``user`` (a hub user; None: background work such as probes) runs as on
        ``host``. The hub's machine: the hub's own account."""
        return getpass.getuser()

    def session_root(self, login: HostLogin) -> str:
        """The session root on ``login.host`` for ``login.account``."""
        return self.settings.session_root

    def owner(self) -> str:
        """Who holds a ledger entry (shown to admins reading the ledger)."""
        return f"{getpass.getuser()}@{socket.gethostname()} backend {self.name}"

    def ledger_shared(self, host: str) -> bool:
        """Whether several accounts of this backend write ``host``'s ledger (then only a
        directory root owns is safe: see `ledger`). The hub's machine: one account."""
        return False

    def limits_resources(self, host: str) -> bool:
        """Whether servers on ``host`` are held to the request's ``cpu`` / ``memory``: the
        backend's `resource_limits` answer (the ssh kind asks the host's runtime)."""
        return self.resource_limits(self.settings) == "all"

    def down_grace(self) -> float:
        """Seconds a host that does not answer a poll still counts as running its servers;
        after that they are declared stopped (and stopped for good once the host answers
        again). The hub's machine: forever (a failed poll there is no dead server)."""
        return math.inf

    async def _candidates(self, ctx: LaunchContext, request: LaunchRequest, reasons: Refusals) -> list[Candidate]:
        """The hosts to try for a launch, best first, as ``ctx.user``'s account (the ssh kind
        ranks them by best fit across hosts); a host left out gets its reason in ``reasons``."""
        return [Candidate(HostLogin(h, self.account_for(h, ctx.user))) for h in self.hosts()]

    async def _prepare(self, ctx: LaunchContext, placement: Placement, request: LaunchRequest,
                       spec: LaunchSpec) -> tuple[LaunchSpec, dict]:
        """Adapt the launch to its host (the ssh kind: runtime, hub API tunnel, certificates);
        returns the spec to run and extra JSON-able state to save. Default: as is."""
        return spec, {}

    async def _reattach(self, transport: Transport, state: dict) -> None:
        """After a hub restart, rebuild what a server needs besides its relay (the ssh kind:
        the hub API tunnel). Default: nothing."""

    def _release_tunnels(self, session_dir: str) -> None:
        """The server of ``session_dir`` has ended: drop what only it held (the ssh kind: its
        hub API tunnel). Default: nothing."""

    # ------------------------------------------------------------------ helpers
    def probe_login(self, host: str) -> HostLogin:
        """Where background probes of ``host`` run (the probe account)."""
        return HostLogin(host, self.account_for(host, None))

    def login_of(self, state: dict) -> HostLogin:
        """Where a running server's scripts run: the account in its saved state (a state
        saved without one: the account background work uses)."""
        host = state["host"]
        return HostLogin(host, state.get("account") or self.account_for(host, None))

    async def _run(self, login: HostLogin, script: str, what: str, timeout: float | None = None) -> RunResult:
        """Run a script at ``login`` (`transport.run_script`), within ``command_timeout`` by default."""
        timeout = self.settings.command_timeout if timeout is None else timeout
        return await run_script(await self.transport(login), script, timeout, what, login.host)

    async def _probe(self, login: HostLogin, nvidia_smi: Sequence[str] | None = None) -> Inventory:
        """What ``login.host`` has (GPUs, ledger claims, ``login.account``'s sessions)."""
        s, host = self.settings, login.host
        script = scripts.probe_script(nvidia_smi or s.nvidia_smi, s.ledger_dir, shared=self.ledger_shared(host),
                                      grace=s.ledger_grace, session_root=self.session_root(login))
        # GPU use for the idle policy rides on the same command (no extra connection)
        result = await self._run(login, script + use_lines(nvidia_smi or s.nvidia_smi), "probing GPUs")
        self._gpu_use[host] = parse_use(result.stdout, time.time())
        try:
            inv = parse_probe(result.stdout)
        except GPUProbeError as e:
            raise BackendError(f"cannot read the GPUs of {host}: {e}") from None
        self._remember_probe(host, inv)  # what a look for orphans reads (`reconcile`)
        self._reap_abandoned(host)
        return inv

    def _ledger_error(self, host: str, problem: LedgerProblem) -> BackendError:
        return BackendError(ledger.problem_message(host, self.settings.ledger_dir, problem,
                                                   shared=self.ledger_shared(host)))

    def _host_capacity(self, host: str, inv: Inventory) -> HostCapacity:
        """What the form and the metrics show for ``host`` (an unsafe ledger: its error)."""
        if inv.ledger_problem is not None:
            return HostCapacity(name=host, gpus=inv.gpus, error=str(self._ledger_error(host, inv.ledger_problem)))
        return HostCapacity(name=host, gpus=inv.gpus, free=frozenset(g.uuid for g in inv.free()))

    # ------------------------------------------------------------------ placement
    async def _place_and_claim(self, ctx: LaunchContext, request: LaunchRequest, entry: str) -> Placement:
        """Where the launch runs: the first candidate whose GPUs fit and could be claimed."""
        if not self.hosts():
            raise BackendError("this backend has no hosts configured")
        reasons = Refusals()
        candidates = await self._candidates(ctx, request, reasons)
        if request.gpus <= 0:
            if candidates:
                return Placement(candidates[0].login)
            raise reasons.error()
        for candidate in candidates:
            placement = await self._claim_on(ctx, request, entry, candidate, reasons)
            if placement is not None:
                return placement
        raise reasons.error()

    async def _claim_on(self, ctx: LaunchContext, request: LaunchRequest, entry: str, candidate: Candidate,
                        reasons: Refusals) -> Placement | None:
        """Place on the candidate's host and claim in its ledger; None (its reason recorded)
        when it cannot. The candidate's inventory (a probe just made) serves the first
        attempt: the claim itself is atomic on the host, so a GPU taken since is a conflict,
        and the host is probed again."""
        s, login, inventory = self.settings, candidate.login, candidate.inventory
        host = login.host
        # one claim at a time per host from this hub: no needless ledger conflicts
        async with self._locks.setdefault(host, asyncio.Lock()):
            for _ in range(self.claim_attempts):
                if inventory is not None:
                    inv, inventory = inventory, None
                else:
                    ctx.progress(f"probing GPUs on {host}")
                    try:
                        inv = await self._probe(login)
                    except BackendError as e:
                        reasons.failure(e)
                        return None
                if inv.ledger_problem is not None:
                    reasons.failure(self._ledger_error(host, inv.ledger_problem))
                    return None
                gpus = place(inv.gpus, request.gpus, request.gpu_memory, self.tolerance,
                             taken=inv.claimed_except(entry, self.hub_id))
                if gpus is None:
                    reasons.shortage(shortage(host, request, inv, self.tolerance))
                    return None
                ctx.progress(f"placing: {host}, {describe(gpus)}")
                placed = Placement(login, tuple(gpus))
                script = ledger.claim_script(
                    s.ledger_dir, entry, placed.gpu_uuids, owner=self.owner(), user=ctx.user,
                    session_dir=self.session_root(login).rstrip("/") + "/" + ctx.slug,
                    grace=s.ledger_grace, shared=self.ledger_shared(host), hub=self.hub_id, backend=self.name,
                )
                result = await self._run(login, script, "claiming GPUs")
                files = ledger.claimed_files(result.stdout)
                if result.exit_status == 0 and files:
                    return Placement(login, placed.gpus, tuple(files))
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

    def start_budget(self, request: LaunchRequest) -> float:
        """Placement (a probe and a claim per attempt), the launch script (plus
        ``mount_timeout`` when there are data mounts), waiting ``start_wait`` for the socket,
        and a few more commands (leftover session, port forward), each bounded by
        ``command_timeout``."""
        s = self.settings
        commands = 2 * self.claim_attempts + 4
        return s.start_wait + commands * s.command_timeout + (s.mount_timeout if request.mounts else 0)

    def _ledger_entry(self, slug: str) -> str:
        """Session ``slug``'s name in the ledger: from the configured root (for the ssh kind a
        template), which is the same string on every host, so it is named before placement."""
        return scripts.ledger_entry_name(self.settings.session_root.rstrip("/") + "/" + slug, slug)

    # ------------------------------------------------------------------ lifecycle
    async def launch(self, ctx: LaunchContext, request: LaunchRequest) -> Launch:
        with self._launching(ctx.slug):  # in flight until it returns: never reclaimed as an orphan
            await self._wait_reclaim(ctx.slug)
            return await self._launch(ctx, request)

    async def _place_session(self, ctx: LaunchContext, request: LaunchRequest) -> tuple[str, str, Placement, str]:
        """A session's name checked, its placement and GPU claims (servers and batch jobs)."""
        try:
            slug = scripts.check_slug(ctx.slug)
        except ValueError as e:
            raise BackendError(str(e)) from None
        if len(slug) > MAX_SLUG:
            raise BackendError(f"session name {slug!r} is longer than {MAX_SLUG} characters")
        entry = self._ledger_entry(slug)
        placement = await self._place_and_claim(ctx, request, entry)
        return slug, entry, placement, self.session_root(placement.login)

    async def _launch(self, ctx: LaunchContext, request: LaunchRequest) -> Launch:
        s = self.settings
        image = request.image_settings or HostImage()
        slug, entry, placement, session_root = await self._place_session(ctx, request)
        login, gpus, claims = placement.login, placement.gpus, placement.claims
        host = login.host
        session_dir = session_root.rstrip("/") + "/" + slug
        pid: int | None = None
        data_link: str | None = None
        mounts = tuple(ctx.mounts or ())
        data_name = data_dir_name(ctx)
        try:
            env, skipped = server_environment(ctx.env, s.env, image.env, placement, session_dir)
            for name in skipped:
                self.log.warning("%s: skipping environment variable with an invalid name %r", ctx.user, name)
            spec = launch_spec(s, ctx, image, placement, session_root=session_root, slug=slug, entry=entry,
                               env=env, hub=self.hub_id, backend=self.name)
            spec, extra_state = await self._prepare(ctx, placement, request, spec)
            limits = describe_limits(request)
            if limits and not self.limits_resources(host):  # say so rather than pretend
                ctx.progress(f"{limits}: not enforced on {host} (the server may use the whole machine)")
            described = [describe_mount(m, spec_of(request, m.index), data_name) for m in mounts]
            for m, text in zip(mounts, described):
                ctx.progress(f"{'copying' if m.mode == 'copy' else 'mounting'} data: {text}")
            ctx.progress("starting server")
            pid, data_link = await self._start(ctx, login, spec, described)
            ctx.progress(f"server process {pid} started")
            await self._wait_started(ctx, login, session_dir, pid)
            forward = await (await self.transport(login)).forward(spec.socket_path, s.relay_host)
        except BaseException as e:
            # leave nothing behind: the process, the data mounts, the session directory, the GPU claim
            cleanup = asyncio.ensure_future(self._cleanup(login, session_dir, pid, claims, data_link))
            try:
                await asyncio.shield(cleanup)
            except BaseException:
                pass
            if isinstance(e, (OSError, TransportError)):
                raise BackendError(f"could not forward a port to the server on {host}: {e}") from None
            raise
        await self._forwards.keep(session_dir, forward)
        state = saved_state(placement, spec, pid, s.relay_host, forward.port, s.ledger_dir, data_link, extra_state)
        self.log.info("%s: server %r started on %s as pid %d (%s)", ctx.user, ctx.server_name, host, pid, describe(gpus))
        return Launch(url=relay_url(s.relay_host, forward.port), state=state, gpus=tuple(gpus),
                      description=f"{host}, {describe(gpus)}")

    async def _start(self, ctx: LaunchContext, login: HostLogin, spec: LaunchSpec,
                     described: Sequence[str] = ()) -> tuple[int, str | None]:
        """Run the launch script (data mounts first, when there are any); returns the server's
        pid and the data link made in the notebook directory (None: none)."""
        host = login.host
        try:
            script = scripts.launch_script(spec)
        except ValueError as e:  # a mount the host tools cannot express; never a secret in it
            raise BackendError(f"cannot mount data on {host}: {e}") from None
        s = self.settings
        # (a dead server's directory is cleaned up first: its mounts may still upload)
        timeout = s.command_timeout + s.flush_timeout + (s.mount_timeout if spec.mounts else 0)
        what = "mounting data and starting the server" if spec.mounts else "starting the server"
        for attempt in range(2):
            result = await self._run(login, script, what, timeout)
            old = leftover_pid(result)
            if old is not False and attempt == 0:
                ctx.progress(f"stopping a leftover server of this session (process {old})")
                stop = scripts.stop_script(spec.session_dir, old, now=True, kill_timeout=s.kill_timeout,
                                           flush_wait=s.flush_timeout)
                result = await self._run(login, stop, "stopping a leftover server",
                                         s.kill_timeout + s.flush_timeout + s.command_timeout)
                self._report_mounts_left(host, spec.session_dir, result)
                continue
            break
        server = started(result, spec, described, host)
        if spec.mounts and server.data_link:
            ctx.progress(f"data ready in {server.data_link}")
        elif server.data_dir:
            ctx.progress(f"data ready in {server.data_dir} ({spec.data_link!r} in the notebook directory is not ours to replace)")
            self.log.warning("%s: %s/%s exists and is no link; data mounts are in %s only",
                             ctx.user, spec.notebook_dir, spec.data_link, server.data_dir)
        return server.pid, server.data_link

    async def _wait_started(self, ctx: LaunchContext, login: HostLogin, session_dir: str, pid: int) -> None:
        wait = self.settings.start_wait
        result = await self._run(login, scripts.wait_script(session_dir, pid, wait), "waiting for the server",
                                 wait + self.settings.command_timeout)
        ctx.progress("server is listening" if listening(result) else "server is still starting")

    async def _cleanup(self, login: HostLogin, session_dir: str, pid: int | None, claims: Sequence[str] = (),
                       data_link: str | None = None) -> None:
        """Remove what a failed launch made at ``login`` (never raises: logs a failure)."""
        self._release_tunnels(session_dir)
        s = self.settings
        script = scripts.stop_script(session_dir, pid, ledger_dir=s.ledger_dir if claims else None, ledger_claims=claims,
                                     kill_timeout=s.kill_timeout, now=True, data_link=data_link, flush_wait=s.flush_timeout)
        try:
            result = await self._run(login, script, "cleaning up", s.kill_timeout + s.flush_timeout + s.command_timeout)
        except BackendError as e:
            self.log.error("cleanup of %s on %s failed: %s", session_dir, login.host, e)
            return
        self._report_mounts_left(login.host, session_dir, result)

    def _report_mounts_left(self, host: str, session_dir: str, result: RunResult) -> None:
        """Log mounts that could not be unmounted and writes kept because they were not uploaded."""
        log_cleanup(self.log, host, session_dir, result.stdout, self.settings.flush_timeout)

    def _check_state(self, state: Any) -> dict:
        return check_state(state, tuple(self.hosts()), self.name)

    async def restore(self, state: dict) -> Launch:
        """Re-attach after a hub restart: the relay on the saved port (created even while the
        host is down: it works once the host is back), then what `_reattach` rebuilds."""
        state = self._check_state(state)
        s = self.settings
        transport = await self.transport(self.login_of(state))
        forward = await self._forwards.reopen(transport, state["session_dir"], state["socket"], s.relay_host,
                                              int(state["relay_port"] or 0), f"on {state['host']}")
        await self._reattach(transport, state)
        return launch_of(state, s.relay_host, forward.port)

    async def _server_gone(self, session_dir: str) -> None:
        """The server of ``session_dir`` ended or was stopped: its relay and tunnels go."""
        await self._forwards.drop(session_dir)
        self._release_tunnels(session_dir)

    async def poll(self, launch: Launch) -> int | None:
        """None while running. A host that cannot be reached counts as running for
        `down_grace` seconds; after that the server is declared stopped (and stopped for
        good when the host is back, so its GPUs are freed)."""
        st = launch.state
        s = self.settings
        script = scripts.poll_script(st["session_dir"], int(st["pid"]), ledger_dir=st.get("ledger_dir"),
                                     ledger_entry=st.get("ledger_entry"), data_link=st.get("data_link"),
                                     ledger_claims=claims_of(st), flush_wait=s.flush_timeout)
        try:
            # a server found gone is cleaned up at once, after its mounts' last uploads
            result = await self._run(self.login_of(st), script, "checking the server", s.command_timeout + s.flush_timeout)
        except BackendError as e:
            return await self._poll_unanswered(st, e)
        self._down.answered(st["session_dir"])
        if scripts.parse_marker(result.stdout, "running") is not None:
            return None
        self._report_mounts_left(st["host"], st["session_dir"], result)
        await self._server_gone(st["session_dir"])
        return 1

    async def _poll_unanswered(self, st: dict, error: BackendError) -> int | None:
        grace = self.down_grace()
        if grace == math.inf:  # a host we cannot reach right now is not a dead server
            self.log.warning("poll of %s: %s", st["session_dir"], error)
            return None
        down = self._down.unanswered(st["session_dir"])
        if down < grace:
            self.log.warning("poll of %s: %s (down for %.0f of %g s)", st["session_dir"], error, down, grace)
            return None
        self.log.error("%s on %s: host unreachable for %.0f s; declaring the server stopped",
                       st["session_dir"], st["host"], down)
        self._down.give_up(st)
        await self._server_gone(st["session_dir"])
        return 1

    def _reap_abandoned(self, host: str) -> None:
        """Stop servers that poll gave up on while ``host`` was down (it answers again)."""
        states = self._down.take_given_up(host)
        if not states:
            return

        async def reap() -> None:
            for st in states:
                with contextlib.suppress(Exception):
                    await self.stop(Launch(url="", state=st), now=True)
                    self.log.warning("stopped %s on %s: it was declared stopped while the host was down",
                                     st["session_dir"], host)

        asyncio.ensure_future(reap())

    async def stop(self, launch: Launch, now: bool = False) -> None:
        s, st = self.settings, launch.state
        await self._end_batch_tree(st)  # a batch job's kernel is in a process group of its own
        self._down.answered(st.get("session_dir"))
        script = scripts.stop_script(
            st["session_dir"], st.get("pid"), ledger_dir=st.get("ledger_dir"), ledger_entry=st.get("ledger_entry"),
            interrupt_timeout=s.interrupt_timeout, term_timeout=s.term_timeout, kill_timeout=s.kill_timeout, now=now,
            data_link=st.get("data_link"), ledger_claims=claims_of(st), flush_wait=s.flush_timeout,
        )
        budget = s.kill_timeout + (0 if now else s.interrupt_timeout + s.term_timeout) + s.flush_timeout + s.command_timeout
        try:
            result = await self._run(self.login_of(st), script, "stopping the server", budget)
        finally:
            await self._server_gone(st["session_dir"])
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
        result = await self._run(self.login_of(st), script, "renewing data mount credentials")
        return [int(i) for i in markers(result.stdout, "renewed") if i.isdigit()]

    async def announce_stops(self, launch: Launch, entries: list[dict]) -> bool:
        """Write the server's stops file (`stops_file`); False when its session is gone."""
        st = launch.state
        result = await self._run(self.login_of(st), stops_script(st["session_dir"], entries), "writing the stops file")
        return scripts.parse_marker(result.stdout, WRITTEN) is not None

    def gpu_busy(self, launch: Launch, threshold: int, max_age: float) -> bool | None:
        """From the host's last capacity probe (`gpu_use`): whether the server's GPUs are in
        use by its processes; None when unknown (no probe younger than ``max_age`` s)."""
        st = launch.state
        use = self._gpu_use.get(st.get("host"))
        if use is None or time.time() - use.at > max_age or not isinstance(st.get("pid"), int):
            return None
        return use.busy((g.uuid for g in launch.gpus), st["pid"], threshold)

    async def probe_capacity(self) -> Capacity:
        """Every host probed at once (as the probe account); a host that cannot be reached
        is listed with its error (the form shows it as unreachable)."""
        async def one(host: str) -> HostCapacity:
            try:
                inv = await self._probe(self.probe_login(host))
            except BackendError as e:
                return HostCapacity(name=host, error=str(e))
            return self._host_capacity(host, inv)

        hosts = await asyncio.gather(*(one(h) for h in self.hosts()))
        return Capacity(backend=self.name, hosts=tuple(hosts), updated=time.time())

    async def close(self) -> None:
        await self._forwards.close()

