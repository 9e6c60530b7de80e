"""Starting a server on a host: `HostLaunchMixin`, the start path of `HostBackend` (also
the placement a batch job uses: `_place_session`).

A launch places the request's GPUs on the first candidate host whose GPUs fit and can be
claimed in that host's ledger (the claim is atomic on the host: a GPU another hub took
meanwhile is a conflict, and the host is probed again), runs the launch script, waits for
the server's socket and forwards a local port to it. Whatever fails on the way, nothing is
left behind: the process, the data mounts, the session directory and the GPU claims go.

It uses what `HostBackend` provides: ``settings``, ``hosts``, ``transport``, ``_candidates``,
``_prepare``, ``session_root``, ``owner``, ``ledger_shared``, ``limits_resources``, ``_run``,
``_probe``, ``_ledger_error``, ``_report_mounts_left``, ``_release_tunnels`` and
``_forwards``; and ``_launching`` / ``_wait_reclaim`` of `HostReconcileMixin`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Sequence

from ...gpu import describe, place
from ..base import BackendError, Launch, LaunchContext
from . import ledger_claim, scripts
from .launch_env import data_dir_name, launch_spec, server_environment
from .launch_scripts import LaunchSpec, launch_script
from .ledger_problems import LedgerProblem
from .mount_reports import describe_mount, spec_of
from .placement import Candidate, HostLogin, Placement, describe_limits, shortage
from .probe_scripts import wait_script
from .refusals import Refusals
from .saved_state import relay_url, saved_state
from .settings import MAX_SLUG, HostImage
from .start_answers import leftover_pid, listening, started
from .transport import TransportError

if TYPE_CHECKING:
    from ...request import LaunchRequest


class HostLaunchMixin:
    """``launch`` and ``start_budget`` for `HostBackend`, with the placement and GPU claims
    they (and batch jobs) rest on."""

    name: str
    hub_id: str
    tolerance: float
    log: logging.Logger
    settings: Any
    #: how often a claim that lost a race (another hub took a GPU meanwhile) is re-placed
    claim_attempts = 4

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
                script = ledger_claim.claim_script(
                    s.ledger_dir, entry, placed.gpu_uuids, owner=self.owner(), user=ctx.user,
                    session_dir=self.session_root(login).rstrip("/") + "/" + ctx.slug,
                    grace=s.ledger_grace, shared=self.ledger_shared(host), hub=self.hub_id, backend=self.name,
                )
                result = await self._run(login, script, "claiming GPUs")
                files = ledger_claim.claimed_files(result.stdout)
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
            script = launch_script(spec)
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
        result = await self._run(login, wait_script(session_dir, pid, wait), "waiting for the server",
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
