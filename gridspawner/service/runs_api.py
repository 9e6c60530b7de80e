"""The notebook-runs REST API (`gridspawner.runs`), under the service's prefix:

- ``POST api/runs``: multipart (``notebook`` file; ``options``, ``parameters``, ``bindings``
  as JSON text; ``name``) or a JSON body (``notebook`` base64) → 201 and the run, or 400
  ``{"status": 400, "message": …, "errors": {field: message}}`` naming every bad field
  (nothing is queued then);
- ``GET api/runs`` (own runs; an admin: ``?user=NAME``, or everyone's with ``?user=*``;
  ``?since=<epoch seconds>``: only runs changed after it), ``GET api/runs/ID``,
  ``POST api/runs/ID/cancel``, ``DELETE api/runs/ID`` (409 while active),
  ``GET api/runs/ID/notebook`` (the executed notebook, as a download);
- ``POST api/runs/nudge`` ``{"backend": NAME}``, for the hub only (its token of
  `gridspawner.runs.nudge`, not a user's): a server on NAME stopped, try its queue now → 204.

Tokens (``Authorization: token …``) or the hub's login cookie; a user sees only their own
runs (another's is a 404, as a missing one), an admin (``custom:gridspawner:usage:admin``)
every run.
"""

from __future__ import annotations

import hmac
import json
import os
import time
from typing import Any

from tornado import web

from ..preparation import prepare
from ..runs.files import OUTPUT, RunStoreError
from ..runs.nudge import NUDGE_ENV
from ..runs.store import LimitReached
from ..runs.submit import build_draft
from ..runs.view import ACTIVE, positions, run_json
from ..vocabulary import OptionsError
from .handlers import ApiBase
from .html_views import HTML_VIEWS


class RunsBase(ApiBase):
    @property
    def runs(self) -> Any:
        runs = getattr(self.ctx, "runs", None)
        if runs is None:
            raise web.HTTPError(404, "notebook runs are not enabled on this hub (c.GridSpawner.notebook_runs)")
        return runs

    def answer(self, value: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(value))

    def field_errors(self, errors: dict) -> None:
        self._param_errors = errors
        raise web.HTTPError(400, "; ".join(f"{k}: {v}" for k, v in errors.items()))

    async def own_run(self, run_id: str) -> dict:
        """The run, when the caller may see it (else 404, whether it exists or not)."""
        row = await self.runs.store.get(run_id)
        if row is None or (row["username"] != self.user_name and not self.is_admin):
            raise web.HTTPError(404, f"no run {run_id!r}")
        return row

    async def own_output(self, run_id: str, row: dict | None = None) -> tuple[dict, bytes]:
        """The run (as `own_run`, or ``row`` when it was read so) and its executed notebook;
        404 when there is none yet."""
        row = row if row is not None else await self.own_run(run_id)
        try:
            data = await self.runs.files.read(run_id, OUTPUT)
        except RunStoreError as e:
            raise web.HTTPError(503, f"run {run_id}: {e}") from None
        if data is None:
            raise web.HTTPError(404, f"run {run_id} has no executed notebook ({row['status']})")
        return row, data

    async def cancel_run(self, row: dict) -> None:
        """Cancel the run (`own_run`'s row): a queued one at once, an active one when its
        process or pod has stopped; 409 when it ended otherwise (cancelled again: nothing)."""
        run_id, store = row["id"], self.runs.store
        if row["status"] == "queued" and await store.move(run_id, ("queued",), status="cancelled", finished_at=time.time(),
                                                          cancelled_by=self.user_name, cancel_requested=1):
            self.runs.executor.secrets.pop(run_id, None)
            await self.runs.executor.cancel(run_id)  # a start in flight stops when it returns
        elif row["status"] in ACTIVE:
            await store.move(run_id, ACTIVE, cancel_requested=1, cancelled_by=self.user_name)
            await self.runs.executor.cancel(run_id)
        elif row["status"] != "cancelled":
            raise web.HTTPError(409, f"run {run_id} is {row['status']} already")

    async def delete_run(self, row: dict) -> None:
        """Delete the run (`own_run`'s row) and its files; 409 while it is active, 503 when
        the run store cannot answer (the run stays: delete again)."""
        run_id = row["id"]
        if row["status"] in ACTIVE:
            raise web.HTTPError(409, f"run {run_id} is {row['status']}: cancel it first")
        try:  # the files first: a run store that cannot answer keeps the run (delete again)
            await self.runs.files.remove(run_id)
        except RunStoreError as e:
            raise web.HTTPError(503, f"run {run_id} was not deleted: {e}") from None
        await self.runs.store.delete(run_id)
        HTML_VIEWS.forget(self.runs.files.location, run_id)

    async def with_position(self, row: dict) -> dict:
        pos = None
        if row["status"] == "queued":
            pos = positions(await self.runs.store.queued(row["backend"])).get(row["id"])
        return run_json(row, time.time(), pos)


