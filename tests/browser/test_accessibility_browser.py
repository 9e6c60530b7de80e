"""Accessibility, in a real Chromium on a real hub: axe-core (npm, installed in .node/ as
locks/node pins it) finds no serious or critical violation on the spawn form, the form with
errors, the progress page and the home page (desktop and a 390×844 phone); a start is
possible with the keyboard alone; field errors are linked to their fields.

One hub for the module. Its "slow" profile's server sleeps a few seconds before it starts
(an admin's image prefix), so the progress page stays long enough to be checked.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hubtools import Hub, default_grid_config

expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = [pytest.mark.browser, pytest.mark.hub, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / ".node" / "node_modules" / "axe-core" / "axe.min.js"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
USER, KEYBOARD_USER = "ada", "kim"


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run scripts/install-test-deps.sh (npm ci of locks/node)")
    workdir = tmp_path_factory.mktemp("a11y-hub")
    grid = default_grid_config(workdir)
    grid["images"]["slow"] = {"display_name": "JupyterLab, slow to start", "local": {"prefix": "sleep 6"}}
    grid["profiles"]["slow"] = {
        "display_name": "Slow start",
        "description": "a server that takes a few seconds",
        "values": {"backend": "local", "image": "slow", "gpus": 1, "gpu_memory": 40},
        "max_runtime": "20m",
    }
    h = Hub(grid, workdir=workdir, spawner={"default_url": "/lab"},
            extra_config="import gridspawner.pages\ngridspawner.pages.enable(c)\n")
    try:
        h.start()
        yield h
    finally:
        h.close()


def serious_violations(page) -> list[dict]:
    """axe-core's serious and critical violations on the page as it is now."""
    page.add_script_tag(path=str(AXE))
    found = page.evaluate("""async () => (await axe.run(document, {resultTypes: ["violations"]})).violations
        .map(v => ({id: v.id, impact: v.impact, help: v.help,
                    nodes: v.nodes.slice(0, 5).map(n => n.target.join(" "))}))""")
    return [v for v in found if v["impact"] in ("serious", "critical")]


def assert_accessible(page, what: str) -> None:
    bad = serious_violations(page)
    assert bad == [], f"{what}: " + json.dumps(bad, indent=1)


def log_in(page, hub: Hub, user: str, next_path: str = "/hub/spawn") -> None:
    page.goto(f"{hub.url}/hub/login?next={next_path}")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", "any-password")
    page.click("[type=submit]")
    page.wait_for_url(f"**{next_path}**")


@pytest.fixture
def desktop(chromium):
    context = chromium.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()


@pytest.fixture
def phone(chromium):
    context = chromium.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()


def test_the_form_and_the_form_with_errors(hub, desktop, artifacts_dir):
    page = desktop
    log_in(page, hub, USER)
    page.wait_for_selector("#gs-form")
    group = page.get_by_role("radiogroup", name="Profile")
    expect(group).to_be_visible()
    # each radio is named by its card's title only; the rest of the card describes it
    expect(group.get_by_role("radio", name="Slow start", exact=True)).to_be_visible()
    expect(group.get_by_role("radio", name="Custom", exact=True)).to_be_visible()
    assert_accessible(page, "the spawn form")

    # a profile locks the fields it sets: still focusable, its value read out
    group.get_by_role("radio", name="Slow start", exact=True).check()
    backend = page.locator("select[name=backend]")
    expect(backend).to_have_attribute("aria-disabled", "true")
    assert not backend.evaluate("e => e.disabled")
    assert_accessible(page, "the spawn form with a profile's fields locked")

    # a value the hub refuses: the form comes back with the error linked to its field
    group.get_by_role("radio", name="Custom", exact=True).check()
    page.select_option("select[name=backend]", "local")
    page.select_option("select[name=image]", "lab")
    page.eval_on_selector("select[name=gpus]", """s => { const o = document.createElement("option");
        o.value = "9"; o.text = "9 GPUs"; s.add(o); s.value = "9"; }""")
    page.click("form#spawn_form [type=submit]")
    page.wait_for_selector("#gs-gpus-error")
    gpus = page.locator("select[name=gpus]")
    expect(gpus).to_have_attribute("aria-invalid", "true")
    described = gpus.get_attribute("aria-describedby").split()
    assert "gs-gpus-error" in described, described
    assert page.locator("#gs-gpus-error").inner_text() in gpus.evaluate(
        "e => Array.from(e.getAttribute('aria-describedby').split(' '), id => document.getElementById(id).textContent).join(' ')")
    expect(page.locator(".spawn-error-msg")).to_have_count(0)  # said once, next to the field
    assert page.locator("body").inner_text().lower().count("at most 4 gpus") == 1
    expect(page.locator("[data-gs-note]")).to_be_hidden()
    page.screenshot(path=str(artifacts_dir / "a11y-form-errors.png"), full_page=True)
    assert_accessible(page, "the spawn form with errors")


def test_the_form_on_a_phone(hub, phone, artifacts_dir):
    log_in(phone, hub, USER)
    phone.wait_for_selector("#gs-form")
    widths = phone.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], widths
    box = phone.locator("select[name=image]").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box
    phone.screenshot(path=str(artifacts_dir / "a11y-form-phone.png"), full_page=True)
    assert_accessible(phone, "the spawn form on a phone")


def test_a_keyboard_only_start_its_progress_page_and_the_home_page(hub, desktop, phone, artifacts_dir):
    page = desktop
    # log in with the keyboard too
    page.goto(f"{hub.url}/hub/login?next=/hub/spawn")
    page.focus("input[name=username]")
    page.keyboard.type(KEYBOARD_USER)
    page.keyboard.press("Tab")
    page.keyboard.type("any-password")
    page.keyboard.press("Enter")
    page.wait_for_url("**/hub/spawn**")
    page.wait_for_selector("#gs-form")

    # Tab into the profile group, arrow keys to "Slow start", Tab on to Start, Enter
    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.name") == "profile":
            break
    else:
        raise AssertionError("Tab never reached the profiles")
    for _ in range(5):
        if page.evaluate("document.activeElement.value") == "slow":
            break
        page.keyboard.press("ArrowDown")
    assert page.is_checked("input[name=profile][value=slow]")
    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.type") == "submit":
            break
    else:
        raise AssertionError("Tab never reached Start")
    page.keyboard.press("Enter")

    # the progress page, while the server starts
    page.wait_for_url(f"**/spawn-pending/{KEYBOARD_USER}**")
    expect(page.locator("#progress-message")).to_contain_text(":", timeout=20_000)
    page.screenshot(path=str(artifacts_dir / "a11y-progress.png"), full_page=True)
    assert_accessible(page, "the progress page")

    page.wait_for_url(f"**/user/{KEYBOARD_USER}/lab**", timeout=60_000)
    assert hub.server(KEYBOARD_USER)["ready"]

    # the home page with its table and stop warning, desktop and phone
    page.goto(f"{hub.url}/hub/home")
    expect(page.locator("#gridspawner-servers tbody tr")).to_have_count(1)
    expect(page.locator(".gridspawner-stop-warning:visible")).to_have_count(1)
    assert_accessible(page, "the home page")
    log_in(phone, hub, KEYBOARD_USER, "/hub/home")
    expect(phone.locator(".gridspawner-stop-warning:visible")).to_have_count(1)
    assert_accessible(phone, "the home page on a phone")
    hub.stop_server(KEYBOARD_USER)
