"""Submit-time check of an SSH storage mount: connect with the host key verified against the
admin's known_hosts, authenticate (typed password or the hub-managed key), SFTP-stat the path.

Returns ``None`` or a field message: "host unreachable", "host key not trusted for HOST",
"authentication failed", "path not found", "not a directory", "permission denied".
Nothing of the user's own SSH setup (agent, ~/.ssh/config, default keys) is used.
"""

from __future__ import annotations

import asyncio
import stat
from typing import Any

from .config import SSHStorageHost

HOST_UNREACHABLE = "host unreachable"
AUTH_FAILED = "authentication failed"
PATH_NOT_FOUND = "path not found"
NOT_A_DIRECTORY = "not a directory"
PERMISSION_DENIED = "permission denied"


def host_key_not_trusted(host: str) -> str:
    return f"host key not trusted for {host}"


def field_for(message: str) -> str:
    """The mount field a message is shown next to (``mounts[i].<field>``)."""
    if message in (AUTH_FAILED,):
        return "password"
    if message in (PATH_NOT_FOUND, NOT_A_DIRECTORY, PERMISSION_DENIED):
        return "path"
    return "host"


async def check_ssh(
    host: SSHStorageHost,
    user: str,
    path: str,
    *,
    password: str | None = None,
    client_key: Any = None,
    timeout: float = 10,
) -> str | None:
    """Stat ``path`` on ``host`` as ``user``; exactly one of ``password`` / ``client_key``
    (an asyncssh key object or a path)."""
    import asyncssh

    if (password is None) == (client_key is None):
        raise ValueError("give exactly one of password / client_key")
    try:
        known = asyncssh.read_known_hosts(host.known_hosts)
    except (OSError, ValueError):
        return host_key_not_trusted(host.address)
    options = dict(
        port=host.port,
        username=user,
        known_hosts=known,
        agent_path=None,
        config=[],
        client_keys=[client_key] if client_key is not None else [],
        password=password,
        preferred_auth="publickey" if client_key is not None else "password,keyboard-interactive",
        connect_timeout=timeout,
        login_timeout=timeout,
        keepalive_interval=0,
    )
    if password is not None:
        options["kbdint_auth"] = True

    async def run() -> str | None:
        async with asyncssh.connect(host.address, **options) as conn:
            async with conn.start_sftp_client() as sftp:
                try:
                    attrs = await sftp.stat(path)
                except asyncssh.SFTPNoSuchFile:
                    return PATH_NOT_FOUND
                except asyncssh.SFTPPermissionDenied:
                    return PERMISSION_DENIED
                if attrs.permissions is not None and not stat.S_ISDIR(attrs.permissions):
                    return NOT_A_DIRECTORY
                return None

    try:
        return await asyncio.wait_for(run(), timeout)
    except asyncssh.HostKeyNotVerifiable:
        return host_key_not_trusted(host.address)
    except asyncssh.PermissionDenied:
        return AUTH_FAILED
    except (asyncio.TimeoutError, OSError, asyncssh.Error):
        return HOST_UNREACHABLE
