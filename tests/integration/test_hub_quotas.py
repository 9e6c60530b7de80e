"""GPU quotas on a real hub: a choice over a quota is a field error with the numbers (form
and REST), the form shows usage and what is left, and a running GPU server whose user runs
out is stopped after the grace period, its record saying why."""

from __future__ import annotations

import html
import re
import time

import pytest

from hubtools import Hub, default_grid_config, free_port, procs

from hubtools.usage import records, wait_for

pytestmark = pytest.mark.hub

#: 0.004 GPU-hours = 14.4 s of one GPU: a server runs out of it within the test
DAY_QUOTA = 0.004
GRACE = 3


@pytest.fixture
def quota_hub(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("hub")
    grid = default_grid_config(workdir)
    grid.update({
        "default_quota": {"gpus_at_once": 1, "gpu_hours_per_day": DAY_QUOTA},
        "quota_grace": GRACE,
        "quota_check_interval": 1,
        "prices": {"currency": "EUR", "gpu_memory": {0: 0.5, 40: 1.25, 80: 2.0}, "cpu_hour": 0.01},
    })
    extra = f"from gridspawner.service.settings import enable_service\nenable_service(c, port={free_port()})\n"
    with Hub(grid, workdir=workdir, extra_config=extra) as hub:
        yield hub
    assert not hub.leftover_pids()


def field_error(page: str, field: str) -> str:
    m = re.search(rf'id="gs-{field}-error">(.*?)</div>', page, re.S)
    assert m, page[:3000]
    return html.unescape(m.group(1)).strip()


@pytest.mark.jh5
def test_quota_refusals_form_and_rest_then_a_stop_when_it_runs_out(quota_hub, username):
    hub = quota_hub
    hub.create_user(username)
    # REST: two GPUs at once over a limit of one → 400 naming the field, with the numbers
    r = hub.spawn(username, {"gpus": 2})
    assert r.status_code == 400, (r.status_code, r.text)
    assert "gpus" in r.text and "at most 1 GPU at once (you asked for 2)" in r.text, r.text
    assert hub.server(username) is None

    # the form: the same refusal next to the GPUs field; the panel shows the quota
    browser = hub.form_session(username)
    page = browser.get_form().text
    assert "You have used 0 of 0.004 GPU-hours today: 0.004 left." in html.unescape(page), page[-3000:]
    assert "GPUs at once: 0 in your running servers, at most 1." in page
    assert 'id="gs-usage-cost"' in page  # prices are set: the estimate is shown
    r = browser.post_form({"backend": "local", "image": "lab", "gpus": "2", "gpu_memory": "0"})
    assert r.status_code == 400, (r.status_code, r.text[:500])
    assert "at most 1 GPU at once" in field_error(r.text, "gpus")
    assert hub.server(username) is None

    # one GPU is allowed; it uses the day's GPU-hours up and is stopped GRACE s after
    started = time.monotonic()
    hub.spawn_ready(username, {"gpus": 1})
    pid = hub.server_pid(username)
    # the hub's home page tells the user when and why (the quota watch planned the stop)
    note = wait_for(lambda: re.search(r'class="alert alert-warning gs-stop-note"[^>]*data-gs-reason="quota">(.*?)</div>',
                                      browser.http.get(f"{hub.url}/hub/home", timeout=30).text), 15, "the stop note")
    assert re.fullmatch(r"Your server will be stopped at \d\d:\d\d UTC \(in \d+ min\) because your 0.004 "
                        r"GPU-hours for today run out\. Save your work\.", html.unescape(note.group(1))), note.group(1)
    # while it runs, a second GPU server is over the limit of one at once
    r = hub.spawn(username, {"gpus": 1}, server_name="second")
    assert r.status_code == 400 and "1 GPU in running servers" in r.text, r.text
    hub.wait_stopped(username, timeout=60)
    elapsed = time.monotonic() - started
    assert DAY_QUOTA * 3600 + GRACE - 2 <= elapsed, elapsed
    assert not procs.alive(pid)
    [rec] = wait_for(lambda: [r for r in records(hub, username) if r["stopped_at"]], 10, "closed record")
    assert rec["stop_reason"] == "quota", rec
    assert rec["price_per_hour"] == 0.5 and rec["currency"] == "EUR"
    assert "GPU-hours for today run out; stopping it" in hub.log()

    # now the day's GPU-hours are used up: a GPU server is refused with the numbers...
    r = hub.spawn(username, {"gpus": 1})
    assert r.status_code == 400, r.text
    m = re.search(r"you have used ([0-9.]+) of 0.004 GPU-hours today; GPU servers can start again tomorrow", r.text)
    assert m and float(m.group(1)) >= DAY_QUOTA, r.text
    page = html.unescape(browser.get_form().text)
    assert 'id="gs-usage-exhausted"' in page
    # ...and a server without GPUs still starts
    hub.spawn_ready(username, {"gpus": 0})
    hub.stop_server(username)
    browser.close()
