"""`SSHBackend`: the host backend on remote hosts reached over SSH.

Everything host-side (scripts, GPU ledger, stop ladder) is the host backend's; this class
adds which hosts exist and how to reach them (`SSHTransport`, one pooled connection per
(host, remote account)), best-fit placement across hosts, per-host runtimes, the hub API
reverse tunnel, internal-SSL certificates over SFTP and a grace period for hosts that are
down.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import shlex
import time
from typing import Any, Sequence
from urllib.parse import urlsplit, urlunsplit

from ...gpu import GPU, describe, place
from ..base import AccessDenied, BackendError, Capacity, HostCapacity, Launch, LaunchContext, Unreachable
from ..host import scripts
from ..host.backend import HostBackend, claims_of
from ..host.inventory import Inventory
from ..host.refusals import Refusals
from ..host.scripts import LaunchSpec
from ..host.ssh_pool import SSHPool
from ..host.ssh_transport import SSHTarget, SSHTransport
from ..host.transport import HostUnreachable, TransportError
from .runtimes import Runtime, combined_prefix, server_command
from .settings import ACCOUNT, SSHHost, SSHImage, SSHSettings, image_for, parse_ssh_image, parse_ssh_settings

#: the hub user a launch runs for (set by launch); None = background work (probe account)
_hub_user: contextvars.ContextVar[str | None] = contextvars.ContextVar("gridspawner_ssh_user", default=None)
#: the remote account of a running server (set by poll / stop / restore from its state)
_account: contextvars.ContextVar[str | None] = contextvars.ContextVar("gridspawner_ssh_account", default=None)

#: the inventories `_host_order` probed for the launch in progress (host -> Inventory)
_probes: contextvars.ContextVar[dict | None] = contextvars.ContextVar("gridspawner_ssh_probes", default=None)

#: environment variables holding the internal-SSL files JupyterHub gives a server
_SSL_ENV = {
    "JUPYTERHUB_SSL_KEYFILE": "server.key",
    "JUPYTERHUB_SSL_CERTFILE": "server.crt",
    "JUPYTERHUB_SSL_CLIENT_CA": "ca.crt",
}
#: URLs on the hub's API a server calls; rewritten to the tunnel (or ``hub_api_url``)
_HUB_URL_ENV = ("JUPYTERHUB_API_URL", "JUPYTERHUB_ACTIVITY_URL")


class SSHBackend(HostBackend):
    """Servers on remote GPU hosts reached over SSH (see docs/admin/ssh-backend.md)."""

    kind = "ssh"
    settings: SSHSettings

    def __init__(self, name: str, settings: Any, *, tolerance: float = 0.07):
        super().__init__(name, settings, tolerance=tolerance)
        self.pool = SSHPool(relay_ports=settings.relay_ports, max_sessions=settings.max_sessions,
                            idle_timeout=settings.connection_idle_timeout)
        self._unreachable_since: dict[str, float] = {}  # session dir -> first failed poll
        self._abandoned: dict[str, list[dict]] = {}  # host -> states of servers given up on

    # ------------------------------------------------------------------ config
    @classmethod
    def parse_settings(cls, name: str, raw: dict, key: str) -> SSHSettings:
        return parse_ssh_settings(raw, key)

    @classmethod
    def parse_image(cls, image: str, raw: dict, key: str) -> SSHImage:
        return parse_ssh_image(image, raw, key)

    # ------------------------------------------------------------------ hosts and accounts
    def hosts(self) -> Sequence[str]:
        return tuple(h.name for h in self.settings.hosts)

    def _host(self, name: str) -> SSHHost:
        try:
            return self.settings.host(name)
        except KeyError:
            raise BackendError(f"host {name!r} is not configured for backend {self.name!r}") from None

    def runtime_of(self, host: str) -> Runtime:
        return self.settings.runtime_of(self._host(host))

    def account_for(self, host: str, user: str | None) -> str:
        """The remote account ``user`` (a hub user; None: background probes) uses on ``host``."""
        s = self.settings
        template = self._host(host).username or s.username
        if "{" not in template:
            return template
        if user is None:
            return s.probe_username  # required by the settings whenever a template is used
        account = template.format(username=user)
        if not ACCOUNT.fullmatch(account):
            raise AccessDenied(f"the user name {user!r} cannot be an account on {host}; ask the admin for a fixed "
                               "account or a different user name")
        return account

    def _current_account(self, host: str) -> str:
        return _account.get() or self.account_for(host, _hub_user.get())

    def target(self, host: str, account: str) -> SSHTarget:
        s, h = self.settings, self._host(host)
        keys = None if s.client_keys is None else tuple(k.format(username=account) for k in s.client_keys)
        jump = None
        if h.jump is not None:
            jump = SSHTarget(
                name=h.jump.name, address=h.jump.address, port=h.jump.port,
                username=h.jump.username.format(username=account) if h.jump.username else account,
                known_hosts=s.known_hosts, client_keys=keys, connect_timeout=s.connect_timeout,
                keepalive_interval=s.keepalive_interval, keepalive_count_max=s.keepalive_count_max,
            )
        return SSHTarget(
            name=h.name, address=h.address, port=h.port or s.port, username=account, known_hosts=s.known_hosts,
            client_keys=keys, jump=jump, connect_timeout=s.connect_timeout,
            keepalive_interval=s.keepalive_interval, keepalive_count_max=s.keepalive_count_max,
        )

    def ssh_transport(self, host: str, account: str | None = None) -> SSHTransport:
        return self.pool.transport(self.target(host, account or self._current_account(host)))

    async def transport(self, host: str) -> SSHTransport:
        return self.ssh_transport(host)

    def _session_root(self, ctx: LaunchContext, host: str) -> str:
        return self.settings.session_root.replace("{account}", self._current_account(host))

    @property
    def handshakes(self) -> int:
        """SSH connections made so far (tests and benches: polling must not add any)."""
        return self.pool.handshakes

    # ------------------------------------------------------------------ probing and placement
    def ledger_shared(self, host: str) -> bool:
        """Several accounts write ``host``'s ledger: one per hub user (a ``{username}``
        template), or a probe account besides the fixed one."""
        s, h = self.settings, self._host(host)
        account = h.username or s.username
        return "{" in account or (s.probe_username or account) != account

    async def _probe(self, host: str, nvidia_smi=None) -> Inventory:
        s, h = self.settings, self._host(host)
        inv = await super()._probe(host, h.nvidia_smi or s.nvidia_smi)
        if h.gpus is not None:
            allowed = set(h.gpus)
            inv = dataclasses.replace(inv, gpus=tuple(g for g in inv.gpus if str(g.index) in allowed or g.uuid in allowed))
        self._reap_abandoned(host)
        return inv

    def _eligible(self, request: Any, reasons: Refusals) -> list[str]:
        image = getattr(request, "image_settings", None)
        wanted = getattr(request, "host", None)
        hosts = list(self.hosts())
        if wanted:
            if not self.settings.allow_host_choice:
                raise BackendError(f"backend {self.name!r} does not let users choose a host")
            if wanted not in hosts:
                raise BackendError(f"unknown host {wanted!r}; hosts of {self.name!r}: {', '.join(hosts)}")
            hosts = [wanted]
        out = []
        for host in hosts:
            rt = self.runtime_of(host)
            if rt.is_container and not image_for(image, rt):
                reasons.failure(BackendError(f"{host} runs {rt.kind} containers and image "
                                             f"{getattr(request, 'image', '?')!r} has no container image"))
                continue
            out.append(host)
        return out

    def _endpoint(self, host: str) -> tuple:
        """``host`` as the network sees it (the pool records there whether it answers)."""
        return self.target(host, self.settings.probe_username or "-").endpoint

    async def _probe_all(self, hosts: list[str]) -> dict[str, Inventory | BackendError]:
        """Probe ``hosts`` at once. A host the pool knows as not answering is waited for only
        while the others are still answering: its probe goes on in the background (so the
        pool learns when it is back), and it is left out of this placement. When every host
        is such a host, all are waited for (each within ``connect_timeout``)."""
        if not hosts:
            return {}
        tasks = {h: asyncio.ensure_future(self._probe(h)) for h in hosts}
        answering = [t for h, t in tasks.items() if self.pool.down(self._endpoint(h)) is None]
        await asyncio.wait(answering or list(tasks.values()))
        out: dict[str, Inventory | BackendError] = {}
        for host, task in tasks.items():
            if not task.done():
                task.add_done_callback(_consume)
                down = self.pool.down(self._endpoint(host))
                why = (f"for {time.monotonic() - down.since:.0f} s: {down.error}" if down is not None
                       else "no answer yet")
                out[host] = Unreachable(f"{host} was left out: it has not been answering {why}")
                continue
            exc = task.exception()
            if exc is not None and not isinstance(exc, BackendError):
                raise exc
            out[host] = exc if exc is not None else task.result()
        return out

    async def _host_order(self, ctx: LaunchContext, request: Any, reasons: Refusals) -> list[str]:
        """Best fit across hosts: probe every eligible host at once; the host whose chosen
        cards are smallest (total VRAM, then the largest card, then config order) comes first.
        Without GPUs: reachable hosts in config order."""
        hosts = self._eligible(request, reasons)
        ctx.progress(f"probing {len(hosts)} host{'s' if len(hosts) != 1 else ''}")
        results = await self._probe_all(hosts)
        ranked = []
        for i, host in enumerate(hosts):
            inv = results[host]
            if isinstance(inv, BackendError):
                reasons.failure(inv)
                continue
            if request.gpus <= 0:
                ranked.append(((0, 0, i), host))
                continue
            gpus = place(inv.gpus, request.gpus, request.gpu_memory, self.tolerance,
                         taken=inv.claimed_except(self._ledger_entry(ctx.slug), self.hub_id))
            if gpus is None:
                reasons.shortage(self._shortage(host, request, inv))
                continue
            mem = [g.memory_total_mib for g in gpus]
            ranked.append(((sum(mem), max(mem), i), host))
            probes = _probes.get()
            if probes is not None:
                probes[host] = inv
        ranked.sort()
        return [h for _, h in ranked]

    # ------------------------------------------------------------------ launch
    def _probed(self, host: str) -> Inventory | None:
        probes = _probes.get()
        return probes.pop(host, None) if probes is not None else None

    async def launch(self, ctx: LaunchContext, request: Any) -> Launch:
        token = _hub_user.set(ctx.user)
        probes = _probes.set({})
        try:
            return await super().launch(ctx, request)
        finally:
            _probes.reset(probes)
            _hub_user.reset(token)

    def start_budget(self, request: Any) -> float:
        """The host budget plus opening the connections a launch needs (``connect_timeout``)."""
        return super().start_budget(request) + 2 * self.settings.connect_timeout

    def _hub_dest(self, url: str) -> tuple[str, int]:
        u = urlsplit(url)
        if not u.hostname:
            raise BackendError(f"cannot tell the hub's address from JUPYTERHUB_API_URL {url!r}")
        return u.hostname, u.port or (443 if u.scheme == "https" else 80)

    def limits_resources(self, host: str) -> bool:
        return self.runtime_of(host).limits_resources

    async def _prepare(self, ctx: LaunchContext, host: str, request: Any, spec: LaunchSpec) -> tuple[LaunchSpec, dict]:
        s = self.settings
        account = self._current_account(host)
        transport = self.ssh_transport(host, account)
        env = dict(spec.env)
        extra: dict[str, Any] = {"account": account}

        # the hub API: a reverse tunnel on the host's loopback, or the admin's reachable URL
        api = env.get("JUPYTERHUB_API_URL")
        if api:
            if s.hub_api_url:
                new_base = s.hub_api_url
            else:
                dest = self._hub_dest(api)
                try:
                    port = await transport.reverse_forward(*dest, holder=spec.session_dir)
                except TransportError as e:
                    raise BackendError(str(e)) from None
                extra.update(api_port=port, api_dest=list(dest))
                new_base = None
                ctx.progress(f"hub API reachable on {host} through the SSH tunnel (port {port})")
            old = urlsplit(api)
            for name in _HUB_URL_ENV:
                if name in env:
                    env[name] = _rebase(env[name], old, new_base, extra.get("api_port"))

        # internal SSL: the hub's files for this server, copied over SFTP into the session
        prefix_parts = [self.runtime_of(host).prefix]
        certs = {name: path for name, path in _SSL_ENV.items() if env.get(name)}
        if certs:
            files = {}
            for var, fname in _SSL_ENV.items():
                if var in certs:
                    try:
                        with open(env[var], "rb") as f:
                            files[fname] = f.read()
                    except OSError as e:
                        raise BackendError(f"cannot read the internal SSL file {env[var]}: {e.strerror}") from None
            staging = f"{spec.session_root}/.{spec.slug}.certs"
            await self.move_certs(host, account, files, spec.session_root, staging)
            for var, fname in _SSL_ENV.items():
                if var in certs:
                    env[var] = f"{spec.session_dir}/certs/{fname}"
            prefix_parts.insert(0, f'mkdir -m 700 "$S/certs" && mv -f {shlex.quote(staging)}/* "$S/certs/" '
                                   f'&& rmdir {shlex.quote(staging)}')
            extra["certs"] = True

        runtime = self.runtime_of(host)
        gpus = [u for u in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if u]
        try:
            image = getattr(request, "image_settings", None)
            cmd = server_command(runtime, spec.cmd, image=image_for(image, runtime), env_names=list(env),
                                 session_dir=spec.session_dir, gpu_uuids=gpus, label=spec.session_dir,
                                 cpu=getattr(request, "cpu", None), memory_gb=getattr(request, "memory", None))
        except ValueError as e:
            raise BackendError(f"cannot start on {host}: {e}") from None
        prefix_parts.append(spec.prefix)
        extra["runtime"] = runtime.kind
        return dataclasses.replace(spec, env=env, cmd=cmd, prefix=combined_prefix(*prefix_parts)), extra

    async def move_certs(self, host: str, account: str, files: dict[str, bytes], session_root: str, remote_dir: str) -> None:
        """Copy internal-SSL files (name → bytes) to ``remote_dir`` on ``host`` over SFTP
        (0700 directory, 0600 files, as ``account``). The launch script moves them into the
        session directory, so they go with it when the server stops."""
        transport = self.ssh_transport(host, account)
        timeout = self.settings.command_timeout
        try:
            await transport.sftp_put({}, session_root, timeout)  # the (0700) session root must exist
            await transport.sftp_put(files, remote_dir, timeout)
        except HostUnreachable as e:
            raise Unreachable(str(e)) from None
        except TransportError as e:
            raise BackendError(str(e)) from None

    async def _cleanup(self, host: str, session_dir: str, pid: int | None, claims: Sequence[str] = (),
                       data_link: str | None = None) -> None:
        self._release(session_dir)
        await super()._cleanup(host, session_dir, pid, claims, data_link)
        root, _, slug = session_dir.rpartition("/")
        with contextlib.suppress(BackendError):
            await self._run(host, scripts.remove_tree_script(f"{root}/.{slug}.certs"), "cleaning up")

    # ------------------------------------------------------------------ running servers
    @contextlib.contextmanager
    def _as_owner(self, state: dict):
        token = _account.set(state.get("account"))
        try:
            yield
        finally:
            _account.reset(token)

    async def restore(self, state: dict) -> Launch:
        """Re-attach after a hub restart: the relay on the saved port (created even while the
        host is down: it works once the host is back), the hub API tunnel on the saved
        remote port."""
        state = self._check_state(state)
        with self._as_owner(state):
            transport = self.ssh_transport(state["host"])
            forward = self._forwards.get(state["session_dir"])
            if forward is None or getattr(forward, "closed", False):
                try:
                    forward = await transport.forward(state["socket"], self.settings.relay_host,
                                                      int(state["relay_port"] or 0), check=False)
                except (OSError, TransportError) as e:
                    raise BackendError(f"could not forward a port to the server on {state['host']}: {e}") from None
                self._forwards[state["session_dir"]] = forward
            if state.get("api_port") and state.get("api_dest"):
                await transport.keep_reverse(int(state["api_port"]), str(state["api_dest"][0]), int(state["api_dest"][1]),
                                             holder=state["session_dir"])
        state = dict(state, relay_port=forward.port, relay_host=self.settings.relay_host)
        gpus = tuple(GPU.from_dict(g) for g in state.get("gpus") or ())
        return Launch(url=self._url(forward.port), state=state, gpus=gpus, description=f"{state['host']}, {describe(gpus)}")

    async def poll(self, launch: Launch) -> int | None:
        """None while running. A host that cannot be reached counts as running for
        ``down_grace`` seconds; after that the server is declared stopped (and stopped for
        good when the host is back, so its GPUs are freed)."""
        st = launch.state
        s = self.settings
        script = scripts.poll_script(st["session_dir"], int(st["pid"]), ledger_dir=st.get("ledger_dir"),
                                     ledger_entry=st.get("ledger_entry"), data_link=st.get("data_link"),
                                     ledger_claims=claims_of(st), flush_wait=s.flush_timeout)
        with self._as_owner(st):
            try:
                # a server found gone is cleaned up at once, after its mounts' last uploads
                result = await self._run(st["host"], script, "checking the server", s.command_timeout + s.flush_timeout)
            except BackendError as e:
                first = self._unreachable_since.setdefault(st["session_dir"], time.monotonic())
                down = time.monotonic() - first
                if down < s.down_grace:
                    self.log.warning("poll of %s: %s (down for %.0f of %g s)", st["session_dir"], e, down, s.down_grace)
                    return None
                self.log.error("%s on %s: host unreachable for %.0f s; declaring the server stopped",
                               st["session_dir"], st["host"], down)
                self._unreachable_since.pop(st["session_dir"], None)
                self._abandoned.setdefault(st["host"], []).append(dict(st))
                await self._drop_forward(st["session_dir"])
                self._release(st["session_dir"])
                return 1
        self._unreachable_since.pop(st["session_dir"], None)
        if scripts.parse_marker(result.stdout, "running") is not None:
            return None
        self._report_mounts_left(st["host"], st["session_dir"], result)
        await self._drop_forward(st["session_dir"])
        self._release(st["session_dir"])
        return 1

    def _may_act_as(self, host: str, account: str, user: str) -> bool:
        """An account this backend uses on ``host``: the probe account, or the one ``user``'s
        servers run as (crash recovery reclaims nothing of any other account)."""
        if account == (self.settings.probe_username or None):
            return True
        try:
            return account == self.account_for(host, user or None)
        except BackendError:
            return False

    def _as_account(self, account: str) -> contextlib.AbstractContextManager:
        return self._as_owner({"account": account})

    def _account_of(self, host: str, user: str) -> str:
        return self.account_for(host, user)

    def _session_root_of(self, host: str, account: str) -> str:
        return self.settings.session_root.replace("{account}", account)

    def _release(self, session_dir: str) -> None:
        """The server of ``session_dir`` has ended: its hub API tunnel is no longer held by
        it (closed when no other server uses it), so its connection may become idle."""
        for transport in self.pool.transports():
            transport.release(session_dir)

    def _reap_abandoned(self, host: str) -> None:
        """Stop servers that poll gave up on while ``host`` was down (it answers again)."""
        states = self._abandoned.pop(host, None)
        if not states:
            return

        async def reap() -> None:
            for st in states:
                with contextlib.suppress(Exception):
                    await self.stop(Launch(url="", state=st), now=True)
                    self.log.warning("stopped %s on %s: it was declared stopped while the host was down",
                                     st["session_dir"], host)

        asyncio.ensure_future(reap())

    async def renew_credentials(self, launch: Launch, secrets: dict) -> list[int]:
        with self._as_owner(launch.state):
            return await super().renew_credentials(launch, secrets)

    async def stop(self, launch: Launch, now: bool = False) -> None:
        with self._as_owner(launch.state):
            self._unreachable_since.pop(launch.state.get("session_dir"), None)
            try:
                await super().stop(launch, now)
            finally:
                self._release(launch.state.get("session_dir"))

    async def probe_capacity(self) -> Capacity:
        """Every host probed at once (as the probe account); a host that cannot be reached
        is listed with its error (the form shows it as unreachable)."""
        async def one(host: str) -> HostCapacity:
            try:
                inv = await self._probe(host)
            except BackendError as e:
                return HostCapacity(name=host, error=str(e))
            return self._host_capacity(host, inv)

        hosts = await asyncio.gather(*(one(h) for h in self.hosts()))
        return Capacity(backend=self.name, hosts=tuple(hosts), updated=time.time())

    async def close(self) -> None:
        await super().close()
        await self.pool.close()

    @classmethod
    def resource_limits(cls, settings: SSHSettings) -> str:
        """podman and docker hosts limit CPU and memory; the other runtimes do not."""
        limiting = {settings.runtime_of(h).limits_resources for h in settings.hosts}
        return "all" if limiting == {True} else "none" if limiting == {False} else "some"

    @classmethod
    def host_choices(cls, settings: SSHSettings) -> dict[str, str]:
        """With ``allow_host_choice``: every host, name → "a (GPUs 0, 1)" where the admin
        lists the GPUs the hub may hand out there, else just the name. Otherwise none."""
        if not settings.allow_host_choice:
            return {}
        return {h.name: f"{h.name} (GPU{'s' if len(h.gpus) != 1 else ''} {', '.join(h.gpus)})" if h.gpus else h.name
                for h in settings.hosts}


def _consume(task: asyncio.Future) -> None:
    """Retrieve a background probe's outcome (a host left out of a placement), so asyncio does
    not log "exception was never retrieved"; the pool has recorded what it needs."""
    if not task.cancelled():
        task.exception()


def _rebase(url: str, old, new_base: str | None, port: int | None) -> str:
    """``url`` (on the hub's API) pointed at the tunnel port on the host's loopback, or at
    ``new_base`` (the admin's ``hub_api_url``, which replaces the old API URL's prefix)."""
    u = urlsplit(url)
    if (u.scheme, u.netloc) != (old.scheme, old.netloc):
        return url
    if new_base is not None:
        old_api = urlunsplit((old.scheme, old.netloc, old.path.rstrip("/"), "", ""))
        rest = url[len(old_api):] if url.startswith(old_api) else u.path
        return new_base + rest
    return urlunsplit((u.scheme, f"127.0.0.1:{port}", u.path, u.query, u.fragment))


__all__ = ["SSHBackend"]
