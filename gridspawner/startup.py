"""Validate the admin's gridspawner config when the hub starts, not at the first spawn.

JupyterHub has no start-up hook for spawners. It does load its config file (and import the
spawner class) synchronously inside `JupyterHub.initialize`, which runs on the hub's event
loop. So when this module is imported inside a starting hub, we schedule one callback on
that loop: it runs at initialize's first await, after the config is fully loaded, builds a
throwaway spawner from it and stops the hub with a message naming the bad key.
"""

from __future__ import annotations

import asyncio
import logging
import sys

log = logging.getLogger("gridspawner")


def _hub_app():
    try:
        from jupyterhub.app import JupyterHub
    except ImportError:  # pragma: no cover - jupyterhub is a dependency
        return None
    return JupyterHub.instance() if JupyterHub.initialized() else None


def check_hub_config(app, spawner_cls, validate, error_cls) -> None:
    """Validate ``app``'s config if its spawner_class is (a subclass of) ``spawner_cls``."""
    configured = getattr(app, "spawner_class", None)
    if not (isinstance(configured, type) and issubclass(configured, spawner_cls)):
        return
    spawner = configured(config=app.config)
    try:
        validate(spawner)
    except error_cls as e:
        app.log.critical("gridspawner: invalid configuration: %s", e)
        # SystemExit escapes asyncio callbacks, so this stops the hub with status 1.
        sys.exit(1)
    app.log.info("gridspawner: configuration is valid")


def schedule_startup_check(spawner_cls, validate, error_cls) -> None:
    app = _hub_app()
    if app is None:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    loop.call_soon(check_hub_config, app, spawner_cls, validate, error_cls)
