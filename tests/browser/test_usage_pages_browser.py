"""The usage pages in Chromium: the gridspawner service behind a real hub (managed service,
hub OAuth), a user's own page and CSV, the admin page with filters and CSV, and the spawn
form's cost estimate following the user's choices."""

from __future__ import annotations

import csv
import io
import time

import pytest

from browsing import log_in
from hubtools import Hub, default_grid_config, free_port

expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = [pytest.mark.browser, pytest.mark.hub, pytest.mark.timeout(300)]

ADMIN = "usageboss"
PRICES = {"currency": "EUR", "gpu_memory": {0: 0.5, 40: 1.25, 80: 2.0}, "cpu_hour": 0.01}


@pytest.fixture
def hub(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("hub")
    grid = default_grid_config(workdir)
    grid["prices"] = PRICES
    grid["default_quota"] = {"gpu_hours_per_month": 100}
    extra = ("from gridspawner.service.settings import enable_service\n"
             f"enable_service(c, port={free_port()}, admin_users=[{ADMIN!r}])\n")
    with Hub(grid, workdir=workdir, extra_config=extra) as h:
        yield h
    assert not h.leftover_pids()


def add_records(hub: Hub) -> None:
    """Older records of other users, written into the hub's usage database directly."""
    from sqlalchemy import create_engine

    from gridspawner.usage import queries

    engine = create_engine(f"sqlite:///{hub.workdir / 'gridspawner-usage.sqlite'}")
    now = time.time()

    def row(user, gpus, model, backend, hours_ago, hours):
        return {"kind": "server", "run_id": None, "username": user, "server_name": "", "backend": backend,
                "backend_kind": "local", "host": "localhost", "gpus": gpus, "gpu_model": model, "gpu_memory_gb": 80,
                "cpu": None, "memory_gb": None, "image": "lab", "profile": "", "price_per_hour": 2.0 * gpus,
                "currency": "EUR", "started_at": now - hours_ago * 3600, "last_seen_at": now - hours_ago * 3600,
                "stopped_at": now - (hours_ago - hours) * 3600, "stop_reason": "idle"}

    try:
        with engine.begin() as conn:
            for values, group in ((row("carol", 2, "NVIDIA A100-SXM4-80GB", "local", 30, 3), "physics"),
                                  (row("dave", 1, "Tesla T4", "local", 5, 1), "ml101")):
                record_id = conn.execute(queries.insert_record(values)).inserted_primary_key[0]
                conn.execute(queries.insert_groups(record_id, [group]))
    finally:
        engine.dispose()


def download_csv(page, link: str) -> list[dict]:
    with page.expect_download() as info:
        page.click(link)
    path = info.value.path()
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.jh5
def test_usage_pages_and_csv_exports(hub, chromium, username, artifacts_dir):
    hub.create_user(username)
    hub.create_group("ml101", [username])
    hub.spawn_ready(username, {"gpus": 1, "gpu_memory": 40})
    time.sleep(2)
    hub.stop_server(username)
    add_records(hub)
    service = f"{hub.url}/services/gridspawner/"

    # ---- the user: their own page, after the OAuth dance through the hub
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    log_in(page, hub, username)
    page.goto(service)
    expect(page.locator("h1")).to_have_text("My GPU usage")
    rows = page.locator("#gs-history tbody tr[data-gs-record]")
    expect(rows).to_have_count(1)  # their own server only, not carol's or dave's
    expect(rows.first).to_contain_text("NVIDIA A100-PCIE-40GB")
    expect(rows.first.locator("[data-gs-reason]")).to_have_text("stopped by gridtest (a service)")
    expect(page.locator("#gs-quota")).to_contain_text("of 100 GPU-hours this month")
    expect(page.locator("svg.gs-chart rect").first).to_be_attached()
    # the hub's look: its stylesheet and logo load
    assert page.evaluate("getComputedStyle(document.querySelector('nav.navbar')).display") == "flex"
    page.screenshot(path=str(artifacts_dir / "usage-user-page.png"), full_page=True)
    mine = download_csv(page, "#gs-csv")
    assert [r["user"] for r in mine] == [username]
    assert mine[0]["gpus"] == "1" and mine[0]["stop_reason"] == "admin" and float(mine[0]["gpu_hours"]) > 0
    # not an admin: no admin page, no one else's records through the API
    assert page.goto(f"{service}admin").status == 403
    assert page.goto(f"{service}api/records?user=carol").status == 403

    # ---- the spawn form: usage and the cost of the current choice, as it changes
    page.goto(f"{hub.url}/hub/spawn")
    expect(page.locator("#gs-usage")).to_contain_text("of 100 GPU-hours this month")
    page.select_option("select[name=gpus]", "2")
    page.select_option("select[name=gpu_memory]", "40")
    expect(page.locator("#gs-usage-cost")).to_have_text("2.50 EUR per hour")
    page.select_option("select[name=gpus]", "1")
    expect(page.locator("#gs-usage-cost")).to_have_text("1.25 EUR per hour")
    page.screenshot(path=str(artifacts_dir / "usage-spawn-form.png"), full_page=True)
    context.close()

    # ---- the admin: every user, sums, filters, CSV
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    log_in(page, hub, ADMIN)
    page.goto(f"{service}admin")
    expect(page.locator("h1")).to_have_text("GPU usage of all users")
    summary = page.locator("#gs-summary tbody tr")
    expect(summary).to_have_count(3)
    expect(page.locator("#gs-summary tr[data-gs-key=carol]")).to_contain_text("6.00")  # 2 GPUs × 3 h
    page.select_option("#gs-group", "ml101")
    page.select_option("#gs-by", "gpu_model")
    page.click("#gs-filters [type=submit]")
    expect(page.locator("#gs-summary tbody tr")).to_have_count(2)  # the user's A100 40GB and dave's T4
    expect(page.locator("#gs-summary tr[data-gs-key='Tesla T4']")).to_contain_text("1.00")
    page.screenshot(path=str(artifacts_dir / "usage-admin-page.png"), full_page=True)
    sums = download_csv(page, "#gs-summary-csv")
    assert {r["key"] for r in sums} == {"Tesla T4", "NVIDIA A100-PCIE-40GB"}
    assert all(r["currency"] == "EUR" for r in sums)
    records = download_csv(page, "#gs-csv")
    assert sorted(r["user"] for r in records) == sorted(["dave", username])
    assert {r["groups"] for r in records} == {"ml101"}
    context.close()
