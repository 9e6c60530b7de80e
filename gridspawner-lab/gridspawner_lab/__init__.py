"""gridspawner-lab: what a gridspawner server tells its user in JupyterLab.

A JupyterLab extension (prebuilt: installing it needs no Node) that shows the time left
before the hub stops the server (its maximum run time) in the status bar and warns with a
notification at the times the hub admin chose (``GRIDSPAWNER_STOP_WARNINGS``), and the
Jupyter server extension it asks (``GET {base_url}gridspawner/stops``). Both are enabled by
installing the package in the server's environment; servers not started by
gridspawner show nothing.
"""

from __future__ import annotations

__version__ = "0.1.0"


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "gridspawner-lab"}]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "gridspawner_lab"}]


def _load_jupyter_server_extension(serverapp) -> None:
    from .handlers import setup_handlers

    setup_handlers(serverapp.web_app)
    serverapp.log.info("gridspawner-lab: serving upcoming stops at %sgridspawner/stops", serverapp.base_url)
