"""Notebook runs through a real hub, proxy and gridspawner service: the REST API with
JupyterHub API tokens — a 400 naming every bad field (nothing queued), a run that succeeds
with its executed notebook, users kept apart (another's run is a 404), cancel and delete."""

from __future__ import annotations

import json
import time

import nbformat
import pytest
import requests

from hubtools import Hub, default_grid_config, free_port

pytestmark = pytest.mark.hub


def notebook(body: str) -> bytes:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("value = 1\nseconds = 0.0")
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nbformat.writes(nb).encode()


@pytest.fixture(scope="module")
def runs_hub(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("hub")
    grid = default_grid_config(workdir)
    grid.update({"notebook_runs": True, "runs_poll_interval": 0.5, "default_quota": {"gpus_at_once": 2}})
    extra = ("from gridspawner.service.settings import enable_service\n"
             f"enable_service(c, port={free_port()}, admin_users=['runadmin'])\n")
    with Hub(grid, workdir=workdir, extra_config=extra) as hub:
        wait_service_routed(hub)
        yield hub
    assert not hub.leftover_pids()


def wait_service_routed(hub: Hub, timeout: float = 90) -> None:
    """Until the hub routes the service: it does once the service answers (its start takes seconds)."""
    deadline = time.monotonic() + timeout
    while hub.session.get(api(hub), allow_redirects=False, timeout=30).status_code == 302:
        assert time.monotonic() < deadline, hub.log()[-3000:]
        time.sleep(0.5)


def client(hub: Hub, name: str) -> requests.Session:
    hub.create_user(name)
    r = hub.api("POST", f"/users/{name}/tokens", json={"note": "runs test"})
    r.raise_for_status()
    s = requests.Session()
    s.headers["Authorization"] = f"token {r.json()['token']}"
    return s


def api(hub: Hub, path: str = "") -> str:
    return f"{hub.url}/services/gridspawner/api/runs{path}"


def wait_status(s: requests.Session, url: str, statuses, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = s.get(url, timeout=30).json()
        if run["status"] in statuses:
            return run
        time.sleep(0.3)
    raise AssertionError(f"still {run['status']}: {run}")


def test_rest_submit_errors_success_isolation_cancel_delete(runs_hub, username):
    hub = runs_hub
    alice, bob = client(hub, username), client(hub, username + "b")
    # every bad field named at once; nothing queued
    r = alice.post(api(hub), files={"notebook": ("n.ipynb", b"not a notebook")},
                   data={"options": json.dumps({"gpus": 9, "image": "nope"}),
                         "parameters": json.dumps({"value": "x"}), "bindings": json.dumps({"p": 0})}, timeout=60)
    assert r.status_code == 400, r.text
    assert {"notebook", "gpus", "image", "bindings.p"} <= set(r.json()["errors"]), r.json()
    r = alice.post(api(hub), files={"notebook": ("n.ipynb", notebook("1"))},
                   data={"parameters": json.dumps({"value": "x"})}, timeout=60)
    assert r.status_code == 400 and list(r.json()["errors"]) == ["parameters.value"], r.text
    # the GPU quota, as for a spawn
    r = alice.post(api(hub), files={"notebook": ("n.ipynb", notebook("1"))}, data={"options": json.dumps({"gpus": 3})},
                   timeout=60)
    assert r.status_code == 400 and "at most 2 GPUs at once" in r.json()["errors"]["gpus"], r.text
    assert alice.get(api(hub), timeout=30).json()["runs"] == []
    # no token: no access
    assert requests.get(api(hub), timeout=30).status_code in (302, 403)

    # a run that succeeds, with a GPU and a parameter
    r = alice.post(api(hub), files={"notebook": ("n.ipynb", notebook("import os\nprint('twice', value * 2)"))},
                   data={"options": json.dumps({"gpus": 1}), "parameters": json.dumps({"value": 21}), "name": "demo"},
                   timeout=60)
    assert r.status_code == 201, r.text
    run = r.json()
    assert run["status"] in ("queued", "preparing", "running") and run["user"] == username and run["name"] == "demo"
    done = wait_status(alice, api(hub, f"/{run['id']}"), ("succeeded", "failed"))
    assert done["status"] == "succeeded", done
    assert done["gpus"]["count"] == 1 and done["gpus"]["model"] and done["host"] and done["gpu_hours"] > 0
    r = alice.get(api(hub, f"/{run['id']}/notebook"), timeout=30)
    assert r.status_code == 200 and "attachment" in r.headers["Content-Disposition"]
    assert "twice 42" in r.text

    # users apart: bob sees nothing of alice's
    assert bob.get(api(hub, f"/{run['id']}"), timeout=30).status_code == 404
    assert bob.get(api(hub, f"/{run['id']}/notebook"), timeout=30).status_code == 404
    assert bob.post(api(hub, f"/{run['id']}/cancel"), timeout=30).status_code == 404
    assert bob.delete(api(hub, f"/{run['id']}"), timeout=30).status_code == 404
    assert bob.get(api(hub), timeout=30).json()["runs"] == []
    assert bob.get(api(hub) + f"?user={username}", timeout=30).status_code == 403
    # an admin (the usage admin scope) sees every run
    admin = client(hub, "runadmin")
    assert admin.get(api(hub, f"/{run['id']}"), timeout=30).status_code == 200
    assert run["id"] in [x["id"] for x in admin.get(api(hub) + "?user=*", timeout=30).json()["runs"]]
    assert [x["id"] for x in admin.get(api(hub) + f"?user={username}", timeout=30).json()["runs"]] == [run["id"]]
    # ?since: only what changed
    listed = alice.get(api(hub), timeout=30).json()
    assert [x["id"] for x in listed["runs"]] == [run["id"]]
    assert alice.get(api(hub) + f"?since={listed['now']}", timeout=30).json()["runs"] == []

    # cancel a running run; delete is refused while active, then works
    r = alice.post(api(hub), files={"notebook": ("n.ipynb", notebook("import time\ntime.sleep(seconds)"))},
                   data={"parameters": json.dumps({"seconds": 120.0})}, timeout=60)
    long = r.json()
    wait_status(alice, api(hub, f"/{long['id']}"), ("running",))
    assert alice.delete(api(hub, f"/{long['id']}"), timeout=30).status_code == 409
    assert alice.post(api(hub, f"/{long['id']}/cancel"), timeout=60).status_code == 200
    assert wait_status(alice, api(hub, f"/{long['id']}"), ("cancelled",), 60)["status"] == "cancelled"
    assert alice.delete(api(hub, f"/{long['id']}"), timeout=30).status_code == 204
    assert alice.get(api(hub, f"/{long['id']}"), timeout=30).status_code == 404


def test_a_hub_restart_mid_run_keeps_the_run_and_collects_it(runs_hub, username):
    hub = runs_hub
    alice = client(hub, username)
    r = alice.post(api(hub), files={"notebook": ("n.ipynb", notebook("import time\ntime.sleep(seconds)\nprint('slept', value)"))},
                   data={"parameters": json.dumps({"seconds": 10.0, "value": 5}), "options": json.dumps({"gpus": 1})},
                   timeout=60)
    run = r.json()
    wait_status(alice, api(hub, f"/{run['id']}"), ("running",))
    hub.restart_hub()  # the hub stops its managed service and starts it again
    deadline = time.monotonic() + 90
    while True:
        try:
            got = alice.get(api(hub, f"/{run['id']}"), allow_redirects=False, timeout=30)
            if got.status_code == 200:
                break
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, hub.log()[-3000:]
        time.sleep(0.5)
    done = wait_status(alice, api(hub, f"/{run['id']}"), ("succeeded", "failed", "cancelled"))
    assert done["status"] == "succeeded" and "slept 5" in done["log_tail"], done
    assert "re-attached" in hub.log()
