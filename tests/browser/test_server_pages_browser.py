"""The hub's home and admin pages say what each server got and how long it lasts
(gridspawner.pages, enabled as docs/admin/hub-pages.md says).

One real hub (shared by this module) runs ada's two servers on the local backend with the
fake GPU inventory: her default server from a profile with a 20-minute maximum run time (so
the hub's first stop warning, 30 minutes before, is due at once) and a named one with two
GPUs of at least 40 GB and no time limit. A real Chromium reads her home page (desktop and a
390×844 phone), an admin's admin page, and another user's home page.
"""

from __future__ import annotations

import re

import pytest

from hubtools import Hub, default_grid_config

expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = [pytest.mark.browser, pytest.mark.hub, pytest.mark.timeout(180)]

USER, ADMIN, OTHER = "ada", "boss", "bob"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("pages-hub")
    grid = default_grid_config(workdir)
    grid["profiles"]["course"] = {
        "display_name": "ML course",
        "description": "one GPU for the exercises",
        "values": {"backend": "local", "image": "lab", "gpus": 1, "gpu_memory": 80},
        "max_runtime": "20m",
    }
    h = Hub(grid, workdir=workdir, admin_users=(ADMIN,),
            extra_config="import gridspawner.pages\ngridspawner.pages.enable(c)\n")
    try:
        h.start()
        h.spawn_ready(USER, {"profile": "course"})
        h.spawn_ready(USER, {"backend": "local", "image": "minimal", "gpus": 2, "gpu_memory": 40}, server_name="big")
        yield h
    finally:
        h.close()


def gpu_models(hub: Hub, server: str = "") -> list[str]:
    """The models the backend allocated, from the server's state in the hub's REST API."""
    return [g["name"] for g in hub.server(USER, server)["state"]["launch"]["gpus"]]


def open_page(chromium, hub: Hub, user: str, path: str, viewport=DESKTOP):
    context = chromium.new_context(viewport=viewport)
    page = context.new_page()
    page.set_default_timeout(30_000)
    # ?next= keeps a user whose server runs on the hub's pages (not redirected into it)
    page.goto(f"{hub.url}/hub/login?next=/hub/{path}")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", "any-password")
    page.click("[type=submit]")
    page.wait_for_url(f"**/hub/{path}")
    return context, page


def row(page, server: str):
    return page.locator(f"#gridspawner-servers tr.gridspawner-server[data-server='{server}']")


@pytest.mark.jh5
def test_home_page_shows_what_each_server_got_and_warns_before_the_stop(hub, chromium, artifacts_dir):
    context, page = open_page(chromium, hub, USER, "home")
    try:
        table = page.locator("#gridspawner-servers")
        expect(table.locator("caption")).to_have_text("What your servers got")
        expect(table.locator("tbody tr")).to_have_count(2)

        course = row(page, "")
        [model] = gpu_models(hub)
        assert model == "NVIDIA A100-SXM4-80GB"
        expect(course.locator(".gridspawner-where")).to_contain_text("This machine")
        expect(course.locator(".gridspawner-where")).to_contain_text("localhost")
        expect(course.locator(".gridspawner-gpus")).to_have_text("1 × NVIDIA A100-SXM4-80GB, 80 GB")
        expect(course.locator(".gridspawner-environment")).to_have_text("JupyterLab (hub's Python)")
        expect(course.locator(".gridspawner-data")).to_have_text("none")
        expect(course.locator(".gridspawner-stops")).to_contain_text(re.compile(r"(19|20) min left"))
        # the times are shown in the browser's own words, not as ISO strings
        stops = course.locator(".gridspawner-stops time")
        assert not re.fullmatch(r"\d{4}-\d\d-\d\dT.*Z", stops.inner_text()), stops.inner_text()
        deadline = hub.server(USER)["state"]["deadline"]
        assert stops.get_attribute("datetime").startswith(
            __import__("time").strftime("%Y-%m-%dT%H:%M", __import__("time").gmtime(deadline)))

        big = row(page, "big")
        models = gpu_models(hub, "big")
        assert len(models) == 2
        for m in set(models):
            expect(big.locator(".gridspawner-gpus")).to_contain_text(f"{models.count(m)} × {m}")
        expect(big.locator(".gridspawner-environment")).to_have_text("Minimal (classic tree view)")
        expect(big.locator(".gridspawner-stops")).to_have_text("no time limit")

        # the stop warning (the first one is 30 min before: due now), once, for the course server
        warning = page.locator(".gridspawner-stop-warning:visible")
        expect(warning).to_have_count(1)
        expect(warning).to_have_attribute("role", "alert")
        expect(warning).to_contain_text(re.compile(
            r"Your server will be stopped in (19|20) min \(at .+\) because its maximum run time ends\. Save your work\."))
        page.screenshot(path=str(artifacts_dir / "home-servers.png"), full_page=True)
    finally:
        context.close()


