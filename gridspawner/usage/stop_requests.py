"""Who asked JupyterHub to stop a server: its owner, or someone else (an admin, a service).

JupyterHub passes nothing about the request to ``Spawner.stop()``. Every stop that comes
through its web API or pages (the home page's "Stop My Server", the admin page, REST
``DELETE /users/NAME/server`` by a user, an admin or a service such as an idle culler) goes
through ``BaseHandler.stop_single_user``, which runs the stop in a task it creates itself.
`install` wraps that method so the handler's current user is put in a context variable
first: the task inherits it, and `requester` reads it inside ``Spawner.stop()``. Stops the
hub makes on its own (its shutdown with ``cleanup_servers``, a blocked user at start-up, a
failed proxy update) carry no requester: recorded as ``hub``.
"""

from __future__ import annotations

import contextvars
import functools
from typing import Any, NamedTuple


class Requester(NamedTuple):
    reason: str  # "user" (the server's owner) or "admin" (anyone else allowed to)
    name: str  # the user's name, or "service:NAME"


_requester: contextvars.ContextVar[Requester | None] = contextvars.ContextVar("gridspawner_stop_requester", default=None)


def requester_of(current: Any, owner_name: str) -> Requester | None:
    """The requester a handler's ``current_user`` is, for a server of ``owner_name``."""
    if current is None:
        return None
    name = getattr(current, "name", None) or "?"
    if getattr(current, "kind", "user") == "service":
        return Requester("admin", f"service:{name}")
    return Requester("user" if name == owner_name else "admin", name)


def requester() -> Requester | None:
    """Who asked for the stop that is running now (None: the hub itself, or not known)."""
    return _requester.get()


def install() -> None:
    """Wrap JupyterHub's ``BaseHandler.stop_single_user`` (once per process)."""
    from jupyterhub.handlers.base import BaseHandler

    original = BaseHandler.stop_single_user
    if getattr(original, "_gridspawner_wrapped", False):
        return

    @functools.wraps(original)
    async def stop_single_user(self, user, server_name=""):
        try:
            who = requester_of(self.current_user, user.name)
        except Exception:  # noqa: BLE001 - never let bookkeeping break a stop
            who = None
        token = _requester.set(who)
        try:
            return await original(self, user, server_name)
        finally:
            _requester.reset(token)

    stop_single_user._gridspawner_wrapped = True
    BaseHandler.stop_single_user = stop_single_user
