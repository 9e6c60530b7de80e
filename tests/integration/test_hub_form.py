"""The spawn form through a real hub + proxy, as a browser without JavaScript uses it:
log in with the dummy authenticator, GET /hub/spawn, POST the fields with _xsrf."""

from __future__ import annotations

import html
import json
import re

import pytest

pytestmark = pytest.mark.hub


def field_block(page: str, field: str) -> str:
    """The HTML of one field's block in the form (from its container to the next field's)."""
    start = page.find(f'data-gs-field="{field}"')
    assert start >= 0, f"field {field} not in the form"
    nxt = page.find("data-gs-field=", start + 1)
    return page[start : nxt if nxt >= 0 else len(page)]


@pytest.fixture
def browser(hub, username):
    s = hub.form_session(username)
    yield s
    s.close()
    if hub.server(username) is not None:
        hub.stop_server(username)


@pytest.mark.jh5
def test_form_shows_fields_and_capacity(hub, browser):
    r = browser.get_form()
    assert r.status_code == 200
    for field in ("backend", "image", "gpus", "gpu_memory"):
        assert f'name="{field}"' in r.text
    assert "JupyterLab (hub&#39;s Python)" in r.text or "JupyterLab (hub's Python)" in r.text
    assert "Short session" in r.text  # the profile card


@pytest.mark.parametrize(
    "fields,field,message",
    [
        ({"backend": "local", "image": "lab", "gpus": "99"}, "gpus", "at most 4 GPUs"),
        ({"backend": "local", "image": "nope", "gpus": "0"}, "image", "unknown image"),
        ({"backend": "local", "image": "lab", "gpus": "1", "gpu_memory": "33"}, "gpu_memory", "must be one of"),
    ],
    ids=["gpus", "image", "gpu_memory"],
)
@pytest.mark.jh5
def test_form_bad_options_400_message_next_to_field(hub, browser, username, fields, field, message):
    r = browser.post_form(fields)
    assert r.status_code == 400, (r.status_code, r.text[:500])
    block = field_block(r.text, field)
    assert f'id="gs-{field}-error"' in block, block[:2000]
    error = re.search(rf'id="gs-{field}-error">(.*?)</div>', block, re.S).group(1)
    assert message in html.unescape(error), error
    assert 'aria-invalid="true"' in block
    # said once, next to the field: no JupyterHub banner repeating it ("Error: HTTP 400 …")
    assert "spawn-error-msg" not in r.text and "HTTP 400" not in r.text, r.text[:3000]
    assert html.unescape(r.text).count(html.unescape(error).strip()) == 1
    assert hub.server(username) is None
    assert not hub.server_pids(username)
    # the feedback is shown once: a fresh GET shows a clean form again
    again = browser.get_form()
    assert f'id="gs-{field}-error"' not in again.text


@pytest.mark.jh5
def test_rest_400_lists_every_bad_field_as_json(hub, username):
    hub.create_user(username)
    r = hub.spawn(username, {"backend": "local", "image": "nope", "gpus": 99, "gpu_memory": 33})
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["status"] == 400 and body["message"].startswith("Invalid server options: "), body
    problems = json.loads(r.headers["X-GridSpawner-Field-Errors"])
    assert [p["field"] for p in problems] == ["image", "gpus", "gpu_memory"], problems
    by_field = {p["field"]: p["message"] for p in problems}
    assert "unknown image" in by_field["image"] and "at most 4 GPUs" in by_field["gpus"], problems
    assert "must be one of" in by_field["gpu_memory"], problems
    for p in problems:  # the human message names the same problems
        assert f'{p["field"]}: {p["message"]}' in body["message"]
    assert hub.server(username) is None


@pytest.mark.jh5
def test_form_good_options_redirect_to_server(hub, browser, username):
    r = browser.post_form({"backend": "local", "image": "lab", "gpus": "1", "gpu_memory": "0"})
    assert r.status_code == 302, (r.status_code, r.text[:500])
    location = r.headers["Location"]
    assert location.endswith((f"/user/{username}/", f"/hub/spawn-pending/{username}")), location
    hub.wait_ready(username)
    # the user's own browser session reaches JupyterLab (through the OAuth dance)
    lab = browser.http.get(f"{hub.url}/user/{username}/lab", timeout=60)
    assert lab.status_code == 200
    assert "jupyter-config-data" in lab.text
    assert lab.url.startswith(f"{hub.url}/user/{username}/lab")
    hub.stop_server(username)
