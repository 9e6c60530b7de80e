"""An in-process TCP → unix-socket relay: how the hub reaches a server on its own machine.

Each accepted TCP connection opens its own connection to the unix socket and bytes are piped
both ways until both sides are done. The socket is connected per connection, so the relay may
start before the server has created its socket (a connection then is simply closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from typing import Awaitable, Callable, Tuple

log = logging.getLogger("gridspawner.host.relay")

_CHUNK = 64 * 1024


#: opens one upstream stream pair to the server (the SSH transport tunnels it over its
#: pooled connection); returns objects with the asyncio StreamReader / StreamWriter methods
#: the relay uses (read; write, drain, can_write_eof, write_eof, close)
Connector = Callable[[], Awaitable[Tuple[object, object]]]


class Relay:
    """A listening relay. ``port`` is the TCP port it listens on; ``close()`` stops it and
    drops its open connections. ``connect`` (optional) replaces the local unix-socket
    connection; because the listener belongs to the relay and not to a connection, the
    port stays the same when whatever ``connect`` uses (an SSH connection) is replaced."""

    def __init__(
        self,
        socket_path: str,
        host: str,
        on_close: Callable[[Relay], None] | None = None,
        connect: Connector | None = None,
    ):
        self.socket_path = socket_path
        self.host = host
        self.port = 0
        self._on_close = on_close
        self._connect = connect
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    @classmethod
    async def start(
        cls,
        socket_path: str,
        host: str = "127.0.0.1",
        port: int = 0,
        on_close: Callable[[Relay], None] | None = None,
        connect: Connector | None = None,
        ports: tuple[int, int] | None = None,
    ) -> Relay:
        """Listen on ``host:port``; when ``port`` is taken (not ours any more after a restart),
        fall back to a free port — inside ``ports`` (an inclusive range) when given.
        ``reuse_address`` lets a restarted hub take back its port while connections of the
        previous process linger in TIME_WAIT."""
        relay = cls(socket_path, host, on_close, connect)
        if port and ports and not ports[0] <= port <= ports[1]:
            port = 0  # the admin narrowed the range since: take a port inside it
        try:
            if port or not ports:
                relay._server = await asyncio.start_server(relay._handle, host, port, reuse_address=True)
            else:
                relay._server = await _listen_in_range(relay._handle, host, ports)
        except OSError as e:
            if not port or e.errno not in (errno.EADDRINUSE, errno.EACCES):
                raise
            log.warning("relay port %s:%d is taken; listening on a new port", host, port)
            if ports:
                relay._server = await _listen_in_range(relay._handle, host, ports)
            else:
                relay._server = await asyncio.start_server(relay._handle, host, 0, reuse_address=True)
        relay.port = relay._server.sockets[0].getsockname()[1]
        return relay

    @property
    def closed(self) -> bool:
        return self._server is None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        try:
            try:
                if self._connect is not None:
                    up_reader, up_writer = await self._connect()
                else:
                    up_reader, up_writer = await asyncio.open_unix_connection(self.socket_path)
            except Exception as e:  # OSError, or the connector's own (SSH channel refused, …)
                log.debug("relay to %s: no upstream connection: %s", self.socket_path, e)
                return  # server not (yet / any more) listening: close the client connection
            try:
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            finally:
                up_writer.close()
        except asyncio.CancelledError:
            pass
        finally:
            writer.close()
            self._tasks.discard(task)

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        if self._on_close is not None:
            self._on_close(self)
        server.close()
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 2)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except Exception:  # ConnectionError, OSError, or an SSH channel's error when the connection drops
        writer.close()


async def _listen_in_range(handler, host: str, ports: tuple[int, int]) -> asyncio.base_events.Server:
    """Listen on the first free port of the inclusive range ``ports``, starting at a random
    place in it (two hubs or a restart do not probe the same ports in the same order)."""
    import random

    lo, hi = ports
    span = hi - lo + 1
    start = random.randrange(span)
    last: OSError | None = None
    for i in range(span):
        port = lo + (start + i) % span
        try:
            return await asyncio.start_server(handler, host, port, reuse_address=True)
        except OSError as e:
            if e.errno not in (errno.EADDRINUSE, errno.EACCES):
                raise
            last = e
    raise OSError(errno.EADDRINUSE, f"no free port in {lo}-{hi} on {host}") from last


def port_is_free(host: str, port: int) -> bool:
    """Whether ``host:port`` can be bound now (used by tests and diagnostics)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True
