"""Installing gridspawner changes nothing in a hub that runs another spawner.

JupyterHub imports every installed ``jupyterhub.spawners`` entry point while it starts, so
gridspawner is imported in every hub of this environment. A real hub with JupyterHub's own
``simple`` spawner must keep its own behaviour: the user_options it stores are its
business (no gridspawner filter rewrites them), its metrics are its own, and its log has
no gridspawner line. A GridSpawner hub keeps the secret filter (tests of that:
test_hub_mount_secrets.py), checked here once more side by side.
"""

from __future__ import annotations

import json
import re
import sqlite3

import pytest

pytestmark = [pytest.mark.hub, pytest.mark.timeout(180)]

_HUB_LINE = re.compile(r"\[[DIWEC] [\d-]+ [\d:.]+ (JupyterHub|gridspawner)\b")

# the shape of a gridspawner mount row with a typed secret: what its filter would strip
OPTIONS = {"mounts": [{"type": "s3", "bucket": "lab-data", "secret_key": "not-gridspawners-business"}]}


def _stored_options(hub, name: str, server: str) -> dict:
    """user_options as JupyterHub saved them in its database (the API would show the
    spawner's in-memory copy)."""
    with sqlite3.connect(f"file:{hub.workdir / 'jupyterhub.sqlite'}?mode=ro", uri=True) as db:
        row = db.execute(
            "SELECT spawners.user_options FROM spawners JOIN users ON spawners.user_id = users.id "
            "WHERE users.name = ? AND spawners.name = ?",
            (name, server),
        ).fetchone()
    assert row is not None, f"no spawner row for {name}/{server}"
    return json.loads(row[0]) if row[0] else {}


@pytest.mark.jh5
def test_a_hub_with_another_spawner_is_not_changed(make_hub, username):
    hub = make_hub(spawner_class="simple", spawner={"args": ["--allow-root"]}, gpus=None)
    hub.create_user(username)
    r = hub.spawn(username, OPTIONS)
    assert r.status_code in (201, 202), r.text
    hub.wait_ready(username)
    # JupyterHub stored the options as sent: no listener of gridspawner's on its models
    assert _stored_options(hub, username, "") == OPTIONS
    metrics = hub.session.get(f"{hub.url}/hub/metrics", timeout=30)
    assert metrics.status_code == 200 and "jupyterhub_" in metrics.text
    assert "gridspawner" not in metrics.text
    hub.stop_server(username)
    log = hub.log()
    assert "Using Spawner: jupyterhub.spawner.SimpleLocalProcessSpawner" in log
    # the hub's own lines (JupyterHub's logger and gridspawner's); the single-user servers
    # write to the same log, with extensions of their own environment
    hub_lines = [line for line in log.splitlines() if _HUB_LINE.match(line)]
    assert hub_lines, log[-2000:]
    assert not [line for line in hub_lines if "gridspawner" in line.lower()]


def test_a_gridspawner_hub_still_filters_secrets_and_serves_its_metrics(hub, username):
    hub.create_user(username)
    r = hub.spawn(username, {"gpus": 0, **OPTIONS})
    assert r.status_code == 400, r.text  # no storage configured: mounts are refused
    # JupyterHub saved the options before the spawner refused them: without the secret
    assert _stored_options(hub, username, "") == {"gpus": 0, "mounts": [{"type": "s3", "bucket": "lab-data"}]}
    metrics = hub.session.get(f"{hub.url}/hub/metrics", timeout=30)
    assert "gridspawner_rejected_options_total" in metrics.text
