"""Validate the admin's gridspawner config when the hub starts, not at the first spawn.

JupyterHub has no start-up hook for spawners, and it imports every `jupyterhub.spawners`
entry point while its app object is still being constructed (before the config file is
read and before the event loop runs), so nothing can be checked at import time — and
importing this package must not change a hub that uses another spawner.

Two moments are reliable, and we use both (whichever comes first checks, once):

1. Right after loading the config file, `JupyterHub.initialize` logs the spawner class and
   its package version, reading ``gridspawner.__version__``. The package serves that
   attribute through `check_running_hub` (see ``gridspawner/__init__.py``). JupyterHub
   reads it only when the configured spawner comes from this package.
2. A subclass of GridSpawner defined in jupyterhub_config.py is created while that file
   runs, inside the running `initialize` coroutine; ``GridSpawner.__init_subclass__``
   then calls `schedule_startup_check`, which queues the check on the loop, where it runs
   at initialize's first await, after the config is fully loaded.

Both come before JupyterHub builds its web application, so the check may still adjust the
hub's ``slow_spawn_timeout`` (`cover_mount_checks`). If neither happens (a future
JupyterHub), the first form render or spawn still fails with the same message naming the
key.

This module knows the hub's start-up, not the spawner: its callers pass the spawner class
(``GridSpawner``) whose configuration is checked, and the check asks a spawner of the
configured class for ``check_config()``, ``catalog`` and ``shared`` (the backends, whose
capacity probes it starts).
"""

from __future__ import annotations

import asyncio
import math
import sys

from .mounts.resolve import check_limit
from .reconcile import start_reconciler
from .vocabulary import CatalogError

_checked = False

#: seconds of a spawn request besides the mount checks (auth refresh, API token, database)
SPAWN_OVERHEAD = 5.0


def _starting_hub():
    """The JupyterHub app being initialized in this process, or None."""
    jh_app = sys.modules.get("jupyterhub.app")
    if jh_app is None:
        return None
    hub = jh_app.JupyterHub
    return hub.instance() if hub.initialized() else None


def check_hub_config(app, spawner_class: type) -> None:
    """Validate ``app``'s config if its spawner is a ``spawner_class`` (GridSpawner, or a
    subclass); exit 1 naming every bad key."""
    global _checked
    configured = getattr(app, "spawner_class", None)
    if _checked or not (isinstance(configured, type) and issubclass(configured, spawner_class)):
        return
    _checked = True
    spawner = configured(config=app.config)
    try:
        spawner.check_config()
    except CatalogError as e:
        app.log.critical("gridspawner: invalid configuration: %s", e)
        # SystemExit leaves initialize() (or an asyncio callback) and ends the hub with status 1.
        sys.exit(1)
    app.log.info("gridspawner: configuration is valid")
    warn_exposed_hub_files(app, spawner)
    start_usage(app, spawner)
    cover_mount_checks(app, spawner.catalog)
    # Start the background capacity probes now (the hub's loop is running), so the first
    # spawn form already shows what is free instead of "checking capacity…".
    spawner.shared
    # and crash recovery: what a previous run of this hub left is reclaimed (gridspawner.reconcile)
    start_reconciler(app, spawner)


#: seconds the check of the hub's own files waits for JupyterHub to make them (its database)
HUB_FILES_WAIT = 60.0


def warn_exposed_hub_files(app, spawner) -> None:
    """Where servers run as other accounts of this machine (a local backend with ``run_as:
    "user"``), warn about each of the hub's own files they could read — once JupyterHub has
    made them (its database and cookie secret come later in its start-up than this check)."""
    if not any(getattr(b.settings, "run_as", None) == "user" for b in spawner.catalog.backends.values()):
        return
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        _check_hub_files(app, spawner)
        return

    async def when_made() -> None:
        waited = 0.0
        while getattr(app, "db", None) is None and waited < HUB_FILES_WAIT:
            await asyncio.sleep(0.2)
            waited += 0.2
        _check_hub_files(app, spawner)

    asyncio.ensure_future(when_made())


