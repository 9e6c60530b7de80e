"""A real Chromium (Debian's, driven by Playwright) logs in, fills the spawn form, starts a
server and waits for JupyterLab's shell. Screenshots go to the artifacts directory (printed
at the end of the run)."""

from __future__ import annotations

import pytest

from browsing import open_spawn_page

pytestmark = [pytest.mark.browser, pytest.mark.hub]


@pytest.mark.jh5
def test_login_spawn_form_to_jupyterlab(hub, chromium, username, artifacts_dir):
    context = chromium.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        open_spawn_page(page, hub, username)
        page.wait_for_selector("#gs-form")
        # the capacity line comes from a background probe: reload until it has arrived
        capacity = page.locator("[data-gs-capacity]").first
        for _ in range(20):
            if "GPU" in capacity.inner_text():
                break
            page.wait_for_timeout(500)
            page.reload()
        assert "GPUs free" in capacity.inner_text(), capacity.inner_text()

        # the form: choose the custom fields (not a profile), then the options
        custom = page.locator("input[name=profile][value='']")
        if custom.count():
            custom.check()
        page.select_option("select[name=backend]", "local")
        page.select_option("select[name=image]", "lab")
        page.select_option("select[name=gpus]", "1")
        page.select_option("select[name=gpu_memory]", "40")
        form_shot = artifacts_dir / "spawn-form.png"
        page.screenshot(path=str(form_shot), full_page=True)
        print(f"spawn form screenshot: {form_shot}")

        page.click("form#spawn_form [type=submit], form [type=submit]")
        page.wait_for_url(f"**/user/{username}/lab**", timeout=90_000)
        page.wait_for_selector("#jp-main-dock-panel, .jp-LabShell", timeout=90_000)
        lab_shot = artifacts_dir / "jupyterlab.png"
        page.screenshot(path=str(lab_shot))
        print(f"JupyterLab screenshot: {lab_shot}")
        assert hub.server(username)["ready"]
    finally:
        context.close()
        if hub.server(username) is not None:
            hub.stop_server(username)
