"""The pool of SSH transports of one ssh backend: which hosts answer, and closing idle connections.

One `SSHTransport` per (host, remote account) lives here for the life of the backend; its
*connection* does not. Two things are decided for all accounts at once:

**Hosts that do not answer.** A host is one network endpoint (address, port, gateway),
whichever account connects to it. When a connection to it times out, is refused, or an open
connection stops answering (a request waits longer than ``connect_timeout``), the host is
*down*: further connection attempts to it fail at once, for any account, for a back-off that
starts at 1 s and doubles up to 10 s; then one attempt is made again. Any success clears it.
The placement of a spawn does not wait for a down host beyond the hosts that answer (see
`SSHBackend._host_order`), so one dark host does not delay spawns on the others.

**Idle connections.** A connection is closed after ``idle_timeout`` seconds without use when
nothing depends on it: no relay to a server (each server this hub knows has one), no hub API
tunnel held by a server, no script or channel being opened, and it is not the gateway of an
open connection. The background GPU probe uses the probe account's connections every
``capacity_refresh_interval`` seconds, so those stay open as long as that interval is shorter.
Connections therefore stay O(running servers + probe accounts), not one per user ever seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from .ssh_transport import SSHTarget, SSHTransport

log = logging.getLogger("gridspawner.host.ssh")


@dataclass
class Down:
    """A host that did not answer: when, why, and how long connection attempts wait."""

    since: float
    failed_at: float
    backoff: float
    error: str

    def retry_in(self, now: float) -> float:
        return max(0.0, self.failed_at + self.backoff - now)


class SSHPool:
    """Transports by target: one per (address, port, account, keys, gateway).

    ``handshakes`` counts SSH connections made (each is a key exchange + authentication),
    so tests and benches can prove that polling reuses connections; ``idle_closed`` counts
    connections closed for being idle."""

    #: the back-off of a host that does not answer: first wait, longest wait (seconds)
    retry_after = 1.0
    retry_max = 10.0

    def __init__(self, relay_ports: tuple[int, int] | None = None, max_sessions: int = 8,
                 idle_timeout: float | None = 120.0):
        self.relay_ports = relay_ports
        self.max_sessions = max_sessions
        self.idle_timeout = idle_timeout
        self.handshakes = 0
        self.idle_closed = 0
        self._transports: dict[tuple, SSHTransport] = {}
        self._down: dict[tuple, Down] = {}
        self._reaper: asyncio.Task | None = None
        self._closed = False

    def transport(self, target: SSHTarget) -> SSHTransport:
        t = self._transports.get(target.key)
        if t is None:
            t = self._transports[target.key] = SSHTransport(target, self)
        self._start_reaper()
        return t

    def transports(self) -> list[SSHTransport]:
        return list(self._transports.values())

    def open_connections(self) -> int:
        """SSH connections open now (tests and benches)."""
        return sum(1 for t in self._transports.values() if t.connected)

    # ------------------------------------------------------------------ hosts that do not answer
    def down(self, endpoint: tuple) -> Down | None:
        """The host's failure while it does not answer; None when it answers (or was never tried)."""
        return self._down.get(endpoint)

    def note_failure(self, endpoint: tuple, error: str) -> Down:
        now = time.monotonic()
        d = self._down.get(endpoint)
        if d is None:
            d = self._down[endpoint] = Down(since=now, failed_at=now, backoff=self.retry_after, error=error)
        else:
            d.failed_at, d.error = now, error
            d.backoff = min(self.retry_max, d.backoff * 2) if d.retry_in(now) <= 0 else d.backoff
        return d

    def note_success(self, endpoint: tuple) -> None:
        if self._down.pop(endpoint, None) is not None:
            log.info("%s answers again", endpoint[0])

    # ------------------------------------------------------------------ idle connections
    def _start_reaper(self) -> None:
        if self._reaper is not None or self._closed or not self.idle_timeout:
            return
        try:
            self._reaper = asyncio.get_running_loop().create_task(self._reap())
        except RuntimeError:  # no loop yet (settings checks): started by the first use in one
            self._reaper = None

    async def _reap(self) -> None:
        interval = max(0.05, min(self.idle_timeout / 2, 15.0))
        while not self._closed:
            await asyncio.sleep(interval)
            with contextlib.suppress(Exception):  # never let one bad close end the reaper
                await self.close_idle()

    async def close_idle(self, now: float | None = None) -> int:
        """Close every connection idle for ``idle_timeout`` that nothing depends on; returns how many."""
        now = time.monotonic() if now is None else now
        gateways = {t.target.jump.key for t in self._transports.values() if t.connected and t.target.jump}
        closed = 0
        for t in list(self._transports.values()):
            if not t.connected or t.in_use or t.target.key in gateways:
                continue
            if now - t.last_used < self.idle_timeout:
                continue
            await t.close_idle()
            closed += 1
        self.idle_closed += closed
        return closed

    async def close(self) -> None:
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
        for t in list(self._transports.values()):
            await t.close()
        self._transports.clear()
