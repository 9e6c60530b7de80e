"""The results page without JavaScript and the cached HTML view, through a real hub, proxy
and gridspawner service, with a plain HTTP client logged in as a browser is (the hub's
login cookie, the service's OAuth cookie, the XSRF token from the page's forms):

- the cancel/delete forms a page renders cancel a queued run and delete an ended one (after
  a page that asks), and answer with a redirect to the list and a one-time message; a post without the token is
  refused (nothing changes), another user's run is a 404 as on REST, a GET changes nothing;
- the HTML view of an ended run is rendered once (served again with its file gone), with a
  weak ETag the browser revalidates (304), ``Cache-Control: private``, and — fresh, kept
  or revalidated — the CSP sandbox that keeps an output's ``<script>`` out of the service's
  origin."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import requests
from test_hub_runs import api, client, notebook, wait_service_routed, wait_status

from hubtools import Hub, default_grid_config, free_port

pytestmark = pytest.mark.hub

ONE_GPU = [("NVIDIA A100-SXM4-80GB", 81920)]
SERVICE = "/services/gridspawner/"
OUTPUT = "output.ipynb"  # gridspawner.runs.files.OUTPUT


@pytest.fixture(scope="module")
def pages_hub(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("hub")
    grid = default_grid_config(workdir)
    grid.update({"notebook_runs": True, "runs_poll_interval": 0.5, "runs_dir": str(workdir / "run-store"),
                 "default_quota": {"gpus_at_once": 2}})
    extra = ("from gridspawner.service.settings import enable_service\n"
             f"enable_service(c, port={free_port()}, admin_users=['pgadmin'])\n")
    with Hub(grid, workdir=workdir, extra_config=extra, gpus=ONE_GPU) as hub:
        wait_service_routed(hub)
        yield hub
    assert not hub.leftover_pids()


def browser(hub: Hub, name: str) -> requests.Session:
    """A logged-in session with the service's cookie (the OAuth round trip a browser makes)."""
    http = hub.form_session(name).http
    r = http.get(f"{hub.url}{SERVICE}runs", timeout=60)
    assert r.status_code == 200 and "Notebook runs" in r.text, r.text[:500]
    return http


def form_of(html: str, run_id: str, action: str) -> dict[str, str]:
    """The hidden fields of a row's cancel/delete form (its action checked)."""
    m = re.search(rf'<form method="post" action="{re.escape(SERVICE)}runs/{run_id}/{action}"[^>]*>(.*?)</form>', html, re.S)
    assert m, f"no {action} form for {run_id}"
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', m.group(1)))


def post_form(http: requests.Session, hub: Hub, run_id: str, action: str, fields: dict) -> requests.Response:
    return http.post(f"{hub.url}{SERVICE}runs/{run_id}/{action}", data=fields, allow_redirects=False, timeout=60)


def submit(s: requests.Session, hub: Hub, body: str, gpus: int = 0, **params) -> dict:
    r = s.post(api(hub), files={"notebook": ("n.ipynb", notebook(body))},
               data={"options": json.dumps({"gpus": gpus}), "parameters": json.dumps(params)}, timeout=60)
    assert r.status_code == 201, r.text
    return r.json()


def test_cancel_and_delete_as_plain_form_posts(pages_hub, username):
    hub = pages_hub
    alice = client(hub, username)
    holder = submit(alice, hub, "import time\ntime.sleep(seconds)", gpus=1, seconds=300.0)
    try:
        cancel_and_delete(hub, alice, holder, username)
    finally:  # nothing left holding the GPU for the next test, whatever failed
        for run in alice.get(api(hub), timeout=30).json()["runs"]:
            if run["status"] in ("queued", "preparing", "running"):
                alice.post(api(hub, f"/{run['id']}/cancel"), timeout=60)


