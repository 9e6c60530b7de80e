"""A start refused for lack of capacity, as the user sees it in a real Chromium on a real hub.

Carl's form was rendered while all four fake GPUs were there; then one of the two 80 GB
cards left the host (the fake nvidia-smi no longer lists it; nothing tells the hub's
capacity cache), so the two Carl asks for no longer fit. The form that comes back says
so once, next to the GPU fields, in the same words as the form script ("no host has 2 free
GPUs with ≥ 80 GB (at most 1 free now)", from `Capacity.fits`): no "HTTP 503", no host
name, no JupyterHub banner repeating it; its capacity line was probed after the refusal.
REST clients get the same words with the backend's display name.
"""

from __future__ import annotations

import pytest

from browsing import open_spawn_page
from hubtools import Hub, default_grid_config
from hubtools.hub import FAKE_GPUS

expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = [pytest.mark.browser, pytest.mark.hub, pytest.mark.timeout(180)]

REASON = "no host has 2 free GPUs with ≥ 80 GB (at most 1 free now)"
MESSAGE = (f"No capacity on This machine right now: {REASON}. Choose fewer GPUs, less memory per GPU "
           "or another place to run, or try again later.")


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("nocap-hub")
    grid = default_grid_config(workdir)
    grid["capacity_refresh_interval"] = 3600  # only launches and stops refresh it
    h = Hub(grid, workdir=workdir)
    try:
        h.start()
        yield h
    finally:
        h.close()


def wait_for_capacity(page, hub, text: str) -> None:
    for _ in range(40):  # the first probe runs in the background after the hub starts
        if text in page.locator("[data-gs-capacity]").first.inner_text():
            return
        page.wait_for_timeout(250)
        page.goto(f"{hub.url}/hub/spawn")
    raise AssertionError(page.locator("[data-gs-capacity]").first.inner_text())


def test_no_capacity_is_said_once_in_the_forms_words(hub, chromium, artifacts_dir):
    context = chromium.new_context(viewport={"width": 1100, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        open_spawn_page(page, hub, "carl")
        wait_for_capacity(page, hub, "4 of 4 GPUs free")
        page.locator("input[name=profile][value='']").check()
        page.select_option("select[name=backend]", "local")
        page.select_option("select[name=image]", "lab")
        page.select_option("select[name=gpus]", "2")
        page.select_option("select[name=gpu_memory]", "80")

        hub.set_fake_gpus(FAKE_GPUS[1:])  # the cache still says 4 of 4
        page.click("form#spawn_form [type=submit]")
        page.wait_for_load_state()

        note = page.locator("[data-gs-note]")
        expect(note).to_be_visible()
        expect(note).to_have_text(f"Does not fit right now: {REASON}")
        expect(page.locator("[data-gs-capacity]").first).to_have_text("3 of 3 GPUs free, up to 80 GB")
        expect(page.locator(".spawn-error-msg")).to_have_count(0)
        text = page.locator("body").inner_text()
        assert text.count(REASON) == 1, text
        for word in ("HTTP", "503", "localhost", "gpus:"):
            assert word not in text, (word, text)
        page.screenshot(path=str(artifacts_dir / "no-capacity-form.png"), full_page=True)

        # opened again later: still said once (JupyterHub's banner is dropped by the server)
        page.goto(f"{hub.url}/hub/spawn")
        expect(page.locator("[data-gs-note]")).to_have_text(f"Does not fit right now: {REASON}")
        expect(page.locator(".spawn-error-msg")).to_have_count(0)

        # a script: the same words, with the backend's display name, and no HTTP code in them
        hub.create_user("dora")
        r = hub.spawn("dora", {"backend": "local", "image": "lab", "gpus": 2, "gpu_memory": 80})
        assert r.status_code == 503 and r.json()["message"] == MESSAGE, r.text
    finally:
        context.close()
        hub.stop_all_servers()