class RunsAPI(RunsBase):
    @web.authenticated
    async def get(self) -> None:
        who = self.get_argument("user", None)
        if who is not None and who != self.user_name and not self.is_admin:
            raise web.HTTPError(403, "only admins may list other users' runs")
        since = self.get_argument("since", None)
        try:
            since_t = float(since) if since not in (None, "") else None
        except ValueError:
            self.field_errors({"since": "must be a time in seconds since the epoch"})
        if who is None:
            who = self.user_name
        rows = await self.runs.store.list(None if who == "*" else who, since_t)
        queue = positions(await self.runs.store.queued()) if any(r["status"] == "queued" for r in rows) else {}
        now = time.time()
        self.answer({"runs": [run_json(r, now, queue.get(r["id"])) for r in rows], "now": now})

    @web.authenticated
    async def post(self) -> None:
        form = self.submitted()
        groups = list(self.current_user.get("groups") or ())
        runs, user = self.runs, self.user_name
        try:
            draft = build_draft(form, runs.catalog, groups, user, max_bytes=runs.config.max_bytes)
            backend = runs.backends[draft.request.backend]
            if not getattr(backend, "runs_batch", False):
                raise OptionsError({"backend": f"the backend {draft.request.backend!r} cannot run notebooks; choose another"})
            # the same live checks of the data mounts and the same GPU quota as a spawn
            # (a bad bucket, a quota used up: a field error)
            usage = self.ctx.usage

            async def quota(gpus: int) -> str | None:
                return await usage.refusal(user, groups, gpus)

            await prepare(draft.options, runs.catalog, groups, user, quota=quota)
        except OptionsError as e:
            self.field_errors(e.errors)
        try:
            run_id = await runs.submit(draft, user, groups)
        except LimitReached as e:
            self.field_errors({"runs": e.message})
        except RunStoreError as e:
            raise web.HTTPError(503, f"the run could not be queued: {e}") from None
        self.set_header("Location", f"{self.ctx.prefix}api/runs/{run_id}")
        self.answer(await self.with_position(await runs.store.get(run_id)), 201)

    def submitted(self) -> dict:
        """The submitted fields: multipart (a file ``notebook`` + text fields) or a JSON body."""
        ctype = self.request.headers.get("Content-Type", "")
        if ctype.startswith("application/json"):
            try:
                body = json.loads(self.request.body or b"{}")
            except ValueError as e:
                self.field_errors({"body": f"is not valid JSON: {e}"})
            if not isinstance(body, dict):
                self.field_errors({"body": "must be a JSON object"})
            return body
        form: dict[str, Any] = {k: v[-1].decode("utf-8", "replace") for k, v in self.request.body_arguments.items() if v}
        files = self.request.files.get("notebook")
        if files:
            form["notebook"] = files[0]["body"]
        elif "notebook" in form:
            form["notebook"] = form["notebook"].encode()
        return form


class RunAPI(RunsBase):
    @web.authenticated
    async def get(self, run_id: str) -> None:
        self.answer(await self.with_position(await self.own_run(run_id)))

    @web.authenticated
    async def delete(self, run_id: str) -> None:
        await self.delete_run(await self.own_run(run_id))
        self.set_status(204)
        self.finish()


class RunCancelAPI(RunsBase):
    @web.authenticated
    async def post(self, run_id: str) -> None:
        await self.cancel_run(await self.own_run(run_id))
        self.answer(await self.with_position(await self.runs.store.get(run_id)))


class RunNotebookAPI(RunsBase):
    @web.authenticated
    async def get(self, run_id: str) -> None:
        row, data = await self.own_output(run_id)
        name = "".join(c if c.isalnum() or c in "-_." else "_" for c in (row.get("name") or run_id))[:80]
        self.set_header("Content-Type", "application/x-ipynb+json")
        self.set_header("Content-Disposition", f'attachment; filename="{name}-{run_id}.ipynb"')
        self.set_header("X-Content-Type-Options", "nosniff")
        self.finish(data)


class RunsNudgeAPI(web.RequestHandler):
    """The hub's nudge (`gridspawner.runs.nudge`): no hub login, its own token only."""

    def initialize(self, context: Any) -> None:
        self.ctx = context

    def check_xsrf_cookie(self) -> None:
        """A header token, never a cookie: no cross-site request can carry it."""

    async def post(self) -> None:
        expected = os.environ.get(NUDGE_ENV, "")
        given = self.request.headers.get("Authorization", "")
        if not expected or not hmac.compare_digest(given.encode(), f"token {expected}".encode()):
            raise web.HTTPError(403, "only the hub may nudge the runs executor")
        runs = getattr(self.ctx, "runs", None)
        if runs is None:
            raise web.HTTPError(404, "notebook runs are not enabled on this hub")
        try:
            backend = json.loads(self.request.body or b"{}").get("backend")
        except (ValueError, AttributeError):
            backend = None
        if not isinstance(backend, str) or backend not in runs.backends:
            raise web.HTTPError(400, "backend: not a backend of this hub")
        runs.executor.nudge(backend)
        self.set_status(204)
        self.finish()


def routes(prefix: str, shared: dict) -> list:
    """The runs API's routes for the service's application."""
    rid = r"([a-z0-9]{12,32})"
    return [
        (rf"{prefix}api/runs/nudge", RunsNudgeAPI, shared),
        (rf"{prefix}api/runs", RunsAPI, shared),
        (rf"{prefix}api/runs/{rid}", RunAPI, shared),
        (rf"{prefix}api/runs/{rid}/cancel", RunCancelAPI, shared),
        (rf"{prefix}api/runs/{rid}/notebook", RunNotebookAPI, shared),
    ]
