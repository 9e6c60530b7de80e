"""The relay of each running server, by session directory: a local TCP port forwarded to the
server's unix socket on its host (or compute node). One per session: a new one replaces a
leftover of the session's previous server. Shared by the host and Slurm backends.
"""

from __future__ import annotations

from ..base import BackendError
from .transport import Forward, Transport, TransportError


class SessionForwards:
    def __init__(self) -> None:
        self._by_session: dict[str, Forward] = {}

    async def keep(self, session_dir: str, forward: Forward) -> None:
        """``forward`` is the session's relay now (a leftover one is closed)."""
        await self.drop(session_dir)
        self._by_session[session_dir] = forward

    async def reopen(self, transport: Transport, session_dir: str, socket: str, listen_host: str, port: int,
                     where: str) -> Forward:
        """After a hub restart: the session's relay while it is open, else a new one on the
        saved ``port`` (made even while the host cannot be reached: it works once it can).
        ``where`` names the server in the error (``on gpu1``, ``of job 42``)."""
        forward = self._by_session.get(session_dir)
        if forward is not None and not getattr(forward, "closed", False):
            return forward
        try:
            forward = await transport.forward(socket, listen_host, port, check=False)
        except (OSError, TransportError) as e:
            raise BackendError(f"could not forward a port to the server {where}: {e}") from None
        self._by_session[session_dir] = forward
        return forward

    async def drop(self, session_dir: str) -> None:
        forward = self._by_session.pop(session_dir, None)
        if forward is not None:
            await forward.close()

    async def close(self) -> None:
        for session_dir in list(self._by_session):
            await self.drop(session_dir)
