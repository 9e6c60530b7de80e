"""The gridspawner service's settings (``c.GridService.*``) and the JupyterHub configuration
it needs, written by `enable_service` in jupyterhub_config.py.

The service — usage pages, REST API and CSV exports; later the notebook runs' pages — is a
JupyterHub service served from inside the hub's own process (see `gridspawner.service`
for why), on its own port, that JupyterHub knows as an external service: the proxy routes
``/services/gridspawner/`` to it, users log in to it through the hub (OAuth), tokens are
checked by the hub.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path
from typing import Any

from traitlets import Int, Unicode
from traitlets.config import Configurable

#: the service's name: its URL is /services/<name>/
SERVICE_NAME = "gridspawner"
#: read every user's usage records and sums (JupyterHub admins may always)
ADMIN_SCOPE = "custom:gridspawner:usage:admin"
#: the environment variable that gives the service's API token (else a token file)
TOKEN_ENV = "GRIDSPAWNER_SERVICE_TOKEN"
DEFAULT_TOKEN_FILE = "gridspawner_service_token"

CUSTOM_SCOPES = {
    ADMIN_SCOPE: {
        "description": "Read every user's gridspawner usage records and sums, and export them as CSV.",
    },
}


class GridService(Configurable):
    """Where the gridspawner service listens. Set by `enable_service`; see the admin guide."""

    name = Unicode(SERVICE_NAME, help="The service's name in JupyterHub (its pages are at /services/NAME/).").tag(
        config=True
    )
    ip = Unicode(
        "",
        help="""
        The address the service listens on, inside the hub's process. Empty: the service is
        off. ``127.0.0.1`` when the proxy runs on the hub's machine; the pod's address (or
        ``0.0.0.0``) when the proxy runs elsewhere, as in the Helm chart.
        """,
    ).tag(config=True)
    port = Int(10101, help="The port the service listens on.").tag(config=True)
    url = Unicode(
        "",
        help="""
        The URL the proxy forwards ``/services/NAME/`` to. Empty: ``http://IP:PORT`` (with
        ``127.0.0.1`` for an ``ip`` of ``0.0.0.0``).
        """,
    ).tag(config=True)

    @property
    def enabled(self) -> bool:
        return bool(self.ip)

    def service_url(self) -> str:
        if self.url:
            return self.url
        host = "127.0.0.1" if self.ip in ("0.0.0.0", "") else ("::1" if self.ip == "::" else self.ip)
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"


def service_token(token_file: str | os.PathLike | None = None) -> str:
    """The service's API token: ``$GRIDSPAWNER_SERVICE_TOKEN``, else the token file (made
    with a new random token, mode 0600, when missing). A token file that others may read
    is refused (ValueError)."""
    from_env = os.environ.get(TOKEN_ENV, "").strip()
    if from_env:
        return from_env
    path = Path(token_file or DEFAULT_TOKEN_FILE).resolve()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ValueError(f"{path}: the gridspawner service's token file must be private (chmod 600)")
    token = path.read_text().strip()
    if len(token) < 32:
        raise ValueError(f"{path}: the gridspawner service's token file holds no token (delete it to make one)")
    return token


def service_spec(name: str, url: str, token: str) -> dict[str, Any]:
    """The entry of ``c.JupyterHub.services``."""
    return {
        "name": name,
        "url": url,
        "api_token": token,
        "display": True,
        "info": {"description": "GPU usage, costs and quotas (gridspawner)"},
        # admin-operated: no "authorize this application" page on the way in
        "oauth_no_confirm": True,
        # an OAuth token of the service carries the admin scope where the user has it
        "oauth_client_allowed_scopes": sorted(CUSTOM_SCOPES),
    }


def _add_user_access(c: Any, name: str) -> None:
    """Every user may reach the service (``access:services!service=NAME`` in the user role)."""
    access = f"access:services!service={name}"
    jh = c.JupyterHub
    roles = list(jh.load_roles) if "load_roles" in jh else []
    for role in roles:
        if role.get("name") == "user":
            scopes = list(role.get("scopes") or ["self"])
            if access not in scopes:
                role["scopes"] = scopes + [access]
            break
    else:
        roles.append({"name": "user", "scopes": ["self", access]})
    jh.load_roles = roles


def enable_service(c: Any, *, ip: str = "127.0.0.1", port: int = 10101, url: str = "", name: str = SERVICE_NAME,
                   token_file: str | os.PathLike | None = None) -> None:
    """Turn on the gridspawner service in a jupyterhub_config.py (call it after your own
    ``c.JupyterHub.services`` and ``load_roles``, which it extends):

    - ``c.GridService``: where it listens (``ip``, ``port``) and ``url`` (see `GridService`);
    - ``c.JupyterHub.services``: the service, with its API token (`service_token`);
    - ``c.JupyterHub.custom_scopes``: ``custom:gridspawner:usage:admin``;
    - ``c.JupyterHub.load_roles``: the ``user`` role also gets
      ``access:services!service=NAME`` (every user may see their own usage).
    """
    settings = GridService(ip=ip, port=port, url=url, name=name)
    c.GridService.ip, c.GridService.port, c.GridService.url, c.GridService.name = ip, port, url, name
    jh = c.JupyterHub
    services = [s for s in (list(jh.services) if "services" in jh else []) if s.get("name") != name]
    jh.services = services + [service_spec(name, settings.service_url(), service_token(token_file))]
    scopes = dict(jh.custom_scopes) if "custom_scopes" in jh else {}
    scopes.update(CUSTOM_SCOPES)
    jh.custom_scopes = scopes
    _add_user_access(c, name)