def cancel_and_delete(hub: Hub, alice: requests.Session, holder: dict, username: str) -> None:
    wait_status(alice, api(hub, f"/{holder['id']}"), ("running",))
    waiting = submit(alice, hub, "print('never')", gpus=1)  # the one GPU is busy: it waits
    assert wait_status(alice, api(hub, f"/{waiting['id']}"), ("queued",))["status"] == "queued"

    page = browser(hub, username)
    listing = page.get(f"{hub.url}{SERVICE}runs", timeout=60).text
    fields = form_of(listing, waiting["id"], "cancel")
    assert fields["_xsrf"]

    # without the page's token: refused, and the run still waits
    r = post_form(page, hub, waiting["id"], "cancel", {})
    assert r.status_code == 403, r.text
    r = post_form(page, hub, waiting["id"], "cancel", {"_xsrf": "forged"})
    assert r.status_code == 403, r.text
    # no state change on a GET
    assert page.get(f"{hub.url}{SERVICE}runs/{waiting['id']}/cancel", allow_redirects=False, timeout=30).status_code == 405
    assert alice.get(api(hub, f"/{waiting['id']}"), timeout=30).json()["status"] == "queued"

    # another user, with a valid token of their own page: a 404, as on REST
    mallory = browser(hub, username + "m")
    token = form_of_any(mallory.get(f"{hub.url}{SERVICE}runs", timeout=60).text, mallory)
    assert post_form(mallory, hub, waiting["id"], "cancel", {"_xsrf": token}).status_code == 404
    assert post_form(mallory, hub, holder["id"], "delete", {"_xsrf": token}).status_code == 404
    assert alice.get(api(hub, f"/{waiting['id']}"), timeout=30).json()["status"] == "queued"

    # the form as the page renders it: cancelled, back to the list with a message, shown once
    r = post_form(page, hub, waiting["id"], "cancel", fields)
    assert r.status_code == 303 and r.headers["Location"] == f"{SERVICE}runs", (r.status_code, r.text)
    assert alice.get(api(hub, f"/{waiting['id']}"), timeout=30).json()["status"] == "cancelled"
    shown = page.get(f"{hub.url}{SERVICE}runs", timeout=60).text
    assert re.search(r'id="gs-flash">[^<]*: cancelled\.<', shown), shown
    assert 'id="gs-flash"' not in page.get(f"{hub.url}{SERVICE}runs", timeout=60).text

    # deleting an active run: refused with a message, the run kept
    r = post_form(page, hub, holder["id"], "delete", {"_xsrf": fields["_xsrf"]})
    assert r.status_code == 303
    assert "cancel it first" in page.get(f"{hub.url}{SERVICE}runs", timeout=60).text
    assert alice.get(api(hub, f"/{holder['id']}"), timeout=30).status_code == 200

    # the running one: cancelled by its form, then deleted by the delete form it gets
    r = post_form(page, hub, holder["id"], "cancel", form_of(shown, holder["id"], "cancel"))
    assert r.status_code == 303
    wait_status(alice, api(hub, f"/{holder['id']}"), ("cancelled",), 90)
    listing = page.get(f"{hub.url}{SERVICE}runs", timeout=60).text
    # delete asks first: the row's form answers with a page whose button posts it confirmed
    r = post_form(page, hub, waiting["id"], "delete", form_of(listing, waiting["id"], "delete"))
    assert r.status_code == 200 and "cannot be undone" in r.text, r.text[:500]
    assert alice.get(api(hub, f"/{waiting['id']}"), timeout=30).status_code == 200
    confirm = form_of(r.text, waiting["id"], "delete")
    assert confirm["confirm"] == "1" and confirm["_xsrf"]
    r = post_form(page, hub, waiting["id"], "delete", confirm)
    assert r.status_code == 303
    assert alice.get(api(hub, f"/{waiting['id']}"), timeout=30).status_code == 404
    assert re.search(r'id="gs-flash">[^<]*: deleted, with its notebooks\.<',
                     page.get(f"{hub.url}{SERVICE}runs", timeout=60).text)
    # an admin may delete anyone's run, by the same form
    admin = browser(hub, "pgadmin")
    token = form_of_any(admin.get(f"{hub.url}{SERVICE}runs?all=1", timeout=60).text, admin)
    r = post_form(admin, hub, holder["id"], "delete", {"_xsrf": token, "confirm": "1", "all": "1"})
    assert r.status_code == 303 and r.headers["Location"] == f"{SERVICE}runs?all=1", r.text[:300]
    assert alice.get(api(hub, f"/{holder['id']}"), timeout=30).status_code == 404


def form_of_any(html: str, http: requests.Session) -> str:
    """A page's XSRF token where it lists no run (the token the page's script would send)."""
    m = re.search(r'data-gs-xsrf="([^"]+)"', html)
    assert m, html[:500]
    return m.group(1)


def test_the_html_view_is_rendered_once_revalidated_and_sandboxed(pages_hub, username):
    hub = pages_hub
    alice = client(hub, username)
    run = submit(alice, hub, "from IPython.display import HTML, display\n"
                             "display(HTML('<b id=\"out\">shown</b><script>document.title = \"pwned\"</script>'))")
    assert wait_status(alice, api(hub, f"/{run['id']}"), ("succeeded", "failed"))["status"] == "succeeded"
    page = browser(hub, username)
    url = f"{hub.url}{SERVICE}runs/{run['id']}/html"

    def sandboxed(r: requests.Response) -> None:
        csp = [d.strip() for d in r.headers["Content-Security-Policy"].split(";")]
        assert csp[0] == "sandbox" and "allow-" not in r.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "script-src" not in r.headers["Content-Security-Policy"]
        assert r.headers["X-Content-Type-Options"] == "nosniff"

    first = page.get(url, timeout=120)
    assert first.status_code == 200 and 'id="out"' in first.text
    assert "document.title" in first.text  # nbconvert keeps the output's script: the sandbox keeps it inert
    sandboxed(first)
    etag = first.headers["Etag"]
    assert etag.startswith('W/"') and first.headers["Cache-Control"] == "private, no-cache"

    # kept: served again with the executed notebook moved out of the run store
    stored = hub.workdir / "run-store" / run["id"] / OUTPUT
    aside = stored.with_name("aside.ipynb")
    shutil.move(stored, aside)
    try:
        again = page.get(url, timeout=60)
        assert again.status_code == 200 and again.content == first.content and again.headers["Etag"] == etag
        sandboxed(again)
        # revalidated: 304, no body, the same sandbox
        cheap = page.get(url, headers={"If-None-Match": etag}, timeout=60)
        assert cheap.status_code == 304 and cheap.content == b""
        sandboxed(cheap)
    finally:
        shutil.move(aside, stored)
    # another user: a 404 whether the view is kept or not, and no ETag answer either
    other = browser(hub, username + "o")
    assert other.get(url, timeout=60).status_code == 404
    assert other.get(url, headers={"If-None-Match": etag}, timeout=60).status_code == 404
    # deleted: gone from the cache too
    assert alice.delete(api(hub, f"/{run['id']}"), timeout=30).status_code == 204
    assert page.get(url, timeout=60).status_code == 404
