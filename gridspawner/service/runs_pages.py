"""The notebook-run pages of the service: ``runs`` (the results page and its live rows),
``runs/new`` (submit: a notebook, the spawn form's choices, parameters) and ``runs/ID/html``
(the executed notebook as HTML, sandboxed; kept once rendered: `html_views`); the rows'
cancel/delete form posts are `runs_actions`'.

Pages authenticate like the usage pages (the hub's login cookie via OAuth; requests from
the pages' scripts carry the XSRF token JupyterHub checks on cookie-authenticated fetches).
What a run is, who may see it and how it is checked and queued is the runs API's
(``runs_api``, ``gridspawner.runs``); these handlers only show it and send the form to it."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import math
import time
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

from jupyterhub.services.auth import HubOAuthenticated
from markupsafe import Markup
from tornado import web

from .. import form as spawn_form
from ..backends.base import Capacity
from ..capacity import CapacityMonitor
from ..form import parse_form, render_form
from ..runs.files import INPUT, OUTPUT, RunStoreError
from ..runs.view import ACTIVE, positions, run_json
from .handlers import ApiBase
from .html_views import HTML_VIEWS, view_etag
from .runs_actions import take_flash
from .runs_actions import routes as action_routes
from .runs_api import RunsAPI
from .runs_api import RunsBase as ApiRunsBase
from .runs_view import HTML_VIEW_HEADERS, cell_source, notebook_html, queueing_capacity, run_row

#: a live update resends what changed this long before the last answer too (a run written
#: while the previous answer was being read is not missed; a row sent twice is swapped twice)
OVERLAP_S = 5.0
#: runs per page of the results page (newest first; live updates swap the rows shown)
PER_PAGE = 100
#: the page's own inputs, which are not spawn-form fields (left out before `parse_form`)
RUN_INPUTS = ("notebook", "name", "parameters", "bindings")
#: the spawn form's script, inlined by its template: the submit page allows it by its hash
#: (and serves it as ``runs/form.js`` to run again over a form re-rendered with errors)
FORM_JS = (Path(spawn_form.__file__).parent / "static" / "form.js").read_text("utf-8")
FORM_JS_CSP = "'sha256-" + base64.b64encode(hashlib.sha256(FORM_JS.encode("utf-8")).digest()).decode() + "'"
#: the submit page's capacity lines: probed when it is shown and the last probe is older
#: than this, each backend's probe bounded by CAPACITY_TIMEOUT_S (then "capacity unknown")
CAPACITY_MAX_AGE_S = 15.0
CAPACITY_TIMEOUT_S = 5.0
_MONITORS: WeakKeyDictionary = WeakKeyDictionary()
#: failing cells' sources already read (run store, run id) → source; the oldest go first
_SOURCES: dict[tuple[str, str], str] = {}
#: whether ended runs have an executed notebook: (run store, run id) → bool
_OUTPUTS: dict[tuple[str, str], bool] = {}
MAX_SOURCES = 1000


def remember(cache: dict, key: tuple[str, str], value: Any) -> None:
    """Keep ``value`` in ``cache`` (at most MAX_SOURCES entries; the oldest go first)."""
    if len(cache) >= MAX_SOURCES:
        cache.pop(next(iter(cache)))
    cache[key] = value


def size_text(n: int) -> str:
    """16777216 → "16 MB", 524288 → "512 kB" (binary units, as the runs API counts them)."""
    return f"{n / 2**20:g} MB" if n >= 2**20 else f"{n / 2**10:g} kB"


async def capacity_of(runs: Any) -> dict[str, Capacity]:
    """The backends' capacity for the submit page's form (a recent probe, or a new one), as
    a queued run needs it (`QueueingCapacity`)."""
    monitor = _MONITORS.get(runs)
    if monitor is None:
        monitor = _MONITORS[runs] = CapacityMonitor(runs.backends, timeout=CAPACITY_TIMEOUT_S)
    snapshot = monitor.snapshot()
    if not all(c.updated > time.time() - CAPACITY_MAX_AGE_S for c in snapshot.values()):
        snapshot = await monitor.refresh()
    return queueing_capacity(snapshot)


class PageBase(ApiRunsBase):
    """What the run pages share: the runs runtime (404 when runs are off), the run JSON of
    the API, and the hub's login for a visitor without one (pages, unlike the API)."""

    get_login_url = HubOAuthenticated.get_login_url

    async def row(self, run: dict, now: float) -> dict:
        output = run["status"] not in ACTIVE and await self.has_output(run["id"])
        row = run_row(run, self.ctx.config.timezone, self.ctx.prefix, now, output=output)
        if row["failure"] is not None and not row["failure"]["source"] and isinstance(run.get("error"), dict):
            row["failure"]["source"] = await self.failed_source(run["id"], run["error"].get("cell_index"))
        return row

    async def rows(self, runs: list[dict], now: float) -> list[dict]:
        return list(await asyncio.gather(*(self.row(r, now) for r in runs)))

    async def has_output(self, run_id: str) -> bool:
        """Whether an ended run has its executed notebook (asked once per run: a run's
        outputs are saved before it ends; a run store that cannot answer: no link, asked again)."""
        key = (self.runs.files.location, run_id)
        if key not in _OUTPUTS:
            try:
                found = await self.runs.files.exists(run_id, OUTPUT)
            except RunStoreError:
                return False
            remember(_OUTPUTS, key, found)
        return _OUTPUTS[key]

    async def failed_source(self, run_id: str, index: Any) -> str:
        """The failing cell's source, from the submitted notebook (read once per run)."""
        key = (self.runs.files.location, run_id)
        if key not in _SOURCES:
            try:
                source = cell_source(await self.runs.files.read(run_id, INPUT), index)
            except RunStoreError:
                return ""
            remember(_SOURCES, key, source)
        return _SOURCES[key]

    def show_all(self) -> bool:
        return self.is_admin and self.get_argument("all", "") == "1"

    def back(self, page: int) -> dict[str, str]:
        """The fields a row's cancel/delete form sends to come back to this list (`back_query`)."""
        return {"all": "1" if self.show_all() else "", "page": str(page) if page > 1 else ""}

    async def visible_runs(self, since: float | None = None) -> list[dict]:
        """The runs the page lists (the API's JSON, newest first); with ``since``: those
        changed after it and every active one (their durations and queue places move)."""
        store, user = self.runs.store, None if self.show_all() else self.user_name
        rows = await store.list(user, since)
        if since is not None:
            seen = {r["id"] for r in rows}
            rows += [r for r in await store.in_states(ACTIVE)
                     if r["id"] not in seen and (user is None or r["username"] == user)]
        queue = positions(await store.queued()) if any(r["status"] == "queued" for r in rows) else {}
        now = time.time()
        return [run_json(r, now, queue.get(r["id"])) for r in rows]


