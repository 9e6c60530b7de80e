"""The server side: ``GET {base_url}gridspawner/stops`` answers the upcoming stops as JSON
(see `stops.payload`), for the lab page to poll."""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Mapping

from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

from . import stops

ROUTE = "gridspawner/stops"


def read_stops_file(path: str | None) -> str | None:
    """The stops file's text; None when there is no such file. StopsFileError when it is
    too large or unreadable for another reason than not existing."""
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            data = f.read(stops.MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise stops.StopsFileError(f"cannot read it: {e.strerror}") from None
    if len(data) > stops.MAX_FILE_BYTES:
        raise stops.StopsFileError(f"larger than {stops.MAX_FILE_BYTES} bytes")
    return data.decode("utf-8", errors="replace")


class StopsHandler(APIHandler):
    """Answers the upcoming stops; read afresh on each request (the hub may move them)."""

    def initialize(self, environ: Mapping[str, str], seen: dict) -> None:
        self.environ = environ
        self.seen = seen  # shared by the requests: the last stops-file problem logged

    @web.authenticated
    async def get(self) -> None:
        path = self.environ.get(stops.STOPS_FILE)
        # the file sits in the session directory (a local disk as a rule); a thread all the same
        try:
            text = await asyncio.get_running_loop().run_in_executor(None, read_stops_file, path)
            file_problem = None
        except stops.StopsFileError as e:
            text, file_problem = None, f"ignoring the stops file {path}: {e}"
        body, problem = stops.payload(self.environ, time.time(), text)
        problem = file_problem or problem
        if problem and problem != self.seen.get("problem"):
            self.log.warning("gridspawner-lab: %s", problem)  # once, not at every poll
        self.seen["problem"] = problem
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(body))


def setup_handlers(web_app, environ: Mapping[str, str] | None = None) -> None:
    """Add the route under the server's base URL (``/user/NAME/`` behind JupyterHub)."""
    base = web_app.settings["base_url"]
    args = {"environ": os.environ if environ is None else environ, "seen": {}}
    web_app.add_handlers(".*$", [(url_path_join(base, ROUTE), StopsHandler, args)])
