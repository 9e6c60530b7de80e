"""Cancel and delete from the results page without JavaScript: ``POST runs/ID/cancel`` and
``POST runs/ID/delete``, plain HTML form posts.

Each row's buttons are ``<form method="post">`` with the ``_xsrf`` field of the page: the
hub's login cookie counts for a POST only with that token (`HubOAuthenticated` checks it; a
post without it has no user, a 403), so another site cannot make a logged-in browser post
them. There is no GET (405): nothing changes on a link. The checks are the REST API's
(`RunsBase.own_run`, `cancel_run`, `delete_run`): a user's own runs only (another's is a
404, as a missing one), an admin every run; a run that cannot be cancelled or deleted now
(409, 503) comes back as a message. Delete asks first: a post without ``confirm=1`` is
answered with a page that asks (its button posts again, confirmed), as the page's script
asks before its REST call. The browser is then sent back to the list it came from (303)
with a one-time message in a signed cookie (`set_flash` / `take_flash`). Where the page's
script runs, it sends the REST calls itself and the page is not reloaded (``runs.js``)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from tornado import web

from ..runs.view import ACTIVE
from .runs_api import RunsBase

#: the one-time message after a form post: a signed cookie on the results page's path
FLASH_COOKIE = "gridspawner-runs-flash"
#: a message older than this is not shown (a browser that never came back to the page)
FLASH_MAX_AGE_DAYS = 10 / (24 * 60)
FLASH_KINDS = ("success", "danger")


def set_flash(handler: web.RequestHandler, path: str, kind: str, text: str) -> None:
    """Leave a message for the next results page ``handler``'s browser opens."""
    handler.set_signed_cookie(FLASH_COOKIE, json.dumps({"kind": kind, "text": text}), expires_days=None, path=path,
                              httponly=True, samesite="Lax", secure=handler.request.protocol == "https")


def take_flash(handler: web.RequestHandler, path: str) -> dict[str, str] | None:
    """The message `set_flash` left (once: it is cleared), or None."""
    raw = handler.get_signed_cookie(FLASH_COOKIE, max_age_days=FLASH_MAX_AGE_DAYS)
    if handler.get_cookie(FLASH_COOKIE) is not None:
        handler.clear_cookie(FLASH_COOKIE, path=path)
    try:
        flash = json.loads(raw) if raw else None
    except ValueError:
        return None
    if not isinstance(flash, dict) or flash.get("kind") not in FLASH_KINDS or not isinstance(flash.get("text"), str):
        return None
    return {"kind": flash["kind"], "text": flash["text"][:500]}


def back_query(all_runs: str, page: str) -> str:
    """The results page's query to return to: ``all=1`` and a page number, nothing else
    (what a form sends is never a URL to follow)."""
    parts = ["all=1"] if all_runs == "1" else []
    if page.isdigit() and 1 < int(page) < 10**6:
        parts.append(f"page={int(page)}")
    return "?" + "&".join(parts) if parts else ""


class RunAction(RunsBase):
    """``POST runs/ID/(cancel|delete)``: the form posts of the results page."""

    @web.authenticated
    async def post(self, run_id: str, action: str) -> None:
        row = await self.own_run(run_id)  # 404 for another's run, as the REST API
        name = row.get("name") or f"run {run_id}"
        path = f"{self.ctx.prefix}runs"
        try:
            if action == "cancel":
                await self.cancel_run(row)
                now = await self.runs.store.get(run_id)
                text = (f"{name}: cancelled." if now is None or now["status"] == "cancelled"
                        else f"{name}: cancelling (its process stops in a moment).")
            elif self.get_body_argument("confirm", "") != "1" and row["status"] not in ACTIVE:
                self.confirm_page(row, name, path)
                return
            else:
                await self.delete_run(row)
                text = f"{name}: deleted, with its notebooks."
            set_flash(self, path, "success", text)
        except web.HTTPError as e:
            if e.status_code not in (409, 503):
                raise
            done = "cancelled" if action == "cancel" else "deleted"
            set_flash(self, path, "danger", f"{name} could not be {done}: {e.log_message}")
        self.redirect(path + self.back_query(), status=303)

    def back_query(self) -> str:
        return back_query(self.get_body_argument("all", ""), self.get_body_argument("page", ""))

    def confirm_page(self, row: dict, name: str, path: str) -> None:
        """Delete's question, as a page: its button posts the form again, confirmed."""
        query = self.back_query()
        back = {k: v[0] for k, v in parse_qs(query.lstrip("?")).items()}
        self.set_header("Cache-Control", "no-store")
        self.page("run_delete.html.j2", errors={}, name=name, action=f"{path}/{row['id']}/delete",
                  xsrf=self.xsrf_token.decode(), back=back, back_url=path + query)


def routes(prefix: str, shared: dict[str, Any]) -> list[tuple]:
    return [(rf"{prefix}runs/([A-Za-z0-9_-]{{1,64}})/(cancel|delete)", RunAction, shared)]
