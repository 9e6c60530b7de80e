"""The transport seam: how the host backend reaches a host.

A `Transport` does two things only: run a POSIX sh script (sent on stdin of ``/bin/sh -s``,
so nothing secret is ever in an argv) and forward a local TCP port to a unix socket on the
host. `LocalTransport` is the hub's own machine; the ssh kind provides the same protocol over
one pooled SSH connection (``forward_local_port_to_path``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from typing import NamedTuple, Protocol, runtime_checkable

from ..base import AccessDenied, BackendError, Unreachable
from .relay import Relay


class TransportError(Exception):
    """The host could not be reached or the script could not be run (not: the script failed)."""


class HostUnreachable(TransportError):
    """The host did not answer: no route, connection refused, or no answer in time (the
    network went dark). Says nothing about the host's GPUs."""


class LoginRefused(TransportError):
    """The host answered but would not let this account in (its key was refused)."""


class RunResult(NamedTuple):
    exit_status: int
    stdout: str
    stderr: str


@runtime_checkable
class Forward(Protocol):
    """A listening forward: TCP ``port`` on the hub's side → a unix socket on the host."""

    port: int

    async def close(self) -> None: ...


class Transport(Protocol):
    """What the host backend needs from a host. Implementations must be safe to use from many
    coroutines at once."""

    async def run(self, script: str, timeout: float) -> RunResult:
        """Run ``script`` on stdin of ``/bin/sh -s`` with a minimal login-like environment
        (no variable of the hub's own process leaks into it). Raises TransportError when the
        host cannot be reached, asyncio.TimeoutError after ``timeout`` seconds."""

    async def forward(self, remote_socket_path: str, listen_host: str, listen_port: int = 0,
                      check: bool = True) -> Forward:
        """Listen on ``listen_host:listen_port`` (0: any free port; a taken port falls back to
        a free one) and connect each connection to ``remote_socket_path`` on the host.
        ``check``: reach the host first, so an unreachable one fails here (False: a relay
        rebuilt after a hub restart, which works once the host is back)."""

    async def close(self) -> None:
        """Close forwards and connections. Servers started on the host keep running."""


#: variables a script on the hub's machine starts with; the rest of the hub's environment
#: (CONFIGPROXY_AUTH_TOKEN, JUPYTERHUB_CRYPT_KEY, cloud credentials…) must not reach servers.
BASE_ENV_KEYS = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_ALL", "TZ", "TMPDIR")


async def run_script(transport: Transport, script: str, timeout: float, what: str, host: str) -> RunResult:
    """Run ``script`` through ``transport``, its failure as the backend error that says what
    went wrong on ``host`` (unreachable, login refused, timed out). Never logs the script
    (a launch script holds a token)."""
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


class LocalTransport:
    """Runs scripts on the hub's own machine as the hub's user; forwards with an in-process relay."""

    def __init__(self, shell: str = "/bin/sh"):
        self.shell = shell
        self._forwards: set[Relay] = set()

    async def run(self, script: str, timeout: float) -> RunResult:
        env = {k: os.environ[k] for k in BASE_ENV_KEYS if k in os.environ}
        env.setdefault("PATH", os.defpath)
        try:
            proc = await asyncio.create_subprocess_exec(
                self.shell,
                "-s",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                cwd="/",
                # its own session: a timeout kills the script's process group, never the hub's
                start_new_session=True,
            )
        except OSError as e:
            raise TransportError(f"cannot run {self.shell}: {e}") from e
        try:
            out, err = await asyncio.wait_for(proc.communicate(script.encode()), timeout)
        except BaseException:  # timeout or cancellation: do not leave the script running
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(proc.wait(), 5)
            raise
        return RunResult(proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"))

    async def forward(self, remote_socket_path: str, listen_host: str, listen_port: int = 0,
                      check: bool = True) -> Relay:
        """A relay to the local socket (``check``: nothing to connect first here)."""
        relay = await Relay.start(remote_socket_path, listen_host, listen_port, on_close=self._forwards.discard)
        self._forwards.add(relay)
        return relay

    async def close(self) -> None:
        for relay in list(self._forwards):
            await relay.close()
