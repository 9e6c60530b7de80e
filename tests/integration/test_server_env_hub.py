"""What a server learns about itself, through a real hub and proxy on the local backend:

- its environment (read from /proc/PID/environ of the real jupyterhub-singleuser process)
  names the backend, host, GPUs (model and memory, in CUDA_VISIBLE_DEVICES order), image,
  profile and the maximum run time's deadline — the same deadline the hub enforces;
- gridspawner-lab's server extension (installed in the environment the server runs from by
  scripts/install-lab-extension.sh) answers GET /user/NAME/gridspawner/stops through the
  proxy with that deadline and the admin's warning times, and follows the stops file (the
  hub's hook) when it changes;
- a bad ``stop_warnings`` setting stops the hub at start-up, naming the key.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest

from hubtools import default_grid_config, procs

pytestmark = pytest.mark.hub

MAX_RUNTIME = 600


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    from hubtools import Hub

    workdir = tmp_path_factory.mktemp("hub")
    grid = default_grid_config(workdir)
    grid["profiles"]["timed"] = {
        "display_name": "Timed A100",
        "values": {"backend": "local", "image": "lab", "gpus": 1, "gpu_memory": 40},
        "changeable": ["gpus"],
        "max_runtime": MAX_RUNTIME,
    }
    grid["stop_warnings"] = ["10m", 90, "2m"]
    h = Hub(grid, workdir=workdir)
    try:
        h.start()
        yield h
    finally:
        h.close()
        assert not h.leftover_pids()


def saved_deadline(hub, username) -> float:
    state = hub.server(username).get("state") or {}
    assert state.get("deadline"), f"no deadline in the spawner state: {state}"
    return state["deadline"]


def stops(hub, username) -> dict:
    r = hub.session.get(f"{hub.url}/user/{username}/gridspawner/stops", timeout=30)
    assert r.status_code == 200, (r.status_code, r.text[:500])
    assert r.headers["Content-Type"].startswith("application/json")
    return r.json()


def test_the_server_environment_names_where_it_runs(hub, username):
    before = time.time()
    hub.spawn_ready(username, {"profile": "timed", "gpus": 2})
    env = procs.environ(hub.server_pid(username))
    deadline = saved_deadline(hub, username)
    # the deadline counts from before the launch, and the server has the hub's own
    assert before + MAX_RUNTIME <= deadline <= time.time() + MAX_RUNTIME
    assert env["GRIDSPAWNER_DEADLINE"] == str(math.floor(deadline))
    assert env["GRIDSPAWNER_DEADLINE_ISO"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(math.floor(deadline)))
    facts = {k: v for k, v in env.items() if k.startswith("GRIDSPAWNER_") and not k.startswith("GRIDSPAWNER_DEADLINE")}
    # best fit on the fake inventory: the 40 GB card and one of the 80 GB cards
    by_uuid = {uuid: (name, mib) for _, uuid, name, mib in hub.gpus()}
    cuda = env["CUDA_VISIBLE_DEVICES"].split(",")
    assert facts == {
        "GRIDSPAWNER_BACKEND": "local",
        "GRIDSPAWNER_BACKEND_KIND": "local",
        "GRIDSPAWNER_BACKEND_DISPLAY_NAME": "This machine",
        "GRIDSPAWNER_HOST": "localhost",
        "GRIDSPAWNER_GPUS": "2",
        "GRIDSPAWNER_GPU_MODELS": ",".join(by_uuid[u][0] for u in cuda),
        "GRIDSPAWNER_GPU_MEMORY_GB": ",".join(str(round(by_uuid[u][1] / 1024)) for u in cuda),
        "GRIDSPAWNER_IMAGE": "lab",
        "GRIDSPAWNER_IMAGE_DISPLAY_NAME": "JupyterLab (hub's Python)",
        "GRIDSPAWNER_PROFILE": "timed",
        "GRIDSPAWNER_PROFILE_DISPLAY_NAME": "Timed A100",
        "GRIDSPAWNER_STOP_WARNINGS": "600,120,90",
        "GRIDSPAWNER_STOPS_FILE": f"{hub.session_root}/{Path(env['GRIDSPAWNER_STOPS_FILE']).parent.name}/stops.json",
    }
    assert sorted(facts["GRIDSPAWNER_GPU_MEMORY_GB"].split(",")) == ["40", "80"]
    hub.stop_server(username)


@pytest.mark.jh5
def test_the_lab_extension_endpoint_follows_the_hub(hub, username):
    hub.spawn_ready(username, {"profile": "timed"})
    deadline = math.floor(saved_deadline(hub, username))
    answer = stops(hub, username)
    assert answer["stops"] == [{"reason": "max_runtime", "at": deadline}]
    assert answer["warn_before"] == [600, 120, 90]
    assert answer["poll_seconds"] == 60
    assert abs(answer["now"] - time.time()) < 5

    # the hook: the hub moves the deadline and announces another stop through the stops file
    stops_file = Path(procs.environ(hub.server_pid(username))["GRIDSPAWNER_STOPS_FILE"])
    assert stops_file.parent.is_dir() and not stops_file.exists()
    stops_file.write_text(json.dumps({"stops": [
        {"reason": "max_runtime", "at": deadline + 3600},
        {"reason": "idle", "at": deadline - 60, "message": "it has been idle for 2 h", "warn_before": [300]},
    ]}))
    assert stops(hub, username)["stops"] == [
        {"reason": "idle", "at": deadline - 60, "message": "it has been idle for 2 h", "warn_before": [300]},
        {"reason": "max_runtime", "at": deadline + 3600},
    ]
    # a broken file is ignored (and logged once by the server): the environment's deadline again
    stops_file.write_text("{not json")
    assert stops(hub, username)["stops"] == [{"reason": "max_runtime", "at": deadline}]

    # only the server's users get an answer
    r = hub.session.get(f"{hub.url}/user/{username}/gridspawner/stops", headers={"Authorization": ""},
                        allow_redirects=False, timeout=30)
    assert r.status_code in (302, 403), r.status_code
    hub.stop_server(username)
    assert not stops_file.parent.exists(), "the session directory (and its stops file) outlived the server"


def test_no_maximum_run_time_no_deadline(hub, username):
    hub.spawn_ready(username, {"backend": "local", "image": "minimal", "gpus": 0})
    env = procs.environ(hub.server_pid(username))
    assert env["GRIDSPAWNER_DEADLINE"] == env["GRIDSPAWNER_DEADLINE_ISO"] == ""
    assert env["GRIDSPAWNER_PROFILE"] == ""
    assert env["GRIDSPAWNER_GPUS"] == "0" and env["GRIDSPAWNER_GPU_MODELS"] == ""
    assert env["GRIDSPAWNER_IMAGE"] == "minimal"
    assert stops(hub, username)["stops"] == []
    hub.stop_server(username)


def test_bad_stop_warnings_stop_the_hub_naming_the_key(make_hub, tmp_path):
    grid = default_grid_config(tmp_path)
    grid["stop_warnings"] = ["5m", "soon"]
    hub = make_hub(grid, start=False)
    hub.start(wait=False)
    assert hub.wait_exit(30) != 0
    log = hub.log()
    assert "gridspawner: invalid configuration: c.GridSpawner.stop_warnings[1]" in log, log[-3000:]
