"""`ClusterSSH`: the SSH side of one Slurm backend — which account, which login node, how a
compute node is reached (through the login node as jump host), and running a command there.

Built on the SSH backend's pool (`SSHPool`: one pooled, host-key-verified asyncssh
connection per (host, account), reconnects, idle connections closed); this module only says
where to connect. Every command is counted by what it was for (``commands``), so tests and
benches can show what a poll round costs.
"""

from __future__ import annotations

import asyncio

from ..base import AccessDenied, BackendError, Unreachable
from ..host.ssh_pool import SSHPool
from ..host.ssh_transport import SSHTarget, SSHTransport
from ..host.transport import HostUnreachable, LoginRefused, TransportError
from ..ssh.settings import ACCOUNT
from .settings import SlurmSettings


class ClusterSSH:
    def __init__(self, settings: SlurmSettings):
        self.settings = settings
        self.pool = SSHPool(relay_ports=settings.relay_ports, max_sessions=settings.max_sessions,
                            idle_timeout=settings.connection_idle_timeout)
        #: commands run on the cluster, by what they were for
        self.commands: dict[str, int] = {}

    def account_for(self, user: str | None) -> str:
        """The cluster account of hub user ``user`` (None: the probe account)."""
        s = self.settings
        if "{" not in s.username:
            return s.username
        if user is None:
            return s.probe_username or ""
        account = s.username.format(username=user)
        if not ACCOUNT.fullmatch(account):
            raise AccessDenied(f"the user name {user!r} cannot be an account on the cluster; ask the admin "
                               "for a fixed account or a different user name")
        return account

    def _target(self, address: str, port: int, name: str, account: str, jump: SSHTarget | None) -> SSHTarget:
        s = self.settings
        return SSHTarget(name=name, address=address, port=port, username=account, known_hosts=s.known_hosts,
                         client_keys=s.client_keys, jump=jump, connect_timeout=s.connect_timeout,
                         keepalive_interval=s.keepalive_interval, keepalive_count_max=s.keepalive_count_max)

    def login_target(self, account: str, index: int = 0) -> SSHTarget:
        h = self.settings.login_hosts[index]
        jump = None
        if h.jump is not None:
            jump = self._target(h.jump.address, h.jump.port, h.jump.name,
                                h.jump.username.format(username=account) if h.jump.username else account, None)
        return self._target(h.address, h.port, h.name, account, jump)

    def node_transport(self, account: str, node: str, address: str, login: int = 0) -> SSHTransport:
        """The compute node, through the login node (its connection is the jump)."""
        return self.pool.transport(self._target(address, self.settings.node_port, node, account,
                                                self.login_target(account, login)))

    def count(self, what: str) -> None:
        self.commands[what] = self.commands.get(what, 0) + 1

    async def login_run(self, account: str, script: str, what: str, timeout: float | None = None) -> tuple[int, str, str]:
        """``script`` on a login node as ``account`` (the next login node when one does not
        answer): (exit status, stdout, stderr). Each try is bounded by ``timeout``
        (``command_timeout``)."""
        timeout = timeout or self.settings.command_timeout
        self.count(what)
        last: Exception | None = None
        # a connection found dropped is made again by the next try (the transport reconnects):
        # one more round over the login nodes, so a blip does not fail a stop or a launch
        for attempt in range(2):
            for i in range(len(self.settings.login_hosts)):
                transport = self.pool.transport(self.login_target(account, i))
                try:
                    r = await transport.run(script, timeout)
                    return r.exit_status, r.stdout, r.stderr
                except HostUnreachable as e:
                    last = e
                except LoginRefused as e:
                    raise AccessDenied(str(e)) from None
                except (TransportError, asyncio.TimeoutError) as e:
                    raise BackendError(f"{what} on the login node failed: {e or 'timed out'}") from None
        raise Unreachable(str(last))

    async def node_run(self, transport: SSHTransport, script: str, what: str, timeout: float) -> str:
        """``script`` on a compute node (``node_transport``); its stdout."""
        self.count(what)
        try:
            r = await transport.run(script, timeout)
        except LoginRefused as e:
            raise AccessDenied(str(e)) from None
        except HostUnreachable as e:
            raise Unreachable(str(e)) from None
        except (TransportError, asyncio.TimeoutError) as e:
            raise BackendError(f"{what} on {transport.target.name} failed: {e or 'timed out'}") from None
        return r.stdout

    def release(self, holder: str) -> None:
        """``holder``'s server ended: the hub API tunnels only it used are closed."""
        for transport in self.pool.transports():
            transport.release(holder)

    async def close(self) -> None:
        await self.pool.close()
