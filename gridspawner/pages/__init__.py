"""The hub's home and admin pages with what each server got and how long it lasts.

JupyterHub renders its pages from Jinja templates; an admin may put directories of their own
first in ``c.JupyterHub.template_paths`` and pass values to every page with
``c.JupyterHub.template_vars`` (a callable value is called with the current user). `enable`
does both: gridspawner's ``home.html`` and ``admin.html`` extend JupyterHub's own
(``{% extends "templates/home.html" %}``) and add a table of servers built by
`gridspawner.server_facts` — no I/O, from what the spawners saved.

The admin page lists the servers of every user whose servers the viewer may read
(``read:servers``, with its user/group/server filters). It finds them in `LIVE`: every
GridSpawner object of this hub process (JupyterHub keeps one per running server).
"""

from __future__ import annotations

import time
import weakref
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..server_env import parse_stop_warnings
from ..server_facts import ServerFacts, server_facts

#: gridspawner's page templates (``home.html``, ``admin.html``)
TEMPLATE_DIR = str(Path(__file__).resolve().parent / "templates")
#: the name the templates read their values from (``c.JupyterHub.template_vars``)
TEMPLATE_VAR = "gridspawner"

#: every GridSpawner object in this process (registered by its __init__)
LIVE: "weakref.WeakSet[Any]" = weakref.WeakSet()


def facts_of(spawner: Any, now: float) -> ServerFacts | None:
    """The facts of ``spawner``'s server; None when it does not run (or is still starting)."""
    if getattr(spawner, "server", None) is None:
        return None
    try:
        warnings = parse_stop_warnings(spawner.stop_warnings)
    except Exception:  # noqa: BLE001 - validated at start-up; a page must still render
        warnings = ()
    user = spawner.user.name if getattr(spawner, "user", None) is not None else ""
    return server_facts(user, spawner.name or "", spawner.get_state(), spawner.user_options, spawner.catalog,
                        now, warnings)


def _sorted(rows: Iterable[ServerFacts]) -> list[ServerFacts]:
    return sorted(rows, key=lambda f: (f.user, f.server))


def _may_read(filters: Any, user: Any, server: str) -> bool:
    """Whether a ``read:servers`` scope with ``filters`` (JupyterHub's parsed form: ``Scope.ALL``
    or a dict of ``user``/``group``/``server`` sets) covers ``user``'s ``server``."""
    if filters is None:
        return False
    if not isinstance(filters, Mapping):
        return True  # Scope.ALL
    name = user.name
    groups = {g.name for g in getattr(user, "groups", ())}
    return (name in filters.get("user", ()) or bool(groups & set(filters.get("group", ())))
            or f"{name}/{server}" in filters.get("server", ()))


class ServerPages:
    """What one page view reads (``gridspawner.mine``, ``gridspawner.readable(parsed_scopes)``)."""

    def __init__(self, user: Any, now: float | None = None):
        self.user = user
        self.now = time.time() if now is None else now

    @property
    def mine(self) -> list[ServerFacts]:
        """The current user's running servers."""
        if self.user is None:
            return []
        spawners = getattr(self.user, "spawners", {}) or {}
        return _sorted(f for f in (facts_of(s, self.now) for s in list(spawners.values()) if s in LIVE) if f)

    def readable(self, parsed_scopes: Mapping[str, Any] | None) -> list[ServerFacts]:
        """Every running server the viewer may read (the admin page)."""
        filters = (parsed_scopes or {}).get("read:servers")
        rows = []
        for spawner in list(LIVE):
            user = getattr(spawner, "user", None)
            if user is None or not _may_read(filters, user, spawner.name or ""):
                continue
            facts = facts_of(spawner, self.now)
            if facts is not None:
                rows.append(facts)
        return _sorted(rows)


def template_vars(user: Any) -> ServerPages:
    """The value of ``c.JupyterHub.template_vars["gridspawner"]`` (called per page view)."""
    return ServerPages(user)


def enable(c: Any) -> None:
    """Use gridspawner's home and admin pages in the hub configured by ``c`` (in
    ``jupyterhub_config.py``: ``gridspawner.pages.enable(c)``). Template directories the
    admin set come first: their own ``home.html`` wins, and may show gridspawner's table with
    ``{% import "gridspawner-servers.html" as gs %}{{ gs.servers_table(gridspawner.mine) }}``."""
    paths = list(c.JupyterHub.template_paths) if "template_paths" in c.JupyterHub else []
    if TEMPLATE_DIR not in paths:
        c.JupyterHub.template_paths = [*paths, TEMPLATE_DIR]
    extra = dict(c.JupyterHub.template_vars) if "template_vars" in c.JupyterHub else {}
    extra[TEMPLATE_VAR] = template_vars
    c.JupyterHub.template_vars = extra
