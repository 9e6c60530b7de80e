"""What gridspawner changes in the hub process — done only once the hub uses GridSpawner.

JupyterHub imports every installed ``jupyterhub.spawners`` entry point while it starts, so
importing this package must change nothing: a hub that runs another spawner keeps its own
database behaviour and metrics. `activate` is called when a GridSpawner is made (the
start-up check makes one as soon as the configuration names GridSpawner; JupyterHub makes
one per user) and is idempotent.
"""

from __future__ import annotations

from . import metrics
from .mounts.dbfilter import install_user_options_filter
from .usage import stop_requests

_active = False


def activate() -> None:
    """Install the user_options secret filter on JupyterHub's models, the tracking of who
    asked for a server's stop (usage records) and register the Prometheus metrics (once
    per process)."""
    global _active
    if _active:
        return
    install_user_options_filter()
    stop_requests.install()
    metrics.register()
    _active = True


def active() -> bool:
    """Whether `activate` ran in this process."""
    return _active
