"""The notebook-run pages of the service: ``runs`` (the results page and its live rows),
``runs/new`` (submit: a notebook, the spawn form's choices, parameters) and ``runs/ID/html``
(the executed notebook as HTML, sandboxed).

Pages authenticate like the usage pages (the hub's login cookie via OAuth; requests from
the pages' scripts carry the XSRF token JupyterHub checks on cookie-authenticated fetches).
What a run is, who may see it and how it is checked and queued is the runs API's
(``runs_api``, ``gridspawner.runs``); these handlers only show it and send the form to it."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from pathlib import Path
from typing import Any

from markupsafe import Markup
from tornado import web

from .. import form as spawn_form
from ..form import parse_form, render_form
from .handlers import ApiBase, Base
from .runs_view import HTML_VIEW_HEADERS, notebook_html, run_row

#: a live update resends what changed this long before the last answer too (a run written
#: while the previous answer was being read is not missed; a row sent twice is swapped twice)
OVERLAP_S = 5.0
#: the page's own inputs, which are not spawn-form fields (left out before `parse_form`)
RUN_INPUTS = ("notebook", "name", "parameters", "bindings")
#: the spawn form's script, inlined by its template: the submit page allows it by its hash
#: (and serves it as ``runs/form.js`` to run again over a form re-rendered with errors)
FORM_JS = (Path(spawn_form.__file__).parent / "static" / "form.js").read_text("utf-8")
FORM_JS_CSP = "'sha256-" + base64.b64encode(hashlib.sha256(FORM_JS.encode("utf-8")).digest()).decode() + "'"


def size_text(n: int) -> str:
    """1048576 → "1 MB", 524288 → "512 kB"."""
    return f"{n / 1e6:g} MB" if n >= 1_000_000 else f"{n / 1e3:g} kB"


class RunsBase(Base):
    @property
    def runs(self) -> Any:
        if self.ctx.runs is None:
            raise web.HTTPError(404, "notebook runs are not enabled on this hub")
        return self.ctx.runs

    def row(self, run: dict, now: float) -> dict:
        return run_row(run, self.ctx.config.timezone, self.ctx.prefix, now)

    def show_all(self) -> bool:
        return self.is_admin and self.get_argument("all", "") == "1"

    async def visible_runs(self, since: float | None = None) -> list[dict]:
        return await self.runs.list_runs(None if self.show_all() else self.user_name, since=since)

    async def own_run(self, run_id: str) -> dict:
        run = await self.runs.get_run(run_id)
        if run is None or (run["user"] != self.user_name and not self.is_admin):
            raise web.HTTPError(404, f"no run {run_id}")
        return run


class RunsPage(RunsBase):
    """``runs``: every run of the user (an admin: ``?all=1``, everyone's), newest first."""

    @web.authenticated
    async def get(self) -> None:
        now = time.time()
        rows = [self.row(r, now) for r in await self.visible_runs()]
        self.page("runs.html.j2", errors={}, rows=rows, show_user=self.show_all(), cursor=now - OVERLAP_S,
                  xsrf=self.xsrf_token.decode(), submitted=self.get_argument("submitted", ""))


class RunRows(RunsBase, ApiBase):
    """``runs/rows?since=T``: the results page's live update — the rows (rendered HTML, by
    run id) of the runs changed since T and of every active run, and the next ``cursor``."""

    @web.authenticated
    async def get(self) -> None:
        now = time.time()
        try:
            since = float(self.get_argument("since"))
        except (ValueError, web.MissingArgumentError):
            raise web.HTTPError(400, "since: a time (seconds since 1970) is needed") from None
        runs = await self.visible_runs(since=since)
        macro = self.ctx.templates.get_template("runs_macros.html.j2").module.run_rows
        show_user = self.show_all()
        self.set_header("Cache-Control", "no-store")
        self.finish({"cursor": now - OVERLAP_S,
                     "rows": {str(r["id"]): str(macro(self.row(r, now), show_user)) for r in runs}})


class RunHtml(RunsBase):
    """``runs/ID/html``: the executed notebook through nbconvert, served so that nothing in
    it runs in the service's origin (`HTML_VIEW_HEADERS`: a CSP sandbox without scripts or
    ``allow-same-origin``)."""

    @web.authenticated
    async def get(self, run_id: str) -> None:
        run = await self.own_run(run_id)
        data = await self.runs.read_notebook(run_id)
        if data is None:
            raise web.HTTPError(404, f"run {run_id} has no executed notebook (yet)")
        html = await self.runs.in_thread(notebook_html, data, run.get("name") or f"run {run_id}")
        for k, v in HTML_VIEW_HEADERS.items():
            self.set_header(k, v)
        self.finish(html)


class FormScript(RunsBase):
    """``runs/form.js``: the spawn form's script, to run again over a re-rendered form."""

    @web.authenticated
    def get(self) -> None:
        self.set_header("Content-Type", "text/javascript; charset=utf-8")
        self.finish(FORM_JS)


class NewRunPage(RunsBase):
    """``runs/new``: the submit page. GET shows it; POST (multipart) sends it to the runs API's
    submit — the page's script posts it with fetch and gets JSON (201 with the run, or 400 with
    the field errors and the spawn form re-rendered with them); without the script the
    browser posts it and gets the page again (errors) or a redirect to ``runs``."""

    @web.authenticated
    async def get(self) -> None:
        self.new_page({}, {}, name="", parameters="{}", bindings="{}")

    def form_html(self, values: dict, errors: dict[str, str]) -> Markup:
        """The spawn form's fields (its own autoescaped template), errors next to them."""
        return Markup(render_form(catalog=self.runs.catalog, groups=list(self.current_user.get("groups") or ()),
                           capacity=self.runs.capacity(), values=values, errors=errors, username=self.user_name))

    def new_page(self, values: dict, errors: dict[str, str], *, name: str, parameters: str, bindings: str,
                 resubmit: bool = False) -> None:
        own = {k: v for k, v in errors.items() if k in ("notebook", "name")}
        page_errors = [(k, v) for k, v in errors.items() if k.split(".")[0] in ("parameters", "bindings")]
        limit = self.runs.max_notebook_bytes
        self.page("run_new.html.j2", script_hashes=(FORM_JS_CSP,), errors={}, errors_for=own,
                  page_errors=page_errors, form_html=self.form_html(values, self.form_errors(errors)),
                  max_bytes=limit, max_text=size_text(limit), xsrf=self.xsrf_token.decode(), name=name,
                  parameters_json=parameters, bindings_json=bindings, resubmit=resubmit)

    @staticmethod
    def form_errors(errors: dict[str, str]) -> dict[str, str]:
        """The errors the spawn form part shows (next to its fields, or at its top)."""
        return {k: v for k, v in errors.items() if k.split(".")[0] not in RUN_INPUTS}

    def wants_json(self) -> bool:
        return "application/json" in self.request.headers.get("Accept", "")

    @web.authenticated
    async def post(self) -> None:
        args = {k: v for k, v in self.arguments().items() if k not in RUN_INPUTS}
        options = parse_form(args)
        files = self.request.files.get("notebook") or []
        upload = files[0] if files else None
        name = self.get_body_argument("name", "")
        texts = {k: self.get_body_argument(k, "") or "{}" for k in ("parameters", "bindings")}
        decoded: dict[str, Any] = {}
        errors: dict[str, str] = {}
        for key, text in texts.items():
            try:
                decoded[key] = json.loads(text)
            except ValueError:
                errors[key] = "is not JSON"
        if not errors:
            run, errors = await self.runs.submit(
                self.current_user, notebook=upload["body"] if upload else None,
                filename=upload["filename"] if upload else "", options=options,
                parameters=decoded["parameters"], bindings=decoded["bindings"], name=name)
            if run is not None:
                if self.wants_json():
                    self.set_status(201)
                    self.finish({"run": run})
                else:
                    self.redirect(f"{self.ctx.prefix}runs?submitted={run['id']}", status=303)
                return
        self.set_status(400)
        if self.wants_json():
            self.finish({"errors": errors, "form": str(self.form_html(options, self.form_errors(errors)))})
        else:
            self.new_page(options, errors, name=name, parameters=texts["parameters"], bindings=texts["bindings"],
                          resubmit=True)


def routes(prefix: str, shared: dict) -> list[tuple]:
    """The pages' routes, for the service's application (`app.make_app`)."""
    return [
        (rf"{prefix}runs", RunsPage, shared),
        (rf"{prefix}runs/rows", RunRows, shared),
        (rf"{prefix}runs/new", NewRunPage, shared),
        (rf"{prefix}runs/form\.js", FormScript, shared),
        (rf"{prefix}runs/([A-Za-z0-9_-]{{1,64}})/html", RunHtml, shared),
    ]
