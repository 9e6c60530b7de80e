"""What a server on a remote host needs from the hub besides its launch script, as values:
the hub API URLs pointed at a reverse tunnel (or the admin's ``hub_api_url``), and the
internal-SSL files JupyterHub made for it (copied over SFTP into the session directory)."""

from __future__ import annotations

import shlex
from typing import Mapping
from urllib.parse import SplitResult, urlsplit, urlunsplit

from ..base import BackendError

#: environment variables holding the internal-SSL files JupyterHub gives a server
SSL_ENV = {
    "JUPYTERHUB_SSL_KEYFILE": "server.key",
    "JUPYTERHUB_SSL_CERTFILE": "server.crt",
    "JUPYTERHUB_SSL_CLIENT_CA": "ca.crt",
}
#: URLs on the hub's API a server calls; rewritten to the tunnel (or ``hub_api_url``)
HUB_URL_ENV = ("JUPYTERHUB_API_URL", "JUPYTERHUB_ACTIVITY_URL")


def hub_dest(url: str) -> tuple[str, int]:
    """(host, port) of the hub's API at ``url``: where a reverse tunnel leads."""
    u = urlsplit(url)
    if not u.hostname:
        raise BackendError(f"cannot tell the hub's address from JUPYTERHUB_API_URL {url!r}")
    return u.hostname, u.port or (443 if u.scheme == "https" else 80)


def rebase_hub_urls(env: dict[str, str], api_url: str, new_base: str | None, port: int | None) -> None:
    """Point ``env``'s hub URLs (`HUB_URL_ENV`, on the API at ``api_url``) at the tunnel
    ``port`` on the host's loopback, or at ``new_base`` (the admin's ``hub_api_url``)."""
    old = urlsplit(api_url)
    for name in HUB_URL_ENV:
        if name in env:
            env[name] = _rebase(env[name], old, new_base, port)


def _rebase(url: str, old: SplitResult, new_base: str | None, port: int | None) -> str:
    """``url`` (on the hub's API) pointed at the tunnel port on the host's loopback, or at
    ``new_base`` (the admin's ``hub_api_url``, which replaces the old API URL's prefix)."""
    u = urlsplit(url)
    if (u.scheme, u.netloc) != (old.scheme, old.netloc):
        return url
    if new_base is not None:
        old_api = urlunsplit((old.scheme, old.netloc, old.path.rstrip("/"), "", ""))
        rest = url[len(old_api):] if url.startswith(old_api) else u.path
        return new_base + rest
    return urlunsplit((u.scheme, f"127.0.0.1:{port}", u.path, u.query, u.fragment))


def read_ssl_files(env: Mapping[str, str]) -> dict[str, bytes]:
    """The internal-SSL files ``env`` names (file name on the host → bytes); {} without."""
    files = {}
    for var, fname in SSL_ENV.items():
        if env.get(var):
            try:
                with open(env[var], "rb") as f:
                    files[fname] = f.read()
            except OSError as e:
                raise BackendError(f"cannot read the internal SSL file {env[var]}: {e.strerror}") from None
    return files


def certs_staging(session_root: str, slug: str) -> str:
    """Where the SSL files wait on the host until the launch script moves them in."""
    return f"{session_root}/.{slug}.certs"


def use_certs(env: dict[str, str], session_dir: str, staging: str) -> str:
    """Point ``env``'s SSL variables at the files in ``session_dir``/certs; returns the shell
    text (for the launch script's prefix) that moves them there from ``staging``."""
    for var, fname in SSL_ENV.items():
        if env.get(var):
            env[var] = f"{session_dir}/certs/{fname}"
    return (f'mkdir -m 700 "$S/certs" && mv -f {shlex.quote(staging)}/* "$S/certs/" '
            f'&& rmdir {shlex.quote(staging)}')