def test_home_page_on_a_phone(hub, chromium, artifacts_dir):
    context, page = open_page(chromium, hub, USER, "home", viewport=PHONE)
    try:
        expect(page.locator(".gridspawner-stop-warning:visible")).to_be_visible()
        # each server is a block of "label value" lines as wide as the screen, not a table
        # row to scroll sideways through. (JupyterHub's own named-server table may be wider
        # than a phone on some versions: only gridspawner's parts are checked.)
        wide = page.evaluate("""[...document.querySelectorAll('.gridspawner-home *, .gridspawner-warnings *')]
            .filter(e => !e.closest('thead') && e.getBoundingClientRect().right > innerWidth + 1)
            .slice(0, 5).map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))""")
        assert wide == [], wide  # (the header row is hidden on a phone: clipped to 1 px)
        for locator in (page.locator(".gridspawner-stop-warning:visible"), row(page, ""), row(page, "big")):
            box = locator.bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box
        expect(page.locator("#gridspawner-servers thead")).not_to_be_in_viewport()
        gpus = row(page, "big").locator(".gridspawner-gpus")
        assert gpus.inner_text().startswith("GPUs") is False  # the label is CSS, not text
        label = gpus.evaluate("el => getComputedStyle(el, '::before').content")
        assert label == '"GPUs"', label
        expect(gpus).to_contain_text("×")
        # the warning comes first, above JupyterHub's own buttons
        assert page.locator(".gridspawner-stop-warning:visible").bounding_box()["y"] < page.locator("#start").bounding_box()["y"]
        page.screenshot(path=str(artifacts_dir / "home-servers-phone.png"), full_page=True)
    finally:
        context.close()


def test_admin_page_lists_every_running_server_with_its_profile(hub, chromium, artifacts_dir):
    hub.create_user(ADMIN, admin=True)
    context, page = open_page(chromium, hub, ADMIN, "admin")
    try:
        table = page.locator("#gridspawner-servers")
        expect(table.locator("tbody tr")).to_have_count(2)
        headers = table.locator("thead th").all_inner_texts()
        assert headers == ["User", "Server", "Profile", "Runs on", "GPUs", "Environment", "Data", "Started", "Stops"]
        course, big = row(page, ""), row(page, "big")
        expect(course.locator("td").nth(0)).to_have_text(USER)
        expect(course.locator("td").nth(2)).to_have_text("ML course")
        expect(big.locator("td").nth(2)).to_have_text("—")
        expect(course.locator(".gridspawner-gpus")).to_have_text("1 × NVIDIA A100-SXM4-80GB, 80 GB")
        expect(course.locator(".gridspawner-stops")).to_contain_text("left")
        # JupyterHub's own admin app still renders above it
        expect(page.locator("#react-admin-hook")).to_be_attached()
        page.screenshot(path=str(artifacts_dir / "admin-servers.png"), full_page=True)
    finally:
        context.close()


def test_another_user_sees_nothing_of_adas_servers(hub, chromium):
    hub.create_user(OTHER)
    context, page = open_page(chromium, hub, OTHER, "home")
    try:
        expect(page.locator("#start")).to_be_visible()  # JupyterHub's own home page
        expect(page.locator("#gridspawner-servers")).to_have_count(0)
        assert USER not in page.locator("main, .container").first.inner_text()
        r = page.goto(f"{hub.url}/hub/admin")
        assert r.status == 403
    finally:
        context.close()
