"""gridspawner's own log lines (``gridspawner.*``: backends, watches, capacity, relays …) in
the hub's log, formatted like the hub's lines.

JupyterHub logs through its application logger ("JupyterHub"), which has the handler and
the format (time, level, logger name, source) and does not propagate. Loggers of other
packages propagate to the root logger, which has no handler in a hub process, so Python's
last-resort handler would print only WARNING and above, without time or level, and drop
every INFO line. `follow_hub_log` gives the ``gridspawner`` logger the hub's handlers and
level instead; records keep their own names (``gridspawner.kubernetes.<backend>``).
"""

from __future__ import annotations

import logging
import sys

ROOT_LOGGER = "gridspawner"


def _running_hub_log() -> logging.Logger | None:
    """The log of the JupyterHub application running in this process, or None."""
    from traitlets.config import Application

    jh_app = sys.modules.get("jupyterhub.app")
    if jh_app is None or not Application.initialized():
        return None
    app = Application.instance()
    return app.log if isinstance(app, jh_app.JupyterHub) else None


def follow_hub_log(hub_log: logging.Logger | None = None) -> bool:
    """Send ``gridspawner.*`` records to the hub's handlers at the hub's level (``hub_log``:
    the running JupyterHub's log when None). Does nothing outside a hub, when the hub's log
    has no handler, or when the admin configured the ``gridspawner`` logger themselves (it
    has handlers already). True when the hub's handlers are in place."""
    hub_log = hub_log or _running_hub_log()
    ours = logging.getLogger(ROOT_LOGGER)
    if hub_log is None or not hub_log.handlers:
        return False
    if ours.handlers:
        return all(h in ours.handlers for h in hub_log.handlers)
    for handler in hub_log.handlers:
        ours.addHandler(handler)
    if ours.level == logging.NOTSET:
        ours.setLevel(hub_log.getEffectiveLevel())
    ours.propagate = False  # the hub's handlers write it; not a second time through the root
    return True
