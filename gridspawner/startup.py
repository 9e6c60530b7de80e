"""Validate the admin's gridspawner config when the hub starts, not at the first spawn.

JupyterHub has no start-up hook for spawners, and it imports every `jupyterhub.spawners`
entry point while its app object is still being constructed (before the config file is
read and before the event loop runs), so nothing can be checked at import time.

Two moments are reliable, and we use both (whichever comes first checks, once):

1. Right after loading the config file, `JupyterHub.initialize` logs the spawner class and
   its package version, reading ``gridspawner.__version__``. The package serves that
   attribute through `check_running_hub` (see ``gridspawner/__init__.py``).
2. A subclass defined in jupyterhub_config.py is imported while that file runs, inside the
   running `initialize` coroutine; `schedule_startup_check` then queues the check on the
   loop, where it runs at initialize's first await, after the config is fully loaded.

If neither happens (a future JupyterHub), the first form render or spawn still fails with
the same message naming the key.
"""

from __future__ import annotations

import asyncio
import sys

_checked = False


def _starting_hub():
    """The JupyterHub app being initialized in this process, or None."""
    jh_app = sys.modules.get("jupyterhub.app")
    if jh_app is None:
        return None
    hub = jh_app.JupyterHub
    return hub.instance() if hub.initialized() else None


def check_hub_config(app) -> None:
    """Validate ``app``'s config if its spawner is a GridSpawner; exit 1 naming the bad key."""
    global _checked
    from .catalog import CatalogError
    from .spawner import GridSpawner, validate_config

    configured = getattr(app, "spawner_class", None)
    if _checked or not (isinstance(configured, type) and issubclass(configured, GridSpawner)):
        return
    _checked = True
    spawner = configured(config=app.config)
    try:
        validate_config(spawner)
    except CatalogError as e:
        app.log.critical("gridspawner: invalid configuration: %s", e)
        # SystemExit leaves initialize() (or an asyncio callback) and ends the hub with status 1.
        sys.exit(1)
    app.log.info("gridspawner: configuration is valid")
    # Start the background capacity probes now (the hub's loop is running), so the first
    # spawn form already shows what is free instead of "checking capacity…".
    spawner.runtime


def check_running_hub() -> None:
    """Moment 1: called when JupyterHub reads ``gridspawner.__version__`` during start-up."""
    app = _starting_hub()
    if app is not None and "spawner_class" in app.config.get("JupyterHub", {}):
        check_hub_config(app)


def schedule_startup_check() -> None:
    """Moment 2: queue the check on the running loop of a starting hub."""
    app = _starting_hub()
    if app is None:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    loop.call_soon(check_hub_config, app)