def _check_hub_files(app, spawner) -> None:
    from .backends.host.accounts import exposed_files, hub_files

    catalog = spawner.catalog
    usage_url = None
    try:
        usage_url = spawner.usage_url_for_messages()
    except Exception:  # no usage database configured: nothing of it to check
        pass
    exposed = exposed_files(hub_files(db_url=getattr(app, "db_url", None),
                                      cookie_secret_file=getattr(app, "cookie_secret_file", None),
                                      usage_db_url=usage_url, key_dir=catalog.storage.key_dir))
    if exposed:
        app.log.warning("gridspawner: the hub's own files can be read by other accounts, so by users' servers: %s "
                        "(chmod go-rwx them, or keep them in a directory only the hub's account can enter)",
                        ", ".join(exposed))


def start_usage(app, spawner) -> None:
    """Upgrade the usage database's schema now (as JupyterHub upgrades its own at start-up)
    and start the usage watch; a database that cannot be used stops the hub naming the key."""
    from sqlalchemy.exc import SQLAlchemyError

    from .usage.store import UsageDBError, safe_url

    try:
        usage = spawner.usage
        if usage is None:
            return
        usage.upgrade_now()
    except (UsageDBError, SQLAlchemyError, ImportError, OSError) as e:
        # (a missing driver is an ImportError; an unwritable SQLite directory an OSError)
        url = safe_url(spawner.usage_url_for_messages())
        app.log.critical("gridspawner: invalid configuration: c.GridSpawner.usage_db_url: %s cannot be used: %s",
                         url, e)
        sys.exit(1)
    from .runs.nudge import NUDGE_ENV, configure, new_token, nudge_url
    from .runs.s3files import service_environment
    from .service.settings import SERVICE_NAME, hand_over, service_url

    runs = None
    if spawner.notebook_runs:  # the service runs notebooks: it builds the same catalog and backends
        from .hub_identity import resolve_hub_id

        runs = {**spawner.runs_settings(), "catalog": spawner.raw_catalog(), "hub_id": resolve_hub_id(spawner.hub_id)}
    env = None
    if runs is not None:
        env = {**service_environment(runs), NUDGE_ENV: new_token()}
    if hand_over(app, usage.url, spawner.usage_settings(), runs=runs, env=env):
        if env is not None:  # the service is told when servers stop (queued runs start at once)
            url = service_url(app)
            configure(nudge_url(url, getattr(app, "base_url", "/") or "/", SERVICE_NAME) if url else None,
                      env[NUDGE_ENV])
        app.log.info("gridspawner: the usage service gets the usage database's settings")
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return  # the first server's start starts the watch
    usage.start_watching()


def cover_mount_checks(app, catalog) -> None:
    """Make a REST spawn wait for its data-mount checks, so a bad mount is a 400 naming the
    field (as on the form) and not a 202 followed by a failure in the background.

    JupyterHub answers a REST spawn request after ``slow_spawn_timeout`` seconds (default
    10) whether the spawn is done or not, and the checks run inside the spawn. When the
    admin offers storage, the default becomes the checks' limit plus `SPAWN_OVERHEAD`; a
    value the admin set in ``c.JupyterHub.tornado_settings`` is kept (with a warning when
    it is shorter). The spawn form is not affected: it checks mounts before it submits,
    and JupyterHub's form handler waits at most one second either way."""
    storage = catalog.storage
    if not (storage.s3 or storage.ssh):
        return
    needed = math.ceil(check_limit(storage) + SPAWN_OVERHEAD)
    settings = app.tornado_settings
    if "slow_spawn_timeout" in settings:
        if settings["slow_spawn_timeout"] < needed:
            app.log.warning(
                "gridspawner: c.JupyterHub.tornado_settings['slow_spawn_timeout'] = %s is shorter than the "
                "data-mount checks may take (%s s): a REST spawn with a bad mount may answer 202 and fail later",
                settings["slow_spawn_timeout"], needed,
            )
        return
    settings["slow_spawn_timeout"] = needed
    app.log.info("gridspawner: slow_spawn_timeout = %s s, so REST spawns wait for their data-mount checks", needed)


def check_running_hub(spawner_class: type) -> None:
    """Moment 1: called when JupyterHub reads ``gridspawner.__version__`` during start-up."""
    app = _starting_hub()
    if app is not None and "spawner_class" in app.config.get("JupyterHub", {}):
        check_hub_config(app, spawner_class)


def schedule_startup_check(spawner_class: type) -> None:
    """Moment 2: queue the check on the running loop of a starting hub."""
    app = _starting_hub()
    if app is None:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    loop.call_soon(check_hub_config, app, spawner_class)