class RunsPage(PageBase):
    """``runs``: every run of the user (an admin: ``?all=1``, everyone's), newest first."""

    @web.authenticated
    async def get(self) -> None:
        now = time.time()
        runs = await self.visible_runs()
        pages = max(1, math.ceil(len(runs) / PER_PAGE))
        try:
            page = min(pages, max(1, int(self.get_argument("page", "1"))))
        except ValueError:
            page = 1
        rows = await self.rows(runs[(page - 1) * PER_PAGE:page * PER_PAGE], now)
        new = self.get_argument("submitted", "")
        self.page("runs.html.j2", errors={}, rows=rows, show_user=self.show_all(), cursor=now - OVERLAP_S,
                  xsrf=self.xsrf_token.decode(), submitted=next((r["name"] for r in rows if r["id"] == new), ""),
                  flash=take_flash(self, f"{self.ctx.prefix}runs"), back=self.back(page),
                  count=len(runs), page_no=page, pages=pages, page_base=f"{self.ctx.prefix}runs?"
                  + ("all=1&" if self.show_all() else ""))


class RunRows(PageBase):
    """``runs/rows?since=T``: the results page's live update — the rows (rendered HTML, by
    run id) of the runs changed since T and of every active run, and the next ``cursor``."""

    get_login_url = ApiBase.get_login_url

    @web.authenticated
    async def get(self) -> None:
        now = time.time()
        try:
            since = float(self.get_argument("since"))
        except (ValueError, web.MissingArgumentError):
            raise web.HTTPError(400, "since: a time (seconds since 1970) is needed") from None
        runs = await self.visible_runs(since=since)
        macro = self.ctx.templates.get_template("runs_macros.html.j2").module.run_rows
        show_user, xsrf = self.show_all(), self.xsrf_token.decode()
        try:
            back = self.back(int(self.get_argument("page", "1")))
        except ValueError:
            back = self.back(1)
        rows = await self.rows(runs, now)
        self.answer({"cursor": now - OVERLAP_S,
                     "rows": {str(r["id"]): str(macro(row, show_user, xsrf, back)) for r, row in zip(runs, rows)}})


class RunHtml(PageBase):
    """``runs/ID/html``: the executed notebook through nbconvert, served so that nothing in
    it runs in the service's origin (`HTML_VIEW_HEADERS`: a CSP sandbox without scripts or
    ``allow-same-origin``). An ended run's view is rendered once and kept (`html_views`),
    with an ETag the browser revalidates (``Cache-Control: private, no-cache``: a 304 after
    the same checks of who may see the run, nothing read or rendered)."""

    @web.authenticated
    async def get(self, run_id: str) -> None:
        row = await self.own_run(run_id)
        title = row.get("name") or f"run {run_id}"

        async def render() -> bytes:
            _, data = await self.own_output(run_id, row)
            return (await asyncio.to_thread(notebook_html, data, title)).encode("utf-8")

        for k, v in HTML_VIEW_HEADERS.items():
            self.set_header(k, v)
        if row["status"] in ACTIVE:  # not final yet: neither kept here nor by the browser
            html = await render()
            self.set_header("Cache-Control", "no-store")
            self.finish(html)
            return
        location = self.runs.files.location
        etag = view_etag(location, run_id, row.get("finished_at"))
        self.set_header("Cache-Control", "private, no-cache")
        self.set_header("Etag", etag)
        if self.check_etag_header():
            self.set_status(304)
            self.finish()
            return
        self.finish(await HTML_VIEWS.html((location, run_id), etag, render))


