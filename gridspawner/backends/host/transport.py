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
import sys
from typing import NamedTuple, Protocol, Sequence, runtime_checkable

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


#: signals a script and the servers it starts must get with their default action: the stop
#: ladder's (INT, TERM; KILL cannot be ignored), a terminal's or service manager's (HUP,
#: QUIT) and PIPE. A hub started by ``nohup``, from a shell without job control or by some
#: service managers ignores some of them, an ignored disposition survives exec, and a
#: non-interactive sh cannot reset a signal ignored on entry (POSIX) — so a server would
#: shrug off the ladder's SIGINT and every stop would wait for the escalation.
CHILD_DEFAULT_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGPIPE)

#: what the exec wrapper resets: those, and SIGXFSZ, which subprocess's ``restore_signals``
#: resets for any child but the wrapper's own interpreter ignores again as it starts (as it
#: does SIGPIPE)
WRAPPER_RESETS = (*CHILD_DEFAULT_SIGNALS, signal.SIGXFSZ)

#: the exec wrapper that gives them back (argv: the signal numbers joined by ",", then the
#: command): default actions, unblocked, then exec.
RESET_SIGNALS_AND_EXEC = (
    "import os, signal, sys\n"
    "sigs = [int(n) for n in sys.argv[1].split(',')]\n"
    "for n in sigs: signal.signal(n, signal.SIG_DFL)\n"
    "signal.pthread_sigmask(signal.SIG_UNBLOCK, sigs)\n"
    "os.execvp(sys.argv[2], sys.argv[2:])\n"
)


def signals_to_reset() -> tuple[int, ...]:
    """The `CHILD_DEFAULT_SIGNALS` a child started now from this thread would not get with
    their default action: ignored in this process, or blocked in this thread (what a fork
    inherits). A handled signal is reset by exec, and SIGPIPE, which Python itself ignores,
    by subprocess's ``restore_signals``: neither counts unless blocked."""
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    return tuple(s for s in CHILD_DEFAULT_SIGNALS
                 if s in blocked or (s != signal.SIGPIPE and signal.getsignal(s) == signal.SIG_IGN))


def child_argv(argv: Sequence[str]) -> list[str]:
    """``argv`` to start a child with default dispositions of `CHILD_DEFAULT_SIGNALS`: as is
    when it gets them anyway (nothing to pay), else behind `RESET_SIGNALS_AND_EXEC` run by
    this interpreter (``-I -S``: no site, no environment; about 10 ms), resetting all of
    `WRAPPER_RESETS`.

    Why an exec wrapper: ``preexec_fn`` is not safe in a process with threads (the hub
    has executor threads: a child may deadlock between fork and exec) and `signal.signal`
    works in the main thread only; subprocess offers no way to set dispositions
    (``posix_spawn``'s ``setsigdef`` is out of asyncio's reach); the shell cannot do it; and
    changing the hub's own dispositions is not ours to do. Without ``sys.executable`` (an
    embedded interpreter) ``argv`` is returned as is."""
    reset = signals_to_reset()
    if not reset or not sys.executable:
        return list(argv)
    return [sys.executable, "-I", "-S", "-c", RESET_SIGNALS_AND_EXEC, ",".join(str(int(s)) for s in WRAPPER_RESETS), *argv]


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
                *child_argv((self.shell, "-s")),  # the servers it starts must obey the stop ladder
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
