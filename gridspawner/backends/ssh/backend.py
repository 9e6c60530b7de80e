"""`SSHBackend`: the host backend on remote hosts reached over SSH.

Everything host-side (scripts, GPU ledger, stop ladder) is the host backend's; this class
adds which hosts exist and how to reach them (`SSHTransport`, one pooled connection per
(host, remote account)), best-fit placement across hosts, per-host runtimes, the hub API
reverse tunnel, internal-SSL certificates over SFTP and a grace period for hosts that are
down.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from typing import TYPE_CHECKING, Any, Sequence

from ..base import AccessDenied, BackendError, LaunchContext, Unreachable
from ..host import scripts
from ..host.backend import HostBackend
from ..host.inventory import Inventory
from ..host.placement import Candidate, HostLogin, Placement
from ..host.refusals import Refusals
from ..host.launch_scripts import LaunchSpec
from ..host.ssh_pool import SSHPool
from ..host.ssh_target import SSHTarget
from ..host.ssh_transport import SSHTransport
from ..host.transport import HostUnreachable, TransportError
from .best_fit import probe_all, rank
from .runtimes import Runtime, combined_prefix, server_command
from .server_setup import certs_staging, hub_dest, read_ssl_files, rebase_hub_urls, use_certs
from .settings import ACCOUNT, SSHHost, SSHImage, SSHSettings, image_for, parse_ssh_image, parse_ssh_settings

if TYPE_CHECKING:
    from ...request import LaunchRequest

class SSHBackend(HostBackend):
    """Servers on remote GPU hosts reached over SSH (see docs/admin/ssh-backend.md)."""

    kind = "ssh"
    settings: SSHSettings

    def __init__(self, name: str, settings: Any, *, tolerance: float = 0.07):
        super().__init__(name, settings, tolerance=tolerance)
        self.pool = SSHPool(relay_ports=settings.relay_ports, max_sessions=settings.max_sessions,
                            idle_timeout=settings.connection_idle_timeout)

    # ------------------------------------------------------------------ config
    @classmethod
    def parse_settings(cls, name: str, raw: dict, key: str) -> SSHSettings:
        return parse_ssh_settings(raw, key)

    @classmethod
    def parse_image(cls, image: str, raw: dict, key: str) -> SSHImage:
        return parse_ssh_image(image, raw, key)

    @classmethod
    def image_ref_problem(cls, settings: SSHSettings) -> str | None:
        """A user's image reference runs only where every host starts servers in a
        container (runtime apptainer, podman or docker): the placement picks any host."""
        bare = [h.name for h in settings.hosts if not settings.runtime_of(h).is_container]
        if bare:
            return f"host{'s' if len(bare) > 1 else ''} {', '.join(bare)} of this backend run{'s' if len(bare) == 1 else ''} no container runtime"
        return None

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

    def ssh_transport(self, login: HostLogin) -> SSHTransport:
        """The pooled connection to ``login`` (one per host and account)."""
        return self.pool.transport(self.target(login.host, login.account))

    async def transport(self, login: HostLogin) -> SSHTransport:
        return self.ssh_transport(login)

    def session_root(self, login: HostLogin) -> str:
        return self.settings.session_root.replace("{account}", login.account)

    def down_grace(self) -> float:
        return self.settings.down_grace

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

    async def _probe(self, login: HostLogin, nvidia_smi: Sequence[str] | None = None) -> Inventory:
        """The host's own nvidia-smi; only the GPUs the admin lists for it (``gpus``)."""
        s, h = self.settings, self._host(login.host)
        inv = await super()._probe(login, nvidia_smi or h.nvidia_smi or s.nvidia_smi)
        if h.gpus is not None:
            allowed = set(h.gpus)
            inv = dataclasses.replace(inv, gpus=tuple(g for g in inv.gpus if str(g.index) in allowed or g.uuid in allowed))
        return inv

    def _eligible(self, request: LaunchRequest, reasons: Refusals) -> list[str]:
        image = request.image_settings
        wanted = request.host
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
                                             f"{request.image!r} has no container image"))
                continue
            out.append(host)
        return out

    def _endpoint(self, host: str) -> tuple:
        """``host`` as the network sees it (the pool records there whether it answers)."""
        return self.target(host, self.settings.probe_username or "-").endpoint

    async def _probe_as(self, host: str, user: str) -> tuple[HostLogin, Inventory]:
        """Probe ``host`` as ``user``'s account there (AccessDenied: the user cannot have one)."""
        login = HostLogin(host, self.account_for(host, user))
        return login, await self._probe(login)

    async def _candidates(self, ctx: LaunchContext, request: LaunchRequest, reasons: Refusals) -> list[Candidate]:
        """Best fit across hosts (`best_fit`): every eligible host probed at once, as the
        user's account there. Without GPUs: reachable hosts in config order."""
        hosts = self._eligible(request, reasons)
        ctx.progress(f"probing {len(hosts)} host{'s' if len(hosts) != 1 else ''}")
        results = await probe_all({h: functools.partial(self._probe_as, h, ctx.user) for h in hosts},
                                  lambda h: self.pool.down(self._endpoint(h)))
        return rank(hosts, results, request, entry=self._ledger_entry(ctx.slug), hub=self.hub_id,
                    tolerance=self.tolerance, reasons=reasons)

    def start_budget(self, request: LaunchRequest) -> float:
        """The host budget plus opening the connections a launch needs (``connect_timeout``)."""
        return super().start_budget(request) + 2 * self.settings.connect_timeout

    def limits_resources(self, host: str) -> bool:
        return self.runtime_of(host).limits_resources

    async def _prepare(self, ctx: LaunchContext, placement: Placement, request: LaunchRequest,
                       spec: LaunchSpec) -> tuple[LaunchSpec, dict]:
        """The hub API reverse tunnel, the internal-SSL files and the host's runtime."""
        s, login, host = self.settings, placement.login, placement.host
        env = dict(spec.env)
        extra: dict[str, Any] = {"account": login.account}

        # the hub API: a reverse tunnel on the host's loopback, or the admin's reachable URL
        api = env.get("JUPYTERHUB_API_URL")
        if api:
            port = None
            if not s.hub_api_url:
                dest = hub_dest(api)
                try:
                    port = await self.ssh_transport(login).reverse_forward(*dest, holder=spec.session_dir)
                except TransportError as e:
                    raise BackendError(str(e)) from None
                extra.update(api_port=port, api_dest=list(dest))
                ctx.progress(f"hub API reachable on {host} through the SSH tunnel (port {port})")
            rebase_hub_urls(env, api, s.hub_api_url or None, port)

        # internal SSL: the hub's files for this server, copied over SFTP into the session
        runtime = self.runtime_of(host)
        prefix_parts = [runtime.prefix]
        files = read_ssl_files(env)
        if files:
            staging = certs_staging(spec.session_root, spec.slug)
            await self.move_certs(login, files, spec.session_root, staging)
            prefix_parts.insert(0, use_certs(env, spec.session_dir, staging))
            extra["certs"] = True

        try:
            cmd = server_command(runtime, spec.cmd, image=image_for(request.image_settings, runtime), env_names=list(env),
                                 session_dir=spec.session_dir, gpu_uuids=list(placement.gpu_uuids),
                                 label=spec.session_dir, cpu=request.cpu, memory_gb=request.memory)
        except ValueError as e:
            raise BackendError(f"cannot start on {host}: {e}") from None
        prefix_parts.append(spec.prefix)
        extra["runtime"] = runtime.kind
        return dataclasses.replace(spec, env=env, cmd=cmd, prefix=combined_prefix(*prefix_parts)), extra

    async def move_certs(self, login: HostLogin, files: dict[str, bytes], session_root: str, remote_dir: str) -> None:
        """Copy internal-SSL files (name → bytes) to ``remote_dir`` at ``login`` over SFTP
        (0700 directory, 0600 files). The launch script moves them into the session
        directory, so they go with it when the server stops."""
        transport = self.ssh_transport(login)
        timeout = self.settings.command_timeout
        try:
            await transport.sftp_put({}, session_root, timeout)  # the (0700) session root must exist
            await transport.sftp_put(files, remote_dir, timeout)
        except HostUnreachable as e:
            raise Unreachable(str(e)) from None
        except TransportError as e:
            raise BackendError(str(e)) from None

    async def _cleanup(self, login: HostLogin, session_dir: str, pid: int | None, claims: Sequence[str] = (),
                       data_link: str | None = None) -> None:
        """Also the SSL files' staging directory, when the launch failed before moving them."""
        await super()._cleanup(login, session_dir, pid, claims, data_link)
        root, _, slug = session_dir.rpartition("/")
        with contextlib.suppress(BackendError):
            await self._run(login, scripts.remove_tree_script(certs_staging(root, slug)), "cleaning up")

    # ------------------------------------------------------------------ running servers
    async def _reattach(self, transport: SSHTransport, state: dict) -> None:
        """The hub API tunnel on the saved remote port."""
        if state.get("api_port") and state.get("api_dest"):
            await transport.keep_reverse(int(state["api_port"]), str(state["api_dest"][0]), int(state["api_dest"][1]),
                                         holder=state["session_dir"])

    def _release_tunnels(self, session_dir: str) -> None:
        """Its hub API tunnel is no longer held by it (closed when no other server uses it),
        so its connection may become idle."""
        for transport in self.pool.transports():
            transport.release(session_dir)

    def _may_act_as(self, host: str, account: str, user: str) -> bool:
        """An account this backend uses on ``host``: the probe account, or the one ``user``'s
        servers run as (crash recovery reclaims nothing of any other account)."""
        if account == (self.settings.probe_username or None):
            return True
        try:
            return account == self.account_for(host, user or None)
        except BackendError:
            return False

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


__all__ = ["SSHBackend"]
