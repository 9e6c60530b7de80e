"""Before the hub stops a server at its maximum run time, JupyterLab warns (gridspawner-lab,
installed in the environment the servers run from by scripts/install-lab-extension.sh).

A real hub spawns on the local backend with a profile of one minute and warnings 45 and 15
seconds before the stop; a real Chromium opens JupyterLab and sees the time left in the
status bar, the first warning with its text, the second one replacing it, and the server
stopped by the hub at the deadline. Screenshots go to the artifacts directory.
"""

from __future__ import annotations

import re
import time

import pytest

from browsing import open_spawn_page
from hubtools import default_grid_config

expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = [pytest.mark.browser, pytest.mark.hub, pytest.mark.timeout(240)]

MAX_RUNTIME = 60
WARNINGS = [45, 15]
STATUS = "#gridspawner-lab-time-left"
TOAST = ".Toastify__toast"
MESSAGE = re.compile(
    r"This server will be stopped in (?P<left>\d+ s|1 min) \(at \d\d?:\d\d( [AP]M)?\) "
    r"because its maximum run time ends\. Save your work\."
)


@pytest.fixture
def hub(make_hub, tmp_path):
    grid = default_grid_config(tmp_path)
    # JupyterLab's own settings for these servers: no "get notified about Jupyter news?" toast
    settings = tmp_path / "lab-settings"
    (settings / "@jupyterlab" / "apputils-extension").mkdir(parents=True)
    (settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    grid["images"]["lab"]["local"] = {"env": {"JUPYTERLAB_SETTINGS_DIR": str(settings)}}
    grid["profiles"]["minute"] = {
        "display_name": "One minute",
        "description": "stopped after a minute",
        "values": {"backend": "local", "image": "lab", "gpus": 0},
        "max_runtime": MAX_RUNTIME,
    }
    grid["stop_warnings"] = WARNINGS
    return make_hub(grid, spawner={"default_url": "/lab"})


def seconds_left(text: str) -> int:
    m = MESSAGE.search(text)
    assert m, text
    left = m.group("left")
    return 60 if left == "1 min" else int(left.split()[0])


def test_jupyterlab_warns_before_the_maximum_run_time(hub, chromium, username, artifacts_dir):
    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        open_spawn_page(page, hub, username)
        page.check("input[name=profile][value=minute]")
        page.click("form#spawn_form [type=submit], form [type=submit]")
        page.wait_for_url(f"**/user/{username}/lab**", timeout=90_000)
        page.wait_for_selector("#jp-main-dock-panel")
        deadline = hub.server(username)["state"]["deadline"]

        # the status bar: the time left, measured on the server's clock
        status = page.locator(STATUS)
        expect(status).to_have_text(re.compile(r"^Server stops in (\d+ s|1 min)$"), timeout=30_000)
        expect(status).to_be_visible()
        assert "because its maximum run time ends" in status.get_attribute("title")

        # the first warning: 45 s before the stop (or at once, if JupyterLab opened later)
        first = page.locator(TOAST, has_text="This server will be stopped in")
        first.wait_for(state="visible", timeout=(MAX_RUNTIME + 5) * 1000)
        warned_at = time.time()
        message = first.inner_text()
        assert deadline - warned_at <= WARNINGS[0] + 2, "warned too early"
        assert seconds_left(message) >= WARNINGS[1], message
        page.wait_for_timeout(1000)  # the toast has slid in
        shot = artifacts_dir / "lab-stop-warning.png"
        page.screenshot(path=str(shot))
        print(f"stop warning screenshot: {shot}")

        # the second warning, 15 s before: it replaces the first one
        second = page.locator(TOAST, has_text=re.compile(r"stopped in (1[0-5]|[0-9]) s "))
        second.wait_for(state="visible", timeout=(WARNINGS[0] + 5) * 1000)
        assert deadline - time.time() <= WARNINGS[1] + 2, "warned too early"
        expect(page.locator(TOAST, has_text="This server will be stopped in")).to_have_count(1, timeout=5000)
        assert re.fullmatch(r"Server stops in \d+ s", status.inner_text())
        page.screenshot(path=str(artifacts_dir / "lab-stop-warning-last.png"))

        # and the hub stops it at the deadline
        hub.wait_stopped(username, timeout=30)
        assert time.time() >= deadline - 1
    finally:
        context.close()
        if hub.server(username) is not None:
            hub.stop_server(username)
