"""The service's tornado application and its entry point (``python -m gridspawner.service``,
started by the hub: see `settings`)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import signal
from urllib.parse import urlsplit

from tornado.web import Application, StaticFileHandler

from ..runs.runtime import RunsRuntime
from ..usage.config import build_usage_config
from ..usage.runtime import UsageRuntime
from ..usage.store import safe_url
from . import handlers as h
from . import runs_pages
from .context import HERE, ServiceContext, templates
from .runs_api import routes as runs_routes
from .settings import BIND_ENV, SETTINGS_ENV

log = logging.getLogger("gridspawner.service")


def make_app(context: ServiceContext) -> Application:
    from jupyterhub.services.auth import HubOAuthCallbackHandler

    p = context.prefix
    shared = {"context": context}
    return Application(
        [
            (rf"{p}", h.UserPage, shared),
            (rf"{p}admin", h.AdminPage, shared),
            (rf"{p}api/records", h.RecordsAPI, shared),
            (rf"{p}api/summary", h.SummaryAPI, shared),
            *runs_routes(p, shared),
            *runs_pages.routes(p, shared),
            (rf"{p}oauth_callback", HubOAuthCallbackHandler),
            (rf"{p}static/(.*)", StaticFileHandler, {"path": str(HERE / "static")}),
        ],
        # stable across restarts of the service (its token stays), so logins survive them
        cookie_secret=hashlib.sha256(b"gridspawner-service-cookie:" + os.environ.get("JUPYTERHUB_API_TOKEN", "").encode()).digest()
        if os.environ.get("JUPYTERHUB_API_TOKEN") else os.urandom(32),
    )


def context_from_env() -> ServiceContext:
    """Build the context from the environment the hub gives a managed service."""
    raw = os.environ.get(SETTINGS_ENV)
    if not raw:
        raise SystemExit(f"gridspawner service: ${SETTINGS_ENV} is not set: start the hub with a GridSpawner "
                         "config and enable_service() (see docs/admin/usage.md)")
    settings = json.loads(raw)
    config = build_usage_config(**settings["usage"], usage_db_url=settings["db_url"])
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/gridspawner/")
    base = os.environ.get("JUPYTERHUB_BASE_URL", "/")
    usage = UsageRuntime(config, settings["db_url"])
    runs = None
    if settings.get("runs"):
        runs = RunsRuntime(settings["runs"], usage.store.engine, settings["db_url"], usage)
    return ServiceContext(config, usage, templates(), prefix, base.rstrip("/") + "/hub/", runs)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="[%(levelname)1.1s %(asctime)s %(name)s] %(message)s")
    context = context_from_env()
    url = urlsplit(os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:10101"))

    async def serve() -> None:
        app = make_app(context)
        # its URL's host, unless the hub names another address to listen on (the Helm chart:
        # all of the hub pod's, so the proxy pod reaches it by the hub's Service)
        app.listen(url.port or 80, os.environ.get(BIND_ENV) or url.hostname or "127.0.0.1")
        log.info("gridspawner service on %s (usage records in %s)", url.geturl(), safe_url(context.usage.url))
        if context.runs is not None:
            await context.runs.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        if context.runs is not None:
            await context.runs.close()
        context.usage.store.close()

    asyncio.run(serve())
