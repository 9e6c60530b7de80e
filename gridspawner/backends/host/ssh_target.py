"""Where and as whom an SSH connection goes (`SSHTarget`), and what a failed connect means
(`connect_error`: the `TransportError` of the right kind, naming the host)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import asyncssh

from .transport import HostUnreachable, LoginRefused, TransportError


@dataclass(frozen=True)
class SSHTarget:
    """Where and as whom to connect. ``name`` is the host's name in messages; ``jump`` a
    gateway to connect through first (its own pooled connection)."""

    name: str
    address: str
    port: int
    username: str
    known_hosts: str
    client_keys: tuple[str, ...] | None = None  # None: asyncssh's defaults (~/.ssh/id_*, agent)
    jump: "SSHTarget | None" = None
    connect_timeout: float = 10.0
    keepalive_interval: float = 15.0
    keepalive_count_max: int = 3

    @property
    def endpoint(self) -> tuple:
        """The host as the network sees it (the same for every account): where a failure to
        answer is recorded."""
        return (self.address, self.port, self.jump.endpoint if self.jump else None)

    @property
    def key(self) -> tuple:
        return (self.address, self.port, self.username, self.client_keys, self.known_hosts,
                self.jump.key if self.jump else None)

    def where(self) -> str:
        via = f" via {self.jump.name}" if self.jump else ""
        return f"{self.name} ({self.username}@{self.address}:{self.port}{via})"


def connect_error(target: SSHTarget, e: BaseException) -> TransportError:
    """The TransportError (of the right kind) for a failed connect to ``target``."""
    where = target.where()
    if isinstance(e, asyncssh.HostKeyNotVerifiable):
        return TransportError(
            f"refusing to connect to {where}: its host key is not trusted ({e.reason}). The key is unknown or "
            f"has changed since it was added to {target.known_hosts}; check the host, then update that file"
        )
    if isinstance(e, asyncssh.PermissionDenied):
        return LoginRefused(f"cannot log in to {where}: the key was refused")
    if isinstance(e, (asyncio.TimeoutError, TimeoutError)):
        return HostUnreachable(f"cannot reach {where}: timed out, no answer within {target.connect_timeout:g} s")
    if isinstance(e, asyncssh.ConnectionLost):
        return HostUnreachable(f"cannot reach {where}: the connection was lost ({e.reason})")
    if isinstance(e, asyncssh.Error):
        return TransportError(f"SSH connection to {where} failed: {e.reason}")
    if isinstance(e, OSError):
        return HostUnreachable(f"cannot reach {where}: {e.strerror or e}")
    return TransportError(f"SSH connection to {where} failed: {e}")
