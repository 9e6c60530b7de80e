"""The results page without JavaScript and the HTML view's cache, without a server: each
row's cancel/delete is a POST form carrying the page's XSRF token and the way back; the way
back takes nothing but ``all=1`` and a page number; the kept HTML views are bounded, keyed
by their ETag, dropped with their run, and rendered once for concurrent requests."""

from __future__ import annotations

import asyncio

from bs4 import BeautifulSoup

from gridspawner.service.context import templates
from gridspawner.service.html_views import HtmlViews, view_etag
from gridspawner.service.runs_actions import back_query
from gridspawner.service.runs_view import run_row
from test_runs_pages import PREFIX, T0, UTC, run


def rows(r: dict, xsrf: str = "tok<en>", back=None) -> BeautifulSoup:
    macro = templates().get_template("runs_macros.html.j2").module.run_rows
    return BeautifulSoup(str(macro(run_row(r, UTC, PREFIX, T0 + 10), False, xsrf, back)), "html.parser")


def test_cancel_and_delete_are_post_forms_with_the_xsrf_token():
    queued = rows(run(status="queued"), back={"all": "1", "page": "3"})
    form = queued.find("form", attrs={"data-gs-form": "cancel"})
    assert form["method"] == "post" and form["action"] == f"{PREFIX}runs/r1/cancel"
    fields = {i["name"]: i["value"] for i in form.find_all("input")}
    assert fields == {"_xsrf": "tok<en>", "all": "1", "page": "3"}  # escaped in the markup, the value intact
    button = form.find("button")
    assert button["type"] == "submit" and not button.has_attr("hidden")  # shown without a script
    assert button["data-gs-url"] == f"{PREFIX}api/runs/r1/cancel"  # the script's REST call
    assert not queued.find("form", attrs={"data-gs-form": "delete"})
    done = rows(run(status="succeeded", started=T0, finished=T0 + 5))
    form = done.find("form", attrs={"data-gs-form": "delete"})
    assert form["method"] == "post" and form["action"] == f"{PREFIX}runs/r1/delete"
    assert [i["name"] for i in form.find_all("input")] == ["_xsrf"]  # the first page of one's own runs
    assert not done.find("form", attrs={"data-gs-form": "cancel"})


def test_a_run_being_cancelled_says_so_and_offers_no_second_cancel():
    stopping = rows(run(status="running", started=T0, cancel_requested=True))
    assert stopping.find(attrs={"data-gs-status-text": True}).text == "cancelling"
    assert stopping.find("tbody")["data-gs-status"] == "running" and stopping.find("tbody")["data-gs-active"] == "1"
    assert not stopping.find("form")  # neither cancel again nor delete while it stops
    # a cancel asked for a run that ended anyway: its end is what it shows
    assert rows(run(status="succeeded", started=T0, cancel_requested=True)).find(
        attrs={"data-gs-status-text": True}).text == "succeeded"


def test_the_way_back_is_never_a_url_from_the_form():
    assert back_query("1", "2") == "?all=1&page=2"
    assert back_query("", "") == "" and back_query("", "1") == ""
    assert back_query("https://evil.example/", "//evil") == ""
    assert back_query("0", "-3") == "" and back_query("", "2&x=1") == ""


def test_views_are_kept_by_etag_bounded_and_dropped_with_their_run():
    views = HtmlViews(max_bytes=100, max_one=60)
    a, b, c = ("store", "a"), ("store", "b"), ("store", "c")
    views.put(a, "e1", b"x" * 40)
    views.put(b, "e2", b"y" * 40)
    assert views.get(a, "e1") == b"x" * 40  # a is now the most recently used
    assert views.get(a, "other") is None  # a different ETag (a new renderer): not this page
    views.put(c, "e3", b"z" * 40)  # over 100 bytes: the least recently used (b) goes
    assert views.get(b, "e2") is None and views.get(a, "e1") and views.get(c, "e3")
    assert views.size == 80
    views.put(("store", "big"), "e4", b"q" * 61)  # over max_one: not kept
    assert views.get(("store", "big"), "e4") is None and views.size == 80
    views.forget("store", "a")
    assert views.get(a, "e1") is None and views.size == 40


def test_concurrent_requests_render_a_view_once_and_errors_are_not_kept():
    views = HtmlViews()
    calls = []

    async def render() -> bytes:
        calls.append(1)
        await asyncio.sleep(0.05)
        return b"<html>page</html>"

    async def main() -> list[bytes]:
        return await asyncio.gather(*(views.html(("s", "r"), "e", render) for _ in range(5)))

    assert asyncio.run(main()) == [b"<html>page</html>"] * 5
    assert len(calls) == 1 and views.renders == 1
    assert asyncio.run(views.html(("s", "r"), "e", render)) == b"<html>page</html>" and len(calls) == 1

    async def broken() -> bytes:
        raise ValueError("not a notebook")

    async def fails() -> None:
        try:
            await views.html(("s", "x"), "e", broken)
        except ValueError:
            return
        raise AssertionError("the error was not raised")

    asyncio.run(fails())
    assert views.get(("s", "x"), "e") is None


def test_etags_change_with_the_run_its_end_and_the_store():
    e = view_etag("/runs", "abc", T0)
    assert e.startswith('W/"') and e.endswith('"')
    assert e == view_etag("/runs", "abc", T0)
    assert len({e, view_etag("/runs", "abd", T0), view_etag("/runs", "abc", T0 + 1), view_etag("s3://b", "abc", T0)}) == 4
