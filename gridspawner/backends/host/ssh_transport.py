"""The SSH transport: the host backend's `Transport` over one pooled asyncssh connection.

One `SSHTransport` per (host, remote account). Its connection is made on first use, kept
alive (``keepalive_interval``), reused for every probe, claim, launch, poll and stop, and
made again when it drops — on the next use, and at once in the background while servers
depend on it (relays, the hub API reverse forward).

Forwards to a server's unix socket are `Relay` listeners owned by the hub process, not by
the SSH connection: each accepted TCP connection opens a ``direct-streamlocal`` channel
(what ``forward_local_port_to_path`` does per connection) over the *current* connection.
So when the SSH connection is replaced, the listening port — and the proxy's route to it —
stays the same.

The hub API reverse forward (``forward_remote_port`` on the host's loopback) is bound to a
connection; after a reconnect it is asked for again on the same remote port, because the
running server has that port in its JUPYTERHUB_API_URL.

Host keys are always checked against ``known_hosts``; an unknown or changed key refuses the
connection with a message naming the host.

Nothing waits on a silent host for long: connecting, and every request on the connection
that needs the host's answer, gives up after ``connect_timeout`` and says the host timed out
(the connection is dropped and the pool marks the host as not answering, `ssh_pool.SSHPool`);
a script's output is bounded by the caller's timeout. The pool closes connections nothing
depends on after its idle timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import TYPE_CHECKING, Any

import asyncssh

from .relay import Relay
from .ssh_target import SSHTarget, connect_error
from .transport import HostUnreachable, RunResult, TransportError

if TYPE_CHECKING:  # the pool makes the transports and hands itself to each
    from .ssh_pool import SSHPool

log = logging.getLogger("gridspawner.host.ssh")
# asyncssh logs every channel (each poll) at INFO; keep the hub's log readable unless the
# admin configured asyncssh's logger themselves
if logging.getLogger("asyncssh").level == logging.NOTSET:
    logging.getLogger("asyncssh").setLevel(logging.WARNING)


class SSHTransport:
    """`Transport` over one pooled SSH connection to ``target``. Safe for many coroutines.

    Every request to the host is bounded: connecting and logging in, and each request on the
    open connection that waits for the host's answer (opening a session, a channel to a
    server's socket, SFTP, the hub API tunnel) by ``connect_timeout``; a script's output by
    the caller's timeout. A request that gets no answer in time drops the connection (the
    next use connects again) and marks the host as not answering in the pool."""

    #: after a failed login (refused key, untrusted host key), further attempts of this
    #: account fail at once for this long (then doubles, up to the maximum). A host that does
    #: not answer at all is the pool's business (`SSHPool.down`), for every account at once.
    retry_after = 1.0
    retry_max = 10.0

    def __init__(self, target: SSHTarget, pool: SSHPool):
        self.target = target
        self.pool = pool
        self._conn: asyncssh.SSHClientConnection | None = None
        self._lock = asyncio.Lock()
        self._relays: set[Relay] = set()
        self._reverse: dict[int, tuple[str, int]] = {}  # remote port -> (dest host, dest port)
        self._reverse_listeners: dict[int, Any] = {}
        self._reverse_holders: dict[int, set[str]] = {}  # remote port -> servers using it
        self._failed_at = 0.0
        self._backoff = 0.0
        self._last_error: TransportError | None = None
        self._watcher: asyncio.Task | None = None
        self._reconnector: asyncio.Task | None = None
        self._closed = False
        self._busy = 0  # requests in progress
        self.last_used = time.monotonic()
        self.connects = 0  # connections this transport made
        # sshd allows MaxSessions (default 10) sessions per connection: stay below it
        self._sessions = asyncio.Semaphore(pool.max_sessions)

    # ------------------------------------------------------------------ the connection
    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    @property
    def in_use(self) -> bool:
        """Whether something depends on the connection: a relay to a server, a hub API tunnel
        a server holds, or a request in progress. An idle connection may be closed."""
        return bool(self._relays or self._reverse or self._busy)

    def _touch(self) -> None:
        self.last_used = time.monotonic()

    async def connection(self) -> asyncssh.SSHClientConnection:
        """The live connection, connecting first if needed; TransportError when it cannot."""
        conn = self._conn
        if conn is not None and not conn.is_closed():
            return conn
        async with self._lock:
            conn = self._conn
            if conn is not None and not conn.is_closed():
                return conn
            if self._closed:
                raise TransportError(f"the connection to {self.target.name} is closed")
            down = self.pool.down(self.target.endpoint)
            if down is not None and down.retry_in(time.monotonic()) > 0:
                raise HostUnreachable(down.error)
            if self._last_error is not None and time.monotonic() < self._failed_at + self._backoff:
                raise type(self._last_error)(str(self._last_error))
            try:
                conn = await self._connect()
            except HostUnreachable as e:
                self.pool.note_failure(self.target.endpoint, str(e))
                raise
            except TransportError as e:
                self._failed_at = time.monotonic()
                self._backoff = min(self.retry_max, (self._backoff * 2) or self.retry_after)
                self._last_error = e
                raise
            self._backoff, self._last_error = 0.0, None
            self.pool.note_success(self.target.endpoint)
            self._conn = conn
            self._touch()
            self._watcher = asyncio.ensure_future(self._watch(conn))
            await self._restore_reverse(conn)
            return conn

    async def _connect(self) -> asyncssh.SSHClientConnection:
        t = self.target
        if not os.path.isfile(t.known_hosts):
            msg = (f"refusing to connect to {t.where()}: the known_hosts file {t.known_hosts} does not exist "
                   "(host keys are always verified; create it, e.g. with ssh-keyscan, and check the keys)")
            log.error("%s", msg)
            raise TransportError(msg)
        tunnel: Any = ()
        if t.jump is not None:
            tunnel = await self.pool.transport(t.jump).connection()
        kwargs: dict[str, Any] = dict(
            port=t.port,
            username=t.username,
            known_hosts=t.known_hosts,
            tunnel=tunnel,
            connect_timeout=t.connect_timeout,
            keepalive_interval=t.keepalive_interval,
            keepalive_count_max=t.keepalive_count_max,
            config=None,  # never read ~/.ssh/config: only what the admin set here counts
            login_timeout=t.connect_timeout,
            agent_forwarding=False,
            x11_forwarding=False,
        )
        if t.client_keys is not None:
            kwargs["client_keys"] = list(t.client_keys)
            kwargs["agent_path"] = None
        try:
            conn = await asyncio.wait_for(asyncssh.connect(t.address, **kwargs), t.connect_timeout)
        except (asyncssh.Error, OSError, asyncio.TimeoutError, ValueError) as e:
            err = connect_error(t, e)
            log.warning("%s", err)
            raise err from None
        self.pool.handshakes += 1
        self.connects += 1
        log.info("connected to %s", t.where())
        return conn

    async def _answer(self, conn: asyncssh.SSHClientConnection, request: Any, what: str) -> Any:
        """Await ``request`` (one that waits for the host's answer) for at most
        ``connect_timeout``. No answer: the connection is dropped, the host marked as not
        answering, and HostUnreachable says the host timed out."""
        limit = self.target.connect_timeout
        try:
            result = await asyncio.wait_for(request, limit)
        except asyncio.TimeoutError:
            msg = f"{self.target.name} timed out: no answer within {limit:g} s ({what})"
            log.warning("%s; dropping the connection", msg)
            self._lost(conn)
            self.pool.note_failure(self.target.endpoint, msg)
            raise HostUnreachable(msg) from None
        self.pool.note_success(self.target.endpoint)
        return result

    async def _watch(self, conn: asyncssh.SSHClientConnection) -> None:
        """Notice a dropped connection; while servers depend on it, reconnect at once."""
        with contextlib.suppress(Exception):
            await conn.wait_closed()
        if self._closed or conn is not self._conn:
            return
        self._reverse_listeners.clear()
        if self._relays or self._reverse:
            log.warning("connection to %s dropped; reconnecting", self.target.where())
            if self._reconnector is None or self._reconnector.done():
                self._reconnector = asyncio.ensure_future(self._reconnect())

    async def _reconnect(self) -> None:
        delay = 0.2
        while not self._closed and (self._relays or self._reverse):
            try:
                await self.connection()
                return
            except TransportError as e:
                log.info("reconnect to %s: %s", self.target.name, e)
            await asyncio.sleep(delay)
            delay = min(self.retry_max, delay * 2)

    async def _restore_reverse(self, conn: asyncssh.SSHClientConnection) -> None:
        for port, (host, dport) in list(self._reverse.items()):
            try:
                listener = await self._answer(conn, conn.forward_remote_port("127.0.0.1", port, host, dport),
                                              "asking for the hub API tunnel again")
                self._reverse_listeners[port] = listener
            except (asyncssh.Error, OSError, TransportError) as e:
                log.error("could not forward port %d on %s to %s:%d again: %s", port, self.target.name, host, dport, e)

    def _lost(self, conn: asyncssh.SSHClientConnection | None) -> None:
        """A use of ``conn`` failed as if it were gone: drop it so the next use reconnects."""
        if conn is not None and conn is self._conn:
            with contextlib.suppress(Exception):
                conn.abort()

    async def _acquire_session(self, deadline: float) -> None:
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            raise asyncio.TimeoutError()
        await asyncio.wait_for(self._sessions.acquire(), left)

    # ------------------------------------------------------------------ Transport
    async def run(self, script: str, timeout: float) -> RunResult:
        """Run ``script`` on stdin of ``/bin/sh -s`` in a session of the pooled connection
        (at most ``max_sessions`` at once; the others wait, inside ``timeout``). Opening the
        session must be answered within ``connect_timeout``; the whole run ends after ``timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self._busy += 1
        try:
            await self._acquire_session(deadline)
            try:
                return await self._run(script, deadline)
            finally:
                self._sessions.release()
        finally:
            self._busy -= 1
            self._touch()

    async def _run(self, script: str, deadline: float) -> RunResult:
        conn = await self.connection()
        try:
            proc = await self._answer(conn, conn.create_process("/bin/sh -s", encoding="utf-8", errors="replace"),
                                      "opening a session")
        except asyncssh.ChannelOpenError as e:
            self._lost(conn)
            raise TransportError(f"{self.target.name} refused a session: {e.reason}") from None
        except (asyncssh.Error, OSError) as e:
            self._lost(conn)
            raise HostUnreachable(f"connection to {self.target.name} failed: {e}") from None
        try:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise asyncio.TimeoutError()
            out, err = await asyncio.wait_for(proc.communicate(script), left)
        except BaseException as e:
            with contextlib.suppress(Exception):
                proc.send_signal("KILL")
            with contextlib.suppress(Exception):
                proc.close()
            if isinstance(e, (asyncssh.Error, OSError, BrokenPipeError)):
                self._lost(conn)
                raise HostUnreachable(f"connection to {self.target.name} was lost: {e}") from None
            raise
        status = proc.exit_status
        if status is None:
            if proc.exit_signal is None and conn.is_closed():
                raise HostUnreachable(f"connection to {self.target.name} was lost while a script ran")
            status = 128 + 9 if proc.exit_signal else -1
        return RunResult(status, out or "", err or "")

    async def _open_socket(self, path: str):
        self._busy += 1
        try:
            conn = await self.connection()
            try:
                return await self._answer(conn, conn.open_unix_connection(path), "opening a channel to the server")
            except asyncssh.ChannelOpenError:
                raise  # the server is not listening (yet / any more): the relay closes the client
            except (asyncssh.Error, OSError):
                self._lost(conn)
                raise
        finally:
            self._busy -= 1
            self._touch()

    async def forward(
        self, remote_socket_path: str, listen_host: str, listen_port: int = 0, check: bool = True
    ) -> Relay:
        """A relay on ``listen_host:listen_port`` (inside the pool's ``relay_ports`` when set)
        whose connections go to ``remote_socket_path`` over this transport's connection.
        ``check``: connect first, so an unreachable host fails here and not per connection."""
        if check:
            await self.connection()
        relay = await Relay.start(
            remote_socket_path,
            listen_host,
            listen_port,
            on_close=self._relays.discard,
            connect=lambda: self._open_socket(remote_socket_path),
            ports=self.pool.relay_ports,
        )
        self._relays.add(relay)
        self._touch()
        return relay

    def _hold_reverse(self, port: int, holder: str | None) -> None:
        self._reverse_holders.setdefault(port, set()).add(holder or "")

    async def reverse_forward(self, dest_host: str, dest_port: int, remote_port: int = 0,
                              holder: str | None = None) -> int:
        """Listen on the host's 127.0.0.1 (``remote_port``, 0 = any; one per destination is
        shared by every server of this connection) and connect each connection to
        ``dest_host:dest_port`` from the hub. Kept across reconnects while a ``holder`` (a
        server's session directory) uses it: `release` it when that server ends. Returns the port."""
        self._busy += 1
        try:
            conn = await self.connection()
            for port, dest in self._reverse.items():
                if dest == (dest_host, dest_port) and (remote_port in (0, port)) and port in self._reverse_listeners:
                    self._hold_reverse(port, holder)
                    return port
            try:
                listener = await self._answer(conn, conn.forward_remote_port("127.0.0.1", remote_port, dest_host, dest_port),
                                              "opening the hub API tunnel")
            except (asyncssh.Error, OSError) as e:
                raise TransportError(
                    f"{self.target.name} refused to forward port {remote_port or '(any)'} to the hub: {e}"
                ) from None
            port = listener.get_port() or remote_port
            self._reverse[port] = (dest_host, dest_port)
            self._reverse_listeners[port] = listener
            self._hold_reverse(port, holder)
            return port
        finally:
            self._busy -= 1
            self._touch()

    async def keep_reverse(self, remote_port: int, dest_host: str, dest_port: int, holder: str | None = None) -> None:
        """Take over a reverse forward an earlier hub process made (restore): asked for again
        on the same remote port now if the host answers, else with the next connection, and
        after every reconnect. Never raises (the host may be down)."""
        self._reverse.setdefault(remote_port, (dest_host, dest_port))
        self._hold_reverse(remote_port, holder)
        try:
            conn = await self.connection()
        except TransportError:
            return
        if remote_port not in self._reverse_listeners:
            try:
                self._reverse_listeners[remote_port] = await self._answer(
                    conn, conn.forward_remote_port("127.0.0.1", remote_port, dest_host, dest_port),
                    "asking for the hub API tunnel again")
            except (asyncssh.Error, OSError, TransportError) as e:
                log.error("could not forward port %d on %s to the hub again: %s", remote_port, self.target.name, e)

    def release(self, holder: str) -> None:
        """``holder``'s server has ended: close the hub API tunnels no other server uses."""
        for port, holders in list(self._reverse_holders.items()):
            holders.discard(holder)
            if holders:
                continue
            del self._reverse_holders[port]
            self._reverse.pop(port, None)
            listener = self._reverse_listeners.pop(port, None)
            if listener is not None:
                with contextlib.suppress(Exception):
                    listener.close()

    async def sftp_put(self, files: dict[str, bytes], remote_dir: str, timeout: float = 30.0) -> None:
        """Create ``remote_dir`` (0700) and write each name → content into it (0600) over SFTP,
        within ``timeout`` seconds (the SFTP session must open within ``connect_timeout``)."""
        deadline = asyncio.get_running_loop().time() + timeout
        self._busy += 1
        try:
            await self._acquire_session(deadline)
            try:
                await self._sftp_put(files, remote_dir, deadline)
            finally:
                self._sessions.release()
        except asyncio.TimeoutError:
            raise TransportError(f"copying files to {self.target.name} did not finish within {timeout:g} s") from None
        finally:
            self._busy -= 1
            self._touch()

    async def _sftp_put(self, files: dict[str, bytes], remote_dir: str, deadline: float) -> None:
        conn = await self.connection()
        try:
            sftp = await self._answer(conn, conn.start_sftp_client(), "opening SFTP")
        except (asyncssh.Error, OSError) as e:
            raise TransportError(f"copying files to {self.target.name} failed: {e}") from None
        try:
            left = deadline - asyncio.get_running_loop().time()
            await asyncio.wait_for(_put(sftp, files, remote_dir), max(left, 0.001))
        except asyncio.TimeoutError:
            self._lost(conn)  # the channel's state is unknown: start over with a new connection
            raise
        except (asyncssh.Error, OSError) as e:
            raise TransportError(f"copying files to {self.target.name} failed: {e}") from None
        finally:
            sftp.exit()

    async def close_idle(self) -> None:
        """Close the connection (the pool found it idle); the next use connects again."""
        conn, self._conn = self._conn, None
        if self._watcher is not None:
            self._watcher.cancel()
        self._reverse_listeners.clear()
        if conn is not None:
            log.info("closing the idle connection to %s", self.target.where())
            conn.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.wait_closed(), 5)

    async def close(self) -> None:
        self._closed = True
        for relay in list(self._relays):
            await relay.close()
        for task in (self._reconnector, self._watcher):
            if task is not None:
                task.cancel()
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.wait_closed(), 5)


async def _put(sftp: Any, files: dict[str, bytes], remote_dir: str) -> None:
    with contextlib.suppress(asyncssh.SFTPFailure):
        await sftp.mkdir(remote_dir, asyncssh.SFTPAttrs(permissions=0o700))
    await sftp.chmod(remote_dir, 0o700)
    for name, data in files.items():
        path = remote_dir.rstrip("/") + "/" + name
        async with sftp.open(path, "wb", asyncssh.SFTPAttrs(permissions=0o600)) as f:
            await f.write(data)
        await sftp.chmod(path, 0o600)
