"""The hub's word to the service that a server stopped (`nudge`): the executor then tries
that backend's queue at once, so a queued run waiting for a GPU an interactive server held
starts within a second of the release instead of at its next retry (`runs_queue_retry_max`).

The hub makes a random token at start-up and hands it to the service in its environment
(`NUDGE_ENV`, with the other settings: never argv, logs or the database); a nudge is a
``POST <service>/api/runs/nudge`` with ``Authorization: token <it>`` and ``{"backend":
NAME}``. It is fire-and-forget: sent from a task of its own, bounded by `NUDGE_TIMEOUT`
seconds (connect and whole request), its failure only logged at debug level — a stop never
waits for it or fails because of it. Only when the hub runs the service with runs on
(`configure`); otherwise `nudge` does nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets

log = logging.getLogger("gridspawner.runs")

#: the service's environment variable with the token nudges carry
NUDGE_ENV = "GRIDSPAWNER_RUNS_NUDGE_TOKEN"
#: seconds a nudge may take to connect, and in all
NUDGE_TIMEOUT = 2.0
#: the service's nudge path, below its prefix
NUDGE_PATH = "api/runs/nudge"

_target: tuple[str, str] | None = None
_tasks: set[asyncio.Task] = set()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def nudge_url(service_url: str, hub_base_url: str, service_name: str) -> str:
    """Where the service answers nudges: its URL + its prefix (``<base>services/<name>/``)."""
    base = "/" + hub_base_url.strip("/") + "/" if hub_base_url.strip("/") else "/"
    return f"{service_url.rstrip('/')}{base}services/{service_name}/{NUDGE_PATH}"


def configure(url: str | None, token: str = "") -> None:
    """Send nudges to ``url`` with ``token`` (None: send none)."""
    global _target
    _target = (url, token) if url else None


def nudge(backend: str) -> None:
    """Tell the service, in the background, that a server on ``backend`` stopped."""
    if _target is None or not backend:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    task = loop.create_task(_post(_target, backend))
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


def pending() -> set[asyncio.Task]:
    """The nudges still being sent."""
    return set(_tasks)


async def _post(target: tuple[str, str], backend: str) -> None:
    from tornado.httpclient import AsyncHTTPClient, HTTPRequest

    url, token = target
    request = HTTPRequest(url, method="POST", body=json.dumps({"backend": backend}),
                          headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
                          connect_timeout=NUDGE_TIMEOUT, request_timeout=NUDGE_TIMEOUT)
    try:
        response = await AsyncHTTPClient().fetch(request, raise_error=False)
        if response.code != 204:
            log.debug("runs nudge for backend %s: the service answered %s", backend, response.code)
    except Exception as e:  # noqa: BLE001 - a nudge never matters to the stop that sent it
        log.debug("runs nudge for backend %s failed: %s", backend, e)