class FormScript(PageBase):
    """``runs/form.js``: the spawn form's script, to run again over a re-rendered form."""

    @web.authenticated
    def get(self) -> None:
        self.set_header("Content-Type", "text/javascript; charset=utf-8")
        self.finish(FORM_JS)


class NewRunPage(PageBase, RunsAPI):
    """``runs/new``: the submit page. GET shows it; POST (multipart: the spawn form's fields,
    the notebook file, ``parameters`` and ``bindings`` as JSON, ``name``) is the runs API's
    submit (`RunsAPI.post`: the same checks, the same queue) with the spawn form's fields
    read as the hub reads them (`parse_form`). The page's script posts it with fetch and gets
    JSON: 201 and the run, or 400 with the field errors and the spawn form re-rendered with
    them. Without the script the browser gets the page again (errors) or a redirect to ``runs``."""

    options: dict | None = None
    #: the submit's field errors (`field_errors`), for the page that comes back
    submit_errors: dict | None = None

    @web.authenticated
    async def get(self) -> None:
        await self.new_page({}, {}, name="", parameters="{}", bindings="{}")

    async def form_html(self, values: dict, errors: dict[str, str]) -> Markup:
        """The spawn form's fields (its own autoescaped template), errors next to them."""
        capacity = await capacity_of(self.runs)
        return Markup(render_form(catalog=self.runs.catalog, groups=list(self.current_user.get("groups") or ()),
                                  capacity=capacity, values=values, errors=self.form_errors(errors),
                                  username=self.user_name))

    @staticmethod
    def form_errors(errors: dict[str, str]) -> dict[str, str]:
        """The errors the spawn form part shows (next to its fields, or at its top)."""
        return {k: v for k, v in errors.items() if k.split(".")[0] not in RUN_INPUTS}

    async def new_page(self, values: dict, errors: dict[str, str], *, name: str, parameters: str, bindings: str,
                       resubmit: bool = False) -> None:
        own = {k: v for k, v in errors.items() if k in ("notebook", "name")}
        page_errors = [(k, v) for k, v in errors.items() if k.split(".")[0] in ("parameters", "bindings")]
        limit = self.runs.config.max_bytes
        self.page("run_new.html.j2", script_hashes=(FORM_JS_CSP,), errors={}, errors_for=own,
                  page_errors=page_errors, form_html=await self.form_html(values, errors),
                  max_bytes=limit, max_text=size_text(limit), xsrf=self.xsrf_token.decode(), name=name,
                  parameters_json=parameters, bindings_json=bindings, resubmit=resubmit)

    def wants_json(self) -> bool:
        return "application/json" in self.request.headers.get("Accept", "")

    def submitted(self) -> dict:
        """The run as the API's submit takes it, from the page's form."""
        self.options = parse_form({k: v for k, v in self.arguments().items() if k not in RUN_INPUTS})
        form: dict[str, Any] = {k: self.get_body_argument(k, "") for k in ("name", "parameters", "bindings")}
        files = self.request.files.get("notebook")
        form.update(options=self.options, notebook=files[0]["body"] if files else None)
        if not form["name"].strip() and files:  # the file's name, as the page's script fills it in
            form["name"] = Path(files[0]["filename"]).name.removesuffix(".ipynb")[:100]
        return form

    def field_errors(self, errors: dict) -> None:
        self.submit_errors = dict(errors)
        super().field_errors(errors)

    def answer(self, value: Any, status: int = 200) -> None:
        if status == 201 and not self.wants_json():
            self.redirect(f"{self.ctx.prefix}runs?submitted={value['id']}", status=303)
        else:
            super().answer(value, status)

    async def post(self) -> None:
        try:
            await super().post()
        except web.HTTPError as e:
            errors = self.submit_errors
            if e.status_code != 400 or errors is None:
                raise
            self.clear()
            self.set_status(400)
            options = self.options or {}
            if self.wants_json():
                form = await self.form_html(options, errors)
                self.answer({"status": 400, "message": e.log_message, "errors": errors, "form": str(form)}, 400)
            else:
                await self.new_page(options, errors, name=self.get_body_argument("name", ""),
                                    parameters=self.get_body_argument("parameters", "") or "{}",
                                    bindings=self.get_body_argument("bindings", "") or "{}", resubmit=True)


def routes(prefix: str, shared: dict) -> list[tuple]:
    """The pages' routes, for the service's application (`app.make_app`)."""
    return [
        (rf"{prefix}runs", RunsPage, shared),
        (rf"{prefix}runs/rows", RunRows, shared),
        (rf"{prefix}runs/new", NewRunPage, shared),
        (rf"{prefix}runs/form\.js", FormScript, shared),
        (rf"{prefix}runs/([A-Za-z0-9_-]{{1,64}})/html", RunHtml, shared),
        *action_routes(prefix, shared),
    ]
