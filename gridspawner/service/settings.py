"""Turning the gridspawner service on (``enable_service`` in jupyterhub_config.py) and what
the hub hands over to it when it starts.

The service is a JupyterHub managed service: the hub starts it with its own API token and
OAuth client in the environment (``JUPYTERHUB_*``), and restarts it if it dies. What it
needs of gridspawner's configuration — the usage database's URL, the time zone, prices and
quotas — the hub adds to the service's environment at start-up, once the configuration is
validated (`hand_over`, called by `gridspawner.startup`): one JSON value in
``GRIDSPAWNER_SERVICE_SETTINGS``, never in argv or a file (the URL may carry a password).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from ..usage.names import SERVICE_NAME  # the service's name: its pages are at /services/<name>/

#: read every user's usage records and sums
ADMIN_SCOPE = "custom:gridspawner:usage:admin"
#: the role `enable_service` makes for ``admin_users`` / ``admin_groups``
ADMIN_ROLE = "gridspawner-usage-admins"
SETTINGS_ENV = "GRIDSPAWNER_SERVICE_SETTINGS"
#: the address the service listens on when it is not the host of its URL (`enable_service`'s ``bind``)
BIND_ENV = "GRIDSPAWNER_SERVICE_BIND"
DEFAULT_PORT = 10101
#: the hub page templates gridspawner extends (the home page's stop notes)
HUB_TEMPLATES = str(Path(__file__).parent / "hub_templates")

CUSTOM_SCOPES = {
    ADMIN_SCOPE: {"description": "Read every user's gridspawner usage records and sums, and export them as CSV."},
}


def service_spec(name: str, port: int, url: str | None = None, bind: str | None = None) -> dict[str, Any]:
    """The entry of ``c.JupyterHub.services``."""
    spec: dict[str, Any] = {
        "name": name,
        "url": url or f"http://127.0.0.1:{port}",
        "command": [sys.executable, "-m", "gridspawner.service"],
        "display": True,
        "info": {"description": "GPU usage, costs and quotas (gridspawner)"},
        # the hub's own pages: no "authorize this application" step on the way in
        "oauth_no_confirm": True,
        # the service's OAuth tokens carry the admin scope where the user holds it
        "oauth_client_allowed_scopes": [ADMIN_SCOPE],
    }
    if bind:
        spec["environment"] = {BIND_ENV: bind}
    return spec


def _config_list(section: Any, name: str) -> list:
    return list(section[name]) if name in section else []


def enable_service(c: Any, *, port: int = DEFAULT_PORT, name: str = SERVICE_NAME,
                   admin_users: list[str] | tuple[str, ...] = (), admin_groups: list[str] | tuple[str, ...] = (),
                   home_page_notes: bool = True, url: str | None = None, bind: str | None = None) -> None:
    """Turn the gridspawner service on, in a jupyterhub_config.py (call it after your own
    ``c.JupyterHub.services``, ``custom_scopes`` and ``load_roles``, which it extends):

    - ``c.JupyterHub.services``: the managed service ``name``, listening on 127.0.0.1:``port``
      (or: ``url``, where the proxy reaches it, e.g. ``http://hub-service:10101`` when the
      proxy runs elsewhere, and ``bind``, the address it listens on, e.g. ``0.0.0.0``);
    - ``c.JupyterHub.custom_scopes``: ``custom:gridspawner:usage:admin`` (see every user's usage);
    - ``c.JupyterHub.load_roles``: the ``user`` role also gets
      ``access:services!service=NAME`` (every user sees their own usage), and the role
      ``gridspawner-usage-admins`` gives the admin scope to ``admin_users`` and the members
      of ``admin_groups`` (JupyterHub admins are not given it implicitly);
    - ``c.JupyterHub.template_paths`` (``home_page_notes``): the hub's home page, extended
      with the stops gridspawner plans for the user's servers (maximum run time, GPU quota,
      idle), above the page as the hub draws it.
    """
    jh = c.JupyterHub
    services = [s for s in _config_list(jh, "services") if s.get("name") != name]
    jh.services = services + [service_spec(name, port, url, bind)]
    scopes = dict(jh.custom_scopes) if "custom_scopes" in jh else {}
    scopes.update(CUSTOM_SCOPES)
    jh.custom_scopes = scopes
    roles = [dict(r) for r in _config_list(jh, "load_roles") if r.get("name") != ADMIN_ROLE]
    access = f"access:services!service={name}"
    for role in roles:
        if role.get("name") == "user":
            role["scopes"] = list(dict.fromkeys([*(role.get("scopes") or ["self"]), access]))
            break
    else:
        roles.append({"name": "user", "scopes": ["self", access]})
    admins: dict[str, Any] = {"name": ADMIN_ROLE, "description": "See every user's GPU usage (gridspawner)",
                              "scopes": [ADMIN_SCOPE, access]}
    if admin_users:
        admins["users"] = list(admin_users)
    if admin_groups:
        admins["groups"] = list(admin_groups)
    roles.append(admins)
    jh.load_roles = roles
    if home_page_notes:
        paths = _config_list(jh, "template_paths")
        if HUB_TEMPLATES not in paths:
            jh.template_paths = paths + [HUB_TEMPLATES]


def hand_over(app: Any, db_url: str, usage_settings: dict, name: str = SERVICE_NAME, runs: dict | None = None,
              env: dict[str, str] | None = None) -> bool:
    """Put what the service needs into its environment (the hub starts it later in its
    start-up); False when the hub runs no gridspawner service. ``runs``: the notebook-run
    settings with the raw catalog and the hub id (`gridspawner.runs.traits`), when runs are on;
    ``env``: variables of the hub's environment the service needs as they are (the run
    store's credentials, `gridspawner.runs.s3files.service_environment`)."""
    for spec in getattr(app, "services", None) or []:
        if isinstance(spec, dict) and spec.get("name") == name and spec.get("command"):
            settings = {"db_url": db_url, "usage": {k: v for k, v in usage_settings.items() if k != "usage_db_url"}}
            if runs is not None:
                settings["runs"] = runs
            environment = {**(spec.get("environment") or {}), **(env or {})}
            environment[SETTINGS_ENV] = json.dumps(settings, default=list)
            spec["environment"] = environment
            return True
    return False


def service_url(app: Any, name: str = SERVICE_NAME) -> str:
    """The URL the hub's managed service ``name`` listens on ("" when there is none)."""
    for spec in getattr(app, "services", None) or []:
        if isinstance(spec, dict) and spec.get("name") == name and spec.get("command"):
            return str(spec.get("url") or "")
    return ""
