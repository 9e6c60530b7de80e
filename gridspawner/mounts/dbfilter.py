"""Keep typed mount secrets out of JupyterHub's database.

JupyterHub saves a REST request's ``user_options`` to its database (and commits) before the
spawner's start() runs, so the spawner cannot strip them in time. A SQLAlchemy attribute
listener on `orm.Spawner.user_options` strips them on the way in instead.
"""

from __future__ import annotations

from .specs import strip_secrets


def _strip_stored_options(target, value, oldvalue, initiator):
    """SQLAlchemy ``set`` listener on ``orm.Spawner.user_options``: what JupyterHub stores
    never holds a mount secret (REST spawns save user_options before start() runs). The
    Spawner's in-memory ``user_options`` keeps them until start() takes them out."""
    clean, _ = strip_secrets(value)
    return clean


def install_user_options_filter() -> None:
    """Install `_strip_stored_options` once per process (idempotent)."""
    from jupyterhub import orm
    from sqlalchemy import event

    if not event.contains(orm.Spawner.user_options, "set", _strip_stored_options):
        event.listen(orm.Spawner.user_options, "set", _strip_stored_options, retval=True)
